//! The loop of one endpoint task.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::classify::Class;
use crate::config::Endpoint;
use crate::headroom::{self, HeaderReport, RetryAfter};
use crate::metrics::{EndpointMetrics, SkipReason};
use crate::probe::{Outcome, Prober};
use crate::shared::{Debit, DebitId, LazyBudget};
use crate::state::{StateStore, StoreError};
use crate::status::EndpointStatus;

/// Runs a short blocking call, such as a store commit, without stalling other tasks on a
/// multi-threaded runtime. On a current-thread runtime (tests on the paused clock) it runs in
/// place, so virtual time cannot move during the call.
pub(crate) fn run_blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

/// The longest a probe waits past its slot for the ledger to free room. Timers fire a little
/// late, so a grid exactly at the budget would otherwise lose a probe whenever the previous
/// one in the window fired later than this one.
const MAX_SLACK: Duration = Duration::from_secs(1);

/// Returns how late a slot may start and still count as on time, and how long a probe may
/// wait for the ledger: a tenth of the interval, at most [`MAX_SLACK`].
fn slack(interval: Duration) -> Duration {
    MAX_SLACK.min(interval / 10)
}

/// The outcome of the shared-budget step of one slot.
enum SharedDebit {
    /// Send, and settle this debit afterwards (`None` without a shared budget).
    Granted(Option<DebitId>),
    /// Do not send: another replica has the slot, the budget is spent, or Redis is down.
    Skip,
}

pub(super) struct Runner<P> {
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) prober: Arc<P>,
    pub(super) shared: Arc<Shared>,
    pub(super) store: Option<Arc<StateStore>>,
    pub(super) shared_budget: Option<Arc<LazyBudget>>,
    pub(super) metrics: EndpointMetrics,
    pub(super) status: Arc<EndpointStatus>,
}

fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

/// Returns the first slot of the grid through `slot` that is not earlier than `until`: the
/// slot at which an endpoint held back until then probes again.
fn slot_at_or_after(slot: Instant, interval: Duration, until: Instant) -> Instant {
    let behind = until.saturating_duration_since(slot).as_nanos();
    let slots = behind.div_ceil(interval.as_nanos().max(1));
    slot + interval.saturating_mul(u32::try_from(slots).unwrap_or(u32::MAX))
}

impl<P: Prober> Runner<P> {
    pub(super) async fn run(self, first: Instant, cancel: CancellationToken) {
        let interval = self.endpoint.plan.interval;
        let mut slot = first;
        loop {
            self.publish(slot);
            if !self.wait_for(slot, &cancel).await {
                return;
            }
            let now = Instant::now();
            let late = now.saturating_duration_since(slot);
            if late > slack(interval) {
                // The slot passed while the previous probe ran or the process was suspended:
                // move to the next slot on the grid instead of probing off it.
                let behind = late.as_nanos().div_ceil(interval.as_nanos());
                let missed = u32::try_from(behind).unwrap_or(u32::MAX);
                slot += interval.saturating_mul(missed);
                self.skip(SkipReason::Missed, u64::from(missed));
                continue;
            }
            // Boxed so that an idle task, one per endpoint, holds only this loop and its timer:
            // inline, the probe's futures would make every task several kilobytes larger.
            if !Box::pin(self.attempt(now, &cancel)).await {
                return;
            }
            slot += interval;
        }
    }

    /// Sleeps until `slot`, waking each time a send leaves a budget window to publish the
    /// used counts again, so they never show spent budget that has already freed. Returns
    /// false when the task was cancelled.
    async fn wait_for(&self, slot: Instant, cancel: &CancellationToken) -> bool {
        loop {
            let expiry = self
                .shared
                .ledger()
                .next_expiry(Instant::now())
                .filter(|&at| at < slot);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                () = sleep_until(expiry.unwrap_or(slot)) => {}
            }
            if expiry.is_none() {
                return true;
            }
            self.publish(slot);
        }
    }

    fn publish(&self, slot: Instant) {
        self.shared.slots().next = Some(slot);
        let now = Instant::now();
        let not_before = self.shared.not_before().filter(|&at| at > now);
        let mut pause = self.shared.pause();
        if pause.is_some_and(|until| until <= now) {
            *pause = None;
        }
        let held_until = (*pause).max(not_before);
        drop(pause);
        let interval = self.endpoint.plan.interval;
        let paused = held_until.map(|until| wall_clock(slot_at_or_after(slot, interval, until)));
        let used = self.shared.ledger().used(now);
        let next = wall_clock(slot);
        self.metrics.next_run(next);
        self.metrics.paused_until(paused);
        self.metrics.budget_used(&used);
        self.status.schedule(next, paused, &used);
    }

    fn skip(&self, reason: SkipReason, count: u64) {
        tracing::debug!(reason = reason.as_str(), count, "probe skipped");
        self.metrics.skipped(reason, count);
        self.status.skipped(count);
    }

    /// Runs one slot. Returns false when the task was cancelled while waiting.
    async fn attempt(&self, now: Instant, cancel: &CancellationToken) -> bool {
        if self.shared.pause().is_some_and(|until| until > now) {
            self.skip(SkipReason::RetryAfter, 1);
            return true;
        }
        if self.shared.not_before().is_some_and(|at| at > now) {
            self.skip(SkipReason::UpstreamQuota, 1);
            return true;
        }
        let send_at = match self.shared.ledger().check(now) {
            Ok(()) => now,
            Err(ready) if ready - now <= slack(self.endpoint.plan.interval) => ready,
            Err(_) => {
                self.skip(SkipReason::Budget, 1);
                return true;
            }
        };
        if send_at > now {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                () = sleep_until(send_at) => {}
            }
        }
        let debit = match self.debit_shared().await {
            SharedDebit::Granted(id) => id,
            SharedDebit::Skip => return true,
        };
        // The store reads its clock after this, so a duration measured from here covers the
        // whole time from the stored send to the probe's end.
        let before_store = Instant::now();
        let stored = match self.persist_send() {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(error = %error, "cannot record the send in the state store; probe not sent");
                self.skip(SkipReason::BudgetStoreUnavailable, 1);
                return true;
            }
        };
        let ledger_time = {
            // Check and record under one lock, so a task that a reload is replacing cannot
            // spend the same room.
            let mut ledger = self.shared.ledger();
            let at = Instant::now();
            if ledger.check(at).is_err() {
                drop(ledger);
                self.skip(SkipReason::Budget, 1);
                return true;
            }
            ledger.record(at);
            self.shared.slots().last_sent = Some(at);
            at
        };
        let wall = SystemTime::now();
        self.metrics.sent(wall);
        self.status.sent(wall);

        let outcome = self.prober.probe(&self.endpoint).await;
        let ended = Instant::now();
        self.shared.ledger().settle(ledger_time, ended);
        self.settle_shared(debit).await;
        self.record(outcome, ledger_time);
        self.persist_completion(stored, ended - before_store);
        true
    }

    /// Claims this slot and debits the budget shared with other replicas, when one is
    /// configured. One replica wins each slot; the others leave it to the winner. When
    /// Redis cannot be reached, nothing is sent: spending blind could break the limit.
    async fn debit_shared(&self) -> SharedDebit {
        let Some(lazy) = &self.shared_budget else {
            return SharedDebit::Granted(None);
        };
        let key = self.endpoint.key();
        let interval = self.endpoint.plan.interval;
        let slot = super::wall_slot(&key, interval, SystemTime::now());
        let outcome = async {
            let budget = lazy.get().await?;
            if !budget.claim_slot(&key, slot, interval).await? {
                return Ok(None);
            }
            budget
                .debit(&key, &self.endpoint.plan.windows, self.endpoint.timeout)
                .await
                .map(Some)
        }
        .await;
        match outcome {
            Ok(None) => {
                tracing::debug!(slot, "another replica claimed this slot");
                self.metrics.set_ready(true);
                SharedDebit::Skip
            }
            Ok(Some(Debit::Granted { id, .. })) => {
                self.metrics.set_ready(true);
                SharedDebit::Granted(Some(id))
            }
            Ok(Some(Debit::Denied { .. })) => {
                self.metrics.set_ready(true);
                self.skip(SkipReason::Budget, 1);
                SharedDebit::Skip
            }
            Err(error) => {
                // The readiness watcher logs the outage once; each skipped slot is counted.
                tracing::debug!(error = %error, "shared budget store unavailable; probe not sent");
                self.metrics.set_ready(false);
                self.skip(SkipReason::BudgetStoreUnavailable, 1);
                SharedDebit::Skip
            }
        }
    }

    /// Counts the shared debit from the end of its probe, as the local ledger does.
    async fn settle_shared(&self, debit: Option<DebitId>) {
        let (Some(lazy), Some(id)) = (&self.shared_budget, debit) else {
            return;
        };
        let result = async {
            let budget = lazy.get().await?;
            budget
                .settle(
                    &self.endpoint.key(),
                    id,
                    &self.endpoint.plan.windows,
                    self.endpoint.timeout,
                )
                .await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(error = %error, "cannot settle the shared debit; it counts until one timeout after it was granted");
        }
    }

    /// Commits the send to the store before the request goes out, so a crash right after
    /// cannot make the next run spend the same budget again.
    fn persist_send(&self) -> Result<Option<u64>, StoreError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let key = self.endpoint.key();
        let keep = super::retention(&self.endpoint);
        run_blocking(|| store.record_send(&key, keep)).map(Some)
    }

    /// Saves how long the probe took, so a restart counts it from its end, and the last
    /// result with its streaks.
    fn persist_completion(&self, id: Option<u64>, took: Duration) {
        let (Some(store), Some(id)) = (&self.store, id) else {
            return;
        };
        let saved = self.status.saved();
        let key = self.endpoint.key();
        if let Err(error) = run_blocking(|| store.complete(&key, id, took, &saved)) {
            tracing::warn!(error = %error, "cannot save the probe's end and result");
        }
    }

    fn record(&self, mut outcome: Outcome, sent_at: Instant) {
        let finished = SystemTime::now();
        let report = headroom::read_headers(&outcome.headers, finished, &self.endpoint.headroom);
        for error in &report.errors {
            self.metrics.header_error(error.as_str());
        }
        self.read_credit(&mut outcome, finished);

        // The status judges the response against the endpoint's current `expect`, which a
        // reload during the probe may have changed, and the metrics and the log record that
        // verdict.
        self.status.result(
            outcome.class,
            outcome.status,
            outcome.duration,
            finished,
            outcome.detail,
            |success| {
                tracing::debug!(
                    class = outcome.class.as_str(),
                    status = outcome.status,
                    success,
                    duration_seconds = outcome.duration.as_secs_f64(),
                    detail = outcome.detail,
                    "probe finished"
                );
                self.metrics.result(
                    outcome.class,
                    outcome.status,
                    success,
                    outcome.duration,
                    finished,
                );
            },
        );
        if outcome.class == Class::RateLimited {
            self.metrics.unexpected_rate_limited();
            tracing::warn!(
                "upstream answered 429 although the probe budget should prevent it; the documented limit may be wrong or shared with other clients"
            );
        }
        if matches!(outcome.class, Class::RateLimited | Class::Unavailable) {
            self.apply_retry_after(&report);
        }
        self.apply_quota(&report, finished, sent_at);
    }

    /// Reads the credit balance from the body. A response that should carry the balance but
    /// does not is a `body_error`; the balance keeps its last good value.
    fn read_credit(&self, outcome: &mut Outcome, at: SystemTime) {
        let (Some(credit), Some(body)) = (&self.endpoint.credit, &outcome.body) else {
            return;
        };
        match headroom::extract_credit(body, &credit.path) {
            Ok(balance) => {
                self.metrics.credit(balance, at);
                self.status.credit(balance, at);
            }
            Err(error) => {
                self.metrics.credit_error(error.reason());
                tracing::debug!(
                    reason = error.reason(),
                    "credit balance not found in the body"
                );
                if outcome.class == Class::Ok {
                    outcome.class = Class::BodyError;
                    outcome.success = false;
                    outcome.detail = "body has no credit balance";
                }
            }
        }
    }

    fn apply_retry_after(&self, report: &HeaderReport) {
        let Some(RetryAfter::Delay { wait, form, .. }) = &report.retry_after else {
            return;
        };
        self.metrics.retry_after(*form);
        if let Some(store) = &self.store {
            let key = self.endpoint.key();
            if let Err(error) = run_blocking(|| store.record_pause(&key, *wait)) {
                tracing::warn!(error = %error, "cannot save the Retry-After pause");
            }
        }
        let until = Instant::now() + *wait;
        let mut pause = self.shared.pause();
        *pause = Some(pause.map_or(until, |p| p.max(until)));
        tracing::info!(
            wait_seconds = wait.as_secs_f64(),
            form = form.as_str(),
            "pausing endpoint for Retry-After"
        );
    }

    /// Exports the quotas the API reported and slows the endpoint when the most restrictive
    /// one cannot sustain the planned interval until its reset. The endpoint never speeds up.
    fn apply_quota(&self, report: &HeaderReport, at: SystemTime, sent_at: Instant) {
        for policy in &report.policies {
            let name = policy.policy.as_deref().unwrap_or("default");
            let reset = policy.reset_after.map(|d| at + d);
            self.metrics
                .upstream(name, policy.limit, policy.remaining, reset);
        }
        let planned = self.endpoint.plan.interval;
        let paced = headroom::pace(report, planned).filter(|&p| p > planned);
        let until = paced.map(|p| sent_at + p);
        let held_before = std::mem::replace(&mut *self.shared.not_before(), until).is_some();
        // Saved so a restart keeps the hold: written while a hold lasts and once when it ends.
        if (held_before || until.is_some())
            && let Some(store) = &self.store
        {
            let key = self.endpoint.key();
            let wait = until.map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(error) = run_blocking(|| store.record_hold(&key, wait)) {
                tracing::warn!(error = %error, "cannot save the quota hold");
            }
        }
        if let Some(paced) = paced {
            tracing::debug!(
                interval_seconds = paced.as_secs_f64(),
                "slowing down for the reported quota"
            );
        }
    }
}
