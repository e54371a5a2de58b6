use super::*;

const CANARY: &str = "canary-secret-4f1c9b";
const CANARY_ENV: &str = "RATEWATCH_CONFIG_TEST_CANARY";

fn secrets() -> SecretSource {
    SecretSource::from_env().with_fallback(CANARY_ENV, CANARY)
}

fn parse_ok(text: &str) -> Config {
    match parse(text, "test.yml", &secrets()) {
        Ok(config) => config,
        Err(e) => panic!("config rejected:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "test.yml", &secrets()) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn one_problem(text: &str) -> Problem {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

const MINIMAL: &str = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/api
    auth:
      bearer: { env: RATEWATCH_CONFIG_TEST_CANARY }
    endpoints:
      - name: model
        path: frontend-api/model/
        rate_limit: 20/s
";

#[test]
fn minimal_config_gets_defaults() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.global.probe_share, Share::DEFAULT);
    assert_eq!(config.global.interval, DEFAULT_INTERVAL);
    let endpoint = &config.endpoints[0];
    assert_eq!(
        endpoint.url.as_str(),
        "http://127.0.0.1:9/api/frontend-api/model/"
    );
    assert_eq!(endpoint.method, Method::GET);
    assert_eq!(endpoint.timeout, DEFAULT_TIMEOUT);
    assert_eq!(endpoint.body_limit, DEFAULT_BODY_LIMIT);
    assert_eq!(endpoint.plan.interval, Duration::from_secs(30));
    assert!(endpoint.expect.matches(204));
    assert!(endpoint.expects_success());
    let (name, value) = &endpoint.headers[0];
    assert_eq!(name, http::header::AUTHORIZATION);
    assert_eq!(
        value,
        &HeaderText::Secret(Secret::new(format!("Bearer {CANARY}")))
    );
}

#[test]
fn unknown_key_names_line_and_column() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - name: a\n        path: x\n        interval: 1m\n        colour: red\n";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (8, 9));
    assert!(
        problem
            .message
            .starts_with("unknown key colour; valid keys here: "),
        "{}",
        problem.message
    );
    assert!(
        problem.message.contains("rate_limit"),
        "lists valid keys: {}",
        problem.message
    );
}

#[test]
fn error_display_has_file_line_column() {
    let err = parse("apis: [", "ratewatch.yml", &secrets()).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("ratewatch.yml:1:"), "{message}");
}

#[test]
fn error_display_caps_problem_count() {
    let keys = (0..120)
        .map(|i| format!("  unknown{i}: 1\n"))
        .collect::<Vec<_>>()
        .concat();
    let text = format!("global:\n{keys}apis: []\n");
    let error = parse(&text, "many.yml", &secrets()).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &error else {
        panic!("unexpected error {error}");
    };
    assert_eq!(problems.len(), 120, "every problem is kept");
    let shown = error.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), MAX_SHOWN_PROBLEMS + 1, "{shown}");
    for (i, line) in lines[..MAX_SHOWN_PROBLEMS].iter().enumerate() {
        let start = format!("many.yml:{}:3: unknown key unknown{i};", i + 2);
        assert!(line.starts_with(&start), "{line}");
    }
    assert_eq!(
        lines[MAX_SHOWN_PROBLEMS],
        "... and 70 more problems; fix these and run ratewatch check again"
    );
}

#[test]
fn error_display_shows_few_problems_whole() {
    let keys = (0..MAX_SHOWN_PROBLEMS)
        .map(|i| format!("  unknown{i}: 1\n"))
        .collect::<Vec<_>>()
        .concat();
    let text = format!(
        "global:\n{keys}apis: [{{ name: a, base_url: 'http://127.0.0.1:9/', endpoints: [] }}]\n"
    );
    let error = parse(&text, "many.yml", &secrets()).unwrap_err();
    let shown = error.to_string();
    assert_eq!(shown.lines().count(), MAX_SHOWN_PROBLEMS, "{shown}");
    assert!(!shown.contains("more problem"), "{shown}");

    let one_more = Problem {
        line: 1,
        column: 1,
        message: "m".to_owned(),
    };
    let problems = vec![one_more; MAX_SHOWN_PROBLEMS + 1];
    let shown = Problems("f.yml", &problems).to_string();
    assert!(
        shown.ends_with("\n... and 1 more problem; fix these and run ratewatch check again"),
        "{shown}"
    );
}

#[test]
fn error_display_cuts_long_message() {
    let interval = "x".repeat(5000);
    let text = format!("global:\n  interval: {interval}\napis: []\n");
    let shown = parse(&text, "long.yml", &secrets())
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(lines[0].len() < 1100, "{} bytes", lines[0].len());
    assert!(
        lines[0].starts_with("long.yml:2:13: invalid interval \"xxx"),
        "{shown}"
    );
    assert!(
        lines[0].ends_with(" ... (message cut at 1000 characters)"),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("long.yml:3:7: apis is empty"),
        "{shown}"
    );
}

#[test]
fn alias_budget_note_follows_first_problem() {
    let text = "\
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
apis: []
";
    let error = parse(text, "laughs.yml", &secrets()).unwrap_err();
    let shown = error.to_string();
    let ConfigError::Invalid { problems, note, .. } = error else {
        panic!("unexpected error {shown}");
    };
    assert_eq!(places(&problems), vec![(1, 1)], "{shown}");
    let note = note.expect("a note that more problems may exist");
    assert!(
        note.starts_with("only the first problem is shown, because the check for more problems stopped at line 6, column 16: the file exceeds the YAML parser's limit on nodes here, because aliases (*name) repeat"),
        "{note}"
    );
    assert!(
        note.ends_with("Fix the problem above and run ratewatch check again to see any others"),
        "{note}"
    );
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with("laughs.yml:1:1: unknown key a;"),
        "{shown}"
    );
    assert_eq!(lines[1], note);
}

#[test]
fn later_syntax_error_note_names_it() {
    let text = "global:\n  colour: red\napis:\n  - name: \"unclosed\n";
    let error = parse(text, "t.yml", &secrets()).unwrap_err();
    let ConfigError::Invalid { problems, note, .. } = error else {
        panic!("unexpected error");
    };
    assert_eq!(places(&problems), vec![(2, 3)]);
    let note = note.expect("a note that more problems may exist");
    assert!(
        note.starts_with("only the first problem is shown, because the check for more problems stopped at line 4, column 11: unclosed quote"),
        "{note}"
    );

    let text = "apis:\n  - name: \"unclosed\n";
    let error = parse(text, "t.yml", &secrets()).unwrap_err();
    let ConfigError::Invalid { problems, note, .. } = error else {
        panic!("unexpected error");
    };
    assert_eq!(places(&problems), vec![(2, 11)]);
    assert_eq!(
        note.as_deref(),
        Some(
            "only this problem is shown, because the YAML cannot be read past it. Fix it and run ratewatch check again to see any others"
        )
    );
}

#[test]
fn complete_problem_list_has_no_note() {
    let text = "global:\n  colour: red\n  size: 5\napis: []\n";
    let error = parse(text, "t.yml", &secrets()).unwrap_err();
    let ConfigError::Invalid { problems, note, .. } = error else {
        panic!("unexpected error");
    };
    assert_eq!(places(&problems), vec![(2, 3), (3, 3)]);
    assert_eq!(note, None);
}

#[test]
fn bad_values_are_reported_where_written() {
    let text = "
global:
  probe_share: 150%
apis:
  - name: demo
    base_url: ftp://example.test/
    endpoints:
      - name: a
        path: /abs
        rate_limit: 10/fortnight
        method: FETCH
        expect: [200, 700]
        interval: soon
";
    let found = problems(text);
    let lines: Vec<u64> = found.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 6, 9, 10, 11, 12, 13], "{found:#?}");
    assert!(found[0].message.contains("invalid probe_share \"150%\""));
    assert!(found[1].message.contains("scheme \"ftp\" is not supported"));
    assert!(found[2].message.contains("without a leading '/'"));
    assert!(
        found[3]
            .message
            .contains("invalid rate limit \"10/fortnight\"")
    );
    assert!(
        found[4]
            .message
            .contains("invalid method \"FETCH\"; use one of GET")
    );
    assert!(found[5].message.contains("invalid expected status \"700\""));
    assert!(found[6].message.contains("invalid interval \"soon\""));
}

#[test]
fn explicit_interval_over_share_is_rejected_at_its_line() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: credit
        path: check-credit
        rate_limit: 100/hour
        interval: 10s
";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (9, 19));
    assert!(
        problem.message.contains("sends up to 360 probes per 1h"),
        "{}",
        problem.message
    );
    assert!(
        problem.message.contains("at least 6m"),
        "{}",
        problem.message
    );
}

#[test]
fn endpoint_without_limit_must_set_interval() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: inference
        path: v1/completions
        method: POST
        body: '{}'
";
    let problem = one_problem(text);
    assert!(
        problem.message.contains("must set interval"),
        "{}",
        problem.message
    );
}

#[test]
fn literal_credentials_are_rejected_without_echo() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    headers:
      Authorization: Bearer literal-token-value
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
";
    let problem = one_problem(text);
    assert!(
        problem.message.contains("must be a secret reference"),
        "{}",
        problem.message
    );
    assert!(!problem.message.contains("literal-token-value"));
}

#[test]
fn credentials_in_base_url_are_rejected_without_echo() {
    let text = "
apis:
  - name: demo
    base_url: https://user:pa55word@example.test/
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
";
    let problem = one_problem(text);
    assert!(
        problem.message.contains("user name or password"),
        "{}",
        problem.message
    );
    assert!(!problem.message.contains("pa55word"));
}

#[test]
fn url_credentials_never_echoed_in_shape_errors() {
    let cases = [
        ("base_url: [https://user:pa55word@example.test/]", (3, 15)),
        (
            "base_url: { https://user:pa55word@example.test/: x }",
            (3, 15),
        ),
        (
            "base_url:\n      - https://user:pa55word@example.test/",
            (4, 7),
        ),
    ];
    for (base_url, at) in cases {
        let text = format!(
            "apis:\n  - name: demo\n    {base_url}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), at, "{base_url}");
        assert!(
            problem.message.starts_with("invalid base_url: write text"),
            "{base_url}: {}",
            problem.message
        );
        assert!(!problem.message.contains("pa55word"), "{}", problem.message);
    }
}

#[test]
fn missing_secret_names_the_variable() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    headers:
      Cookie: { env: RATEWATCH_SURELY_UNSET_COOKIE }
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
";
    let problem = one_problem(text);
    assert!(
        problem
            .message
            .contains("RATEWATCH_SURELY_UNSET_COOKIE is not set"),
        "{}",
        problem.message
    );
}

#[test]
fn endpoint_headers_override_api_headers() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    headers:
      Accept: text/plain
      User-Agent: ratewatch-test
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        headers:
          accept: application/json
";
    let config = parse_ok(text);
    let headers = &config.endpoints[0].headers;
    assert_eq!(headers.len(), 2);
    let accept: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == http::header::ACCEPT)
        .collect();
    assert_eq!(accept.len(), 1);
    assert_eq!(
        accept[0].1,
        HeaderText::Literal("application/json".to_owned())
    );
}

#[test]
fn header_case_duplicates_are_rejected() {
    let endpoint = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        headers:
          cookie: { env: RATEWATCH_CONFIG_TEST_CANARY }
          Cookie: { env: RATEWATCH_CONFIG_TEST_CANARY }
";
    let api = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    headers:
      X-Team: monitoring
      x-team: canary-secret-4f1c9b
    endpoints:
      - { name: a, path: x, rate_limit: 1/s }
";
    let cases = [
        (
            endpoint,
            (11, 19),
            "header Cookie is given twice, also as cookie at line 10, column 19; header names are case-insensitive, so keep one of them",
        ),
        (
            api,
            (7, 15),
            "header x-team is given twice, also as X-Team at line 6, column 15; header names are case-insensitive, so keep one of them",
        ),
    ];
    for (text, at, message) in cases {
        let problem = one_problem(text);
        assert_eq!((problem.line, problem.column), at, "{text}");
        assert_eq!(problem.message, message);
        assert!(!problem.message.contains(CANARY), "{}", problem.message);
        assert!(
            !problem.message.contains("monitoring"),
            "{}",
            problem.message
        );
    }
}

#[test]
fn endpoint_authorization_replaces_api_auth() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    auth: { bearer: { env: RATEWATCH_CONFIG_TEST_CANARY } }
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        headers:
          authorization: { env: RATEWATCH_CONFIG_TEST_CANARY }
";
    let config = parse_ok(text);
    let headers = &config.endpoints[0].headers;
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].0, http::header::AUTHORIZATION);
    assert_eq!(
        headers[0].1,
        HeaderText::Secret(Secret::new(CANARY.to_owned()))
    );
}

#[test]
fn auth_and_authorization_header_conflict() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    auth: { bearer: { env: RATEWATCH_CONFIG_TEST_CANARY } }
    headers:
      authorization: { env: RATEWATCH_CONFIG_TEST_CANARY }
    endpoints:
      - { name: a, path: x, rate_limit: 1/s }
";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (5, 11));
    assert_eq!(
        problem.message,
        "auth sets the Authorization header, and headers sets it too as authorization at line 7, column 22; keep one of them"
    );
}

#[test]
fn several_windows_and_shares_apply() {
    let text = "
global:
  probe_share: 20%
  interval: 10s
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    probe_share: 5%
    endpoints:
      - name: a
        path: x
        rate_limit: [100/hour, 1000/day]
      - name: b
        path: y
        rate_limit: 100/hour
        probe_share: 50%
";
    let config = parse_ok(text);
    let a = &config.endpoints[0];
    assert_eq!(a.share.to_string(), "5%");
    assert_eq!(a.plan.windows[0].budget, 5);
    assert_eq!(a.plan.windows[1].budget, 50);
    assert_eq!(a.plan.interval, Duration::from_millis(1_728_001));
    let b = &config.endpoints[1];
    assert_eq!(b.plan.windows[0].budget, 50);
    assert_eq!(b.plan.interval, Duration::from_millis(72_001));
}

#[test]
fn duplicate_names_are_rejected() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
      - name: a
        path: y
        rate_limit: 1/s
";
    let problem = one_problem(text);
    assert_eq!(problem.line, 9);
    assert!(problem.message.contains("duplicate endpoint name \"a\""));
}

#[test]
fn timeout_not_shorter_than_interval_warns() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        interval: 5s
        timeout: 10s
";
    let config = parse_ok(text);
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("timeout 10s is not shorter than the interval 5s"),
        "{}",
        warnings[0]
    );
}

#[test]
fn expect_400_is_not_expecting_success() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: send-mail
        path: send-mail
        method: POST
        body: '{}'
        expect: [400]
        rate_limit: 1/day
";
    let config = parse_ok(text);
    assert!(!config.endpoints[0].expects_success());
    assert_eq!(
        config.endpoints[0].plan.interval,
        Duration::from_millis(864_000_050)
    );
}

#[test]
fn body_on_get_is_rejected() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        body: '{}'
        rate_limit: 1/s
";
    assert!(one_problem(text).message.contains("cannot carry a body"));
}

#[test]
fn bad_json_path_is_rejected() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        credit: { json_path: 'credit[' }
";
    assert!(
        one_problem(text)
            .message
            .contains("invalid credit.json_path")
    );
}

#[test]
fn example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ratewatch.yml");
    let secrets = SecretSource::from_env()
        .with_fallback("RATEWATCH_API_KEY", "k")
        .with_fallback("RATEWATCH_SESSION_COOKIE", "session=k");
    let config = load(&path, &secrets).unwrap();
    assert_eq!(config.endpoints.len(), 7);
}

#[test]
fn client_managed_headers_are_rejected() {
    let names = [
        "Content-Length",
        "transfer-encoding",
        "HOST",
        "Connection",
        "Upgrade",
        "TE",
        "Trailer",
        "Keep-Alive",
        "Proxy-Connection",
    ];
    for name in names {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - name: a\n        path: x\n        rate_limit: 1/s\n        headers:\n          {name}: '5'\n"
        );
        let problem = one_problem(&text);
        assert_eq!(
            (problem.line, problem.column),
            (9, 11 + name.len() as u64 + 2)
        );
        assert!(
            problem
                .message
                .starts_with(&format!("header {name} cannot be configured")),
            "{}",
            problem.message
        );
        assert!(problem.message.contains("remove it"), "{}", problem.message);
    }
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    headers:\n      Host: other.example\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n";
    let problem = one_problem(text);
    assert!(
        problem.message.contains("change base_url"),
        "{}",
        problem.message
    );
}

#[test]
fn same_request_twice_in_one_api_is_rejected() {
    let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/api
    endpoints:
      - name: first
        path: v1/models
        rate_limit: 1/s
      - name: second
        path: ./v1/models
        rate_limit: 1/s
      - name: third
        path: v1/models
        method: HEAD
        rate_limit: 1/s
";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (9, 15));
    assert!(
        problem.message.contains(
            "endpoint \"second\" sends the same GET request as endpoint \"first\" in API \"demo\""
        ),
        "{}",
        problem.message
    );
    assert!(
        problem.message.contains("merge them into one endpoint"),
        "{}",
        problem.message
    );
}

#[test]
fn same_request_is_found_after_url_normalisation() {
    let table = [
        ("v1/models", "v1/models?"),
        ("v1/models", "v1/%6Dodels"),
        ("v1/models", "%76%31/models"),
        ("v1/a-b_c.d~e", "v1/a%2Db%5Fc%2Ed%7Ee"),
        ("v1/a%2fb", "v1/a%2Fb"),
        ("v1/models?page=1", "v1/models?p%61ge=1"),
        ("v1/models?a=1&b=2", "v1/models?b=2&a=1"),
        ("v1/models?a=1&b=2", "v1/models?b=2&&a=1&"),
        ("v1/models", "v1/models?&"),
    ];
    for (first, second) in table {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/api/\n    endpoints:\n      - {{ name: first, path: '{first}', rate_limit: 1/s }}\n      - {{ name: second, path: '{second}', rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!(problem.line, 6, "{first} {second}");
        assert!(
            problem
                .message
                .contains("endpoint \"second\" sends the same GET request as endpoint \"first\""),
            "{first} {second}: {}",
            problem.message
        );
    }
}

#[test]
fn different_requests_survive_url_normalisation() {
    let table = [
        ("v1/models", "v1/model"),
        ("v1/a/b", "v1/a%2Fb"),
        ("v1/models?a=1&b=2", "v1/models?a=1"),
        ("v1/models?a=1", "v1/models?a=2"),
        ("v1/models?a=1&b=2", "v1/models?a=1b=2"),
        ("v1/models?q=%20", "v1/models?q=+"),
    ];
    for (first, second) in table {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/api/\n    endpoints:\n      - {{ name: first, path: '{first}', rate_limit: 1/s }}\n      - {{ name: second, path: '{second}', rate_limit: 1/s }}\n"
        );
        let config = parse_ok(&text);
        assert_eq!(config.endpoints.len(), 2, "{first} {second}");
    }
}

#[test]
fn tiny_interval_is_shown_as_written() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, interval: 1ns }\n";
    let problem = one_problem(text);
    assert!(
        problem
            .message
            .contains("interval 1ns is shorter than the minimum of 100ms"),
        "{}",
        problem.message
    );
}

#[test]
fn share_interval_above_maximum_is_rejected() {
    let table = [
        ("1/day", "0.0001%"),
        ("1/365d", "10%"),
        ("[1/365d, 100/hour]", "10%"),
    ];
    for (limit, share) in table {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - {{ name: rare, path: x, rate_limit: {limit}, probe_share: {share} }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!(problem.line, 5, "{limit} {share}");
        assert!(
            problem
                .message
                .starts_with("endpoint \"rare\": probe_share"),
            "{}",
            problem.message
        );
        assert!(
            problem
                .message
                .contains("longer than the maximum interval of 365d"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("raise probe_share"),
            "{}",
            problem.message
        );
    }
}

#[test]
fn same_url_in_two_apis_is_accepted() {
    let text = "
apis:
  - name: account-a
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: models, path: v1/models, rate_limit: 1/s }
  - name: account-b
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: models, path: v1/models, rate_limit: 1/s }
";
    let config = parse_ok(text);
    assert_eq!(config.endpoints.len(), 2);
    assert_eq!(config.endpoints[0].url, config.endpoints[1].url);
}

#[test]
fn base_url_with_query_or_fragment_is_rejected() {
    for base in [
        "http://127.0.0.1:9/api/?apikey=abc123",
        "http://127.0.0.1:9/api?",
        "http://127.0.0.1:9/api#part",
    ] {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: {base}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), (3, 15), "{base}");
        assert!(
            problem.message.contains("query string or fragment"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("end of each endpoint's path"),
            "{}",
            problem.message
        );
        assert!(!problem.message.contains("abc123"), "{}", problem.message);
    }
}

#[test]
fn path_with_query_keeps_it() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/api/\n    endpoints:\n      - { name: a, path: 'v1/models?page=1', rate_limit: 1/s }\n";
    let config = parse_ok(text);
    assert_eq!(
        config.endpoints[0].url.as_str(),
        "http://127.0.0.1:9/api/v1/models?page=1"
    );
}

#[test]
fn path_leaving_base_url_is_rejected() {
    let table = [
        ("../../../etc/x", "'..' segment"),
        ("v1/../../x", "'..' segment"),
        ("v1/%2E%2e/x", "'..' segment"),
        ("v1/..", "'..' segment"),
        (
            "x/../a",
            "'..' segments are not accepted, even where they stay below base_url",
        ),
        ("v1\\..\\..\\x", "resolves outside base_url"),
        ("v1/models#top", "fragment after '#' is never sent"),
    ];
    for (path, reason) in table {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/api/\n    endpoints:\n      - {{ name: a, path: '{path}', rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!(problem.line, 5, "{path}");
        assert!(
            problem.message.contains(&format!("invalid path {path:?}")),
            "{}",
            problem.message
        );
        assert!(problem.message.contains(reason), "{}", problem.message);
        assert!(
            !problem.message.contains("leave base_url"),
            "{}",
            problem.message
        );
    }
}

#[test]
fn durations_above_their_maximum_are_rejected() {
    let table = [
        ("global:\n  interval: 999999999999d\n", "interval", "365d"),
        ("global:\n  interval: 366d\n", "interval", "365d"),
        ("global:\n  timeout: 2h\n", "timeout", "1h"),
        (
            "global:\n  retry_after_ceiling: 1000y\n",
            "retry_after_ceiling",
            "7d",
        ),
        (
            "global:\n  retry_after_ceiling: 8d\n",
            "retry_after_ceiling",
            "7d",
        ),
    ];
    for (global, key, max) in table {
        let text = format!(
            "{global}apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!(problem.line, 2, "{global}");
        assert!(
            problem.message.starts_with(&format!("invalid {key} ")),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains(&format!("must be at most {max}")),
            "{}",
            problem.message
        );
    }
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    timeout: 1d\n    endpoints:\n      - { name: a, path: x, interval: 400d, timeout: 61m }\n";
    let found = problems(text);
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(found.len(), 3, "{messages:?}");
    assert!(
        messages[0].starts_with("invalid timeout \"1d\""),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("invalid interval \"400d\"")
            || messages[2].starts_with("invalid interval \"400d\""),
        "{messages:?}"
    );
}

#[test]
fn durations_at_their_maximum_are_accepted() {
    let text = "global:\n  retry_after_ceiling: 7d\n  timeout: 1h\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, interval: 365d }\n";
    let config = parse_ok(text);
    assert_eq!(config.global.retry_after_ceiling, MAX_RETRY_AFTER_CEILING);
    assert_eq!(config.endpoints[0].plan.interval, MAX_INTERVAL);
    assert_eq!(config.endpoints[0].timeout, MAX_TIMEOUT);
}

#[test]
fn shape_errors_name_key_value_and_fix() {
    let base = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - name: a\n        path: x\n";
    let table = [
        (
            format!("{base}        rate_limit: 100\n"),
            (7, 21),
            "invalid rate limit \"100\": missing '/' between the count and the window",
        ),
        (
            format!("{base}        rate_limit: 5/s\n        expect: ok\n"),
            (8, 17),
            "invalid expect \"ok\": write a list of status codes",
        ),
        (
            format!("{base}        interval: [1]\n"),
            (7, 19),
            "invalid interval \"[1]\": write a duration such as 30s",
        ),
        (
            format!("{base}        interval: 10s\n        follow_redirects: maybe\n"),
            (8, 27),
            "invalid follow_redirects \"maybe\": write true or false",
        ),
        (
            format!("{base}        interval: 10s\n        headers: [a]\n"),
            (8, 18),
            "invalid headers: write a mapping of header names to values",
        ),
        (
            format!("{base}        interval: 10s\n        path: y\n"),
            (8, 9),
            "key path is given twice in one mapping; keep one of them",
        ),
        (
            "apis: 5\n".to_owned(),
            (1, 7),
            "invalid apis \"5\": write a list of APIs",
        ),
        (
            String::new(),
            (1, 1),
            "config file is empty; start from examples/ratewatch.yml",
        ),
        (
            "# only a comment\n---\n".to_owned(),
            (1, 1),
            "config file is empty; start from examples/ratewatch.yml",
        ),
        (
            "global:\n  interval: 5s\n".to_owned(),
            (1, 1),
            "missing key apis: add a list of APIs",
        ),
        (
            format!("{base}        interval: 10s\n        headers: {{ X-A: [1] }}\n"),
            (8, 25),
            "invalid value for header X-A: write text, or a secret reference",
        ),
        (
            format!("{base}        interval: 10s\n        expect: [true]\n"),
            (8, 18),
            "invalid expect \"true\": write a list of status codes",
        ),
        (
            format!("{base}        expect: [200, true]\n"),
            (7, 23),
            "invalid expect \"true\": write a list of status codes",
        ),
        (
            format!("{base}        expect:\n          - true\n"),
            (8, 13),
            "invalid expect \"true\": write a list of status codes",
        ),
        (
            format!("{base}        interval:\n          - 5s\n"),
            (8, 11),
            "invalid interval: write a duration such as 30s",
        ),
        (
            format!("{base}        follow_redirects: \"a #b\" # comment\n"),
            (7, 27),
            "invalid follow_redirects \"\\\"a #b\\\"\": write true or false",
        ),
        (
            "apis:\n  - { name: dééé, base_url: [x], endpoints: [] }\n".to_owned(),
            (2, 29),
            "invalid base_url \"[x]\": write text",
        ),
    ];
    for (text, at, start) in table {
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), at, "{text}");
        assert!(
            problem.message.starts_with(start),
            "{text}\n{}",
            problem.message
        );
        for internal in ["untagged", "DuplicateKeyPolicy", "sequence start", "scalar"] {
            assert!(!problem.message.contains(internal), "{}", problem.message);
        }
    }
}

#[test]
fn flow_mapping_shape_errors_show_value() {
    let base = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n";
    let table = [
        (
            "      - { name: a, path: x, interval: 1m, expect: ok }",
            51,
            "invalid expect \"ok\": write",
        ),
        (
            "      - { name: a, path: x, interval: [1] }",
            39,
            "invalid interval \"[1]\": write",
        ),
        (
            "      - { name: a, path: x, interval: 1m, follow_redirects: maybe }",
            61,
            "invalid follow_redirects \"maybe\": write",
        ),
        (
            "      - { name: a, path: x, interval: 1m, expect: 'ok, }' }",
            51,
            "invalid expect \"'ok, }'\": write",
        ),
        (
            "      - { name: a, path: x, interval: { a: [1, 2] } }",
            39,
            "invalid interval \"{ a: [1, 2] }\": write",
        ),
    ];
    for (line, column, start) in table {
        let text = format!("{base}{line}\n");
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), (5, column), "{line}");
        assert!(
            problem.message.starts_with(start),
            "{line}\n{}",
            problem.message
        );
    }
}

#[test]
fn shape_error_does_not_echo_header_value() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    headers:\n      Authorization: [Bearer sk-shape-canary]\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n";
    let problem = one_problem(text);
    assert!(
        problem
            .message
            .starts_with("invalid value for header Authorization"),
        "{}",
        problem.message
    );
    assert!(
        !problem.message.contains("sk-shape-canary"),
        "{}",
        problem.message
    );
}

#[test]
fn literal_bearer_secret_is_never_echoed() {
    let cases = [
        "auth: { bearer: sk-canary-1 }",
        "auth: { bearer: [sk-canary-2] }",
        "auth: { bearer: 12345678901 }",
        "auth: { bearer: { vault: sk-canary-3 } }",
        "auth: { bearer sk-canary-5 }",
        "auth: { bearer: 'sk-canary`, 6' }",
        "auth:\n      bearer:\n        sk-canary-4",
    ];
    for auth in cases {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    {auth}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert!(
            !problem.message.contains("sk-canary") && !problem.message.contains("12345678901"),
            "{auth}: {}",
            problem.message
        );
        assert!(
            problem.message.contains("{ env: API_TOKEN }"),
            "{auth}: the message does not show a secret reference: {}",
            problem.message
        );
    }
}

#[test]
fn header_scalar_value_says_quote_it() {
    let number = "invalid value for header X-A: YAML reads the unquoted value as a number, and a header value is text, so put the number in double quotes (write \"2\" for 2), or use a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }";
    let boolean = "invalid value for header X-A: YAML reads the unquoted value as a boolean, and a header value is text, so put the boolean in double quotes (write \"true\" for true), or use a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }";
    let missing = "missing value for header X-A: write text, or a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }";
    let other = "invalid value for header X-A: write text, or a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }";
    let cases = [
        ("X-A: 1", (5, 12), number),
        ("X-A: 98765432109", (5, 12), number),
        ("X-A: 1.5", (5, 12), number),
        ("X-A: 0x1F", (5, 12), number),
        ("X-A: true", (5, 12), boolean),
        ("X-A:", (5, 10), missing),
        ("X-A: [1]", (5, 12), other),
        ("{ X-A: 7 }", (5, 14), number),
    ];
    for (header, at, message) in cases {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    headers:\n      {header}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), at, "{header}");
        assert_eq!(problem.message, message, "{header}");
    }
}

#[test]
fn header_key_with_space_is_never_echoed() {
    let cases = [
        ("\"X-Broken sk-canary-ddd\": 1", (5, 33)),
        ("X-Api-Key sk-canary-fff: 1", (5, 32)),
        ("\"sk-canary-yyy x\": [1]", (5, 26)),
        ("\"X-Broken sk-canary-ddd\": text", (5, 33)),
        ("{ sk-canary-eee X-Api-Key }", (5, 33)),
        ("X-A,sk-canary-ccc x: [1]", (5, 28)),
        ("'sk-canary-''bbb x': [1]", (5, 28)),
        ("\"sk-canary-\\\"aaa x\": [1]", (5, 28)),
    ];
    for (header, at) in cases {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    headers:\n      {header}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), at, "{header}");
        assert_eq!(problem.message, shape::spaced_header_message(), "{header}");
        for word in ["sk-canary", "canary", "X-Broken", "X-Api-Key", "aaa", "bbb"] {
            assert!(
                !problem.message.contains(word),
                "{header}: {}",
                problem.message
            );
        }
    }
}

#[test]
fn invalid_header_name_is_never_echoed() {
    let cases = [
        r#""X-Broken\u0020sk-canary-Q7Z9": 1"#,
        r#""X-Broken\tsk-canary-Q7Z9": 1"#,
        r#""X-Broken\u00a0sk-canary-Q7Z9": true"#,
        r#""X-Broken\nsk-canary-Q7Z9": [1]"#,
        r#""X-Api-Key=sk-canary-Q7Z9": x"#,
        r#""X-Api-Key=sk-canary-Q7Z9": 1"#,
        r#""Authorization:Bearer_sk-canary-Q7Z9": x"#,
        r#""X-Késk-canary-Q7Z9": x"#,
    ];
    for header in cases {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    headers:\n      {header}\n    endpoints:\n      - {{ name: a, path: x, rate_limit: 1/s }}\n"
        );
        let problems = problems(&text);
        assert!(!problems.is_empty(), "{header}: accepted");
        for problem in &problems {
            assert_eq!(problem.line, 5, "{header}: {}", problem.message);
            for word in ["canary", "Q7Z9", "X-Broken", "X-Api-Key", "Bearer"] {
                assert!(
                    !problem.message.contains(word),
                    "{header}: {}",
                    problem.message
                );
            }
        }
    }
}

#[test]
fn unknown_variant_without_key_drops_the_value() {
    assert_eq!(
        shape::without_value("unknown variant `sk-canary`, expected one of a, b"),
        "invalid value, expected one of a, b"
    );
    assert!(
        shape::without_value("unknown variant `sk-canary`, expected one of env, file")
            .starts_with("invalid secret reference: write one such as { env: API_TOKEN }")
    );
    assert_eq!(
        shape::without_value("invalid type: map"),
        "invalid type: map"
    );
}

#[test]
fn several_documents_name_second_start() {
    let cases = [
        ("apis: []\n---\napis: []\n", 2),
        ("---\n# first\napis: []\n\n--- # second\napis: []\n", 5),
        ("%YAML 1.2\n---\napis: []\n--- apis: []\n", 4),
    ];
    for (text, line) in cases {
        let error = parse(text, "two.yml", &secrets()).unwrap_err();
        let ConfigError::Invalid { problems, note, .. } = &error else {
            panic!("unexpected error {error}");
        };
        assert_eq!(places(problems), vec![(line, 1)], "{text:?}");
        assert_eq!(
            problems[0].message,
            format!(
                "the file contains several YAML documents separated by --- lines, and ratewatch reads only one; the second document starts at line {line}. Keep one document: move the settings of the others into it and remove the --- lines"
            ),
            "{text:?}"
        );
        assert!(note.is_some(), "{text:?}");
        assert!(!error.to_string().contains("from_str_multiple"), "{error}");
    }
}

#[test]
fn yaml_syntax_errors_say_what_to_fix() {
    let cases = [
        ("apis:\n\t- name: demo\n", "indent with spaces"),
        ("apis:\n  - name: 'demo\n", "has no closing quote; close it"),
        (
            "global:\n  interval: 5s\n   timeout: 3s\napis: []\n",
            "check the indentation of this line",
        ),
        (
            "global:\n  interval: 5s\n timeout: 3s\napis: []\n",
            "check the indentation of this line",
        ),
    ];
    for (text, fix) in cases {
        let problem = one_problem(text);
        assert!(
            problem.message.contains(fix),
            "{text:?}: {}",
            problem.message
        );
    }
}

#[test]
fn duration_errors_count_characters_from_one() {
    let cases = [
        ("-5m", "a duration cannot be negative"),
        ("m5", "expected a number at character 1"),
        ("5m!", "character 3 is not part of a duration"),
        ("5µs!", "character 4 is not part of a duration"),
        (" 5m!", "character 4 is not part of a duration"),
    ];
    for (interval, reason) in cases {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - {{ name: a, path: x, interval: '{interval}' }}\n"
        );
        let problem = one_problem(&text);
        assert!(
            problem
                .message
                .contains(&format!("invalid interval {interval:?}: {reason};")),
            "{interval}: {}",
            problem.message
        );
    }
}

#[test]
fn plural_rate_limit_units_are_accepted() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: [5/seconds, 50/minutes, 500/hours, 5000/days] }\n";
    let config = parse_ok(text);
    let windows: Vec<u64> = config.endpoints[0]
        .limits
        .iter()
        .map(|l| l.window.as_secs())
        .collect();
    assert_eq!(windows, vec![1, 60, 3600, 86_400]);
}

#[test]
fn missing_config_file_points_at_flag_and_example() {
    let missing = Path::new("/nonexistent/ratewatch-config.yml");
    let message = load(missing, &secrets()).unwrap_err().to_string();
    assert!(
        message.starts_with("cannot read config file /nonexistent/ratewatch-config.yml"),
        "{message}"
    );
    assert!(message.contains("--config.file"), "{message}");
    assert!(message.contains("examples/ratewatch.yml"), "{message}");
}

#[test]
fn start_error_prints_config_problems_once() {
    let err = parse("apis: 5\n", "ratewatch.yml", &secrets()).unwrap_err();
    let start = crate::app::StartError::from(err);
    let printed = format!("{:#}", anyhow::Error::from(start));
    assert_eq!(printed.matches("invalid apis").count(), 1, "{printed}");
    assert!(printed.starts_with("ratewatch.yml:1:7: "), "{printed}");
}

#[test]
fn degraded_after_is_off_by_default() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.global.degraded_after, None);
    assert_eq!(config.endpoints[0].degraded_after, None);
}

#[test]
fn degraded_after_is_inherited_like_timeout() {
    let text = "
global:
  degraded_after: 3s
apis:
  - name: inherits-global
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: a, path: a, rate_limit: 1/s }
      - { name: b, path: b, rate_limit: 1/s, degraded_after: 1500ms }
  - name: sets-its-own
    base_url: http://127.0.0.1:9/
    degraded_after: 800ms
    timeout: 1s
    endpoints:
      - { name: c, path: c, rate_limit: 1/s }
      - { name: d, path: d, rate_limit: 1/s, degraded_after: 2s, timeout: 5s }
";
    let config = parse_ok(text);
    assert_eq!(config.global.degraded_after, Some(Duration::from_secs(3)));
    let thresholds: Vec<(&str, Option<Duration>, Duration)> = config
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.degraded_after, e.timeout))
        .collect();
    assert_eq!(
        thresholds,
        [
            ("a", Some(Duration::from_secs(3)), DEFAULT_TIMEOUT),
            ("b", Some(Duration::from_millis(1500)), DEFAULT_TIMEOUT),
            (
                "c",
                Some(Duration::from_millis(800)),
                Duration::from_secs(1)
            ),
            ("d", Some(Duration::from_secs(2)), Duration::from_secs(5)),
        ]
    );
}

#[test]
fn degraded_after_zero_is_rejected() {
    let table = [
        (
            "global:\n  degraded_after: 0s\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n",
            "0s",
            (2, 19),
            "remove degraded_after to leave the check off",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    degraded_after: 0h\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n",
            "0h",
            (4, 21),
            "write off to turn the check off here, or remove degraded_after to inherit the value above",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s, degraded_after: 0ms }\n",
            "0ms",
            (5, 62),
            "write off to turn the check off here, or remove degraded_after to inherit the value above",
        ),
    ];
    for (text, written, at, hint) in table {
        let problem = one_problem(text);
        assert_eq!((problem.line, problem.column), at, "{text}");
        assert_eq!(
            problem.message,
            format!(
                "invalid degraded_after {written:?}: must be longer than zero; write a duration such as 2s or 1500ms, or {hint}"
            )
        );
    }
}

#[test]
fn degraded_after_not_a_duration_is_rejected() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    degraded_after: soon\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (4, 21));
    assert!(
        problem
            .message
            .starts_with("invalid degraded_after \"soon\": "),
        "{}",
        problem.message
    );
    assert!(
        problem
            .message
            .ends_with("; write a duration such as 2s or 1500ms, or off to turn the check off"),
        "{}",
        problem.message
    );
}

#[test]
fn degraded_after_off_turns_inherited_threshold_off() {
    let text = r"
global:
  degraded_after: 3s
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    degraded_after: off
    endpoints:
      - { name: a, path: a, rate_limit: 1/s }
      - { name: b, path: b, rate_limit: 1/s, degraded_after: 2s }
  - name: other
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: c, path: c, rate_limit: 1/s }
      - { name: d, path: d, rate_limit: 1/s, degraded_after: off }
      - { name: e, path: e, rate_limit: 1/s, degraded_after: 'off' }
";
    let config = parse_ok(text);
    let thresholds: Vec<_> = config
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.degraded_after))
        .collect();
    assert_eq!(
        thresholds,
        [
            ("a", None),
            ("b", Some(Duration::from_secs(2))),
            ("c", Some(Duration::from_secs(3))),
            ("d", None),
            ("e", None),
        ]
    );
}

#[test]
fn degraded_after_off_in_global_is_no_threshold() {
    let text = "global:\n  degraded_after: off\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s, timeout: 1s }\n";
    let config = parse_ok(text);
    assert_eq!(config.global.degraded_after, None);
    assert_eq!(config.endpoints[0].degraded_after, None);
}

#[test]
fn degraded_after_wrong_shape_names_the_form() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - name: a\n        path: x\n        degraded_after: [2s]\n";
    let problem = one_problem(text);
    assert_eq!((problem.line, problem.column), (7, 25));
    assert_eq!(
        problem.message,
        "invalid degraded_after \"[2s]\": write a duration such as 2s or 1500ms, or off"
    );
}

#[test]
fn degraded_after_not_below_own_timeout_is_rejected() {
    for (degraded_after, timeout) in [("2s", "2s"), ("3s", "2s"), ("2001ms", "2s")] {
        let text = format!(
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - name: slow\n        path: x\n        rate_limit: 1/s\n        timeout: {timeout}\n        degraded_after: {degraded_after}\n"
        );
        let problem = one_problem(&text);
        assert_eq!((problem.line, problem.column), (9, 25), "{degraded_after}");
        assert_eq!(
            problem.message,
            format!(
                "endpoint \"slow\" in API \"demo\": degraded_after {degraded_after:?} is not shorter than its timeout 2s, so it could never apply, because a probe that takes longer than the timeout ends as class timeout; lower degraded_after below 2s"
            )
        );
    }
}

#[test]
fn inherited_degraded_after_names_each_endpoint() {
    let text = "
global:
  degraded_after: 5s
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    timeout: 5s
    endpoints:
      - { name: a, path: a, rate_limit: 1/s }
      - { name: b, path: b, rate_limit: 1/s, timeout: 2s }
      - { name: c, path: c, rate_limit: 1/s, timeout: 6s }
  - name: other
    base_url: http://127.0.0.1:9/
    degraded_after: 10s
    endpoints:
      - { name: d, path: d, rate_limit: 1/s }
";
    let found = problems(text);
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(found.len(), 3, "{messages:?}");
    assert_eq!((found[0].line, found[0].column), (3, 19));
    assert_eq!(
        found[0].message,
        "endpoint \"a\" in API \"demo\": degraded_after \"5s\" set in global is not shorter than its timeout 5s, so it could never apply, because a probe that takes longer than the timeout ends as class timeout; lower degraded_after below 5s, or set a shorter degraded_after on the endpoint"
    );
    assert_eq!((found[1].line, found[1].column), (3, 19));
    assert!(
        found[1]
            .message
            .starts_with("endpoint \"b\" in API \"demo\": degraded_after \"5s\" set in global is not shorter than its timeout 2s,"),
        "{}",
        found[1].message
    );
    assert_eq!((found[2].line, found[2].column), (14, 21));
    assert!(
        found[2].message.starts_with(
            "endpoint \"d\" in API \"other\": degraded_after \"10s\" set in API \"other\" is not shorter than its timeout 10s,"
        ),
        "{}",
        found[2].message
    );
}

#[test]
fn invalid_timeout_skips_degraded_after_check() {
    let text = "global:\n  timeout: 2h\n  degraded_after: 30m\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n";
    let problem = one_problem(text);
    assert!(
        problem.message.starts_with("invalid timeout \"2h\""),
        "{}",
        problem.message
    );
}

#[test]
fn degraded_after_above_maximum_is_rejected() {
    let text = "global:\n  degraded_after: 2h\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s }\n";
    let problem = one_problem(text);
    assert_eq!(
        problem.message,
        "invalid degraded_after \"2h\": must be at most 1h; write a shorter duration"
    );
}

#[test]
fn unknown_key_suggests_the_closest_valid_key() {
    let cases = [
        (
            "globl:\n  interval: 5s\napis: []\n",
            "unknown key globl; did you mean global? Valid keys here: global, apis",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limt: 1/s }\n",
            "unknown key rate_limt; did you mean rate_limit?",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, inetrval: 1m }\n",
            "unknown key inetrval; did you mean interval?",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, zzz: 1 }\n",
            "unknown key zzz; valid keys here: name, path,",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, auth: {} }\n",
            "unknown key auth; valid keys here: name, path,",
        ),
        (
            "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, interval 1m }\n",
            "unknown key with a space in it: is the colon missing after interval? Write interval: followed by a duration such as 30s",
        ),
    ];
    for (text, expected) in cases {
        let problem = one_problem(text);
        assert!(
            problem.message.starts_with(expected),
            "{text:?}: {}",
            problem.message
        );
    }
}

#[test]
fn unknown_key_lists_degraded_after() {
    let text = "apis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: a, path: x, rate_limit: 1/s, degraded_afer: 2s }\n";
    let problem = one_problem(text);
    assert!(
        problem.message.starts_with(
            "unknown key degraded_afer; did you mean degraded_after? Valid keys here: "
        ),
        "{}",
        problem.message
    );
    assert!(
        problem.message.contains("degraded_after"),
        "lists valid keys: {}",
        problem.message
    );
}

/// Returns the line and column of each problem.
fn places(found: &[Problem]) -> Vec<(u64, u64)> {
    found.iter().map(|p| (p.line, p.column)).collect()
}

#[test]
fn unknown_keys_at_three_depths() {
    let text = "\
global:
  intervl: 30s
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    timeuot: 5s
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        methd: GET
";
    let found = problems(text);
    assert_eq!(places(&found), vec![(2, 3), (6, 5), (11, 9)], "{found:#?}");
    assert!(
        found[0]
            .message
            .starts_with("unknown key intervl; did you mean interval? Valid keys here: "),
        "{}",
        found[0].message
    );
    assert!(
        found[0].message.contains("retry_after_ceiling"),
        "lists the global keys: {}",
        found[0].message
    );
    assert!(
        found[1]
            .message
            .starts_with("unknown key timeuot; did you mean timeout? Valid keys here: "),
        "{}",
        found[1].message
    );
    assert!(
        found[1].message.contains("endpoints"),
        "lists the API keys: {}",
        found[1].message
    );
    assert!(
        found[2]
            .message
            .starts_with("unknown key methd; did you mean method? Valid keys here: "),
        "{}",
        found[2].message
    );
    assert!(
        found[2].message.contains("rate_limit_reset"),
        "lists the endpoint keys: {}",
        found[2].message
    );
}

#[test]
fn unknown_keys_and_type_error() {
    let text = "\
global:
  colour: red
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        follow_redirects: maybe
      - { name: b, path: y, rate_limit: 1/s, weight: 2 }
";
    let found = problems(text);
    assert_eq!(
        places(&found),
        vec![(2, 3), (10, 27), (11, 46)],
        "{found:#?}"
    );
    assert!(
        found[0]
            .message
            .starts_with("unknown key colour; valid keys"),
        "{}",
        found[0].message
    );
    assert_eq!(
        found[1].message,
        "invalid follow_redirects \"maybe\": write true or false"
    );
    assert!(
        found[2]
            .message
            .starts_with("unknown key weight; valid keys"),
        "{}",
        found[2].message
    );
}

#[test]
fn share_type_error_and_unknown_key() {
    // The tree check cannot judge a share, so this one comes from the typed parse, which stops
    // there; the unknown key after it comes from the tree check.
    let text = "\
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: a, path: x, probe_share: [1], rate_lmit: 1/s }
";
    let found = problems(text);
    assert_eq!(places(&found), vec![(5, 42), (5, 47)], "{found:#?}");
    assert!(
        found[0]
            .message
            .starts_with("invalid probe_share \"[1]\": write"),
        "{}",
        found[0].message
    );
    assert!(
        found[1]
            .message
            .starts_with("unknown key rate_lmit; did you mean rate_limit?"),
        "{}",
        found[1].message
    );
}

#[test]
fn duplicate_keys_reported_together() {
    let text = "\
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    name: again
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        path: y
        rate_limit: 2/s
";
    let found = problems(text);
    assert_eq!(places(&found), vec![(4, 5), (9, 9), (10, 9)], "{found:#?}");
    assert_eq!(
        found[0].message,
        "key name is given twice in one mapping; keep one of them"
    );
    assert_eq!(
        found[1].message,
        "key path is given twice in one mapping; keep one of them"
    );
    assert_eq!(
        found[2].message,
        "key rate_limit is given twice in one mapping; keep one of them"
    );
}

#[test]
fn missing_keys_in_two_endpoints() {
    let text = "\
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: a, rate_limit: 1/s }
      - { path: b, rate_limit: 1/s }
";
    let found = problems(text);
    assert_eq!(places(&found), vec![(5, 9), (6, 9)], "{found:#?}");
    assert_eq!(
        found[0].message,
        "missing key path: add the path of this endpoint, relative to base_url, such as path: v1/models"
    );
    assert_eq!(
        found[1].message,
        "missing key name: add a name for this endpoint, such as name: check-credit"
    );
}

#[test]
fn missing_keys_say_what_to_add() {
    let text = "\
apis:
  - endpoints:
      - { name: a, path: x, rate_limit: 1/s, credit: {} }
  - name: other
    base_url: http://127.0.0.1:9/
    auth: {}
";
    let found = problems(text);
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "missing key name: add a name for this API, such as name: billing",
            "missing key base_url: add the URL that this API's endpoint paths are relative to, such as base_url: https://api.example.com/",
            "missing key json_path: add the JSONPath of the balance, such as json_path: $.credit",
            "missing key endpoints: add a list of this API's endpoints, each with name and path",
            "missing key bearer: add a secret reference such as bearer: { env: API_TOKEN }",
        ],
        "{found:#?}"
    );
}

#[test]
fn misspelt_required_key_not_missing() {
    let text = "\
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: a, pth: x, rate_limit: 1/s }
";
    let problem = one_problem(text);
    assert!(
        problem
            .message
            .starts_with("unknown key pth; did you mean path?"),
        "{}",
        problem.message
    );
}

#[test]
fn empty_values_where_not_optional() {
    let text = "\
global:
apis:
  - name:
    base_url: http://127.0.0.1:9/
    headers:
    endpoints:
      - { name: a, path: x, rate_limit: 1/s, follow_redirects: }
";
    let found = problems(text);
    assert_eq!(places(&found), vec![(3, 9)], "{found:#?}");
    assert_eq!(found[0].message, "invalid name: write text");
}

#[test]
fn empty_mappings_count_as_not_set() {
    let text = "\
global:
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    headers:
    endpoints:
      - name: a
        path: x
        rate_limit: 1/s
        headers:
      - { name: b, path: y, rate_limit: 1/s, headers: {} }
";
    let config = parse_ok(text);
    assert_eq!(config.endpoints.len(), 2);
    assert!(config.endpoints.iter().all(|e| e.headers.is_empty()));
}

#[test]
fn layout_traced_from_raw_structs() {
    use schema::Shape;

    let field = |fields: &[schema::Field], name: &str| -> schema::Field {
        fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {fields:#?}"))
            .clone()
    };
    let Shape::Struct(root) = Shape::of::<raw::RawConfig>() else {
        panic!("the root is not a struct");
    };
    let apis = field(&root, "apis");
    assert!(apis.required);
    assert!(!field(&root, "global").required, "global has a default");

    let Shape::Seq(api) = apis.shape else {
        panic!("apis is not a list: {:?}", apis.shape);
    };
    let Shape::Struct(api) = *api else {
        panic!("an API is not a struct: {api:?}");
    };
    assert!(field(&api, "base_url").required);
    assert_eq!(
        field(&api, "auth").shape,
        Shape::Optional(Box::new(Shape::Struct(vec![schema::Field {
            name: "bearer",
            shape: Shape::Enum(&["env", "file"]),
            required: true,
        }])))
    );
    assert_eq!(
        field(&api, "headers").shape,
        Shape::Optional(Box::new(Shape::Map(Box::new(Shape::Any))))
    );

    let Shape::Seq(endpoint) = field(&api, "endpoints").shape else {
        panic!("endpoints is not a list");
    };
    let Shape::Struct(endpoint) = *endpoint else {
        panic!("an endpoint is not a struct: {endpoint:?}");
    };
    assert!(field(&endpoint, "path").required);
    assert!(!field(&endpoint, "method").required);
    assert_eq!(
        field(&endpoint, "follow_redirects").shape,
        Shape::Optional(Box::new(Shape::Bool))
    );
    assert_eq!(
        field(&endpoint, "interval").shape,
        Shape::Optional(Box::new(Shape::Text))
    );
    assert_eq!(
        field(&endpoint, "credit").shape,
        Shape::Optional(Box::new(Shape::Struct(vec![schema::Field {
            name: "json_path",
            shape: Shape::Text,
            required: true,
        }])))
    );
}

#[test]
fn secret_mistakes_and_typo_hide_token() {
    let text = "\
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    auth: { bearer: sk-canary-multi-1 }
    endpoints:
      - name: a
        path: x
        rate_limt: 1/s
        headers: { Authorization Bearer sk-canary-multi-2 }
";
    let error = parse(text, "test.yml", &secrets()).unwrap_err();
    let output = error.to_string();
    let ConfigError::Invalid { problems, .. } = error else {
        panic!("unexpected error {output}");
    };
    assert_eq!(
        places(&problems),
        vec![(4, 21), (8, 9), (9, 59)],
        "{output}"
    );
    assert!(!output.contains("sk-canary"), "{output}");
    assert!(
        problems[0]
            .message
            .starts_with("invalid bearer: write a secret reference"),
        "{}",
        problems[0].message
    );
    assert!(
        problems[1]
            .message
            .starts_with("unknown key rate_limt; did you mean rate_limit?"),
        "{}",
        problems[1].message
    );
    assert!(
        problems[2]
            .message
            .starts_with("header name with a space in it: is the colon missing"),
        "{}",
        problems[2].message
    );
}
