//! `tls_server_config`: loading certificates and keys into a rustls server configuration, and
//! the listener that performs TLS handshakes for axum.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntCounterVec;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde_saphyr::{Location, Spanned};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::raw::RawTls;
use super::{Checker, LiveWebConfig};
use crate::x509;

/// How long a client may take to complete the TLS handshake before the connection is closed.
/// A handshake takes one or two round trips, so this leaves room for slow links and still
/// frees the slot of a client that sends nothing within seconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The maximum number of TLS handshakes in progress at once. A connection over this cap is
/// closed at once.
pub(super) const MAX_PENDING_HANDSHAKES: usize = 512;

/// The maximum number of TLS handshakes in progress from one source: one IPv4 address or one
/// IPv6 /64 prefix. A connection over this cap is closed at once, so a client that opens
/// connections and sends nothing delays only its own connections. Several clients behind one
/// NAT address share the cap.
pub(super) const MAX_PENDING_HANDSHAKES_PER_SOURCE: usize = 16;

/// The client certificate policy of `client_auth_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    /// No client certificate is requested.
    None,
    /// A certificate is requested and verified when the client sends one.
    VerifyIfGiven,
    /// Every client must present a certificate that verifies.
    Require,
}

/// Builds the rustls configuration from `tls_server_config`, reporting every problem to
/// `checker`. Returns `None` when TLS is off or a problem was found.
pub(super) fn build(
    checker: &mut Checker<'_>,
    raw: &RawTls,
    at: Location,
) -> Option<Arc<ServerConfig>> {
    for (value, message) in raw.unsupported() {
        checker.report(value.referenced, message);
    }
    let cert_file = non_empty(raw.cert_file.as_ref());
    let key_file = non_empty(raw.key_file.as_ref());
    let client_ca_file = non_empty(raw.client_ca_file.as_ref());
    let client_auth_type = non_empty(raw.client_auth_type.as_ref());
    // As in exporter-toolkit, a section whose keys are all empty leaves TLS off.
    if cert_file.is_none()
        && key_file.is_none()
        && client_ca_file.is_none()
        && client_auth_type.is_none()
    {
        return None;
    }
    if cert_file.is_none() {
        checker.report(at, "tls_server_config has no cert_file; name the PEM file of the server certificate chain, relative to this file's directory");
    }
    if key_file.is_none() {
        checker.report(at, "tls_server_config has no key_file; name the PEM file of the server's private key, relative to this file's directory");
    }
    let client_auth = client_auth(checker, client_auth_type);
    let versions = versions(checker, raw, at);
    let roots = match (client_auth, client_ca_file) {
        (Some(ClientAuth::None), Some(file)) => {
            checker.report(file.referenced, "client_ca_file is set but client_auth_type is NoClientCert; set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven, or remove client_ca_file");
            None
        }
        (Some(ClientAuth::VerifyIfGiven | ClientAuth::Require), None) => {
            let at = raw.client_auth_type.as_ref().map_or(at, |t| t.referenced);
            checker.report(at, "client_auth_type verifies client certificates but client_ca_file is not set; name the PEM file of the CAs that sign client certificates");
            None
        }
        (Some(_), Some(file)) => client_roots(checker, file),
        (None, _) | (Some(ClientAuth::None), None) => None,
    };
    let chain = cert_file.and_then(|file| certificate_chain(checker, file));
    let key = key_file.and_then(|file| private_key(checker, file));
    let (chain, key, client_auth, versions) = (chain?, key?, client_auth?, versions?);
    if client_auth != ClientAuth::None && roots.is_none() {
        return None;
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
    {
        Ok(builder) => builder,
        Err(e) => {
            checker.report(at, format!("invalid tls_server_config: {e}"));
            return None;
        }
    };
    let builder = match (client_auth, roots) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (required, Some(roots)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if required == ClientAuth::VerifyIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            match verifier.build() {
                Ok(verifier) => builder.with_client_cert_verifier(verifier),
                Err(e) => {
                    let at = raw.client_ca_file.as_ref().map_or(at, |f| f.referenced);
                    checker.report(
                        at,
                        format!("cannot use client_ca_file for client certificates: {e}"),
                    );
                    return None;
                }
            }
        }
    };
    match builder.with_single_cert(chain, key) {
        Ok(mut config) => {
            // axum serves HTTP/1.1 here, so only that protocol is offered.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        }
        Err(e) => {
            let key_file = raw.key_file.as_ref().map_or(at, |f| f.referenced);
            let message = certificate_and_key_problem(checker, raw, &e);
            checker.report(key_file, message);
            None
        }
    }
}

/// Describes why rustls rejected the pair of `cert_file` and `key_file`.
fn certificate_and_key_problem(
    checker: &Checker<'_>,
    raw: &RawTls,
    error: &rustls::Error,
) -> String {
    let named = |file: Option<&Spanned<String>>| {
        file.map_or_else(String::new, |f| shown(&checker.path(&f.value)))
    };
    let cert = named(raw.cert_file.as_ref());
    let key = named(raw.key_file.as_ref());
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
            "key_file {key} does not belong to the certificate in cert_file {cert}: the certificate was issued for a different key; name the private key that the certificate request was made with, or a certificate issued for this key"
        ),
        rustls::Error::InconsistentKeys(_) => format!(
            "cannot check that key_file {key} belongs to the certificate in cert_file {cert}, because rustls cannot derive the public key of this key type; use an RSA, ECDSA or Ed25519 key"
        ),
        // rustls errors describe the certificate or key type, never the key bytes.
        other => format!(
            "cert_file {cert} and key_file {key} cannot be used together: {other}; check that the key is the one the certificate was issued for"
        ),
    }
}

fn non_empty(value: Option<&Spanned<String>>) -> Option<&Spanned<String>> {
    value.filter(|v| !v.value.trim().is_empty())
}

fn client_auth(checker: &mut Checker<'_>, raw: Option<&Spanned<String>>) -> Option<ClientAuth> {
    let Some(raw) = raw else {
        return Some(ClientAuth::None);
    };
    match raw.value.as_str() {
        "NoClientCert" => Some(ClientAuth::None),
        "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyIfGiven),
        "RequireAndVerifyClientCert" => Some(ClientAuth::Require),
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
            checker.report(raw.referenced, format!("client_auth_type {:?} is not supported: it accepts client certificates without verifying them, which rustls does not do; use VerifyClientCertIfGiven or RequireAndVerifyClientCert", raw.value));
            None
        }
        other => {
            checker.report(raw.referenced, format!("invalid client_auth_type {other:?}; write NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"));
            None
        }
    }
}

/// Returns the protocol versions between `min_version` (default TLS12) and `max_version`
/// (default TLS13).
fn versions(
    checker: &mut Checker<'_>,
    raw: &RawTls,
    at: Location,
) -> Option<Vec<&'static SupportedProtocolVersion>> {
    let min = version(checker, raw.min_version.as_ref(), "min_version", 12);
    let max = version(checker, raw.max_version.as_ref(), "max_version", 13);
    let (min, max) = (min?, max?);
    if min > max {
        let at = raw.min_version.as_ref().map_or(at, |v| v.referenced);
        checker.report(
            at,
            format!("min_version TLS{min} is above max_version TLS{max}; lower min_version or raise max_version"),
        );
        return None;
    }
    let mut versions = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    Some(versions)
}

/// Returns the minor version number, 12 or 13, or `default` when the key is absent.
fn version(
    checker: &mut Checker<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    default: u8,
) -> Option<u8> {
    let Some(raw) = raw else {
        return Some(default);
    };
    match raw.value.as_str() {
        "TLS12" => Some(12),
        "TLS13" => Some(13),
        "TLS10" | "TLS11" => {
            checker.report(raw.referenced, format!("{key} {:?} is not supported: rustls implements TLS 1.2 and 1.3 only; write TLS12 or TLS13", raw.value));
            None
        }
        other => {
            checker.report(
                raw.referenced,
                format!("invalid {key} {other:?}; write TLS12 or TLS13"),
            );
            None
        }
    }
}

/// Reads a PEM file named in the web config, reporting a failure at the key that names it.
fn read_pem(checker: &mut Checker<'_>, file: &Spanned<String>, key: &str) -> Option<Vec<u8>> {
    let path = checker.path(&file.value);
    match x509::read_pem_file(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            checker.report(file.referenced, format!("cannot read {key} {}: {e}; relative paths are resolved against the web config file's directory", shown(&path)));
            None
        }
    }
}

fn shown(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn certificate_chain(
    checker: &mut Checker<'_>,
    file: &Spanned<String>,
) -> Option<Vec<CertificateDer<'static>>> {
    let bytes = read_pem(checker, file, "cert_file")?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match chain {
        Ok(chain) if !chain.is_empty() => {
            // rustls reports another version as an invalid certificate in a message that
            // suggests a wrong key, so the server's own certificate, the first, is checked here.
            if let Some(version) = x509::version(&chain[0]).filter(|&version| version != 3) {
                let path = checker.path(&file.value);
                checker.report(file.referenced, format!("cert_file {} is an X.509 version {version} certificate, but TLS here needs version 3; reissue it with an extension file, for example `openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 365 -out server.pem -extfile server.ext` where server.ext contains the line subjectAltName=DNS:HOST", shown(&path)));
                return None;
            }
            Some(chain)
        }
        Ok(_) | Err(_) => {
            let path = checker.path(&file.value);
            checker.report(file.referenced, format!("cert_file {} holds no valid PEM certificate; it must contain the server certificate and its intermediates, each between -----BEGIN CERTIFICATE----- lines", shown(&path)));
            None
        }
    }
}

fn private_key(
    checker: &mut Checker<'_>,
    file: &Spanned<String>,
) -> Option<PrivateKeyDer<'static>> {
    let bytes = read_pem(checker, file, "key_file")?;
    if let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) {
        return Some(key);
    }
    // The parser's error is not shown, because it could quote part of the key file.
    let path = checker.path(&file.value);
    checker.report(file.referenced, format!("key_file {} holds no valid PEM private key; it must contain one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key", shown(&path)));
    None
}

fn client_roots(checker: &mut Checker<'_>, file: &Spanned<String>) -> Option<Arc<RootCertStore>> {
    let bytes = read_pem(checker, file, "client_ca_file")?;
    let mut roots = RootCertStore::empty();
    let mut problem = None;
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        match certificate.map(|c| roots.add(c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problem = Some(e.to_string()),
            Err(e) => problem = Some(x509::pem_error_reason(&e)),
        }
    }
    let path = checker.path(&file.value);
    if let Some(reason) = problem {
        checker.report(file.referenced, format!("client_ca_file {} holds an invalid certificate: {reason}; it must contain only PEM CA certificates", shown(&path)));
        return None;
    }
    if roots.is_empty() {
        checker.report(file.referenced, format!("client_ca_file {} holds no PEM certificate; it must contain the CA certificates that sign client certificates", shown(&path)));
        return None;
    }
    Some(Arc::new(roots))
}

/// A listener that completes TLS handshakes in background tasks and hands finished
/// connections to `axum::serve`, so a slow client delays only its own connection.
///
/// Each handshake uses the rustls configuration in force when the TCP connection is accepted.
pub struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_address: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting connections on `listener`, with the TLS settings of `web`. Each
    /// connection closed before its handshake finished is counted in `failures` by reason, one
    /// of [`crate::metrics::TLS_FAILURE_REASONS`].
    pub fn new(
        listener: TcpListener,
        web: Arc<LiveWebConfig>,
        failures: IntCounterVec,
    ) -> std::io::Result<TlsListener> {
        let local_address = listener.local_addr()?;
        let (sender, connections) = mpsc::channel(MAX_PENDING_HANDSHAKES);
        let acceptor = tokio::spawn(accept_loop(listener, web, sender, failures));
        Ok(TlsListener {
            connections,
            local_address,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    web: Arc<LiveWebConfig>,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    failures: IntCounterVec,
) {
    let pending = Arc::new(PendingHandshakes::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((stream, peer)) => {
                crate::web::disable_nagle(&stream);
                (stream, peer)
            }
            Err(e) => {
                // Running out of file descriptors is the usual cause; waiting lets some close.
                tracing::warn!(error = %e, "cannot accept a connection; retrying in 100ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match pending.try_start(peer.ip()) {
            Ok(slot) => slot,
            Err(rejection) => {
                // Dropping the stream closes the connection without waiting for the client.
                // The counter shows a flood, so each rejection logs only at debug level.
                failures.with_label_values(&[rejection.reason()]).inc();
                tracing::debug!(peer = %peer, reason = %rejection, "too many TLS handshakes in progress; closing the connection");
                continue;
            }
        };
        let Some(config) = web.current().tls.clone() else {
            // A reload cannot remove TLS, so this only happens if the listener was built
            // for a plain HTTP configuration by mistake.
            failures.with_label_values(&["error"]).inc();
            tracing::error!("TLS listener has no TLS configuration; closing the connection");
            continue;
        };
        let sender = sender.clone();
        let failures = failures.clone();
        tokio::spawn(async move {
            let handshake = TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => {
                    drop(slot);
                    let _ = sender.send((tls, peer)).await;
                }
                // Scanners and plain HTTP clients fail here all the time, so this is debug.
                Ok(Err(e)) => {
                    failures.with_label_values(&["error"]).inc();
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    failures.with_label_values(&["timeout"]).inc();
                    tracing::debug!(peer = %peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Counts of TLS handshakes in progress, in total and per source, that bound how many
/// connections one client can hold open without finishing a handshake.
#[derive(Debug, Default)]
pub(super) struct PendingHandshakes {
    counts: Mutex<PendingCounts>,
}

#[derive(Debug, Default)]
struct PendingCounts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The cap that left a connection without a handshake slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HandshakeRejection {
    /// The source already has [`MAX_PENDING_HANDSHAKES_PER_SOURCE`] handshakes in progress.
    SourceFull,
    /// [`MAX_PENDING_HANDSHAKES`] handshakes are in progress in total.
    AllFull,
}

impl HandshakeRejection {
    /// Returns the `reason` label of the rejection in the handshake failure counter.
    pub(super) const fn reason(self) -> &'static str {
        match self {
            HandshakeRejection::SourceFull => "source_limit",
            HandshakeRejection::AllFull => "total_limit",
        }
    }
}

impl fmt::Display for HandshakeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeRejection::SourceFull => write!(
                f,
                "{MAX_PENDING_HANDSHAKES_PER_SOURCE} handshakes in progress from this source"
            ),
            HandshakeRejection::AllFull => {
                write!(
                    f,
                    "{MAX_PENDING_HANDSHAKES} handshakes in progress in total"
                )
            }
        }
    }
}

/// One handshake in progress; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct HandshakeSlot {
    pending: Arc<PendingHandshakes>,
    source: IpAddr,
}

impl PendingHandshakes {
    /// Takes a handshake slot for a connection from `peer`, or returns which cap is reached.
    pub(super) fn try_start(
        self: &Arc<Self>,
        peer: IpAddr,
    ) -> Result<HandshakeSlot, HandshakeRejection> {
        let source = source_of(peer);
        let mut counts = self.lock();
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= MAX_PENDING_HANDSHAKES_PER_SOURCE {
            return Err(HandshakeRejection::SourceFull);
        }
        if counts.total >= MAX_PENDING_HANDSHAKES {
            return Err(HandshakeRejection::AllFull);
        }
        counts.total += 1;
        counts.per_source.insert(source, from_source + 1);
        Ok(HandshakeSlot {
            pending: Arc::clone(self),
            source,
        })
    }

    /// Returns the number of handshakes in progress from the source of `peer`.
    #[cfg(test)]
    pub(super) fn pending_from(&self, peer: IpAddr) -> usize {
        self.lock()
            .per_source
            .get(&source_of(peer))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingCounts> {
        // The counts are updated in one step under the lock, so a poisoned lock holds whole
        // numbers.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut counts = self.pending.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.per_source.remove(&self.source);
            }
        }
    }
}

/// Returns the address that the per-source cap counts `peer` under: the IPv4 address, or the
/// /64 prefix of an IPv6 address, because one IPv6 host usually controls a whole /64.
pub(super) fn source_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop ended, so no connection will come; axum keeps serving those open.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_address)
    }
}
