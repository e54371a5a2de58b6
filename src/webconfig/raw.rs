//! The web configuration file as written: serde structures that mirror the YAML, with source
//! locations on every value checked after parsing.
//!
//! The bcrypt hashes under `basic_auth_users` deserialize through visitors whose errors never
//! quote the value, because serde's default type errors echo the scalar they rejected.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::secret::Secret;

/// The whole file. Every key is optional, as in exporter-toolkit: an empty file serves plain
/// HTTP without authentication.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebConfig {
    pub(crate) tls_server_config: Option<Spanned<RawTls>>,
    pub(crate) http_server_config: Option<RawHttp>,
    pub(crate) basic_auth_users: Option<Spanned<RawUsers>>,
    /// An exporter-toolkit key that ratewatch does not implement.
    pub(crate) rate_limit: Option<Spanned<IgnoredAny>>,
}

/// `tls_server_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert_file: Option<Spanned<String>>,
    pub(crate) key_file: Option<Spanned<String>>,
    pub(crate) client_auth_type: Option<Spanned<String>>,
    pub(crate) client_ca_file: Option<Spanned<String>>,
    pub(crate) min_version: Option<Spanned<String>>,
    pub(crate) max_version: Option<Spanned<String>>,
    /// Exporter-toolkit keys that ratewatch does not implement, each reported as such. The inline
    /// `key` is read as `IgnoredAny`, so its contents are never kept or quoted.
    pub(crate) cert: Option<Spanned<IgnoredAny>>,
    pub(crate) key: Option<Spanned<IgnoredAny>>,
    pub(crate) client_ca: Option<Spanned<IgnoredAny>>,
    pub(crate) cipher_suites: Option<Spanned<IgnoredAny>>,
    pub(crate) curve_preferences: Option<Spanned<IgnoredAny>>,
    pub(crate) prefer_server_cipher_suites: Option<Spanned<IgnoredAny>>,
    pub(crate) client_allowed_sans: Option<Spanned<IgnoredAny>>,
}

impl RawTls {
    /// Returns the exporter-toolkit keys present that ratewatch does not implement, with the
    /// reason and the alternative.
    pub(crate) fn unsupported(&self) -> Vec<(&Spanned<IgnoredAny>, &'static str)> {
        let keys: [(&Option<Spanned<IgnoredAny>>, &'static str); 7] = [
            (
                &self.cert,
                "tls_server_config.cert (an inline certificate) is not supported; put the PEM in a file and name it in cert_file",
            ),
            (
                &self.key,
                "tls_server_config.key (an inline private key) is not supported; put the PEM in a file and name it in key_file",
            ),
            (
                &self.client_ca,
                "tls_server_config.client_ca (inline client CAs) is not supported; put the PEM in a file and name it in client_ca_file",
            ),
            (
                &self.cipher_suites,
                "tls_server_config.cipher_suites is not supported: ratewatch uses the rustls defaults, which offer only AEAD suites; remove the key",
            ),
            (
                &self.curve_preferences,
                "tls_server_config.curve_preferences is not supported: ratewatch uses the rustls default key exchange groups; remove the key",
            ),
            (
                &self.prefer_server_cipher_suites,
                "tls_server_config.prefer_server_cipher_suites is not supported: rustls always applies its own order; remove the key",
            ),
            (
                &self.client_allowed_sans,
                "tls_server_config.client_allowed_sans is not supported; restrict clients by the CAs in client_ca_file instead",
            ),
        ];
        keys.into_iter()
            .filter_map(|(value, message)| value.as_ref().map(|v| (v, message)))
            .collect()
    }
}

/// `http_server_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    /// Accepted for compatibility; ratewatch serves HTTP/1.1 either way.
    #[allow(dead_code, reason = "read only to accept the key")]
    pub(crate) http2: Option<bool>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Spanned<String>>,
}

/// `basic_auth_users`: user name to bcrypt hash, in file order of the parser's map.
#[derive(Debug, Default)]
pub(crate) struct RawUsers(pub(crate) Vec<(String, Spanned<RawHash>)>);

/// A bcrypt hash as written; never printed.
#[derive(Debug)]
pub(crate) struct RawHash(pub(crate) Secret);

const USERS_SHAPE: &str =
    "basic_auth_users must be a map of user names to bcrypt hashes, such as `alice: $2y$10$...`";
const HASH_SHAPE: &str = "each basic_auth_users value must be a bcrypt hash written as a string";

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UsersVisitor)
    }
}

struct UsersVisitor;

/// Implements every non-matching `visit_*` method of a visitor with an error that does not
/// quote the value.
macro_rules! reject_other_shapes {
    ($message:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom($message))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom($message))
        }
    };
}

impl<'de> Visitor<'de> for UsersVisitor {
    type Value = RawUsers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of user names to bcrypt hashes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawUsers, A::Error> {
        let mut users = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let hash = map.next_value::<Spanned<RawHash>>()?;
            users.push((name, hash));
        }
        Ok(RawUsers(users))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawUsers, E> {
        Err(E::custom(USERS_SHAPE))
    }

    reject_other_shapes!(USERS_SHAPE);
}

impl<'de> Deserialize<'de> for RawHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HashVisitor)
    }
}

struct HashVisitor;

impl<'de> Visitor<'de> for HashVisitor {
    type Value = RawHash;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bcrypt hash")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawHash, E> {
        Ok(RawHash(Secret::new(text.to_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<RawHash, A::Error> {
        Err(de::Error::custom(HASH_SHAPE))
    }

    reject_other_shapes!(HASH_SHAPE);
}
