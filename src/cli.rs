//! Command-line flags, named in the Prometheus exporter style (`--config.file`,
//! `--web.listen-address`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default daemon port. 9090, 9093, 9100, 9115, 9313 and 7979 belong to well-known
/// Prometheus components; 9731 is free among them.
pub const DEFAULT_PORT: u16 = 9731;
/// The default simulator port, next to the daemon's.
pub const DEFAULT_SIMULATOR_PORT: u16 = 9732;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "ratewatch",
    version,
    about = "Probe rate-limited HTTP APIs within a share of their documented limits and serve Prometheus metrics",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The subcommand to run; without one, the daemon runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Daemon flags.
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config and print the probe plan; exit 1 on any error.
    Check {
        /// The config file to check.
        #[arg(
            long = "config.file",
            value_name = "FILE",
            default_value = "ratewatch.yml"
        )]
        config_file: PathBuf,
        /// A web configuration file to validate as well, with its certificates and keys.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Run the simulator of the documented API on its own.
    Simulate {
        /// Address to serve the simulated API on.
        #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = "127.0.0.1:9732", value_parser = parse_listen_address)]
        listen_address: SocketAddr,
        /// Scenario file with limit overrides and faults; the default has none.
        #[arg(long = "scenario", value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Run the simulator and the daemon probing it with the bundled example config.
    Demo {
        /// Address of the daemon's metrics and status page.
        #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = "127.0.0.1:9731", value_parser = parse_listen_address)]
        listen_address: SocketAddr,
        /// Address of the simulated API.
        #[arg(long = "simulator.listen-address", value_name = "ADDRESS", default_value = "127.0.0.1:9732", value_parser = parse_listen_address)]
        simulator_address: SocketAddr,
        /// Scenario file for the simulator; the default has no faults.
        #[arg(long = "scenario", value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
}

/// Flags of the daemon.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The config file.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "ratewatch.yml"
    )]
    pub config_file: PathBuf,
    /// Address for metrics, the status page, the JSON API and the lifecycle API; `:PORT` listens on every
    /// interface.
    #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = ":9731", value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,
    /// Web configuration file for HTTPS, basic authentication and response headers, in the
    /// format Prometheus exporters read; re-read on every reload.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Directory of the state store: spent budget, pauses and last results.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "./data")]
    pub storage_path: PathBuf,
    /// Redis URL of a probe budget shared with other replicas: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
    /// or `rediss://` for TLS. Read from `RATEWATCH_REDIS_URL` when the flag is not given, so a
    /// password need not appear on the command line.
    #[arg(
        long = "storage.redis-url",
        value_name = "URL",
        env = "RATEWATCH_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key; replicas that share a budget use the same prefix.
    #[arg(
        long = "storage.redis-prefix",
        value_name = "PREFIX",
        default_value = "ratewatch"
    )]
    pub redis_prefix: String,
    /// PEM file of the CA certificates that sign the Redis server's certificate, for a
    /// `rediss://` URL; replaces the system's CA certificates.
    #[arg(
        long = "storage.redis-tls-ca-file",
        value_name = "FILE",
        env = "RATEWATCH_REDIS_TLS_CA_FILE"
    )]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate that a `rediss://` connection presents, for Redis
    /// with `tls-auth-clients yes`; needs --storage.redis-tls-key-file.
    #[arg(
        long = "storage.redis-tls-cert-file",
        value_name = "FILE",
        env = "RATEWATCH_REDIS_TLS_CERT_FILE"
    )]
    pub redis_tls_cert_file: Option<PathBuf>,
    /// PEM file of the private key of --storage.redis-tls-cert-file.
    #[arg(
        long = "storage.redis-tls-key-file",
        value_name = "FILE",
        env = "RATEWATCH_REDIS_TLS_KEY_FILE"
    )]
    pub redis_tls_key_file: Option<PathBuf>,
    /// Enable `POST /-/reload`.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// The maximum number of scrapes of /metrics served at once; more get 503 until one ends.
    /// 0 means no limit.
    #[arg(long = "web.max-requests", value_name = "COUNT", default_value_t = crate::web::DEFAULT_MAX_REQUESTS, value_parser = parse_count)]
    pub max_requests: usize,
    /// How long in-flight probes may run after SIGINT or SIGTERM before they are cut.
    #[arg(long = "shutdown.grace-period", value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub grace_period: Duration,
}

/// Logging flags, shared by every subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(
        long = "log.level",
        value_name = "LEVEL",
        default_value = "info",
        global = true
    )]
    pub level: LogLevel,
    /// Output format of log messages.
    #[arg(
        long = "log.format",
        value_name = "FORMAT",
        default_value = "logfmt",
        global = true
    )]
    pub format: LogFormat,
}

/// Log severities.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogLevel {
    /// Everything, including every probe result.
    Debug,
    /// Lifecycle events and warnings.
    Info,
    /// Unexpected but recovered events.
    Warn,
    /// Events an operator must act on.
    Error,
}

/// Log formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs, one event per line.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Parses `host:port`, `[v6]:port` or `:port` (every interface).
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    if let Ok(address) = full.parse() {
        return Ok(address);
    }
    let invalid = || {
        format!(
            "invalid listen address {text:?}; write host:port such as 127.0.0.1:9731, localhost:9731, [::1]:9731 or :9731"
        )
    };
    // A host name such as localhost, as Prometheus accepts: the first address it resolves to.
    let (host, port) = full.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    match full.to_socket_addrs() {
        Ok(mut addresses) => addresses.next().ok_or_else(|| {
            format!("listen address {text:?}: host {host:?} has no address; write an IP address such as 127.0.0.1:{port}")
        }),
        Err(error) => Err(format!(
            "listen address {text:?}: cannot resolve host {host:?}: {error}; write an IP address such as 127.0.0.1:{port}"
        )),
    }
}

fn parse_count(text: &str) -> Result<usize, String> {
    let invalid = || {
        format!(
            "invalid count {text:?}: write a whole number from 0 to 1000000, such as 40; 0 means no limit"
        )
    };
    let count: usize = text.trim().parse().map_err(|_| invalid())?;
    if count > MAX_COUNT {
        return Err(invalid());
    }
    Ok(count)
}

/// The largest `--web.max-requests`, far above any number of scrapers and below the most
/// permits a tokio semaphore can hold.
const MAX_COUNT: usize = 1_000_000;

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e}; write a duration such as 15s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_requests_is_a_whole_number() {
        assert_eq!(parse_count("40"), Ok(40));
        assert_eq!(parse_count("0"), Ok(0));
        assert_eq!(parse_count("1000000"), Ok(1_000_000));
        for bad in ["-1", "abc", "1.5", "", "1000001", "18446744073709551615"] {
            assert_eq!(
                parse_count(bad),
                Err(format!(
                    "invalid count {bad:?}: write a whole number from 0 to 1000000, such as 40; 0 means no limit"
                ))
            );
        }
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(
            parse_listen_address(":9731").unwrap().to_string(),
            "0.0.0.0:9731"
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(
            parse_listen_address("[::1]:9731").unwrap().to_string(),
            "[::1]:9731"
        );
        let err = parse_listen_address("localhost").unwrap_err();
        assert!(err.contains("\"localhost\""), "{err}");
        let err = parse_listen_address("localhost:port").unwrap_err();
        assert!(err.contains("write host:port"), "{err}");
    }

    #[test]
    fn listen_address_resolves_localhost() {
        // On a usual system localhost resolves from the hosts file, without a DNS query.
        let address = parse_listen_address("localhost:9731").unwrap();
        assert!(address.ip().is_loopback(), "{address}");
        assert_eq!(address.port(), 9731);
    }

    #[test]
    fn dotted_flags_parse() {
        let cli = Cli::try_parse_from([
            "ratewatch",
            "--config.file=x.yml",
            "--web.listen-address=127.0.0.1:0",
            "--web.enable-lifecycle",
            "--log.level=debug",
            "--log.format=json",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.daemon.config_file, PathBuf::from("x.yml"));
        assert!(cli.daemon.enable_lifecycle);
        assert!(matches!(cli.log.format, LogFormat::Json));

        let cli = Cli::try_parse_from(["ratewatch", "check", "--config.file", "y.yml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check { .. })));
    }

    #[test]
    fn web_config_flag_parses_for_daemon_and_check() {
        let cli = Cli::try_parse_from(["ratewatch", "--web.config.file=web.yml"]).unwrap();
        assert_eq!(cli.daemon.web_config_file, Some(PathBuf::from("web.yml")));
        let cli = Cli::try_parse_from(["ratewatch"]).unwrap();
        assert_eq!(cli.daemon.web_config_file, None);

        let cli =
            Cli::try_parse_from(["ratewatch", "check", "--web.config.file", "web.yml"]).unwrap();
        let Some(Command::Check {
            web_config_file, ..
        }) = cli.command
        else {
            panic!("expected check, got {:?}", cli.command);
        };
        assert_eq!(web_config_file, Some(PathBuf::from("web.yml")));
    }

    #[test]
    fn redis_tls_flags_match_error_messages() {
        use clap::CommandFactory;

        let command = Cli::command();
        for flag in [
            crate::shared::CA_FILE_FLAG,
            crate::shared::CERT_FILE_FLAG,
            crate::shared::KEY_FILE_FLAG,
        ] {
            let long = flag.name.trim_start_matches("--");
            let argument = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("no flag {}", flag.name));
            let env = argument.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(env.as_deref(), Some(flag.env), "{}", flag.name);
        }

        let cli = Cli::try_parse_from([
            "ratewatch",
            "--storage.redis-url=rediss://127.0.0.1:6380/",
            "--storage.redis-tls-ca-file=ca.pem",
            "--storage.redis-tls-cert-file=client.pem",
            "--storage.redis-tls-key-file=client-key.pem",
        ])
        .unwrap();
        assert_eq!(cli.daemon.redis_tls_ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            cli.daemon.redis_tls_cert_file,
            Some(PathBuf::from("client.pem"))
        );
        assert_eq!(
            cli.daemon.redis_tls_key_file,
            Some(PathBuf::from("client-key.pem"))
        );
    }
}
