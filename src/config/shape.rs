//! Messages for YAML that does not have the shape of a config: a list where text is expected,
//! an unknown boolean, a key given twice. serde-saphyr reports these in terms of its own
//! parser, so this module names the key and the value as written, and states what to write.

use super::Problem;
use crate::yaml_keys;

/// Returns the form a key expects, as written in a message after "write".
fn expected_form(key: &str) -> Option<&'static str> {
    let form = match key {
        "apis" => {
            "a list of APIs, each with name, base_url and endpoints, as in examples/ratewatch.yml"
        }
        "endpoints" => "a list of endpoints, each with name and path",
        "global" => "a mapping of defaults such as { probe_share: 10%, interval: 30s }",
        "expect" => "a list of status codes or ranges such as [200, 204] or [2xx]",
        "rate_limit" => "a limit such as 100/hour or a list such as [100/hour, 1000/day]",
        "interval" | "timeout" | "retry_after_ceiling" => "a duration such as 30s, 5m or 1h30m",
        "degraded_after" => "a duration such as 2s or 1500ms, or off",
        "follow_redirects" => "true or false",
        "headers" => "a mapping of header names to values, such as { Accept: application/json }",
        "auth" => "a mapping such as { bearer: { env: API_TOKEN } }",
        "bearer" => "a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }",
        "credit" => "a mapping such as { json_path: $.credit }",
        "probe_share" => "a percentage such as 10% or a fraction such as 0.1",
        "body_limit" => "a size such as 1MiB, 64KiB or 4096",
        "rate_limit_reset" => "one of auto, delta_seconds, unix_seconds or unix_millis",
        "name" | "base_url" | "path" | "method" | "body" | "json_path" => "text",
        _ => return None,
    };
    Some(form)
}

/// Keys whose values are echoed in messages. Other keys are header names, whose values may be
/// credentials.
fn echoes_value(key: &str) -> bool {
    expected_form(key).is_some() && !matches!(key, "headers" | "auth" | "bearer" | "body")
}

/// Rewrites a problem that serde-saphyr reported in `text` into one that names the key and
/// states what to write. Problems it does not recognise are returned unchanged.
pub(super) fn explain(text: &str, problem: Problem) -> Problem {
    if is_empty_document(text) {
        return Problem {
            line: 1,
            column: 1,
            message:
                "config file is empty; start from examples/ratewatch.yml, which lists every key"
                    .to_owned(),
        };
    }
    let original = problem.message.as_str();
    if original.starts_with("multiple YAML documents") {
        return several_documents(text, &problem);
    }
    let message = if let Some(rest) = original.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        duplicate_key_message(key)
    } else if let Some(rest) = original.strip_prefix("missing field `") {
        missing_key_message(rest.trim_end_matches('`'), None)
    } else if let Some(rest) = original.strip_prefix("unknown field `") {
        parse_unknown_field(original, rest)
    } else if let Some(breach) = original.strip_prefix("budget breached: ") {
        budget_message(breach)
    } else if original == "unexpected end of input" {
        "the file ends inside a value; close every open bracket, brace and quote".to_owned()
    } else if original.starts_with("tabs disallowed") {
        format!("{original}; indent with spaces, because YAML does not allow tabs here")
    } else if original == "unclosed quote" {
        "unclosed quote: the quote that opens here has no closing quote; close it".to_owned()
    } else if original.contains("mapping values are not allowed") {
        format!(
            "{original}; a value that contains \": \" must be quoted, as in \"a: b\", so quote it; otherwise check the indentation of this line against the lines above it"
        )
    } else if original.contains("did not find expected key") {
        format!(
            "{original}; check the indentation of this line against the lines above it, as in the example config of the README"
        )
    } else if is_shape_error(original) {
        shape_message(text, &problem, original)
    } else {
        return problem;
    };
    Problem { message, ..problem }
}

/// Rewrites serde-saphyr's "multiple YAML documents detected", which advises functions of
/// its API, into a problem at the `---` line that starts the second document, when one is
/// found. ratewatch reads each file as one document.
pub(crate) fn several_documents(text: &str, problem: &Problem) -> Problem {
    let separator = second_document_line(text);
    let start = separator.map_or_else(String::new, |line| {
        format!("; the second document starts at line {line}")
    });
    let (line, column) = separator.map_or((problem.line, problem.column), |line| (line, 1));
    Problem {
        line,
        column,
        message: format!(
            "the file contains several YAML documents separated by --- lines, and ratewatch reads only one{start}. Keep one document: move the settings of the others into it and remove the --- lines"
        ),
    }
}

/// Returns the 1-based line of the `---` that starts a second document: the first `---`
/// line after a line with content. A `---` before any content starts the first document.
fn second_document_line(text: &str) -> Option<u64> {
    let mut content_seen = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        let is_separator = trimmed == "---" || trimmed.starts_with("--- ");
        if is_separator && content_seen {
            return u64::try_from(index + 1).ok();
        }
        let blank = trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#');
        let directive = trimmed.starts_with('%');
        let content_after_separator = is_separator && !trimmed[3..].trim().is_empty();
        if (!blank && !directive && !is_separator) || content_after_separator {
            content_seen = true;
        }
    }
    None
}

/// Returns the message for a limit of the YAML parser that the file exceeds. `breach` is
/// serde-saphyr's name of the limit and the count reached, such as `Nodes { nodes: 250001 }`.
fn budget_message(breach: &str) -> String {
    let limit = breach.split_whitespace().next().unwrap_or(breach);
    match limit {
        "Nodes" | "Events" | "Aliases" | "Anchors" => format!(
            "the file exceeds the YAML parser's limit on {} here, because aliases (*name) repeat the values of their anchors (&name) too often; write the values out or use fewer aliases",
            limit.to_ascii_lowercase()
        ),
        "Depth" => {
            "lists and mappings are nested deeper than the YAML parser's limit here; flatten them"
                .to_owned()
        }
        _ => format!(
            "the file exceeds the YAML parser's limit on {} here; make it smaller",
            limit.to_ascii_lowercase()
        ),
    }
}

/// Returns the message for a key given twice in one mapping. A key with a space in it is not
/// echoed, because it may be a key and a secret value with the colon missing.
pub(super) fn duplicate_key_message(key: &str) -> String {
    if key.contains(char::is_whitespace) {
        return "a key with a space in it is given twice in one mapping; keep one of them"
            .to_owned();
    }
    format!("key {key} is given twice in one mapping; keep one of them")
}

/// Returns the message for a header name with a space in it, which is most often a header
/// line with no colon after the name, such as `Authorization Bearer sk-...`. No word of the
/// name is echoed, because any of them may be a secret: the value, or a key pasted before
/// the name.
pub(super) fn spaced_header_message() -> String {
    "header name with a space in it: is the colon missing after the name? Write the header name, a colon, and then text, or a secret reference such as { env: API_TOKEN } for a credential".to_owned()
}

/// Returns the message for a header name that is not a valid HTTP field name. The name is not
/// echoed: a name joined to its value by a character other than a colon, such as
/// `X-Api-Key=sk-...` or an escaped space, contains the value.
pub(super) fn invalid_header_name_message() -> String {
    "invalid header name: a header name has only letters, digits and the characters !#$%&'*+-.^_`|~, so is the colon missing after the name? The name is not shown because it may contain the value".to_owned()
}

/// Returns whether `name`, as written in the file, may be echoed in a message: only a valid
/// HTTP field name, which cannot contain a space, an escape or a separator that joins a value.
pub(super) fn header_name_is_shown(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// Returns the message for a required key that is not given. `parent` is the key of the list
/// or mapping that lacks it, such as `endpoints` for an endpoint, when known.
pub(super) fn missing_key_message(key: &str, parent: Option<&str>) -> String {
    match missing_form(key, parent) {
        Some(form) => format!("missing key {key}: add {form}"),
        None => format!("missing key {key}: add it"),
    }
}

/// Returns what to add for a required key, as written in a message after "add". Each
/// required key of the raw structs has an entry.
fn missing_form(key: &str, parent: Option<&str>) -> Option<&'static str> {
    let form = match (key, parent) {
        ("name", Some("endpoints")) => "a name for this endpoint, such as name: check-credit",
        ("name", Some("apis")) => "a name for this API, such as name: billing",
        ("name", _) => "a name, such as name: billing",
        ("base_url", _) => {
            "the URL that this API's endpoint paths are relative to, such as base_url: https://api.example.com/"
        }
        ("path", _) => "the path of this endpoint, relative to base_url, such as path: v1/models",
        ("endpoints", _) => "a list of this API's endpoints, each with name and path",
        ("bearer", _) => "a secret reference such as bearer: { env: API_TOKEN }",
        ("json_path", _) => "the JSONPath of the balance, such as json_path: $.credit",
        _ => return expected_form(key),
    };
    Some(form)
}

/// Rewrites serde's "unknown field `KEY`, expected one of A, B" (`rest` is what follows the
/// first backtick) into [`unknown_key_message`].
fn parse_unknown_field(original: &str, rest: &str) -> String {
    let Some((key, after)) = rest.rsplit_once("`, expected ") else {
        return original.to_owned();
    };
    let after = format!("expected {after}");

    let valid: Vec<&str> = after
        .strip_prefix("expected one of ")
        .or_else(|| after.strip_prefix("expected "))
        .map(|list| list.split(", ").map(|k| k.trim_matches('`')).collect())
        .unwrap_or_default();
    unknown_key_message(key, &valid)
}

/// Returns the message for an unknown `key`: the valid key it is closest to, if any, and the
/// `valid` keys at its position.
pub(super) fn unknown_key_message(key: &str, valid: &[&str]) -> String {
    let list = valid.join(", ");

    // A key with a space in it is most often a key and its value with the colon missing, such
    // as `bearer sk-...`. The value may be a secret, so the key is not echoed.
    if key.contains(char::is_whitespace) {
        return match intended_key(key, valid) {
            Some(valid_key) => {
                let form = expected_form(valid_key).unwrap_or("its value");
                format!(
                    "unknown key with a space in it: is the colon missing after {valid_key}? Write {valid_key}: followed by {form}"
                )
            }
            None => format!(
                "unknown key with a space in it: is a colon missing? Valid keys here: {list}"
            ),
        };
    }

    if valid.is_empty() {
        return format!("unknown key {key}; remove it");
    }
    match closest_key(key, valid) {
        Some(suggestion) => {
            format!("unknown key {key}; did you mean {suggestion}? Valid keys here: {list}")
        }
        None => format!("unknown key {key}; valid keys here: {list}"),
    }
}

/// Returns the valid key that an unknown `key` was most likely meant to be: the first word of a
/// key with a space in it, or a valid key at most two edits away.
pub(super) fn intended_key<'v>(key: &str, valid: &[&'v str]) -> Option<&'v str> {
    if key.contains(char::is_whitespace) {
        let first = key.split_whitespace().next().unwrap_or_default();
        return valid.iter().find(|v| **v == first).copied();
    }
    closest_key(key, valid)
}

/// Returns the valid key closest to `key`, if it is close enough to suggest.
fn closest_key<'v>(key: &str, valid: &[&'v str]) -> Option<&'v str> {
    // Two edits at most catch a typo or a swapped pair of letters. The similarity bound of 0.7
    // keeps a short key from being offered for another short key, such as path for auth.
    valid
        .iter()
        .filter(|candidate| strsim::normalized_damerau_levenshtein(key, candidate) >= 0.7)
        .map(|candidate| (strsim::damerau_levenshtein(key, candidate), *candidate))
        .filter(|&(distance, _)| distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Reports whether serde-saphyr's message states that a value has the wrong shape or type.
/// An unknown variant counts as one, because serde reads a literal secret written where a
/// secret reference belongs as the name of a variant, and its message would echo the secret.
fn is_shape_error(message: &str) -> bool {
    message.starts_with("expected ")
        || message.starts_with("invalid boolean")
        || message.starts_with("invalid type")
        || message.starts_with("unknown variant")
        || message.starts_with("externally tagged enum")
        || message.starts_with("data did not match any variant of untagged enum")
}

/// Returns serde-saphyr's `message` without the value it quotes, for a position where no key
/// is found, because the value may be a secret.
pub(super) fn without_value(message: &str) -> String {
    match message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.rsplit_once("`, "))
    {
        // The variants of a secret reference.
        Some((_, "expected one of env, file")) => {
            "invalid secret reference: write one such as { env: API_TOKEN } or { file: /run/secrets/token }, never the secret itself".to_owned()
        }
        Some((_, expected)) => format!("invalid value, {expected}"),
        None => message.to_owned(),
    }
}

fn shape_message(text: &str, problem: &Problem, original: &str) -> String {
    let Some(found) = yaml_keys::key_at(text, problem.line, problem.column) else {
        return format!(
            "{}; compare the layout with examples/ratewatch.yml",
            without_value(original)
        );
    };
    let (key, value) = (found.key.as_str(), found.value.as_deref());
    // Only a map key, which is a header name, can have a space in it here: any other key
    // with a space is an unknown key, which is reported before its value is read.
    if key.contains(char::is_whitespace) {
        return spaced_header_message();
    }
    if original.ends_with("untagged enum HeaderSource") {
        return header_value_message(key, value);
    }
    invalid_value_message(key, value)
}

/// Returns the message for a value of `key` that has the wrong shape or type. `value` is the
/// value as written, echoed only for keys whose values are never secret, and only without an
/// `@`, because a URL with a user name or password, such as a `base_url` written inside a list,
/// contains one.
pub(super) fn invalid_value_message(key: &str, value: Option<&str>) -> String {
    let Some(form) = expected_form(key) else {
        return header_value_message(key, value);
    };
    match value {
        Some(value) if echoes_value(key) && !value.contains('@') => {
            format!("invalid {key} {value:?}: write {form}")
        }
        _ => format!("invalid {key}: write {form}"),
    }
}

/// Returns the message for an invalid value of header `name`. `written` is the value as
/// written, `None` when it is missing. It is read to tell a number or boolean that needs
/// quotes from other mistakes, and never echoed, because a header value may be a secret.
fn header_value_message(name: &str, written: Option<&str>) -> String {
    if !header_name_is_shown(name) {
        return invalid_header_name_message();
    }
    let reference = "a secret reference such as { env: API_TOKEN } or { file: /run/secrets/token }";
    let Some(written) = written else {
        return format!("missing value for header {name}: write text, or {reference}");
    };
    // The value is parsed as the untagged header value reads it, which takes a plain
    // scalar that looks like a number or boolean as one.
    let is_number = serde_saphyr::from_str::<i64>(written).is_ok()
        || serde_saphyr::from_str::<u64>(written).is_ok()
        || serde_saphyr::from_str::<f64>(written).is_ok();
    let reads_as = if is_number {
        Some(("number", "2"))
    } else if serde_saphyr::from_str::<bool>(written).is_ok() {
        Some(("boolean", "true"))
    } else {
        None
    };
    match reads_as {
        Some((kind, example)) => format!(
            "invalid value for header {name}: YAML reads the unquoted value as a {kind}, and a header value is text, so put the {kind} in double quotes (write \"{example}\" for {example}), or use {reference}"
        ),
        None => format!("invalid value for header {name}: write text, or {reference}"),
    }
}

/// Reports whether `text` contains no YAML content: only blank lines, comments and document
/// markers.
fn is_empty_document(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}
