//! The config file as written: serde structures that mirror the YAML, with source locations
//! kept on every value that is checked after parsing.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::secret::SecretRef;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) global: RawGlobal,
    pub(crate) apis: Spanned<Vec<RawApi>>,
}

/// Reads a value for which an empty value or null counts as not set, as for every other key.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Defaults for every API and endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    pub(crate) probe_share: Option<Spanned<NumberOrText>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) degraded_after: Option<Spanned<String>>,
    pub(crate) body_limit: Option<Spanned<NumberOrText>>,
    pub(crate) retry_after_ceiling: Option<Spanned<String>>,
    pub(crate) follow_redirects: Option<bool>,
}

/// One API: a base URL, shared headers and authentication, and its endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) name: Spanned<String>,
    pub(crate) base_url: Spanned<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) headers: BTreeMap<String, Spanned<HeaderSource>>,
    pub(crate) auth: Option<Spanned<RawAuth>>,
    pub(crate) probe_share: Option<Spanned<NumberOrText>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) degraded_after: Option<Spanned<String>>,
    pub(crate) endpoints: Spanned<Vec<RawEndpoint>>,
}

/// Authentication shared by the endpoints of one API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) bearer: SecretRef,
}

/// One probed endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub(crate) name: Spanned<String>,
    pub(crate) path: Spanned<String>,
    pub(crate) method: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) headers: BTreeMap<String, Spanned<HeaderSource>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) expect: Option<Spanned<Vec<NumberOrText>>>,
    pub(crate) rate_limit: Option<Spanned<OneOrMany>>,
    pub(crate) probe_share: Option<Spanned<NumberOrText>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) degraded_after: Option<Spanned<String>>,
    pub(crate) body_limit: Option<Spanned<NumberOrText>>,
    pub(crate) follow_redirects: Option<bool>,
    pub(crate) credit: Option<RawCredit>,
    pub(crate) rate_limit_reset: Option<crate::headroom::ResetForm>,
}

/// The location of a credit balance in the response body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredit {
    pub(crate) json_path: Spanned<String>,
}

/// A header value: literal text, or a reference to a secret.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum HeaderSource {
    Literal(String),
    Secret(SecretRef),
}

/// A scalar written either as a number or as text, such as `0.1` or `10%`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrText {
    Integer(u64),
    Float(f64),
    Text(String),
}

impl NumberOrText {
    /// Returns the value as the user wrote it, for messages.
    pub(crate) fn as_written(&self) -> String {
        match self {
            NumberOrText::Integer(n) => n.to_string(),
            NumberOrText::Float(x) => x.to_string(),
            NumberOrText::Text(text) => text.clone(),
        }
    }
}

/// One rate limit or a list of them. A number such as `100` is kept as text, so the rate-limit
/// parser can report that the window is missing.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

struct OneOrManyVisitor;

impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate limit such as 100/hour or a list such as [100/hour, 1000/day]")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(value.to_owned()))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(value.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(value.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(value.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut limits = Vec::new();
        while let Some(limit) = seq.next_element::<String>()? {
            limits.push(limit);
        }
        Ok(OneOrMany::Many(limits))
    }
}
