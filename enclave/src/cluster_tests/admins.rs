//! Changing the cluster's admin set and quorum (issue 20). The attacks: admins who were removed
//! keep approving (alone, or racing the change with one of their own against the version it
//! replaced); a change the current quorum did not approve; a request approved under the new set
//! used before the change landed; a relay applying a change after it expired at a node where
//! it never landed anywhere; a parent restoring a node's genesis from before the change.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use protocol::admins::{SET_ADMINS_VERSION, SetAdmins, admins_set_message};
use protocol::policy::{Approved, CreateKey, Scheme};
use protocol::session::{FailureCode, Outcome, SessionKind};
use serde_bytes::ByteBuf;

use super::reshare::{failed_everywhere, verify_eddsa};
use super::{Cluster, now, request_id, signature_of};
use crate::testkit::{approve, public_keys};

impl Cluster {
    /// A change to admins `admins` (quorum 2) replacing version `version`, approved by `by`.
    pub(super) fn set_admins_request(
        &self,
        version: u32,
        admins: &[SigningKey],
        by: &[&SigningKey],
    ) -> Approved<SetAdmins> {
        let t = now() + self.ahead.get();
        let request = SetAdmins {
            v: SET_ADMINS_VERSION,
            cluster: self.genesis.request.cluster_id(),
            version,
            admins: public_keys(admins),
            admin_quorum: 2,
            request_id: request_id(),
            created: t,
            expiry: t + 120,
        };
        Approved {
            approvals: approve(&request, by),
            request,
        }
    }

    /// Runs an admin change at `nodes`.
    pub(super) fn set_admins(
        &self,
        nodes: &[u16],
        request: &Approved<SetAdmins>,
        catch_up: Option<(u16, ByteBuf)>,
    ) -> BTreeMap<u16, Outcome> {
        self.run(
            nodes,
            SessionKind::SetAdmins {
                request: request.clone(),
                catch_up,
            },
            |_, _| {},
        )
    }

    /// A key creation naming admin version `admins`, approved by `by`.
    fn create_under(&self, key_id: &str, admins: u32, by: &[&SigningKey]) -> Approved<CreateKey> {
        let mut a = self.create_key_request(key_id, Scheme::EddsaEd25519, 2);
        let t = now() + self.ahead.get();
        (a.request.created, a.request.expiry) = (t, t + 120);
        a.request.admins = admins;
        a.approvals = approve(&a.request, by);
        a
    }
}

/// Every node refuses for the admin version.
fn stale_everywhere(out: &BTreeMap<u16, Outcome>) {
    for m in failed_everywhere(out, FailureCode::Membership) {
        assert!(m.starts_with("stale_admins"), "{m}");
    }
}

/// Each node applied the change to `version`: its statement verifies under the node key the
/// roster lists for it. Returns each node's new genesis blob and statement.
fn applied(
    c: &Cluster,
    out: &BTreeMap<u16, Outcome>,
    request: &SetAdmins,
    version: u32,
) -> BTreeMap<u16, (ByteBuf, ByteBuf)> {
    let cluster = c.genesis.request.cluster_id();
    out.iter()
        .map(|(node, o)| match o {
            Outcome::AdminsSet {
                version: v,
                sealed,
                statement,
                ..
            } => {
                assert_eq!(*v, version);
                let message = admins_set_message(&cluster, *node, version, &request.hash());
                assert!(
                    c.genesis.request.roster[usize::from(*node)].signed(&message, statement),
                    "node {node}'s statement"
                );
                (*node, (sealed.clone(), statement.clone()))
            }
            other => panic!("node {node}: {other:?}"),
        })
        .collect()
}

/// The Done-when of issue 20 for the admins: an admin rotation works end to end, the removed
/// admins cannot approve, the added ones can, and requests under a stale admin version are
/// refused by every enclave — including a change of their own racing the real one.
#[test]
fn an_admin_rotation_replaces_who_approves_at_every_node() {
    let mut c = Cluster::new(3);
    let all = c.all();
    let [a0, a1, a2] = [0, 1, 2].map(|i| c.admins[i].clone());
    let (n0, n1) = (
        SigningKey::from_bytes(&[40; 32]),
        SigningKey::from_bytes(&[41; 32]),
    );
    // Version 1: admin 0 stays, admins 1 and 2 go, n0 and n1 come; quorum 2.
    let next = [a0.clone(), n0.clone(), n1.clone()];

    // One admin's approval is not the quorum; a change that names a version not held, or is
    // approved by the admins it brings in, is refused everywhere: nothing is sealed.
    let out = c.set_admins(&all, &c.set_admins_request(0, &next, &[&a0]), None);
    failed_everywhere(&out, FailureCode::Refused);
    let out = c.set_admins(&all, &c.set_admins_request(1, &next, &[&a0, &a2]), None);
    stale_everywhere(&out);
    let out = c.set_admins(&all, &c.set_admins_request(0, &next, &[&n0, &n1]), None);
    failed_everywhere(&out, FailureCode::Refused);
    // A key creation approved by the new admins before the change lands is refused.
    let early = c.create_under("early", 1, &[&n0, &n1]);
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: early.clone(),
        },
        |_, _| {},
    );
    stale_everywhere(&out);

    // The change, approved by admins 0 and 2 (the genesis quorum), lands at every node.
    let change = c.set_admins_request(0, &next, &[&a0, &a2]);
    let out = c.set_admins(&all, &change, None);
    let sealed = applied(&c, &out, &change.request, 1);
    for (node, (blob, _)) in &sealed {
        c.blobs[usize::from(*node)][1] = blob.clone();
    }
    // Asked again (a relay that lost the answers), every node answers the same version.
    applied(&c, &c.set_admins(&all, &change, None), &change.request, 1);

    // The removed admins race it with their own change against version 0: refused everywhere,
    // as is a key creation they approve under version 0, or under version 1.
    let race = c.set_admins_request(0, &[a1.clone(), a2.clone()], &[&a1, &a2]);
    stale_everywhere(&c.set_admins(&all, &race, None));
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("old", 0, &[&a1, &a2]),
        },
        |_, _| {},
    );
    stale_everywhere(&out);
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("old", 1, &[&a0, &a1]),
        },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::Refused);
    // The request approved early by the new admins now lands; the key signs.
    let out = c.run(&all, SessionKind::CreateKey { request: early }, |_, _| {});
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );
    let Outcome::KeyCreated { public_key, .. } = &out[&0] else {
        unreachable!()
    };
    let pk = public_key.to_vec();
    for (node, o) in out {
        if let Outcome::KeyCreated { sealed, .. } = o {
            c.blobs[usize::from(node)].push(sealed);
        }
    }
    let out = c.sign(
        &[0, 1],
        c.sign_request("early", vec![], b"after the change".to_vec()),
        None,
    );
    verify_eddsa(&pk, b"after the change", &signature_of(&out).0);

    // Sealed: node 2 restarted from its new genesis blob keeps version 1.
    c.restart(2, &[]);
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("restarted", 1, &[&n0, &n1]),
        },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );

    // A second change is approved by version 1's quorum and names version 1.
    let third = c.set_admins_request(1, &[n0.clone(), n1.clone()], &[&n0, &n1]);
    applied(&c, &c.set_admins(&all, &third, None), &third.request, 2);
}

/// A node that missed a change (down, or restored by its parent from an older genesis blob)
/// stays at the old version, where admin work needing it waits; after the change's expiry it is
/// caught up only on another roster node's statement that it applied the change, never on its
/// own, a forged one, or one for another change: a change that landed nowhere cannot be
/// applied late.
#[test]
fn a_node_that_missed_a_change_is_caught_up_only_on_another_nodes_statement() {
    let mut c = Cluster::new(3);
    let all = c.all();
    let [a0, _, a2] = [0, 1, 2].map(|i| c.admins[i].clone());
    let n0 = SigningKey::from_bytes(&[40; 32]);
    let next = [a0.clone(), n0.clone()];
    let old_genesis: Vec<ByteBuf> = (0..3).map(|i| c.blobs[i][1].clone()).collect();

    // Nodes 0 and 1 apply the change; node 2 misses it.
    let change = c.set_admins_request(0, &next, &[&a0, &a2]);
    let done = applied(
        &c,
        &c.set_admins(&[0, 1], &change, None),
        &change.request,
        1,
    );
    for (node, (blob, _)) in &done {
        c.blobs[usize::from(*node)][1] = blob.clone();
    }
    // Admin work needs every node: node 2 refuses a creation under version 1 and nodes 0 and 1
    // one under version 0, so neither admin set can act while the cluster is split.
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("split", 1, &[&a0, &n0]),
        },
        |_, _| {},
    );
    assert!(
        matches!(&out[&2], Outcome::Failed { code: FailureCode::Membership, message, .. } if message.starts_with("stale_admins")),
        "{out:?}"
    );

    // Another change the same quorum approved against version 0: it expires too.
    let other = c.set_admins_request(0, &[n0.clone(), a2.clone()], &[&a0, &a2]);
    // The change expires.
    c.clocks_ahead(600);
    // Node 2 alone: refused as expired, with no statement or with its own, a forged one, or
    // another node's for another change.
    let expired = c.set_admins(&[2], &change, None);
    failed_everywhere(&expired, FailureCode::Refused);
    let statement = |node: u16| done[&node].1.clone();
    let mut forged = statement(0);
    forged[0] ^= 1;
    for (catch_up, request) in [
        ((2, statement(0)), &change),
        ((0, forged), &change),
        ((1, statement(0)), &change),
        ((0, statement(0)), &other),
    ] {
        let out = c.set_admins(&[2], request, Some(catch_up));
        for m in failed_everywhere(&out, FailureCode::Refused) {
            assert!(m.contains("statement"), "{m}");
        }
    }
    // With node 0's statement it applies the change.
    let out = c.set_admins(&[2], &change, Some((0, statement(0))));
    let caught = applied(&c, &out, &change.request, 1);
    c.blobs[2][1] = caught[&2].0.clone();

    // A parent restores node 1 from its genesis blob before the change: it is back at version
    // 0, refuses version 1's work, and is caught up the same way.
    c.blobs[1][1] = old_genesis[1].clone();
    c.restart(1, &[]);
    c.enclaves[1].test_hook(crate::node::TestHook::ClockAhead(600));
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("rolled back", 1, &[&a0, &n0]),
        },
        |_, _| {},
    );
    assert!(
        matches!(
            &out[&1],
            Outcome::Failed {
                code: FailureCode::Membership,
                ..
            }
        ),
        "{out:?}"
    );
    let out = c.set_admins(&[1], &change, Some((2, caught[&2].1.clone())));
    applied(&c, &out, &change.request, 1);
    let out = c.run(
        &all,
        SessionKind::CreateKey {
            request: c.create_under("caught up", 1, &[&a0, &n0]),
        },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );
}

/// A resharing approved before an admin change is still resolved after it, against the admins
/// of the version it names; a new resharing under the replaced version is refused.
#[test]
fn a_resharing_approved_before_an_admin_change_is_resolved_under_its_own_version() {
    const KEY: &str = "spanning";
    let mut c = Cluster::new(3);
    let all = c.all();
    c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let [a0, a2] = [0, 2].map(|i| c.admins[i].clone());
    let n0 = SigningKey::from_bytes(&[40; 32]);
    let before = c.reshare_request(KEY, 0, 2, &[0, 1], &[0, 1]);

    let change = c.set_admins_request(0, &[a0.clone(), n0.clone()], &[&a0, &a2]);
    applied(&c, &c.set_admins(&all, &change, None), &change.request, 1);

    let out = c.run(
        &all,
        SessionKind::ResolveGeneration {
            request: before.clone(),
        },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::NotSealed { generation: 1, .. })),
        "{out:?}"
    );
    let out = c.run(&all, SessionKind::ReshareKey { request: before }, |_, _| {});
    stale_everywhere(&out);
    // Named under version 0 but approved by the new admins: refused by version 0's set.
    let mut forged = c.reshare_request(KEY, 0, 2, &[0, 1], &[]);
    forged.approvals = approve(&forged.request, &[&a0, &n0]);
    let out = c.run(
        &all,
        SessionKind::ResolveGeneration { request: forged },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::Refused);
}

/// Attacker review helper-45, finding 1: the replaced admins (their keys stolen: the reason to
/// rotate) approve a change of a key's approvers; a coordinator runs it until every node sealed
/// it, and retires it only after the rotation. The change freezes every pending generation at
/// each node (sealed so), so the retire is refused everywhere, the key keeps its approvers
/// until the generation is abandoned (which voids the policy the change would have replaced),
/// and the new admins set the policy again.
#[test]
fn an_admin_change_freezes_what_the_replaced_admins_left_pending() {
    const KEY: &str = "pending";
    let mut c = Cluster::new(3);
    let all = c.all();
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let [a0, a2] = [0, 2].map(|i| c.admins[i].clone());
    let n0 = SigningKey::from_bytes(&[40; 32]);
    let thief = SigningKey::from_bytes(&[66; 32]);
    let stolen = protocol::policy::KeyPolicy {
        approvers: public_keys(std::slice::from_ref(&thief)),
        approvals_needed: 1,
    };
    // Approved by admins 0 and 1 under version 0, sealed everywhere, not retired.
    let change = c.policy_change(KEY, 0, stolen);
    let pending = c.reshare(change.clone(), Scheme::EddsaEd25519, &pk);

    let rotation = c.set_admins_request(0, &[a0.clone(), n0.clone()], &[&a0, &a2]);
    let out = c.set_admins(&all, &rotation, None);
    for (node, o) in &out {
        match o {
            Outcome::AdminsSet { frozen, .. } => {
                assert_eq!(frozen.len(), 1, "node {node}");
                assert_eq!(frozen[0].0, KEY);
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    // The retire with every node's receipt is refused everywhere: frozen.
    let out = c.retire(&all, KEY, 1, &pending.receipts);
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("frozen"), "{m}");
    }
    // Sealed so: node 1 restarted from the frozen blob refuses it too.
    let again = c.set_admins(&[1], &rotation, None);
    let frozen_blob = match &again[&1] {
        Outcome::AdminsSet { sealed, frozen, .. } => {
            c.blobs[1][1] = sealed.clone();
            frozen[0].1.clone()
        }
        other => panic!("{other:?}"),
    };
    let current = c.blobs[1].pop().unwrap();
    c.restart(1, &[current, frozen_blob]);
    let out = c.retire(&[1], KEY, 1, &pending.receipts);
    failed_everywhere(&out, FailureCode::Refused);
    // The thief's approval signs nothing.
    let out = c.sign(&[0, 1], c.sign_under(KEY, 1, b"thief", &[&thief]), None);
    assert!(
        out.values().all(|o| !matches!(o, Outcome::Signed { .. })),
        "{out:?}"
    );
    // Disowned and abandoned everywhere; the new admins set the key's policy again.
    c.disown_and_abandon(KEY, 1, change, &pending.request);
    let approvers = protocol::policy::KeyPolicy {
        approvers: public_keys(std::slice::from_ref(&c.approvers[0])),
        approvals_needed: 1,
    };
    let mut reset = c.policy_change(KEY, 0, approvers);
    reset.request.admins = 1;
    reset.approvals = approve(&reset.request, &[&a0, &n0]);
    let again = c.reshare(reset, Scheme::EddsaEd25519, &pk);
    let out = c.retire(&all, KEY, 1, &again.receipts);
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::GenerationRetired { .. })),
        "{out:?}"
    );
    let a = c.approvers[0].clone();
    let out = c.sign(&[0, 2], c.sign_under(KEY, 1, b"reset", &[&a]), None);
    verify_eddsa(&pk, b"reset", &signature_of(&out).0);
}
