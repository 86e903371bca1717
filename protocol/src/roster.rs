//! Changing the cluster's roster: adding, replacing and removing nodes (issue 20,
//! `docs/lifecycle.md`, "Membership").
//!
//! The roster a genesis names is roster version 0. Each change is a [`ChangeRoster`] request
//! approved by the admins in force, naming the roster version it replaces and the whole new
//! roster, so a change approved against a replaced roster is refused and the versions form one
//! chain. What a change may do is fixed here, where every enclave, the coordinator and the CLI
//! check it alike ([`ChangeRoster::diff`]):
//!
//! - a node that stays (its node key is in both rosters) keeps its KMS key and PCR pins
//!   unchanged, the nodes that stay keep their order, and none moves to a higher index, so a
//!   node joins at the end or in a leaving node's place and an index moves only down, by the
//!   nodes removed before it;
//! - a node is added with a node key no roster of the cluster ever listed: a node key that
//!   left the roster never comes back, whoever holds a copy of its sealed blob;
//! - the new roster holds at least as many nodes as the highest threshold of any key, so every
//!   key can be reshared to it.
//!
//! Replacing node `k` is removing it and adding a node at the same index in one change. The
//! change itself moves no key material: every key is reshared to the new roster before it is
//! committed (`docs/lifecycle.md`).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::admins::{SetAdmins, versioned_statement};
use crate::genesis::{ClusterId, Genesis, GenesisError, RosterEntry, check_roster};
use crate::images::AcceptImages;
use crate::policy::{Approved, Canonical, REQUEST_ID_LEN};

/// Version of [`ChangeRoster`].
pub const CHANGE_ROSTER_VERSION: u8 = 1;

/// Domain tag of a node's statement that it holds a roster change as proposed
/// ([`roster_proposed_message`]).
pub const ROSTER_PROPOSED_DOMAIN: &[u8] = b"cohort/roster-proposed/v1\0";

/// Replace the cluster's roster, approved by the admins in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoster {
    /// [`CHANGE_ROSTER_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The roster version this change replaces (0: the genesis' roster). The new roster is
    /// version `version + 1`.
    pub version: u32,
    /// The whole new roster, by index, under the rules of a genesis roster
    /// ([`check_roster`]) and of a change ([`ChangeRoster::diff`]).
    pub roster: Vec<RosterEntry>,
    /// Request id (16 bytes).
    pub request_id: ByteBuf,
    /// Valid from (Unix seconds).
    pub created: u64,
    /// Valid until (Unix seconds).
    pub expiry: u64,
    /// The admin version its approvals were given under (as every admin request).
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub admins: u32,
}

impl Canonical for ChangeRoster {
    const DOMAIN: &'static [u8] = b"cohort/change-roster/v1\0";
}

/// Why a [`ChangeRoster`] is refused: malformed, or a change a roster may not undergo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Another request version.
    #[error("change-roster request version {0} (this build reads {CHANGE_ROSTER_VERSION})")]
    Version(u8),
    /// The request id is not [`REQUEST_ID_LEN`] bytes.
    #[error("request id is {0} bytes, not {REQUEST_ID_LEN}")]
    RequestId(usize),
    /// The version it replaces is the last one there can be.
    #[error("roster version {0} cannot be replaced (no version after it)")]
    LastVersion(u32),
    /// The new roster breaks the rules of a roster.
    #[error(transparent)]
    Roster(#[from] GenesisError),
    /// The new roster is the current one.
    #[error("unchanged: the new roster is the current one")]
    Unchanged,
    /// A node that stays lists another KMS key or other PCR pins: its node key is sealed
    /// under its KMS key, and its parent is what it was pinned to. Re-pin a node by replacing
    /// it.
    #[error(
        "kept_entry_changed: node {from} stays (as node {to}) but its KMS key or PCR pins differ; replace the node to change them"
    )]
    KeptEntryChanged {
        /// Its index in the current roster.
        from: u16,
        /// Its index in the new roster.
        to: u16,
    },
    /// A node that stays would move to a higher index: nodes join at the end or at the index
    /// of a node leaving, never before one that stays.
    #[error(
        "moved_up: node {from} stays but would be node {to}; nodes join at the end or in a leaving node's place"
    )]
    MovedUp {
        /// Its index in the current roster.
        from: u16,
        /// Its index in the new roster.
        to: u16,
    },
    /// The nodes that stay are in another order.
    #[error(
        "reordered: nodes {first} and {second} stay but change order; nodes that stay keep their order"
    )]
    Reordered {
        /// The index (current roster) of the node now placed after the other.
        first: u16,
        /// The index (current roster) of the node now placed before it.
        second: u16,
    },
    /// A node key that an earlier roster listed and the current one does not: a node that
    /// left never comes back under its old key (a copy of its sealed blob is not a node).
    #[error(
        "retired_node_key: node {node} of the new roster has a node key roster version {version} listed and a later one dropped; a node key that left never comes back"
    )]
    RetiredNodeKey {
        /// Its index in the new roster.
        node: u16,
        /// The roster version that listed it.
        version: u32,
    },
    /// Fewer nodes than some key's threshold: that key could not be reshared to the roster.
    #[error(
        "below_threshold: the new roster has {nodes} nodes; a key of this cluster needs {threshold} to sign"
    )]
    BelowThreshold {
        /// Nodes in the new roster.
        nodes: usize,
        /// The highest threshold of any key.
        threshold: u16,
    },
    /// Fewer nodes stay than the highest threshold of any key. The nodes that stay are the
    /// ones that vouch, at the commit, for the whole key set the roster in force holds (a node
    /// joining holds only what was moved to it): with at least a threshold of them, one is
    /// honest whenever fewer than a threshold of enclaves are compromised (attacker review
    /// helper-66, finding H2). Replace more nodes in several changes.
    #[error(
        "too_few_kept: {kept} nodes of the roster in force stay; a key of this cluster needs {threshold}, so that nodes holding every key vouch for the key set moved"
    )]
    TooFewKept {
        /// Nodes that stay.
        kept: usize,
        /// The highest threshold of any key.
        threshold: u16,
    },
}

impl RosterError {
    /// The stable kind (the message's first word, or the roster rule's kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Version(_) | Self::RequestId(_) | Self::LastVersion(_) | Self::Roster(_) => {
                "malformed_roster_change"
            }
            Self::Unchanged => "unchanged",
            Self::KeptEntryChanged { .. } => "kept_entry_changed",
            Self::Reordered { .. } => "reordered",
            Self::MovedUp { .. } => "moved_up",
            Self::RetiredNodeKey { .. } => "retired_node_key",
            Self::BelowThreshold { .. } => "below_threshold",
            Self::TooFewKept { .. } => "too_few_kept",
        }
    }
}

/// What a roster change does, node by node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterDiff {
    /// Nodes that stay: (index in the current roster, index in the new one), in order.
    pub kept: Vec<(u16, u16)>,
    /// Indices (current roster) of the nodes that leave.
    pub removed: Vec<u16>,
    /// Indices (new roster) of the nodes that join.
    pub added: Vec<u16>,
}

/// A party of a session across a roster change: its index in the current roster (a node that
/// stays or leaves) and in the new one (a node that stays or joins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeParty {
    /// Its index in the roster in force, if it is in it.
    pub current: Option<u16>,
    /// Its index in the new roster, if it is in it.
    pub next: Option<u16>,
}

impl RosterDiff {
    /// The party space of a session across this change (the resharing to the new roster,
    /// issue 20): the new roster's nodes (those kept and those added) at their new index, then
    /// the nodes that leave by their current index. Party `i` of such a session is
    /// `parties()[i]`, the same at every node, which computes it from the change it holds
    /// pending, never from the relay; so a node's party index is its new index whenever it
    /// has one.
    pub fn parties(&self) -> Vec<ChangeParty> {
        let new_len = index(self.kept.len().saturating_add(self.added.len()));
        let mut parties: Vec<ChangeParty> = (0..new_len)
            .map(|next| ChangeParty {
                current: self
                    .kept
                    .iter()
                    .find(|(_, to)| *to == next)
                    .map(|(from, _)| *from),
                next: Some(next),
            })
            .collect();
        parties.extend(self.removed.iter().map(|from| ChangeParty {
            current: Some(*from),
            next: None,
        }));
        parties
    }

    /// The indices at which a node leaves and another joins: a replacement.
    pub fn replaced(&self) -> Vec<u16> {
        self.removed
            .iter()
            .copied()
            .filter(|i| self.added.contains(i))
            .collect()
    }
}

fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl ChangeRoster {
    /// Checks the shape: version, request id, the version after the one replaced, and the
    /// rules of a roster ([`check_roster`]). What the change does to the current roster is
    /// checked by [`ChangeRoster::diff`]; approvals and the window separately.
    pub fn check(&self) -> Result<(), RosterError> {
        if self.v != CHANGE_ROSTER_VERSION {
            return Err(RosterError::Version(self.v));
        }
        if self.request_id.len() != REQUEST_ID_LEN {
            return Err(RosterError::RequestId(self.request_id.len()));
        }
        if self.version == u32::MAX {
            return Err(RosterError::LastVersion(self.version));
        }
        check_roster(&self.roster)?;
        Ok(())
    }

    /// The roster version this change makes.
    pub fn new_version(&self) -> u32 {
        self.version.saturating_add(1)
    }

    /// SHA-256 of the canonical bytes: what every node's statements name.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }

    /// What the change does to `rosters` (every roster version of the cluster, in order; the
    /// last is current and must be the version this change replaces), refused unless it keeps
    /// the rules of a change: the shape ([`ChangeRoster::check`]), a new roster, nodes that
    /// stay unchanged and in order, no node key that left coming back, and at least
    /// `max_threshold` nodes (the highest threshold of any key the cluster holds).
    pub fn diff(
        &self,
        rosters: &[&[RosterEntry]],
        max_threshold: u16,
    ) -> Result<RosterDiff, RosterError> {
        self.check()?;
        let Some(current) = rosters.last() else {
            return Err(RosterError::Roster(GenesisError::RosterSize(0)));
        };
        if self.roster.as_slice() == *current {
            return Err(RosterError::Unchanged);
        }
        let mut diff = RosterDiff::default();
        let mut last_kept: Option<(u16, u16)> = None;
        for (to, entry) in self.roster.iter().enumerate() {
            let to = index(to);
            match current.iter().position(|e| e.node_key == entry.node_key) {
                Some(from) => {
                    let from = index(from);
                    if current[usize::from(from)] != *entry {
                        return Err(RosterError::KeptEntryChanged { from, to });
                    }
                    if let Some((before, _)) = last_kept
                        && before > from
                    {
                        return Err(RosterError::Reordered {
                            first: from,
                            second: before,
                        });
                    }
                    if to > from {
                        return Err(RosterError::MovedUp { from, to });
                    }
                    last_kept = Some((from, to));
                    diff.kept.push((from, to));
                }
                None => {
                    let earlier = rosters
                        .iter()
                        .position(|r| r.iter().any(|e| e.node_key == entry.node_key));
                    if let Some(version) = earlier {
                        return Err(RosterError::RetiredNodeKey {
                            node: to,
                            version: u32::try_from(version).unwrap_or(u32::MAX),
                        });
                    }
                    diff.added.push(to);
                }
            }
        }
        diff.removed = (0..current.len())
            .map(index)
            .filter(|from| !diff.kept.iter().any(|(f, _)| f == from))
            .collect();
        if self.roster.len() < usize::from(max_threshold) {
            return Err(RosterError::BelowThreshold {
                nodes: self.roster.len(),
                threshold: max_threshold,
            });
        }
        if diff.kept.len() < usize::from(max_threshold) {
            return Err(RosterError::TooFewKept {
                kept: diff.kept.len(),
                threshold: max_threshold,
            });
        }
        Ok(diff)
    }
}

/// Where `change` stands in the one order every node applies the changes of one roster version
/// in (a pending change is replaced only by one after it): by creation time; in the same
/// second, a change back to `current` (the roster in force: a withdrawal, or a fence when
/// nothing is pending) after any other, so that a fence made in the same second as a change
/// still stops it; then by request hash, so that nodes shown the same changes in any order end
/// on the same one.
pub fn proposal_order(change: &ChangeRoster, current: &[RosterEntry]) -> (u64, bool, [u8; 32]) {
    (
        change.created,
        change.roster.as_slice() == current,
        change.hash(),
    )
}

/// What the node whose node key is `node_key` signs with it once it sealed the roster change
/// whose SHA-256 is `request` as proposed (roster version `version` pending, the current one
/// still in force):
///
/// `ROSTER_PROPOSED_DOMAIN || cluster id || node key || u32 version || request`
///
/// A roster change's statements name their signer by node key, not by index: its index may
/// differ between the two rosters, and a node that joins or leaves has one in only one.
pub fn roster_proposed_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    version: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    versioned_statement(ROSTER_PROPOSED_DOMAIN, cluster, node_key, version, request)
}

/// Domain tag of a node's chain's digest ([`chain_digest`]).
pub const CHAIN_DOMAIN: &[u8] = b"cohort/roster-chain/v1\0";

/// Domain tag of a node's statement that it holds a roster change under a chain
/// ([`roster_held_message`]).
pub const ROSTER_HELD_DOMAIN: &[u8] = b"cohort/roster-held/v1\0";

/// The digest of the chain a node holds a roster change under: its cluster (the genesis'
/// hash) and every admin and image change since, in order, by request hash. Two nodes with
/// the same digest apply the same admins and admit the same images.
///
/// `CHAIN_DOMAIN || cluster id || u32 n || n admin change hashes || u32 m || m image change
/// hashes`
pub fn chain_digest(
    cluster: &ClusterId,
    admins: &[Approved<SetAdmins>],
    images: &[Approved<AcceptImages>],
) -> [u8; 32] {
    chain_digest_with_rosters(cluster, admins, images, &[])
}

/// [`chain_digest`] of a chain that also holds committed roster changes: the same digest while
/// there is none, else `|| u32 k || k roster change hashes` after the image changes, so a node
/// that committed a change and one that did not never hold one chain.
pub fn chain_digest_with_rosters(
    cluster: &ClusterId,
    admins: &[Approved<SetAdmins>],
    images: &[Approved<AcceptImages>],
    rosters: &[commit::CommittedRoster],
) -> [u8; 32] {
    let admins: Vec<[u8; 32]> = admins.iter().map(|c| c.request.hash()).collect();
    let images: Vec<[u8; 32]> = images.iter().map(|c| c.request.hash()).collect();
    let rosters: Vec<[u8; 32]> = rosters.iter().map(|c| c.change.request.hash()).collect();
    chain_digest_of_hashes(cluster, &admins, &images, &rosters)
}

/// [`chain_digest_with_rosters`] from the request hashes of the admin, image and committed
/// roster changes, in order: what a client that holds the changes as the coordinator lists
/// them recomputes the digest a node signed from.
pub fn chain_digest_of_hashes(
    cluster: &ClusterId,
    admins: &[[u8; 32]],
    images: &[[u8; 32]],
    rosters: &[[u8; 32]],
) -> [u8; 32] {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    let mut h = Sha256::new();
    h.update(CHAIN_DOMAIN);
    h.update(cluster.0);
    h.update(count(admins.len()));
    for hash in admins {
        h.update(hash);
    }
    h.update(count(images.len()));
    for hash in images {
        h.update(hash);
    }
    if !rosters.is_empty() {
        h.update(count(rosters.len()));
        for hash in rosters {
            h.update(hash);
        }
    }
    h.finalize().into()
}

/// What the node whose node key is `node_key` signs with it to say that it holds the roster
/// change whose SHA-256 is `request` (making roster version `version`) as pending, under the
/// chain whose digest is `chain` ([`chain_digest`]):
///
/// `ROSTER_HELD_DOMAIN || cluster id || node key || u32 version || request || chain`
///
/// The prepare step's gate ([`PrepareRoster`]): every node of the new roster's statement, over
/// one change and one chain, before anything is reshared to it.
pub fn roster_held_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    version: u32,
    request: &[u8; 32],
    chain: &[u8; 32],
) -> Vec<u8> {
    let mut m = versioned_statement(ROSTER_HELD_DOMAIN, cluster, node_key, version, request);
    m.extend_from_slice(chain);
    m
}

/// Domain tag of a node's statement that it is prepared for a roster change
/// ([`roster_prepared_message`]).
pub const ROSTER_PREPARED_DOMAIN: &[u8] = b"cohort/roster-prepared/v1\0";

/// Domain tag of [`statements_digest`].
pub const HELD_SET_DOMAIN: &[u8] = b"cohort/roster-held-set/v1\0";

/// The longest nonce a client may give a prepare step ([`PrepareRoster::nonce`]).
pub const MAX_PREPARE_NONCE: usize = 64;

/// The digest of a set of held statements, in node-key order whatever order they were given
/// in: `HELD_SET_DOMAIN || u32 n || n × (node key || chain || u16 len || statement)`.
pub fn statements_digest(statements: &[HeldStatement]) -> [u8; 32] {
    let mut sorted: Vec<&HeldStatement> = statements.iter().collect();
    sorted.sort_by(|a, b| a.node_key.cmp(&b.node_key));
    let mut h = Sha256::new();
    h.update(HELD_SET_DOMAIN);
    h.update(
        u32::try_from(sorted.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for s in sorted {
        h.update(&s.node_key);
        h.update(&s.chain);
        h.update(
            u16::try_from(s.statement.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        h.update(&s.statement);
    }
    h.finalize().into()
}

/// What the node whose node key is `node_key` signs with it when it is prepared for the roster
/// change whose SHA-256 is `request`, under the chain `chain`, on the statements whose digest
/// is `statements` ([`statements_digest`]), answering a prepare step that gave `nonce`:
///
/// `ROSTER_PREPARED_DOMAIN || cluster id || node key || u32 version || request || chain ||
/// statements || u8 nonce length || nonce`
///
/// Unlike the answer's `prepared` flag, which its parent could rewrite, this is the node's
/// own word, and the client's nonce makes it fresh: a node walked back since, or never shown
/// the set, cannot produce it.
pub fn roster_prepared_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    (version, request): (u32, &[u8; 32]),
    chain: &[u8; 32],
    statements: &[u8; 32],
    nonce: &[u8],
) -> Vec<u8> {
    let mut m = versioned_statement(ROSTER_PREPARED_DOMAIN, cluster, node_key, version, request);
    m.extend_from_slice(chain);
    m.extend_from_slice(statements);
    m.push(u8::try_from(nonce.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(nonce);
    m
}

/// One node's word that it holds a roster change under a chain ([`roster_held_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldStatement {
    /// The node's node key (32 bytes): a roster change's statements name their signer by node
    /// key, as a node that joins or leaves has an index in one roster only.
    pub node_key: ByteBuf,
    /// The digest of the chain it holds the change under (32 bytes).
    pub chain: ByteBuf,
    /// Its node key's Ed25519 signature over [`roster_held_message`].
    pub statement: ByteBuf,
}

/// The prepare step's gate (issue 20, `docs/lifecycle.md`): asked with no statements, a node
/// holding the change answers its own [`HeldStatement`] and seals nothing; shown the statement
/// of every node of the new roster (and of any leaving node that still answers), each over
/// this change and the chain this node holds, it seals that it is prepared for the change.
/// The nodes of the new roster then hold one change under one chain: a joining node whose
/// relay chose another prefix of the chain, or walked it back to an earlier change, is not
/// prepared, and nothing is reshared to a node that is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRoster {
    /// The SHA-256 of the pending change (32 bytes): a node holding another refuses.
    pub change: ByteBuf,
    /// Every node's statement, or none to ask only for this node's.
    #[serde(default)]
    pub statements: Vec<HeldStatement>,
    /// A client's nonce (at most [`MAX_PREPARE_NONCE`] bytes), which a prepared node's
    /// [`roster_prepared_message`] covers. Empty when none is given.
    #[serde(default)]
    pub nonce: ByteBuf,
}

/// What a node joining the cluster is given (the join step, `docs/lifecycle.md`): the chain a
/// member's genesis blob holds — the approved genesis and every admin and image change since,
/// in order — the roster change that lists the joining node's key, and one member's proposed
/// statement over that change. The joining enclave checks all of it itself (every approval from
/// the genesis on, its own entry, the statement under the node key the roster in force lists):
/// whoever relays it chooses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinCluster {
    /// The approved genesis.
    pub genesis: Approved<Genesis>,
    /// Admin change `i` makes admin version `i + 1`.
    #[serde(default)]
    pub admins: Vec<Approved<SetAdmins>>,
    /// Image change `i` makes image version `i + 1`.
    #[serde(default)]
    pub images: Vec<Approved<AcceptImages>>,
    /// Committed roster change `i` makes roster version `i + 1`. Absent before the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rosters: Vec<commit::CommittedRoster>,
    /// The roster change pending at the members, listing the joining node.
    pub change: Approved<ChangeRoster>,
    /// The index, in the roster in force, of the member whose statement this is.
    pub proposed_by: u16,
    /// That member's [`roster_proposed_message`] over `change`, by its node key.
    pub statement: ByteBuf,
}

pub mod commit;
pub mod transfer;

#[cfg(test)]
mod tests;
