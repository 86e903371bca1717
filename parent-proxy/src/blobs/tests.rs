use super::*;
use serde_bytes::ByteBuf;

/// Review finding (ADR 0013 step 5): the node key and the genesis are stored once; a second
/// answer carrying either (a genesis relayed to an enclave not yet given its state back,
/// or two enrollments of two boots) fails loudly and leaves the first one as it was.
#[test]
fn the_node_key_and_the_genesis_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let arn = protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
    let enrolled = |sealed: &[u8]| EnclaveResponse::Enrolled {
        sealed: ByteBuf::from(sealed.to_vec()),
        node_key: ByteBuf::from(vec![1; 32]),
        kms_key_arn: arn.clone(),
    };
    let genesis = |sealed: &[u8]| EnclaveResponse::GenesisAccepted {
        sealed: ByteBuf::from(sealed.to_vec()),
        receipt: ByteBuf::new(),
        node: Some(0),
    };
    assert!(!store.has_node_key());
    store.keep(&enrolled(b"first key")).unwrap();
    store.keep(&genesis(b"first genesis")).unwrap();
    assert!(store.has_node_key());
    for second in [enrolled(b"second key"), genesis(b"second genesis")] {
        let e = store.keep(&second).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    }
    let all = store.all().unwrap();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [NODE_KEY_BLOB, GENESIS_BLOB]);
    assert_eq!(all[0].1.as_slice(), b"first key");
    assert_eq!(all[1].1.as_slice(), b"first genesis");
    // No temporary file is left behind.
    let left = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(left, 2);
}

/// Issue 20: a disowned policy change leaves the key's current blob with its policy void
/// (it replaces the key's blob) beside the frozen pending one; without it, only the
/// pending blob changes.
#[test]
fn a_disowning_stores_the_frozen_pending_blob_and_the_voided_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let disowned = |sealed: Option<&[u8]>, current: Option<&[u8]>| {
        EnclaveResponse::Session(protocol::session::SessionUpdate {
            session: ByteBuf::from(vec![0; 16]),
            outgoing: vec![],
            outcome: Some(Outcome::Disowned {
                key_id: "k".into(),
                generation: 1,
                statement: ByteBuf::new(),
                sealed: sealed.map(|b| ByteBuf::from(b.to_vec())),
                current: current.map(|b| ByteBuf::from(b.to_vec())),
            }),
        })
    };
    store.keep(&disowned(Some(b"frozen"), None)).unwrap();
    let read = |name: String| std::fs::read(dir.path().join(name)).ok();
    assert_eq!(read(pending_blob("k")).as_deref(), Some(&b"frozen"[..]));
    assert_eq!(read(key_blob("k")), None);
    store
        .keep(&disowned(Some(b"frozen 2"), Some(b"void")))
        .unwrap();
    assert_eq!(read(pending_blob("k")).as_deref(), Some(&b"frozen 2"[..]));
    assert_eq!(read(key_blob("k")).as_deref(), Some(&b"void"[..]));
    store.keep(&disowned(None, Some(b"void 2"))).unwrap();
    assert_eq!(read(key_blob("k")).as_deref(), Some(&b"void 2"[..]));
}

/// Issue 20: a roster proposal's answer replaces the genesis blob (the genesis with the
/// change pending), as an admin or image change does; the genesis as first accepted is still
/// stored only once.
#[test]
fn a_roster_proposal_replaces_the_genesis_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    store
        .keep(&EnclaveResponse::GenesisAccepted {
            sealed: ByteBuf::from(b"genesis".to_vec()),
            receipt: ByteBuf::new(),
            node: Some(0),
        })
        .unwrap();
    let proposed = |sealed: &[u8]| {
        EnclaveResponse::Session(protocol::session::SessionUpdate {
            session: ByteBuf::from(vec![0; 16]),
            outgoing: vec![],
            outcome: Some(Outcome::RosterProposed {
                version: 1,
                sealed: ByteBuf::from(sealed.to_vec()),
                statement: ByteBuf::new(),
            }),
        })
    };
    store.keep(&proposed(b"genesis, change pending")).unwrap();
    let read = || std::fs::read(dir.path().join(GENESIS_BLOB)).unwrap();
    assert_eq!(read(), b"genesis, change pending");
    store.keep(&proposed(b"genesis, change withdrawn")).unwrap();
    assert_eq!(read(), b"genesis, change withdrawn");
}

/// Issue 20: a join stores the joining node's genesis blob, and a later join (a change
/// that replaced the one it joined) replaces it; a member's genesis blob is never replaced
/// by a join.
#[test]
fn a_join_stores_the_genesis_blob_and_a_later_join_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let joined = |sealed: &[u8]| EnclaveResponse::Joined {
        sealed: ByteBuf::from(sealed.to_vec()),
        node: 3,
        version: 1,
        statement: ByteBuf::new(),
    };
    let read = || std::fs::read(dir.path().join(GENESIS_BLOB)).unwrap();
    store.keep(&joined(b"joined change a")).unwrap();
    assert_eq!(read(), b"joined change a");
    store.keep(&joined(b"joined change b")).unwrap();
    assert_eq!(read(), b"joined change b");
    let names: Vec<String> = store.all().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [GENESIS_BLOB], "the marker is no blob");

    let member = tempfile::tempdir().unwrap();
    let store = BlobStore::open(member.path()).unwrap();
    store
        .keep(&EnclaveResponse::GenesisAccepted {
            sealed: ByteBuf::from(b"a member's genesis".to_vec()),
            receipt: ByteBuf::new(),
            node: Some(0),
        })
        .unwrap();
    let e = store.keep(&joined(b"a join")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    let kept = std::fs::read(member.path().join(GENESIS_BLOB)).unwrap();
    assert_eq!(kept, b"a member's genesis");
}

/// Issue 20, the prepare gate: a node prepared for a roster change answers its genesis
/// blob with every node's statement, which replaces the one before where the store agrees
/// on what the node is (a member's blob, or a joining node's beside its marker); a node
/// only asked for its own statement seals nothing, and nothing is stored.
#[test]
fn a_prepared_node_s_genesis_blob_replaces_the_one_before_where_the_store_agrees() {
    let prepared = |sealed: Option<&[u8]>, joining: bool| EnclaveResponse::RosterPrepared {
        version: 1,
        chain: ByteBuf::from(vec![7; 32]),
        statement: ByteBuf::new(),
        prepared: sealed.is_some(),
        prepared_statement: sealed.map(|_| ByteBuf::from(vec![1; 64])),
        joining,
        sealed: sealed.map(|s| ByteBuf::from(s.to_vec())),
    };
    // A member.
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let read = |dir: &tempfile::TempDir| std::fs::read(dir.path().join(GENESIS_BLOB)).unwrap();
    let e = store
        .keep(&prepared(Some(b"no genesis yet"), false))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    store
        .keep(&EnclaveResponse::GenesisAccepted {
            sealed: ByteBuf::from(b"genesis, change pending".to_vec()),
            receipt: ByteBuf::new(),
            node: Some(0),
        })
        .unwrap();
    store.keep(&prepared(None, false)).unwrap();
    assert_eq!(read(&dir), b"genesis, change pending");
    let e = store
        .keep(&prepared(Some(b"a joiner's"), true))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert_eq!(read(&dir), b"genesis, change pending");
    store
        .keep(&prepared(Some(b"genesis, prepared"), false))
        .unwrap();
    assert_eq!(read(&dir), b"genesis, prepared");
    // A joining node.
    let joiner = tempfile::tempdir().unwrap();
    let store = BlobStore::open(joiner.path()).unwrap();
    store
        .keep(&EnclaveResponse::Joined {
            sealed: ByteBuf::from(b"joined".to_vec()),
            node: 3,
            version: 1,
            statement: ByteBuf::new(),
        })
        .unwrap();
    let e = store
        .keep(&prepared(Some(b"a member's"), false))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    store
        .keep(&prepared(Some(b"joined, prepared"), true))
        .unwrap();
    assert_eq!(read(&joiner), b"joined, prepared");
}

/// Issue 20, the commit: a key's move is stored under its roster version; a node vouching
/// for its key set replaces its genesis blob; the commit's genesis blob replaces the one
/// before, the `joined` marker goes, the incoming blobs of
/// this version stay (they are the keys' current generations now) and earlier versions'
/// go. A commit where no genesis blob is stored is refused and stores nothing.
#[test]
fn a_commit_replaces_the_genesis_blob_and_keeps_this_version_s_incoming_blobs() {
    let moved = |key_id: &str, version: u32, sealed: &[u8]| {
        EnclaveResponse::Session(protocol::session::SessionUpdate {
            session: ByteBuf::from(vec![0; 16]),
            outgoing: vec![],
            outcome: Some(Outcome::KeyMoved {
                key_id: key_id.into(),
                generation: 0,
                version,
                index: Some(3),
                confirmed: ByteBuf::from(vec![1; 32]),
                key: ByteBuf::from(vec![2; 32]),
                sealed: Some(ByteBuf::from(sealed.to_vec())),
                statement: Some(ByteBuf::from(vec![3; 64])),
            }),
        })
    };
    let answer =
        |sealed: Option<&[u8]>, set: bool, version: u32| EnclaveResponse::RosterCommitted {
            version,
            keys: ByteBuf::from(vec![4; 32]),
            count: 1,
            statement: ByteBuf::from(vec![5; 64]),
            set_statement: set.then(|| ByteBuf::from(vec![6; 64])),
            sealed: sealed.map(|s| ByteBuf::from(s.to_vec())),
            set: vec![],
            aux: None,
        };
    let committed = |sealed: &[u8], version: u32| answer(Some(sealed), true, version);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).ok();
    let e = store.keep(&committed(b"no genesis yet", 2)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert_eq!(read(GENESIS_BLOB), None);
    store
        .keep(&EnclaveResponse::Joined {
            sealed: ByteBuf::from(b"joined".to_vec()),
            node: 3,
            version: 2,
            statement: ByteBuf::new(),
        })
        .unwrap();
    assert!(dir.path().join(JOINED).exists());
    let aux_moved = |version: u32, sealed: &[u8]| {
        EnclaveResponse::Session(protocol::session::SessionUpdate {
            session: ByteBuf::from(vec![0; 16]),
            outgoing: vec![],
            outcome: Some(Outcome::AuxMoved {
                version,
                index: 3,
                aux: ByteBuf::from(vec![7; 32]),
                sealed: ByteBuf::from(sealed.to_vec()),
            }),
        })
    };
    let aux_blob = protocol::backups::incoming_aux_blob_name;
    store.keep(&moved("k", 1, b"withdrawn change's")).unwrap();
    store
        .keep(&aux_moved(1, b"withdrawn change's aux"))
        .unwrap();
    store.keep(&aux_moved(2, b"a first run")).unwrap();
    store.keep(&aux_moved(2, b"this change's aux")).unwrap();
    store.keep(&moved("k", 2, b"this change's")).unwrap();
    store.keep(&moved("j", 2, b"another key's")).unwrap();
    // The node vouches for its key set: its genesis blob says so.
    store.keep(&answer(Some(b"vouched"), false, 2)).unwrap();
    assert_eq!(read(GENESIS_BLOB).as_deref(), Some(&b"vouched"[..]));
    assert!(dir.path().join(JOINED).exists());
    store.keep(&committed(b"committed", 2)).unwrap();
    assert_eq!(read(GENESIS_BLOB).as_deref(), Some(&b"committed"[..]));
    assert!(!dir.path().join(JOINED).exists());
    assert_eq!(read(&incoming_blob("k", 1)), None);
    // The new party set's auxiliary information: the last run of this version's stays
    // (it is the roster's now), an earlier version's goes.
    assert_eq!(read(&aux_blob(1)), None);
    assert_eq!(
        read(&aux_blob(2)).as_deref(),
        Some(&b"this change's aux"[..])
    );
    assert_eq!(
        read(&incoming_blob("k", 2)).as_deref(),
        Some(&b"this change's"[..])
    );
    assert_eq!(
        read(&incoming_blob("j", 2)).as_deref(),
        Some(&b"another key's"[..])
    );
    // A later change's move never writes over them.
    store.keep(&moved("k", 3, b"the next change's")).unwrap();
    assert_eq!(
        read(&incoming_blob("k", 2)).as_deref(),
        Some(&b"this change's"[..])
    );
    // Asked again without committing, nothing changes.
    store.keep(&answer(None, false, 2)).unwrap();
    assert_eq!(read(GENESIS_BLOB).as_deref(), Some(&b"committed"[..]));
}

/// A blob whose header is a CBOR map carrying sequence number `seq` (below 24) and a body,
/// as the enclave's genesis blobs carry theirs.
fn numbered(seq: u8, body: &[u8; 4]) -> Vec<u8> {
    assert!(seq < 24);
    let mut v = vec![0xA2, 0x63, b's', b'e', b'q', seq];
    v.extend_from_slice(&[0x64, b'b', b'o', b'd', b'y', 0x44]);
    v.extend_from_slice(body);
    v
}

/// Attacker review helper-67, finding 2: answers that carry genesis blobs can finish in
/// another order than the enclave sealed them; the store keeps the higher-numbered one,
/// whichever order they come in, also from racing threads, and a blob with no number
/// never replaces a numbered one.
#[test]
fn an_older_genesis_blob_answered_late_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let read = || std::fs::read(dir.path().join(GENESIS_BLOB)).unwrap();
    store
        .keep(&EnclaveResponse::GenesisAccepted {
            sealed: ByteBuf::from(numbered(1, b"gen1")),
            receipt: ByteBuf::new(),
            node: Some(0),
        })
        .unwrap();
    let proposed = |sealed: Vec<u8>| {
        EnclaveResponse::Session(protocol::session::SessionUpdate {
            session: ByteBuf::from(vec![0; 16]),
            outgoing: vec![],
            outcome: Some(Outcome::RosterProposed {
                version: 1,
                sealed: ByteBuf::from(sealed),
                statement: ByteBuf::new(),
            }),
        })
    };
    let vouched = |sealed: Vec<u8>| EnclaveResponse::RosterCommitted {
        version: 1,
        keys: ByteBuf::from(vec![4; 32]),
        count: 1,
        statement: ByteBuf::from(vec![5; 64]),
        set_statement: None,
        sealed: Some(ByteBuf::from(sealed)),
        set: vec![],
        aux: None,
    };
    store.keep(&proposed(numbered(3, b"pro3"))).unwrap();
    assert_eq!(read(), numbered(3, b"pro3"));
    // The vouch sealed before the proposal answered again, coming back last: not stored.
    store.keep(&vouched(numbered(2, b"vch2"))).unwrap();
    assert_eq!(read(), numbered(3, b"pro3"));
    store.keep(&vouched(numbered(4, b"vch4"))).unwrap();
    assert_eq!(read(), numbered(4, b"vch4"));
    // The same number again (an answer given again) is stored.
    store.keep(&vouched(numbered(4, b"vch4"))).unwrap();
    // A blob with no number reads as 0.
    store.keep(&proposed(b"unnumbered".to_vec())).unwrap();
    assert_eq!(read(), numbered(4, b"vch4"));

    // Racing threads, in the reverse of the enclave's order: the highest stays.
    std::thread::scope(|scope| {
        for seq in (5..20u8).rev() {
            let store = store.clone();
            scope.spawn(move || {
                store.keep(&proposed(numbered(seq, &[seq; 4]))).unwrap();
            });
        }
    });
    assert_eq!(read(), numbered(19, &[19; 4]));
}

/// A node that left (a committed roster change removed it): its genesis blob is stored over
/// the one before, and every share it will never load again goes; its node key stays (it
/// still proves which node it was). Without a genesis blob, the answer fails and removes
/// nothing.
#[test]
fn a_node_that_left_keeps_its_genesis_and_node_key_and_drops_its_shares() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let left = |sealed: Vec<u8>| EnclaveResponse::RosterLeft {
        version: 1,
        statement: ByteBuf::from(vec![5; 64]),
        sealed: ByteBuf::from(sealed),
    };
    let shares = [
        "key-6b31.blob",
        "key-6b31.pending.blob",
        "key-6b31.incoming-1.blob",
        "aux.blob",
        "aux.incoming-1.blob",
    ];
    for name in shares {
        std::fs::write(dir.path().join(name), b"share").unwrap();
    }
    std::fs::write(dir.path().join(NODE_KEY_BLOB), b"node key").unwrap();
    let e = store.keep(&left(numbered(2, b"left"))).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert!(dir.path().join("key-6b31.blob").exists(), "nothing removed");

    std::fs::write(dir.path().join(GENESIS_BLOB), numbered(1, b"gen1")).unwrap();
    store.keep(&left(numbered(2, b"left"))).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join(GENESIS_BLOB)).unwrap(),
        numbered(2, b"left")
    );
    for name in shares {
        assert!(!dir.path().join(name).exists(), "{name} kept");
    }
    assert!(dir.path().join(NODE_KEY_BLOB).exists());
    // An older answer coming back after a later state was stored removes nothing (attacker
    // review helper-76, finding L1).
    std::fs::write(dir.path().join("key-6b31.blob"), b"share").unwrap();
    std::fs::write(dir.path().join(GENESIS_BLOB), numbered(5, b"gen5")).unwrap();
    store.keep(&left(numbered(2, b"left"))).unwrap();
    assert!(dir.path().join("key-6b31.blob").exists());
}
