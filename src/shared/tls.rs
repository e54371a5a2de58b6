//! TLS to the budget store (`rediss://` URLs): a CA file to trust a private CA, and a client
//! certificate and key for mutual TLS.
//!
//! The files are read and checked when the daemon starts, so a wrong path or a key that does
//! not belong to its certificate stops the daemon instead of failing every probe slot. A
//! reload reads them again, and renewed certificates take effect then.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis::{ClientTlsConfig, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

use crate::x509;

/// A command-line flag and the environment variable that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The flag, such as `--storage.redis-tls-ca-file`.
    pub name: &'static str,
    /// The environment variable read when the flag is not given.
    pub env: &'static str,
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (or {})", self.name, self.env)
    }
}

/// The flag of the CA file.
pub const CA_FILE_FLAG: Flag = Flag {
    name: "--storage.redis-tls-ca-file",
    env: "RATEWATCH_REDIS_TLS_CA_FILE",
};
/// The flag of the client certificate file.
pub const CERT_FILE_FLAG: Flag = Flag {
    name: "--storage.redis-tls-cert-file",
    env: "RATEWATCH_REDIS_TLS_CERT_FILE",
};
/// The flag of the client key file.
pub const KEY_FILE_FLAG: Flag = Flag {
    name: "--storage.redis-tls-key-file",
    env: "RATEWATCH_REDIS_TLS_KEY_FILE",
};

/// The names of the TLS flags that are set, shown as a list such as
/// `--storage.redis-tls-cert-file and --storage.redis-tls-key-file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFlags(Vec<&'static str>);

impl SetFlags {
    /// Returns the verb that agrees with the list: `is` for one flag, `are` for more.
    #[must_use]
    pub fn verb(&self) -> &'static str {
        if self.0.len() == 1 { "is" } else { "are" }
    }
}

impl fmt::Display for SetFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => f.write_str(one),
            [init @ .., last] => write!(f, "{} and {last}", init.join(", ")),
        }
    }
}

/// The TLS files named on the command line. With none set, a `rediss://` connection trusts
/// the system's CA certificates and sends no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA certificates that sign the server's certificate. When set, they replace the
    /// system's CA certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
}

/// A TLS file that cannot be used, or TLS files that do not fit the URL.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error(
        "cannot read {path:?} given by {flag}: {error}; check that the file exists and that ratewatch's user may read it"
    )]
    Read {
        /// The flag that named the file.
        flag: Flag,
        /// The path as given.
        path: PathBuf,
        /// The read error.
        error: std::io::Error,
    },
    /// A certificate file has no PEM certificate in it.
    #[error(
        "{path:?} given by {flag} contains no PEM certificate; it must contain {expected}, each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines"
    )]
    NoCertificate {
        /// The flag that named the file.
        flag: Flag,
        /// The path as given.
        path: PathBuf,
        /// The expected contents of the file.
        expected: &'static str,
    },
    /// A certificate in a certificate file could not be parsed.
    #[error(
        "{path:?} given by {flag} contains an invalid certificate: {reason}; it must contain only PEM certificates"
    )]
    InvalidCertificate {
        /// The flag that named the file.
        flag: Flag,
        /// The path as given.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
    /// The key file has no PEM private key in it.
    #[error(
        "{path:?} given by {KEY_FILE_FLAG} contains no valid PEM private key; it must contain one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key"
    )]
    NoKey {
        /// The path as given.
        path: PathBuf,
    },
    /// A client key was given without a client certificate.
    #[error(
        "{KEY_FILE_FLAG} is set but {CERT_FILE_FLAG} is not; mutual TLS needs both: set {} to the client certificate, or remove the key",
        CERT_FILE_FLAG.name
    )]
    KeyWithoutCertificate,
    /// A client certificate was given without its key.
    #[error(
        "{CERT_FILE_FLAG} is set but {KEY_FILE_FLAG} is not; mutual TLS needs both: set {} to the client certificate's private key, or remove the certificate",
        KEY_FILE_FLAG.name
    )]
    CertificateWithoutKey,
    /// The client certificate is not X.509 version 3, the only version rustls accepts.
    #[error(
        "client certificate {path:?} given by {CERT_FILE_FLAG} is an X.509 version {version} certificate, but TLS here needs version 3; reissue it with an extension file, for example `openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -days 365 -out client.pem -extfile client.ext` where client.ext contains the line extendedKeyUsage=clientAuth"
    )]
    CertificateVersion {
        /// The certificate path as given.
        path: PathBuf,
        /// The X.509 version of the certificate, 1 or 2.
        version: u8,
    },
    /// The client certificate and key do not form a usable pair.
    #[error(
        "client certificate {cert:?} and key {key:?} cannot be used together: {reason}; name the key that the certificate was issued for"
    )]
    Mismatch {
        /// The certificate path as given.
        cert: PathBuf,
        /// The key path as given.
        key: PathBuf,
        /// rustls's reason, which names the key type and never the key bytes.
        reason: String,
    },
    /// TLS files were given for a URL without TLS.
    #[error(
        "{flags} {} set but the budget store URL {url} does not use TLS; write rediss://HOST:PORT to connect over TLS, or remove {flags}",
        flags.verb()
    )]
    NotTlsUrl {
        /// The URL, redacted.
        url: String,
        /// The TLS flags that were set.
        flags: SetFlags,
    },
    /// TLS files were given without a budget store URL.
    #[error(
        "{flags} {} set but no budget store URL is set; set --storage.redis-url or RATEWATCH_REDIS_URL to a rediss:// URL, or remove {flags}",
        flags.verb()
    )]
    WithoutUrl {
        /// The TLS flags that were set.
        flags: SetFlags,
    },
    /// The URL turns off certificate verification with `#insecure`.
    #[error(
        "budget store URL {url} ends in #insecure, which turns off certificate verification, and ratewatch does not support that; remove #insecure and trust the server's CA with {}",
        CA_FILE_FLAG.name
    )]
    Insecure {
        /// The URL, redacted.
        url: String,
    },
}

impl TlsFiles {
    /// Reports whether no TLS file is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }

    /// Returns the flags that are set.
    pub(crate) fn flags_set(&self) -> SetFlags {
        let names = [
            (&self.ca_file, CA_FILE_FLAG),
            (&self.cert_file, CERT_FILE_FLAG),
            (&self.key_file, KEY_FILE_FLAG),
        ]
        .into_iter()
        .filter(|(path, _)| path.is_some())
        .map(|(_, flag)| flag.name)
        .collect();
        SetFlags(names)
    }

    /// Reads and checks the files. Returns `None` when no file is set.
    pub(crate) fn load(&self) -> Result<Option<TlsCertificates>, TlsError> {
        if self.is_empty() {
            return Ok(None);
        }
        let root_cert = match &self.ca_file {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(read_client_pair(cert, key)?),
            (None, Some(_)) => return Err(TlsError::KeyWithoutCertificate),
            (Some(_), None) => return Err(TlsError::CertificateWithoutKey),
            (None, None) => None,
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

/// Returns a digest of the contents of loaded TLS files, to tell on a reload whether they
/// changed. Not a cryptographic hash: it is compared only with an earlier digest in memory.
pub(crate) fn digest(certificates: &TlsCertificates) -> u64 {
    let mut hasher = DefaultHasher::new();
    certificates.root_cert.hash(&mut hasher);
    match &certificates.client_tls {
        Some(client) => {
            client.client_cert.hash(&mut hasher);
            client.client_key.hash(&mut hasher);
        }
        None => 0u8.hash(&mut hasher),
    }
    hasher.finish()
}

fn read_pem(flag: Flag, path: &Path) -> Result<Vec<u8>, TlsError> {
    x509::read_pem_file(path).map_err(|error| TlsError::Read {
        flag,
        path: path.to_owned(),
        error,
    })
}

/// Parses every certificate in `bytes`; an empty file or one without certificates is an
/// error.
fn certificates(
    flag: Flag,
    path: &Path,
    bytes: &[u8],
    expected: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
    let certificates = parsed.map_err(|e| TlsError::InvalidCertificate {
        flag,
        path: path.to_owned(),
        reason: x509::pem_error_reason(&e),
    })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            flag,
            path: path.to_owned(),
            expected,
        });
    }
    Ok(certificates)
}

/// Reads the CA file and checks that every certificate in it is a usable trust anchor.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read_pem(CA_FILE_FLAG, path)?;
    let mut roots = RootCertStore::empty();
    let expected = "the CA certificates that sign the Redis server's certificate";
    for certificate in certificates(CA_FILE_FLAG, path, &bytes, expected)? {
        roots
            .add(certificate)
            .map_err(|e| TlsError::InvalidCertificate {
                flag: CA_FILE_FLAG,
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
    }
    Ok(bytes)
}

/// Reads the client certificate and key and checks that rustls accepts them as a pair.
fn read_client_pair(cert_path: &Path, key_path: &Path) -> Result<ClientTlsConfig, TlsError> {
    let cert_bytes = read_pem(CERT_FILE_FLAG, cert_path)?;
    let expected = "the client certificate, then any intermediate CA certificates";
    let chain = certificates(CERT_FILE_FLAG, cert_path, &cert_bytes, expected)?;
    // rustls reports another version as an invalid certificate in a message that suggests a
    // wrong key, so the version is checked first. Only the first certificate is the client's.
    if let Some(version) = x509::version(&chain[0]).filter(|&version| version != 3) {
        return Err(TlsError::CertificateVersion {
            path: cert_path.to_owned(),
            version,
        });
    }
    let key_bytes = read_pem(KEY_FILE_FLAG, key_path)?;
    // The parser's error is not shown, because it could quote part of the key file.
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| TlsError::NoKey {
        path: key_path.to_owned(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(cert_path, key_path, &e))?
        .with_root_certificates(RootCertStore::empty());
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| mismatch(cert_path, key_path, &e))?;
    Ok(ClientTlsConfig {
        client_cert: cert_bytes,
        client_key: key_bytes,
    })
}

/// The advice added to a connect over TLS that timed out, because a Redis port without TLS
/// waits for a command and never replies to the handshake.
pub(crate) const TIMEOUT_ADVICE: &str = "check that the port is Redis's tls-port, because a Redis port without TLS does not reply to a TLS handshake";

/// The advice added to a connect without TLS that the server reset or closed. Redis closes
/// the connection when its tls-port receives a command instead of a TLS handshake.
pub(crate) const PLAIN_TO_TLS_ADVICE: &str = "the port may be Redis's tls-port, which closes a connection that does not start with a TLS handshake, so use rediss:// to connect to it";

/// Returns [`PLAIN_TO_TLS_ADVICE`] when `error`, from a connect without TLS, reports that the
/// server reset or closed the connection.
pub(crate) fn plain_connect_hint(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        let closed = error.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            )
        });
        if closed {
            return Some(PLAIN_TO_TLS_ADVICE.to_owned());
        }
        current = error.source();
    }
    None
}

/// Returns what to do about a failed TLS handshake, if `error` is one. The rustls error is
/// found only in the first connect's error, because the redis crate turns the errors of
/// later reconnects into text.
///
/// A connect over TLS that timed out gets [`TIMEOUT_ADVICE`].
pub(crate) fn handshake_hint(
    error: &(dyn std::error::Error + 'static),
    tls_connect: bool,
) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        let io_error = error.downcast_ref::<std::io::Error>();
        if tls_connect && io_error.is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
            return Some(TIMEOUT_ADVICE.to_owned());
        }
        let rustls_error = error.downcast_ref::<rustls::Error>().or_else(|| {
            io_error
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls_error) = rustls_error {
            return hint_for(rustls_error);
        }
        current = error.source();
    }
    None
}

fn hint_for(error: &rustls::Error) -> Option<String> {
    let ca = CA_FILE_FLAG.name;
    let cert = CERT_FILE_FLAG.name;
    let key = KEY_FILE_FLAG.name;
    let hint = match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the Redis server's certificate is not signed by a trusted CA, so name the CA that signed it with {ca} (which replaces the system's CA certificates)"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the Redis server's certificate does not list the host of the URL, so connect to a name or address that the certificate lists".to_owned(),
        error if x509::is_unsupported_version(error) => "the Redis server's certificate is not X.509 version 3, which rustls requires, so reissue the certificate of the server's tls-cert-file with an extension file, for example `openssl x509 -req ... -extfile server.ext` where server.ext contains the line subjectAltName=DNS:HOST".to_owned(),
        rustls::Error::InvalidCertificate(_) => format!(
            "the Redis server's certificate was rejected, so check that it is current and signed by a CA in {ca}"
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "the Redis server requires a client certificate (tls-auth-clients yes), so set {cert} and {key}"
        ),
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired,
        ) => format!(
            "the Redis server rejected the client certificate of {cert}, so use one signed by a CA in the server's tls-ca-cert-file"
        ),
        rustls::Error::InvalidMessage(_) => "the server did not reply with TLS, so check that the port is Redis's tls-port, or use redis:// for a server without TLS".to_owned(),
        _ => return None,
    };
    Some(hint)
}

fn mismatch(cert: &Path, key: &Path, error: &rustls::Error) -> TlsError {
    let reason = match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the certificate was issued for a different key".to_owned()
        }
        other => other.to_string(),
    };
    TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };

    /// Writes `ca.pem`, and `client.pem` with its key `client-key.pem`, signed by that CA.
    pub(in crate::shared) fn write_pki(dir: &Path) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["replica".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client-key.pem"), key.serialize_pem()).unwrap();
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.join("other-key.pem"), other.serialize_pem()).unwrap();
    }

    impl TlsFiles {
        fn load_error(&self) -> TlsError {
            match self.load() {
                Ok(_) => panic!("loaded {self:?}"),
                Err(error) => error,
            }
        }
    }

    fn files(dir: &Path, ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsFiles {
        TlsFiles {
            ca_file: ca.map(|name| dir.join(name)),
            cert_file: cert.map(|name| dir.join(name)),
            key_file: key.map(|name| dir.join(name)),
        }
    }

    #[test]
    fn no_files_load_nothing() {
        let loaded = TlsFiles::default().load().unwrap();
        assert!(loaded.is_none());
    }

    #[test]
    fn valid_files_load() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let all = files(
            dir.path(),
            Some("ca.pem"),
            Some("client.pem"),
            Some("client-key.pem"),
        );
        let loaded = all.load().unwrap().unwrap();
        assert!(loaded.root_cert.is_some());
        assert!(loaded.client_tls.is_some());

        let ca_only = files(dir.path(), Some("ca.pem"), None, None);
        let loaded = ca_only.load().unwrap().unwrap();
        assert!(loaded.root_cert.is_some());
        assert!(loaded.client_tls.is_none());
    }

    #[test]
    fn missing_file_names_flag_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let error = files(dir.path(), Some("absent.pem"), None, None).load_error();
        let message = error.to_string();
        assert!(matches!(error, TlsError::Read { .. }), "{message}");
        assert!(message.contains("--storage.redis-tls-ca-file"), "{message}");
        assert!(message.contains("RATEWATCH_REDIS_TLS_CA_FILE"), "{message}");
        assert!(message.contains("absent.pem"), "{message}");
        assert!(message.contains("check that the file exists"), "{message}");
    }

    #[test]
    fn pem_without_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        for (flag, set) in [
            (
                "--storage.redis-tls-ca-file",
                files(dir.path(), Some("empty.pem"), None, None),
            ),
            (
                "--storage.redis-tls-cert-file",
                files(dir.path(), None, Some("empty.pem"), Some("client-key.pem")),
            ),
            // A key file is no certificate.
            (
                "--storage.redis-tls-ca-file",
                files(dir.path(), Some("client-key.pem"), None, None),
            ),
        ] {
            let error = set.load_error();
            let message = error.to_string();
            assert!(matches!(error, TlsError::NoCertificate { .. }), "{message}");
            assert!(message.contains(flag), "{message}");
            assert!(message.contains("contains no PEM certificate"), "{message}");
        }
    }

    #[test]
    fn invalid_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("garbage.pem"), garbage).unwrap();
        let error = files(dir.path(), Some("garbage.pem"), None, None).load_error();
        let message = error.to_string();
        assert!(
            matches!(error, TlsError::InvalidCertificate { .. }),
            "{message}"
        );
        assert!(message.contains("garbage.pem"), "{message}");
    }

    #[test]
    fn key_without_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let error = files(dir.path(), None, None, Some("client-key.pem")).load_error();
        let message = error.to_string();
        assert!(
            matches!(error, TlsError::KeyWithoutCertificate),
            "{message}"
        );
        assert!(
            message.contains("--storage.redis-tls-cert-file"),
            "{message}"
        );

        let error = files(dir.path(), None, Some("client.pem"), None).load_error();
        let message = error.to_string();
        assert!(
            matches!(error, TlsError::CertificateWithoutKey),
            "{message}"
        );
        assert!(
            message.contains("--storage.redis-tls-key-file"),
            "{message}"
        );
    }

    #[test]
    fn key_file_without_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let error = files(dir.path(), None, Some("client.pem"), Some("client.pem")).load_error();
        let message = error.to_string();
        assert!(matches!(error, TlsError::NoKey { .. }), "{message}");
        assert!(
            message.contains("--storage.redis-tls-key-file"),
            "{message}"
        );
        assert!(message.contains("client.pem"), "{message}");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let error = files(dir.path(), None, Some("client.pem"), Some("other-key.pem")).load_error();
        let message = error.to_string();
        assert!(matches!(error, TlsError::Mismatch { .. }), "{message}");
        assert!(message.contains("issued for a different key"), "{message}");
        assert!(message.contains("other-key.pem"), "{message}");
    }

    #[test]
    fn version_1_client_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let key = KeyPair::generate().unwrap();
        let certificate = x509::testing::version_1_certificate(&key, "replica");
        std::fs::write(dir.path().join("client-v1.pem"), certificate).unwrap();
        std::fs::write(dir.path().join("client-v1-key.pem"), key.serialize_pem()).unwrap();

        let error = files(
            dir.path(),
            None,
            Some("client-v1.pem"),
            Some("client-v1-key.pem"),
        )
        .load_error();
        let message = error.to_string();
        assert!(
            matches!(error, TlsError::CertificateVersion { version: 1, .. }),
            "{message}"
        );
        assert!(message.starts_with("client certificate \""), "{message}");
        assert!(message.contains("client-v1.pem"), "{message}");
        assert!(
            message.contains("is an X.509 version 1 certificate, but TLS here needs version 3"),
            "{message}"
        );
        assert!(message.contains("-extfile client.ext"), "{message}");
        assert!(message.contains("extendedKeyUsage=clientAuth"), "{message}");
        assert!(!message.contains("UnsupportedCertVersion"), "{message}");
        assert!(!message.contains("name the key"), "{message}");
    }

    #[test]
    fn version_1_ca_certificate_is_accepted() {
        // rustls reads a trust anchor from a CA certificate of any version, so a version 1
        // CA, which `openssl x509 -req` without -extfile also makes, loads.
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let certificate = x509::testing::version_1_certificate(&key, "private CA");
        std::fs::write(dir.path().join("ca-v1.pem"), certificate).unwrap();
        let loaded = files(dir.path(), Some("ca-v1.pem"), None, None)
            .load()
            .unwrap()
            .unwrap();
        assert!(loaded.root_cert.is_some());
    }

    #[test]
    fn handshake_hint_names_the_fix() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "--storage.redis-tls-ca-file",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "does not list the host",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "check that it is current",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(webpki::Error::UnsupportedCertVersion),
                ))),
                "is not X.509 version 3",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "--storage.redis-tls-key-file",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                "rejected the client certificate",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "did not reply with TLS",
            ),
        ];
        for (error, expected) in cases {
            // Wrapped as tokio-rustls returns it, inside an io::Error.
            let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, error.clone());
            let hint =
                handshake_hint(&wrapped, false).unwrap_or_else(|| panic!("no hint for {error}"));
            assert!(hint.contains(expected), "{error}: {hint}");
        }
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(handshake_hint(&other, true), None);

        // A timed-out connect gets a hint over TLS only.
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let hint = handshake_hint(&timed_out, true).unwrap();
        assert!(hint.contains("tls-port"), "{hint}");
        assert_eq!(handshake_hint(&timed_out, false), None);
    }

    #[test]
    fn flags_set_lists_given_flags() {
        let dir = Path::new("/x");
        let cases = [
            (
                files(dir, Some("a"), None, None),
                "--storage.redis-tls-ca-file",
                "is",
            ),
            (
                files(dir, None, Some("a"), Some("b")),
                "--storage.redis-tls-cert-file and --storage.redis-tls-key-file",
                "are",
            ),
            (
                files(dir, Some("a"), Some("b"), Some("c")),
                "--storage.redis-tls-ca-file, --storage.redis-tls-cert-file and --storage.redis-tls-key-file",
                "are",
            ),
        ];
        for (set, names, verb) in cases {
            let flags = set.flags_set();
            assert_eq!(flags.to_string(), names);
            assert_eq!(flags.verb(), verb, "{names}");
        }
    }
}
