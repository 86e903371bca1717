use super::*;
use crate::KmsKeyArn;

fn arn(i: u8) -> KmsKeyArn {
    KmsKeyArn::parse(&format!("arn:aws:kms:eu-west-1:111122223333:key/node-{i}")).unwrap()
}

fn b(byte: u8, n: usize) -> ByteBuf {
    ByteBuf::from(vec![byte; n])
}

/// Node `i`: node key `0xB0 + i`, KMS key `node-i`.
fn node(i: u8) -> RosterEntry {
    RosterEntry {
        node_key: b(0xB0 + i, 32),
        kms_key_arn: arn(i),
        pcr3: (i == 0).then(|| b(0x33, 48)),
        pcr4: None,
    }
}

fn roster(nodes: &[u8]) -> Vec<RosterEntry> {
    nodes.iter().copied().map(node).collect()
}

fn change(nodes: &[u8]) -> ChangeRoster {
    ChangeRoster {
        v: CHANGE_ROSTER_VERSION,
        cluster: ClusterId([7; 32]),
        version: 0,
        roster: roster(nodes),
        request_id: b(3, 16),
        created: 1_000,
        expiry: 1_300,
        admins: 0,
    }
}

/// The genesis roster: nodes 0, 1 and 2.
fn genesis() -> Vec<RosterEntry> {
    roster(&[0, 1, 2])
}

#[test]
fn adding_replacing_and_removing_nodes_are_told_apart() {
    let current = genesis();
    let rosters = [current.as_slice()];

    let grow = change(&[0, 1, 2, 3, 4]).diff(&rosters, 2).unwrap();
    assert_eq!(grow.kept, vec![(0, 0), (1, 1), (2, 2)]);
    assert_eq!(grow.added, vec![3, 4]);
    assert!(grow.removed.is_empty() && grow.replaced().is_empty());

    let replace = change(&[0, 5, 2]).diff(&rosters, 2).unwrap();
    assert_eq!(replace.kept, vec![(0, 0), (2, 2)]);
    assert_eq!(
        (replace.removed.clone(), replace.added.clone()),
        (vec![1], vec![1])
    );
    assert_eq!(replace.replaced(), vec![1]);

    // Removing node 0 moves the others down by one, in their order.
    let shrink = change(&[1, 2]).diff(&rosters, 2).unwrap();
    assert_eq!(shrink.kept, vec![(1, 0), (2, 1)]);
    assert_eq!(shrink.removed, vec![0]);
    assert!(shrink.added.is_empty() && shrink.replaced().is_empty());

    assert_eq!(change(&[0, 1, 2, 3]).new_version(), 1);
}

#[test]
fn a_change_names_its_session_parties_new_roster_first_then_the_nodes_leaving() {
    let current = genesis();
    let rosters = [current.as_slice()];
    let party = |current, next| ChangeParty { current, next };

    // Growing: every node keeps its index as its party; the new ones follow.
    let grow = change(&[0, 1, 2, 3, 4]).diff(&rosters, 2).unwrap();
    assert_eq!(
        grow.parties(),
        vec![
            party(Some(0), Some(0)),
            party(Some(1), Some(1)),
            party(Some(2), Some(2)),
            party(None, Some(3)),
            party(None, Some(4)),
        ]
    );

    // Replacing node 1 by node 5: the newcomer takes index 1 and party 1; the node it replaces
    // deals as the last party.
    let replace = change(&[0, 5, 2]).diff(&rosters, 2).unwrap();
    assert_eq!(
        replace.parties(),
        vec![
            party(Some(0), Some(0)),
            party(None, Some(1)),
            party(Some(2), Some(2)),
            party(Some(1), None),
        ]
    );

    // Removing node 0 and adding node 3: the nodes that stay move down, node 0 comes last.
    let both = change(&[1, 2, 3]).diff(&rosters, 2).unwrap();
    assert_eq!(
        both.parties(),
        vec![
            party(Some(1), Some(0)),
            party(Some(2), Some(1)),
            party(None, Some(2)),
            party(Some(0), None),
        ]
    );
}

#[test]
fn malformed_changes_are_refused_by_name() {
    type Edit = fn(&mut ChangeRoster);
    let cases: Vec<(Edit, RosterError)> = vec![
        (|r| r.v = 2, RosterError::Version(2)),
        (|r| r.request_id.truncate(15), RosterError::RequestId(15)),
        (|r| r.version = u32::MAX, RosterError::LastVersion(u32::MAX)),
        (
            |r| r.roster.truncate(1),
            RosterError::Roster(GenesisError::RosterSize(1)),
        ),
        (
            |r| r.roster[3].node_key = b(0xB0, 32),
            RosterError::Roster(GenesisError::DuplicateNodeKey {
                first: 0,
                second: 3,
            }),
        ),
        (
            |r| r.roster[3].kms_key_arn = arn(1),
            RosterError::Roster(GenesisError::DuplicateKmsKey {
                first: 1,
                second: 3,
            }),
        ),
        (
            |r| r.roster[3].pcr4 = Some(b(4, 47)),
            RosterError::Roster(GenesisError::NodePcr { node: 3, pcr: 4 }),
        ),
    ];
    let current = genesis();
    for (edit, expected) in cases {
        let mut r = change(&[0, 1, 2, 3]);
        edit(&mut r);
        assert_eq!(r.diff(&[current.as_slice()], 2), Err(expected.clone()));
        assert_eq!(expected.kind(), "malformed_roster_change");
    }
}

/// What a coordinator, a parent or an admin's mistake could try to slip into a roster change,
/// each refused by name wherever the change is checked.
#[test]
fn a_change_may_not_alter_or_reorder_the_nodes_that_stay_nor_bring_back_a_node_that_left() {
    let v0 = genesis();
    let rosters = [v0.as_slice()];

    assert_eq!(
        change(&[0, 1, 2]).diff(&rosters, 2),
        Err(RosterError::Unchanged)
    );

    // Node 1 stays but another KMS key is listed for it: its node key is sealed under its own.
    let mut other_kms = change(&[0, 1, 2]);
    other_kms.roster[1].kms_key_arn = arn(9);
    assert_eq!(
        other_kms.diff(&rosters, 2),
        Err(RosterError::KeptEntryChanged { from: 1, to: 1 })
    );
    // Node 0's PCR3 pin dropped: its parent would no longer be checked.
    let mut unpinned = change(&[0, 1, 2]);
    unpinned.roster[0].pcr3 = None;
    assert_eq!(
        unpinned.diff(&rosters, 2),
        Err(RosterError::KeptEntryChanged { from: 0, to: 0 })
    );

    assert_eq!(
        change(&[0, 2, 1]).diff(&rosters, 2),
        Err(RosterError::Reordered {
            first: 1,
            second: 2
        })
    );

    // A node inserted before nodes that stay would move them up.
    assert_eq!(
        change(&[5, 0, 1, 2]).diff(&rosters, 2),
        Err(RosterError::MovedUp { from: 0, to: 1 })
    );
    assert_eq!(
        change(&[0, 5, 1, 2]).diff(&rosters, 2),
        Err(RosterError::MovedUp { from: 1, to: 2 })
    );
    // Nodes 0 and 2 leave, node 1 moves down to 0, and two join after it (a 1-of key: only
    // one node stays).
    let mixed = change(&[1, 5, 6]).diff(&rosters, 1).unwrap();
    assert_eq!(mixed.kept, vec![(1, 0)]);
    assert_eq!((mixed.removed, mixed.added), (vec![0, 2], vec![1, 2]));

    // Version 1 replaced node 1 by node 5; node 1's key may not come back, at any index.
    let v1 = roster(&[0, 5, 2]);
    let history = [v0.as_slice(), v1.as_slice()];
    let mut back = change(&[0, 5, 2, 1]);
    back.version = 1;
    assert_eq!(
        back.diff(&history, 2),
        Err(RosterError::RetiredNodeKey {
            node: 3,
            version: 0
        })
    );
    let mut swapped_back = change(&[0, 1, 2]);
    swapped_back.version = 1;
    assert_eq!(
        swapped_back.diff(&history, 2),
        Err(RosterError::RetiredNodeKey {
            node: 1,
            version: 0
        })
    );
    // A new node key at node 1 is fine.
    let mut again = change(&[0, 6, 2]);
    again.version = 1;
    assert_eq!(again.diff(&history, 2).unwrap().replaced(), vec![1]);
}

#[test]
fn a_roster_smaller_than_a_keys_threshold_is_refused() {
    let v0 = roster(&[0, 1, 2, 3]);
    let rosters = [v0.as_slice()];
    assert_eq!(
        change(&[0, 1]).diff(&rosters, 3),
        Err(RosterError::BelowThreshold {
            nodes: 2,
            threshold: 3
        })
    );
    assert_eq!(
        RosterError::BelowThreshold {
            nodes: 2,
            threshold: 3
        }
        .kind(),
        "below_threshold"
    );
    change(&[0, 1, 2]).diff(&rosters, 3).unwrap();
}

/// Attacker review helper-66, finding H2: the nodes that stay vouch for the key set at the
/// commit, so at least a threshold of them stay; more nodes are replaced in several changes.
#[test]
fn a_change_keeping_fewer_nodes_than_a_keys_threshold_is_refused() {
    let v0 = roster(&[0, 1, 2, 3]);
    let rosters = [v0.as_slice()];
    // Two of four replaced: two stay, a 3-of key needs three.
    assert_eq!(
        change(&[0, 1, 6, 7]).diff(&rosters, 3),
        Err(RosterError::TooFewKept {
            kept: 2,
            threshold: 3
        })
    );
    assert_eq!(
        RosterError::TooFewKept {
            kept: 2,
            threshold: 3
        }
        .kind(),
        "too_few_kept"
    );
    change(&[0, 1, 6, 7]).diff(&rosters, 2).unwrap();
    change(&[0, 1, 2, 7]).diff(&rosters, 3).unwrap();
    // Every node replaced at once: none vouches for the keys.
    assert_eq!(
        change(&[4, 5, 6, 7]).diff(&rosters, 1),
        Err(RosterError::TooFewKept {
            kept: 0,
            threshold: 1
        })
    );
}

#[test]
fn every_field_is_in_the_hash_and_the_statements_name_domain_node_and_version() {
    let base = change(&[0, 1, 2, 3]);
    let edits: [fn(&mut ChangeRoster); 8] = [
        |r| r.cluster = ClusterId([8; 32]),
        |r| r.version = 1,
        |r| r.roster.swap(0, 1),
        |r| r.roster[3].pcr4 = Some(b(4, 48)),
        |r| r.request_id[0] = 9,
        |r| r.created += 1,
        |r| r.expiry += 1,
        |r| r.admins = 1,
    ];
    for edit in edits {
        let mut r = base.clone();
        edit(&mut r);
        assert_ne!(r.hash(), base.hash());
    }
    // At admin version 0 the field is left out: the bytes are those without it.
    let bytes = base.canonical_bytes();
    assert!(bytes.starts_with(b"cohort/change-roster/v1\0"));
    let mut cbor = Vec::new();
    ciborium::into_writer(&base, &mut cbor).unwrap();
    let read: ciborium::Value = ciborium::from_reader(cbor.as_slice()).unwrap();
    let fields: Vec<String> = read
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_owned())
        .collect();
    assert!(!fields.contains(&"admins".to_owned()), "{fields:?}");

    let h = base.hash();
    let key = [0xB1; 32];
    let proposed = roster_proposed_message(&base.cluster, &key, 1, &h);
    assert!(proposed.starts_with(ROSTER_PROPOSED_DOMAIN));
    assert_eq!(
        proposed.len(),
        ROSTER_PROPOSED_DOMAIN.len() + 32 + 32 + 4 + 32,
        "domain, cluster, node key, version, request"
    );
    assert_ne!(
        proposed,
        roster_proposed_message(&base.cluster, &[0xB2; 32], 1, &h)
    );
    assert_ne!(
        proposed,
        roster_proposed_message(&base.cluster, &key, 2, &h)
    );
    assert_ne!(
        proposed,
        roster_proposed_message(&ClusterId([8; 32]), &key, 1, &h)
    );
}

/// The one order of proposals (attacker review helper-58, finding 2): by creation time; in the
/// same second a change back to the roster in force (a withdrawal or fence) after any change,
/// whatever their hashes; then by hash.
#[test]
fn in_one_second_a_withdrawal_comes_after_a_change_whatever_their_hashes() {
    let current = genesis();
    let fence = change(&[0, 1, 2]);
    for id in 0..16u8 {
        let mut grow = change(&[0, 1, 2, 3]);
        grow.request_id = b(id, 16);
        assert!(
            proposal_order(&fence, &current) > proposal_order(&grow, &current),
            "request id {id}"
        );
        // A second later, a change comes after the fence.
        grow.created += 1;
        assert!(proposal_order(&grow, &current) > proposal_order(&fence, &current));
    }
    // Two changes in one second: by hash.
    let (mut x, y) = (change(&[0, 1, 2, 3]), change(&[0, 1, 2, 4]));
    x.request_id = b(9, 16);
    assert_eq!(
        proposal_order(&x, &current) > proposal_order(&y, &current),
        x.hash() > y.hash()
    );
}

/// The prepare gate's digest and statement (issue 20): every change of either chain, its
/// order and which chain it is in change the digest; the held statement names the domain, the
/// node, the version, the change and the chain.
#[test]
fn the_chain_digest_covers_every_change_in_order_and_the_held_statement_names_it() {
    let cluster = ClusterId([7; 32]);
    let admins = |id: u8| Approved {
        request: SetAdmins {
            v: 1,
            cluster,
            version: 0,
            admins: vec![b(0xA1, 32), b(0xA2, 32)],
            admin_quorum: 2,
            request_id: b(id, 16),
            created: 1,
            expiry: 2,
        },
        approvals: vec![],
    };
    let images = |id: u8| Approved {
        request: AcceptImages {
            v: 1,
            cluster,
            version: 0,
            images: vec![],
            request_id: b(id, 16),
            created: 1,
            expiry: 2,
            admins: 0,
        },
        approvals: vec![],
    };
    let base = chain_digest(&cluster, &[admins(1)], &[images(2), images(3)]);
    let others = [
        chain_digest(&ClusterId([8; 32]), &[admins(1)], &[images(2), images(3)]),
        chain_digest(&cluster, &[], &[images(2), images(3)]),
        chain_digest(&cluster, &[admins(1)], &[images(2)]),
        chain_digest(&cluster, &[admins(1)], &[images(3), images(2)]),
        chain_digest(&cluster, &[admins(4)], &[images(2), images(3)]),
        chain_digest(&cluster, &[admins(1), admins(2)], &[images(3)]),
    ];
    // The same request id in either list is another change: the lists are told apart by
    // their counts, so a change cannot move from one to the other unseen.
    assert_ne!(
        chain_digest(&cluster, &[admins(1)], &[]),
        chain_digest(&cluster, &[], &[images(1)])
    );
    assert_ne!(
        chain_digest(&cluster, &[admins(1)], &[images(2)]),
        chain_digest(&cluster, &[admins(1), admins(2)], &[])
    );
    for (i, other) in others.iter().enumerate() {
        assert_ne!(*other, base, "edit {i}");
    }
    // The approvals are not the change: the same request approved otherwise is the same chain.
    let mut approved = admins(1);
    approved.approvals = vec![crate::policy::Approval {
        approver: b(0xA1, 32),
        signature: b(0, 64),
    }];
    assert_eq!(
        chain_digest(&cluster, &[approved], &[images(2), images(3)]),
        base
    );

    let h = change(&[0, 1, 2, 3]).hash();
    let key = [0xB1; 32];
    let held = roster_held_message(&cluster, &key, 1, &h, &base);
    assert!(held.starts_with(ROSTER_HELD_DOMAIN));
    assert_eq!(
        held.len(),
        ROSTER_HELD_DOMAIN.len() + 32 + 32 + 4 + 32 + 32,
        "domain, cluster, node key, version, change, chain"
    );
    assert!(held.ends_with(&base));
    assert_ne!(held, roster_held_message(&cluster, &key, 1, &h, &others[2]));
    assert_ne!(
        held,
        roster_held_message(&cluster, &[0xB2; 32], 1, &h, &base)
    );
    assert_ne!(held, roster_held_message(&cluster, &key, 2, &h, &base));
    assert_ne!(
        held,
        roster_held_message(&cluster, &key, 1, &[9; 32], &base)
    );
    assert_ne!(
        held,
        roster_held_message(&ClusterId([8; 32]), &key, 1, &h, &base)
    );
    // Never a proposed statement: another domain.
    assert!(!held.starts_with(ROSTER_PROPOSED_DOMAIN));

    // The set of statements a prepared node signs: in node-key order whatever the order given,
    // every field of every statement in it.
    let statement = |key: u8, chain: u8, sig: u8| HeldStatement {
        node_key: b(key, 32),
        chain: b(chain, 32),
        statement: b(sig, 64),
    };
    let set = [statement(1, 5, 7), statement(2, 5, 8)];
    let digest = statements_digest(&set);
    assert_eq!(digest, statements_digest(&[set[1].clone(), set[0].clone()]));
    for other in [
        vec![set[0].clone()],
        vec![statement(1, 5, 7), statement(3, 5, 8)],
        vec![statement(1, 5, 7), statement(2, 6, 8)],
        vec![statement(1, 5, 7), statement(2, 5, 9)],
    ] {
        assert_ne!(statements_digest(&other), digest);
    }
    let prepared = roster_prepared_message(&cluster, &key, (1, &h), &base, &digest, &[4; 32]);
    assert!(prepared.starts_with(ROSTER_PREPARED_DOMAIN));
    assert_eq!(
        prepared.len(),
        ROSTER_PREPARED_DOMAIN.len() + 32 + 32 + 4 + 32 + 32 + 32 + 1 + 32,
        "domain, cluster, node key, version, change, chain, set, nonce length, nonce"
    );
    for other in [
        roster_prepared_message(&cluster, &key, (1, &h), &base, &digest, &[5; 32]),
        roster_prepared_message(&cluster, &key, (1, &h), &base, &digest, &[]),
        roster_prepared_message(&cluster, &key, (1, &h), &base, &[0; 32], &[4; 32]),
        roster_prepared_message(&cluster, &key, (1, &h), &others[0], &digest, &[4; 32]),
        roster_prepared_message(&cluster, &key, (2, &h), &base, &digest, &[4; 32]),
    ] {
        assert_ne!(prepared, other);
    }
}
