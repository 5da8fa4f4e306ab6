//! The device's own files fail closed (issue 10): a wrong store key is a typed error and deletes nothing; a database
//! from a newer version is refused and left untouched; a busy database is waited for, never moved aside; only a
//! damaged file is moved aside, the host is told, and purge/reset delete the copy; one damaged row is reported while
//! the others stay readable; the database files are 0600; no clinical date is in the clear; a key file whose name is
//! not UTF-8 is an error, not a panic; an unreadable secure-store entry does not stop start-up and can be reset.
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotBrowser;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chartlink_core::store::{AccountKeys, Incoming, Store, StoreError};
use chartlink_core::{
    AppConfig, AuthBrowser, ChartLink, ClientAuth, DataCategory, Error, Host, ManualClock,
    MemorySecureStore, STORE_KEY, SecureStore, SecureStoreError, StorageKind, StoreNotice,
};
use chartlink_sandbox::{Config, PortalRobot, Sandbox};

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cl-safety-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path) -> AppConfig {
    AppConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        wanted: DataCategory::ALL.to_vec(),
        client_auth: ClientAuth::Public,
        app_name: "store safety tests".into(),
        data_dir: Some(dir.to_owned()),
        lock: chartlink_core::LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        revocation: chartlink_core::RevocationPolicy::PurgeNow,
    }
}

fn host(secure: Arc<dyn SecureStore>, robot: Option<PortalRobot>) -> Host {
    Host {
        secure_store: secure,
        browser: robot.map(|r| Arc::new(RobotBrowser(r)) as Arc<dyn AuthBrowser>),
        clock: Arc::new(ManualClock::new()),
        listener: None,
    }
}

/// Links daniel (his own record) in `dir` with `secure` and syncs it.
async fn linked_and_synced(sb: &Sandbox, dir: &Path, secure: Arc<dyn SecureStore>) -> String {
    let robot = PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen"));
    let sdk = ChartLink::new(config(dir), host(secure, Some(robot))).unwrap();
    let account = sdk.link(&sb.fhir_base()).await.unwrap();
    sdk.sync(&account.id).await.unwrap();
    account.id
}

fn copy_entries(from: &MemorySecureStore, to: &MemorySecureStore, except: &str) {
    for k in from.keys("").unwrap() {
        if k != except {
            to.put(&k, &from.get(&k).unwrap().unwrap()).unwrap();
        }
    }
}

fn inventory(sdk: &ChartLink, account: &str) -> Vec<(String, String, Option<String>)> {
    sdk.store()
        .inventory(&sdk.account_keys(account).unwrap(), account)
        .unwrap()
}

/// Every file of a directory, by name.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn moved_aside_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect()
}

const MASTER: [u8; 32] = [7u8; 32];

/// A store file with `n` observations of account "a", its canary written.
fn store_with_rows(path: &Path, n: usize) -> Store {
    let store = Store::open(path).unwrap();
    store.check_key(&MASTER).unwrap();
    let keys = AccountKeys::derive(&MASTER, "a").unwrap();
    store
        .write(|tx| {
            for i in 0..n {
                let id = format!("o{i}");
                let json = format!(r#"{{"resourceType":"Observation","id":"{id}"}}"#);
                Store::upsert(
                    tx,
                    &keys,
                    "a",
                    "q",
                    1,
                    &Incoming {
                        ty: "Observation",
                        id: &id,
                        version: Some("1"),
                        last_updated: Some("2024-01-01T00:00:00Z"),
                        code: Some("4548-4"),
                        category: Some("laboratory"),
                        json: json.as_bytes(),
                        brief: None,
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    store
}

fn observations(store: &Store) -> usize {
    let keys = AccountKeys::derive(&MASTER, "a").unwrap();
    store.of_type(&keys, "a", "Observation").unwrap().len()
}

#[tokio::test]
async fn a_wrong_store_key_is_a_typed_error_and_every_row_survives() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("wrong-key");
    let secure = Arc::new(MemorySecureStore::default());
    let account = linked_and_synced(&sb, &dir, secure.clone()).await;
    let before = {
        let sdk = ChartLink::new(config(&dir), host(secure.clone(), None)).unwrap();
        inventory(&sdk, &account)
    };
    assert!(before.len() > 20, "a real record was synced");

    // Another secure store (a restore, a re-enrolled biometric): another key under the same name.
    let other = Arc::new(MemorySecureStore::default());
    copy_entries(&secure, &other, "");
    other.put(STORE_KEY, &[42u8; 32]).unwrap();
    let err = ChartLink::new(config(&dir), host(other, None)).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageKind::WrongKey), "{err:?}");
    assert!(err.to_string().contains("another key"), "{err}");

    // A secure store without the key: no new key replaces it.
    let keyless = Arc::new(MemorySecureStore::default());
    copy_entries(&secure, &keyless, STORE_KEY);
    let err = ChartLink::new(config(&dir), host(keyless.clone(), None)).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageKind::WrongKey), "{err:?}");
    assert_eq!(keyless.get(STORE_KEY).unwrap(), None, "no key was created");

    // Unlocking with a changed key fails the same way and stays locked.
    let sdk = ChartLink::new(config(&dir), host(secure.clone(), None)).unwrap();
    let right = secure.get(STORE_KEY).unwrap().unwrap();
    sdk.lock();
    secure.put(STORE_KEY, &[43u8; 32]).unwrap();
    assert_eq!(
        sdk.unlock().unwrap_err().storage_kind(),
        Some(StorageKind::WrongKey)
    );
    assert!(sdk.locked().is_some());
    secure.put(STORE_KEY, &right).unwrap();
    sdk.unlock().unwrap();

    // With the right key, every row is still there.
    assert_eq!(inventory(&sdk, &account), before);
    assert!(sdk.take_store_notices().is_empty());
    drop(sdk);
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = temp_dir("newer");
    let secure = Arc::new(MemorySecureStore::default());
    drop(ChartLink::new(config(&dir), host(secure.clone(), None)).unwrap());
    {
        let raw = rusqlite::Connection::open(dir.join("chartlink.db")).unwrap();
        raw.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = snapshot(&dir);
    let err = ChartLink::new(config(&dir), host(secure, None)).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageKind::NewerVersion),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    assert_eq!(snapshot(&dir), before, "the file is untouched");
    assert!(moved_aside_copies(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second connection holding the database exclusively (WAL with `locking_mode=EXCLUSIVE`).
fn hold_exclusively(path: &Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).unwrap();
    holder
        .execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (x); COMMIT;",
        )
        .unwrap();
    holder
}

#[test]
fn a_busy_database_is_waited_for_not_moved_aside() {
    let dir = temp_dir("busy");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 3));
    let holder = hold_exclusively(&path);
    // Really busy: a plain connection cannot read it.
    let probe = rusqlite::Connection::open(&path).unwrap();
    assert!(
        probe
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r
                .get::<_, i64>(0))
            .is_err()
    );
    drop(probe);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(holder);
    });
    let t0 = Instant::now();
    let store = Store::open(&path).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(500), "it waited");
    release.join().unwrap();
    assert_eq!(observations(&store), 3, "the same database, not a new one");
    assert!(store.take_notices().is_empty());
    assert!(moved_aside_copies(&dir).is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_that_stays_busy_is_a_typed_error_and_stays_in_place() {
    let dir = temp_dir("busy-long");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 2));
    let holder = hold_exclusively(&path);
    let err = Store::open_with(&path, Duration::from_millis(300)).unwrap_err();
    assert_eq!(err, StoreError::Busy);
    assert_eq!(
        Error::from(err).storage_kind(),
        Some(StorageKind::Busy),
        "the public error names the cause"
    );
    drop(holder);
    assert!(moved_aside_copies(&dir).is_empty());
    assert_eq!(observations(&Store::open(&path).unwrap()), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_garbage_file_is_moved_aside_reported_and_deleted_by_reset() {
    let dir = temp_dir("garbage");
    let path = dir.join("chartlink.db");
    let garbage = b"this is not a database, just garbage bytes of some length....".repeat(50);
    std::fs::write(&path, &garbage).unwrap();
    let secure: Arc<dyn SecureStore> = Arc::new(MemorySecureStore::default());
    let cfg = config(&dir);
    let h = host(secure.clone(), None);
    let sdk = ChartLink::new(cfg.clone(), h.clone()).unwrap();
    let notices = sdk.take_store_notices();
    let [StoreNotice::DatabaseMovedAside { moved_to }] = notices.as_slice() else {
        panic!("one moved-aside notice: {notices:?}");
    };
    assert_eq!(std::fs::read(moved_to).unwrap(), garbage, "kept as it was");
    assert!(sdk.take_store_notices().is_empty(), "reported once");
    drop(sdk);
    ChartLink::reset(&cfg, &h).unwrap();
    assert!(!moved_to.exists(), "reset deletes the copy");
    assert!(!path.exists());
    assert_eq!(secure.get(STORE_KEY).unwrap(), None);
    // A fresh start works.
    let sdk = ChartLink::new(cfg, h).unwrap();
    assert!(sdk.take_store_notices().is_empty());
    drop(sdk);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_file_is_moved_aside_and_a_purge_deletes_the_copy() {
    let dir = temp_dir("truncated");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 3));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(50).unwrap();
    drop(f);
    let store = Store::open(&path).unwrap();
    let notices = store.take_notices();
    let [StoreNotice::DatabaseMovedAside { moved_to }] = notices.as_slice() else {
        panic!("one moved-aside notice: {notices:?}");
    };
    assert!(moved_to.exists());
    assert_eq!(observations(&store), 0, "a fresh database");
    // Unlink and revocation purge an account: the copy (which holds its records too) goes with it.
    store.purge("a").unwrap();
    assert!(!moved_to.exists());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_cut_off_mid_way_is_moved_aside_not_opened() {
    let dir = temp_dir("cut-off");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 200));
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8 * 4096, "several pages: {len}");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.take_notices().as_slice(),
        [StoreNotice::DatabaseMovedAside { .. }]
    ));
    assert_eq!(observations(&store), 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_damaged_row_is_reported_and_the_others_stay_readable() {
    let dir = temp_dir("damaged-row");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 3));
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        let (rowid, mut payload): (i64, Vec<u8>) = raw
            .query_row(
                "SELECT rowid, payload FROM resources ORDER BY rowid LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        payload[3] ^= 0x5a;
        raw.execute(
            "UPDATE resources SET payload = ? WHERE rowid = ?",
            rusqlite::params![payload, rowid],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    store
        .check_key(&MASTER)
        .expect("the key is right: damage, not a wrong key");
    assert_eq!(observations(&store), 2, "the others are readable");
    assert_eq!(
        store.take_notices(),
        vec![StoreNotice::DamagedRows {
            account_id: "a".into(),
            count: 1
        }]
    );
    assert_eq!(observations(&store), 2);
    assert!(store.take_notices().is_empty(), "reported once");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_key_touches_no_row_of_the_store() {
    let dir = temp_dir("wrong-key-store");
    let path = dir.join("chartlink.db");
    drop(store_with_rows(&path, 3));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.check_key(&[8u8; 32]), Err(StoreError::WrongKey));
    assert_eq!(observations(&store), 3);
    assert!(store.take_notices().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mode");
    let sdk = ChartLink::new(
        config(&dir),
        host(Arc::new(MemorySecureStore::default()), None),
    )
    .unwrap();
    for name in ["chartlink.db", "chartlink.db-wal", "chartlink.db-shm"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    drop(sdk);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_clinical_date_is_in_the_clear() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("dates");
    let secure = Arc::new(MemorySecureStore::default());
    let account = linked_and_synced(&sb, &dir, secure.clone()).await;
    let sdk = ChartLink::new(config(&dir), host(secure, None)).unwrap();
    let observations = sdk.resources(&account, "Observation").unwrap();
    let mut stamps = HashSet::new();
    let mut sort_keys = HashSet::new();
    for o in &observations {
        for s in [
            &o["effectiveDateTime"],
            &o["meta"]["lastUpdated"],
            &o["issued"],
        ] {
            if let Some(s) = s.as_str() {
                stamps.insert(s.to_owned());
            }
        }
        if let Some(d) = chartlink_core::views::lab_result(o).and_then(|l| l.date) {
            sort_keys.insert(d.sort_key());
        }
    }
    assert!(sort_keys.len() > 10, "labs with dates were synced");
    // The summary's latest results still come out right (chosen in Rust from the sealed briefs).
    sdk.switch_patient(&account).unwrap();
    let latest = sdk.latest_results().unwrap();
    assert!(!latest.is_empty());
    let labs: Vec<_> = observations
        .iter()
        .filter_map(chartlink_core::views::lab_result)
        .collect();
    for l in &latest {
        let newest = labs
            .iter()
            .filter(|o| o.code == l.code)
            .filter_map(|o| o.date.as_ref().map(|d| d.sort_key()))
            .max();
        assert_eq!(
            l.date.as_ref().map(|d| d.sort_key()),
            newest,
            "{:?}",
            l.code
        );
    }

    // No integer in any table is the Unix time of a result.
    let raw = rusqlite::Connection::open(dir.join("chartlink.db")).unwrap();
    let tables: Vec<String> = raw
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in &tables {
        let columns: Vec<String> = raw
            .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for c in columns {
            let ints: Vec<i64> = raw
                .prepare(&format!(
                    "SELECT \"{c}\" FROM \"{t}\" WHERE typeof(\"{c}\") = 'integer'"
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                !ints.iter().any(|i| sort_keys.contains(i)),
                "a result's Unix time is in the clear in {t}.{c}"
            );
        }
    }
    drop(raw);
    // No ISO timestamp of a result (its time, its lastUpdated, its issued) in the files.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for s in &stamps {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "the timestamp {s:?} is in the clear"
        );
    }
    drop(sdk);
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A secure store whose `get` fails for some keys (a Keychain item the host cannot return).
/// A memory secure store whose reads of the keys in `failing` fail (a Keychain item that cannot be decrypted), and
/// that counts the reads of the store key.
#[derive(Default)]
struct FailingGets {
    inner: MemorySecureStore,
    failing: Vec<String>,
    /// Gets of these keys fail until `recover` (a Keychain that fails for a moment at start-up).
    failing_for_now: Mutex<Vec<String>>,
    key_reads: std::sync::atomic::AtomicUsize,
}

impl FailingGets {
    fn key_reads(&self) -> usize {
        self.key_reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SecureStore for FailingGets {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecureStoreError> {
        if key == STORE_KEY {
            self.key_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if self.failing.iter().any(|k| k == key)
            || self
                .failing_for_now
                .lock()
                .unwrap()
                .iter()
                .any(|k| k == key)
        {
            return Err(SecureStoreError("the item could not be decrypted".into()));
        }
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecureStoreError> {
        self.inner.put(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), SecureStoreError> {
        self.inner.delete(key)
    }
    fn keys(&self, prefix: &str) -> Result<Vec<String>, SecureStoreError> {
        self.inner.keys(prefix)
    }
}

/// A secure-store failure at start-up that has passed by the time the user chooses "discard" deletes nothing: the
/// entry is read again, the account comes back with its record, and only what is still unreadable goes.
#[tokio::test]
async fn discarding_reads_again_and_keeps_an_entry_that_is_readable_now() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("transient-unreadable");
    let secure = Arc::new(FailingGets::default());
    let account = linked_and_synced(&sb, &dir, secure.clone()).await;
    let key = format!("chartlink/account/{account}");
    *secure.failing_for_now.lock().unwrap() = vec![key.clone()];
    let sdk = ChartLink::new(config(&dir), host(secure.clone(), None)).unwrap();
    assert!(
        sdk.accounts().unwrap().is_empty(),
        "not readable at start-up"
    );
    assert!(
        sdk.take_store_notices()
            .contains(&StoreNotice::UnreadableAccountEntry { key: key.clone() })
    );
    secure.failing_for_now.lock().unwrap().clear();
    assert_eq!(
        sdk.discard_unreadable_account_entries().unwrap(),
        0,
        "nothing deleted"
    );
    assert_eq!(secure.keys("chartlink/account/").unwrap(), vec![key]);
    let ids: Vec<String> = sdk.accounts().unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![account.clone()], "the account is back");
    assert!(!inventory(&sdk, &account).is_empty(), "with its record");
    drop(sdk);
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreadable_account_entry_does_not_stop_start_up() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("unreadable");
    let secure = Arc::new(FailingGets {
        failing: vec!["chartlink/account/broken".into()],
        ..FailingGets::default()
    });
    let account = linked_and_synced(&sb, &dir, secure.clone()).await;
    secure.put("chartlink/account/broken", b"{}").unwrap();
    secure
        .put("chartlink/account/garbled", b"not an account")
        .unwrap();

    let cfg = config(&dir);
    let h = host(secure.clone(), None);
    let sdk = ChartLink::new(cfg.clone(), h.clone()).unwrap();
    let ids: Vec<String> = sdk.accounts().unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![account.clone()], "the good account still works");
    assert!(!inventory(&sdk, &account).is_empty());
    let notices = sdk.take_store_notices();
    for key in ["chartlink/account/broken", "chartlink/account/garbled"] {
        assert!(
            notices.contains(&StoreNotice::UnreadableAccountEntry { key: key.into() }),
            "{key} reported: {notices:?}"
        );
    }
    assert_eq!(sdk.discard_unreadable_account_entries().unwrap(), 2);
    assert_eq!(
        secure.keys("chartlink/account/").unwrap(),
        vec![format!("chartlink/account/{account}")]
    );
    assert_eq!(sdk.accounts().unwrap().len(), 1);
    drop(sdk);

    // The way out of a store that can never be opened again: reset, then start empty.
    ChartLink::reset(&cfg, &h).unwrap();
    assert!(secure.keys("chartlink/").unwrap().is_empty());
    assert!(!dir.join("chartlink.db").exists());
    let sdk = ChartLink::new(cfg, h).unwrap();
    assert!(sdk.accounts().unwrap().is_empty());
    drop(sdk);
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Started locked (issue 11: no biometric prompt while the app starts): the store key is not read until `unlock`,
/// every read and sync answers Locked, and after `unlock` the record is there as before.
#[tokio::test]
async fn a_client_started_locked_reads_its_key_only_at_unlock() {
    let dir = temp_dir("started-locked");
    let secure = Arc::new(FailingGets::default());
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let account = linked_and_synced(&sb, &dir, secure.clone()).await;
    let reads = secure.key_reads();
    let sdk = ChartLink::new_locked(config(&dir), host(secure.clone(), None)).unwrap();
    assert_eq!(
        secure.key_reads(),
        reads,
        "the store key is not read at start"
    );
    assert!(sdk.locked().is_some());
    assert_eq!(sdk.lab_results().unwrap_err(), Error::Locked);
    assert_eq!(sdk.sync(&account).await.unwrap_err(), Error::Locked);
    sdk.unlock().unwrap();
    assert_eq!(secure.key_reads(), reads + 1);
    sdk.switch_patient(&account).unwrap();
    assert!(!sdk.lab_results().unwrap().is_empty());
    sdk.sync(&account).await.unwrap();
    sb.shutdown().await;
}
