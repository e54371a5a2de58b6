//! Whether the budget store keeps spent budget across a Redis restart.
//!
//! Debits live in Redis. A restarted Redis that has lost recent debits shows their windows as
//! empty, so replicas can spend those windows' budget a second time. Only `appendonly yes`
//! with `appendfsync always` writes every debit to disk before Redis replies.

use std::collections::HashMap;

/// The persistence settings that decide whether debits survive a Redis restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// `appendonly yes` and `appendfsync always`: every debit is on disk before Redis replies.
    Durable,
    /// Some debits are lost when Redis restarts.
    Lossy {
        /// The `appendonly` setting.
        appendonly: String,
        /// The `appendfsync` setting.
        appendfsync: String,
    },
    /// The settings could not be read because the server requires a password and the URL
    /// gives none.
    Unauthenticated {
        /// The error of `CONFIG GET`, with any password removed.
        reason: String,
    },
    /// The settings could not be read, for example because `CONFIG` is renamed or disabled,
    /// as managed Redis services often do.
    Unknown {
        /// The reason the settings could not be read, with any password removed.
        reason: String,
    },
}

impl Persistence {
    /// Classifies the replies to `CONFIG GET appendonly` and `CONFIG GET appendfsync`. A
    /// reply without the setting, as a server returns for a parameter it hides, is
    /// [`Persistence::Unknown`].
    pub(crate) fn from_config(
        appendonly: &HashMap<String, String>,
        appendfsync: &HashMap<String, String>,
    ) -> Persistence {
        let (Some(appendonly), Some(appendfsync)) =
            (appendonly.get("appendonly"), appendfsync.get("appendfsync"))
        else {
            return Persistence::Unknown {
                reason: "CONFIG GET returned no value for appendonly or appendfsync".to_owned(),
            };
        };
        if appendonly.eq_ignore_ascii_case("yes") && appendfsync.eq_ignore_ascii_case("always") {
            Persistence::Durable
        } else {
            Persistence::Lossy {
                appendonly: appendonly.clone(),
                appendfsync: appendfsync.clone(),
            }
        }
    }

    /// Logs one line about these settings for the store at `url` (redacted): a debug line
    /// when durable, a warning when a restart loses debits or authentication is missing, and
    /// an info line when unknown.
    pub(crate) fn log(&self, url: &str) {
        match self {
            Persistence::Durable => {
                tracing::debug!(
                    url,
                    "shared budget store persists every debit before replying"
                );
            }
            Persistence::Lossy {
                appendonly,
                appendfsync,
            } => {
                let at_risk = debits_at_risk(appendonly, appendfsync);
                tracing::warn!(
                    url,
                    appendonly = %appendonly,
                    appendfsync = %appendfsync,
                    at_risk,
                    "shared budget store does not write every debit to disk before replying; \
                     debits lost in a restart of Redis free their windows, so replicas can \
                     spend the budget of a window again; set appendonly yes and appendfsync always \
                     on the Redis server"
                );
            }
            Persistence::Unauthenticated { reason } => {
                tracing::warn!(
                    url,
                    reason = %reason,
                    "shared budget store requires authentication and the URL gives no password, \
                     so nothing can be stored and its persistence settings cannot be read; add \
                     the password to the URL in --storage.redis-url or RATEWATCH_REDIS_URL"
                );
            }
            Persistence::Unknown { reason } => {
                tracing::info!(
                    url,
                    reason = %reason,
                    "cannot check whether the shared budget store writes every debit to disk; \
                     run Redis with appendonly yes and appendfsync always, or a Redis restart \
                     can let replicas spend the budget of a window again"
                );
            }
        }
    }
}

/// Describes which debits can be lost with these settings, as the comments on `appendfsync`
/// in the `redis.conf` of Redis 7.0 describe each policy. With `appendonly yes`, a reply
/// follows the write to the file, so only a crash of the host loses what was not yet
/// synced to disk.
fn debits_at_risk(appendonly: &str, appendfsync: &str) -> &'static str {
    if !appendonly.eq_ignore_ascii_case("yes") {
        "every debit since the last RDB snapshot, or all of them when no snapshot is configured"
    } else if appendfsync.eq_ignore_ascii_case("everysec") {
        "up to about the last second of debits when the host crashes"
    } else {
        "the debits that the operating system has not yet written to disk, up to about 30s \
         with the default Linux settings, when the host crashes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str) -> HashMap<String, String> {
        HashMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn appendonly_with_fsync_always_is_durable() {
        let persistence = Persistence::from_config(
            &setting("appendonly", "yes"),
            &setting("appendfsync", "always"),
        );
        assert_eq!(persistence, Persistence::Durable);
    }

    #[test]
    fn other_settings_are_lossy() {
        for (appendonly, appendfsync) in [("no", "always"), ("yes", "everysec"), ("yes", "no")] {
            let persistence = Persistence::from_config(
                &setting("appendonly", appendonly),
                &setting("appendfsync", appendfsync),
            );
            let expected = Persistence::Lossy {
                appendonly: appendonly.to_owned(),
                appendfsync: appendfsync.to_owned(),
            };
            assert_eq!(persistence, expected);
        }
    }

    #[test]
    fn missing_setting_is_unknown() {
        let persistence =
            Persistence::from_config(&HashMap::new(), &setting("appendfsync", "always"));
        assert!(
            matches!(persistence, Persistence::Unknown { .. }),
            "{persistence:?}"
        );
    }

    #[test]
    fn debits_at_risk_names_each_case() {
        assert!(debits_at_risk("no", "always").contains("RDB snapshot"));
        assert!(debits_at_risk("yes", "everysec").contains("last second"));
        assert!(debits_at_risk("yes", "no").contains("operating system"));
    }
}
