//! Quota headroom read from responses: `Retry-After`, the `X-RateLimit-*` fields, the IETF
//! `RateLimit` and `RateLimit-Policy` fields, and a credit balance inside a JSON body.
//!
//! Everything here is a pure function of its arguments: no I/O, no clock reads (the caller
//! passes `now`), no global state, and no panics on any input. Every wait is a [`Duration`], so
//! it is never negative, and every wait is capped by [`HeadroomConfig::retry_after_ceiling`].
//!
//! # Header forms
//!
//! - `Retry-After`: delta seconds (digits only) or an HTTP date in any of the three forms of
//!   RFC 9110 (IMF-fixdate, RFC 850, asctime). Dates are read as GMT and compared with the
//!   `now` passed in, so the host time zone never matters. A date in the past means no wait.
//! - `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`. The limit may carry a
//!   window as in `100, 100;w=3600`. The reset value is read as set by [`ResetForm`].
//! - `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF drafts 00 to 06), with
//!   the reset always in delta seconds.
//! - `RateLimit-Policy: "default";q=100;w=3600` and `RateLimit: "default";r=42;t=1800` (the
//!   current form of draft-ietf-httpapi-ratelimit-headers), parsed as structured-field lists
//!   with the `sfv` crate. Policy names may be strings or tokens, and a policy and its state
//!   are joined by name. The older dictionary `RateLimit: limit=100, remaining=42,
//!   reset=1800` with integer policies such as `RateLimit-Policy: 100;w=3600` is also read.
//!
//! # `X-RateLimit-Reset` detection
//!
//! With [`ResetForm::Auto`] the magnitude of the number decides what it is:
//!
//! | value `v` | read as | why |
//! | --- | --- | --- |
//! | `v < 1e9` | delta seconds | `1e9` seconds after the Unix epoch is 2001-09-09, so no current timestamp is that small, and no window is 31 years long |
//! | `1e9 <= v < 1e11` | Unix seconds | `1e11` seconds after the epoch is in the year 5138 |
//! | `v >= 1e11` | Unix milliseconds | `1e11` ms after the epoch is 1973-03-03, so every current millisecond timestamp is larger |
//!
//! The value may have a fraction (`1470173023.123`) and may also be an HTTP date. A reset in
//! the past means no wait.
//!
//! # Combining
//!
//! For every field except `Retry-After`, repeated header lines read the same as one
//! comma-joined line. Where lines, policies or sources disagree, the most restrictive value
//! wins: the smallest limit and remaining count and the longest wait.
//! [`HeaderReport::most_restrictive`] picks the policy that forces the longest interval
//! between requests, and [`pace`] turns it into the scheduler's interval.
//!
//! # Bounds for metric labels
//!
//! A report keeps at most [`MAX_POLICIES`] policies, the most restrictive ones. A policy name
//! longer than [`MAX_POLICY_NAME_LEN`] or with a character outside `[A-Za-z0-9_.:-]` is
//! replaced by [`OTHER_POLICY_NAME`]. Each [`HeaderError`] and [`CreditError`] has a fixed
//! reason string, and a report contains at most one error per reason.

mod credit;
mod ietf;
mod policy;
mod retry_after;
mod x_ratelimit;

#[cfg(test)]
mod proptests;

use std::time::{Duration, SystemTime};

use http::HeaderMap;

pub use credit::{CreditError, extract_credit};
pub use policy::pace;
pub use retry_after::{RetryAfter, RetryAfterForm, parse_retry_after};

/// The default cap on any wait read from a response: 24 hours.
pub const DEFAULT_RETRY_AFTER_CEILING: Duration = Duration::from_secs(24 * 3600);

/// The maximum number of policies kept from one response.
pub const MAX_POLICIES: usize = 8;

/// The maximum length of a policy name kept as a metric label, in ASCII characters.
pub const MAX_POLICY_NAME_LEN: usize = 64;

/// The label that replaces a policy name that is too long or has characters outside
/// `[A-Za-z0-9_.:-]`.
pub const OTHER_POLICY_NAME: &str = "other";

/// Settings for reading headroom headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadroomConfig {
    /// The cap on every wait read from a response: `Retry-After` and every reset time.
    pub retry_after_ceiling: Duration,
    /// How to read the number in `X-RateLimit-Reset`.
    pub reset_form: ResetForm,
}

impl Default for HeadroomConfig {
    fn default() -> Self {
        HeadroomConfig {
            retry_after_ceiling: DEFAULT_RETRY_AFTER_CEILING,
            reset_form: ResetForm::Auto,
        }
    }
}

/// The meaning of the number in `X-RateLimit-Reset`. Configuration files name the variants
/// `auto`, `delta_seconds`, `unix_seconds` and `unix_millis`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetForm {
    /// Decide by magnitude, as the module documentation describes.
    #[default]
    Auto,
    /// Seconds from now until the reset.
    DeltaSeconds,
    /// The reset time in seconds since the Unix epoch.
    UnixSeconds,
    /// The reset time in milliseconds since the Unix epoch.
    UnixMillis,
}

/// The header family a policy was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
    XRateLimit,
    /// The IETF fields: `RateLimit`, `RateLimit-Policy`, and the older `RateLimit-Limit`,
    /// `RateLimit-Remaining` and `RateLimit-Reset`.
    Ietf,
}

impl Source {
    /// Returns the metric label for this source.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Source::XRateLimit => "x_ratelimit",
            Source::Ietf => "ietf",
        }
    }
}

/// One quota as a response described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyState {
    /// The header family the quota came from.
    pub source: Source,
    /// The policy name, if the response named it. Always 1 to [`MAX_POLICY_NAME_LEN`]
    /// characters from `[A-Za-z0-9_.:-]`, or [`OTHER_POLICY_NAME`].
    pub policy: Option<String>,
    /// The number of requests allowed per window.
    pub limit: Option<u64>,
    /// The number of requests left until the reset.
    pub remaining: Option<u64>,
    /// The time until the quota resets; at most the window and the configured ceiling.
    pub reset_after: Option<Duration>,
    /// The window length of the quota, as sent; never zero.
    pub window: Option<Duration>,
}

impl PolicyState {
    /// Computes the interval between requests that spends the remaining allowance evenly
    /// until the reset: `reset_after / remaining`, or `reset_after` when nothing remains.
    /// Returns `None` when the remaining count or the reset time is unknown.
    #[must_use]
    pub fn interval(&self) -> Option<Duration> {
        let remaining = self.remaining?;
        let until_reset = self.reset_after?;
        if remaining == 0 {
            return Some(until_reset);
        }
        Some(policy::divide(until_reset, remaining))
    }
}

/// A problem found while reading headroom headers. The response still counts, and
/// [`HeaderError::as_str`] gives the bounded metric label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A `Retry-After` line was neither delta seconds nor an HTTP date.
    #[error(
        "invalid Retry-After value \"{value}\": expected delta seconds or an HTTP date; the normal schedule applies"
    )]
    RetryAfterInvalid {
        /// The value, ASCII-escaped and shortened.
        value: String,
    },
    /// A `Retry-After` wait was beyond the ceiling and was cut to it.
    #[error(
        "Retry-After value \"{value}\" is beyond the ceiling of {ceiling:?}; waiting {ceiling:?} instead"
    )]
    RetryAfterClamped {
        /// The value, ASCII-escaped and shortened.
        value: String,
        /// The configured ceiling.
        ceiling: Duration,
    },
    /// A `RateLimit`, `RateLimit-Limit`, `RateLimit-Remaining` or `RateLimit-Reset` line
    /// was malformed, or one of its members was.
    #[error("invalid {header} value \"{value}\": expected {expected}")]
    RatelimitInvalid {
        /// The header name.
        header: &'static str,
        /// The value, ASCII-escaped and shortened.
        value: String,
        /// The expected form of the value.
        expected: &'static str,
    },
    /// A `RateLimit-Policy` line was not a structured-field list, or one of its members was
    /// malformed.
    #[error(
        "invalid RateLimit-Policy value \"{value}\": expected a list such as \"default\";q=100;w=3600"
    )]
    RatelimitPolicyInvalid {
        /// The value, ASCII-escaped and shortened.
        value: String,
    },
    /// An `X-RateLimit-Limit`, `X-RateLimit-Remaining` or `X-RateLimit-Reset` line was
    /// malformed, or one of its members was.
    #[error("invalid {header} value \"{value}\": expected {expected}")]
    XRatelimitInvalid {
        /// The header name.
        header: &'static str,
        /// The value, ASCII-escaped and shortened.
        value: String,
        /// The expected form of the value.
        expected: &'static str,
    },
    /// A reset time was beyond the window of its quota or beyond the ceiling, and was cut.
    #[error(
        "reset time \"{value}\" is beyond the window of its quota or the ceiling; waiting {used:?} instead"
    )]
    ResetClamped {
        /// The reset value as sent, ASCII-escaped and shortened.
        value: String,
        /// The wait used instead.
        used: Duration,
    },
    /// The response described more than [`MAX_POLICIES`] policies, and the least restrictive
    /// ones were dropped.
    #[error(
        "response described {count} rate-limit policies; kept the {MAX_POLICIES} most restrictive"
    )]
    TooManyPolicies {
        /// The number of policies described.
        count: usize,
    },
    /// A policy name was too long or had characters outside `[A-Za-z0-9_.:-]`, and was
    /// replaced by [`OTHER_POLICY_NAME`].
    #[error(
        "policy name \"{name}\" is not 1 to {MAX_POLICY_NAME_LEN} characters from [A-Za-z0-9_.:-]; labelled it \"{OTHER_POLICY_NAME}\""
    )]
    PolicyNameInvalid {
        /// The name, ASCII-escaped and shortened.
        name: String,
    },
}

impl HeaderError {
    /// Every label that [`HeaderError::as_str`] returns, for pre-initialising counters.
    pub const REASONS: [&'static str; 8] = [
        "retry_after_invalid",
        "retry_after_clamped",
        "ratelimit_invalid",
        "ratelimit_policy_invalid",
        "x_ratelimit_invalid",
        "reset_clamped",
        "too_many_policies",
        "policy_name_invalid",
    ];

    /// Returns the metric label for this error, one of a fixed set of strings.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderError::RetryAfterInvalid { .. } => "retry_after_invalid",
            HeaderError::RetryAfterClamped { .. } => "retry_after_clamped",
            HeaderError::RatelimitInvalid { .. } => "ratelimit_invalid",
            HeaderError::RatelimitPolicyInvalid { .. } => "ratelimit_policy_invalid",
            HeaderError::XRatelimitInvalid { .. } => "x_ratelimit_invalid",
            HeaderError::ResetClamped { .. } => "reset_clamped",
            HeaderError::TooManyPolicies { .. } => "too_many_policies",
            HeaderError::PolicyNameInvalid { .. } => "policy_name_invalid",
        }
    }
}

/// The headroom information parsed from the headers of one response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderReport {
    /// The parsed `Retry-After`, if the response had one. With several lines, the longest
    /// valid wait; `Invalid` only when no line was valid.
    pub retry_after: Option<RetryAfter>,
    /// The quotas described, at most [`MAX_POLICIES`], in the order the response named them.
    pub policies: Vec<PolicyState>,
    /// The problems found, at most one per reason.
    pub errors: Vec<HeaderError>,
}

impl HeaderReport {
    /// Returns the policy that forces the longest interval between requests, which is the one
    /// with the smallest remaining allowance per time to reset. Ties go to the smaller
    /// remaining count and then to the first named. Returns `None` when no policy has both a
    /// remaining count and a reset time or window.
    #[must_use]
    pub fn most_restrictive(&self) -> Option<&PolicyState> {
        policy::most_restrictive(&self.policies)
    }
}

/// Reads `Retry-After` and every rate-limit header family from `headers`.
///
/// `now` is the time the response arrived; dates and Unix timestamps are measured from it.
#[must_use]
pub fn read_headers(headers: &HeaderMap, now: SystemTime, config: &HeadroomConfig) -> HeaderReport {
    let mut errors = Vec::new();
    let retry_after = retry_after::read(headers, now, config, &mut errors);

    let mut policies = Vec::new();
    policies.extend(x_ratelimit::read(
        headers,
        &x_ratelimit::X_RATELIMIT,
        now,
        config,
        &mut errors,
    ));
    policies.extend(x_ratelimit::read(
        headers,
        &x_ratelimit::IETF_SEPARATE,
        now,
        config,
        &mut errors,
    ));
    policies.extend(ietf::read(headers, config, &mut errors));

    let policies = policy::bound(policies, &mut errors);
    HeaderReport {
        retry_after,
        policies,
        errors,
    }
}

/// Adds `error` unless an error with the same reason is already there, so a response with a
/// thousand bad lines still yields one count per reason.
fn push_error(errors: &mut Vec<HeaderError>, error: HeaderError) {
    if errors.iter().all(|e| e.as_str() != error.as_str()) {
        errors.push(error);
    }
}

/// The maximum length of a header value excerpt in an error message, in bytes.
const EXCERPT_LEN: usize = 64;

/// Makes a printable ASCII excerpt of `value` for an error message: at most [`EXCERPT_LEN`]
/// input bytes, with control, quote and non-ASCII bytes escaped as `\xNN`.
fn excerpt(value: &[u8]) -> String {
    let end = value.len().min(EXCERPT_LEN);
    let mut text = value[..end].escape_ascii().to_string();
    if value.len() > EXCERPT_LEN {
        text.push_str("...");
    }
    text
}

/// Converts a non-negative number of seconds to a [`Duration`], saturating at
/// [`Duration::MAX`] and reading NaN or a negative value as zero.
fn saturating_secs(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// Returns the time from `now` until `since_epoch` after the Unix epoch, or zero when that is in
/// the past, saturating at [`Duration::MAX`].
fn until_unix(now: SystemTime, since_epoch: Duration) -> Duration {
    match SystemTime::UNIX_EPOCH.checked_add(since_epoch) {
        Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_form_deserializes_snake_case_names() {
        let table = [
            ("\"auto\"", ResetForm::Auto),
            ("\"delta_seconds\"", ResetForm::DeltaSeconds),
            ("\"unix_seconds\"", ResetForm::UnixSeconds),
            ("\"unix_millis\"", ResetForm::UnixMillis),
        ];
        for (json, expected) in table {
            let form: ResetForm = serde_json::from_str(json).unwrap();
            assert_eq!(form, expected, "{json}");
        }
        assert!(serde_json::from_str::<ResetForm>("\"UnixMillis\"").is_err());
    }

    #[test]
    fn headroom_config_defaults() {
        let config = HeadroomConfig::default();
        assert_eq!(config.retry_after_ceiling, Duration::from_secs(86_400));
        assert_eq!(config.reset_form, ResetForm::Auto);
    }

    #[test]
    fn excerpt_escapes_and_shortens() {
        assert_eq!(excerpt(b"ok"), "ok");
        assert_eq!(excerpt(b"a\"\xff\t"), r#"a\"\xff\t"#);
        let long = excerpt(&[b'x'; 100]);
        assert_eq!(long, format!("{}...", "x".repeat(EXCERPT_LEN)));
    }

    #[test]
    fn saturating_secs_extremes() {
        assert_eq!(saturating_secs(f64::NAN), Duration::ZERO);
        assert_eq!(saturating_secs(-1.0), Duration::ZERO);
        assert_eq!(saturating_secs(f64::INFINITY), Duration::MAX);
        assert_eq!(saturating_secs(1e30), Duration::MAX);
        assert_eq!(saturating_secs(2.5), Duration::from_millis(2500));
    }

    #[test]
    fn until_unix_past_future_and_overflow() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(until_unix(now, Duration::from_secs(400)), Duration::ZERO);
        assert_eq!(
            until_unix(now, Duration::from_secs(1_060)),
            Duration::from_secs(60)
        );
        assert_eq!(until_unix(now, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn error_reasons_are_distinct() {
        let errors = [
            HeaderError::RetryAfterInvalid {
                value: String::new(),
            },
            HeaderError::RetryAfterClamped {
                value: String::new(),
                ceiling: Duration::ZERO,
            },
            HeaderError::RatelimitInvalid {
                header: "RateLimit",
                value: String::new(),
                expected: "",
            },
            HeaderError::RatelimitPolicyInvalid {
                value: String::new(),
            },
            HeaderError::XRatelimitInvalid {
                header: "X-RateLimit-Limit",
                value: String::new(),
                expected: "",
            },
            HeaderError::ResetClamped {
                value: String::new(),
                used: Duration::ZERO,
            },
            HeaderError::TooManyPolicies { count: 9 },
            HeaderError::PolicyNameInvalid {
                name: String::new(),
            },
        ];
        let mut reasons: Vec<_> = errors.iter().map(HeaderError::as_str).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), errors.len());
    }
}
