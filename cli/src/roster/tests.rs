//! Roster changes as a client builds and checks them: edits of the pinned roster, and the
//! coordinator's report of the roster and its proposals (attacker review helper-57).

use coordinator::api::{Hex, RosterEntryJson, RosterProposal};
use ed25519_dalek::Signer;

use super::*;
use crate::testing::{key, pinned};
fn entry(i: u8) -> RosterEntry {
    RosterEntry {
        node_key: serde_bytes::ByteBuf::from(vec![i; 32]),
        kms_key_arn: protocol::KmsKeyArn::parse(&format!(
            "arn:aws:kms:us-east-1:000000000000:key/{i:08}-0000-0000-0000-000000000000"
        ))
        .unwrap(),
        pcr3: None,
        pcr4: None,
    }
}

#[test]
fn an_edit_adds_at_the_end_replaces_in_place_and_removes_by_index() {
    let current = vec![entry(1), entry(2), entry(3)];
    assert_eq!(
        edited(&current, Edit::Add(entry(4))).unwrap(),
        vec![entry(1), entry(2), entry(3), entry(4)]
    );
    assert_eq!(
        edited(&current, Edit::Replace(1, entry(9))).unwrap(),
        vec![entry(1), entry(9), entry(3)]
    );
    assert_eq!(
        edited(&current, Edit::Remove(0)).unwrap(),
        vec![entry(2), entry(3)]
    );
    assert_eq!(edited(&current, Edit::Withdraw).unwrap(), current);
    let out = edited(&current, Edit::Remove(3)).unwrap_err().to_string();
    assert!(out.contains("node 3 is not in the roster"), "{out}");
    let out = edited(&current, Edit::Replace(7, entry(9)))
        .unwrap_err()
        .to_string();
    assert!(out.contains("nodes 0 to 2"), "{out}");
}

#[test]
fn every_node_counts_each_node_once_and_only_nodes_of_the_roster() {
    let receipt = |node| NodeReceipt {
        node,
        signature: coordinator::api::Hex(vec![1; 64]),
    };
    assert!(every_node(&[receipt(0), receipt(1), receipt(2)], 3));
    assert!(!every_node(&[receipt(0), receipt(0), receipt(0)], 3));
    assert!(!every_node(&[receipt(0), receipt(1), receipt(7)], 3));
}

/// A proposal of `edit`, created at `created`, approved by `approvers`, held by the nodes at
/// `holders` (each statement signed by `signers[node]`).
fn proposal(
    trust: &Trust,
    signers: &[SigningKey],
    (edit, created): (Edit, u64),
    approvers: &[SigningKey],
    holders: &[u16],
) -> RosterProposal {
    let roster = edited(&trust.genesis().roster, edit).unwrap();
    let mut request = requests::change_roster(trust.cluster_id(), (0, &roster), 0);
    request.created = created;
    request.expiry = created + 300;
    let hash = request.hash();
    let statements = holders
        .iter()
        .map(|n| {
            let node = &trust.genesis().roster[usize::from(*n)];
            let key: [u8; 32] = node.node_key.as_slice().try_into().unwrap();
            let message = roster_proposed_message(&trust.cluster_id(), &key, 1, &hash);
            NodeReceipt {
                node: *n,
                signature: Hex(signers[usize::from(*n)].sign(&message).to_bytes().to_vec()),
            }
        })
        .collect();
    RosterProposal {
        version: 1,
        request: ApprovedJson::from_wire(&requests::approve(&request, approvers)),
        request_sha256: Hex(hash.to_vec()),
        statements,
        recorded: created,
    }
}

fn status(trust: &Trust, proposals: Vec<RosterProposal>) -> RosterStatus {
    let roster: Vec<RosterEntryJson> = trust
        .genesis()
        .roster
        .iter()
        .map(RosterEntryJson::from_wire)
        .collect();
    let pending = proposals
        .last()
        .filter(|p| p.request.request.roster != roster)
        .map(|p| p.request_sha256.clone());
    RosterStatus {
        version: 0,
        roster,
        proposals,
        pending,
        committed: vec![],
    }
}

/// `change` committed, with the word of each node of its roster signed by `signers` (by index
/// in it).
fn committed(trust: &Trust, change: &RosterProposal, signers: &[SigningKey]) -> RosterCommitted {
    let r = change.request.request.to_wire();
    let hash = r.hash();
    let words = r
        .roster
        .iter()
        .zip(signers)
        .enumerate()
        .map(|(i, (entry, signer))| {
            let key: [u8; 32] = entry.node_key.as_slice().try_into().unwrap();
            let message = roster_set_message(&trust.cluster_id(), &key, 1, &hash);
            NodeReceipt {
                node: i as u16,
                signature: Hex(signer.sign(&message).to_bytes().to_vec()),
            }
        })
        .collect();
    RosterCommitted {
        version: 1,
        request: change.request.clone(),
        request_sha256: change.request_sha256.clone(),
        committed: words,
        images: 0,
        keys: Hex(vec![7; 32]),
        vouched: vec![],
        recorded: 0,
    }
}

#[test]
fn a_committed_change_is_followed_only_with_the_admins_approval_and_every_nodes_word() {
    let nodes = [key(10), key(11), key(12)];
    let trust = pinned(&nodes);
    let admins = AdminChain::genesis(&trust);
    let approvers = [key(1), key(2)];
    let addition = proposal(
        &trust,
        &nodes,
        (Edit::Add(newcomer()), 101),
        &approvers,
        &[0, 1, 2],
    );
    let signers = [key(10), key(11), key(12), key(40)];
    let honest = committed(&trust, &addition, &signers);
    let rosters =
        super::rosters(&trust, (&admins, &none()), std::slice::from_ref(&honest)).unwrap();
    assert_eq!(rosters.version(), 1);
    assert_eq!(rosters.in_force().len(), 4);
    assert_eq!(rosters.in_force()[3], newcomer());
    assert_eq!(rosters.committed.len(), 1);
    assert_eq!(
        rosters.committed[0].change.request.hash(),
        addition.request.request.to_wire().hash()
    );
    let refused = |c: RosterCommitted| rosters_err(&trust, &admins, c);
    assert!(rosters.incomplete.is_empty());
    // The new node's word missing (it missed the commit): followed, and named as missing, so
    // that the commit is run again for it.
    let mut missing = honest.clone();
    missing.committed.pop();
    let partial = super::rosters(&trust, (&admins, &none()), &[missing]).unwrap();
    assert_eq!(partial.in_force(), rosters.in_force());
    assert_eq!(partial.incomplete, vec![(1, vec![3])]);
    // A word signed by another key, or shown twice: refused.
    let forged = committed(&trust, &addition, &[key(10), key(11), key(12), key(66)]);
    assert!(refused(forged).contains("node 3's word"));
    let mut twice = honest.clone();
    twice.committed.push(twice.committed[0].clone());
    assert!(refused(twice).contains("node 0's word"));
    // Only the node that joined gave its word: no node that stays did, so nothing says the
    // change took effect.
    let mut joiner_only = honest.clone();
    joiner_only.committed.drain(..3);
    assert!(refused(joiner_only).contains("no node that stays"));
    // A change the admins did not approve.
    let unapproved = proposal(
        &trust,
        &nodes,
        (Edit::Add(newcomer()), 101),
        &[key(1), key(9)],
        &[0],
    );
    let out = refused(committed(&trust, &unapproved, &signers));
    assert!(!out.is_empty(), "{out}");
    // Listed under another version.
    let mut later = honest.clone();
    later.version = 2;
    assert!(refused(later).contains("out of order"));
    // A coordinator that reports the genesis' roster with a committed change is refused, and
    // one that reports the new roster is followed.
    let mut report = status(&trust, vec![]);
    report.committed = vec![honest.clone()];
    let out = verify(&trust, (&admins, &none()), &report)
        .unwrap_err()
        .to_string();
    assert!(out.contains("version 1"), "{out}");
    report.version = 1;
    report.roster = signers
        .iter()
        .enumerate()
        .map(|(i, _)| RosterEntryJson::from_wire(&rosters.in_force()[i]))
        .collect();
    assert_eq!(
        verify(&trust, (&admins, &none()), &report).unwrap(),
        rosters
    );
}

/// No admin or image change.
fn none() -> ChangeHashes {
    ChangeHashes::default()
}

fn rosters_err(trust: &Trust, admins: &AdminChain, c: RosterCommitted) -> String {
    format!(
        "{:#}",
        super::rosters(trust, (admins, &none()), &[c]).unwrap_err()
    )
}

fn newcomer() -> RosterEntry {
    RosterEntry {
        node_key: requests::public(&key(40)),
        kms_key_arn: protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/node-new")
            .unwrap(),
        pcr3: None,
        pcr4: None,
    }
}

#[test]
fn a_coordinators_report_of_the_roster_is_checked_against_the_pinned_genesis() {
    let nodes = [key(10), key(11), key(12)];
    let trust = pinned(&nodes);
    let admins = AdminChain::genesis(&trust);
    let approvers = [key(1), key(2)];
    let removal = proposal(
        &trust,
        &nodes,
        (Edit::Remove(2), 100),
        &approvers,
        &[0, 1, 2],
    );
    let addition = proposal(
        &trust,
        &nodes,
        (Edit::Add(newcomer()), 101),
        &approvers,
        &[0, 1],
    );
    let honest = status(&trust, vec![removal.clone(), addition.clone()]);
    verify(&trust, (&admins, &none()), &honest).unwrap();
    // A withdrawal last: nothing pending.
    let withdrawal = proposal(&trust, &nodes, (Edit::Withdraw, 102), &approvers, &[0]);
    let withdrawn = status(&trust, vec![removal.clone(), addition.clone(), withdrawal]);
    assert!(withdrawn.pending.is_none());
    verify(&trust, (&admins, &none()), &withdrawn).unwrap();

    let refused = |s: &RosterStatus| {
        verify(&trust, (&admins, &none()), s)
            .unwrap_err()
            .to_string()
    };
    // Listed out of the nodes' order, to pass the earlier change off as pending.
    let mut reordered = status(&trust, vec![addition.clone(), removal.clone()]);
    reordered.pending = Some(removal.request_sha256.clone());
    assert!(
        refused(&reordered).contains("out of the order"),
        "{}",
        refused(&reordered)
    );
    // The same proposal twice.
    let twice = status(&trust, vec![removal.clone(), removal.clone()]);
    assert!(refused(&twice).contains("out of the order"));
    // Another pending change than the proposals make.
    let mut other = honest.clone();
    other.pending = Some(removal.request_sha256.clone());
    assert!(
        refused(&other).contains("another pending"),
        "{}",
        refused(&other)
    );
    let mut none = honest.clone();
    none.pending = None;
    assert!(refused(&none).contains("another pending"));
    // A statement moved to another node's index, or signed by another key.
    let mut moved = addition.clone();
    moved.statements[1].node = 2;
    let s = status(&trust, vec![removal.clone(), moved]);
    assert!(
        refused(&s).contains("node 2's statement"),
        "{}",
        refused(&s)
    );
    let forged = proposal(
        &trust,
        &[key(10), key(66), key(12)],
        (Edit::Add(newcomer()), 101),
        &approvers,
        &[0, 1],
    );
    let s = status(&trust, vec![removal.clone(), forged]);
    assert!(
        refused(&s).contains("node 1's statement"),
        "{}",
        refused(&s)
    );
    // A proposal the admins did not approve, or held by no node.
    let made_up = proposal(
        &trust,
        &nodes,
        (Edit::Remove(0), 103),
        &[key(1), key(9)],
        &[0],
    );
    let s = status(&trust, vec![removal.clone(), made_up]);
    assert!(refused(&s).contains("not approved"), "{}", refused(&s));
    let unheld = proposal(&trust, &nodes, (Edit::Remove(0), 103), &approvers, &[]);
    let s = status(&trust, vec![removal.clone(), unheld]);
    assert!(refused(&s).contains("no node holds"), "{}", refused(&s));
    // A roster in force other than the pinned one.
    let mut moved_roster = honest.clone();
    moved_roster.roster.pop();
    assert!(
        refused(&moved_roster).contains("another roster"),
        "{}",
        refused(&moved_roster)
    );
}

/// Roster version `version`'s change of `before` by `edit`, approved by the genesis' admins.
fn change_of(
    trust: &Trust,
    (before, version): (&[RosterEntry], u32),
    edit: Edit,
) -> (Vec<RosterEntry>, ApprovedJson<ChangeRosterJson>) {
    let roster = edited(before, edit).unwrap();
    let request = requests::change_roster(trust.cluster_id(), (version - 1, &roster), 0);
    let approved = requests::approve(&request, &[key(1), key(2)]);
    (roster, ApprovedJson::from_wire(&approved))
}

/// `request` (making roster `version`) committed, with the roster-set word of each node of
/// `words` (index in its roster, signer), and `vouched` as the keys-held statements.
fn commit_record(
    trust: &Trust,
    (version, request): (u32, &ApprovedJson<ChangeRosterJson>),
    (roster, words): (&[RosterEntry], &[(u16, &SigningKey)]),
    (images, vouched): (u32, Vec<NodeReceipt>),
) -> RosterCommitted {
    let hash = request.request.to_wire().hash();
    let committed = words
        .iter()
        .map(|(i, signer)| {
            let key: [u8; 32] = roster[usize::from(*i)]
                .node_key
                .as_slice()
                .try_into()
                .unwrap();
            let message = roster_set_message(&trust.cluster_id(), &key, version, &hash);
            NodeReceipt {
                node: *i,
                signature: Hex(signer.sign(&message).to_bytes().to_vec()),
            }
        })
        .collect();
    RosterCommitted {
        version,
        request: request.clone(),
        request_sha256: Hex(hash.to_vec()),
        committed,
        images,
        keys: Hex(vec![7; 32]),
        vouched,
        recorded: 0,
    }
}

/// Node `node` of roster version `version` (signed by `signer`) vouches for the change
/// `request` under the chain whose digest is `chain`.
fn vouch(
    trust: &Trust,
    (version, request): (u32, &ApprovedJson<ChangeRosterJson>),
    (node, signer): (u16, &SigningKey),
    chain: &[u8; 32],
) -> NodeReceipt {
    let key = requests::public(signer);
    let key: [u8; 32] = key.as_slice().try_into().unwrap();
    let hash = request.request.to_wire().hash();
    let message = keys_held_message(&trust.cluster_id(), &key, (version, &hash), chain, &[7; 32]);
    NodeReceipt {
        node,
        signature: Hex(signer.sign(&message).to_bytes().to_vec()),
    }
}

/// Attacker review helper-82, finding 4: a coordinator rebuilt from the nodes after its
/// database was lost knows the roster-set words of the nodes in force only. A change whose
/// every staying node has left since is followed on the keys-held statement a node of its
/// roster gave for the next change, under a chain that holds it — and on nothing less.
#[test]
fn a_change_whose_staying_nodes_left_is_followed_on_their_word_for_the_next_change() {
    let nodes = [key(10), key(11), key(12)];
    let trust = pinned(&nodes);
    let admins = AdminChain::genesis(&trust);
    let cluster = trust.cluster_id();
    // Version 1 replaces node 2 by key 40; version 2 replaces node 0 by key 41.
    let (first_roster, first) = change_of(
        &trust,
        (&trust.genesis().roster, 1),
        Edit::Replace(2, newcomer()),
    );
    let mut other = newcomer();
    other.node_key = requests::public(&key(41));
    other.kms_key_arn =
        protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/node-other").unwrap();
    let (second_roster, second) = change_of(&trust, (&first_roster, 2), Edit::Replace(0, other));
    // Of version 1, only the node that joined gave its word (the words of nodes 0 and 1 are
    // lost); version 2 has the word of node 1, which stays.
    let one = commit_record(
        &trust,
        (1, &first),
        (&first_roster, &[(2, &key(40))]),
        (0, vec![]),
    );
    let image = [9u8; 32];
    let hashes = ChangeHashes {
        admins: vec![],
        images: vec![image],
    };
    let first_hash = first.request.to_wire().hash();
    let chain = protocol::roster::chain_digest_of_hashes(&cluster, &[], &[image], &[first_hash]);
    let two = |vouched: Vec<NodeReceipt>| {
        commit_record(
            &trust,
            (2, &second),
            (&second_roster, &[(1, &key(11))]),
            (1, vouched),
        )
    };
    let run = |two: RosterCommitted, hashes: &ChangeHashes| {
        super::rosters(&trust, (&admins, hashes), &[one.clone(), two]).map_err(|e| format!("{e:#}"))
    };
    let refused = |two: RosterCommitted, hashes: &ChangeHashes, why: &str| {
        let out = run(two, hashes).unwrap_err();
        assert!(out.contains(why), "{out}");
    };
    let unanchored = "no node that stays in roster version 1";
    // Before the fix, and still with no statement: refused by name.
    refused(two(vec![]), &hashes, unanchored);
    // Node 1 of version 1, which stays in version 2, vouched for version 2 under a chain that
    // holds version 1: followed.
    let stayer = vouch(&trust, (2, &second), (1, &key(11)), &chain);
    let followed = run(two(vec![stayer.clone()]), &hashes).unwrap();
    assert_eq!(followed.version(), 2);
    assert_eq!(followed.in_force(), second_roster.as_slice());
    // Node 2 (key 40, which joined at version 1) is of version 1's roster too.
    let joined_then = vouch(&trust, (2, &second), (2, &key(40)), &chain);
    assert_eq!(run(two(vec![joined_then]), &hashes).unwrap().version(), 2);
    // The node that joined at version 2 was given version 1, it did not commit it: its
    // statement verifies and anchors nothing.
    let joined_now = vouch(&trust, (2, &second), (0, &key(41)), &chain);
    refused(two(vec![joined_now]), &hashes, unanchored);
    // A statement under a chain without version 1, signed by another key than the roster
    // lists, over another change, or shown twice: the coordinator shows a word no node gave.
    let forged = "node 1's statement that it holds the key set of roster version 2";
    let bare = protocol::roster::chain_digest_of_hashes(&cluster, &[], &[image], &[]);
    refused(
        two(vec![vouch(&trust, (2, &second), (1, &key(11)), &bare)]),
        &hashes,
        forged,
    );
    refused(
        two(vec![vouch(&trust, (2, &second), (1, &key(66)), &chain)]),
        &hashes,
        forged,
    );
    refused(
        two(vec![vouch(&trust, (2, &first), (1, &key(11)), &chain)]),
        &hashes,
        forged,
    );
    refused(two(vec![stayer.clone(), stayer.clone()]), &hashes, forged);
    // Without the image change of its moment, the chain cannot be recomputed.
    refused(
        two(vec![stayer.clone()]),
        &none(),
        "more admin or image changes",
    );
    let mut other_image = hashes.clone();
    other_image.images = vec![[8; 32]];
    refused(two(vec![stayer.clone()]), &other_image, forged);
    // The last change has no later one: it needs a staying node's word.
    let unanchored_last = commit_record(
        &trust,
        (2, &second),
        (&second_roster, &[(0, &key(41))]),
        (1, vec![stayer]),
    );
    let out = super::rosters(&trust, (&admins, &hashes), &[one.clone(), unanchored_last])
        .unwrap_err()
        .to_string();
    assert!(
        out.contains("no node that stays in roster version 2"),
        "{out}"
    );
}
