//! Key receipts, version 2 (ADR 0013): what each participant's node key signs for a new key, so
//! that a client holding the pinned genesis can check a key without trusting the coordinator.
//!
//! A verifier rebuilds the receipt from the key's fields and the signer's index, so a change to
//! any field breaks every signature.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::genesis::{ClusterId, Genesis, RosterEntry};
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
    /// The version of the key's policy with this generation (issue 20): 0, left out, until
    /// the admins first replace the key's approvers.
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub policy_version: u32,
    /// The key's policy with this generation once the admins replaced it (version above 0):
    /// what a client checks the approvers it is shown against. Left out at version 0, where
    /// the creation request says who approves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::KeyPolicy>,
}

impl KeyReceipt {
    /// This receipt naming policy `policy` at version `version`: both left out at version 0.
    pub fn with_policy(self, version: u32, policy: &crate::policy::KeyPolicy) -> Self {
        Self {
            policy_version: version,
            policy: (version > 0).then(|| policy.clone()),
            ..self
        }
    }

    /// The bytes a node key signs: `"cohort/key-receipt/v2\0" || CBOR(receipt)`.
    pub fn message(&self) -> Vec<u8> {
        let mut m = KEY_RECEIPT_DOMAIN.to_vec();
        ciborium::into_writer(self, &mut m).expect("serializing a receipt into a Vec cannot fail");
        m
    }
}

/// Why a key's receipts do not show that the pinned cluster's nodes hold it (each its own
/// variant; [`ReceiptError::kind`] is stable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// No node's signature at all.
    #[error("no_receipts: no node's receipt is given for this key")]
    Missing,
    /// The receipts are for another cluster than the pinned genesis.
    #[error("other_cluster: the receipts name cluster {named}; the pinned genesis is {pinned}")]
    OtherCluster {
        /// The cluster id named (hex).
        named: String,
        /// The pinned cluster id (hex).
        pinned: String,
    },
    /// The participants are not every node of the pinned roster, in order.
    #[error(
        "participants: the receipts name nodes {named:?}; every node of the pinned roster ({nodes}) holds a share"
    )]
    Participants {
        /// The participants named.
        named: Vec<u16>,
        /// The roster's size.
        nodes: usize,
    },
    /// A signature from a node that is not a participant, or a second one from a node.
    #[error("unexpected_receipt: node {0} is not a participant or signed twice")]
    Unexpected(u16),
    /// A participant's receipt is missing.
    #[error("missing_receipt: node {0} gives no receipt")]
    MissingNode(u16),
    /// A participant's signature does not verify under the node key the roster lists for it.
    #[error(
        "bad_receipt: node {0}'s receipt does not verify under its node key in the pinned roster (the key's fields are not what that node signed)"
    )]
    BadSignature(u16),
}

impl ReceiptError {
    /// The stable kind (the message's first word).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "no_receipts",
            Self::OtherCluster { .. } => "other_cluster",
            Self::Participants { .. } => "participants",
            Self::Unexpected(_) => "unexpected_receipt",
            Self::MissingNode(_) => "missing_receipt",
            Self::BadSignature(_) => "bad_receipt",
        }
    }
}

/// Checks that every node of `genesis`' roster signed `claimed` ([`verify_key_receipts_in`]
/// the genesis roster, version 0).
pub fn verify_key_receipts(
    genesis: &Genesis,
    claimed: &KeyReceipt,
    signatures: &[(u16, Vec<u8>)],
) -> Result<(), ReceiptError> {
    verify_key_receipts_in(
        (&genesis.cluster_id(), &genesis.roster),
        claimed,
        signatures,
    )
}

/// Checks that every node of `roster`, a roster of cluster `cluster` (the genesis' or one a
/// committed change made: the one the receipts were signed under), signed `claimed` (its
/// `node` field is ignored: each receipt is rebuilt with its signer's index) with the node key
/// the roster lists for it. `signatures` are (node index, Ed25519 signature). A key passes
/// only if each participant's enclave signed exactly these fields, so a coordinator that
/// substitutes a public key, a chain code, a scheme or a threshold is caught.
pub fn verify_key_receipts_in(
    (cluster, roster): (&ClusterId, &[RosterEntry]),
    claimed: &KeyReceipt,
    signatures: &[(u16, Vec<u8>)],
) -> Result<(), ReceiptError> {
    if signatures.is_empty() {
        return Err(ReceiptError::Missing);
    }
    if claimed.cluster != *cluster {
        return Err(ReceiptError::OtherCluster {
            named: claimed.cluster.to_string(),
            pinned: cluster.to_string(),
        });
    }
    let nodes = roster.len();
    if !claimed.participants.iter().copied().eq(0..nodes as u16) {
        return Err(ReceiptError::Participants {
            named: claimed.participants.clone(),
            nodes,
        });
    }
    let mut seen = vec![false; nodes];
    for (node, _) in signatures {
        match seen.get_mut(usize::from(*node)) {
            Some(s) if !*s => *s = true,
            _ => return Err(ReceiptError::Unexpected(*node)),
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(ReceiptError::MissingNode(missing as u16));
    }
    for (node, signature) in signatures {
        let entry = &roster[usize::from(*node)];
        let receipt = KeyReceipt {
            node: *node,
            ..claimed.clone()
        };
        let ok = entry.signed(&receipt.message(), signature);
        if !ok {
            return Err(ReceiptError::BadSignature(*node));
        }
    }
    Ok(())
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
            policy_version: 0,
            policy: None,
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

    /// A genesis of three nodes with node keys from seeds 1..=3, and each node's signature over
    /// `claimed`.
    fn signed(claimed: &KeyReceipt) -> (Genesis, Vec<(u16, Vec<u8>)>) {
        use ed25519_dalek::Signer;
        let keys: Vec<_> = (1..=3u8)
            .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
            .collect();
        let mut genesis = crate::genesis::tests::sample();
        genesis.roster.truncate(3);
        for (entry, key) in genesis.roster.iter_mut().zip(&keys) {
            entry.node_key = ByteBuf::from(key.verifying_key().to_bytes().to_vec());
        }
        let claimed = KeyReceipt {
            cluster: genesis.cluster_id(),
            ..claimed.clone()
        };
        let signatures = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let r = KeyReceipt {
                    node: i as u16,
                    ..claimed.clone()
                };
                (i as u16, k.sign(&r.message()).to_bytes().to_vec())
            })
            .collect();
        (genesis, signatures)
    }

    /// Each way a coordinator could misreport a key is refused by name.
    #[test]
    fn receipts_verify_against_the_pinned_roster_only() {
        let (genesis, sigs) = signed(&sample());
        let claimed = KeyReceipt {
            cluster: genesis.cluster_id(),
            ..sample()
        };
        assert_eq!(verify_key_receipts(&genesis, &claimed, &sigs), Ok(()));
        // The order of the signatures does not matter.
        let mut reversed = sigs.clone();
        reversed.reverse();
        assert_eq!(verify_key_receipts(&genesis, &claimed, &reversed), Ok(()));

        let kind = |c: &KeyReceipt, s: &[(u16, Vec<u8>)]| {
            verify_key_receipts(&genesis, c, s).unwrap_err().kind()
        };
        // Another public key, chain code, threshold, scheme, key id or request.
        let edits: [fn(&mut KeyReceipt); 6] = [
            |r| r.public_key[1] ^= 1,
            |r| r.chain_code = None,
            |r| r.threshold = 3,
            |r| r.scheme = Scheme::EddsaEd25519,
            |r| r.key_id.push('x'),
            |r| r.request[0] ^= 1,
        ];
        for edit in edits {
            let mut c = claimed.clone();
            edit(&mut c);
            assert_eq!(kind(&c, &sigs), "bad_receipt");
        }
        assert_eq!(kind(&claimed, &[]), "no_receipts");
        let mut other = claimed.clone();
        other.cluster = ClusterId([9; 32]);
        assert_eq!(kind(&other, &sigs), "other_cluster");
        let mut fewer = claimed.clone();
        fewer.participants = vec![0, 1];
        assert_eq!(kind(&fewer, &sigs), "participants");
        assert_eq!(kind(&claimed, &sigs[..2]), "missing_receipt");
        let mut twice = sigs.clone();
        twice.push(sigs[0].clone());
        assert_eq!(kind(&claimed, &twice), "unexpected_receipt");
        let mut stranger = sigs.clone();
        stranger.push((3, sigs[0].1.clone()));
        assert_eq!(kind(&claimed, &stranger), "unexpected_receipt");
        // Node 1's signature presented as node 0's: node 0's key does not verify it.
        let mut swapped = sigs.clone();
        swapped[0].1 = sigs[1].1.clone();
        assert_eq!(kind(&claimed, &swapped), "bad_receipt");
        // A signature by a key outside the roster (an attacker's enclave) for node 2.
        let mut forged = sigs.clone();
        forged[2].1 = {
            use ed25519_dalek::Signer;
            let attacker = ed25519_dalek::SigningKey::from_bytes(&[0xAA; 32]);
            let r = KeyReceipt {
                node: 2,
                ..claimed.clone()
            };
            attacker.sign(&r.message()).to_bytes().to_vec()
        };
        assert_eq!(kind(&claimed, &forged), "bad_receipt");
        let mut short = sigs.clone();
        short[1].1.truncate(10);
        assert_eq!(kind(&claimed, &short), "bad_receipt");
    }
}
