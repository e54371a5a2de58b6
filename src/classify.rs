//! Classification of probe outcomes into a bounded set of classes.
//!
//! Every probe ends in exactly one [`Class`]. The class says what the response was; whether it
//! was what the endpoint expects is a separate question answered by [`Expect`].

use std::fmt;
use std::str::FromStr;

/// The outcome class of one probe. Label values come only from [`Class::as_str`], so the
/// cardinality of the `class` label is bounded by this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A 2xx response.
    Ok,
    /// A 3xx response. Redirects are not followed unless configured.
    Redirect,
    /// A 400 response.
    BadRequest,
    /// A 401 response.
    Unauthorized,
    /// A 403 response.
    Forbidden,
    /// A 429 response.
    RateLimited,
    /// Any other 4xx response.
    Other4xx,
    /// A 500 response.
    ServerError,
    /// A 503 response.
    Unavailable,
    /// Any other 5xx response.
    Other5xx,
    /// No complete response arrived within the probe timeout.
    Timeout,
    /// The host name could not be resolved.
    DnsError,
    /// The TCP connection could not be established.
    ConnectError,
    /// The TLS handshake or certificate check failed.
    TlsError,
    /// The body could not be read, was over the size limit, failed to decode, or failed an
    /// assertion.
    BodyError,
}

impl Class {
    /// Every class, in the order of the documented table.
    pub const ALL: [Class; 15] = [
        Class::Ok,
        Class::Redirect,
        Class::BadRequest,
        Class::Unauthorized,
        Class::Forbidden,
        Class::RateLimited,
        Class::Other4xx,
        Class::ServerError,
        Class::Unavailable,
        Class::Other5xx,
        Class::Timeout,
        Class::DnsError,
        Class::ConnectError,
        Class::TlsError,
        Class::BodyError,
    ];

    /// Returns the class of an HTTP status code.
    ///
    /// Codes outside 200-599 (1xx informational codes never reach here as final responses, and
    /// codes above 599 are non-standard) are treated as a server answering outside the protocol
    /// and classed as `other_5xx` when at least 600, or `other_4xx` when below 200.
    #[must_use]
    pub fn from_status(code: u16) -> Class {
        match code {
            200..=299 => Class::Ok,
            300..=399 => Class::Redirect,
            400 => Class::BadRequest,
            401 => Class::Unauthorized,
            403 => Class::Forbidden,
            429 => Class::RateLimited,
            500 => Class::ServerError,
            503 => Class::Unavailable,
            501.. => Class::Other5xx,
            _ => Class::Other4xx,
        }
    }

    /// Returns the label value of this class, as documented.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Redirect => "redirect",
            Class::BadRequest => "bad_request",
            Class::Unauthorized => "unauthorized",
            Class::Forbidden => "forbidden",
            Class::RateLimited => "rate_limited",
            Class::Other4xx => "other_4xx",
            Class::ServerError => "server_error",
            Class::Unavailable => "unavailable",
            Class::Other5xx => "other_5xx",
            Class::Timeout => "timeout",
            Class::DnsError => "dns_error",
            Class::ConnectError => "connect_error",
            Class::TlsError => "tls_error",
            Class::BodyError => "body_error",
        }
    }

    /// Returns the class whose label is `label`.
    #[must_use]
    pub fn from_label(label: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == label)
    }

    /// Returns the health shown on the status page for this class. The status board shows a
    /// success that took longer than `degraded_after` as degraded instead.
    #[must_use]
    pub const fn health(self, success: bool) -> Health {
        match self {
            _ if success => Health::Up,
            Class::RateLimited => Health::Degraded,
            _ => Health::Down,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health for people: the three states of the status page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// The last probe matched `expect`.
    Up,
    /// The API responded but held back with 429, or a probe succeeded but took longer than the
    /// endpoint's `degraded_after`.
    Degraded,
    /// The last probe failed.
    Down,
}

impl Health {
    /// Returns the lowercase name shown on the status page and in the JSON API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// An inclusive range of status codes that an endpoint expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRange {
    /// The first code of the range.
    pub start: u16,
    /// The last code of the range, inclusive.
    pub end: u16,
}

/// The status codes that count as success for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect(Vec<CodeRange>);

impl Default for Expect {
    /// Expects any 2xx code.
    fn default() -> Self {
        Expect(vec![CodeRange {
            start: 200,
            end: 299,
        }])
    }
}

/// An invalid entry of `expect`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid expected status {value:?}: {reason}; write a code such as 200, a range such as 200-299 or a class such as 2xx, each within 100-599"
)]
pub struct ExpectError {
    /// The entry as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Expect {
    /// Builds the set from entries such as `"200"`, `"200-299"` or `"2xx"`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Expect, ExpectError> {
        if entries.is_empty() {
            return Err(ExpectError {
                value: String::new(),
                reason: "the list is empty",
            });
        }
        entries
            .iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Expect)
    }

    /// Reports whether `code` is one of the expected codes.
    #[must_use]
    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|r| (r.start..=r.end).contains(&code))
    }

    /// Formats the set as it would be written in the config, for the plan table.
    #[must_use]
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}-{}", r.start, r.end)
                }
            })
            .collect();
        parts.join(",")
    }
}

impl FromStr for CodeRange {
    type Err = ExpectError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| ExpectError {
            value: value.to_owned(),
            reason,
        };
        let trimmed = value.trim();
        let range = if let Some(class) = trimmed.strip_suffix("xx").or(trimmed.strip_suffix("XX")) {
            let digit: u16 = class.parse().map_err(|_| error("not a status class"))?;
            CodeRange {
                start: digit * 100,
                end: digit * 100 + 99,
            }
        } else if let Some((start, end)) = trimmed.split_once('-') {
            let start = start.trim().parse().map_err(|_| error("not a number"))?;
            let end = end.trim().parse().map_err(|_| error("not a number"))?;
            CodeRange { start, end }
        } else {
            let code = trimmed.parse().map_err(|_| error("not a number"))?;
            CodeRange {
                start: code,
                end: code,
            }
        };
        if !(100..=599).contains(&range.start) || !(100..=599).contains(&range.end) {
            return Err(error("out of range"));
        }
        if range.start > range.end {
            return Err(error("the range starts after it ends"));
        }
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_documented_classes() {
        let table = [
            (200, Class::Ok),
            (204, Class::Ok),
            (299, Class::Ok),
            (301, Class::Redirect),
            (304, Class::Redirect),
            (400, Class::BadRequest),
            (401, Class::Unauthorized),
            (402, Class::Other4xx),
            (403, Class::Forbidden),
            (404, Class::Other4xx),
            (418, Class::Other4xx),
            (429, Class::RateLimited),
            (499, Class::Other4xx),
            (500, Class::ServerError),
            (501, Class::Other5xx),
            (502, Class::Other5xx),
            (503, Class::Unavailable),
            (504, Class::Other5xx),
            (599, Class::Other5xx),
            (600, Class::Other5xx),
            (999, Class::Other5xx),
            (100, Class::Other4xx),
        ];
        for (code, class) in table {
            assert_eq!(Class::from_status(code), class, "status {code}");
        }
    }

    #[test]
    fn class_labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for class in Class::ALL {
            let label = class.as_str();
            assert!(seen.insert(label), "duplicate label {label}");
            assert!(
                label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "label {label} is not snake case"
            );
        }
        assert_eq!(seen.len(), 15);
    }

    #[test]
    fn health_follows_success_then_class() {
        assert_eq!(Class::Ok.health(true), Health::Up);
        assert_eq!(Class::BadRequest.health(true), Health::Up);
        assert_eq!(Class::RateLimited.health(false), Health::Degraded);
        assert_eq!(Class::Unavailable.health(false), Health::Down);
        assert_eq!(Class::Ok.health(false), Health::Down);
    }

    #[test]
    fn expect_accepts_codes_ranges_and_classes() {
        let expect = Expect::parse(&["200-204", "301", "4xx"]).unwrap();
        assert!(expect.matches(200));
        assert!(expect.matches(204));
        assert!(!expect.matches(205));
        assert!(expect.matches(301));
        assert!(expect.matches(429));
        assert!(!expect.matches(500));
        assert_eq!(expect.describe(), "200-204,301,400-499");
    }

    #[test]
    fn expect_defaults_to_2xx() {
        let expect = Expect::default();
        assert!(expect.matches(200));
        assert!(expect.matches(299));
        assert!(!expect.matches(300));
        assert!(!expect.matches(199));
    }

    #[test]
    fn expect_rejects_bad_entries_with_reason() {
        let cases = [
            ("abc", "not a number"),
            ("600", "out of range"),
            ("99", "out of range"),
            ("299-200", "the range starts after it ends"),
            ("9xx", "out of range"),
            ("zxx", "not a status class"),
            ("200-", "not a number"),
        ];
        for (value, reason) in cases {
            let err = Expect::parse(&[value]).unwrap_err();
            assert_eq!(err.reason, reason, "entry {value}");
            assert!(err.to_string().contains(value), "message names {value}");
        }
        let empty: [&str; 0] = [];
        assert_eq!(
            Expect::parse(&empty).unwrap_err().reason,
            "the list is empty"
        );
    }
}
