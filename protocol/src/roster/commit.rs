//! The commit of a roster change (issue 20, membership step 4 of `docs/lifecycle.md`, ADR
//! 0022): every node of the new roster holds every key's incoming generation, says so by its
//! node key over one digest of the whole key set, and, shown every such statement, makes the
//! new roster and those generations current.
//!
//! A node's word is [`keys_held_message`]: the change, the chain it was prepared under and
//! [`keys_digest`] of the key set it holds incoming — per key, its id, the generation it was
//! dealt from, the digest of its facts and the digest its move confirmed — recomputed from its
//! own sealed records. Every node verifies every other node's statement over its *own* digest:
//! one digest per key means one sharing per key, so a relay that let a later move of one key
//! finish at some nodes only, or replays an earlier move's statements, is caught (attacker
//! review helper-65, finding 2; helper-62, finding 2).
//!
//! Once committed, a node signs [`roster_set_message`], the same shape as the proposal's.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::admins::versioned_statement;
use crate::genesis::ClusterId;
use crate::policy::Approved;

use super::ChangeRoster;

/// Domain tag of a node's statement that it holds every key's incoming generation
/// ([`keys_held_message`]).
pub const KEYS_HELD_DOMAIN: &[u8] = b"cohort/roster-keys-held/v1\0";

/// Domain tag of [`keys_digest`].
pub const KEY_SET_DOMAIN: &[u8] = b"cohort/roster-key-set/v1\0";

/// Domain tag of a node's statement that it committed a roster change
/// ([`roster_set_message`]).
pub const ROSTER_SET_DOMAIN: &[u8] = b"cohort/roster-set/v1\0";

/// One key as a node holds it incoming, what [`keys_digest`] covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey<'a> {
    /// The key id.
    pub key_id: &'a str,
    /// The generation its move dealt from (the incoming one is the next).
    pub generation: u32,
    /// The digest of the key's facts it was dealt under (`KeyInfo::digest`).
    pub facts: [u8; 32],
    /// The digest every party of its move confirmed.
    pub confirmed: [u8; 32],
}

/// One key of the set a roster change was committed with, as the genesis blob keeps it: what
/// a restore compares each incoming generation with before it makes it current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedKey {
    /// The key id.
    pub key_id: String,
    /// The generation its move dealt from.
    pub generation: u32,
    /// The digest of its facts (32 bytes).
    pub facts: ByteBuf,
    /// The digest its move confirmed (32 bytes).
    pub confirmed: ByteBuf,
}

impl MovedKey {
    /// As [`keys_digest`] covers it (a malformed digest reads as zeros, which no set has).
    pub fn held(&self) -> HeldKey<'_> {
        HeldKey {
            key_id: &self.key_id,
            generation: self.generation,
            facts: <[u8; 32]>::try_from(self.facts.as_slice()).unwrap_or_default(),
            confirmed: <[u8; 32]>::try_from(self.confirmed.as_slice()).unwrap_or_default(),
        }
    }
}

/// The digest of a key set held incoming, in key-id order whatever order it is given in:
///
/// `KEY_SET_DOMAIN || u32 n || n × (u32 len || key id || u32 generation || facts digest ||
/// confirmed digest)`
pub fn keys_digest(keys: &[HeldKey<'_>]) -> [u8; 32] {
    let mut sorted: Vec<&HeldKey<'_>> = keys.iter().collect();
    sorted.sort_by(|a, b| a.key_id.cmp(b.key_id));
    let mut h = Sha256::new();
    h.update(KEY_SET_DOMAIN);
    h.update(len32(sorted.len()));
    for k in sorted {
        h.update(len32(k.key_id.len()));
        h.update(k.key_id.as_bytes());
        h.update(k.generation.to_be_bytes());
        h.update(k.facts);
        h.update(k.confirmed);
    }
    h.finalize().into()
}

/// Domain tag of a key set's digest with the new party set's auxiliary information
/// ([`set_digest`]).
pub const KEY_SET_AUX_DOMAIN: &[u8] = b"cohort/roster-key-set-aux/v1\0";

/// The digest a node's [`KeysHeldStatement`] names: the key set's ([`keys_digest`]), and, where
/// the new party set has auxiliary information (any ECDSA party set), the digest of its public
/// parameters with it, so that every node commits on one run of it:
///
/// `keys_digest` alone, or `SHA-256(KEY_SET_AUX_DOMAIN || keys_digest || aux)`
pub fn set_digest(keys: &[HeldKey<'_>], aux: Option<&[u8; 32]>) -> [u8; 32] {
    let keys = keys_digest(keys);
    match aux {
        None => keys,
        Some(aux) => {
            let mut h = Sha256::new();
            h.update(KEY_SET_AUX_DOMAIN);
            h.update(keys);
            h.update(aux);
            h.finalize().into()
        }
    }
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// What the node whose node key is `node_key` signs with it to say that it holds, for the
/// roster change whose SHA-256 is `change` (making roster version `version`), prepared under
/// the chain `chain`, the key set whose digest is `keys` ([`keys_digest`]) as incoming
/// generations:
///
/// `KEYS_HELD_DOMAIN || cluster id || node key || u32 version || change || chain || keys`
pub fn keys_held_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    (version, change): (u32, &[u8; 32]),
    chain: &[u8; 32],
    keys: &[u8; 32],
) -> Vec<u8> {
    let mut m = versioned_statement(KEYS_HELD_DOMAIN, cluster, node_key, version, change);
    m.extend_from_slice(chain);
    m.extend_from_slice(keys);
    m
}

/// What the node whose node key is `node_key` signs with it once it committed the roster
/// change whose SHA-256 is `change`, making roster version `version` current:
///
/// `ROSTER_SET_DOMAIN || cluster id || node key || u32 version || change`
pub fn roster_set_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    version: u32,
    change: &[u8; 32],
) -> Vec<u8> {
    versioned_statement(ROSTER_SET_DOMAIN, cluster, node_key, version, change)
}

/// Domain tag of a node's statement that it left the roster a committed change removed it
/// from, its shares dropped ([`roster_left_message`]).
pub const ROSTER_LEFT_DOMAIN: &[u8] = b"cohort/roster-left/v1\0";

/// What a node the roster change whose SHA-256 is `change` (making roster version `version`)
/// removes signs with its node key once it dropped its shares, shown that the change was
/// committed: `ROSTER_LEFT_DOMAIN || cluster id || node key || u32 version || change`.
pub fn roster_left_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    version: u32,
    change: &[u8; 32],
) -> Vec<u8> {
    versioned_statement(ROSTER_LEFT_DOMAIN, cluster, node_key, version, change)
}

/// One node's word that it holds a key set incoming ([`keys_held_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysHeldStatement {
    /// The node's node key (32 bytes).
    pub node_key: ByteBuf,
    /// The digest of the key set it holds ([`keys_digest`], 32 bytes).
    pub keys: ByteBuf,
    /// Its node key's Ed25519 signature over [`keys_held_message`].
    pub statement: ByteBuf,
}

/// The commit step (`EnclaveRequest::CommitRoster`): asked with no statements, a node of the
/// new roster answers its own [`KeysHeldStatement`] (sealing the set it vouches for); shown
/// the statement of every node of the new roster, each over this node's own key-set digest, it
/// commits. The nodes that stay commit first: a joining node also needs their words that they
/// did ([`CommitRoster::committed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRoster {
    /// The SHA-256 of the pending change (32 bytes): a node holding another refuses.
    pub change: ByteBuf,
    /// Every node's statement, or none to ask only for this node's.
    #[serde(default)]
    pub statements: Vec<KeysHeldStatement>,
    /// Words of nodes that stay (in the roster in force and the new one) that they committed
    /// the change ([`roster_set_message`]). A member committing as the first needs none. A
    /// joining node needs as many as the highest threshold of the keys it holds incoming, so
    /// that an honest one, which then takes no withdrawal and gives no word on another change,
    /// is among them: the members cannot abandon a change that nodes which joined committed
    /// (attacker review helper-70, finding 3). A catch-up needs one, or that threshold at a
    /// node that gave its word on another change since it vouched (helper-70, finding 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed: Vec<SetStatement>,
    /// For a node the change removes: the key set the new roster vouched for (as
    /// [`CommittedRoster::keys`]), which the statements of the nodes whose words are shown
    /// name ([`set_digest`] with [`CommitRoster::aux`]). It drops its shares only if every key
    /// it holds is in it: never the last copy of a key (attacker review helper-75, finding 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<MovedKey>,
    /// With [`CommitRoster::keys`]: the new party set's auxiliary information's digest, if the
    /// set names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<ByteBuf>,
    /// For a node that vouched for the change and no longer holds it pending (a withdrawal, an
    /// admin change or an image change reached it before its commit while another node had
    /// committed): the change as it was committed, with every node's statement above. It
    /// commits it as the other nodes did (the catch-up; helper-67, finding 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
}

/// What a node needs to commit a change it vouched for that is no longer pending here
/// ([`CommitRoster::catch_up`]): what a committed node's genesis keeps of it, less the key set
/// (the node recomputes its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUp {
    /// The approved change; its SHA-256 is [`CommitRoster::change`].
    pub change: Approved<ChangeRoster>,
    /// How many image changes the chain it was prepared under held
    /// ([`CommittedRoster::images`]).
    pub images: u32,
}

/// A node's word that it committed a roster change ([`roster_set_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatement {
    /// The node's node key (32 bytes).
    pub node_key: ByteBuf,
    /// Its node key's Ed25519 signature over [`roster_set_message`].
    pub statement: ByteBuf,
}

/// A committed roster change as a node's genesis blob keeps it, and as a node joining a later
/// change is given it: the approved change and the statements of every node of its roster
/// that it was committed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommittedRoster {
    /// The approved change.
    pub change: Approved<ChangeRoster>,
    /// How many image changes the chain it was committed under held (its admin changes are the
    /// change's admin version: an admin change drops a pending change): with the committed
    /// changes before it, what the statements' chain digest is recomputed from.
    pub images: u32,
    /// Every node of its roster's [`KeysHeldStatement`], all over one key set.
    pub statements: Vec<KeysHeldStatement>,
    /// That key set, for the last committed change only (a restore reads key records of the
    /// roster in force alone; earlier changes keep the statements' digest). Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<MovedKey>,
    /// The digest of the new party set's auxiliary information the statements name with the
    /// keys ([`set_digest`]), for the last committed change only, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<ByteBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, generation: u32) -> HeldKey<'_> {
        HeldKey {
            key_id: id,
            generation,
            facts: [1; 32],
            confirmed: [2; 32],
        }
    }

    #[test]
    fn the_key_set_digest_is_of_the_set_and_binds_every_field() {
        let base = [key("a", 0), key("b", 3)];
        let swapped = [key("b", 3), key("a", 0)];
        assert_eq!(keys_digest(&base), keys_digest(&swapped));
        let mut other = base.clone();
        other[1].generation = 4;
        assert_ne!(keys_digest(&base), keys_digest(&other));
        other = base.clone();
        other[0].confirmed = [3; 32];
        assert_ne!(keys_digest(&base), keys_digest(&other));
        other = base.clone();
        other[0].facts = [3; 32];
        assert_ne!(keys_digest(&base), keys_digest(&other));
        assert_ne!(keys_digest(&base), keys_digest(&base[..1]));
        // Lengths are prefixed: ids cannot run into each other.
        assert_ne!(
            keys_digest(&[key("ab", 0)]),
            keys_digest(&[key("a", 0), key("b", 0)])
        );
        assert_ne!(keys_digest(&[]), keys_digest(&base));
    }

    #[test]
    fn the_statements_differ_by_domain_and_bind_the_chain_and_keys() {
        let cluster = ClusterId([7; 32]);
        let node = [9; 32];
        let held = keys_held_message(&cluster, &node, (1, &[3; 32]), &[4; 32], &[5; 32]);
        let set = roster_set_message(&cluster, &node, 1, &[3; 32]);
        assert!(held.starts_with(KEYS_HELD_DOMAIN));
        assert!(set.starts_with(ROSTER_SET_DOMAIN));
        assert_ne!(
            held,
            keys_held_message(&cluster, &node, (1, &[3; 32]), &[4; 32], &[6; 32])
        );
        assert_ne!(
            held,
            keys_held_message(&cluster, &node, (1, &[3; 32]), &[8; 32], &[5; 32])
        );
        assert_ne!(
            held,
            keys_held_message(&cluster, &node, (2, &[3; 32]), &[4; 32], &[5; 32])
        );
    }
}
