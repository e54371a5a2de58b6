//! Scenario files: limit overrides, blocked keys, credit, rate-limit header styles and faults
//! for the simulator. The format is described in the [`crate::simulate`] module docs.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::endpoint::{ENDPOINT_COUNT, Endpoint};
use crate::ratelimit::RateLimit;

/// One millionth of a credit: balances are kept in whole micro-credits so repeated
/// spending of amounts such as 0.1 does not drift.
const MICROS_PER_CREDIT: f64 = 1_000_000.0;

/// The largest credit amount accepted, so balances fit in micro-credits with room to spare.
const MAX_CREDIT: f64 = 1e12;

/// A simulator scenario: what the simulated API enforces and which faults it injects.
///
/// The default has the documented limits, no blocked keys, a start credit of 100 with a cost
/// of 1 per inference call, no rate-limit headers and no faults.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub(crate) endpoints: [EndpointConfig; ENDPOINT_COUNT],
    pub(crate) blocked_keys: HashSet<String>,
    pub(crate) credit: Credit,
}

/// A scenario file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("failed to read scenario file {}: {source}", .path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or has a value out of range.
    #[error("invalid scenario {}: {message}", place(.origin, *.line, *.column))]
    Invalid {
        /// The file name or other origin of the text.
        origin: String,
        /// The 1-based line of the offending value, when known.
        line: Option<u64>,
        /// The 1-based column of the offending value, when known.
        column: Option<u64>,
        /// The problem and the values that would be valid.
        message: String,
    },
}

fn place(origin: &str, line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{origin}:{line}:{column}"),
        (Some(line), None) => format!("{origin}:{line}"),
        _ => origin.to_owned(),
    }
}

/// Simulator settings for one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct EndpointConfig {
    /// Limits enforced per key, empty when the endpoint has none.
    pub(crate) limits: Vec<RateLimit>,
    pub(crate) headers: HeaderStyle,
    pub(crate) faults: Vec<Fault>,
}

/// The rate-limit headers sent on every response to a key that passed authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum HeaderStyle {
    #[default]
    None,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
    XRateLimit { reset: ResetFormat },
    /// `RateLimit-Policy` and `RateLimit` structured fields. With `split`, each policy goes on
    /// its own header line instead of one comma-separated line.
    Ietf { split: bool },
}

/// The format of `X-RateLimit-Reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResetFormat {
    /// Whole seconds from now, rounded up.
    DeltaSeconds,
    /// Unix time in whole seconds, rounded up.
    UnixSeconds,
    /// Unix time in milliseconds.
    UnixMillis,
}

/// Credit settings in micro-credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Credit {
    pub(crate) start_micros: u64,
    pub(crate) cost_micros: u64,
}

/// One injected fault on one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    /// Time after the simulator start when the fault becomes active.
    pub(crate) after: Duration,
    /// How long the fault stays active, or `None` for the rest of the run.
    pub(crate) active_for: Option<Duration>,
    pub(crate) selection: Selection,
    /// Delay before the response.
    pub(crate) delay: Option<Duration>,
    /// The response that replaces the normal one, or `None` for a delay alone.
    pub(crate) response: Option<FaultResponse>,
}

/// The requests a fault applies to, among those arriving while it is active. Each fault
/// counts requests from 1, from the moment it becomes active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    All,
    /// The first N requests.
    First(u64),
    /// Every Nth request: the Nth, the 2Nth, and so on.
    Every(u64),
}

/// The response a fault sends instead of the normal one.
#[derive(Clone, Debug)]
pub(crate) struct FaultResponse {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<HeaderValue>,
    pub(crate) body: serde_json::Value,
}

impl Fault {
    /// Returns whether the fault is active `elapsed` after the simulator start.
    pub(crate) fn is_active(&self, elapsed: Duration) -> bool {
        elapsed
            .checked_sub(self.after)
            .is_some_and(|since| self.active_for.is_none_or(|span| since < span))
    }

    /// Returns whether the `ordinal`-th request (from 1) counted by this fault is selected.
    pub(crate) fn selects(&self, ordinal: u64) -> bool {
        match self.selection {
            Selection::All => true,
            Selection::First(count) => ordinal <= count,
            Selection::Every(step) => ordinal.is_multiple_of(step),
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::from_file(ScenarioFile::default())
    }
}

impl Scenario {
    /// Reads and parses a YAML scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scenario::from_yaml(&text, &path.display().to_string())
    }

    /// Parses a YAML scenario. `origin` names the text in error messages, usually the file
    /// path.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        // An empty document means "all defaults", like an empty mapping.
        if text.trim().is_empty() {
            return Ok(Scenario::default());
        }
        let file: ScenarioFile = serde_saphyr::from_str(text).map_err(|error| {
            let location = error.location();
            let line = location.map(|l| l.line());
            let column = location.map(|l| l.column());
            let mut message = error.without_snippet().to_string();
            // serde-saphyr appends the location to its message, and the error puts it first.
            if let (Some(line), Some(column)) = (line, column) {
                let suffix = format!(" at line {line}, column {column}");
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            ScenarioError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        })?;
        Ok(Scenario::from_file(file))
    }

    fn from_file(file: ScenarioFile) -> Scenario {
        let overrides = file.endpoints.into_array();
        let endpoints = Endpoint::ALL.map(|endpoint| {
            let spec = &overrides[endpoint.index()];
            let limits = match &spec.limit {
                Some(LimitOverride(limits)) => limits.clone(),
                None => endpoint.documented_limit().into_iter().collect(),
            };
            EndpointConfig {
                limits,
                headers: spec.rate_limit_headers,
                faults: spec.faults.clone(),
            }
        });
        Scenario {
            endpoints,
            blocked_keys: file.blocked_keys.into_iter().collect(),
            credit: Credit {
                start_micros: to_micros(file.credit.start),
                cost_micros: to_micros(file.credit.cost_per_call),
            },
        }
    }

    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> &EndpointConfig {
        &self.endpoints[endpoint.index()]
    }
}

fn to_micros(credit: f64) -> u64 {
    (credit * MICROS_PER_CREDIT).round() as u64
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScenarioFile {
    credit: CreditFile,
    blocked_keys: Vec<String>,
    endpoints: EndpointsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CreditFile {
    #[serde(deserialize_with = "credit_amount")]
    start: f64,
    #[serde(deserialize_with = "credit_amount")]
    cost_per_call: f64,
}

impl Default for CreditFile {
    fn default() -> Self {
        Self {
            start: 100.0,
            cost_per_call: 1.0,
        }
    }
}

fn credit_amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if !value.is_finite() || !(0.0..=MAX_CREDIT).contains(&value) {
        return Err(de::Error::custom(format!(
            "invalid credit amount {value}: write a number from 0 to {MAX_CREDIT:e}"
        )));
    }
    Ok(value)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EndpointsFile {
    model: EndpointFile,
    #[serde(rename = "generate-key")]
    generate_key: EndpointFile,
    #[serde(rename = "check-credit")]
    check_credit: EndpointFile,
    #[serde(rename = "get-xmr-wallet")]
    get_xmr_wallet: EndpointFile,
    #[serde(rename = "confirm-xmr-payment")]
    confirm_xmr_payment: EndpointFile,
    #[serde(rename = "send-mail")]
    send_mail: EndpointFile,
    inference: EndpointFile,
}

impl EndpointsFile {
    /// Returns the endpoint settings in the order of [`Endpoint::ALL`].
    fn into_array(self) -> [EndpointFile; ENDPOINT_COUNT] {
        [
            self.model,
            self.generate_key,
            self.check_credit,
            self.get_xmr_wallet,
            self.confirm_xmr_payment,
            self.send_mail,
            self.inference,
        ]
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EndpointFile {
    limit: Option<LimitOverride>,
    rate_limit_headers: HeaderStyle,
    faults: Vec<Fault>,
}

/// Limits that replace the documented ones: one limit, a list, or `none`.
#[derive(Clone, Debug)]
struct LimitOverride(Vec<RateLimit>);

impl<'de> Deserialize<'de> for LimitOverride {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;

        impl<'de> Visitor<'de> for LimitVisitor {
            type Value = LimitOverride;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate limit such as 3/10s, a list of them, or none")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                if value == "none" {
                    return Ok(LimitOverride(Vec::new()));
                }
                value
                    .parse()
                    .map(|limit| LimitOverride(vec![limit]))
                    .map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut limits = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    limits.push(text.parse().map_err(de::Error::custom)?);
                }
                Ok(LimitOverride(limits))
            }
        }

        deserializer.deserialize_any(LimitVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderStyleFile {
    style: HeaderStyleName,
    reset: Option<ResetFormat>,
    split: Option<bool>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
enum HeaderStyleName {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "x-ratelimit")]
    XRateLimit,
    #[serde(rename = "ietf")]
    Ietf,
}

impl<'de> Deserialize<'de> for HeaderStyle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = HeaderStyleFile::deserialize(deserializer)?;
        match (file.style, file.reset, file.split) {
            (HeaderStyleName::None, None, None) => Ok(HeaderStyle::None),
            (HeaderStyleName::XRateLimit, reset, None) => Ok(HeaderStyle::XRateLimit {
                reset: reset.unwrap_or(ResetFormat::DeltaSeconds),
            }),
            (HeaderStyleName::Ietf, None, split) => Ok(HeaderStyle::Ietf {
                split: split.unwrap_or(false),
            }),
            (_, Some(_), _) => Err(de::Error::custom(
                "invalid rate_limit_headers: `reset` applies only to style x-ratelimit",
            )),
            (_, None, Some(_)) => Err(de::Error::custom(
                "invalid rate_limit_headers: `split` applies only to style ietf",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(default, deserialize_with = "optional_duration")]
    after: Option<Duration>,
    #[serde(default, rename = "for", deserialize_with = "optional_duration")]
    active_for: Option<Duration>,
    requests: Option<u64>,
    every: Option<u64>,
    status: Option<u16>,
    retry_after: Option<RetryAfter>,
    #[serde(default, deserialize_with = "optional_duration")]
    delay: Option<Duration>,
    error_body: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = FaultFile::deserialize(deserializer)?;
        file.into_fault().map_err(de::Error::custom)
    }
}

impl FaultFile {
    fn into_fault(self) -> Result<Fault, String> {
        let selection = match (self.requests, self.every) {
            (Some(_), Some(_)) => {
                return Err("invalid fault: set `requests` or `every`, not both".to_owned());
            }
            (Some(0), None) | (None, Some(0)) => {
                return Err("invalid fault: `requests` and `every` must be at least 1".to_owned());
            }
            (Some(count), None) => Selection::First(count),
            (None, Some(step)) => Selection::Every(step),
            (None, None) => Selection::All,
        };
        if self.active_for == Some(Duration::ZERO) {
            return Err("invalid fault: `for` must be longer than 0s".to_owned());
        }
        if self.status.is_none() && self.retry_after.is_some() {
            return Err("invalid fault: `retry_after` needs a `status`".to_owned());
        }
        let status = match self.status {
            Some(code) if (200..=599).contains(&code) => StatusCode::from_u16(code).ok(),
            Some(code) => {
                return Err(format!(
                    "invalid fault status {code}: write a status code from 200 to 599"
                ));
            }
            None => None,
        };
        let response = match (status, self.error_body) {
            (None, None) => None,
            (status, body) => {
                let status = status.unwrap_or(StatusCode::OK);
                let body = body.unwrap_or_else(|| default_fault_body(status));
                Some(FaultResponse {
                    status,
                    retry_after: self.retry_after.map(|r| r.0),
                    body,
                })
            }
        };
        if response.is_none() && self.delay.is_none() {
            return Err(
                "invalid fault: set at least one of `status`, `error_body` or `delay`".to_owned(),
            );
        }
        Ok(Fault {
            after: self.after.unwrap_or_default(),
            active_for: self.active_for,
            selection,
            delay: self.delay,
            response,
        })
    }
}

/// The body of a status fault without `error_body`: `{"error": "service unavailable"}` for 503.
fn default_fault_body(status: StatusCode) -> serde_json::Value {
    let reason = status
        .canonical_reason()
        .map_or_else(|| format!("status {}", status.as_u16()), str::to_lowercase);
    serde_json::json!({ "error": reason })
}

/// A `Retry-After` value for a fault: whole seconds, or any text sent as written (for
/// example an HTTP-date).
#[derive(Debug)]
struct RetryAfter(HeaderValue);

impl<'de> Deserialize<'de> for RetryAfter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetryAfterVisitor;

        impl Visitor<'_> for RetryAfterVisitor {
            type Value = RetryAfter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("whole seconds such as 30, or an HTTP-date")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Ok(RetryAfter(HeaderValue::from(value)))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                u64::try_from(value)
                    .map(|seconds| RetryAfter(HeaderValue::from(seconds)))
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid retry_after {value}: write whole seconds from 0, or an HTTP-date"
                        ))
                    })
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                match HeaderValue::from_str(value) {
                    Ok(header) if !value.trim().is_empty() => Ok(RetryAfter(header)),
                    _ => Err(E::custom(format!(
                        "invalid retry_after {value:?}: write whole seconds or an HTTP-date in visible ASCII"
                    ))),
                }
            }
        }

        deserializer.deserialize_any(RetryAfterVisitor)
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        de::Error::custom(format!(
            "invalid duration {text:?} ({e}): write a duration such as 500ms, 10s or 2m"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (Option<u64>, Option<u64>, String) {
        match Scenario::from_yaml(text, "test.yml") {
            Err(ScenarioError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an invalid scenario, got {other:?}"),
        }
    }

    #[test]
    fn default_has_documented_limits() {
        let scenario = Scenario::default();
        for endpoint in Endpoint::ALL {
            let config = scenario.endpoint(endpoint);
            assert_eq!(
                config.limits,
                endpoint.documented_limit().into_iter().collect::<Vec<_>>()
            );
            assert_eq!(config.headers, HeaderStyle::None);
            assert!(config.faults.is_empty());
        }
        assert_eq!(scenario.credit.start_micros, 100_000_000);
        assert_eq!(scenario.credit.cost_micros, 1_000_000);
    }

    #[test]
    fn parses_every_setting() {
        let text = r#"
credit: { start: 2.5, cost_per_call: 0.1 }
blocked_keys: [bad]
endpoints:
  check-credit:
    limit: 3/10s
    rate_limit_headers: { style: x-ratelimit, reset: unix_millis }
    faults:
      - { status: 503, retry_after: 30, requests: 2 }
      - { status: 500, retry_after: "Wed, 21 Oct 2015 07:28:00 GMT", every: 3, after: 1m, for: 30s }
      - { delay: 250ms }
      - { error_body: { error: internal } }
  model:
    limit: [2/1s, 5/1m]
    rate_limit_headers: { style: ietf, split: true }
  inference:
    limit: none
"#;
        let scenario = Scenario::from_yaml(text, "test.yml").unwrap();
        assert_eq!(scenario.credit.start_micros, 2_500_000);
        assert_eq!(scenario.credit.cost_micros, 100_000);
        assert!(scenario.blocked_keys.contains("bad"));

        let check = scenario.endpoint(Endpoint::CheckCredit);
        assert_eq!(check.limits, vec!["3/10s".parse().unwrap()]);
        assert_eq!(
            check.headers,
            HeaderStyle::XRateLimit {
                reset: ResetFormat::UnixMillis
            }
        );
        let faults = &check.faults;
        assert_eq!(faults.len(), 4);
        assert_eq!(faults[0].selection, Selection::First(2));
        let first = faults[0].response.as_ref().unwrap();
        assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(first.retry_after.as_ref().unwrap(), "30");
        assert_eq!(
            first.body,
            serde_json::json!({"error": "service unavailable"})
        );
        assert_eq!(faults[1].selection, Selection::Every(3));
        assert_eq!(faults[1].after, Duration::from_secs(60));
        assert_eq!(faults[1].active_for, Some(Duration::from_secs(30)));
        assert_eq!(
            faults[1]
                .response
                .as_ref()
                .unwrap()
                .retry_after
                .as_ref()
                .unwrap(),
            "Wed, 21 Oct 2015 07:28:00 GMT"
        );
        assert_eq!(faults[2].delay, Some(Duration::from_millis(250)));
        assert!(faults[2].response.is_none());
        let body_fault = faults[3].response.as_ref().unwrap();
        assert_eq!(body_fault.status, StatusCode::OK);
        assert_eq!(body_fault.body, serde_json::json!({"error": "internal"}));

        let model = scenario.endpoint(Endpoint::Model);
        assert_eq!(model.limits.len(), 2);
        assert_eq!(model.headers, HeaderStyle::Ietf { split: true });
        assert!(scenario.endpoint(Endpoint::Inference).limits.is_empty());
    }

    #[test]
    fn fault_activity_and_selection() {
        let fault = Fault {
            after: Duration::from_secs(10),
            active_for: Some(Duration::from_secs(5)),
            selection: Selection::Every(2),
            delay: Some(Duration::from_secs(1)),
            response: None,
        };
        assert!(!fault.is_active(Duration::from_secs(9)));
        assert!(fault.is_active(Duration::from_secs(10)));
        assert!(fault.is_active(Duration::from_millis(14_999)));
        assert!(!fault.is_active(Duration::from_secs(15)));
        assert!(!fault.selects(1));
        assert!(fault.selects(2));
        assert!(fault.selects(4));
    }

    #[test]
    fn empty_text_is_default() {
        let scenario = Scenario::from_yaml("  \n", "empty.yml").unwrap();
        assert!(scenario.blocked_keys.is_empty());
    }

    #[test]
    fn rejects_unknown_keys_with_location() {
        let (line, column, message) = invalid("credit:\n  start: 5\n  spend: 1\n");
        assert_eq!(line, Some(3), "{message}");
        assert_eq!(column, Some(3), "{message}");
        assert!(message.contains("spend"), "{message}");
        assert!(message.contains("cost_per_call"), "{message}");

        let (line, _, message) = invalid("endpoints:\n  models: {}\n");
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("check-credit"), "{message}");
    }

    #[test]
    fn rejects_bad_values_with_location() {
        let cases = [
            (
                "endpoints:\n  model:\n    limit: 3/fortnight\n",
                3,
                "N/<duration>",
            ),
            (
                "endpoints:\n  model:\n    faults:\n      - { status: 99 }\n",
                4,
                "from 200 to 599",
            ),
            (
                "endpoints:\n  model:\n    faults:\n      - { requests: 1, every: 2, status: 500 }\n",
                4,
                "not both",
            ),
            (
                "endpoints:\n  model:\n    faults:\n      - { every: 2 }\n",
                4,
                "at least one of",
            ),
            (
                "endpoints:\n  model:\n    faults:\n      - { delay: soon }\n",
                4,
                "such as 500ms",
            ),
            (
                "endpoints:\n  model:\n    rate_limit_headers: { style: ietf, reset: unix_seconds }\n",
                3,
                "only to style x-ratelimit",
            ),
            (
                "endpoints:\n  model:\n    rate_limit_headers: { style: draft }\n",
                3,
                "x-ratelimit",
            ),
            ("credit:\n  start: -1\n", 2, "from 0"),
        ];
        for (text, expected_line, fragment) in cases {
            let (line, column, message) = invalid(text);
            assert_eq!(line, Some(expected_line), "{text}: {message}");
            assert!(column.is_some(), "{text}: {message}");
            assert!(message.contains(fragment), "{text}: {message}");
        }
    }

    #[test]
    fn error_message_names_file_line_and_column() {
        let error = Scenario::from_yaml("blocked_key: [x]\n", "scenarios/bad.yml").unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("invalid scenario scenarios/bad.yml:1:1: "),
            "{text}"
        );
        assert!(text.contains("blocked_keys"), "{text}");
        assert!(!text.contains("at line"), "{text}");
    }

    #[test]
    fn load_reports_missing_file() {
        let error = Scenario::load(Path::new("/nonexistent/scenario.yml")).unwrap_err();
        assert!(matches!(error, ScenarioError::Read { .. }));
        assert!(
            error.to_string().contains("/nonexistent/scenario.yml"),
            "{error}"
        );
    }
}
