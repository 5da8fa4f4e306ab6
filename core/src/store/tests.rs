use super::*;

fn keys(account: &str) -> AccountKeys {
    AccountKeys::derive(&[7u8; 32], account).expect("keys")
}

fn put(store: &Store, account: &str, id: &str, json: &str, version: &str) -> Change {
    let k = keys(account);
    store
        .write(|tx| {
            Store::upsert(
                tx,
                &k,
                account,
                "q",
                1,
                &Incoming {
                    ty: "Observation",
                    id,
                    version: Some(version),
                    last_updated: Some("2024-01-01T00:00:00Z"),
                    code: Some("4548-4"),
                    category: Some("laboratory"),
                    json: json.as_bytes(),
                    brief: None,
                },
            )
        })
        .expect("upsert")
}

#[test]
fn round_trip_and_change_detection() {
    let store = Store::open_in_memory().expect("open");
    assert_eq!(
        put(&store, "a", "o1", r#"{"id":"o1","value":6.1}"#, "1"),
        Change::New
    );
    assert_eq!(
        put(&store, "a", "o1", r#"{"id":"o1","value":6.1}"#, "1"),
        Change::Unchanged
    );
    assert_eq!(
        put(&store, "a", "o1", r#"{"id":"o1","value":6.4}"#, "2"),
        Change::Changed
    );
    let got = store
        .by_code(&keys("a"), "a", "Observation", "4548-4")
        .expect("read");
    assert_eq!(got[0]["value"], 6.4);
    assert_eq!(
        store
            .by_category(&keys("a"), "a", "Observation", "laboratory")
            .expect("read")
            .len(),
        1
    );
    assert!(
        store
            .by_code(&keys("a"), "a", "Observation", "2345-7")
            .expect("read")
            .is_empty()
    );
}

#[test]
fn another_accounts_key_reads_nothing() {
    let store = Store::open_in_memory().expect("open");
    put(&store, "a", "o1", r#"{"id":"o1"}"#, "1");
    // Under b's key, a's row neither matches b's tags nor decrypts (and is dropped as damaged, not shown).
    assert!(
        store
            .of_type(&keys("b"), "b", "Observation")
            .expect("read")
            .is_empty()
    );
    let wrong = AccountKeys::derive(&[8u8; 32], "a").expect("keys");
    assert!(
        store
            .of_type(&wrong, "a", "Observation")
            .expect("read")
            .is_empty()
    );
}

#[test]
fn reconcile_removes_what_a_full_pass_did_not_see() {
    let store = Store::open_in_memory().expect("open");
    put(&store, "a", "o1", "{}", "1");
    put(&store, "a", "o2", "{}", "1");
    let k = keys("a");
    store
        .write(|tx| {
            Store::upsert(
                tx,
                &k,
                "a",
                "q",
                2,
                &Incoming {
                    ty: "Observation",
                    id: "o1",
                    version: Some("1"),
                    last_updated: Some("2024-01-01T00:00:00Z"),
                    code: None,
                    category: None,
                    json: b"{}",
                    brief: None,
                },
            )
        })
        .expect("upsert");
    let gone = store
        .write(|tx| Store::reconcile(tx, "a", "q", 2))
        .expect("reconcile");
    assert_eq!(gone, vec!["Observation".to_owned()]);
    assert_eq!(store.inventory(&k, "a").expect("inventory").len(), 1);
}

#[test]
fn binaries_round_trip() {
    let store = Store::open_in_memory().expect("open");
    let k = keys("a");
    store
        .write(|tx| Store::put_binary(tx, &k, "a", "b1", "application/pdf", b"%PDF-1.4"))
        .expect("put");
    assert_eq!(
        store.binary(&k, "a", "b1").expect("get"),
        Some(("application/pdf".into(), b"%PDF-1.4".to_vec()))
    );
}

fn put_lab(store: &Store, id: &str, date: &str, pass: i64) {
    let k = keys("a");
    let date_value = crate::views::FhirDate::parse(date).expect("date");
    let when = date_value.sort_key();
    let brief = serde_json::json!({"id": id, "date": date_value}).to_string();
    store
        .write(|tx| {
            Store::upsert(
                tx,
                &k,
                "a",
                "q",
                pass,
                &Incoming {
                    ty: "Observation",
                    id,
                    version: Some("1"),
                    last_updated: Some(date),
                    code: Some("4548-4"),
                    category: Some("laboratory"),
                    json: b"{}",
                    brief: Some((brief.as_bytes(), when)),
                },
            )
        })
        .expect("upsert");
}

fn latest_ids(store: &Store) -> Vec<String> {
    store
        .latest_briefs(&keys("a"), "a")
        .expect("latest")
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).expect("json")["id"].to_string())
        .collect()
}

#[test]
fn the_newest_result_per_code_is_chosen_from_sealed_dates_and_again_after_a_deletion() {
    let store = Store::open_in_memory().expect("open");
    put_lab(&store, "old", "2019-05-03", 1);
    put_lab(&store, "new", "2021-01-01T10:00:00Z", 1);
    put_lab(&store, "mid", "2020-02-02", 1);
    assert_eq!(latest_ids(&store), [r#""new""#]);
    // A full pass that no longer sees "new" (and "mid" seen again): the code's newest is chosen again.
    put_lab(&store, "old", "2019-05-03", 2);
    put_lab(&store, "mid", "2020-02-02", 2);
    store
        .write(|tx| Store::reconcile(tx, "a", "q", 2))
        .expect("reconcile");
    assert_eq!(latest_ids(&store), [r#""mid""#]);
}

#[test]
fn migration_v3_drops_the_clear_dates_and_keeps_the_latest_table() {
    let dir = std::env::temp_dir().join(format!("cl-store-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("chartlink.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("v1");
        conn.execute_batch(MIGRATIONS[1]).expect("v2");
        conn.execute_batch(
            "INSERT INTO resources (account, type, id_tag, version, last_updated, query, pass, nonce, payload, sort_key)
             VALUES ('a', 'Observation', x'01', '1', '2019-05-03T10:00:00Z', 'q', 1, x'00', x'00', 1556877600);
             INSERT INTO latest VALUES ('a', x'02', x'01', x'00', x'00');
             PRAGMA user_version = 2;",
        )
        .expect("v2 data");
    }
    let store = Store::open(&path).expect("migrates");
    let conn = store.conn();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('resources')")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<std::result::Result<_, _>>()
        .expect("rows");
    assert!(!columns.iter().any(|c| c == "sort_key"));
    let lu: Option<String> = conn
        .query_row("SELECT last_updated FROM resources", [], |r| r.get(0))
        .expect("row");
    assert_eq!(lu, None);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM latest", [], |r| r.get(0))
        .expect("latest");
    assert_eq!(n, 1);
    drop(conn);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_file_is_moved_aside_and_replaced() {
    let dir = std::env::temp_dir().join(format!("cl-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("chartlink.db");
    std::fs::write(
        &path,
        b"this is not a database, just garbage bytes of some length....",
    )
    .expect("write");
    let store = Store::open(&path).expect("recovers");
    put(&store, "a", "o1", "{}", "1");
    assert!(std::fs::read_dir(&dir).expect("dir").any(|e| {
        e.expect("e")
            .file_name()
            .to_string_lossy()
            .contains("corrupt")
    }));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The app's reads use read connections beside the writer: a read made while sync holds a page transaction open
/// completes before that transaction ends, sees what was committed and not what is in flight.
#[test]
fn reads_do_not_wait_behind_a_write_transaction() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    let dir = std::env::temp_dir().join(format!("cl-store-readers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir.join("chartlink.db")).expect("open");
    put(
        &store,
        "a",
        "committed",
        r#"{"resourceType":"Observation","id":"committed"}"#,
        "1",
    );
    let (in_tx, wait_in_tx) = mpsc::channel();
    let (read_done, wait_read_done) = mpsc::channel();
    let writer_finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (store, in_tx, writer_finished) = (&store, in_tx, &writer_finished);
        s.spawn(move || {
            let k = keys("a");
            store
                .write(|tx| {
                    Store::upsert(
                        tx,
                        &k,
                        "a",
                        "q",
                        1,
                        &Incoming {
                            ty: "Observation",
                            id: "in-flight",
                            version: Some("1"),
                            last_updated: None,
                            code: None,
                            category: None,
                            json: br#"{"resourceType":"Observation","id":"in-flight"}"#,
                            brief: None,
                        },
                    )?;
                    in_tx.send(()).expect("signal");
                    // Hold the transaction open until the read is done (or give up after a while: the read
                    // would then have waited behind it, and the assertion below says so).
                    let _ = wait_read_done.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .expect("write");
            writer_finished.store(true, Ordering::SeqCst);
        });
        wait_in_tx.recv().expect("the writer started");
        let seen = store.of_type(&keys("a"), "a", "Observation").expect("read");
        assert!(
            !writer_finished.load(Ordering::SeqCst),
            "the read waited for the write transaction"
        );
        let ids: Vec<&str> = seen.iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids, ["committed"], "committed rows only");
        read_done.send(()).expect("signal");
    });
    let after = store.of_type(&keys("a"), "a", "Observation").expect("read");
    assert_eq!(after.len(), 2, "the write is visible once committed");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
