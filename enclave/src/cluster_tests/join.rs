//! Joining at a pending roster change (issue 20, the join step). The attacks, each written
//! before the join existed and refused by name, changing nothing: a relay that names another
//! member than the one whose statement it relays, forges a statement, or pairs one change's
//! statement with another approved change; a change or a genesis without its admins' quorum;
//! a genuine enclave of the public image that the change does not list (an operator's own
//! copy); a node whose KMS key is not the one the change lists for its node key; a member of
//! the roster in force asked to join, also one holding only its node key; a change dated
//! beyond the node's clock; a withdrawal offered as something to join; an earlier change
//! brought back after a later one replaced it. A node that joined holds no key and takes
//! no part in the cluster's work until the commit: no session, no admission, no genesis; the
//! roster in force keeps signing throughout.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use protocol::genesis::RosterEntry;
use protocol::policy::{Approved, Scheme};
use protocol::roster::{ChangeRoster, JoinCluster, roster_proposed_message};
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, ErrorCode, Phase};
use serde_bytes::ByteBuf;

use super::reshare::verify_eddsa;
use super::roster::proposed;
use super::{Cluster, enroll, membership_refusal, signature_of};
use crate::server::Enclave;
use crate::testkit::{IMAGE, boot, fresh_session_id, node_arn};

/// The join a relay would hand to a node to add: the founders' chain (no admin or image change
/// here), the change, and member `by`'s statement from `out`.
pub(super) fn join_of(
    c: &Cluster,
    change: &Approved<ChangeRoster>,
    out: &BTreeMap<u16, Outcome>,
    by: u16,
) -> JoinCluster {
    let statement = match &out[&by] {
        Outcome::RosterProposed { statement, .. } => statement.clone(),
        other => panic!("node {by}: {other:?}"),
    };
    JoinCluster {
        genesis: c.genesis.clone(),
        admins: vec![],
        images: vec![],
        rosters: vec![],
        change: change.clone(),
        proposed_by: by,
        statement,
    }
}

pub(super) fn join(e: &Enclave, join: &JoinCluster) -> EnclaveResponse {
    e.handle(EnclaveRequest::JoinCluster { join: join.clone() })
}

/// A node added by a change growing a cluster by one: booted and enrolled at the next index,
/// joined to the members' proposal.
pub(super) struct Joining {
    pub(super) newcomer: Arc<Enclave>,
    pub(super) key: [u8; 32],
    /// Its blobs: the node key's, then the genesis blob of its join.
    pub(super) blobs: Vec<ByteBuf>,
    pub(super) grow: Approved<ChangeRoster>,
    pub(super) join: JoinCluster,
}

/// `c`'s members propose growing to one more node, which is booted, enrolled and joined (at
/// the first member's statement).
pub(super) fn join_one_more(c: &mut Cluster) -> Joining {
    let i = c.enclaves.len();
    let newcomer = boot(&c.ca, i, IMAGE);
    let (blob, key) = enroll(&newcomer, &node_arn(i));
    let mut blobs = vec![blob];
    let grow = c.roster_request(0, c.grown(&[entry_of(key, i)]), &[0, 1]);
    let out = c.propose(&grow);
    proposed(c, &out, &grow.request);
    let join = join_of(c, &grow, &out, 0);
    joined(self::join(&newcomer, &join), &mut blobs);
    Joining {
        newcomer,
        key,
        blobs,
        grow,
        join,
    }
}

/// The index, version and statement of a join that succeeded, its blob kept in `blobs[1]`.
pub(super) fn joined(response: EnclaveResponse, blobs: &mut Vec<ByteBuf>) -> (u16, u32, ByteBuf) {
    match response {
        EnclaveResponse::Joined {
            sealed,
            node,
            version,
            statement,
        } => {
            blobs.truncate(1);
            blobs.push(sealed);
            (node, version, statement)
        }
        other => panic!("join: {other:?}"),
    }
}

fn wrong_phase(response: EnclaveResponse) {
    match response {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::WrongPhase, "{e}"),
        other => panic!("expected wrong_phase, got {other:?}"),
    }
}

pub(super) fn entry_of(node_key: [u8; 32], i: usize) -> RosterEntry {
    RosterEntry {
        node_key: ByteBuf::from(node_key.to_vec()),
        kms_key_arn: node_arn(i),
        pcr3: None,
        pcr4: None,
    }
}

/// A 3-node cluster holding a 2-of-3 key proposes growing to 4; the fourth enclave, enrolled
/// under its own KMS key, joins on a member's statement after every forged or mismatched join
/// is refused. It signs the change's proposed statement as the members did, holds its index in
/// the new roster, restarts into the same state from its blobs, and takes no part in the
/// cluster's work; a change the admins approved later is joined again, the earlier one never
/// comes back, and the roster in force signs throughout.
#[test]
fn a_node_joins_a_pending_roster_change_and_takes_no_part_until_it_is_committed() {
    const KEY: &str = "through-a-join";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let sign = |c: &Cluster, nodes: &[u16], message: &[u8]| {
        let out = c.sign(nodes, c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };
    let cluster = c.genesis.request.cluster_id();

    // The node to add, and an operator's own enclave of the same public image: both genuine,
    // both enrolled, each under its own KMS key.
    let newcomer = boot(&c.ca, 3, IMAGE);
    let (newcomer_blob, newcomer_key) = enroll(&newcomer, &node_arn(3));
    let mut newcomer_blobs = vec![newcomer_blob];
    let outsider = boot(&c.ca, 4, IMAGE);
    let (_, outsider_key) = enroll(&outsider, &node_arn(4));
    let entry = entry_of(newcomer_key, 3);

    let grow = c.roster_request(0, c.grown(std::slice::from_ref(&entry)), &[0, 1]);
    let out = c.propose(&grow);
    proposed(&mut c, &out, &grow.request);
    let good = join_of(&c, &grow, &out, 1);

    // A relay naming another member than the one whose statement it relays.
    let mut misnamed = good.clone();
    misnamed.proposed_by = 0;
    // A statement forged under a key the roster in force does not list.
    let mut forged = good.clone();
    let forger = SigningKey::from_bytes(&[99; 32]);
    let message = roster_proposed_message(
        &cluster,
        &forger.verifying_key().to_bytes(),
        1,
        &grow.request.hash(),
    );
    forged.statement = ByteBuf::from(forger.sign(&message).to_bytes().to_vec());
    // A member's statement over `grow`, paired with another change the admins approved but no
    // member proposed (one listing the operator's enclave too).
    let unproposed = c.roster_request(
        0,
        c.grown(&[entry.clone(), entry_of(outsider_key, 4)]),
        &[0, 2],
    );
    let mut paired = good.clone();
    paired.change = unproposed.clone();
    // An index outside the roster in force.
    let mut outside = good.clone();
    outside.proposed_by = 7;
    for (name, attempt) in [
        ("misnamed", &misnamed),
        ("forged", &forged),
        ("paired", &paired),
        ("outside", &outside),
    ] {
        let m = membership_refusal(join(&newcomer, attempt));
        assert!(m.starts_with("unproven_change"), "{name}: {m}");
    }
    // The change, or the genesis, without its admins' quorum.
    let mut one_admin = good.clone();
    one_admin.change.approvals.truncate(1);
    match join(&newcomer, &one_admin) {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, ErrorCode::Refused, "{e}");
            assert!(e.message.contains("1 distinct approvals, 2 needed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let mut weak_genesis = good.clone();
    weak_genesis.genesis.approvals.truncate(1);
    let m = membership_refusal(join(&newcomer, &weak_genesis));
    assert!(m.starts_with("approvals"), "{m}");
    // The operator's own enclave, given the genuine join: the change does not list it.
    let m = membership_refusal(join(&outsider, &good));
    assert!(m.starts_with("not_in_roster"), "{m}");
    assert_eq!(outsider.phase(), Phase::Enrolled);
    // A change that lists the operator's enclave under another KMS key than it is sealed
    // under (its blobs would be sealed where the roster does not say).
    let mut elsewhere = entry_of(outsider_key, 4);
    elsewhere.kms_key_arn = node_arn(9);
    let mut rekeyed = good.clone();
    rekeyed.change = c.roster_request(0, c.grown(&[entry.clone(), elsewhere]), &[0, 1]);
    let m = membership_refusal(join(&outsider, &rekeyed));
    assert!(m.starts_with("kms_key_mismatch"), "{m}");
    // A withdrawal offers nothing to join.
    let mut withdrawal = good.clone();
    withdrawal.change = c.roster_request(0, c.grown(&[]), &[0, 1]);
    let m = membership_refusal(join(&newcomer, &withdrawal));
    assert!(m.starts_with("nothing_to_join"), "{m}");
    // A member of the roster in force is not a node to add: its phase refuses first, and an
    // enclave holding only a member's node key (its genesis blob lost, or withheld by its
    // parent) is refused by name, so a join never stands in for a member's own genesis.
    wrong_phase(join(&c.enclaves[0], &good));
    let keyless = boot(&c.ca, 0, IMAGE);
    match keyless.handle(EnclaveRequest::Restore {
        blobs: vec![c.blobs[0][0].clone()],
    }) {
        EnclaveResponse::Restored { keys, .. } => assert!(keys.is_empty()),
        other => panic!("restore: {other:?}"),
    }
    assert_eq!(keyless.phase(), Phase::Enrolled);
    let m = membership_refusal(join(&keyless, &good));
    assert!(m.starts_with("listed_in_force"), "{m}");
    assert_eq!(keyless.phase(), Phase::Enrolled);
    // A change dated beyond the node's clock's skew (one compromised member's statement over
    // it would park the node on it): not yet.
    let mut ahead = good.clone();
    ahead.change = c.roster_request(0, c.grown(std::slice::from_ref(&entry)), &[0, 1]);
    ahead.change.request.created += 3_600;
    ahead.change.request.expiry += 3_600;
    ahead.change.approvals =
        crate::testkit::approve(&ahead.change.request, &[&c.admins[0], &c.admins[1]]);
    match join(&newcomer, &ahead) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::NotYet, "{e}"),
        other => panic!("{other:?}"),
    }
    // Nothing of this changed the node to add.
    assert_eq!(newcomer.phase(), Phase::Enrolled);

    // The join: index 3 of the new roster, the change's proposed statement by its node key.
    let (node, version, statement) = joined(join(&newcomer, &good), &mut newcomer_blobs);
    assert_eq!((node, version), (3, 1));
    let message = roster_proposed_message(&cluster, &newcomer_key, 1, &grow.request.hash());
    assert!(entry.signed(&message, &statement));
    assert_eq!(newcomer.phase(), Phase::Joining);
    // Asked again (a relay that lost the answer), on another member's statement: the same.
    let again = join_of(&c, &grow, &out, 2);
    assert_eq!(joined(join(&newcomer, &again), &mut newcomer_blobs).0, 3);

    // It takes no part in the cluster's work until the commit.
    let genesis = c.genesis.clone();
    let takes_no_part = |e: &Enclave| {
        assert_eq!(e.phase(), Phase::Joining);
        wrong_phase(e.handle(EnclaveRequest::StartSession {
            session: fresh_session_id(),
            participants: vec![0, 1, 3],
            kind: SessionKind::Presign {
                key_id: KEY.into(),
                path: vec![],
            },
        }));
        wrong_phase(e.handle(EnclaveRequest::AdmitPeers { documents: vec![] }));
        wrong_phase(e.handle(EnclaveRequest::GenesisV2 {
            request: genesis.clone(),
        }));
        wrong_phase(e.handle(EnclaveRequest::Inventory {
            nonce: ByteBuf::from(vec![7; 32]),
            after: None,
        }));
        match e.handle(EnclaveRequest::Status) {
            EnclaveResponse::Status {
                phase, node, keys, ..
            } => assert_eq!((phase, node, keys), (Phase::Joining, None, 0)),
            other => panic!("status: {other:?}"),
        }
    };
    takes_no_part(&newcomer);
    sign(&c, &[0, 1], b"the roster in force signs while a node joins");

    // Restarted from its blobs, it is the same joining node; a restore given a member's key
    // share as well (a parent mixing stores) is refused: the share is bound to that member.
    let fresh = boot(&c.ca, 3, IMAGE);
    let mut with_share = newcomer_blobs.clone();
    assert_eq!(c.blobs[0].len(), 3, "node key, genesis, the key's share");
    with_share.push(c.blobs[0][2].clone());
    match fresh.handle(EnclaveRequest::Restore { blobs: with_share }) {
        EnclaveResponse::Error(e) => {
            // The share is bound to its member's node key, not this node's.
            assert_eq!(e.code, ErrorCode::Sealing, "{e}");
            assert!(
                e.message.starts_with("wrong_binding")
                    && e.message.contains(&hex::encode(
                        c.genesis.request.roster[0].node_key.as_slice()
                    ))
                    && e.message.contains(&hex::encode(newcomer_key)),
                "{e}"
            );
        }
        other => panic!("restore: {other:?}"),
    }
    let fresh = boot(&c.ca, 3, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: newcomer_blobs.clone(),
    }) {
        EnclaveResponse::Restored { keys, aux, .. } => assert!(keys.is_empty() && !aux),
        other => panic!("restore: {other:?}"),
    }
    takes_no_part(&fresh);
    let newcomer = fresh;

    // The admins replace the change with one created later that adds the operator's enclave
    // too: the members propose it, the node to add joins it at the same index, and the
    // operator's enclave may join it at index 4.
    c.clocks_ahead(10);
    let both = c.roster_request(
        0,
        c.grown(&[entry.clone(), entry_of(outsider_key, 4)]),
        &[1, 2],
    );
    let out = c.propose(&both);
    proposed(&mut c, &out, &both.request);
    assert_eq!(
        joined(
            join(&newcomer, &join_of(&c, &both, &out, 0)),
            &mut newcomer_blobs
        )
        .0,
        3
    );
    let mut outsider_blobs = vec![];
    assert_eq!(
        joined(
            join(&outsider, &join_of(&c, &both, &out, 2)),
            &mut outsider_blobs
        )
        .0,
        4
    );
    // The replaced change does not come back at the node that joined it first.
    let m = membership_refusal(join(&newcomer, &good));
    assert!(
        m.starts_with("roster_change_pending") && m.contains(&hex::encode(both.request.hash())),
        "{m}"
    );
    takes_no_part(&newcomer);
    sign(&c, &[1, 2], b"the roster in force still signs");
}
