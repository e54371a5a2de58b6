use std::sync::Mutex;

use super::*;
use redb::ReadableTableMetadata;

/// A clock the test moves by hand: uptime and wall advance together unless the wall clock is
/// stepped.
#[derive(Clone)]
struct HandClock(Arc<Mutex<Stamp>>);

impl HandClock {
    fn new() -> HandClock {
        HandClock(Arc::new(Mutex::new(Stamp {
            wall_ms: 1_800_000_000_000,
            uptime_ms: 1_000_000,
            boot: 42,
        })))
    }

    fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }

    fn advance(&self, by: Duration) {
        let mut stamp = self.0.lock().unwrap();
        *stamp = stamp.plus(by);
    }

    fn step_wall(&self, forward: bool, by: Duration) {
        let ms = by.as_millis() as u64;
        let mut stamp = self.0.lock().unwrap();
        stamp.wall_ms = if forward {
            stamp.wall_ms + ms
        } else {
            stamp.wall_ms - ms
        };
    }

    fn reboot(&self) {
        let mut stamp = self.0.lock().unwrap();
        stamp.boot += 1;
        stamp.uptime_ms = 5_000;
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn missing_store_is_reported_then_existing() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Missing);
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Existing);
}

#[test]
fn sends_survive_reopen_with_elapsed_time() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", DAY).unwrap();
    hand.advance(Duration::from_secs(3600));
    store.record_send("api/a", DAY).unwrap();
    store.record_send("api/b", DAY).unwrap();
    drop(store);

    hand.advance(Duration::from_secs(60));
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    let restored = store.restore("api/a", DAY).unwrap();
    assert_eq!(
        restored.sends_ago,
        vec![Duration::from_secs(60), Duration::from_secs(3660)]
    );
    assert_eq!(store.restore("api/b", DAY).unwrap().sends_ago.len(), 1);
    assert!(store.restore("api/c", DAY).unwrap().sends_ago.is_empty());
}

#[test]
fn wall_clock_steps_within_one_boot_do_not_change_elapsed_time() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", DAY).unwrap();
    hand.advance(Duration::from_secs(600));
    hand.step_wall(true, 2 * DAY);
    assert_eq!(
        store.restore("api/a", DAY).unwrap().sends_ago,
        vec![Duration::from_secs(600)]
    );
    hand.step_wall(false, 3 * DAY);
    assert_eq!(
        store.restore("api/a", DAY).unwrap().sends_ago,
        vec![Duration::from_secs(600)]
    );
}

#[test]
fn after_reboot_a_future_stamp_counts_as_now() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", DAY).unwrap();
    hand.reboot();
    hand.step_wall(false, Duration::from_secs(7200));
    let restored = store.restore("api/a", DAY).unwrap();
    assert_eq!(restored.sends_ago, vec![Duration::ZERO]);
}

#[test]
fn old_sends_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    let keep = Duration::from_secs(3600);
    for _ in 0..10 {
        store.record_send("api/a", keep).unwrap();
        hand.advance(Duration::from_secs(1000));
    }
    let restored = store.restore("api/a", keep).unwrap();
    assert_eq!(restored.sends_ago.len(), 3);
    let txn = store.db.begin_read().unwrap();
    let sends = txn.open_table(SENDS).unwrap();
    assert!(
        sends.len().unwrap() <= 4,
        "old entries are deleted on write"
    );
}

#[test]
fn same_millisecond_sends_are_both_kept() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", DAY).unwrap();
    store.record_send("api/a", DAY).unwrap();
    assert_eq!(store.restore("api/a", DAY).unwrap().sends_ago.len(), 2);
}

#[test]
fn pause_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store
        .record_pause("api/a", Duration::from_secs(300))
        .unwrap();
    hand.advance(Duration::from_secs(100));
    let restored = store.restore("api/a", DAY).unwrap();
    assert_eq!(restored.pause_left, Some(Duration::from_secs(200)));
    hand.advance(Duration::from_secs(300));
    assert_eq!(store.restore("api/a", DAY).unwrap().pause_left, None);
}

#[test]
fn newer_schema_is_refused_with_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.force_schema_version(SCHEMA_VERSION + 1).unwrap();
    drop(store);
    let Err(err) = StateStore::open(dir.path()) else {
        panic!("a newer store was opened");
    };
    let message = err.to_string();
    assert!(message.contains("schema version 2"), "{message}");
    assert!(message.contains("at most version 1"), "{message}");
}

#[test]
fn quota_hold_survives_restart_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store
        .record_hold("api/a", Some(Duration::from_secs(120)))
        .unwrap();
    hand.advance(Duration::from_secs(20));
    let restored = store.restore("api/a", DAY).unwrap();
    assert_eq!(restored.hold_left, Some(Duration::from_secs(100)));
    assert_eq!(restored.pause_left, None);

    store.record_hold("api/a", None).unwrap();
    assert_eq!(store.restore("api/a", DAY).unwrap().hold_left, None);
}

#[test]
fn flushed_first_slot_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    {
        let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
        store.flush().unwrap();
        store.record_due("api/a", Duration::from_secs(300)).unwrap();
        store.flush().unwrap();
    }
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    assert_eq!(store.due("api/a").unwrap(), Some(Duration::from_secs(300)));
}

#[test]
fn unreadable_store_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(FILE_NAME),
        b"this is not a redb file at all, just junk bytes",
    )
    .unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Unreadable);
    let moved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("unreadable"));
    assert!(moved, "the junk file was kept for inspection");
}

#[test]
fn store_with_other_table_types_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A build whose sends table held unsigned uptimes, under the same schema version.
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema_version", SCHEMA_VERSION).unwrap();
            let older: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("sends");
            let mut sends = txn.open_table(older).unwrap();
            sends.insert(("sim/model", 1), (5, 7)).unwrap();
        }
        txn.commit().unwrap();
    }

    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Unreadable);
    let moved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("unreadable"));
    assert!(moved, "the old file was kept for inspection");
    let restored = store.restore("sim/model", Duration::from_secs(60)).unwrap();
    assert!(restored.sends_ago.is_empty(), "{restored:?}");
}

#[test]
fn second_process_on_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = StateStore::open(dir.path()).unwrap();
    let Err(err) = StateStore::open(dir.path()) else {
        panic!("the store was opened twice");
    };
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

#[test]
fn last_result_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.record_result("api/a", r#"{"class":"ok"}"#).unwrap();
    assert_eq!(
        store.last_result("api/a").unwrap().as_deref(),
        Some(r#"{"class":"ok"}"#)
    );
}

#[test]
fn wall_step_after_reboot_does_not_age_old_sends() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", 3 * DAY).unwrap();
    hand.advance(Duration::from_secs(600));
    hand.reboot();
    // The first look after the reboot moves the send into the new boot's frame.
    assert_eq!(
        store.restore("api/a", 3 * DAY).unwrap().sends_ago,
        vec![Duration::from_secs(600)]
    );
    hand.step_wall(true, 2 * DAY);
    assert_eq!(
        store.restore("api/a", 3 * DAY).unwrap().sends_ago,
        vec![Duration::from_secs(600)]
    );
}

#[test]
fn wall_step_then_reboot_does_not_age_old_sends() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", 3 * DAY).unwrap();
    hand.step_wall(true, 2 * DAY);
    // A restart within the boot rebases the send onto the stepped wall clock.
    assert_eq!(
        store.restore("api/a", 3 * DAY).unwrap().sends_ago,
        vec![Duration::ZERO]
    );
    hand.advance(Duration::from_secs(600));
    hand.reboot();
    assert_eq!(
        store.restore("api/a", 3 * DAY).unwrap().sends_ago,
        vec![Duration::from_secs(600)]
    );
}

#[test]
fn zero_length_store_is_treated_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), b"").unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Missing);
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Existing);
}

#[test]
fn store_without_schema_version_is_treated_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    // A file that redb initialised but ratewatch never wrote to, as a crash right after its
    // creation leaves it.
    drop(Database::create(dir.path().join(FILE_NAME)).unwrap());
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.opening(), Opening::Missing);
}

#[test]
fn storage_path_naming_a_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    std::fs::write(&file, b"").unwrap();
    let Err(err) = StateStore::open(&file) else {
        panic!("a regular file was used as the storage directory");
    };
    let message = err.to_string();
    assert!(
        message.contains("is a regular file, not a directory"),
        "{message}"
    );
    assert!(message.contains("pass a directory"), "{message}");
}

#[test]
fn permission_error_is_reported_not_moved_aside() {
    let denied = redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::from(
        std::io::ErrorKind::PermissionDenied,
    )));
    assert!(is_permission_denied(&denied));
    let corrupt = redb::DatabaseError::Storage(redb::StorageError::Corrupted("junk".into()));
    assert!(!is_permission_denied(&corrupt));
    let message = StoreError::PermissionDenied {
        path: "/var/lib/ratewatch/ratewatch.redb".into(),
    }
    .to_string();
    assert!(message.contains("permission denied"), "{message}");
    assert!(!message.contains("moved"), "{message}");
}

#[test]
fn newest_send_age_ignores_retention() {
    let dir = tempfile::tempdir().unwrap();
    let hand = HandClock::new();
    let store = StateStore::open_with_clock(dir.path(), hand.clock()).unwrap();
    store.record_send("api/a", DAY).unwrap();
    hand.advance(Duration::from_secs(60));
    store.record_send("api/a", DAY).unwrap();
    hand.advance(3 * DAY);
    let restored = store.restore("api/a", DAY).unwrap();
    assert!(restored.sends_ago.is_empty(), "{:?}", restored.sends_ago);
    assert_eq!(restored.last_send_ago, Some(3 * DAY));
    assert_eq!(store.restore("api/b", DAY).unwrap().last_send_ago, None);
}
