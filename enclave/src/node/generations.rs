//! Key generations (issue 19): a resharing's new generation kept pending beside the current
//! one, made current once every node's receipt of it is shown, and, on restore, which of a
//! key's sealed generations is current.

use std::collections::BTreeMap;

use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt};
use protocol::reshare::Schedule;
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use tracing::info;
use zeroize::Zeroizing;

use super::keys::{Key, KeyRecord, Share, load_share};
use super::{Node, NodeError, bad, internal};
use crate::mpc::MpcError;
use crate::seal::{BlobKind, DataKey};

/// A resharing's new generation of a key, until every node's receipt of it is shown.
pub(super) struct Pending {
    pub(super) generation: u32,
    pub(super) threshold: u16,
    pub(super) request_hash: [u8; 32],
    pub(super) share: Share,
    /// Disowned (`node/resolve.rs`): never to be retired into, only abandoned.
    pub(super) frozen: bool,
    /// The refresh schedule the generation carries (the key's once it is retired into).
    pub(super) schedule: Schedule,
    /// The policy the generation carries, with its version (the key's once retired into).
    pub(super) policy: Versioned,
}

/// A key policy with its version (issue 20).
#[derive(Clone)]
pub(super) struct Versioned {
    pub(super) policy: protocol::policy::KeyPolicy,
    pub(super) version: u32,
    /// It approves nothing (`KeyRecord::policy_void`).
    pub(super) void: bool,
}

impl Key {
    /// The key's current policy with its version.
    pub(super) fn versioned(&self) -> Versioned {
        Versioned {
            policy: self.policy.clone(),
            version: self.policy_version,
            void: self.policy_void,
        }
    }
}

/// The refresh schedule sealed in a record.
fn schedule_of(record: &KeyRecord) -> Schedule {
    Schedule {
        every: record.refresh_every,
        since: record.since,
    }
}

/// A 32-byte request hash from a record (`None` if absent or malformed).
fn hash32(b: &Option<ByteBuf>) -> Option<[u8; 32]> {
    b.as_ref().and_then(|b| b.as_slice().try_into().ok())
}

impl Node {
    /// Seals key `key_id`'s current share (or, with `pending`, its pending one) as the key's
    /// current generation, changing nothing here.
    pub(super) fn seal_as_current(
        &self,
        key_id: &str,
        pending: bool,
    ) -> Result<Vec<u8>, NodeError> {
        self.seal_record(key_id, pending, true)
    }

    /// Seals key `key_id`'s pending generation again, frozen (disowned: never to be retired
    /// into), changing nothing here.
    pub(super) fn seal_pending_frozen(&self, key_id: &str) -> Result<Vec<u8>, NodeError> {
        self.seal_record(key_id, true, false)
    }

    /// Seals key `key_id`'s current share, or its pending one, as current or (a pending one
    /// only) as pending and frozen.
    fn seal_record(
        &self,
        key_id: &str,
        pending: bool,
        current: bool,
    ) -> Result<Vec<u8>, NodeError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        let (share, threshold, generation, request, schedule, policy) =
            match (&key.pending, pending) {
                (Some(p), true) => (
                    &p.share,
                    p.threshold,
                    p.generation,
                    Some(p.request_hash),
                    p.schedule,
                    p.policy.clone(),
                ),
                (None, true) => {
                    return Err(NodeError::Refused(format!(
                        "key {key_id} has no pending generation"
                    )));
                }
                (_, false) => (
                    &key.share,
                    key.threshold,
                    key.generation,
                    key.request,
                    key.schedule,
                    key.versioned(),
                ),
            };
        let record = KeyRecord {
            key_id: key_id.to_string(),
            scheme: share.scheme(),
            threshold,
            policy: policy.policy,
            policy_version: policy.version,
            policy_void: policy.void,
            share: ByteBuf::from(share.to_bytes().map_err(internal)?.to_vec()),
            generation,
            current,
            request: request.map(|r| ByteBuf::from(r.to_vec())),
            frozen: !current,
            refresh_every: schedule.every,
            since: schedule.since,
            incoming: None,
            roster: self.roster_now(),
        };
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&record, &mut *plain)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        drop(record);
        Ok(self.sealing.seal(share.kind(), key_id, &plain)?)
    }

    /// Makes key `key_id`'s pending generation its current one; the old share is dropped.
    pub(super) fn promote(&mut self, key_id: &str) -> Result<(), NodeError> {
        let key = self
            .keys
            .get_mut(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        // Everything that can fail first: nothing changes unless all of it does (helper-42,
        // finding 5).
        let approvers = match &key.pending {
            Some(p) => crate::policy::keys32(&p.policy.policy.approvers)
                .map_err(|e| NodeError::Internal(e.to_string()))?,
            None => {
                return Err(NodeError::Refused(format!(
                    "key {key_id} has no pending generation"
                )));
            }
        };
        let Some(p) = key.pending.take() else {
            return Err(NodeError::Internal("the pending generation went".into()));
        };
        key.share = p.share;
        key.threshold = p.threshold;
        key.generation = p.generation;
        key.request = Some(p.request_hash);
        key.schedule = p.schedule;
        // The policy lands with the generation: requests named under the old version are void
        // from here on, and the new version's sign.
        key.approvers = approvers;
        key.approvals_needed = p.policy.policy.approvals_needed;
        key.policy = p.policy.policy;
        // A void policy stays void unless the new generation sets a policy (helper-43,
        // finding 9: a pending generation sealed before the void carries none).
        key.policy_void =
            p.policy.void || (key.policy_void && p.policy.version == key.policy_version);
        key.policy_version = p.policy.version;
        Ok(())
    }

    /// Seals `record` (a key share with its metadata) under `data_key`; the plaintext is
    /// zeroized.
    pub(super) fn seal_key_record(
        &self,
        data_key: DataKey,
        record: KeyRecord,
    ) -> Result<Vec<u8>, MpcError> {
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&record, &mut *plain)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        let kind = match record.scheme {
            protocol::policy::Scheme::EcdsaSecp256k1 => BlobKind::EcdsaShare,
            protocol::policy::Scheme::EddsaEd25519 => BlobKind::EddsaShare,
        };
        let key_id = record.key_id.clone();
        drop(record);
        self.sealing
            .seal_with(data_key, kind, &key_id, &plain)
            .map_err(|e| MpcError::Internal(e.to_string()))
    }

    /// Seals a resharing's new generation of a key as pending, signs its receipt and keeps it
    /// beside the current one (a key never has two pending generations: a resharing does not
    /// start while one is pending). The schedule it carries starts from now, if it has one.
    pub(super) fn store_pending(
        &mut self,
        data_key: DataKey,
        r: super::reshare::Resharing,
        participants: &[u16],
        share: Share,
    ) -> Result<Outcome, MpcError> {
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| MpcError::Internal(format!("key {} is gone", r.key_id)))?;
        if key.pending.is_some() {
            return Err(MpcError::Internal(format!(
                "key {} got a pending generation during the resharing",
                r.key_id
            )));
        }
        if key.generation.checked_add(1) != Some(r.generation) {
            return Err(MpcError::Internal(format!(
                "key {} changed generation during the resharing",
                r.key_id
            )));
        }
        let (public_key, chain_code) = share.public_key();
        if (public_key.clone(), chain_code.clone()) != key.share.public_key() {
            return Err(MpcError::Internal(
                "the new generation's key is not the key's".into(),
            ));
        }
        // The schedule starts again from the moment this node sealed the new generation.
        let schedule = Schedule {
            every: r.refresh_every,
            since: if r.refresh_every == 0 { 0 } else { self.now() },
        };
        // A new policy gets the next version; none keeps the key's.
        let policy = match &r.policy {
            Some(policy) => Versioned {
                policy: policy.clone(),
                version: key.policy_version.checked_add(1).ok_or_else(|| {
                    MpcError::Internal(format!("key {} is at its last policy version", r.key_id))
                })?,
                void: false,
            },
            // None keeps the key's policy, void if it is void: only the admins setting a
            // policy make a void one approve again.
            None => key.versioned(),
        };
        let record = KeyRecord {
            key_id: r.key_id.clone(),
            scheme: share.scheme(),
            threshold: r.threshold,
            policy: policy.policy.clone(),
            policy_version: policy.version,
            policy_void: policy.void,
            share: ByteBuf::from(share.to_bytes()?.to_vec()),
            generation: r.generation,
            current: false,
            request: Some(ByteBuf::from(r.request_hash.to_vec())),
            frozen: false,
            refresh_every: schedule.every,
            since: schedule.since,
            incoming: None,
            roster: self.roster_now(),
        };
        let receipt = self.sign_receipt(
            KeyReceipt {
                v: KEY_RECEIPT_VERSION,
                cluster: self.cluster()?,
                node: 0,
                key_id: r.key_id.clone(),
                scheme: share.scheme(),
                threshold: r.threshold,
                participants: participants.to_vec(),
                public_key: ByteBuf::from(public_key.clone()),
                chain_code: chain_code.clone().map(ByteBuf::from),
                generation: r.generation,
                request: ByteBuf::from(r.request_hash.to_vec()),
                policy_version: 0,
                policy: None,
            }
            .with_policy(policy.version, &policy.policy),
        )?;
        let sealed = self.seal_key_record(data_key, record)?;
        if let Some(key) = self.keys.get_mut(&r.key_id) {
            key.pending = Some(Pending {
                generation: r.generation,
                threshold: r.threshold,
                request_hash: r.request_hash,
                share,
                frozen: false,
                schedule,
                policy,
            });
        }
        Ok(Outcome::KeyReshared {
            key_id: r.key_id,
            generation: r.generation,
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            sealed: ByteBuf::from(sealed),
            receipt: ByteBuf::from(receipt),
        })
    }
}

/// The keys a restore loads, from every key record opened: per key, the highest current
/// generation (an older current one is a stale copy: ignored), and a pending one only if it is
/// the generation right after it (any other is a resharing that never finished, or an old
/// one: ignored). A pending generation without its current one is not loaded.
pub(super) fn generations(
    records: Vec<(BlobKind, KeyRecord)>,
    node: u16,
) -> Result<BTreeMap<String, Key>, NodeError> {
    let mut keys: BTreeMap<String, Key> = BTreeMap::new();
    let mut pending = Vec::new();
    for (kind, record) in records {
        let share = load_share(kind, &record)?;
        let index = share.index();
        if index != node {
            return Err(bad(format!(
                "share of {} belongs to node {index}",
                record.key_id
            )));
        }
        if !record.current {
            pending.push((record, share));
            continue;
        }
        if let Some(held) = keys.get(&record.key_id) {
            if held.generation == record.generation {
                return Err(bad(format!(
                    "two blobs of generation {} of key {}",
                    record.generation, record.key_id
                )));
            }
            if held.generation > record.generation {
                info!(key = %record.key_id, generation = record.generation, "a stale generation is ignored");
                continue;
            }
        }
        let mut key = Key::new(record.threshold, &record.policy, share)?;
        key.policy_version = record.policy_version;
        key.policy_void = record.policy_void;
        key.generation = record.generation;
        key.request = hash32(&record.request);
        key.schedule = schedule_of(&record);
        keys.insert(record.key_id.clone(), key);
    }
    for (record, share) in pending {
        let request_hash = hash32(&record.request);
        match (keys.get_mut(&record.key_id), request_hash) {
            (Some(key), Some(request_hash))
                if key.pending.is_none()
                    && key.generation.checked_add(1) == Some(record.generation) =>
            {
                key.pending = Some(Pending {
                    generation: record.generation,
                    threshold: record.threshold,
                    request_hash,
                    share,
                    frozen: record.frozen,
                    schedule: schedule_of(&record),
                    policy: Versioned {
                        policy: record.policy.clone(),
                        version: record.policy_version,
                        void: record.policy_void,
                    },
                });
            }
            _ => {
                info!(key = %record.key_id, generation = record.generation, "a pending generation that cannot become current is ignored");
            }
        }
    }
    Ok(keys)
}
