//! Cluster operations on the enclave <-> proxy link: genesis, restore, peer admission, and
//! threshold-protocol sessions whose messages the coordinator (or a test driver) relays.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

pub use crate::codes::FailureCode;
use crate::peer::PeerEnvelope;
use crate::policy::{Approved, CreateKey, Scheme, SignRequest};

/// A peer's attestation document, for admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerDocument {
    /// The peer's node index.
    pub node: u16,
    /// Its attestation document (COSE bytes), binding its identity keys.
    pub document: ByteBuf,
}

/// What a session computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionKind {
    /// CGGMP21 auxiliary info (Paillier keys) for the whole cluster; needed once before ECDSA keys.
    AuxInfo,
    /// Distributed key generation of a new key, approved by the admins. All nodes take part.
    CreateKey {
        /// The approved request.
        request: Approved<CreateKey>,
    },
    /// An ECDSA presignature for `key_id`, bound to derivation path `path`, among the session's
    /// participants (exactly the key's threshold).
    Presign {
        /// The key.
        key_id: String,
        /// The derivation path the presignature may be used for.
        path: Vec<u32>,
    },
    /// Sign payload `payload` of an approved request. With `presignature` (the id of a ready
    /// presignature among the same participants), one round; without, full signing.
    Sign {
        /// The approved request.
        request: Approved<SignRequest>,
        /// Index into the request's payloads.
        payload: u16,
        /// A presignature id, for one-round ECDSA signing.
        presignature: Option<ByteBuf>,
    },
}

impl SessionKind {
    /// The kind's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AuxInfo => "aux_info",
            Self::CreateKey { .. } => "create_key",
            Self::Presign { .. } => "presign",
            Self::Sign {
                presignature: Some(_),
                ..
            } => "sign_presigned",
            Self::Sign { .. } => "sign",
        }
    }
}

/// How a session ended at one enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Auxiliary info is ready; the sealed blob is for the proxy to store.
    AuxReady {
        /// Sealed auxiliary info.
        sealed: ByteBuf,
    },
    /// The key exists; the sealed share is for the proxy to store.
    KeyCreated {
        /// The key.
        key_id: String,
        /// Its scheme.
        scheme: Scheme,
        /// Public key: 33-byte compressed secp256k1, or 32-byte Ed25519.
        public_key: ByteBuf,
        /// BIP32 chain code of an ECDSA key (32 bytes), for deriving child public keys.
        chain_code: Option<ByteBuf>,
        /// Sealed share.
        sealed: ByteBuf,
        /// The enclave's node-key signature over its [`crate::receipt::KeyReceipt`] for this
        /// key (ADR 0013): cluster id, its node index, key id, scheme, threshold, participants,
        /// public key, chain code, generation 0 and the creation request's hash.
        receipt: ByteBuf,
    },
    /// A presignature is ready (its id is the session id).
    PresignatureReady,
    /// The signature, verified against the (derived) public key by the enclave.
    Signed {
        /// 64 bytes: r || s (low s) for ECDSA, R || s for EdDSA.
        signature: ByteBuf,
        /// The public key it verifies under (derived for an ECDSA path).
        public_key: ByteBuf,
    },
    /// The session failed at this enclave.
    Failed {
        /// Stable code (encoded as its snake_case name, as before it was typed).
        code: FailureCode,
        /// What happened (no secrets).
        message: String,
        /// Nodes to blame, when known.
        culprits: Vec<u16>,
    },
}

/// What an enclave answers to a session request: envelopes to relay and, once done, the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// The session.
    pub session: ByteBuf,
    /// Envelopes to deliver (to their `to`, or to every other participant for a broadcast).
    pub outgoing: Vec<PeerEnvelope>,
    /// Set once the session ended at this enclave.
    pub outcome: Option<Outcome>,
}

/// The genesis-receipt message an enclave signs when it accepts a genesis.
pub fn genesis_receipt_message(genesis_canonical: &[u8], node: u16) -> Vec<u8> {
    let mut m = b"cohort/genesis-receipt/v1\0".to_vec();
    m.extend_from_slice(&node.to_be_bytes());
    m.extend_from_slice(genesis_canonical);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const ALL: [FailureCode; 16] = [
        FailureCode::BadRequest,
        FailureCode::UnsupportedVersion,
        FailureCode::WrongPhase,
        FailureCode::Nsm,
        FailureCode::Refused,
        FailureCode::InProgress,
        FailureCode::Replayed,
        FailureCode::Peer,
        FailureCode::Sealing,
        FailureCode::SealingUnavailable,
        FailureCode::Membership,
        FailureCode::Internal,
        FailureCode::Protocol,
        FailureCode::NoPresignature,
        FailureCode::Aborted,
        FailureCode::Unreachable,
    ];

    fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).expect("in-memory cbor");
        out
    }

    /// The typed code encodes exactly as the string it replaced, so the wire bytes of a failed
    /// outcome did not change; and every enclave error code maps to the failure of that name.
    #[test]
    fn failure_codes_encode_as_their_names() {
        for code in ALL {
            assert_eq!(cbor(&code), cbor(&code.as_str()), "{code}");
            let back: FailureCode =
                ciborium::from_reader(cbor(&code.as_str()).as_slice()).expect("decodes");
            assert_eq!(back, code);
        }
        let junk = cbor(&"no_such_code");
        assert!(ciborium::from_reader::<FailureCode, _>(junk.as_slice()).is_err());
        for e in [
            ErrorCode::BadRequest,
            ErrorCode::UnsupportedVersion,
            ErrorCode::WrongPhase,
            ErrorCode::Nsm,
            ErrorCode::Refused,
            ErrorCode::InProgress,
            ErrorCode::Replayed,
            ErrorCode::Peer,
            ErrorCode::Sealing,
            ErrorCode::SealingUnavailable,
            ErrorCode::Membership,
            ErrorCode::Internal,
        ] {
            assert_eq!(FailureCode::from(e).as_str(), e.to_string());
        }
    }
}
