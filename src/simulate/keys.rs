//! Per-key state: credit and one sliding window per endpoint, for a bounded number of keys.

use std::collections::{BTreeMap, HashMap};

use super::endpoint::ENDPOINT_COUNT;
use super::window::KeyWindow;

/// The most keys tracked at once. Past it the least recently seen key is evicted, so a client
/// sending many distinct keys cannot grow memory without bound. Each key keeps at most one
/// 16-byte arrival time per slot of each endpoint's limits (421 slots with the documented
/// limits). By estimate, with deque capacity rounding, the table stays under about 90 MB even
/// when every tracked key fills every documented window.
///
/// NOTE: an evicted key that returns starts again with an empty window and the start credit.
pub(crate) const MAX_TRACKED_KEYS: usize = 10_000;

/// What the simulator remembers about one key.
#[derive(Debug)]
pub(crate) struct KeyState {
    last_seen: u64,
    /// Credit left, in micro-credits.
    pub(crate) credit_micros: u64,
    /// Admitted arrivals per endpoint, indexed by `Endpoint::index`.
    pub(crate) windows: [KeyWindow; ENDPOINT_COUNT],
}

/// Keys by name with least-recently-seen eviction.
#[derive(Debug)]
pub(crate) struct KeyTable {
    keys: HashMap<String, KeyState>,
    /// Key names ordered by their `last_seen` sequence number, oldest first.
    by_last_seen: BTreeMap<u64, String>,
    next_seen: u64,
    capacity: usize,
    start_credit_micros: u64,
}

impl KeyTable {
    /// Creates an empty table that holds at most `capacity` keys, each starting with
    /// `start_credit_micros`.
    pub(crate) fn new(capacity: usize, start_credit_micros: u64) -> Self {
        Self {
            keys: HashMap::new(),
            by_last_seen: BTreeMap::new(),
            next_seen: 0,
            capacity: capacity.max(1),
            start_credit_micros,
        }
    }

    /// Returns the state of `key`, creating it (and evicting the least recently seen key when
    /// the table is full), and marks it as the most recently seen.
    pub(crate) fn touch(&mut self, key: &str) -> &mut KeyState {
        let seen = self.next_seen;
        self.next_seen += 1;
        if let Some(state) = self.keys.get(key) {
            self.by_last_seen.remove(&state.last_seen);
        } else {
            if self.keys.len() >= self.capacity
                && let Some((_, oldest)) = self.by_last_seen.pop_first()
            {
                self.keys.remove(&oldest);
            }
            self.keys.insert(
                key.to_owned(),
                KeyState {
                    last_seen: seen,
                    credit_micros: self.start_credit_micros,
                    windows: Default::default(),
                },
            );
        }
        self.by_last_seen.insert(seen, key.to_owned());
        let state = self
            .keys
            .get_mut(key)
            .expect("the key was found or inserted above");
        state.last_seen = seen;
        state
    }

    /// The number of keys tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_get_start_credit() {
        let mut table = KeyTable::new(10, 5);
        assert_eq!(table.touch("a").credit_micros, 5);
        table.touch("a").credit_micros = 2;
        assert_eq!(table.touch("a").credit_micros, 2);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn evicts_least_recently_seen_key() {
        let mut table = KeyTable::new(2, 5);
        table.touch("a").credit_micros = 1;
        table.touch("b").credit_micros = 1;
        // Seeing "a" again makes "b" the least recently seen.
        table.touch("a");
        table.touch("c");
        assert_eq!(table.len(), 2);
        assert_eq!(table.touch("a").credit_micros, 1);
        // "b" was evicted, so it comes back with the start credit, evicting "c".
        assert_eq!(table.touch("b").credit_micros, 5);
        assert_eq!(table.len(), 2);
    }
}
