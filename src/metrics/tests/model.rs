//! The metrics as they were built on the `prometheus` crate's labelled families, kept as the
//! model that the compact series must match in every scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, TextEncoder,
};

use crate::classify::Class;
use crate::config::Endpoint;
use crate::headroom::{CreditError, HeaderError, RetryAfterForm};
use crate::ratelimit::format_window;

use crate::metrics::{Families, LastResult, MetricsError, SkipReason, Source, unix_seconds};

/// Every metric family, and the registries that serve them.
#[derive(Clone)]
pub(super) struct Metrics {
    families: Arc<Families>,
    /// The size of the last encoding, to reserve the next one's buffer at once.
    last_size: Arc<AtomicUsize>,
    probes: IntCounterVec,
    results: IntCounterVec,
    successes: IntCounterVec,
    responses: IntCounterVec,
    success: IntGaugeVec,
    status_code: IntGaugeVec,
    duration: HistogramVec,
    last_run: GaugeVec,
    last_success: GaugeVec,
    next_run: GaugeVec,
    interval: GaugeVec,
    info: IntGaugeVec,
    rate_limit: IntGaugeVec,
    budget: IntGaugeVec,
    budget_used: IntGaugeVec,
    skipped: IntCounterVec,
    paused_until: GaugeVec,
    retry_after: IntCounterVec,
    unexpected_429: IntCounterVec,
    upstream_remaining: GaugeVec,
    upstream_limit: GaugeVec,
    upstream_reset: GaugeVec,
    header_errors: IntCounterVec,
    credit: GaugeVec,
    credit_updated: GaugeVec,
    credit_errors: IntCounterVec,
    /// 1 when the daemon is ready to probe.
    pub(super) ready: IntGauge,
}

const ENDPOINT: &[&str] = &["api", "endpoint"];

fn counter(
    registry: &mut Families,
    name: &str,
    help: &str,
    extra: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let labels: Vec<&str> = ENDPOINT.iter().chain(extra).copied().collect();
    let metric = IntCounterVec::new(Opts::new(name, help), &labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(
    registry: &mut Families,
    name: &str,
    help: &str,
    extra: &[&str],
) -> Result<GaugeVec, MetricsError> {
    let labels: Vec<&str> = ENDPOINT.iter().chain(extra).copied().collect();
    let metric = GaugeVec::new(Opts::new(name, help), &labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn int_gauge(
    registry: &mut Families,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Histogram buckets for probe durations, in seconds: from a fast loopback response to the
/// longest sensible timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

impl Metrics {
    /// Creates every metric family, each on a new registry of its own.
    #[allow(
        clippy::too_many_lines,
        reason = "one statement per metric family reads best"
    )]
    pub(super) fn new() -> Result<Metrics, MetricsError> {
        let mut r = Families::default();
        let endpoint_window: Vec<&str> = vec!["api", "endpoint", "window"];
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "ratewatch_probe_duration_seconds",
                "Duration of whole probes, from sending the request to the end of the body.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            ENDPOINT,
        )?;
        r.register(Box::new(duration.clone()))?;
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
        crate::metrics::tls_handshake_failures(&mut r)?;
        crate::metrics::scrapes_rejected(&mut r)?;

        let build = int_gauge(
            &mut r,
            "ratewatch_build_info",
            "Build information; always 1.",
            &["version", "revision"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);

        Ok(Metrics {
            probes: counter(&mut r, "ratewatch_probes_total", "Requests sent.", &[])?,
            results: counter(
                &mut r,
                "ratewatch_probe_results_total",
                "Probe results by class.",
                &["class"],
            )?,
            successes: counter(
                &mut r,
                "ratewatch_probe_successes_total",
                "Probes whose result matched the expected status codes.",
                &[],
            )?,
            responses: counter(
                &mut r,
                "ratewatch_probe_http_responses_total",
                "HTTP responses by status code.",
                &["code"],
            )?,
            success: int_gauge(
                &mut r,
                "ratewatch_probe_success",
                "Whether the last probe matched the expected status codes (1) or not (0).",
                ENDPOINT,
            )?,
            status_code: int_gauge(
                &mut r,
                "ratewatch_probe_http_status_code",
                "Status code of the last response; absent when the last probe got none.",
                ENDPOINT,
            )?,
            duration,
            last_run: gauge(
                &mut r,
                "ratewatch_probe_last_run_timestamp_seconds",
                "Unix time of the last probe sent.",
                &[],
            )?,
            last_success: gauge(
                &mut r,
                "ratewatch_probe_last_success_timestamp_seconds",
                "Unix time of the last probe that matched the expected status codes.",
                &[],
            )?,
            next_run: gauge(
                &mut r,
                "ratewatch_probe_next_run_timestamp_seconds",
                "Unix time of the next scheduled probe slot.",
                &[],
            )?,
            interval: gauge(
                &mut r,
                "ratewatch_probe_interval_seconds",
                "Planned time between two probes.",
                &[],
            )?,
            info: int_gauge(
                &mut r,
                "ratewatch_endpoint_info",
                "Static endpoint information; always 1.",
                &["api", "endpoint", "method", "expects_success"],
            )?,
            rate_limit: int_gauge(
                &mut r,
                "ratewatch_rate_limit_requests",
                "Documented rate limit per window.",
                &endpoint_window,
            )?,
            budget: int_gauge(
                &mut r,
                "ratewatch_probe_budget_requests",
                "Probes the monitor may send per window: its share of the documented limit.",
                &endpoint_window,
            )?,
            budget_used: int_gauge(
                &mut r,
                "ratewatch_probe_budget_used_requests",
                "Probes sent in the current sliding window.",
                &endpoint_window,
            )?,
            skipped: counter(
                &mut r,
                "ratewatch_probes_skipped_total",
                "Scheduled probes not sent, by reason.",
                &["reason"],
            )?,
            paused_until: gauge(
                &mut r,
                "ratewatch_paused_until_timestamp_seconds",
                "Unix time of the slot at which an endpoint held back by Retry-After or by the quota the API reports probes again; 0 when not held back.",
                &[],
            )?,
            retry_after: counter(
                &mut r,
                "ratewatch_retry_after_total",
                "Retry-After headers received, by form.",
                &["form"],
            )?,
            unexpected_429: counter(
                &mut r,
                "ratewatch_rate_limited_unexpected_total",
                "429 answers received although the probe budget should prevent them: the real quota and the budget disagree.",
                &[],
            )?,
            upstream_remaining: gauge(
                &mut r,
                "ratewatch_upstream_rate_limit_remaining",
                "Requests remaining as the API reports them.",
                &["policy"],
            )?,
            upstream_limit: gauge(
                &mut r,
                "ratewatch_upstream_rate_limit_limit",
                "Request limit as the API reports it.",
                &["policy"],
            )?,
            upstream_reset: gauge(
                &mut r,
                "ratewatch_upstream_rate_limit_reset_timestamp_seconds",
                "Unix time at which the API says its window resets.",
                &["policy"],
            )?,
            header_errors: counter(
                &mut r,
                "ratewatch_header_parse_errors_total",
                "Rate-limit and Retry-After headers that could not be used, by reason.",
                &["reason"],
            )?,
            credit: gauge(
                &mut r,
                "ratewatch_credit_balance",
                "Credit balance read from the response body.",
                &[],
            )?,
            credit_updated: gauge(
                &mut r,
                "ratewatch_credit_last_update_timestamp_seconds",
                "Unix time of the last successful credit extraction.",
                &[],
            )?,
            credit_errors: counter(
                &mut r,
                "ratewatch_credit_extraction_errors_total",
                "Credit extractions that failed, by reason.",
                &["reason"],
            )?,
            ready,
            families: Arc::new(r),
            last_size: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Encodes every metric in the Prometheus text format.
    #[must_use]
    pub(super) fn encode(&self) -> (String, Vec<u8>) {
        let encoder = TextEncoder::new();
        let last = self.last_size.load(Ordering::Relaxed);
        let mut buffer = Vec::with_capacity(last + last / 8);
        for (name, source) in &self.families.0 {
            // The model registers every family on a registry of its own.
            let Source::Registry(registry) = source else {
                unreachable!("the model has no compact family")
            };
            // Encoding into a Vec cannot fail on I/O, and every family has valid names by
            // construction, so an error here would be a bug in this module.
            if let Err(e) = encoder.encode(&registry.gather(), &mut buffer) {
                tracing::error!(family = %name, error = %e, "cannot encode metrics");
            }
        }
        self.last_size.store(buffer.len(), Ordering::Relaxed);
        (encoder.format_type().to_owned(), buffer)
    }

    /// Returns the handles of one endpoint and sets its static series.
    #[must_use]
    pub(super) fn endpoint(&self, endpoint: &Endpoint) -> EndpointMetrics {
        let labels = [endpoint.api.as_str(), endpoint.name.as_str()];
        for class in Class::ALL {
            self.results
                .with_label_values(&[labels[0], labels[1], class.as_str()]);
        }
        for reason in SkipReason::ALL {
            self.skipped
                .with_label_values(&[labels[0], labels[1], reason.as_str()]);
        }
        for reason in HeaderError::REASONS {
            self.header_errors
                .with_label_values(&[labels[0], labels[1], reason]);
        }
        // Only an endpoint that reads a credit balance can fail to read one.
        if endpoint.credit.is_some() {
            for reason in CreditError::REASONS {
                self.credit_errors
                    .with_label_values(&[labels[0], labels[1], reason]);
            }
        }
        for form in RetryAfterForm::ALL {
            self.retry_after
                .with_label_values(&[labels[0], labels[1], form.as_str()]);
        }
        self.unexpected_429.with_label_values(&labels);
        self.interval
            .with_label_values(&labels)
            .set(endpoint.plan.interval.as_secs_f64());
        let expects = if endpoint.expects_success() {
            "true"
        } else {
            "false"
        };
        self.info
            .with_label_values(&[labels[0], labels[1], endpoint.method.as_str(), expects])
            .set(1);
        let mut windows = Vec::new();
        for w in &endpoint.plan.windows {
            let window = format_window(w.limit.window);
            let l = [labels[0], labels[1], window.as_str()];
            self.rate_limit
                .with_label_values(&l)
                .set(clamp_i64(w.limit.limit));
            self.budget.with_label_values(&l).set(clamp_i64(w.budget));
            windows.push(self.budget_used.with_label_values(&l));
        }
        EndpointMetrics {
            metrics: self.clone(),
            api: endpoint.api.clone(),
            endpoint: endpoint.name.clone(),
            probes: self.probes.with_label_values(&labels),
            successes: self.successes.with_label_values(&labels),
            duration: self.duration.with_label_values(&labels),
            last_run: self.last_run.with_label_values(&labels),
            last_success: self.last_success.with_label_values(&labels),
            next_run: self.next_run.with_label_values(&labels),
            paused_until: self.paused_until.with_label_values(&labels),
            budget_used: windows,
        }
    }

    /// Removes the series that describe an endpoint's plan, before the changed `endpoint` sets
    /// them again. Its counters are kept, except the credit series when it no longer reads a
    /// credit balance.
    pub(super) fn reset_static(&self, endpoint: &Endpoint) {
        let (api, name) = (endpoint.api.as_str(), endpoint.name.as_str());
        let families: [&dyn RemoveMatching; 5] = [
            &self.interval,
            &self.info,
            &self.rate_limit,
            &self.budget,
            &self.budget_used,
        ];
        for family in families {
            family.remove_matching(api, name);
        }
        if endpoint.credit.is_none() {
            let credit: [&dyn RemoveMatching; 3] =
                [&self.credit, &self.credit_updated, &self.credit_errors];
            for family in credit {
                family.remove_matching(api, name);
            }
        }
    }

    /// Removes every series of an endpoint that is no longer configured.
    pub(super) fn remove_endpoint(&self, api: &str, endpoint: &str) {
        let families: [&dyn RemoveMatching; 26] = [
            &self.probes,
            &self.results,
            &self.successes,
            &self.responses,
            &self.success,
            &self.status_code,
            &self.duration,
            &self.last_run,
            &self.last_success,
            &self.next_run,
            &self.interval,
            &self.info,
            &self.rate_limit,
            &self.budget,
            &self.budget_used,
            &self.skipped,
            &self.paused_until,
            &self.retry_after,
            &self.unexpected_429,
            &self.upstream_remaining,
            &self.upstream_limit,
            &self.upstream_reset,
            &self.header_errors,
            &self.credit,
            &self.credit_updated,
            &self.credit_errors,
        ];
        for family in families {
            family.remove_matching(api, endpoint);
        }
    }
}

/// Removal of every series of one endpoint from a labelled family.
trait RemoveMatching {
    fn remove_matching(&self, api: &str, endpoint: &str);
}

impl<T: prometheus::core::MetricVecBuilder> RemoveMatching for prometheus::core::MetricVec<T> {
    fn remove_matching(&self, api: &str, endpoint: &str) {
        use prometheus::core::Collector;
        let Some(names) = self.desc().first().map(|d| d.variable_labels.clone()) else {
            return;
        };
        for family in self.collect() {
            for metric in family.get_metric() {
                let pairs: std::collections::HashMap<&str, &str> = metric
                    .get_label()
                    .iter()
                    .map(|p| (p.name(), p.value()))
                    .collect();
                if pairs.get("api") != Some(&api) || pairs.get("endpoint") != Some(&endpoint) {
                    continue;
                }
                let values: Vec<&str> = names
                    .iter()
                    .map(|n| pairs.get(n.as_str()).copied().unwrap_or(""))
                    .collect();
                // The series was just listed, so removal can only fail on a concurrent
                // removal, which leaves the same result.
                let _ = self.remove_label_values(&values);
            }
        }
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The metric handles of one endpoint, resolved once so a probe does no label lookups for the
/// hot series.
#[derive(Clone)]
pub(super) struct EndpointMetrics {
    metrics: Metrics,
    api: String,
    endpoint: String,
    probes: IntCounter,
    successes: IntCounter,
    duration: Histogram,
    last_run: prometheus::Gauge,
    last_success: prometheus::Gauge,
    next_run: prometheus::Gauge,
    paused_until: prometheus::Gauge,
    budget_used: Vec<IntGauge>,
}

impl EndpointMetrics {
    fn labels(&self) -> [&str; 2] {
        [self.api.as_str(), self.endpoint.as_str()]
    }

    /// Counts a request sent at `at`.
    pub(super) fn sent(&self, at: SystemTime) {
        self.probes.inc();
        self.last_run.set(unix_seconds(at));
    }

    /// Records the result of one probe.
    pub(super) fn result(
        &self,
        class: Class,
        status: Option<u16>,
        success: bool,
        duration: Duration,
        finished: SystemTime,
    ) {
        let [api, endpoint] = self.labels();
        let m = &self.metrics;
        m.results
            .with_label_values(&[api, endpoint, class.as_str()])
            .inc();
        m.success
            .with_label_values(&[api, endpoint])
            .set(i64::from(success));
        match status {
            Some(code) => {
                let code_text = code.to_string();
                m.responses
                    .with_label_values(&[api, endpoint, &code_text])
                    .inc();
                m.status_code
                    .with_label_values(&[api, endpoint])
                    .set(i64::from(code));
            }
            None => {
                let _ = m.status_code.remove_label_values(&[api, endpoint]);
            }
        }
        if success {
            self.successes.inc();
            self.last_success.set(unix_seconds(finished));
        }
        self.duration.observe(duration.as_secs_f64());
    }

    /// Sets the last-result series from a result saved before a restart: the last run and
    /// last success times, whether it matched `expect`, and its status code. A field that was
    /// not saved leaves its series as it is.
    pub(super) fn restore(&self, last: &LastResult) {
        let [api, endpoint] = self.labels();
        let m = &self.metrics;
        if let Some(at) = last.last_run {
            self.last_run.set(at);
        }
        self.last_success.set(last.last_success.unwrap_or(0.0));
        if let Some(success) = last.success {
            m.success
                .with_label_values(&[api, endpoint])
                .set(i64::from(success));
        }
        if let Some(code) = last.status_code {
            m.status_code
                .with_label_values(&[api, endpoint])
                .set(i64::from(code));
        }
        if let Some(balance) = last.credit {
            m.credit.with_label_values(&[api, endpoint]).set(balance);
        }
        if let Some(at) = last.credit_updated {
            m.credit_updated.with_label_values(&[api, endpoint]).set(at);
        }
    }

    /// Sets whether the daemon is ready: false while the shared budget store is unreachable.
    pub(super) fn set_ready(&self, ready: bool) {
        self.metrics.ready.set(i64::from(ready));
    }

    /// Counts scheduled probes that were not sent.
    pub(super) fn skipped(&self, reason: SkipReason, count: u64) {
        let [api, endpoint] = self.labels();
        self.metrics
            .skipped
            .with_label_values(&[api, endpoint, reason.as_str()])
            .inc_by(count);
    }

    /// Sets the time of the next scheduled slot.
    pub(super) fn next_run(&self, at: SystemTime) {
        self.next_run.set(unix_seconds(at));
    }

    /// Sets the requests used in each window, in the order of the plan's windows.
    pub(super) fn budget_used(&self, used: &[u64]) {
        for (gauge, &count) in self.budget_used.iter().zip(used) {
            gauge.set(clamp_i64(count));
        }
    }

    /// Sets the slot at which a held-back endpoint probes again, or 0 when it is not held back.
    pub(super) fn paused_until(&self, until: Option<SystemTime>) {
        self.paused_until.set(until.map_or(0.0, unix_seconds));
    }

    /// Counts a `Retry-After` header by its form.
    pub(super) fn retry_after(&self, form: RetryAfterForm) {
        let [api, endpoint] = self.labels();
        self.metrics
            .retry_after
            .with_label_values(&[api, endpoint, form.as_str()])
            .inc();
    }

    /// Counts a 429 that the budget should have prevented.
    pub(super) fn unexpected_rate_limited(&self) {
        let [api, endpoint] = self.labels();
        self.metrics
            .unexpected_429
            .with_label_values(&[api, endpoint])
            .inc();
    }

    /// Sets the upstream quota of one policy as the API reports it.
    pub(super) fn upstream(
        &self,
        policy: &str,
        limit: Option<u64>,
        remaining: Option<u64>,
        reset: Option<SystemTime>,
    ) {
        let [api, endpoint] = self.labels();
        let labels = [api, endpoint, policy];
        let m = &self.metrics;
        if let Some(limit) = limit {
            m.upstream_limit
                .with_label_values(&labels)
                .set(limit as f64);
        }
        if let Some(remaining) = remaining {
            m.upstream_remaining
                .with_label_values(&labels)
                .set(remaining as f64);
        }
        if let Some(reset) = reset {
            m.upstream_reset
                .with_label_values(&labels)
                .set(unix_seconds(reset));
        }
    }

    /// Counts a header that could not be used.
    pub(super) fn header_error(&self, reason: &'static str) {
        let [api, endpoint] = self.labels();
        self.metrics
            .header_errors
            .with_label_values(&[api, endpoint, reason])
            .inc();
    }

    /// Sets the credit balance after a successful extraction.
    pub(super) fn credit(&self, balance: f64, at: SystemTime) {
        let [api, endpoint] = self.labels();
        self.metrics
            .credit
            .with_label_values(&[api, endpoint])
            .set(balance);
        self.metrics
            .credit_updated
            .with_label_values(&[api, endpoint])
            .set(unix_seconds(at));
    }

    /// Counts a failed credit extraction; the balance keeps its last good value.
    pub(super) fn credit_error(&self, reason: &'static str) {
        let [api, endpoint] = self.labels();
        self.metrics
            .credit_errors
            .with_label_values(&[api, endpoint, reason])
            .inc();
    }
}
