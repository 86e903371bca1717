//! The node key (ADR 0013): made once by `Enroll`, sealed under the KMS key the request names,
//! restored from its blob after every restart. The KMS key is named to the sealing authority
//! with it, and every later KMS call uses that key.

use protocol::KmsKeyArn;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::info;
use zeroize::Zeroizing;

use super::membership::MembershipError;
use super::{Node, NodeError};
use crate::identity::SecretNodeKey;
use crate::seal::BlobKind;

/// Version of [`NodeKeyRecord`].
const NODE_KEY_RECORD_VERSION: u8 = 1;

/// The node key as sealed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeKeyRecord {
    v: u8,
    secret: ByteBuf,
    kms_key_arn: String,
    created: u64,
}

impl Drop for NodeKeyRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.secret);
    }
}

/// The node key held, with the KMS key it is sealed under and its sealed blob (ciphertext:
/// answered again to a repeated `enroll`, so that a blob the proxy failed to store is not lost).
pub(super) struct NodeKey {
    pub(super) key: SecretNodeKey,
    pub(super) kms_key_arn: KmsKeyArn,
    pub(super) sealed: Vec<u8>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("key", &self.key)
            .field("kms_key_arn", &self.kms_key_arn)
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// Opens a node-key record (from the blob `sealed`) whose blob header names `header_arn`.
    pub(super) fn from_record(
        plain: &[u8],
        header_arn: &KmsKeyArn,
        sealed: &[u8],
    ) -> Result<Self, NodeError> {
        let malformed = |m: String| NodeError::Membership(MembershipError::MalformedNodeKey(m));
        let record: NodeKeyRecord =
            ciborium::from_reader(plain).map_err(|e| malformed(e.to_string()))?;
        if record.v != NODE_KEY_RECORD_VERSION {
            return Err(malformed(format!("record version {}", record.v)));
        }
        if record.kms_key_arn != header_arn.as_str() {
            return Err(MembershipError::KmsKeyMismatch {
                record: record.kms_key_arn.clone(),
                header: header_arn.to_string(),
            }
            .into());
        }
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
            record
                .secret
                .as_slice()
                .try_into()
                .map_err(|_| malformed("the secret is not 32 bytes".into()))?,
        );
        Ok(Self {
            key: SecretNodeKey::from_secret(&secret),
            kms_key_arn: header_arn.clone(),
            sealed: sealed.to_vec(),
        })
    }
}

impl Node {
    /// The node key and its KMS key, once enrolled or restored.
    pub fn node_binding(&self) -> Option<([u8; 32], &KmsKeyArn)> {
        self.node_key
            .as_ref()
            .map(|k| (k.key.public(), &k.kms_key_arn))
    }

    /// Makes the node key, seals it under `arn` and names `arn` to the sealing authority for
    /// every later call. Returns the sealed record and the public node key. A refusal or a KMS
    /// failure leaves no node key and no KMS key named: enrolling again starts afresh. Asked
    /// again with the same `arn`, it answers the same blob and key (the first answer may not
    /// have been stored); with another, `already_enrolled`.
    pub fn enroll(&mut self, arn: &KmsKeyArn) -> Result<(Vec<u8>, [u8; 32]), NodeError> {
        if let Some(held) = &self.node_key {
            if &held.kms_key_arn == arn {
                return Ok((held.sealed.clone(), held.key.public()));
            }
            return Err(MembershipError::AlreadyEnrolled {
                node_key: key_hex(&held.key.public()),
                kms_key_arn: held.kms_key_arn.to_string(),
            }
            .into());
        }
        if self.genesis.is_some() {
            return Err(MembershipError::LegacyGenesis.into());
        }
        let key = SecretNodeKey::generate();
        let record = NodeKeyRecord {
            v: NODE_KEY_RECORD_VERSION,
            secret: ByteBuf::from(key.secret().to_vec()),
            kms_key_arn: arn.to_string(),
            created: self.now(),
        };
        // Room for the whole record up front: no reallocation leaves a copy of the secret behind.
        let mut plain = Zeroizing::new(Vec::with_capacity(512));
        ciborium::into_writer(&record, &mut *plain)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        self.sealing.name_kms_key(arn)?;
        // Every blob of this node is bound to its node key (the KMS encryption context).
        self.sealing.bind_node(&key_hex(&key.public()));
        let sealed = match self.sealing.seal(BlobKind::NodeKey, arn.as_str(), &plain) {
            Ok(sealed) => sealed,
            Err(e) => {
                // Nothing was sealed under the key: an operator may enroll again, with the
                // right key if this one was wrong.
                self.sealing.forget_kms_key();
                self.sealing.unbind();
                return Err(e.into());
            }
        };
        let public = key.public();
        info!(node_key = %key_hex(&public), kms_key = %arn, "enrolled");
        self.node_key = Some(NodeKey {
            key,
            kms_key_arn: arn.clone(),
            sealed: sealed.clone(),
        });
        Ok((sealed, public))
    }
}

/// A public key in hex, for messages and logs.
pub(super) fn key_hex(key: &[u8; 32]) -> String {
    bytes_hex(key)
}

/// Lowercase hex of public bytes (keys, measurements; never secrets).
pub(super) fn bytes_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
