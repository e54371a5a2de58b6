//! Redis URLs with their credentials removed, for error messages.
//!
//! The user name and password sit in the URL's userinfo (`redis://user:password@host`), and
//! Unix-socket URLs may carry them as query parameters (`redis+unix:///path?pass=password`).
//! The userinfo is taken to end at the last `@`, so a password with an unescaped `/`, `?`,
//! `#` or `@` is still removed whole.

/// The text that replaces each credential.
const MASK: &str = "xxxxx";

/// Query parameters that carry a password in Unix-socket URLs.
const SECRET_PARAMETERS: [&str; 2] = ["pass", "password"];

/// A Redis URL safe to print, and the secrets to remove from messages about it.
#[derive(Clone, Debug)]
pub(crate) struct RedactedUrl {
    display: String,
    secrets: Vec<String>,
}

impl RedactedUrl {
    /// Redacts any text, valid URL or not, without parsing it as a URL.
    pub(crate) fn new(url: &str) -> RedactedUrl {
        let mut secrets = Vec::new();
        let (scheme, rest) = match url.find("://") {
            Some(at) => url.split_at(at + 3),
            None => ("", url),
        };
        let rest = match rest.rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
                add_secret(&mut secrets, password);
                format!("{MASK}{}", &rest[at..])
            }
            None => rest.to_owned(),
        };
        let display = format!("{scheme}{}", redact_query(&rest, &mut secrets));
        RedactedUrl { display, secrets }
    }

    /// Returns the URL with its credentials replaced by `xxxxx`.
    pub(crate) fn as_str(&self) -> &str {
        &self.display
    }

    /// Reports whether the URL's scheme is one that connects over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        let scheme = self.scheme();
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    }

    /// Reports whether the URL's scheme is one that connects over TCP without TLS.
    pub(crate) fn is_plain_tcp(&self) -> bool {
        let scheme = self.scheme();
        scheme.eq_ignore_ascii_case("redis") || scheme.eq_ignore_ascii_case("valkey")
    }

    fn scheme(&self) -> &str {
        self.display
            .split_once("://")
            .map_or("", |(scheme, _)| scheme)
    }

    /// Returns `text` with every occurrence of the URL's passwords, as written or
    /// percent-decoded, replaced by `xxxxx`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut scrubbed = text.to_owned();
        for secret in &self.secrets {
            scrubbed = scrubbed.replace(secret.as_str(), MASK);
        }
        scrubbed
    }
}

/// Masks the values of the password parameters in the query of `rest`, if it has one.
fn redact_query(rest: &str, secrets: &mut Vec<String>) -> String {
    let Some((before, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if SECRET_PARAMETERS.contains(&name) => {
                add_secret(secrets, value);
                format!("{name}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let mut redacted = format!("{before}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

/// Records a secret as written and percent-decoded; empty values are no secret.
fn add_secret(secrets: &mut Vec<String>, raw: &str) {
    if raw.is_empty() {
        return;
    }
    let decoded = percent_decode(raw);
    // Longest first, so a secret that contains another is replaced whole.
    for secret in [raw.to_owned(), decoded] {
        if !secret.is_empty() && !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_without_credentials_is_unchanged() {
        for url in [
            "redis://127.0.0.1:6379/",
            "redis://localhost/2",
            "redis+unix:///run/redis.sock?db=1",
            "not a url",
        ] {
            assert_eq!(RedactedUrl::new(url).as_str(), url);
        }
    }

    #[test]
    fn userinfo_is_masked() {
        let cases = [
            (
                "redis://:hunter2@127.0.0.1:1/",
                "redis://xxxxx@127.0.0.1:1/",
            ),
            (
                "redis://alice:hunter2@host:6379/0",
                "redis://xxxxx@host:6379/0",
            ),
            ("rediss://hunter2@host", "rediss://xxxxx@host"),
            (
                "rediss://alice:hunter2@127.0.0.1:6380/0#insecure",
                "rediss://xxxxx@127.0.0.1:6380/0#insecure",
            ),
            ("valkeys://:hunter2@host:6380", "valkeys://xxxxx@host:6380"),
            ("redis://:pa/ss@w?rd#x@host/", "redis://xxxxx@host/"),
            ("hunter2@host", "xxxxx@host"),
        ];
        for (url, expected) in cases {
            let redacted = RedactedUrl::new(url);
            assert_eq!(redacted.as_str(), expected, "{url}");
        }
    }

    #[test]
    fn password_query_parameters_are_masked() {
        let redacted = RedactedUrl::new("redis+unix:///run/redis.sock?db=1&pass=hunter2#frag");
        assert_eq!(
            redacted.as_str(),
            "redis+unix:///run/redis.sock?db=1&pass=xxxxx#frag"
        );
        let redacted = RedactedUrl::new("unix:///sock?password=hunter2&user=alice");
        assert_eq!(redacted.as_str(), "unix:///sock?password=xxxxx&user=alice");
        assert_eq!(redacted.scrub("auth hunter2 failed"), "auth xxxxx failed");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_password() {
        let redacted = RedactedUrl::new("redis://:hunter%232@host/");
        assert_eq!(redacted.scrub("bad hunter%232"), "bad xxxxx");
        assert_eq!(redacted.scrub("bad hunter#2"), "bad xxxxx");
        assert_eq!(redacted.scrub("no secret here"), "no secret here");
    }

    #[test]
    fn tls_url_password_is_scrubbed_from_messages() {
        let redacted = RedactedUrl::new("rediss://replica:p%40ss%2Fw0rd@127.0.0.1:6380/");
        assert_eq!(redacted.as_str(), "rediss://xxxxx@127.0.0.1:6380/");
        assert_eq!(
            redacted.scrub("AUTH p@ss/w0rd rejected over TLS"),
            "AUTH xxxxx rejected over TLS"
        );
        assert_eq!(redacted.scrub("sent p%40ss%2Fw0rd"), "sent xxxxx");
    }

    #[test]
    fn tls_schemes_are_recognized() {
        for url in ["rediss://:pw@host/", "REDISS://host", "valkeys://host:6380"] {
            assert!(RedactedUrl::new(url).is_tls(), "{url}");
        }
        for url in ["redis://host/", "redis+unix:///sock", "not a url"] {
            assert!(!RedactedUrl::new(url).is_tls(), "{url}");
        }
        for url in ["redis://:pw@host/", "REDIS://host", "valkey://host:6379"] {
            assert!(RedactedUrl::new(url).is_plain_tcp(), "{url}");
        }
        for url in [
            "rediss://host/",
            "redis+unix:///sock",
            "unix:///sock",
            "not a url",
        ] {
            assert!(!RedactedUrl::new(url).is_plain_tcp(), "{url}");
        }
    }

    #[test]
    fn empty_password_scrubs_nothing() {
        let redacted = RedactedUrl::new("redis://@host/");
        assert_eq!(redacted.as_str(), "redis://xxxxx@host/");
        assert_eq!(redacted.scrub("connection refused"), "connection refused");
    }

    #[test]
    fn percent_decode_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
