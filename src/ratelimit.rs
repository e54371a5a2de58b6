//! Documented rate limits: a number of requests per window, written `N/unit` or
//! `N/duration`, such as `20/s`, `100/hour` or `5/30s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest window accepted. Longer windows are almost always a typo, and the ledger keeps
/// one timestamp per request inside the longest window.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// One documented limit: at most `limit` requests in any window of length `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// The number of requests allowed per window; never zero.
    pub limit: u64,
    /// The window length; at least one millisecond and at most [`MAX_WINDOW`].
    pub window: Duration,
}

/// A rate limit that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid rate limit {value:?}: {reason}; write N/s, N/min, N/hour, N/day or N/<duration> such as 5/30s"
)]
pub struct RateLimitError {
    /// The text as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| RateLimitError {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (count, unit) = value
            .split_once('/')
            .ok_or_else(|| error("missing '/' between the count and the window"))?;
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error("the count must be a whole number"));
        }
        let limit: u64 = count.parse().map_err(|_| error("the count is too large"))?;
        if limit == 0 {
            return Err(error("the count must be at least 1"));
        }
        let window = parse_window(unit.trim()).map_err(|reason| error(&reason))?;
        if window < Duration::from_millis(1) {
            return Err(error("the window must be at least 1ms"));
        }
        if window > MAX_WINDOW {
            return Err(error("the window must be at most 366 days"));
        }
        Ok(RateLimit { limit, window })
    }
}

fn parse_window(unit: &str) -> Result<Duration, String> {
    let named = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600),
        "d" | "day" | "days" => Some(86_400),
        _ => None,
    };
    if let Some(seconds) = named {
        return Ok(Duration::from_secs(seconds));
    }
    if unit.is_empty() {
        return Err("the window is missing".to_owned());
    }
    if !unit.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "the window {unit:?} is not a known unit; use s, min, hour or day (singular or plural)"
        ));
    }
    humantime::parse_duration(unit)
        .map_err(|e| format!("the window {unit:?} is not a duration ({e})"))
}

impl RateLimit {
    /// Returns the window as a short, stable label value such as `1s`, `1h` or `30s`.
    #[must_use]
    pub fn window_label(&self) -> String {
        format_window(self.window)
    }
}

/// Formats a window with the largest unit that divides it exactly: `1d`, `1h`, `1m`, `30s`,
/// `250ms`.
#[must_use]
pub fn format_window(window: Duration) -> String {
    let millis = window.as_millis();
    let units: [(u128, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (size, suffix) in units {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{suffix}", millis / size);
        }
    }
    format!("{millis}ms")
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, format_window(self.window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> (u64, u64) {
        let limit: RateLimit = value.parse().unwrap();
        (limit.limit, limit.window.as_secs())
    }

    #[test]
    fn parses_named_units_and_durations() {
        let table = [
            ("20/s", (20, 1)),
            ("20/second", (20, 1)),
            ("60/min", (60, 60)),
            ("60/m", (60, 60)),
            ("100/hour", (100, 3600)),
            ("5/hours", (5, 3600)),
            ("5/hrs", (5, 3600)),
            ("5/minutes", (5, 60)),
            ("5/mins", (5, 60)),
            ("5/seconds", (5, 1)),
            ("5/secs", (5, 1)),
            ("5/days", (5, 86_400)),
            ("100/h", (100, 3600)),
            ("100/day", (100, 86_400)),
            ("1/day", (1, 86_400)),
            ("5/30s", (5, 30)),
            ("10/2h", (10, 7200)),
            ("7/1h30m", (7, 5400)),
            (" 3 / 10s ", (3, 10)),
        ];
        for (value, expected) in table {
            assert_eq!(parsed(value), expected, "{value}");
        }
    }

    #[test]
    fn rejects_bad_limits_with_reason() {
        let table = [
            ("100", "missing '/' between the count and the window"),
            ("/s", "the count must be a whole number"),
            ("-1/s", "the count must be a whole number"),
            ("1.5/s", "the count must be a whole number"),
            ("0/s", "the count must be at least 1"),
            ("99999999999999999999999/s", "the count is too large"),
            ("10/", "the window is missing"),
            ("10/0s", "the window must be at least 1ms"),
            ("10/400days", "the window must be at most 366 days"),
        ];
        for (value, reason) in table {
            let err = value.parse::<RateLimit>().unwrap_err();
            assert_eq!(err.reason, reason, "{value}");
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
            assert!(err.to_string().contains("N/<duration>"), "{err}");
        }
        for value in ["10/fortnight", "10/hourz", "10/weeks"] {
            let err = value.parse::<RateLimit>().unwrap_err();
            assert!(
                err.reason
                    .contains("is not a known unit; use s, min, hour or day"),
                "{}",
                err.reason
            );
        }
        let err = "10/5 parsecs".parse::<RateLimit>().unwrap_err();
        assert!(
            err.reason.contains("\"5 parsecs\" is not a duration"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn window_labels_use_largest_exact_unit() {
        let table = [
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(5400), "90m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(250), "250ms"),
        ];
        for (window, label) in table {
            assert_eq!(format_window(window), label);
        }
        assert_eq!(
            "100/hour".parse::<RateLimit>().unwrap().to_string(),
            "100/1h"
        );
    }
}
