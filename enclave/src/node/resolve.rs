//! Resolving a resharing that did not finish everywhere (issue 19, `docs/resharing.md`,
//! attacker reviews helper-36 and helper-37). A pending generation is never replaced; it ends in
//! one of two ways, each safe whatever the coordinator does:
//!
//! * **retired into**, on every node's receipt of it (`Node::retire_generation`): every node
//!   sealed it, and since no pending generation is replaced, every node still holds it;
//! * **abandoned**, on every node's signed statement that it is not current there and never
//!   will be: a node holding it pending *freezes* it first (sealed so: it is never retired into),
//!   a node that never sealed it consumes the request (it can never start it). With every
//!   node's statement no node has it current and none ever will, so dropping it anywhere
//!   splits nothing. One node's word is not enough: another node may have retired into it.
//!
//! `ResolveGeneration` only asks where a resharing stands, so that the coordinator retires what
//! every node sealed instead of freezing it.

use protocol::policy::{Approved, Canonical};
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt};
use protocol::reshare::{RESHARE_VERSION, ReshareKey, disowned_message};
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use sha2::Digest;
use tracing::info;

use super::membership::MembershipError;
use super::single_use::{key_id_use, reshare_use};
use super::{Node, NodeError, bad, internal};

/// A resharing request checked for this node: its key id, the generation it makes and its hash.
struct Named {
    key_id: String,
    generation: u32,
    hash: [u8; 32],
}

impl Node {
    /// Checks an approved resharing request named in a resolution (version, cluster, admin
    /// quorum) and that no session changing the key's shares runs.
    fn named(&self, request: &Approved<ReshareKey>) -> Result<Named, NodeError> {
        let r = &request.request;
        let g = self.check_request((r.v, RESHARE_VERSION), &r.cluster, &r.request_id)?;
        // An unapproved request must be marked scheduled, and then needs no other gate here:
        // its hash differs from every approved request's (the mark is in it), so it names only
        // the generation it made itself, and what it consumes is in a space of its own
        // (`reshare_use`); a resolution of one works whatever the key's schedule is now
        // (attacker reviews helper-39, findings 2 and 3, and helper-40, finding 1).
        if request.approvals.is_empty() {
            if !r.scheduled {
                return Err(NodeError::Refused(
                    "an unapproved resharing is only ever a scheduled refresh".into(),
                ));
            }
            // And only ever one that changes nothing but the shares: no schedule or policy of
            // its own, as every node refuses to run one (helper-43, finding 1: a forged
            // unapproved request carrying a policy, disowned, voided a key's policy).
            if r.policy.is_some() || r.refresh_every.is_some() {
                return Err(NodeError::Refused(
                    "an unapproved resharing never sets a key's policy or schedule".into(),
                ));
            }
        } else {
            // Against the admins of the version it names: an admin change never strands a
            // resharing approved before it.
            g.check_admins_at(r, &request.approvals, r.admins)?;
            super::reshare::not_scheduled(r)?;
        }
        if self.in_flight.contains(&key_id_use(&r.key_id)) {
            return Err(NodeError::InProgress(format!(
                "a session of key {} that changes its shares is running",
                r.key_id
            )));
        }
        Ok(Named {
            key_id: r.key_id.clone(),
            generation: r
                .generation
                .checked_add(1)
                .ok_or_else(|| bad("the key is at its last generation"))?,
            hash: sha2::Sha256::digest(r.canonical_bytes()).into(),
        })
    }

    /// Where the resharing `request` stands here, changing nothing: this node's receipt of the
    /// generation it makes, if it sealed it (and whether it is current, or frozen), else
    /// `NotSealed`.
    pub(super) fn resolve_generation(
        &mut self,
        request: &Approved<ReshareKey>,
    ) -> Result<Outcome, NodeError> {
        let n = self.named(request)?;
        let g = self.genesis()?;
        let (me, nodes) = (g.node, g.nodes);
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let key = self
            .keys
            .get(&n.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", n.key_id)))?;
        let sealed = match &key.pending {
            Some(p) if p.generation == n.generation && p.request_hash == n.hash => Some((
                &p.share,
                p.threshold,
                false,
                p.frozen,
                (p.policy.version, &p.policy.policy),
            )),
            _ if key.generation == n.generation && key.request == Some(n.hash) => Some((
                &key.share,
                key.threshold,
                true,
                false,
                (key.policy_version, &key.policy),
            )),
            _ => None,
        };
        let Some((share, threshold, current, frozen, (version, policy))) = sealed else {
            return Ok(Outcome::NotSealed {
                key_id: n.key_id,
                generation: n.generation,
            });
        };
        let (public_key, chain_code) = share.public_key();
        let receipt = self
            .sign_receipt(
                KeyReceipt {
                    v: KEY_RECEIPT_VERSION,
                    cluster,
                    node: me,
                    key_id: n.key_id.clone(),
                    scheme: share.scheme(),
                    threshold,
                    participants: (0..nodes).collect(),
                    public_key: ByteBuf::from(public_key),
                    chain_code: chain_code.map(ByteBuf::from),
                    generation: n.generation,
                    request: ByteBuf::from(n.hash.to_vec()),
                    policy_version: 0,
                    policy: None,
                }
                .with_policy(version, policy),
            )
            .map_err(internal)?;
        Ok(Outcome::Sealed {
            key_id: n.key_id,
            generation: n.generation,
            current,
            frozen,
            receipt: ByteBuf::from(receipt),
        })
    }

    /// Makes sure the generation `request` makes never becomes current here, and signs so:
    /// refused where it is current; frozen (and sealed so) where it is pending; elsewhere the
    /// request is consumed, or found unable ever to start (its window over, older than this
    /// boot). A request not valid yet could start later: refused.
    pub(super) fn disown_generation(
        &mut self,
        request: &Approved<ReshareKey>,
    ) -> Result<Outcome, NodeError> {
        let n = self.named(request)?;
        let r = &request.request;
        let g = self.genesis()?;
        let me = g.node;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let key = self
            .keys
            .get(&n.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", n.key_id)))?;
        if key.generation == n.generation && key.request == Some(n.hash) {
            return Err(NodeError::Refused(format!(
                "generation {} of key {} is current here: it is retired into, never disowned",
                n.generation, n.key_id
            )));
        }
        let holds = key
            .pending
            .as_ref()
            .is_some_and(|p| p.generation == n.generation && p.request_hash == n.hash);
        let sealed = if holds {
            // Frozen and sealed so before the statement exists: a restart cannot thaw it. A
            // parent that restores the older blob makes its node forget its statement; with
            // the coordinator, that node's retired statement can then thaw others
            // (docs/threat-model.md, helper-40 finding 2: closed only by rolled-back blobs no
            // longer opening).
            let sealed = self.seal_pending_frozen(&n.key_id)?;
            if let Some(p) = self
                .keys
                .get_mut(&n.key_id)
                .and_then(|k| k.pending.as_mut())
            {
                p.frozen = true;
            }
            Some(ByteBuf::from(sealed))
        } else {
            let now = self.now();
            if r.created > now {
                return Err(NodeError::NotYet(format!(
                    "the request is valid from {}, after this enclave's clock: it could still \
                     start here",
                    r.created
                )));
            }
            // Whatever the outcome, the clock never goes back below now for this guard.
            match self
                .guard
                .consume(&reshare_use(r), r.created, r.expiry, now)
            {
                Ok(()) => {}
                // Already consumed, expired, too long, inverted or older than this boot: it
                // can never start here.
                Err(
                    crate::policy::PolicyError::Replayed | crate::policy::PolicyError::Expired(_),
                ) => {
                    self.guard.observe(now);
                }
                Err(e) => return Err(e.into()),
            }
            None
        };
        let statement = self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?
            .key
            .sign(&disowned_message(
                &cluster,
                me,
                &n.key_id,
                n.generation,
                &n.hash,
            ))
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        // A disowned change of the key's policy voids the policy it would have replaced, here
        // and sealed so before the statement leaves (attacker review helper-42, finding 2):
        // were the generation retired into at some nodes (a thaw) and abandoned at others, the
        // abandoned side would otherwise keep signing under the policy the admins replaced.
        let current = self.void_replaced_policy(request, holds, n.generation)?;
        info!(key = %n.key_id, generation = n.generation, frozen = holds, "a resharing disowned");
        Ok(Outcome::Disowned {
            key_id: n.key_id,
            generation: n.generation,
            statement: ByteBuf::from(statement.to_vec()),
            sealed,
            current,
        })
    }

    /// Voids key `r.key_id`'s current policy when the admin-approved `request`, disowned here,
    /// would have replaced it and this node sealed its generation (`holds`): it carries a
    /// policy and replaces the key's current generation (its new one is `generation`). Only a
    /// generation sealed here can have been sealed everywhere and so retired into elsewhere; a
    /// change that never sealed here (it failed to start, or was never run) voids nothing
    /// (helper-43, findings 2 and 4). Returns the current share sealed again with its policy
    /// void, each time it is asked (a parent that lost the first copy gets another: finding 3),
    /// for the parent to store; `None` when nothing is voided. Only an admin-approved resharing
    /// that sets a policy makes it approve again. Running signing sessions of the key end.
    fn void_replaced_policy(
        &mut self,
        request: &Approved<ReshareKey>,
        holds: bool,
        generation: u32,
    ) -> Result<Option<ByteBuf>, NodeError> {
        let r = &request.request;
        let Some(key) = self.keys.get(&r.key_id) else {
            return Ok(None);
        };
        if request.approvals.is_empty()
            || !holds
            || r.policy.is_none()
            || key.generation.checked_add(1) != Some(generation)
        {
            return Ok(None);
        }
        let was = key.policy_void;
        if let Some(key) = self.keys.get_mut(&r.key_id) {
            key.policy_void = true;
        }
        match self.seal_as_current(&r.key_id, false) {
            Ok(sealed) => {
                info!(key = %r.key_id, "a disowned policy change voids the policy it replaced");
                self.drop_sessions_of(&r.key_id);
                Ok(Some(ByteBuf::from(sealed)))
            }
            Err(e) => {
                if let Some(key) = self.keys.get_mut(&r.key_id) {
                    key.policy_void = was;
                }
                Err(e)
            }
        }
    }

    /// Drops key `key_id`'s pending generation `generation` of request `request` on every
    /// node's statement (`statements`, by node index) that it is not current there and never
    /// will be. A node without that pending generation answers the same (nothing to drop).
    pub(super) fn abandon_generation(
        &mut self,
        key_id: &str,
        generation: u32,
        request: &[u8],
        statements: &[ByteBuf],
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let roster = &g
            .pinned
            .as_ref()
            .ok_or(MembershipError::LegacyGenesis)?
            .roster;
        let hash: [u8; 32] = request
            .try_into()
            .map_err(|_| bad("a request hash is 32 bytes"))?;
        if self.in_flight.contains(&key_id_use(key_id)) {
            return Err(NodeError::InProgress(format!(
                "a session of key {key_id} that changes its shares is running"
            )));
        }
        if statements.len() != roster.len() {
            return Err(NodeError::Refused(format!(
                "abandoning generation {generation} of key {key_id} takes every node's \
                 statement ({}), not {}",
                roster.len(),
                statements.len()
            )));
        }
        for ((node, entry), statement) in (0u16..).zip(roster).zip(statements) {
            let message = disowned_message(&cluster, node, key_id, generation, &hash);
            if !entry.signed(&message, statement) {
                return Err(NodeError::Refused(format!(
                    "node {node}'s statement does not disown generation {generation} of key \
                     {key_id} by that request"
                )));
            }
        }
        let key = self
            .keys
            .get_mut(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        match &key.pending {
            Some(p) if p.generation == generation && p.request_hash == hash => {
                key.pending = None;
                info!(key = key_id, generation, "a pending generation abandoned");
            }
            Some(_) => {
                return Err(NodeError::Refused(format!(
                    "key {key_id}'s pending generation here is another resharing's"
                )));
            }
            None => {}
        }
        Ok(Outcome::GenerationAbandoned {
            key_id: key_id.to_string(),
            generation,
        })
    }
}
