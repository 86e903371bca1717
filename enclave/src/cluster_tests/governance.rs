//! Governance of a key's policy (issue 20): the admins replace who approves a key's signing
//! requests with an approved resharing that carries the new policy; the enclaves seal it with
//! the new generation and bump the key's policy version when it becomes current. The attacks:
//! an approver the admins removed keeps approving; a request approved under the old policy by
//! approvers in both policies is replayed after the change; a request approved under the new
//! policy is used before the change landed; a coordinator slips a policy into an unapproved
//! refresh; a parent restores a node from a backup of the old policy.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use protocol::policy::{Approved, KeyPolicy, Payload, SIGN_REQUEST_VERSION, Scheme, SignRequest};
use protocol::relay::Relay;
use protocol::reshare::ReshareKey;
use protocol::session::{FailureCode, Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::reshare::{failed_everywhere, verify_eddsa};
use super::{Cluster, now, request_id, signature_of};
use crate::testkit::{approve, public_keys};

impl Cluster {
    /// A request to sign `message` with `key_id`, naming policy version `policy`, approved by
    /// `by`.
    pub(super) fn sign_under(
        &self,
        key_id: &str,
        policy: u32,
        message: &[u8],
        by: &[&SigningKey],
    ) -> Approved<SignRequest> {
        let t = now() + self.ahead.get();
        let request = SignRequest {
            v: SIGN_REQUEST_VERSION,
            cluster: self.genesis.request.cluster_id(),
            key_id: key_id.into(),
            path: vec![],
            payloads: vec![Payload::raw(message.to_vec())],
            request_id: request_id(),
            created: t,
            expiry: t + 120,
            policy,
        };
        Approved {
            approvals: approve(&request, by),
            request,
        }
    }

    /// An admin-approved refresh of `key_id` from `generation` that sets `policy`.
    pub(super) fn policy_change(
        &self,
        key_id: &str,
        generation: u32,
        policy: KeyPolicy,
    ) -> Approved<ReshareKey> {
        let mut a = self.reshare_request(key_id, generation, 2, &[0, 1], &[]);
        a.request.policy = Some(policy);
        let keys: Vec<&SigningKey> = self.admins[..2].iter().collect();
        a.approvals = approve(&a.request, &keys);
        a
    }
}

fn signed(out: &BTreeMap<u16, Outcome>) -> bool {
    out.values().all(|o| matches!(o, Outcome::Signed { .. }))
}

/// Every node refuses, naming the policy version.
fn refused_for_version(out: &BTreeMap<u16, Outcome>) {
    for m in failed_everywhere(out, FailureCode::Refused) {
        assert!(m.contains("policy version"), "{m}");
    }
}

/// The Done-when of issue 20 for a key's approvers: one removed cannot approve the key's next
/// request, one added can, and a request under a stale version is refused by every enclave.
#[test]
fn a_removed_approver_cannot_approve_and_an_added_one_can_once_the_policy_lands() {
    const KEY: &str = "governed";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let gen0: Vec<ByteBuf> = (0..3).map(|i| c.blobs[i].pop().unwrap()).collect();
    let [a0, a1, a2] = [0, 1, 2].map(|i| c.approvers[i].clone());
    let [a0, a1, a2] = [&a0, &a1, &a2];
    let added = SigningKey::from_bytes(&[30; 32]);
    let all = c.all();

    // Under policy version 0 (approvers 0, 1, 2; two needed) approvers 0 and 2 sign.
    let out = c.sign(&[0, 1], c.sign_under(KEY, 0, b"v0", &[a0, a2]), None);
    verify_eddsa(&pk, b"v0", &signature_of(&out).0);
    // A version the key never had is refused everywhere.
    let out = c.sign(&all, c.sign_under(KEY, 1, b"too soon", &[a0, a2]), None);
    refused_for_version(&out);

    // Malformed policies, approved by the admins, are refused by every node: nothing sealed.
    let a = |keys: &[&SigningKey]| -> Vec<ByteBuf> {
        keys.iter()
            .map(|k| ByteBuf::from(k.verifying_key().to_bytes().to_vec()))
            .collect()
    };
    for bad in [
        KeyPolicy {
            approvers: a(&[a1, a1]),
            approvals_needed: 1,
        },
        KeyPolicy {
            approvers: a(&[a1, &added]),
            approvals_needed: 0,
        },
        KeyPolicy {
            approvers: a(&[a1, &added]),
            approvals_needed: 3,
        },
        KeyPolicy {
            approvers: vec![],
            approvals_needed: 1,
        },
        KeyPolicy {
            approvers: vec![ByteBuf::from(vec![1u8; 31])],
            approvals_needed: 1,
        },
    ] {
        let request = c.policy_change(KEY, 0, bad);
        let out = c.run(&all, SessionKind::ReshareKey { request }, |_, _| {});
        failed_everywhere(&out, FailureCode::BadRequest);
    }
    // A coordinator cannot slip a policy into an unapproved (scheduled) refresh.
    let mut slipped = c.reshare_request(KEY, 0, 2, &[0, 1], &[]);
    slipped.request.scheduled = true;
    slipped.request.policy = Some(KeyPolicy {
        approvers: public_keys(std::slice::from_ref(&added)),
        approvals_needed: 1,
    });
    let out = c.run(
        &all,
        SessionKind::ReshareKey { request: slipped },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::Refused);

    // The admins replace approver 0 by a new one: approvers 1, 2 and the new one, two needed.
    let policy = KeyPolicy {
        approvers: a(&[a1, a2, &added]),
        approvals_needed: 2,
    };
    let change = c.policy_change(KEY, 0, policy.clone());
    let gen1 = c.reshare(change, Scheme::EddsaEd25519, &pk);
    // Pending: the old policy still holds everywhere, the new one waits.
    let out = c.sign(&[1, 2], c.sign_under(KEY, 0, b"pending", &[a0, a2]), None);
    verify_eddsa(&pk, b"pending", &signature_of(&out).0);
    let out = c.sign(&all, c.sign_under(KEY, 1, b"early", &[a1, &added]), None);
    refused_for_version(&out);

    let current1 = c.retire_all(KEY, &gen1);
    // Landed. The removed approver's request is refused, under either version.
    let out = c.sign(&all, c.sign_under(KEY, 0, b"removed", &[a0, a2]), None);
    refused_for_version(&out);
    let out = c.sign(&all, c.sign_under(KEY, 1, b"removed", &[a0, a2]), None);
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("not an approver"), "{m}");
    }
    // Approved under the old version by two approvers the new policy keeps: void all the same.
    let out = c.sign(&all, c.sign_under(KEY, 0, b"stale", &[a1, a2]), None);
    refused_for_version(&out);
    // The added approver approves, with approver 1.
    let out = c.sign(&[0, 2], c.sign_under(KEY, 1, b"v1", &[a1, &added]), None);
    verify_eddsa(&pk, b"v1", &signature_of(&out).0);

    // The admins' change cannot be run again: its generation is gone.
    let again = c.policy_change(KEY, 0, policy);
    let out = c.run(&all, SessionKind::ReshareKey { request: again }, |_, _| {});
    assert!(
        !out.values()
            .any(|o| matches!(o, Outcome::KeyReshared { .. })),
        "{out:?}"
    );

    // The policy is sealed with the generation: node 1 restarts with version 1.
    c.restart(1, &[current1[1].clone()]);
    let out = c.sign(
        &[1, 2],
        c.sign_under(KEY, 1, b"restarted", &[&added, a2]),
        None,
    );
    verify_eddsa(&pk, b"restarted", &signature_of(&out).0);

    // A parent restores node 1 from a backup of generation 0 (the old policy) alone: its
    // node takes the removed approver's request, but no other node does, and no quorum of two
    // signs it.
    c.restart(1, &[gen0[1].clone()]);
    for quorum in [[0u16, 1], [1, 2]] {
        let out = c.sign(
            &quorum,
            c.sign_under(KEY, 0, b"rolled back", &[a0, a2]),
            None,
        );
        assert!(!signed(&out), "{out:?}");
        assert!(
            out.values().any(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("policy version"))),
            "{out:?}"
        );
    }
}

impl Cluster {
    /// Starts a signing session of `request` at `quorum` and holds back every envelope: what a
    /// relay that delays a session's rounds has in hand. The relay and the session id.
    fn start_held(&self, quorum: &[u16], request: Approved<SignRequest>) -> (Relay, ByteBuf) {
        let session = crate::testkit::session_id_ahead(self.ahead.get());
        let mut relay = Relay::new(quorum);
        for p in quorum {
            let start = EnclaveRequest::StartSession {
                session: session.clone(),
                participants: quorum.to_vec(),
                kind: SessionKind::Sign {
                    request: request.clone(),
                    payload: 0,
                    presignature: None,
                },
            };
            match self.enclaves[usize::from(*p)].handle(start) {
                EnclaveResponse::Session(update) => relay.absorb(*p, update),
                other => panic!("start at {p}: {other:?}"),
            }
        }
        (relay, session)
    }

    /// Delivers what `relay` holds until the session ends; the outcomes.
    fn release_held(&self, mut relay: Relay, session: &ByteBuf) -> BTreeMap<u16, Outcome> {
        while let Some((node, envelopes)) = relay.next_delivery() {
            let deliver = EnclaveRequest::Deliver {
                session: session.clone(),
                envelopes,
            };
            match self.enclaves[usize::from(node)].handle(deliver) {
                EnclaveResponse::Session(update) => relay.absorb(node, update),
                EnclaveResponse::Error(e) => relay.fail(
                    node,
                    Outcome::Failed {
                        code: e.code.into(),
                        message: e.message,
                        culprits: vec![],
                    },
                ),
                other => panic!("deliver at {node}: {other:?}"),
            }
        }
        relay.outcomes().clone()
    }
}

/// Attacker review helper-42, finding 3: a relay that starts signing a request under the old
/// policy and holds its rounds back until the change landed gets no signature (the retire
/// drops every signing session of the key), nor one that holds them past the request's expiry,
/// and empty deliveries do not keep a session alive.
#[test]
fn a_signing_session_held_across_a_policy_change_or_past_its_expiry_signs_nothing() {
    const KEY: &str = "held";
    let c = {
        let mut c = Cluster::new(3);
        c.create_key(KEY, Scheme::EddsaEd25519, 2);
        c
    };
    let [a0, a2] = [0, 2].map(|i| c.approvers[i].clone());
    let added = SigningKey::from_bytes(&[31; 32]);

    // Started under version 0, held; the admins then remove approver 0.
    let (held, session) = c.start_held(&[0, 1], c.sign_under(KEY, 0, b"held", &[&a0, &a2]));
    let change = c.policy_change(
        KEY,
        0,
        KeyPolicy {
            approvers: public_keys(std::slice::from_ref(&added)),
            approvals_needed: 1,
        },
    );
    let pk = {
        let out = c.sign(&[1, 2], c.sign_under(KEY, 0, b"pk", &[&a0, &a2]), None);
        signature_of(&out).1
    };
    let gen1 = c.reshare(change, Scheme::EddsaEd25519, &pk);
    c.retire_all(KEY, &gen1);
    let out = c.release_held(held, &session);
    assert!(!signed(&out) && !out.is_empty(), "{out:?}");
    assert!(
        out.values().any(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("unknown or finished session"))),
        "{out:?}"
    );

    // Under version 1, valid for 20 s and held past its expiry (not idle for the 30 s that
    // drops a session): refused, nothing signed.
    let mut short = c.sign_under(KEY, 1, b"late", &[&added]);
    short.request.expiry = short.request.created + 20;
    short.approvals = approve(&short.request, &[&added]);
    let (held, session) = c.start_held(&[0, 2], short);
    c.clocks_ahead(25);
    let out = c.release_held(held, &session);
    assert!(!signed(&out) && !out.is_empty(), "{out:?}");
    assert!(
        out.values().any(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("expired while its session ran"))),
        "{out:?}"
    );
    // The version-1 policy signs as usual meanwhile.
    let out = c.sign(&[0, 2], c.sign_under(KEY, 1, b"v1", &[&added]), None);
    verify_eddsa(&pk, b"v1", &signature_of(&out).0);
}

impl Cluster {
    /// Disowns the resharing `change` (which made generation `generation` of `key_id`, its
    /// hash `request`) at every node, then abandons it everywhere on every node's statement: a
    /// policy the change would have replaced is void at every node.
    pub(super) fn disown_and_abandon(
        &self,
        key_id: &str,
        generation: u32,
        change: Approved<ReshareKey>,
        request: &[u8],
    ) {
        let all = self.all();
        let out = self.run(
            &all,
            SessionKind::DisownGeneration { request: change },
            |_, _| {},
        );
        let (statements, _) = disowned_voiding(&out);
        let out = self.run(
            &all,
            SessionKind::AbandonGeneration {
                key_id: key_id.into(),
                generation,
                request: ByteBuf::from(request.to_vec()),
                statements,
            },
            |_, _| {},
        );
        assert!(
            out.values()
                .all(|o| matches!(o, Outcome::GenerationAbandoned { .. })),
            "{out:?}"
        );
    }
}

/// Every node's outcome of disowning `request`, the statements in node order; asserts each
/// node froze its pending copy and voided the policy the change would have replaced.
pub(super) fn disowned_voiding(out: &BTreeMap<u16, Outcome>) -> (Vec<ByteBuf>, Vec<ByteBuf>) {
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for (node, o) in out {
        match o {
            Outcome::Disowned {
                statement,
                sealed: Some(_),
                current: Some(blob),
                ..
            } => {
                statements.push(statement.clone());
                current.push(blob.clone());
            }
            other => panic!("disown at {node}: {other:?}"),
        }
    }
    (statements, current)
}

/// Attacker review helper-42, finding 2: a policy change disowned everywhere, retired into at
/// some nodes through a thaw and abandoned at the others, left the abandoned side signing
/// under the policy the admins replaced. A disowned policy change now voids the policy it
/// would have replaced (sealed so), until the admins set a policy again.
#[test]
fn a_disowned_policy_change_leaves_no_node_signing_under_the_replaced_policy() {
    const KEY: &str = "split";
    const RETRY: &str = "retry";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let gen0: Vec<ByteBuf> = (0..3).map(|i| c.blobs[i].pop().unwrap()).collect();
    let [a0, a2] = [0, 2].map(|i| c.approvers[i].clone());
    let added = SigningKey::from_bytes(&[32; 32]);
    let all = c.all();
    let new_policy = KeyPolicy {
        approvers: public_keys(std::slice::from_ref(&added)),
        approvals_needed: 1,
    };

    // The admins remove approver 0; the change is sealed pending at every node.
    let change = c.policy_change(KEY, 0, new_policy.clone());
    let gen1 = c.reshare(change.clone(), Scheme::EddsaEd25519, &pk);
    // The coordinator has every node disown it.
    let out = c.run(
        &all,
        SessionKind::DisownGeneration {
            request: change.clone(),
        },
        |_, _| {},
    );
    let (statements, voided) = disowned_voiding(&out);
    // Node 0's parent restores the blobs from before the disowning: node 0 retires into the
    // new generation and says so, and its statement thaws node 1.
    c.restart(0, &[gen0[0].clone(), gen1.sealed[0].clone()]);
    let out = c.retire(&[0], KEY, 1, &gen1.receipts);
    let Outcome::GenerationRetired { statement, .. } = out[&0].clone() else {
        panic!("{out:?}")
    };
    let out = c.retire_thawing(&[1], KEY, 1, &gen1.receipts, Some((0, statement)));
    assert!(
        matches!(out[&1], Outcome::GenerationRetired { .. }),
        "{out:?}"
    );
    // Node 2 abandons it on every node's disowned statement.
    let out = c.run(
        &[2],
        SessionKind::AbandonGeneration {
            key_id: KEY.into(),
            generation: 1,
            request: ByteBuf::from(gen1.request.to_vec()),
            statements,
        },
        |_, _| {},
    );
    assert!(
        matches!(out[&2], Outcome::GenerationAbandoned { .. }),
        "{out:?}"
    );
    // Node 0's parent rolls it back to generation 0 once more: nodes 0 and 2 share it, and
    // the removed approver approves under version 0. Node 2 refuses: its policy is void.
    c.restart(0, &[gen0[0].clone()]);
    let split = |c: &Cluster| c.sign(&[0, 2], c.sign_under(KEY, 0, b"split", &[&a0, &a2]), None);
    let out = split(&c);
    assert!(!signed(&out), "{out:?}");
    assert!(
        out.values().any(
            |o| matches!(o, Outcome::Failed { message, .. } if message.contains("policy_void"))
        ),
        "{out:?}"
    );
    // Sealed so: node 2 restarted from the blob its disowning left keeps refusing.
    c.restart(2, &[voided[2].clone()]);
    let out = split(&c);
    assert!(!signed(&out), "{out:?}");

    // Without an attack, a policy change that failed leaves the key signing nothing under the
    // old policy, and the admins' next change (at the same generation) lands.
    c.create_key(RETRY, Scheme::EddsaEd25519, 2);
    let pk = {
        let out = c.sign(&[0, 1], c.sign_under(RETRY, 0, b"pk", &[&a0, &a2]), None);
        signature_of(&out).1
    };
    let change = c.policy_change(RETRY, 0, new_policy.clone());
    let failed = c.reshare(change.clone(), Scheme::EddsaEd25519, &pk);
    c.disown_and_abandon(RETRY, 1, change, &failed.request);
    let out = c.sign(&all, c.sign_under(RETRY, 0, b"old", &[&a0, &a2]), None);
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("policy_void"), "{m}");
    }
    let again = c.policy_change(RETRY, 0, new_policy);
    let gen1 = c.reshare(again, Scheme::EddsaEd25519, &pk);
    c.retire_all(RETRY, &gen1);
    let out = c.sign(&[1, 2], c.sign_under(RETRY, 1, b"v1", &[&added]), None);
    verify_eddsa(&pk, b"v1", &signature_of(&out).0);
}

/// Attacker review helper-43, findings 1, 2 and 4: a coordinator cannot void a key's policy
/// without a change the admins approved and every node sealed. A forged unapproved request
/// carrying a policy is refused by every node; an approved change that never ran (or failed
/// before anything was sealed), disowned, voids nothing; the key signs throughout.
#[test]
fn only_a_sealed_admin_approved_change_voids_a_policy() {
    const KEY: &str = "unvoided";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let [a0, a2] = [0, 2].map(|i| c.approvers[i].clone());
    let all = c.all();
    let policy = KeyPolicy {
        approvers: public_keys(&[SigningKey::from_bytes(&[33; 32])]),
        approvals_needed: 1,
    };
    let signs = |c: &Cluster, message: &'static [u8]| {
        let out = c.sign(&[0, 2], c.sign_under(KEY, 0, message, &[&a0, &a2]), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };

    // Forged: unapproved, marked scheduled, with a policy (and, separately, a schedule).
    for field in ["policy", "schedule"] {
        let mut forged = c.reshare_request(KEY, 0, 2, &[0, 1], &[]);
        forged.request.scheduled = true;
        match field {
            "policy" => forged.request.policy = Some(policy.clone()),
            _ => forged.request.refresh_every = Some(60),
        }
        let out = c.run(
            &all,
            SessionKind::DisownGeneration { request: forged },
            |_, _| {},
        );
        for m in failed_everywhere(&out, FailureCode::Refused) {
            assert!(m.contains("never sets a key's policy or schedule"), "{m}");
        }
        signs(&c, b"after a forged disowning");
    }

    // Approved, never run: disowned everywhere, nothing voided.
    let never_run = c.policy_change(KEY, 0, policy);
    let out = c.run(
        &all,
        SessionKind::DisownGeneration { request: never_run },
        |_, _| {},
    );
    assert!(
        out.values().all(|o| matches!(
            o,
            Outcome::Disowned {
                sealed: None,
                current: None,
                ..
            }
        )),
        "{out:?}"
    );
    signs(&c, b"after an approved change was disowned unrun");
}
