//! The IETF structured fields `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers).
//!
//! The current form is a list of named items:
//!
//! ```text
//! RateLimit-Policy: "default";q=100;w=3600, "daily";q=1000;w=86400
//! RateLimit: "default";r=42;t=1800
//! ```
//!
//! where `q` is the quota, `w` the window in seconds, `r` the remaining quota and `t` the
//! seconds until the reset. A policy and its state are joined by name. An older form
//! sends an unnamed dictionary with integer policies instead:
//!
//! ```text
//! RateLimit-Policy: 100;w=3600, 1000;w=86400
//! RateLimit: limit=100, remaining=42, reset=1800
//! ```
//!
//! and that state is joined with the integer policy whose quota equals its `limit`. Each line
//! is parsed on its own and the members are merged, so a list split across repeated lines
//! reads the same as one line, and one malformed line does not hide the others.

use std::time::Duration;

use http::HeaderMap;
use sfv::{BareItem, Dictionary, List, ListEntry, Parameters, Parser};

use super::{HeaderError, HeadroomConfig, PolicyState, Source, excerpt, push_error};

const RATELIMIT: &str = "ratelimit";
const RATELIMIT_POLICY: &str = "ratelimit-policy";
const RATELIMIT_EXPECTED: &str =
    "a structured-field list such as \"default\";r=42;t=1800 or limit=N, remaining=N, reset=N";

/// One member of `RateLimit-Policy`.
struct Policy {
    /// `None` for an integer policy of the older form.
    name: Option<String>,
    quota: Option<u64>,
    window: Option<Duration>,
}

/// One member of `RateLimit`, or the merged dictionary of the older form.
#[derive(Default)]
struct State {
    /// `None` for the dictionary of the older form.
    name: Option<String>,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
}

/// Reads `RateLimit-Policy` and `RateLimit` into one policy per name, plus the unnamed
/// dictionary state and integer policies of the older form.
pub(super) fn read(
    headers: &HeaderMap,
    config: &HeadroomConfig,
    errors: &mut Vec<HeaderError>,
) -> Vec<PolicyState> {
    let policies = read_policies(headers, errors);
    let (named_states, unnamed_state) = read_states(headers, errors);

    let mut joined: Vec<PolicyState> = Vec::new();
    let mut unnamed_policies = Vec::new();
    for policy in policies {
        match policy.name {
            Some(name) => joined.push(PolicyState {
                source: Source::Ietf,
                policy: Some(name),
                limit: policy.quota,
                remaining: None,
                reset_after: None,
                window: policy.window,
            }),
            None => unnamed_policies.push(policy),
        }
    }
    for state in named_states {
        let existing = joined.iter_mut().find(|p| p.policy == state.name);
        match existing {
            Some(policy) => {
                policy.remaining = state.remaining;
                policy.reset_after = state.reset;
            }
            None => joined.push(PolicyState {
                source: Source::Ietf,
                policy: state.name,
                limit: None,
                remaining: state.remaining,
                reset_after: state.reset,
                window: None,
            }),
        }
    }
    if let Some(state) = unnamed_state {
        let matching = match state.limit {
            Some(limit) => unnamed_policies.iter().position(|p| p.quota == Some(limit)),
            None if unnamed_policies.len() == 1 => Some(0),
            None => None,
        };
        let policy = matching.map(|index| unnamed_policies.remove(index));
        joined.push(PolicyState {
            source: Source::Ietf,
            policy: None,
            limit: state.limit.or(policy.as_ref().and_then(|p| p.quota)),
            remaining: state.remaining,
            reset_after: state.reset,
            window: policy.and_then(|p| p.window),
        });
    }
    joined.extend(unnamed_policies.into_iter().map(|policy| PolicyState {
        source: Source::Ietf,
        policy: None,
        limit: policy.quota,
        remaining: None,
        reset_after: None,
        window: policy.window,
    }));

    for policy in &mut joined {
        cap_reset(policy, config, errors);
    }
    joined
}

/// Cuts the reset time to the window and the ceiling.
fn cap_reset(policy: &mut PolicyState, config: &HeadroomConfig, errors: &mut Vec<HeaderError>) {
    let Some(reset) = policy.reset_after else {
        return;
    };
    let cap = policy.window.map_or(config.retry_after_ceiling, |window| {
        window.min(config.retry_after_ceiling)
    });
    if reset > cap {
        push_error(
            errors,
            HeaderError::ResetClamped {
                value: format!("{}s", reset.as_secs()),
                used: cap,
            },
        );
        policy.reset_after = Some(cap);
    }
}

/// Parses every `RateLimit-Policy` line. Of two policies with the same name, the one with the
/// smaller quota is kept.
fn read_policies(headers: &HeaderMap, errors: &mut Vec<HeaderError>) -> Vec<Policy> {
    let mut policies: Vec<Policy> = Vec::new();
    for line in headers.get_all(RATELIMIT_POLICY) {
        let invalid = || HeaderError::RatelimitPolicyInvalid {
            value: excerpt(line.as_bytes()),
        };
        let Ok(list) = Parser::new(line.as_bytes()).parse_list::<List>() else {
            push_error(errors, invalid());
            continue;
        };
        for entry in list {
            let Some(policy) = parse_policy(&entry) else {
                push_error(errors, invalid());
                continue;
            };
            let duplicate = policy
                .name
                .as_ref()
                .and_then(|name| policies.iter_mut().find(|p| p.name.as_ref() == Some(name)));
            match duplicate {
                Some(kept) => {
                    if policy.quota.unwrap_or(u64::MAX) < kept.quota.unwrap_or(u64::MAX) {
                        *kept = policy;
                    }
                }
                None => policies.push(policy),
            }
        }
    }
    policies
}

fn parse_policy(entry: &ListEntry) -> Option<Policy> {
    let ListEntry::Item(item) = entry else {
        return None;
    };
    let (name, bare_quota) = match &item.bare_item {
        BareItem::String(name) => (Some(name.as_str().to_owned()), None),
        BareItem::Token(name) => (Some(name.as_str().to_owned()), None),
        BareItem::Integer(quota) => (None, Some(u64::try_from(i64::from(*quota)).ok()?)),
        _ => return None,
    };
    let quota = param_count(&item.params, "q").ok()?.or(bare_quota);
    let window = param_count(&item.params, "w").ok()?;
    if window == Some(0) {
        return None;
    }
    Some(Policy {
        name,
        quota,
        window: window.map(Duration::from_secs),
    })
}

/// Parses every `RateLimit` line into the named states and the merged unnamed dictionary
/// state. Of two states with the same name, the one with less remaining is kept.
fn read_states(headers: &HeaderMap, errors: &mut Vec<HeaderError>) -> (Vec<State>, Option<State>) {
    let mut named: Vec<State> = Vec::new();
    let mut unnamed: Option<State> = None;
    for line in headers.get_all(RATELIMIT) {
        let invalid = || HeaderError::RatelimitInvalid {
            header: "RateLimit",
            value: excerpt(line.as_bytes()),
            expected: RATELIMIT_EXPECTED,
        };
        if let Ok(list) = Parser::new(line.as_bytes()).parse_list::<List>() {
            for entry in list {
                let Some(state) = parse_named_state(&entry) else {
                    push_error(errors, invalid());
                    continue;
                };
                merge_named(&mut named, state);
            }
        } else if let Some(state) = Parser::new(line.as_bytes())
            .parse_dictionary::<Dictionary>()
            .ok()
            .and_then(|dictionary| parse_dictionary_state(&dictionary))
        {
            unnamed = Some(match unnamed {
                Some(kept) => merge_unnamed(&kept, &state),
                None => state,
            });
        } else {
            push_error(errors, invalid());
        }
    }
    (named, unnamed)
}

fn parse_named_state(entry: &ListEntry) -> Option<State> {
    let ListEntry::Item(item) = entry else {
        return None;
    };
    let name = match &item.bare_item {
        BareItem::String(name) => name.as_str().to_owned(),
        BareItem::Token(name) => name.as_str().to_owned(),
        _ => return None,
    };
    Some(State {
        name: Some(name),
        limit: None,
        remaining: param_count(&item.params, "r").ok()?,
        reset: param_count(&item.params, "t")
            .ok()?
            .map(Duration::from_secs),
    })
}

fn merge_named(states: &mut Vec<State>, state: State) {
    let Some(kept) = states.iter_mut().find(|s| s.name == state.name) else {
        states.push(state);
        return;
    };
    let less_remaining = state.remaining.unwrap_or(u64::MAX) < kept.remaining.unwrap_or(u64::MAX);
    let same_remaining = state.remaining == kept.remaining;
    if less_remaining || (same_remaining && state.reset > kept.reset) {
        *kept = state;
    }
}

/// Reads the dictionary of the older form. Returns `None` when it has none of `limit`, `remaining` and
/// `reset`, or when one of them is not a non-negative integer.
fn parse_dictionary_state(dictionary: &Dictionary) -> Option<State> {
    let count = |key: &str| match dictionary.get(key) {
        None => Ok(None),
        Some(ListEntry::Item(item)) => non_negative(&item.bare_item).map(Some),
        Some(ListEntry::InnerList(_)) => Err(Malformed),
    };
    let state = State {
        name: None,
        limit: count("limit").ok()?,
        remaining: count("remaining").ok()?,
        reset: count("reset").ok()?.map(Duration::from_secs),
    };
    if state.limit.is_none() && state.remaining.is_none() && state.reset.is_none() {
        return None;
    }
    Some(state)
}

/// Merges two unnamed states, keeping the most restrictive value of each field.
fn merge_unnamed(kept: &State, state: &State) -> State {
    fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    State {
        name: None,
        limit: min(kept.limit, state.limit),
        remaining: min(kept.remaining, state.remaining),
        reset: kept.reset.max(state.reset),
    }
}

/// A parameter or dictionary member that is present but is not a non-negative integer.
struct Malformed;

/// Reads an optional non-negative integer parameter.
fn param_count(params: &Parameters, key: &str) -> Result<Option<u64>, Malformed> {
    params.get(key).map(non_negative).transpose()
}

fn non_negative(item: &BareItem) -> Result<u64, Malformed> {
    match item {
        BareItem::Integer(value) => u64::try_from(i64::from(*value)).map_err(|_| Malformed),
        _ => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headroom::read_headers;
    use http::{HeaderName, HeaderValue};
    use std::time::SystemTime;

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

    fn read(lines: &[(&[u8], &str)]) -> crate::headroom::HeaderReport {
        read_headers(
            &headers(lines),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600),
            &HeadroomConfig::default(),
        )
    }

    /// A table row: header lines, the expected policies and the expected error reasons.
    type Row<'a> = (&'a [(&'a [u8], &'a str)], Vec<PolicyState>, &'a [&'a str]);

    #[expect(clippy::unnecessary_wraps, reason = "rows compare with Option fields")]
    fn secs(seconds: u64) -> Option<Duration> {
        Some(Duration::from_secs(seconds))
    }

    fn state(
        name: Option<&str>,
        limit: Option<u64>,
        remaining: Option<u64>,
        reset: Option<Duration>,
        window: Option<Duration>,
    ) -> PolicyState {
        PolicyState {
            source: Source::Ietf,
            policy: name.map(str::to_owned),
            limit,
            remaining,
            reset_after: reset,
            window,
        }
    }

    fn check_rows(table: Vec<Row>) {
        for (lines, expected, expected_reasons) in table {
            let report = read(lines);
            let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
            assert_eq!(reasons, expected_reasons, "{lines:?}");
            assert_eq!(report.policies, expected, "{lines:?}");
        }
    }

    #[test]
    fn ietf_named_list_table() {
        let default_42 = vec![state(
            Some("default"),
            Some(100),
            Some(42),
            secs(1800),
            secs(3600),
        )];
        let table: Vec<Row> = vec![
            (
                &[
                    (b"ratelimit-policy", r#""default";q=100;w=3600"#),
                    (b"ratelimit", r#""default";r=42;t=1800"#),
                ],
                default_42.clone(),
                &[],
            ),
            (
                &[
                    (b"RateLimit-Policy", r#""default";q=100;w=3600"#),
                    (b"RateLimit", r#""default";r=42;t=1800"#),
                ],
                default_42.clone(),
                &[],
            ),
            (
                &[
                    (b"RATELIMIT-POLICY", "default;q=100;w=3600"),
                    (b"rAtElImIt", "default;r=42;t=1800"),
                ],
                default_42.clone(),
                &[],
            ),
            (
                &[
                    (b"ratelimit", r#""default";t=1800;r=42"#),
                    (
                        b"ratelimit-policy",
                        r#""default";w=3600;q=100;qu="requests""#,
                    ),
                ],
                default_42.clone(),
                &[],
            ),
            (
                &[(b"ratelimit", r#""default";r=0;t=5"#)],
                vec![state(Some("default"), None, Some(0), secs(5), None)],
                &[],
            ),
            (
                &[(b"ratelimit-policy", r#""daily";q=1000;w=86400"#)],
                vec![state(Some("daily"), Some(1000), None, None, secs(86_400))],
                &[],
            ),
            (
                &[
                    (b"ratelimit-policy", r#""a";q=10;w=60"#),
                    (b"ratelimit", r#""a";r=5;t=600"#),
                ],
                vec![state(Some("a"), Some(10), Some(5), secs(60), secs(60))],
                &["reset_clamped"],
            ),
            (
                &[(b"ratelimit", r#""a";r=9;t=10, "a";r=3;t=10"#)],
                vec![state(Some("a"), None, Some(3), secs(10), None)],
                &[],
            ),
            (
                &[(b"ratelimit-policy", r#""a";q=50;w=60, "a";q=20;w=60"#)],
                vec![state(Some("a"), Some(20), None, None, secs(60))],
                &[],
            ),
        ];
        check_rows(table);
    }

    #[test]
    fn ietf_dictionary_form_table() {
        let table: Vec<Row> = vec![
            (
                &[(b"ratelimit", "limit=100, remaining=42, reset=1800")],
                vec![state(None, Some(100), Some(42), secs(1800), None)],
                &[],
            ),
            (
                &[
                    (b"RateLimit", "limit=100, remaining=42, reset=1800"),
                    (b"RateLimit-Policy", "10;w=1, 100;w=3600"),
                ],
                vec![
                    state(None, Some(100), Some(42), secs(1800), secs(3600)),
                    state(None, Some(10), None, None, secs(1)),
                ],
                &[],
            ),
            (
                &[
                    (b"ratelimit", "remaining=7, reset=30"),
                    (b"ratelimit-policy", "50;w=60"),
                ],
                vec![state(None, Some(50), Some(7), secs(30), secs(60))],
                &[],
            ),
            (
                &[
                    (b"ratelimit", "limit=100, remaining=42"),
                    (b"ratelimit", "remaining=40, reset=20"),
                ],
                vec![state(None, Some(100), Some(40), secs(20), None)],
                &[],
            ),
        ];
        check_rows(table);
    }

    #[test]
    fn ietf_one_line_and_repeated_lines_are_identical() {
        let one_line = read(&[
            (
                b"RateLimit-Policy",
                r#""default";q=100;w=3600, "daily";q=1000;w=86400"#,
            ),
            (
                b"RateLimit",
                r#""default";r=42;t=1800, "daily";r=900;t=50000"#,
            ),
        ]);
        let repeated = read(&[
            (b"ratelimit-policy", r#""default";q=100;w=3600"#),
            (b"RATELIMIT", r#""daily";r=900;t=50000"#),
            (b"ratelimit-policy", r#""daily";q=1000;w=86400"#),
            (b"ratelimit", r#""default";r=42;t=1800"#),
        ]);
        let expected = vec![
            state(Some("default"), Some(100), Some(42), secs(1800), secs(3600)),
            state(
                Some("daily"),
                Some(1000),
                Some(900),
                secs(50_000),
                secs(86_400),
            ),
        ];
        assert_eq!(one_line.policies, expected);
        assert!(one_line.errors.is_empty(), "{:?}", one_line.errors);
        assert_eq!(repeated, one_line);
    }

    #[test]
    fn ietf_invalid_values_table() {
        let table: [(&[u8], &str, &str); 13] = [
            (b"ratelimit", "limit=ten", "ratelimit_invalid"),
            (b"ratelimit", "limit=-1", "ratelimit_invalid"),
            (b"ratelimit", "foo=1", "ratelimit_invalid"),
            (b"ratelimit", r#""a";r=-1"#, "ratelimit_invalid"),
            (b"ratelimit", r#""a";t=1.5"#, "ratelimit_invalid"),
            (
                b"ratelimit",
                r#""a";r=9999999999999999"#,
                "ratelimit_invalid",
            ),
            (b"ratelimit", "5;r=1", "ratelimit_invalid"),
            (b"RateLimit", r#"("a" "b");r=1"#, "ratelimit_invalid"),
            (b"ratelimit", r#""unterminated;r=1"#, "ratelimit_invalid"),
            (
                b"ratelimit-policy",
                r#""a";q=x"#,
                "ratelimit_policy_invalid",
            ),
            (
                b"ratelimit-policy",
                r#""a";q=10;w=0"#,
                "ratelimit_policy_invalid",
            ),
            (b"RateLimit-Policy", "limit=100", "ratelimit_policy_invalid"),
            (b"ratelimit-policy", "?1;q=10", "ratelimit_policy_invalid"),
        ];
        for (name, value, reason) in table {
            let report = read(&[(name, value)]);
            let reasons: Vec<_> = report.errors.iter().map(HeaderError::as_str).collect();
            assert_eq!(reasons, [reason], "{value}");
            assert!(report.policies.is_empty(), "{value}: {:?}", report.policies);
        }
    }

    #[test]
    fn ietf_bad_member_keeps_good_members() {
        let report = read(&[(b"ratelimit", r#""a";r=-1, "b";r=4;t=8"#)]);
        assert_eq!(
            report.policies,
            vec![state(Some("b"), None, Some(4), secs(8), None)]
        );
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].as_str(), "ratelimit_invalid");
    }

    #[test]
    fn ietf_bad_line_keeps_good_lines() {
        let report = read(&[
            (b"ratelimit", "not a list;;"),
            (b"ratelimit", r#""b";r=4;t=8"#),
        ]);
        assert_eq!(
            report.policies,
            vec![state(Some("b"), None, Some(4), secs(8), None)]
        );
        assert_eq!(report.errors[0].as_str(), "ratelimit_invalid");
    }
}
