//! Property tests: no header set or body makes the parsers panic, return a wait beyond the
//! ceiling, break the label bounds, or return a non-finite credit.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json_path::JsonPath;

use super::{
    HeadroomConfig, MAX_POLICIES, MAX_POLICY_NAME_LEN, ResetForm, RetryAfter, extract_credit, pace,
    read_headers,
};

const NAMES: [&str; 10] = [
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
    "content-type",
];

/// Generates a header name from [`NAMES`] with each letter's case chosen at random.
fn header_name() -> impl Strategy<Value = HeaderName> {
    (0..NAMES.len(), any::<u64>()).prop_map(|(index, case_bits)| {
        let mixed: Vec<u8> = NAMES[index]
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if case_bits >> (i % 64) & 1 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect();
        HeaderName::from_bytes(&mixed).unwrap()
    })
}

/// Generates any bytes that `HeaderValue` accepts: tab, visible ASCII, space and obs-text.
fn any_value_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff];
    prop::collection::vec(byte, 0..300)
}

/// Generates values shaped like the real forms, so the parsers get past their first checks.
fn shaped_value() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..2_000_000_000_000).prop_map(|n| n.to_string()),
        (0u64..100_000, 0u32..1000).prop_map(|(s, f)| format!("{s}.{f}")),
        "[0-9]{1,400}",
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let name = prop_oneof![
        "[a-z][a-z0-9_]{0,8}",
        "[ -~]{0,80}".prop_map(|s| format!("{s:?}")),
    ];
    let member = (name, number.clone(), number.clone(), number.clone())
        .prop_map(|(name, a, b, c)| format!("{name};q={a};w={b};r={c};t={a}"));
    prop_oneof![
        number.clone(),
        prop::collection::vec(member, 0..12).prop_map(|members| members.join(", ")),
        (number.clone(), number.clone(), number.clone())
            .prop_map(|(a, b, c)| format!("limit={a}, remaining={b}, reset={c}")),
        (number.clone(), number).prop_map(|(a, b)| format!("{a}, {a};w={b}")),
        (0u64..253_402_300_000).prop_map(|seconds| {
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        }),
    ]
    .prop_map(String::into_bytes)
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    let value = prop_oneof![any_value_bytes(), shaped_value()];
    prop::collection::vec((header_name(), value), 0..40).prop_map(|lines| {
        let mut map = HeaderMap::new();
        for (name, bytes) in lines {
            map.append(name, HeaderValue::from_bytes(&bytes).unwrap());
        }
        map
    })
}

fn config() -> impl Strategy<Value = HeadroomConfig> {
    let form = prop_oneof![
        Just(ResetForm::Auto),
        Just(ResetForm::DeltaSeconds),
        Just(ResetForm::UnixSeconds),
        Just(ResetForm::UnixMillis),
    ];
    let ceiling = prop_oneof![
        (0u64..200_000).prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ];
    (ceiling, form).prop_map(|(retry_after_ceiling, reset_form)| HeadroomConfig {
        retry_after_ceiling,
        reset_form,
    })
}

fn now() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..4_000_000_000).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        (0u64..1_000_000).prop_map(|s| SystemTime::UNIX_EPOCH - Duration::from_secs(s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn read_headers_respects_bounds(
        headers in header_map(),
        now in now(),
        config in config(),
        planned_ms in 0u64..10_000_000,
    ) {
        let report = read_headers(&headers, now, &config);
        let ceiling = config.retry_after_ceiling;

        if let Some(RetryAfter::Delay { wait, clamped, .. }) = report.retry_after {
            prop_assert!(wait <= ceiling);
            prop_assert!(!clamped || wait == ceiling);
        }
        prop_assert!(report.policies.len() <= MAX_POLICIES);
        for policy in &report.policies {
            if let Some(reset) = policy.reset_after {
                prop_assert!(reset <= ceiling);
                if let Some(window) = policy.window {
                    prop_assert!(reset <= window);
                }
            }
            prop_assert!(policy.window != Some(Duration::ZERO));
            if let Some(name) = &policy.policy {
                prop_assert!(!name.is_empty() && name.len() <= MAX_POLICY_NAME_LEN);
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'.' | b':' | b'-')));
            }
            if let Some(interval) = policy.interval() {
                prop_assert!(interval <= ceiling);
            }
        }
        let mut reasons: Vec<_> = report.errors.iter().map(super::HeaderError::as_str).collect();
        let count = reasons.len();
        reasons.dedup();
        prop_assert_eq!(reasons.len(), count);
        for error in &report.errors {
            prop_assert!(error.to_string().is_ascii());
        }

        let planned = Duration::from_millis(planned_ms);
        if let Some(interval) = pace(&report, planned) {
            prop_assert!(interval >= planned);
            prop_assert!(interval <= planned.max(ceiling));
        }
        if let Some(chosen) = report.most_restrictive() {
            prop_assert!(chosen.interval().is_some());
        }
    }

    #[test]
    fn extract_credit_is_finite_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let path = JsonPath::parse("$.credit").unwrap();
        match extract_credit(&body, &path) {
            Ok(value) => prop_assert!(value.is_finite()),
            Err(error) => prop_assert!(!error.reason().is_empty()),
        }
    }

    #[test]
    fn extract_credit_is_finite_on_json_shapes(
        value in prop_oneof![
            any::<f64>().prop_filter("JSON has no NaN or infinity", |v| v.is_finite())
                .prop_map(|v| v.to_string()),
            "[0-9]{1,500}",
            "-?[0-9]{1,5}(\\.[0-9]{0,4})?([eE][+-]?[0-9]{1,4})?",
            "\"[ -~]{0,40}\"",
            "\"[0-9,. ]{0,20}\"",
            Just("null".to_owned()),
            Just("\"NaN\"".to_owned()),
            Just("\"1e999\"".to_owned()),
            Just("{\"credit\": 1}".to_owned()),
        ],
        error_member in any::<bool>(),
    ) {
        let error = if error_member { r#""error": "x", "# } else { "" };
        let body = format!("{{{error}\"credit\": {value}}}");
        let path = JsonPath::parse("$.credit").unwrap();
        match extract_credit(body.as_bytes(), &path) {
            Ok(credit) => prop_assert!(credit.is_finite()),
            Err(error) => {
                prop_assert!(error.to_string().is_ascii());
            }
        }
    }
}
