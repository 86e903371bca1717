//! Requests that humans approve ("stamp"): cluster genesis, key creation, signing.
//!
//! Each request has a canonical, versioned byte form ([`Canonical::canonical_bytes`]): a domain
//! tag naming the request type and version, followed by the request's CBOR encoding (fields in
//! declaration order, definite lengths — deterministic for these types). Approvers sign those
//! bytes with Ed25519; every enclave verifies the signatures itself.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Version of the request formats below.
pub const REQUEST_VERSION: u8 = 1;
/// Length of a request id.
pub const REQUEST_ID_LEN: usize = 16;
/// Longest a signed request may be valid (expiry minus creation), seconds.
pub const MAX_REQUEST_VALIDITY_SECS: u64 = 600;
/// How far a request's creation time may lie ahead of an enclave's clock, seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// A signature scheme of a cluster key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Threshold ECDSA on secp256k1 (CGGMP21): Bitcoin, Ethereum/EVM.
    EcdsaSecp256k1,
    /// Threshold EdDSA on Ed25519 (FROST): Solana.
    EddsaEd25519,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaSecp256k1 => "ecdsa-secp256k1",
            Self::EddsaEd25519 => "eddsa-ed25519",
        })
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-secp256k1" => Ok(Self::EcdsaSecp256k1),
            "eddsa-ed25519" => Ok(Self::EddsaEd25519),
            other => Err(format!(
                "unknown scheme `{other}` (expected ecdsa-secp256k1 or eddsa-ed25519)"
            )),
        }
    }
}

/// Who must approve signatures with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// Ed25519 public keys (32 bytes each) of the approvers.
    pub approvers: Vec<ByteBuf>,
    /// How many distinct approvers must approve a signing request.
    pub approvals_needed: u16,
}

/// Initialise the cluster: who the admins are and how many of them must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// [`REQUEST_VERSION`].
    pub v: u8,
    /// A name for the cluster (binds approvals to this cluster).
    pub cluster: String,
    /// Number of nodes (every key has one share per node).
    pub nodes: u16,
    /// Ed25519 public keys of the admins.
    pub admins: Vec<ByteBuf>,
    /// How many distinct admins must approve admin requests (and this genesis).
    pub admin_quorum: u16,
}

/// Create a key (approved by the admin quorum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// [`REQUEST_VERSION`].
    pub v: u8,
    /// The cluster's name, as in its genesis.
    pub cluster: String,
    /// The new key's id (unique in the cluster).
    pub key_id: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// How many nodes must take part in a signature (2 <= t <= nodes).
    pub threshold: u16,
    /// Who approves its signatures.
    pub policy: KeyPolicy,
    /// Unique id of this request (16 bytes).
    pub request_id: ByteBuf,
    /// Unix seconds when the request was made.
    pub created: u64,
    /// Unix seconds after which the request is void.
    pub expiry: u64,
}

/// Sign payloads with a key (approved under the key's policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// [`REQUEST_VERSION`].
    pub v: u8,
    /// The cluster's name, as in its genesis.
    pub cluster: String,
    /// The key.
    pub key_id: String,
    /// Non-hardened derivation path (empty: the key itself). ECDSA keys only.
    pub path: Vec<u32>,
    /// What to sign: 32-byte digests (ECDSA) or messages (EdDSA).
    pub payloads: Vec<ByteBuf>,
    /// Unique id of this request (16 bytes).
    pub request_id: ByteBuf,
    /// Unix seconds when the request was made.
    pub created: u64,
    /// Unix seconds after which the request is void.
    pub expiry: u64,
}

/// One approver's (or admin's) signature over a request's canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's Ed25519 public key (32 bytes).
    pub approver: ByteBuf,
    /// Ed25519 signature (64 bytes) over the canonical bytes.
    pub signature: ByteBuf,
}

/// A request with its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approved<T> {
    /// The request.
    pub request: T,
    /// Its approvals.
    pub approvals: Vec<Approval>,
}

/// The canonical byte form of a request, which approvers sign.
pub trait Canonical: Serialize {
    /// Domain tag: request type and version.
    const DOMAIN: &'static [u8];

    /// `DOMAIN || CBOR(self)`.
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Self::DOMAIN.to_vec();
        ciborium::into_writer(self, &mut out)
            .expect("serializing a request into a Vec cannot fail");
        out
    }
}

impl Canonical for Genesis {
    const DOMAIN: &'static [u8] = b"cohort/genesis/v1\0";
}
impl Canonical for CreateKey {
    const DOMAIN: &'static [u8] = b"cohort/create-key/v1\0";
}
impl Canonical for SignRequest {
    const DOMAIN: &'static [u8] = b"cohort/sign-request/v1\0";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_pinned() {
        let req = SignRequest {
            v: 1,
            cluster: "c".into(),
            key_id: "k".into(),
            path: vec![0, 1],
            payloads: vec![ByteBuf::from(vec![0xAA; 2])],
            request_id: ByteBuf::from(vec![1; 2]),
            created: 4,
            expiry: 5,
        };
        let bytes = req.canonical_bytes();
        assert!(bytes.starts_with(b"cohort/sign-request/v1\0"));
        assert_eq!(
            hex::encode(&bytes[SignRequest::DOMAIN.len()..]),
            "a861760167636c75737465726163666b65795f6964616b6470617468820001687061796c6f61647381\
             42aaaa6a726571756573745f6964420101676372656174656404666578706972790\
             5"
        );
    }

    #[test]
    fn scheme_names() {
        for s in [Scheme::EcdsaSecp256k1, Scheme::EddsaEd25519] {
            assert_eq!(s.to_string().parse::<Scheme>().unwrap(), s);
        }
        assert!("rsa".parse::<Scheme>().is_err());
    }
}
