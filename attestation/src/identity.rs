//! The enclave's identity keys and their binding into an attestation document.
//!
//! An enclave generates two key pairs in memory at boot: Ed25519 for signatures, X25519 for
//! encryption. Its identity documents (answers to `Attest`) carry one of two bindings.
//!
//! **Version 1** (an enclave that holds no node key yet):
//! * `public_key` = [`IdentityKeys::to_bytes`]: `0x01 || ed25519 (32) || x25519 (32)`, and
//! * `user_data`  = [`IdentityKeys::binding`]: `0x01 || SHA-384(len(DST) || DST || ed25519 || x25519)`
//!   with `DST = "cohort/attestation/identity-binding/v1"`.
//!
//! **Version 2** (an enclave enrolled with a long-term node key, ADR 0013):
//! * `public_key` = `0x02 || ed25519 (32) || x25519 (32) || node_key (32) || len (1) || kms_key_arn`,
//! * `user_data`  = `0x02 || SHA-384(len(DST) || DST || ed25519 || x25519 || node_key || len || arn)`
//!   with `DST = "cohort/attestation/identity-binding/v2"`,
//!
//! where `kms_key_arn` is the KMS key (full ARN) the node key is sealed under. Both are fixed
//! byte layouts, so each binding has one encoding. A verifier recomputes `user_data` from the
//! keys in `public_key` (or from keys it expects) and compares; see [`Binding`].
//!
//! Documents made for other purposes do not carry an identity binding: a KMS `Recipient`
//! document carries an RSA key in `public_key` and a fixed purpose string in `user_data`.

use sha2::{Digest, Sha384};

/// Version byte of the identity-key encoding and of the binding.
pub const IDENTITY_VERSION: u8 = 1;
/// Version byte of the binding that also carries a node key and its KMS key ([`Binding`]).
pub const NODE_BINDING_VERSION: u8 = 2;
/// Length of [`IdentityKeys::to_bytes`].
pub const IDENTITY_KEYS_LEN: usize = 65;
/// Length of [`IdentityKeys::binding`] and of [`Binding::user_data`].
pub const IDENTITY_BINDING_LEN: usize = 49;
/// Longest KMS key ARN a version-2 binding carries (ADR 0013: `KmsKeyArn`).
pub const MAX_KMS_KEY_ARN_LEN: usize = 200;
const BINDING_DST: &[u8] = b"cohort/attestation/identity-binding/v1";
const BINDING_DST_V2: &[u8] = b"cohort/attestation/identity-binding/v2";

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

/// What an enclave's node key and KMS key are, as a version-2 binding carries them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeBinding {
    /// The enclave's long-term Ed25519 node key (public half).
    pub node_key: [u8; 32],
    /// The KMS key, as a full key ARN, the node key is sealed under.
    kms_key_arn: String,
}

impl NodeBinding {
    /// A node binding. The ARN must be 1 to [`MAX_KMS_KEY_ARN_LEN`] bytes of printable ASCII;
    /// its grammar (a key ARN, not an alias) is `protocol::KmsKeyArn`'s to check.
    pub fn new(node_key: [u8; 32], kms_key_arn: &str) -> Result<Self, BindingError> {
        let ok = !kms_key_arn.is_empty()
            && kms_key_arn.len() <= MAX_KMS_KEY_ARN_LEN
            && kms_key_arn.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(BindingError::Malformed {
                version: NODE_BINDING_VERSION,
                reason: "the KMS key ARN is empty, longer than 200 bytes or not printable ASCII",
            });
        }
        Ok(Self {
            node_key,
            kms_key_arn: kms_key_arn.to_string(),
        })
    }

    /// The KMS key ARN.
    pub fn kms_key_arn(&self) -> &str {
        &self.kms_key_arn
    }
}

/// Everything an identity document binds: the per-boot identity keys and, from version 2 on,
/// the enclave's node key and KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The per-boot identity keys.
    pub identity: IdentityKeys,
    /// The node key and its KMS key; `None` in a version-1 binding.
    pub node: Option<NodeBinding>,
}

/// A `public_key` field that is not an identity binding this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The field is empty.
    #[error("the identity binding is empty")]
    Empty,
    /// A version this build does not know (it knows 1 and 2).
    #[error(
        "identity binding version {version} is not supported by this verifier (it knows 1 and 2)"
    )]
    Unsupported {
        /// The version byte found.
        version: u8,
    },
    /// A known version whose bytes do not follow its layout.
    #[error("malformed version-{version} identity binding: {reason}")]
    Malformed {
        /// The version byte found.
        version: u8,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Binding {
    /// The binding's version: 1 without a node key, 2 with one.
    pub fn version(&self) -> u8 {
        if self.node.is_some() {
            NODE_BINDING_VERSION
        } else {
            IDENTITY_VERSION
        }
    }

    /// The bytes placed in a document's `public_key`.
    pub fn public_key(&self) -> Vec<u8> {
        let Some(node) = &self.node else {
            return self.identity.to_bytes().to_vec();
        };
        let mut out = Vec::with_capacity(98 + node.kms_key_arn.len());
        out.push(NODE_BINDING_VERSION);
        out.extend_from_slice(&self.identity.signing);
        out.extend_from_slice(&self.identity.encryption);
        out.extend_from_slice(&node.node_key);
        out.push(arn_len(node));
        out.extend_from_slice(node.kms_key_arn.as_bytes());
        out
    }

    /// The bytes placed in a document's `user_data`: the domain-separated digest of the binding.
    pub fn user_data(&self) -> [u8; IDENTITY_BINDING_LEN] {
        let Some(node) = &self.node else {
            return self.identity.binding();
        };
        let mut h = Sha384::new();
        h.update([BINDING_DST_V2.len() as u8]);
        h.update(BINDING_DST_V2);
        h.update(self.identity.signing);
        h.update(self.identity.encryption);
        h.update(node.node_key);
        h.update([arn_len(node)]);
        h.update(node.kms_key_arn.as_bytes());
        let mut out = [0u8; IDENTITY_BINDING_LEN];
        out[0] = NODE_BINDING_VERSION;
        out[1..].copy_from_slice(&h.finalize());
        out
    }

    /// Parses [`Binding::public_key`] of either version.
    pub fn parse(bytes: &[u8]) -> Result<Self, BindingError> {
        let (&version, rest) = bytes.split_first().ok_or(BindingError::Empty)?;
        let malformed = |reason| BindingError::Malformed { version, reason };
        match version {
            IDENTITY_VERSION => IdentityKeys::from_bytes(bytes)
                .map(|identity| Self {
                    identity,
                    node: None,
                })
                .map_err(|_| malformed("not 65 bytes")),
            NODE_BINDING_VERSION => {
                if rest.len() < 97 {
                    return Err(malformed("shorter than its fixed part"));
                }
                let (keys, rest) = rest.split_at(96);
                let (&len, arn) = rest
                    .split_first()
                    .ok_or(malformed("shorter than its fixed part"))?;
                if arn.len() != usize::from(len) {
                    return Err(malformed("the KMS key ARN's length byte disagrees"));
                }
                let arn = std::str::from_utf8(arn).map_err(|_| malformed("the ARN is not text"))?;
                let mut signing = [0u8; 32];
                let mut encryption = [0u8; 32];
                let mut node_key = [0u8; 32];
                signing.copy_from_slice(&keys[..32]);
                encryption.copy_from_slice(&keys[32..64]);
                node_key.copy_from_slice(&keys[64..]);
                Ok(Self {
                    identity: IdentityKeys {
                        signing,
                        encryption,
                    },
                    node: Some(NodeBinding::new(node_key, arn)?),
                })
            }
            version => Err(BindingError::Unsupported { version }),
        }
    }
}

fn arn_len(node: &NodeBinding) -> u8 {
    u8::try_from(node.kms_key_arn.len()).expect("NodeBinding::new bounds the ARN to 200 bytes")
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

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn v2() -> Binding {
        Binding {
            identity: KEYS,
            node: Some(NodeBinding::new([3; 32], ARN).unwrap()),
        }
    }

    /// Known answer (computed independently with Python's hashlib): the version-2 layout and
    /// digest are a stable format.
    #[test]
    fn binding_v2_known_answer() {
        let b = v2();
        let pk = b.public_key();
        assert_eq!(pk.len(), 98 + ARN.len());
        assert_eq!(pk[0], 2);
        assert_eq!(&pk[65..97], &[3; 32]);
        assert_eq!(usize::from(pk[97]), ARN.len());
        assert_eq!(
            hex::encode(b.user_data()),
            "02b03018b76fecfd46c0179fdc75492dce800063d93d87e3be064b1c86910d51703f22ce456020115f2d8dd362f92e3663"
        );
        assert_eq!(Binding::parse(&pk).unwrap(), b);
    }

    #[test]
    fn version_1_is_the_identity_encoding() {
        let b = Binding {
            identity: KEYS,
            node: None,
        };
        assert_eq!(b.public_key(), KEYS.to_bytes());
        assert_eq!(b.user_data(), KEYS.binding());
        assert_eq!(Binding::parse(&KEYS.to_bytes()).unwrap(), b);
        assert_eq!(b.version(), 1);
        assert_eq!(v2().version(), 2);
    }

    #[test]
    fn the_old_decoder_refuses_version_2() {
        assert!(IdentityKeys::from_bytes(&v2().public_key()).is_err());
    }

    #[test]
    fn every_field_of_version_2_is_bound() {
        let base = v2().user_data();
        let mut other_node = v2();
        other_node.node = Some(NodeBinding::new([4; 32], ARN).unwrap());
        let mut other_arn = v2();
        other_arn.node =
            Some(NodeBinding::new([3; 32], &ARN.replace("eu-west-1", "eu-west-2")).unwrap());
        let mut other_identity = v2();
        other_identity.identity.encryption = [9; 32];
        for b in [other_node, other_arn, other_identity] {
            assert_ne!(b.user_data(), base);
        }
        // Version 1 of the same identity keys is a different binding.
        assert_ne!(KEYS.binding(), base);
    }

    #[test]
    fn unknown_and_malformed_bindings_are_named() {
        assert_eq!(
            Binding::parse(&[3, 0, 0]),
            Err(BindingError::Unsupported { version: 3 })
        );
        assert_eq!(Binding::parse(&[]), Err(BindingError::Empty));
        let pk = v2().public_key();
        for cut in [1, 60, 97, pk.len() - 1] {
            assert!(
                matches!(
                    Binding::parse(&pk[..cut]),
                    Err(BindingError::Malformed { version: 2, .. })
                ),
                "{cut}"
            );
        }
        let mut long = pk.clone();
        long.push(b'x');
        assert!(matches!(
            Binding::parse(&long),
            Err(BindingError::Malformed { .. })
        ));
        let mut not_ascii = pk.clone();
        *not_ascii.last_mut().unwrap() = 0x01;
        assert!(matches!(
            Binding::parse(&not_ascii),
            Err(BindingError::Malformed { .. })
        ));
        assert!(NodeBinding::new([0; 32], "").is_err());
        assert!(NodeBinding::new([0; 32], &"a".repeat(201)).is_err());
        assert!(NodeBinding::new([0; 32], &"a".repeat(200)).is_ok());
    }
}
