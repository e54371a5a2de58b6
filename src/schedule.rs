//! The scheduler: one task per endpoint on a fixed grid, with the ledger checked before
//! every probe.
//!
//! Slots are `first + k × interval` on the monotonic clock, so response times never shift the
//! grid. First slots are spread over the interval by a hash of the endpoint's key, so start-up
//! sends no burst. A slot that passes while the task is busy or the process is suspended is
//! skipped and counted as `missed`, never replayed.

mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Endpoint};
use crate::ledger::Ledger;
use crate::metrics::{Metrics, SkipReason};
use crate::probe::Prober;
use crate::shared::LazyBudget;
use crate::state::{Opening, STAMP_RESOLUTION, StateStore};
use crate::status::{EndpointStatus, StatusBoard};
use runner::Runner;

/// State of one endpoint that outlives its task: a reload that changes the endpoint keeps it.
pub struct Shared {
    ledger: Mutex<Ledger>,
    pause: Mutex<Option<Instant>>,
    not_before: Mutex<Option<Instant>>,
    slots: Mutex<Slots>,
}

/// The position of an endpoint's grid, from which a task started by a reload resumes.
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    /// The send time of the last probe, kept after the ledger has pruned it.
    last_sent: Option<Instant>,
    /// The next slot the running task waits for.
    next: Option<Instant>,
}

impl Shared {
    fn new(ledger: Ledger) -> Shared {
        Shared {
            ledger: Mutex::new(ledger),
            pause: Mutex::new(None),
            not_before: Mutex::new(None),
            slots: Mutex::new(Slots::default()),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // The ledger contains plain timestamps, so a panic elsewhere leaves it consistent.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pause(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.pause.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the earliest next send that the API's reported quota allows.
    fn not_before(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

struct Running {
    endpoint: Arc<Endpoint>,
    cancel: CancellationToken,
    shared: Arc<Shared>,
    status: Arc<EndpointStatus>,
}

/// The effect of a config change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Endpoints that were not configured before.
    pub added: usize,
    /// Endpoints whose settings changed; their spent budget is kept.
    pub changed: usize,
    /// Endpoints left running as they were.
    pub unchanged: usize,
    /// Endpoints no longer configured.
    pub removed: usize,
}

/// Every endpoint task, and what they share.
pub struct Scheduler<P: Prober> {
    prober: Arc<P>,
    metrics: Metrics,
    board: Arc<StatusBoard>,
    running: HashMap<String, Running>,
    tasks: JoinSet<()>,
    root: CancellationToken,
    store: Option<Arc<StateStore>>,
    shared_budget: Option<Arc<LazyBudget>>,
}

impl<P: Prober> Scheduler<P> {
    /// Returns a scheduler with no endpoints.
    pub fn new(prober: Arc<P>, metrics: Metrics, board: Arc<StatusBoard>) -> Scheduler<P> {
        Scheduler {
            prober,
            metrics,
            board,
            running: HashMap::new(),
            tasks: JoinSet::new(),
            root: CancellationToken::new(),
            store: None,
            shared_budget: None,
        }
    }

    /// Shares the budget with other replicas through Redis: slots are aligned to the wall
    /// clock, each is claimed by one replica, and every send is debited atomically.
    #[must_use]
    pub fn with_shared_budget(mut self, budget: Arc<LazyBudget>) -> Scheduler<P> {
        self.shared_budget = Some(budget);
        self
    }

    /// Persists spent budget, pauses and last results in `store`, and restores them for
    /// every endpoint this scheduler starts.
    #[must_use]
    pub fn with_store(mut self, store: Arc<StateStore>) -> Scheduler<P> {
        self.store = Some(store);
        self
    }

    /// Starts, restarts or stops endpoint tasks so they match `config`. Unchanged endpoints
    /// keep running untouched; changed ones keep their ledger and pause, so a reload never
    /// spends budget again.
    pub fn apply(&mut self, config: &Config) -> Applied {
        while self.tasks.try_join_next().is_some() {}
        let now = Instant::now();
        let mut applied = Applied::default();
        let mut previous = std::mem::take(&mut self.running);
        let mut statuses = Vec::with_capacity(config.endpoints.len());
        let offsets = spread_offsets(config, &previous);

        for endpoint in &config.endpoints {
            let key = endpoint.key();
            let old = previous.remove(&key);
            let running = match old {
                Some(old) if *old.endpoint == *endpoint => {
                    applied.unchanged += 1;
                    old
                }
                Some(old) => {
                    applied.changed += 1;
                    old.cancel.cancel();
                    self.metrics.reset_static(endpoint);
                    let shared = carry_over(&old.shared, endpoint);
                    let status = Arc::new(EndpointStatus::new(endpoint));
                    let metrics = self.metrics.endpoint(endpoint);
                    status.inherit(&old.status, |last| metrics.restore(last));
                    let first = resume_slot(&shared, endpoint, now);
                    self.start(endpoint, shared, status, first)
                }
                None => {
                    applied.added += 1;
                    let status = Arc::new(EndpointStatus::new(endpoint));
                    let offset = offsets.get(&key).copied();
                    let offset =
                        offset.unwrap_or_else(|| start_offset(&key, endpoint.plan.interval));
                    let (shared, first) = match &self.store {
                        Some(store) => self.restore(store, endpoint, &status, now, offset),
                        None => (
                            Shared::new(Ledger::new(&endpoint.plan.windows)),
                            now + offset,
                        ),
                    };
                    let first = self.align(&key, endpoint.plan.interval, first);
                    self.start(endpoint, Arc::new(shared), status, first)
                }
            };
            statuses.push(running.status.clone());
            self.running.insert(key, running);
        }

        for (_, old) in previous {
            applied.removed += 1;
            old.cancel.cancel();
            self.metrics
                .remove_endpoint(&old.endpoint.api, &old.endpoint.name);
        }
        if let Some(store) = &self.store
            && let Err(error) = store.flush()
        {
            tracing::warn!(error = %error, "cannot save the first slots of new endpoints");
        }
        self.board.set_endpoints(statuses);
        applied
    }

    /// Rebuilds an endpoint's ledger, pause and last result from the store and returns its
    /// first slot: one interval after the last remembered request (later slots that passed
    /// while the daemon was down are counted as missed), a full interval from now when the
    /// store was missing or unreadable, or the spread offset for an endpoint the store has
    /// never seen.
    fn restore(
        &self,
        store: &StateStore,
        endpoint: &Endpoint,
        status: &EndpointStatus,
        now: Instant,
        offset: Duration,
    ) -> (Shared, Instant) {
        let key = endpoint.key();
        let interval = endpoint.plan.interval;
        let mut ledger = Ledger::new(&endpoint.plan.windows);
        let restored = match store.restore(&key, retention(endpoint)) {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(endpoint = %key, error = %error, "cannot read saved state; waiting one full interval before the first probe");
                return (Shared::new(ledger), now + interval);
            }
        };
        if let Ok(Some(saved)) = store.last_result(&key)
            && let Some(last) = status.restore(&saved)
        {
            self.metrics.endpoint(endpoint).restore(&last);
        }
        // Ages were measured inside `restore`, before this reading, so `read - ago` is never
        // earlier than the send itself.
        let read = Instant::now();
        for (ago, took) in restored.sends_ago.iter().zip(&restored.took) {
            // Count each request from the moment its probe ended. A probe that never recorded
            // its end (the process stopped) counts as ending one timeout later, the latest it
            // could have. A send older than the monotonic clock's origin counts as now: spent
            // budget is never forgotten early. Stamps are whole milliseconds, so one more
            // millisecond covers their rounding.
            let ended = ago
                .saturating_sub(took.unwrap_or(endpoint.timeout))
                .saturating_sub(STAMP_RESOLUTION);
            ledger.record(read.checked_sub(ended).unwrap_or(read));
        }
        let shared = Shared::new(ledger);
        *shared.pause() = restored.pause_left.map(|left| read + left);
        *shared.not_before() = restored.hold_left.map(|left| read + left);
        shared.slots().last_sent = restored
            .last_send_ago
            .map(|ago| read.checked_sub(ago).unwrap_or(read));

        // The newest send resumes the grid even when it is older than the retention, so a
        // long downtime still counts its slots as missed.
        let first = match restored.last_send_ago {
            Some(ago) => self.resume_after(endpoint, read, ago),
            None => first_due(store, &key, interval, now, offset),
        };
        (shared, first)
    }

    /// Returns the next slot on the grid of an endpoint last probed `ago`: one interval after
    /// that probe, with the slots that passed while the daemon was down counted as missed.
    fn resume_after(&self, endpoint: &Endpoint, now: Instant, ago: Duration) -> Instant {
        // Computed from `now` forward, because the last probe may predate the monotonic
        // clock's origin (a reboot), where `now - ago` does not exist.
        let interval = endpoint.plan.interval;
        let behind = ago
            .saturating_sub(interval)
            .as_nanos()
            .div_ceil(interval.as_nanos().max(1));
        let missed = u32::try_from(behind).unwrap_or(u32::MAX);
        if missed > 0 {
            self.metrics
                .endpoint(endpoint)
                .skipped(SkipReason::Missed, u64::from(missed));
        }
        let next_after_last = interval.saturating_mul(missed.saturating_add(1));
        now + next_after_last.saturating_sub(ago)
    }

    /// With a shared budget, moves `first` to the next slot of the wall-clock grid that every
    /// replica computes the same way, so replicas contend for the same slots.
    fn align(&self, key: &str, interval: Duration, first: Instant) -> Instant {
        if self.shared_budget.is_none() {
            return first;
        }
        let now = Instant::now();
        let wall_first = SystemTime::now() + first.saturating_duration_since(now);
        let slot = wall_slot(key, interval, wall_first);
        let mut at = slot_start(key, interval, slot);
        if at < wall_first {
            at = slot_start(key, interval, slot + 1);
        }
        now + at.duration_since(SystemTime::now()).unwrap_or_default()
    }

    fn start(
        &mut self,
        endpoint: &Endpoint,
        shared: Arc<Shared>,
        status: Arc<EndpointStatus>,
        first: Instant,
    ) -> Running {
        let endpoint = Arc::new(endpoint.clone());
        let cancel = self.root.child_token();
        let runner = Runner {
            endpoint: endpoint.clone(),
            prober: self.prober.clone(),
            shared: shared.clone(),
            store: self.store.clone(),
            shared_budget: self.shared_budget.clone(),
            metrics: self.metrics.endpoint(&endpoint),
            status: status.clone(),
        };
        let span = tracing::info_span!("probe", api = %endpoint.api, endpoint = %endpoint.name);
        self.tasks.spawn(tracing::Instrument::instrument(
            runner.run(first, cancel.clone()),
            span,
        ));
        Running {
            endpoint,
            cancel,
            shared,
            status,
        }
    }

    /// Stops every task: no new probe starts, probes in flight may finish until `grace` has
    /// passed, and are then cut. Returns whether every task finished in time.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.root.cancel();
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        drained
    }
}

/// Returns the state for a changed endpoint: the old ledger's requests still count against the
/// new budgets, and a pause still holds.
fn carry_over(old: &Arc<Shared>, endpoint: &Endpoint) -> Arc<Shared> {
    if old.ledger().windows() == endpoint.plan.windows.as_slice() {
        // The same state object, so a probe of the replaced task that is still in flight
        // settles its entry where the new task sees it.
        return old.clone();
    }
    let mut ledger = Ledger::new(&endpoint.plan.windows);
    for at in old.ledger().entries() {
        ledger.record(at);
    }
    let shared = Shared::new(ledger);
    *shared.pause() = *old.pause();
    *shared.not_before() = *old.not_before();
    *shared.slots() = *old.slots();
    Arc::new(shared)
}

/// Returns the first slot of a restarted task: one interval after the last request, or now
/// when that has passed. An endpoint not yet probed keeps the slot its old task waited for,
/// so a burst of reloads cannot postpone its first probe again and again.
fn resume_slot(shared: &Shared, endpoint: &Endpoint, now: Instant) -> Instant {
    let slots = *shared.slots();
    match (slots.last_sent, slots.next) {
        (Some(last), _) => (last + endpoint.plan.interval).max(now),
        (None, Some(next)) => next.max(now),
        (None, None) => now + start_offset(&endpoint.key(), endpoint.plan.interval),
    }
}

/// Returns evenly spread first-probe offsets for the endpoints this config adds, when it adds
/// them all at once (start-up): endpoints that share an interval get offsets
/// `(2i + 1) / 2n` of it, in key order. A reload that adds a few endpoints to running ones uses
/// [`start_offset`] instead, so new endpoints land at stable, unrelated places.
fn spread_offsets(
    config: &Config,
    previous: &HashMap<String, Running>,
) -> HashMap<String, Duration> {
    if !previous.is_empty() {
        return HashMap::new();
    }
    let mut groups: HashMap<Duration, Vec<String>> = HashMap::new();
    for endpoint in &config.endpoints {
        groups
            .entry(endpoint.plan.interval)
            .or_default()
            .push(endpoint.key());
    }
    let mut offsets = HashMap::new();
    for (interval, mut keys) in groups {
        keys.sort();
        let n = keys.len() as u128;
        for (i, key) in keys.into_iter().enumerate() {
            let nanos = interval.as_nanos() * (2 * i as u128 + 1) / (2 * n);
            offsets.insert(
                key,
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
            );
        }
    }
    offsets
}

/// Returns `offset`, a point within `interval`, moved to the same point within
/// `min(interval, 60s)`.
fn within_a_minute(offset: Duration, interval: Duration) -> Duration {
    let span = Duration::from_secs(60);
    if interval <= span {
        return offset;
    }
    let nanos = offset.as_nanos() * span.as_nanos() / interval.as_nanos();
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Returns the first slot of an endpoint not probed yet, and saves it. A first slot planned
/// before a restart is kept, so restarts more frequent than the interval cannot postpone the
/// first probe forever; an overdue one goes out within a minute, spread so a restart sends no
/// burst. Without a saved slot, a missing store waits one full interval plus the spread
/// offset scaled to a minute, and an existing one uses the spread offset.
fn first_due(
    store: &StateStore,
    key: &str,
    interval: Duration,
    now: Instant,
    offset: Duration,
) -> Instant {
    let planned = match store.due(key) {
        Ok(Some(wait)) if wait.is_zero() => {
            now + start_offset(key, interval.min(Duration::from_secs(60)))
        }
        // Still ahead, and already stored.
        Ok(Some(wait)) => return now + wait,
        Ok(None) | Err(_) if store.opening() == Opening::Existing => now + offset,
        // No state: one full interval first, then the spread offset scaled to at most a
        // minute, so endpoints still start apart without waiting up to a second interval.
        Ok(None) | Err(_) => now + interval + within_a_minute(offset, interval),
    };
    if let Err(error) = store.record_due(key, planned - now) {
        tracing::warn!(endpoint = %key, error = %error, "cannot save the first slot");
    }
    planned
}

/// Returns how long sends of an endpoint must be remembered: its longest window plus its
/// timeout, and at least one interval plus the timeout, so an endpoint without a documented
/// limit also resumes its schedule after a restart.
fn retention(endpoint: &Endpoint) -> Duration {
    let longest = endpoint
        .plan
        .windows
        .iter()
        .map(|w| w.limit.window)
        .max()
        .unwrap_or_default();
    (longest + endpoint.timeout).max(endpoint.plan.interval + endpoint.timeout)
}

/// Returns the index of the wall-clock grid slot nearest to `at`: slots start at
/// `start_offset(key) + k × interval` after the Unix epoch.
pub(crate) fn wall_slot(key: &str, interval: Duration, at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let phase = start_offset(key, interval);
    let from_phase = since.saturating_sub(phase).as_nanos();
    let interval = interval.as_nanos().max(1);
    u64::try_from((from_phase + interval / 2) / interval).unwrap_or(u64::MAX)
}

fn slot_start(key: &str, interval: Duration, slot: u64) -> SystemTime {
    let nanos = interval.as_nanos() * u128::from(slot) + start_offset(key, interval).as_nanos();
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Returns a deterministic offset in `[0, interval)` from the endpoint's key, so first probes
/// spread over the interval and stay put when other endpoints are added or removed.
#[must_use]
pub fn start_offset(key: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across Rust versions, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1);
    let offset = u128::from(hash) % nanos;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
