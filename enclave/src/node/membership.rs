//! Membership refusals (ADR 0013): typed, each message starting with its stable kind, answered
//! as `membership`. A refusal changes nothing: no node key, genesis or KMS key is kept.

/// Why a membership request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A second `Enroll`, or one after the node key was restored.
    #[error(
        "already_enrolled: this enclave holds node key {node_key}, sealed under {kms_key_arn}; a node key is made once"
    )]
    AlreadyEnrolled {
        /// The node key held (hex).
        node_key: String,
        /// Its KMS key.
        kms_key_arn: String,
    },
    /// The enclave joined a cluster without a node key (a genesis of version 1).
    #[error(
        "legacy_genesis: this enclave joined its cluster without a node key (state that predates node keys, ADR 0013); it cannot enroll now"
    )]
    LegacyGenesis,
    /// The sealed state offered at restore holds more than one node key.
    #[error("two_node_keys: the sealed state holds {count} node keys; a node has one")]
    TwoNodeKeys {
        /// How many.
        count: usize,
    },
    /// The node-key record names another KMS key than its blob's header.
    #[error("kms_key_mismatch: the node-key record names {record}, its blob {header}")]
    KmsKeyMismatch {
        /// The ARN in the record.
        record: String,
        /// The ARN in the blob header.
        header: String,
    },
    /// The node-key blob is not a node-key record.
    #[error("malformed_node_key: {0}")]
    MalformedNodeKey(String),
}

impl MembershipError {
    /// The stable kind (the message's first word).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AlreadyEnrolled { .. } => "already_enrolled",
            Self::LegacyGenesis => "legacy_genesis",
            Self::TwoNodeKeys { .. } => "two_node_keys",
            Self::KmsKeyMismatch { .. } => "kms_key_mismatch",
            Self::MalformedNodeKey(_) => "malformed_node_key",
        }
    }
}
