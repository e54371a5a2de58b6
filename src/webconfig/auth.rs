//! HTTP basic authentication against bcrypt hashes, with a bounded cache of verified
//! credentials so that a scrape every few seconds does not pay for bcrypt each time.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The maximum number of verified credentials kept. A deployment has a few scrapers with one credential
/// each, so the bound only matters under attack, when the cache is emptied and filled again.
pub const MAX_CACHED_CREDENTIALS: usize = 256;

/// The password of the decoy hash checked for unknown user names, so that an unknown user
/// takes as long to reject as a wrong password. Not a secret.
const DECOY_PASSWORD: &str = "ratewatch decoy password";

/// The users of basic authentication and the cache of verified credentials.
pub struct BasicAuth {
    users: Vec<(String, Secret)>,
    /// SHA-256 digests of credentials that passed bcrypt. Digests, not passwords, are kept.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt verification at a time, so failed attempts cannot take every core.
    bcrypt_turn: tokio::sync::Mutex<()>,
    /// A hash with the highest cost among the users, made on the first unknown user name.
    decoy: Arc<OnceLock<String>>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("BasicAuth")
            .field("users", &names)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Builds the authenticator from user names and their bcrypt hashes, which were checked
    /// with [`check_bcrypt_hash`].
    #[must_use]
    pub fn new(users: Vec<(String, Secret)>) -> BasicAuth {
        BasicAuth {
            users,
            verified: Mutex::new(HashSet::new()),
            bcrypt_turn: tokio::sync::Mutex::new(()),
            decoy: Arc::new(OnceLock::new()),
        }
    }

    /// Returns the number of users.
    #[must_use]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Returns the number of verified credentials in the cache.
    #[must_use]
    pub fn cached_count(&self) -> usize {
        self.cache().len()
    }

    /// Checks an `Authorization` header; `None`, another scheme or malformed Basic credentials
    /// fail.
    pub async fn verify(&self, header: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = header.and_then(decode_basic) else {
            return false;
        };
        let digest = credential_digest(&user, &password);
        if self.cache().contains(&digest) {
            return true;
        }

        // Every user name is compared in full, so the time taken does not tell which prefix of
        // a name matched.
        let mut found = None;
        for (name, hash) in &self.users {
            if bool::from(name.as_bytes().ct_eq(&user)) {
                found = Some(hash.clone());
            }
        }
        let known = found.is_some();
        let hash = match found {
            Some(hash) => hash,
            None => Secret::new(self.decoy_hash().await),
        };

        let _turn = self.bcrypt_turn.lock().await;
        let verified = tokio::task::spawn_blocking(move || {
            bcrypt::verify(&password, hash.expose()).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(known && verified) {
            return false;
        }
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED_CREDENTIALS {
            cache.clear();
        }
        cache.insert(digest);
        true
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the decoy hash, made once with the highest cost among the users.
    async fn decoy_hash(&self) -> String {
        if let Some(hash) = self.decoy.get() {
            return hash.clone();
        }
        let cost = self
            .users
            .iter()
            .filter_map(|(_, hash)| bcrypt_cost(hash.expose()))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = self.decoy.clone();
        tokio::task::spawn_blocking(move || {
            decoy
                .get_or_init(|| bcrypt::hash(DECOY_PASSWORD, cost).unwrap_or_default())
                .clone()
        })
        .await
        .unwrap_or_default()
    }
}

/// Splits `Basic base64(user:password)` into the user name and password bytes.
fn decode_basic(header: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Returns the SHA-256 digest of the length-prefixed user name followed by the password, so
/// that no two different credentials share an input.
fn credential_digest(user: &[u8], password: &[u8]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(&(user.len() as u64).to_be_bytes());
    context.update(user);
    context.update(password);
    let mut digest = [0; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

/// Returns the cost of a well-formed bcrypt hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

/// Checks that `hash` is a bcrypt hash in modular crypt format: `$2a$`, `$2b$`, `$2x$` or `$2y$`,
/// a two-digit cost from 4 to 31, `$`, and 53 characters of bcrypt's base64 alphabet. The
/// reason never quotes the hash.
pub fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    let prefix = hash.get(..4).unwrap_or_default();
    if !matches!(prefix, "$2a$" | "$2b$" | "$2x$" | "$2y$") {
        return Err("it does not start with $2a$, $2b$, $2x$ or $2y$".to_owned());
    }
    let Some(cost) = bcrypt_cost(hash).filter(|_| hash.as_bytes().get(6) == Some(&b'$')) else {
        return Err("the cost after the prefix must be two digits followed by '$'".to_owned());
    };
    if !(4..=31).contains(&cost) {
        return Err(format!("the cost {cost} is outside 4 to 31"));
    }
    let rest = &hash[7..];
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if rest.len() != 53 || !rest.bytes().all(alphabet) {
        return Err(format!(
            "the salt and digest after the cost must be 53 characters of [./A-Za-z0-9], found {} characters",
            rest.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded = STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    fn auth(user: &str, password: &str) -> BasicAuth {
        let hash = bcrypt::hash(password, 4).unwrap();
        BasicAuth::new(vec![(user.to_owned(), Secret::new(hash))])
    }

    #[tokio::test]
    async fn right_password_passes_and_is_cached() {
        let auth = auth("alice", "s3cret");
        assert_eq!(auth.cached_count(), 0);
        assert!(auth.verify(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.cached_count(), 1);
        assert!(auth.verify(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.cached_count(), 1);
    }

    #[tokio::test]
    async fn wrong_credentials_fail_and_are_not_cached() {
        let auth = auth("alice", "s3cret");
        assert!(!auth.verify(Some(&header("alice", "wrong"))).await);
        assert!(!auth.verify(Some(&header("bob", "s3cret"))).await);
        assert!(!auth.verify(Some(&header("alic", "s3cret"))).await);
        assert!(!auth.verify(Some(&header("alice", ""))).await);
        assert!(!auth.verify(None).await);
        assert_eq!(auth.cached_count(), 0);
    }

    #[tokio::test]
    async fn cached_credential_does_not_admit_other_password() {
        let auth = auth("alice", "s3cret");
        assert!(auth.verify(Some(&header("alice", "s3cret"))).await);
        assert!(!auth.verify(Some(&header("alice", "s3cret2"))).await);
        assert!(!auth.verify(Some(&header("alices3cret", ""))).await);
    }

    #[tokio::test]
    async fn password_may_contain_colons() {
        let auth = auth("alice", "a:b:c");
        assert!(auth.verify(Some(&header("alice", "a:b:c"))).await);
        assert!(!auth.verify(Some(&header("alice", "a"))).await);
    }

    #[tokio::test]
    async fn malformed_headers_fail() {
        let auth = auth("alice", "s3cret");
        let encoded = STANDARD.encode("alice:s3cret");
        for text in [
            format!("Bearer {encoded}"),
            "Basic".to_owned(),
            "Basic !!!not-base64".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
        ] {
            let value = HeaderValue::from_str(&text).unwrap();
            assert!(!auth.verify(Some(&value)).await, "{text}");
        }
        let lowercase = HeaderValue::from_str(&format!("basic {encoded}")).unwrap();
        assert!(auth.verify(Some(&lowercase)).await);
    }

    #[tokio::test]
    async fn cache_stays_bounded() {
        let auth = auth("alice", "s3cret");
        {
            let mut cache = auth.cache();
            for i in 0..MAX_CACHED_CREDENTIALS {
                cache.insert(credential_digest(b"filler", i.to_string().as_bytes()));
            }
        }
        assert_eq!(auth.cached_count(), MAX_CACHED_CREDENTIALS);
        assert!(auth.verify(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.cached_count(), 1);
    }

    #[test]
    fn digest_separates_user_from_password() {
        assert_ne!(
            credential_digest(b"ab", b"c"),
            credential_digest(b"a", b"bc")
        );
    }

    #[test]
    fn bcrypt_hash_format() {
        let good = bcrypt::hash("x", 4).unwrap();
        assert_eq!(check_bcrypt_hash(&good), Ok(()));
        let y = format!("$2y${}", &good[4..]);
        assert_eq!(check_bcrypt_hash(&y), Ok(()));
        let cases = [
            ("plaintext", "does not start with"),
            ("$1$abc", "does not start with"),
            ("$2y$1x$", "two digits"),
            ("$2y$10", "two digits"),
            ("$2y$03$abc", "outside 4 to 31"),
            ("$2y$32$abc", "outside 4 to 31"),
            ("$2y$10$short", "found 5 characters"),
        ];
        for (hash, expected) in cases {
            let reason = check_bcrypt_hash(hash).unwrap_err();
            assert!(reason.contains(expected), "{hash}: {reason}");
            assert!(!reason.contains(hash), "{hash} was quoted: {reason}");
        }
        let bad_alphabet = format!("{}!", &good[..good.len() - 1]);
        assert!(check_bcrypt_hash(&bad_alphabet).is_err());
    }
}
