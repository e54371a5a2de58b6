//! The subcommands behind `main`: the daemon, `check`, `simulate` and `demo`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{self, Options};
use crate::cli::DaemonArgs;
use crate::config::{self, Config};
use crate::secret::SecretSource;
use crate::shared::{StoreOptions, TlsFiles};
use crate::simulate::{self, Scenario};
use crate::webconfig::{self, LiveWebConfig};

/// The example config that `demo` runs, compiled in so `demo` works from any directory.
pub const EXAMPLE_CONFIG: &str = include_str!("../examples/ratewatch.yml");

/// The key `demo` uses against its simulator when `RATEWATCH_API_KEY` is not set.
const DEMO_KEY: &str = "demo-key";

/// Runs the daemon with the given flags. An invalid web configuration file, or Redis TLS
/// files without a Redis URL, stop it before the listen address is bound.
pub async fn daemon(args: DaemonArgs) -> anyhow::Result<()> {
    let redis_tls = TlsFiles {
        ca_file: args.redis_tls_ca_file,
        cert_file: args.redis_tls_cert_file,
        key_file: args.redis_tls_key_file,
    };
    let shared_budget = StoreOptions::from_flags(args.redis_url, args.redis_prefix, redis_tls)?;
    let web_config = match args.web_config_file {
        Some(path) => Some(Arc::new(LiveWebConfig::load(path)?)),
        None => None,
    };
    let listener = app::bind(args.listen_address).await?;
    let options = Options {
        config_file: args.config_file,
        web_config,
        secrets: SecretSource::from_env(),
        listen_address: args.listen_address,
        enable_lifecycle: args.enable_lifecycle,
        max_requests: args.max_requests,
        storage_path: Some(args.storage_path),
        shared_budget,
        grace_period: args.grace_period,
        rewrite: None,
    };
    app::run(options, listener, CancellationToken::new()).await?;
    Ok(())
}

/// Validates a config, and a web configuration file when given, and prints the plan; any
/// problem is an error.
pub fn check(config_file: &Path, web_config_file: Option<&Path>) -> anyhow::Result<()> {
    let config = config::load(config_file, &SecretSource::from_env())?;
    let web_config = web_config_file.map(webconfig::load).transpose()?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    print!("{}", crate::check::plan_table(&config));
    if let (Some(path), Some(web_config)) = (web_config_file, web_config) {
        println!(
            "web config {} is valid: {}",
            path.display(),
            web_config.summary()
        );
    }
    Ok(())
}

fn load_scenario(path: Option<&Path>) -> anyhow::Result<Scenario> {
    match path {
        Some(path) => Ok(Scenario::load(path)?),
        None => Ok(Scenario::default()),
    }
}

/// Runs the simulator until SIGINT or SIGTERM.
pub async fn simulate(address: SocketAddr, scenario: Option<&Path>) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address}; choose another address with --web.listen-address")
        })?;
    let bound = listener.local_addr()?;
    println!("Simulated API at http://{bound}/ (statistics at http://{bound}/_sim/stats)");
    simulate::serve(listener, scenario, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Runs the simulator and the daemon with the example config, both on loopback.
pub async fn demo(
    address: SocketAddr,
    simulator_address: SocketAddr,
    scenario: Option<&Path>,
) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let simulator = tokio::net::TcpListener::bind(simulator_address)
        .await
        .with_context(|| format!("cannot listen on {simulator_address} for the simulator; choose another address with --simulator.listen-address"))?;
    let simulator_bound = simulator.local_addr()?;
    let stop = CancellationToken::new();
    let simulator_stop = stop.clone();
    let simulator_task = tokio::spawn(simulate::serve(
        simulator,
        scenario,
        simulator_stop.cancelled_owned(),
    ));

    let config_file = write_example_config()?;
    let listener = app::bind(address).await?;
    let bound = listener.local_addr()?;
    let base = format!("http://{simulator_bound}/");
    let rewrite = Arc::new(move |config: &mut Config| point_at(config, &base));
    let options = Options {
        config_file: config_file.path().to_owned(),
        web_config: None,
        secrets: SecretSource::from_env()
            .with_fallback("RATEWATCH_API_KEY", DEMO_KEY)
            .with_fallback("RATEWATCH_SESSION_COOKIE", &format!("session={DEMO_KEY}")),
        listen_address: bound,
        enable_lifecycle: false,
        max_requests: crate::web::DEFAULT_MAX_REQUESTS,
        storage_path: None,
        shared_budget: None,
        grace_period: std::time::Duration::from_secs(5),
        rewrite: Some(rewrite),
    };
    println!("ratewatch demo: the daemon probes a simulator of the documented API.");
    println!("  status page:      http://{bound}/");
    println!("  metrics:          http://{bound}/metrics");
    println!(
        "  simulator:        http://{simulator_bound}/ (statistics at http://{simulator_bound}/_sim/stats)"
    );
    println!("Press Ctrl-C to stop.");
    let result = app::run(options, listener, CancellationToken::new()).await;
    stop.cancel();
    let _ = simulator_task.await;
    drop(config_file);
    result.map_err(Into::into)
}

/// Writes the compiled-in example config to a temporary file, so the daemon loads it the same
/// way it loads any config.
fn write_example_config() -> anyhow::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut file = tempfile::Builder::new()
        .prefix("ratewatch-demo-")
        .suffix(".yml")
        .tempfile()
        .context("cannot write the demo config to a temporary file")?;
    file.write_all(EXAMPLE_CONFIG.as_bytes())?;
    Ok(file)
}

/// Points every endpoint at `base`, keeping each endpoint's path.
fn point_at(config: &mut Config, base: &str) {
    let Ok(base) = url::Url::parse(base) else {
        return;
    };
    for endpoint in &mut config.endpoints {
        let path = endpoint.url.path().trim_start_matches('/').to_owned();
        let query = endpoint.url.query().map(str::to_owned);
        if let Ok(mut url) = base.join(&path) {
            url.set_query(query.as_deref());
            endpoint.url = url;
        }
    }
}
