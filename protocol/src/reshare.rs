//! Resharing and refreshing a key held by the cluster (issue 19, ADR 0018,
//! `docs/resharing.md`): the admin-approved request, what one node deals to the others, and
//! the proof that retires the old generation.
//!
//! A resharing is the import's verifiable secret redistribution with the cluster's own nodes as
//! dealers: each dealer node deals its Lagrange-weighted share of the key's current generation
//! to every node, in an envelope signed under the session's execution id, with a sub-share for
//! each node sealed to that node's attested X25519 identity key. Every node checks every
//! dealing against the public shares of the generation it holds, confirms the same digest
//! with every other node, and seals its share of the next generation as *pending*. The old
//! generation signs until the node is shown every node's receipt of the new one
//! ([`RetireGeneration`](crate::session::SessionKind::RetireGeneration)); only then is it
//! dropped, so a crash in between leaves the old generation usable, never neither.
//!
//! A dealer's dealing travels as an import's does ([`crate::import::SealedDealing`]: the
//! commitments, an ephemeral X25519 key, one sealed sub-share per node in index order), in its
//! own signed envelope, so every dealing is the dealer's word.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::genesis::ClusterId;
use crate::policy::Canonical;

/// Version of [`ReshareKey`].
pub const RESHARE_VERSION: u8 = 1;

/// Reshare (or, at the same threshold, refresh) a key the cluster holds, approved by the admin
/// quorum. Every node of the roster holds a share of the new generation (the cluster's
/// auxiliary info covers exactly its nodes); `dealers` are the nodes that deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshareKey {
    /// [`RESHARE_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The key.
    pub key_id: String,
    /// The generation being replaced: the key's current one at every dealer (the new one is
    /// this plus one). A request for a generation that is no longer current is refused.
    pub generation: u32,
    /// The new threshold, 2 to the number of nodes (the key's own for a refresh).
    pub threshold: u16,
    /// The nodes that deal, in increasing index order: at least the key's current threshold.
    pub dealers: Vec<u16>,
    /// Single-use request id (16 bytes), across every request kind that makes key material.
    pub request_id: ByteBuf,
    /// Valid from (Unix seconds).
    pub created: u64,
    /// Valid until (Unix seconds).
    pub expiry: u64,
    /// The key's refresh schedule from the new generation on: `Some(0)` turns it off,
    /// `Some(s)` lets the coordinator refresh the key, unapproved, once its current generation
    /// is `s` seconds old at a node ([`scheduled_refresh`]); `None` keeps the key's schedule.
    /// Absent from the canonical bytes when `None`, so a request without it is what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_every: Option<u64>,
    /// A scheduled refresh: the request the coordinator makes itself, with no approvals, once
    /// the key's schedule is due. Every unapproved request has it and no approved one does, so
    /// that a request's hash (what its receipts and every node's statements about its
    /// generation name) says which kind it is: the same bytes cannot be run, or disowned, once
    /// as approved and once as unapproved (attacker review helper-40). Absent from the
    /// canonical bytes when `false`.
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub scheduled: bool,
    /// Who approves the key's signing requests from the new generation on (issue 20):
    /// `Some(policy)` replaces the key's approvers and approvals needed, and the key's policy
    /// version goes up by one when the new generation becomes current; `None` keeps them. The
    /// change lands with the generation, at every node at once as far as signing goes: until
    /// the retire, requests approved under the old version sign and the new version's wait;
    /// after it, the old version's are void. Absent from the canonical bytes when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::KeyPolicy>,
    /// The admin version its approvals were given under (issue 20): a node refuses to start it
    /// under another, and resolves it against the admins of the version it names. Absent from
    /// the canonical bytes at 0; always 0 for a scheduled refresh (no approvals).
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub admins: u32,
}

impl ReshareKey {
    /// Whether this is the shape of a scheduled refresh: marked `scheduled`, at the key's own
    /// threshold, and never with a schedule, a policy or an admin version of its own (only the
    /// admins set those). Each node accepts it, unapproved, only for a key whose sealed schedule is on and
    /// due at that node.
    pub fn is_scheduled_shape(&self, key_threshold: u16) -> bool {
        self.scheduled
            && self.threshold == key_threshold
            && self.refresh_every.is_none()
            && self.policy.is_none()
            && self.admins == 0
    }
}

/// The longest refresh schedule a resharing may set: ten years, in seconds.
pub const MAX_REFRESH_EVERY: u64 = 10 * 365 * 86_400 + 2 * 86_400;

/// A key's refresh schedule, as each node holds it sealed with the key's current generation:
/// the period (0: off) and when this node sealed the generation (its own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Seconds between refreshes; 0: no scheduled refresh.
    pub every: u64,
    /// When this node sealed the current generation (Unix seconds, this node's clock).
    pub since: u64,
}

/// Why a node refuses an unapproved (scheduled) refresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The key has no refresh schedule: a resharing needs the admins' approvals.
    #[error(
        "key has no refresh schedule: a resharing or refresh needs the admin quorum's approvals"
    )]
    Off,
    /// The request changes the threshold, the schedule or the policy: only the admins do that.
    #[error("a scheduled refresh keeps the key's threshold ({0}), schedule and policy")]
    NotARefresh(u16),
    /// The current generation is not old enough yet at this node.
    #[error("the next scheduled refresh is due at {due} (this node's clock: {now})")]
    NotDue {
        /// When the refresh is due.
        due: u64,
        /// This node's clock.
        now: u64,
    },
}

/// Checks an unapproved refresh of a key against its sealed schedule at `now`: the key's
/// threshold and schedule unchanged, the schedule on, and the current generation at least
/// `every` seconds old. A coordinator can thus refresh a key no more often than the admins
/// chose, and never change who can sign with it.
pub fn scheduled_refresh(
    request: &ReshareKey,
    key_threshold: u16,
    schedule: Schedule,
    now: u64,
) -> Result<(), ScheduleError> {
    if schedule.every == 0 {
        return Err(ScheduleError::Off);
    }
    if !request.is_scheduled_shape(key_threshold) {
        return Err(ScheduleError::NotARefresh(key_threshold));
    }
    let due = schedule.since.saturating_add(schedule.every);
    if now < due {
        return Err(ScheduleError::NotDue { due, now });
    }
    Ok(())
}

impl Canonical for ReshareKey {
    const DOMAIN: &'static [u8] = b"cohort/reshare-key/v1\0";
}

/// Domain tag of a node's statement that a generation of a key is its current one
/// ([`retired_message`]).
pub const RETIRED_DOMAIN: &[u8] = b"cohort/generation-retired/v1\0";

/// What node `node` signs with its node key once generation `generation` of `key_id`, made by
/// the resharing whose SHA-256 is `request`, is its current generation and the one before is
/// gone (attacker review helper-37: a key receipt says a node *sealed* a generation; this says
/// it signs with it). A client requires every node's.
///
/// `RETIRED_DOMAIN || cluster id || u16 node || u32 len || key id || u32 generation || request`
pub fn retired_message(
    cluster: &ClusterId,
    node: u16,
    key_id: &str,
    generation: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    statement(RETIRED_DOMAIN, cluster, node, key_id, generation, request)
}

fn statement(
    domain: &[u8],
    cluster: &ClusterId,
    node: u16,
    key_id: &str,
    generation: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    let mut m = domain.to_vec();
    m.extend_from_slice(&cluster.0);
    m.extend_from_slice(&node.to_be_bytes());
    m.extend_from_slice(
        &u32::try_from(key_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(key_id.as_bytes());
    m.extend_from_slice(&generation.to_be_bytes());
    m.extend_from_slice(request);
    m
}

/// Checks that `signatures` (by node index, one per node of `genesis`' roster) are every
/// node's [`retired_message`] for this generation under the node key the roster lists for it;
/// the first node whose is missing or does not verify is named.
pub fn verify_retired(
    genesis: &crate::genesis::Genesis,
    key_id: &str,
    generation: u32,
    request: &[u8; 32],
    signatures: &[(u16, Vec<u8>)],
) -> Result<(), u16> {
    verify_retired_in(
        (&genesis.cluster_id(), &genesis.roster),
        (key_id, generation),
        request,
        signatures,
    )
}

/// [`verify_retired`] under `roster`, a roster of cluster `cluster` (the genesis' or one a
/// committed change made: the one in force when the nodes retired into the generation).
pub fn verify_retired_in(
    (cluster, roster): (&crate::genesis::ClusterId, &[crate::genesis::RosterEntry]),
    (key_id, generation): (&str, u32),
    request: &[u8; 32],
    signatures: &[(u16, Vec<u8>)],
) -> Result<(), u16> {
    for node in (0u16..).take(roster.len()) {
        let ok = signatures
            .iter()
            .find(|(n, _)| *n == node)
            .is_some_and(|(_, sig)| {
                retired_by((cluster, roster), node, (key_id, generation), request, sig)
            });
        if !ok {
            return Err(node);
        }
    }
    Ok(())
}

/// Whether `signature` is node `node`'s [`retired_message`] for this generation under the node
/// key `roster`, a roster of cluster `cluster`, lists for it.
pub fn retired_by(
    (cluster, roster): (&crate::genesis::ClusterId, &[crate::genesis::RosterEntry]),
    node: u16,
    (key_id, generation): (&str, u32),
    request: &[u8; 32],
    signature: &[u8],
) -> bool {
    let message = retired_message(cluster, node, key_id, generation, request);
    roster
        .get(usize::from(node))
        .is_some_and(|entry| entry.signed(&message, signature))
}

/// Domain tag of a node's statement that it never sealed, and never will seal, the generation
/// a resharing request makes ([`disowned_message`]).
pub const DISOWNED_DOMAIN: &[u8] = b"cohort/reshare-disowned/v1\0";

/// What node `node` signs with its node key when it disowns the resharing of `key_id` to
/// `generation` by the request whose SHA-256 is `request`: that generation is not current at
/// this node and never will be (it never sealed it and can no longer start the request, or it
/// holds it pending *frozen*: never to be retired into). Only every node's statement lets a
/// node drop a pending generation ([`crate::session::SessionKind::AbandonGeneration`]): then no
/// node has it current and none ever will (attacker review helper-37: one node's word, even an
/// honest one's, does not show that another node did not retire into it).
///
/// `DISOWNED_DOMAIN || cluster id || u16 node || u32 len || key id || u32 generation || request`
pub fn disowned_message(
    cluster: &ClusterId,
    node: u16,
    key_id: &str,
    generation: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    statement(DISOWNED_DOMAIN, cluster, node, key_id, generation, request)
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    fn refresh(threshold: u16, refresh_every: Option<u64>) -> ReshareKey {
        ReshareKey {
            v: RESHARE_VERSION,
            cluster: ClusterId([7; 32]),
            key_id: "k".into(),
            generation: 3,
            threshold,
            dealers: vec![0, 1],
            request_id: ByteBuf::from(vec![1; 16]),
            created: 0,
            expiry: 10,
            refresh_every,
            scheduled: true,
            policy: None,
            admins: 0,
        }
    }

    /// Issue 20: only the admins change a key's policy; a scheduled refresh never carries one.
    #[test]
    fn a_scheduled_refresh_carries_no_policy() {
        let on = Schedule {
            every: 100,
            since: 0,
        };
        let mut r = refresh(2, None);
        assert_eq!(scheduled_refresh(&r, 2, on, 100), Ok(()));
        r.policy = Some(crate::policy::KeyPolicy {
            approvers: vec![],
            approvals_needed: 1,
        });
        assert_eq!(
            scheduled_refresh(&r, 2, on, 100),
            Err(ScheduleError::NotARefresh(2))
        );
    }

    #[test]
    fn a_scheduled_refresh_is_due_exactly_every_seconds_after_the_generation() {
        let on = Schedule {
            every: 100,
            since: 1_000,
        };
        let r = refresh(2, None);
        assert_eq!(
            scheduled_refresh(&r, 2, on, 1_099),
            Err(ScheduleError::NotDue {
                due: 1_100,
                now: 1_099
            })
        );
        assert_eq!(scheduled_refresh(&r, 2, on, 1_100), Ok(()));
        assert_eq!(
            scheduled_refresh(&r, 2, Schedule::default(), u64::MAX),
            Err(ScheduleError::Off)
        );
        assert_eq!(
            scheduled_refresh(&refresh(3, None), 2, on, 5_000),
            Err(ScheduleError::NotARefresh(2))
        );
        assert_eq!(
            scheduled_refresh(&refresh(2, Some(100)), 2, on, 5_000),
            Err(ScheduleError::NotARefresh(2))
        );
        // No overflow at the end of time.
        let late = Schedule {
            every: u64::MAX,
            since: u64::MAX,
        };
        assert!(scheduled_refresh(&r, 2, late, u64::MAX - 1).is_err());
    }

    #[test]
    fn a_request_without_a_schedule_has_the_canonical_bytes_it_had() {
        // The field is left out when absent: requests signed before it existed still verify.
        let mut approved = refresh(2, None);
        approved.scheduled = false;
        let bytes = approved.canonical_bytes();
        assert!(!bytes.windows(13).any(|w| w == b"refresh_every"));
        assert!(!bytes.windows(9).any(|w| w == b"scheduled"));
        // A scheduled refresh's bytes differ from the same request's approved form.
        assert_ne!(refresh(2, None).canonical_bytes(), bytes);
        assert_eq!(
            scheduled_refresh(&approved, 2, Schedule { every: 1, since: 0 }, 9),
            Err(ScheduleError::NotARefresh(2))
        );
        let bytes = refresh(2, Some(0)).canonical_bytes();
        assert!(bytes.windows(13).any(|w| w == b"refresh_every"));
    }
}
