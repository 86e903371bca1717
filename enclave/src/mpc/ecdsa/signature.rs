//! ECDSA signatures, partial signatures issued from presignatures, and their combination.

use std::collections::HashSet;
use std::fmt;

use cggmp21::DataToSign;
use cggmp21::generic_ec::Scalar;
use serde::{Deserialize, Serialize};

use super::E;
use super::share::parse_public_key;
use crate::mpc::envelope::{self, Kind};
use crate::mpc::{MpcError, PartyIndex};

/// An ECDSA signature `r || s` (32 bytes each, big-endian) with low `s` (BIP62/EIP-2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    pub(super) fn from_cggmp(sig: &cggmp21::Signature<E>) -> Self {
        let mut out = [0u8; 64];
        sig.normalize_s().write_to_slice(&mut out);
        Self(out)
    }

    /// The 64-byte `r || s` encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// Verifies the signature of a 32-byte digest under a SEC1-compressed public key.
    pub fn verify(&self, public_key: &[u8; 33], digest: &[u8; 32]) -> Result<(), MpcError> {
        let public_key = parse_public_key(public_key)?;
        let sig = cggmp21::Signature::<E>::read_from_slice(&self.0)
            .ok_or_else(|| MpcError::BadInput("signature has a zero component".into()))?;
        sig.verify(&public_key, &data_to_sign(digest))
            .map_err(|_| MpcError::BadInput("signature does not verify".into()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The prehashed message: the 32-byte digest read as a big-endian integer, reduced mod n (the
/// standard ECDSA conversion for a 256-bit hash on secp256k1, as Bitcoin and Ethereum use).
pub(super) fn data_to_sign(digest: &[u8; 32]) -> DataToSign<E> {
    DataToSign::from_scalar(Scalar::from_be_bytes_mod_order(digest))
}

/// One signer's share of a signature, issued from a presignature. Not secret.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PartialSignature {
    pub(super) signer: PartyIndex,
    pub(super) r: Scalar<E>,
    pub(super) sigma: Scalar<E>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialSignatureBody {
    signer: PartyIndex,
    r: Scalar<E>,
    sigma: Scalar<E>,
}

impl PartialSignature {
    /// Index (within the signing run) of the party that issued it.
    pub fn signer(&self) -> PartyIndex {
        self.signer
    }

    /// Encodes it for transport (versioned CBOR envelope).
    pub fn to_bytes(&self) -> Result<Vec<u8>, MpcError> {
        let body = PartialSignatureBody {
            signer: self.signer,
            r: self.r,
            sigma: self.sigma,
        };
        envelope::encode(Kind::EcdsaPartialSignature, &body).map(|b| b.to_vec())
    }

    /// Decodes a partial signature written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let body: PartialSignatureBody = envelope::decode_body(Kind::EcdsaPartialSignature, bytes)?;
        Ok(Self {
            signer: body.signer,
            r: body.r,
            sigma: body.sigma,
        })
    }
}

/// Combines the partial signatures of all `t` signers of one presignature run into a signature
/// of `digest`, and verifies it under `public_key` (the derived child key the presignatures were
/// bound to) before returning it. A signature that does not verify (missing, wrong or forged
/// partials) is [`MpcError::Aborted`] and is never returned.
pub fn combine(
    partials: &[PartialSignature],
    digest: &[u8; 32],
    public_key: &[u8; 33],
) -> Result<Signature, MpcError> {
    let public_key = parse_public_key(public_key)?;
    let mut signers = HashSet::new();
    if let Some(dup) = partials.iter().find(|p| !signers.insert(p.signer)) {
        return Err(MpcError::BadInput(format!(
            "two partial signatures from signer {}",
            dup.signer
        )));
    }
    let aborted = |reason: &str| MpcError::Aborted {
        culprits: Vec::new(),
        reason: reason.into(),
    };
    let Some(first) = partials.first() else {
        return Err(MpcError::BadInput("no partial signature".into()));
    };
    if partials.iter().any(|p| p.r != first.r) {
        return Err(aborted(
            "partial signatures come from different presignatures",
        ));
    }
    let inner: Vec<_> = partials
        .iter()
        .map(|p| cggmp21::PartialSignature {
            r: p.r,
            sigma: p.sigma,
        })
        .collect();
    let sig = cggmp21::PartialSignature::combine(&inner)
        .ok_or_else(|| aborted("partial signatures combine to a zero component"))?
        .normalize_s();
    sig.verify(&public_key, &data_to_sign(digest))
        .map_err(|_| aborted("combined signature does not verify"))?;
    Ok(Signature::from_cggmp(&sig))
}
