//! Restarts, reboots and wall-clock steps on the paused clock, with the state store.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::*;
use crate::state::{Clock, Stamp, StateStore};

/// The store's clock in virtual time: uptime counts from the last simulated boot, and the
/// wall clock can be stepped.
struct VirtualClock {
    origin: Instant,
    boot_at: Mutex<Instant>,
    boot: AtomicU64,
    wall_offset_ms: AtomicI64,
}

impl VirtualClock {
    fn new() -> Arc<VirtualClock> {
        let now = Instant::now();
        Arc::new(VirtualClock {
            origin: now,
            boot_at: Mutex::new(now),
            boot: AtomicU64::new(1),
            wall_offset_ms: AtomicI64::new(0),
        })
    }

    fn stamp(&self) -> Stamp {
        let now = Instant::now();
        let since_origin = (now - self.origin).as_millis() as i64;
        let wall = 1_800_000_000_000 + since_origin + self.wall_offset_ms.load(Ordering::SeqCst);
        Stamp {
            wall_ms: u64::try_from(wall).unwrap(),
            uptime_ms: (now - *self.boot_at.lock().unwrap()).as_millis() as i64 + 1,
            boot: self.boot.load(Ordering::SeqCst),
        }
    }

    fn clock(self: &Arc<Self>) -> Clock {
        let this = self.clone();
        Arc::new(move || this.stamp())
    }

    fn step_wall(&self, by_ms: i64) {
        self.wall_offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    fn reboot(&self) {
        *self.boot_at.lock().unwrap() = Instant::now();
        self.boot.fetch_add(1, Ordering::SeqCst);
    }
}

fn store(dir: &std::path::Path, clock: &Arc<VirtualClock>) -> Arc<StateStore> {
    let mut store = StateStore::open_with_clock(dir, clock.clock()).unwrap();
    // One store object lives across the simulated restarts, so commits need not reach the
    // disk; the kill -9 test covers real durability.
    store.set_durable(false);
    Arc::new(store)
}

fn scheduler_with(prober: &Arc<FakeProber>, store: &Arc<StateStore>) -> Scheduler<FakeProber> {
    scheduler(prober).with_store(store.clone())
}

#[tokio::test(start_paused = true)]
async fn daily_endpoint_waits_out_its_interval_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    let config = config("      - { name: mail, path: m, rate_limit: 1/day, probe_share: 100% }\n");
    let interval = config.endpoints[0].plan.interval;
    let start = Instant::now();

    // A new store: the first probe waits one full interval plus its spread offset (half of
    // the first minute for a lone endpoint) instead of going out at once.
    let mut first = scheduler_with(&prober, &store);
    first.apply(&config);
    tokio::time::sleep(interval + Duration::from_secs(3600)).await;
    first.shutdown(Duration::from_secs(1)).await;
    let sends = prober.sends("mail");
    assert_eq!(sends.len(), 1);
    assert!(
        sends[0] - start >= interval,
        "probed {:?} after a fresh start",
        sends[0] - start
    );

    // Restarted an hour after the probe: the next one is due about 23 hours later.
    let mut second = scheduler_with(&prober, &store);
    second.apply(&config);
    tokio::time::sleep(Duration::from_secs(22 * 3600)).await;
    assert_eq!(
        prober.sends("mail").len(),
        1,
        "re-probed early after the restart"
    );
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    second.shutdown(Duration::from_secs(1)).await;
    let sends = prober.sends("mail");
    assert_eq!(sends.len(), 2);
    assert!(sends[1] - sends[0] >= interval);
    assert!(sends[1] - sends[0] < interval + Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn quota_hold_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    // No request left until a reset in 600s.
    let empty = Answer::status(200)
        .header("X-RateLimit-Limit", "100")
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", "600");
    prober.script("quota", vec![empty]);
    let config = config("      - { name: quota, path: q, interval: 30s }\n");

    let mut first = scheduler_with(&prober, &store);
    first.apply(&config);
    while prober.sends("quota").is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let held_at = prober.sends("quota")[0];
    tokio::time::sleep_until(held_at + Duration::from_secs(5)).await;
    first.shutdown(Duration::from_secs(1)).await;

    // Restarted 5s after the API reported that its quota resets in 600s.
    let mut second = scheduler_with(&prober, &store);
    second.apply(&config);
    tokio::time::sleep_until(held_at + Duration::from_secs(590)).await;
    assert_eq!(
        prober.sends("quota").len(),
        1,
        "held_at during the quota hold after a restart"
    );
    // The grid slot 600s after the probe is the first one past the reset.
    tokio::time::sleep_until(held_at + Duration::from_secs(615)).await;
    second.shutdown(Duration::from_secs(1)).await;
    assert_eq!(prober.sends("quota").len(), 2, "no probe after the reset");
}

#[tokio::test(start_paused = true)]
async fn new_store_spreads_first_probes_after_interval() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    let mut endpoints = String::new();
    for i in 0..10 {
        writeln!(
            endpoints,
            "      - {{ name: e{i}, path: p{i}, interval: 10s }}"
        )
        .unwrap();
    }
    let config = config(&endpoints);
    let start = Instant::now();

    let mut scheduler = scheduler_with(&prober, &store);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(20)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let mut firsts: Vec<Duration> = (0..10)
        .map(|i| {
            let sends = prober.sends(&format!("e{i}"));
            assert_eq!(sends.len(), 1, "e{i}: {} probes in 20s", sends.len());
            sends[0] - start
        })
        .collect();
    firsts.sort();
    for first in &firsts {
        assert!(
            *first >= Duration::from_secs(10),
            "probed at {first:?}, before one interval"
        );
    }
    // Spread offsets (2i+1)/20 of the 10s interval: one first probe every second.
    for pair in firsts.windows(2) {
        assert!(
            pair[1].saturating_sub(pair[0]) >= Duration::from_millis(900),
            "first probes {:?} and {:?} are not spread",
            pair[0],
            pair[1]
        );
    }
}

/// On the real clocks with a durable store, whose commits take real time: a restart counts
/// every remembered request from no earlier than the moment its probe really ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_counts_requests_from_real_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let prober = Arc::new(FakeProber::with_latency(Duration::from_millis(3)));
    let text = "global: { interval: 100ms }\napis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: fast, path: f, rate_limit: 5/s, probe_share: 100% }\n";
    let config = config::parse(text, "test.yml", &SecretSource::from_env()).unwrap();
    let endpoint = &config.endpoints[0];

    let mut first = scheduler_with(&prober, &store);
    first.apply(&config);
    // Runs at least 1.5s and until three probes have ended. About six fit in 1.5s, but each
    // one commits to the store on disk, which a loaded machine can slow down.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while prober.answers("fast").len() < 3 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.shutdown(Duration::from_secs(1)).await;
    let answers = prober.answers("fast");
    assert!(
        answers.len() >= 3,
        "only {} probes in {:?}",
        answers.len(),
        started.elapsed()
    );

    let second = scheduler_with(&prober, &store);
    let status = EndpointStatus::new(endpoint);
    let (shared, _) = second.restore(&store, endpoint, &status, Instant::now(), Duration::ZERO);
    let restored: Vec<Instant> = shared.ledger().entries().collect();
    // The ledger keeps one window (1s), so it must contain the probes that ended last.
    let newest = &answers[answers.len() - restored.len()..];
    assert!(!restored.is_empty(), "nothing restored");
    for (counted, answered) in restored.iter().zip(newest) {
        assert!(
            counted >= answered,
            "a request counts from {:?} before its answer",
            *answered - *counted
        );
    }
}

#[tokio::test(start_paused = true)]
async fn new_endpoint_in_existing_store_gets_spread_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    drop(StateStore::open_with_clock(dir.path(), clock.clock()).unwrap());
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    let config = config("      - { name: a, path: a, interval: 60s }\n");
    let start = Instant::now();
    let mut scheduler = scheduler_with(&prober, &store);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(59)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;
    let sends = prober.sends("a");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0] - start, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn retry_after_pause_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    prober.script(
        "busy",
        vec![Answer::status(429).header("Retry-After", "600")],
    );
    let config = config("      - { name: busy, path: b, interval: 10s }\n");
    let mut first = scheduler_with(&prober, &store);
    first.apply(&config);
    tokio::time::sleep(Duration::from_secs(30)).await;
    first.shutdown(Duration::from_secs(1)).await;
    assert_eq!(prober.sends("busy").len(), 1);

    let mut second = scheduler_with(&prober, &store);
    second.apply(&config);
    tokio::time::sleep(Duration::from_secs(660)).await;
    second.shutdown(Duration::from_secs(1)).await;
    let sends = prober.sends("busy");
    assert!(sends.len() >= 2);
    assert!(
        sends[1] - sends[0] >= Duration::from_secs(600),
        "sent {:?} after the 429",
        sends[1] - sends[0]
    );
}

/// A small deterministic generator, so a failure can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// The documented limits, with a 5-minute default interval so 30 days stay quick; the 20/s
// endpoint is then probed every 5 minutes.
const CHAOS_ENDPOINTS: &str = "      - { name: model, path: a, rate_limit: 20/s }
      - { name: generate-key, path: b, rate_limit: 100/day }
      - { name: get-xmr-wallet, path: d, rate_limit: 100/day }
      - { name: confirm-xmr-payment, path: e, rate_limit: 100/day }
      - { name: check-credit, path: c, rate_limit: 100/hour }
      - { name: send-mail, path: f, rate_limit: 1/day }
      - { name: daily-half, path: g, rate_limit: 1/day, probe_share: 100% }
      - { name: two-windows, path: h, rate_limit: [100/hour, 1000/day], probe_share: 50% }
      - { name: short, path: i, rate_limit: 5/30s, probe_share: 100% }
";

/// Scripts a random mix of answers: mostly 200, some 429 and 503 with Retry-After.
fn script_faults(prober: &FakeProber, config: &Config, rng: &mut XorShift) {
    for endpoint in &config.endpoints {
        let answers = (0..50)
            .map(|_| match rng.below(20) {
                0 => Answer::status(429).header("Retry-After", &rng.below(7200).to_string()),
                1 => Answer::status(503).header("Retry-After", &rng.below(600).to_string()),
                2 => Answer::status(500),
                _ => Answer::status(200),
            })
            .collect();
        prober.script(&endpoint.name, answers);
    }
}

async fn run_chaos(seed: u64, days: u64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::with_latency(Duration::from_millis(20)));
    let text = format!(
        "global: {{ interval: 5m }}\napis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n{CHAOS_ENDPOINTS}"
    );
    let config = config::parse(&text, "chaos.yml", &SecretSource::from_env()).unwrap();
    let mut rng = XorShift(seed | 1);
    let end = Instant::now() + DAY * u32::try_from(days).unwrap();
    let mut restarts = 0;

    while Instant::now() < end {
        script_faults(&prober, &config, &mut rng);
        let mut scheduler = scheduler_with(&prober, &store);
        scheduler.apply(&config);
        let run_for = Duration::from_secs(600 + rng.below(20 * 3600));
        tokio::time::sleep(run_for.min(end - Instant::now())).await;
        scheduler.shutdown(Duration::from_secs(30)).await;
        restarts += 1;
        match rng.below(4) {
            // A wall-clock step within one boot, up to two days either way.
            0 => {
                clock.step_wall(i64::try_from(rng.below(4 * 86_400_000)).unwrap() - 2 * 86_400_000);
            }
            // A reboot, with the wall clock stepped back up to an hour.
            1 => {
                clock.reboot();
                clock.step_wall(-i64::try_from(rng.below(3_600_000)).unwrap());
            }
            // Downtime before the restart.
            2 => tokio::time::sleep(Duration::from_secs(rng.below(6 * 3600))).await,
            _ => {}
        }
    }
    assert!(restarts >= days, "seed {seed}: only {restarts} restarts");

    for endpoint in &config.endpoints {
        let sends = prober.sends(&endpoint.name);
        let name = format!("seed {seed} {}", endpoint.name);
        for w in &endpoint.plan.windows {
            let max = max_in_window(&sends, w.limit.window);
            eprintln!(
                "{name}: {} probes, at most {max} in one {:?} window, budget {}",
                sends.len(),
                w.limit.window,
                w.budget
            );
        }
        assert_within_budget(&sends, &endpoint.plan.windows, &name);
        for pair in sends.windows(2) {
            // Restarts never probe early: consecutive probes are at least one interval apart,
            // less the one-second slack a probe may wait for the ledger.
            let gap = pair[1] - pair[0];
            assert!(
                gap + Duration::from_secs(1) >= endpoint.plan.interval,
                "{name}: probes {gap:?} apart"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn thirty_days_of_restarts_faults_and_clock_steps_stay_within_budget() {
    run_chaos(0x5eed_0001, 30).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn random_restarts_and_clock_steps_stay_within_budget(seed in any::<u64>()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_chaos(seed, 3));
    }
}

#[tokio::test(start_paused = true)]
async fn long_downtime_counts_missed_slots() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    let config = config("      - { name: mail, path: m, rate_limit: 1/day, probe_share: 100% }\n");
    let interval = config.endpoints[0].plan.interval;

    // A new store: the first probe comes one interval and 30s after the start.
    let mut first = scheduler_with(&prober, &store);
    first.apply(&config);
    tokio::time::sleep(interval + Duration::from_secs(3600)).await;
    first.shutdown(Duration::from_secs(1)).await;
    let sent = prober.sends("mail");
    assert_eq!(sent.len(), 1);
    let first_probe = sent[0];

    // Down for three intervals, so the stored send is older than the retention (one day plus
    // the timeout). The slots at 1, 2 and 3 intervals after the probe passed while down.
    tokio::time::sleep(3 * interval).await;
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut second = Scheduler::new(prober.clone(), metrics.clone(), board).with_store(store);
    second.apply(&config);
    let text = String::from_utf8(metrics.encode().1).unwrap();
    let missed = metric_value(
        &text,
        "ratewatch_probes_skipped_total{api=\"sim\",endpoint=\"mail\",reason=\"missed\"}",
    );
    assert_eq!(missed, Some(3.0));

    // The next probe goes out on the old grid, four intervals after the first.
    tokio::time::sleep_until(first_probe + 4 * interval - Duration::from_secs(1)).await;
    assert_eq!(prober.sends("mail").len(), 1, "probed before its slot");
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.shutdown(Duration::from_secs(1)).await;
    let sent = prober.sends("mail");
    assert_eq!(sent.len(), 2);
    let offset = (sent[1] - first_probe).abs_diff(4 * interval);
    assert!(
        offset <= Duration::from_millis(2),
        "off the grid by {offset:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_restores_last_result_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let store = store(dir.path(), &clock);
    let prober = Arc::new(FakeProber::default());
    prober.script("e", vec![Answer::status(200), Answer::status(503)]);
    let config = config("      - { name: e, path: e, interval: 60s }\n");
    let labels = "{api=\"sim\",endpoint=\"e\"}";
    let series = [
        "ratewatch_probe_last_run_timestamp_seconds",
        "ratewatch_probe_last_success_timestamp_seconds",
        "ratewatch_probe_success",
        "ratewatch_probe_http_status_code",
    ];

    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut first =
        Scheduler::new(prober.clone(), metrics.clone(), board).with_store(store.clone());
    first.apply(&config);
    while prober.answers("e").len() < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.shutdown(Duration::from_secs(1)).await;
    let text = String::from_utf8(metrics.encode().1).unwrap();
    let before: Vec<Option<f64>> = series
        .iter()
        .map(|name| metric_value(&text, &format!("{name}{labels} ")))
        .collect();
    assert_eq!(before[2], Some(0.0), "the last probe got a 503");
    assert_eq!(before[3], Some(503.0));

    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut second =
        Scheduler::new(prober.clone(), metrics.clone(), board).with_store(store.clone());
    second.apply(&config);
    let text = String::from_utf8(metrics.encode().1).unwrap();
    for (name, value) in series.iter().zip(&before) {
        let restored = metric_value(&text, &format!("{name}{labels} "));
        assert!(value.is_some(), "{name} missing before the restart");
        assert_eq!(restored, *value, "{name} after the restart");
    }
    second.shutdown(Duration::from_secs(1)).await;

    // Restarted with a config that expects the 503, the saved response is a success at once.
    let accepting =
        super::config("      - { name: e, path: e, interval: 60s, expect: [200, 503] }\n");
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut third = Scheduler::new(prober.clone(), metrics.clone(), board).with_store(store);
    third.apply(&accepting);
    let text = String::from_utf8(metrics.encode().1).unwrap();
    let value = |name: &str| metric_value(&text, &format!("{name}{labels} "));
    assert_eq!(value(series[2]), Some(1.0), "judged by the new expect");
    assert_eq!(value(series[3]), Some(503.0));
    let last_success = value(series[1]).unwrap();
    assert!(
        last_success > before[1].unwrap(),
        "the 503 is now the last success: {last_success} after {:?}",
        before[1]
    );
    assert_eq!(prober.answers("e").len(), 2, "the restart sent no probe");
    third.shutdown(Duration::from_secs(1)).await;
}
