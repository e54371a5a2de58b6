use super::*;
use proptest::prelude::*;

fn limit(text: &str) -> RateLimit {
    text.parse().unwrap()
}

fn share(percent: u64) -> Share {
    Share::from_ppm(percent * 10_000).unwrap()
}

const DEFAULT: Duration = Duration::from_secs(30);

#[test]
fn documented_limits_at_ten_percent() {
    // Share-bound intervals carry GUARD / budget on top: 50ms / 10 = 5ms.
    let table = [
        ("20/s", 2, 30_000, IntervalSource::Default),
        ("100/day", 10, 8_640_005, IntervalSource::Share),
        ("100/hour", 10, 360_005, IntervalSource::Share),
        ("1/day", 1, 864_000_050, IntervalSource::Share),
        ("5/30s", 1, 60_050, IntervalSource::Share),
    ];
    for (text, budget, interval_ms, source) in table {
        let plan = build(&[limit(text)], Share::DEFAULT, None, DEFAULT).unwrap();
        assert_eq!(plan.windows[0].budget, budget, "{text} budget");
        assert_eq!(
            plan.interval,
            Duration::from_millis(interval_ms),
            "{text} interval"
        );
        assert_eq!(plan.source, source, "{text} source");
    }
}

#[test]
fn several_windows_take_the_longest_interval() {
    let plan = build(
        &[limit("100/hour"), limit("1000/day")],
        Share::DEFAULT,
        None,
        DEFAULT,
    )
    .unwrap();
    assert_eq!(plan.windows[0].budget, 10);
    assert_eq!(plan.windows[1].budget, 100);
    assert_eq!(plan.interval, Duration::from_micros(864_000_500));
}

#[test]
fn fractional_budget_rounds_the_interval_up() {
    // 25/s at 10% is 2.5 per second; a 400ms grid would put 3 probes into one second.
    assert_eq!(
        share_interval(limit("25/s"), Share::DEFAULT),
        Duration::from_millis(500)
    );
    assert_eq!(
        min_interval(limit("25/s"), Share::DEFAULT),
        Duration::from_millis(525)
    );
    assert_eq!(window_budget(limit("25/s"), Share::DEFAULT), 2);
}

#[test]
fn explicit_interval_at_the_bound_grows_by_the_guard() {
    let plan = build(
        &[limit("100/hour")],
        Share::DEFAULT,
        Some(Duration::from_secs(360)),
        DEFAULT,
    )
    .unwrap();
    assert_eq!(plan.interval, Duration::from_millis(360_005));
    assert_eq!(format_duration(plan.interval), "6m");
    assert_eq!(
        plan.source,
        IntervalSource::Share,
        "not the interval written"
    );
}

#[test]
fn explicit_interval_within_share_is_kept() {
    let plan = build(
        &[limit("100/hour")],
        Share::DEFAULT,
        Some(Duration::from_secs(600)),
        DEFAULT,
    )
    .unwrap();
    assert_eq!(plan.interval, Duration::from_secs(600));
    assert_eq!(plan.source, IntervalSource::Explicit);
}

#[test]
fn explicit_interval_over_share_is_rejected_with_numbers() {
    let err = build(
        &[limit("100/hour")],
        Share::DEFAULT,
        Some(Duration::from_secs(10)),
        DEFAULT,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("interval 10s sends up to 360 probes per 1h"),
        "{message}"
    );
    assert!(
        message.contains("the budget is 10 per 1h (10% of 100/1h)"),
        "{message}"
    );
    assert!(message.contains("at least 6m"), "{message}");
}

#[test]
fn endpoint_without_limit_needs_interval() {
    assert_eq!(
        build(&[], Share::DEFAULT, None, DEFAULT).unwrap_err(),
        PlanError::IntervalRequired
    );
    let plan = build(&[], Share::DEFAULT, Some(Duration::from_secs(300)), DEFAULT).unwrap();
    assert_eq!(plan.interval, Duration::from_secs(300));
    assert!(plan.windows.is_empty());
}

#[test]
fn tiny_interval_is_rejected() {
    let err = build(
        &[],
        Share::DEFAULT,
        Some(Duration::from_millis(10)),
        DEFAULT,
    )
    .unwrap_err();
    assert_eq!(err, PlanError::IntervalTooSmall("10ms".to_owned()));
}

#[test]
fn tiny_interval_is_shown_unrounded() {
    let table = [
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_micros(99_999), "99ms 999us"),
        (Duration::from_nanos(99_999_999), "99ms 999us 999ns"),
    ];
    for (interval, shown) in table {
        let err = build(&[], Share::DEFAULT, Some(interval), DEFAULT).unwrap_err();
        assert_eq!(err, PlanError::IntervalTooSmall(shown.to_owned()));
    }
}

#[test]
fn full_share_does_not_advise_raising_it() {
    let table = [(100, false), (99, true), (10, true)];
    for (percent, advised) in table {
        let err = build(
            &[limit("100/hour")],
            share(percent),
            Some(Duration::from_secs(3)),
            DEFAULT,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("set the interval to at least"),
            "{message}"
        );
        assert_eq!(
            message.contains("raise probe_share"),
            advised,
            "{percent}%: {message}"
        );
    }
}

#[test]
fn share_interval_above_maximum_is_rejected() {
    let tiny = Share::from_ppm(1).unwrap();
    let table = [
        (vec![limit("1/day")], tiny, "1/1d"),
        (vec![limit("1/365d")], Share::DEFAULT, "1/365d"),
        (
            vec![limit("100/hour"), limit("1/365d")],
            Share::DEFAULT,
            "1/365d",
        ),
        (vec![limit("1/366d")], share(100), "1/366d"),
    ];
    for (limits, share, worst) in table {
        let err = build(&limits, share, None, DEFAULT).unwrap_err();
        let PlanError::IntervalTooLong { limit, max, .. } = &err else {
            panic!("{limits:?} at {share}: {err:?}");
        };
        assert_eq!(limit.to_string(), worst);
        assert_eq!(max, "365d");
        let message = err.to_string();
        assert!(
            message.contains("longer than the maximum interval"),
            "{message}"
        );
        assert_eq!(
            message.contains("raise probe_share"),
            share.ppm() < PPM,
            "{message}"
        );
    }
}

#[test]
fn share_interval_at_maximum_is_accepted() {
    // 1/365d at 100% allows one probe per 365 days, the maximum. The planned interval then grows
    // by the 50ms guard, as an explicit interval of 365 days does.
    let plan = build(&[limit("1/365d")], share(100), None, DEFAULT).unwrap();
    assert_eq!(plan.interval, MAX_INTERVAL + GUARD);
    assert_eq!(plan.source, IntervalSource::Share);

    let explicit = build(&[limit("1/365d")], share(100), Some(MAX_INTERVAL), DEFAULT).unwrap();
    assert_eq!(explicit.interval, MAX_INTERVAL + GUARD);
}

#[test]
fn probes_per_day_follows_interval() {
    let plan = build(&[limit("100/hour")], share(10), None, DEFAULT).unwrap();
    assert!((plan.probes_per_day() - 240.0).abs() < 0.01);
}

proptest! {
    #[test]
    fn grid_at_min_interval_stays_within_budget(
        count in 1u64..100_000,
        window_ms in 1u64..(400 * 86_400_000),
        ppm in 1u64..=1_000_000,
    ) {
        let limit = RateLimit { limit: count, window: Duration::from_millis(window_ms) };
        let share = Share::from_ppm(ppm).unwrap();
        let interval = min_interval(limit, share);
        let budget = window_budget(limit, share);
        prop_assert!(probes_in_window(interval, limit.window + GUARD) <= budget);
        // Long-run rate: interval × L × share ≥ W.
        let lhs = interval.as_nanos() * u128::from(count) * u128::from(ppm);
        let rhs = limit.window.as_nanos() * u128::from(PPM);
        prop_assert!(lhs >= rhs);
    }
}
