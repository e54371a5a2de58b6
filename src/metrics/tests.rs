use std::collections::BTreeSet;

use super::*;
use crate::config;
use crate::secret::SecretSource;

fn endpoint() -> Endpoint {
    endpoints().swap_remove(0)
}

/// Returns endpoint `e`, and endpoint `credit` that reads a credit balance.
fn endpoints() -> Vec<Endpoint> {
    let text = "apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: e, path: e, interval: 10s }\n      - { name: credit, path: c, interval: 10s, credit: { json_path: $.credit } }\n";
    let config = config::parse(text, "test.yml", &SecretSource::from_env()).unwrap();
    config.endpoints
}

fn scrape(metrics: &Metrics) -> String {
    String::from_utf8(metrics.encode().1).unwrap()
}

/// Writes a scrape in chunks of about `chunk_size` bytes and returns every chunk.
fn scrape_chunks(metrics: &Metrics, chunk_size: usize) -> Vec<Vec<u8>> {
    let mut scrape = metrics.scrape_in_chunks(chunk_size);
    let mut chunks = Vec::new();
    loop {
        let next = scrape.next_chunks();
        if next.is_empty() {
            return chunks;
        }
        chunks.extend(next.iter().map(|chunk| chunk.as_ref().to_vec()));
    }
}

/// Returns the value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[test]
fn labelled_counters_start_at_zero_on_registration() {
    let metrics = Metrics::new().unwrap();
    let _handles = metrics.endpoint(&endpoint());
    let text = scrape(&metrics);

    for reason in HeaderError::REASONS {
        let series = format!(
            "ratewatch_header_parse_errors_total{{api=\"sim\",endpoint=\"e\",reason=\"{reason}\"}}"
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    assert!(
        !text.contains("ratewatch_credit_extraction_errors_total{"),
        "an endpoint without credit has credit error series"
    );
    for form in ["seconds", "http_date"] {
        let series =
            format!("ratewatch_retry_after_total{{api=\"sim\",endpoint=\"e\",form=\"{form}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    let series = "ratewatch_rate_limited_unexpected_total{api=\"sim\",endpoint=\"e\"}";
    assert_eq!(sample(&text, series), Some(0.0), "{series}");
}

#[test]
fn chunks_join_to_encode() {
    let metrics = Metrics::new().unwrap();
    // Endpoint `e` has no credit series, so chunks are cut next to families without samples,
    // whose header must not be written.
    let handles: Vec<EndpointMetrics> = endpoints().iter().map(|e| metrics.endpoint(e)).collect();
    handles[0].result(
        Class::Ok,
        Some(200),
        true,
        Duration::from_millis(20),
        UNIX_EPOCH,
    );
    let whole = metrics.encode().1;
    assert!(
        !String::from_utf8_lossy(&whole)
            .contains("ratewatch_credit_balance{api=\"sim\",endpoint=\"e\"}"),
        "endpoint e has a credit series"
    );

    for size in [1, 64, 4096] {
        let chunks = scrape_chunks(&metrics, size);
        assert_eq!(chunks.concat(), whole, "chunk size {size}");
        let (last, full) = chunks.split_last().unwrap();
        assert!(!last.is_empty(), "chunk size {size}: empty last chunk");
        for chunk in full {
            assert!(
                chunk.len() >= size,
                "chunk size {size}: a chunk before the last has {} bytes",
                chunk.len()
            );
        }
    }
}

#[test]
fn chunks_end_soon_after_size() {
    let metrics = Metrics::new().unwrap();
    let text = (0..200).fold(
        String::from("apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n"),
        |text, i| text + &format!("      - {{ name: e{i}, path: p{i}, interval: 10s }}\n"),
    );
    let config = config::parse(&text, "test.yml", &SecretSource::from_env()).unwrap();
    let _handles: Vec<EndpointMetrics> = config
        .endpoints
        .iter()
        .map(|e| metrics.endpoint(e))
        .collect();

    let size = 16 << 10;
    let chunks = scrape_chunks(&metrics, size);
    assert!(chunks.len() > 10, "only {} chunks", chunks.len());
    // A chunk ends at the first check past `size`. Between two checks the writer writes at
    // most one endpoint's samples of one family, or one family without per-endpoint series,
    // each far below 2 KiB here.
    for chunk in &chunks {
        assert!(
            chunk.len() < size + 2048,
            "a chunk has {} bytes for a chunk size of {size}",
            chunk.len()
        );
    }
}

#[test]
fn reset_static_drops_removed_credit_series() {
    let metrics = Metrics::new().unwrap();
    let [_, with_credit] = &endpoints()[..] else {
        unreachable!("two endpoints")
    };
    let handles = metrics.endpoint(with_credit);
    handles.credit(42.0, SystemTime::now());
    let balance = "ratewatch_credit_balance{api=\"sim\",endpoint=\"credit\"}";
    assert_eq!(sample(&scrape(&metrics), balance), Some(42.0));

    // The same endpoint, reloaded with its credit source kept, keeps its credit series.
    metrics.reset_static(with_credit);
    let text = scrape(&metrics);
    assert_eq!(sample(&text, balance), Some(42.0), "credit kept");

    let mut without_credit = with_credit.clone();
    without_credit.credit = None;
    metrics.reset_static(&without_credit);
    let _handles = metrics.endpoint(&without_credit);
    let text = scrape(&metrics);
    assert_eq!(sample(&text, balance), None, "credit removed");
    assert!(
        !text.contains("ratewatch_credit_extraction_errors_total{api=\"sim\",endpoint=\"credit\""),
        "credit error series left after the credit source was removed"
    );
    assert!(
        !text.contains(
            "ratewatch_credit_last_update_timestamp_seconds{api=\"sim\",endpoint=\"credit\""
        ),
        "credit update time left after the credit source was removed"
    );
}

#[test]
fn credit_errors_start_only_with_credit() {
    let metrics = Metrics::new().unwrap();
    let _handles: Vec<EndpointMetrics> = endpoints().iter().map(|e| metrics.endpoint(e)).collect();
    let text = scrape(&metrics);
    for reason in CreditError::REASONS {
        let series = format!(
            "ratewatch_credit_extraction_errors_total{{api=\"sim\",endpoint=\"credit\",reason=\"{reason}\"}}"
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    assert!(
        !text.contains("ratewatch_credit_extraction_errors_total{api=\"sim\",endpoint=\"e\""),
        "endpoint e reads no credit"
    );
}

#[test]
fn header_error_reasons_list_every_label() {
    let d = Duration::from_secs(1);
    let errors = [
        HeaderError::RetryAfterInvalid {
            value: String::new(),
        },
        HeaderError::RetryAfterClamped {
            value: String::new(),
            ceiling: d,
        },
        HeaderError::RatelimitInvalid {
            header: "RateLimit",
            value: String::new(),
            expected: "",
        },
        HeaderError::RatelimitPolicyInvalid {
            value: String::new(),
        },
        HeaderError::XRatelimitInvalid {
            header: "X-RateLimit-Limit",
            value: String::new(),
            expected: "",
        },
        HeaderError::ResetClamped {
            value: String::new(),
            used: d,
        },
        HeaderError::TooManyPolicies { count: 9 },
        HeaderError::PolicyNameInvalid {
            name: String::new(),
        },
    ];
    let labels: BTreeSet<&str> = errors.iter().map(HeaderError::as_str).collect();
    let listed: BTreeSet<&str> = HeaderError::REASONS.into_iter().collect();
    assert_eq!(labels, listed);
    assert_eq!(listed.len(), HeaderError::REASONS.len());
}

#[test]
fn credit_error_reasons_list_every_label() {
    let path = String::from("$.credit");
    let errors = [
        CreditError::InvalidJson {
            detail: String::new(),
        },
        CreditError::ErrorBody {
            path: path.clone(),
            excerpt: String::new(),
        },
        CreditError::PathNotFound { path: path.clone() },
        CreditError::MultipleValues {
            path: path.clone(),
            count: 2,
        },
        CreditError::Null { path: path.clone() },
        CreditError::WrongType {
            path: path.clone(),
            kind: "boolean",
        },
        CreditError::NotANumber {
            path: path.clone(),
            value: String::new(),
        },
        CreditError::NanOrInfinite {
            path: path.clone(),
            value: String::new(),
        },
        CreditError::LocaleFormat {
            path,
            value: String::new(),
        },
    ];
    let labels: BTreeSet<&str> = errors.iter().map(CreditError::reason).collect();
    let listed: BTreeSet<&str> = CreditError::REASONS.into_iter().collect();
    assert_eq!(labels, listed);
    assert_eq!(listed.len(), CreditError::REASONS.len());
}

#[test]
fn restore_sets_last_result_series() {
    let metrics = Metrics::new().unwrap();
    let handles = metrics.endpoint(&endpoint());
    handles.restore(&LastResult {
        success: Some(false),
        status_code: Some(503),
        last_run: Some(1_800_000_000.0),
        last_success: Some(1_799_990_000.0),
        credit: Some(75.5),
        credit_updated: Some(1_799_999_000.0),
    });
    let text = scrape(&metrics);
    let labels = "{api=\"sim\",endpoint=\"e\"}";
    let value = |name: &str| sample(&text, &format!("{name}{labels}"));
    assert_eq!(
        value("ratewatch_probe_last_run_timestamp_seconds"),
        Some(1_800_000_000.0)
    );
    assert_eq!(
        value("ratewatch_probe_last_success_timestamp_seconds"),
        Some(1_799_990_000.0)
    );
    assert_eq!(value("ratewatch_probe_success"), Some(0.0));
    assert_eq!(value("ratewatch_probe_http_status_code"), Some(503.0));
    assert_eq!(value("ratewatch_credit_balance"), Some(75.5));
    assert_eq!(
        value("ratewatch_credit_last_update_timestamp_seconds"),
        Some(1_799_999_000.0)
    );
}

#[test]
fn restore_without_status_code_leaves_it_absent() {
    let metrics = Metrics::new().unwrap();
    let handles = metrics.endpoint(&endpoint());
    handles.restore(&LastResult {
        success: Some(false),
        status_code: None,
        last_run: Some(1_800_000_000.0),
        last_success: None,
        credit: None,
        credit_updated: None,
    });
    let text = scrape(&metrics);
    assert!(
        !text.contains("ratewatch_probe_http_status_code{"),
        "status code set after a transport failure"
    );
    let series = "ratewatch_probe_success{api=\"sim\",endpoint=\"e\"}";
    assert_eq!(sample(&text, series), Some(0.0));
    assert!(
        !text.contains("ratewatch_credit_balance{"),
        "credit balance set without a saved one"
    );
}

mod model;

mod matches_model {
    //! The compact series against the labelled families they replaced: the same calls must
    //! give the same scrape, byte for byte.

    use proptest::prelude::*;

    use super::*;

    /// The API and endpoint names of one endpoint of `variants`, with every character that the
    /// text format escapes in a label value, and a multi-byte one. The config rejects such
    /// names, but `Metrics` takes any.
    const ODD_API: &str = "b\\a\"c\nk";
    const ODD_NAME: &str = "q\"\\\n\u{e9}";
    /// A `policy` label value with the same characters.
    const ODD_POLICY: &str = "\"p\\\n";

    /// Endpoints of three APIs, with and without credit, windows and a non-default method, then
    /// changed versions of the same endpoints for reloads.
    fn variants() -> Vec<Endpoint> {
        let text = "apis:
  - name: sim
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: e, path: e, interval: 10s }
      - { name: credit, path: c, interval: 10s, credit: { json_path: $.credit } }
      - { name: post, path: p, method: POST, expect: [400], rate_limit: [100/hour, 1000/day] }
  - name: alpha
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: z, path: z, rate_limit: 20/s }
  - name: odd
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: odd, path: o, rate_limit: 10/minute }
";
        let changed = "apis:
  - name: sim
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: e, path: e, interval: 20s, rate_limit: 100/m }
      - { name: credit, path: c, interval: 10s }
      - { name: post, path: p, rate_limit: [100/hour, 5000/day] }
  - name: alpha
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: z, path: z, method: HEAD, rate_limit: 20/s, credit: { json_path: $.credit } }
  - name: odd
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: odd, path: o, rate_limit: [10/minute, 100/hour], credit: { json_path: $.c } }
";
        let source = SecretSource::from_env();
        let mut endpoints = config::parse(text, "test.yml", &source).unwrap().endpoints;
        endpoints.extend(
            config::parse(changed, "test.yml", &source)
                .unwrap()
                .endpoints,
        );
        for endpoint in &mut endpoints {
            if endpoint.api == "odd" {
                endpoint.api = ODD_API.to_owned();
                endpoint.name = ODD_NAME.to_owned();
            }
        }
        endpoints
    }

    /// One call on an endpoint's handles.
    #[derive(Clone, Debug)]
    enum Call {
        Sent(u64),
        Result(usize, Option<u16>, bool, u64, u64),
        Restore(LastResult),
        Ready(bool),
        Skipped(usize, u64),
        NextRun(u64),
        BudgetUsed(Vec<u64>),
        PausedUntil(Option<u64>),
        RetryAfter(usize),
        Unexpected,
        Upstream(&'static str, Option<u64>, Option<u64>, Option<u64>),
        HeaderError(usize),
        Credit(f64, u64),
        CreditError(usize),
    }

    /// One step: a call on `Metrics`, or a call on the handles of one endpoint.
    #[derive(Clone, Debug)]
    enum Step {
        Register(usize),
        ResetStatic(usize),
        Remove(usize),
        Call(usize, Call),
    }

    fn time(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn call() -> impl Strategy<Value = Call> {
        let millis = 0..2_000_000_000_000u64;
        // Bucket bounds, values between them, and values past the last one, in microseconds.
        let duration = prop_oneof![Just(5_000u64), Just(60_000_000), Just(0), 0..120_000_000u64];
        // Codes of two and four digits sort differently as text than as numbers.
        let status = proptest::option::of(prop_oneof![
            Just(200u16),
            Just(429),
            100..600u16,
            Just(99),
            Just(1000),
        ]);
        // Gauge values that `Display` for `f64` writes in a special form.
        let balance = prop_oneof![
            4 => -1e6..1e9f64,
            1 => prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-0.0),
                Just(f64::MAX),
                Just(f64::MIN_POSITIVE),
                Just(1e21),
                Just(1e-7),
            ],
        ];
        let last = (
            proptest::option::of(any::<bool>()),
            proptest::option::of(100..600u16),
            proptest::option::of(0.0..2e9f64),
            proptest::option::of(0.0..2e9f64),
            proptest::option::of(balance.clone()),
            proptest::option::of(0.0..2e9f64),
        )
            .prop_map(
                |(success, status_code, last_run, last_success, credit, credit_updated)| {
                    LastResult {
                        success,
                        status_code,
                        last_run,
                        last_success,
                        credit,
                        credit_updated,
                    }
                },
            );
        let count = || proptest::option::of(0..u64::MAX);
        prop_oneof![
            millis.clone().prop_map(Call::Sent),
            (
                0..Class::ALL.len(),
                status,
                any::<bool>(),
                duration,
                millis.clone()
            )
                .prop_map(|(c, s, ok, d, f)| Call::Result(c, s, ok, d, f)),
            last.prop_map(Call::Restore),
            any::<bool>().prop_map(Call::Ready),
            (0..SkipReason::ALL.len(), 0..1000u64).prop_map(|(r, n)| Call::Skipped(r, n)),
            millis.clone().prop_map(Call::NextRun),
            proptest::collection::vec(0..u64::MAX, 0..4).prop_map(Call::BudgetUsed),
            proptest::option::of(millis.clone()).prop_map(Call::PausedUntil),
            (0..RetryAfterForm::ALL.len()).prop_map(Call::RetryAfter),
            Just(Call::Unexpected),
            (
                prop_oneof![Just("default"), Just("burst"), Just(ODD_POLICY)],
                count(),
                count(),
                proptest::option::of(millis.clone())
            )
                .prop_map(|(p, l, r, t)| Call::Upstream(p, l, r, t)),
            (0..HeaderError::REASONS.len()).prop_map(Call::HeaderError),
            (balance, millis).prop_map(|(b, t)| Call::Credit(b, t)),
            (0..CreditError::REASONS.len()).prop_map(Call::CreditError),
        ]
    }

    fn step(endpoints: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0..endpoints).prop_map(Step::Register),
            1 => (0..endpoints).prop_map(Step::ResetStatic),
            1 => (0..endpoints).prop_map(Step::Remove),
            10 => (0..endpoints, call()).prop_map(|(e, c)| Step::Call(e, c)),
        ]
    }

    /// Both implementations side by side, with the current handles of each endpoint.
    struct Pair {
        endpoints: Vec<Endpoint>,
        compact: Metrics,
        model: model::Metrics,
        handles: Vec<(String, EndpointMetrics, model::EndpointMetrics)>,
    }

    impl Pair {
        fn new() -> Pair {
            Pair {
                endpoints: variants(),
                compact: Metrics::new().unwrap(),
                model: model::Metrics::new().unwrap(),
                handles: Vec::new(),
            }
        }

        fn apply(&mut self, step: &Step) {
            match step {
                Step::Register(i) => {
                    let endpoint = &self.endpoints[*i];
                    let key = endpoint.key();
                    self.handles.retain(|(known, _, _)| *known != key);
                    self.handles.push((
                        key,
                        self.compact.endpoint(endpoint),
                        self.model.endpoint(endpoint),
                    ));
                }
                Step::ResetStatic(i) => {
                    self.compact.reset_static(&self.endpoints[*i]);
                    self.model.reset_static(&self.endpoints[*i]);
                }
                Step::Remove(i) => {
                    let endpoint = &self.endpoints[*i];
                    let key = endpoint.key();
                    // A removed endpoint's task is stopped, so its handles are dropped.
                    self.handles.retain(|(known, _, _)| *known != key);
                    self.compact.remove_endpoint(&endpoint.api, &endpoint.name);
                    self.model.remove_endpoint(&endpoint.api, &endpoint.name);
                }
                Step::Call(i, call) => {
                    let key = self.endpoints[*i].key();
                    if let Some((_, compact, model)) =
                        self.handles.iter().find(|(known, _, _)| *known == key)
                    {
                        call_both(compact, model, call);
                    }
                }
            }
        }

        fn assert_same(&self) -> Result<(), TestCaseError> {
            let compact = scrape(&self.compact);
            let model = String::from_utf8(self.model.encode().1).unwrap();
            prop_assert_eq!(&compact, &model);
            // Chunks of one byte are cut at every point where a chunk can end.
            let chunked = String::from_utf8(scrape_chunks(&self.compact, 1).concat()).unwrap();
            prop_assert_eq!(chunked, model);
            Ok(())
        }
    }

    fn call_both(compact: &EndpointMetrics, model: &model::EndpointMetrics, call: &Call) {
        macro_rules! both {
            ($method:ident($($arg:expr),*)) => {{
                compact.$method($($arg),*);
                model.$method($($arg),*);
            }};
        }
        match call {
            Call::Sent(t) => both!(sent(time(*t))),
            Call::Result(class, status, success, micros, finished) => both!(result(
                Class::ALL[*class],
                *status,
                *success,
                Duration::from_micros(*micros),
                time(*finished)
            )),
            Call::Restore(last) => both!(restore(last)),
            Call::Ready(ready) => both!(set_ready(*ready)),
            Call::Skipped(reason, count) => both!(skipped(SkipReason::ALL[*reason], *count)),
            Call::NextRun(t) => both!(next_run(time(*t))),
            Call::BudgetUsed(used) => both!(budget_used(used)),
            Call::PausedUntil(t) => both!(paused_until(t.map(time))),
            Call::RetryAfter(form) => both!(retry_after(RetryAfterForm::ALL[*form])),
            Call::Unexpected => both!(unexpected_rate_limited()),
            Call::Upstream(policy, limit, remaining, reset) => {
                both!(upstream(policy, *limit, *remaining, reset.map(time)));
            }
            Call::HeaderError(reason) => both!(header_error(HeaderError::REASONS[*reason])),
            Call::Credit(balance, t) => both!(credit(*balance, time(*t))),
            Call::CreditError(reason) => both!(credit_error(CreditError::REASONS[*reason])),
        }
    }

    #[test]
    fn every_call_matches_model() {
        let mut pair = Pair::new();
        let count = pair.endpoints.len();
        let mut steps: Vec<Step> = (0..count / 2).map(Step::Register).collect();

        let calls = [
            Call::Sent(1_800_000_000_123),
            Call::Result(0, Some(200), true, 5_000, 1_800_000_000_500),
            Call::Result(3, Some(503), false, 61_000_000, 1_800_000_001_000),
            Call::Result(5, None, false, 70, 1_800_000_002_000),
            Call::Result(1, Some(1000), false, 70, 1_800_000_002_100),
            Call::Result(1, Some(99), false, 70, 1_800_000_002_200),
            Call::Restore(LastResult {
                success: Some(true),
                status_code: Some(204),
                last_run: Some(1_799_999_000.5),
                last_success: None,
                credit: Some(12.25),
                credit_updated: Some(1_799_999_001.0),
            }),
            Call::Ready(false),
            Call::Skipped(1, 3),
            Call::NextRun(1_800_000_010_000),
            Call::BudgetUsed(vec![4, u64::MAX, 9]),
            Call::PausedUntil(Some(1_800_000_020_000)),
            Call::RetryAfter(1),
            Call::Unexpected,
            Call::Upstream("default", Some(100), None, Some(1_800_000_060_000)),
            Call::Upstream("burst", None, Some(7), None),
            Call::Upstream(ODD_POLICY, Some(u64::MAX), Some(0), None),
            Call::HeaderError(2),
            Call::Credit(41.25, 1_800_000_000_900),
            Call::CreditError(4),
        ];
        // The last credit balance of each endpoint, in the forms `Display` writes specially.
        let balances = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e21];
        for e in 0..count / 2 {
            steps.extend(calls.iter().map(|c| Step::Call(e, c.clone())));
            let balance = balances[e % balances.len()];
            steps.push(Step::Call(e, Call::Credit(balance, 1_800_000_001_000)));
        }

        // Before the first endpoint, every family with per-endpoint series has none.
        pair.assert_same().unwrap();
        for step in &steps {
            pair.apply(step);
            pair.assert_same().unwrap();
        }

        // The calls reached the scrape: both implementations did not merely stay empty.
        let text = scrape(&pair.compact);
        let odd = "ratewatch_probe_http_responses_total{api=\"b\\\\a\\\"c\\nk\",code=\"1000\",endpoint=\"q\\\"\\\\\\n\u{e9}\"}";
        assert_eq!(sample(&text, odd), Some(1.0), "{odd}");
        let credit = |endpoint: &str| {
            let series =
                format!("ratewatch_credit_balance{{api=\"sim\",endpoint=\"{endpoint}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(&series))
                .map(str::to_owned)
        };
        assert_eq!(credit("e").as_deref(), Some("NaN"));
        assert_eq!(credit("credit").as_deref(), Some("inf"));
        assert_eq!(credit("post").as_deref(), Some("-inf"));

        // Reload every endpoint into its changed version, then remove one of them.
        let mut reloads = Vec::new();
        for e in count / 2..count {
            reloads.push(Step::ResetStatic(e));
            reloads.push(Step::Register(e));
            reloads.push(Step::Call(e, Call::BudgetUsed(vec![1, 2])));
            reloads.push(Step::Call(e, Call::CreditError(0)));
            reloads.push(Step::Call(e, Call::CreditError(4)));
        }
        reloads.push(Step::Remove(0));
        for step in &reloads {
            pair.apply(step);
            pair.assert_same().unwrap();
        }

        let text = scrape(&pair.compact);
        let bucket =
            "ratewatch_probe_duration_seconds_bucket{api=\"sim\",endpoint=\"post\",le=\"0.005\"}";
        assert_eq!(sample(&text, bucket), Some(4.0), "{bucket}");
        let remaining = "ratewatch_upstream_rate_limit_remaining{api=\"sim\",endpoint=\"post\",policy=\"burst\"}";
        assert_eq!(sample(&text, remaining), Some(7.0), "{remaining}");

        // Families whose last series went away are left out, as `Registry::gather` leaves them.
        for e in 0..count {
            pair.apply(&Step::Remove(e));
            pair.assert_same().unwrap();
        }
        assert!(
            !scrape(&pair.compact).contains("endpoint=\""),
            "series left after every endpoint was removed"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn random_calls_match_model(
            steps in proptest::collection::vec(step(variants().len()), 1..60)
        ) {
            let mut pair = Pair::new();
            for step in &steps {
                pair.apply(step);
            }
            pair.assert_same()?;
        }
    }

    #[test]
    fn removed_endpoint_ignores_old_handles() {
        let metrics = Metrics::new().unwrap();
        let endpoint = variants().swap_remove(0);
        let handles = metrics.endpoint(&endpoint);
        metrics.remove_endpoint(&endpoint.api, &endpoint.name);
        handles.result(Class::ALL[0], Some(200), true, Duration::ZERO, UNIX_EPOCH);
        handles.sent(UNIX_EPOCH);
        let text = scrape(&metrics);
        assert!(
            !text.contains("endpoint=\"e\""),
            "a removed endpoint shows again: {text}"
        );
    }
}
