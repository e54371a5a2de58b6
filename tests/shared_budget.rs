//! The shared probe budget against a real `redis-server` (the Debian package) that each test
//! starts on a free loopback port and kills when it ends.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::time::Duration;

use common::redis_server::Redis;
use common::require;
use ratewatch::plan::WindowBudget;
use ratewatch::ratelimit::RateLimit;
use ratewatch::shared::{AuthFailure, Debit, SharedBudget, SharedError};
use tokio::time::{Instant, sleep};

const PREFIX: &str = "ratewatch-test";
const ENDPOINT: &str = "api/endpoint";

/// How far apart the Redis server's clock (`TIME`, the wall clock) and the test's monotonic
/// clock may drift while a test runs: a loaded CI machine showed 7ms.
const CLOCK_TOLERANCE: Duration = Duration::from_millis(50);
/// The timeout of every Redis call. The fail-fast checks allow one more timeout on top of it,
/// so a loaded machine has a whole second of slack, and two timers stacked in a row still fail
/// them.
const TIMEOUT: Duration = Duration::from_secs(1);

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

fn window(budget: u64, secs: u64) -> WindowBudget {
    WindowBudget {
        limit: RateLimit {
            limit: budget * 10,
            window: Duration::from_secs(secs),
        },
        budget,
    }
}

fn span_ms(window: &WindowBudget) -> u64 {
    (window.limit.window).as_millis() as u64
}

/// Returns the max number of grants in any interval `(t - span, t]`, over every grant time `t`.
/// Times are sorted.
fn max_in_any_window(times: &[u64], span: u64) -> usize {
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| times[..=i].iter().filter(|&&s| s + span > t).count())
        .max()
        .unwrap_or(0)
}

async fn connect(port: u16) -> SharedBudget {
    SharedBudget::connect(&url(port), PREFIX, TIMEOUT)
        .await
        .unwrap()
}

/// Debits from `budget` until `deadline`, waiting at most 20ms between denied attempts, and
/// returns the grant times in server milliseconds and the number of calls.
async fn hammer(
    budget: SharedBudget,
    windows: Vec<WindowBudget>,
    deadline: Instant,
) -> (Vec<u64>, usize) {
    let longest = windows.iter().map(|w| w.limit.window).max().unwrap();
    let mut granted = Vec::new();
    let mut calls = 0;
    // Bounded in count as well as time: at most 5,000 calls per task.
    while Instant::now() < deadline && calls < 5_000 {
        calls += 1;
        match budget
            .debit(ENDPOINT, &windows, Duration::ZERO)
            .await
            .unwrap()
        {
            Debit::Granted { at_ms, .. } => granted.push(at_ms),
            Debit::Denied { ready_in } => {
                assert!(ready_in <= longest, "ready_in {ready_in:?} > {longest:?}");
                sleep(ready_in.min(Duration::from_millis(20))).await;
            }
        }
    }
    (granted, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_exceed_budget_in_any_window() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(connect(port).await);
    }
    let windows = vec![window(5, 1)];
    let run = Duration::from_millis(2_500);
    let deadline = Instant::now() + run;

    let mut tasks = Vec::new();
    for i in 0..50 {
        let budget = replicas[i % replicas.len()].clone();
        tasks.push(tokio::spawn(hammer(budget, windows.clone(), deadline)));
    }
    let mut granted = Vec::new();
    let mut calls = 0;
    for task in tasks {
        let (times, count) = task.await.unwrap();
        granted.extend(times);
        calls += count;
    }
    granted.sort_unstable();

    let span = span_ms(&windows[0]);
    let max_granted = max_in_any_window(&granted, span);
    // A greedy sender gets the budget at the start of each span that begins within the run.
    let theoretical = 5 * run.as_millis().div_ceil(u128::from(span)) as usize;
    eprintln!(
        "replicas: {calls} debit calls, {} granted (theoretical max {theoretical}), \
         max {max_granted} in any {span}ms window (budget 5)",
        granted.len()
    );
    assert!(
        max_granted <= 5,
        "{max_granted} grants in one {span}ms window: {granted:?}"
    );
    assert!(granted.len() <= theoretical, "{granted:?}");
    assert!(
        granted.len() >= theoretical - 5,
        "only {} granted of {theoretical}: {granted:?}",
        granted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_is_enforced_at_once() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = vec![window(2, 1), window(5, 10)];
    let started = Instant::now();
    // The five grants need a little over 2s. The run lasts 4s, so grants that a loaded
    // machine delays still fit, and it ends long before the 10s window frees room.
    let deadline = started + Duration::from_secs(4);

    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(hammer(budget.clone(), windows.clone(), deadline)))
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        granted.extend(task.await.unwrap().0);
    }
    granted.sort_unstable();

    let short = max_in_any_window(&granted, span_ms(&windows[0]));
    let long = max_in_any_window(&granted, span_ms(&windows[1]));
    eprintln!(
        "two windows: {} granted in 4s, max {short} per 1s (budget 2), max {long} per 10s (budget 5)",
        granted.len()
    );
    assert!(short <= 2, "{granted:?}");
    assert!(long <= 5, "{granted:?}");
    // Two at 0s, two at 1s and one at 2s, after which the 10s window is full.
    assert_eq!(granted.len(), 5, "{granted:?}");

    let Debit::Denied { ready_in } = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap()
    else {
        panic!("a debit was granted with 5 in the 10s window");
    };
    let long_span = windows[1].limit.window;
    assert!(ready_in <= long_span, "ready_in {ready_in:?}");
    // The 10s window blocks, so the wait runs until the first grant is 10s old.
    let earliest = long_span.saturating_sub(started.elapsed());
    assert!(
        ready_in + CLOCK_TOLERANCE >= earliest,
        "ready_in {ready_in:?}, expected at least {earliest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_waits_for_oldest_blocking_debit() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    // A 2s window leaves the fourth debit 1.7s to arrive before the first one leaves.
    let windows = [window(3, 2)];
    let span = windows[0].limit.window;

    let before_first = Instant::now();
    let first = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    let after_first = Instant::now();
    assert!(matches!(first, Debit::Granted { .. }), "{first:?}");
    sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let next = budget
            .debit(ENDPOINT, &windows, Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(next, Debit::Granted { .. }), "{next:?}");
    }

    let before_denied = Instant::now();
    let denied = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    let after_denied = Instant::now();
    let Debit::Denied { ready_in } = denied else {
        panic!("a fourth debit in one window was granted: {denied:?}");
    };
    // The first debit frees the room, so ready_in is its age subtracted from the span.
    let tolerance = CLOCK_TOLERANCE;
    let shortest = (before_first + span).saturating_duration_since(after_denied);
    let longest = (after_first + span).saturating_duration_since(before_denied);
    eprintln!("denied: ready_in {ready_in:?}, expected {shortest:?} to {longest:?}");
    assert!(ready_in <= span, "ready_in {ready_in:?} > {span:?}");
    assert!(ready_in + tolerance >= shortest, "ready_in {ready_in:?}");
    assert!(ready_in <= longest + tolerance, "ready_in {ready_in:?}");

    sleep(ready_in + CLOCK_TOLERANCE).await;
    let after_wait = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    assert!(
        matches!(after_wait, Debit::Granted { .. }),
        "denied again after waiting ready_in: {after_wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_key_expires_after_longest_window() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = [window(2, 1), window(5, 10)];
    let granted = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(granted, Debit::Granted { .. }), "{granted:?}");

    let key = budget.budget_key(ENDPOINT);
    assert_eq!(key, "ratewatch-test:budget:api/endpoint");
    let client = redis::Client::open(url(port)).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let members: i64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl > 9_000, "PTTL {ttl}");
    assert!(ttl <= 10_050, "PTTL {ttl}");
    assert_eq!(members, 1);

    // With no windows every debit is granted and nothing is stored.
    let free = budget.debit("api/free", &[], Duration::ZERO).await.unwrap();
    assert!(matches!(free, Debit::Granted { .. }), "{free:?}");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(budget.budget_key("api/free"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_claims_each_slot() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let a = connect(port).await;
    let b = connect(port).await;
    let c = connect(port).await;
    let ttl = Duration::from_secs(60);

    for slot in 0..20 {
        let (ra, rb, rc) = tokio::join!(
            a.claim_slot(ENDPOINT, slot, ttl),
            b.claim_slot(ENDPOINT, slot, ttl),
            c.claim_slot(ENDPOINT, slot, ttl),
        );
        let winners = [ra.unwrap(), rb.unwrap(), rc.unwrap()]
            .iter()
            .filter(|&&won| won)
            .count();
        assert_eq!(winners, 1, "slot {slot}");
    }
    // Another endpoint's slot is independent of this one's.
    assert!(a.claim_slot("api/other", 0, ttl).await.unwrap());
    assert!(!b.claim_slot("api/other", 0, ttl).await.unwrap());

    let client = redis::Client::open(url(port)).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let slot_ttl: i64 = redis::cmd("PTTL")
        .arg("ratewatch-test:slot:api/endpoint:7")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(slot_ttl > 50_000, "PTTL {slot_ttl}");
    assert!(slot_ttl <= 60_000, "PTTL {slot_ttl}");

    // A claim expires after its ttl, and the slot can be claimed again. The ttl leaves the
    // second claim a whole second to arrive on a loaded machine.
    let short = Duration::from_secs(1);
    assert!(a.claim_slot(ENDPOINT, 100, short).await.unwrap());
    assert!(!b.claim_slot(ENDPOINT, 100, short).await.unwrap());
    sleep(short + Duration::from_millis(100)).await;
    assert!(b.claim_slot(ENDPOINT, 100, short).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_fails_fast_and_recovers() {
    if !require("redis-server") {
        return;
    }
    let mut redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = [window(100, 1)];
    budget.ping().await.unwrap();
    assert!(matches!(
        budget
            .debit(ENDPOINT, &windows, Duration::ZERO)
            .await
            .unwrap(),
        Debit::Granted { .. }
    ));

    redis.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let result = budget.debit(ENDPOINT, &windows, Duration::ZERO).await;
        let elapsed = started.elapsed();
        slowest = slowest.max(elapsed);
        assert!(result.is_err(), "debit succeeded with redis stopped");
        assert!(elapsed < 2 * TIMEOUT, "debit took {elapsed:?}");
    }
    let started = Instant::now();
    let ping = budget.ping().await;
    assert!(ping.is_err(), "ping succeeded with redis stopped");
    assert!(started.elapsed() < 2 * TIMEOUT);

    redis.restart();
    let restarted = Instant::now();
    let mut failures = 0;
    // Bounded: at most 50 attempts, 100ms apart.
    let recovered = loop {
        match budget.debit(ENDPOINT, &windows, Duration::ZERO).await {
            Ok(Debit::Granted { .. }) => break restarted.elapsed(),
            Ok(denied) => panic!("a fresh server denied the debit: {denied:?}"),
            Err(_) if failures < 50 => failures += 1,
            Err(e) => panic!("no recovery after {failures} attempts: {e}"),
        }
        sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "stopped: slowest error {slowest:?} (timeout {TIMEOUT:?}); \
         recovered {recovered:?} after restart, {failures} failed calls"
    );
    assert!(recovered < Duration::from_secs(5), "{recovered:?}");
    budget.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_redis_times_out() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = [window(100, 1)];
    budget.ping().await.unwrap();

    // A stopped process keeps its socket open but sends no replies.
    redis.pause();
    let started = Instant::now();
    let result = budget.debit(ENDPOINT, &windows, Duration::ZERO).await;
    let elapsed = started.elapsed();
    let error = result.expect_err("debit succeeded while redis was stopped");
    let message = error.to_string();
    assert!(elapsed < 2 * TIMEOUT, "debit took {elapsed:?}");
    assert!(message.contains("timed out"), "{message}");
    // The client's own response timeout and the bound around the call are equal, and
    // whichever fires first gives the same error.
    assert!(
        matches!(
            error,
            SharedError::Timeout {
                operation: "debit",
                ..
            }
        ),
        "{message}"
    );

    redis.resume();
    let resumed = Instant::now();
    let mut failures = 0;
    let recovered = loop {
        match budget.ping().await {
            Ok(()) => break resumed.elapsed(),
            Err(_) if failures < 50 => failures += 1,
            Err(e) => panic!("no recovery after {failures} attempts: {e}"),
        }
        sleep(Duration::from_millis(100)).await;
    };
    eprintln!("unresponsive: error after {elapsed:?}; recovered {recovered:?} after SIGCONT");
    assert!(matches!(
        budget
            .debit(ENDPOINT, &windows, Duration::ZERO)
            .await
            .unwrap(),
        Debit::Granted { .. }
    ));
}

#[tokio::test]
async fn connect_to_silent_listener_times_out() {
    // The kernel completes the TCP handshake for a listener that never accepts, so the
    // client connects and then waits for replies that never come.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let result = SharedBudget::connect(&url(port), PREFIX, TIMEOUT).await;
    let elapsed = started.elapsed();
    assert!(
        result.is_err(),
        "connected to a listener that never answers"
    );
    assert!(elapsed < 2 * TIMEOUT, "connect took {elapsed:?}");
    drop(listener);
}

#[tokio::test]
async fn connect_error_hides_password() {
    let started = Instant::now();
    let error = SharedBudget::connect("redis://:hunter2@127.0.0.1:1/", PREFIX, TIMEOUT)
        .await
        .expect_err("connected to port 1");
    assert!(started.elapsed() < 2 * TIMEOUT);
    let message = error.to_string();
    let debug = format!("{error:?}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(matches!(error, SharedError::Redis { .. }), "{debug}");

    let invalid = SharedBudget::connect("http://:hunter2@127.0.0.1:1/", PREFIX, TIMEOUT)
        .await
        .expect_err("accepted an http URL");
    let message = invalid.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        matches!(invalid, SharedError::InvalidUrl { .. }),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_error_hides_password() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&["--requirepass", "correct-horse"]);
    let port = redis.port;
    let error = SharedBudget::connect(
        &format!("redis://:hunter2@127.0.0.1:{port}/"),
        PREFIX,
        TIMEOUT,
    )
    .await
    .expect_err("connected with a wrong password");
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{error:?}").contains("hunter2"));
    assert!(
        matches!(
            error,
            SharedError::Authentication {
                failure: AuthFailure::Rejected,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.ends_with("connect failed: Password authentication failed- AuthenticationFailed; check the password, and the user name for a Redis ACL user, in the URL of --storage.redis-url or RATEWATCH_REDIS_URL"),
        "{message}"
    );

    let budget = SharedBudget::connect(
        &format!("redis://:correct-horse@127.0.0.1:{port}/"),
        PREFIX,
        TIMEOUT,
    )
    .await
    .unwrap();
    budget.ping().await.unwrap();
    assert!(!format!("{budget:?}").contains("correct-horse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_debit_counts_from_the_probe_end() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = [window(1, 2)];

    let Debit::Granted { id, .. } = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap()
    else {
        panic!("the first debit was denied");
    };
    // The probe took 1.5s, so the debit now counts from its end.
    sleep(Duration::from_millis(1500)).await;
    budget
        .settle(ENDPOINT, id, &windows, Duration::ZERO)
        .await
        .unwrap();
    // Past the 2s window counted from the debit, and 1.3s short of the window counted from
    // the probe's end, so a loaded machine may send the next debit that much later.
    sleep(Duration::from_millis(700)).await;
    let early = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    assert!(
        matches!(early, Debit::Denied { .. }),
        "granted 2.2s after the debit but only 0.7s after its probe ended: {early:?}"
    );
    sleep(Duration::from_millis(1500)).await;
    let later = budget
        .debit(ENDPOINT, &windows, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(later, Debit::Granted { .. }), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsettled_debit_counts_from_its_timeout() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&[]);
    let port = redis.port;
    let budget = connect(port).await;
    let windows = [window(1, 1)];
    let timeout = Duration::from_secs(2);

    // A replica is granted a debit and dies before settling it.
    let first = budget.debit(ENDPOINT, &windows, timeout).await.unwrap();
    assert!(matches!(first, Debit::Granted { .. }), "{first:?}");
    // Past the 1s window counted from the debit, and 1.8s short of the window counted from
    // its timeout, so a loaded machine may send the next debit that much later.
    sleep(Duration::from_millis(1200)).await;
    let early = budget.debit(ENDPOINT, &windows, timeout).await.unwrap();
    assert!(
        matches!(early, Debit::Denied { .. }),
        "granted 1.2s after an unsettled debit, before its 2s timeout plus the 1s window: {early:?}"
    );
    sleep(Duration::from_secs(2)).await;
    let later = budget.debit(ENDPOINT, &windows, timeout).await.unwrap();
    assert!(matches!(later, Debit::Granted { .. }), "{later:?}");
}
