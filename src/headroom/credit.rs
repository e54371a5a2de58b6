//! A credit balance read from a JSON response body at a configured JSON path.
//!
//! The value may be a JSON number or a string holding a number in JSON-like notation
//! (`12.50`, `-3`, `1.25e3`, `.5`, `+4`), with surrounding whitespace. Integers beyond `u64`
//! become the nearest `f64`. Locale formats such as `1,234.5` or `12,50`, `NaN`, infinities,
//! `null` and anything else are errors with a distinct [`CreditError::reason`].

use serde_json::Value;
use serde_json_path::JsonPath;

/// The maximum length of a value excerpt in an error message, in characters.
const EXCERPT_CHARS: usize = 64;

/// The reason no credit balance could be read from a body. [`CreditError::reason`] gives the
/// bounded metric label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    /// The body is not JSON.
    #[error("response body is not valid JSON ({detail}); check that the endpoint returns JSON")]
    InvalidJson {
        /// The position and kind of the syntax error.
        detail: String,
    },
    /// The body is a JSON object with an `error` or `errors` member and no value, or `null`,
    /// at the path.
    #[error("response body is an error object with no credit at {path}: {excerpt}")]
    ErrorBody {
        /// The configured JSON path.
        path: String,
        /// The error member, escaped and shortened.
        excerpt: String,
    },
    /// The path matched nothing.
    #[error("credit path {path} matched nothing; check it against a sample response")]
    PathNotFound {
        /// The configured JSON path.
        path: String,
    },
    /// The path matched more than one value.
    #[error("credit path {path} matched {count} values; narrow it to exactly one")]
    MultipleValues {
        /// The configured JSON path.
        path: String,
        /// The number of values matched.
        count: usize,
    },
    /// The value at the path is `null`.
    #[error("credit at {path} is null")]
    Null {
        /// The configured JSON path.
        path: String,
    },
    /// The value at the path is a boolean, array or object.
    #[error("credit at {path} is a JSON {kind}, not a number or numeric string")]
    WrongType {
        /// The configured JSON path.
        path: String,
        /// `boolean`, `array` or `object`.
        kind: &'static str,
    },
    /// The value at the path is a string that is not a number.
    #[error("credit at {path} is \"{value}\", which is not a number")]
    NotANumber {
        /// The configured JSON path.
        path: String,
        /// The string, escaped and shortened.
        value: String,
    },
    /// The value at the path is `NaN` or an infinity, or a number too large for `f64`.
    #[error("credit at {path} is \"{value}\", which is NaN or infinite")]
    NanOrInfinite {
        /// The configured JSON path.
        path: String,
        /// The value, escaped and shortened.
        value: String,
    },
    /// The value at the path uses a locale's separators, such as `1,234.5` or `12,50`.
    #[error(
        "credit at {path} is \"{value}\", which uses locale separators; the API must send a plain number such as 1234.5"
    )]
    LocaleFormat {
        /// The configured JSON path.
        path: String,
        /// The string, escaped and shortened.
        value: String,
    },
}

impl CreditError {
    /// Every label that [`CreditError::reason`] returns, for pre-initialising counters.
    pub const REASONS: [&'static str; 9] = [
        "invalid_json",
        "error_body",
        "path_not_found",
        "multiple_values",
        "null",
        "wrong_type",
        "not_a_number",
        "nan_or_infinite",
        "locale_format",
    ];

    /// Returns the metric label for this error, one of a fixed set of strings.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            CreditError::InvalidJson { .. } => "invalid_json",
            CreditError::ErrorBody { .. } => "error_body",
            CreditError::PathNotFound { .. } => "path_not_found",
            CreditError::MultipleValues { .. } => "multiple_values",
            CreditError::Null { .. } => "null",
            CreditError::WrongType { .. } => "wrong_type",
            CreditError::NotANumber { .. } => "not_a_number",
            CreditError::NanOrInfinite { .. } => "nan_or_infinite",
            CreditError::LocaleFormat { .. } => "locale_format",
        }
    }
}

/// Reads the credit balance at `path` in a JSON `body`. The result is always finite.
///
/// Bytes that are not UTF-8 are replaced with U+FFFD before parsing, so a stray byte inside
/// an unrelated string does not hide the balance. A leading UTF-8 byte order mark is skipped.
/// A JSON number beyond the range of `f64`, such as `1e999`, is read as the string of its
/// digits, so at the path it is [`CreditError::NanOrInfinite`] and elsewhere it does not hide
/// the balance.
pub fn extract_credit(body: &[u8], path: &JsonPath) -> Result<f64, CreditError> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let document = parse_document(text)?;
    let path_text = path.to_string();

    let nodes = path.query(&document).all();
    let value = match nodes.as_slice() {
        [] => {
            return Err(error_body(&document, &path_text)
                .unwrap_or(CreditError::PathNotFound { path: path_text }));
        }
        [value] => *value,
        several => {
            return Err(CreditError::MultipleValues {
                path: path_text,
                count: several.len(),
            });
        }
    };

    match value {
        Value::Number(number) => match number.as_f64() {
            Some(credit) if credit.is_finite() => Ok(credit),
            _ => Err(CreditError::NanOrInfinite {
                path: path_text,
                value: number.to_string(),
            }),
        },
        Value::String(text) => parse_numeric_text(text, path_text),
        Value::Null => {
            Err(error_body(&document, &path_text).unwrap_or(CreditError::Null { path: path_text }))
        }
        Value::Bool(_) => Err(CreditError::WrongType {
            path: path_text,
            kind: "boolean",
        }),
        Value::Array(_) => Err(CreditError::WrongType {
            path: path_text,
            kind: "array",
        }),
        Value::Object(_) => Err(CreditError::WrongType {
            path: path_text,
            kind: "object",
        }),
    }
}

/// The maximum number of out-of-range numbers quoted in one body before it counts as invalid
/// JSON. Each one costs a parse of the whole body.
const MAX_QUOTED_NUMBERS: usize = 8;

/// Parses a body, turning each number beyond the range of `f64` into a string of its text,
/// because `serde_json` rejects such numbers while parsing.
fn parse_document(text: &str) -> Result<Value, CreditError> {
    let mut text = std::borrow::Cow::Borrowed(text);
    for _ in 0..=MAX_QUOTED_NUMBERS {
        let error = match serde_json::from_str(&text) {
            Ok(document) => return Ok(document),
            Err(error) => error,
        };
        match quote_out_of_range_number(&text, &error) {
            Some(quoted) => text = std::borrow::Cow::Owned(quoted),
            None => {
                return Err(CreditError::InvalidJson {
                    detail: error.to_string(),
                });
            }
        }
    }
    Err(CreditError::InvalidJson {
        detail: format!("more than {MAX_QUOTED_NUMBERS} numbers out of range"),
    })
}

/// Returns `text` with the number at the error's position quoted, when the error is a number
/// out of range.
fn quote_out_of_range_number(text: &str, error: &serde_json::Error) -> Option<String> {
    if !error.to_string().starts_with("number out of range") {
        return None;
    }
    // serde_json counts lines from 1 and columns in bytes from 1, and the column is the
    // last byte it read, which is inside the number or just after it.
    let line_start = if error.line() <= 1 {
        0
    } else {
        text.match_indices('\n').nth(error.line() - 2)?.0 + 1
    };
    let position = line_start + error.column().saturating_sub(1);
    let is_number_byte =
        |b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E');
    let bytes = text.as_bytes();
    let mut end = position.min(bytes.len());
    while end < bytes.len() && is_number_byte(bytes[end]) {
        end += 1;
    }
    let mut start = end;
    while start > 0 && is_number_byte(bytes[start - 1]) {
        start -= 1;
    }
    let number = &text[start..end];
    if number.is_empty() || number.parse::<f64>().is_ok_and(f64::is_finite) {
        return None;
    }
    Some(format!("{}\"{number}\"{}", &text[..start], &text[end..]))
}

/// Returns [`CreditError::ErrorBody`] when the top level is an object with an `error` or
/// `errors` member.
fn error_body(document: &Value, path: &str) -> Option<CreditError> {
    let object = document.as_object()?;
    let member = object.get("error").or_else(|| object.get("errors"))?;
    Some(CreditError::ErrorBody {
        path: path.to_owned(),
        excerpt: excerpt(&member.to_string()),
    })
}

/// Parses a numeric string, telling locale formats, `NaN` and infinities apart from junk.
fn parse_numeric_text(raw: &str, path: String) -> Result<f64, CreditError> {
    let text = raw.trim();
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "nan" | "inf" | "infinity") {
        return Err(CreditError::NanOrInfinite {
            path,
            value: excerpt(raw),
        });
    }
    if is_plain_number(unsigned) {
        return match text.parse::<f64>() {
            Ok(credit) if credit.is_finite() => Ok(credit),
            _ => Err(CreditError::NanOrInfinite {
                path,
                value: excerpt(raw),
            }),
        };
    }
    if is_locale_number(unsigned) {
        return Err(CreditError::LocaleFormat {
            path,
            value: excerpt(raw),
        });
    }
    Err(CreditError::NotANumber {
        path,
        value: excerpt(raw),
    })
}

/// Checks for `digits[.digits][e[+-]digits]` or `.digits[e[+-]digits]` without a sign.
fn is_plain_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        all_digits(whole) && all_digits(fraction) && (!whole.is_empty() || !fraction.is_empty());
    let exponent_ok = exponent.is_none_or(|exponent| {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        !digits.is_empty() && all_digits(digits)
    });
    mantissa_ok && exponent_ok
}

/// Checks for digits with at least one comma and otherwise only dots, apostrophes and spaces
/// as group or decimal separators, such as `1,234.5`, `12,50`, `1.234,5` or `1 234,5`.
fn is_locale_number(text: &str) -> bool {
    text.contains(',')
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text.ends_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| {
            c.is_ascii_digit() || matches!(c, ',' | '.' | '\'' | ' ' | '\u{a0}' | '\u{202f}')
        })
}

/// Makes a printable ASCII excerpt for an error message: at most [`EXCERPT_CHARS`]
/// characters, with anything else escaped.
fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(body: &[u8], path: &str) -> Result<f64, CreditError> {
        extract_credit(body, &JsonPath::parse(path).unwrap())
    }

    fn reason(body: &[u8], path: &str) -> &'static str {
        match credit(body, path) {
            Ok(value) => panic!("{body:?} at {path}: expected an error, got {value}"),
            Err(error) => error.reason(),
        }
    }

    #[test]
    fn credit_values_table() {
        let table: [(&[u8], &str, f64); 18] = [
            (br#"{"credit": 12.5}"#, "$.credit", 12.5),
            (br#"{"credit": 0}"#, "$.credit", 0.0),
            (br#"{"credit": -3}"#, "$.credit", -3.0),
            (br#"{"credit": "12.50"}"#, "$.credit", 12.5),
            (br#"{"credit": " 7 "}"#, "$.credit", 7.0),
            (br#"{"credit": 1.25e3}"#, "$.credit", 1250.0),
            (br#"{"credit": 1.25E-2}"#, "$.credit", 0.0125),
            (br#"{"credit": "1.25e3"}"#, "$.credit", 1250.0),
            (br#"{"credit": "+4"}"#, "$.credit", 4.0),
            (br#"{"credit": ".5"}"#, "$.credit", 0.5),
            (br#"{"credit": "-0.25"}"#, "$.credit", -0.25),
            (
                br#"{"credit": 18446744073709551616}"#,
                "$.credit",
                18_446_744_073_709_551_616.0,
            ),
            (
                br#"{"credit": 123456789012345678901234567890123456789012345678901234567890}"#,
                "$.credit",
                1.234_567_890_123_456_8e59,
            ),
            (
                br#"{"data": {"account": {"balance": 99}}}"#,
                "$.data.account.balance",
                99.0,
            ),
            (
                br#"{"data": [{"balance": 1}, {"balance": 2}]}"#,
                "$.data[1].balance",
                2.0,
            ),
            (b"\xef\xbb\xbf{\"credit\": 3}", "$.credit", 3.0),
            (b"{\"note\": \"caf\xe9\", \"credit\": 8}", "$.credit", 8.0),
            (br#"{"error": null, "credit": 5}"#, "$.credit", 5.0),
        ];
        for (body, path, expected) in table {
            let got = credit(body, path);
            assert_eq!(got, Ok(expected), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn credit_huge_integer_is_finite() {
        let digits = "9".repeat(300);
        let body = format!(r#"{{"credit": {digits}}}"#);
        let value = credit(body.as_bytes(), "$.credit").unwrap();
        assert!(value.is_finite());
        assert!(value > 9.9e299);
    }

    #[test]
    fn credit_errors_table() {
        let table: [(&[u8], &str, &str); 27] = [
            (br#"{"credit": null}"#, "$.credit", "null"),
            (br#"{"credit": "NaN"}"#, "$.credit", "nan_or_infinite"),
            (br#"{"credit": "nan"}"#, "$.credit", "nan_or_infinite"),
            (br#"{"credit": "inf"}"#, "$.credit", "nan_or_infinite"),
            (br#"{"credit": "-Infinity"}"#, "$.credit", "nan_or_infinite"),
            (br#"{"credit": "1e400"}"#, "$.credit", "nan_or_infinite"),
            (br#"{"credit": "1,234.5"}"#, "$.credit", "locale_format"),
            (br#"{"credit": "12,50"}"#, "$.credit", "locale_format"),
            (br#"{"credit": "1.234,5"}"#, "$.credit", "locale_format"),
            (br#"{"credit": "1 234,5"}"#, "$.credit", "locale_format"),
            (br#"{"credit": "-1,5"}"#, "$.credit", "locale_format"),
            (br#"{"credit": "twelve"}"#, "$.credit", "not_a_number"),
            (br#"{"credit": ""}"#, "$.credit", "not_a_number"),
            (br#"{"credit": "$12.50"}"#, "$.credit", "not_a_number"),
            (br#"{"credit": "0x10"}"#, "$.credit", "not_a_number"),
            (br#"{"credit": "1e"}"#, "$.credit", "not_a_number"),
            (br#"{"credit": "."}"#, "$.credit", "not_a_number"),
            (br#"{"credit": "1,"}"#, "$.credit", "not_a_number"),
            (br#"{"credit": true}"#, "$.credit", "wrong_type"),
            (br#"{"credit": [1]}"#, "$.credit", "wrong_type"),
            (br#"{"credit": {"v": 1}}"#, "$.credit", "wrong_type"),
            (br#"{"other": 1}"#, "$.credit", "path_not_found"),
            (br"[1, 2]", "$.credit", "path_not_found"),
            (
                br#"{"a": [{"c": 1}, {"c": 2}]}"#,
                "$.a[*].c",
                "multiple_values",
            ),
            (br#"{"error": "quota exceeded"}"#, "$.credit", "error_body"),
            (
                br#"{"errors": [{"message": "bad key"}], "credit": null}"#,
                "$.credit",
                "error_body",
            ),
            (b"<html>502 Bad Gateway</html>", "$.credit", "invalid_json"),
        ];
        for (body, path, expected) in table {
            assert_eq!(
                reason(body, path),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn credit_more_invalid_json_table() {
        let table: [&[u8]; 5] = [
            b"",
            b"{\"credit\": 1",
            b"{\"credit\": NaN}",
            b"\xff\xfe{\"credit\": 1}",
            b"{\"credit\": 1}{}",
        ];
        for body in table {
            assert_eq!(reason(body, "$.credit"), "invalid_json", "{body:?}");
        }
    }

    #[test]
    fn credit_out_of_range_number_is_infinite() {
        let table: [&[u8]; 5] = [
            b"{\"credit\": 1e999}",
            b"{\"credit\": -1e999}",
            b"{\"credit\": 1E400 }",
            b"{\"other\": 2e999,\n \"credit\":\n  1.5e999}",
            b"{\"credit\": [1e999][0]}",
        ];
        for body in &table[..4] {
            assert_eq!(reason(body, "$.credit"), "nan_or_infinite", "{body:?}");
        }
        assert_eq!(reason(table[4], "$.credit"), "invalid_json");
    }

    #[test]
    fn credit_out_of_range_elsewhere_keeps_balance() {
        assert_eq!(
            credit(b"{\"limit\": 1e999, \"credit\": 12.5}", "$.credit"),
            Ok(12.5)
        );
        let many = format!("[{}]", vec!["1e999"; 20].join(","));
        assert_eq!(reason(many.as_bytes(), "$[0]"), "invalid_json");
    }

    #[test]
    fn credit_error_messages_are_ascii() {
        let bodies: [&[u8]; 3] = [
            b"{\"credit\": \"caf\xe9 \xff\"}",
            b"{\"error\": \"\xff\xfe bad\", \"x\": 1}",
            b"\xff\xff\xff",
        ];
        for body in bodies {
            let error = credit(body, "$.credit").unwrap_err();
            let message = error.to_string();
            assert!(message.is_ascii(), "{message}");
            assert!(!message.contains('\u{fffd}'), "{message}");
        }
    }

    #[test]
    fn credit_error_message_names_value_and_path() {
        let error = credit(br#"{"credit": "12,50"}"#, "$.credit").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("12,50"), "{message}");
        assert!(
            message.contains("$['credit']") || message.contains("$.credit"),
            "{message}"
        );
    }
}
