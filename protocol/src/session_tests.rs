//! Tests of the session kinds: execution ids and outcomes on the wire.

use super::*;
use crate::ErrorCode;
use crate::policy::{KeyPolicy, Payload};

fn participants() -> Vec<Participant> {
    vec![
        Participant {
            node: 0,
            signing: [1; 32],
            encryption: [2; 32],
        },
        Participant {
            node: 2,
            signing: [3; 32],
            encryption: [4; 32],
        },
    ]
}

fn eid(kind: &SessionKind, participants: &[Participant]) -> [u8; 32] {
    kind.execution_id(&ClusterId([7; 32]), &[8; 32], &[9; 32], participants)
}

fn sign(payload: u16, presignature: Option<&[u8]>) -> SessionKind {
    SessionKind::Sign {
        request: Approved {
            request: SignRequest {
                v: 3,
                cluster: ClusterId([7; 32]),
                key_id: "hot1".into(),
                path: vec![1],
                payloads: vec![Payload::raw(vec![5; 32]), Payload::raw(vec![6; 32])],
                request_id: ByteBuf::from(vec![1; 16]),
                created: 100,
                expiry: 200,
                policy: 0,
            },
            approvals: vec![],
        },
        payload,
        presignature: presignature.map(|p| ByteBuf::from(p.to_vec())),
    }
}

/// Known answer, computed independently (Python's hashlib and struct, from the layout in
/// ADR 0013 section 3): a presignature for key `hot1` at path 1/2147483647 among nodes 0
/// and 2.
#[test]
fn the_execution_id_is_pinned() {
    let kind = SessionKind::Presign {
        key_id: "hot1".into(),
        path: vec![1, 0x7fff_ffff],
    };
    assert_eq!(
        hex::encode(eid(&kind, &participants())),
        "478ff6dabc7aa96959d86de461c2e5c048ca16fede079e79500ab39f9826c498"
    );
}

/// A key's move has its own kind code and names its key; its roster slot is the move's
/// context (`crate::roster::transfer::transfer_context`, which the enclave passes), so
/// moves that differ in anything the context covers differ.
#[test]
fn a_key_move_has_its_own_execution_id() {
    let info = crate::roster::transfer::KeyInfo {
        v: crate::roster::transfer::KEY_INFO_VERSION,
        key_id: "hot1".into(),
        scheme: Scheme::EddsaEd25519,
        generation: 0,
        threshold: 2,
        public_key: ByteBuf::from(vec![1; 32]),
        chain_code: None,
        public_shares: vec![ByteBuf::from(vec![2; 32]); 3],
        request: ByteBuf::from(vec![3; 32]),
        policy_version: 0,
        policy: KeyPolicy {
            approvers: vec![],
            approvals_needed: 1,
        },
        refresh_every: 0,
    };
    let moving = |key_id: &str| SessionKind::MoveKey {
        key_id: key_id.into(),
        generation: 0,
        dealers: vec![0, 1],
        key: Box::new(info.clone()),
        documents: vec![],
    };
    let p = participants();
    let base = eid(&moving("hot1"), &p);
    assert_eq!(moving("hot1").name(), "move_key");
    assert_ne!(base, eid(&moving("hot2"), &p));
    let presign = SessionKind::Presign {
        key_id: "hot1".into(),
        path: vec![],
    };
    assert_ne!(base, eid(&presign, &p));
    assert_ne!(
        base,
        moving("hot1").execution_id(&ClusterId([7; 32]), &[6; 32], &[9; 32], &p)
    );
}

/// Whatever a relay changes in what it asks one node to run, that node's execution id
/// differs from the others'.
#[test]
fn every_part_of_a_session_changes_its_execution_id() {
    let p = participants();
    let presign = |key: &str, path: Vec<u32>| SessionKind::Presign {
        key_id: key.into(),
        path,
    };
    let create = |threshold: u16| SessionKind::CreateKey {
        request: Approved {
            request: CreateKey {
                v: 2,
                cluster: ClusterId([7; 32]),
                key_id: "hot1".into(),
                scheme: Scheme::EcdsaSecp256k1,
                threshold,
                policy: KeyPolicy {
                    approvers: vec![],
                    approvals_needed: 1,
                },
                request_id: ByteBuf::from(vec![1; 16]),
                created: 100,
                expiry: 200,
                admins: 0,
                roster: 0,
            },
            approvals: vec![],
        },
    };
    let mut reversed = p.clone();
    reversed.reverse();
    let mut other_identity = p.clone();
    other_identity[1].encryption[0] ^= 1;
    let mut other_signing = p.clone();
    other_signing[0].signing[31] ^= 1;
    let ids = [
        eid(&SessionKind::AuxInfo, &p),
        eid(&create(2), &p),
        eid(&create(3), &p),
        eid(&presign("hot1", vec![]), &p),
        eid(&presign("hot1", vec![1]), &p),
        eid(&presign("hot1", vec![2]), &p),
        eid(&presign("hot2", vec![1]), &p),
        eid(&presign("hot1", vec![1]), &reversed),
        eid(&presign("hot1", vec![1]), &p[..1]),
        eid(&presign("hot1", vec![1]), &other_identity),
        eid(&presign("hot1", vec![1]), &other_signing),
        eid(&sign(0, None), &p),
        eid(&sign(1, None), &p),
        eid(&sign(0, Some(b"pre-1")), &p),
        eid(&sign(0, Some(b"pre-2")), &p),
        // A presign whose key id is the sign request's, path the same.
        eid(&presign("hot1", vec![1]), &p),
    ];
    let distinct: std::collections::BTreeSet<_> = ids[..ids.len() - 1].iter().collect();
    assert_eq!(distinct.len(), ids.len() - 1, "{ids:x?}");
    assert_eq!(ids[4], ids[ids.len() - 1], "the same session, the same id");
    // And the cluster, the roster and the session id.
    let kind = presign("hot1", vec![1]);
    let base = kind.execution_id(&ClusterId([7; 32]), &[8; 32], &[9; 32], &p);
    assert_eq!(base, ids[4]);
    assert_ne!(
        base,
        kind.execution_id(&ClusterId([6; 32]), &[8; 32], &[9; 32], &p)
    );
    assert_ne!(
        base,
        kind.execution_id(&ClusterId([7; 32]), &[6; 32], &[9; 32], &p)
    );
    assert_ne!(
        base,
        kind.execution_id(&ClusterId([7; 32]), &[8; 32], &[6; 32], &p)
    );
}

#[test]
fn session_ids_carry_their_expiry_and_sort_by_it() {
    let a = session_id_expiring(1_700_000_000, &[0xff; 24]);
    let b = session_id_expiring(1_700_000_001, &[0; 24]);
    assert_eq!(session_id_expiry(&a), 1_700_000_000);
    assert_eq!(session_id_expiry(&b), 1_700_000_001);
    assert_eq!(&a[8..], &[0xff; 24]);
    assert!(
        a < b,
        "a later expiry sorts after, whatever the other bytes"
    );
}

const ALL: [FailureCode; 19] = [
    FailureCode::BadRequest,
    FailureCode::UnsupportedVersion,
    FailureCode::WrongPhase,
    FailureCode::Nsm,
    FailureCode::Refused,
    FailureCode::InProgress,
    FailureCode::Replayed,
    FailureCode::NotYet,
    FailureCode::Busy,
    FailureCode::Limit,
    FailureCode::Peer,
    FailureCode::Sealing,
    FailureCode::SealingUnavailable,
    FailureCode::Membership,
    FailureCode::Internal,
    FailureCode::Protocol,
    FailureCode::NoPresignature,
    FailureCode::Aborted,
    FailureCode::Unreachable,
];

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("in-memory cbor");
    out
}

/// The typed code encodes exactly as the string it replaced, so the wire bytes of a failed
/// outcome did not change; and every enclave error code maps to the failure of that name.
#[test]
fn failure_codes_encode_as_their_names() {
    for code in ALL {
        assert_eq!(cbor(&code), cbor(&code.as_str()), "{code}");
        let back: FailureCode =
            ciborium::from_reader(cbor(&code.as_str()).as_slice()).expect("decodes");
        assert_eq!(back, code);
    }
    let junk = cbor(&"no_such_code");
    assert!(ciborium::from_reader::<FailureCode, _>(junk.as_slice()).is_err());
    for e in [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::WrongPhase,
        ErrorCode::Nsm,
        ErrorCode::Refused,
        ErrorCode::InProgress,
        ErrorCode::Replayed,
        ErrorCode::NotYet,
        ErrorCode::Busy,
        ErrorCode::Limit,
        ErrorCode::Peer,
        ErrorCode::Sealing,
        ErrorCode::SealingUnavailable,
        ErrorCode::Membership,
        ErrorCode::Internal,
    ] {
        assert_eq!(FailureCode::from(e).as_str(), e.to_string());
    }
}
