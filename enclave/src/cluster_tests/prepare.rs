//! The prepare step's gate of a roster change (issue 20): every node of the new roster holds
//! one change under one chain before anything is reshared to it. The attacks, each written as
//! a test before the gate existed (attacker review helper-59, findings 2 and 3), refused by
//! name and changing nothing: a relay that gave the node to add a chain cut before an image
//! change (`chain_differs`, at the members and at that node alike); a statement left out
//! (`missing_statement`), one of a node key neither roster lists or named twice
//! (`stranger_statement`), one moved to another node's key or claiming another chain than the
//! one its node signed (`unproven_statement`: a relay cannot pin a chain on an honest node,
//! helper-60 finding 4); a step for another change than the one pending (`other_change`); the
//! node to add walked back by its parent to the blob of its first join, or to the blob it was
//! prepared with before the change was replaced (helper-60, finding 1: by its own record it is
//! prepared, for a change no member holds, and its word prepares no one). Prepared, every node
//! stays so across a restart; a replacing proposal leaves no member prepared, and the node to
//! add neither once it joins the replacement; a key reshared before the set is shown leaves a
//! member unprepared until its generation is retired; prepared, a member refuses to create or
//! reshare keys (`roster_change_prepared`). The roster in force signs throughout.

use ed25519_dalek::SigningKey;
use protocol::policy::{KeyPolicy, Scheme};
use protocol::roster::{
    ChangeRoster, HeldStatement, JoinCluster, PrepareRoster, chain_digest, roster_held_message,
    roster_prepared_message, statements_digest,
};
use protocol::session::SessionKind;
use protocol::{EnclaveRequest, EnclaveResponse, Phase};
use serde_bytes::ByteBuf;

use super::images::{NEW, applied};
use super::join::{entry_of, join, join_of, joined};
use super::reshare::verify_eddsa;
use super::roster::proposed;
use super::{Cluster, enroll, membership_refusal, signature_of};
use crate::server::Enclave;
use crate::testkit::{IMAGE, boot, node_arn, public_keys};

/// One node's answer to a prepare step: its statement as the others are shown it, and whether
/// it is prepared; the sealed blob, if any, is kept in `blobs[1]`.
pub(super) fn prepare(
    e: &Enclave,
    change: &ChangeRoster,
    statements: &[HeldStatement],
    blobs: &mut [ByteBuf],
) -> Result<(HeldStatement, bool), String> {
    let response = e.handle(EnclaveRequest::PrepareRoster {
        prepare: PrepareRoster {
            change: ByteBuf::from(change.hash().to_vec()),
            statements: statements.to_vec(),
            nonce: ByteBuf::from(NONCE.to_vec()),
        },
    });
    match response {
        EnclaveResponse::RosterPrepared {
            version,
            chain,
            statement,
            prepared,
            prepared_statement,
            sealed,
            ..
        } => {
            assert_eq!(version, change.new_version());
            // Sealed when it is prepared, and, when only asked, when it gives its word on another
            // change than one it vouched for (helper-70, finding 1).
            if !statements.is_empty() {
                assert_eq!(sealed.is_some(), prepared);
            }
            assert_eq!(prepared_statement.is_some(), prepared);
            if let Some(sealed) = sealed {
                blobs[1] = sealed;
            }
            let node_key = e.node_binding().expect("an enrolled node").node_key;
            if let (Some(signed), false) = (&prepared_statement, statements.is_empty()) {
                // Its own word, fresh: over the change, its chain, the set it sealed and the
                // nonce.
                let message = roster_prepared_message(
                    &change.cluster,
                    &node_key,
                    (version, &change.hash()),
                    &<[u8; 32]>::try_from(chain.as_slice()).unwrap(),
                    &statements_digest(statements),
                    &NONCE,
                );
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&node_key).unwrap();
                let sig = ed25519_dalek::Signature::from_slice(signed).unwrap();
                assert!(vk.verify_strict(&message, &sig).is_ok());
            }
            Ok((
                HeldStatement {
                    node_key: ByteBuf::from(node_key.to_vec()),
                    chain,
                    statement,
                },
                prepared,
            ))
        }
        refused => Err(membership_refusal(refused)),
    }
}

/// A 3-node cluster that accepted a second build proposes growing to 4; the node to add joins
/// on a chain cut before the image change, and no node is prepared until it holds the members'
/// chain. Then every forged, missing or stray statement is refused by name at every node;
/// shown every statement, each node is prepared, across restarts; a parent walking the node to
/// add back is caught; a replacing proposal leaves no node prepared. The roster in force signs
/// throughout.
/// The nonce every prepare step here gives.
const NONCE: [u8; 32] = [0x5a; 32];

#[test]
fn every_node_of_the_new_roster_holds_one_change_under_one_chain_before_it_is_prepared() {
    const KEY: &str = "through-a-prepare";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let sign = |c: &Cluster, message: &[u8]| {
        let out = c.sign(&[0, 1], c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };
    let cluster = c.genesis.request.cluster_id();

    // The admins accept a second build: image version 1, in every member's chain.
    let accept = c.accept_images_request(0, &[IMAGE, NEW], &[0, 1]);
    let out = c.accept_images(&accept);
    applied(&mut c, &out, &accept.request, 1);

    // A node to add, enrolled under its own KMS key; the members propose growing to 4.
    let newcomer = boot(&c.ca, 3, IMAGE);
    let (blob, newcomer_key) = enroll(&newcomer, &node_arn(3));
    let mut newcomer_blobs = vec![blob];
    let entry = entry_of(newcomer_key, 3);
    let grow = c.roster_request(0, c.grown(std::slice::from_ref(&entry)), &[0, 1]);
    let out = c.propose(&grow);
    proposed(&mut c, &out, &grow.request);

    // Finding 2: the relay hands the node to add the chain cut before the image change. The
    // join itself cannot tell (the member's statement covers the change, not the chain).
    let cut: JoinCluster = join_of(&c, &grow, &out, 0);
    assert!(cut.images.is_empty());
    joined(join(&newcomer, &cut), &mut newcomer_blobs);
    assert_eq!(newcomer.phase(), Phase::Joining);
    let walked_back = newcomer_blobs.clone();

    // Asked, every node answers its statement, and none is prepared; the node to add holds
    // another chain.
    let asked = |c: &Cluster, newcomer: &Enclave| asked_for(c, newcomer, &grow.request);
    let held = asked(&c, &newcomer);
    let full = chain_digest(&cluster, &[], std::slice::from_ref(&accept));
    for (i, s) in held.iter().enumerate() {
        let want = if i == 3 {
            chain_digest(&cluster, &[], &[])
        } else {
            full
        };
        assert_eq!(s.chain.as_slice(), want, "node {i}");
        let key: [u8; 32] = s.node_key.as_slice().try_into().unwrap();
        let message = roster_held_message(&cluster, &key, 1, &grow.request.hash(), &want);
        let listed = if i == 3 {
            &entry
        } else {
            &c.genesis.request.roster[i]
        };
        assert!(listed.signed(&message, &s.statement), "node {i}");
    }
    // Shown every statement, no node is prepared: each names the other chain.
    let newcomer_hex = hex::encode(newcomer_key);
    for (i, e) in c.enclaves.iter().enumerate() {
        let m = prepare(e, &grow.request, &held, &mut c.blobs[i].clone()).unwrap_err();
        assert!(
            m.starts_with("chain_differs") && m.contains(&newcomer_hex),
            "node {i}: {m}"
        );
    }
    let m = prepare(&newcomer, &grow.request, &held, &mut newcomer_blobs.clone()).unwrap_err();
    assert!(m.starts_with("chain_differs"), "{m}");
    sign(&c, b"the roster in force signs while the nodes disagree");

    // Joined again with the members' chain (the same change: answered again), the node to add
    // holds what the members hold.
    let mut whole = cut.clone();
    whole.images = vec![accept.clone()];
    joined(join(&newcomer, &whole), &mut newcomer_blobs);
    let held = asked(&c, &newcomer);
    assert!(held.iter().all(|s| s.chain.as_slice() == full));

    // Statements left out, added, moved or over another chain: refused by name at every node.
    let missing: Vec<HeldStatement> = held[..3].to_vec();
    let mut stranger = held.clone();
    stranger.push(HeldStatement {
        node_key: ByteBuf::from(vec![9; 32]),
        ..held[0].clone()
    });
    let mut twice = held.clone();
    twice.push(held[1].clone());
    let mut moved = held.clone();
    moved[3].statement = held[2].statement.clone();
    let mut other_chain = held.clone();
    other_chain[3].chain = ByteBuf::from(chain_digest(&cluster, &[], &[]).to_vec());
    for (name, shown, kind) in [
        ("missing", &missing, "missing_statement"),
        ("stranger", &stranger, "stranger_statement"),
        ("twice", &twice, "stranger_statement"),
        ("moved", &moved, "unproven_statement"),
        ("other chain", &other_chain, "unproven_statement"),
    ] {
        for e in c.enclaves.iter().map(|e| &**e).chain([&*newcomer]) {
            let m = prepare(e, &grow.request, shown, &mut vec![ByteBuf::new(); 2]).unwrap_err();
            assert!(m.starts_with(kind), "{name}: {m}");
        }
    }
    // A nonce longer than a prepare step takes: a bad request, changing nothing.
    match c.enclaves[0].handle(EnclaveRequest::PrepareRoster {
        prepare: PrepareRoster {
            change: ByteBuf::from(grow.request.hash().to_vec()),
            statements: held.clone(),
            nonce: ByteBuf::from(vec![0; protocol::roster::MAX_PREPARE_NONCE + 1]),
        },
    }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, protocol::ErrorCode::BadRequest, "{e}"),
        other => panic!("{other:?}"),
    }
    // A step for another change (one the admins approved but no node holds).
    let other = c.roster_request(0, c.grown(&[entry_of([5; 32], 3)]), &[0, 2]);
    let m = prepare(
        &c.enclaves[0],
        &other.request,
        &held,
        &mut vec![ByteBuf::new(); 2],
    )
    .unwrap_err();
    assert!(m.starts_with("other_change"), "{m}");
    // None of it prepared a node.
    asked(&c, &newcomer);

    // Shown every statement, each node is prepared, and says so when asked again.
    for (i, e) in c.enclaves.iter().enumerate() {
        let (_, prepared) = prepare(e, &grow.request, &held, &mut c.blobs[i]).unwrap();
        assert!(prepared, "node {i}");
    }
    let (_, prepared) = prepare(&newcomer, &grow.request, &held, &mut newcomer_blobs).unwrap();
    assert!(prepared);
    assert!(
        statements_with_flags(&c, &newcomer, &grow.request)
            .iter()
            .all(|(_, p)| *p)
    );
    sign(
        &c,
        b"the roster in force signs while the new one is prepared",
    );

    // Restarted from their blobs, a member and the node to add are still prepared.
    c.restart_on(0, IMAGE).unwrap();
    let newcomer = restarted(&c, &newcomer_blobs);
    assert!(
        statements_with_flags(&c, &newcomer, &grow.request)
            .iter()
            .all(|(_, p)| *p)
    );
    sign(&c, b"after the restarts");

    // Finding 3: its parent walks the node to add back to the blob of its first join. It is
    // not prepared, and shown the statements it refuses: the chain is not the members'.
    let back = restarted(&c, &walked_back);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let (s, prepared) = prepare(&back, &grow.request, &[], &mut none).unwrap();
    assert!(!prepared);
    assert_ne!(s.chain.as_slice(), full);
    let m = prepare(&back, &grow.request, &held, &mut none).unwrap_err();
    assert!(m.starts_with("chain_differs"), "{m}");
    // Its parent keeps the prepared blob too.
    let prepared_blobs = newcomer_blobs.clone();

    // The admins replace the change with one created later: no member is prepared for it,
    // and the prepared one is another change now.
    c.clocks_ahead(10);
    let replaced = c.roster_request(0, c.grown(std::slice::from_ref(&entry)), &[1, 2]);
    let out = c.propose(&replaced);
    proposed(&mut c, &out, &replaced.request);
    for (i, e) in c.enclaves.iter().enumerate() {
        let m = prepare(e, &grow.request, &[], &mut none).unwrap_err();
        assert!(m.starts_with("other_change"), "node {i}: {m}");
        let (_, prepared) = prepare(e, &replaced.request, &[], &mut none).unwrap();
        assert!(!prepared, "node {i}");
    }
    // The node to add learns of the replacement only by joining it (it applies no change
    // itself): until then it holds `grow`, prepared by its own record, which no member holds.
    let (_, prepared) = prepare(&newcomer, &grow.request, &[], &mut none).unwrap();
    assert!(prepared);
    let mut rejoin = join_of(&c, &replaced, &out, 0);
    rejoin.images = vec![accept.clone()];
    joined(join(&newcomer, &rejoin), &mut newcomer_blobs);
    let (_, prepared) = prepare(&newcomer, &replaced.request, &[], &mut none).unwrap();
    assert!(!prepared, "a join seals no prepared record");
    let held = asked_for(&c, &newcomer, &replaced.request);

    // Finding 1 of helper-60: its parent walks it back to the blob it was prepared with. By
    // its own record it is prepared again, for `grow`; but its word is over a change no member
    // holds: put in the set for `replaced` under its node key, every member refuses it.
    let back = restarted(&c, &prepared_blobs);
    let (stale, prepared) = prepare(&back, &grow.request, &[], &mut none).unwrap();
    assert!(prepared);
    let m = prepare(&back, &replaced.request, &[], &mut none).unwrap_err();
    assert!(m.starts_with("other_change"), "{m}");
    let mut with_stale = held.clone();
    with_stale[3] = stale;
    for (i, e) in c.enclaves.iter().enumerate() {
        let m = prepare(e, &replaced.request, &with_stale, &mut none).unwrap_err();
        assert!(m.starts_with("unproven_statement"), "node {i}: {m}");
    }
    // A key reshared before the set is shown (helper-60, finding 2): a member holding a pending
    // generation is not prepared and vouches for nothing (every key is reshared to the new
    // roster from one generation) until the generation is retired.
    let refresh = c.reshare_request(KEY, 0, 2, &[0, 1], &[0, 1]);
    let reshared = c.reshare(refresh, Scheme::EddsaEd25519, &pk);
    for (i, e) in c.enclaves.iter().enumerate() {
        let m = prepare(e, &replaced.request, &held, &mut none).unwrap_err();
        assert!(m.starts_with("pending_generation"), "node {i}: {m}");
    }
    c.retire_all(KEY, &reshared);

    // A key creation running when the set is shown would end after the gate and change the
    // keys of a prepared node (helper-63, finding 1): the step waits for it (`in_progress`),
    // sealing nothing, until it ends (here the relay aborts it).
    let running = crate::testkit::session_id_ahead(c.ahead.get());
    let create = c.create_key_request("across-the-gate", Scheme::EddsaEd25519, 2);
    for e in &c.enclaves {
        let started = e.handle(EnclaveRequest::StartSession {
            session: running.clone(),
            participants: vec![0, 1, 2],
            kind: SessionKind::CreateKey {
                request: create.clone(),
            },
        });
        assert!(
            matches!(started, EnclaveResponse::Session(_)),
            "{started:?}"
        );
    }
    for (i, e) in c.enclaves.iter().enumerate() {
        let refused = e.handle(EnclaveRequest::PrepareRoster {
            prepare: PrepareRoster {
                change: ByteBuf::from(replaced.request.hash().to_vec()),
                statements: held.clone(),
                nonce: ByteBuf::from(NONCE.to_vec()),
            },
        });
        assert!(
            matches!(&refused, EnclaveResponse::Error(e) if e.code == protocol::ErrorCode::InProgress),
            "node {i}: {refused:?}"
        );
        e.handle(EnclaveRequest::AbortSession {
            session: running.clone(),
        });
    }

    // Shown the genuine set, every node is prepared for `replaced`.
    for (i, e) in c.enclaves.iter().enumerate() {
        assert!(
            prepare(e, &replaced.request, &held, &mut c.blobs[i])
                .unwrap()
                .1
        );
    }
    assert!(
        prepare(&newcomer, &replaced.request, &held, &mut newcomer_blobs)
            .unwrap()
            .1
    );

    // Prepared, the cluster's keys stay as they are until the change is committed or withdrawn
    // (helper-62, finding 4): a resharing and a new key are refused by every member, naming
    // the change's version, and the members stay prepared.
    let again = c.reshare_request(KEY, 1, 2, &[0, 1], &[0, 1]);
    let create = c.create_key_request("after-the-gate", Scheme::EddsaEd25519, 2);
    for (i, e) in c.enclaves.iter().enumerate() {
        for kind in [
            SessionKind::ReshareKey {
                request: again.clone(),
            },
            SessionKind::CreateKey {
                request: create.clone(),
            },
        ] {
            let m = membership_refusal(e.handle(EnclaveRequest::StartSession {
                session: crate::testkit::session_id_ahead(c.ahead.get()),
                participants: vec![0, 1, 2],
                kind,
            }));
            assert!(
                m.starts_with("roster_change_prepared") && m.contains("version 1"),
                "node {i}: {m}"
            );
        }
        let (_, prepared) = prepare(e, &replaced.request, &[], &mut none).unwrap();
        assert!(prepared, "node {i}");
    }
    sign(&c, b"the roster in force still signs");
}

/// Every node's statement over `change`, none prepared yet.
pub(super) fn asked_for(
    c: &Cluster,
    newcomer: &Enclave,
    change: &ChangeRoster,
) -> Vec<HeldStatement> {
    statements_with_flags(c, newcomer, change)
        .into_iter()
        .map(|(s, prepared)| {
            assert!(!prepared);
            s
        })
        .collect()
}

/// Every node's statement and whether it is prepared, asked with none shown.
fn statements_with_flags(
    c: &Cluster,
    newcomer: &Enclave,
    change: &ChangeRoster,
) -> Vec<(HeldStatement, bool)> {
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    c.enclaves
        .iter()
        .map(|e| &**e)
        .chain([newcomer])
        .map(|e| prepare(e, change, &[], &mut none).unwrap())
        .collect()
}

/// The node to add restarted from `blobs`.
pub(super) fn restarted(c: &Cluster, blobs: &[ByteBuf]) -> std::sync::Arc<Enclave> {
    let fresh = boot(&c.ca, 3, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: blobs.to_vec(),
    }) {
        EnclaveResponse::Restored { keys, .. } => assert!(keys.is_empty()),
        other => panic!("restore: {other:?}"),
    }
    assert_eq!(fresh.phase(), Phase::Joining);
    fresh
}

/// Attacker review helper-62, finding 3: a key whose policy is void at the members (a policy
/// change disowned and abandoned everywhere) stops the prepare step: a node joining would be
/// told a policy that approves nothing there. Once the admins set the key's policy again, the
/// members vouch for the change.
#[test]
fn a_key_whose_policy_is_void_stops_the_prepare_step() {
    const KEY: &str = "void-before-a-change";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let policy = KeyPolicy {
        approvers: public_keys(&[SigningKey::from_bytes(&[34; 32])]),
        approvals_needed: 1,
    };
    let change = c.policy_change(KEY, 0, policy.clone());
    let failed = c.reshare(change.clone(), Scheme::EddsaEd25519, &pk);
    c.disown_and_abandon(KEY, 1, change, &failed.request);

    let newcomer = boot(&c.ca, 3, IMAGE);
    let (_, newcomer_key) = enroll(&newcomer, &node_arn(3));
    let grow = c.roster_request(0, c.grown(&[entry_of(newcomer_key, 3)]), &[0, 1]);
    let out = c.propose(&grow);
    proposed(&mut c, &out, &grow.request);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    for (i, e) in c.enclaves.iter().enumerate() {
        let m = prepare(e, &grow.request, &[], &mut none).unwrap_err();
        assert!(
            m.starts_with("void_policy") && m.contains(KEY),
            "node {i}: {m}"
        );
    }

    // The admins set the key's policy: every member vouches for the change again.
    let again = c.policy_change(KEY, 0, policy);
    let gen1 = c.reshare(again, Scheme::EddsaEd25519, &pk);
    c.retire_all(KEY, &gen1);
    for (i, e) in c.enclaves.iter().enumerate() {
        let (_, prepared) = prepare(e, &grow.request, &[], &mut none).unwrap();
        assert!(!prepared, "node {i}: asked, not yet shown the set");
    }
}
