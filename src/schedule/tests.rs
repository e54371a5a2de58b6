use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;

use super::*;
use crate::classify::Class;
use crate::config;
use crate::metrics::unix_seconds;
use crate::plan::WindowBudget;
use crate::probe::Outcome;
use crate::secret::SecretSource;
use http::HeaderMap;
use proptest::prelude::*;

/// One scripted answer: status, headers and body.
#[derive(Clone, Default)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            ..Answer::default()
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn body(mut self, body: &str) -> Answer {
        self.body = Some(body.to_owned());
        self
    }
}

/// A prober that answers in virtual time and logs every request.
#[derive(Default)]
struct FakeProber {
    sent: Mutex<Vec<(String, Instant)>>,
    /// The moment each probe's response was ready, per endpoint name.
    answered: Mutex<Vec<(String, Instant)>>,
    latency: Duration,
    /// Scripted answers per endpoint name, used in order; then 200 with no body.
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
}

impl FakeProber {
    fn with_latency(latency: Duration) -> FakeProber {
        FakeProber {
            latency,
            ..FakeProber::default()
        }
    }

    fn sends(&self, name: &str) -> Vec<Instant> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, t)| t)
            .collect()
    }

    fn answers(&self, name: &str) -> Vec<Instant> {
        let answered = self.answered.lock().unwrap();
        answered
            .iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, t)| t)
            .collect()
    }

    fn script(&self, name: &str, answers: Vec<Answer>) {
        self.script
            .lock()
            .unwrap()
            .insert(name.to_owned(), answers.into());
    }
}

impl Prober for FakeProber {
    async fn probe(&self, endpoint: &Endpoint) -> Outcome {
        let started = Instant::now();
        self.sent
            .lock()
            .unwrap()
            .push((endpoint.name.clone(), started));
        let answer = self
            .script
            .lock()
            .unwrap()
            .get_mut(&endpoint.name)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::status(200));
        tokio::time::sleep(self.latency).await;
        self.answered
            .lock()
            .unwrap()
            .push((endpoint.name.clone(), Instant::now()));
        let mut headers = HeaderMap::new();
        for (name, value) in &answer.headers {
            headers.append(*name, value.parse().unwrap());
        }
        Outcome {
            class: Class::from_status(answer.status),
            status: Some(answer.status),
            success: endpoint.expect.matches(answer.status),
            duration: started.elapsed(),
            headers,
            body: answer.body.map(String::into_bytes),
            detail: "",
        }
    }
}

fn config(endpoints: &str) -> Config {
    let text = format!(
        "apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n{endpoints}"
    );
    config::parse(&text, "test.yml", &SecretSource::from_env()).unwrap()
}

fn scheduler(prober: &Arc<FakeProber>) -> Scheduler<FakeProber> {
    Scheduler::new(
        prober.clone(),
        Metrics::new().unwrap(),
        Arc::new(StatusBoard::default()),
    )
}

/// Returns the most requests in any half-open window `(t - W, t]`.
fn max_in_window(sends: &[Instant], window: Duration) -> u64 {
    let mut max = 0;
    for (i, &t) in sends.iter().enumerate() {
        let count = sends[..=i].iter().filter(|&&s| s + window > t).count() as u64;
        max = max.max(count);
    }
    max
}

fn assert_within_budget(sends: &[Instant], windows: &[WindowBudget], name: &str) {
    for w in windows {
        let max = max_in_window(sends, w.limit.window);
        assert!(
            max <= w.budget,
            "{name}: {max} requests in one {:?} window, budget {}",
            w.limit.window,
            w.budget
        );
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(start_paused = true)]
async fn documented_limits_hold_for_seven_days() {
    let prober = Arc::new(FakeProber::with_latency(Duration::from_millis(40)));
    let config = config(
        "      - { name: model, path: a, rate_limit: 20/s }
      - { name: generate-key, path: b, rate_limit: 100/day }
      - { name: check-credit, path: c, rate_limit: 100/hour }
      - { name: get-xmr-wallet, path: d, rate_limit: 100/day }
      - { name: confirm-xmr-payment, path: e, rate_limit: 100/day }
      - { name: send-mail, path: f, rate_limit: 1/day }
      - { name: two-windows, path: g, rate_limit: [100/hour, 1000/day] }
      - { name: short, path: h, rate_limit: 5/30s }
",
    );
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(7 * DAY).await;
    assert!(scheduler.shutdown(Duration::from_secs(5)).await);

    for endpoint in &config.endpoints {
        let sends = prober.sends(&endpoint.name);
        assert_within_budget(&sends, &endpoint.plan.windows, &endpoint.name);
        let expected = (7 * DAY).as_nanos() / endpoint.plan.interval.as_nanos();
        let count = sends.len() as u128;
        assert!(
            count == expected || count == expected + 1,
            "{}: {count} probes, expected about {expected}",
            endpoint.name
        );
        for w in &endpoint.plan.windows {
            // Long-run average: count × W ≤ run length × L × share, plus the one probe that a
            // grid may fit at the start of the run.
            let share = endpoint.share.as_fraction();
            let allowed = (7 * DAY).as_secs_f64() / w.limit.window.as_secs_f64()
                * w.limit.limit as f64
                * share;
            assert!(
                sends.len() as f64 <= allowed + 1.0,
                "{}: {} probes over {allowed}",
                endpoint.name,
                sends.len()
            );
        }
    }
    assert_eq!(prober.sends("model").len(), 20_160);
    assert!(prober.sends("send-mail").len() <= 1);
}

#[tokio::test(start_paused = true)]
async fn grid_does_not_drift_by_response_time() {
    // Responses faster than the plan's 50ms headroom never delay the next probe.
    let prober = Arc::new(FakeProber::with_latency(Duration::from_millis(30)));
    let config = config("      - { name: credit, path: c, rate_limit: 100/hour }\n");
    let start = Instant::now();
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(DAY).await;
    scheduler.shutdown(Duration::from_secs(5)).await;

    let sends = prober.sends("credit");
    assert_eq!(sends.len(), 240);
    let interval = config.endpoints[0].plan.interval;
    let first = sends[0];
    assert!(first - start < interval);
    for (k, &t) in sends.iter().enumerate() {
        assert_eq!(
            t - first,
            interval * u32::try_from(k).unwrap(),
            "probe {k} drifted"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn start_offsets_spread_over_the_interval() {
    let prober = Arc::new(FakeProber::default());
    let mut lines = String::new();
    for i in 0..60 {
        writeln!(lines, "      - {{ name: e{i}, path: p{i}, interval: 60s }}").unwrap();
    }
    let config = config(&lines);
    let start = Instant::now();
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(61)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let mut firsts: Vec<Duration> = (0..60)
        .map(|i| {
            let sends: Vec<Duration> = prober
                .sends(&format!("e{i}"))
                .iter()
                .map(|&t| t - start)
                .filter(|&t| t < Duration::from_secs(60))
                .collect();
            assert_eq!(sends.len(), 1, "e{i} probed once in its first interval");
            sends[0]
        })
        .collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 60, "no two endpoints share a start offset");
    // Evenly spread: one first probe per second of the minute.
    for window_start in 0..55 {
        let from = Duration::from_secs(window_start);
        let count = firsts
            .iter()
            .filter(|&&t| t >= from && t < from + Duration::from_secs(5))
            .count();
        assert_eq!(count, 5, "first probes within 5s from {window_start}s");
    }
}

#[test]
fn start_offset_is_stable_and_bounded() {
    let interval = Duration::from_secs(360);
    let a = start_offset("sim/check-credit", interval);
    assert_eq!(a, start_offset("sim/check-credit", interval));
    assert!(a < interval);
    assert_ne!(a, start_offset("sim/model", interval));
    assert_eq!(start_offset("x", Duration::from_nanos(1)), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_the_endpoint() {
    let prober = Arc::new(FakeProber::default());
    prober.script(
        "busy",
        vec![Answer::status(429).header("retry-after", "30")],
    );
    let far = Answer::status(503).header("Retry-After", "Thu, 01 Jan 2099 00:00:00 GMT");
    prober.script("down", vec![far]);
    let config = config(
        "      - { name: busy, path: a, interval: 5s }
      - { name: down, path: b, interval: 5s }
",
    );
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(120)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let busy = prober.sends("busy");
    assert!(
        busy[1] - busy[0] >= Duration::from_secs(30),
        "sent {:?} after the 429",
        busy[1] - busy[0]
    );
    assert!(busy[1] - busy[0] < Duration::from_secs(36));
    // An HTTP date far ahead is clamped to the 24h ceiling: nothing more within two minutes.
    assert_eq!(prober.sends("down").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_probe_skips_missed_slots_without_catching_up() {
    let prober = Arc::new(FakeProber::with_latency(Duration::from_secs(25)));
    let config = config("      - { name: slow, path: a, interval: 10s, timeout: 30s }\n");
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(300)).await;
    scheduler.shutdown(Duration::from_secs(30)).await;

    let sends = prober.sends("slow");
    for pair in sends.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(25),
            "catch-up burst: {:?}",
            pair[1] - pair[0]
        );
        assert_eq!(
            (pair[1] - pair[0]).as_nanos() % Duration::from_secs(10).as_nanos(),
            0,
            "left the grid"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_endpoints_and_spent_budget() {
    let prober = Arc::new(FakeProber::default());
    let first = config(
        "      - { name: keep, path: a, rate_limit: 100/hour }
      - { name: change, path: b, rate_limit: 100/hour }
      - { name: drop, path: c, rate_limit: 100/hour }
",
    );
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&first);
    tokio::time::sleep(Duration::from_secs(400)).await;
    let before = prober.sent.lock().unwrap().len();
    assert!(before >= 3, "every endpoint probed in its first interval");

    let second = config(
        "      - { name: keep, path: a, rate_limit: 100/hour }
      - { name: change, path: b, rate_limit: 100/hour, timeout: 3s }
      - { name: new, path: d, rate_limit: 100/hour }
",
    );
    for _ in 0..100 {
        let applied = scheduler.apply(&second);
        assert_eq!(applied.unchanged + applied.changed + applied.added, 3);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        prober.sent.lock().unwrap().len(),
        before,
        "a reload sent a probe"
    );

    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;
    for name in ["keep", "change", "new"] {
        let sends = prober.sends(name);
        let windows = &second.endpoints[0].plan.windows;
        assert_within_budget(&sends, windows, name);
        for pair in sends.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_secs(360),
                "{name}: probes {:?} apart",
                pair[1] - pair[0]
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn reload_during_probe_keeps_its_result() {
    let prober = Arc::new(FakeProber::with_latency(Duration::from_secs(3)));
    let board = Arc::new(StatusBoard::default());
    let mut scheduler = Scheduler::new(prober.clone(), Metrics::new().unwrap(), board.clone());
    scheduler.apply(&config(
        "      - { name: a, path: a, interval: 60s, timeout: 5s }\n",
    ));
    while prober.sends("a").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The endpoint changes while its first probe is in flight.
    let applied = scheduler.apply(&config(
        "      - { name: a, path: a, interval: 60s, timeout: 4s, degraded_after: 2s }\n",
    ));
    assert_eq!(applied.changed, 1);
    assert_eq!(board.snapshot()[0].class(), None, "no result yet");

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(prober.answers("a").len(), 1);
    let snapshot = &board.snapshot()[0];
    assert_eq!(snapshot.class(), Some("ok"));
    assert_eq!(snapshot.status_code(), Some(200));
    assert_eq!(
        snapshot.health(),
        "degraded",
        "3s is over the new threshold"
    );
    assert_eq!(prober.sends("a").len(), 1, "the reload sent no probe");
    scheduler.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn in_flight_probe_judged_by_new_expect() {
    let prober = Arc::new(FakeProber::with_latency(Duration::from_secs(3)));
    prober.script("a", vec![Answer::status(404)]);
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut scheduler = Scheduler::new(prober.clone(), metrics.clone(), board.clone());
    scheduler.apply(&config("      - { name: a, path: a, interval: 60s }\n"));
    while prober.sends("a").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The operator learns that the endpoint returns 404 by design while its probe is in
    // flight. The probe ends under the new config, so its 404 is a success.
    let applied = scheduler.apply(&config(
        "      - { name: a, path: a, interval: 60s, expect: [404] }\n",
    ));
    assert_eq!(applied.changed, 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(prober.answers("a").len(), 1);
    let snapshot = &board.snapshot()[0];
    assert_eq!(snapshot.status_code(), Some(404));
    assert_eq!(snapshot.health(), "up");
    let success = "ratewatch_probe_success{api=\"sim\",endpoint=\"a\"}";
    let (_, text) = metrics.encode();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric_value(&text, success), Some(1.0), "{text}");

    // Going back to the default judges the same response again at once, without a probe.
    scheduler.apply(&config("      - { name: a, path: a, interval: 60s }\n"));
    assert_eq!(board.snapshot()[0].health(), "down");
    let (_, text) = metrics.encode();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric_value(&text, success), Some(0.0), "{text}");
    assert_eq!(prober.sends("a").len(), 1, "the reloads sent no probe");
    scheduler.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_probe_finish() {
    let prober = Arc::new(FakeProber::with_latency(Duration::from_secs(3)));
    let quick = config("      - { name: a, path: a, interval: 10s }\n");
    let mut first = scheduler(&prober);
    first.apply(&quick);
    // Wait until the first probe is in flight.
    while prober.sends("a").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        first.shutdown(Duration::from_secs(5)).await,
        "drained within the grace period"
    );

    let prober = Arc::new(FakeProber::with_latency(Duration::from_secs(60)));
    let slow = config("      - { name: b, path: b, interval: 70s, timeout: 65s }\n");
    let mut second = scheduler(&prober);
    second.apply(&slow);
    while prober.sends("b").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    assert!(
        !second.shutdown(Duration::from_secs(2)).await,
        "cut at the deadline"
    );
    assert!(Instant::now() - started < Duration::from_secs(3));
}

fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn low_upstream_quota_slows_the_endpoint() {
    let prober = Arc::new(FakeProber::default());
    // Two requests left until a reset in 600s: 300s apart at most, not every 30s.
    let low = Answer::status(200)
        .header("X-RateLimit-Limit", "100")
        .header("X-RateLimit-Remaining", "2")
        .header("X-RateLimit-Reset", "600");
    prober.script("quota", vec![low]);
    let config = config("      - { name: quota, path: q, interval: 30s }\n");
    let metrics = Metrics::new().unwrap();
    let mut scheduler = Scheduler::new(
        prober.clone(),
        metrics.clone(),
        Arc::new(StatusBoard::default()),
    );
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(700)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let sends = prober.sends("quota");
    assert!(
        sends[1] - sends[0] >= Duration::from_secs(300),
        "{:?}",
        sends[1] - sends[0]
    );
    // Back to the planned interval once the API stops reporting a low quota.
    assert_eq!(sends[2] - sends[1], Duration::from_secs(30));
    let (_, text) = metrics.encode();
    let text = String::from_utf8(text).unwrap();
    let remaining = metric_value(
        &text,
        "ratewatch_upstream_rate_limit_remaining{api=\"sim\",endpoint=\"quota\",policy=\"default\"}",
    );
    assert_eq!(remaining, Some(2.0));
    let skipped = metric_value(
        &text,
        "ratewatch_probes_skipped_total{api=\"sim\",endpoint=\"quota\",reason=\"upstream_quota\"}",
    );
    assert_eq!(skipped, Some(9.0));
}

#[tokio::test(start_paused = true)]
async fn credit_keeps_last_good_value_on_error_body() {
    let prober = Arc::new(FakeProber::default());
    prober.script(
        "credit",
        vec![
            Answer::status(200).body(r#"{"credit": "12.50"}"#),
            Answer::status(200).body(r#"{"error": "internal"}"#),
            Answer::status(200).body(r#"{"credit": 11}"#),
        ],
    );
    let text =
        "      - { name: credit, path: c, interval: 10s, credit: { json_path: $.credit } }\n";
    let config = config(text);
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut scheduler = Scheduler::new(prober.clone(), metrics.clone(), board.clone());
    scheduler.apply(&config);
    let first = prober.clone();
    while first.sends("credit").len() < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (_, body) = metrics.encode();
    let body = String::from_utf8(body).unwrap();
    let labels = "{api=\"sim\",endpoint=\"credit\"}";
    assert_eq!(
        metric_value(&body, &format!("ratewatch_credit_balance{labels}")),
        Some(12.5)
    );
    let errors = "ratewatch_credit_extraction_errors_total{api=\"sim\",endpoint=\"credit\",reason=\"error_body\"}";
    assert_eq!(metric_value(&body, errors), Some(1.0));
    let body_errors =
        "ratewatch_probe_results_total{api=\"sim\",class=\"body_error\",endpoint=\"credit\"}";
    assert_eq!(metric_value(&body, body_errors), Some(1.0));
    assert_eq!(board.snapshot()[0].class(), Some("body_error"));

    tokio::time::sleep(Duration::from_secs(10)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;
    let (_, body) = metrics.encode();
    let body = String::from_utf8(body).unwrap();
    assert_eq!(
        metric_value(&body, &format!("ratewatch_credit_balance{labels}")),
        Some(11.0)
    );
}

mod restarts;

#[tokio::test(start_paused = true)]
async fn frequent_reloads_do_not_postpone_probes() {
    let prober = Arc::new(FakeProber::default());
    let a = config("      - { name: e, path: e, interval: 60s, timeout: 2s }\n");
    let b = config("      - { name: e, path: e, interval: 60s, timeout: 3s }\n");
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&a);
    for i in 0..60 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let applied = scheduler.apply(if i % 2 == 0 { &b } else { &a });
        assert_eq!(applied.changed, 1);
    }
    scheduler.shutdown(Duration::from_secs(5)).await;
    let sends = prober.sends("e");
    // 600s with a 60s grid: about 10 probes, never closer than the interval.
    assert!(sends.len() >= 9, "{} probes in 600s", sends.len());
    for pair in sends.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(60),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn budget_used_drops_when_the_window_empties() {
    let prober = Arc::new(FakeProber::default());
    let config = config("      - { name: q, path: q, rate_limit: 10/min, interval: 10m }\n");
    assert_eq!(config.endpoints[0].plan.windows[0].budget, 1);
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut scheduler = Scheduler::new(prober.clone(), metrics.clone(), board.clone());
    let start = Instant::now();
    scheduler.apply(&config);
    let used = || {
        let text = String::from_utf8(metrics.encode().1).unwrap();
        let series =
            "ratewatch_probe_budget_used_requests{api=\"sim\",endpoint=\"q\",window=\"1m\"}";
        (
            metric_value(&text, series),
            board.snapshot()[0].budget()[0].1,
        )
    };

    // One endpoint alone starts half an interval in: its only probe goes out at 5m.
    tokio::time::sleep_until(start + Duration::from_secs(330)).await;
    assert_eq!(prober.sends("q"), vec![start + Duration::from_secs(300)]);
    assert_eq!(used(), (Some(1.0), 1), "within the window of the probe");

    // One minute after the probe the window is empty, long before the next slot at 15m.
    tokio::time::sleep_until(start + Duration::from_secs(361)).await;
    assert_eq!(used(), (Some(0.0), 0), "after one window of quiet");
    scheduler.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn upstream_quota_hold_sets_paused_until() {
    let prober = Arc::new(FakeProber::default());
    // Two requests left until a reset in 600s: the next probe waits 300s, skipping 9 slots.
    let low = Answer::status(200)
        .header("X-RateLimit-Limit", "100")
        .header("X-RateLimit-Remaining", "2")
        .header("X-RateLimit-Reset", "600");
    prober.script("quota", vec![low]);
    let config = config("      - { name: quota, path: q, interval: 30s }\n");
    let metrics = Metrics::new().unwrap();
    let board = Arc::new(StatusBoard::default());
    let mut scheduler = Scheduler::new(prober.clone(), metrics.clone(), board.clone());
    scheduler.apply(&config);
    while prober.sends("quota").is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let first = prober.sends("quota")[0];
    tokio::time::sleep_until(first + Duration::from_secs(100)).await;

    let text = String::from_utf8(metrics.encode().1).unwrap();
    let skipped = metric_value(
        &text,
        "ratewatch_probes_skipped_total{api=\"sim\",endpoint=\"quota\",reason=\"upstream_quota\"}",
    );
    assert_eq!(
        skipped,
        Some(3.0),
        "slots at 30s, 60s and 90s after the probe"
    );
    let paused = metric_value(
        &text,
        "ratewatch_paused_until_timestamp_seconds{api=\"sim\",endpoint=\"quota\"}",
    )
    .unwrap();
    // The probe resumes at the slot 300s after the first one. The gauge was converted to wall
    // time at the slot 90s after the probe, and the paused clock does not move the wall clock,
    // so it reads 210s ahead of it.
    let left = paused - unix_seconds(SystemTime::now());
    assert!((209.0..=211.0).contains(&left), "paused for {left}s more");
    let page = board.snapshot()[0].paused_until().unwrap();
    assert!(
        (page - paused).abs() < 1.0,
        "status page {page}, metric {paused}"
    );

    tokio::time::sleep_until(first + Duration::from_secs(301)).await;
    assert_eq!(prober.sends("quota").len(), 2);
    let text = String::from_utf8(metrics.encode().1).unwrap();
    let paused = metric_value(
        &text,
        "ratewatch_paused_until_timestamp_seconds{api=\"sim\",endpoint=\"quota\"}",
    );
    assert_eq!(paused, Some(0.0), "not held back once the API reports room");
    scheduler.shutdown(Duration::from_secs(1)).await;
}
