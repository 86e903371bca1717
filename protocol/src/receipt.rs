//! Key receipts, version 2 (ADR 0013): what each participant's node key signs for a new key, so
//! that a client holding the pinned genesis can check a key without trusting the coordinator.
//!
//! A verifier rebuilds the receipt from the key's fields and the signer's index, so a change to
//! any field breaks every signature.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::genesis::ClusterId;
use crate::policy::Scheme;

/// Version of [`KeyReceipt`].
pub const KEY_RECEIPT_VERSION: u8 = 2;
/// Domain tag of a key receipt, which a node key signs.
pub const KEY_RECEIPT_DOMAIN: &[u8] = b"cohort/key-receipt/v2\0";

/// The statement a participant's node key signs when a key is created (or, from issue 19, a
/// new generation of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReceipt {
    /// [`KEY_RECEIPT_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The signer's node index.
    pub node: u16,
    /// The key id.
    pub key_id: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// Its threshold.
    pub threshold: u16,
    /// The node indices that hold a share of this generation.
    pub participants: Vec<u16>,
    /// The key's public key.
    pub public_key: ByteBuf,
    /// Its BIP-32 chain code (ECDSA keys), if any.
    pub chain_code: Option<ByteBuf>,
    /// The key generation (0 at creation).
    pub generation: u32,
    /// SHA-256 of the approved creation request's canonical bytes.
    pub request: ByteBuf,
}

impl KeyReceipt {
    /// The bytes a node key signs: `"cohort/key-receipt/v2\0" || CBOR(receipt)`.
    pub fn message(&self) -> Vec<u8> {
        let mut m = KEY_RECEIPT_DOMAIN.to_vec();
        ciborium::into_writer(self, &mut m).expect("serializing a receipt into a Vec cannot fail");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyReceipt {
        KeyReceipt {
            v: KEY_RECEIPT_VERSION,
            cluster: ClusterId([0xC1; 32]),
            node: 1,
            key_id: "vault".into(),
            scheme: Scheme::EcdsaSecp256k1,
            threshold: 2,
            participants: vec![0, 1, 2],
            public_key: ByteBuf::from(vec![0x02; 33]),
            chain_code: Some(ByteBuf::from(vec![0xCC; 32])),
            generation: 0,
            request: ByteBuf::from(vec![0x5A; 32]),
        }
    }

    /// Byte snapshot: the signed message is a stable format (the expected bytes were written
    /// independently with Python's `cbor2`, not by this code).
    #[test]
    fn snapshot() {
        let m = sample().message();
        assert!(m.starts_with(KEY_RECEIPT_DOMAIN));
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "636f686f72742f6b65792d726563656970742f763200ab61760267636c75737465725820c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1646e6f646501666b65795f6964657661756c7466736368656d656f65636473612d736563703235366b31697468726573686f6c64026c7061727469636970616e7473830001026a7075626c69635f6b657958210202020202020202020202020202020202020202020202020202020202020202026a636861696e5f636f64655820cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc6a67656e65726174696f6e00677265717565737458205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
        );
    }

    #[test]
    fn every_field_is_signed() {
        let base = sample().message();
        let edits: [fn(&mut KeyReceipt); 11] = [
            |r| r.v = 3,
            |r| r.cluster.0[0] ^= 1,
            |r| r.node = 2,
            |r| r.key_id.push('x'),
            |r| r.scheme = Scheme::EddsaEd25519,
            |r| r.threshold = 3,
            |r| r.participants.pop().map(drop).unwrap_or_default(),
            |r| r.public_key[1] ^= 1,
            |r| r.chain_code = None,
            |r| r.generation = 1,
            |r| r.request[0] ^= 1,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut r = sample();
            edit(&mut r);
            assert_ne!(r.message(), base, "edit {i}");
        }
    }
}
