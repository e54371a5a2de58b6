//! The three-field families: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset`, and the IETF drafts' older `RateLimit-Limit`, `RateLimit-Remaining`
//! and `RateLimit-Reset`.
//!
//! Each field may repeat or hold a comma-separated list. The limit may carry a window
//! parameter, as in `100, 100;w=3600`. One family yields at most one policy: the smallest
//! limit (with the window of a member that sent it), the smallest remaining count and the
//! longest wait.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{
    HeaderError, HeadroomConfig, PolicyState, ResetForm, Source, excerpt, push_error,
    saturating_secs, until_unix,
};

/// Below this value an automatic reset is delta seconds: 2001-09-09 as Unix seconds.
const UNIX_SECONDS_FROM: f64 = 1e9;

/// From this value on an automatic reset is Unix milliseconds: 1973-03-03 in milliseconds,
/// and the year 5138 in seconds.
const UNIX_MILLIS_FROM: f64 = 1e11;

/// The header names of one three-field family.
pub(super) struct Family {
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
    source: Source,
    /// Whether [`HeadroomConfig::reset_form`] applies; otherwise the reset is delta seconds.
    configurable_reset: bool,
}

/// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
pub(super) const X_RATELIMIT: Family = Family {
    limit: "X-RateLimit-Limit",
    remaining: "X-RateLimit-Remaining",
    reset: "X-RateLimit-Reset",
    source: Source::XRateLimit,
    configurable_reset: true,
};

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` from IETF drafts 00 to 06,
/// where the reset is always delta seconds.
pub(super) const IETF_SEPARATE: Family = Family {
    limit: "RateLimit-Limit",
    remaining: "RateLimit-Remaining",
    reset: "RateLimit-Reset",
    source: Source::Ietf,
    configurable_reset: false,
};

const COUNT_EXPECTED: &str = "a non-negative integer, optionally with ;w=SECONDS";
const RESET_EXPECTED: &str = "non-negative seconds, a Unix timestamp or an HTTP date";

impl Family {
    fn invalid(&self, header: &'static str, value: &[u8], expected: &'static str) -> HeaderError {
        let value = excerpt(value);
        match self.source {
            Source::XRateLimit => HeaderError::XRatelimitInvalid {
                header,
                value,
                expected,
            },
            Source::Ietf => HeaderError::RatelimitInvalid {
                header,
                value,
                expected,
            },
        }
    }
}

/// Reads one family. Returns `None` when none of its fields is present or none has a valid
/// value.
pub(super) fn read(
    headers: &HeaderMap,
    family: &Family,
    now: SystemTime,
    config: &HeadroomConfig,
    errors: &mut Vec<HeaderError>,
) -> Option<PolicyState> {
    let mut limit: Option<Count> = None;
    for_each_member(headers, family, family.limit, errors, |member| {
        let count = parse_count(member)?;
        let replace = match limit {
            Some(kept) => {
                count.value < kept.value || (count.value == kept.value && kept.window.is_none())
            }
            None => true,
        };
        if replace {
            limit = Some(count);
        }
        Some(())
    });

    let mut remaining: Option<u64> = None;
    for_each_member(headers, family, family.remaining, errors, |member| {
        let count = parse_count(member)?;
        remaining = Some(remaining.map_or(count.value, |kept| kept.min(count.value)));
        Some(())
    });

    let window = limit.and_then(|count| count.window);
    let form = if family.configurable_reset {
        config.reset_form
    } else {
        ResetForm::DeltaSeconds
    };
    let mut reset: Option<(Duration, &[u8])> = None;
    for line in headers.get_all(family.reset) {
        let bytes = line.as_bytes();
        let wait = match std::str::from_utf8(bytes).ok() {
            Some(text) => read_reset_line(text, form, now),
            None => Err(()),
        };
        match wait {
            Ok(Some(wait)) => {
                if reset.is_none_or(|(kept, _)| wait > kept) {
                    reset = Some((wait, bytes));
                }
            }
            Ok(None) => {}
            Err(()) => push_error(errors, family.invalid(family.reset, bytes, RESET_EXPECTED)),
        }
    }
    let reset_after = reset.map(|(wait, bytes)| {
        let cap = window.map_or(config.retry_after_ceiling, |window| {
            window.min(config.retry_after_ceiling)
        });
        if wait > cap {
            push_error(
                errors,
                HeaderError::ResetClamped {
                    value: excerpt(bytes),
                    used: cap,
                },
            );
        }
        wait.min(cap)
    });

    if limit.is_none() && remaining.is_none() && reset_after.is_none() {
        return None;
    }
    Some(PolicyState {
        source: family.source,
        policy: None,
        limit: limit.map(|count| count.value),
        remaining,
        reset_after,
        window,
    })
}

/// A count with an optional window, such as `100` or `100;w=3600`.
#[derive(Clone, Copy)]
struct Count {
    value: u64,
    window: Option<Duration>,
}

/// Calls `parse` on each comma-separated member of every line of `header`, recording one
/// error when a line is not ASCII or a member does not parse. Empty members are skipped.
fn for_each_member(
    headers: &HeaderMap,
    family: &Family,
    header: &'static str,
    errors: &mut Vec<HeaderError>,
    mut parse: impl FnMut(&str) -> Option<()>,
) {
    for line in headers.get_all(header) {
        let Ok(text) = line.to_str() else {
            push_error(
                errors,
                family.invalid(header, line.as_bytes(), COUNT_EXPECTED),
            );
            continue;
        };
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if parse(member).is_none() {
                push_error(
                    errors,
                    family.invalid(header, member.as_bytes(), COUNT_EXPECTED),
                );
            }
        }
    }
}

/// Parses `100` or `100;w=3600`. Parameters other than `w` are ignored, and a zero window is
/// invalid.
fn parse_count(member: &str) -> Option<Count> {
    let mut parts = member.split(';');
    let value = parse_digits(parts.next()?.trim())?;
    let mut window = None;
    for parameter in parts {
        let (key, text) = parameter.split_once('=')?;
        if key.trim() == "w" {
            let seconds = parse_digits(text.trim()).filter(|&s| s > 0)?;
            window = Some(Duration::from_secs(seconds));
        }
    }
    Some(Count { value, window })
}

fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads one reset line: the whole line as an HTTP date, or else the longest wait among its
/// comma-separated numbers. Returns `Ok(None)` for a line with no members and `Err` when any
/// member is invalid.
fn read_reset_line(text: &str, form: ResetForm, now: SystemTime) -> Result<Option<Duration>, ()> {
    let trimmed = text.trim();
    if let Ok(date) = httpdate::parse_http_date(trimmed) {
        return Ok(Some(date.duration_since(now).unwrap_or(Duration::ZERO)));
    }
    let mut longest = None;
    for member in trimmed.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let number = member.split(';').next().unwrap_or_default().trim();
        let seconds = parse_seconds(number).ok_or(())?;
        let wait = reset_wait(seconds, form, now);
        longest = Some(longest.map_or(wait, |kept: Duration| kept.max(wait)));
    }
    Ok(longest)
}

/// Parses a non-negative decimal number: digits with an optional fraction.
fn parse_seconds(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return None;
    }
    // A long run of digits may round to infinity, which saturating_secs reads as the longest
    // wait.
    text.parse().ok()
}

/// Converts a reset number to the wait from `now`, as the module documentation describes.
pub(super) fn reset_wait(value: f64, form: ResetForm, now: SystemTime) -> Duration {
    let form = match form {
        ResetForm::Auto if value < UNIX_SECONDS_FROM => ResetForm::DeltaSeconds,
        ResetForm::Auto if value < UNIX_MILLIS_FROM => ResetForm::UnixSeconds,
        ResetForm::Auto => ResetForm::UnixMillis,
        explicit => explicit,
    };
    match form {
        ResetForm::Auto | ResetForm::DeltaSeconds => saturating_secs(value),
        ResetForm::UnixSeconds => until_unix(now, saturating_secs(value)),
        ResetForm::UnixMillis => until_unix(now, saturating_secs(value / 1000.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headroom::read_headers;
    use http::{HeaderName, HeaderValue};

    /// 2025-01-01T00:00:00Z as Unix seconds.
    const NOW_UNIX: u64 = 1_735_689_600;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
    }

    fn headers(lines: &[(&[u8], &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                HeaderName::from_bytes(name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn only_policy(lines: &[(&[u8], &str)], config: &HeadroomConfig) -> PolicyState {
        let report = read_headers(&headers(lines), now(), config);
        assert!(report.errors.is_empty(), "{lines:?}: {:?}", report.errors);
        assert_eq!(report.policies.len(), 1, "{lines:?}");
        report.policies[0].clone()
    }

    /// A counts table row: header lines, then the expected limit, remaining count and window.
    type CountsRow<'a> = (
        &'a [(&'a [u8], &'a str)],
        Option<u64>,
        Option<u64>,
        Option<Duration>,
    );

    /// A reset table row: header name, value, expected reset and expected error reasons.
    type ResetRow<'a> = (&'a [u8], String, Option<Duration>, &'a [&'a str]);

    #[expect(clippy::unnecessary_wraps, reason = "rows compare with Option fields")]
    fn secs(seconds: u64) -> Option<Duration> {
        Some(Duration::from_secs(seconds))
    }

    #[test]
    fn x_ratelimit_reset_auto_table() {
        let config = HeadroomConfig::default();
        let later = NOW_UNIX + 90;
        let clamped: &[&str] = &["reset_clamped"];
        let table: [ResetRow; 15] = [
            (b"x-ratelimit-reset", "60".into(), secs(60), &[]),
            (b"X-RateLimit-Reset", "60".into(), secs(60), &[]),
            (b"X-RATELIMIT-RESET", "0".into(), secs(0), &[]),
            (
                b"x-ratelimit-reset",
                "1.5".into(),
                Some(Duration::from_millis(1500)),
                &[],
            ),
            (b"x-ratelimit-reset", "86400".into(), secs(86_400), &[]),
            (b"x-ratelimit-reset", "86401".into(), secs(86_400), clamped),
            (
                b"x-ratelimit-reset",
                "999999999".into(),
                secs(86_400),
                clamped,
            ),
            (b"x-RateLimit-reset", later.to_string(), secs(90), &[]),
            (
                b"x-ratelimit-reset",
                format!("{later}.5"),
                Some(Duration::from_millis(90_500)),
                &[],
            ),
            (
                b"x-ratelimit-reset",
                (NOW_UNIX - 10).to_string(),
                secs(0),
                &[],
            ),
            (b"x-ratelimit-reset", "1000000000".into(), secs(0), &[]),
            (
                b"X-Ratelimit-Reset",
                (later * 1000).to_string(),
                secs(90),
                &[],
            ),
            (b"x-ratelimit-reset", "100000000000".into(), secs(0), &[]),
            (
                b"x-ratelimit-reset",
                "Wed, 01 Jan 2025 00:01:30 GMT".into(),
                secs(90),
                &[],
            ),
            (b"x-ratelimit-reset", "30, 45".into(), secs(45), &[]),
        ];
        for (name, value, expected, reasons) in table {
            let report = read_headers(&headers(&[(name, &value)]), now(), &config);
            assert_eq!(report.policies.len(), 1, "{value}");
            assert_eq!(report.policies[0].reset_after, expected, "{value}");
            assert_eq!(report.policies[0].source, Source::XRateLimit, "{value}");
            let got: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
            assert_eq!(got, reasons, "{value}");
        }
    }

    #[test]
    fn x_ratelimit_reset_explicit_form_table() {
        let later = NOW_UNIX + 30;
        let table: [(ResetForm, String, Option<Duration>); 6] = [
            (ResetForm::DeltaSeconds, "1000".into(), secs(1000)),
            (ResetForm::DeltaSeconds, later.to_string(), secs(86_400)),
            (ResetForm::UnixSeconds, later.to_string(), secs(30)),
            (ResetForm::UnixSeconds, "5".into(), secs(0)),
            (ResetForm::UnixMillis, (later * 1000).to_string(), secs(30)),
            (
                ResetForm::UnixMillis,
                (later * 1000 + 250).to_string(),
                Some(Duration::from_millis(30_250)),
            ),
        ];
        for (form, value, expected) in table {
            let config = HeadroomConfig {
                reset_form: form,
                ..HeadroomConfig::default()
            };
            let report = read_headers(&headers(&[(b"x-ratelimit-reset", &value)]), now(), &config);
            assert_eq!(report.policies[0].reset_after, expected, "{form:?} {value}");
        }
    }

    #[test]
    fn x_ratelimit_counts_table() {
        let config = HeadroomConfig::default();
        let table: [CountsRow; 9] = [
            (&[(b"x-ratelimit-limit", "100")], Some(100), None, None),
            (&[(b"X-RateLimit-Limit", "100")], Some(100), None, None),
            (&[(b"X-RATELIMIT-REMAINING", "42")], None, Some(42), None),
            (&[(b"x-ratelimit-remaining", " 0 ")], None, Some(0), None),
            (
                &[(b"x-ratelimit-limit", "100, 100;w=3600")],
                Some(100),
                None,
                secs(3600),
            ),
            (
                &[(b"x-ratelimit-limit", "10, 10;w=1, 50;w=60")],
                Some(10),
                None,
                secs(1),
            ),
            (
                &[(b"x-ratelimit-limit", "100"), (b"X-RateLimit-Limit", "60")],
                Some(60),
                None,
                None,
            ),
            (
                &[
                    (b"x-ratelimit-remaining", "5"),
                    (b"x-ratelimit-remaining", "3"),
                ],
                None,
                Some(3),
                None,
            ),
            (&[(b"x-ratelimit-remaining", "7, 9")], None, Some(7), None),
        ];
        for (lines, limit, remaining, window) in table {
            let policy = only_policy(lines, &config);
            assert_eq!(policy.limit, limit, "{lines:?}");
            assert_eq!(policy.remaining, remaining, "{lines:?}");
            assert_eq!(policy.window, window, "{lines:?}");
        }
    }

    #[test]
    fn x_ratelimit_full_set_reads_one_policy() {
        let policy = only_policy(
            &[
                (b"X-RateLimit-Limit", "5000"),
                (b"X-RateLimit-Remaining", "4990"),
                (b"X-RateLimit-Reset", &(NOW_UNIX + 3000).to_string()),
            ],
            &HeadroomConfig::default(),
        );
        let expected = PolicyState {
            source: Source::XRateLimit,
            policy: None,
            limit: Some(5000),
            remaining: Some(4990),
            reset_after: secs(3000),
            window: None,
        };
        assert_eq!(policy, expected);
    }

    #[test]
    fn x_ratelimit_reset_is_capped_by_window() {
        let report = read_headers(
            &headers(&[
                (b"x-ratelimit-limit", "100;w=60"),
                (b"x-ratelimit-reset", "600"),
            ]),
            now(),
            &HeadroomConfig::default(),
        );
        assert_eq!(report.policies[0].reset_after, secs(60));
        let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
        assert_eq!(reasons, ["reset_clamped"]);
    }

    #[test]
    fn x_ratelimit_invalid_values_table() {
        let table: [(&[u8], &str); 10] = [
            (b"x-ratelimit-limit", "-1"),
            (b"x-ratelimit-limit", "ten"),
            (b"x-ratelimit-limit", "1.5"),
            (b"x-ratelimit-limit", "100;w=0"),
            (b"x-ratelimit-limit", "100;w"),
            (b"x-ratelimit-remaining", "99999999999999999999999"),
            (b"X-RateLimit-Remaining", "+3"),
            (b"x-ratelimit-reset", "-60"),
            (b"x-ratelimit-reset", "1e3"),
            (b"x-ratelimit-reset", "5."),
        ];
        for (name, value) in table {
            let report = read_headers(
                &headers(&[(name, value)]),
                now(),
                &HeadroomConfig::default(),
            );
            assert!(report.policies.is_empty(), "{value}");
            let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
            assert_eq!(reasons, ["x_ratelimit_invalid"], "{value}");
        }
    }

    #[test]
    fn x_ratelimit_keeps_valid_lines_beside_invalid_ones() {
        let report = read_headers(
            &headers(&[
                (b"x-ratelimit-remaining", "junk"),
                (b"x-ratelimit-remaining", "12"),
            ]),
            now(),
            &HeadroomConfig::default(),
        );
        assert_eq!(report.policies[0].remaining, Some(12));
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].as_str(), "x_ratelimit_invalid");
    }

    #[test]
    fn ietf_separate_fields_table() {
        let config = HeadroomConfig::default();
        let table: [(&[u8], &str, &str, &str); 3] = [
            (b"ratelimit-limit", "100", "42", "1800"),
            (b"RateLimit-Limit", "100", "42", "1800"),
            (b"RATELIMIT-LIMIT", "100", "42", "1800"),
        ];
        for (limit_name, limit, remaining, reset) in table {
            let policy = only_policy(
                &[
                    (limit_name, limit),
                    (b"RateLimit-Remaining", remaining),
                    (b"ratelimit-reset", reset),
                ],
                &config,
            );
            assert_eq!(policy.source, Source::Ietf);
            assert_eq!(policy.limit, Some(100));
            assert_eq!(policy.remaining, Some(42));
            assert_eq!(policy.reset_after, secs(1800));
        }
    }

    #[test]
    fn ietf_separate_reset_is_always_delta_seconds() {
        let value = (NOW_UNIX + 30).to_string();
        let report = read_headers(
            &headers(&[(b"ratelimit-reset", &value)]),
            now(),
            &HeadroomConfig::default(),
        );
        assert_eq!(report.policies[0].reset_after, secs(86_400));
    }

    #[test]
    fn ietf_separate_invalid_value_counts_ratelimit_invalid() {
        let report = read_headers(
            &headers(&[(b"RateLimit-Remaining", "lots")]),
            now(),
            &HeadroomConfig::default(),
        );
        assert!(report.policies.is_empty());
        let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
        assert_eq!(reasons, ["ratelimit_invalid"]);
    }

    #[test]
    fn reset_wait_detection_boundaries() {
        let table = [
            (999_999_999.0, secs(999_999_999)),
            (1e9, secs(0)),
            (NOW_UNIX as f64 + 5.0, secs(5)),
            (99_999_999_999.0, secs(99_999_999_999 - NOW_UNIX)),
            (1e11, secs(0)),
            ((NOW_UNIX * 1000 + 5000) as f64, secs(5)),
            (f64::INFINITY, Some(Duration::MAX)),
        ];
        for (value, expected) in table {
            assert_eq!(
                Some(reset_wait(value, ResetForm::Auto, now())),
                expected,
                "{value}"
            );
        }
    }
}
