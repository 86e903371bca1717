//! Issue 18 (audit finding 4): the caps on sessions and presignatures, session ids forgotten
//! once expired, and panics in the worker contained and reported. Every assertion reads the
//! enclave's own answers and counters; time moves only through the node's test clock.

use protocol::Phase;

use super::*;
use crate::node::{Limits, SETUP_SESSION_IDLE_SECS, SIGNING_SESSION_IDLE_SECS, TestHook};

fn start(
    e: &Enclave,
    session: ByteBuf,
    participants: &[u16],
    kind: SessionKind,
) -> EnclaveResponse {
    e.handle(EnclaveRequest::StartSession {
        session,
        participants: participants.to_vec(),
        kind,
    })
}

fn code(r: &EnclaveResponse) -> Option<ErrorCode> {
    match r {
        EnclaveResponse::Error(e) => Some(e.code),
        _ => None,
    }
}

fn running(r: &EnclaveResponse) -> bool {
    matches!(r, EnclaveResponse::Session(u) if u.outcome.is_none())
}

fn status(e: &Enclave) -> (Phase, Option<String>) {
    match e.handle(EnclaveRequest::Status) {
        EnclaveResponse::Status { phase, failure, .. } => (phase, failure),
        other => panic!("status: {other:?}"),
    }
}

/// Sets an enclave's caps for one test (the shared cluster's) and puts the defaults back.
struct CapsFor<'a>(&'a Enclave);

impl<'a> CapsFor<'a> {
    fn set(e: &'a Enclave, limits: Limits) -> Self {
        e.test_hook(TestHook::Limits(limits));
        Self(e)
    }
}

impl Drop for CapsFor<'_> {
    fn drop(&mut self) {
        self.0.test_hook(TestHook::Limits(Limits::DEFAULT));
    }
}

/// A coordinator (or a parent) that starts sessions and never finishes them fills an enclave
/// up to its caps and no further: the next start is `busy`, costs nothing, and setup work at
/// its cap does not keep signing out. Eviction lets work continue: an abort frees a place at
/// once, and idle sessions expire (30 s signing, 15 min setup), by the node's clock.
#[test]
fn a_full_enclave_answers_busy_and_eviction_lets_work_continue() {
    let mut c = Cluster::new(3);
    c.create_key("busy", Scheme::EddsaEd25519, 2);
    let node = &c.enclaves[0];
    let caps = Limits::DEFAULT;
    let sign = |text: &str| SessionKind::Sign {
        request: c.sign_request("busy", vec![], text.as_bytes().to_vec()),
        payload: 0,
        presignature: None,
    };

    // Setup sessions (key generations that never finish) up to their cap.
    let keygen = |i: usize| {
        let request = c.create_key_request(&format!("never-{i}"), Scheme::EddsaEd25519, 2);
        start(
            node,
            fresh_session_id(),
            &[0, 1, 2],
            SessionKind::CreateKey { request },
        )
    };
    for i in 0..caps.setup_sessions {
        let r = keygen(i);
        assert!(running(&r), "{r:?}");
    }
    let before = node.counters();
    assert_eq!(before.sessions, caps.setup_sessions);
    assert_eq!(code(&keygen(caps.setup_sessions)), Some(ErrorCode::Busy));
    assert_eq!(node.counters(), before, "a busy answer costs nothing");

    // Signing has its own cap: setup work at its cap does not keep it out.
    let mut sessions = Vec::new();
    for i in 0..caps.signing_sessions {
        let sid = fresh_session_id();
        let r = start(node, sid.clone(), &[0, 1], sign(&format!("pay {i}")));
        assert!(running(&r), "{i}: {r:?}");
        sessions.push(sid);
    }
    let full = node.counters();
    assert_eq!(full.sessions, caps.setup_sessions + caps.signing_sessions);
    let (refused_sid, refused_kind) = (fresh_session_id(), sign("one too many"));
    let busy = start(node, refused_sid.clone(), &[0, 1], refused_kind.clone());
    assert_eq!(code(&busy), Some(ErrorCode::Busy), "{busy:?}");
    assert_eq!(node.counters(), full, "a busy answer costs nothing");

    // The relay evicts one (an abort): the refused start goes through, with the same id (a
    // busy answer did not use it).
    assert!(matches!(
        node.handle(EnclaveRequest::AbortSession {
            session: sessions[0].clone(),
        }),
        EnclaveResponse::Session(_)
    ));
    let r = start(node, refused_sid, &[0, 1], refused_kind);
    assert!(running(&r), "{r:?}");
    assert_eq!(
        code(&start(node, fresh_session_id(), &[0, 1], sign("again"))),
        Some(ErrorCode::Busy)
    );

    // Nobody evicts: the signing sessions idle out after 30 s, the setup ones are still there.
    node.test_hook(TestHook::ClockAhead(SIGNING_SESSION_IDLE_SECS + 1));
    let r = start(
        node,
        fresh_session_id(),
        &[0, 1],
        sign("after the idle ones"),
    );
    assert!(running(&r), "{r:?}");
    assert_eq!(node.counters().sessions, caps.setup_sessions + 1);
    // And after 15 minutes the setup ones too (this start is refused: its id and its request
    // expired meanwhile).
    node.test_hook(TestHook::ClockAhead(SETUP_SESSION_IDLE_SECS + 1));
    let r = start(node, fresh_session_id(), &[0, 1], sign("late"));
    assert_eq!(code(&r), Some(ErrorCode::Refused), "{r:?}");
    assert_eq!(node.counters().sessions, 0);
}

/// Session ids carry their expiry: an enclave remembers the ids it used only until they
/// expire, and an id it forgot is refused by its expiry, so no session id is started twice.
#[test]
fn used_session_ids_are_forgotten_once_expired_and_never_start_again() {
    let mut c = Cluster::new(3);
    c.create_key("ids", Scheme::EddsaEd25519, 2);
    let node = &c.enclaves[0];
    let keygen = node.counters().used_sessions;
    assert_eq!(keygen, 1, "the key generation's");
    let mut used = Vec::new();
    for i in 0..50 {
        let sid = fresh_session_id();
        let kind = SessionKind::Sign {
            request: c.sign_request("ids", vec![], format!("pay {i}").into_bytes()),
            payload: 0,
            presignature: None,
        };
        assert!(running(&start(node, sid.clone(), &[0, 1], kind.clone())));
        assert!(matches!(
            node.handle(EnclaveRequest::AbortSession {
                session: sid.clone()
            }),
            EnclaveResponse::Session(_)
        ));
        used.push((sid, kind));
    }
    assert_eq!(node.counters().used_sessions, keygen + 50);
    assert_eq!(node.counters().sessions, 0);
    // Remembered while they can be started: refused as used.
    let (sid, kind) = &used[0];
    let r = start(node, sid.clone(), &[0, 1], kind.clone());
    assert!(
        matches!(&r, EnclaveResponse::Error(e) if e.message.contains("already used")),
        "{r:?}"
    );
    // Ten minutes on, every id expired: forgotten, and refused by its expiry.
    node.test_hook(TestHook::ClockAhead(601));
    for (sid, kind) in &used {
        let r = start(node, sid.clone(), &[0, 1], kind.clone());
        assert!(
            matches!(&r, EnclaveResponse::Error(e) if e.code == ErrorCode::Refused && e.message.contains("session id expired")),
            "{r:?}"
        );
    }
    assert_eq!(node.counters().used_sessions, 0, "expired ids forgotten");
    // An id that expires more than an hour ahead would be remembered that long: refused.
    let far = protocol::session::session_id_expiring(now() + 601 + 3700, &[1; 24]);
    let r = start(
        node,
        ByteBuf::from(far.to_vec()),
        &[0, 1],
        used[0].1.clone(),
    );
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
}

/// A relay that asks for presignatures without end gets `limit` at the cap (ready ones and
/// ones being made count); once one is used, presigning works again.
#[test]
fn presignatures_stop_at_their_cap_with_limit_until_one_is_used() {
    let mut c = lock();
    c.create_key("cap-ecdsa", Scheme::EcdsaSecp256k1, 2);
    let held = c.enclaves[0].counters().presignatures;
    let _caps = CapsFor::set(
        &c.enclaves[0],
        Limits {
            presignatures: held + 1,
            ..Limits::DEFAULT
        },
    );
    let presign = || {
        let pid = fresh_session_id();
        let out = c.run_in(
            pid.clone(),
            &[0, 1],
            SessionKind::Presign {
                key_id: "cap-ecdsa".into(),
                path: vec![],
            },
            |_, _| {},
        );
        (pid, out)
    };
    // At the cap node 0 answers `limit`; the relay then aborts the session its partner started,
    // as after any failure.
    let refused_at_the_cap = || {
        let (refused, out) = presign();
        assert!(
            matches!(
                out.get(&0),
                Some(Outcome::Failed {
                    code: FailureCode::Limit,
                    ..
                })
            ),
            "{out:?}"
        );
        assert!(matches!(
            c.enclaves[1].handle(EnclaveRequest::AbortSession { session: refused }),
            EnclaveResponse::Session(_)
        ));
    };
    let (pid, out) = presign();
    assert!(
        out.values().all(|o| *o == Outcome::PresignatureReady),
        "{out:?}"
    );
    assert_eq!(c.enclaves[0].counters().presignatures, held + 1);
    refused_at_the_cap();
    assert_eq!(c.enclaves[0].counters().presignatures, held + 1);
    // Used: one place free again.
    let digest = HashFunction::Sha256d.digest(b"frees a place");
    let out = c.sign(
        &[0, 1],
        c.sign_preimage("cap-ecdsa", vec![], b"frees a place"),
        Some(pid),
    );
    let (sig, pk) = signature_of(&out);
    verify_ecdsa(&pk, &digest, &sig);
    assert_eq!(c.enclaves[0].counters().presignatures, held);
    let (_, out) = presign();
    assert!(
        out.values().all(|o| *o == Outcome::PresignatureReady),
        "{out:?}"
    );
    // At the cap again, with a presignature nobody will ever name (its id dropped, as when a
    // partner restarts or the coordinator never recorded it): once presignatures outlive their
    // lifetime they are dropped and presigning works again (reported by helper-28's review).
    refused_at_the_cap();
    let _stale = CapsFor::set(
        &c.enclaves[0],
        Limits {
            presignatures: held + 1,
            presignature_lifetime_secs: 0,
            ..Limits::DEFAULT
        },
    );
    let (_, out) = presign();
    assert!(
        out.values().all(|o| *o == Outcome::PresignatureReady),
        "{out:?}"
    );
    assert!(c.enclaves[0].counters().presignatures <= held + 1);
}

/// A panic inside a protocol machine fails its session only, with the reason; the enclave
/// counts it and reports it in its status, stays operational, and the same request (released
/// by the failure) is signed afterwards.
#[test]
fn a_protocol_machine_panic_fails_its_session_only_and_is_reported() {
    let mut c = Cluster::new(3);
    c.create_key("panic", Scheme::EddsaEd25519, 2);
    let node = &c.enclaves[0];
    assert_eq!(status(node), (Phase::Operational, None));
    node.test_hook(TestHook::PanicInNextStep);
    let request = c.sign_request("panic", vec![], b"pay once".to_vec());
    let sid = fresh_session_id();
    let out = c.run_in(
        sid.clone(),
        &[0, 1],
        SessionKind::Sign {
            request: request.clone(),
            payload: 0,
            presignature: None,
        },
        |_, _| {},
    );
    match out.get(&0) {
        Some(Outcome::Failed { code, message, .. }) => {
            assert_eq!(*code, FailureCode::Internal);
            assert!(
                message.contains("the protocol machine panicked: injected panic"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(node.counters().contained_panics, 1);
    assert_eq!(node.counters().sessions, 0, "the panicked session is gone");
    let (phase, failure) = status(node);
    assert_eq!(phase, Phase::Operational);
    assert!(
        failure
            .as_deref()
            .is_some_and(|f| f.contains("injected panic")),
        "{failure:?}"
    );
    // Node 1 still waits in that session: the relay aborts it, as after any failure.
    assert!(matches!(
        c.enclaves[1].handle(EnclaveRequest::AbortSession { session: sid }),
        EnclaveResponse::Session(_)
    ));
    let out = c.sign(&[0, 1], request, None);
    let (sig, pk) = signature_of(&out);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk.try_into().unwrap()).unwrap();
    vk.verify_strict(
        b"pay once",
        &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
    )
    .unwrap();
}

/// A panic in the worker outside any protocol machine leaves the node's state untrusted: the
/// enclave drops it and is `failed`, with the reason in its status and in every refusal; it
/// answers `status` only, while its peers go on. A worker thread that is gone fails the
/// enclave the same way.
#[test]
fn a_worker_panic_fails_the_enclave_visibly() {
    let c = Cluster::new(3);
    let failing = &c.enclaves[1];
    match failing.test_hook(TestHook::PanicInWorker) {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, ErrorCode::Internal);
            assert!(
                e.message
                    .contains("the cluster worker panicked: injected panic in the cluster worker"),
                "{e:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (phase, failure) = status(failing);
    assert_eq!(phase, Phase::Failed);
    assert_eq!(
        failing.counters(),
        Default::default(),
        "its cluster state is dropped"
    );
    assert!(
        failure
            .as_deref()
            .is_some_and(|f| f.contains("the cluster worker panicked")),
        "{failure:?}"
    );
    for request in [
        EnclaveRequest::Attest { nonce: None },
        EnclaveRequest::AbortSession {
            session: fresh_session_id(),
        },
    ] {
        match failing.handle(request) {
            EnclaveResponse::Error(e) => {
                assert_eq!(e.code, ErrorCode::WrongPhase);
                assert!(
                    e.message
                        .contains("the enclave failed: the cluster worker panicked")
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(status(&c.enclaves[0]), (Phase::Operational, None));

    // The worker thread itself gone.
    let stopped = &c.enclaves[2];
    assert!(matches!(
        stopped.test_hook(TestHook::StopWorker),
        EnclaveResponse::Status { .. }
    ));
    let r = stopped.handle(EnclaveRequest::AbortSession {
        session: fresh_session_id(),
    });
    assert_eq!(code(&r), Some(ErrorCode::Internal), "{r:?}");
    assert_eq!(
        status(stopped),
        (Phase::Failed, Some("the cluster worker stopped".into()))
    );
}

/// A request padded with 10,000 copies of one valid approval, a path of 256 indices (signing
/// or presigning) or a preimage over 64 KiB is refused before any costly check: the approvals
/// are counted before one is verified, the shape checked before the approvals (helper-28's
/// review: 70,000 copies held the worker for 3.5 s per request).
#[test]
fn oversized_requests_are_refused_before_costly_checks() {
    let mut c = lock();
    c.create_key("shape-ecdsa", Scheme::EcdsaSecp256k1, 2);
    let refused_with = |out: &BTreeMap<u16, Outcome>, text: &str| {
        assert!(
            out.values()
                .all(|o| matches!(o, Outcome::Failed { message, .. } if message.contains(text))),
            "{text}: {out:?}"
        );
    };
    let mut padded = c.sign_preimage("shape-ecdsa", vec![], b"padded");
    padded.approvals = vec![padded.approvals[0].clone(); 10_000];
    refused_with(
        &c.sign(&[0, 1], padded, None),
        "10000 approvals for a policy of",
    );
    let long = c.sign_preimage("shape-ecdsa", vec![1; 256], b"a long path");
    refused_with(&c.sign(&[0, 1], long, None), "at most 255 non-hardened");
    let big = c.sign_preimage("shape-ecdsa", vec![], &vec![7; 64 * 1024 + 1]);
    refused_with(&c.sign(&[0, 1], big, None), "at most 65536 bytes");
    let presign = c.run(
        &[0, 1],
        SessionKind::Presign {
            key_id: "shape-ecdsa".into(),
            path: vec![1; 256],
        },
        |_, _| {},
    );
    refused_with(&presign, "at most 255 non-hardened");
    // Within bounds, the same key signs.
    let ok = c.sign_preimage("shape-ecdsa", vec![1; 255], b"the longest path");
    let (sig, pk) = signature_of(&c.sign(&[0, 1], ok, None));
    verify_ecdsa(
        &pk,
        &HashFunction::Sha256d.digest(b"the longest path"),
        &sig,
    );
}
