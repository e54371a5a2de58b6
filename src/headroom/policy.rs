//! Choosing among policies: the most restrictive one, the pacing interval it implies, and the
//! bounds that keep policy names usable as metric labels.

use std::cmp::{Ordering, Reverse};
use std::time::Duration;

use super::{
    HeaderError, HeaderReport, MAX_POLICIES, MAX_POLICY_NAME_LEN, OTHER_POLICY_NAME, PolicyState,
    excerpt, push_error,
};

/// Computes the interval the scheduler should use so that it stays within the remaining
/// allowance of the most restrictive policy until that policy resets.
///
/// The result is `reset_after / remaining`, or `reset_after` when nothing remains, and never
/// shorter than `planned_interval`, so a generous server never speeds the scheduler up.
/// Returns `None` when no policy has both a remaining count and a reset time. `Retry-After`
/// is not considered here: the caller reads [`HeaderReport::retry_after`] for a one-off wait.
#[must_use]
pub fn pace(report: &HeaderReport, planned_interval: Duration) -> Option<Duration> {
    let interval = report.most_restrictive()?.interval()?;
    Some(interval.max(planned_interval))
}

/// Returns the policy with the longest interval, preferring the smaller remaining count and
/// then the earlier policy on ties.
pub(super) fn most_restrictive(policies: &[PolicyState]) -> Option<&PolicyState> {
    let mut best: Option<&PolicyState> = None;
    for policy in policies.iter().filter(|p| p.interval().is_some()) {
        if best.is_none_or(|kept| compare(policy, kept) == Ordering::Greater) {
            best = Some(policy);
        }
    }
    best
}

/// Orders policies from least to most restrictive. Policies with a known interval come after
/// those without, and among those without, a smaller remaining count is more restrictive.
fn compare(a: &PolicyState, b: &PolicyState) -> Ordering {
    let key = |p: &PolicyState| {
        (
            p.interval(),
            Reverse(p.remaining.unwrap_or(u64::MAX)),
            p.reset_after,
        )
    };
    key(a).cmp(&key(b))
}

/// Divides `duration` by `divisor` without overflow. `divisor` must not be zero.
pub(super) fn divide(duration: Duration, divisor: u64) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let nanos = duration.as_nanos() / u128::from(divisor.max(1));
    // The quotient is at most `duration` in nanoseconds, so the seconds fit in u64.
    Duration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    )
}

/// Applies the label bounds: replaces invalid policy names with [`OTHER_POLICY_NAME`] and keeps
/// the [`MAX_POLICIES`] most restrictive policies in their original order.
pub(super) fn bound(
    mut policies: Vec<PolicyState>,
    errors: &mut Vec<HeaderError>,
) -> Vec<PolicyState> {
    for policy in &mut policies {
        let Some(name) = &policy.policy else {
            continue;
        };
        if !is_valid_name(name) {
            push_error(
                errors,
                HeaderError::PolicyNameInvalid {
                    name: excerpt(name.as_bytes()),
                },
            );
            policy.policy = Some(OTHER_POLICY_NAME.to_owned());
        }
    }

    if policies.len() <= MAX_POLICIES {
        return policies;
    }
    push_error(
        errors,
        HeaderError::TooManyPolicies {
            count: policies.len(),
        },
    );
    let mut ranked: Vec<usize> = (0..policies.len()).collect();
    // A stable sort keeps the earlier policy first among equals.
    ranked.sort_by(|&a, &b| compare(&policies[b], &policies[a]));
    let mut keep = vec![false; policies.len()];
    for &index in ranked.iter().take(MAX_POLICIES) {
        keep[index] = true;
    }
    policies
        .into_iter()
        .zip(keep)
        .filter_map(|(policy, kept)| kept.then_some(policy))
        .collect()
}

/// Checks that a policy name is 1 to [`MAX_POLICY_NAME_LEN`] characters from
/// `[A-Za-z0-9_.:-]`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headroom::{HeadroomConfig, Source, read_headers};
    use http::{HeaderMap, HeaderName, HeaderValue};
    use std::time::SystemTime;

    const NOW_UNIX: u64 = 1_735_689_600;

    fn report(lines: &[(&str, &str)]) -> HeaderReport {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        read_headers(
            &map,
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX),
            &HeadroomConfig::default(),
        )
    }

    /// A pace table row: header lines and the expected interval.
    type PaceRow<'a> = (&'a [(&'a str, &'a str)], Option<Duration>);

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn pace_table() {
        let planned = secs(1);
        let table: [PaceRow; 13] = [
            (&[("ratelimit", r#""a";r=10;t=100"#)], Some(secs(10))),
            (&[("RateLimit", r#""a";r=1000;t=100"#)], Some(planned)),
            (&[("ratelimit", r#""a";r=0;t=100"#)], Some(secs(100))),
            (&[("ratelimit", r#""a";r=0;t=0"#)], Some(planned)),
            (
                &[("ratelimit", r#""a";r=3;t=10"#)],
                Some(Duration::from_nanos(3_333_333_333)),
            ),
            (&[("ratelimit", r#""a";r=10"#)], None),
            (&[("ratelimit-policy", r#""a";q=10;w=60"#)], None),
            (&[], None),
            (
                &[
                    ("X-RateLimit-Remaining", "100"),
                    ("X-RateLimit-Reset", "100"),
                    ("RateLimit", r#""a";r=5;t=100"#),
                ],
                Some(secs(20)),
            ),
            (
                &[
                    ("x-ratelimit-remaining", "5"),
                    ("x-ratelimit-reset", "100"),
                    ("ratelimit", r#""a";r=100;t=100"#),
                ],
                Some(secs(20)),
            ),
            (
                &[(
                    "ratelimit",
                    r#""burst";r=1;t=1, "hourly";r=10;t=3600, "daily";r=500;t=86400"#,
                )],
                Some(secs(360)),
            ),
            (
                &[("ratelimit", r#""burst";r=0;t=30, "hourly";r=10;t=100"#)],
                Some(secs(30)),
            ),
            (
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &(NOW_UNIX + 45).to_string()),
                ],
                Some(secs(45)),
            ),
        ];
        for (lines, expected) in table {
            assert_eq!(pace(&report(lines), planned), expected, "{lines:?}");
        }
    }

    #[test]
    fn pace_never_speeds_up() {
        let report = report(&[("ratelimit", r#""a";r=10;t=100"#)]);
        assert_eq!(pace(&report, secs(60)), Some(secs(60)));
    }

    #[test]
    fn most_restrictive_picks_longest_interval() {
        let report = report(&[
            (
                "ratelimit-policy",
                r#""hourly";q=100;w=3600, "minute";q=10;w=60"#,
            ),
            ("ratelimit", r#""hourly";r=20;t=3000, "minute";r=9;t=30"#),
        ]);
        let chosen = report.most_restrictive().unwrap();
        assert_eq!(chosen.policy.as_deref(), Some("hourly"));
        assert_eq!(chosen.interval(), Some(secs(150)));
    }

    #[test]
    fn most_restrictive_tie_prefers_smaller_remaining() {
        let report = report(&[("ratelimit", r#""big";r=20;t=200, "small";r=2;t=20"#)]);
        let chosen = report.most_restrictive().unwrap();
        assert_eq!(chosen.policy.as_deref(), Some("small"));
    }

    #[test]
    fn most_restrictive_skips_policies_without_interval() {
        let report = report(&[
            ("x-ratelimit-remaining", "0"),
            ("ratelimit", r#""a";r=50;t=100"#),
        ]);
        let chosen = report.most_restrictive().unwrap();
        assert_eq!(chosen.source, Source::Ietf);
        assert_eq!(chosen.remaining, Some(50));
    }

    #[test]
    fn policy_names_table() {
        let long_valid = "a".repeat(64);
        let long_invalid = "a".repeat(65);
        let table: [(String, &str, &[&str]); 9] = [
            ("default".into(), "default", &[]),
            ("Tier_1.read:v2-x".into(), "Tier_1.read:v2-x", &[]),
            (long_valid.clone(), &long_valid, &[]),
            (long_invalid, OTHER_POLICY_NAME, &["policy_name_invalid"]),
            (String::new(), OTHER_POLICY_NAME, &["policy_name_invalid"]),
            (
                "has space".into(),
                OTHER_POLICY_NAME,
                &["policy_name_invalid"],
            ),
            ("a/b".into(), OTHER_POLICY_NAME, &["policy_name_invalid"]),
            (
                "quote\\\"d".into(),
                OTHER_POLICY_NAME,
                &["policy_name_invalid"],
            ),
            ("{user}".into(), OTHER_POLICY_NAME, &["policy_name_invalid"]),
        ];
        for (name, expected, reasons) in table {
            let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
            let report = report(&[("ratelimit", &format!("\"{escaped}\";r=1;t=1"))]);
            assert_eq!(report.policies.len(), 1, "{name}");
            assert_eq!(
                report.policies[0].policy.as_deref(),
                Some(expected),
                "{name}"
            );
            let got: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
            assert_eq!(got, reasons, "{name}");
        }
    }

    #[test]
    fn token_policy_name_with_slash_becomes_other() {
        let report = report(&[("ratelimit", "api/v1;r=1;t=1")]);
        assert_eq!(
            report.policies[0].policy.as_deref(),
            Some(OTHER_POLICY_NAME)
        );
        assert_eq!(report.errors[0].as_str(), "policy_name_invalid");
    }

    #[test]
    fn too_many_policies_keeps_most_restrictive_in_order() {
        // p0 to p9 have intervals of 1s to 10s, so p2 to p9 are the eight most restrictive.
        let members: Vec<String> = (0..10)
            .map(|i| format!("\"p{i}\";r=10;t={}", (i + 1) * 10))
            .collect();
        let report = report(&[("ratelimit", &members.join(", "))]);
        let names: Vec<_> = report
            .policies
            .iter()
            .map(|p| p.policy.clone().unwrap())
            .collect();
        assert_eq!(names, ["p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]);
        assert_eq!(report.errors, [HeaderError::TooManyPolicies { count: 10 }]);
        assert_eq!(
            report.most_restrictive().unwrap().policy.as_deref(),
            Some("p9")
        );
    }

    #[test]
    fn too_many_policies_counts_every_source() {
        let members: Vec<String> = (0..8).map(|i| format!("\"p{i}\";r=1;t=1")).collect();
        let report = report(&[
            ("ratelimit", &members.join(", ")),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "600"),
        ]);
        assert_eq!(report.policies.len(), MAX_POLICIES);
        assert_eq!(report.policies[0].source, Source::XRateLimit);
        assert_eq!(report.errors[0].as_str(), "too_many_policies");
    }

    #[test]
    fn divide_handles_extremes() {
        assert_eq!(divide(Duration::MAX, 1), Duration::MAX);
        assert_eq!(divide(secs(10), 4), Duration::from_millis(2500));
        assert_eq!(divide(secs(1), u64::MAX), Duration::ZERO);
        assert_eq!(divide(secs(7), 0), secs(7));
    }
}
