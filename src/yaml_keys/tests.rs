use super::*;

/// The key found at a position: its parents, the key and the value.
type Found<'a> = Option<(&'a [&'a str], &'a str, Option<&'a str>)>;

/// Checks each case: a text, a line and column in it, and what [`key_at`] finds there.
fn check_all(cases: &[(&str, (u64, u64), Found)]) {
    for &(text, (line, column), expected) in cases {
        let found = key_at(text, line, column);
        let found = found
            .as_ref()
            .map(|f| (f.parents.clone(), f.key.as_str(), f.value.as_deref()));
        let expected = expected.map(|(parents, key, value)| {
            let parents: Vec<String> = parents.iter().map(|p| (*p).to_owned()).collect();
            (parents, key, value)
        });
        assert_eq!(found, expected, "{text:?} at {line}:{column}");
    }
}

const ENDPOINT: &str = "apis:\n  - name: demo\n    endpoints:\n      - name: a\n        path: x\n";

#[test]
fn key_at_block_mappings() {
    let cases: [(&str, (u64, u64), Found); 9] = [
        (
            "http_server_config:\n  http2: maybe\n",
            (2, 10),
            Some((&["http_server_config"], "http2", Some("maybe"))),
        ),
        (
            "tls_server_config: 5\n",
            (1, 20),
            Some((&[], "tls_server_config", Some("5"))),
        ),
        // The keys of a list item share the parents of the list.
        (
            ENDPOINT,
            (5, 15),
            Some((&["apis", "endpoints"], "path", Some("x"))),
        ),
        (
            ENDPOINT,
            (4, 15),
            Some((&["apis", "endpoints"], "name", Some("a"))),
        ),
        // Blank and comment lines between a key and its parent are skipped.
        (
            "a:\n\n  # b: c\n  d: 1\n",
            (4, 6),
            Some((&["a"], "d", Some("1"))),
        ),
        // A key with a space in it is returned whole: a word of it may be a secret.
        (
            "headers:\n  X-Api-Key sk-canary-fff: [1]\n",
            (2, 28),
            Some((&["headers"], "X-Api-Key sk-canary-fff", Some("[1]"))),
        ),
        (
            "headers:\n  \"X-Broken sk-canary-ddd\": 1\n",
            (2, 29),
            Some((&["headers"], "X-Broken sk-canary-ddd", Some("1"))),
        ),
        // A key with a value on its line is not the parent of the lines below it.
        ("a: 1\n  b: 2\n", (2, 6), Some((&[], "b", Some("2")))),
        ("", (1, 1), None),
    ];
    check_all(&cases);
}

#[test]
fn key_at_missing_value_at_colon() {
    // serde-saphyr places a missing value at the colon before it.
    let cases: [(&str, (u64, u64), Found); 3] = [
        (
            "headers:\n  X-A:\n",
            (2, 6),
            Some((&["headers"], "X-A", None)),
        ),
        ("a:\n  b: { c: }\n", (2, 9), Some((&["a", "b"], "c", None))),
        ("a:\n  b: # no value\n", (2, 4), Some((&["a"], "b", None))),
    ];
    check_all(&cases);
}

#[test]
fn key_at_flow_collections() {
    let item = "- { name: a, path: x, interval: 1m, expect: ok }";
    let quoted = "- { name: a, path: x, interval: 1m, expect: 'ok, }' }";
    let nested = "- { name: a, path: x, interval: { a: [1, 2] } }";
    let cases: [(&str, (u64, u64), Found); 11] = [
        (item, (1, 45), Some((&[], "expect", Some("ok")))),
        (quoted, (1, 45), Some((&[], "expect", Some("'ok, }'")))),
        (
            nested,
            (1, 33),
            Some((&[], "interval", Some("{ a: [1, 2] }"))),
        ),
        (nested, (1, 38), Some((&["interval"], "a", Some("[1, 2]")))),
        // Inside a list, the value is the item at the position.
        (
            "expect: [true]\n",
            (1, 10),
            Some((&[], "expect", Some("true"))),
        ),
        (
            "expect: [200, true]\n",
            (1, 15),
            Some((&[], "expect", Some("true"))),
        ),
        (
            "interval: [1]\n",
            (1, 11),
            Some((&[], "interval", Some("[1]"))),
        ),
        // The keys of the flow mappings around a key are its parents.
        (
            "http_server_config: { http2: perhaps }\n",
            (1, 30),
            Some((&["http_server_config"], "http2", Some("perhaps"))),
        ),
        (
            "http_server_config:\n  headers: { X-A: [1] }\n",
            (2, 19),
            Some((&["http_server_config", "headers"], "X-A", Some("[1]"))),
        ),
        // A key inside a flow mapping is not a value.
        (
            "headers:\n  { X-A: 7 }\n",
            (2, 5),
            Some((&[], "headers", None)),
        ),
        (
            "auth: { bearer: x, sk-canary }\n",
            (1, 20),
            Some((&[], "auth", None)),
        ),
    ];
    check_all(&cases);
}

#[test]
fn key_at_block_lists() {
    let cases: [(&str, (u64, u64), Found); 5] = [
        // An item's key is the key of its list.
        (
            "expect:\n  - 200\n  - true\n",
            (3, 5),
            Some((&[], "expect", Some("true"))),
        ),
        (
            "expect:\n- true\n",
            (2, 3),
            Some((&[], "expect", Some("true"))),
        ),
        // A list where a scalar belongs has no one-line value.
        (
            "http_server_config:\n  http2:\n    - true\n",
            (3, 5),
            Some((&["http_server_config"], "http2", None)),
        ),
        // A mapping where a scalar belongs has none either, so its keys are never quoted.
        (
            "tls_server_config:\n  key_file:\n    -----BEGIN PRIVATE KEY-----MIIE: 1\n",
            (3, 5),
            Some((&["tls_server_config"], "key_file", None)),
        ),
        // A flow list continued on the next line belongs to the key that opens it.
        (
            "expect: [200,\n  true]\n",
            (2, 3),
            Some((&[], "expect", Some("true"))),
        ),
    ];
    check_all(&cases);
}

#[test]
fn key_at_comments_and_quotes() {
    let cases: [(&str, (u64, u64), Found); 6] = [
        (
            "a:\n  b: maybe # note\n",
            (2, 6),
            Some((&["a"], "b", Some("maybe"))),
        ),
        (
            "a:\n  b: \"x #y\" # z\n",
            (2, 6),
            Some((&["a"], "b", Some("\"x #y\""))),
        ),
        ("a: x#y\n", (1, 4), Some((&[], "a", Some("x#y")))),
        // A colon inside quotes ends no key.
        (
            "a:\n  c: 'it''s: ok'\n",
            (2, 6),
            Some((&["a"], "c", Some("'it''s: ok'"))),
        ),
        ("a: \"b: c\"\n", (1, 4), Some((&[], "a", Some("\"b: c\"")))),
        ("# comment: x\n", (1, 12), None),
    ];
    check_all(&cases);
}

#[test]
fn key_at_counts_characters() {
    // serde-saphyr counts columns in characters, not bytes.
    let cases: [(&str, (u64, u64), Found); 3] = [
        (
            "apis:\n  - { name: dééé, base_url: [x], endpoints: [] }\n",
            (2, 29),
            Some((&["apis"], "base_url", Some("[x]"))),
        ),
        (
            "http_server_config:\n  headers:\n    X-É: [1]\n",
            (3, 10),
            Some((&["http_server_config", "headers"], "X-É", Some("[1]"))),
        ),
        ("a: é\n", (1, 9), Some((&[], "a", None))),
    ];
    check_all(&cases);
}

#[test]
fn key_at_end_of_file() {
    // Past the last value, the key is the last one whose value is missing or left open.
    let cases: [(&str, (u64, u64), Found); 7] = [
        (
            "tls_server_config: [\n",
            (2, 1),
            Some((&[], "tls_server_config", Some("["))),
        ),
        (
            "tls_server_config: {\n  cert_file: [a],\n",
            (3, 1),
            Some((&[], "tls_server_config", Some("{"))),
        ),
        (
            "a:\n  b: [1]\n  c: { d: [2 ] }\n",
            (4, 1),
            Some((&[], "a", None)),
        ),
        ("a:\n  b:\n", (9, 1), Some((&["a"], "b", None))),
        ("a:\n  b:\n\n", (3, 1), Some((&["a"], "b", None))),
        ("a: 1\n", (2, 1), None),
        ("a:\n", (0, 0), None),
    ];
    check_all(&cases);
}

#[test]
fn found_key_path_and_parent() {
    let found = key_at("a:\n  b: { c: 1 }\n", 2, 12).unwrap();
    assert_eq!(found.path(), "a.b.c");
    assert_eq!(found.parent(), Some("b"));
    let root = key_at("a: 1\n", 1, 4).unwrap();
    assert_eq!(root.path(), "a");
    assert_eq!(root.parent(), None);
}

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

#[test]
fn flow_value_ends_at_item() {
    let cases = [
        ("ok }", "ok"),
        ("ok, b: 1 }", "ok"),
        ("'ok, }' }", "'ok, }'"),
        ("\"a \\\" ]\" ]", "\"a \\\" ]\""),
        ("'it''s' ]", "'it''s'"),
        ("{ a: [1, 2] } }", "{ a: [1, 2] }"),
        ("[1, [2]], 3 ]", "[1, [2]]"),
        ("it's ]", "it's"),
        ("open", "open"),
    ];
    for (rest, value) in cases {
        assert_eq!(flow_value(rest), value, "{rest}");
    }
}

#[test]
fn strip_comment_skips_quotes() {
    let cases = [
        ("a: b # c", "a: b "),
        ("# a: b", ""),
        ("  # a: b", "  "),
        ("a: b#c", "a: b#c"),
        ("a: \"b # c\" # d", "a: \"b # c\" "),
        ("a: 'b # c' # d", "a: 'b # c' "),
        ("a: 'it''s # x' # d", "a: 'it''s # x' "),
        ("a: it's # d", "a: it's "),
    ];
    for (source, content) in cases {
        assert_eq!(strip_comment(source), content, "{source}");
    }
}
