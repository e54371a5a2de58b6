//! The probe budget shared by several replicas through Redis.
//!
//! Replicas that probe the same account debit one budget per endpoint, kept in Redis as a
//! sorted set of debit times at `{prefix}:budget:{endpoint_key}`. A Lua script checks every
//! window and records the debit in one atomic step, using the Redis server's clock, so
//! replicas with skewed clocks agree and their combined probes never exceed any window's
//! budget. As in [`crate::ledger`], a debit counts from the end of its probe
//! ([`SharedBudget::settle`]): the API receives a request before its response arrives, so
//! no two debits in one window can reach the API less than a window apart. Until it is
//! settled, a debit counts from one probe timeout after it was granted, the latest its probe
//! could end, so a replica killed mid-probe never frees budget early. Grid slots are claimed
//! at `{prefix}:slot:{endpoint_key}:{slot}`, so one replica probes each slot.
//!
//! Every call is bounded by the timeout given to [`SharedBudget::connect`]. An unreachable
//! server is an error, and the connection is re-established on a later call once the server
//! responds again.
//!
//! `rediss://` URLs connect over TLS with rustls ([`TlsFiles`]). On each new connection a
//! [`LazyBudget`] reads the server's persistence settings ([`Persistence`]) and logs a
//! warning when a Redis restart can lose debits.

mod persistence;
mod redact;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, RedisError, Script};

use crate::plan::WindowBudget;
pub use persistence::Persistence;
use redact::RedactedUrl;
pub use tls::{CA_FILE_FLAG, CERT_FILE_FLAG, Flag, KEY_FILE_FLAG, SetFlags, TlsError, TlsFiles};

/// The debit script; see `debit.lua` for its arguments and replies.
static DEBIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("debit.lua")));
/// The settle script; see `settle.lua`.
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// A failed call to the budget store. Messages show the URL with its credentials replaced by
/// `xxxxx`, and never a password.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The URL is not one the Redis client accepts.
    #[error(
        "invalid budget store URL {url}: {reason}; expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss:// for TLS in --storage.redis-url or RATEWATCH_REDIS_URL"
    )]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// The client's reason for rejecting it.
        reason: String,
    },
    /// The TLS files cannot be used, or do not fit the URL.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server did not respond within the timeout.
    #[error(
        "budget store {url}: {operation} timed out after {}; check that redis is running and reachable{}",
        humantime::format_duration(*.timeout),
        .advice.map_or_else(String::new, |advice| format!("; {advice}"))
    )]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// The call that timed out: `connect`, `debit`, `settle`, `claim_slot`, `ping` or
        /// `config_get`.
        operation: &'static str,
        /// The timeout given to [`SharedBudget::connect`].
        timeout: Duration,
        /// More advice for a connect over TLS.
        advice: Option<&'static str>,
    },
    /// The server rejected the credentials in the URL, or requires a password that the URL
    /// does not give.
    #[error(
        "budget store {url}: {operation} failed: {reason}; {}",
        failure.advice()
    )]
    Authentication {
        /// The URL, redacted.
        url: String,
        /// The call that failed, as in [`SharedError::Redis`].
        operation: &'static str,
        /// The client's error message, with any password removed.
        reason: String,
        /// Whether the credentials were wrong or missing.
        failure: AuthFailure,
    },
    /// The connection failed or the server returned an error.
    #[error("budget store {url}: {operation} failed: {reason}")]
    Redis {
        /// The URL, redacted.
        url: String,
        /// The call that failed: `connect`, `debit`, `settle`, `claim_slot`, `ping` or
        /// `config_get`.
        operation: &'static str,
        /// The client's error message, with any password removed.
        reason: String,
    },
    /// The debit script returned something other than `[granted, microseconds]`.
    #[error(
        "budget store {url}: the debit script returned {reply:?}, expected [0 or 1, microseconds]; \
         another program may be writing to key {key}"
    )]
    UnexpectedReply {
        /// The URL, redacted.
        url: String,
        /// The budget key that was debited.
        key: String,
        /// The reply as received.
        reply: Vec<i64>,
    },
}

/// The reason the Redis server did not accept the connection's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// The server rejected the user name or password in the URL (`AUTH` failed).
    Rejected,
    /// The server requires a password and the URL gives none (a `NOAUTH` reply).
    Missing,
}

impl AuthFailure {
    /// Returns what to do next. The password itself is never shown.
    #[must_use]
    pub fn advice(self) -> &'static str {
        match self {
            AuthFailure::Rejected => {
                "check the password, and the user name for a Redis ACL user, in the URL of --storage.redis-url or RATEWATCH_REDIS_URL"
            }
            AuthFailure::Missing => {
                "the Redis server requires a password, so add it to the URL in --storage.redis-url or RATEWATCH_REDIS_URL, as redis://:PASSWORD@HOST:PORT"
            }
        }
    }

    /// Returns the failure that `error` reports, if it is one.
    fn of(error: &RedisError) -> Option<AuthFailure> {
        match error.code() {
            Some("NOAUTH") => Some(AuthFailure::Missing),
            Some("WRONGPASS") => Some(AuthFailure::Rejected),
            _ => (error.kind() == redis::ErrorKind::AuthenticationFailed)
                .then_some(AuthFailure::Rejected),
        }
    }
}

/// The outcome of one debit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Debit {
    /// The debit was recorded; the caller may send one request.
    Granted {
        /// The Redis server's time of the debit, in milliseconds since the Unix epoch.
        at_ms: u64,
        /// The member the debit was recorded under, for [`SharedBudget::settle`].
        id: DebitId,
    },
    /// Some window is full, so nothing was recorded.
    Denied {
        /// How long until the oldest blocking debit leaves its window, at most the longest
        /// window. Other replicas may take the room first.
        ready_in: Duration,
    },
}

/// The member a debit was recorded under: the server time in microseconds and a suffix that
/// tells apart debits of the same microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebitId {
    micros: u64,
    suffix: u64,
}

impl DebitId {
    fn member(self) -> String {
        if self.suffix == 0 {
            self.micros.to_string()
        } else {
            format!("{}-{}", self.micros, self.suffix)
        }
    }
}

/// A connection to the shared budget store. Clones share one connection.
#[derive(Clone)]
pub struct SharedBudget {
    connection: ConnectionManager,
    url: Arc<RedactedUrl>,
    prefix: Arc<str>,
    timeout: Duration,
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("url", &self.url.as_str())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SharedBudget {
    /// Connects to the Redis server at `url` (`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
    /// `rediss://` for TLS with the system's CA certificates, or `redis+unix:///PATH`). Every
    /// key starts with `prefix:`. This call and every later one fail with
    /// [`SharedError::Timeout`] after `timeout`.
    ///
    /// An unreachable server is an error here. After a successful connect, a lost connection
    /// is re-established by later calls, one attempt per call.
    pub async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<SharedBudget, SharedError> {
        let redacted = Arc::new(RedactedUrl::new(url));
        let (client, _) = open_client(url, &TlsFiles::default(), &redacted)?;
        SharedBudget::connect_client(client, redacted, Arc::from(prefix), timeout).await
    }

    async fn connect_client(
        client: redis::Client,
        url: Arc<RedactedUrl>,
        prefix: Arc<str>,
        timeout: Duration,
    ) -> Result<SharedBudget, SharedError> {
        // The client's default backoff (redis 0.32.7 with backon 1.6) waits at least 1s, then
        // at least 60s, between reconnection attempts. With no retries each failed attempt ends at once,
        // and the next call starts a new one, so a restarted server is found on the next call.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = bounded(&url, timeout, "connect", connect).await?;
        Ok(SharedBudget {
            connection,
            url,
            prefix,
            timeout,
        })
    }

    /// Debits one request from `endpoint_key`'s budget if every window has room.
    ///
    /// In one atomic script, with the Redis server's clock as `now`: for each window, counts
    /// the endpoint's debits scored after `now - window`. If any window contains its budget
    /// already, returns [`Debit::Denied`] with the wait until the oldest blocking debit
    /// leaves. Otherwise records a debit scored `now + pending` and returns
    /// [`Debit::Granted`]: until [`SharedBudget::settle`] moves it to the probe's real end,
    /// the debit counts as if the probe ran for all of `pending`, its timeout. The key
    /// expires after the longest window plus `pending`. With no windows every debit is
    /// granted and nothing is stored.
    ///
    /// NOTE: a debit that times out here may still run on the server later, for example
    /// after the server was paused. It then spends budget without a probe, which errs
    /// towards fewer probes, never more.
    pub async fn debit(
        &self,
        endpoint_key: &str,
        windows: &[WindowBudget],
        pending: Duration,
    ) -> Result<Debit, SharedError> {
        let key = self.budget_key(endpoint_key);
        let mut invocation = DEBIT_SCRIPT.key(&key);
        invocation.arg(u64::try_from(pending.as_micros()).unwrap_or(u64::MAX));
        for window in windows {
            let span = window.limit.window;
            let span_micros = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
            invocation.arg(span_micros).arg(window.budget);
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = self
            .call("debit", invocation.invoke_async(&mut connection))
            .await?;
        match reply[..] {
            [1, micros, suffix] if micros >= 0 && suffix >= 0 => Ok(Debit::Granted {
                at_ms: micros.unsigned_abs() / 1000,
                id: DebitId {
                    micros: micros.unsigned_abs(),
                    suffix: suffix.unsigned_abs(),
                },
            }),
            [0, micros] if micros > 0 => Ok(Debit::Denied {
                ready_in: Duration::from_micros(micros.unsigned_abs()),
            }),
            _ => Err(SharedError::UnexpectedReply {
                url: self.url.as_str().to_owned(),
                key,
                reply,
            }),
        }
    }

    /// Moves the debit `id` of `endpoint_key` to the server's current time, once the probe it
    /// paid for has ended. `windows` and `pending` are the same as for the debit.
    pub async fn settle(
        &self,
        endpoint_key: &str,
        id: DebitId,
        windows: &[WindowBudget],
        pending: Duration,
    ) -> Result<(), SharedError> {
        let key = self.budget_key(endpoint_key);
        let longest = windows
            .iter()
            .map(|w| w.limit.window)
            .max()
            .unwrap_or_default()
            .saturating_add(pending);
        let expiry_ms = u64::try_from(longest.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut invocation = SETTLE_SCRIPT.key(&key);
        invocation.arg(id.member()).arg(expiry_ms);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .call("settle", invocation.invoke_async(&mut connection))
            .await?;
        Ok(())
    }

    /// Claims grid slot `slot` of `endpoint_key` for `ttl` (`SET NX PX`). Returns true for
    /// exactly one caller per slot until the claim expires. A `ttl` below a millisecond
    /// counts as one millisecond.
    pub async fn claim_slot(
        &self,
        endpoint_key: &str,
        slot: u64,
        ttl: Duration,
    ) -> Result<bool, SharedError> {
        let key = format!("{}:slot:{endpoint_key}:{slot}", self.prefix);
        let ttl_ms = u64::try_from(ttl.as_micros().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1);
        let mut command = redis::cmd("SET");
        command.arg(&key).arg(1).arg("NX").arg("PX").arg(ttl_ms);
        let mut connection = self.connection.clone();
        let reply: Option<String> = self
            .call("claim_slot", command.query_async(&mut connection))
            .await?;
        Ok(reply.is_some())
    }

    /// Sends `PING` and waits for the reply, for readiness checks.
    pub async fn ping(&self) -> Result<(), SharedError> {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let _: String = self
            .call("ping", command.query_async(&mut connection))
            .await?;
        Ok(())
    }

    /// Reads `appendonly` and `appendfsync` with `CONFIG GET`. A `NOAUTH` reply is
    /// [`Persistence::Unauthenticated`], and any other failure, such as a renamed `CONFIG`
    /// command, is [`Persistence::Unknown`], never an error.
    pub async fn persistence(&self) -> Persistence {
        // Each reply maps the parameter name to its value, or is empty for a hidden parameter.
        type Settings = HashMap<String, String>;
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync");
        let mut connection = self.connection.clone();
        let reply: Result<(Settings, Settings), _> = self
            .call("config_get", pipeline.query_async(&mut connection))
            .await;
        match reply {
            Ok((appendonly, appendfsync)) => Persistence::from_config(&appendonly, &appendfsync),
            Err(
                error @ SharedError::Authentication {
                    failure: AuthFailure::Missing,
                    ..
                },
            ) => Persistence::Unauthenticated {
                reason: error.to_string(),
            },
            Err(error) => Persistence::Unknown {
                reason: error.to_string(),
            },
        }
    }

    /// Returns the Redis key of `endpoint_key`'s budget.
    #[must_use]
    pub fn budget_key(&self, endpoint_key: &str) -> String {
        format!("{}:budget:{endpoint_key}", self.prefix)
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, SharedError> {
        bounded(&self.url, self.timeout, operation, request).await
    }
}

/// Parses `url` and applies the TLS files, which must come with a `rediss://` URL. Returns the
/// client and a digest of the files' contents, `None` without files.
fn open_client(
    url: &str,
    tls: &TlsFiles,
    redacted: &RedactedUrl,
) -> Result<(redis::Client, Option<u64>), SharedError> {
    let invalid_url = |error: &RedisError| SharedError::InvalidUrl {
        url: redacted.as_str().to_owned(),
        reason: redacted.scrub(&error.to_string()),
    };
    let client = redis::Client::open(url).map_err(|e| invalid_url(&e))?;
    let info = client.get_connection_info();
    let ConnectionAddr::TcpTls { insecure, .. } = info.addr else {
        if tls.is_empty() {
            return Ok((client, None));
        }
        return Err(TlsError::NotTlsUrl {
            url: redacted.as_str().to_owned(),
            flags: tls.flags_set(),
        }
        .into());
    };
    if insecure {
        return Err(TlsError::Insecure {
            url: redacted.as_str().to_owned(),
        }
        .into());
    }
    match tls.load()? {
        Some(certificates) => {
            let digest = tls::digest(&certificates);
            let client = redis::Client::build_with_tls(info.clone(), certificates)
                .map_err(|e| invalid_url(&e))?;
            Ok((client, Some(digest)))
        }
        None => Ok((client, None)),
    }
}

/// Awaits `request` for at most `timeout`, mapping both failures to [`SharedError`].
async fn bounded<T>(
    url: &RedactedUrl,
    timeout: Duration,
    operation: &'static str,
    request: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, SharedError> {
    let timed_out = || SharedError::Timeout {
        url: url.as_str().to_owned(),
        operation,
        timeout,
        advice: (operation == "connect" && url.is_tls()).then_some(tls::TIMEOUT_ADVICE),
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        // The client's own connection and response timeouts equal `timeout`, so either timer
        // can fire first; both give the same error.
        Ok(Err(e)) if e.is_timeout() => Err(timed_out()),
        Ok(Err(e)) => {
            let mut reason = url.scrub(&e.to_string());
            if let Some(failure) = AuthFailure::of(&e) {
                return Err(SharedError::Authentication {
                    url: url.as_str().to_owned(),
                    operation,
                    reason,
                    failure,
                });
            }
            let tls_connect = operation == "connect" && url.is_tls();
            let hint = if operation == "connect" && url.is_plain_tcp() {
                tls::plain_connect_hint(&e)
            } else {
                tls::handshake_hint(&e, tls_connect)
            };
            if let Some(hint) = hint {
                reason = format!("{reason}; {hint}");
            }
            Err(SharedError::Redis {
                url: url.as_str().to_owned(),
                operation,
                reason,
            })
        }
        Err(_) => Err(timed_out()),
    }
}

/// The location of the shared budget, as given on the command line.
#[derive(Clone)]
pub struct StoreOptions {
    /// The Redis URL, which may contain a password.
    pub url: String,
    /// The prefix of every key.
    pub prefix: String,
    /// The TLS files for a `rediss://` URL.
    pub tls: TlsFiles,
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &RedactedUrl::new(&self.url).as_str())
            .field("prefix", &self.prefix)
            .field("tls", &self.tls)
            .finish()
    }
}

impl StoreOptions {
    /// Combines the flags into options, or `None` without a URL. TLS files without a URL
    /// are an error, because they would be silently ignored.
    pub fn from_flags(
        url: Option<String>,
        prefix: String,
        tls: TlsFiles,
    ) -> Result<Option<StoreOptions>, TlsError> {
        match url {
            Some(url) => Ok(Some(StoreOptions { url, prefix, tls })),
            None if tls.is_empty() => Ok(None),
            None => Err(TlsError::WithoutUrl {
                flags: tls.flags_set(),
            }),
        }
    }
}

/// A shared budget that connects on first use and again after a failed connect, so a daemon
/// started while Redis is down serves metrics, reports not ready, and starts probing once
/// Redis is back. [`LazyBudget::reload_tls`] reads the TLS files again, so a renewed
/// certificate takes effect without a restart.
pub struct LazyBudget {
    options: StoreOptions,
    url: Arc<RedactedUrl>,
    prefix: Arc<str>,
    timeout: Duration,
    /// The client built from the TLS files last taken. A plain lock held only to read or
    /// swap the client, so a reload does not wait for a connect in progress.
    built: std::sync::Mutex<Built>,
    /// The connection, with the generation of the client it was made with. Held while
    /// connecting, so one call connects and the others wait for it.
    connection: tokio::sync::Mutex<Option<(u64, SharedBudget)>>,
}

/// A client and the TLS files it was built from.
struct Built {
    client: redis::Client,
    /// The digest of the TLS files; `None` without files.
    files: Option<u64>,
    /// Raised each time a reload replaces the client, so a connection made with an older
    /// client is replaced on the next call.
    generation: u64,
}

/// The outcome of reading the TLS files again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsReload {
    /// No TLS file is set, so there is nothing to read.
    NoFiles,
    /// The files have the contents they had when last taken.
    Unchanged,
    /// The files changed, and a connection with them succeeded; calls use it from now on.
    Reloaded,
}

impl fmt::Debug for LazyBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBudget")
            .field("url", &self.url.as_str())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl LazyBudget {
    /// Returns a budget that connects when first used. A URL the Redis client cannot parse,
    /// an unusable TLS file, or TLS files with a URL without TLS are errors at once, so a
    /// typo stops the daemon at start-up instead of failing every probe slot.
    pub fn new(options: &StoreOptions, timeout: Duration) -> Result<LazyBudget, SharedError> {
        let url = Arc::new(RedactedUrl::new(&options.url));
        let (client, files) = open_client(&options.url, &options.tls, &url)?;
        Ok(LazyBudget {
            options: options.clone(),
            url,
            prefix: Arc::from(options.prefix.as_str()),
            timeout,
            built: std::sync::Mutex::new(Built {
                client,
                files,
                generation: 0,
            }),
            connection: tokio::sync::Mutex::new(None),
        })
    }

    fn built(&self) -> std::sync::MutexGuard<'_, Built> {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the connection, connecting first if there is none yet or a reload replaced
    /// the client it was made with. Each new connection logs the server's persistence
    /// settings ([`SharedBudget::persistence`]).
    pub async fn get(&self) -> Result<SharedBudget, SharedError> {
        let mut connection = self.connection.lock().await;
        let (client, generation) = {
            let built = self.built();
            (built.client.clone(), built.generation)
        };
        if let Some((made_with, existing)) = connection.as_ref()
            && *made_with == generation
        {
            return Ok(existing.clone());
        }
        let fresh = self.connect(client).await?;
        *connection = Some((generation, fresh.clone()));
        Ok(fresh)
    }

    async fn connect(&self, client: redis::Client) -> Result<SharedBudget, SharedError> {
        let fresh = SharedBudget::connect_client(
            client,
            self.url.clone(),
            self.prefix.clone(),
            self.timeout,
        )
        .await?;
        fresh.persistence().await.log(self.url.as_str());
        Ok(fresh)
    }

    /// Reads the TLS files again. When their contents changed, connects with them first, and
    /// only when that succeeds takes the new client, so files that the server rejects never
    /// replace working ones. Calls already under way finish on the old connection. An
    /// unusable file or a failed connect is an error and leaves the client and connection as
    /// they were.
    pub async fn reload_tls(&self) -> Result<TlsReload, SharedError> {
        if self.options.tls.is_empty() {
            return Ok(TlsReload::NoFiles);
        }
        let (client, files) = open_client(&self.options.url, &self.options.tls, &self.url)?;
        if self.built().files == files {
            return Ok(TlsReload::Unchanged);
        }
        let fresh = self.connect(client.clone()).await?;
        let generation = {
            let mut built = self.built();
            built.client = client;
            built.files = files;
            built.generation += 1;
            built.generation
        };
        // A call that is connecting holds the lock. It stores a connection made with the old
        // client, which the next call replaces because its generation is older.
        if let Ok(mut connection) = self.connection.try_lock() {
            *connection = Some((generation, fresh));
        }
        Ok(TlsReload::Reloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_files() -> TlsFiles {
        TlsFiles {
            ca_file: Some("ca.pem".into()),
            ..TlsFiles::default()
        }
    }

    fn open_error(url: &str, tls: &TlsFiles) -> SharedError {
        match open_client(url, tls, &RedactedUrl::new(url)) {
            Ok((client, _)) => panic!("accepted {:?}", client.get_connection_info().addr),
            Err(error) => error,
        }
    }

    #[test]
    fn tls_files_with_plain_url_are_rejected() {
        let cases = [
            (
                "redis://:hunter2@127.0.0.1:6379/",
                "--storage.redis-tls-ca-file is set but the budget store URL redis://xxxxx@127.0.0.1:6379/ does not use TLS; write rediss://HOST:PORT to connect over TLS, or remove --storage.redis-tls-ca-file",
            ),
            (
                "redis+unix:///run/redis.sock?pass=hunter2",
                "--storage.redis-tls-ca-file is set but the budget store URL redis+unix:///run/redis.sock?pass=xxxxx does not use TLS; write rediss://HOST:PORT to connect over TLS, or remove --storage.redis-tls-ca-file",
            ),
        ];
        for (url, expected) in cases {
            let error = open_error(url, &tls_files());
            let message = error.to_string();
            assert!(
                matches!(error, SharedError::Tls(TlsError::NotTlsUrl { .. })),
                "{message}"
            );
            assert_eq!(message, expected);
        }

        let client_files = TlsFiles {
            cert_file: Some("client.pem".into()),
            key_file: Some("client-key.pem".into()),
            ..TlsFiles::default()
        };
        let message = open_error("redis://127.0.0.1:6379/", &client_files).to_string();
        assert_eq!(
            message,
            "--storage.redis-tls-cert-file and --storage.redis-tls-key-file are set but the budget store URL redis://127.0.0.1:6379/ does not use TLS; write rediss://HOST:PORT to connect over TLS, or remove --storage.redis-tls-cert-file and --storage.redis-tls-key-file"
        );
    }

    #[test]
    fn insecure_fragment_is_rejected() {
        let error = open_error(
            "rediss://:hunter2@127.0.0.1:6380/#insecure",
            &TlsFiles::default(),
        );
        let message = error.to_string();
        assert!(
            matches!(error, SharedError::Tls(TlsError::Insecure { .. })),
            "{message}"
        );
        assert!(message.contains("#insecure"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn tls_url_without_files_uses_system_roots() {
        let url = "rediss://:hunter2@127.0.0.1:6380/";
        let (client, files) =
            open_client(url, &TlsFiles::default(), &RedactedUrl::new(url)).unwrap();
        assert_eq!(files, None);
        let addr = &client.get_connection_info().addr;
        assert!(
            matches!(
                addr,
                ConnectionAddr::TcpTls {
                    insecure: false,
                    ..
                }
            ),
            "{addr:?}"
        );
    }

    #[test]
    fn tls_files_without_url_are_rejected() {
        let error = StoreOptions::from_flags(None, "ratewatch".to_owned(), tls_files())
            .expect_err("accepted TLS files without a URL");
        assert_eq!(
            error.to_string(),
            "--storage.redis-tls-ca-file is set but no budget store URL is set; set --storage.redis-url or RATEWATCH_REDIS_URL to a rediss:// URL, or remove --storage.redis-tls-ca-file"
        );
        let none = StoreOptions::from_flags(None, "ratewatch".to_owned(), TlsFiles::default());
        assert!(none.unwrap().is_none());
    }

    #[tokio::test]
    async fn client_timeout_maps_to_timeout_error() {
        let url = RedactedUrl::new("rediss://:hunter2@127.0.0.1:6380/");
        let client_timeout = async {
            Err::<(), _>(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        };
        let error = bounded(&url, Duration::from_secs(2), "connect", client_timeout)
            .await
            .expect_err("a timed-out connect succeeded");
        let ours = SharedError::Timeout {
            url: url.as_str().to_owned(),
            operation: "connect",
            timeout: Duration::from_secs(2),
            advice: Some(tls::TIMEOUT_ADVICE),
        };
        assert_eq!(error.to_string(), ours.to_string());
        assert!(matches!(error, SharedError::Timeout { .. }), "{error:?}");
    }

    #[test]
    fn tls_connect_timeout_names_tls_port() {
        let error = SharedError::Timeout {
            url: "rediss://xxxxx@127.0.0.1:6380/".to_owned(),
            operation: "connect",
            timeout: Duration::from_secs(2),
            advice: Some(tls::TIMEOUT_ADVICE),
        };
        let message = error.to_string();
        assert!(
            message.ends_with("reachable; check that the port is Redis's tls-port, because a Redis port without TLS does not reply to a TLS handshake"),
            "{message}"
        );
        let error = SharedError::Timeout {
            url: "redis://127.0.0.1:6379/".to_owned(),
            operation: "debit",
            timeout: Duration::from_secs(2),
            advice: None,
        };
        let message = error.to_string();
        assert!(message.ends_with("running and reachable"), "{message}");
    }

    #[test]
    fn store_options_debug_hides_password() {
        let options = StoreOptions {
            url: "rediss://:hunter2@127.0.0.1:6380/".to_owned(),
            prefix: "ratewatch".to_owned(),
            tls: tls_files(),
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("127.0.0.1:6380"), "{debug}");
    }

    #[tokio::test]
    async fn tls_reload_follows_file_contents() {
        let dir = tempfile::tempdir().unwrap();
        tls::tests::write_pki(dir.path());
        let ca = dir.path().join("ca.pem");
        // Nothing listens on port 1, so a connect with renewed files fails at once.
        let options = StoreOptions {
            url: "rediss://:hunter2@127.0.0.1:1/".to_owned(),
            prefix: "ratewatch".to_owned(),
            tls: TlsFiles {
                ca_file: Some(ca.clone()),
                ..TlsFiles::default()
            },
        };
        let budget = LazyBudget::new(&options, Duration::from_secs(2)).unwrap();
        assert_eq!(budget.reload_tls().await.unwrap(), TlsReload::Unchanged);

        // A renewed CA file that cannot connect is not taken, however often it is read.
        let good = std::fs::read(&ca).unwrap();
        let renewed = tempfile::tempdir().unwrap();
        tls::tests::write_pki(renewed.path());
        std::fs::copy(renewed.path().join("ca.pem"), &ca).unwrap();
        for _ in 0..2 {
            let error = budget
                .reload_tls()
                .await
                .expect_err("took files that cannot connect");
            let message = error.to_string();
            assert!(message.contains("connect"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }

        // A broken file is an error too, and the files first loaded stay in use.
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let error = budget
            .reload_tls()
            .await
            .expect_err("loaded a cut-short CA file");
        let message = error.to_string();
        assert!(message.contains("line is missing"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        std::fs::write(&ca, good).unwrap();
        assert_eq!(budget.reload_tls().await.unwrap(), TlsReload::Unchanged);

        let plain = StoreOptions {
            url: "redis://127.0.0.1:6379/".to_owned(),
            prefix: "ratewatch".to_owned(),
            tls: TlsFiles::default(),
        };
        let budget = LazyBudget::new(&plain, Duration::from_secs(2)).unwrap();
        assert_eq!(budget.reload_tls().await.unwrap(), TlsReload::NoFiles);
    }
}
