//! The ledger of sent requests: the check before every probe that keeps each documented
//! window within its budget.
//!
//! A request counts in every window `(now - W, now]` that contains its timestamp. The
//! timestamp is first the moment the probe is allowed, and is moved to the moment the probe
//! ends once it has ([`Ledger::settle`]). The API receives a request after it was sent and
//! before its response arrives, so a ledger of end times guarantees that the API never sees
//! more than the budget in one window, however long each request spent on the way.
//! Timestamps are monotonic ([`tokio::time::Instant`]), so wall-clock steps never free or
//! consume budget.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::plan::WindowBudget;

/// The sent requests of one endpoint, kept for the length of its longest window.
#[derive(Clone, Debug)]
pub struct Ledger {
    windows: Vec<WindowBudget>,
    longest: Duration,
    sent: VecDeque<Instant>,
}

impl Ledger {
    /// Returns an empty ledger for these budgets. With no windows every check passes.
    #[must_use]
    pub fn new(windows: &[WindowBudget]) -> Ledger {
        let longest = windows
            .iter()
            .map(|w| w.limit.window)
            .max()
            .unwrap_or_default();
        let capacity = windows.iter().map(|w| w.budget).max().unwrap_or(0);
        Ledger {
            windows: windows.to_vec(),
            longest,
            sent: VecDeque::with_capacity(usize::try_from(capacity.min(1024)).unwrap_or(0)),
        }
    }

    /// Returns the budgets this ledger enforces.
    #[must_use]
    pub fn windows(&self) -> &[WindowBudget] {
        &self.windows
    }

    /// Checks for room at `now`. On `Err`, the value is the earliest instant at which every
    /// window has room again, assuming nothing else is sent before then.
    pub fn check(&mut self, now: Instant) -> Result<(), Instant> {
        self.prune(now);
        let mut ready = None;
        for window in &self.windows {
            let span = window.limit.window;
            let in_window = self.in_window(now, span);
            let count = in_window.len() as u64;
            if count < window.budget {
                continue;
            }
            // The oldest `count - budget + 1` entries must leave before one more fits.
            let index = usize::try_from(count - window.budget).unwrap_or(usize::MAX);
            let frees_at = in_window[index] + span;
            ready = Some(ready.map_or(frees_at, |r: Instant| r.max(frees_at)));
        }
        ready.map_or(Ok(()), Err)
    }

    /// Records a request sent at `at`. Callers record only after a successful [`check`].
    ///
    /// [`check`]: Ledger::check
    pub fn record(&mut self, at: Instant) {
        let position = self.sent.partition_point(|&t| t <= at);
        self.sent.insert(position, at);
    }

    /// Moves the entry recorded at `sent` to `done`, the moment the probe ended, so the request
    /// counts until one window after the API could last have received it.
    pub fn settle(&mut self, sent: Instant, done: Instant) {
        if let Some(position) = self.sent.iter().position(|&t| t == sent) {
            self.sent.remove(position);
        }
        self.record(done.max(sent));
    }

    /// Returns the requests counted in each window at `now`, in the order of the budgets.
    pub fn used(&mut self, now: Instant) -> Vec<u64> {
        self.prune(now);
        self.windows
            .iter()
            .map(|w| self.in_window(now, w.limit.window).len() as u64)
            .collect()
    }

    /// Returns the earliest instant after `now` at which a recorded request leaves one of the
    /// windows, which is when the used count of that window drops. Returns `None` when no
    /// recorded request is still counted.
    #[must_use]
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.windows
            .iter()
            .filter_map(|w| {
                // Entries are sorted, so the first one still counted leaves its window first.
                self.sent
                    .iter()
                    .map(|&t| t + w.limit.window)
                    .find(|&leaves| leaves > now)
            })
            .min()
    }

    /// Returns every recorded send time still inside the longest window, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = Instant> + '_ {
        self.sent.iter().copied()
    }

    fn in_window(&self, now: Instant, window: Duration) -> Vec<Instant> {
        match now.checked_sub(window) {
            Some(start) => self.sent.iter().copied().filter(|&t| t > start).collect(),
            None => self.sent.iter().copied().collect(),
        }
    }

    fn prune(&mut self, now: Instant) {
        let Some(start) = now.checked_sub(self.longest) else {
            return;
        };
        while self.sent.front().is_some_and(|&t| t <= start) {
            self.sent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::window_budget;
    use crate::ratelimit::RateLimit;
    use proptest::prelude::*;

    fn budgets(limits: &[(u64, u64)]) -> Vec<WindowBudget> {
        limits
            .iter()
            .map(|&(budget, secs)| WindowBudget {
                limit: RateLimit {
                    limit: budget * 10,
                    window: Duration::from_secs(secs),
                },
                budget,
            })
            .collect()
    }

    #[test]
    fn room_until_budget_then_wait_for_oldest() {
        let start = Instant::now();
        let mut ledger = Ledger::new(&budgets(&[(2, 10)]));
        assert_eq!(ledger.check(start), Ok(()));
        ledger.record(start);
        ledger.record(start + Duration::from_secs(3));
        let now = start + Duration::from_secs(4);
        let frees = start + Duration::from_secs(10);
        assert_eq!(ledger.check(now), Err(frees));
        assert_eq!(ledger.used(now), vec![2]);
        // Exactly one window later the first request no longer counts.
        assert_eq!(ledger.check(frees), Ok(()));
    }

    #[test]
    fn every_window_must_have_room() {
        let start = Instant::now();
        let mut ledger = Ledger::new(&budgets(&[(2, 10), (3, 100)]));
        for secs in [0, 20, 40] {
            ledger.record(start + Duration::from_secs(secs));
        }
        let now = start + Duration::from_secs(60);
        assert_eq!(ledger.used(now), vec![0, 3]);
        assert_eq!(ledger.check(now), Err(start + Duration::from_secs(100)));
    }

    #[test]
    fn settled_request_counts_from_its_end() {
        let start = Instant::now();
        let mut ledger = Ledger::new(&budgets(&[(1, 10)]));
        ledger.record(start);
        ledger.settle(start, start + Duration::from_secs(3));
        assert_eq!(
            ledger.entries().collect::<Vec<_>>(),
            vec![start + Duration::from_secs(3)]
        );
        assert_eq!(
            ledger.check(start + Duration::from_secs(10)),
            Err(start + Duration::from_secs(13))
        );
        assert_eq!(ledger.check(start + Duration::from_secs(13)), Ok(()));
    }

    #[test]
    fn next_expiry_follows_oldest_counted_request() {
        let start = Instant::now();
        let mut ledger = Ledger::new(&budgets(&[(2, 10), (3, 100)]));
        assert_eq!(ledger.next_expiry(start), None);
        ledger.record(start);
        ledger.record(start + Duration::from_secs(4));
        let secs = |n| start + Duration::from_secs(n);
        assert_eq!(ledger.next_expiry(start), Some(secs(10)));
        // At 10s the first request has left the 10s window, so the count drops next at 14s.
        assert_eq!(ledger.next_expiry(secs(10)), Some(secs(14)));
        assert_eq!(ledger.used(secs(10)), vec![1, 2]);
        assert_eq!(ledger.next_expiry(secs(14)), Some(secs(100)));
        assert_eq!(ledger.next_expiry(secs(104)), None);
    }

    #[test]
    fn no_windows_always_has_room() {
        let start = Instant::now();
        let mut ledger = Ledger::new(&[]);
        for i in 0..5 {
            ledger.record(start + Duration::from_secs(i));
        }
        assert_eq!(ledger.check(start + Duration::from_secs(5)), Ok(()));
        assert!(ledger.used(start).is_empty());
    }

    proptest! {
        #[test]
        fn greedy_sender_never_exceeds_any_window(
            limit in 1u64..50,
            window_ms in 10u64..10_000,
            ppm in 1u64..=1_000_000,
            gaps in proptest::collection::vec(0u64..2_000, 1..300),
        ) {
            let limit = RateLimit { limit, window: Duration::from_millis(window_ms) };
            let budget = window_budget(limit, crate::config::Share::from_ppm(ppm).unwrap());
            let windows = [WindowBudget { limit, budget }];
            let start = Instant::now();
            let mut ledger = Ledger::new(&windows);
            let mut sent = Vec::new();
            let mut now = start;
            for gap in gaps {
                now += Duration::from_millis(gap);
                if ledger.check(now).is_ok() {
                    ledger.record(now);
                    sent.push(now);
                }
            }
            for (i, &t) in sent.iter().enumerate() {
                let in_window = sent[..=i].iter().filter(|&&s| s + limit.window > t).count() as u64;
                prop_assert!(in_window <= budget, "{in_window} > {budget}");
            }
        }
    }
}
