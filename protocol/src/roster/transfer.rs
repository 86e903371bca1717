//! Moving a key to a new roster (issue 20, membership step 3 of `docs/lifecycle.md`): what a
//! node joining is told about each key ([`KeyInfo`]), and the context every party of the key's
//! redistribution binds ([`transfer_context`]).
//!
//! A node joining holds nothing of a key before the redistribution, so it is told the key's
//! facts by a relay. It never trusts them: every node that holds the key states the same facts
//! from its own record, and the redistribution's confirmed digest covers their digest, so a
//! node joining told anything else (another policy, threshold, chain code, public shares)
//! gets no confirmation from any holder and keeps nothing.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::genesis::ClusterId;
use crate::policy::{KeyPolicy, KeyPolicyError, Scheme};
use crate::roster::ChangeParty;

/// Version of [`KeyInfo`].
pub const KEY_INFO_VERSION: u8 = 1;

/// Domain of [`KeyInfo::digest`].
pub const KEY_INFO_DOMAIN: &[u8] = b"cohort/key-info/v1\0";

/// Domain of [`transfer_context`].
pub const TRANSFER_DOMAIN: &[u8] = b"cohort/roster-transfer/v1\0";

/// Domain of [`key_moved_message`].
pub const KEY_MOVED_DOMAIN: &[u8] = b"cohort/key-moved/v1\0";

/// The longest key id (as key creation allows).
pub const MAX_KEY_ID_LEN: usize = 128;

/// The most nodes a roster holds, and so the most public shares of a key.
pub const MAX_PUBLIC_SHARES: usize = 64;

/// What every holder of a key states of it, and what a node joining seals with its share of
/// the key's next generation. Node-local facts (when a node sealed its generation, whether
/// its policy was voided there) are not in it: a key whose policy is void at a holder is not
/// moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// [`KEY_INFO_VERSION`].
    pub v: u8,
    /// The key's id.
    pub key_id: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// The generation the holders deal from (the key's current one).
    pub generation: u32,
    /// Its threshold, which the next generation keeps.
    pub threshold: u16,
    /// The key (SEC1 compressed for secp256k1, 33 bytes; 32 bytes for Ed25519).
    pub public_key: ByteBuf,
    /// An HD-capable ECDSA key's chain code (32 bytes); none for EdDSA.
    pub chain_code: Option<ByteBuf>,
    /// Every holder's public share of the current generation, by its index in the roster in
    /// force (points of the key's curve, as `public_key`): the old committee's public side.
    pub public_shares: Vec<ByteBuf>,
    /// SHA-256 of the request that made the current generation.
    pub request: ByteBuf,
    /// The version of `policy`.
    pub policy_version: u32,
    /// Who approves the key's signatures.
    pub policy: KeyPolicy,
    /// The refresh period (seconds; 0: none). Each node starts it again when it seals.
    pub refresh_every: u64,
}

/// Why a [`KeyInfo`] is not one (each its own variant; [`KeyInfoError::kind`] is stable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyInfoError {
    /// Another version than [`KEY_INFO_VERSION`].
    #[error("malformed_key_info: version {0} is not known")]
    Version(u8),
    /// An empty key id, or one longer than [`MAX_KEY_ID_LEN`].
    #[error("malformed_key_info: a key id of {0} bytes (1 to {MAX_KEY_ID_LEN})")]
    KeyId(usize),
    /// A public key, public share or chain code of the wrong length for the scheme.
    #[error("malformed_key_info: {what} of {got} bytes, {want} for the scheme")]
    Length {
        /// What was read.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length the scheme needs.
        want: usize,
    },
    /// A chain code on an EdDSA key, or none on an ECDSA key.
    #[error("malformed_key_info: an ECDSA key has a chain code, an EdDSA key none")]
    ChainCode,
    /// A threshold below 2 or above the number of holders.
    #[error("malformed_key_info: threshold {threshold} for {holders} holders")]
    Threshold {
        /// The threshold.
        threshold: u16,
        /// How many public shares are given.
        holders: usize,
    },
    /// More public shares than a roster has nodes.
    #[error("malformed_key_info: {0} public shares (at most {MAX_PUBLIC_SHARES})")]
    Holders(usize),
    /// The policy is not one ([`KeyPolicy::check`]).
    #[error("malformed_key_info: the policy: {0}")]
    Policy(#[from] KeyPolicyError),
}

impl KeyInfoError {
    /// The stable kind.
    pub fn kind(&self) -> &'static str {
        "malformed_key_info"
    }
}

impl KeyInfo {
    /// Checks the shape: version, key id, lengths by scheme, the chain code by scheme, the
    /// threshold against the holders, and the policy. Whether the facts are the key's is what
    /// the redistribution's digest decides ([`transfer_context`]).
    pub fn check(&self) -> Result<(), KeyInfoError> {
        if self.v != KEY_INFO_VERSION {
            return Err(KeyInfoError::Version(self.v));
        }
        if self.key_id.is_empty() || self.key_id.len() > MAX_KEY_ID_LEN {
            return Err(KeyInfoError::KeyId(self.key_id.len()));
        }
        let point = match self.scheme {
            Scheme::EcdsaSecp256k1 => 33,
            Scheme::EddsaEd25519 => 32,
        };
        let length = |what, got: usize, want| {
            if got == want {
                Ok(())
            } else {
                Err(KeyInfoError::Length { what, got, want })
            }
        };
        length("the public key", self.public_key.len(), point)?;
        length("the request hash", self.request.len(), 32)?;
        match (self.scheme, &self.chain_code) {
            (Scheme::EcdsaSecp256k1, Some(c)) => length("the chain code", c.len(), 32)?,
            (Scheme::EddsaEd25519, None) => {}
            _ => return Err(KeyInfoError::ChainCode),
        }
        let holders = self.public_shares.len();
        if holders > MAX_PUBLIC_SHARES {
            return Err(KeyInfoError::Holders(holders));
        }
        for share in &self.public_shares {
            length("a public share", share.len(), point)?;
        }
        if self.threshold < 2 || usize::from(self.threshold) > holders {
            return Err(KeyInfoError::Threshold {
                threshold: self.threshold,
                holders,
            });
        }
        self.policy.check()?;
        Ok(())
    }

    /// `SHA-256(KEY_INFO_DOMAIN || CBOR(self))`: what every party's context names.
    pub fn digest(&self) -> [u8; 32] {
        let mut bytes = KEY_INFO_DOMAIN.to_vec();
        ciborium::into_writer(self, &mut bytes)
            .expect("serializing key facts into a Vec cannot fail");
        Sha256::digest(bytes).into()
    }
}

/// Domain tag of the context of a new party set's auxiliary information
/// ([`aux_move_context`]).
pub const AUX_MOVE_DOMAIN: &[u8] = b"cohort/roster-aux/v1\0";

/// The context of the auxiliary information made for a roster change's party set
/// (`crate::session::SessionKind::MoveAux`), which its execution id names: `SHA-256(
/// AUX_MOVE_DOMAIN || cluster || change || current || u32 version || roster || chain)`, with
/// the fields of [`Transfer`]. Parties that differ on any of it derive different execution ids
/// and never take each other's messages.
pub fn aux_move_context(t: &AuxMove<'_>) -> [u8; 32] {
    change_context(AUX_MOVE_DOMAIN, t).finalize().into()
}

/// `domain || cluster || change || current || u32 version || roster || chain`, hashing on:
/// what both a key's move and the new party set's auxiliary information name first.
fn change_context(domain: &[u8], t: &AuxMove<'_>) -> Sha256 {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(t.cluster.0);
    h.update(t.change);
    h.update(t.current);
    h.update(t.version.to_be_bytes());
    h.update(t.roster);
    h.update(t.chain);
    h
}

/// What a new party set's auxiliary information is made for ([`aux_move_context`]); each
/// field as in [`Transfer`].
#[derive(Debug, Clone, Copy)]
pub struct AuxMove<'a> {
    /// The cluster.
    pub cluster: &'a ClusterId,
    /// SHA-256 of the approved change's canonical bytes.
    pub change: &'a [u8; 32],
    /// The digest of the roster in force.
    pub current: &'a [u8; 32],
    /// The new roster's version.
    pub version: u32,
    /// The new roster's digest.
    pub roster: &'a [u8; 32],
    /// The chain digest every party of the new roster holds.
    pub chain: &'a [u8; 32],
}

/// What one key's redistribution to a new roster is, as every party computes it itself.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// The cluster.
    pub cluster: &'a ClusterId,
    /// SHA-256 of the approved change's canonical bytes.
    pub change: &'a [u8; 32],
    /// The digest of the roster in force (`crate::genesis::roster_digest`), whose indices
    /// name the dealers and every party's `current` index.
    pub current: &'a [u8; 32],
    /// The new roster's version.
    pub version: u32,
    /// The new roster's digest (`crate::genesis::roster_digest`).
    pub roster: &'a [u8; 32],
    /// The chain digest every party of the new roster holds (`crate::roster::chain_digest`).
    pub chain: &'a [u8; 32],
    /// The session's party space (`crate::roster::RosterDiff::parties`).
    pub parties: &'a [ChangeParty],
    /// The dealers, by index in the roster in force, increasing.
    pub dealers: &'a [u16],
    /// [`KeyInfo::digest`] of the key moved.
    pub key: &'a [u8; 32],
}

fn index(i: Option<u16>) -> [u8; 3] {
    match i {
        Some(i) => {
            let [a, b] = i.to_be_bytes();
            [1, a, b]
        }
        None => [0; 3],
    }
}

/// The context of a key's redistribution to a new roster: `SHA-256(TRANSFER_DOMAIN || cluster
/// || change || current || u32 version || roster || chain || u32 n || n x (current, next) ||
/// u32 d || d x u16 dealer || key)`, each index as `01 || u16` or `00 00 00` for none. The redistribution's
/// confirmed digest covers it (the `context` of `reshare::commitments_digest`), so parties
/// that differ on any part of it never confirm each other.
pub fn transfer_context(t: &Transfer<'_>) -> [u8; 32] {
    let mut h = change_context(
        TRANSFER_DOMAIN,
        &AuxMove {
            cluster: t.cluster,
            change: t.change,
            current: t.current,
            version: t.version,
            roster: t.roster,
            chain: t.chain,
        },
    );
    h.update(
        u32::try_from(t.parties.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for p in t.parties {
        h.update(index(p.current));
        h.update(index(p.next));
    }
    h.update(
        u32::try_from(t.dealers.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for d in t.dealers {
        h.update(d.to_be_bytes());
    }
    h.update(t.key);
    h.finalize().into()
}

/// What a node of the new roster signs by its node key once it sealed a key's incoming
/// generation: `KEY_MOVED_DOMAIN || cluster || node key || u32 version || change || u32
/// len || key id || u32 generation dealt from || u16 index || confirmed digest || key facts'
/// digest`. The commit compares every node's digests (`super::commit`): one digest, one sharing.
pub fn key_moved_message(
    cluster: &ClusterId,
    node_key: &[u8; 32],
    (version, change): (u32, &[u8; 32]),
    (key_id, generation): (&str, u32),
    index: u16,
    confirmed: &[u8; 32],
    key: &[u8; 32],
) -> Vec<u8> {
    let mut m = KEY_MOVED_DOMAIN.to_vec();
    m.extend_from_slice(&cluster.0);
    m.extend_from_slice(node_key);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(change);
    m.extend_from_slice(
        &u32::try_from(key_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(key_id.as_bytes());
    m.extend_from_slice(&generation.to_be_bytes());
    m.extend_from_slice(&index.to_be_bytes());
    m.extend_from_slice(confirmed);
    m.extend_from_slice(key);
    m
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
