//! Messages for a web configuration file whose YAML parses but has the wrong shape, such as a
//! number where `tls_server_config` expects a mapping, or an unknown boolean for `http2`.
//! serde-saphyr states these in its parser's terms (`expected mapping start`), so this module
//! finds the key at the reported position, quotes its value where the value cannot be a
//! secret, and states what to write.

use crate::config::Problem;
use crate::yaml_keys::{FoundKey, key_at};

/// Keys whose values are quoted in messages: file names, enumerated settings and booleans.
/// Other values can hold secrets: bcrypt hashes under `basic_auth_users`, and an inline
/// private key written into a `tls_server_config` mapping.
const QUOTED_KEYS: [&str; 7] = [
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "http2",
];

/// The maximum length, in characters, of a value quoted in a message.
const MAX_QUOTED_CHARS: usize = 60;

/// Returns what `key` expects, as written in a message after "write". `parent` is the key
/// that contains it, which distinguishes header names from the other keys.
fn expected_form(key: &str, parent: Option<&str>) -> Option<&'static str> {
    if parent == Some("headers") {
        return Some("the header value as text");
    }
    if parent == Some("basic_auth_users") {
        return Some("the user's bcrypt hash as text");
    }
    let form = match key {
        "tls_server_config" => {
            "a mapping with cert_file and key_file indented below it, or inline as { cert_file: server.crt, key_file: server.key }"
        }
        "http_server_config" => {
            "a mapping such as { headers: { X-Content-Type-Options: nosniff } }"
        }
        "basic_auth_users" => "a mapping of user names to bcrypt hashes, such as { alice: HASH }",
        "headers" => "a mapping of header names to values, such as { X-Frame-Options: deny }",
        "http2" => "true or false",
        "cert_file" | "key_file" | "client_ca_file" => {
            "the path of a PEM file, relative to the web config file's directory"
        }
        "client_auth_type" => "NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        "min_version" | "max_version" => "TLS12 or TLS13",
        _ => return None,
    };
    Some(form)
}

/// Rewrites a problem that serde-saphyr reported in `text` into one that names the key and
/// states what to write. Problems it does not recognise, including the messages of
/// `basic_auth_users`, which already state what to write, are returned unchanged.
pub(super) fn explain(text: &str, problem: Problem) -> Problem {
    let original = problem.message.as_str();
    if original.starts_with("multiple YAML documents") {
        return crate::config::shape::several_documents(text, &problem);
    }
    let message = if let Some(rest) = original.strip_prefix("duplicate mapping key") {
        let key = rest
            .trim_start_matches([':', ' '])
            .split([',', ' '])
            .next()
            .unwrap_or("")
            .trim_matches('`');
        if key.is_empty() {
            "a key is given twice in one mapping; keep one of them".to_owned()
        } else {
            format!("key {key} is given twice in one mapping; keep one of them")
        }
    } else if original == "unexpected end of input" {
        match key_at(text, problem.line, problem.column) {
            Some(found) => format!(
                "the file ends inside the value of {}; close every open bracket, brace and quote",
                found.path()
            ),
            None => {
                "the file ends inside a value; close every open bracket, brace and quote".to_owned()
            }
        }
    } else if is_shape_error(original) {
        let Some(found) = key_at(text, problem.line, problem.column) else {
            return problem;
        };
        let Some(form) = expected_form(&found.key, found.parent()) else {
            return problem;
        };
        // A key with a space in it is most often a key and its value with the colon missing,
        // and the value may be a bcrypt hash, so no word of the key is echoed.
        if found.key.contains(char::is_whitespace) {
            let under = found.parents.join(".");
            return Problem {
                message: format!(
                    "key with a space in it under {under}: is the colon missing after the name? Write the name, a colon, and then {form}"
                ),
                ..problem
            };
        }
        let path = found.path();
        let unclosed = unclosed_bracket(&found, text).map_or(String::new(), |bracket| {
            format!(", and close or remove the {bracket} after {path}, which is never closed")
        });
        match quotable_value(&found) {
            Some(value) => format!("invalid {path} {value:?}: write {form}{unclosed}"),
            None => format!("invalid value for {path}: write {form}{unclosed}"),
        }
    } else {
        return problem;
    };
    Problem { message, ..problem }
}

/// Reports whether serde-saphyr's message states that a value has the wrong shape or type.
fn is_shape_error(message: &str) -> bool {
    message.starts_with("expected ")
        || message.starts_with("invalid boolean")
        || message.starts_with("invalid type")
        || message.starts_with("invalid value")
}

/// Returns the value of `found` for a message, or `None` when the key's value could be a
/// secret or is not a short scalar. A number, boolean or null is quoted under any key outside
/// `basic_auth_users`, because none of them can be key material.
fn quotable_value(found: &FoundKey) -> Option<&str> {
    let value = found.value.as_deref()?;
    if value.chars().count() > MAX_QUOTED_CHARS {
        return None;
    }
    let outside_users =
        !found.parents.iter().any(|p| p == "basic_auth_users") && found.key != "basic_auth_users";
    if outside_users && is_plain_literal(value) {
        return Some(value);
    }
    let quoted = QUOTED_KEYS.contains(&found.key.as_str())
        && matches!(
            found.parent(),
            Some("tls_server_config" | "http_server_config")
        );
    let scalar = !value.starts_with(['[', '{', '|', '>', '&', '*', '!']);
    (quoted && scalar).then_some(value)
}

/// Returns the `[` or `{` that starts the value of `found` when `text` has fewer closing than
/// opening brackets of that kind. Brackets inside quoted strings are counted too.
fn unclosed_bracket(found: &FoundKey, text: &str) -> Option<char> {
    let (open, close) = match found.value.as_deref()?.chars().next()? {
        '[' => ('[', ']'),
        '{' => ('{', '}'),
        _ => return None,
    };
    let opened = text.matches(open).count();
    let closed = text.matches(close).count();
    (opened > closed).then_some(open)
}

/// Reports whether `value` is a YAML number, boolean or null.
fn is_plain_literal(value: &str) -> bool {
    matches!(value, "true" | "false" | "null" | "~") || value.parse::<f64>().is_ok()
}
