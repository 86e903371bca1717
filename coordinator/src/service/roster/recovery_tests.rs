//! What `POST /v1/recover` records again of the roster proposals the nodes' inventories report:
//! a proposal approved by the admins in force with statements that verify, and nothing a node
//! or a relay made up (one node's inventory reporting a change the admins never approved, or a
//! statement it forged for another node).

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use protocol::genesis::{GENESIS_VERSION, Genesis, Image, RosterEntry};
use protocol::inventory::RosterWord;
use protocol::policy::{Approval, Approved, Canonical};
use protocol::roster::commit::{
    CommittedRoster, KeysHeldStatement, keys_held_message, roster_set_message,
};
use protocol::roster::{
    CHANGE_ROSTER_VERSION, ChangeRoster, chain_digest_with_rosters, roster_proposed_message,
};
use serde_bytes::ByteBuf;

use protocol::admins::SetAdmins;

use super::recovered::{Chains, chain_rosters, same_chain, verify_chains, vouched, with_words};
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
    let roster = ClusterRoster::genesis(&genesis);
    let approved = grow(&genesis, &[key(10), key(11)]);
    let honest = |i: usize| statement(&genesis, &approved, &nodes[i], &nodes[i]);

    // Two nodes report it: both statements kept.
    let reported = BTreeMap::from([(0, honest(0)), (2, honest(2))]);
    assert_eq!(
        restorable(&roster, &admins, &approved, &reported),
        Some(reported.clone())
    );

    // One node's statement forged by another (node 0 signing for node 1) is dropped; the
    // honest one stands.
    let forged = statement(&genesis, &approved, &nodes[0], &nodes[1]);
    let mixed = BTreeMap::from([(0, honest(0)), (1, forged.clone())]);
    assert_eq!(
        restorable(&roster, &admins, &approved, &mixed),
        Some(BTreeMap::from([(0, honest(0))]))
    );
    // Only forged or misplaced statements (node 2's statement reported at index 1, one index
    // outside the roster): nothing is recovered.
    let made_up = BTreeMap::from([(1, forged), (2, honest(0)), (7, honest(1))]);
    assert_eq!(restorable(&roster, &admins, &approved, &made_up), None);

    // One node's inventory reports a change the admins never approved (one admin's approval,
    // or a stranger's), with a statement that verifies: refused.
    for by in [vec![key(10)], vec![key(10), key(12)]] {
        let unapproved = grow(&genesis, &by);
        let own = BTreeMap::from([(1, statement(&genesis, &unapproved, &nodes[1], &nodes[1]))]);
        assert_eq!(restorable(&roster, &admins, &unapproved, &own), None);
    }

    // Approved under an admin version not in force (the admins were replaced since): refused.
    let replaced = AdminSet {
        version: 1,
        ..admins.clone()
    };
    assert_eq!(restorable(&roster, &replaced, &approved, &reported), None);

    // A change naming another cluster, with a statement that verifies here: refused.
    let mut other = genesis.clone();
    other.name = "another cluster".into();
    assert_ne!(other.cluster_id(), genesis.cluster_id());
    let elsewhere = grow(&other, &[key(10), key(11)]);
    let theirs = BTreeMap::from([(0, statement(&genesis, &elsewhere, &nodes[0], &nodes[0]))]);
    assert_eq!(restorable(&roster, &admins, &elsewhere, &theirs), None);
}

/// The change growing the cluster by node key 4 as every node of the new roster committed it:
/// each one's statement that it holds the key set `[7; 32]` under the genesis' chain.
fn committed_grow(genesis: &Genesis, nodes: &[SigningKey]) -> CommittedRoster {
    let change = grow(genesis, &[key(10), key(11)]).to_wire();
    let r = &change.request;
    let digest = chain_digest_with_rosters(&genesis.cluster_id(), &[], &[], &[]);
    let statements = nodes
        .iter()
        .map(|k| {
            let node_key = k.verifying_key().to_bytes();
            let message = keys_held_message(
                &genesis.cluster_id(),
                &node_key,
                (1, &r.hash()),
                &digest,
                &[7; 32],
            );
            KeysHeldStatement {
                node_key: ByteBuf::from(node_key.to_vec()),
                keys: ByteBuf::from(vec![7; 32]),
                statement: ByteBuf::from(k.sign(&message).to_bytes().to_vec()),
            }
        })
        .collect();
    CommittedRoster {
        change,
        images: 0,
        statements,
        keys: Vec::new(),
        aux: None,
    }
}

/// The committed chain a node reports makes the rosters only when each change replaces the
/// version before it, for this cluster; it is recorded only with every node of its roster's
/// statement over one key set under the chain of that moment, and with the words that verify
/// under the node keys of the roster in force (none forged by another node).
#[test]
fn a_committed_chain_is_recovered_only_as_every_node_of_its_roster_vouched_for_it() {
    let (genesis, mut nodes, _) = cluster();
    nodes.push(key(4));
    let committed = committed_grow(&genesis, &nodes);
    let rosters = chain_rosters(&genesis, std::slice::from_ref(&committed)).unwrap();
    assert_eq!(rosters.len(), 2);
    assert_eq!(rosters[1].version, 1);
    assert_eq!(rosters[1].roster, committed.change.request.roster);
    // A chain that skips a version, or of another cluster, makes no roster.
    let mut skipping = committed.clone();
    skipping.change.request.version = 1;
    let e = chain_rosters(&genesis, &[skipping]).unwrap_err();
    assert!(e.contains("replaces another version"), "{e}");
    let mut elsewhere = committed.clone();
    elsewhere.change.request.cluster = protocol::genesis::ClusterId([9; 32]);
    assert!(chain_rosters(&genesis, &[elsewhere]).is_err());

    // Checked in full from the genesis: approved by the admins of the version it names, and
    // vouched for; an approval short, or an admin chain of a parent's own making (a set of its
    // key, approved by that key), is refused before any page is checked under a key it lists
    // (attacker review helper-82, finding 1).
    let chains = |admins: &[Approved<SetAdmins>], rosters: &[CommittedRoster]| {
        verify_chains(
            &genesis,
            &Chains {
                admins,
                images: &[],
                rosters,
            },
        )
    };
    assert_eq!(
        chains(&[], std::slice::from_ref(&committed)).unwrap(),
        rosters
    );
    let mut unapproved = committed.clone();
    unapproved.change.approvals.pop();
    let e = chains(&[], &[unapproved]).unwrap_err();
    assert!(e.contains("not approved"), "{e}");
    let own = SetAdmins {
        v: protocol::admins::SET_ADMINS_VERSION,
        cluster: genesis.cluster_id(),
        version: 0,
        admins: vec![ByteBuf::from(key(50).verifying_key().to_bytes().to_vec())],
        admin_quorum: 1,
        request_id: ByteBuf::from(vec![6; 16]),
        created: 100,
        expiry: 200,
    };
    let forged = Approved {
        approvals: vec![Approval {
            approver: ByteBuf::from(key(50).verifying_key().to_bytes().to_vec()),
            signature: ByteBuf::from(key(50).sign(&own.canonical_bytes()).to_bytes().to_vec()),
        }],
        request: own,
    };
    let e = chains(std::slice::from_ref(&forged), &[]).unwrap_err();
    assert!(e.starts_with("admin change 1"), "{e}");

    let cluster_id = genesis.cluster_id();
    let hash = committed.change.request.hash();
    let digest = chain_digest_with_rosters(&cluster_id, &[], &[], &[]);
    let all = vouched(&cluster_id, (1, &hash), &digest, &committed).unwrap();
    assert_eq!(
        all.iter().map(|n| n.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    // Under another chain (an admin change the nodes never applied), one statement forged by
    // another node, one over another key set, or one missing: refused.
    let other_chain = [9; 32];
    assert!(vouched(&cluster_id, (1, &hash), &other_chain, &committed).is_err());
    let mut forged = committed.clone();
    forged.statements[1].statement = forged.statements[0].statement.clone();
    assert!(vouched(&cluster_id, (1, &hash), &digest, &forged).is_err());
    let mut other_set = committed.clone();
    other_set.statements[2].keys = ByteBuf::from(vec![8; 32]);
    assert!(vouched(&cluster_id, (1, &hash), &digest, &other_set).is_err());
    let mut missing = committed.clone();
    missing.statements.pop();
    assert!(vouched(&cluster_id, (1, &hash), &digest, &missing).is_err());

    // Words: node 0's and node 3's verify; node 1's is node 0's signature.
    let word = |signer: &SigningKey, named: &SigningKey| RosterWord {
        version: 1,
        statement: ByteBuf::from(
            signer
                .sign(&roster_set_message(
                    &cluster_id,
                    &named.verifying_key().to_bytes(),
                    1,
                    &hash,
                ))
                .to_bytes()
                .to_vec(),
        ),
    };
    let words = vec![
        (0, vec![word(&nodes[0], &nodes[0])]),
        (1, vec![word(&nodes[0], &nodes[1])]),
        (3, vec![word(&nodes[3], &nodes[3])]),
    ];
    let nodes = with_words(&cluster_id, (1, &hash), &rosters[1], &words, all);
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.set_statement.is_some())
            .collect::<Vec<_>>(),
        vec![true, false, false, true]
    );
}

/// The rebuild records a committed chain only if every node reports the same one: a node
/// behind (a stale backup of its blobs), ahead, forked at a version (another change made that
/// version) or with a change committed under another image chain is told apart; the same
/// statements in another order are not.
#[test]
fn nodes_report_the_same_chain_only_with_the_same_changes_under_the_same_chains() {
    let (genesis, mut nodes, _) = cluster();
    nodes.push(key(4));
    let committed = committed_grow(&genesis, &nodes);
    let chain = std::slice::from_ref(&committed);
    let mut reordered = committed.clone();
    reordered.statements.reverse();
    assert!(same_chain(chain, &[reordered]));
    assert!(!same_chain(chain, &[]), "a node behind");
    assert!(!same_chain(&[], chain), "a node ahead");
    assert!(!same_chain(chain, &[committed.clone(), committed.clone()]));
    let mut forked = committed.clone();
    forked.change.request.created += 1;
    assert_ne!(
        forked.change.request.hash(),
        committed.change.request.hash()
    );
    assert!(!same_chain(chain, &[forked]), "a fork at version 1");
    let mut other_images = committed.clone();
    other_images.images = 1;
    assert!(!same_chain(chain, &[other_images]));
}
