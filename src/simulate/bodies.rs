//! Request body validation and the normal response bodies of each endpoint.

use serde_json::{Map, Value, json};

use super::endpoint::Endpoint;

/// A request body that passed validation, with the fields the response uses.
#[derive(Debug, PartialEq)]
pub(crate) enum ValidBody {
    /// A GET endpoint, whose body is ignored.
    None,
    GenerateKey {
        name: String,
    },
    ConfirmXmrPayment {
        tx_id: String,
    },
    SendMail,
    Inference {
        model: String,
        max_tokens: u64,
    },
}

/// Checks the body of a request to `endpoint`. The error is a message for a 400 response.
pub(crate) fn validate(endpoint: Endpoint, body: &[u8]) -> Result<ValidBody, String> {
    if matches!(
        endpoint,
        Endpoint::Model | Endpoint::CheckCredit | Endpoint::GetXmrWallet
    ) {
        return Ok(ValidBody::None);
    }
    let object = parse_object(body)?;
    match endpoint {
        Endpoint::GenerateKey => Ok(ValidBody::GenerateKey {
            name: non_empty_string(&object, "name")?.to_owned(),
        }),
        Endpoint::ConfirmXmrPayment => {
            let tx_id = non_empty_string(&object, "tx_id")?;
            if tx_id.len() != 64 || !tx_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "invalid tx_id {tx_id:?}: send the transaction id as 64 hexadecimal characters"
                ));
            }
            Ok(ValidBody::ConfirmXmrPayment {
                tx_id: tx_id.to_owned(),
            })
        }
        Endpoint::SendMail => {
            for field in ["email", "subject", "message"] {
                non_empty_string(&object, field)?;
            }
            Ok(ValidBody::SendMail)
        }
        Endpoint::Inference => {
            let model = non_empty_string(&object, "model")?.to_owned();
            match object.get("prompt") {
                Some(Value::String(_)) => {}
                _ => return Err("missing field \"prompt\": send the prompt as a string".into()),
            }
            let max_tokens = object
                .get("max_tokens")
                .and_then(Value::as_u64)
                .filter(|&n| n >= 1)
                .ok_or("invalid or missing field \"max_tokens\": send a whole number from 1")?;
            Ok(ValidBody::Inference { model, max_tokens })
        }
        Endpoint::Model | Endpoint::CheckCredit | Endpoint::GetXmrWallet => Ok(ValidBody::None),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("missing request body: send a JSON object".to_owned());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("invalid request body: send a JSON object".to_owned()),
        Err(error) => Err(format!("invalid JSON in request body: {error}")),
    }
}

fn non_empty_string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match object.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(Value::String(_)) => Err(format!("empty field {field:?}: send a non-empty string")),
        Some(_) => Err(format!("invalid field {field:?}: send a string")),
        None => Err(format!("missing field {field:?}: send a non-empty string")),
    }
}

/// The models and prices listed by the model endpoint. Prices are in credits per 1000
/// tokens and are made up for the simulator.
pub(crate) fn model_list() -> Value {
    json!([
        {
            "id": "sim-small",
            "name": "Simulated small model",
            "context_length": 8192,
            "pricing": { "prompt_per_1k_tokens": 0.1, "completion_per_1k_tokens": 0.2 }
        },
        {
            "id": "sim-large",
            "name": "Simulated large model",
            "context_length": 32768,
            "pricing": { "prompt_per_1k_tokens": 1.0, "completion_per_1k_tokens": 2.0 }
        }
    ])
}

/// An error body: `{"error": code, "message": message}`.
pub(crate) fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": code, "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_endpoints_ignore_body() {
        assert_eq!(validate(Endpoint::Model, b"garbage"), Ok(ValidBody::None));
    }

    #[test]
    fn generate_key_needs_name() {
        let bad: [&[u8]; 6] = [
            b"",
            b"{}",
            b"not json",
            b"[1]",
            br#"{"name": ""}"#,
            br#"{"name": 5}"#,
        ];
        for body in bad {
            let result = validate(Endpoint::GenerateKey, body);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            validate(Endpoint::GenerateKey, br#"{"name": "ci"}"#),
            Ok(ValidBody::GenerateKey { name: "ci".into() })
        );
    }

    #[test]
    fn confirm_payment_needs_hex_tx_id() {
        let good = format!(r#"{{"tx_id": "{}"}}"#, "ab".repeat(32));
        assert!(validate(Endpoint::ConfirmXmrPayment, good.as_bytes()).is_ok());
        let short = format!(r#"{{"tx_id": "{}"}}"#, "ab".repeat(31));
        assert!(validate(Endpoint::ConfirmXmrPayment, short.as_bytes()).is_err());
        let not_hex = format!(r#"{{"tx_id": "{}"}}"#, "zz".repeat(32));
        let error = validate(Endpoint::ConfirmXmrPayment, not_hex.as_bytes()).unwrap_err();
        assert!(error.contains("64 hexadecimal"), "{error}");
    }

    #[test]
    fn send_mail_needs_all_fields() {
        let good = br#"{"email": "a@b.test", "subject": "s", "message": "m"}"#;
        assert_eq!(validate(Endpoint::SendMail, good), Ok(ValidBody::SendMail));
        let missing = br#"{"email": "a@b.test", "subject": "s"}"#;
        let error = validate(Endpoint::SendMail, missing).unwrap_err();
        assert!(error.contains("\"message\""), "{error}");
    }

    #[test]
    fn inference_checks_max_tokens() {
        let good = br#"{"model": "sim-small", "prompt": "", "max_tokens": 3}"#;
        assert_eq!(
            validate(Endpoint::Inference, good),
            Ok(ValidBody::Inference {
                model: "sim-small".into(),
                max_tokens: 3
            })
        );
        let bad: [&[u8]; 4] = [
            br#"{"model": "m", "prompt": "p", "max_tokens": 0}"#,
            br#"{"model": "m", "prompt": "p", "max_tokens": 1.5}"#,
            br#"{"model": "m", "prompt": "p"}"#,
            br#"{"model": "m", "max_tokens": 1}"#,
        ];
        for body in bad {
            let result = validate(Endpoint::Inference, body);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
