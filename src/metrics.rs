//! The Prometheus metrics the daemon serves, on registries it owns.
//!
//! A scrape writes one family at a time, into chunks of bounded size that the web server
//! streams (see `scrape`). The series of an endpoint live in one compact struct
//! (see `series`): its label values once, and atomics or small lists for the values. A scrape
//! writes the text of their families straight from those values (see `family`). Each other
//! family sits on a registry of its own, which a scrape gathers and runs through
//! `TextEncoder`.
//!
//! Label values come from the config (`api`, `endpoint`, `window`, `method`) or from bounded
//! enums (`class`, `reason`, `form`, `policy`). A URL, a header value or a secret never becomes
//! a label.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, core::Collector,
};

use crate::classify::Class;
use crate::config::Endpoint;
use crate::headroom::{CreditError, HeaderError, RetryAfterForm};
use crate::ratelimit::format_window;

mod family;
mod scrape;
mod series;
mod text;

use family::Family;
pub use scrape::{Chunk, Scrape};
use series::{Series, Store, Upstream, WindowSeries, bump};

/// The reason a scheduled probe was not sent, a bounded label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The ledger had no room in some window.
    Budget,
    /// A `Retry-After` pause was in force.
    RetryAfter,
    /// The API reported too little remaining quota to probe at this slot.
    UpstreamQuota,
    /// The slot passed while the daemon was busy or down.
    Missed,
    /// The shared budget store could not be reached.
    BudgetStoreUnavailable,
}

impl SkipReason {
    /// Every reason, for pre-initialising counters.
    pub const ALL: [SkipReason; 5] = [
        SkipReason::Budget,
        SkipReason::RetryAfter,
        SkipReason::UpstreamQuota,
        SkipReason::Missed,
        SkipReason::BudgetStoreUnavailable,
    ];

    /// Returns the label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::Budget => "budget",
            SkipReason::RetryAfter => "retry_after",
            SkipReason::UpstreamQuota => "upstream_quota",
            SkipReason::Missed => "missed",
            SkipReason::BudgetStoreUnavailable => "budget_store_unavailable",
        }
    }
}

/// The `Content-Type` of a scrape: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// A metric that could not be created or registered.
#[derive(Debug, thiserror::Error)]
#[error("cannot register metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The source of the samples of one metric family.
enum Source {
    /// A registry that holds only this family.
    Registry(Registry),
    /// The compact series of every endpoint.
    Compact(Family),
}

/// Every metric family and its source, sorted by family name.
#[derive(Default)]
struct Families(Vec<(String, Source)>);

impl Families {
    /// Registers a collector of one family on a new registry of its own.
    fn register(&mut self, collector: Box<dyn Collector>) -> Result<(), MetricsError> {
        let name = collector
            .desc()
            .first()
            .map(|desc| desc.fq_name.clone())
            .unwrap_or_default();
        self.check_new(&name)?;
        let registry = Registry::new();
        registry.register(collector)?;
        self.insert(name, Source::Registry(registry));
        Ok(())
    }

    /// Registers a family of the compact series, after checking its name and label names.
    fn register_compact(&mut self, family: Family) -> Result<(), MetricsError> {
        let name = family.desc()?.fq_name;
        self.check_new(&name)?;
        self.insert(name, Source::Compact(family));
        Ok(())
    }

    fn check_new(&self, name: &str) -> Result<(), MetricsError> {
        if self.0.iter().any(|(known, _)| *known == name) {
            return Err(prometheus::Error::AlreadyReg.into());
        }
        Ok(())
    }

    fn insert(&mut self, name: String, source: Source) {
        let at = self.0.partition_point(|(known, _)| *known < name);
        self.0.insert(at, (name, source));
    }
}

/// Registers `ratewatch_web_tls_handshake_failures_total`, with every reason at zero.
fn tls_handshake_failures(families: &mut Families) -> Result<IntCounterVec, MetricsError> {
    let failures = IntCounterVec::new(
        Opts::new(
            "ratewatch_web_tls_handshake_failures_total",
            "TLS connections to the web server closed before a finished handshake, by reason.",
        ),
        &["reason"],
    )?;
    families.register(Box::new(failures.clone()))?;
    for reason in TLS_FAILURE_REASONS {
        failures.with_label_values(&[reason]);
    }
    Ok(failures)
}

/// Registers `ratewatch_web_scrapes_rejected_total`.
fn scrapes_rejected(families: &mut Families) -> Result<IntCounter, MetricsError> {
    let rejected = IntCounter::new(
        "ratewatch_web_scrapes_rejected_total",
        "Requests for /metrics answered 503 because --web.max-requests scrapes were in progress.",
    )?;
    families.register(Box::new(rejected.clone()))?;
    Ok(rejected)
}

/// Every metric family, and the registries that serve them.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
    /// The chunk buffers that scrapes reuse.
    pool: Arc<scrape::ChunkPool>,
    /// The series of every endpoint.
    store: Arc<Store>,
    /// 1 after a successful config load or reload, 0 after a failed reload.
    pub reload_successful: IntGauge,
    /// Unix time of the last successful config load or reload.
    pub reload_timestamp: Gauge,
    /// 1 when the daemon is ready to probe.
    pub ready: IntGauge,
    /// TLS connections to the web server closed before a finished handshake, by reason: one
    /// of [`TLS_FAILURE_REASONS`].
    pub tls_handshake_failures: IntCounterVec,
    /// Requests for `/metrics` rejected because the most scrapes allowed at once were in
    /// progress.
    pub scrapes_rejected: IntCounter,
}

/// The `reason` label values of `ratewatch_web_tls_handshake_failures_total`: too many
/// handshakes in progress from the source address or in total, a handshake that did not finish
/// within its timeout, and one that failed.
pub const TLS_FAILURE_REASONS: [&str; 4] = ["source_limit", "total_limit", "timeout", "error"];

impl Metrics {
    /// Creates every metric family: the families of the compact series, and each other family
    /// on a new registry of its own.
    pub fn new() -> Result<Metrics, MetricsError> {
        let mut r = Families::default();
        let store = Arc::new(Store::default());
        for family in Family::ALL {
            r.register_compact(family)?;
        }
        let reload_successful = IntGauge::new(
            "ratewatch_config_last_reload_successful",
            "Whether the last config load or reload succeeded (1) or failed (0).",
        )?;
        let reload_timestamp = Gauge::new(
            "ratewatch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load or reload.",
        )?;
        let ready = IntGauge::new(
            "ratewatch_ready",
            "Whether the daemon is ready to probe (1) or not (0).",
        )?;
        r.register(Box::new(reload_successful.clone()))?;
        r.register(Box::new(reload_timestamp.clone()))?;
        r.register(Box::new(ready.clone()))?;
        let tls_handshake_failures = tls_handshake_failures(&mut r)?;
        let scrapes_rejected = scrapes_rejected(&mut r)?;

        let build = IntGaugeVec::new(
            Opts::new("ratewatch_build_info", "Build information; always 1."),
            &["version", "revision"],
        )?;
        r.register(Box::new(build.clone()))?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);

        Ok(Metrics {
            families: Arc::new(r),
            pool: Arc::default(),
            store,
            reload_successful,
            reload_timestamp,
            ready,
            tls_handshake_failures,
            scrapes_rejected,
        })
    }

    /// Starts a scrape of every metric in the Prometheus text format, written in chunks of
    /// about 1 MiB.
    #[must_use]
    pub fn scrape(&self) -> Scrape {
        Scrape::new(self.clone(), scrape::CHUNK_SIZE)
    }

    /// Starts a scrape written in chunks of about `chunk_size` bytes.
    #[cfg(test)]
    pub(crate) fn scrape_in_chunks(&self, chunk_size: usize) -> Scrape {
        Scrape::new(self.clone(), chunk_size)
    }

    /// Returns the number of chunk buffers that scrapes have taken and not yet returned: those
    /// being written, queued or sent.
    #[cfg(test)]
    pub(crate) fn chunk_buffers_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Encodes every metric in the Prometheus text format into one buffer, and returns it
    /// with its content type. The web server streams [`Metrics::scrape`] instead.
    #[must_use]
    pub fn encode(&self) -> (String, Vec<u8>) {
        let mut scrape = self.scrape();
        let mut chunks = Vec::new();
        loop {
            let next = scrape.next_chunks();
            if next.is_empty() {
                break;
            }
            chunks.extend(next);
        }
        let text: Vec<&[u8]> = chunks.iter().map(AsRef::as_ref).collect();
        (CONTENT_TYPE.to_owned(), text.concat())
    }

    /// Returns the handles of one endpoint and sets its static series. An endpoint that
    /// already has series keeps them: every handle of it writes to the same series.
    #[must_use]
    pub fn endpoint(&self, endpoint: &Endpoint) -> EndpointMetrics {
        let series = self.store.get_or_create(&endpoint.api, &endpoint.name);
        // Only an endpoint that reads a credit balance can fail to read one.
        if endpoint.credit.is_some() {
            series.create_credit_errors();
        }
        series.interval.set(endpoint.plan.interval.as_secs_f64());
        series.set_info(endpoint.method.as_str(), endpoint.expects_success());
        let windows = endpoint
            .plan
            .windows
            .iter()
            .map(|w| {
                let window = series.window(&format_window(w.limit.window));
                window
                    .rate_limit
                    .store(clamp_i64(w.limit.limit), Ordering::Relaxed);
                window.budget.store(clamp_i64(w.budget), Ordering::Relaxed);
                window
            })
            .collect();
        EndpointMetrics {
            ready: self.ready.clone(),
            series,
            budget_used: windows,
        }
    }

    /// Removes the series that describe an endpoint's plan, before the changed `endpoint` sets
    /// them again. Its counters are kept, except the credit series when it no longer reads a
    /// credit balance.
    pub fn reset_static(&self, endpoint: &Endpoint) {
        let Some(series) = self.store.get(&endpoint.api, &endpoint.name) else {
            return;
        };
        series.remove_static();
        if endpoint.credit.is_none() {
            series.remove_credit();
        }
    }

    /// Removes every series of an endpoint that is no longer configured. Handles of it that
    /// are still held keep working but no longer show in a scrape.
    pub fn remove_endpoint(&self, api: &str, endpoint: &str) {
        self.store.remove(api, endpoint);
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Returns a wall-clock time as Unix seconds.
#[must_use]
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// The last result of an endpoint as saved across restarts, for [`EndpointMetrics::restore`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LastResult {
    /// Whether the last probe matched `expect`.
    pub success: Option<bool>,
    /// The status code of the last response; `None` after a transport failure.
    pub status_code: Option<u16>,
    /// Unix time of the last probe sent, in seconds.
    pub last_run: Option<f64>,
    /// Unix time of the last probe that matched `expect`, in seconds.
    pub last_success: Option<f64>,
    /// The last credit balance read.
    pub credit: Option<f64>,
    /// Unix time at which `credit` was read, in seconds.
    pub credit_updated: Option<f64>,
}

/// The metric handles of one endpoint, resolved once so a probe does no label lookups.
#[derive(Clone)]
pub struct EndpointMetrics {
    ready: IntGauge,
    series: Arc<Series>,
    /// The used-requests gauges of the plan's windows, in the plan's order.
    budget_used: Vec<Arc<WindowSeries>>,
}

impl EndpointMetrics {
    /// Counts a request sent at `at`.
    pub fn sent(&self, at: SystemTime) {
        self.series.probes.fetch_add(1, Ordering::Relaxed);
        self.series.last_run.set(unix_seconds(at));
    }

    /// Records the result of one probe.
    pub fn result(
        &self,
        class: Class,
        status: Option<u16>,
        success: bool,
        duration: Duration,
        finished: SystemTime,
    ) {
        let s = &self.series;
        bump(&s.results, Class::ALL.iter().position(|c| *c == class), 1);
        s.success.set(f64::from(u8::from(success)));
        match status {
            Some(code) => {
                s.response(code);
                s.status_code.set(f64::from(code));
            }
            None => s.status_code.remove(),
        }
        if success {
            s.successes.fetch_add(1, Ordering::Relaxed);
            s.last_success.set(unix_seconds(finished));
        }
        s.duration.observe(duration.as_secs_f64());
    }

    /// Sets the last-result series from a result saved before a restart, or judged again by a
    /// reload: the last run and last success times, whether it matched `expect`, its status
    /// code and the last credit balance. A missing last success sets 0, as for an endpoint
    /// that never succeeded; any other field that is missing leaves its series as it is.
    pub fn restore(&self, last: &LastResult) {
        let s = &self.series;
        if let Some(at) = last.last_run {
            s.last_run.set(at);
        }
        // No success is 0, as for an endpoint that never succeeded.
        s.last_success.set(last.last_success.unwrap_or(0.0));
        if let Some(success) = last.success {
            s.success.set(f64::from(u8::from(success)));
        }
        if let Some(code) = last.status_code {
            s.status_code.set(f64::from(code));
        }
        if let Some(balance) = last.credit {
            s.credit.set(balance);
        }
        if let Some(at) = last.credit_updated {
            s.credit_updated.set(at);
        }
    }

    /// Sets whether the daemon is ready: false while the shared budget store is unreachable.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Counts scheduled probes that were not sent.
    pub fn skipped(&self, reason: SkipReason, count: u64) {
        let index = SkipReason::ALL.iter().position(|r| *r == reason);
        bump(&self.series.skipped, index, count);
    }

    /// Sets the time of the next scheduled slot.
    pub fn next_run(&self, at: SystemTime) {
        self.series.next_run.set(unix_seconds(at));
    }

    /// Sets the requests used in each window, in the order of the plan's windows.
    pub fn budget_used(&self, used: &[u64]) {
        for (window, &count) in self.budget_used.iter().zip(used) {
            window.used.store(clamp_i64(count), Ordering::Relaxed);
        }
    }

    /// Sets the slot at which a held-back endpoint probes again, or 0 when it is not held back.
    pub fn paused_until(&self, until: Option<SystemTime>) {
        self.series
            .paused_until
            .set(until.map_or(0.0, unix_seconds));
    }

    /// Counts a `Retry-After` header by its form.
    pub fn retry_after(&self, form: RetryAfterForm) {
        let index = RetryAfterForm::ALL.iter().position(|f| *f == form);
        bump(&self.series.retry_after, index, 1);
    }

    /// Counts a 429 that the budget should have prevented.
    pub fn unexpected_rate_limited(&self) {
        self.series.unexpected_429.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the upstream quota of one policy as the API reports it.
    pub fn upstream(
        &self,
        policy: &str,
        limit: Option<u64>,
        remaining: Option<u64>,
        reset: Option<SystemTime>,
    ) {
        let update = Upstream {
            limit: limit.map(|limit| limit as f64),
            remaining: remaining.map(|remaining| remaining as f64),
            reset: reset.map(unix_seconds),
        };
        if update.limit.is_some() || update.remaining.is_some() || update.reset.is_some() {
            self.series.upstream(policy, update);
        }
    }

    /// Counts a header that could not be used. `reason` is one of [`HeaderError::REASONS`];
    /// any other value is logged and not counted.
    pub fn header_error(&self, reason: &'static str) {
        let index = HeaderError::REASONS.iter().position(|r| *r == reason);
        if !bump(&self.series.header_errors, index, 1) {
            tracing::error!(
                reason,
                "header error not counted: its reason is missing from HeaderError::REASONS, add it there"
            );
        }
    }

    /// Sets the credit balance after a successful extraction.
    pub fn credit(&self, balance: f64, at: SystemTime) {
        self.series.credit.set(balance);
        self.series.credit_updated.set(unix_seconds(at));
    }

    /// Counts a failed credit extraction; the balance keeps its last good value. `reason` is
    /// one of [`CreditError::REASONS`]; any other value is logged and not counted.
    pub fn credit_error(&self, reason: &'static str) {
        let index = CreditError::REASONS.iter().position(|r| *r == reason);
        if !self.series.credit_error(index) {
            tracing::error!(
                reason,
                "credit error not counted: its reason is missing from CreditError::REASONS, add it there"
            );
        }
    }
}

#[cfg(test)]
mod tests;
