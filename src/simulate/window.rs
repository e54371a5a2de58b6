//! Sliding windows over arrival times.
//!
//! Every window here is half-open: a request at time `t` counts the requests in `(t - W, t]`.
//! [`KeyWindow`] enforces an endpoint's limits for one key, [`PeakWindow`] measures the
//! maximum number of requests an endpoint received in any window of one limit's length.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::ratelimit::RateLimit;

/// Whether `arrival` is outside the window of length `window` that ends at `now`.
fn has_left(arrival: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(arrival) >= window
}

/// The outcome of [`KeyWindow::try_admit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The request fits every limit and now occupies a slot.
    Admitted,
    /// The request exceeds a limit. It occupies no slot.
    Rejected {
        /// Time until enough earlier requests leave their windows for a request to fit.
        retry_after: Duration,
    },
}

/// The state of one limit as seen by one key, for rate-limit response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    /// The limit this quota belongs to.
    pub(crate) limit: RateLimit,
    /// Slots left in the current window.
    pub(crate) remaining: u64,
    /// When the oldest request in the window leaves it and frees a slot, or `now` when the
    /// window is empty.
    pub(crate) reset_at: Instant,
}

/// Arrival times of the requests that one key was admitted for on one endpoint, oldest
/// first. Entries older than the longest window are dropped on each admission, so the length
/// never exceeds the largest limit.
#[derive(Debug, Default)]
pub(crate) struct KeyWindow {
    arrivals: VecDeque<Instant>,
}

impl KeyWindow {
    /// Index of the first arrival inside the window of length `window` ending at `now`.
    fn first_inside(&self, now: Instant, window: Duration) -> usize {
        self.arrivals
            .partition_point(|&arrival| has_left(arrival, now, window))
    }

    fn prune(&mut self, now: Instant, limits: &[RateLimit]) {
        let longest = limits.iter().map(|l| l.window).max().unwrap_or_default();
        while let Some(&front) = self.arrivals.front() {
            if !has_left(front, now, longest) {
                break;
            }
            self.arrivals.pop_front();
        }
    }

    /// Admits a request arriving at `now` if every limit has a free slot, and records it.
    ///
    /// A rejected request is not recorded, so it does not delay later admissions.
    pub(crate) fn try_admit(&mut self, now: Instant, limits: &[RateLimit]) -> Admission {
        self.prune(now, limits);
        let len = self.arrivals.len();
        let mut wait: Option<Duration> = None;
        for limit in limits {
            let count = len - self.first_inside(now, limit.window);
            let allowed = usize::try_from(limit.limit).unwrap_or(usize::MAX);
            if count >= allowed {
                // A request fits once the arrival `allowed` places from the newest has left,
                // because then at most `allowed - 1` arrivals remain inside the window.
                let blocking = self.arrivals[len - allowed];
                let until = (blocking + limit.window).saturating_duration_since(now);
                wait = Some(wait.map_or(until, |w| w.max(until)));
            }
        }
        if let Some(retry_after) = wait {
            return Admission::Rejected { retry_after };
        }
        self.arrivals.push_back(now);
        Admission::Admitted
    }

    /// Returns the quota left under each limit at `now`, in the order of `limits`.
    pub(crate) fn quotas(&self, now: Instant, limits: &[RateLimit]) -> Vec<Quota> {
        limits
            .iter()
            .map(|&limit| {
                let first = self.first_inside(now, limit.window);
                let count = (self.arrivals.len() - first) as u64;
                let reset_at = self
                    .arrivals
                    .get(first)
                    .map_or(now, |&oldest| oldest + limit.window);
                Quota {
                    limit,
                    remaining: limit.limit.saturating_sub(count),
                    reset_at,
                }
            })
            .collect()
    }
}

/// The maximum number of requests seen in any window of one length, updated per arrival.
///
/// Memory is bounded by the requests inside one window, not by the total: each arrival pops
/// the entries that left the window ending at it, pushes itself, and compares the length
/// with the maximum. The maximum over all windows is reached at some arrival, so checking
/// at arrivals is exact.
#[derive(Debug)]
pub(crate) struct PeakWindow {
    window: Duration,
    arrivals: VecDeque<Instant>,
    max: u64,
}

impl PeakWindow {
    /// Creates an empty tracker for windows of length `window`.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            arrivals: VecDeque::new(),
            max: 0,
        }
    }

    /// Records one request arriving at `now`. Arrivals must not go back in time.
    pub(crate) fn record(&mut self, now: Instant) {
        while let Some(&front) = self.arrivals.front() {
            if !has_left(front, now, self.window) {
                break;
            }
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        self.max = self.max.max(self.arrivals.len() as u64);
    }

    /// The maximum number of requests in any window so far.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(text: &str) -> RateLimit {
        text.parse().unwrap()
    }

    fn at(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    /// Counts the requests of `arrivals` inside the half-open window `(t - w, t]`.
    fn brute_count(arrivals: &[u64], t: u64, w: u64) -> usize {
        arrivals.iter().filter(|&&a| a <= t && t - a < w).count()
    }

    #[test]
    fn admits_up_to_limit_then_rejects() {
        let base = Instant::now();
        let limits = [limit("3/10s")];
        let mut window = KeyWindow::default();
        for millis in [0, 1000, 2000] {
            assert_eq!(
                window.try_admit(at(base, millis), &limits),
                Admission::Admitted
            );
        }
        assert_eq!(
            window.try_admit(at(base, 4000), &limits),
            Admission::Rejected {
                retry_after: Duration::from_secs(6)
            }
        );
    }

    #[test]
    fn window_is_half_open() {
        let base = Instant::now();
        let limits = [limit("1/10s")];
        let mut window = KeyWindow::default();
        assert_eq!(window.try_admit(base, &limits), Admission::Admitted);
        assert_eq!(
            window.try_admit(at(base, 9999), &limits),
            Admission::Rejected {
                retry_after: Duration::from_millis(1)
            }
        );
        assert_eq!(
            window.try_admit(at(base, 10_000), &limits),
            Admission::Admitted
        );
    }

    #[test]
    fn rejected_requests_take_no_slot() {
        let base = Instant::now();
        let limits = [limit("2/10s")];
        let mut window = KeyWindow::default();
        window.try_admit(base, &limits);
        window.try_admit(at(base, 5000), &limits);
        for millis in [6000, 7000, 8000, 9000] {
            assert!(matches!(
                window.try_admit(at(base, millis), &limits),
                Admission::Rejected { .. }
            ));
        }
        assert_eq!(
            window.try_admit(at(base, 10_000), &limits),
            Admission::Admitted
        );
    }

    #[test]
    fn several_limits_wait_for_the_longest() {
        let base = Instant::now();
        let limits = [limit("2/1s"), limit("3/1m")];
        let mut window = KeyWindow::default();
        for millis in [0, 100, 1100] {
            assert_eq!(
                window.try_admit(at(base, millis), &limits),
                Admission::Admitted
            );
        }
        assert_eq!(
            window.try_admit(at(base, 1200), &limits),
            Admission::Rejected {
                retry_after: Duration::from_millis(58_800)
            }
        );
    }

    #[test]
    fn quotas_report_remaining_and_reset() {
        let base = Instant::now();
        let limits = [limit("3/10s")];
        let mut window = KeyWindow::default();
        assert_eq!(window.quotas(base, &limits)[0].remaining, 3);
        assert_eq!(window.quotas(base, &limits)[0].reset_at, base);
        window.try_admit(at(base, 1000), &limits);
        window.try_admit(at(base, 2000), &limits);
        let quota = window.quotas(at(base, 3000), &limits)[0];
        assert_eq!(quota.remaining, 1);
        assert_eq!(quota.reset_at, at(base, 11_000));
    }

    proptest! {
        #[test]
        fn admission_matches_brute_force(
            gaps in proptest::collection::vec(0u64..3000, 1..200),
            count in 1u64..6,
            window_ms in 1u64..10_000,
        ) {
            let base = Instant::now();
            let limits = [RateLimit { limit: count, window: Duration::from_millis(window_ms) }];
            let mut window = KeyWindow::default();
            let mut admitted: Vec<u64> = Vec::new();
            let mut t = 0;
            for gap in gaps {
                t += gap;
                let expect_admit = brute_count(&admitted, t, window_ms) < count as usize;
                let outcome = window.try_admit(at(base, t), &limits);
                prop_assert_eq!(outcome == Admission::Admitted, expect_admit);
                if let Admission::Rejected { retry_after } = outcome {
                    // After the wait a request fits, one millisecond earlier it does not.
                    let wait = retry_after.as_millis() as u64;
                    prop_assert!(brute_count(&admitted, t + wait, window_ms) < count as usize);
                    prop_assert!(wait >= 1);
                    prop_assert!(brute_count(&admitted, t + wait - 1, window_ms) >= count as usize);
                }
                if expect_admit {
                    admitted.push(t);
                }
            }
        }

        #[test]
        fn peak_matches_brute_force(
            // A 100ms grid, so arrivals often sit exactly one window apart.
            gaps in proptest::collection::vec((0u64..20).prop_map(|g| g * 100), 1..300),
            window_ms in (1u64..50).prop_map(|w| w * 100),
        ) {
            let base = Instant::now();
            let mut peak = PeakWindow::new(Duration::from_millis(window_ms));
            let mut arrivals = Vec::new();
            let mut t = 0;
            for gap in gaps {
                t += gap;
                arrivals.push(t);
                peak.record(at(base, t));
            }
            let expected = arrivals
                .iter()
                .map(|&end| brute_count(&arrivals, end, window_ms))
                .max()
                .unwrap();
            prop_assert_eq!(peak.max(), expected as u64);
        }
    }
}
