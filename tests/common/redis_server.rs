//! A real `redis-server` (the Debian package) per test on a free loopback port, plain or with
//! TLS, and the CA and certificates that TLS needs, generated with rcgen.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
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

/// A `redis-server` process, killed when dropped.
pub struct Redis {
    /// The process.
    pub process: Process,
    /// The port it listens on: plain TCP, or TLS for [`Redis::start_tls`].
    pub port: u16,
}

impl Redis {
    /// Starts `redis-server` with plain TCP on a free port, no RDB snapshots, and `extra`
    /// arguments after the defaults, so they can override `--appendonly no`.
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
        Redis::spawn(&args, port)
    }

    /// Starts `redis-server` with TLS only (`--port 0`) on a free port, serving the server
    /// certificate of `pki` and verifying client certificates against its CA.
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
        Redis::spawn(&args, port)
    }

    /// Starts the server and waits until its port accepts connections, which a TLS port
    /// does too before any handshake.
    fn spawn(args: &[&str], port: u16) -> Redis {
        let mut process = Process::start("redis-server", args, &[]);
        wait_for("redis-server to listen", Duration::from_secs(10), || {
            assert!(
                !process.has_exited(),
                "redis-server {args:?} exited at start; set RATEWATCH_TEST_VERBOSE=1 to see why"
            );
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Redis { process, port }
    }
}
