//! The metric families of the per-endpoint series, and their text.
//!
//! A scrape writes each family straight from every endpoint's [`Series`] into the text,
//! without a protobuf `MetricFamily`. The order of the samples is the one `Registry::gather`
//! of the `prometheus` crate 0.14 gives: by label values, taking the labels in the order of
//! their names. `class` and `code` sort before `endpoint`, so those two families list the
//! endpoints of an API once per label value. Every other label sorts after `endpoint`, so the
//! other families list each endpoint's samples together, in the order of the label value.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::Desc;

use crate::classify::Class;
use crate::headroom::{CreditError, HeaderError, RetryAfterForm};

use super::SkipReason;
use super::scrape::Chunks;
use super::series::{DURATION_BUCKETS, Endpoints, Series, Store, lock};
use super::text::{self, Kind, POSITIVE_INF};

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
    kind: Kind,
    labels: &'static [&'static str],
}

const fn meta(
    name: &'static str,
    help: &'static str,
    kind: Kind,
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
        use Kind::{Counter, Gauge, Histogram};
        match self {
            Family::Probes => meta("ratewatch_probes_total", "Requests sent.", Counter, &[]),
            Family::Results => meta(
                "ratewatch_probe_results_total",
                "Probe results by class.",
                Counter,
                &["class"],
            ),
            Family::Successes => meta(
                "ratewatch_probe_successes_total",
                "Probes whose result matched the expected status codes.",
                Counter,
                &[],
            ),
            Family::Responses => meta(
                "ratewatch_probe_http_responses_total",
                "HTTP responses by status code.",
                Counter,
                &["code"],
            ),
            Family::Success => meta(
                "ratewatch_probe_success",
                "Whether the last probe matched the expected status codes (1) or not (0).",
                Gauge,
                &[],
            ),
            Family::StatusCode => meta(
                "ratewatch_probe_http_status_code",
                "Status code of the last response; absent when the last probe got none.",
                Gauge,
                &[],
            ),
            Family::Duration => meta(
                "ratewatch_probe_duration_seconds",
                "Duration of whole probes, from sending the request to the end of the body.",
                Histogram,
                &[],
            ),
            Family::LastRun => meta(
                "ratewatch_probe_last_run_timestamp_seconds",
                "Unix time of the last probe sent.",
                Gauge,
                &[],
            ),
            Family::LastSuccess => meta(
                "ratewatch_probe_last_success_timestamp_seconds",
                "Unix time of the last probe that matched the expected status codes.",
                Gauge,
                &[],
            ),
            Family::NextRun => meta(
                "ratewatch_probe_next_run_timestamp_seconds",
                "Unix time of the next scheduled probe slot.",
                Gauge,
                &[],
            ),
            Family::Interval => meta(
                "ratewatch_probe_interval_seconds",
                "Planned time between two probes.",
                Gauge,
                &[],
            ),
            Family::Info => meta(
                "ratewatch_endpoint_info",
                "Static endpoint information; always 1.",
                Gauge,
                &["method", "expects_success"],
            ),
            Family::RateLimit => meta(
                "ratewatch_rate_limit_requests",
                "Documented rate limit per window.",
                Gauge,
                &["window"],
            ),
            Family::Budget => meta(
                "ratewatch_probe_budget_requests",
                "Probes the monitor may send per window: its share of the documented limit.",
                Gauge,
                &["window"],
            ),
            Family::BudgetUsed => meta(
                "ratewatch_probe_budget_used_requests",
                "Probes sent in the current sliding window.",
                Gauge,
                &["window"],
            ),
            Family::Skipped => meta(
                "ratewatch_probes_skipped_total",
                "Scheduled probes not sent, by reason.",
                Counter,
                &["reason"],
            ),
            Family::PausedUntil => meta(
                "ratewatch_paused_until_timestamp_seconds",
                "Unix time of the slot at which an endpoint held back by Retry-After or by the quota the API reports probes again; 0 when not held back.",
                Gauge,
                &[],
            ),
            Family::RetryAfter => meta(
                "ratewatch_retry_after_total",
                "Retry-After headers received, by form.",
                Counter,
                &["form"],
            ),
            Family::Unexpected429 => meta(
                "ratewatch_rate_limited_unexpected_total",
                "429 answers received although the probe budget should prevent them: the real quota and the budget disagree.",
                Counter,
                &[],
            ),
            Family::UpstreamRemaining => meta(
                "ratewatch_upstream_rate_limit_remaining",
                "Requests remaining as the API reports them.",
                Gauge,
                &["policy"],
            ),
            Family::UpstreamLimit => meta(
                "ratewatch_upstream_rate_limit_limit",
                "Request limit as the API reports it.",
                Gauge,
                &["policy"],
            ),
            Family::UpstreamReset => meta(
                "ratewatch_upstream_rate_limit_reset_timestamp_seconds",
                "Unix time at which the API says its window resets.",
                Gauge,
                &["policy"],
            ),
            Family::HeaderErrors => meta(
                "ratewatch_header_parse_errors_total",
                "Rate-limit and Retry-After headers that could not be used, by reason.",
                Counter,
                &["reason"],
            ),
            Family::Credit => meta(
                "ratewatch_credit_balance",
                "Credit balance read from the response body.",
                Gauge,
                &[],
            ),
            Family::CreditUpdated => meta(
                "ratewatch_credit_last_update_timestamp_seconds",
                "Unix time of the last successful credit extraction.",
                Gauge,
                &[],
            ),
            Family::CreditErrors => meta(
                "ratewatch_credit_extraction_errors_total",
                "Credit extractions that failed, by reason.",
                Counter,
                &["reason"],
            ),
        }
    }

    /// Returns the description of this family, which checks its name and label names as the
    /// `prometheus` crate checks those of the families it registers.
    pub(super) fn desc(self) -> Result<Desc, prometheus::Error> {
        let meta = self.meta();
        let labels = ["api", "endpoint"]
            .iter()
            .chain(meta.labels)
            .map(|label| (*label).to_owned())
            .collect();
        Desc::new(
            meta.name.to_owned(),
            meta.help.to_owned(),
            labels,
            HashMap::new(),
        )
    }

    /// Returns the values of the family's label that comes from a bounded enum, in the order
    /// that indexes the counters of a [`Series`]. A family without such a label has none.
    fn bounded_values(self) -> Vec<&'static str> {
        match self {
            Family::Results => Class::ALL.map(Class::as_str).to_vec(),
            Family::Skipped => SkipReason::ALL.map(SkipReason::as_str).to_vec(),
            Family::RetryAfter => RetryAfterForm::ALL.map(RetryAfterForm::as_str).to_vec(),
            Family::HeaderErrors => HeaderError::REASONS.to_vec(),
            Family::CreditErrors => CreditError::REASONS.to_vec(),
            _ => Vec::new(),
        }
    }

    /// Writes the text of this family, from the `# HELP` line to its last sample. A family
    /// without any series writes nothing, as `Registry::gather` leaves such a family out.
    ///
    /// The store stays locked for reading while the family is written, and the list of an
    /// endpoint (its responses, windows, quotas or info) while that endpoint's samples are.
    /// A long family spans several chunks.
    pub(super) fn write(self, store: &Store, chunks: &mut Chunks) {
        let meta = self.meta();
        let start = chunks.current.len();
        text::write_header(&mut chunks.current, meta.name, meta.help, meta.kind);
        let header_end = chunks.current.len();
        let bounded_values = self.bounded_values();
        let mut bounded = Vec::new();
        sort_indices(&mut bounded, &bounded_values, Ord::cmp);
        let le_values = if self == Family::Duration {
            DURATION_BUCKETS.iter().map(f64::to_string).collect()
        } else {
            Vec::new()
        };
        let mut family = FamilyText {
            chunks,
            header_end: Some(header_end),
            name: meta.name,
            bounded_values,
            bounded,
            le_values,
            order: Vec::new(),
        };
        {
            let apis = store.read();
            for endpoints in apis.values() {
                match self {
                    Family::Results => family.write_results(endpoints),
                    Family::Responses => family.write_responses(endpoints),
                    _ => {
                        for series in endpoints.values() {
                            self.write_endpoint(series, &mut family);
                            family.cut_if_full();
                        }
                    }
                }
            }
        }
        if family.header_end == Some(family.chunks.current.len()) {
            family.chunks.current.truncate(start);
        }
    }

    /// Writes the samples of one endpoint in a family whose labels all sort after `endpoint`.
    fn write_endpoint(self, s: &Series, family: &mut FamilyText<'_>) {
        let endpoint = endpoint_labels(s);
        match self {
            Family::Probes => family.sample(&endpoint, load(&s.probes)),
            Family::Successes => family.sample(&endpoint, load(&s.successes)),
            Family::Unexpected429 => family.sample(&endpoint, load(&s.unexpected_429)),
            Family::Skipped => family.write_bounded(s, "reason", &s.skipped, None),
            Family::RetryAfter => family.write_bounded(s, "form", &s.retry_after, None),
            Family::HeaderErrors => family.write_bounded(s, "reason", &s.header_errors, None),
            Family::CreditErrors => {
                let present = s.credit_errors_present.load(Ordering::Relaxed);
                family.write_bounded(s, "reason", &s.credit_errors, Some(present));
            }
            Family::Success => family.optional(&endpoint, s.success.get()),
            Family::StatusCode => family.optional(&endpoint, s.status_code.get()),
            Family::Interval => family.optional(&endpoint, s.interval.get()),
            Family::Credit => family.optional(&endpoint, s.credit.get()),
            Family::CreditUpdated => family.optional(&endpoint, s.credit_updated.get()),
            Family::LastRun => family.sample(&endpoint, s.last_run.get()),
            Family::LastSuccess => family.sample(&endpoint, s.last_success.get()),
            Family::NextRun => family.sample(&endpoint, s.next_run.get()),
            Family::PausedUntil => family.sample(&endpoint, s.paused_until.get()),
            Family::Duration => family.write_histogram(s),
            Family::Info => family.write_info(s),
            Family::RateLimit | Family::Budget | Family::BudgetUsed => {
                family.write_windows(self, s);
            }
            Family::UpstreamRemaining | Family::UpstreamLimit | Family::UpstreamReset => {
                family.write_upstream(self, s);
            }
            // Written per API by `write`, because their label sorts before `endpoint`.
            Family::Results | Family::Responses => {}
        }
    }
}

/// The text of one family being written, and what its samples share.
struct FamilyText<'a> {
    chunks: &'a mut Chunks,
    /// The end of the family's header in the current chunk, until a chunk is cut after it.
    header_end: Option<usize>,
    name: &'static str,
    /// The values of the family's bounded label, indexed like the counters of a [`Series`].
    bounded_values: Vec<&'static str>,
    /// The indices into `bounded_values`, in the order of the values.
    bounded: Vec<usize>,
    /// The `le` label values of the histogram buckets, as `f64::to_string` formats the bounds.
    le_values: Vec<String>,
    /// Scratch space for sorting the entries of one endpoint's list.
    order: Vec<usize>,
}

impl FamilyText<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        text::write_sample(&mut self.chunks.current, self.name, "", labels, value);
    }

    /// Completes the current chunk when it is full and contains a sample of this family. A chunk
    /// never ends right after the header, so `write` can still remove the header of a family
    /// without samples.
    fn cut_if_full(&mut self) {
        let has_sample = self
            .header_end
            .is_none_or(|end| self.chunks.current.len() > end);
        if has_sample && self.chunks.is_full() {
            self.chunks.cut();
            self.header_end = None;
        }
    }

    fn optional(&mut self, labels: &[(&str, &str)], value: Option<f64>) {
        if let Some(value) = value {
            self.sample(labels, value);
        }
    }

    /// Writes one counter per value of the bounded label `label`. With `present`, only the
    /// values whose bit is set in it have a series.
    fn write_bounded(
        &mut self,
        s: &Series,
        label: &str,
        counters: &[AtomicU64],
        present: Option<u16>,
    ) {
        for i in 0..self.bounded.len() {
            let index = self.bounded[i];
            if present.is_some_and(|bits| bits & (1 << index) == 0) {
                continue;
            }
            let labels = [
                ("api", &*s.api),
                ("endpoint", &*s.endpoint),
                (label, self.bounded_values[index]),
            ];
            self.sample(&labels, load(&counters[index]));
        }
    }

    /// Writes `ratewatch_probe_results_total` for the endpoints of one API: every endpoint for
    /// the first class, then every endpoint for the next.
    fn write_results(&mut self, endpoints: &Endpoints) {
        for i in 0..self.bounded.len() {
            let index = self.bounded[i];
            let class = self.bounded_values[index];
            for s in endpoints.values() {
                let labels = [
                    ("api", &*s.api),
                    ("class", class),
                    ("endpoint", &*s.endpoint),
                ];
                self.sample(&labels, load(&s.results[index]));
                self.cut_if_full();
            }
        }
    }

    /// Writes `ratewatch_probe_http_responses_total` for the endpoints of one API, sorted by
    /// the `code` label as text, then by endpoint.
    fn write_responses(&mut self, endpoints: &Endpoints) {
        let mut rows: Vec<([u8; 5], &Series, u64)> = Vec::new();
        for s in endpoints.values() {
            for (code, count) in lock(&s.responses).iter() {
                rows.push((code_digits(*code), s, *count));
            }
        }
        // A stable sort keeps the endpoints of one code in the store's order.
        rows.sort_by_key(|row| row.0);
        for (digits, s, count) in rows {
            let length = digits.iter().position(|b| *b == 0).unwrap_or(digits.len());
            let code = std::str::from_utf8(&digits[..length]).unwrap_or_default();
            let labels = [("api", &*s.api), ("code", code), ("endpoint", &*s.endpoint)];
            self.sample(&labels, count as f64);
            self.cut_if_full();
        }
    }

    /// Writes the buckets, sum and count of `ratewatch_probe_duration_seconds` of one endpoint.
    fn write_histogram(&mut self, s: &Series) {
        let (cumulative, sum, count) = s.duration.snapshot();
        for (le, bucket) in self.le_values.iter().zip(cumulative) {
            let labels = [("api", &*s.api), ("endpoint", &*s.endpoint), ("le", &**le)];
            text::write_sample(
                &mut self.chunks.current,
                self.name,
                "_bucket",
                &labels,
                bucket as f64,
            );
        }
        let labels = [
            ("api", &*s.api),
            ("endpoint", &*s.endpoint),
            ("le", POSITIVE_INF),
        ];
        text::write_sample(
            &mut self.chunks.current,
            self.name,
            "_bucket",
            &labels,
            count as f64,
        );
        let endpoint = endpoint_labels(s);
        text::write_sample(&mut self.chunks.current, self.name, "_sum", &endpoint, sum);
        text::write_sample(
            &mut self.chunks.current,
            self.name,
            "_count",
            &endpoint,
            count as f64,
        );
    }

    /// Writes `ratewatch_endpoint_info` of one endpoint, sorted by `expects_success`, then by
    /// `method`.
    fn write_info(&mut self, s: &Series) {
        let info = lock(&s.info);
        let label = |expects: bool| if expects { "true" } else { "false" };
        sort_indices(
            &mut self.order,
            &info,
            |(method_a, expects_a), (method_b, expects_b)| {
                (label(*expects_a), method_a).cmp(&(label(*expects_b), method_b))
            },
        );
        for i in 0..self.order.len() {
            let (method, expects) = &info[self.order[i]];
            let labels = [
                ("api", &*s.api),
                ("endpoint", &*s.endpoint),
                ("expects_success", label(*expects)),
                ("method", &**method),
            ];
            self.sample(&labels, 1.0);
        }
    }

    /// Writes one gauge of each window of one endpoint, sorted by window.
    fn write_windows(&mut self, family: Family, s: &Series) {
        let windows = lock(&s.windows);
        sort_indices(&mut self.order, &windows, |a, b| a.0.cmp(&b.0));
        for i in 0..self.order.len() {
            let (window, gauges) = &windows[self.order[i]];
            let value = match family {
                Family::RateLimit => &gauges.rate_limit,
                Family::Budget => &gauges.budget,
                _ => &gauges.used,
            };
            let labels = [
                ("api", &*s.api),
                ("endpoint", &*s.endpoint),
                ("window", &**window),
            ];
            self.sample(&labels, value.load(Ordering::Relaxed) as f64);
        }
    }

    /// Writes one gauge of each reported quota of one endpoint, sorted by policy.
    fn write_upstream(&mut self, family: Family, s: &Series) {
        let upstream = lock(&s.upstream);
        sort_indices(&mut self.order, &upstream, |a, b| a.0.cmp(&b.0));
        for i in 0..self.order.len() {
            let (policy, quota) = &upstream[self.order[i]];
            let value = match family {
                Family::UpstreamRemaining => quota.remaining,
                Family::UpstreamLimit => quota.limit,
                _ => quota.reset,
            };
            let labels = [
                ("api", &*s.api),
                ("endpoint", &*s.endpoint),
                ("policy", &**policy),
            ];
            self.optional(&labels, value);
        }
    }
}

fn endpoint_labels(s: &Series) -> [(&'static str, &str); 2] {
    [("api", &s.api), ("endpoint", &s.endpoint)]
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// Sets `order` to the indices of `items` sorted by `compare`, equal items in their order.
fn sort_indices<T>(
    order: &mut Vec<usize>,
    items: &[T],
    compare: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    order.clear();
    order.extend(0..items.len());
    order.sort_by(|a, b| compare(&items[*a], &items[*b]));
}

/// Returns the decimal digits of a status code, padded with NUL bytes. Two such arrays compare
/// as the `code` label values they spell compare as text: "1000" before "99".
fn code_digits(code: u16) -> [u8; 5] {
    let mut digits = [0; 5];
    // A u16 has at most 5 digits, so the write always fits.
    let _ = write!(&mut digits[..], "{code}");
    digits
}
