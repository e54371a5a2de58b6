use super::*;

#[test]
fn key_before_returns_whole_key() {
    let cases = [
        ("      interval: ", Some("interval")),
        ("      - name: ", Some("name")),
        ("      - { name: a, interval: ", Some("interval")),
        ("      - { name: a, interval: [", Some("interval")),
        (
            "      X-Api-Key sk-canary-fff: ",
            Some("X-Api-Key sk-canary-fff"),
        ),
        (
            "      \"X-Broken sk-canary-ddd\": ",
            Some("X-Broken sk-canary-ddd"),
        ),
        ("      'a: b, c': ", Some("a: b, c")),
        ("      'it''s x': ", Some("it''s x")),
        ("      \"a\\\" b\": ", Some("a\\\" b")),
        ("      X-A,sk-canary x: ", Some("X-A,sk-canary x")),
        ("      { \"a, b\": 1, c d: ", Some("c d")),
        ("      ? explicit key: ", Some("explicit key")),
        ("      no colon ", None),
        ("      : ", None),
    ];
    for (before, key) in cases {
        assert_eq!(key_before(before).as_deref(), key, "{before}");
    }
}
