//! The storage suite, on SQLite and on the local PostgreSQL. In CI (`CI=true`) an unreachable
//! PostgreSQL fails the suite; elsewhere its half is skipped with a message.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use coordinator::audit::{AuditEntry, verify_chain};
use coordinator::events::{Event, NODE_DOWN, audit_event_id};
use coordinator::store::{
    APP_PRIVILEGES, AdminChangeRow, Begin, ClusterRow, ClusterState, ImageChangeRow, KeyRow,
    NewGeneration, PresigRow, PresigState, RequestState, Store, StoreError, latest_schema_version,
    verify_log,
};

mod common;
use common::entry;

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

fn suite(store: &mut Store, tamper: &mut dyn FnMut(&str)) {
    assert_eq!(store.schema_version().unwrap(), latest_schema_version());
    for i in 0..25 {
        let r = store.append_audit(1_000 + u64::from(i), &entry(i)).unwrap();
        assert_eq!(r.seq, u64::from(i) + 1);
    }
    assert_eq!(verify_log(store).unwrap(), Ok(25));
    outbox(store);
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
    tamper("DELETE FROM audit_log");

    state_suite(store);
}

/// Cluster, keys, idempotency records and presignatures: each change commits with its audit
/// record, and conditional updates refuse stale owners.
/// Every audit record wrote its event in its transaction (issue 21), in the log's order; the
/// relay marks a prefix sent; pruning takes sent and expired events.
fn outbox(store: &mut Store) {
    let records = store.audit_page(0, 100).unwrap();
    let events = store.unsent_events(1000).unwrap();
    assert_eq!(events.len(), records.len());
    for (e, r) in events.iter().zip(&records) {
        let event: Event = serde_json::from_str(&e.body).unwrap();
        assert_eq!(event.audit_seq, Some(r.seq));
        assert_eq!(event.id, e.event_id);
        assert_eq!(event.id, audit_event_id(&r.hash));
        assert_eq!(
            (e.routing_key.as_str(), event.kind.as_str()),
            ("signature.completed", "signature.completed")
        );
        assert_eq!(event.request_id, r.entry.request_id);
    }
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let first: Vec<u64> = events[..10].iter().map(|e| e.seq).collect();
    store.mark_sent(&first, 2_000).unwrap();
    let left = store.unsent_events(1000).unwrap();
    assert_eq!(left.first().map(|e| e.seq), Some(events[10].seq));
    let level = store.outbox_level().unwrap();
    assert_eq!(level.unsent, events.len() as u64 - 10);
    // A lifecycle event follows, in order.
    let node_down = Event::lifecycle(NODE_DOWN, 3_000, vec![1], None);
    let seq = store.push_event(&node_down).unwrap();
    assert!(seq > events.last().unwrap().seq);
    // Nothing younger than the cut goes; everything older does, sent or not.
    assert_eq!(store.prune_events(1_000).unwrap(), (0, 0));
    assert_eq!(
        store.prune_events(2_500).unwrap(),
        (10, events.len() as u64 - 10)
    );
    let rest = store.unsent_events(1000).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event_id, node_down.id);
    // The next event is numbered after the last, even with the outbox emptied before it.
    store.prune_events(u64::MAX >> 2).unwrap();
    assert_eq!(store.outbox_level().unwrap().unsent, 0);
}

fn state_suite(store: &mut Store) {
    assert_eq!(store.cluster().unwrap(), None);
    let cluster = ClusterRow {
        genesis: "{}".into(),
        state: ClusterState::Initialising,
        detail: "x".into(),
    };
    assert!(store.insert_cluster(&cluster, 5, &entry(1)).unwrap());
    assert!(!store.insert_cluster(&cluster, 5, &entry(2)).unwrap());
    store
        .set_cluster_state(ClusterState::Ready, "done", 6, Some(&entry(3)))
        .unwrap();
    assert_eq!(store.cluster().unwrap().unwrap().state, ClusterState::Ready);

    let key = KeyRow {
        key_id: "btc".into(),
        scheme: "ecdsa-secp256k1".into(),
        threshold: 2,
        public_key: vec![2; 33],
        chain_code: Some(vec![7; 32]),
        policy: "{}".into(),
        created: 9,
        receipts: Some("{\"signatures\":[]}".into()),
        pending: None,
        refresh_every: 0,
        refreshed: 0,
        pending_since: 0,
        policy_version: 0,
    };
    assert!(store.insert_key(&key, 7, &entry(4)).unwrap());
    assert!(!store.insert_key(&key, 7, &entry(5)).unwrap());
    assert_eq!(store.key("btc").unwrap(), Some(key.clone()));
    assert_eq!(store.keys().unwrap(), vec![key]);
    assert_eq!(store.key("eth").unwrap(), None);

    // Issue 19: a resharing recorded as pending, then the key's next generation, replaced only
    // over the receipts it was reshared from (another coordinator's change wins), which clears
    // the pending resharing.
    assert!(store.start_key_pending("btc", "{\"p\":1}", 20).unwrap());
    assert!(
        !store.start_key_pending("btc", "{\"p\":2}", 21).unwrap(),
        "a second resharing is refused while one is recorded"
    );
    assert_eq!(
        store.key("btc").unwrap().unwrap().pending.as_deref(),
        Some("{\"p\":1}")
    );
    // Left unfinished: found by the background pass only once recorded before its cutoff.
    assert_eq!(
        store.keys_left_pending(20, 25).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.keys_left_pending(21, 25).unwrap(),
        vec!["btc".to_string()]
    );
    let scheduled = |every| NewGeneration {
        threshold: 3,
        receipts: "{\"g\":1}",
        refresh_every: every,
        policy: None,
    };
    assert!(
        !store
            .update_key_generation("btc", &scheduled(Some(100)), "stale", 9, &entry(5))
            .unwrap()
    );
    // The resharing turns a 100 s refresh schedule on.
    assert!(
        store
            .update_key_generation(
                "btc",
                &scheduled(Some(100)),
                "{\"signatures\":[]}",
                30,
                &entry(5)
            )
            .unwrap()
    );
    let k = store.key("btc").unwrap().unwrap();
    assert_eq!(
        (k.threshold, k.receipts.as_deref(), k.pending),
        (3, Some("{\"g\":1}"), None)
    );
    assert_eq!(
        (k.refresh_every, k.refreshed, k.pending_since),
        (100, 30, 0)
    );
    assert!(store.keys_left_pending(u64::MAX, 25).unwrap().is_empty());
    // A resharing recorded by a coordinator from before migration 6 (no time): it waits as if
    // recorded at the first pass that sees it.
    let old_one = KeyRow {
        key_id: "old".into(),
        pending: Some("{\"p\":0}".into()),
        ..store.key("btc").unwrap().unwrap()
    };
    assert!(store.insert_key(&old_one, 31, &entry(6)).unwrap());
    assert!(store.keys_left_pending(20, 50).unwrap().is_empty());
    assert_eq!(store.key("old").unwrap().unwrap().pending_since, 50);
    assert_eq!(
        store.keys_left_pending(51, 80).unwrap(),
        vec!["old".to_string()]
    );
    // Due exactly 100 s after the generation was stored, and not while a resharing is recorded.
    assert!(store.keys_due_for_refresh(129).unwrap().is_empty());
    assert_eq!(
        store.keys_due_for_refresh(130).unwrap(),
        vec!["btc".to_string()]
    );
    assert!(store.start_key_pending("btc", "{\"p\":3}", 131).unwrap());
    assert!(store.keys_due_for_refresh(500).unwrap().is_empty());
    // A scheduled refresh keeps the schedule (None); one that turns it off clears it.
    assert!(
        store
            .update_key_generation("btc", &scheduled(None), "{\"g\":1}", 140, &entry(6))
            .unwrap()
    );
    let k = store.key("btc").unwrap().unwrap();
    assert_eq!((k.refresh_every, k.refreshed, k.pending), (100, 140, None));
    assert!(
        store
            .update_key_generation("btc", &scheduled(Some(0)), "{\"g\":1}", 150, &entry(7))
            .unwrap()
    );
    assert!(store.keys_due_for_refresh(u64::MAX).unwrap().is_empty());
    // Issue 20: a resharing that replaces the key's policy stores it with its version; one that
    // does not keeps both.
    let with_policy = NewGeneration {
        policy: Some(("{\"approvers\":[],\"approvals_needed\":1}", 1)),
        ..scheduled(None)
    };
    assert!(
        store
            .update_key_generation("btc", &with_policy, "{\"g\":1}", 160, &entry(8))
            .unwrap()
    );
    let k = store.key("btc").unwrap().unwrap();
    assert_eq!(
        (k.policy.as_str(), k.policy_version),
        ("{\"approvers\":[],\"approvals_needed\":1}", 1)
    );
    assert!(
        store
            .update_key_generation("btc", &scheduled(None), "{\"g\":1}", 170, &entry(9))
            .unwrap()
    );
    assert_eq!(store.key("btc").unwrap().unwrap().policy_version, 1);

    admin_changes(store);
    image_changes(store);
    roster_proposals(store);
    roster_commits(store);

    // Idempotency: the first caller owns the request; the second finds it.
    assert_eq!(
        store
            .begin_request("r1", "sign", "id1", b"h1", "{}", None, 100, 10)
            .unwrap(),
        Begin::Started(100)
    );
    let Begin::Existing(row) = store
        .begin_request("r1", "sign", "id1", b"h2", "{}", None, 200, 11)
        .unwrap()
    else {
        panic!("second begin must find the first");
    };
    // The same request id under another idempotency key finds the first record too.
    let Begin::Existing(other) = store
        .begin_request("r9", "sign", "id1", b"h1", "{}", None, 200, 11)
        .unwrap()
    else {
        panic!("a request id is recorded once");
    };
    assert_eq!(other.idem_key, "r1");
    assert_eq!(
        (row.state, row.lease_until),
        (RequestState::InProgress, 100)
    );
    assert_eq!(row.request_hash, b"h1");
    // A stale owner (wrong lease) cannot finish it; the owner can, once, with its audit record.
    assert!(
        !store
            .finish_request("r1", 99, RequestState::Completed, "{}", 12, &[entry(6)])
            .unwrap()
    );
    let before = verify_log(store).unwrap().unwrap();
    assert!(
        store
            .finish_request(
                "r1",
                100,
                RequestState::Completed,
                "{\"ok\":1}",
                12,
                &[entry(6)]
            )
            .unwrap()
    );
    assert!(
        !store
            .finish_request("r1", 100, RequestState::Failed, "{}", 13, &[entry(7)])
            .unwrap()
    );
    assert_eq!(verify_log(store).unwrap().unwrap(), before + 1);
    let row = store.request("r1").unwrap().unwrap();
    assert_eq!(row.response.as_deref(), Some("{\"ok\":1}"));

    // Stale requests: an expired lease can be taken over exactly once.
    store
        .begin_request("r2", "sign", "id2", b"h", "{}", None, 50, 10)
        .unwrap();
    let stale = store.stale_requests(60).unwrap();
    assert_eq!(
        stale
            .iter()
            .map(|r| r.idem_key.as_str())
            .collect::<Vec<_>>(),
        vec!["r2"]
    );
    assert!(store.take_over_request("r2", 50, 90, 60).unwrap());
    assert!(!store.take_over_request("r2", 50, 95, 60).unwrap());
    assert!(store.stale_requests(60).unwrap().is_empty());

    // A retryable failure runs again under a strictly later lease; a dropped record frees its key.
    assert!(
        store
            .finish_request("r2", 90, RequestState::Retryable, "{}", 61, &[])
            .unwrap()
    );
    assert_eq!(
        store
            .begin_request("r2", "sign", "id2", b"h", "{}", None, 80, 62)
            .unwrap(),
        Begin::Started(91)
    );
    assert!(store.drop_request("r2", 91, 63, &[entry(8)]).unwrap());
    assert_eq!(store.request("r2").unwrap(), None);
    assert_eq!(
        store
            .begin_request("r2", "sign", "id2", b"h", "{}", None, 99, 64)
            .unwrap(),
        Begin::Started(99)
    );

    // Presignatures: claimed once, by quorum; dead ones are not counted.
    for (i, q) in [(1u8, "0,1"), (2, "0,1"), (3, "1,2")] {
        store
            .add_presignature(&PresigRow {
                id: vec![i; 32],
                key_id: "btc".into(),
                path: "m".into(),
                quorum: q.into(),
                created: 20 + u64::from(i),
            })
            .unwrap();
    }
    assert_eq!(store.ready_presignatures().unwrap().len(), 3);
    let counts = store.presignature_counts().unwrap();
    assert_eq!(
        counts.get(&("btc".into(), "m".into(), "0,1".into())),
        Some(&2)
    );
    assert_eq!(
        counts.get(&("btc".into(), "m".into(), "1,2".into())),
        Some(&1)
    );
    assert_eq!(
        claim(store, "btc", "m", "0,1", 30).unwrap(),
        Some(vec![1; 32])
    );
    store
        .set_presignature_state(&[2; 32], PresigState::Dead)
        .unwrap();
    assert_eq!(claim(store, "btc", "m", "0,1", 30).unwrap(), None);
    assert_eq!(claim(store, "btc", "m/0", "1,2", 30).unwrap(), None);
    assert_eq!(store.ready_presignatures().unwrap().len(), 1);
}

/// Adds nodes' statements to a recorded change.
type AddStatements =
    fn(&mut Store, u32, &[(u16, String)], u64, &AuditEntry) -> Result<bool, StoreError>;

/// The calls of one table of changes (admin or image), for [`changes_in_version_order`].
struct ChangeCalls {
    list: fn(&mut Store) -> Result<Vec<AdminChangeRow>, StoreError>,
    insert: fn(&mut Store, &AdminChangeRow, u64, &AuditEntry) -> Result<bool, StoreError>,
    add: AddStatements,
}

/// Issue 20: admin changes, recorded in version order from 1 (each once, with its audit
/// record), and nodes' statements added to one without replacing a node's first.
fn admin_changes(store: &mut Store) {
    changes_in_version_order(
        store,
        &ChangeCalls {
            list: Store::admin_changes,
            insert: Store::insert_admin_change,
            add: Store::add_admin_statements,
        },
    );
}

/// Issue 20 (image rotation): image changes, by the same rules in a table of their own (the
/// admin changes recorded before are not its versions).
fn image_changes(store: &mut Store) {
    let admins = store.admin_changes().unwrap();
    changes_in_version_order(
        store,
        &ChangeCalls {
            list: Store::image_changes,
            insert: Store::insert_image_change,
            add: Store::add_image_statements,
        },
    );
    assert_eq!(store.admin_changes().unwrap(), admins);
    let first: ImageChangeRow = store.image_changes().unwrap().remove(0);
    assert_eq!(first.version, 1);
}

/// Issue 20 (membership): roster change proposals, recorded by their hash (several may make
/// one version), each with its audit record; a node's statement is replaced by a later one
/// (the caller checked it); never written as a version of a chain.
fn roster_proposals(store: &mut Store) {
    use coordinator::store::{ChangeRow, ChangeTable};
    let table = ChangeTable::RosterProposals;
    assert!(store.changes(table).unwrap().is_empty());
    let proposal = |n: u8, created: u64| ChangeRow {
        version: 1,
        request: format!("{{\"p\":{n}}}"),
        request_hash: vec![n; 32],
        statements: BTreeMap::from([(0, format!("{n:02x}"))]),
        created_at: created,
    };
    let records = verify_log(store).unwrap().unwrap();
    store
        .record_roster_proposal(&proposal(1, 50), 50, &entry(20))
        .unwrap();
    store
        .record_roster_proposal(&proposal(2, 51), 51, &entry(21))
        .unwrap();
    // The first posted again: node 1's statement added, node 0's replaced.
    let mut again = proposal(1, 60);
    again.statements = BTreeMap::from([(0, "ee".into()), (1, "bb".into())]);
    store
        .record_roster_proposal(&again, 60, &entry(22))
        .unwrap();
    assert_eq!(verify_log(store).unwrap().unwrap(), records + 3);
    let all = store.changes(table).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].request_hash, vec![1; 32]);
    assert_eq!(all[0].created_at, 50, "kept as first recorded");
    assert_eq!(
        all[0].statements,
        BTreeMap::from([(0, "ee".to_string()), (1, "bb".to_string())])
    );
    assert_eq!(all[1], proposal(2, 51));
    // Never as a version of a chain: refused, nothing written.
    assert!(
        store
            .insert_change(table, &proposal(3, 70), 70, &entry(23))
            .is_err()
    );
    assert!(
        store
            .add_change_statements(table, 1, &[(2, "cc".into())], 70, &entry(23))
            .is_err()
    );
    assert_eq!(store.changes(table).unwrap().len(), 2);
    assert_eq!(verify_log(store).unwrap().unwrap(), records + 3);
}

/// Issue 20 (membership): committed roster changes, in version order from 1, each with its
/// audit record; the first commit of a version kills every ready presignature (the nodes dropped
/// those of the replaced shares); the same change committed again replaces its answer and its
/// proxies; another change never takes a version, and no version is skipped.
fn roster_commits(store: &mut Store) {
    use coordinator::store::RosterCommitRow;
    assert!(store.roster_commits().unwrap().is_empty());
    let commit = |version: u32, hash: u8, result: &str| RosterCommitRow {
        version,
        request_hash: vec![hash; 32],
        proxies: vec!["http://a:1".into(), format!("http://j{version}:1")],
        replaced: vec!["http://a:1".into()],
        result: result.into(),
        created_at: 80 + u64::from(version),
    };
    store
        .add_presignature(&PresigRow {
            id: vec![0x77; 32],
            key_id: "moved".into(),
            path: "m".into(),
            quorum: "0,1".into(),
            created: 79,
        })
        .unwrap();
    let records = verify_log(store).unwrap().unwrap();
    assert!(
        !store
            .record_roster_commit(&commit(2, 1, "{}"), 80, &entry(30))
            .unwrap(),
        "version 2 before version 1"
    );
    assert!(
        store
            .ready_presignatures()
            .unwrap()
            .iter()
            .any(|p| p.key_id == "moved")
    );
    assert!(
        store
            .record_roster_commit(&commit(1, 1, "{\"first\":1}"), 81, &entry(31))
            .unwrap()
    );
    assert!(
        !store
            .ready_presignatures()
            .unwrap()
            .iter()
            .any(|p| p.key_id == "moved"),
        "a presignature of the replaced shares is dead"
    );
    // The same change committed again: its answer and proxies replaced, its first time kept.
    let mut again = commit(1, 1, "{\"again\":1}");
    again.created_at = 99;
    again.proxies[1] = "http://moved:1".into();
    assert!(store.record_roster_commit(&again, 82, &entry(32)).unwrap());
    // Another change never makes version 1.
    assert!(
        !store
            .record_roster_commit(&commit(1, 2, "{}"), 83, &entry(33))
            .unwrap()
    );
    assert!(
        store
            .record_roster_commit(&commit(2, 3, "{}"), 84, &entry(34))
            .unwrap()
    );
    // Every call wrote its audit record, a refused one too: the nodes committed whatever the
    // store recorded.
    assert_eq!(verify_log(store).unwrap().unwrap(), records + 5);
    let all = store.roster_commits().unwrap();
    assert_eq!(all.len(), 2);
    let mut expected = commit(1, 1, "{\"again\":1}");
    expected.proxies[1] = "http://moved:1".into();
    assert_eq!(all[0], expected);
    assert_eq!(all[1], commit(2, 3, "{}"));
}

fn changes_in_version_order(store: &mut Store, calls: &ChangeCalls) {
    assert!((calls.list)(store).unwrap().is_empty());
    let change = |version: u32| AdminChangeRow {
        version,
        request: format!("{{\"v\":{version}}}"),
        request_hash: vec![version as u8; 32],
        statements: BTreeMap::from([(0, "aa".to_string())]),
        created_at: 40 + u64::from(version),
    };
    let records = verify_log(store).unwrap().unwrap();
    for early in [0, 2] {
        assert!(
            !(calls.insert)(store, &change(early), 41, &entry(10)).unwrap(),
            "version {early} before version 1"
        );
    }
    assert!((calls.insert)(store, &change(1), 41, &entry(10)).unwrap());
    assert!(
        !(calls.insert)(store, &change(1), 42, &entry(11)).unwrap(),
        "a version is recorded once"
    );
    assert!((calls.insert)(store, &change(2), 43, &entry(12)).unwrap());
    assert_eq!(verify_log(store).unwrap().unwrap(), records + 2);
    assert!(
        (calls.add)(
            store,
            1,
            &[(2, "cc".into()), (0, "ff".into())],
            44,
            &entry(13)
        )
        .unwrap()
    );
    assert!(
        !(calls.add)(store, 3, &[(1, "bb".into())], 45, &entry(14)).unwrap(),
        "no change made version 3"
    );
    assert_eq!(verify_log(store).unwrap().unwrap(), records + 3);
    let changes = (calls.list)(store).unwrap();
    assert_eq!(
        changes.iter().map(|c| c.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        changes[0].statements,
        BTreeMap::from([(0, "aa".to_string()), (2, "cc".to_string())])
    );
    assert_eq!(changes[0].request, "{\"v\":1}");
    assert_eq!(changes[1], change(2));
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.db");
    let mut store = Store::sqlite(&path).unwrap();
    // A second, independent connection: what someone with access to the file could do.
    let side = rusqlite::Connection::open(&path).unwrap();
    let mut tamper = |sql: &str| {
        side.execute(sql, []).unwrap();
    };
    suite(&mut store, &mut tamper);
    drop(store);
    // Reopening does not re-run migrations, and the data survived.
    let mut again = Store::sqlite(&path).unwrap();
    assert_eq!(again.schema_version().unwrap(), latest_schema_version());
    assert!(again.audit_page(0, 100).unwrap().len() > 3);
    assert_eq!(again.keys().unwrap().len(), 2);
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
    let mut first = Store::postgres(a).unwrap();
    let mut second = Store::postgres(b).unwrap();
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
    // Their events are in the log's order: `seq` allocated under the append's lock.
    let events = first.unsent_events(100).unwrap();
    let seqs: Vec<Option<u64>> = events
        .iter()
        .map(|e| serde_json::from_str::<Event>(&e.body).unwrap().audit_seq)
        .collect();
    assert_eq!(seqs, (1..=40).map(Some).collect::<Vec<_>>());
    // One relays at a time; the lock is handed on when its holder lets go.
    assert!(first.try_lead_relay().unwrap());
    assert!(!second.try_lead_relay().unwrap());
    first.release_relay().unwrap();
    assert!(second.try_lead_relay().unwrap());
    assert!(!first.try_lead_relay().unwrap());
    second.release_relay().unwrap();
    side.batch_execute("DELETE FROM audit_log; DELETE FROM outbox")
        .unwrap();

    let mut tamper = |sql: &str| {
        side.batch_execute(sql).unwrap();
    };
    suite(&mut second, &mut tamper);
    side.batch_execute("DELETE FROM presignatures").unwrap();

    // Two coordinators claiming from one pool at once never get the same presignature.
    for i in 0..60u8 {
        second
            .add_presignature(&PresigRow {
                id: vec![i; 32],
                key_id: "eth".into(),
                path: "m".into(),
                quorum: "0,2".into(),
                created: u64::from(i),
            })
            .unwrap();
    }
    let claim_all = |mut s: Store| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(id) = claim(&mut s, "eth", "m", "0,2", 1).unwrap() {
                got.push(id);
            }
            got
        })
    };
    let (x, y) = (claim_all(first), claim_all(second));
    let (x, y) = (x.join().unwrap(), y.join().unwrap());
    let mut all: Vec<Vec<u8>> = x.iter().chain(&y).cloned().collect();
    assert_eq!(all.len(), 60, "{} + {}", x.len(), y.len());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60, "a presignature was handed out twice");
}

/// A connection as `role` (trust authentication, as on the test machines) to an existing
/// private schema.
fn postgres_as(role: &str, schema: &str) -> postgres::Client {
    let url = std::env::var("COHORT_TEST_POSTGRES").unwrap_or_else(|_| PG_URL.to_string());
    let mut config: postgres::Config = url.parse().unwrap();
    config.user(role);
    let mut c = config.connect(postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    c
}

/// The coordinator's own role (issue 23): the schema's owner migrates and grants; a store
/// opened as the role does all the suite's work, and the role can neither change the schema nor
/// rewrite or shorten the audit log — what a coordinator taken over would try.
#[test]
fn the_coordinators_own_role_cannot_change_the_schema_or_rewrite_the_audit_log() {
    let schema = "cohort_role_test";
    let role = "cohort_test_app";
    let Some(owner) = postgres(schema) else {
        return;
    };
    let mut owner = Store::postgres(owner).unwrap();
    assert!(matches!(
        owner.grant_app_role("pg_x", false),
        Err(StoreError::BadRole(_))
    ));
    owner.grant_app_role(role, false).unwrap();
    // Asked again (a coordinator restart runs it again): the same rights.
    owner.grant_app_role(role, false).unwrap();

    let mut side = postgres_existing(schema).unwrap();
    // Nobody but the owner creates objects in the schema or the database (a function planted
    // there would run with the owner's rights at its next migration).
    for (what, sql) in [
        (
            "schema",
            format!("SELECT has_schema_privilege('{role}', '{schema}', 'CREATE')"),
        ),
        (
            "schema, by anyone",
            format!("SELECT has_schema_privilege('public', '{schema}', 'CREATE')"),
        ),
        (
            "database",
            format!("SELECT has_database_privilege('{role}', current_database(), 'CREATE')"),
        ),
    ] {
        let held: bool = side.query_one(sql.as_str(), &[]).unwrap().get(0);
        assert!(!held, "CREATE on the {what}");
    }
    // An existing role that holds more than a login is not made the coordinator's.
    side.batch_execute(
        "DROP ROLE IF EXISTS cohort_test_wide; CREATE ROLE cohort_test_wide LOGIN CREATEDB;
         DROP ROLE IF EXISTS cohort_test_member; CREATE ROLE cohort_test_member LOGIN;
         GRANT pg_read_all_data TO cohort_test_member;",
    )
    .unwrap();
    for wide in ["cohort_test_wide", "cohort_test_member"] {
        match owner.grant_app_role(wide, false) {
            Err(StoreError::BadRole(why)) => assert!(why.contains(wide), "{why}"),
            other => panic!("{wide}: {other:?}"),
        }
    }
    side.batch_execute("DROP ROLE cohort_test_wide; DROP ROLE cohort_test_member;")
        .unwrap();
    // A schema newer than this coordinator: its grant would take away what newer ones need.
    side.batch_execute(&format!(
        "INSERT INTO schema_migrations (version, applied_at) VALUES ({}, 0)",
        latest_schema_version() + 1
    ))
    .unwrap();
    assert!(matches!(
        owner.grant_app_role(role, false),
        Err(StoreError::SchemaAhead { .. })
    ));
    side.batch_execute(&format!(
        "DELETE FROM schema_migrations WHERE version = {}",
        latest_schema_version() + 1
    ))
    .unwrap();
    // Every table of the schema has its line in APP_PRIVILEGES, and the role holds exactly
    // those rights.
    let tables: Vec<String> = side
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut listed: Vec<String> = APP_PRIVILEGES.iter().map(|(t, _)| t.to_string()).collect();
    listed.sort();
    assert_eq!(tables, listed, "a table without its line in APP_PRIVILEGES");
    for (table, rights) in APP_PRIVILEGES {
        for right in [
            "SELECT",
            "INSERT",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "REFERENCES",
            "TRIGGER",
        ] {
            let held: bool = side
                .query_one(
                    "SELECT has_table_privilege($1, $2, $3)",
                    &[&role, &format!("{schema}.{table}"), &right],
                )
                .unwrap()
                .get(0);
            assert_eq!(held, rights.contains(right), "{role} {right} on {table}");
        }
    }

    // The store as the role: every operation of the suite works.
    let mut app = Store::postgres(postgres_as(role, schema)).unwrap();
    assert_eq!(app.schema_version().unwrap(), latest_schema_version());
    let mut tamper = |sql: &str| {
        side.batch_execute(sql).unwrap();
    };
    suite(&mut app, &mut tamper);
    app.append_audit(5, &entry(1)).unwrap();

    // What the role itself may not do.
    let mut raw = postgres_as(role, schema);
    for sql in [
        "UPDATE audit_log SET time = time + 1",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DROP TABLE keys",
        "ALTER TABLE keys ADD COLUMN x BIGINT",
        "CREATE TABLE extra (a BIGINT)",
        "DELETE FROM schema_migrations",
    ] {
        let e = raw.batch_execute(sql).unwrap_err();
        let code = e.code().map(|c| c.code().to_string());
        assert!(
            matches!(code.as_deref(), Some("42501")),
            "{sql}: {e} (expected permission denied)"
        );
    }

    // A coordinator newer than the schema, opened as the role, says what to do.
    side.batch_execute(&format!(
        "DELETE FROM schema_migrations WHERE version = {}",
        latest_schema_version()
    ))
    .unwrap();
    match Store::postgres(postgres_as(role, schema)) {
        Err(e @ StoreError::Migrate { version, .. }) => {
            assert_eq!(version, latest_schema_version());
            assert!(e.to_string().contains("--store-grant"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Another connection to an existing private schema.
fn postgres_existing(schema: &str) -> Option<postgres::Client> {
    let url = std::env::var("COHORT_TEST_POSTGRES").unwrap_or_else(|_| PG_URL.to_string());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).ok()?;
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    Some(c)
}

/// Claims one ready presignature in a transaction of its own.
fn claim(
    store: &mut Store,
    key_id: &str,
    path: &str,
    quorum: &str,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.transaction(|tx| tx.claim_presignature(key_id, path, quorum, now))
}
