//! The daemon: load the config, start the scheduler and the web server, reload on SIGHUP or
//! `POST /-/reload`, and shut down gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError};
use crate::metrics::{Metrics, MetricsError, unix_seconds};
use crate::probe::{HttpProber, ProbeError};
use crate::schedule::Scheduler;
use crate::secret::SecretSource;
use crate::shared::{LazyBudget, StoreOptions, TlsReload};
use crate::state::{Opening, StateStore, StoreError};
use crate::status::StatusBoard;
use crate::web::{self, AppState, ReloadRequest, ScrapeLimit};
use crate::webconfig::{LiveWebConfig, TlsListener};

/// A daemon that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid. Transparent, so the problems are printed once.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metrics registry could not be built.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ProbeError),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {address}: {error}; choose another address with --web.listen-address"
    )]
    Listen {
        /// The address requested.
        address: SocketAddr,
        /// The bind error.
        error: std::io::Error,
    },
    /// The state store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The shared budget store's URL or TLS files are invalid.
    #[error(transparent)]
    SharedBudget(#[from] crate::shared::SharedError),
    /// The TLS listener could not start.
    #[error("cannot serve HTTPS: {0}")]
    Tls(std::io::Error),
}

/// A change applied to every loaded config before it is used.
pub type Rewrite = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Settings of one daemon run.
pub struct Options {
    /// The config file, read at start and on every reload.
    pub config_file: PathBuf,
    /// The web configuration file (`--web.config.file`), loaded before the listener is bound
    /// and read again on every reload.
    pub web_config: Option<Arc<LiveWebConfig>>,
    /// The source of secrets.
    pub secrets: SecretSource,
    /// The address of `/metrics`, the status page and the lifecycle API.
    pub listen_address: SocketAddr,
    /// Whether `POST /-/reload` is enabled.
    pub enable_lifecycle: bool,
    /// The maximum number of scrapes of `/metrics` served at once; 0 for no limit.
    pub max_requests: usize,
    /// The state store directory; `None` keeps no state (the demo).
    pub storage_path: Option<PathBuf>,
    /// Redis URL, key prefix and TLS files of a budget shared with other replicas.
    pub shared_budget: Option<StoreOptions>,
    /// How long in-flight probes may run at shutdown.
    pub grace_period: Duration,
    /// Rewrites every API's base URL after each load; `demo` points them at its simulator.
    pub rewrite: Option<Rewrite>,
}

/// Binds the listen address, so a caller can report the bound address before running.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| StartError::Listen { address, error })
}

fn load(options: &Options) -> Result<Config, ConfigError> {
    let mut config = config::load(&options.config_file, &options.secrets)?;
    if let Some(rewrite) = &options.rewrite {
        rewrite(&mut config);
    }
    for warning in config.warnings() {
        tracing::warn!(warning = %warning, "config warning");
    }
    Ok(config)
}

/// Runs the daemon until `shutdown` is cancelled or SIGINT or SIGTERM arrives.
pub async fn run(
    options: Options,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let config = load(&options)?;
    let shared_budget = match &options.shared_budget {
        Some(store) => Some(Arc::new(LazyBudget::new(store, SHARED_BUDGET_TIMEOUT)?)),
        None => None,
    };
    let metrics = Metrics::new()?;
    let board = Arc::new(StatusBoard::default());
    let prober = Arc::new(HttpProber::new()?);
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;

    let (reload_sender, mut reloads) = mpsc::channel::<ReloadRequest>(16);
    let state = AppState {
        metrics: metrics.clone(),
        board: board.clone(),
        reload: options.enable_lifecycle.then_some(reload_sender),
        scrapes: ScrapeLimit::new(options.max_requests),
        web: options.web_config.clone(),
    };
    let server_stop = CancellationToken::new();
    let router = web::router(state);
    let stopped = server_stop.clone().cancelled_owned();
    let server = match options.web_config.clone() {
        Some(web) if web.current().tls.is_some() => {
            let failures = metrics.tls_handshake_failures.clone();
            let listener = TlsListener::new(listener, web, failures).map_err(StartError::Tls)?;
            tokio::spawn(web::serve(listener, router, stopped))
        }
        _ => {
            let listener = listener.tap_io(|tcp| web::disable_nagle(tcp));
            tokio::spawn(web::serve(listener, router, stopped))
        }
    };
    if let Some(web) = &options.web_config {
        tracing::info!(file = %web.path().display(), web = %web.current().summary(), "web config loaded");
    }

    let mut scheduler = Scheduler::new(prober, metrics.clone(), board);
    if let Some(path) = &options.storage_path {
        let store = StateStore::open(path)?;
        if store.opening() != Opening::Existing {
            tracing::warn!(path = %path.display(), "no saved state; every endpoint waits one full interval before its first probe");
        }
        scheduler = scheduler.with_store(Arc::new(store));
    }
    if let Some(budget) = &shared_budget {
        scheduler = scheduler.with_shared_budget(budget.clone());
    }
    let applied = scheduler.apply(&config);
    mark_reload(&metrics, true);
    // Ready only once every endpoint is scheduled, and with a shared budget only while Redis
    // responds.
    if shared_budget.is_none() {
        metrics.ready.set(1);
    }
    let readiness = shared_budget
        .clone()
        .map(|budget| tokio::spawn(watch_shared_budget(budget, metrics.clone())));
    tracing::info!(endpoints = applied.added, config = %options.config_file.display(), "ratewatch started");

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => {
                let _ = reload(&options, &mut scheduler, &metrics, shared_budget.as_deref()).await;
            }
            Some(reply) = reloads.recv() => {
                let outcome =
                    reload(&options, &mut scheduler, &metrics, shared_budget.as_deref()).await;
                let _ = reply.send(outcome);
            }
        }
    }

    tracing::info!(grace_period = ?options.grace_period, "shutting down; a second signal exits at once");
    metrics.ready.set(0);
    tokio::spawn(async {
        // A second signal while draining exits at once.
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("second signal received; exiting without waiting for probes");
        std::process::exit(130);
    });
    if !scheduler.shutdown(options.grace_period).await {
        tracing::warn!(grace_period = ?options.grace_period, "probes still running at the end of the grace period were cut");
    }
    if let Some(task) = readiness {
        task.abort();
    }
    server_stop.cancel();
    let _ = server.await;
    tracing::info!("ratewatch stopped");
    Ok(())
}

/// How long one call to the shared budget store may take.
const SHARED_BUDGET_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the shared budget store every few seconds and sets readiness: a replica that cannot
/// reach it sends nothing, so it is not ready.
async fn watch_shared_budget(budget: Arc<LazyBudget>, metrics: Metrics) {
    let mut was_ready = None;
    loop {
        let outcome = match budget.get().await {
            Ok(connection) => connection.ping().await,
            Err(error) => Err(error),
        };
        let ready = outcome.is_ok();
        // One line per change of state: the probe tasks log each skipped slot at debug only.
        if was_ready != Some(ready) {
            match outcome {
                Ok(()) => tracing::info!("shared budget store reachable; ready"),
                Err(error) => tracing::error!(
                    error = %error,
                    "shared budget store unreachable; not ready, and no probes are sent until it answers"
                ),
            }
            was_ready = Some(ready);
        }
        metrics.ready.set(i64::from(ready));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn mark_reload(metrics: &Metrics, success: bool) {
    metrics.reload_successful.set(i64::from(success));
    if success {
        metrics
            .reload_timestamp
            .set(unix_seconds(SystemTime::now()));
    }
}

/// Reloads the config, the web configuration file and the Redis TLS files, each on its own:
/// an invalid file is rejected and its running version stays, while a valid one is applied.
/// The reload counts as successful only when every file loaded. Returns the summaries joined
/// by "; ", or every error, one per line.
async fn reload<P: crate::probe::Prober>(
    options: &Options,
    scheduler: &mut Scheduler<P>,
    metrics: &Metrics,
    shared_budget: Option<&LazyBudget>,
) -> Result<String, String> {
    let mut outcomes = vec![reload_probes(options, scheduler)];
    outcomes.extend(options.web_config.as_deref().map(reload_web));
    if let Some(budget) = shared_budget {
        outcomes.extend(reload_redis_tls(budget).await);
    }
    let (done, failed): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    mark_reload(metrics, failed.is_empty());
    if failed.is_empty() {
        Ok(done.into_iter().flatten().collect::<Vec<_>>().join("; "))
    } else {
        Err(failed
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// Reads the Redis TLS files again; `None` when none is set.
async fn reload_redis_tls(budget: &LazyBudget) -> Option<Result<String, String>> {
    match budget.reload_tls().await {
        Ok(TlsReload::NoFiles) => None,
        Ok(TlsReload::Unchanged) => Some(Ok("Redis TLS files unchanged".to_owned())),
        Ok(TlsReload::Reloaded) => {
            tracing::info!("Redis TLS files changed, and the budget store connected with them");
            Some(Ok(
                "Redis TLS files reloaded, and the budget store connected with them".to_owned(),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "Redis TLS files reload failed; the previous files stay in use");
            Some(Err(format!(
                "Redis TLS files not reloaded, so the previous files stay in use: {e}"
            )))
        }
    }
}

fn reload_probes<P: crate::probe::Prober>(
    options: &Options,
    scheduler: &mut Scheduler<P>,
) -> Result<String, String> {
    match load(options) {
        Ok(config) => {
            let applied = scheduler.apply(&config);
            tracing::info!(
                added = applied.added,
                changed = applied.changed,
                unchanged = applied.unchanged,
                removed = applied.removed,
                "config reloaded"
            );
            Ok(format!(
                "config reloaded: {} added, {} changed, {} unchanged, {} removed",
                applied.added, applied.changed, applied.unchanged, applied.removed
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; the previous config keeps running");
            Err(e.to_string())
        }
    }
}

fn reload_web(web: &LiveWebConfig) -> Result<String, String> {
    match web.reload() {
        Ok(config) => {
            let summary = config.summary();
            tracing::info!(file = %web.path().display(), web = %summary, "web config reloaded");
            Ok(format!("web config reloaded: {summary}"))
        }
        Err(e) => {
            tracing::error!(file = %web.path().display(), error = %e, "web config reload failed; the previous web config keeps serving");
            Err(e.to_string())
        }
    }
}
