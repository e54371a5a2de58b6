//! The latest state of every endpoint, for the status page and the JSON API.
//!
//! The scheduler writes; the web layer only reads snapshots.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::classify::{Class, Expect, Health};
use crate::config::Endpoint;
use crate::metrics::{LastResult, unix_seconds};
use crate::plan::format_duration;
use crate::ratelimit::format_window;

/// The state of every configured endpoint, in config order.
#[derive(Default)]
pub struct StatusBoard {
    endpoints: RwLock<Vec<Arc<EndpointStatus>>>,
}

/// The live state of one endpoint.
pub struct EndpointStatus {
    static_part: Static,
    live: Mutex<Live>,
    /// The status that replaced this one when a reload changed the endpoint. A probe of the
    /// replaced task that is still in flight reports its send, result and credit there, where
    /// the status page reads them.
    successor: OnceLock<Arc<EndpointStatus>>,
}

#[derive(Clone, Serialize)]
struct Static {
    api: String,
    endpoint: String,
    method: String,
    interval: String,
    interval_seconds: f64,
    /// The status codes that count as success, shown as written in the config and used to
    /// judge a result again after a reload.
    #[serde(serialize_with = "serialize_expect")]
    expect: Expect,
    budget: Vec<WindowView>,
    #[serde(skip)]
    degraded_after: Option<Duration>,
    #[serde(skip)]
    reads_credit: bool,
}

#[derive(Clone, Serialize)]
struct WindowView {
    window: String,
    limit: u64,
    budget: u64,
}

#[derive(Clone, Default, Serialize)]
struct Live {
    /// Serialized by the JSON API as `health`, with `pending` before the first probe.
    #[serde(skip)]
    health: Option<&'static str>,
    class: Option<&'static str>,
    /// A description of the last result, such as "redirect to another origin not followed
    /// because the request carries secrets", followed by how slow it was when it exceeded
    /// `degraded_after`. `None` when the class alone describes it.
    detail: Option<Cow<'static, str>>,
    /// The probe's own part of `detail`, kept so that a new threshold can rebuild it.
    #[serde(skip)]
    probe_detail: Option<Cow<'static, str>>,
    status_code: Option<u16>,
    success: Option<bool>,
    duration_seconds: Option<f64>,
    /// The `degraded_after` threshold in seconds that the last probe exceeded although it
    /// succeeded, which makes it degraded. `None` when it did not. Judged again against the
    /// current threshold after a reload or a restart.
    #[serde(skip)]
    exceeded_seconds: Option<f64>,
    last_run: Option<f64>,
    last_success: Option<f64>,
    /// Unix time at which the last result arrived. A probe sent since then has moved
    /// `last_run` but has no result yet.
    #[serde(skip)]
    finished: Option<f64>,
    /// `last_success` as it was before the last result, so that judging the last result
    /// again can move `last_success` back as well as forward.
    #[serde(skip)]
    success_before: Option<f64>,
    /// Probes sent whose result has not arrived yet. Not saved: a restart has none.
    #[serde(skip)]
    in_flight: u32,
    next_run: Option<f64>,
    paused_until: Option<f64>,
    consecutive_failures: u64,
    consecutive_successes: u64,
    probes: u64,
    skipped: u64,
    budget_used: Vec<u64>,
    credit: Option<f64>,
    /// Unix time at which `credit` was read.
    #[serde(skip)]
    credit_updated: Option<f64>,
}

/// The part of an endpoint's state kept across restarts.
#[derive(Serialize, serde::Deserialize)]
struct Saved {
    class: Option<String>,
    status_code: Option<u16>,
    success: Option<bool>,
    /// Missing from state saved before response times were kept, which restores as not slow.
    /// A restart judges it against the `degraded_after` of the new config.
    #[serde(default)]
    duration_seconds: Option<f64>,
    last_run: Option<f64>,
    last_success: Option<f64>,
    /// Unix time at which the last result arrived. Missing from state saved before it was
    /// kept.
    #[serde(default)]
    finished: Option<f64>,
    /// The last success before the last result; saved since `finished` was.
    #[serde(default)]
    success_before: Option<f64>,
    consecutive_failures: u64,
    consecutive_successes: u64,
    /// The last credit balance read, so the balance and its alerts survive a restart. Missing
    /// from state saved before it was kept.
    #[serde(default)]
    credit: Option<f64>,
    /// Unix time at which `credit` was read.
    #[serde(default)]
    credit_updated: Option<f64>,
}

/// One endpoint as the JSON API and status page show it.
#[derive(Clone, Serialize)]
pub struct Snapshot {
    #[serde(flatten)]
    static_part: Static,
    #[serde(flatten)]
    live: Live,
}

impl Snapshot {
    /// Returns the API name.
    #[must_use]
    pub fn api(&self) -> &str {
        &self.static_part.api
    }

    /// Returns the endpoint name.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.static_part.endpoint
    }

    /// Returns `up`, `degraded`, `down`, or `pending` before the first probe.
    #[must_use]
    pub fn health(&self) -> &'static str {
        self.live.health.unwrap_or("pending")
    }

    /// Returns the class of the last probe, if any.
    #[must_use]
    pub fn class(&self) -> Option<&'static str> {
        self.live.class
    }

    /// Returns what happened in the last probe in words, when the class alone does not tell.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.live.detail.as_deref()
    }

    /// Returns the status code of the last response, if any.
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        self.live.status_code
    }

    /// Returns the planned interval, formatted.
    #[must_use]
    pub fn interval(&self) -> &str {
        &self.static_part.interval
    }

    /// Returns the unix times of the last probe, last success and next slot.
    #[must_use]
    pub fn times(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        (
            self.live.last_run,
            self.live.last_success,
            self.live.next_run,
        )
    }

    /// Reports whether a probe has been sent and its result has not arrived yet. Until it
    /// does, the class, code and times of the last result belong to the probe before it.
    #[must_use]
    pub fn probe_running(&self) -> bool {
        self.live.in_flight > 0
    }

    /// Returns `used/budget per window` pairs.
    #[must_use]
    pub fn budget(&self) -> Vec<(String, u64, u64)> {
        self.static_part
            .budget
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    w.window.clone(),
                    self.live.budget_used.get(i).copied().unwrap_or(0),
                    w.budget,
                )
            })
            .collect()
    }

    /// Returns the last credit balance read, if any.
    #[must_use]
    pub fn credit(&self) -> Option<f64> {
        self.live.credit
    }

    /// Returns the unix time of the slot at which an endpoint held back by `Retry-After` or by
    /// the quota the API reports probes again.
    #[must_use]
    pub fn paused_until(&self) -> Option<f64> {
        self.live.paused_until
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves plain data behind, still safe to read.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StatusBoard {
    /// Replaces the endpoint list, keeping the live state of endpoints that stay.
    pub fn set_endpoints(&self, endpoints: Vec<Arc<EndpointStatus>>) {
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = endpoints;
    }

    /// Returns a copy of every endpoint's state.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Snapshot> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| Snapshot {
                static_part: e.static_part.clone(),
                live: lock(&e.live).clone(),
            })
            .collect()
    }
}

impl EndpointStatus {
    /// Returns a fresh state for an endpoint.
    #[must_use]
    pub fn new(endpoint: &Endpoint) -> EndpointStatus {
        let budget = endpoint
            .plan
            .windows
            .iter()
            .map(|w| WindowView {
                window: format_window(w.limit.window),
                limit: w.limit.limit,
                budget: w.budget,
            })
            .collect();
        EndpointStatus {
            static_part: Static {
                api: endpoint.api.clone(),
                endpoint: endpoint.name.clone(),
                method: endpoint.method.to_string(),
                interval: format_duration(endpoint.plan.interval),
                interval_seconds: endpoint.plan.interval.as_secs_f64(),
                expect: endpoint.expect.clone(),
                budget,
                degraded_after: endpoint.degraded_after,
                reads_credit: endpoint.credit.is_some(),
            },
            live: Mutex::new(Live::default()),
            successor: OnceLock::new(),
        }
    }

    /// Copies the live state of another endpoint, used when a reload changes the endpoint. The
    /// last result is judged again against this endpoint's `expect` and `degraded_after` (see
    /// [`EndpointStatus::restore`]), and `record` receives it while both states are locked, so
    /// a probe that ends meanwhile cannot record its result before it. From then on, a probe
    /// still in flight on `previous` reports to this status instead.
    pub fn inherit(self: &Arc<Self>, previous: &EndpointStatus, record: impl FnOnce(&LastResult)) {
        // The previous status stays locked until its successor is set, so a result that
        // arrives meanwhile is either copied here or forwarded here, never lost.
        let previous_live = lock(&previous.live);
        let mut live = previous_live.clone();
        live.budget_used.truncate(self.static_part.budget.len());
        if !self.static_part.reads_credit {
            live.credit = None;
            live.credit_updated = None;
        }
        live.rejudge(&self.static_part);
        let mut current = lock(&self.live);
        *current = live;
        record(&current.last_result());
        drop(current);
        // The scheduler replaces a status at most once. If a status is inherited from twice,
        // as some tests do, the first successor keeps receiving the forwarded results.
        let _ = previous.successor.set(Arc::clone(self));
        drop(previous_live);
    }

    /// Runs `update` on the live state and static part of this status, or of its latest
    /// successor when a reload replaced it.
    fn update_current<R>(&self, update: impl FnOnce(&mut Live, &Static) -> R) -> R {
        let mut live = lock(&self.live);
        match self.successor.get() {
            Some(successor) => {
                drop(live);
                successor.update_current(update)
            }
            None => update(&mut live, &self.static_part),
        }
    }

    /// Records a request sent at `at`.
    pub fn sent(&self, at: SystemTime) {
        self.update_current(|live, _| {
            live.probes += 1;
            live.in_flight = live.in_flight.saturating_add(1);
            live.last_run = Some(unix_seconds(at));
        });
    }

    /// Records the result of one probe, with `detail` (empty for none) saying what happened,
    /// and passes `record` whether it succeeded, while the state is locked. A success that took
    /// longer than the endpoint's `degraded_after` is degraded, and counts as a success in the
    /// streaks.
    ///
    /// Success is judged here, against the `expect` of the status that is current when the
    /// probe ends. When a reload replaced the endpoint while the probe was in flight, that
    /// is the new `expect`, not the one the probe was sent under.
    pub fn result(
        &self,
        class: Class,
        status: Option<u16>,
        duration: Duration,
        finished: SystemTime,
        detail: &'static str,
        record: impl FnOnce(bool),
    ) {
        self.update_current(|live, static_part| {
            live.class = Some(class.as_str());
            live.probe_detail = (!detail.is_empty()).then_some(Cow::Borrowed(detail));
            live.status_code = status;
            live.success = Some(false);
            live.duration_seconds = Some(duration.as_secs_f64());
            live.finished = Some(unix_seconds(finished));
            live.success_before = live.last_success;
            live.in_flight = live.in_flight.saturating_sub(1);
            live.judge_status(&static_part.expect);
            live.judge(static_part.degraded_after);
            let success = live.success == Some(true);
            record(success);
            if success {
                live.consecutive_failures = 0;
                live.consecutive_successes += 1;
                live.last_success = Some(unix_seconds(finished));
            } else if class != Class::RateLimited {
                live.consecutive_successes = 0;
                live.consecutive_failures += 1;
            }
            // An unexpected 429 is neither up nor down, so it leaves both streaks as they were.
        });
    }

    /// Returns the last result and streaks as JSON, for the state store. After a reload replaced
    /// this status, returns its successor's.
    #[must_use]
    pub fn saved(&self) -> String {
        self.update_current(|live, _| Self::saved_json(live))
    }

    fn saved_json(live: &Live) -> String {
        let saved = Saved {
            class: live.class.map(str::to_owned),
            status_code: live.status_code,
            success: live.success,
            duration_seconds: live.duration_seconds,
            last_run: live.last_run,
            last_success: live.last_success,
            finished: live.finished,
            success_before: live.success_before,
            consecutive_failures: live.consecutive_failures,
            consecutive_successes: live.consecutive_successes,
            credit: live.credit,
            credit_updated: live.credit_updated,
        };
        serde_json::to_string(&saved).unwrap_or_default()
    }

    /// Restores the last result and streaks saved by [`EndpointStatus::saved`], and returns
    /// the last result for the metrics. Text that does not parse is ignored and returns `None`.
    /// The probe's own detail is not saved.
    ///
    /// The saved result is judged against this endpoint's `expect` and `degraded_after`, so a
    /// config changed across the restart applies at once instead of after the next probe,
    /// which may be a day away. When that changes whether it succeeded, the streaks start
    /// again from this one result, because earlier results are not kept, and a new success
    /// moves the last success time forward to its end.
    pub fn restore(&self, text: &str) -> Option<LastResult> {
        let Ok(saved) = serde_json::from_str::<Saved>(text) else {
            return None;
        };
        let mut live = lock(&self.live);
        live.class = saved
            .class
            .as_deref()
            .and_then(Class::from_label)
            .map(Class::as_str);
        live.probe_detail = None;
        live.status_code = saved.status_code;
        live.success = saved.success;
        live.duration_seconds = saved.duration_seconds;
        live.last_run = saved.last_run;
        live.last_success = saved.last_success;
        live.finished = saved.finished;
        live.success_before = saved.success_before;
        live.consecutive_failures = saved.consecutive_failures;
        live.consecutive_successes = saved.consecutive_successes;
        // A balance saved while the endpoint read credit is dropped once it no longer does.
        let credit = saved.credit.filter(|_| self.static_part.reads_credit);
        live.credit_updated = saved.credit_updated.filter(|_| credit.is_some());
        live.credit = credit;
        live.rejudge(&self.static_part);
        Some(live.last_result())
    }

    /// Records skipped slots.
    pub fn skipped(&self, count: u64) {
        lock(&self.live).skipped += count;
    }

    /// Records the schedule and budget state.
    pub fn schedule(&self, next_run: SystemTime, paused_until: Option<SystemTime>, used: &[u64]) {
        let mut live = lock(&self.live);
        live.next_run = Some(unix_seconds(next_run));
        live.paused_until = paused_until.map(unix_seconds);
        live.budget_used = used.to_vec();
    }

    /// Records a credit balance read at `at`, unless a reload has since removed the endpoint's
    /// `credit` key.
    pub fn credit(&self, balance: f64, at: SystemTime) {
        self.update_current(|live, static_part| {
            if static_part.reads_credit {
                live.credit = Some(balance);
                live.credit_updated = Some(unix_seconds(at));
            }
        });
    }
}

impl Live {
    /// Judges the last result against `expected`, the endpoint's `expect`, and returns
    /// whether that changed whether it succeeded. Only a result whose class comes from its
    /// status code can succeed: a body error, a timeout or a failed connection is a failure
    /// whatever the endpoint expects.
    fn judge_status(&mut self, expected: &Expect) -> bool {
        let Some(class) = self.class else {
            return false;
        };
        let success = Some(self.status_code.is_some_and(|code| {
            class == Class::from_status(code).as_str() && expected.matches(code)
        }));
        let changed = self.success != success;
        self.success = success;
        changed
    }

    /// Judges a result recorded under another config against `current`: whether it
    /// succeeded, then how healthy it is. A changed verdict starts the streaks again from
    /// this result, and sets `last_success` to when it arrived for a success, or back to the
    /// success before it for a failure.
    fn rejudge(&mut self, current: &Static) {
        if self.judge_status(&current.expect) {
            let success = self.success == Some(true);
            let rate_limited = self.class == Some(Class::RateLimited.as_str());
            self.consecutive_successes = u64::from(success);
            self.consecutive_failures = u64::from(!success && !rate_limited);
            // A success is dated by when it arrived, not by the last send, because a probe
            // sent since has no result yet. A failure falls back to the success before it.
            // State saved before arrival times were kept leaves the time as it was.
            if let Some(end) = self.finished {
                self.last_success = if success {
                    Some(self.success_before.map_or(end, |before| before.max(end)))
                } else {
                    self.success_before
                };
            }
        }
        self.judge(current.degraded_after);
    }

    /// Returns the last result as the metrics show it.
    fn last_result(&self) -> LastResult {
        LastResult {
            success: self.success,
            status_code: self.status_code,
            last_run: self.last_run,
            last_success: self.last_success,
            credit: self.credit,
            credit_updated: self.credit_updated,
        }
    }

    /// Sets the health, the detail and the exceeded threshold from the last result and
    /// `threshold`, the endpoint's `degraded_after`. Only a success can be slow.
    fn judge(&mut self, threshold: Option<Duration>) {
        let success = self.success.unwrap_or(false);
        self.exceeded_seconds = match (threshold, self.duration_seconds) {
            (Some(threshold), Some(duration)) if success && duration > threshold.as_secs_f64() => {
                Some(threshold.as_secs_f64())
            }
            _ => None,
        };
        self.health = self
            .class
            .and_then(Class::from_label)
            .map(|class| health(class, success, self.exceeded_seconds).as_str());
        self.detail = match (self.exceeded_seconds, self.duration_seconds) {
            (Some(threshold), Some(duration)) => Some(Cow::Owned(slow_detail(
                self.probe_detail.as_deref().unwrap_or(""),
                duration,
                threshold,
            ))),
            _ => self.probe_detail.clone(),
        };
    }
}

/// Writes `expect` as the config writes it, such as `200-299`.
fn serialize_expect<S: serde::Serializer>(
    expect: &Expect,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&expect.describe())
}

/// Returns the health of one result: a success that exceeded `degraded_after` is degraded,
/// and otherwise the class and success decide.
fn health(class: Class, success: bool, exceeded_seconds: Option<f64>) -> Health {
    if success && exceeded_seconds.is_some() {
        Health::Degraded
    } else {
        class.health(success)
    }
}

/// Describes a success slower than its threshold, after the probe's own `detail` if any.
fn slow_detail(detail: &str, duration_seconds: f64, threshold_seconds: f64) -> String {
    let format_seconds = |seconds: f64| {
        Duration::try_from_secs_f64(seconds).map_or_else(|_| format!("{seconds}s"), format_duration)
    };
    let threshold = format_seconds(threshold_seconds);
    let mut took = format_seconds(duration_seconds);
    if took == threshold {
        // Millisecond rounding made them equal, so show the microseconds that tell them apart.
        took = Duration::try_from_secs_f64(duration_seconds).map_or(took, |d| {
            humantime::format_duration(Duration::from_micros(d.as_micros() as u64)).to_string()
        });
    }
    let slow = format!("took {took}, longer than degraded_after {threshold}");
    if detail.is_empty() {
        slow
    } else {
        format!("{detail}; {slow}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::secret::SecretSource;

    fn status() -> EndpointStatus {
        status_with("")
    }

    /// Returns the status of an endpoint with `extra` keys such as `, degraded_after: 2s`.
    fn status_with(extra: &str) -> EndpointStatus {
        let text = format!(
            "apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - {{ name: e, path: e, interval: 10s{extra} }}\n"
        );
        let config = config::parse(&text, "test.yml", &SecretSource::from_env()).unwrap();
        EndpointStatus::new(&config.endpoints[0])
    }

    fn snapshot_of(status: &EndpointStatus) -> Snapshot {
        Snapshot {
            static_part: status.static_part.clone(),
            live: lock(&status.live).clone(),
        }
    }

    fn streaks(status: &EndpointStatus) -> (u64, u64) {
        let live = lock(&status.live);
        (live.consecutive_failures, live.consecutive_successes)
    }

    #[test]
    fn detail_follows_last_result() {
        let status = Arc::new(status());
        let board = StatusBoard::default();
        board.set_endpoints(vec![status.clone()]);
        let at = SystemTime::now();
        let took = Duration::from_millis(5);
        let reason = "redirect to another origin not followed because the request carries secrets";
        status.result(Class::Redirect, Some(302), took, at, reason, |_| {});
        let json = serde_json::to_value(&board.snapshot()[0]).unwrap();
        assert_eq!(json["detail"], reason);

        status.result(Class::Ok, Some(200), took, at, "", |_| {});
        let json = serde_json::to_value(&board.snapshot()[0]).unwrap();
        assert!(json["detail"].is_null(), "{json}");
    }

    #[test]
    fn rate_limited_leaves_streaks_unchanged() {
        let status = status();
        let at = SystemTime::now();
        let took = Duration::from_millis(5);
        status.result(Class::ServerError, Some(500), took, at, "", |_| {});
        status.result(Class::RateLimited, Some(429), took, at, "", |_| {});
        assert_eq!(streaks(&status), (1, 0), "after 500 then 429");
        status.result(Class::Ok, Some(200), took, at, "", |_| {});
        status.result(Class::RateLimited, Some(429), took, at, "", |_| {});
        assert_eq!(streaks(&status), (0, 1), "after 200 then 429");
        let snapshot = &status_board(status).snapshot()[0];
        assert_eq!(snapshot.health(), "degraded");
    }

    #[test]
    fn success_within_degraded_after_is_up() {
        let status = status_with(", degraded_after: 2s");
        let at = SystemTime::now();
        for took in [Duration::from_millis(5), Duration::from_secs(2)] {
            status.result(Class::Ok, Some(200), took, at, "", |_| {});
            let snapshot = snapshot_of(&status);
            assert_eq!(snapshot.health(), "up", "took {took:?}");
            assert_eq!(snapshot.detail(), None, "took {took:?}");
        }
    }

    #[test]
    fn success_slower_than_degraded_after_is_degraded() {
        let status = status_with(", degraded_after: 2s");
        let at = SystemTime::now();
        status.result(
            Class::Ok,
            Some(200),
            Duration::from_millis(2413),
            at,
            "",
            |_| {},
        );
        let snapshot = snapshot_of(&status);
        assert_eq!(snapshot.health(), "degraded");
        assert_eq!(snapshot.class(), Some("ok"));
        assert_eq!(
            snapshot.detail(),
            Some("took 2s 413ms, longer than degraded_after 2s")
        );
        assert_eq!(streaks(&status), (0, 1));
        assert!(snapshot.times().1.is_some(), "counts as the last success");

        status.result(
            Class::Ok,
            Some(200),
            Duration::from_millis(10),
            at,
            "",
            |_| {},
        );
        let snapshot = snapshot_of(&status);
        assert_eq!(snapshot.health(), "up");
        assert_eq!(snapshot.detail(), None);
        assert_eq!(streaks(&status), (0, 2));
    }

    #[test]
    fn slow_success_keeps_the_probe_detail() {
        let status = status_with(", degraded_after: 1s, expect: [302]");
        let at = SystemTime::now();
        let reason = "redirect to another origin not followed because the request carries secrets";
        status.result(
            Class::Redirect,
            Some(302),
            Duration::from_secs(3),
            at,
            reason,
            |_| {},
        );
        assert_eq!(
            snapshot_of(&status).detail(),
            Some(
                "redirect to another origin not followed because the request carries secrets; took 3s, longer than degraded_after 1s"
            )
        );
    }

    #[test]
    fn slow_failure_is_down() {
        let status = status_with(", degraded_after: 1s");
        let at = SystemTime::now();
        let took = Duration::from_secs(3);
        status.result(Class::ServerError, Some(500), took, at, "", |_| {});
        let snapshot = snapshot_of(&status);
        assert_eq!(snapshot.health(), "down");
        assert_eq!(snapshot.detail(), None);
        assert_eq!(streaks(&status), (1, 0));
        status.result(Class::RateLimited, Some(429), took, at, "", |_| {});
        assert_eq!(snapshot_health(&status), "degraded", "a slow 429");
    }

    #[test]
    fn slow_success_without_threshold_is_up() {
        let status = status();
        let at = SystemTime::now();
        status.result(Class::Ok, Some(200), Duration::from_secs(9), at, "", |_| {});
        assert_eq!(snapshot_health(&status), "up");
    }

    #[test]
    fn restore_judges_slow_success_by_new_threshold() {
        let first = status_with(", degraded_after: 2s");
        let at = SystemTime::now();
        let took = Duration::from_millis(2413);
        first.result(Class::Ok, Some(200), took, at, "", |_| {});
        let saved = first.saved();

        let table = [
            (
                ", degraded_after: 2s",
                "degraded",
                Some("took 2s 413ms, longer than degraded_after 2s"),
            ),
            (
                ", degraded_after: 1s",
                "degraded",
                Some("took 2s 413ms, longer than degraded_after 1s"),
            ),
            (", degraded_after: 5s", "up", None),
            (", degraded_after: off", "up", None),
            ("", "up", None),
        ];
        for (extra, health, detail) in table {
            let second = status_with(extra);
            let last = second.restore(&saved).unwrap();
            assert_eq!(last.success, Some(true), "{extra:?}");
            let after = snapshot_of(&second);
            assert_eq!(after.health(), health, "{extra:?}");
            assert_eq!(after.detail(), detail, "{extra:?}");
            assert_eq!(streaks(&second), (0, 1), "{extra:?}");
            assert_eq!(
                after.live.duration_seconds.map(f64::to_bits),
                Some(2.413f64.to_bits()),
                "{extra:?}"
            );
        }

        first.result(
            Class::Ok,
            Some(200),
            Duration::from_millis(10),
            at,
            "",
            |_| {},
        );
        let second = status_with(", degraded_after: 2s");
        second.restore(&first.saved()).unwrap();
        assert_eq!(snapshot_health(&second), "up");
        assert_eq!(snapshot_of(&second).detail(), None);
    }

    #[test]
    fn restore_ignores_saved_threshold() {
        // State written before thresholds were judged on restore also contains the threshold
        // the probe exceeded. The new config decides instead.
        let old = r#"{"class":"ok","status_code":200,"success":true,"duration_seconds":2.5,"exceeded_seconds":2.0,"last_run":1.0,"last_success":1.0,"consecutive_failures":0,"consecutive_successes":1}"#;
        let status = status_with(", degraded_after: 3s");
        status.restore(old).unwrap();
        assert_eq!(snapshot_health(&status), "up");
        let status = status_with(", degraded_after: 2s");
        status.restore(old).unwrap();
        assert_eq!(snapshot_health(&status), "degraded");
    }

    #[test]
    fn reload_judges_slow_success_by_new_threshold() {
        let detail = "redirect to another origin not followed because the request carries secrets";
        let before = status_with(", degraded_after: 1s");
        let at = SystemTime::now();
        let took = Duration::from_secs(3);
        before.result(Class::Ok, Some(200), took, at, detail, |_| {});
        assert_eq!(snapshot_health(&before), "degraded");

        let raised = Arc::new(status_with(", degraded_after: 5s"));
        raised.inherit(&before, |_| {});
        assert_eq!(snapshot_health(&raised), "up");
        assert_eq!(snapshot_of(&raised).detail(), Some(detail));

        let lowered = Arc::new(status_with(", degraded_after: 2s"));
        lowered.inherit(&raised, |_| {});
        assert_eq!(snapshot_health(&lowered), "degraded");
        assert_eq!(
            snapshot_of(&lowered).detail(),
            Some(format!("{detail}; took 3s, longer than degraded_after 2s").as_str())
        );
        assert_eq!(streaks(&lowered), (0, 1));
    }

    #[test]
    fn restore_accepts_state_saved_without_response_time() {
        let old = r#"{"class":"ok","status_code":200,"success":true,"last_run":1.0,"last_success":1.0,"consecutive_failures":0,"consecutive_successes":4}"#;
        let status = status_with(", degraded_after: 2s");
        let last = status.restore(old).unwrap();
        assert_eq!(last.success, Some(true));
        assert_eq!(snapshot_health(&status), "up");
        assert_eq!(streaks(&status), (0, 4));
        assert_eq!(snapshot_of(&status).live.duration_seconds, None);
    }

    #[test]
    fn restore_never_makes_a_failure_slow() {
        let saved = r#"{"class":"server_error","status_code":500,"success":false,"duration_seconds":3.0,"exceeded_seconds":1.0,"last_run":1.0,"last_success":null,"consecutive_failures":1,"consecutive_successes":0}"#;
        let status = status_with(", degraded_after: 1s");
        status.restore(saved).unwrap();
        assert_eq!(snapshot_health(&status), "down");
        assert_eq!(snapshot_of(&status).detail(), None);
    }

    #[test]
    fn restore_keeps_credit_only_while_credit_is_read() {
        let first = status_with(", credit: { json_path: $.credit }");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        first.credit(42.5, at);
        let saved = first.saved();

        let second = status_with(", credit: { json_path: $.credit }");
        let last = second.restore(&saved).unwrap();
        assert_eq!(last.credit, Some(42.5));
        assert_eq!(last.credit_updated, Some(1_800_000_000.0));
        assert_eq!(snapshot_of(&second).credit(), Some(42.5));

        let without = status();
        let last = without.restore(&saved).unwrap();
        assert_eq!(last.credit, None, "no credit source any more");
        assert_eq!(last.credit_updated, None);
        assert_eq!(snapshot_of(&without).credit(), None);
    }

    #[test]
    fn reload_keeps_credit_only_while_credit_is_read() {
        let before = status_with(", credit: { json_path: $.credit }");
        before.credit(42.5, SystemTime::now());

        let still_reading = Arc::new(status_with(", credit: { json_path: $.balance }"));
        still_reading.inherit(&before, |_| {});
        assert_eq!(snapshot_of(&still_reading).credit(), Some(42.5));

        let dropped = Arc::new(status());
        dropped.inherit(&before, |_| {});
        assert_eq!(snapshot_of(&dropped).credit(), None);
        assert!(!dropped.saved().contains("42.5"), "{}", dropped.saved());
    }

    #[test]
    fn probe_running_from_send_to_result() {
        let status = status();
        let at = |seconds: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        assert!(!snapshot_of(&status).probe_running(), "nothing sent yet");
        status.sent(at(100));
        assert!(snapshot_of(&status).probe_running());
        let took = Duration::from_millis(300);
        status.result(Class::Ok, Some(200), took, at(101), "", |_| {});
        assert!(!snapshot_of(&status).probe_running());
        status.sent(at(110));
        assert!(snapshot_of(&status).probe_running());
        // A restart has no probe in flight, whatever times the saved state contains.
        let restored = status_with("");
        restored.restore(&status.saved()).unwrap();
        assert!(!snapshot_of(&restored).probe_running());
        assert!(
            restored.saved().contains("\"finished\":101.0"),
            "{}",
            restored.saved()
        );

        // A reload keeps the probe in flight until its result reaches the successor.
        let after = Arc::new(status_with(""));
        after.inherit(&status, |_| {});
        assert!(snapshot_of(&after).probe_running());
        status.result(Class::Ok, Some(200), took, at(111), "", |_| {});
        assert!(!snapshot_of(&after).probe_running());
    }

    #[test]
    fn in_flight_result_reaches_successor() {
        let before = status_with(", credit: { json_path: $.credit }");
        let at = SystemTime::now();
        before.sent(at);
        let after = Arc::new(status_with(
            ", degraded_after: 1s, credit: { json_path: $.credit }",
        ));
        after.inherit(&before, |_| {});
        let last = Arc::new(status_with(
            ", degraded_after: 2s, credit: { json_path: $.credit }",
        ));
        last.inherit(&after, |_| {});

        // The replaced task's probe ends after both reloads.
        before.credit(7.5, at);
        before.result(Class::Ok, Some(200), Duration::from_secs(3), at, "", |_| {});

        let snapshot = snapshot_of(&last);
        assert_eq!(snapshot.class(), Some("ok"));
        assert_eq!(snapshot.status_code(), Some(200));
        assert_eq!(
            snapshot.health(),
            "degraded",
            "judged by the latest threshold"
        );
        assert_eq!(
            snapshot.detail(),
            Some("took 3s, longer than degraded_after 2s")
        );
        assert_eq!(snapshot.credit(), Some(7.5));
        assert_eq!(streaks(&last), (0, 1));
        assert_eq!(snapshot.live.probes, 1);
        assert_eq!(
            before.saved(),
            last.saved(),
            "the store saves what the page shows"
        );
    }

    #[test]
    fn reload_judges_last_response_by_new_expect() {
        let before = status();
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        before.sent(sent);
        let took = Duration::from_millis(250);
        before.result(Class::Other4xx, Some(404), took, sent + took, "", |_| {});
        assert_eq!(snapshot_health(&before), "down");
        // The next probe is in flight during the reload, so the last send is not when the
        // 404 arrived.
        before.sent(sent + Duration::from_secs(10));

        let mut recorded = None;
        let accepting = Arc::new(status_with(", expect: [404]"));
        accepting.inherit(&before, |last| recorded = Some(*last));
        let recorded = recorded.expect("inherit recorded nothing");
        assert_eq!(recorded.success, Some(true));
        assert_eq!(recorded.status_code, Some(404));
        assert_eq!(recorded.last_success, Some(1_800_000_000.25));
        assert_eq!(snapshot_health(&accepting), "up");
        assert_eq!(streaks(&accepting), (0, 1));

        let mut recorded = None;
        let rejecting = Arc::new(status());
        rejecting.inherit(&accepting, |last| recorded = Some(*last));
        let recorded = recorded.unwrap();
        assert_eq!(recorded.success, Some(false));
        assert_eq!(
            recorded.last_success, None,
            "the 404 was the only success, and it no longer counts"
        );
        assert_eq!(snapshot_health(&rejecting), "down");
        assert_eq!(streaks(&rejecting), (1, 0));
        assert_eq!(snapshot_of(&rejecting).times().1, None);
    }

    #[test]
    fn rejected_response_restores_the_success_before_it() {
        let at = |seconds: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        let took = Duration::from_millis(100);
        let before = status_with(", expect: [200, 404]");
        before.result(Class::Ok, Some(200), took, at(1000), "", |_| {});
        before.result(Class::Other4xx, Some(404), took, at(2000), "", |_| {});
        assert_eq!(snapshot_of(&before).times().1, Some(2000.0));

        // Without 404 in expect, the success at 1000 is the last one again, after a reload
        // and after a restart alike.
        let reloaded = Arc::new(status());
        reloaded.inherit(&before, |last| {
            assert_eq!(last.last_success, Some(1000.0));
        });
        assert_eq!(snapshot_of(&reloaded).times().1, Some(1000.0));
        let restarted = status();
        let last = restarted.restore(&before.saved()).unwrap();
        assert_eq!(last.last_success, Some(1000.0));

        // And with 404 back, the 404 at 2000 is.
        let again = Arc::new(status_with(", expect: [200, 404]"));
        again.inherit(&reloaded, |_| {});
        assert_eq!(snapshot_of(&again).times().1, Some(2000.0));
    }

    #[test]
    fn new_expect_keeps_failed_reads_failed() {
        let table = [
            (Class::BodyError, Some(200), "body has no credit balance"),
            (Class::Timeout, None, "timed out"),
            (Class::ConnectError, None, "connection refused"),
        ];
        for (class, code, detail) in table {
            let before = status();
            let took = Duration::from_secs(1);
            before.result(class, code, took, SystemTime::now(), detail, |_| {});
            let after = Arc::new(status_with(", expect: [200-599]"));
            after.inherit(&before, |last| assert_eq!(last.success, Some(false)));
            assert_eq!(snapshot_health(&after), "down", "{class}");
            assert_eq!(streaks(&after), (1, 0), "{class}");
            let restored = status_with(", expect: [200-599]");
            let last = restored.restore(&before.saved()).unwrap();
            assert_eq!(last.success, Some(false), "{class}");
        }
    }

    #[test]
    fn restore_judges_saved_response_by_new_expect() {
        let saved = r#"{"class":"rate_limited","status_code":429,"success":false,"duration_seconds":0.5,"last_run":100.0,"last_success":null,"finished":100.5,"consecutive_failures":3,"consecutive_successes":0}"#;
        let same = status();
        let last = same.restore(saved).unwrap();
        assert_eq!(last.success, Some(false));
        assert_eq!(
            snapshot_health(&same),
            "degraded",
            "a 429 is neither up nor down"
        );
        assert_eq!(
            streaks(&same),
            (3, 0),
            "an unchanged verdict keeps the streaks"
        );

        let accepting = status_with(", expect: [200-299, 429]");
        let last = accepting.restore(saved).unwrap();
        assert_eq!(last.success, Some(true));
        assert_eq!(last.last_success, Some(100.5), "when the 429 arrived");
        assert_eq!(snapshot_health(&accepting), "up");
        assert_eq!(streaks(&accepting), (0, 1));

        // State saved before arrival times were kept: the verdict changes, the time does not.
        let older = saved.replace(r#","finished":100.5"#, "");
        let last = status_with(", expect: [429]").restore(&older).unwrap();
        assert_eq!(last.success, Some(true));
        assert_eq!(last.last_success, None);

        let rejecting = status();
        let last = rejecting.restore(&accepting.saved()).unwrap();
        assert_eq!(last.success, Some(false));
        assert_eq!(
            streaks(&rejecting),
            (0, 0),
            "a 429 counts in neither streak"
        );
    }

    #[test]
    fn in_flight_response_judged_by_new_expect() {
        let before = status();
        before.sent(SystemTime::now());
        let after = Arc::new(status_with(", expect: [404]"));
        after.inherit(&before, |_| {});
        let took = Duration::from_millis(20);
        let mut recorded = None;
        before.result(
            Class::Other4xx,
            Some(404),
            took,
            SystemTime::now(),
            "",
            |success| recorded = Some(success),
        );
        assert_eq!(recorded, Some(true), "the metrics get the new verdict");
        assert_eq!(snapshot_health(&after), "up");
        assert_eq!(streaks(&after), (0, 1));
    }

    #[test]
    fn slow_detail_tells_close_times_apart() {
        assert_eq!(
            slow_detail("", 1.501_387, 1.501),
            "took 1s 501ms 387us, longer than degraded_after 1s 501ms"
        );
        assert_eq!(
            slow_detail("", 2.413, 2.0),
            "took 2s 413ms, longer than degraded_after 2s"
        );
    }

    #[test]
    fn in_flight_credit_dropped_when_reload_removes_credit() {
        let before = status_with(", credit: { json_path: $.credit }");
        let after = Arc::new(status());
        after.inherit(&before, |_| {});
        before.credit(7.5, SystemTime::now());
        assert_eq!(snapshot_of(&after).credit(), None);
    }

    fn snapshot_health(status: &EndpointStatus) -> &'static str {
        snapshot_of(status).health()
    }

    proptest::proptest! {
        #[test]
        fn saved_times_restore_bit_exact(
            run in 0.0f64..4.0e9,
            success in 0.0f64..4.0e9,
            failures in 0u64..1_000_000,
        ) {
            let first = status();
            {
                let mut live = lock(&first.live);
                live.class = Some(Class::ServerError.as_str());
                live.status_code = Some(503);
                live.success = Some(false);
                live.last_run = Some(run);
                live.last_success = Some(success);
                live.consecutive_failures = failures;
            }
            let second = status();
            let last = second.restore(&first.saved()).unwrap();
            proptest::prop_assert_eq!(last.last_run.map(f64::to_bits), Some(run.to_bits()));
            proptest::prop_assert_eq!(last.last_success.map(f64::to_bits), Some(success.to_bits()));
            proptest::prop_assert_eq!(streaks(&second), (failures, 0));
            proptest::prop_assert_eq!(second.restore("not json"), None);
        }
    }

    fn status_board(status: EndpointStatus) -> StatusBoard {
        let board = StatusBoard::default();
        board.set_endpoints(vec![Arc::new(status)]);
        board
    }
}
