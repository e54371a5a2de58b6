//! Secrets given by reference: an environment variable or a file, resolved once at load.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` both show `<redacted>`, so a
//! secret cannot reach a log line, a metric or an error message by accident.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The longest secret file read. A token or cookie is far smaller; a larger file is almost
/// certainly the wrong file.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A reference to a secret, as written in the config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without one trailing newline.
    File(PathBuf),
}

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must never be printed.
    #[must_use]
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// Returns the value, for building a request header and nothing else.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret that could not be resolved. Messages name the variable or file, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error(
        "environment variable {} is not set; export it before starting ratewatch",
        shown_name(.0)
    )]
    EnvMissing(String),
    /// The name is not an environment variable name. It is not kept, because a name with a
    /// space, `=`, `:` or `/` in it is more likely the secret itself, written in place of a
    /// name.
    #[error(
        "the name in {{ env: NAME }} is not an environment variable name, so it is not shown in case it is the secret itself; write the name of a variable that holds the secret, such as API_TOKEN"
    )]
    EnvName,
    /// The environment variable is set but empty or not UTF-8.
    #[error(
        "environment variable {} is empty or not valid UTF-8; set it to the secret value",
        shown_name(.0)
    )]
    EnvInvalid(String),
    /// The file could not be read.
    #[error(
        "cannot read secret file {}: {}; check the path and its permissions",
        shown_path(path),
        kind_text(*kind)
    )]
    File {
        /// The file named in the config.
        path: PathBuf,
        /// The I/O error kind (not its message, which may quote file contents on some systems).
        kind: std::io::ErrorKind,
    },
    /// The file is empty, too large or not UTF-8.
    #[error(
        "secret file {path} is {problem}; it must hold the secret as UTF-8 text of at most 64 KiB"
    )]
    FileInvalid {
        /// The file named in the config.
        path: PathBuf,
        /// What is wrong with the contents.
        problem: &'static str,
    },
    /// The value contains characters that cannot go into an HTTP header.
    #[error(
        "secret from {0} contains a control character or newline, so it cannot be sent in an HTTP header"
    )]
    NotHeaderSafe(String),
}

/// The source of secrets. The daemon reads the process environment; `demo` and tests add
/// values on top without touching the environment.
#[derive(Clone, Debug, Default)]
pub struct SecretSource {
    overlay: HashMap<String, Secret>,
}

impl SecretSource {
    /// Returns a source that reads the process environment and files only.
    #[must_use]
    pub fn from_env() -> SecretSource {
        SecretSource::default()
    }

    /// Adds a value used when the environment variable `name` is not set.
    #[must_use]
    pub fn with_fallback(mut self, name: &str, value: &str) -> SecretSource {
        self.overlay
            .insert(name.to_owned(), Secret::new(value.to_owned()));
        self
    }

    /// Resolves one reference.
    pub fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        let (value, origin) = match reference {
            SecretRef::Env(name) => (self.read_env(name)?, format!("environment variable {name}")),
            SecretRef::File(path) => (read_file(path)?, format!("file {}", path.display())),
        };
        if value
            .expose()
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(SecretError::NotHeaderSafe(origin));
        }
        Ok(value)
    }

    fn read_env(&self, name: &str) -> Result<Secret, SecretError> {
        if !is_env_name(name) {
            return Err(SecretError::EnvName);
        }
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            Ok(_) | Err(std::env::VarError::NotUnicode(_)) => {
                Err(SecretError::EnvInvalid(name.to_owned()))
            }
            Err(std::env::VarError::NotPresent) => self
                .overlay
                .get(name)
                .cloned()
                .ok_or_else(|| SecretError::EnvMissing(name.to_owned())),
        }
    }
}

/// Reports whether `name` can be an environment variable name as configs write them:
/// ASCII letters, digits, `_`, `-` and `.`, as Kubernetes and Docker env files allow.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Returns `name` for a message when it reads like a conventional variable name: capital
/// letters, digits and `_`, as in `API_TOKEN`. Any other name is not shown, because tokens
/// such as `ghp_...` or `sk_live_...` pass [`is_env_name`] too. The message still gives the
/// line and column of the reference.
fn shown_name(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        name.to_owned()
    } else {
        "(name not shown, because it may be the secret itself)".to_owned()
    }
}

/// Returns `path` for a message, unless it may be a token written in place of a path: 20
/// characters or more that start with neither `/` nor `.`. The message still gives the line
/// and column of the reference.
fn shown_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.chars().count() >= 20 && !text.starts_with(['/', '.']) {
        "(not shown, because it may be the secret itself)".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Describes an I/O error kind in the words of file tools.
fn kind_text(kind: std::io::ErrorKind) -> String {
    match kind {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        other => other.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let invalid = |problem| SecretError::FileInvalid {
        path: path.to_owned(),
        problem,
    };
    let io_error = |e: std::io::Error| SecretError::File {
        path: path.to_owned(),
        kind: e.kind(),
    };
    let size = std::fs::metadata(path).map_err(io_error)?.len();
    if size > MAX_SECRET_FILE_BYTES {
        return Err(invalid("larger than 64 KiB"));
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not valid UTF-8"))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(Secret::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secret_drops_one_trailing_newline() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"token-value\n").unwrap();
        let source = SecretSource::from_env();
        let secret = source
            .resolve(&SecretRef::File(file.path().to_owned()))
            .unwrap();
        assert_eq!(secret.expose(), "token-value");
    }

    #[test]
    fn file_secret_errors_name_the_path_only() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"line-one\nline-two-secret\n").unwrap();
        let err = SecretSource::from_env()
            .resolve(&SecretRef::File(file.path().to_owned()))
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("control character or newline"),
            "{message}"
        );
        assert!(!message.contains("line-two-secret"), "{message}");

        let missing = SecretRef::File("/nonexistent/ratewatch-secret".into());
        let message = SecretSource::from_env()
            .resolve(&missing)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("/nonexistent/ratewatch-secret"),
            "{message}"
        );
        assert!(message.contains("no such file"), "{message}");
    }

    #[test]
    fn env_secret_falls_back_to_overlay_only_when_unset() {
        let name = "RATEWATCH_TEST_SECRET_THAT_IS_NEVER_SET";
        let source = SecretSource::from_env().with_fallback(name, "overlay-value");
        let secret = source.resolve(&SecretRef::Env(name.to_owned())).unwrap();
        assert_eq!(secret.expose(), "overlay-value");

        let err = SecretSource::from_env()
            .resolve(&SecretRef::Env(name.to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains(name));
    }

    #[test]
    fn secret_written_as_env_name_is_not_echoed() {
        let source = SecretSource::from_env();
        for name in [
            "Bearer CANARY_ENVNAME13",
            "session=CANARY22",
            "sk-live:CANARY33",
            "",
        ] {
            let error = source
                .resolve(&SecretRef::Env(name.to_owned()))
                .expect_err("resolved a name that is no variable name");
            let message = error.to_string();
            assert!(matches!(error, SecretError::EnvName), "{name:?}: {message}");
            assert!(!message.contains("CANARY"), "{message}");
        }
        let error = source
            .resolve(&SecretRef::Env("RATEWATCH_TEST_UNSET_4711".to_owned()))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable RATEWATCH_TEST_UNSET_4711 is not set; export it before starting ratewatch"
        );

        // Tokens made only of name characters are accepted as names, but never shown.
        for token in [
            "ghp_AbC123CANARYdef456",
            "sk_live_51HCANARY",
            "eyJhbGciOi.CANARY.sig",
        ] {
            let error = source
                .resolve(&SecretRef::Env(token.to_owned()))
                .expect_err("a token resolved as a variable");
            let message = error.to_string();
            assert!(matches!(error, SecretError::EnvMissing(_)), "{message}");
            assert!(!message.contains("CANARY"), "{message}");
            assert!(message.contains("name not shown"), "{message}");
        }
    }

    #[test]
    fn env_names_with_dash_and_dot_are_read() {
        let source = SecretSource::from_env()
            .with_fallback("api-key.v2", "from-fallback")
            .with_fallback("api_token", "lower");
        let secret = source
            .resolve(&SecretRef::Env("api-key.v2".to_owned()))
            .unwrap();
        assert_eq!(secret.expose(), "from-fallback");
        let secret = source
            .resolve(&SecretRef::Env("api_token".to_owned()))
            .unwrap();
        assert_eq!(secret.expose(), "lower");
    }

    #[test]
    fn missing_secret_file_says_no_such_file() {
        let source = SecretSource::from_env();
        let error = source
            .resolve(&SecretRef::File("/nonexistent/ratewatch/token".into()))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read secret file /nonexistent/ratewatch/token: no such file; check the path and its permissions"
        );
        let error = source
            .resolve(&SecretRef::File("skliveCANARY0123456789abcdef".into()))
            .unwrap_err();
        let message = error.to_string();
        assert!(!message.contains("CANARY"), "{message}");
        assert!(message.contains("no such file"), "{message}");
        let error = source
            .resolve(&SecretRef::File("eyJhbGciOi.CANARY.signature".into()))
            .unwrap_err();
        assert!(!error.to_string().contains("CANARY"), "{error}");
    }
}
