//! The crash-safe local state store: which requests went out and when, `Retry-After` pauses,
//! and each endpoint's last result and streaks, in an embedded redb database under
//! `--storage.path`.
//!
//! redb was chosen over `SQLite` because it is pure Rust (no C build), its write transactions
//! are atomic and fsync on commit by default, and the data is a few small keyed tables with
//! no need for SQL. A send is committed before its request goes out, so a `kill -9` at any
//! moment can lose at most a record of a request that was never sent.
//!
//! Times are stored as [`Stamp`]s: wall-clock milliseconds plus the kernel's boot id and
//! uptime. Within one boot, elapsed time comes from uptime, so a wall-clock step (NTP, a VM
//! resume) cannot free budget early. Across a reboot only the wall clock is left; a stamp in
//! the future is treated as "just now", which keeps the budget spent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u64 = 1;

/// The precision of a stored time: stamps and durations count whole milliseconds.
pub const STAMP_RESOLUTION: Duration = Duration::from_millis(1);

/// The database file inside the storage directory.
pub const FILE_NAME: &str = "ratewatch.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (endpoint key, wall ms) -> (uptime ms, boot id hash).
const SENDS: TableDefinition<(&str, u64), (i64, u64)> = TableDefinition::new("sends");
/// (endpoint key, wall ms of the send) -> milliseconds the probe took, once it ended.
const ENDS: TableDefinition<(&str, u64), u64> = TableDefinition::new("ends");
/// endpoint key -> (wall ms, uptime ms, boot id hash) of the end of a `Retry-After` pause.
const PAUSES: TableDefinition<&str, (u64, i64, u64)> = TableDefinition::new("pauses");
/// endpoint key -> (wall ms, uptime ms, boot id hash) before which the API's own rate-limit
/// headers leave no quota for the next probe.
const HOLDS: TableDefinition<&str, (u64, i64, u64)> = TableDefinition::new("holds");
/// endpoint key -> (wall ms, uptime ms, boot id hash) of the first slot planned for an
/// endpoint that has not been probed yet.
const DUE: TableDefinition<&str, (u64, i64, u64)> = TableDefinition::new("due");
/// endpoint key -> the last result as JSON.
const RESULTS: TableDefinition<&str, &str> = TableDefinition::new("results");

/// A point in time as the store records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, from the wall clock.
    pub wall_ms: u64,
    /// Milliseconds since boot, from the kernel's boot clock; includes time suspended. Negative for a
    /// stamp from an earlier boot, once [`Stamp::rebase`] has moved it into this one.
    pub uptime_ms: i64,
    /// A hash of the kernel's boot id; 0 when unknown.
    pub boot: u64,
}

impl Stamp {
    /// Reads the clocks now.
    #[must_use]
    pub fn now() -> Stamp {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Stamp {
            wall_ms,
            uptime_ms: read_uptime_ms().map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            boot: boot_id_hash(),
        }
    }

    /// Returns the time from `earlier` to `self`: by uptime within one boot, by wall clock
    /// across boots. A negative span (the wall clock stepped back across a reboot) is zero.
    #[must_use]
    pub fn since(&self, earlier: &Stamp) -> Duration {
        let millis = if self.boot != 0 && self.boot == earlier.boot && self.uptime_ms > 0 {
            u64::try_from(self.uptime_ms.saturating_sub(earlier.uptime_ms)).unwrap_or(0)
        } else {
            self.wall_ms.saturating_sub(earlier.wall_ms)
        };
        Duration::from_millis(millis)
    }

    /// Returns `stamp` moved into this stamp's frame, so that both of its clocks agree with
    /// the current ones. A stamp from this boot gets its wall time recomputed from uptime, so
    /// a wall-clock step is undone before a later reboot leaves only wall times to compare.
    /// A stamp from an earlier boot gets this boot's id and an uptime computed from the wall
    /// clocks, so a wall-clock step later in this boot cannot change its age either.
    #[must_use]
    pub fn rebase(&self, stamp: Stamp) -> Stamp {
        if self.boot == 0 || self.uptime_ms == 0 {
            return stamp;
        }
        if self.boot == stamp.boot {
            let offset = i128::from(stamp.uptime_ms) - i128::from(self.uptime_ms);
            let wall = (i128::from(self.wall_ms) + offset).clamp(0, i128::from(u64::MAX));
            return Stamp {
                wall_ms: u64::try_from(wall).unwrap_or(0),
                ..stamp
            };
        }
        let elapsed = i128::from(self.wall_ms) - i128::from(stamp.wall_ms);
        let uptime = (i128::from(self.uptime_ms) - elapsed)
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Stamp {
            uptime_ms: i64::try_from(uptime).unwrap_or(0),
            boot: self.boot,
            ..stamp
        }
    }

    /// Returns this stamp moved forward by `by`.
    #[must_use]
    pub fn plus(&self, by: Duration) -> Stamp {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        Stamp {
            wall_ms: self.wall_ms.saturating_add(ms),
            uptime_ms: self
                .uptime_ms
                .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
            boot: self.boot,
        }
    }
}

/// Reads `CLOCK_BOOTTIME`: time since boot, including time suspended, to the millisecond.
#[cfg(target_os = "linux")]
fn read_uptime_ms() -> Option<u64> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let millis = u64::try_from(now.tv_nsec).ok()? / 1_000_000;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// Without a boot clock, stamps fall back to the wall clock alone.
#[cfg(not(target_os = "linux"))]
fn read_uptime_ms() -> Option<u64> {
    None
}

fn boot_id_hash() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let Ok(id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
            return 0;
        };
        // FNV-1a of the boot id text; only equality matters.
        id.trim().bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// A clock the store reads; tests replace it to step the wall clock.
pub type Clock = Arc<dyn Fn() -> Stamp + Send + Sync>;

/// The store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage directory could not be created or read.
    #[error(
        "cannot use storage directory {path}: {error}; check that it exists and is writable, or choose another with --storage.path"
    )]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `--storage.path` names something that exists but is not a directory.
    #[error(
        "--storage.path {0} is a regular file, not a directory; pass a directory, in which ratewatch keeps {FILE_NAME}"
    )]
    NotADirectory(PathBuf),
    /// The database file exists but this process may not read or write it.
    #[error(
        "cannot open state at {path}: permission denied; give the user running ratewatch read and write access to it, or choose another directory with --storage.path"
    )]
    PermissionDenied {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is unreadable and could not be moved aside.
    #[error(
        "state at {path} is unreadable ({cause}) and could not be moved aside to {aside}: {error}; move or delete it by hand, or choose another directory with --storage.path"
    )]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// The path it was to be renamed to.
        aside: PathBuf,
        /// The error that made the database unreadable.
        cause: String,
        /// The error from the rename.
        error: std::io::Error,
    },
    /// Another process has the database open.
    #[error("state at {0} is in use by another process; run one ratewatch per --storage.path")]
    InUse(PathBuf),
    /// The store was written by a newer ratewatch.
    #[error(
        "state at {path} has schema version {found}, but this ratewatch reads at most version {supported}; upgrade ratewatch, or move the directory away to start without state"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// A read or write failed.
    #[error("state store operation failed: {0}")]
    Database(String),
    /// A table contains other key or value types than this build writes, so the file came from
    /// an incompatible build.
    #[error("state store tables do not match this build: {0}")]
    Layout(String),
}

/// Returns how long is left until the time stored for `key` in `table`, if it is ahead.
fn time_left(
    table: &redb::ReadOnlyTable<&'static str, (u64, i64, u64)>,
    key: &str,
    now: &Stamp,
) -> Result<Option<Duration>, StoreError> {
    let Some(value) = table.get(key).map_err(db_error)? else {
        return Ok(None);
    };
    let (wall_ms, uptime_ms, boot) = value.value();
    let until = Stamp {
        wall_ms,
        uptime_ms,
        boot,
    };
    // Time left is "until - now": measured the same way as elapsed time.
    let past = now.since(&until);
    let left = until.since(now);
    Ok((past.is_zero() && !left.is_zero()).then_some(left))
}

/// Opens `table` in `txn`, reporting a table with other types than `definition` as
/// [`StoreError::Layout`].
fn open_checked<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    definition: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    match txn.open_table(definition) {
        Ok(_) => Ok(()),
        Err(
            error @ (redb::TableError::TableTypeMismatch { .. }
            | redb::TableError::TypeDefinitionChanged { .. }
            | redb::TableError::TableIsMultimap(_)),
        ) => Err(StoreError::Layout(error.to_string())),
        Err(error) => Err(db_error(error)),
    }
}

/// Returns whether opening failed because the process may not read or write the file.
fn is_permission_denied(error: &redb::DatabaseError) -> bool {
    matches!(
        error,
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::PermissionDenied
    )
}

fn db_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(error.into().to_string())
}

/// The saved state of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// How long ago each request sent within the retention was sent, most recent first.
    pub sends_ago: Vec<Duration>,
    /// How long ago the newest stored request was sent, however old. Sends are pruned only
    /// when a newer one is recorded, so the newest is always kept.
    pub last_send_ago: Option<Duration>,
    /// How long each of those probes took, in the same order; `None` when the process
    /// stopped before the probe ended.
    pub took: Vec<Option<Duration>>,
    /// How much of a `Retry-After` pause is left.
    pub pause_left: Option<Duration>,
    /// How much of a hold from the API's rate-limit headers is left.
    pub hold_left: Option<Duration>,
}

/// The condition of the store at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// The store existed and was read.
    Existing,
    /// There was no store, or an empty file that ratewatch never initialised (for example
    /// after a power loss during its creation): every endpoint waits one full interval before
    /// its first probe.
    Missing,
    /// The store was unreadable and was moved aside: every endpoint waits one full interval.
    Unreadable,
}

/// The local state store.
pub struct StateStore {
    db: Database,
    clock: Clock,
    opening: Opening,
    durable: bool,
    /// Whether a commit without a disk flush has happened since the last flush.
    deferred: AtomicBool,
}

impl StateStore {
    fn from_parts(db: Database, clock: Clock, opening: Opening) -> StateStore {
        StateStore {
            db,
            clock,
            opening,
            durable: true,
            deferred: AtomicBool::new(false),
        }
    }

    /// Opens or creates the store in `dir` with the real clocks.
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        Self::open_with_clock(dir, Arc::new(Stamp::now))
    }

    /// Opens or creates the store in `dir`, reading time from `clock`.
    pub fn open_with_clock(dir: &Path, clock: Clock) -> Result<StateStore, StoreError> {
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::NotADirectory(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Directory {
            path: dir.to_owned(),
            error,
        })?;
        let path = dir.join(FILE_NAME);
        // A zero-length file contains no state: redb initialises it like a new file.
        let existed = std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 0);
        let (db, opening) = match Database::create(&path) {
            Ok(db) if existed => (db, Opening::Existing),
            Ok(db) => (db, Opening::Missing),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::InUse(path)),
            Err(error) if is_permission_denied(&error) => {
                return Err(StoreError::PermissionDenied { path });
            }
            Err(error) => (Self::move_aside(&path, &error)?, Opening::Unreadable),
        };
        let mut store = StateStore::from_parts(db, clock.clone(), opening);
        let initialised = match store.check_schema(&path) {
            Err(StoreError::Layout(reason)) => {
                // Close the file before moving it aside, then start a new one.
                drop(store);
                let db = Self::move_aside(&path, &reason)?;
                store = StateStore::from_parts(db, clock, Opening::Unreadable);
                store.check_schema(&path)?
            }
            other => other?,
        };
        if !initialised && store.opening == Opening::Existing {
            tracing::debug!(path = %path.display(), "state store has no schema version; treating it as missing");
            store.opening = Opening::Missing;
        }
        Ok(store)
    }

    /// Renames an unreadable database file out of the way and creates a new one in its place.
    fn move_aside(path: &Path, cause: &dyn std::fmt::Display) -> Result<Database, StoreError> {
        let aside = path.with_extension(format!("redb.unreadable-{}", Stamp::now().wall_ms));
        if let Err(error) = std::fs::rename(path, &aside) {
            return Err(StoreError::MoveAside {
                path: path.to_owned(),
                aside,
                cause: cause.to_string(),
                error,
            });
        }
        tracing::warn!(path = %path.display(), moved_to = %aside.display(), error = %cause, "state store is unreadable; moved it aside and starting without state");
        Database::create(path).map_err(db_error)
    }

    /// Turns off the flush to disk on every commit. Only for tests that simulate restarts
    /// within one process: a crash would lose every commit made without it.
    #[doc(hidden)]
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    fn write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(db_error)?;
        if !self.durable {
            txn.set_durability(redb::Durability::None)
                .map_err(db_error)?;
        }
        Ok(txn)
    }

    /// Returns how the store was found at start-up.
    #[must_use]
    pub fn opening(&self) -> Opening {
        self.opening
    }

    /// Checks the schema version, writing the current one into a store that has none, and
    /// returns whether the store already had one.
    fn check_schema(&self, path: &Path) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let initialised;
        {
            open_checked(&txn, META)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let found = meta
                .get("schema_version")
                .map_err(db_error)?
                .map(|v| v.value());
            initialised = found.is_some();
            match found {
                Some(version) if version > SCHEMA_VERSION => {
                    return Err(StoreError::TooNew {
                        path: path.to_owned(),
                        found: version,
                        supported: SCHEMA_VERSION,
                    });
                }
                // NOTE: version 1 is the only schema so far; an older version would be
                // migrated here, table by table, before the version is raised.
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(db_error)?;
                }
            }
            open_checked(&txn, SENDS)?;
            open_checked(&txn, PAUSES)?;
            open_checked(&txn, HOLDS)?;
            open_checked(&txn, RESULTS)?;
            open_checked(&txn, ENDS)?;
            open_checked(&txn, DUE)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(initialised)
    }

    /// Reads what is remembered about `key`, ignoring sends older than `keep` except in
    /// [`Restored::last_send_ago`]. Ages are
    /// measured at a clock reading taken inside this call, so a caller that reads its own
    /// clock after the call returns places every send no earlier than it happened.
    pub fn restore(&self, key: &str, keep: Duration) -> Result<Restored, StoreError> {
        let now = (self.clock)();
        self.rebase_all(key, &now)?;
        let txn = self.db.begin_read().map_err(db_error)?;
        let sends = txn.open_table(SENDS).map_err(db_error)?;
        let ends = txn.open_table(ENDS).map_err(db_error)?;
        let mut found = Vec::new();
        let mut last_send_ago: Option<Duration> = None;
        for entry in sends.range((key, 0)..=(key, u64::MAX)).map_err(db_error)? {
            let (when, clocks) = entry.map_err(db_error)?;
            let (_, wall_ms) = when.value();
            let (uptime_ms, boot) = clocks.value();
            let ago = now.since(&Stamp {
                wall_ms,
                uptime_ms,
                boot,
            });
            last_send_ago = Some(last_send_ago.map_or(ago, |newest| newest.min(ago)));
            if ago < keep {
                let took = ends
                    .get((key, wall_ms))
                    .map_err(db_error)?
                    .map(|v| Duration::from_millis(v.value()));
                found.push((ago, took));
            }
        }
        found.sort();
        let (sends_ago, took) = found.into_iter().unzip();
        let pause_left = time_left(&txn.open_table(PAUSES).map_err(db_error)?, key, &now)?;
        let hold_left = time_left(&txn.open_table(HOLDS).map_err(db_error)?, key, &now)?;
        Ok(Restored {
            sends_ago,
            last_send_ago,
            took,
            pause_left,
            hold_left,
        })
    }

    /// Rewrites the wall times of `key`'s stamps from this boot to agree with the current wall
    /// clock (see [`Stamp::rebase`]), so a wall-clock step followed by a reboot cannot make
    /// old sends look older than they are.
    fn rebase_all(&self, key: &str, now: &Stamp) -> Result<(), StoreError> {
        let txn = self.write()?;
        if Self::rebase_in(&txn, key, now)? {
            txn.commit().map_err(db_error)
        } else {
            txn.abort().map_err(db_error)
        }
    }

    /// Does the work of [`StateStore::rebase_all`] inside `txn`, and returns whether anything
    /// changed.
    fn rebase_in(txn: &redb::WriteTransaction, key: &str, now: &Stamp) -> Result<bool, StoreError> {
        let mut changed = false;
        {
            let mut sends = txn.open_table(SENDS).map_err(db_error)?;
            let mut ends = txn.open_table(ENDS).map_err(db_error)?;
            let mut moves = Vec::new();
            for entry in sends.range((key, 0)..=(key, u64::MAX)).map_err(db_error)? {
                let (when, clocks) = entry.map_err(db_error)?;
                let (uptime_ms, boot) = clocks.value();
                let stamp = Stamp {
                    wall_ms: when.value().1,
                    uptime_ms,
                    boot,
                };
                let rebased = now.rebase(stamp);
                if rebased.wall_ms.abs_diff(stamp.wall_ms) > 1000 || rebased.boot != stamp.boot {
                    moves.push((stamp, rebased));
                }
            }
            changed |= !moves.is_empty();
            for (old, new) in moves {
                sends.remove((key, old.wall_ms)).map_err(db_error)?;
                let took = ends
                    .remove((key, old.wall_ms))
                    .map_err(db_error)?
                    .map(|v| v.value());
                let mut wall_ms = new.wall_ms;
                while sends.get((key, wall_ms)).map_err(db_error)?.is_some() {
                    wall_ms += 1;
                }
                sends
                    .insert((key, wall_ms), (new.uptime_ms, new.boot))
                    .map_err(db_error)?;
                if let Some(took) = took {
                    ends.insert((key, wall_ms), took).map_err(db_error)?;
                }
            }
            for table in [PAUSES, HOLDS, DUE] {
                let mut table = txn.open_table(table).map_err(db_error)?;
                let stored = table.get(key).map_err(db_error)?.map(|v| v.value());
                if let Some((wall_ms, uptime_ms, boot)) = stored {
                    let rebased = now.rebase(Stamp {
                        wall_ms,
                        uptime_ms,
                        boot,
                    });
                    if rebased.wall_ms.abs_diff(wall_ms) > 1000 || rebased.boot != boot {
                        let value = (rebased.wall_ms, rebased.uptime_ms, rebased.boot);
                        table.insert(key, value).map_err(db_error)?;
                        changed = true;
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Writes every deferred record to the disk, with one flush, when there is any.
    pub fn flush(&self) -> Result<(), StoreError> {
        if !self.deferred.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.write()?.commit().map_err(db_error)
    }

    /// Durably records a request about to be sent for `key`, and deletes sends older than
    /// `keep`. Returns only after the commit reached the disk, with the id that
    /// [`StateStore::complete`] takes.
    pub fn record_send(&self, key: &str, keep: Duration) -> Result<u64, StoreError> {
        let now = (self.clock)();
        let txn = self.write()?;
        Self::rebase_in(&txn, key, &now)?;
        let id;
        {
            let mut sends = txn.open_table(SENDS).map_err(db_error)?;
            let oldest = now
                .wall_ms
                .saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
            // Entries are keyed by wall time only for ordering; which ones to forget is
            // decided by the same elapsed-time rule that restores them.
            let stale: Vec<u64> = sends
                .range((key, 0)..(key, oldest))
                .map_err(db_error)?
                .filter_map(Result::ok)
                .filter(|(when, clocks)| {
                    let (_, wall_ms) = when.value();
                    let (uptime_ms, boot) = clocks.value();
                    now.since(&Stamp {
                        wall_ms,
                        uptime_ms,
                        boot,
                    }) >= keep
                })
                .map(|(when, _)| when.value().1)
                .collect();
            let mut ends = txn.open_table(ENDS).map_err(db_error)?;
            for wall_ms in stale {
                sends.remove((key, wall_ms)).map_err(db_error)?;
                ends.remove((key, wall_ms)).map_err(db_error)?;
            }
            let mut wall_ms = now.wall_ms;
            // Two sends in one millisecond, or a wall clock that stepped back onto an older
            // entry, must not overwrite each other.
            while sends.get((key, wall_ms)).map_err(db_error)?.is_some() {
                wall_ms += 1;
            }
            sends
                .insert((key, wall_ms), (now.uptime_ms, now.boot))
                .map_err(db_error)?;
            id = wall_ms;
        }
        txn.commit().map_err(db_error)?;
        Ok(id)
    }

    /// Records that the probe sent as `id` ended `took` after the call to
    /// [`StateStore::record_send`] began, and the endpoint's last result as JSON, in one
    /// commit. Measured from before the send's clock reading, `took` is never short.
    pub fn complete(
        &self,
        key: &str,
        id: u64,
        took: Duration,
        result: &str,
    ) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut ends = txn.open_table(ENDS).map_err(db_error)?;
            // Rounded up: a restart must never see the probe end earlier than it did.
            let millis = u64::try_from(took.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
            ends.insert((key, id), millis).map_err(db_error)?;
            let mut results = txn.open_table(RESULTS).map_err(db_error)?;
            results.insert(key, result).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Records that the first probe of `key` is due `after` from now, so restarts before it
    /// cannot postpone it again. The record reaches the disk with the next send or
    /// [`StateStore::flush`].
    pub fn record_due(&self, key: &str, after: Duration) -> Result<(), StoreError> {
        let due = (self.clock)().plus(after);
        let mut txn = self.write()?;
        // Deferred to the next durable commit or `flush`: a start-up records one first slot per
        // endpoint, and a disk flush for each would make a large config slow to load. Losing
        // one in a crash only lets that endpoint, which spent nothing yet, start earlier.
        txn.set_durability(redb::Durability::None)
            .map_err(db_error)?;
        {
            let mut table = txn.open_table(DUE).map_err(db_error)?;
            table
                .insert(key, (due.wall_ms, due.uptime_ms, due.boot))
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        self.deferred.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Returns when the first probe of `key` is due: `Ok(Some(wait))`, with a zero wait when
    /// it is overdue, or `Ok(None)` when no first slot was recorded.
    pub fn due(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let now = (self.clock)();
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(DUE).map_err(db_error)?;
        let Some(value) = table.get(key).map_err(db_error)? else {
            return Ok(None);
        };
        let (wall_ms, uptime_ms, boot) = value.value();
        let due = Stamp {
            wall_ms,
            uptime_ms,
            boot,
        };
        Ok(Some(if now.since(&due).is_zero() {
            due.since(&now)
        } else {
            Duration::ZERO
        }))
    }

    /// Durably records that the API's rate-limit headers leave no quota for `wait` from now,
    /// or with `None` that they leave room again.
    pub fn record_hold(&self, key: &str, wait: Option<Duration>) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut holds = txn.open_table(HOLDS).map_err(db_error)?;
            match wait {
                Some(wait) => {
                    let until = (self.clock)().plus(wait);
                    holds
                        .insert(key, (until.wall_ms, until.uptime_ms, until.boot))
                        .map_err(db_error)?;
                }
                None => {
                    holds.remove(key).map_err(db_error)?;
                }
            }
        }
        txn.commit().map_err(db_error)
    }

    /// Durably records a `Retry-After` pause of `wait` from now.
    pub fn record_pause(&self, key: &str, wait: Duration) -> Result<(), StoreError> {
        let until = (self.clock)().plus(wait);
        let txn = self.write()?;
        {
            let mut pauses = txn.open_table(PAUSES).map_err(db_error)?;
            pauses
                .insert(key, (until.wall_ms, until.uptime_ms, until.boot))
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Stores the last result of `key` as JSON, for the status page after a restart.
    pub fn record_result(&self, key: &str, json: &str) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut results = txn.open_table(RESULTS).map_err(db_error)?;
            results.insert(key, json).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Returns the last result of `key` as stored.
    pub fn last_result(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let results = txn.open_table(RESULTS).map_err(db_error)?;
        Ok(results
            .get(key)
            .map_err(db_error)?
            .map(|v| v.value().to_owned()))
    }

    /// Writes a schema version, for tests of version handling.
    #[doc(hidden)]
    pub fn force_schema_version(&self, version: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut meta = txn.open_table(META).map_err(db_error)?;
            meta.insert("schema_version", version).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }
}

#[cfg(test)]
mod tests;
