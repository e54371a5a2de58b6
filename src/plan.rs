//! Probe plans: from an endpoint's documented limits and its probe share, the budget per
//! window and the probe interval.
//!
//! For a window `W` with limit `L` and share `s`, the budget is `B = max(1, floor(L × s))`.
//! The shortest interval the share allows is `W / floor(L × s)` when `L × s ≥ 1`, so a fixed
//! grid never puts more than `B` probes into any window of length `W`, and `W / (L × s)`
//! otherwise, so `1/day` at 10% is probed once every 10 days. The planned interval is the
//! longest of the default interval and every window's shortest interval, unless the endpoint
//! sets one explicitly, which is then checked against the same bound. A share whose bound is
//! longer than [`MAX_INTERVAL`], the cap on explicit intervals, is rejected.
//!
//! The ledger counts each request from the moment its probe ended, so the next request in the
//! same window may have to wait for the previous response time. Planned intervals grow by
//! `GUARD / B`, so `B` intervals span `W + GUARD` and responses faster than [`GUARD`] never
//! delay a probe.

use std::fmt;
use std::time::Duration;

use crate::config::MAX_INTERVAL;
use crate::config::units::{PPM, Share};
use crate::ratelimit::{RateLimit, format_window};

/// Headroom added to every share-bound grid: `B` intervals span the window plus this, so a
/// response faster than this never makes the next probe in the window wait for the ledger.
pub const GUARD: Duration = Duration::from_millis(50);

/// The shortest interval accepted anywhere.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// One documented window with the monitor's budget in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowBudget {
    /// The documented limit.
    pub limit: RateLimit,
    /// The maximum probes the monitor may send in any window of this length.
    pub budget: u64,
}

/// The origin of the planned interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalSource {
    /// The global default interval, which is longer than the share requires.
    Default,
    /// The shortest interval that the probe share allows.
    Share,
    /// Set on the endpoint.
    Explicit,
}

impl IntervalSource {
    /// Returns the name shown in the plan table.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            IntervalSource::Default => "default",
            IntervalSource::Share => "share",
            IntervalSource::Explicit => "explicit",
        }
    }
}

/// The schedule of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Budgets per documented window, in the order written.
    pub windows: Vec<WindowBudget>,
    /// The time between two probes.
    pub interval: Duration,
    /// The origin of the interval's length.
    pub source: IntervalSource,
}

/// A plan that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The explicit interval spends more than the probe share of a documented limit.
    #[error(
        "interval {interval} sends up to {implied} probes per {window}, but the budget is {budget} per {window} ({share} of {limit}); set the interval to at least {min_interval}{}",
        raise_share_hint(*.share)
    )]
    IntervalTooShort {
        /// The interval as configured.
        interval: String,
        /// The maximum probes the interval puts into one window.
        implied: u64,
        /// The window, formatted.
        window: String,
        /// The budget in that window.
        budget: u64,
        /// The probe share.
        share: Share,
        /// The documented limit.
        limit: RateLimit,
        /// The shortest interval that fits every window.
        min_interval: String,
    },
    /// The endpoint has no documented limit and no interval, so there is nothing to plan from.
    #[error(
        "no rate_limit and no interval; an endpoint without a documented limit must set interval, because every call may spend credit"
    )]
    IntervalRequired,
    /// The interval is shorter than the smallest supported interval.
    #[error("interval {0} is shorter than the minimum of 100ms")]
    IntervalTooSmall(String),
    /// The probe share of a documented limit allows fewer than one probe per
    /// [`MAX_INTERVAL`].
    #[error(
        "probe_share {share} of {limit} allows one probe every {interval}, which is longer than the maximum interval of {max}; {}",
        too_long_hint(*.share)
    )]
    IntervalTooLong {
        /// The interval the share requires, formatted.
        interval: String,
        /// The maximum interval, formatted.
        max: String,
        /// The probe share.
        share: Share,
        /// The documented limit that requires the interval.
        limit: RateLimit,
    },
}

/// Returns the advice for a limit that allows fewer than one probe per [`MAX_INTERVAL`].
fn too_long_hint(share: Share) -> &'static str {
    if share.ppm() >= PPM {
        "the limit is too small to probe, so remove this endpoint"
    } else {
        "raise probe_share, or remove this endpoint if its limit is too small to probe"
    }
}

/// Returns the advice to raise the probe share, or nothing when the share is already 100%.
fn raise_share_hint(share: Share) -> &'static str {
    if share.ppm() >= PPM {
        ""
    } else {
        " or raise probe_share"
    }
}

/// Returns the budget of one window: `max(1, floor(limit × share))`.
#[must_use]
pub fn window_budget(limit: RateLimit, share: Share) -> u64 {
    let scaled = u128::from(limit.limit) * u128::from(share.ppm()) / u128::from(PPM);
    (scaled as u64).max(1)
}

/// Returns the shortest interval the share allows for one window, before the guard: the bound
/// that an explicit interval is checked against.
#[must_use]
pub fn share_interval(limit: RateLimit, share: Share) -> Duration {
    let window_nanos = limit.window.as_nanos();
    let scaled = u128::from(limit.limit) * u128::from(share.ppm());
    let floor = scaled / u128::from(PPM);
    let nanos = if floor >= 1 {
        window_nanos.div_ceil(floor)
    } else {
        (window_nanos * u128::from(PPM)).div_ceil(scaled)
    };
    duration_from_nanos(nanos)
}

/// Returns the shortest planned interval for one window: [`share_interval`] plus
/// `GUARD / budget`.
#[must_use]
pub fn min_interval(limit: RateLimit, share: Share) -> Duration {
    let budget = u128::from(window_budget(limit, share));
    let guard = duration_from_nanos(GUARD.as_nanos().div_ceil(budget));
    share_interval(limit, share) + guard
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

/// Builds the plan of one endpoint.
pub fn build(
    limits: &[RateLimit],
    share: Share,
    explicit: Option<Duration>,
    default_interval: Duration,
) -> Result<Plan, PlanError> {
    let windows: Vec<WindowBudget> = limits
        .iter()
        .map(|&limit| WindowBudget {
            limit,
            budget: window_budget(limit, share),
        })
        .collect();
    let required = limits.iter().map(|&l| min_interval(l, share)).max();
    let bound = limits.iter().map(|&l| share_interval(l, share)).max();

    let Some(interval) = explicit else {
        let required = required.ok_or(PlanError::IntervalRequired)?;
        // The bound before the guard is compared, as for an explicit interval, so a share that
        // allows exactly one probe per MAX_INTERVAL is accepted.
        if let Some(bound) = bound.filter(|&b| b > MAX_INTERVAL) {
            return Err(too_long(limits, share, bound, required));
        }
        let (interval, source) = if required > default_interval {
            (required, IntervalSource::Share)
        } else {
            (default_interval, IntervalSource::Default)
        };
        return Ok(Plan {
            windows,
            interval,
            source,
        });
    };

    if interval < MIN_INTERVAL {
        // Not rounded, because format_duration would show 1ns as 0s.
        let exact = humantime::format_duration(interval).to_string();
        return Err(PlanError::IntervalTooSmall(exact));
    }
    if let Some(bound) = bound.filter(|&b| interval < b) {
        return Err(too_short(&windows, share, interval, bound));
    }
    // An explicit interval at the bound grows by the guard's share, as a planned one does, and
    // is then labelled as the share's, because it is no longer the interval written.
    match required.filter(|&r| r > interval) {
        Some(required) => Ok(Plan {
            windows,
            interval: required,
            source: IntervalSource::Share,
        }),
        None => Ok(Plan {
            windows,
            interval,
            source: IntervalSource::Explicit,
        }),
    }
}

fn too_short(
    windows: &[WindowBudget],
    share: Share,
    interval: Duration,
    required: Duration,
) -> PlanError {
    let worst = windows
        .iter()
        .find(|w| interval < share_interval(w.limit, share))
        .copied()
        .unwrap_or(windows[0]);
    PlanError::IntervalTooShort {
        interval: format_duration(interval),
        implied: probes_in_window(interval, worst.limit.window),
        window: format_window(worst.limit.window),
        budget: worst.budget,
        share,
        limit: worst.limit,
        min_interval: format_duration(required),
    }
}

fn too_long(limits: &[RateLimit], share: Share, bound: Duration, required: Duration) -> PlanError {
    let limit = limits
        .iter()
        .copied()
        .find(|&limit| share_interval(limit, share) == bound)
        .unwrap_or(limits[0]);
    PlanError::IntervalTooLong {
        interval: format_duration(required),
        max: format_window(MAX_INTERVAL),
        share,
        limit,
    }
}

/// Returns the most probes a fixed grid with this interval puts into one half-open window.
#[must_use]
pub fn probes_in_window(interval: Duration, window: Duration) -> u64 {
    let probes = window.as_nanos().div_ceil(interval.as_nanos().max(1));
    u64::try_from(probes).unwrap_or(u64::MAX)
}

impl Plan {
    /// Returns the number of probes per day on this plan.
    #[must_use]
    pub fn probes_per_day(&self) -> f64 {
        86_400.0 / self.interval.as_secs_f64()
    }
}

/// Formats a duration for people: to the second from one minute up (`6m`, `2h 24m`,
/// `10days`), to the millisecond below.
#[must_use]
pub fn format_duration(duration: Duration) -> String {
    let rounded = if duration >= Duration::from_secs(60) {
        Duration::from_secs(duration.as_secs())
    } else {
        Duration::from_millis(duration.as_millis() as u64)
    };
    if rounded.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(rounded).to_string()
}

/// A plan row for people: used by the plan table and logs.
pub struct Budgets<'a>(pub &'a [WindowBudget]);

impl fmt::Display for Budgets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}/{}", w.budget, format_window(w.limit.window))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
