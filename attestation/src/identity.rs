//! The enclave's identity keys and their binding into an attestation document.
//!
//! An enclave generates two key pairs in memory at boot: Ed25519 for signatures, X25519 for
//! encryption. Its identity documents carry
//!
//! * `public_key` = [`IdentityKeys::to_bytes`]: `0x01 || ed25519 (32) || x25519 (32)`, and
//! * `user_data`  = [`IdentityKeys::binding`]: `0x01 || SHA-384(len(DST) || DST || ed25519 || x25519)`
//!   with `DST = "cohort/attestation/identity-binding/v1"`.
//!
//! The binding in `user_data` is what a verifier checks; documents made for other purposes (a KMS
//! `Recipient` carries an RSA key in `public_key`) keep the same `user_data`, so every document an
//! enclave produces is tied to one identity.

use sha2::{Digest, Sha384};

/// Version byte of the identity-key encoding and of the binding.
pub const IDENTITY_VERSION: u8 = 1;
/// Length of [`IdentityKeys::to_bytes`].
pub const IDENTITY_KEYS_LEN: usize = 65;
/// Length of [`IdentityKeys::binding`].
pub const IDENTITY_BINDING_LEN: usize = 49;
const BINDING_DST: &[u8] = b"cohort/attestation/identity-binding/v1";

/// The public halves of an enclave's identity keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKeys {
    /// Ed25519 verifying key (signatures on broadcast messages, receipts).
    pub signing: [u8; 32],
    /// X25519 public key (authenticated encryption of point-to-point messages).
    pub encryption: [u8; 32],
}

/// The identity-key encoding is not one this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version-{IDENTITY_VERSION} identity-key encoding ({len} bytes)")]
pub struct UnknownIdentityEncoding {
    /// Length of the rejected input.
    pub len: usize,
}

impl IdentityKeys {
    /// Versioned encoding placed in an identity document's `public_key` field.
    pub fn to_bytes(&self) -> [u8; IDENTITY_KEYS_LEN] {
        let mut out = [0u8; IDENTITY_KEYS_LEN];
        out[0] = IDENTITY_VERSION;
        out[1..33].copy_from_slice(&self.signing);
        out[33..].copy_from_slice(&self.encryption);
        out
    }

    /// Parses [`IdentityKeys::to_bytes`]; rejects other versions and lengths.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UnknownIdentityEncoding> {
        let err = UnknownIdentityEncoding { len: bytes.len() };
        let bytes: &[u8; IDENTITY_KEYS_LEN] = bytes.try_into().map_err(|_| err.clone())?;
        if bytes[0] != IDENTITY_VERSION {
            return Err(err);
        }
        let mut signing = [0u8; 32];
        let mut encryption = [0u8; 32];
        signing.copy_from_slice(&bytes[1..33]);
        encryption.copy_from_slice(&bytes[33..]);
        Ok(Self {
            signing,
            encryption,
        })
    }

    /// The domain-separated, versioned commitment placed in `user_data`.
    pub fn binding(&self) -> [u8; IDENTITY_BINDING_LEN] {
        let mut h = Sha384::new();
        h.update([BINDING_DST.len() as u8]);
        h.update(BINDING_DST);
        h.update(self.signing);
        h.update(self.encryption);
        let mut out = [0u8; IDENTITY_BINDING_LEN];
        out[0] = IDENTITY_VERSION;
        out[1..].copy_from_slice(&h.finalize());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: IdentityKeys = IdentityKeys {
        signing: [1; 32],
        encryption: [2; 32],
    };

    #[test]
    fn encoding_round_trips_and_rejects_other_versions() {
        let bytes = KEYS.to_bytes();
        assert_eq!(IdentityKeys::from_bytes(&bytes).unwrap(), KEYS);
        let mut v2 = bytes;
        v2[0] = 2;
        assert!(IdentityKeys::from_bytes(&v2).is_err());
        assert!(IdentityKeys::from_bytes(&bytes[..64]).is_err());
    }

    /// Known answer: the binding is a stable format.
    #[test]
    fn binding_known_answer() {
        assert_eq!(
            hex::encode(KEYS.binding()),
            "016c1c2762c63f825e34e2bb983204c3c502b3b9204dfaa8ebeb334f173844e6941b9c49622cc614679967b6629095fa8a"
        );
    }

    #[test]
    fn binding_separates_the_two_keys() {
        let swapped = IdentityKeys {
            signing: KEYS.encryption,
            encryption: KEYS.signing,
        };
        assert_ne!(KEYS.binding(), swapped.binding());
    }
}
