//! Issue 22: the online path never waits behind background work. A background task is held at
//! a gate on its worker thread (`node::Gate`), so the tests know, without timing anything,
//! that a presignature's round is in progress while they sign.

use super::*;

/// Opens `gate` after five minutes if the test has not: should the online path wait behind the
/// held round (the bug these tests look for), the test then fails on its assertions instead of
/// hanging. It never opens it in a passing run, which needs seconds.
fn watchdog(gate: &Arc<crate::node::Gate>) {
    let gate = Arc::downgrade(gate);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(300));
        if let Some(gate) = gate.upgrade() {
            gate.open();
        }
    });
}

/// Starts a presignature of `key_id` at enclave 0 alone, on a thread: it answers once its
/// first round ran on enclave 0's worker.
fn start_presign_at_0(
    c: &Cluster,
    key_id: &str,
) -> (ByteBuf, std::thread::JoinHandle<EnclaveResponse>) {
    let session = crate::testkit::session_id_ahead(c.ahead.get());
    let enclave = c.enclaves[0].clone();
    let request = EnclaveRequest::StartSession {
        session: session.clone(),
        participants: vec![0, 1],
        kind: SessionKind::Presign {
            key_id: key_id.into(),
            path: vec![],
        },
    };
    (session, std::thread::spawn(move || enclave.handle(request)))
}

#[test]
fn signing_is_answered_while_a_presignature_round_of_the_same_enclave_runs() {
    let mut c = lock();
    let ecdsa = c.create_key("online-ecdsa", Scheme::EcdsaSecp256k1, 2);
    let eddsa = c.create_key("online-eddsa", Scheme::EddsaEd25519, 2);
    // A presignature made beforehand, for the presigned signing below.
    let ready = crate::testkit::session_id_ahead(c.ahead.get());
    let presign = SessionKind::Presign {
        key_id: "online-ecdsa".into(),
        path: vec![],
    };
    let made = c.run_in(ready.clone(), &[0, 1], presign, |_, _| {});
    assert!(
        made.values()
            .all(|o| matches!(o, Outcome::PresignatureReady)),
        "{made:?}"
    );

    let gate = Arc::new(crate::node::Gate::default());
    watchdog(&gate);
    c.enclaves[0].hold_background(gate.clone());
    let (_, started) = start_presign_at_0(&c, "online-ecdsa");
    // Enclave 0's worker has the presignature's first round, and holds it.
    gate.wait_for_held(1);

    // Meanwhile enclave 0 signs with FROST, a whole session...
    let message = b"signed while a presignature is made".to_vec();
    let out = c.sign(
        &[0, 1],
        c.sign_request("online-eddsa", vec![], message.clone()),
        None,
    );
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, eddsa);
    verify_eddsa(&eddsa, &message, &sig);
    // ...signs from the presignature made before...
    let preimage = b"a transaction, hashed by the enclaves";
    let out = c.sign(
        &[0, 1],
        c.sign_preimage("online-ecdsa", vec![], preimage),
        Some(ready),
    );
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, ecdsa);
    let digest: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(preimage)).into();
    verify_ecdsa(&ecdsa, &digest, &sig);
    // ...and reports its status.
    assert!(matches!(
        c.enclaves[0].handle(EnclaveRequest::Status),
        EnclaveResponse::Status { .. }
    ));
    // None of it waited for the round, which is still held.
    assert_eq!(gate.held(), 1);
    assert!(!started.is_finished());

    gate.open();
    match started.join().unwrap() {
        EnclaveResponse::Session(update) => {
            assert!(update.outcome.is_none(), "{update:?}");
            assert!(!update.outgoing.is_empty(), "the first round's messages");
        }
        other => panic!("presignature start: {other:?}"),
    }
}

/// An abort that arrives while the session's round runs on a worker ends the session at once:
/// the round's result is dropped, the request that sent it is told so, and the node goes on.
#[test]
fn an_abort_during_a_background_round_drops_its_result() {
    let mut c = lock();
    c.create_key("online-abort", Scheme::EcdsaSecp256k1, 2);
    let gate = Arc::new(crate::node::Gate::default());
    watchdog(&gate);
    c.enclaves[0].hold_background(gate.clone());
    let base = c.enclaves[0].counters();
    let (session, started) = start_presign_at_0(&c, "online-abort");
    gate.wait_for_held(1);
    // A request through the node's thread, after the start: the counters show the start.
    c.enclaves[0].incoming_for_test();
    let during = c.enclaves[0].counters();
    assert_eq!(during.sessions, base.sessions + 1, "{during:?}");
    match c.enclaves[0].handle(EnclaveRequest::AbortSession {
        session: session.clone(),
    }) {
        EnclaveResponse::Session(update) => assert!(matches!(
            update.outcome,
            Some(Outcome::Failed {
                code: FailureCode::Aborted,
                ..
            })
        )),
        other => panic!("abort: {other:?}"),
    }
    assert!(
        !started.is_finished(),
        "the abort did not wait for the round"
    );
    gate.open();
    match started.join().unwrap() {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, ErrorCode::Refused, "{e:?}");
            assert!(e.message.contains("dropped while its round ran"), "{e:?}");
        }
        other => panic!("presignature start after its abort: {other:?}"),
    }
    let after = c.enclaves[0].counters();
    assert_eq!(after.sessions, base.sessions, "{after:?}");
    assert_eq!(after.presignatures, base.presignatures, "{after:?}");
    // The machine the round built on its worker (after the abort, once the gate opened) is
    // gone from there too.
    let sid: [u8; protocol::peer::SESSION_ID_LEN] = session.as_ref().try_into().unwrap();
    assert!(!c.enclaves[0].probe(move |node| node.machine_on_a_worker(sid)));
    // A delivery to it is refused as to any finished session.
    match c.enclaves[0].handle(EnclaveRequest::Deliver {
        session,
        envelopes: vec![],
    }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::Refused, "{e:?}"),
        other => panic!("delivery after the abort: {other:?}"),
    }
}

/// helper-85, M1, written as the attack: a relay floods one delivery with more envelopes than a
/// round can carry (4 a party), which would hold the node's thread opening each. The delivery is
/// refused before any envelope is opened, and the session goes on with the real one.
#[test]
fn a_delivery_of_more_envelopes_than_a_round_carries_is_refused_and_the_session_goes_on() {
    let mut c = lock();
    c.create_key("online-flood", Scheme::EcdsaSecp256k1, 2);
    let session = crate::testkit::session_id_ahead(c.ahead.get());
    let enclave = c.enclaves[0].clone();
    let mut flooded = 0;
    let kind = SessionKind::Presign {
        key_id: "online-flood".into(),
        path: vec![],
    };
    let outcomes = c.run_in(session.clone(), &[0, 1], kind, |node, envelopes| {
        if node != 0 || envelopes.is_empty() || flooded > 0 {
            return;
        }
        // Two parties, four envelopes a party, and one more.
        let flood = vec![envelopes[0].clone(); 9];
        match enclave.handle(EnclaveRequest::Deliver {
            session: session.clone(),
            envelopes: flood,
        }) {
            EnclaveResponse::Error(e) => {
                assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
                assert!(e.message.contains("at most 8 envelopes"), "{e:?}");
            }
            other => panic!("a flooded delivery: {other:?}"),
        }
        flooded += 1;
    });
    assert_eq!(flooded, 1, "the flood was sent");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::PresignatureReady)),
        "{outcomes:?}"
    );
}
