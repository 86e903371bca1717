//! What `POST /v1/recover` records again of the roster proposals the nodes' inventories report:
//! a proposal approved by the admins in force with statements that verify, and nothing a node
//! or a relay made up (one node's inventory reporting a change the admins never approved, or a
//! statement it forged for another node).

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use protocol::genesis::{GENESIS_VERSION, Genesis, Image, RosterEntry};
use protocol::policy::{Approval, Approved, Canonical};
use protocol::roster::{CHANGE_ROSTER_VERSION, ChangeRoster, roster_proposed_message};
use serde_bytes::ByteBuf;

use super::*;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn entry(node: &SigningKey, i: u8) -> RosterEntry {
    RosterEntry {
        node_key: ByteBuf::from(node.verifying_key().to_bytes().to_vec()),
        kms_key_arn: protocol::KmsKeyArn::parse(&format!(
            "arn:aws:kms:eu-west-1:111122223333:key/node-{i}"
        ))
        .unwrap(),
        pcr3: None,
        pcr4: None,
    }
}

/// Three nodes (keys 1-3), admins 10 and 11 (quorum 2).
fn cluster() -> (Genesis, Vec<SigningKey>, AdminSet) {
    let nodes: Vec<SigningKey> = (1..=3).map(key).collect();
    let admins = [key(10), key(11)];
    let genesis = Genesis {
        v: GENESIS_VERSION,
        name: "c".into(),
        admins: admins
            .iter()
            .map(|k| ByteBuf::from(k.verifying_key().to_bytes().to_vec()))
            .collect(),
        admin_quorum: 2,
        image: Image {
            pcr0: ByteBuf::from(vec![1; 48]),
            pcr1: ByteBuf::from(vec![2; 48]),
            pcr2: ByteBuf::from(vec![3; 48]),
        },
        roster: nodes.iter().zip(0u8..).map(|(k, i)| entry(k, i)).collect(),
    };
    let set = AdminSet {
        version: 0,
        admins: admins
            .iter()
            .map(|k| Hex(k.verifying_key().to_bytes().to_vec()))
            .collect(),
        quorum: 2,
    };
    (genesis, nodes, set)
}

/// Growing the cluster by node key 4, approved by `by`.
fn grow(genesis: &Genesis, by: &[SigningKey]) -> ApprovedJson<ChangeRosterJson> {
    let mut roster = genesis.roster.clone();
    roster.push(entry(&key(4), 3));
    let request = ChangeRoster {
        v: CHANGE_ROSTER_VERSION,
        cluster: genesis.cluster_id(),
        version: 0,
        roster,
        request_id: ByteBuf::from(vec![5; 16]),
        created: 100,
        expiry: 220,
        admins: 0,
    };
    let approvals = by
        .iter()
        .map(|k| Approval {
            approver: ByteBuf::from(k.verifying_key().to_bytes().to_vec()),
            signature: ByteBuf::from(k.sign(&request.canonical_bytes()).to_bytes().to_vec()),
        })
        .collect();
    ApprovedJson::from_wire(&Approved { request, approvals })
}

/// `signer`'s statement that it holds `change` as proposed, naming node key `named`.
fn statement(
    genesis: &Genesis,
    change: &ApprovedJson<ChangeRosterJson>,
    signer: &SigningKey,
    named: &SigningKey,
) -> Vec<u8> {
    let r = change.request.to_wire();
    let message = roster_proposed_message(
        &genesis.cluster_id(),
        &named.verifying_key().to_bytes(),
        r.new_version(),
        &r.hash(),
    );
    signer.sign(&message).to_bytes().to_vec()
}

#[test]
fn a_proposal_is_recovered_with_the_statements_that_verify_and_nothing_made_up_is() {
    let (genesis, nodes, admins) = cluster();
    let approved = grow(&genesis, &[key(10), key(11)]);
    let honest = |i: usize| statement(&genesis, &approved, &nodes[i], &nodes[i]);

    // Two nodes report it: both statements kept.
    let reported = BTreeMap::from([(0, honest(0)), (2, honest(2))]);
    assert_eq!(
        restorable(&genesis, &admins, &approved, &reported),
        Some(reported.clone())
    );

    // One node's statement forged by another (node 0 signing for node 1) is dropped; the
    // honest one stands.
    let forged = statement(&genesis, &approved, &nodes[0], &nodes[1]);
    let mixed = BTreeMap::from([(0, honest(0)), (1, forged.clone())]);
    assert_eq!(
        restorable(&genesis, &admins, &approved, &mixed),
        Some(BTreeMap::from([(0, honest(0))]))
    );
    // Only forged or misplaced statements (node 2's statement reported at index 1, one index
    // outside the roster): nothing is recovered.
    let made_up = BTreeMap::from([(1, forged), (2, honest(0)), (7, honest(1))]);
    assert_eq!(restorable(&genesis, &admins, &approved, &made_up), None);

    // One node's inventory reports a change the admins never approved (one admin's approval,
    // or a stranger's), with a statement that verifies: refused.
    for by in [vec![key(10)], vec![key(10), key(12)]] {
        let unapproved = grow(&genesis, &by);
        let own = BTreeMap::from([(1, statement(&genesis, &unapproved, &nodes[1], &nodes[1]))]);
        assert_eq!(restorable(&genesis, &admins, &unapproved, &own), None);
    }

    // Approved under an admin version not in force (the admins were replaced since): refused.
    let replaced = AdminSet {
        version: 1,
        ..admins.clone()
    };
    assert_eq!(restorable(&genesis, &replaced, &approved, &reported), None);

    // A change naming another cluster, with a statement that verifies here: refused.
    let mut other = genesis.clone();
    other.name = "another cluster".into();
    assert_ne!(other.cluster_id(), genesis.cluster_id());
    let elsewhere = grow(&other, &[key(10), key(11)]);
    let theirs = BTreeMap::from([(0, statement(&genesis, &elsewhere, &nodes[0], &nodes[0]))]);
    assert_eq!(restorable(&genesis, &admins, &elsewhere, &theirs), None);
}
