//! The web configuration file of `--web.config.file`: HTTPS, basic authentication and extra
//! response headers, in the YAML format that Prometheus exporters read (the exporter-toolkit
//! web configuration file).
//!
//! ratewatch reads the subset of that format listed in `docs/web-config.md`. Keys of the
//! format that ratewatch does not implement are rejected by name, and unknown keys are errors.
//! Every problem names the file, the line and column, the value (never a secret) and the fix.
//! Relative paths in the file are resolved against the file's own directory.
//!
//! The file is read at start and again on every reload (SIGHUP or `POST /-/reload`); see
//! [`LiveWebConfig`].

mod auth;
mod raw;
mod shape;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http::{HeaderName, HeaderValue};
use serde_saphyr::{Location, Spanned};

use crate::config::{Problem, Problems, syntax_problem};
pub use auth::{BasicAuth, MAX_CACHED_CREDENTIALS, check_bcrypt_hash};
use raw::{RawHttp, RawUsers, RawWebConfig};
pub use tls::{HANDSHAKE_TIMEOUT, TlsListener};

/// Response headers that the file may set, with the values allowed where the header's values
/// form a fixed set. This is the list that exporter-toolkit's `web` package accepts, so a file
/// that ratewatch accepts also passes `promtool check web-config`. Names are case-sensitive
/// there too.
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A validated web configuration.
pub struct WebConfig {
    /// The rustls server settings when the file enables HTTPS, `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The users of HTTP basic authentication, `None` when every request is let through.
    pub basic_auth: Option<BasicAuth>,
    /// Headers added to every response, including 401 responses.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebConfig {
    /// Shows whether TLS is on rather than the rustls settings, which hold the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.basic_auth)
            .field("headers", &self.headers)
            .finish()
    }
}

impl WebConfig {
    /// Returns a one-line summary without secrets, such as `HTTPS, 2 basic auth users, 1 header`.
    #[must_use]
    pub fn summary(&self) -> String {
        let scheme = if self.tls.is_some() { "HTTPS" } else { "HTTP" };
        let users = self.basic_auth.as_ref().map_or(0, BasicAuth::user_count);
        format!(
            "{scheme}, {users} basic auth user{}, {} extra header{}",
            plural(users),
            self.headers.len(),
            plural(self.headers.len())
        )
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A web configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read web config file {file}: {error}; check the --web.config.file path")]
    Read {
        /// The file name as given.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error("{}", Problems(file, problems))]
    Invalid {
        /// The file name as given.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// A reload would switch the running server between HTTP and HTTPS.
    #[error(
        "web config file {file} now {change}, but the listener keeps the scheme it started with; restart ratewatch to switch between HTTP and HTTPS"
    )]
    SchemeChange {
        /// The file name as given.
        file: String,
        /// `enables HTTPS` or `disables HTTPS`.
        change: &'static str,
    },
}

/// Reads and validates a web configuration file.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| WebConfigError::Read {
        file: file.clone(),
        error,
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    parse(&text, &file, base)
}

/// Validates web configuration text; `file` names it in messages and relative paths in it are
/// resolved against `base`.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<WebConfig, WebConfigError> {
    let invalid = |problems: Vec<Problem>| WebConfigError::Invalid {
        file: file.to_owned(),
        problems,
    };
    // An empty file, or one with only comments, is valid and changes nothing, as in
    // exporter-toolkit.
    let raw: RawWebConfig = if has_no_content(text) {
        RawWebConfig::default()
    } else {
        serde_saphyr::from_str(text)
            .map_err(|e| invalid(vec![shape::explain(text, syntax_problem(&e))]))?
    };
    let mut checker = Checker {
        problems: Vec::new(),
        base,
    };
    let config = checker.config(raw);
    let mut problems = checker.problems;
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            Err(invalid(problems))
        }
    }
}

fn has_no_content(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---")
}

struct Checker<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
}

impl Checker<'_> {
    fn report(&mut self, at: Location, message: impl Into<String>) {
        self.problems.push(Problem {
            line: at.line(),
            column: at.column(),
            message: message.into(),
        });
    }

    /// Returns the config, or `None` when a problem was reported.
    fn config(&mut self, raw: RawWebConfig) -> Option<WebConfig> {
        if let Some(limit) = &raw.rate_limit {
            self.report(
                limit.referenced,
                "rate_limit is not supported by ratewatch; remove it and limit request rates in a proxy in front of ratewatch",
            );
        }
        let tls = match &raw.tls_server_config {
            Some(section) => tls::build(self, &section.value, section.referenced),
            None => None,
        };
        let basic_auth = raw.basic_auth_users.map(|users| self.users(users));
        let headers = raw
            .http_server_config
            .map(|http| self.headers(http))
            .unwrap_or_default();
        if !self.problems.is_empty() {
            return None;
        }
        Some(WebConfig {
            tls,
            basic_auth: basic_auth.flatten(),
            headers,
        })
    }

    fn users(&mut self, raw: Spanned<RawUsers>) -> Option<BasicAuth> {
        let mut users = Vec::new();
        for (name, hash) in raw.value.0 {
            if name.is_empty() || name.contains(':') {
                self.report(
                    hash.referenced,
                    format!("invalid basic_auth_users name {name:?}: a user name must be non-empty and contain no ':', because HTTP basic authentication splits user and password at the first ':'"),
                );
                continue;
            }
            if let Err(reason) = auth::check_bcrypt_hash(hash.value.0.expose()) {
                // The hash is a secret: the message names the user only.
                self.report(
                    hash.referenced,
                    format!("invalid bcrypt hash for basic_auth_users user {name:?}: {reason}; generate one with `htpasswd -nBC 10 {name}` and paste the part after the ':'"),
                );
                continue;
            }
            users.push((name, hash.value.0));
        }
        // An empty map enables no authentication, as in exporter-toolkit.
        (!users.is_empty()).then(|| BasicAuth::new(users))
    }

    fn headers(&mut self, raw: RawHttp) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        for (name, value) in raw.headers {
            let Some((allowed_name, allowed_values)) =
                ALLOWED_HEADERS.iter().find(|(allowed, _)| *allowed == name)
            else {
                let hint = ALLOWED_HEADERS
                    .iter()
                    .find(|(allowed, _)| allowed.eq_ignore_ascii_case(&name))
                    .map_or(String::new(), |(allowed, _)| {
                        format!(" (header names are case-sensitive here: write {allowed})")
                    });
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                self.report(
                    value.referenced,
                    format!("http_server_config.headers cannot set {name:?}{hint}; the headers that can be set are {}", names.join(", ")),
                );
                continue;
            };
            if !allowed_values.is_empty() && !allowed_values.contains(&value.value.as_str()) {
                self.report(
                    value.referenced,
                    format!(
                        "invalid value {:?} for header {allowed_name}; write one of {}",
                        value.value,
                        allowed_values.join(", ")
                    ),
                );
                continue;
            }
            match HeaderValue::from_str(&value.value) {
                Ok(header_value) => {
                    headers.push((allowed_header_name(allowed_name), header_value));
                }
                Err(_) => self.report(
                    value.referenced,
                    format!("invalid value {:?} for header {allowed_name}: a header value must be visible ASCII text without line breaks", value.value),
                ),
            }
        }
        headers
    }

    /// Resolves a path from the file against the file's directory.
    fn path(&self, written: &str) -> PathBuf {
        self.base.join(written)
    }
}

/// Converts a name from [`ALLOWED_HEADERS`] into a [`HeaderName`], which stores it in lowercase.
fn allowed_header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("every name in ALLOWED_HEADERS is valid")
}

/// The web configuration in force, replaced as a whole on each successful reload.
///
/// Each connection and request reads the configuration current when it starts, so a reload
/// never changes a request half way through. A TLS handshake uses the certificate loaded at
/// the last successful reload: rotating a certificate takes a reload, not only a new file.
pub struct LiveWebConfig {
    path: PathBuf,
    current: RwLock<Arc<WebConfig>>,
}

impl fmt::Debug for LiveWebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveWebConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LiveWebConfig {
    /// Reads the file at `path`; an invalid file is an error.
    pub fn load(path: PathBuf) -> Result<LiveWebConfig, WebConfigError> {
        let config = load(&path)?;
        Ok(LiveWebConfig {
            path,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Returns the file this configuration is read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the configuration in force.
    #[must_use]
    pub fn current(&self) -> Arc<WebConfig> {
        // A poisoned lock still contains a whole Arc, because the writer only swaps it.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again and puts it in force. An invalid file, or one that switches between
    /// HTTP and HTTPS, is rejected and the configuration in force stays.
    pub fn reload(&self) -> Result<Arc<WebConfig>, WebConfigError> {
        let config = load(&self.path)?;
        let running = self.current();
        if config.tls.is_some() != running.tls.is_some() {
            return Err(WebConfigError::SchemeChange {
                file: self.path.display().to_string(),
                change: if config.tls.is_some() {
                    "enables HTTPS"
                } else {
                    "disables HTTPS"
                },
            });
        }
        let config = Arc::new(config);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config.clone();
        Ok(config)
    }
}
