//! A real `redis-server` (the Debian package) per test on a free loopback port, plain or with
//! TLS, and the CA and certificates that TLS needs, generated with rcgen.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use super::{Process, free_port, wait_for};

/// The PEM files of one CA, a server certificate it signs for 127.0.0.1 and `localhost`, and a
/// client certificate it signs.
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
    /// The client certificate.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates a new CA and its certificates, written to `dir` as `{name}-ca.pem`,
    /// `{name}-server.pem`, `{name}-server-key.pem`, `{name}-client.pem` and
    /// `{name}-client-key.pem`.
    ///
    /// Every certificate gets its own common name. With rcgen's default name, which is the
    /// same for every certificate, Redis 7.0 rejected a valid client certificate with the
    /// alert `UnknownCA`, and rustls reported another CA's server certificate as `BadSignature`
    /// instead of `UnknownIssuer`.
    pub fn generate(dir: &Path, name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} redis-server"));
        let server = server_params.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec![format!("{name}-replica")]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} replica"));
        let client = client_params.signed_by(&client_key, &ca).unwrap();

        let pki = Pki {
            ca: dir.join(format!("{name}-ca.pem")),
            server_cert: dir.join(format!("{name}-server.pem")),
            server_key: dir.join(format!("{name}-server-key.pem")),
            client_cert: dir.join(format!("{name}-client.pem")),
            client_key: dir.join(format!("{name}-client-key.pem")),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.server_cert, server.pem()).unwrap();
        std::fs::write(&pki.server_key, server_key.serialize_pem()).unwrap();
        std::fs::write(&pki.client_cert, client.pem()).unwrap();
        std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
        pki
    }
}

/// Whether a TLS server requires a client certificate (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `--tls-auth-clients no`.
    None,
    /// `--tls-auth-clients yes`.
    Required,
}

/// A `redis-server` process, killed when dropped. Tests can pause it, stop it and start it
/// again on the same port with the same arguments, as a Redis restart would.
pub struct Redis {
    /// The port it listens on: plain TCP, or TLS for [`Redis::start_tls`].
    pub port: u16,
    /// The running server, `None` after [`Redis::stop`].
    process: Option<Process>,
    args: Vec<String>,
    tls: bool,
}

impl Redis {
    /// Starts `redis-server` with plain TCP on a free port, no RDB snapshots, and `extra`
    /// arguments after the defaults, so they can override `--appendonly no`. Returns once the
    /// server replies to `PING`, with any reply.
    pub fn start(extra: &[&str]) -> Redis {
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec![
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        Redis::spawn(&args, port, false)
    }

    /// Starts `redis-server` with TLS only (`--port 0`) on a free port, serving the server
    /// certificate of `pki` and verifying client certificates against its CA. Returns once the
    /// port accepts TCP connections, which it does before any handshake.
    pub fn start_tls(pki: &Pki, client_auth: ClientAuth, extra: &[&str]) -> Redis {
        let port = free_port();
        let owned = [
            port.to_string(),
            pki.server_cert.display().to_string(),
            pki.server_key.display().to_string(),
            pki.ca.display().to_string(),
        ];
        let auth_clients = match client_auth {
            ClientAuth::None => "no",
            ClientAuth::Required => "yes",
        };
        let mut args = vec![
            "--port",
            "0",
            "--tls-port",
            &owned[0],
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &owned[1],
            "--tls-key-file",
            &owned[2],
            "--tls-ca-cert-file",
            &owned[3],
            "--tls-auth-clients",
            auth_clients,
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        Redis::spawn(&args, port, true)
    }

    /// Suspends the server with SIGSTOP and waits until the kernel reports it stopped. Its
    /// connections stay open, and commands sent to it get no reply until [`Redis::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
        wait_for("redis-server to stop", Duration::from_secs(5), || {
            self.is_paused().then_some(())
        });
    }

    /// Resumes a server suspended by [`Redis::pause`] with SIGCONT, and waits until the
    /// kernel reports it running.
    pub fn resume(&self) {
        self.signal("-CONT");
        wait_for("redis-server to continue", Duration::from_secs(5), || {
            (!self.is_paused()).then_some(())
        });
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Until [`Redis::restart`] the port
    /// is closed, and connections to it are refused.
    pub fn stop(&mut self) {
        drop(self.process.take());
    }

    /// Starts the server again on the same port with the same arguments, stopping it first if
    /// it runs, and waits as [`Redis::start`] or [`Redis::start_tls`] did. With
    /// `--appendonly yes` and the same `--dir`, the new server loads what the old one wrote.
    ///
    /// NOTE: while the server is stopped, another process can bind the port, and then the
    /// new server fails to start.
    pub fn restart(&mut self) {
        self.stop();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.process = Some(Redis::launch(&args, self.port, self.tls));
    }

    fn spawn(args: &[&str], port: u16, tls: bool) -> Redis {
        let process = Redis::launch(args, port, tls);
        Redis {
            port,
            process: Some(process),
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
            tls,
        }
    }

    /// Starts the server and waits until a plain port replies to `PING`, or until a TLS port
    /// accepts connections. The kernel accepts connections as soon as the server listens,
    /// before the server reads any command.
    fn launch(args: &[&str], port: u16, tls: bool) -> Process {
        let mut process = Process::start("redis-server", args, &[]);
        wait_for("redis-server to start", Duration::from_secs(30), || {
            assert!(
                !process.has_exited(),
                "redis-server {args:?} exited at start; set RATEWATCH_TEST_VERBOSE=1 to see why"
            );
            if tls {
                TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
            } else {
                replies_to_ping(port).then_some(())
            }
        });
        process
    }

    fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .expect("redis-server was stopped; call Redis::restart first")
            .id()
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Reports whether the process state in `/proc/PID/stat` is `T`, stopped by a signal.
    fn is_paused(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The state follows the command name, which is in parentheses and may contain spaces.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        state.is_some_and(|rest| rest.starts_with('T'))
    }
}

/// Reports whether a server on `port` replies to an inline `PING`, with any reply: `+PONG`,
/// or an error such as `-NOAUTH`.
fn replies_to_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 16];
    matches!(stream.read(&mut reply), Ok(n) if n > 0)
}
