//! Compact storage of the per-endpoint series.
//!
//! Each endpoint holds one [`Series`]: its label values once, plain atomics for the series
//! whose labels come from bounded enums, and small locked lists for the open-ended labels
//! (`code`, `policy`, `window`, and the `method` of the info series). A scrape writes the text
//! of each metric family from these values (see `family`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use crate::classify::Class;
use crate::headroom::{CreditError, HeaderError, RetryAfterForm};

use super::SkipReason;

/// Histogram buckets for probe durations, in seconds: from a fast loopback response to the
/// longest sensible timeout.
pub(super) const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Locks a mutex, going on with the data of a thread that panicked while holding it: every
/// value behind these locks is valid after any partial update.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `f64` in an atomic, as its bits.
#[derive(Default)]
pub(super) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(super) fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn add(&self, value: f64) {
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

/// A gauge that may be absent, stored as `f64` bits. [`Slot::ABSENT`] marks a series that
/// does not exist.
pub(super) struct Slot(AtomicU64);

impl Slot {
    /// A NaN payload that [`Slot::set`] never stores: it stores every NaN as `f64::NAN`.
    const ABSENT: u64 = u64::MAX;

    pub(super) const fn absent() -> Slot {
        Slot(AtomicU64::new(Slot::ABSENT))
    }

    pub(super) fn set(&self, value: f64) {
        let value = if value.is_nan() { f64::NAN } else { value };
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub(super) fn remove(&self) {
        self.0.store(Slot::ABSENT, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> Option<f64> {
        let bits = self.0.load(Ordering::Relaxed);
        (bits != Slot::ABSENT).then(|| f64::from_bits(bits))
    }
}

/// Bucket counts, sum and count of the probe duration histogram of one endpoint.
#[derive(Default)]
pub(super) struct DurationHistogram {
    /// Observations per bucket, not cumulative: index `i` counts values above bucket `i - 1`
    /// and at most bucket `i`.
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    sum: AtomicF64,
    count: AtomicU64,
}

impl DurationHistogram {
    pub(super) fn observe(&self, value: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| value <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(value);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the cumulative count of each bucket, the sum and the count.
    pub(super) fn snapshot(&self) -> ([u64; DURATION_BUCKETS.len()], f64, u64) {
        let mut cumulative = [0; DURATION_BUCKETS.len()];
        let mut total = 0;
        for (bucket, count) in cumulative.iter_mut().zip(&self.buckets) {
            total += count.load(Ordering::Relaxed);
            *bucket = total;
        }
        // Never below the last bucket, even while an observation is half recorded.
        let count = self.count.load(Ordering::Relaxed).max(total);
        (cumulative, self.sum.get(), count)
    }
}

/// The gauges of one window of an endpoint's plan.
#[derive(Default)]
pub(super) struct WindowSeries {
    pub(super) rate_limit: AtomicI64,
    pub(super) budget: AtomicI64,
    pub(super) used: AtomicI64,
}

/// The upstream quota of one policy as the API reports it. Each field is its own series.
#[derive(Clone, Copy, Default)]
pub(super) struct Upstream {
    pub(super) limit: Option<f64>,
    pub(super) remaining: Option<f64>,
    pub(super) reset: Option<f64>,
}

/// Adds `by` to the counter at `index` of `counters`. Returns false, counting nothing, when
/// `index` is `None` or out of range.
pub(super) fn bump(counters: &[AtomicU64], index: Option<usize>, by: u64) -> bool {
    match index.and_then(|i| counters.get(i)) {
        Some(counter) => {
            counter.fetch_add(by, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Every series of one endpoint.
pub(super) struct Series {
    pub(super) api: Arc<str>,
    pub(super) endpoint: Arc<str>,
    pub(super) probes: AtomicU64,
    pub(super) successes: AtomicU64,
    pub(super) unexpected_429: AtomicU64,
    /// Indexed like [`Class::ALL`].
    pub(super) results: [AtomicU64; Class::ALL.len()],
    /// Indexed like [`SkipReason::ALL`].
    pub(super) skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Indexed like [`RetryAfterForm::ALL`].
    pub(super) retry_after: [AtomicU64; RetryAfterForm::ALL.len()],
    /// Indexed like [`HeaderError::REASONS`].
    pub(super) header_errors: [AtomicU64; HeaderError::REASONS.len()],
    /// Indexed like [`CreditError::REASONS`].
    pub(super) credit_errors: [AtomicU64; CreditError::REASONS.len()],
    /// Bit `i` is set while the series of `CreditError::REASONS[i]` exists.
    pub(super) credit_errors_present: AtomicU16,
    pub(super) success: Slot,
    pub(super) status_code: Slot,
    pub(super) interval: Slot,
    pub(super) credit: Slot,
    pub(super) credit_updated: Slot,
    pub(super) last_run: AtomicF64,
    pub(super) last_success: AtomicF64,
    pub(super) next_run: AtomicF64,
    pub(super) paused_until: AtomicF64,
    pub(super) duration: DurationHistogram,
    /// Responses by status code.
    pub(super) responses: Mutex<Vec<(u16, u64)>>,
    /// Upstream quotas by policy name.
    pub(super) upstream: Mutex<Vec<(Box<str>, Upstream)>>,
    /// The plan's windows by label. A window's three gauges exist while it is listed.
    pub(super) windows: Mutex<Vec<(Box<str>, Arc<WindowSeries>)>>,
    /// The `method` and `expects_success` label values of the info series.
    pub(super) info: Mutex<Vec<(Box<str>, bool)>>,
}

impl Series {
    fn new(api: Arc<str>, endpoint: Arc<str>) -> Series {
        Series {
            api,
            endpoint,
            probes: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            unexpected_429: AtomicU64::new(0),
            results: Default::default(),
            skipped: Default::default(),
            retry_after: Default::default(),
            header_errors: Default::default(),
            credit_errors: Default::default(),
            credit_errors_present: AtomicU16::new(0),
            success: Slot::absent(),
            status_code: Slot::absent(),
            interval: Slot::absent(),
            credit: Slot::absent(),
            credit_updated: Slot::absent(),
            last_run: AtomicF64::default(),
            last_success: AtomicF64::default(),
            next_run: AtomicF64::default(),
            paused_until: AtomicF64::default(),
            duration: DurationHistogram::default(),
            responses: Mutex::default(),
            upstream: Mutex::default(),
            windows: Mutex::default(),
            info: Mutex::default(),
        }
    }

    /// Returns the gauges of a window, creating them at zero.
    pub(super) fn window(&self, label: &str) -> Arc<WindowSeries> {
        let mut windows = lock(&self.windows);
        if let Some((_, window)) = windows.iter().find(|(known, _)| **known == *label) {
            return window.clone();
        }
        let window = Arc::new(WindowSeries::default());
        windows.push((label.into(), window.clone()));
        window
    }

    /// Creates the info series with these `method` and `expects_success` labels, unless it
    /// exists.
    pub(super) fn set_info(&self, method: &str, expects_success: bool) {
        let mut info = lock(&self.info);
        if !info
            .iter()
            .any(|(known, expects)| **known == *method && *expects == expects_success)
        {
            info.push((method.into(), expects_success));
        }
    }

    /// Counts a response with status code `code`.
    pub(super) fn response(&self, code: u16) {
        let mut responses = lock(&self.responses);
        match responses.iter_mut().find(|(known, _)| *known == code) {
            Some((_, count)) => *count += 1,
            None => responses.push((code, 1)),
        }
    }

    /// Sets the fields of `update` that are known on the quota of `policy`, creating it.
    pub(super) fn upstream(&self, policy: &str, update: Upstream) {
        let mut upstream = lock(&self.upstream);
        let at = if let Some(at) = upstream.iter().position(|(known, _)| **known == *policy) {
            at
        } else {
            upstream.push((policy.into(), Upstream::default()));
            upstream.len() - 1
        };
        let entry = &mut upstream[at].1;
        entry.limit = update.limit.or(entry.limit);
        entry.remaining = update.remaining.or(entry.remaining);
        entry.reset = update.reset.or(entry.reset);
    }

    /// Creates every credit error series at zero, keeping the ones that exist.
    pub(super) fn create_credit_errors(&self) {
        let all = (1u16 << CreditError::REASONS.len()) - 1;
        self.credit_errors_present.fetch_or(all, Ordering::Relaxed);
    }

    /// Removes every series of the plan: the interval, the info and the windows.
    pub(super) fn remove_static(&self) {
        self.interval.remove();
        lock(&self.info).clear();
        lock(&self.windows).clear();
    }

    /// Removes the credit balance, its update time and the credit error series.
    pub(super) fn remove_credit(&self) {
        self.credit.remove();
        self.credit_updated.remove();
        self.credit_errors_present.store(0, Ordering::Relaxed);
        for counter in &self.credit_errors {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a credit error and creates its series if it was absent.
    pub(super) fn credit_error(&self, index: Option<usize>) -> bool {
        let Some(i) = index.filter(|i| *i < CreditError::REASONS.len()) else {
            return false;
        };
        self.credit_errors[i].fetch_add(1, Ordering::Relaxed);
        self.credit_errors_present
            .fetch_or(1 << i, Ordering::Relaxed);
        true
    }
}

/// Every endpoint's series, by API and endpoint name.
#[derive(Default)]
pub(super) struct Store(RwLock<BTreeMap<Arc<str>, Endpoints>>);

/// The series of the endpoints of one API, by endpoint name.
pub(super) type Endpoints = BTreeMap<Arc<str>, Arc<Series>>;

impl Store {
    /// Returns the series of an endpoint, creating them.
    pub(super) fn get_or_create(&self, api: &str, endpoint: &str) -> Arc<Series> {
        if let Some(series) = self.get(api, endpoint) {
            return series;
        }
        let mut apis = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Every endpoint of an API shares one copy of its name.
        let api: Arc<str> = apis
            .get_key_value(api)
            .map_or_else(|| api.into(), |(known, _)| known.clone());
        apis.entry(api.clone())
            .or_default()
            .entry(endpoint.into())
            .or_insert_with_key(|name| Arc::new(Series::new(api, name.clone())))
            .clone()
    }

    /// Returns the series of an endpoint, if it has any.
    pub(super) fn get(&self, api: &str, endpoint: &str) -> Option<Arc<Series>> {
        self.read().get(api)?.get(endpoint).cloned()
    }

    /// Locks the store for reading and returns the endpoints of every API, by API name. No
    /// endpoint is added or removed while the guard lives.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Arc<str>, Endpoints>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes every series of an endpoint.
    pub(super) fn remove(&self, api: &str, endpoint: &str) {
        let mut apis = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(endpoints) = apis.get_mut(api) {
            endpoints.remove(endpoint);
            if endpoints.is_empty() {
                apis.remove(api);
            }
        }
    }
}
