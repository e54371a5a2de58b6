//! The YAML config: parsing with source locations, validation into typed values, and the
//! probe plan of every endpoint.
//!
//! Every problem is reported with the file, line and column, the value as written, and what
//! would be valid. All problems in a file are reported together, so one edit fixes them all.

mod degraded;
mod raw;
mod schema;
pub(crate) mod shape;
mod tree;
pub mod units;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde_saphyr::{Location, Spanned};
use url::Url;

use crate::classify::Expect;
use crate::headroom::HeadroomConfig;
use crate::plan::{self, Plan};
use crate::ratelimit::RateLimit;
use crate::secret::{Secret, SecretSource};
use degraded::{Inherited, Level};
use raw::{HeaderSource, NumberOrText, OneOrMany, RawApi, RawConfig, RawEndpoint, RawGlobal};
pub use units::Share;

/// The default interval between probes when the share allows a shorter one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on body bytes read, counted after decompression.
pub const DEFAULT_BODY_LIMIT: u64 = 1 << 20;
/// The default longest pause a `Retry-After` header can impose.
pub const DEFAULT_RETRY_AFTER_CEILING: Duration = crate::headroom::DEFAULT_RETRY_AFTER_CEILING;

/// The maximum `interval` accepted, because a longer one is almost certainly a typo.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);
/// The maximum probe `timeout` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The maximum `retry_after_ceiling` accepted: a week, so a wrong header cannot silence an
/// endpoint for longer.
pub const MAX_RETRY_AFTER_CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Headers that the HTTP client sets from the request itself. A configured value would
/// break message framing (`Content-Length`, `Transfer-Encoding`, `TE`, `Trailer`), connection
/// handling (`Connection`, `Keep-Alive`, `Proxy-Connection`, `Upgrade`) or routing (`Host`).
const CLIENT_HEADERS: [&str; 9] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers that carry credentials: they must come from a secret reference, never a literal.
const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// A validated config.
#[derive(Clone, Debug)]
pub struct Config {
    /// Global settings after defaults.
    pub global: Global,
    /// Every endpoint of every API, in file order.
    pub endpoints: Vec<Endpoint>,
}

/// Global settings after defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// The default probe share.
    pub probe_share: Share,
    /// The default interval.
    pub interval: Duration,
    /// The default probe timeout.
    pub timeout: Duration,
    /// The default response time above which a successful probe shows as degraded; `None`
    /// leaves the check off.
    pub degraded_after: Option<Duration>,
    /// The default body cap in bytes.
    pub body_limit: u64,
    /// The longest pause a `Retry-After` header can impose.
    pub retry_after_ceiling: Duration,
    /// Whether redirects are followed by default.
    pub follow_redirects: bool,
}

/// A header value to send: literal text, or a secret resolved at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderText {
    /// Text from the config file.
    Literal(String),
    /// A secret; printed as `<redacted>`.
    Secret(Secret),
}

/// One endpoint, ready to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The API's configured name, the `api` label.
    pub api: String,
    /// The endpoint's configured name, the `endpoint` label.
    pub name: String,
    /// The request method.
    pub method: Method,
    /// The full URL: base URL joined with the path. It may hold a query string, so it is never
    /// logged or exported.
    pub url: Url,
    /// Headers to send: the API headers first, and then the endpoint headers, each of which
    /// replaces the API header of the same name in any letter case.
    pub headers: Vec<(HeaderName, HeaderText)>,
    /// The request body, if any.
    pub body: Option<String>,
    /// The status codes counted as success.
    pub expect: Expect,
    /// The documented limits.
    pub limits: Vec<RateLimit>,
    /// The share of each limit the monitor may spend.
    pub share: Share,
    /// The probe timeout.
    pub timeout: Duration,
    /// The response time above which a successful probe shows as degraded on the status page
    /// and in the JSON API; `None` leaves the check off. Always shorter than `timeout`.
    pub degraded_after: Option<Duration>,
    /// The cap on body bytes read, after decompression.
    pub body_limit: u64,
    /// Whether redirects are followed.
    pub follow_redirects: bool,
    /// The location of a credit balance in a JSON body.
    pub credit: Option<CreditSource>,
    /// Settings for reading rate-limit headers: the maximum wait they can impose and the form of
    /// `X-RateLimit-Reset`.
    pub headroom: HeadroomConfig,
    /// The schedule.
    pub plan: Plan,
}

/// A `JSONPath` to a credit balance.
#[derive(Clone, Debug)]
pub struct CreditSource {
    /// The path as written, for the plan table.
    pub text: String,
    /// The compiled path.
    pub path: serde_json_path::JsonPath,
}

impl PartialEq for CreditSource {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CreditSource {}

impl Endpoint {
    /// Returns `api/endpoint`, unique within a config.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}", self.api, self.name)
    }

    /// Reports whether every expected code is a 2xx or 3xx code, that is, whether the endpoint
    /// is expected to work rather than to reject the probe on purpose.
    #[must_use]
    pub fn expects_success(&self) -> bool {
        (100..=599)
            .filter(|&code| self.expect.matches(code))
            .all(|code| (200..400).contains(&code))
    }
}

/// One problem at one place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line; 0 when unknown.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// The problem and the valid alternatives.
    pub message: String,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {error}; {}", read_hint(error))]
    Read {
        /// The file name as given.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error(
        "{}{}",
        Problems(file, problems),
        note.as_ref().map_or_else(String::new, |note| format!("\n{note}"))
    )]
    Invalid {
        /// The file name as given.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
        /// The reason the list may be incomplete, printed after it.
        note: Option<String>,
    },
}

/// Returns the next step for a config file that cannot be read.
fn read_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            "pass the config path with --config.file, or copy examples/ratewatch.yml to start"
        }
        std::io::ErrorKind::PermissionDenied => "make it readable by the user that runs ratewatch",
        _ => "check the path given with --config.file",
    }
}

/// The maximum number of problems shown in one error. A file with thousands of unknown keys
/// would otherwise print megabytes to the terminal, the reload reply and one log line.
pub(crate) const MAX_SHOWN_PROBLEMS: usize = 50;

/// The maximum number of characters of one problem's message shown, because a message can
/// quote a key or value of any length.
pub(crate) const MAX_SHOWN_MESSAGE_CHARS: usize = 1000;

/// Formats problems as `file:line:column: message`, one per line. At most
/// [`MAX_SHOWN_PROBLEMS`] are shown, the first in the given order, followed by a line that
/// counts the rest. The config checks and the web config checks, and so `ratewatch check`,
/// the reload reply and the log, all print problems through this type.
pub(crate) struct Problems<'a>(pub(crate) &'a str, pub(crate) &'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.1.iter().take(MAX_SHOWN_PROBLEMS).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}:{}: ", self.0, problem.line, problem.column)?;
            match problem.message.char_indices().nth(MAX_SHOWN_MESSAGE_CHARS) {
                Some((cut, _)) => write!(
                    f,
                    "{} ... (message cut at {MAX_SHOWN_MESSAGE_CHARS} characters)",
                    &problem.message[..cut]
                )?,
                None => f.write_str(&problem.message)?,
            }
        }
        let hidden = self.1.len().saturating_sub(MAX_SHOWN_PROBLEMS);
        if hidden > 0 {
            let noun = if hidden == 1 { "problem" } else { "problems" };
            write!(
                f,
                "\n... and {hidden} more {noun}; fix these and run ratewatch check again"
            )?;
        }
        Ok(())
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path, secrets: &SecretSource) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        file: file.clone(),
        error,
    })?;
    parse(&text, &file, secrets)
}

/// Validates config text; `file` names it in messages.
pub fn parse(text: &str, file: &str, secrets: &SecretSource) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let (problems, note) = layout_problems(text, &e);
        ConfigError::Invalid {
            file: file.to_owned(),
            problems,
            note,
        }
    })?;
    let mut checker = Checker {
        problems: Vec::new(),
        secrets,
    };
    let config = checker.config(raw);
    let mut problems = checker.problems;
    if problems.is_empty() {
        return Ok(config);
    }
    problems.sort_by_key(|p| (p.line, p.column));
    Err(ConfigError::Invalid {
        file: file.to_owned(),
        problems,
        note: None,
    })
}

/// Returns every layout problem in `text`, which serde-saphyr rejected with `error`: the one
/// serde-saphyr found, and those [`tree::check`] finds in the rest of the file. When
/// [`tree::check`] cannot read the file, only the first problem is returned, with a note that
/// gives the reason.
fn layout_problems(text: &str, error: &serde_saphyr::Error) -> (Vec<Problem>, Option<String>) {
    let first = shape::explain(text, syntax_problem(error));
    let mut problems = match tree::check(text) {
        Ok(problems) => problems,
        Err(stop) => {
            let note = if (stop.line, stop.column) == (first.line, first.column) {
                "only this problem is shown, because the YAML cannot be read past it. Fix it and run ratewatch check again to see any others".to_owned()
            } else {
                format!(
                    "only the first problem is shown, because the check for more problems stopped at line {}, column {}: {}. Fix the problem above and run ratewatch check again to see any others",
                    stop.line, stop.column, stop.message
                )
            };
            return (vec![first], Some(note));
        }
    };
    let known = problems
        .iter()
        .any(|p| (p.line, p.column) == (first.line, first.column) || p.message == first.message);
    if !known {
        problems.push(first);
        problems.sort_by_key(|p| (p.line, p.column));
    }
    (problems, None)
}

/// Converts a YAML syntax or shape error into a problem at the location the parser reports.
pub(crate) fn syntax_problem(error: &serde_saphyr::Error) -> Problem {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let text = error.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    Problem {
        line,
        column,
        message,
    }
}

struct Checker<'a> {
    problems: Vec<Problem>,
    secrets: &'a SecretSource,
}

impl Checker<'_> {
    fn report(&mut self, at: Location, message: String) {
        self.problems.push(Problem {
            line: at.line(),
            column: at.column(),
            message,
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let (global, inherited) = self.global(&raw.global);
        if raw.apis.value.is_empty() {
            self.report(
                raw.apis.referenced,
                "apis is empty; list at least one API with its endpoints".to_owned(),
            );
        }
        let mut api_names = HashSet::new();
        let mut endpoints = Vec::new();
        for api in raw.apis.value {
            if !api_names.insert(api.name.value.clone()) {
                self.report(
                    api.name.referenced,
                    format!(
                        "duplicate API name {:?}; API names must be unique",
                        api.name.value
                    ),
                );
            }
            endpoints.extend(self.api(api, &global, &inherited));
        }
        Config { global, endpoints }
    }

    /// Validates the global settings, and returns them with the timeout and `degraded_after`
    /// that every API inherits.
    fn global(&mut self, raw: &RawGlobal) -> (Global, Inherited) {
        let defaults = Global {
            probe_share: Share::DEFAULT,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            degraded_after: None,
            body_limit: DEFAULT_BODY_LIMIT,
            retry_after_ceiling: DEFAULT_RETRY_AFTER_CEILING,
            follow_redirects: false,
        };
        let root = Inherited {
            timeout: defaults.timeout,
            timeout_valid: true,
            degraded_after: None,
        };
        let inherited = root.set(
            self,
            raw.timeout.as_ref(),
            raw.degraded_after.as_ref(),
            Level::Global,
        );
        let global = Global {
            probe_share: self
                .share(raw.probe_share.as_ref())
                .unwrap_or(defaults.probe_share),
            interval: self
                .duration(raw.interval.as_ref(), "interval", MAX_INTERVAL)
                .unwrap_or(defaults.interval),
            timeout: inherited.timeout,
            degraded_after: inherited.degraded_after.as_ref().map(|t| t.value),
            body_limit: self
                .body_limit(raw.body_limit.as_ref())
                .unwrap_or(defaults.body_limit),
            retry_after_ceiling: self
                .duration(
                    raw.retry_after_ceiling.as_ref(),
                    "retry_after_ceiling",
                    MAX_RETRY_AFTER_CEILING,
                )
                .unwrap_or(defaults.retry_after_ceiling),
            follow_redirects: raw.follow_redirects.unwrap_or(defaults.follow_redirects),
        };
        (global, inherited)
    }

    fn share(&mut self, raw: Option<&Spanned<NumberOrText>>) -> Option<Share> {
        let raw = raw?;
        match Share::parse(&raw.value) {
            Ok(share) => Some(share),
            Err(reason) => {
                let written = raw.value.as_written();
                self.report(raw.referenced, format!("invalid probe_share {written:?}: {reason}; write a percentage such as 10% or a fraction such as 0.1, above 0 and at most 100%"));
                None
            }
        }
    }

    fn duration(
        &mut self,
        raw: Option<&Spanned<String>>,
        key: &str,
        max: Duration,
    ) -> Option<Duration> {
        let raw = raw?;
        match units::parse_duration(&raw.value) {
            Ok(d) if d > max => {
                self.report(
                    raw.referenced,
                    format!(
                        "invalid {key} {:?}: must be at most {}; write a shorter duration",
                        raw.value,
                        crate::ratelimit::format_window(max)
                    ),
                );
                None
            }
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.report(
                    raw.referenced,
                    format!("invalid {key} {:?}: must be longer than zero", raw.value),
                );
                None
            }
            Err(reason) => {
                self.report(
                    raw.referenced,
                    format!(
                        "invalid {key} {:?}: {reason}; write a duration such as 30s, 5m or 1h30m",
                        raw.value
                    ),
                );
                None
            }
        }
    }

    fn body_limit(&mut self, raw: Option<&Spanned<NumberOrText>>) -> Option<u64> {
        let raw = raw?;
        match units::parse_bytes(&raw.value) {
            Ok(bytes) if bytes > 0 => Some(bytes),
            Ok(_) => {
                self.report(
                    raw.referenced,
                    "invalid body_limit 0: must be at least 1 byte".to_owned(),
                );
                None
            }
            Err(reason) => {
                let written = raw.value.as_written();
                self.report(raw.referenced, format!("invalid body_limit {written:?}: {reason}; write a size such as 1MiB, 64KiB or 4096"));
                None
            }
        }
    }

    fn name(&mut self, raw: &Spanned<String>, what: &str) {
        let valid = !raw.value.is_empty()
            && raw.value.len() <= 64
            && raw
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !valid {
            self.report(raw.referenced, format!("invalid {what} name {:?}: use 1 to 64 characters from A-Z, a-z, 0-9, '_', '-', '.' and ':', because it becomes a metric label", raw.value));
        }
    }

    fn base_url(&mut self, raw: &Spanned<String>) -> Option<Url> {
        let report_invalid = |checker: &mut Self, reason: &str| {
            checker.report(raw.referenced, format!("invalid base_url: {reason}; write an absolute http:// or https:// URL such as https://api.example.com/"));
        };
        let mut url = match Url::parse(raw.value.trim()) {
            Ok(url) => url,
            Err(e) => {
                report_invalid(self, &e.to_string());
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            report_invalid(self, &format!("scheme {:?} is not supported", url.scheme()));
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            // The URL is not echoed, because it contains credentials.
            report_invalid(
                self,
                "it contains a user name or password, which would leak into logs; use auth or a header with a secret reference",
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() {
            // The URL is not echoed, because a query string may contain a key.
            report_invalid(
                self,
                "it contains a query string or fragment, which joining a path would drop; put query parameters at the end of each endpoint's path, such as v1/models?page=1, and send keys in a header with a secret reference",
            );
            return None;
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
    }

    fn api(&mut self, api: RawApi, global: &Global, inherited: &Inherited) -> Vec<Endpoint> {
        self.name(&api.name, "API");
        let base_url = self.base_url(&api.base_url);
        let mut shared_headers = self.headers(&api.headers);
        self.auth_and_authorization_header(&api);
        if let Some(auth) = &api.auth {
            match self.secrets.resolve(&auth.value.bearer) {
                Ok(secret) => {
                    let value = Secret::new(format!("Bearer {}", secret.expose()));
                    shared_headers.push((http::header::AUTHORIZATION, HeaderText::Secret(value)));
                }
                Err(e) => self.report(auth.referenced, format!("auth.bearer: {e}")),
            }
        }
        let share = self
            .share(api.probe_share.as_ref())
            .unwrap_or(global.probe_share);
        let inherited = inherited.set(
            self,
            api.timeout.as_ref(),
            api.degraded_after.as_ref(),
            Level::Api(api.name.value.clone()),
        );
        let defaults = EndpointDefaults {
            api: &api.name.value,
            base_url: base_url.as_ref(),
            headers: &shared_headers,
            share,
            inherited,
            global,
        };
        if api.endpoints.value.is_empty() {
            self.report(
                api.endpoints.referenced,
                format!(
                    "API {:?} has no endpoints; list at least one",
                    api.name.value
                ),
            );
        }
        let mut names = HashSet::new();
        let mut requests: HashMap<(Method, String), String> = HashMap::new();
        let mut endpoints = Vec::new();
        for raw in api.endpoints.value {
            if !names.insert(raw.name.value.clone()) {
                self.report(raw.name.referenced, format!("duplicate endpoint name {:?} in API {:?}; endpoint names must be unique within an API", raw.name.value, api.name.value));
            }
            let at = raw.name.referenced;
            let Some(endpoint) = self.endpoint(raw, &defaults) else {
                continue;
            };
            let request = (endpoint.method.clone(), comparable_url(&endpoint.url));
            if let Some(first) = requests.get(&request) {
                // The URL is not echoed, because its query string may contain a key.
                self.report(at, format!("endpoint {:?} sends the same {} request as endpoint {first:?} in API {:?}, so each would get its own budget and together they could exceed the documented limit; merge them into one endpoint", endpoint.name, endpoint.method, api.name.value));
                continue;
            }
            requests.insert(request, endpoint.name.clone());
            endpoints.push(endpoint);
        }
        endpoints
    }

    /// Reports an API that sets both `auth` and an `Authorization` header, because both
    /// would be sent and the API would receive two Authorization headers.
    fn auth_and_authorization_header(&mut self, api: &RawApi) {
        let Some(auth) = &api.auth else {
            return;
        };
        let Some((name, value)) = api
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        else {
            return;
        };
        let at = value.referenced;
        self.report(auth.referenced, format!("auth sets the Authorization header, and headers sets it too as {name} at line {}, column {}; keep one of them", at.line(), at.column()));
    }

    fn headers(
        &mut self,
        raw: &std::collections::BTreeMap<String, Spanned<HeaderSource>>,
    ) -> Vec<(HeaderName, HeaderText)> {
        let repeats = self.repeated_headers(raw);
        let mut headers = Vec::new();
        for (name, value) in raw {
            if repeats.contains(name.as_str()) {
                continue;
            }
            if name.contains(char::is_whitespace) {
                self.report(value.referenced, shape::spaced_header_message());
                continue;
            }
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                self.report(value.referenced, shape::invalid_header_name_message());
                continue;
            };
            if CLIENT_HEADERS.contains(&header.as_str()) {
                let hint = if header == http::header::HOST {
                    "; to probe another host, change base_url"
                } else {
                    ""
                };
                self.report(value.referenced, format!("header {name} cannot be configured, because the HTTP client sets it from the request and a configured value breaks HTTP framing or routing; remove it{hint}"));
                continue;
            }
            let text = match &value.value {
                HeaderSource::Literal(_) if CREDENTIAL_HEADERS.contains(&header.as_str()) => {
                    // The literal is not echoed: it is probably a credential.
                    self.report(value.referenced, format!("header {name} carries credentials, so it must be a secret reference such as {{ env: API_TOKEN }} or {{ file: /run/secrets/token }}, not literal text"));
                    continue;
                }
                HeaderSource::Literal(text) => {
                    if HeaderValue::from_str(text).is_err() {
                        self.report(value.referenced, format!("invalid value for header {name}: it contains a control character or non-ASCII text"));
                        continue;
                    }
                    HeaderText::Literal(text.clone())
                }
                HeaderSource::Secret(reference) => match self.secrets.resolve(reference) {
                    Ok(secret) => HeaderText::Secret(secret),
                    Err(e) => {
                        self.report(value.referenced, format!("header {name}: {e}"));
                        continue;
                    }
                },
            };
            headers.push((header, text));
        }
        headers
    }

    /// Reports every header name that repeats an earlier one in the same mapping with other
    /// letter case, such as `cookie` after `Cookie`, and returns the repeats. Without this
    /// check one of the two values would be dropped without a word, because HTTP header
    /// names are case-insensitive. YAML itself rejects a name repeated with the same case.
    fn repeated_headers<'r>(
        &mut self,
        raw: &'r std::collections::BTreeMap<String, Spanned<HeaderSource>>,
    ) -> HashSet<&'r str> {
        // The map is sorted by name, so the locations decide which spelling comes second.
        let mut by_place: Vec<(&String, &Spanned<HeaderSource>)> = raw.iter().collect();
        by_place.sort_by_key(|(_, value)| (value.referenced.line(), value.referenced.column()));
        let mut first_seen: HashMap<String, (&str, Location)> = HashMap::new();
        let mut repeats = HashSet::new();
        for (name, value) in by_place {
            // An invalid name is reported on its own, without being echoed.
            if !shape::header_name_is_shown(name) {
                continue;
            }
            let folded = name.to_ascii_lowercase();
            match first_seen.get(&folded) {
                Some(&(first, at)) => {
                    self.report(value.referenced, format!("header {name} is given twice, also as {first} at line {}, column {}; header names are case-insensitive, so keep one of them", at.line(), at.column()));
                    repeats.insert(name.as_str());
                }
                None => {
                    first_seen.insert(folded, (name.as_str(), value.referenced));
                }
            }
        }
        repeats
    }

    fn endpoint(&mut self, raw: RawEndpoint, defaults: &EndpointDefaults<'_>) -> Option<Endpoint> {
        self.name(&raw.name, "endpoint");
        let start = self.problems.len();
        let url = self.endpoint_url(&raw.path, defaults.base_url);
        let method = self.method(raw.method.as_ref());
        if let (Some(body), Some(m)) = (&raw.body, &method)
            && matches!(*m, Method::GET | Method::HEAD)
        {
            self.report(
                body.referenced,
                format!("a {m} request cannot carry a body; remove body or set method: POST"),
            );
        }
        let mut headers = defaults.headers.to_vec();
        for (name, text) in self.headers(&raw.headers) {
            headers.retain(|(existing, _)| *existing != name);
            headers.push((name, text));
        }
        let expect = self.expect(raw.expect.as_ref());
        let limits = self.limits(raw.rate_limit.as_ref());
        let share = self
            .share(raw.probe_share.as_ref())
            .unwrap_or(defaults.share);
        let interval = self.duration(raw.interval.as_ref(), "interval", MAX_INTERVAL);
        let inherited = defaults.inherited.set(
            self,
            raw.timeout.as_ref(),
            raw.degraded_after.as_ref(),
            Level::Endpoint,
        );
        let body_limit = self
            .body_limit(raw.body_limit.as_ref())
            .unwrap_or(defaults.global.body_limit);
        let credit = raw.credit.as_ref().and_then(|c| self.credit(&c.json_path));
        if self.problems.len() > start {
            return None;
        }
        let timeout = inherited.timeout;
        let degraded_after = inherited.degraded_after.as_ref();
        if let Some(threshold) = degraded_after
            && inherited.timeout_valid
            && !self.check_degraded_after(defaults.api, &raw.name.value, threshold, timeout)
        {
            return None;
        }

        let plan = match plan::build(&limits, share, interval, defaults.global.interval) {
            Ok(plan) => plan,
            Err(e) => {
                let at = raw
                    .interval
                    .as_ref()
                    .map_or(raw.name.referenced, |i| i.referenced);
                self.report(at, format!("endpoint {:?}: {e}", raw.name.value));
                return None;
            }
        };
        Some(Endpoint {
            api: defaults.api.to_owned(),
            name: raw.name.value,
            method: method?,
            url: url?,
            headers,
            body: raw.body.map(|b| b.value),
            expect,
            limits,
            share,
            timeout,
            degraded_after: degraded_after.map(|t| t.value),
            body_limit,
            follow_redirects: raw
                .follow_redirects
                .unwrap_or(defaults.global.follow_redirects),
            credit,
            headroom: HeadroomConfig {
                retry_after_ceiling: defaults.global.retry_after_ceiling,
                reset_form: raw.rate_limit_reset.unwrap_or_default(),
            },
            plan,
        })
    }

    fn endpoint_url(&mut self, path: &Spanned<String>, base: Option<&Url>) -> Option<Url> {
        let text = path.value.trim();
        if text.starts_with('/') || text.contains("://") {
            self.report(path.referenced, format!("invalid path {:?}: it must be relative to base_url, without a leading '/', such as v1/models", path.value));
            return None;
        }
        let path_part = text.split(['?', '#']).next().unwrap_or_default();
        let dot_dot = path_part.split('/').any(|segment| {
            matches!(
                segment.to_ascii_lowercase().as_str(),
                ".." | ".%2e" | "%2e." | "%2e%2e"
            )
        });
        if dot_dot {
            self.report(path.referenced, format!("invalid path {:?}: '..' segments are not accepted, even where they stay below base_url; write the path without them", path.value));
            return None;
        }
        if text.contains('#') {
            self.report(
                path.referenced,
                format!(
                    "invalid path {:?}: a fragment after '#' is never sent; remove it",
                    path.value
                ),
            );
            return None;
        }
        let base = base?;
        match base.join(text) {
            Ok(url) if url.origin() != base.origin() || !url.path().starts_with(base.path()) => {
                self.report(path.referenced, format!("invalid path {:?}: it resolves outside base_url; write a path below base_url, or change base_url", path.value));
                None
            }
            Ok(url) => Some(url),
            Err(e) => {
                self.report(
                    path.referenced,
                    format!("invalid path {:?}: {e}", path.value),
                );
                None
            }
        }
    }

    fn method(&mut self, raw: Option<&Spanned<String>>) -> Option<Method> {
        const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let Some(raw) = raw else {
            return Some(Method::GET);
        };
        let upper = raw.value.trim().to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            return Method::from_bytes(upper.as_bytes()).ok();
        }
        self.report(
            raw.referenced,
            format!(
                "invalid method {:?}; use one of {}",
                raw.value,
                METHODS.join(", ")
            ),
        );
        None
    }

    fn expect(&mut self, raw: Option<&Spanned<Vec<NumberOrText>>>) -> Expect {
        let Some(raw) = raw else {
            return Expect::default();
        };
        let entries: Vec<String> = raw.value.iter().map(NumberOrText::as_written).collect();
        match Expect::parse(&entries) {
            Ok(expect) => expect,
            Err(e) => {
                self.report(raw.referenced, e.to_string());
                Expect::default()
            }
        }
    }

    fn limits(&mut self, raw: Option<&Spanned<OneOrMany>>) -> Vec<RateLimit> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        let texts = match &raw.value {
            OneOrMany::One(text) => vec![text.as_str()],
            OneOrMany::Many(list) => list.iter().map(String::as_str).collect(),
        };
        if texts.is_empty() {
            self.report(raw.referenced, "rate_limit is an empty list; remove it or write limits such as [100/hour, 1000/day]".to_owned());
        }
        let mut limits = Vec::new();
        let mut windows = BTreeSet::new();
        for text in texts {
            match text.parse::<RateLimit>() {
                Ok(limit) if !windows.insert(limit.window) => self.report(
                    raw.referenced,
                    format!(
                        "rate_limit lists the window of {text:?} twice; keep one limit per window"
                    ),
                ),
                Ok(limit) => limits.push(limit),
                Err(e) => self.report(raw.referenced, e.to_string()),
            }
        }
        limits
    }

    fn credit(&mut self, raw: &Spanned<String>) -> Option<CreditSource> {
        match serde_json_path::JsonPath::parse(&raw.value) {
            Ok(path) => Some(CreditSource {
                text: raw.value.clone(),
                path,
            }),
            Err(e) => {
                self.report(raw.referenced, format!("invalid credit.json_path {:?}: {e}; write a JSONPath such as $.credit or $.data.balance", raw.value));
                None
            }
        }
    }
}

/// Returns `url` in a form where two URLs that request the same resource are equal.
/// Percent-encoded unreserved characters (letters, digits, `-._~`) are decoded, and the
/// remaining escapes are written in upper case. Query parameters are sorted and empty ones
/// dropped, so `?a=1&b=2` and `?b=2&a=1&` are the same request, and `?` or `?&` is no query.
fn comparable_url(url: &Url) -> String {
    let text = url.as_str();
    let mut comparable = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        comparable.push_str(&rest[..at]);
        let escape = &rest[at..];
        let decoded = escape
            .get(1..3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte)
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') =>
            {
                comparable.push(char::from(byte));
                rest = &escape[3..];
            }
            Some(_) => {
                comparable.push_str(&escape[..3].to_ascii_uppercase());
                rest = &escape[3..];
            }
            None => {
                comparable.push('%');
                rest = &escape[1..];
            }
        }
    }
    comparable.push_str(rest);
    let Some((resource, query)) = comparable.split_once('?') else {
        return comparable;
    };
    let mut parameters: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if parameters.is_empty() {
        return resource.to_owned();
    }
    parameters.sort_unstable();
    format!("{resource}?{}", parameters.join("&"))
}

struct EndpointDefaults<'a> {
    api: &'a str,
    base_url: Option<&'a Url>,
    headers: &'a [(HeaderName, HeaderText)],
    share: Share,
    inherited: Inherited,
    global: &'a Global,
}

#[cfg(test)]
mod tests;

impl Config {
    /// Returns warnings about settings that are valid but probably unintended, such as a
    /// timeout that is not shorter than the interval.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .filter(|e| e.timeout >= e.plan.interval)
            .map(|e| {
                format!(
                    "endpoint {}: timeout {} is not shorter than the interval {}, so a slow answer delays the next probe",
                    e.key(),
                    plan::format_duration(e.timeout),
                    plan::format_duration(e.plan.interval)
                )
            })
            .collect()
    }
}
