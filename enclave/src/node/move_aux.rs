//! The auxiliary information of a roster change's party set (issue 20, before an ECDSA key
//! moves: `docs/lifecycle.md`, membership step 3): CGGMP21's ECDSA shares are completed with
//! every party's Paillier and ring-Pedersen parameters, made for one party set. The nodes of the
//! new roster, at their index in it, make the new set's ([`SessionKind::MoveAux`]); each seals
//! its output as *incoming* for the change and the chain it is prepared under, and the roster
//! in force keeps its own until the commit makes the new one current.
//!
//! As for a key's move ([`super::move_key`]), no request starts it: the change sealed pending
//! and prepared at each party is the authority; the party space (the new roster), the peers
//! (each document against the entry the new roster lists, for this session alone) and the
//! context the execution id names ([`aux_move_context`]: the change, both rosters, the chain)
//! are computed by each party from its own sealed state. A run again for the same change
//! replaces the one before; every node's statement at the commit names the digest of the
//! public parameters it holds ([`protocol::roster::commit::set_digest`]), so all commit on one
//! run. The sealed record names its roster version, change and chain, so a restore never takes
//! one party set's auxiliary information for another's (attacker review helper-67, finding 8).

use protocol::genesis::roster_digest;
use protocol::roster::transfer::{AuxMove, aux_move_context};
use protocol::session::{Outcome, SessionKind};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::background::Launch;
use super::machine::Machine;
use super::membership::MembershipError;
use super::move_key::Frame;
use super::session::{Opened, Purpose, Start};
use super::{Node, NodeError, bad, internal};
use crate::identity::SecretIdentity;
use crate::mpc::MpcError;
use crate::mpc::ecdsa::{self, SecretAuxInfo};
use crate::seal::{BlobKind, DataKey};

/// The key id a party set's auxiliary information is sealed under, for roster version
/// `version` (the genesis' roster's, made at genesis, is sealed as `aux`).
pub(super) fn aux_label(version: u32) -> String {
    format!("aux@{version}")
}

/// The key id auxiliary information made for the roster in force by a run after the change
/// that made roster version `version` (`version` > 0) is sealed under: told apart from a
/// change's own ([`aux_label`]), which a restore takes only if the commit named it (attacker
/// review helper-74, finding 2).
pub(super) fn after_label(version: u32) -> String {
    format!("aux@{version}.after")
}

/// The roster version an auxiliary information's sealed key id names ([`aux_label`],
/// [`after_label`]): 0 for the genesis' `aux`; and whether it was made after that version's
/// commit.
pub(super) fn version_of_label(label: &str) -> Option<(u32, bool)> {
    if label == "aux" {
        return Some((0, false));
    }
    let rest = label.strip_prefix("aux@")?;
    match rest.strip_suffix(".after") {
        Some(v) => Some((v.parse().ok()?, true)),
        None => Some((rest.parse().ok()?, false)),
    }
}

/// Auxiliary information made for a pending roster change's party set, held until the commit
/// makes it current (or a later run, or the change's end, drops it).
pub(super) struct IncomingAux {
    /// The change, the version it makes, the chain and this node's index, as prepared.
    pub(super) frame: Frame,
    pub(super) aux: SecretAuxInfo,
    /// [`SecretAuxInfo::public_digest`].
    pub(super) digest: [u8; 32],
}

impl IncomingAux {
    /// A copy of the auxiliary information (to complete one key's share with).
    pub(super) fn copy(&self) -> Result<SecretAuxInfo, MpcError> {
        SecretAuxInfo::from_bytes(&self.aux.to_bytes()?)
    }
}

/// A party set's auxiliary information as sealed ([`aux_label`] of its version): the
/// auxiliary information and what it was made for.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuxRecord {
    /// [`SecretAuxInfo::to_bytes`].
    aux: ByteBuf,
    /// SHA-256 of the change it was made for.
    change: ByteBuf,
    /// The roster version that change makes.
    version: u32,
    /// The chain it was prepared under.
    chain: ByteBuf,
    /// This node's index in the change's roster.
    index: u16,
    /// [`SecretAuxInfo::public_digest`].
    digest: ByteBuf,
}

impl Drop for AuxRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.aux);
    }
}

impl AuxRecord {
    /// Opens a record's plaintext into what it holds.
    pub(super) fn open(plain: &[u8]) -> Result<IncomingAux, NodeError> {
        let record: AuxRecord = ciborium::from_reader(plain)
            .map_err(|e| bad(format!("auxiliary information record: {e}")))?;
        let aux = SecretAuxInfo::from_bytes(&record.aux).map_err(internal)?;
        let (Ok(change), Ok(chain), Ok(digest)) = (
            <[u8; 32]>::try_from(record.change.as_slice()),
            <[u8; 32]>::try_from(record.chain.as_slice()),
            <[u8; 32]>::try_from(record.digest.as_slice()),
        ) else {
            return Err(bad(
                "auxiliary information record: a digest of the wrong length",
            ));
        };
        Ok(IncomingAux {
            frame: (change, record.version, chain, record.index),
            aux,
            digest,
        })
    }
}

/// What an auxiliary-information run for a change's party set keeps its output under.
#[derive(Clone, Copy)]
pub(super) struct AuxMoving {
    frame: Frame,
}

impl Node {
    /// Starts this node's part in making the pending change's party set's auxiliary
    /// information (module docs): every check runs before anything is sent or held.
    pub(super) fn start_move_aux(
        &mut self,
        identity: &SecretIdentity,
        sid: &[u8; 32],
        participants: &[u16],
        kind: &SessionKind,
        documents: &[ByteBuf],
    ) -> Result<(Start, Opened), NodeError> {
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let change = pending.request.clone();
        let version = change.new_version();
        if !self.prepared() {
            return Err(MembershipError::NotPrepared { version }.into());
        }
        // A node that vouched keeps the set it vouched for, its party set's too.
        if g.vouched_frame().is_some() {
            return Err(MembershipError::Vouched { version }.into());
        }
        let frame = self
            .incoming_frame()
            .ok_or_else(|| bad("this node leaves with the change: it has no part in the new party set's auxiliary information"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let pinned = g.pinned.as_ref().ok_or(MembershipError::LegacyGenesis)?;
        let images = g.images.last().cloned().unwrap_or_default();
        let n = u16::try_from(change.roster.len()).map_err(|_| bad("too many parties"))?;
        if !participants.iter().copied().eq(0..n) {
            return Err(bad(format!(
                "the new party set's auxiliary information involves every node of the new \
                 roster ({n}), in index order"
            )));
        }
        if documents.len() != change.roster.len() {
            return Err(bad(format!(
                "the new party set's auxiliary information carries one document per node of the \
                 new roster ({n}), not {}",
                documents.len()
            )));
        }
        if !self.primes_ready() {
            // A member that restored its auxiliary information has none generating (helper-73,
            // finding 2): started now, asked again once they are ready.
            self.primes.warm_up();
            return Err(NodeError::Refused(
                "safe primes are still being generated (20 to 50 s); ask again".into(),
            ));
        }
        let me = frame.3;
        let entries: Vec<_> = (0u16..).zip(change.roster.iter().map(Some)).collect();
        let (peers, named) = self.admit_parties(identity, me, &entries, documents, &images)?;
        let hash = frame.0;
        let next = roster_digest(&cluster, version, &change.roster);
        let context = aux_move_context(&AuxMove {
            cluster: &cluster,
            change: &hash,
            current: &pinned.roster_digest,
            version,
            roster: &next,
            chain: &frame.2,
        });
        let eid = kind.execution_id(&cluster, &context, sid, &named);
        // The data key first: with KMS unreachable the session fails now, not after every node
        // has done the work.
        let data_key = self
            .sealing
            .data_key(BlobKind::AuxInfo, &aux_label(version))?;
        let primes = self
            .primes
            .take()
            .ok_or_else(|| NodeError::Refused("safe primes are still being generated".into()))?;
        // Built and stepped on a worker thread: tens of CPU seconds.
        let launch: Launch = Box::new(move || {
            let (m, first) = ecdsa::AuxInfoGen::start(&eid, me, n, primes)?;
            Ok((Box::new(m) as Box<dyn Machine>, first))
        });
        let start = Start::background(launch, false, Purpose::MoveAux(AuxMoving { frame }))
            .sealed_under(data_key);
        Ok((
            start,
            Opened {
                sid: *sid,
                eid,
                me,
                peers,
            },
        ))
    }

    /// Keeps the auxiliary information a run for the pending change's party set made: sealed
    /// as incoming for that change (it replaces an earlier run's). Refused, keeping nothing, if
    /// this node is no longer prepared for the same change under the same chain, or vouched
    /// meanwhile.
    pub(super) fn keep_incoming_aux(
        &mut self,
        moving: AuxMoving,
        aux: SecretAuxInfo,
        data_key: DataKey,
    ) -> Result<Outcome, MpcError> {
        let frame = moving.frame;
        let vouched = self
            .genesis
            .as_ref()
            .and_then(super::genesis::GenesisState::vouched_frame)
            .is_some();
        if self.incoming_frame() != Some(frame) || vouched || !self.prepared() {
            return Err(MpcError::Aborted {
                culprits: vec![],
                reason: format!(
                    "this node is no longer prepared for roster version {}: the new party set's \
                     auxiliary information keeps nothing",
                    frame.1
                ),
            });
        }
        let (sealed, digest) =
            self.seal_aux_record((data_key, &aux_label(frame.1)), &aux, frame)?;
        info!(
            version = frame.1,
            index = frame.3,
            parties = aux.parties(),
            "the new party set's auxiliary information is made and sealed as incoming"
        );
        self.incoming_aux = Some(IncomingAux { frame, aux, digest });
        // An ECDSA key's incoming share completed with an earlier run no longer holds.
        self.prune_incoming();
        Ok(Outcome::AuxMoved {
            version: frame.1,
            index: frame.3,
            aux: ByteBuf::from(digest.to_vec()),
            sealed: ByteBuf::from(sealed),
        })
    }

    /// Seals `aux` as a party set's auxiliary information made under `frame` (the change it
    /// was made for, or the one that made the roster in force; that change's version; the
    /// chain; this node's index), under `label` ([`aux_label`] or [`after_label`] of that
    /// version, as the data key was made for). Returns the blob and the public digest.
    pub(super) fn seal_aux_record(
        &self,
        (data_key, label): (DataKey, &str),
        aux: &SecretAuxInfo,
        frame: Frame,
    ) -> Result<(Vec<u8>, [u8; 32]), MpcError> {
        let digest = aux.public_digest()?;
        let plain = aux.to_bytes()?;
        let record = AuxRecord {
            aux: ByteBuf::from(plain.to_vec()),
            change: ByteBuf::from(frame.0.to_vec()),
            version: frame.1,
            chain: ByteBuf::from(frame.2.to_vec()),
            index: frame.3,
            digest: ByteBuf::from(digest.to_vec()),
        };
        let mut bytes = Zeroizing::new(Vec::new());
        ciborium::into_writer(&record, &mut *bytes)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        drop(record);
        let sealed = self
            .sealing
            .seal_with(data_key, BlobKind::AuxInfo, label, &bytes)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        Ok((sealed, digest))
    }

    /// The incoming auxiliary information that holds under `frame` (the pending change's, or
    /// the one vouched for), if any.
    pub(super) fn incoming_aux_under(&self, frame: &Frame) -> Option<&IncomingAux> {
        self.incoming_aux.as_ref().filter(|a| a.frame == *frame)
    }
}

/// The auxiliary information a restore loads, of the blobs opened (`(key id sealed under,
/// plaintext)`) with the genesis state `state` in force: the roster in force's (the genesis'
/// `aux` at version 0; at a later version, a record naming the change that made it, with the
/// digest that change was committed with, or any if it was committed without one: made by a
/// run after the commit), and the pending change's party set's (kept incoming, if made for the
/// change pending here or the one this node vouched for; whether it still holds is checked
/// once the state is loaded). Any other is another roster version's or another run's,
/// ignored: a parent handing back a replaced party set's auxiliary information gives the node
/// nothing to sign with (attacker review helper-67, finding 8). Copies of one run count once;
/// two runs for one slot are both ignored, never failing the restore (helper-73, finding 6).
pub(super) fn aux_of(
    blobs: Vec<(String, Zeroizing<Vec<u8>>)>,
    state: &super::genesis::GenesisState,
) -> Result<(Option<SecretAuxInfo>, Option<IncomingAux>), NodeError> {
    let v = state.roster_version();
    let made = state.made_by(v);
    let committed = state
        .sealed
        .rosters
        .last()
        .and_then(|c| c.aux.as_deref())
        .and_then(|a| <[u8; 32]>::try_from(a.as_slice()).ok());
    let changes: Vec<[u8; 32]> = [
        state.pending_roster().map(|p| p.request.hash()),
        state.vouched_frame().map(|f| f.0),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut current: Vec<([u8; 32], SecretAuxInfo)> = Vec::new();
    let mut incoming: Vec<IncomingAux> = Vec::new();
    for (label, plain) in blobs {
        match version_of_label(&label) {
            Some((0, _)) if v == 0 => {
                let aux = SecretAuxInfo::from_bytes(&plain).map_err(internal)?;
                current.push((aux.public_digest().map_err(internal)?, aux));
            }
            Some((k, after)) if k > 0 && (k == v || (k == v.saturating_add(1) && !after)) => {
                let record = AuxRecord::open(&plain)?;
                // The change's own only if its commit named it; one made after the commit
                // only if the commit named none.
                let named = if after {
                    committed.is_none()
                } else {
                    committed == Some(record.digest)
                };
                let of_v = k == v && record.frame.1 == v && made == Some(record.frame.0) && named;
                if of_v {
                    current.push((record.digest, record.aux));
                } else if k == v.saturating_add(1)
                    && record.frame.1 == k
                    && changes.contains(&record.frame.0)
                {
                    incoming.push(record);
                } else {
                    info!(
                        label,
                        in_force = v,
                        "auxiliary information of another run ignored"
                    );
                }
            }
            _ => info!(
                label,
                in_force = v,
                "auxiliary information of another roster version ignored"
            ),
        }
    }
    current.sort_by_key(|c| c.0);
    current.dedup_by(|a, b| a.0 == b.0);
    incoming.sort_by_key(|a| (a.digest, a.frame));
    incoming.dedup_by(|a, b| a.digest == b.digest && a.frame == b.frame);
    let current = match current.len() {
        0 | 1 => current.pop().map(|(_, aux)| aux),
        _ => {
            warn!("two runs of the roster in force's auxiliary information: both ignored");
            None
        }
    };
    let incoming = match incoming.len() {
        0 | 1 => incoming.pop(),
        _ => {
            warn!(
                "two runs of the new party set's auxiliary information: both ignored, it runs again"
            );
            None
        }
    };
    Ok((current, incoming))
}
