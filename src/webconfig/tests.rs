use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};

use super::*;

/// A CA and a server certificate for `localhost` and 127.0.0.1, written as PEM files into a
/// temporary directory: `ca.pem`, `server.pem` and `server-key.pem`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(
            dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .unwrap();
        Pki { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(name), text).unwrap();
    }

    fn parse(&self, text: &str) -> Result<WebConfig, WebConfigError> {
        parse(text, "web.yml", self.path())
    }
}

fn problems(result: Result<WebConfig, WebConfigError>) -> Vec<Problem> {
    match result {
        Err(WebConfigError::Invalid { file, problems }) => {
            assert_eq!(file, "web.yml");
            problems
        }
        Err(e) => panic!("expected problems, got {e}"),
        Ok(config) => panic!("expected problems, got {}", config.summary()),
    }
}

/// Returns the single problem of an invalid config.
fn problem(result: Result<WebConfig, WebConfigError>) -> Problem {
    let mut problems = problems(result);
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.remove(0)
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

const TLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n";

#[test]
fn empty_file_serves_plain_http_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "# only a comment\n", "---\n", "{}\n"] {
        let config = parse(text, "web.yml", dir.path()).unwrap();
        assert!(config.tls.is_none(), "{text:?}");
        assert!(config.basic_auth.is_none(), "{text:?}");
        assert!(config.headers.is_empty(), "{text:?}");
    }
}

#[test]
fn full_config_loads_with_relative_paths() {
    let pki = Pki::new();
    let text = format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  alice: {}\n  bob: '{}'\n",
        hash("a"),
        hash("b")
    );
    let config = pki.parse(&text).unwrap();
    let tls = config.tls.as_ref().unwrap();
    assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert_eq!(config.basic_auth.as_ref().unwrap().user_count(), 2);
    assert_eq!(
        config.headers,
        vec![
            (
                HeaderName::from_static("strict-transport-security"),
                HeaderValue::from_static("max-age=31536000")
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("deny")
            ),
        ]
    );
    assert_eq!(
        config.summary(),
        "HTTPS, 2 basic auth users, 2 extra headers"
    );
}

#[test]
fn load_resolves_paths_against_the_file_directory() {
    let pki = Pki::new();
    pki.write("web.yml", TLS);
    let config = load(&pki.path().join("web.yml")).unwrap();
    assert!(config.tls.is_some());
}

#[test]
fn missing_file_names_the_file() {
    let err = load(Path::new("/nonexistent/web.yml")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/nonexistent/web.yml"), "{text}");
    assert!(text.contains("--web.config.file"), "{text}");
}

#[test]
fn unknown_keys_are_errors_with_location() {
    let pki = Pki::new();
    let found = problem(pki.parse("basic_auth_user:\n  alice: x\n"));
    assert_eq!((found.line, found.column), (1, 1), "{found:?}");
    assert!(found.message.contains("basic_auth_user"), "{found:?}");

    let found = problem(pki.parse(&format!("{TLS}  cert_fille: x.pem\n")));
    assert_eq!(found.line, 4, "{found:?}");
    assert!(found.message.contains("cert_fille"), "{found:?}");

    let found = problem(pki.parse("http_server_config:\n  header: {}\n"));
    assert_eq!(found.line, 2, "{found:?}");
    assert!(found.message.contains("header"), "{found:?}");
}

#[test]
fn error_display_names_file_line_and_column() {
    let pki = Pki::new();
    let err =
        pki.parse("tls_server_config:\n  cert_file: missing.pem\n  key_file: server-key.pem\n");
    let text = err.unwrap_err().to_string();
    assert!(
        text.starts_with("web.yml:2:14: cannot read cert_file"),
        "{text}"
    );
    assert!(text.contains("missing.pem"), "{text}");
    assert!(
        text.contains("relative paths are resolved against the web config file's directory"),
        "{text}"
    );
}

#[test]
fn error_display_caps_problem_count() {
    let pki = Pki::new();
    let users = (0..60)
        .map(|i| format!("  user{i}: not-a-hash\n"))
        .collect::<Vec<_>>()
        .concat();
    let error = pki
        .parse(&format!("basic_auth_users:\n{users}"))
        .unwrap_err();
    let shown = error.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 51, "{shown}");
    assert!(
        lines[0].starts_with("web.yml:2:10: invalid bcrypt hash"),
        "{shown}"
    );
    assert_eq!(
        lines[50],
        "... and 10 more problems; fix these and run ratewatch check again"
    );
}

#[test]
fn several_documents_name_second_start() {
    let pki = Pki::new();
    let found =
        problem(pki.parse("http_server_config:\n  http2: true\n---\nbasic_auth_users: {}\n"));
    assert_eq!((found.line, found.column), (3, 1), "{found:?}");
    assert!(
        found.message.starts_with("the file contains several YAML documents separated by --- lines, and ratewatch reads only one; the second document starts at line 3."),
        "{found:?}"
    );
}

#[test]
fn yaml_syntax_error_has_location() {
    let pki = Pki::new();
    let found = problem(pki.parse("tls_server_config:\n  cert_file: [unclosed\n"));
    assert!(found.line >= 2, "{found:?}");
}

#[test]
fn unsupported_exporter_toolkit_keys_are_named() {
    let pki = Pki::new();
    let cases = [
        (
            "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "cipher_suites is not supported",
        ),
        (
            "  curve_preferences: [X25519]\n",
            "curve_preferences is not supported",
        ),
        (
            "  prefer_server_cipher_suites: true\n",
            "prefer_server_cipher_suites is not supported",
        ),
        (
            "  client_allowed_sans: [a]\n",
            "client_allowed_sans is not supported",
        ),
        ("  cert: inline\n", "cert_file"),
        ("  client_ca: inline\n", "client_ca_file"),
    ];
    for (line, expected) in cases {
        let found = problem(pki.parse(&format!("{TLS}{line}")));
        assert_eq!(found.line, 4, "{line}: {found:?}");
        assert!(found.message.contains(expected), "{line}: {found:?}");
    }
    let found = problem(pki.parse("rate_limit:\n  burst: 10\n  interval: 1s\n"));
    assert!(
        found.message.contains("rate_limit is not supported"),
        "{found:?}"
    );
}

#[test]
fn inline_key_is_rejected_without_quoting_it() {
    let pki = Pki::new();
    let text = format!("{TLS}  key: |\n    -----BEGIN PRIVATE KEY-----\n    SECRETKEYMATERIAL\n");
    let err = pki.parse(&text).unwrap_err().to_string();
    assert!(err.contains("tls_server_config.key"), "{err}");
    assert!(!err.contains("SECRETKEYMATERIAL"), "{err}");
}

#[test]
fn tls_requires_cert_and_key() {
    let pki = Pki::new();
    let found = problem(pki.parse("tls_server_config:\n  cert_file: server.pem\n"));
    assert!(found.message.contains("no key_file"), "{found:?}");
    let found = problem(pki.parse("tls_server_config:\n  key_file: server-key.pem\n"));
    assert!(found.message.contains("no cert_file"), "{found:?}");
    // Every key empty leaves TLS off, as in exporter-toolkit.
    let config = pki
        .parse("tls_server_config:\n  cert_file: ''\n  key_file: ''\n")
        .unwrap();
    assert!(config.tls.is_none());
}

#[test]
fn bad_pem_files_are_reported_without_their_contents() {
    let pki = Pki::new();
    pki.write("garbage.pem", "not a certificate\n");
    pki.write(
        "bad-key.pem",
        "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL!!\n-----END PRIVATE KEY-----\n",
    );

    let found = problem(
        pki.parse("tls_server_config:\n  cert_file: garbage.pem\n  key_file: server-key.pem\n"),
    );
    assert!(
        found.message.contains("holds no valid PEM certificate"),
        "{found:?}"
    );
    assert_eq!(found.line, 2);

    let found = problem(
        pki.parse("tls_server_config:\n  cert_file: server.pem\n  key_file: bad-key.pem\n"),
    );
    assert!(
        found.message.contains("holds no valid PEM private key"),
        "{found:?}"
    );
    assert!(!found.message.contains("SECRETKEYMATERIAL"), "{found:?}");
    assert_eq!(found.line, 3);

    // The certificate file given as the key.
    let found =
        problem(pki.parse("tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n"));
    assert!(
        found.message.contains("no valid PEM private key"),
        "{found:?}"
    );
}

#[test]
fn mismatched_key_is_rejected() {
    let pki = Pki::new();
    pki.write(
        "other-key.pem",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let found = problem(
        pki.parse("tls_server_config:\n  cert_file: server.pem\n  key_file: other-key.pem\n"),
    );
    assert!(
        found.message.contains("does not belong to the certificate"),
        "{found:?}"
    );
    assert!(found.message.contains("other-key.pem"), "{found:?}");
    assert!(found.message.contains("server.pem"), "{found:?}");
    assert!(!found.message.contains("KeyMismatch"), "{found:?}");
    assert_eq!(found.line, 3);
}

#[test]
fn version_1_certificate_is_named() {
    let pki = Pki::new();
    let key = KeyPair::generate().unwrap();
    let certificate = crate::x509::testing::version_1_certificate(&key, "localhost");
    pki.write("server-v1.pem", &certificate);
    pki.write("server-v1-key.pem", &key.serialize_pem());
    let found =
        problem(pki.parse(
            "tls_server_config:\n  cert_file: server-v1.pem\n  key_file: server-v1-key.pem\n",
        ));
    assert_eq!((found.line, found.column), (2, 14), "{found:?}");
    assert!(found.message.starts_with("cert_file \""), "{found:?}");
    assert!(found.message.contains("server-v1.pem"), "{found:?}");
    assert!(
        found
            .message
            .contains("is an X.509 version 1 certificate, but TLS here needs version 3"),
        "{found:?}"
    );
    assert!(found.message.contains("-extfile server.ext"), "{found:?}");
    assert!(
        !found.message.contains("UnsupportedCertVersion"),
        "{found:?}"
    );
    assert!(
        !found.message.contains("cannot be used together"),
        "{found:?}"
    );
}

#[test]
fn version_1_client_ca_is_accepted() {
    // rustls reads a trust anchor from a CA certificate of any version.
    let pki = Pki::new();
    let key = KeyPair::generate().unwrap();
    pki.write(
        "ca-v1.pem",
        &crate::x509::testing::version_1_certificate(&key, "private CA"),
    );
    let text = format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca-v1.pem\n"
    );
    assert!(pki.parse(&text).unwrap().tls.is_some());
}

#[test]
fn client_auth_settings_are_checked() {
    let pki = Pki::new();
    let cases = [
        (
            "  client_auth_type: Sometimes\n",
            "invalid client_auth_type \"Sometimes\"",
        ),
        (
            "  client_auth_type: RequestClientCert\n  client_ca_file: ca.pem\n",
            "is not supported",
        ),
        (
            "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.pem\n",
            "is not supported",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "client_ca_file is not set",
        ),
        (
            "  client_auth_type: VerifyClientCertIfGiven\n",
            "client_ca_file is not set",
        ),
        (
            "  client_ca_file: ca.pem\n",
            "client_auth_type is NoClientCert",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing.pem\n",
            "cannot read client_ca_file",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server-key.pem\n",
            "holds no PEM certificate",
        ),
    ];
    for (lines, expected) in cases {
        let found = problem(pki.parse(&format!("{TLS}{lines}")));
        assert!(found.message.contains(expected), "{lines}: {found:?}");
        assert!(found.line >= 4, "{lines}: {found:?}");
    }
    for kind in ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] {
        let text = format!("{TLS}  client_auth_type: {kind}\n  client_ca_file: ca.pem\n");
        assert!(pki.parse(&text).unwrap().tls.is_some(), "{kind}");
    }
}

#[test]
fn tls_versions_are_checked() {
    let pki = Pki::new();
    let cases = [
        ("  min_version: TLS10\n", "TLS 1.2 and 1.3 only"),
        ("  max_version: TLS11\n", "TLS 1.2 and 1.3 only"),
        ("  min_version: tls12\n", "invalid min_version \"tls12\""),
        (
            "  min_version: TLS13\n  max_version: TLS12\n",
            "above max_version",
        ),
    ];
    for (lines, expected) in cases {
        let found = problem(pki.parse(&format!("{TLS}{lines}")));
        assert!(found.message.contains(expected), "{lines}: {found:?}");
        assert_eq!(found.line, 4, "{lines}: {found:?}");
    }
    for lines in [
        "  min_version: TLS12\n",
        "  max_version: TLS12\n",
        "  min_version: TLS13\n",
    ] {
        assert!(pki.parse(&format!("{TLS}{lines}")).is_ok(), "{lines}");
    }
}

#[test]
fn invalid_users_never_quote_the_hash() {
    let pki = Pki::new();
    let found = problem(pki.parse("basic_auth_users:\n  alice: plain-password-here\n"));
    assert!(
        found
            .message
            .contains("invalid bcrypt hash for basic_auth_users user \"alice\""),
        "{found:?}"
    );
    assert!(
        found.message.contains("htpasswd -nBC 10 alice"),
        "{found:?}"
    );
    assert!(!found.message.contains("plain-password-here"), "{found:?}");
    assert_eq!((found.line, found.column), (2, 10));

    let found = problem(pki.parse("basic_auth_users:\n  alice: 123456789\n"));
    assert!(!found.message.contains("123456789"), "{found:?}");
    assert!(found.message.contains("bcrypt hash"), "{found:?}");

    let found = problem(pki.parse("basic_auth_users:\n  alice: [hunter2]\n"));
    assert!(!found.message.contains("hunter2"), "{found:?}");

    let found = problem(pki.parse("basic_auth_users: $2y$10$notreallyahashbutsecretish\n"));
    assert!(!found.message.contains("notreally"), "{found:?}");
    assert!(found.message.contains("map of user names"), "{found:?}");

    let found = problem(pki.parse(&format!("basic_auth_users:\n  'al:ice': {}\n", hash("x"))));
    assert!(found.message.contains("no ':'"), "{found:?}");
}

#[test]
fn empty_user_map_enables_no_auth() {
    let pki = Pki::new();
    let config = pki.parse("basic_auth_users: {}\n").unwrap();
    assert!(config.basic_auth.is_none());
}

#[test]
fn headers_follow_the_exporter_toolkit_list() {
    let pki = Pki::new();
    let cases = [
        ("Authorization: x", "cannot set \"Authorization\""),
        ("Content-Length: '1'", "cannot set \"Content-Length\""),
        ("x-frame-options: deny", "write X-Frame-Options"),
        ("X-Frame-Options: DENY", "write one of deny, sameorigin"),
        ("X-Content-Type-Options: sniff", "write one of nosniff"),
        ("Content-Security-Policy: \"a\\nb\"", "visible ASCII"),
    ];
    for (line, expected) in cases {
        let found = problem(pki.parse(&format!("http_server_config:\n  headers:\n    {line}\n")));
        assert!(found.message.contains(expected), "{line}: {found:?}");
        assert_eq!(found.line, 3, "{line}: {found:?}");
    }
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let pki = Pki::new();
    let text = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS10\nbasic_auth_users:\n  alice: nope\nhttp_server_config:\n  headers:\n    Server: ratewatch\n";
    let found = problems(pki.parse(text));
    let lines: Vec<u64> = found.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![4, 6, 9], "{found:?}");
}

#[test]
fn invalid_reload_keeps_old_config() {
    let pki = Pki::new();
    let path = pki.path().join("web.yml");
    pki.write(
        "web.yml",
        &format!("{TLS}basic_auth_users:\n  alice: {}\n", hash("a")),
    );
    let live = LiveWebConfig::load(path).unwrap();
    assert_eq!(
        live.current().summary(),
        "HTTPS, 1 basic auth user, 0 extra headers"
    );

    pki.write(
        "web.yml",
        &format!("{TLS}basic_auth_users:\n  alice: broken\n"),
    );
    let err = live.reload().unwrap_err();
    assert!(err.to_string().contains("invalid bcrypt hash"), "{err}");
    assert_eq!(
        live.current().summary(),
        "HTTPS, 1 basic auth user, 0 extra headers"
    );

    pki.write(
        "web.yml",
        &format!(
            "{TLS}basic_auth_users:\n  alice: {}\n  bob: {}\n",
            hash("a"),
            hash("b")
        ),
    );
    live.reload().unwrap();
    assert_eq!(
        live.current().summary(),
        "HTTPS, 2 basic auth users, 0 extra headers"
    );
}

#[test]
fn reload_rejects_switching_between_http_and_https() {
    let pki = Pki::new();
    let path = pki.path().join("web.yml");
    pki.write("web.yml", TLS);
    let live = LiveWebConfig::load(path.clone()).unwrap();
    pki.write("web.yml", "");
    let err = live.reload().unwrap_err();
    assert!(
        matches!(
            err,
            WebConfigError::SchemeChange {
                change: "disables HTTPS",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("restart ratewatch"), "{err}");
    assert!(live.current().tls.is_some());

    pki.write("web.yml", "");
    let live = LiveWebConfig::load(path).unwrap();
    pki.write("web.yml", TLS);
    let err = live.reload().unwrap_err();
    assert!(
        matches!(
            err,
            WebConfigError::SchemeChange {
                change: "enables HTTPS",
                ..
            }
        ),
        "{err}"
    );
    assert!(live.current().tls.is_none());
}

#[test]
fn debug_output_has_no_hashes() {
    let pki = Pki::new();
    let secret_hash = hash("a");
    let config = pki
        .parse(&format!("basic_auth_users:\n  alice: {secret_hash}\n"))
        .unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("alice"), "{debug}");
    assert!(!debug.contains(&secret_hash[7..]), "{debug}");
}

#[test]
fn shape_error_names_key_and_fix() {
    let pki = Pki::new();
    let cases = [
        (
            "http_server_config:\n  http2: maybe\n",
            "invalid http_server_config.http2 \"maybe\": write true or false",
        ),
        (
            "tls_server_config: 5\n",
            "invalid tls_server_config \"5\": write a mapping with cert_file and key_file",
        ),
        ("tls_server_config: [\n", "tls_server_config"),
        (
            "tls_server_config:\n  cert_file: [a.pem, b.pem]\n  key_file: server-key.pem\n",
            "invalid value for tls_server_config.cert_file: write the path of a PEM file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: { a: 1 }\n",
            "invalid value for tls_server_config.min_version: write TLS12 or TLS13",
        ),
        (
            "http_server_config:\n  headers: 5\n",
            "invalid http_server_config.headers \"5\": write a mapping of header names",
        ),
        (
            "http_server_config: { http2: perhaps }\n",
            "invalid http_server_config.http2 \"perhaps\": write true or false",
        ),
        (
            "http_server_config:\n  headers: { X-Frame-Options: [1] }\n",
            "invalid value for http_server_config.headers.X-Frame-Options: write the header value as text",
        ),
        (
            "http_server_config:\n  http2:\n    - true\n",
            "invalid value for http_server_config.http2: write true or false",
        ),
        (
            "tls_server_config: {\n  cert_file: [a.pem],\n  key_file: server-key.pem }\n",
            "invalid value for tls_server_config.cert_file: write the path of a PEM file",
        ),
    ];
    for (text, expected) in cases {
        let found = problem(pki.parse(text));
        assert!(
            found.message.contains(expected),
            "{text:?} gave {found:?}, expected {expected:?}"
        );
        assert!(
            !found.message.contains("expected mapping start"),
            "{text:?} gave {found:?}"
        );
        assert!(found.line >= 1, "{text:?} gave {found:?}");
    }
}

#[test]
fn shape_errors_never_quote_possible_secrets() {
    let pki = Pki::new();
    let cases = [
        "tls_server_config: -----BEGIN PRIVATE KEY-----MIIEvQIBADAN\n",
        "http_server_config:\n  headers: -----BEGIN PRIVATE KEY-----MIIEvQIBADAN\n",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: { -----BEGIN PRIVATE KEY-----MIIEvQIBADAN: 1 }\n",
    ];
    for text in cases {
        let found = problem(pki.parse(text));
        assert!(
            !found.message.contains("MIIEvQIBADAN"),
            "{text:?} gave {found:?}"
        );
        assert!(found.message.contains("write"), "{text:?} gave {found:?}");
    }
}

#[test]
fn shape_error_names_whole_header_name() {
    let pki = Pki::new();
    let found = problem(pki.parse("http_server_config:\n  headers:\n    X-Frame-Options: [1]\n"));
    assert_eq!(
        found.message,
        "invalid value for http_server_config.headers.X-Frame-Options: write the header value as text"
    );
}

#[test]
fn key_with_space_is_never_echoed() {
    let pki = Pki::new();
    let cases = [
        "http_server_config:\n  headers:\n    X-Frame-Options sk-canary-ddd: [1]\n",
        "http_server_config:\n  headers:\n    \"sk-canary-yyy x\": [1]\n",
    ];
    for text in cases {
        let found = problem(pki.parse(text));
        assert_eq!(
            found.message,
            "key with a space in it under http_server_config.headers: is the colon missing after the name? Write the name, a colon, and then the header value as text",
            "{text:?}"
        );
        assert_eq!(found.line, 3, "{text:?}");
    }
}

#[test]
fn unclosed_bracket_names_the_key() {
    let pki = Pki::new();
    let found = problem(pki.parse("tls_server_config: [\n"));
    assert!(found.message.contains("tls_server_config"), "{found:?}");
    assert!(found.message.contains("write a mapping"), "{found:?}");
    assert!(
        found
            .message
            .contains("close or remove the [ after tls_server_config"),
        "{found:?}"
    );

    let closed = problem(pki.parse(
        "tls_server_config: [a]
",
    ));
    assert!(!closed.message.contains("never closed"), "{closed:?}");
}

#[test]
fn pending_handshakes_cap_each_source() {
    let pending = Arc::new(tls::PendingHandshakes::default());
    let busy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut slots: Vec<_> = (0..tls::MAX_PENDING_HANDSHAKES_PER_SOURCE)
        .map(|_| pending.try_start(busy).unwrap())
        .collect();
    assert_eq!(
        pending.try_start(busy).unwrap_err(),
        tls::HandshakeRejection::SourceFull
    );

    let from_other = pending.try_start(other);
    assert!(from_other.is_ok(), "{from_other:?}");

    drop(slots.pop());
    let again = pending.try_start(busy);
    assert!(again.is_ok(), "{again:?}");

    drop(again);
    drop(slots);
    assert_eq!(pending.pending_from(busy), 0);
    assert_eq!(pending.pending_from(other), 1);
}

#[test]
fn pending_handshakes_cap_the_total() {
    let pending = Arc::new(tls::PendingHandshakes::default());
    let mut slots = Vec::new();
    let mut host = 0_u32;
    while slots.len() < tls::MAX_PENDING_HANDSHAKES {
        let source = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + host));
        slots.push(pending.try_start(source).unwrap());
        host += 1;
    }
    let fresh: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        pending.try_start(fresh).unwrap_err(),
        tls::HandshakeRejection::AllFull
    );

    drop(slots.pop());
    let after_one_ends = pending.try_start(fresh);
    assert!(after_one_ends.is_ok(), "{after_one_ends:?}");
}

#[test]
fn ipv6_sources_are_counted_per_64_prefix() {
    let source = |text: &str| tls::source_of(text.parse().unwrap());
    assert_eq!(source("2001:db8::1"), source("2001:db8::ffff:2"));
    assert_ne!(source("2001:db8::1"), source("2001:db8:0:1::1"));
    assert_eq!(source("::ffff:127.0.0.1"), source("127.0.0.1"));
    assert_ne!(source("127.0.0.1"), source("127.0.0.2"));
}
