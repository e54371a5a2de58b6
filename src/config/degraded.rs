//! `degraded_after`: the response time above which a successful probe shows as degraded, and
//! the timeout it is checked against as APIs and endpoints inherit both. The word `off` turns
//! an inherited threshold off.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::{Checker, MAX_TIMEOUT, units};
use crate::plan::format_duration;

/// The value of `degraded_after` that turns an inherited threshold off.
const OFF: &str = "off";

/// The level of the config that sets a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Level {
    /// The `global` mapping.
    Global,
    /// An API, by name.
    Api(String),
    /// The endpoint itself.
    Endpoint,
}

impl Level {
    /// Returns what to write instead of a zero `degraded_after` at this level to turn the
    /// check off, for its message.
    fn turn_off_hint(&self) -> &'static str {
        match self {
            Level::Global => "remove degraded_after to leave the check off",
            Level::Api(_) | Level::Endpoint => {
                "write off to turn the check off here, or remove degraded_after to inherit the value above"
            }
        }
    }
}

/// A `degraded_after` value with the place it was written, for messages about the endpoints
/// that inherit it.
#[derive(Clone, Debug)]
pub(super) struct Threshold {
    pub(super) value: Duration,
    written: String,
    at: Location,
    set_in: Level,
}

/// The timeout and `degraded_after` that an API passes on to its endpoints.
#[derive(Clone, Debug)]
pub(super) struct Inherited {
    pub(super) timeout: Duration,
    /// False when a `timeout` above the endpoint is invalid. The endpoint then falls back to a
    /// default, and its threshold is not checked against that default.
    pub(super) timeout_valid: bool,
    pub(super) degraded_after: Option<Threshold>,
}

impl Inherited {
    /// Applies the keys of one level below: a valid `timeout` replaces the inherited one, and a
    /// written `degraded_after` replaces the inherited threshold. `off` and an invalid
    /// `degraded_after` leave the level without a threshold, so an invalid one causes no
    /// further problems.
    pub(super) fn set(
        &self,
        checker: &mut Checker<'_>,
        timeout: Option<&Spanned<String>>,
        degraded_after: Option<&Spanned<String>>,
        set_in: Level,
    ) -> Inherited {
        let parsed = checker.duration(timeout, "timeout", MAX_TIMEOUT);
        let degraded_after = match degraded_after {
            Some(raw) => checker.degraded_after(raw, set_in),
            None => self.degraded_after.clone(),
        };
        Inherited {
            timeout: parsed.unwrap_or(self.timeout),
            timeout_valid: match timeout {
                Some(_) => parsed.is_some(),
                None => self.timeout_valid,
            },
            degraded_after,
        }
    }
}

impl Checker<'_> {
    /// Parses one `degraded_after`. Returns `None` for `off`, and for an invalid value after
    /// reporting why it is invalid.
    pub(super) fn degraded_after(
        &mut self,
        raw: &Spanned<String>,
        set_in: Level,
    ) -> Option<Threshold> {
        if raw.value == OFF {
            return None;
        }
        if units::parse_duration(&raw.value).is_ok_and(|d| d.is_zero()) {
            self.report(
                raw.referenced,
                format!(
                    "invalid degraded_after {:?}: must be longer than zero; write a duration such as 2s or 1500ms, or {}",
                    raw.value,
                    set_in.turn_off_hint()
                ),
            );
            return None;
        }
        if let Err(reason) = units::parse_duration(&raw.value) {
            self.report(
                raw.referenced,
                format!(
                    "invalid degraded_after {:?}: {reason}; write a duration such as 2s or 1500ms, or off to turn the check off",
                    raw.value
                ),
            );
            return None;
        }
        let value = self.duration(Some(raw), "degraded_after", MAX_TIMEOUT)?;
        Some(Threshold {
            value,
            written: raw.value.clone(),
            at: raw.referenced,
            set_in,
        })
    }

    /// Reports a threshold that is not shorter than the endpoint's timeout. A probe that takes
    /// longer than its timeout ends as class `timeout`, so such a threshold could never apply.
    /// The problem is reported where the threshold is written and names the endpoint, because
    /// one global or API value can conflict with several endpoints. Returns whether the
    /// threshold is valid.
    pub(super) fn check_degraded_after(
        &mut self,
        api: &str,
        endpoint: &str,
        threshold: &Threshold,
        timeout: Duration,
    ) -> bool {
        if threshold.value < timeout {
            return true;
        }
        let timeout = format_duration(timeout);
        let (set_in, alternative) = match &threshold.set_in {
            Level::Global => (
                " set in global".to_owned(),
                ", or set a shorter degraded_after on the endpoint",
            ),
            Level::Api(name) => (
                format!(" set in API {name:?}"),
                ", or set a shorter degraded_after on the endpoint",
            ),
            Level::Endpoint => (String::new(), ""),
        };
        self.report(
            threshold.at,
            format!(
                "endpoint {endpoint:?} in API {api:?}: degraded_after {:?}{set_in} is not shorter than its timeout {timeout}, so it could never apply, because a probe that takes longer than the timeout ends as class timeout; lower degraded_after below {timeout}{alternative}",
                threshold.written
            ),
        );
        false
    }
}
