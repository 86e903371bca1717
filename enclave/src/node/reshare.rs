//! Resharing and refreshing a key the cluster holds (issue 19, ADR 0018, `docs/resharing.md`):
//! the dealers the admin-approved request names deal their Lagrange-weighted shares of the
//! key's current generation to every node — the Feldman commitments broadcast, each node's
//! sub-share point to point (encrypted to that node's attested identity key under the
//! session's execution id) — and every node checks every dealing against the public shares of
//! the generation it holds itself, confirms the same digest with every other node and seals
//! its share of the next generation as pending. The pending generation signs nothing until the
//! node is shown every node's receipt of it ([`Node::retire_generation`]); only then is the old
//! one dropped.
//!
//! The old committee comes from this node's own share, never from the request or the relay:
//! a dealer that deals anything but its share of this key fails the constant-term check, and
//! every envelope is signed by its sender, so a dealing is its dealer's word.

use protocol::policy::{Approved, Canonical};
use protocol::receipt::KeyReceipt;
use protocol::reshare::{
    MAX_REFRESH_EVERY, RESHARE_VERSION, ReshareKey, ScheduleError, scheduled_refresh,
};
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use sha2::Digest;

use super::keys::Share;
use super::machine::Machine;
use super::redistribute::{Cheat, Committee, MakeShare, Part, StartError, start};
use super::session::{Purpose, Start};
use super::single_use::{key_id_use, reshare_use};
use super::{Node, NodeError, bad, internal};
use crate::mpc::ecdsa::{SecretAuxInfo, SecretKeyShare};
use crate::mpc::eddsa::SecretEddsaShare;
use crate::seal::BlobKind;

/// What a resharing session makes once it ends well: the next generation, pending.
#[derive(Clone)]
pub(super) struct Resharing {
    pub(super) key_id: String,
    /// The new generation.
    pub(super) generation: u32,
    pub(super) threshold: u16,
    /// SHA-256 of the approved request's canonical bytes (the new receipts name it).
    pub(super) request_hash: [u8; 32],
    /// What the request consumes once the session succeeds (`single_use::reshare_use`).
    pub(super) use_key: Vec<u8>,
    pub(super) created: u64,
    pub(super) expiry: u64,
    /// The new generation's refresh schedule (seconds; 0: off).
    pub(super) refresh_every: u64,
    /// The key's new policy, if the resharing replaces it (issue 20).
    pub(super) policy: Option<protocol::policy::KeyPolicy>,
}

/// An approved resharing is never marked `scheduled`: that mark is what tells the hash of an
/// unapproved request from the same bytes approved (attacker review helper-40).
pub(super) fn not_scheduled(r: &ReshareKey) -> Result<(), NodeError> {
    if r.scheduled {
        return Err(bad(
            "a resharing the admins approve is never marked scheduled",
        ));
    }
    Ok(())
}

impl Node {
    /// Starts a resharing (all nodes, in index order): checks the request against this node's
    /// own record of the key, and deals if it is one of the dealers.
    pub(super) fn start_reshare(
        &mut self,
        participants: &[u16],
        request: &Approved<ReshareKey>,
    ) -> Result<Start, NodeError> {
        if !self.all_nodes(participants)? {
            return Err(bad("a resharing involves all nodes, in index order"));
        }
        let cheat = self.take_cheat();
        let r = &request.request;
        let g = self.check_request((r.v, RESHARE_VERSION), &r.cluster, &r.request_id)?;
        let (me, nodes) = (g.node, g.nodes);
        self.authorize_reshare(request)?;
        self.refuse_while_prepared()?;
        let use_key = reshare_use(r);
        self.guard
            .check(&use_key, r.created, r.expiry, self.now())?;
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        if key.generation != r.generation {
            return Err(NodeError::Refused(format!(
                "key {} is at generation {} here; the request reshares generation {}",
                r.key_id, key.generation, r.generation
            )));
        }
        // One resharing of a generation at a time, everywhere: a pending generation is never
        // replaced, only retired into (every node sealed it) or abandoned (every node disowned
        // it, `node/resolve.rs`). Replacing it at some nodes would let a coordinator retire one resharing at
        // some nodes and another elsewhere (attacker review helper-36).
        if let Some(p) = &key.pending {
            return Err(NodeError::Refused(format!(
                "key {} has a pending generation {} (request sha256 {}): it is resolved (retired \
                 into or abandoned) first",
                r.key_id,
                p.generation,
                p.request_hash
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )));
        }
        let next = r
            .generation
            .checked_add(1)
            .ok_or_else(|| bad("the key is at its last generation"))?;
        if r.threshold < 2 || r.threshold > nodes {
            return Err(bad("threshold must be between 2 and the number of nodes"));
        }
        let increasing = r.dealers.windows(2).all(|w| w[0] < w[1]);
        if !increasing
            || r.dealers.iter().any(|d| *d >= nodes)
            || r.dealers.len() < usize::from(key.threshold)
        {
            return Err(bad(format!(
                "the dealers must be at least the key's threshold ({}) of its nodes, each once, \
                 in increasing order (got {:?})",
                key.threshold, r.dealers
            )));
        }
        let request_hash: [u8; 32] = sha2::Sha256::digest(r.canonical_bytes()).into();
        let threshold = r.threshold;
        if r.refresh_every.is_some_and(|s| s > MAX_REFRESH_EVERY) {
            return Err(bad(format!(
                "a refresh schedule is at most {MAX_REFRESH_EVERY} s (ten years)"
            )));
        }
        let refresh_every = r.refresh_every.unwrap_or(key.schedule.every);
        if let Some(policy) = &r.policy {
            policy
                .check()
                .map_err(|e| bad(format!("the key's new policy: {e}")))?;
        }
        let part = Part {
            me,
            committee: Committee::within(nodes, &r.dealers),
            old_threshold: key.threshold,
            threshold,
            context: request_hash,
        };
        let refused = |e: StartError| bad(format!("resharing refused: {e}"));
        let (machine, first, kind): (Box<dyn Machine>, _, _) = match &key.share {
            Share::Ecdsa(share) => {
                let held = share.held().map_err(internal)?;
                let chain_code = share.extended_public_key().chain_code;
                let aux = self.aux.as_ref().ok_or_else(|| {
                    NodeError::Refused("ECDSA keys need auxiliary info first".into())
                })?;
                let aux = SecretAuxInfo::from_bytes(&aux.to_bytes().map_err(internal)?)
                    .map_err(internal)?;
                let make: MakeShare<_> = Box::new(move |index, new| {
                    SecretKeyShare::from_redistributed(index, new, threshold, chain_code, aux)
                        .map(Share::from)
                });
                let (m, first) = start(held.into(), part, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EcdsaShare)
            }
            Share::Eddsa(share) => {
                let held = share.held().map_err(internal)?;
                let make: MakeShare<_> = Box::new(move |index, new| {
                    SecretEddsaShare::from_redistributed(index, new, threshold)
                        .map(|s| Share::from(Box::new(s)))
                });
                let (m, first) = start(held.into(), part, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EddsaShare)
            }
        };
        let data_key = self.sealing.data_key(kind, &r.key_id)?;
        // Held for the whole resharing: no other resharing or import of this key id meanwhile.
        let hold = key_id_use(&r.key_id);
        self.claim(&hold)?;
        let resharing = Resharing {
            key_id: r.key_id.clone(),
            generation: next,
            threshold,
            request_hash,
            use_key,
            created: r.created,
            expiry: r.expiry,
            refresh_every,
            policy: r.policy.clone(),
        };
        Ok(Start::new(machine, Purpose::ReshareKey(resharing), first)
            .holding(hold)
            .sealed_under(data_key))
    }

    /// Whether `request` may start a resharing of its key here: approved by the admin quorum,
    /// or, with no approvals at all, a refresh the key's sealed schedule allows now by this
    /// enclave's clock ([`protocol::reshare::scheduled_refresh`]).
    pub(super) fn authorize_reshare(
        &self,
        request: &Approved<ReshareKey>,
    ) -> Result<(), NodeError> {
        let r = &request.request;
        if !request.approvals.is_empty() {
            self.genesis()?
                .check_admins(r, &request.approvals, r.admins)?;
            return not_scheduled(r);
        }
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        match scheduled_refresh(r, key.threshold, key.schedule, self.now()) {
            Ok(()) => Ok(()),
            Err(e @ ScheduleError::NotDue { .. }) => Err(NodeError::NotYet(format!(
                "an unapproved refresh of key {}: {e}",
                r.key_id
            ))),
            Err(e) => Err(NodeError::Refused(format!(
                "an unapproved resharing of key {}: {e}",
                r.key_id
            ))),
        }
    }

    #[cfg(test)]
    pub(super) fn take_cheat(&mut self) -> Option<Cheat> {
        self.test.cheat.take()
    }

    #[cfg(not(test))]
    pub(super) fn take_cheat(&mut self) -> Option<Cheat> {
        None
    }

    /// Makes key `key_id`'s pending generation `generation` its current one, once `receipts`
    /// (one node-key signature per node, by index) show that every node of the roster sealed
    /// exactly that generation: the same public key, chain code, threshold and request. Drops
    /// the old generation's share and its presignatures. Answered again (the current share
    /// sealed anew) when `generation` is current already, so a relay that lost the answer can
    /// finish.
    ///
    /// A pending generation this node froze (it disowned it) is retired into only with
    /// `thaw`: another roster node's signed statement that the generation is current there
    /// (`protocol::reshare::retired_message`). That node was shown every node's receipt, and,
    /// current there, it never signs that the generation is disowned, so the generation can
    /// never be abandoned anywhere: this node's own disowning statement can never count, and
    /// staying frozen would only leave the key split between generations (attacker review
    /// helper-39, finding 1, the open attack of helper-37).
    pub(super) fn retire_generation(
        &mut self,
        key_id: &str,
        generation: u32,
        receipts: &[ByteBuf],
        thaw: Option<&(u16, ByteBuf)>,
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let roster = &g
            .pinned
            .as_ref()
            .ok_or(super::MembershipError::LegacyGenesis)?
            .roster;
        let cluster = g
            .cluster_id()
            .ok_or(super::MembershipError::LegacyGenesis)?;
        let nodes = g.nodes;
        if self.in_flight.contains(&key_id_use(key_id)) {
            return Err(NodeError::InProgress(format!(
                "a session of key {key_id} that changes its shares is running"
            )));
        }
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        if generation == 0 {
            return Err(bad(
                "generation 0 is a key's first: nothing is retired into it",
            ));
        }
        if key.generation == generation && key.pending.is_none() {
            let request = key.request.ok_or_else(|| {
                NodeError::Refused(format!(
                    "key {key_id}'s current generation names no request"
                ))
            })?;
            let sealed = self.seal_as_current(key_id, false)?;
            let statement = self.retired_statement(key_id, generation, &request)?;
            return Ok(Outcome::GenerationRetired {
                key_id: key_id.to_string(),
                generation,
                sealed: ByteBuf::from(sealed),
                statement: ByteBuf::from(statement),
            });
        }
        let pending = key
            .pending
            .as_ref()
            .filter(|p| p.generation == generation)
            .ok_or_else(|| {
                NodeError::Refused(format!(
                    "key {key_id} has no pending generation {generation} here (current {})",
                    key.generation
                ))
            })?;
        if pending.frozen {
            let pinned = g
                .pinned
                .as_ref()
                .ok_or(super::MembershipError::LegacyGenesis)?;
            let shown = thaw.is_some_and(|(node, statement)| {
                *node != g.node
                    && pinned.roster.get(usize::from(*node)).is_some_and(|entry| {
                        entry.signed(
                            &protocol::reshare::retired_message(
                                &cluster,
                                *node,
                                key_id,
                                generation,
                                &pending.request_hash,
                            ),
                            statement,
                        )
                    })
            });
            if !shown {
                return Err(NodeError::Refused(format!(
                    "generation {generation} of key {key_id} is frozen here (disowned): it is \
                     retired into only on another node's signed word that it is current there, \
                     else abandoned"
                )));
            }
        }
        if receipts.len() != usize::from(nodes) {
            return Err(NodeError::Refused(format!(
                "retiring into generation {generation} takes every node's receipt ({nodes}), \
                 not {}",
                receipts.len()
            )));
        }
        let (public_key, chain_code) = pending.share.public_key();
        let claimed = KeyReceipt {
            v: protocol::receipt::KEY_RECEIPT_VERSION,
            cluster,
            node: 0,
            key_id: key_id.to_string(),
            scheme: pending.share.scheme(),
            threshold: pending.threshold,
            participants: (0..nodes).collect(),
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            generation,
            request: ByteBuf::from(pending.request_hash.to_vec()),
            policy_version: 0,
            policy: None,
        }
        .with_policy(pending.policy.version, &pending.policy.policy);
        for (node, (signature, entry)) in (0u16..).zip(receipts.iter().zip(roster)) {
            let receipt = KeyReceipt {
                node,
                ..claimed.clone()
            };
            if !entry.signed(&receipt.message(), signature) {
                return Err(NodeError::Refused(format!(
                    "node {node}'s receipt does not show it sealed generation {generation} of \
                     key {key_id} as this node did (same key, threshold and request): the old \
                     generation stays"
                )));
            }
        }
        // Sealed and signed before anything changes: if either fails, the old generation stays
        // current.
        let request = pending.request_hash;
        let sealed = self.seal_as_current(key_id, true)?;
        let statement = self.retired_statement(key_id, generation, &request)?;
        self.promote(key_id)?;
        self.presignatures.retain(|_, p| p.key_id != key_id);
        self.drop_sessions_of(key_id);
        tracing::info!(key = key_id, generation, "generation retired into");
        Ok(Outcome::GenerationRetired {
            key_id: key_id.to_string(),
            generation,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
        })
    }

    /// This node's signed statement that generation `generation` of key `key_id`, made by the
    /// resharing whose hash is `request`, is the one it signs with
    /// (`protocol::reshare::retired_message`).
    fn retired_statement(
        &self,
        key_id: &str,
        generation: u32,
        request: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        let g = self.genesis()?;
        let cluster = g
            .cluster_id()
            .ok_or(super::MembershipError::LegacyGenesis)?;
        let message =
            protocol::reshare::retired_message(&cluster, g.node, key_id, generation, request);
        Ok(self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?
            .key
            .sign(&message)
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .to_vec())
    }
}
