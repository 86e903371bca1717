//! An ECDSA key's move to a new roster (issue 20): the new party set's auxiliary information
//! is made first ([`SessionKind::MoveAux`]), each ECDSA share dealt to the new roster is
//! completed with it, and every node's statement at the commit names it with the keys. The
//! attacks, written before the step existed: an ECDSA key moved, or a node vouching, before the
//! new party set's auxiliary information (`aux_not_moved`); a later run of it leaving a share
//! completed with the earlier one in the set (it no longer holds: the key moves again); a
//! restore handed the replaced party set's auxiliary information (ignored).

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::policy::Scheme;
use protocol::roster::commit::KeysHeldStatement;
use protocol::roster::transfer::KeyInfo;
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::commit::{
    Answer, commit, commit_after, move_key, prepare_grown, run_in_change, run_move, set_statement,
    vouch,
};
use super::join::join_one_more;
use super::move_key::failures;
use super::{Cluster, signature_of, verify_ecdsa};
use crate::node::TestHook;
use crate::server::Enclave;
use crate::testkit::admit_all;

const KEY: &str = "moved-ecdsa";

/// The new party set's auxiliary information made at every party, each given its committed
/// primes again first: each party's sealed blob, and the one digest of the run.
fn move_aux(c: &Cluster, parties: &[Arc<Enclave>]) -> (BTreeMap<u16, ByteBuf>, ByteBuf) {
    for (i, e) in parties.iter().enumerate() {
        e.test_hook(TestHook::FixturePrimes(i));
    }
    let mut blobs = BTreeMap::new();
    let mut digests = Vec::new();
    for (p, o) in run_in_change(c, parties, |documents| SessionKind::MoveAux { documents }) {
        match o {
            Outcome::AuxMoved {
                version,
                index,
                aux,
                sealed,
            } => {
                assert_eq!((version, index), (1, p));
                digests.push(aux);
                blobs.insert(p, sealed);
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    (blobs, digests.remove(0))
}

/// `key_id`'s facts as node 0's signed inventory states them (what the coordinator gives a
/// joining node).
fn key_info(c: &Cluster, key_id: &str) -> KeyInfo {
    let (report, _) = c.inventory(0, &[5; 32], None).unwrap();
    report
        .keys
        .iter()
        .find(|k| k.receipt.key_id == key_id)
        .and_then(protocol::inventory::HeldKey::key_info)
        .expect("the key's facts")
}

/// Whether node `node`, restored in a fresh enclave from its blobs and `extra`, loads
/// auxiliary information as the roster in force's (its key always loads).
fn restored_aux(c: &Cluster, node: usize, extra: &[ByteBuf]) -> bool {
    let fresh = crate::testkit::boot(&c.ca, node, crate::testkit::IMAGE);
    let mut blobs = c.blobs[node].clone();
    blobs.extend_from_slice(extra);
    match fresh.handle(EnclaveRequest::Restore { blobs }) {
        EnclaveResponse::Restored { keys, aux, .. } => {
            assert_eq!(keys, vec![KEY.to_string()]);
            aux
        }
        other => panic!("restore: {other:?}"),
    }
}

fn signs(c: &Cluster, pk: &[u8], signers: &[u16], digest: [u8; 32]) {
    let out = c.sign(signers, c.sign_request(KEY, vec![], digest.to_vec()), None);
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, pk);
    verify_ecdsa(pk, &digest, &sig);
}

/// A 3-node cluster with a 2-of-3 ECDSA key grows to 4: the new party set's auxiliary
/// information is made, the key moves, every node commits on one digest naming both, and the
/// grown roster signs with the node that joined under the same public key, also after
/// restarts, where the replaced party set's auxiliary information is ignored.
#[test]
fn an_ecdsa_key_moves_to_a_grown_roster_with_the_new_party_set_s_auxiliary_information() {
    let mut c = Cluster::new(3);
    for (node, o) in c.run(&[0, 1, 2], SessionKind::AuxInfo, |_, _| {}) {
        match o {
            Outcome::AuxReady { sealed } => c.blobs[usize::from(node)].push(sealed),
            other => panic!("aux at {node}: {other:?}"),
        }
    }
    let pk = c.create_key(KEY, Scheme::EcdsaSecp256k1, 2);
    let info = key_info(&c, KEY);
    let mut joining = join_one_more(&mut c);
    let (_, parties) = prepare_grown(&mut c, &mut joining);
    let change = joining.grow.request.clone();

    // Before the new party set's auxiliary information: no node takes the key's share, and a
    // member that holds the old set's vouches for nothing.
    let refused = failures(&run_move(&c, &parties, &info, &[0, 1]));
    assert!(
        refused.iter().all(|(_, m)| m.starts_with("aux_not_moved")),
        "{refused:?}"
    );
    let refused = commit(&c.enclaves[0], &change, &[]).err().unwrap();
    assert!(refused.starts_with("aux_not_moved"), "{refused}");

    // Made, then the key moved; made again, the share completed with the first run no longer
    // holds: no node vouches without the key until it moves again.
    let (first_aux, _) = move_aux(&c, &parties);
    move_key(&c, &parties, &info, &[0, 2]);
    let (aux_blobs, _) = move_aux(&c, &parties);
    let refused = commit(&c.enclaves[1], &change, &[]).err().unwrap();
    assert!(refused.starts_with("key_not_moved"), "{refused}");
    let incoming = move_key(&c, &parties, &info, &[1, 2]);
    assert_eq!(incoming.len(), 4);

    let mut sealed = ByteBuf::new();
    let answers: Vec<Answer> = parties
        .iter()
        .map(|e| vouch(e, &change, &mut sealed))
        .collect();
    let statements: Vec<KeysHeldStatement> = answers.iter().map(|a| a.held.clone()).collect();
    assert!(statements.windows(2).all(|w| w[0].keys == w[1].keys));
    // Each lists the set with the new party set's auxiliary information's digest, the one
    // the run made (the set's digest is checked against both as the answer is read).
    assert!(
        answers
            .iter()
            .all(|a| a.aux.is_some() && a.aux == answers[0].aux)
    );
    let mut words = Vec::new();
    for (i, e) in c.enclaves.iter().enumerate() {
        let answer = commit(e, &change, &statements).unwrap();
        c.blobs[i][1] = answer.sealed.clone().unwrap();
        words.push(set_statement(&answer));
    }
    let answer = commit_after(&joining.newcomer, &change, &statements, &words[1..]).unwrap();
    joining.blobs[1] = answer.sealed.unwrap();
    c.enclaves.push(joining.newcomer.clone());
    c.blobs.push(joining.blobs.clone());
    admit_all(&c.enclaves);
    signs(&c, &pk, &[1, 3], [9; 32]);
    signs(&c, &pk, &[0, 2], [10; 32]);

    // Restarted from its genesis, the key's share and the party set's auxiliary information,
    // the node that joined signs.
    let keys = c.restart(3, &[incoming[&3].clone(), aux_blobs[&3].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    signs(&c, &pk, &[0, 3], [11; 32]);
    // A member restored with the old party set's auxiliary information (its blobs hold it), or
    // with the first run's for the new one, loads none as the roster's (helper-67, finding 8);
    // with the committed run's, that one. Its key is the new share in each case.
    assert!(!restored_aux(&c, 0, &[incoming[&0].clone()]));
    assert!(!restored_aux(
        &c,
        0,
        &[incoming[&0].clone(), first_aux[&0].clone()]
    ));
    assert!(restored_aux(
        &c,
        0,
        &[incoming[&0].clone(), aux_blobs[&0].clone()]
    ));
    let keys = c.restart(0, &[incoming[&0].clone(), aux_blobs[&0].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    signs(&c, &pk, &[0, 3], [12; 32]);
}

/// An auxiliary-information run for the roster in force that started before the prepare gate
/// holds it: a node prepared mid-run would keep nothing of it while the others did, leaving
/// the roster in force's auxiliary information made at some nodes only (attacker review
/// helper-74, finding 1).
#[test]
fn no_node_is_prepared_while_the_roster_in_force_s_auxiliary_information_is_made() {
    let mut c = Cluster::new(3);
    let session = crate::testkit::session_id_ahead(c.ahead.get());
    let started = c.enclaves[0].handle(EnclaveRequest::StartSession {
        session: session.clone(),
        participants: vec![0, 1, 2],
        kind: SessionKind::AuxInfo,
    });
    assert!(
        matches!(started, EnclaveResponse::Session(_)),
        "{started:?}"
    );
    let shrink = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&shrink);
    super::roster::proposed(&mut c, &out, &shrink.request);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let held: Vec<_> = c
        .enclaves
        .iter()
        .map(|e| {
            super::prepare::prepare(e, &shrink.request, &[], &mut none)
                .unwrap()
                .0
        })
        .collect();
    let response = c.enclaves[0].handle(EnclaveRequest::PrepareRoster {
        prepare: protocol::roster::PrepareRoster {
            change: ByteBuf::from(shrink.request.hash().to_vec()),
            statements: held.clone(),
            nonce: ByteBuf::from(vec![1; 32]),
        },
    });
    match response {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, protocol::ErrorCode::InProgress, "{e}");
            assert!(e.message.contains("auxiliary-information run"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Ended, the gate passes.
    super::move_key::abort(&c.enclaves[..1], &session);
    let (_, prepared) =
        super::prepare::prepare(&c.enclaves[0], &shrink.request, &held, &mut none).unwrap();
    assert!(prepared);
}
