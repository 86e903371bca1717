//! The storage suite, on SQLite and on the local PostgreSQL. In CI (`CI=true`) an unreachable
//! PostgreSQL fails the suite; elsewhere its half is skipped with a message.

#![allow(clippy::unwrap_used, missing_docs)]

use coordinator::audit::{AuditEntry, verify_chain};
use coordinator::store::{PostgresStore, SqliteStore, Store, latest_schema_version, verify_log};

fn entry(i: u32) -> AuditEntry {
    AuditEntry {
        action: "sign".into(),
        actors: vec![hex::encode([i as u8; 32])],
        key_id: Some("k1".into()),
        payload_digests: vec![hex::encode([7u8; 32])],
        path: vec![0, i],
        nodes: vec![0, 2],
        outcome: "ok".into(),
    }
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A connection to a private schema of the test database, or `None` outside CI without one.
fn postgres(schema: &str) -> Option<postgres::Client> {
    let url = std::env::var("COHORT_TEST_POSTGRES").unwrap_or_else(|_| PG_URL.to_string());
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(mut c) => {
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}"))
                .unwrap();
            Some(c)
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {url} is unreachable in CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPING the PostgreSQL half of the storage suite: {url} unreachable: {e}");
            None
        }
    }
}

fn suite(store: &mut dyn Store, tamper: &mut dyn FnMut(&str)) {
    assert_eq!(store.schema_version().unwrap(), latest_schema_version());
    for i in 0..25 {
        let r = store.append_audit(1_000 + u64::from(i), &entry(i)).unwrap();
        assert_eq!(r.seq, u64::from(i) + 1);
    }
    assert_eq!(verify_log(store).unwrap(), Ok(25));
    let page = store.audit_page(10, 5).unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert_eq!(page[0].entry, entry(10));
    // A page checked on its own, from the record before it.
    let before = store.audit_page(9, 1).unwrap();
    assert!(verify_chain(&page, (before[0].seq, before[0].hash)).is_ok());

    // Rewrite one record's contents: the chain breaks exactly there.
    tamper("UPDATE audit_log SET time = time + 1 WHERE seq = 17");
    let broken = verify_log(store).unwrap().unwrap_err();
    assert_eq!(broken.seq, 17, "{broken}");
    assert!(broken.reason.contains("hash"), "{broken}");
    tamper("UPDATE audit_log SET time = time - 1 WHERE seq = 17");
    assert_eq!(verify_log(store).unwrap(), Ok(25));

    // Remove one: the gap is reported where it is.
    tamper("DELETE FROM audit_log WHERE seq = 8");
    let broken = verify_log(store).unwrap().unwrap_err();
    assert_eq!(broken.seq, 8, "{broken}");
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.db");
    let mut store = SqliteStore::open(&path).unwrap();
    // A second, independent connection: what someone with access to the file could do.
    let side = rusqlite::Connection::open(&path).unwrap();
    let mut tamper = |sql: &str| {
        side.execute(sql, []).unwrap();
    };
    suite(&mut store, &mut tamper);
    drop(store);
    // Reopening does not re-run migrations, and the data survived.
    let mut again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.schema_version().unwrap(), latest_schema_version());
    assert_eq!(again.audit_page(0, 100).unwrap().len(), 24);
}

#[test]
fn postgres_store_shared_by_two_coordinators() {
    let schema = "cohort_store_test";
    let (Some(a), Some(b), Some(mut side)) = (
        postgres(schema),
        postgres_existing(schema),
        postgres_existing(schema),
    ) else {
        return;
    };
    let mut first = PostgresStore::from_client(a).unwrap();
    let mut second = PostgresStore::from_client(b).unwrap();
    assert_eq!(second.schema_version().unwrap(), latest_schema_version());

    // Two coordinators append at the same time: one linear chain, no seq handed out twice.
    let t1 = std::thread::spawn(move || {
        for i in 0..20 {
            first.append_audit(1, &entry(i)).unwrap();
        }
        first
    });
    for i in 100..120 {
        second.append_audit(2, &entry(i)).unwrap();
    }
    let mut first = t1.join().unwrap();
    assert_eq!(verify_log(&mut first).unwrap(), Ok(40));
    side.batch_execute("DELETE FROM audit_log").unwrap();

    let mut tamper = |sql: &str| {
        side.batch_execute(sql).unwrap();
    };
    suite(&mut second, &mut tamper);
}

/// Another connection to an existing private schema.
fn postgres_existing(schema: &str) -> Option<postgres::Client> {
    let url = std::env::var("COHORT_TEST_POSTGRES").unwrap_or_else(|_| PG_URL.to_string());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).ok()?;
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    Some(c)
}
