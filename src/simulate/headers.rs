//! Rate-limit response headers in the styles that APIs commonly send.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::scenario::{HeaderStyle, ResetFormat};
use super::window::Quota;
use crate::ratelimit::format_window;

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Rounds up to whole seconds.
pub(crate) fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Adds the headers of `style` for `quotas`, computed at `now` on the simulator clock and
/// `wall_now` on the system clock. Adds nothing when the endpoint has no limit.
///
/// A reset time is when the oldest request in the key's window leaves it and a slot frees.
pub(crate) fn insert_rate_limit_headers(
    headers: &mut HeaderMap,
    style: HeaderStyle,
    quotas: &[Quota],
    now: Instant,
    wall_now: SystemTime,
) {
    if quotas.is_empty() {
        return;
    }
    match style {
        HeaderStyle::None => {}
        HeaderStyle::XRateLimit { reset } => {
            insert_x_ratelimit(headers, reset, quotas, now, wall_now);
        }
        HeaderStyle::Ietf { split } => insert_ietf(headers, split, quotas, now),
    }
}

/// Sends the quota with the fewest slots left, since these headers describe one limit only.
/// Among equals it sends the one that resets last.
fn insert_x_ratelimit(
    headers: &mut HeaderMap,
    format: ResetFormat,
    quotas: &[Quota],
    now: Instant,
    wall_now: SystemTime,
) {
    let Some(quota) = quotas.iter().min_by(|a, b| {
        a.remaining
            .cmp(&b.remaining)
            .then(b.reset_at.cmp(&a.reset_at))
    }) else {
        return;
    };
    let delta = quota.reset_at.saturating_duration_since(now);
    let since_epoch = (wall_now + delta)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let reset = match format {
        ResetFormat::DeltaSeconds => ceil_seconds(delta),
        ResetFormat::UnixSeconds => ceil_seconds(since_epoch),
        ResetFormat::UnixMillis => since_epoch.as_millis() as u64,
    };
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(quota.limit.limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(quota.remaining));
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
}

/// Sends one list member per limit, named `"default"` when there is one limit and after the
/// window (such as `"1h"`) when there are several. With `split`, each member goes on its own
/// header line, which a recipient joins with commas into the same list.
fn insert_ietf(headers: &mut HeaderMap, split: bool, quotas: &[Quota], now: Instant) {
    let name = |quota: &Quota| {
        if quotas.len() == 1 {
            "default".to_owned()
        } else {
            format_window(quota.limit.window)
        }
    };
    let policies: Vec<String> = quotas
        .iter()
        .map(|quota| {
            let window = ceil_seconds(quota.limit.window).max(1);
            format!("\"{}\";q={};w={window}", name(quota), quota.limit.limit)
        })
        .collect();
    let states: Vec<String> = quotas
        .iter()
        .map(|quota| {
            let reset = ceil_seconds(quota.reset_at.saturating_duration_since(now));
            format!("\"{}\";r={};t={reset}", name(quota), quota.remaining)
        })
        .collect();
    for (header, members) in [(RATELIMIT_POLICY, policies), (RATELIMIT, states)] {
        let lines = if split {
            members
        } else {
            vec![members.join(", ")]
        };
        for line in lines {
            let value = HeaderValue::try_from(line).expect("members are ASCII digits and names");
            headers.append(header.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::RateLimit;

    fn quota(limit: &str, remaining: u64, reset_at: Instant) -> Quota {
        Quota {
            limit: limit.parse::<RateLimit>().unwrap(),
            remaining,
            reset_at,
        }
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn x_ratelimit_reset_formats() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let quotas = [quota(
            "100/hour",
            42,
            now + Duration::from_millis(1_799_500),
        )];
        let cases = [
            (ResetFormat::DeltaSeconds, "1800"),
            (ResetFormat::UnixSeconds, "1700001800"),
            (ResetFormat::UnixMillis, "1700001799750"),
        ];
        for (format, expected) in cases {
            let mut headers = HeaderMap::new();
            let style = HeaderStyle::XRateLimit { reset: format };
            insert_rate_limit_headers(&mut headers, style, &quotas, now, wall);
            assert_eq!(values(&headers, "x-ratelimit-limit"), ["100"]);
            assert_eq!(values(&headers, "x-ratelimit-remaining"), ["42"]);
            assert_eq!(
                values(&headers, "x-ratelimit-reset"),
                [expected],
                "{format:?}"
            );
        }
    }

    #[test]
    fn x_ratelimit_sends_tightest_limit() {
        let now = Instant::now();
        let quotas = [
            quota("20/s", 19, now + Duration::from_secs(1)),
            quota("100/day", 3, now + Duration::from_secs(500)),
        ];
        let mut headers = HeaderMap::new();
        let style = HeaderStyle::XRateLimit {
            reset: ResetFormat::DeltaSeconds,
        };
        insert_rate_limit_headers(&mut headers, style, &quotas, now, SystemTime::now());
        assert_eq!(values(&headers, "x-ratelimit-limit"), ["100"]);
        assert_eq!(values(&headers, "x-ratelimit-remaining"), ["3"]);
        assert_eq!(values(&headers, "x-ratelimit-reset"), ["500"]);
    }

    #[test]
    fn ietf_single_policy_is_default() {
        let now = Instant::now();
        let quotas = [quota("100/hour", 42, now + Duration::from_secs(1800))];
        let mut headers = HeaderMap::new();
        let style = HeaderStyle::Ietf { split: false };
        insert_rate_limit_headers(&mut headers, style, &quotas, now, SystemTime::now());
        assert_eq!(
            values(&headers, "ratelimit-policy"),
            ["\"default\";q=100;w=3600"]
        );
        assert_eq!(values(&headers, "ratelimit"), ["\"default\";r=42;t=1800"]);
    }

    #[test]
    fn ietf_split_sends_one_line_per_policy() {
        let now = Instant::now();
        let quotas = [
            quota("20/s", 20, now),
            quota("100/day", 7, now + Duration::from_millis(100)),
        ];
        let mut joined = HeaderMap::new();
        insert_rate_limit_headers(
            &mut joined,
            HeaderStyle::Ietf { split: false },
            &quotas,
            now,
            SystemTime::now(),
        );
        assert_eq!(
            values(&joined, "ratelimit-policy"),
            ["\"1s\";q=20;w=1, \"1d\";q=100;w=86400"]
        );
        assert_eq!(
            values(&joined, "ratelimit"),
            ["\"1s\";r=20;t=0, \"1d\";r=7;t=1"]
        );

        let mut split = HeaderMap::new();
        insert_rate_limit_headers(
            &mut split,
            HeaderStyle::Ietf { split: true },
            &quotas,
            now,
            SystemTime::now(),
        );
        assert_eq!(
            values(&split, "ratelimit-policy"),
            ["\"1s\";q=20;w=1", "\"1d\";q=100;w=86400"]
        );
        assert_eq!(
            values(&split, "ratelimit"),
            ["\"1s\";r=20;t=0", "\"1d\";r=7;t=1"]
        );
    }

    #[test]
    fn no_limit_sends_no_headers() {
        let mut headers = HeaderMap::new();
        let style = HeaderStyle::Ietf { split: false };
        insert_rate_limit_headers(&mut headers, style, &[], Instant::now(), SystemTime::now());
        assert!(headers.is_empty());
    }
}
