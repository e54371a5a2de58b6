//! Compact storage of the per-endpoint series, and the collectors that expose it.
//!
//! Each endpoint holds one [`Series`]: its label values once, plain atomics for the series
//! whose labels come from bounded enums, and small locked lists for the open-ended labels
//! (`code`, `policy`, `window`, and the `method` of the info series). A [`FamilyCollector`]
//! builds the protobuf of one metric family only while a scrape collects it, and
//! `Registry::gather` sorts its series by label values.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricType;
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily};

use crate::classify::Class;
use crate::headroom::{CreditError, HeaderError, RetryAfterForm};

use super::SkipReason;

/// Histogram buckets for probe durations, in seconds: from a fast loopback response to the
/// longest sensible timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Locks a mutex, going on with the data of a thread that panicked while holding it: every
/// value behind these locks is valid after any partial update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `f64` in an atomic, as its bits.
#[derive(Default)]
pub(super) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(super) fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn add(&self, value: f64) {
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

/// A gauge that may be absent, stored as `f64` bits. [`Slot::ABSENT`] marks a series that
/// does not exist.
pub(super) struct Slot(AtomicU64);

impl Slot {
    /// A NaN payload that [`Slot::set`] never stores: it stores every NaN as `f64::NAN`.
    const ABSENT: u64 = u64::MAX;

    pub(super) const fn absent() -> Slot {
        Slot(AtomicU64::new(Slot::ABSENT))
    }

    pub(super) fn set(&self, value: f64) {
        let value = if value.is_nan() { f64::NAN } else { value };
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub(super) fn remove(&self) {
        self.0.store(Slot::ABSENT, Ordering::Relaxed);
    }

    fn get(&self) -> Option<f64> {
        let bits = self.0.load(Ordering::Relaxed);
        (bits != Slot::ABSENT).then(|| f64::from_bits(bits))
    }
}

/// Bucket counts, sum and count of the probe duration histogram of one endpoint.
#[derive(Default)]
pub(super) struct DurationHistogram {
    /// Observations per bucket, not cumulative: index `i` counts values above bucket `i - 1`
    /// and at most bucket `i`.
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    sum: AtomicF64,
    count: AtomicU64,
}

impl DurationHistogram {
    pub(super) fn observe(&self, value: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| value <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(value);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn proto(&self) -> Histogram {
        let mut histogram = Histogram::default();
        let mut cumulative = 0;
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                let mut bucket = Bucket::default();
                bucket.set_cumulative_count(cumulative);
                bucket.set_upper_bound(*bound);
                bucket
            })
            .collect();
        histogram.set_bucket(buckets);
        histogram.set_sample_sum(self.sum.get());
        // Never below the last bucket, even while an observation is half recorded.
        histogram.set_sample_count(self.count.load(Ordering::Relaxed).max(cumulative));
        histogram
    }
}

/// The gauges of one window of an endpoint's plan.
#[derive(Default)]
pub(super) struct WindowSeries {
    pub(super) rate_limit: AtomicI64,
    pub(super) budget: AtomicI64,
    pub(super) used: AtomicI64,
}

/// The upstream quota of one policy as the API reports it. Each field is its own series.
#[derive(Clone, Copy, Default)]
pub(super) struct Upstream {
    pub(super) limit: Option<f64>,
    pub(super) remaining: Option<f64>,
    pub(super) reset: Option<f64>,
}

/// Adds `by` to the counter at `index` of `counters`. Returns false, counting nothing, when
/// `index` is `None` or out of range.
pub(super) fn bump(counters: &[AtomicU64], index: Option<usize>, by: u64) -> bool {
    match index.and_then(|i| counters.get(i)) {
        Some(counter) => {
            counter.fetch_add(by, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Every series of one endpoint.
pub(super) struct Series {
    pub(super) api: Arc<str>,
    pub(super) endpoint: Arc<str>,
    pub(super) probes: AtomicU64,
    pub(super) successes: AtomicU64,
    pub(super) unexpected_429: AtomicU64,
    /// Indexed like [`Class::ALL`].
    pub(super) results: [AtomicU64; Class::ALL.len()],
    /// Indexed like [`SkipReason::ALL`].
    pub(super) skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Indexed like [`RetryAfterForm::ALL`].
    pub(super) retry_after: [AtomicU64; RetryAfterForm::ALL.len()],
    /// Indexed like [`HeaderError::REASONS`].
    pub(super) header_errors: [AtomicU64; HeaderError::REASONS.len()],
    /// Indexed like [`CreditError::REASONS`].
    pub(super) credit_errors: [AtomicU64; CreditError::REASONS.len()],
    /// Bit `i` is set while the series of `CreditError::REASONS[i]` exists.
    pub(super) credit_errors_present: AtomicU16,
    pub(super) success: Slot,
    pub(super) status_code: Slot,
    pub(super) interval: Slot,
    pub(super) credit: Slot,
    pub(super) credit_updated: Slot,
    pub(super) last_run: AtomicF64,
    pub(super) last_success: AtomicF64,
    pub(super) next_run: AtomicF64,
    pub(super) paused_until: AtomicF64,
    pub(super) duration: DurationHistogram,
    /// Responses by status code.
    pub(super) responses: Mutex<Vec<(u16, u64)>>,
    /// Upstream quotas by policy name.
    pub(super) upstream: Mutex<Vec<(Box<str>, Upstream)>>,
    /// The plan's windows by label. A window's three gauges exist while it is listed.
    pub(super) windows: Mutex<Vec<(Box<str>, Arc<WindowSeries>)>>,
    /// The `method` and `expects_success` label values of the info series.
    pub(super) info: Mutex<Vec<(Box<str>, bool)>>,
}

impl Series {
    fn new(api: Arc<str>, endpoint: Arc<str>) -> Series {
        Series {
            api,
            endpoint,
            probes: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            unexpected_429: AtomicU64::new(0),
            results: Default::default(),
            skipped: Default::default(),
            retry_after: Default::default(),
            header_errors: Default::default(),
            credit_errors: Default::default(),
            credit_errors_present: AtomicU16::new(0),
            success: Slot::absent(),
            status_code: Slot::absent(),
            interval: Slot::absent(),
            credit: Slot::absent(),
            credit_updated: Slot::absent(),
            last_run: AtomicF64::default(),
            last_success: AtomicF64::default(),
            next_run: AtomicF64::default(),
            paused_until: AtomicF64::default(),
            duration: DurationHistogram::default(),
            responses: Mutex::default(),
            upstream: Mutex::default(),
            windows: Mutex::default(),
            info: Mutex::default(),
        }
    }

    /// Returns the gauges of a window, creating them at zero.
    pub(super) fn window(&self, label: &str) -> Arc<WindowSeries> {
        let mut windows = lock(&self.windows);
        if let Some((_, window)) = windows.iter().find(|(known, _)| **known == *label) {
            return window.clone();
        }
        let window = Arc::new(WindowSeries::default());
        windows.push((label.into(), window.clone()));
        window
    }

    /// Creates the info series with these `method` and `expects_success` labels, unless it
    /// exists.
    pub(super) fn set_info(&self, method: &str, expects_success: bool) {
        let mut info = lock(&self.info);
        if !info
            .iter()
            .any(|(known, expects)| **known == *method && *expects == expects_success)
        {
            info.push((method.into(), expects_success));
        }
    }

    /// Counts a response with status code `code`.
    pub(super) fn response(&self, code: u16) {
        let mut responses = lock(&self.responses);
        match responses.iter_mut().find(|(known, _)| *known == code) {
            Some((_, count)) => *count += 1,
            None => responses.push((code, 1)),
        }
    }

    /// Sets the fields of `update` that are known on the quota of `policy`, creating it.
    pub(super) fn upstream(&self, policy: &str, update: Upstream) {
        let mut upstream = lock(&self.upstream);
        let at = if let Some(at) = upstream.iter().position(|(known, _)| **known == *policy) {
            at
        } else {
            upstream.push((policy.into(), Upstream::default()));
            upstream.len() - 1
        };
        let entry = &mut upstream[at].1;
        entry.limit = update.limit.or(entry.limit);
        entry.remaining = update.remaining.or(entry.remaining);
        entry.reset = update.reset.or(entry.reset);
    }

    /// Creates every credit error series at zero, keeping the ones that exist.
    pub(super) fn create_credit_errors(&self) {
        let all = (1u16 << CreditError::REASONS.len()) - 1;
        self.credit_errors_present.fetch_or(all, Ordering::Relaxed);
    }

    /// Removes every series of the plan: the interval, the info and the windows.
    pub(super) fn remove_static(&self) {
        self.interval.remove();
        lock(&self.info).clear();
        lock(&self.windows).clear();
    }

    /// Removes the credit balance, its update time and the credit error series.
    pub(super) fn remove_credit(&self) {
        self.credit.remove();
        self.credit_updated.remove();
        self.credit_errors_present.store(0, Ordering::Relaxed);
        for counter in &self.credit_errors {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a credit error and creates its series if it was absent.
    pub(super) fn credit_error(&self, index: Option<usize>) -> bool {
        let Some(i) = index.filter(|i| *i < CreditError::REASONS.len()) else {
            return false;
        };
        self.credit_errors[i].fetch_add(1, Ordering::Relaxed);
        self.credit_errors_present
            .fetch_or(1 << i, Ordering::Relaxed);
        true
    }
}

/// Every endpoint's series, by API and endpoint name.
#[derive(Default)]
pub(super) struct Store(RwLock<BTreeMap<Arc<str>, Endpoints>>);

/// The series of the endpoints of one API, by endpoint name.
type Endpoints = BTreeMap<Arc<str>, Arc<Series>>;

impl Store {
    /// Returns the series of an endpoint, creating them.
    pub(super) fn get_or_create(&self, api: &str, endpoint: &str) -> Arc<Series> {
        if let Some(series) = self.get(api, endpoint) {
            return series;
        }
        let mut apis = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Every endpoint of an API shares one copy of its name.
        let api: Arc<str> = apis
            .get_key_value(api)
            .map_or_else(|| api.into(), |(known, _)| known.clone());
        apis.entry(api.clone())
            .or_default()
            .entry(endpoint.into())
            .or_insert_with_key(|name| Arc::new(Series::new(api, name.clone())))
            .clone()
    }

    /// Returns the series of an endpoint, if it has any.
    pub(super) fn get(&self, api: &str, endpoint: &str) -> Option<Arc<Series>> {
        let apis = self.0.read().unwrap_or_else(PoisonError::into_inner);
        apis.get(api)?.get(endpoint).cloned()
    }

    /// Removes every series of an endpoint.
    pub(super) fn remove(&self, api: &str, endpoint: &str) {
        let mut apis = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(endpoints) = apis.get_mut(api) {
            endpoints.remove(endpoint);
            if endpoints.is_empty() {
                apis.remove(api);
            }
        }
    }
}

/// Every metric family with per-endpoint series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Probes,
    Results,
    Successes,
    Responses,
    Success,
    StatusCode,
    Duration,
    LastRun,
    LastSuccess,
    NextRun,
    Interval,
    Info,
    RateLimit,
    Budget,
    BudgetUsed,
    Skipped,
    PausedUntil,
    RetryAfter,
    Unexpected429,
    UpstreamRemaining,
    UpstreamLimit,
    UpstreamReset,
    HeaderErrors,
    Credit,
    CreditUpdated,
    CreditErrors,
}

/// The name, help text, type and labels after `api` and `endpoint` of a family.
struct Meta {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
}

const fn meta(
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
) -> Meta {
    Meta {
        name,
        help,
        kind,
        labels,
    }
}

impl Family {
    /// Every family, in the order they are created.
    pub(super) const ALL: [Family; 26] = [
        Family::Probes,
        Family::Results,
        Family::Successes,
        Family::Responses,
        Family::Success,
        Family::StatusCode,
        Family::Duration,
        Family::LastRun,
        Family::LastSuccess,
        Family::NextRun,
        Family::Interval,
        Family::Info,
        Family::RateLimit,
        Family::Budget,
        Family::BudgetUsed,
        Family::Skipped,
        Family::PausedUntil,
        Family::RetryAfter,
        Family::Unexpected429,
        Family::UpstreamRemaining,
        Family::UpstreamLimit,
        Family::UpstreamReset,
        Family::HeaderErrors,
        Family::Credit,
        Family::CreditUpdated,
        Family::CreditErrors,
    ];

    #[allow(
        clippy::too_many_lines,
        reason = "one arm per metric family reads best"
    )]
    const fn meta(self) -> Meta {
        use MetricType::{COUNTER, GAUGE, HISTOGRAM};
        match self {
            Family::Probes => meta("ratewatch_probes_total", "Requests sent.", COUNTER, &[]),
            Family::Results => meta(
                "ratewatch_probe_results_total",
                "Probe results by class.",
                COUNTER,
                &["class"],
            ),
            Family::Successes => meta(
                "ratewatch_probe_successes_total",
                "Probes whose result matched the expected status codes.",
                COUNTER,
                &[],
            ),
            Family::Responses => meta(
                "ratewatch_probe_http_responses_total",
                "HTTP responses by status code.",
                COUNTER,
                &["code"],
            ),
            Family::Success => meta(
                "ratewatch_probe_success",
                "Whether the last probe matched the expected status codes (1) or not (0).",
                GAUGE,
                &[],
            ),
            Family::StatusCode => meta(
                "ratewatch_probe_http_status_code",
                "Status code of the last response; absent when the last probe got none.",
                GAUGE,
                &[],
            ),
            Family::Duration => meta(
                "ratewatch_probe_duration_seconds",
                "Duration of whole probes, from sending the request to the end of the body.",
                HISTOGRAM,
                &[],
            ),
            Family::LastRun => meta(
                "ratewatch_probe_last_run_timestamp_seconds",
                "Unix time of the last probe sent.",
                GAUGE,
                &[],
            ),
            Family::LastSuccess => meta(
                "ratewatch_probe_last_success_timestamp_seconds",
                "Unix time of the last probe that matched the expected status codes.",
                GAUGE,
                &[],
            ),
            Family::NextRun => meta(
                "ratewatch_probe_next_run_timestamp_seconds",
                "Unix time of the next scheduled probe slot.",
                GAUGE,
                &[],
            ),
            Family::Interval => meta(
                "ratewatch_probe_interval_seconds",
                "Planned time between two probes.",
                GAUGE,
                &[],
            ),
            Family::Info => meta(
                "ratewatch_endpoint_info",
                "Static endpoint information; always 1.",
                GAUGE,
                &["method", "expects_success"],
            ),
            Family::RateLimit => meta(
                "ratewatch_rate_limit_requests",
                "Documented rate limit per window.",
                GAUGE,
                &["window"],
            ),
            Family::Budget => meta(
                "ratewatch_probe_budget_requests",
                "Probes the monitor may send per window: its share of the documented limit.",
                GAUGE,
                &["window"],
            ),
            Family::BudgetUsed => meta(
                "ratewatch_probe_budget_used_requests",
                "Probes sent in the current sliding window.",
                GAUGE,
                &["window"],
            ),
            Family::Skipped => meta(
                "ratewatch_probes_skipped_total",
                "Scheduled probes not sent, by reason.",
                COUNTER,
                &["reason"],
            ),
            Family::PausedUntil => meta(
                "ratewatch_paused_until_timestamp_seconds",
                "Unix time of the slot at which an endpoint held back by Retry-After or by the quota the API reports probes again; 0 when not held back.",
                GAUGE,
                &[],
            ),
            Family::RetryAfter => meta(
                "ratewatch_retry_after_total",
                "Retry-After headers received, by form.",
                COUNTER,
                &["form"],
            ),
            Family::Unexpected429 => meta(
                "ratewatch_rate_limited_unexpected_total",
                "429 answers received although the probe budget should prevent them: the real quota and the budget disagree.",
                COUNTER,
                &[],
            ),
            Family::UpstreamRemaining => meta(
                "ratewatch_upstream_rate_limit_remaining",
                "Requests remaining as the API reports them.",
                GAUGE,
                &["policy"],
            ),
            Family::UpstreamLimit => meta(
                "ratewatch_upstream_rate_limit_limit",
                "Request limit as the API reports it.",
                GAUGE,
                &["policy"],
            ),
            Family::UpstreamReset => meta(
                "ratewatch_upstream_rate_limit_reset_timestamp_seconds",
                "Unix time at which the API says its window resets.",
                GAUGE,
                &["policy"],
            ),
            Family::HeaderErrors => meta(
                "ratewatch_header_parse_errors_total",
                "Rate-limit and Retry-After headers that could not be used, by reason.",
                COUNTER,
                &["reason"],
            ),
            Family::Credit => meta(
                "ratewatch_credit_balance",
                "Credit balance read from the response body.",
                GAUGE,
                &[],
            ),
            Family::CreditUpdated => meta(
                "ratewatch_credit_last_update_timestamp_seconds",
                "Unix time of the last successful credit extraction.",
                GAUGE,
                &[],
            ),
            Family::CreditErrors => meta(
                "ratewatch_credit_extraction_errors_total",
                "Credit extractions that failed, by reason.",
                COUNTER,
                &["reason"],
            ),
        }
    }

    /// Appends the series of one endpoint in this family to `out`.
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per metric family reads best"
    )]
    fn collect(self, s: &Series, out: &mut Vec<Metric>) {
        let kind = self.meta().kind;
        let plain = |value: f64| out_metric(kind, s, &[], value);
        match self {
            Family::Probes => out.push(plain(load(&s.probes))),
            Family::Successes => out.push(plain(load(&s.successes))),
            Family::Unexpected429 => out.push(plain(load(&s.unexpected_429))),
            Family::Results => counters(
                kind,
                s,
                "class",
                Class::ALL.map(Class::as_str),
                &s.results,
                out,
            ),
            Family::Skipped => counters(
                kind,
                s,
                "reason",
                SkipReason::ALL.map(SkipReason::as_str),
                &s.skipped,
                out,
            ),
            Family::RetryAfter => counters(
                kind,
                s,
                "form",
                RetryAfterForm::ALL.map(RetryAfterForm::as_str),
                &s.retry_after,
                out,
            ),
            Family::HeaderErrors => {
                counters(
                    kind,
                    s,
                    "reason",
                    HeaderError::REASONS,
                    &s.header_errors,
                    out,
                );
            }
            Family::CreditErrors => {
                let present = s.credit_errors_present.load(Ordering::Relaxed);
                for (i, (reason, count)) in CreditError::REASONS
                    .iter()
                    .zip(&s.credit_errors)
                    .enumerate()
                {
                    if present & (1 << i) != 0 {
                        out.push(out_metric(kind, s, &[("reason", reason)], load(count)));
                    }
                }
            }
            Family::Responses => {
                for (code, count) in lock(&s.responses).iter() {
                    let code = code.to_string();
                    out.push(out_metric(kind, s, &[("code", &code)], *count as f64));
                }
            }
            Family::Success => out.extend(s.success.get().map(plain)),
            Family::StatusCode => out.extend(s.status_code.get().map(plain)),
            Family::Interval => out.extend(s.interval.get().map(plain)),
            Family::Credit => out.extend(s.credit.get().map(plain)),
            Family::CreditUpdated => out.extend(s.credit_updated.get().map(plain)),
            Family::LastRun => out.push(plain(s.last_run.get())),
            Family::LastSuccess => out.push(plain(s.last_success.get())),
            Family::NextRun => out.push(plain(s.next_run.get())),
            Family::PausedUntil => out.push(plain(s.paused_until.get())),
            Family::Duration => {
                let mut metric = Metric::from_label(label_pairs(s, &[]));
                metric.set_histogram(s.duration.proto());
                out.push(metric);
            }
            Family::Info => {
                for (method, expects) in lock(&s.info).iter() {
                    let expects = if *expects { "true" } else { "false" };
                    let labels = [("method", &**method), ("expects_success", expects)];
                    out.push(out_metric(kind, s, &labels, 1.0));
                }
            }
            Family::RateLimit | Family::Budget | Family::BudgetUsed => {
                for (window, gauges) in lock(&s.windows).iter() {
                    let value = match self {
                        Family::RateLimit => &gauges.rate_limit,
                        Family::Budget => &gauges.budget,
                        _ => &gauges.used,
                    };
                    let value = value.load(Ordering::Relaxed) as f64;
                    out.push(out_metric(kind, s, &[("window", window)], value));
                }
            }
            Family::UpstreamRemaining | Family::UpstreamLimit | Family::UpstreamReset => {
                for (policy, quota) in lock(&s.upstream).iter() {
                    let value = match self {
                        Family::UpstreamRemaining => quota.remaining,
                        Family::UpstreamLimit => quota.limit,
                        _ => quota.reset,
                    };
                    if let Some(value) = value {
                        out.push(out_metric(kind, s, &[("policy", policy)], value));
                    }
                }
            }
        }
    }
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// Appends one counter per label value of a bounded label.
fn counters<const N: usize>(
    kind: MetricType,
    s: &Series,
    label: &str,
    values: [&str; N],
    counts: &[AtomicU64; N],
    out: &mut Vec<Metric>,
) {
    for (value, count) in values.iter().zip(counts) {
        out.push(out_metric(kind, s, &[(label, value)], load(count)));
    }
}

/// Returns the label pairs of a series, sorted by label name as the `prometheus` crate sorts
/// them.
fn label_pairs(s: &Series, extra: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(2 + extra.len());
    pairs.push(("api", &s.api));
    pairs.push(("endpoint", &s.endpoint));
    pairs.extend_from_slice(extra);
    pairs.sort_unstable_by_key(|(name, _)| *name);
    pairs
        .into_iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_owned());
            pair.set_value(value.to_owned());
            pair
        })
        .collect()
}

/// Returns a counter or gauge series, by `kind`, with a value.
fn out_metric(kind: MetricType, s: &Series, extra: &[(&str, &str)], value: f64) -> Metric {
    let mut metric = Metric::from_label(label_pairs(s, extra));
    if kind == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

/// The collector of one family, reading every endpoint's series at scrape time.
pub(super) struct FamilyCollector {
    family: Family,
    desc: Desc,
    store: Arc<Store>,
}

impl FamilyCollector {
    pub(super) fn new(
        family: Family,
        store: Arc<Store>,
    ) -> Result<FamilyCollector, prometheus::Error> {
        let meta = family.meta();
        let labels = ["api", "endpoint"]
            .iter()
            .chain(meta.labels)
            .map(|label| (*label).to_owned())
            .collect();
        let desc = Desc::new(
            meta.name.to_owned(),
            meta.help.to_owned(),
            labels,
            HashMap::new(),
        )?;
        Ok(FamilyCollector {
            family,
            desc,
            store,
        })
    }
}

impl Collector for FamilyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let meta = self.family.meta();
        let mut metrics = Vec::new();
        {
            let apis = self.store.0.read().unwrap_or_else(PoisonError::into_inner);
            for series in apis.values().flat_map(BTreeMap::values) {
                self.family.collect(series, &mut metrics);
            }
        }
        let mut family = MetricFamily::default();
        family.set_name(meta.name.to_owned());
        family.set_help(meta.help.to_owned());
        family.set_field_type(meta.kind);
        family.set_metric(metrics);
        vec![family]
    }
}
