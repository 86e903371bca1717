//! Threshold ECDSA on secp256k1: CGGMP21 as implemented by the `cggmp21` crate (0.6.3).
//!
//! The protocols are auxiliary-info generation ([`AuxInfoGen`]), threshold key generation with
//! HD support ([`Keygen`]), presignature generation ([`Presign`], then
//! [`SecretPresignature::issue_partial_signature`] and [`combine`]) and full interactive signing
//! ([`Sign`]). Each is cggmp21's async protocol wrapped by round-based's sync state machine
//! (`round_based::state_machine::wrap_protocol`, which is exactly what cggmp21's `*_sync` and
//! `into_state_machine` builder functions do). We wrap the async protocol ourselves because the
//! `*_sync` functions borrow the execution id, the signer list and the key share for the
//! machine's whole life; our machines own them instead, so they can be stored in a session.
//! Machines hold an `Rc` inside (round-based's shared state), so they are not `Send`: drive each
//! one from a single thread. `start` and `handle` do the protocol's CPU work synchronously (up to
//! seconds for auxiliary info, Paillier arithmetic in GMP): call them off the async runtime.
//!
//! Party indices (`i`, `IncomingMessage::from`, `OutgoingMessage::to`, `culprits`) are indices
//! within one run: keygen indices for [`AuxInfoGen`] and [`Keygen`], positions in `signers` for
//! [`Presign`] and [`Sign`]. The session id becomes cggmp21's `ExecutionId`, which the protocols
//! bind into every commitment and proof, so messages cannot be replayed across sessions.
//!
//! # Wire format
//! Every payload is the CBOR encoding (`ciborium`) of the cggmp21 message enum of the protocol
//! (round tag and round body), at most [`MAX_PAYLOAD_LEN`] bytes (the largest honest one, an
//! auxiliary-info round-3 message, is about 210 KB). Before a message reaches the
//! protocol it is checked here: sender in range and not ourselves, payload decodes with no
//! trailing bytes, the round exists in this protocol, broadcast/p2p matches the round, and at
//! most one message per (round, sender). A message failing those checks is rejected with
//! [`MpcError::BadMessage`] and dropped; the machine stays usable, and the session layer decides
//! whether to abort. Reliable-broadcast enforcement (an echo round) stays on in every protocol.
//!
//! # Storage format
//! Secrets that may be persisted ([`SecretPrimes`], [`SecretAuxInfo`], [`SecretKeyShare`]) and
//! [`PartialSignature`]s are written in the storage envelope shared with EdDSA (a CBOR map
//! `{version, kind, body}`, see `mpc/envelope.rs`); decoding rejects unknown versions, other
//! kinds and unknown fields of the envelope, and validates the body.
//! Presignatures are never serialized (they must be used at most once).
//!
//! # Secrets in memory
//! Secret scalars (key shares, presignature nonces) are `generic_ec::SecretScalar`s, which are
//! zeroized on drop. Paillier primes are GMP integers (`rug::Integer`) that cannot be zeroized
//! without unsafe code; this is a known limitation. Serialized secrets are returned in
//! [`Zeroizing`] buffers sized exactly before writing (no reallocation leaves copies behind).

mod aux;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
mod keygen;
mod presign;
mod primes;
mod share;
mod sign;
mod signature;
#[cfg(test)]
mod testutil;

use std::collections::HashSet;

use cggmp21::security_level::SecurityLevel128;
use cggmp21::supported_curves::Secp256k1;

use super::{MpcError, PartyIndex};

pub use super::driver::MAX_PAYLOAD_LEN;
pub use aux::{AuxInfoGen, SecretAuxInfo};
pub use keygen::{Keygen, SecretIncompleteKeyShare};
pub use presign::{Presign, SecretPresignature};
pub use primes::SecretPrimes;
pub use share::{ExtendedPublicKey, SecretKeyShare};
pub use sign::Sign;
pub use signature::{PartialSignature, Signature, combine};

/// The curve.
type E = Secp256k1;
/// Security level of the Paillier/ZK parameters (128 bits, cggmp21's default).
type L = SecurityLevel128;
/// Hash used inside the protocols (cggmp21's default).
type D = sha2::Sha256;

type SigningMsg = cggmp21::signing::msg::Msg<E, D>;

/// round-based asserts `n >= 2` and `i < n`: check before building a machine.
pub(super) fn check_party(i: PartyIndex, n: u16) -> Result<(), MpcError> {
    if n < 2 {
        return Err(MpcError::BadInput(format!("{n} parties, need at least 2")));
    }
    if i >= n {
        return Err(MpcError::BadInput(format!(
            "party index {i} out of range for {n} parties"
        )));
    }
    Ok(())
}

/// Checks a signer set against the key share; returns the number of signers `t`.
pub(super) fn check_signers(
    i: PartyIndex,
    signers: &[PartyIndex],
    share: &SecretKeyShare,
) -> Result<u16, MpcError> {
    let t = share.threshold();
    if signers.len() != usize::from(t) {
        return Err(MpcError::BadInput(format!(
            "{} signers, the key needs exactly {t}",
            signers.len()
        )));
    }
    check_party(i, t)?;
    let n = share.parties();
    let mut seen = HashSet::new();
    for &s in signers {
        if s >= n {
            return Err(MpcError::BadInput(format!("signer {s} out of range")));
        }
        if !seen.insert(s) {
            return Err(MpcError::BadInput(format!("signer {s} listed twice")));
        }
    }
    if signers[usize::from(i)] != share.index() {
        return Err(MpcError::BadInput(
            "signers[i] is not this key share's index".into(),
        ));
    }
    Ok(t)
}
