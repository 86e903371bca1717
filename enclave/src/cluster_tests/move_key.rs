//! A key's move to the pending roster (issue 20, membership step 3): a 3-node cluster grows to
//! 4, and its EdDSA key's shares are dealt to the four nodes of the new roster, the node
//! joining included, while the roster in force signs throughout. The attacks, each written
//! before the session existed and refused by name or ending with nothing kept anywhere: a move
//! at nodes not prepared (`not_prepared`); holders told other facts of the key
//! (`key_info_differs`); the joining node alone told another policy (every party confirms,
//! none keeps anything: the confirmed digest covers the key's facts); the joining node given
//! public shares that are not the key's (refused at its start); a stranger's document in a
//! party's place, an enclave of the public image with a node key of its own (`party_refused`
//! at every other party). The node joining, restarted from its blobs, keeps its incoming
//! share.

use std::sync::Arc;

use protocol::policy::{KeyPolicy, Scheme};
use protocol::roster::transfer::{KEY_INFO_VERSION, KeyInfo, key_moved_message};
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, Phase};
use reshare::generic_ec::curves::Ed25519;
use reshare::generic_ec::{Point, Scalar};
use serde_bytes::ByteBuf;

use super::images::NEW;
use super::join::{Joining, join, join_of, join_one_more, joined};
use super::prepare::{asked_for, prepare, restarted};
use super::reshare::verify_eddsa;
use super::roster::proposed;
use super::{Cluster, enroll, signature_of};
use crate::mpc::eddsa::SecretEddsaShare;
use crate::seal::{self, BlobKind, LocalSealingAuthority};
use crate::server::Enclave;
use crate::testkit::{IMAGE, MASTER, boot, document, node_arn, run_session_as, session_id_ahead};

/// A key record as the test reads it.
#[derive(serde::Deserialize)]
struct Record {
    share: ByteBuf,
    generation: u32,
    request: Option<ByteBuf>,
    policy: KeyPolicy,
    current: bool,
    #[serde(default)]
    incoming: Option<serde::de::IgnoredAny>,
}

fn open(blob: &[u8], key_id: &str) -> (Record, SecretEddsaShare) {
    let authority = LocalSealingAuthority::new(&MASTER, &IMAGE);
    let (_, plain) = seal::unseal(&authority, blob, BlobKind::EddsaShare, Some(key_id)).unwrap();
    let record: Record = ciborium::from_reader(plain.as_slice()).unwrap();
    let share = SecretEddsaShare::from_bytes(&record.share).unwrap();
    (record, share)
}

/// The facts of `key_id` as its holders state them, read from a holder's sealed share.
pub(super) fn facts(blob: &[u8], key_id: &str, public_key: &[u8]) -> KeyInfo {
    let (record, share) = open(blob, key_id);
    KeyInfo {
        v: KEY_INFO_VERSION,
        key_id: key_id.into(),
        scheme: Scheme::EddsaEd25519,
        generation: 0,
        threshold: share.threshold(),
        public_key: ByteBuf::from(public_key.to_vec()),
        chain_code: None,
        public_shares: share
            .held()
            .unwrap()
            .public_shares
            .iter()
            .map(|p| ByteBuf::from(p.to_bytes(true).as_ref().to_vec()))
            .collect(),
        request: record.request.unwrap(),
        policy_version: 0,
        policy: record.policy,
        refresh_every: 0,
    }
}

/// The key from two shares at indices `i` and `j` (evaluation points `i + 1`, `j + 1`).
fn interpolate((i, si): (u16, Scalar<Ed25519>), (j, sj): (u16, Scalar<Ed25519>)) -> Vec<u8> {
    let (xi, xj) = (
        Scalar::<Ed25519>::from(u64::from(i) + 1),
        Scalar::<Ed25519>::from(u64::from(j) + 1),
    );
    let li = xj * (xj - xi).invert().unwrap();
    let lj = xi * (xi - xj).invert().unwrap();
    let secret = si * li + sj * lj;
    (Point::<Ed25519>::generator() * secret)
        .to_bytes(true)
        .as_ref()
        .to_vec()
}

fn moving(info: &KeyInfo, documents: Vec<ByteBuf>) -> SessionKind {
    SessionKind::MoveKey {
        key_id: info.key_id.clone(),
        generation: info.generation,
        dealers: vec![0, 1],
        key: Box::new(info.clone()),
        documents,
    }
}

/// The relay's abort of `session` at every party.
pub(super) fn abort(parties: &[Arc<Enclave>], session: &ByteBuf) {
    for e in parties {
        e.handle(EnclaveRequest::AbortSession {
            session: session.clone(),
        });
    }
}

/// Every party's failure message, asserting there is no other outcome.
pub(super) fn failures(out: &std::collections::BTreeMap<u16, Outcome>) -> Vec<(u16, String)> {
    out.iter()
        .map(|(p, o)| match o {
            Outcome::Failed { message, .. } => (*p, message.clone()),
            other => panic!("party {p}: {other:?}"),
        })
        .collect()
}

#[test]
fn an_eddsa_key_moves_to_a_grown_roster_and_no_lie_to_the_joining_node_is_kept() {
    const KEY: &str = "moving-to-four";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);
    // What a coordinator tells the node joining: the facts a holder's signed inventory states,
    // the same as its sealed record's.
    match c.enclaves[2].handle(EnclaveRequest::Inventory {
        nonce: ByteBuf::from(vec![7; 16]),
        after: None,
    }) {
        protocol::EnclaveResponse::Inventory { report, .. } => {
            assert_eq!(report.keys[0].key_info(), Some(info.clone()));
        }
        other => panic!("{other:?}"),
    }
    let cluster = c.genesis.request.cluster_id();
    let sign = |c: &Cluster, message: &[u8]| {
        let out = c.sign(&[0, 1], c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };

    // A node to add, enrolled, joins the members' proposal to grow to 4.
    let Joining {
        newcomer,
        blobs: mut newcomer_blobs,
        grow,
        ..
    } = join_one_more(&mut c);
    let held = asked_for(&c, &newcomer, &grow.request);

    let parties: Vec<Arc<Enclave>> = c
        .enclaves
        .iter()
        .cloned()
        .chain([newcomer.clone()])
        .collect();
    let documents = |parties: &[Arc<Enclave>]| -> Vec<ByteBuf> {
        parties.iter().map(|e| document(e)).collect()
    };
    let all = [0u16, 1, 2, 3];
    // A run, then the session aborted everywhere, as the coordinator ends a failed one (a
    // party whose peers refused at the start would otherwise hold the key for the idle limit).
    let run = |c: &Cluster, parties: &[Arc<Enclave>], kind_at: &dyn Fn(u16) -> SessionKind| {
        let session = session_id_ahead(c.ahead.get());
        let out = run_session_as(parties, session.clone(), &all, kind_at, |_, _| {});
        abort(parties, &session);
        out
    };

    // Not prepared yet: every party refuses, naming the version.
    let docs = documents(&parties);
    let out = run(&c, &parties, &|_| moving(&info, docs.clone()));
    let refused = failures(&out);
    assert_eq!(refused.len(), 4);
    for (p, m) in refused {
        assert!(
            m.starts_with("not_prepared") && m.contains("version 1"),
            "party {p}: {m}"
        );
    }

    // Every node of the new roster prepared.
    for (i, e) in c.enclaves.iter().enumerate() {
        assert!(prepare(e, &grow.request, &held, &mut c.blobs[i]).unwrap().1);
    }
    assert!(
        prepare(&newcomer, &grow.request, &held, &mut newcomer_blobs)
            .unwrap()
            .1
    );
    sign(&c, b"prepared, the roster in force signs");

    // The holders told another policy refuse by name; the joining node cannot tell, and is
    // left with no one to confirm.
    let mut lie = info.clone();
    lie.policy.approvals_needed = 1;
    lie.policy.approvers.truncate(1);
    let docs = documents(&parties);
    let out = run(&c, &parties, &|_| moving(&lie, docs.clone()));
    for p in 0..3u16 {
        match &out[&p] {
            Outcome::Failed { message, .. } => {
                assert!(message.starts_with("key_info_differs"), "{message}")
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    assert!(!out.values().any(|o| matches!(o, Outcome::KeyMoved { .. })));

    // The joining node alone told another policy: its execution id is not the holders', so
    // it fails at the first envelope (signed under theirs), the holders wait for a party that
    // never confirms, and no party keeps anything.
    let docs = documents(&parties);
    let out = run(&c, &parties, &|p| {
        moving(if p == 3 { &lie } else { &info }, docs.clone())
    });
    assert!(
        matches!(out.get(&3), Some(Outcome::Failed { .. })),
        "{out:?}"
    );
    assert!(!out.values().any(|o| matches!(o, Outcome::KeyMoved { .. })));

    // The joining node given public shares that are not the key's: refused at its start.
    let mut swapped = info.clone();
    swapped.public_shares.swap(0, 1);
    let docs = documents(&parties);
    let out = run(&c, &parties, &|p| {
        moving(if p == 3 { &swapped } else { &info }, docs.clone())
    });
    match &out[&3] {
        Outcome::Failed { message, .. } => {
            assert!(message.contains("public shares as given"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!out.values().any(|o| matches!(o, Outcome::KeyMoved { .. })));

    // A stranger of the public image, with a node key of its own, in the joining node's
    // place; two members' documents swapped; one member's document in another's place: each
    // party that checks the document refuses it, naming the party.
    let stranger = boot(&c.ca, 4, IMAGE);
    enroll(&stranger, &node_arn(4));
    let honest = documents(&parties);
    let mut strange = honest.clone();
    strange[3] = document(&stranger);
    let mut swapped_docs = honest.clone();
    swapped_docs.swap(1, 2);
    let mut twice = honest.clone();
    twice[2] = honest[1].clone();
    for (name, docs, checkers, party) in [
        ("stranger", &strange, &[0u16, 1, 2][..], 3u16),
        ("swapped", &swapped_docs, &[0, 3][..], 1),
        ("twice", &twice, &[0, 1, 3][..], 2),
    ] {
        let out = run(&c, &parties, &|_| moving(&info, docs.clone()));
        for p in checkers {
            // Every checker names the first party whose document is wrong.
            match &out[p] {
                Outcome::Failed { message, .. } => assert!(
                    message.starts_with(&format!("party_refused: party {party}'s document")),
                    "{name}, party {p}: {message}"
                ),
                other => panic!("{name}, party {p}: {other:?}"),
            }
        }
        assert!(
            !out.values().any(|o| matches!(o, Outcome::KeyMoved { .. })),
            "{name}"
        );
    }

    // An image change lands while a move runs (the members apply it; the node joining learns
    // of it only by joining again): no member is prepared under the chain it started with
    // any longer, so none seals anything. The change is withdrawn-proof: it is checked again
    // before sealing, not only at the start.
    let accept = c.accept_images_request(0, &[IMAGE, NEW], &[0, 1]);
    let landed = std::cell::Cell::new(false);
    let docs = documents(&parties);
    let session = session_id_ahead(c.ahead.get());
    let out = run_session_as(
        &parties,
        session.clone(),
        &all,
        |_| moving(&info, docs.clone()),
        |_, _| {
            if !landed.replace(true) {
                let out = c.accept_images(&accept);
                assert!(
                    out.values()
                        .all(|o| matches!(o, Outcome::ImagesAccepted { .. })),
                    "{out:?}"
                );
            }
        },
    );
    assert!(landed.get());
    abort(&parties, &session);
    // The node joining applies no image change itself: it sealed its share under the old
    // chain, which the next prepare step drops.
    assert!(
        matches!(out.get(&3), Some(Outcome::KeyMoved { .. })),
        "{:?}",
        out.get(&3)
    );
    assert_eq!(newcomer.incoming_for_test().len(), 1);
    for p in 0..3u16 {
        assert!(
            !matches!(out.get(&p), Some(Outcome::KeyMoved { .. })),
            "member {p}: {:?}",
            out.get(&p)
        );
    }
    // The members are prepared again under the new chain, once the node joining holds it too.
    let out = c.propose(&grow);
    let mut rejoin = join_of(&c, &grow, &out, 0);
    rejoin.images = vec![accept.clone()];
    joined(join(&newcomer, &rejoin), &mut newcomer_blobs);
    let held = asked_for(&c, &newcomer, &grow.request);
    for (i, e) in c.enclaves.iter().enumerate() {
        assert!(prepare(e, &grow.request, &held, &mut c.blobs[i]).unwrap().1);
    }
    assert!(
        prepare(&newcomer, &grow.request, &held, &mut newcomer_blobs)
            .unwrap()
            .1
    );
    // What the node joining kept under the old chain no longer holds: dropped.
    assert!(newcomer.incoming_for_test().is_empty());

    // The move: every party of the new roster seals its share at its new index, under one
    // confirmed digest, and any two of them make the key.
    let docs = documents(&parties);
    let out = run(&c, &parties, &|_| moving(&info, docs.clone()));
    let mut confirmed_by = std::collections::BTreeSet::new();
    let mut shares = Vec::new();
    for (p, o) in &out {
        let Outcome::KeyMoved {
            key_id,
            generation,
            version,
            index,
            confirmed,
            key,
            sealed: Some(sealed),
            statement: Some(statement),
        } = o
        else {
            panic!("party {p}: {o:?}");
        };
        assert_eq!((key_id.as_str(), *generation, *version), (KEY, 0, 1));
        assert_eq!(*index, Some(*p));
        assert_eq!(key.as_slice(), info.digest());
        confirmed_by.insert(confirmed.to_vec());
        // Its node key's word on what it sealed, under the entry the new roster lists.
        let entry = &grow.request.roster[usize::from(*p)];
        let message = key_moved_message(
            &cluster,
            &<[u8; 32]>::try_from(entry.node_key.as_slice()).unwrap(),
            (1, &grow.request.hash()),
            (KEY, 0),
            *p,
            &<[u8; 32]>::try_from(confirmed.as_slice()).unwrap(),
            &info.digest(),
        );
        assert!(entry.signed(&message, statement), "party {p}");
        let (record, share) = open(sealed, KEY);
        assert!(!record.current && record.incoming.is_some());
        assert_eq!(record.generation, 1, "sealed as the generation after");
        assert_eq!(share.index(), *p);
        assert_eq!(share.public_key().to_vec(), pk);
        let secret = *share.held().unwrap().secret.as_ref();
        shares.push((*p, secret));
        if *p == 3 {
            newcomer_blobs.push(sealed.clone());
        }
    }
    assert_eq!(shares.len(), 4);
    assert_eq!(confirmed_by.len(), 1);
    for a in 0..4 {
        for b in a + 1..4 {
            assert_eq!(interpolate(shares[a], shares[b]), pk, "shares {a} and {b}");
        }
    }
    sign(
        &c,
        b"moved, the roster in force still signs until the commit",
    );

    // Restarted from its blobs, the joining node is still joining and holds no key but its
    // incoming share, at its index, under the digest every party confirmed.
    let confirmed: String = confirmed_by
        .first()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let again = restarted(&c, &newcomer_blobs);
    assert_eq!(again.phase(), Phase::Joining);
    assert_eq!(
        again.incoming_for_test(),
        vec![(3, format!("{KEY} {confirmed}"))]
    );
    // A member's parent that keeps its incoming blob across a withdrawal: restored, the
    // member holds none (the change it names is no longer pending).
    let Some(Outcome::KeyMoved {
        sealed: Some(kept), ..
    }) = out.get(&1)
    else {
        panic!("{:?}", out.get(&1))
    };
    let kept = kept.clone();
    assert_eq!(c.enclaves[1].incoming_for_test().len(), 1);
    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let out = c.propose(&withdraw);
    proposed(&mut c, &out, &withdraw.request);
    c.restart(1, std::slice::from_ref(&kept));
    assert!(c.enclaves[1].incoming_for_test().is_empty());
    sign(&c, b"withdrawn, the roster in force signs on");
}

/// A node leaving deals its share and keeps nothing of the next generation; the two nodes
/// left hold the key at their indices in the smaller roster.
#[test]
fn a_node_leaving_deals_keeps_nothing_and_the_nodes_left_hold_the_key() {
    const KEY: &str = "moving-to-two";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);
    shrink_prepared(&mut c, 3);
    // Parties: the new roster's nodes 0 and 1, then node 2, leaving; nodes 1 and 2 deal.
    let docs: Vec<ByteBuf> = c.enclaves.iter().map(|e| document(e)).collect();
    let out = run_session_as(
        &c.enclaves,
        session_id_ahead(c.ahead.get()),
        &[0, 1, 2],
        |_| SessionKind::MoveKey {
            key_id: KEY.into(),
            generation: 0,
            dealers: vec![1, 2],
            key: Box::new(info.clone()),
            documents: docs.clone(),
        },
        |_, _| {},
    );
    let shares = shares_of(&out, KEY, &[2]);
    assert_eq!(out.len(), 3);
    assert_eq!(interpolate(shares[0], shares[1]), pk);
}

/// Shrinks `c` (3 nodes) to its first two, proposed at every node and prepared at the first
/// `prepared` (node 2 not, when it is gone).
fn shrink_prepared(c: &mut Cluster, prepared: usize) {
    let shrink = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&shrink);
    proposed(c, &out, &shrink.request);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let held: Vec<_> = c.enclaves[..prepared]
        .iter()
        .map(|e| prepare(e, &shrink.request, &[], &mut none).unwrap().0)
        .collect();
    for (i, e) in c.enclaves[..prepared].iter().enumerate() {
        assert!(
            prepare(e, &shrink.request, &held, &mut c.blobs[i])
                .unwrap()
                .1
        );
    }
}

/// Each receiver's share of `key` in a move's outcomes `out`, by party, opened from its sealed
/// blob; the parties `leaving` received nothing.
fn shares_of(
    out: &std::collections::BTreeMap<u16, Outcome>,
    key: &str,
    leaving: &[u16],
) -> Vec<(u16, Scalar<Ed25519>)> {
    let mut shares = Vec::new();
    for (p, o) in out {
        match o {
            Outcome::KeyMoved {
                index: None,
                sealed: None,
                statement: None,
                ..
            } if leaving.contains(p) => {}
            Outcome::KeyMoved {
                index: Some(i),
                sealed: Some(sealed),
                ..
            } if *i == *p => {
                let (_, share) = open(sealed, key);
                shares.push((*p, *share.held().unwrap().secret.as_ref()));
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    shares
}

/// A node leaving that does not deal takes no part in the move, so a node lost for good is
/// removed or replaced without it: the session is exactly the new roster's nodes and the
/// dealers, in party order. Named beside them, or with a receiver left out, the session is
/// refused by every party asked and keeps nothing; without it, nodes 0 and 1 deal and hold the
/// key, and node 2 is never asked.
#[test]
fn a_node_leaving_without_dealing_takes_no_part_and_the_move_without_it_holds_the_key() {
    const KEY: &str = "moving-without-2";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);
    shrink_prepared(&mut c, 2);
    let run = |participants: &[u16]| {
        let documents: Vec<ByteBuf> = participants
            .iter()
            .map(|p| document(&c.enclaves[usize::from(*p)]))
            .collect();
        let session = session_id_ahead(c.ahead.get());
        let out = run_session_as(
            &c.enclaves,
            session.clone(),
            participants,
            |_| SessionKind::MoveKey {
                key_id: KEY.into(),
                generation: 0,
                dealers: vec![0, 1],
                key: Box::new(info.clone()),
                documents: documents.clone(),
            },
            |_, _| {},
        );
        abort(&c.enclaves, &session);
        out
    };
    for participants in [&[0u16, 1, 2][..], &[0][..], &[1, 0][..]] {
        let out = run(participants);
        assert_eq!(out.len(), participants.len());
        for (p, o) in &out {
            match o {
                // Node 2, not prepared (it is gone), refuses before it reads the session.
                Outcome::Failed { .. } if *p == 2 => {}
                Outcome::Failed { message, .. } => assert!(
                    message.contains("involves the new roster's nodes and the dealers"),
                    "party {p}: {message}"
                ),
                other => panic!("party {p}: {other:?}"),
            }
        }
    }
    for e in &c.enclaves {
        assert!(e.incoming_for_test().is_empty());
    }
    let out = run(&[0, 1]);
    let shares = shares_of(&out, KEY, &[]);
    assert_eq!(out.len(), 2);
    assert_eq!(interpolate(shares[0], shares[1]), pk);
    assert!(c.enclaves[2].incoming_for_test().is_empty());
}
