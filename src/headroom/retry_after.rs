//! `Retry-After` (RFC 9110 section 10.2.3): delta seconds or an HTTP date.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;

use super::{HeaderError, HeadroomConfig, excerpt, push_error};

/// A parsed `Retry-After` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// The server asked for a wait before the next request.
    Delay {
        /// The wait from the time the response arrived; zero for a date in the past, and at
        /// most the configured ceiling.
        wait: Duration,
        /// The notation the server used for the value.
        form: RetryAfterForm,
        /// Whether the requested wait was beyond the ceiling and was cut to it.
        clamped: bool,
    },
    /// The value was neither delta seconds nor an HTTP date. The caller counts a parse error
    /// and keeps its normal schedule.
    Invalid,
}

impl RetryAfter {
    /// Returns the wait, or `None` for [`RetryAfter::Invalid`].
    #[must_use]
    pub fn wait(self) -> Option<Duration> {
        match self {
            RetryAfter::Delay { wait, .. } => Some(wait),
            RetryAfter::Invalid => None,
        }
    }
}

/// The form a `Retry-After` value was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAfterForm {
    /// Delta seconds, such as `120`.
    Seconds,
    /// An HTTP date in IMF-fixdate, RFC 850 or asctime form.
    HttpDate,
}

impl RetryAfterForm {
    /// Every form, for pre-initialising counters.
    pub const ALL: [RetryAfterForm; 2] = [RetryAfterForm::Seconds, RetryAfterForm::HttpDate];

    /// Returns the metric label: `seconds` or `http_date`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryAfterForm::Seconds => "seconds",
            RetryAfterForm::HttpDate => "http_date",
        }
    }
}

/// Parses one `Retry-After` value received at `now`, capping the wait at `ceiling`.
///
/// Delta seconds are ASCII digits only, with optional surrounding spaces or tabs, and a
/// number too large for `u64` counts as beyond the ceiling. Dates are in GMT as RFC 9110
/// requires, so the result does not depend on the host time zone.
#[must_use]
pub fn parse_retry_after(value: &[u8], now: SystemTime, ceiling: Duration) -> RetryAfter {
    let trimmed = value.trim_ascii();
    let (requested, form) = if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit) {
        let seconds = std::str::from_utf8(trimmed)
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        (Duration::from_secs(seconds), RetryAfterForm::Seconds)
    } else {
        let Some(date) = std::str::from_utf8(trimmed)
            .ok()
            .and_then(|text| httpdate::parse_http_date(text).ok())
        else {
            return RetryAfter::Invalid;
        };
        let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
        (wait, RetryAfterForm::HttpDate)
    };
    RetryAfter::Delay {
        wait: requested.min(ceiling),
        form,
        clamped: requested > ceiling,
    }
}

/// Reads every `Retry-After` line and keeps the longest valid wait.
pub(super) fn read(
    headers: &HeaderMap,
    now: SystemTime,
    config: &HeadroomConfig,
    errors: &mut Vec<HeaderError>,
) -> Option<RetryAfter> {
    let mut best: Option<RetryAfter> = None;
    let mut clamped_value = None;
    for line in headers.get_all(RETRY_AFTER) {
        let parsed = parse_retry_after(line.as_bytes(), now, config.retry_after_ceiling);
        match (parsed, best) {
            (RetryAfter::Invalid, _) => {
                push_error(
                    errors,
                    HeaderError::RetryAfterInvalid {
                        value: excerpt(line.as_bytes()),
                    },
                );
                best.get_or_insert(RetryAfter::Invalid);
            }
            (RetryAfter::Delay { wait, clamped, .. }, current) => {
                let longer = match current {
                    Some(RetryAfter::Delay { wait: kept, .. }) => wait > kept,
                    Some(RetryAfter::Invalid) | None => true,
                };
                if longer {
                    best = Some(parsed);
                    clamped_value = clamped.then(|| excerpt(line.as_bytes()));
                }
            }
        }
    }
    if let Some(value) = clamped_value {
        push_error(
            errors,
            HeaderError::RetryAfterClamped {
                value,
                ceiling: config.retry_after_ceiling,
            },
        );
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headroom::read_headers;
    use http::{HeaderName, HeaderValue};

    /// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110, as Unix seconds.
    const EXAMPLE_DATE_UNIX: u64 = 784_111_777;

    fn example_now(seconds_before: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(EXAMPLE_DATE_UNIX - seconds_before)
    }

    fn report_for(name: &[u8], value: &str, now: SystemTime) -> Option<RetryAfter> {
        let mut headers = HeaderMap::new();
        headers.append(
            HeaderName::from_bytes(name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        read_headers(&headers, now, &HeadroomConfig::default()).retry_after
    }

    fn delay(seconds: u64, form: RetryAfterForm, clamped: bool) -> RetryAfter {
        RetryAfter::Delay {
            wait: Duration::from_secs(seconds),
            form,
            clamped,
        }
    }

    #[test]
    fn retry_after_table() {
        use RetryAfterForm::{HttpDate, Seconds};
        let day = 24 * 3600;
        let table: [(&[u8], &str, u64, RetryAfter); 24] = [
            (b"retry-after", "120", 0, delay(120, Seconds, false)),
            (b"Retry-After", "120", 0, delay(120, Seconds, false)),
            (b"RETRY-AFTER", "0", 0, delay(0, Seconds, false)),
            (b"rEtRy-AfTeR", " 7\t", 0, delay(7, Seconds, false)),
            (b"retry-after", "86400", 0, delay(day, Seconds, false)),
            (b"retry-after", "86401", 0, delay(day, Seconds, true)),
            (
                b"Retry-After",
                "99999999999999999999999999",
                0,
                delay(day, Seconds, true),
            ),
            (
                b"retry-after",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                120,
                delay(120, HttpDate, false),
            ),
            (
                b"Retry-After",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                90,
                delay(90, HttpDate, false),
            ),
            (
                b"RETRY-after",
                "Sun Nov  6 08:49:37 1994",
                45,
                delay(45, HttpDate, false),
            ),
            (
                b"retry-after",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                0,
                delay(0, HttpDate, false),
            ),
            (
                b"retry-after",
                "Sat, 05 Nov 1994 08:49:37 GMT",
                0,
                delay(0, HttpDate, false),
            ),
            (
                b"retry-after",
                "Sun, 13 Nov 1994 08:49:37 GMT",
                0,
                delay(day, HttpDate, true),
            ),
            (b"retry-after", "", 0, RetryAfter::Invalid),
            (b"retry-after", "-5", 0, RetryAfter::Invalid),
            (b"retry-after", "+5", 0, RetryAfter::Invalid),
            (b"retry-after", "1.5", 0, RetryAfter::Invalid),
            (b"retry-after", "5s", 0, RetryAfter::Invalid),
            (b"retry-after", "0x10", 0, RetryAfter::Invalid),
            (b"retry-after", "soon", 0, RetryAfter::Invalid),
            (b"retry-after", "1 2", 0, RetryAfter::Invalid),
            (b"retry-after", "120, 120", 0, RetryAfter::Invalid),
            (
                b"retry-after",
                "Sun, 06 Nov 1994 08:49:37 PST",
                0,
                RetryAfter::Invalid,
            ),
            (
                b"retry-after",
                "Sun, 32 Nov 1994 08:49:37 GMT",
                0,
                RetryAfter::Invalid,
            ),
        ];
        for (name, value, seconds_before, expected) in table {
            let got = report_for(name, value, example_now(seconds_before));
            assert_eq!(got, Some(expected), "{value:?}");
        }
    }

    #[test]
    fn retry_after_dates_depend_only_on_system_time() {
        // The same instant written in each of the three date forms gives the same wait from a
        // `now` built from Unix seconds, so no local time zone enters the computation.
        let now = example_now(3600);
        let forms = [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ];
        for form in forms {
            let parsed = parse_retry_after(form.as_bytes(), now, Duration::MAX);
            assert_eq!(parsed.wait(), Some(Duration::from_secs(3600)), "{form}");
        }
    }

    #[test]
    fn retry_after_before_epoch_now_does_not_panic() {
        let now = SystemTime::UNIX_EPOCH - Duration::from_secs(1_000);
        let parsed = parse_retry_after(b"Thu, 01 Jan 1970 00:00:00 GMT", now, Duration::MAX);
        assert_eq!(parsed.wait(), Some(Duration::from_secs(1_000)));
    }

    #[test]
    fn retry_after_custom_ceiling_clamps() {
        let parsed = parse_retry_after(b"600", example_now(0), Duration::from_secs(60));
        assert_eq!(parsed, delay(60, RetryAfterForm::Seconds, true));
    }

    #[test]
    fn retry_after_repeated_lines_keep_longest() {
        let mut headers = HeaderMap::new();
        headers.append(RETRY_AFTER, HeaderValue::from_static("30"));
        headers.append(RETRY_AFTER, HeaderValue::from_static("junk"));
        headers.append(RETRY_AFTER, HeaderValue::from_static("90"));
        headers.append(RETRY_AFTER, HeaderValue::from_static("60"));
        let report = read_headers(&headers, example_now(0), &HeadroomConfig::default());
        assert_eq!(
            report.retry_after,
            Some(delay(90, RetryAfterForm::Seconds, false))
        );
        let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
        assert_eq!(reasons, ["retry_after_invalid"]);
    }

    #[test]
    fn retry_after_errors_name_reason_and_escape_value() {
        let mut headers = HeaderMap::new();
        headers.append(RETRY_AFTER, HeaderValue::from_bytes(b"soon\xff\"").unwrap());
        headers.append(RETRY_AFTER, HeaderValue::from_static("999999"));
        let report = read_headers(&headers, example_now(0), &HeadroomConfig::default());
        let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
        assert_eq!(reasons, ["retry_after_invalid", "retry_after_clamped"]);
        let message = report.errors[0].to_string();
        assert!(message.contains(r#"soon\xff\""#), "{message}");
        assert!(message.is_ascii(), "{message}");
    }

    #[test]
    fn retry_after_absent_is_none() {
        let report = read_headers(
            &HeaderMap::new(),
            example_now(0),
            &HeadroomConfig::default(),
        );
        assert_eq!(report.retry_after, None);
        assert!(report.errors.is_empty());
    }
}
