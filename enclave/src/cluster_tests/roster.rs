//! Roster changes, the proposal step (issue 20, ADR 0022). The attacks: a change the admins did
//! not approve, or approved for another cluster or a roster version not in force; a change that
//! re-points a node that stays at another KMS key or drops its PCR pins; a roster smaller than
//! a key's threshold; a change while a resharing is unfinished; a relay bringing back a change
//! the admins replaced, also after a restart; a withheld change made pending after its window
//! on one compromised node's statement, which a fence stops. Nothing of this changes which
//! nodes sign.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use protocol::genesis::{ClusterId, RosterEntry};
use protocol::policy::{Approved, Scheme};
use protocol::roster::{CHANGE_ROSTER_VERSION, ChangeRoster, roster_proposed_message};
use protocol::session::{FailureCode, Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::reshare::{failed_everywhere, verify_eddsa};
use super::{Cluster, now, request_id, signature_of};
use crate::testkit::{IMAGE, approve, boot};

/// A node to add: its node key and its own KMS key.
fn newcomer(i: u8) -> RosterEntry {
    RosterEntry {
        node_key: ByteBuf::from(
            ed25519_dalek::SigningKey::from_bytes(&[60 + i; 32])
                .verifying_key()
                .to_bytes()
                .to_vec(),
        ),
        kms_key_arn: protocol::KmsKeyArn::parse(&format!(
            "arn:aws:kms:eu-west-1:111122223333:key/newcomer-{i}"
        ))
        .unwrap(),
        pcr3: None,
        pcr4: None,
    }
}

impl Cluster {
    /// A change to `roster` replacing roster version `version`, made now (the nodes' clocks:
    /// `clocks_ahead` orders changes), approved by admins `by` (of the genesis' admins, admin
    /// version 0).
    pub(super) fn roster_request(
        &self,
        version: u32,
        roster: Vec<RosterEntry>,
        by: &[usize],
    ) -> Approved<ChangeRoster> {
        let keys: Vec<&SigningKey> = by.iter().map(|i| &self.admins[*i]).collect();
        self.roster_request_under(version, roster, (0, &keys))
    }

    /// The same, approved by `keys` under admin version `admins`.
    fn roster_request_under(
        &self,
        version: u32,
        roster: Vec<RosterEntry>,
        (admins, keys): (u32, &[&SigningKey]),
    ) -> Approved<ChangeRoster> {
        let created = now() + self.ahead.get();
        let request = ChangeRoster {
            v: CHANGE_ROSTER_VERSION,
            cluster: self.genesis.request.cluster_id(),
            version,
            roster,
            request_id: request_id(),
            created,
            expiry: created + 120,
            admins,
        };
        Approved {
            approvals: approve(&request, keys),
            request,
        }
    }

    /// The genesis roster with `extra` appended.
    pub(super) fn grown(&self, extra: &[RosterEntry]) -> Vec<RosterEntry> {
        let mut roster = self.genesis.request.roster.clone();
        roster.extend_from_slice(extra);
        roster
    }

    pub(super) fn propose(&self, request: &Approved<ChangeRoster>) -> BTreeMap<u16, Outcome> {
        self.run(
            &self.all(),
            SessionKind::ProposeRoster {
                request: request.clone(),
                catch_up: None,
            },
            |_, _| {},
        )
    }
}

/// Every node proposed the change as roster version 1: each statement verifies under the node
/// key the roster lists for it; the new genesis blobs are kept as the proxies keep them.
pub(super) fn proposed(c: &mut Cluster, out: &BTreeMap<u16, Outcome>, request: &ChangeRoster) {
    assert_eq!(out.len(), c.enclaves.len(), "{out:?}");
    let cluster = c.genesis.request.cluster_id();
    for (node, o) in out {
        match o {
            Outcome::RosterProposed {
                version,
                sealed,
                statement,
            } => {
                assert_eq!(*version, 1);
                let entry = &c.genesis.request.roster[usize::from(*node)];
                let key: [u8; 32] = entry.node_key.as_slice().try_into().unwrap();
                let message = roster_proposed_message(&cluster, &key, 1, &request.hash());
                assert!(entry.signed(&message, statement), "node {node}");
                c.blobs[usize::from(*node)][1] = sealed.clone();
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
}

fn refused_with(out: &BTreeMap<u16, Outcome>, code: FailureCode, kind: &str) {
    for m in failed_everywhere(out, code) {
        assert!(m.starts_with(kind), "{m}");
    }
}

/// A 3-node cluster holding a 2-of-3 key: the admins propose growing it to 5 nodes. Every node
/// seals the change as pending and signs that it did; asked again it answers the same; the
/// current roster keeps signing; a restart keeps the proposal; a change the admins approved
/// later replaces it, and the replaced one cannot be brought back.
#[test]
fn a_roster_change_is_proposed_at_every_node_and_the_current_roster_keeps_signing() {
    const KEY: &str = "through-a-proposal";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let sign = |c: &Cluster, nodes: &[u16], message: &[u8]| {
        let out = c.sign(nodes, c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };

    let grow = c.roster_request(0, c.grown(&[newcomer(0), newcomer(1)]), &[0, 1]);
    // Before it, no node's inventory names a proposal.
    let (report, _) = c.inventory(1, &[7; 32], None).unwrap();
    assert_eq!(report.roster_proposal, None);
    let out = c.propose(&grow);
    proposed(&mut c, &out, &grow.request);
    // Each node's inventory (signed by its node key, read by a coordinator rebuilding its
    // database) names the pending change, with the statement it gave.
    let cluster = c.genesis.request.cluster_id();
    for node in c.all() {
        let (report, signature) = c.inventory(usize::from(node), &[7; 32], None).unwrap();
        let entry = &c.genesis.request.roster[usize::from(node)];
        assert!(entry.signed(&report.message(), &signature));
        let held = report.roster_proposal.expect("the pending change");
        assert_eq!(held.request, grow);
        let key: [u8; 32] = entry.node_key.as_slice().try_into().unwrap();
        let message = roster_proposed_message(&cluster, &key, 1, &grow.request.hash());
        assert!(entry.signed(&message, &held.statement), "node {node}");
    }
    // Asked again (a relay that lost the answers): the same statements.
    let again = c.propose(&grow);
    proposed(&mut c, &again, &grow.request);
    let statements = |out: &BTreeMap<u16, Outcome>| -> Vec<ByteBuf> {
        out.values()
            .map(|o| match o {
                Outcome::RosterProposed { statement, .. } => statement.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(statements(&again), statements(&out));
    sign(&c, &[0, 1], b"under the current roster");
    sign(&c, &[1, 2], b"still the current roster");

    // Node 2 restarts from its blobs: the proposal is sealed with its genesis.
    let fresh = boot(&c.ca, 2, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: c.blobs[2].clone(),
    }) {
        EnclaveResponse::Restored { keys, .. } => assert_eq!(keys, vec![KEY.to_string()]),
        other => panic!("restore: {other:?}"),
    }
    c.enclaves[2] = fresh;
    c.admit_all();
    sign(&c, &[0, 2], b"after the restart");

    // The admins replace the proposal with one created later (one node, not two)...
    c.clocks_ahead(10);
    let smaller = c.roster_request(0, c.grown(&[newcomer(2)]), &[0, 2]);
    let out = c.propose(&smaller);
    proposed(&mut c, &out, &smaller.request);
    // ... and a relay cannot bring the first one back, at any node: it was created earlier.
    let out = c.propose(&grow);
    let replaced = hex::encode(smaller.request.hash());
    for m in failed_everywhere(&out, FailureCode::Membership) {
        assert!(
            m.starts_with("roster_change_pending") && m.contains(&replaced),
            "{m}"
        );
    }
    sign(&c, &[0, 1], b"after the replacement");

    // Two changes made in the same second: every node keeps the one with the higher request
    // hash, whichever order they are shown in, so nodes cannot be split between them.
    c.clocks_ahead(10);
    let first = c.roster_request(0, c.grown(&[newcomer(3)]), &[0, 1]);
    let mut second = c.roster_request(0, c.grown(&[newcomer(4)]), &[0, 1]);
    (second.request.created, second.request.expiry) = (first.request.created, first.request.expiry);
    second.approvals = approve(&second.request, &[&c.admins[0], &c.admins[1]]);
    let mut same = [first, second];
    same.sort_by_key(|a| a.request.hash());
    let [lower, higher] = same;
    let out = c.propose(&lower);
    proposed(&mut c, &out, &lower.request);
    let out = c.propose(&higher);
    proposed(&mut c, &out, &higher.request);
    refused_with(
        &c.propose(&lower),
        FailureCode::Membership,
        "roster_change_pending",
    );

    // The admins withdraw it by proposing the roster in force; the withdrawn change cannot
    // come back, and signing never stopped.
    c.clocks_ahead(10);
    let withdraw = c.roster_request(0, c.grown(&[]), &[1, 2]);
    let out = c.propose(&withdraw);
    proposed(&mut c, &out, &withdraw.request);
    refused_with(
        &c.propose(&higher),
        FailureCode::Membership,
        "roster_change_pending",
    );
    sign(&c, &[1, 2], b"after the withdrawal");
}

/// Attacker review helper-56, finding 1: a proposal the replaced admins approved (stolen keys,
/// or removed admins acting before their removal) must not wait for the new admins' roster
/// work. An admin change drops it at every node, sealed so; it cannot be proposed again under
/// the replaced admin version, and a restart restores the node without it.
#[test]
fn an_admin_change_drops_a_pending_roster_proposal() {
    let mut c = Cluster::new(3);
    let all = c.all();
    let theirs = c.roster_request(0, c.grown(&[newcomer(0)]), &[0, 2]);
    let out = c.propose(&theirs);
    proposed(&mut c, &out, &theirs.request);

    let [a0, a2] = [0, 2].map(|i| c.admins[i].clone());
    let n0 = SigningKey::from_bytes(&[41; 32]);
    let change = c.set_admins_request(0, &[a0.clone(), n0.clone()], &[&a0, &a2]);
    let out = c.set_admins(&all, &change, None);
    for (node, o) in &out {
        match o {
            Outcome::AdminsSet { sealed, .. } => c.blobs[usize::from(*node)][1] = sealed.clone(),
            other => panic!("node {node}: {other:?}"),
        }
    }
    refused_with(&c.propose(&theirs), FailureCode::Membership, "stale_admins");
    // Restarted from the blob the admin change sealed, node 1 holds no proposal: the new
    // admins' own change is proposed at every node.
    let fresh = boot(&c.ca, 1, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: c.blobs[1].clone(),
    }) {
        EnclaveResponse::Restored { .. } => {}
        other => panic!("restore: {other:?}"),
    }
    c.enclaves[1] = fresh;
    c.admit_all();
    let ours = c.roster_request_under(0, c.grown(&[newcomer(1)]), (1, &[&a0, &n0]));
    let out = c.propose(&ours);
    proposed(&mut c, &out, &ours.request);
}

/// Refused at every node, nothing sealed: each change a coordinator, a relay or an admin's
/// mistake could put forward.
#[test]
fn roster_changes_the_admins_did_not_approve_or_the_keys_cannot_take_are_refused_everywhere() {
    const KEY: &str = "three-of-three";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 3);

    // One admin's approval; the genesis quorum is two.
    let out = c.propose(&c.roster_request(0, c.grown(&[newcomer(0)]), &[1]));
    failed_everywhere(&out, FailureCode::Refused);
    // A change approved for another cluster.
    let mut other = c.roster_request(0, c.grown(&[newcomer(0)]), &[0, 1]);
    other.request.cluster = ClusterId([9; 32]);
    other.approvals = approve(&other.request, &[&c.admins[0], &c.admins[1]]);
    refused_with(&c.propose(&other), FailureCode::Membership, "other_cluster");
    // A roster version no node holds.
    let out = c.propose(&c.roster_request(1, c.grown(&[newcomer(0)]), &[0, 1]));
    refused_with(&out, FailureCode::Membership, "stale_roster");
    // The roster in force, nothing pending: sealed as a fence (see
    // `a_fence_keeps_a_withheld_roster_change_from_being_made_pending_later`); every change
    // below is created after it.
    let fence = c.roster_request(0, c.grown(&[]), &[0, 1]);
    let out = c.propose(&fence);
    proposed(&mut c, &out, &fence.request);
    c.clocks_ahead(10);
    // Node 1 re-pointed at a KMS key the attacker's account holds; node 0's parent unpinned.
    let mut repointed = c.grown(&[newcomer(0)]);
    repointed[1].kms_key_arn = newcomer(9).kms_key_arn;
    let out = c.propose(&c.roster_request(0, repointed, &[0, 1]));
    refused_with(&out, FailureCode::Membership, "kept_entry_changed");
    let mut unpinned = c.grown(&[newcomer(0)]);
    unpinned[0].pcr4 = Some(ByteBuf::from(vec![4; 48]));
    let out = c.propose(&c.roster_request(0, unpinned, &[0, 1]));
    refused_with(&out, FailureCode::Membership, "kept_entry_changed");
    // Nodes that stay, reordered.
    let mut reordered = c.grown(&[newcomer(0)]);
    reordered.swap(0, 1);
    let out = c.propose(&c.roster_request(0, reordered, &[0, 1]));
    refused_with(&out, FailureCode::Membership, "reordered");
    // Removing a node under a 3-of-3 key: the key could not be reshared to two nodes.
    let mut removed = c.grown(&[]);
    removed.remove(2);
    let out = c.propose(&c.roster_request(0, removed, &[0, 1]));
    for m in failed_everywhere(&out, FailureCode::Membership) {
        assert!(
            m.starts_with("below_threshold") && m.contains("needs 3"),
            "{m}"
        );
    }

    // While a resharing of the key is unfinished (its new generation pending everywhere), no
    // roster change starts: every key is reshared to a new roster from one generation.
    let reshared = c.reshare(
        c.reshare_request(KEY, 0, 2, &[0, 1, 2], &[0, 1]),
        Scheme::EddsaEd25519,
        &pk,
    );
    let out = c.propose(&c.roster_request(0, c.grown(&[newcomer(0)]), &[0, 1]));
    for m in failed_everywhere(&out, FailureCode::Membership) {
        assert!(
            m.starts_with("pending_generation") && m.contains(KEY),
            "{m}"
        );
    }
    // Retired into, the key is 2-of-3: removing a node is now a change the key can take.
    c.retire_all(KEY, &reshared);
    let mut removed = c.grown(&[]);
    removed.remove(2);
    let change = c.roster_request(0, removed, &[0, 1]);
    let out = c.propose(&change);
    proposed(&mut c, &out, &change.request);
}

/// Attacker review helper-57, finding 4: a change the admins approved and never saw proposed
/// (a coordinator withheld it, or its post failed) can be made pending after its window by a
/// coordinator holding one compromised enclave's statement: a node takes a change after its
/// window on another node's statement. The admins fence it off by proposing the roster in
/// force: every node seals the fence, and the withheld change, created before it, is refused
/// everywhere after that, on any node's statement; a change created after the fence is not.
#[test]
fn a_fence_keeps_a_withheld_roster_change_from_being_made_pending_later() {
    let mut c = Cluster::new(3);
    let withheld = c.roster_request(0, c.grown(&[newcomer(0)]), &[0, 1]);
    let at = |c: &Cluster, node: u16, request: &Approved<ChangeRoster>, catch_up| {
        c.run(
            &[node],
            SessionKind::ProposeRoster {
                request: request.clone(),
                catch_up,
            },
            |_, _| {},
        )
        .remove(&node)
        .unwrap()
    };
    // The compromised enclave, node 0, takes it within its window and signs that it did.
    let statement = match at(&c, 0, &withheld, None) {
        Outcome::RosterProposed { statement, .. } => statement,
        other => panic!("{other:?}"),
    };
    // Its window passes. The attack: node 1, shown node 0's statement, takes it.
    c.clocks_ahead(600);
    assert!(
        matches!(
            at(&c, 1, &withheld, None),
            Outcome::Failed {
                code: FailureCode::Refused,
                ..
            }
        ),
        "expired, with no statement"
    );
    assert!(matches!(
        at(&c, 1, &withheld, Some((0, statement.clone()))),
        Outcome::RosterProposed { .. }
    ));
    // The admins fence: the roster in force, proposed with nothing pending at node 2. Every
    // node seals it (at nodes 0 and 1 it replaces the withheld change: created later).
    let fence = c.roster_request(0, c.grown(&[]), &[1, 2]);
    let out = c.propose(&fence);
    proposed(&mut c, &out, &fence.request);
    // The withheld change is refused everywhere now, shown node 0's statement.
    for node in [0, 1, 2] {
        let shown = (node != 0).then(|| (0, statement.clone()));
        match at(&c, node, &withheld, shown) {
            Outcome::Failed {
                code: FailureCode::Membership,
                message,
                ..
            } => assert!(message.starts_with("roster_change_pending"), "{message}"),
            other => panic!("node {node}: {other:?}"),
        }
    }
    // Node 2, restarted from its blobs, keeps the fence.
    let fresh = boot(&c.ca, 2, IMAGE);
    fresh.test_hook(crate::node::TestHook::ClockAhead(c.ahead.get()));
    match fresh.handle(EnclaveRequest::Restore {
        blobs: c.blobs[2].clone(),
    }) {
        EnclaveResponse::Restored { .. } => {}
        other => panic!("restore: {other:?}"),
    }
    c.enclaves[2] = fresh;
    c.admit_all();
    assert!(
        matches!(
            at(&c, 2, &withheld, Some((0, statement.clone()))),
            Outcome::Failed { code: FailureCode::Membership, ref message, .. }
                if message.starts_with("roster_change_pending")
        ),
        "node 2 after its restart"
    );
    // Nothing is pending: a change created after the fence is proposed at every node.
    c.clocks_ahead(10);
    let later = c.roster_request(0, c.grown(&[newcomer(1)]), &[0, 2]);
    let out = c.propose(&later);
    proposed(&mut c, &out, &later.request);

    // A fence made in the same second as a change comes after it, whatever their hashes
    // (helper-58, finding 2): node 0 shown the fence first refuses the change; node 1 shown
    // the change first takes the fence after it, then refuses the change again.
    c.clocks_ahead(10);
    let change = c.roster_request(0, c.grown(&[newcomer(2)]), &[0, 1]);
    let mut fence = c.roster_request(0, c.grown(&[]), &[0, 1]);
    (fence.request.created, fence.request.expiry) = (change.request.created, change.request.expiry);
    fence.approvals = approve(&fence.request, &[&c.admins[0], &c.admins[1]]);
    let refused = |o: Outcome| {
        matches!(o, Outcome::Failed { code: FailureCode::Membership, ref message, .. }
            if message.starts_with("roster_change_pending"))
    };
    assert!(matches!(
        at(&c, 0, &fence, None),
        Outcome::RosterProposed { .. }
    ));
    assert!(refused(at(&c, 0, &change, None)), "node 0");
    assert!(matches!(
        at(&c, 1, &change, None),
        Outcome::RosterProposed { .. }
    ));
    assert!(matches!(
        at(&c, 1, &fence, None),
        Outcome::RosterProposed { .. }
    ));
    assert!(refused(at(&c, 1, &change, None)), "node 1");

    // A fence dated ahead of the nodes' clocks, taken by a node whose clock runs ahead (or a
    // compromised one), is not made current at another node on its statement: it would block
    // every roster change until an admin change (helper-58, finding 3).
    c.clocks_ahead(10);
    let mut future = c.roster_request(0, c.grown(&[]), &[0, 1]);
    // 200 s: beyond any clock skew, within a session id's life at node 0.
    future.request.created += 200;
    future.request.expiry += 200;
    future.approvals = approve(&future.request, &[&c.admins[0], &c.admins[1]]);
    c.enclaves[0].test_hook(crate::node::TestHook::ClockAhead(200));
    let ahead = match at(&c, 0, &future, None) {
        Outcome::RosterProposed { statement, .. } => statement,
        other => panic!("{other:?}"),
    };
    match at(&c, 2, &future, Some((0, ahead))) {
        Outcome::Failed {
            code: FailureCode::Refused,
            message,
            ..
        } => assert!(message.contains("in this node's future"), "{message}"),
        other => panic!("{other:?}"),
    }
}
