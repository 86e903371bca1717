//! Threshold EdDSA (Ed25519) with FROST (`frost-ed25519`): distributed key generation and
//! two-round signing, driven as the state machines described in [`crate::mpc`].
//!
//! # Key generation ([`Dkg`])
//!
//! FROST's Pedersen DKG with proofs of knowledge, plus an echo round because the relay between
//! the parties is untrusted and could show different round-1 packages to different parties:
//!
//! 1. every party broadcasts its round-1 package (`dkg::part1`);
//! 2. once it holds all `n` round-1 packages, every party broadcasts an *echo*: a domain-separated
//!    SHA-256 over the session id, `n`, `t` and all round-1 packages ordered by sender;
//! 3. once all `n - 1` echoes arrived and equal its own, a party sends its round-2 packages
//!    point-to-point (`dkg::part2`);
//! 4. once it holds all round-2 packages, it computes its share (`dkg::part3`).
//!
//! No party sends a round-2 package, and so none accepts a share, before it has seen matching
//! echoes from every peer. Note that, as in FROST's DKG, an honest party can still finish while
//! another aborts (for example when one round-2 package is corrupted on its way to one party):
//! callers must treat a key as usable only once every party reported success.
//!
//! # Signing ([`Sign`])
//!
//! Two rounds among a chosen signer set of at least `t` parties: every signer broadcasts its nonce
//! commitments (the nonces stay in the machine and are consumed by value, so they are used at
//! most once and never serialized), then its signature share; every signer aggregates the shares,
//! verifies the group signature and returns the 64-byte Ed25519 signature `R || s`. Commitments
//! also carry a digest of the signing context (session, group key, signer set and message), so
//! signers that disagree about what they sign abort early instead of blaming each other later.
//!
//! # Wire format
//!
//! Every payload is CBOR of a versioned envelope (`V1 { session_id, body }`) whose body names the
//! round. A message of another round or protocol, of another session, or one that does not decode
//! is refused with [`MpcError::BadMessage`]; the machine stays usable after a refused message.
//! An [`MpcError::Aborted`] or [`MpcError::Internal`] error is terminal for the machine.
//!
//! # Storage format
//!
//! A [`SecretEddsaShare`] is stored in the envelope shared with ECDSA (see `mpc/envelope.rs`);
//! shares written in the older `FrostEd25519V1` layout still load.

mod dkg;
mod share;
mod sign;
#[cfg(test)]
mod testutil;
mod wire;

use frost_ed25519 as frost;
use frost_ed25519::Identifier;
use frost_ed25519::keys::VerifiableSecretSharingCommitment;
use sha2::{Digest, Sha256};

use super::{MpcError, PartyIndex};

pub use dkg::Dkg;
pub use share::SecretEddsaShare;
pub use sign::Sign;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length of an Ed25519 signature (`R || s`).
pub const SIGNATURE_LEN: usize = 64;

/// The FROST identifier of a party: its index plus one (FROST identifiers are non-zero).
fn identifier(party: PartyIndex) -> Result<Identifier, MpcError> {
    party
        .checked_add(1)
        .and_then(|v| Identifier::try_from(v).ok())
        .ok_or_else(|| MpcError::BadInput(format!("party index {party} out of range")))
}

/// The party of a FROST identifier, among parties `0..n`.
fn party_of(id: &Identifier, n: u16) -> Option<PartyIndex> {
    (0..n).find(|p| identifier(*p).is_ok_and(|candidate| candidate == *id))
}

/// A FROST error as a lowercase reason without a trailing period.
fn frost_reason(err: &frost::Error) -> String {
    let text = err.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps a FROST error to an abort blaming the parties FROST names (possibly none).
fn frost_abort(err: &frost::Error, n: u16, context: &str) -> MpcError {
    MpcError::Aborted {
        culprits: err
            .culprits()
            .iter()
            .filter_map(|id| party_of(id, n))
            .collect(),
        reason: format!("{context}: {}", frost_reason(err)),
    }
}

fn check_params(session_id: &[u8], me: PartyIndex, n: u16, t: u16) -> Result<(), MpcError> {
    if session_id.is_empty() {
        return Err(MpcError::BadInput("empty session id".into()));
    }
    if t < 2 || t > n {
        return Err(MpcError::BadInput(format!(
            "threshold {t} must be at least 2 and at most the number of parties {n}"
        )));
    }
    if me >= n {
        return Err(MpcError::BadInput(format!(
            "party index {me} out of range for {n} parties"
        )));
    }
    Ok(())
}

/// Number of coefficients of a VSS commitment (`t` for a well-formed one).
fn commitment_len(commitment: &VerifiableSecretSharingCommitment) -> Option<usize> {
    commitment.serialize().ok().map(|c| c.len())
}

fn update_len_prefixed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies an Ed25519 signature with `ed25519-dalek`'s strict verification.
///
/// Returns [`MpcError::BadInput`] if the public key does not decode or the signature is invalid.
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), MpcError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
        .map_err(|_| MpcError::BadInput("invalid ed25519 public key".into()))?;
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| MpcError::BadInput("invalid ed25519 signature".into()))
}
