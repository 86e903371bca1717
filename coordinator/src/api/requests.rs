//! Request bodies as approvers sign them, and their conversion to and from the wire form.

use protocol::policy::{
    Approval, Approved, CreateKey, Genesis, HashFunction, KeyPolicy, Payload, Scheme, SignRequest,
};
use serde::{Deserialize, Serialize};

use super::hex::{ClusterHex, Hex, buf, bufs, hexes};

/// One approval: an approver's Ed25519 signature over the request's canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalJson {
    /// The approver's public key (32 bytes).
    pub approver: Hex,
    /// The signature (64 bytes).
    pub signature: Hex,
}

fn approvals_json(a: &[Approval]) -> Vec<ApprovalJson> {
    a.iter()
        .map(|a| ApprovalJson {
            approver: Hex::from(&a.approver),
            signature: Hex::from(&a.signature),
        })
        .collect()
}

fn approvals_wire(a: &[ApprovalJson]) -> Vec<Approval> {
    a.iter()
        .map(|a| Approval {
            approver: buf(&a.approver),
            signature: buf(&a.signature),
        })
        .collect()
}

/// A genesis, as approvers sign it (see `protocol::policy::Genesis`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisJson {
    /// Request format version.
    pub v: u8,
    /// Cluster name.
    pub cluster: String,
    /// Number of nodes.
    pub nodes: u16,
    /// Admin public keys.
    pub admins: Vec<Hex>,
    /// Admins needed to approve admin requests.
    pub admin_quorum: u16,
}

/// The enclave image a version-2 genesis names (hex, 48 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageJson {
    /// PCR0.
    pub pcr0: Hex,
    /// PCR1.
    pub pcr1: Hex,
    /// PCR2.
    pub pcr2: Hex,
}

/// One node of a version-2 genesis' roster (its index is its position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntryJson {
    /// The node key its enclave made at enrollment (32 bytes).
    pub node_key: Hex,
    /// The KMS key the node key is sealed under (a full key ARN).
    pub kms_key_arn: protocol::KmsKeyArn,
    /// The parent's expected PCR3, if pinned.
    #[serde(default)]
    pub pcr3: Option<Hex>,
    /// The parent's expected PCR4, if pinned.
    #[serde(default)]
    pub pcr4: Option<Hex>,
}

/// A genesis with a roster (version 2, ADR 0013), as admins sign it (see
/// `protocol::genesis::Genesis`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisV2Json {
    /// Request format version: 2.
    pub v: u8,
    /// The cluster's name (a label; the cluster id is the genesis' digest).
    pub name: String,
    /// Admin public keys.
    pub admins: Vec<Hex>,
    /// Admins needed to approve admin requests.
    pub admin_quorum: u16,
    /// The image every node runs.
    pub image: ImageJson,
    /// The nodes, by index.
    pub roster: Vec<RosterEntryJson>,
}

impl Wire for GenesisV2Json {
    type Wire = protocol::genesis::Genesis;
    fn to_wire(&self) -> protocol::genesis::Genesis {
        protocol::genesis::Genesis {
            v: self.v,
            name: self.name.clone(),
            admins: bufs(&self.admins),
            admin_quorum: self.admin_quorum,
            image: protocol::genesis::Image {
                pcr0: buf(&self.image.pcr0),
                pcr1: buf(&self.image.pcr1),
                pcr2: buf(&self.image.pcr2),
            },
            roster: self.roster.iter().map(RosterEntryJson::to_wire).collect(),
        }
    }
    fn from_wire(g: &protocol::genesis::Genesis) -> Self {
        Self {
            v: g.v,
            name: g.name.clone(),
            admins: hexes(&g.admins),
            admin_quorum: g.admin_quorum,
            image: ImageJson {
                pcr0: Hex::from(&g.image.pcr0),
                pcr1: Hex::from(&g.image.pcr1),
                pcr2: Hex::from(&g.image.pcr2),
            },
            roster: g.roster.iter().map(RosterEntryJson::from_wire).collect(),
        }
    }
}

/// The body of `POST /v1/genesis`, as stored: a genesis with a roster (version 2), or one
/// without (version 1, until ADR 0013 step 9 refuses it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GenesisBody {
    /// Version 2.
    V2(ApprovedJson<GenesisV2Json>),
    /// Version 1.
    V1(ApprovedJson<GenesisJson>),
}

impl<'de> Deserialize<'de> for GenesisBody {
    /// By `request.v`: 2 reads a genesis with a roster, anything else version 1, each with its
    /// own errors (not "matches no variant").
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let v2 = value
            .get("request")
            .and_then(|r| r.get("v"))
            .and_then(serde_json::Value::as_u64)
            == Some(2);
        if v2 {
            serde_json::from_value(value)
                .map(Self::V2)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Self::V1)
                .map_err(serde::de::Error::custom)
        }
    }
}

impl GenesisBody {
    /// The cluster's name (what requests name until they name the cluster id).
    pub fn name(&self) -> &str {
        match self {
            Self::V2(g) => &g.request.name,
            Self::V1(g) => &g.request.cluster,
        }
    }

    /// The admins.
    pub fn admins(&self) -> &[Hex] {
        match self {
            Self::V2(g) => &g.request.admins,
            Self::V1(g) => &g.request.admins,
        }
    }

    /// The admin quorum.
    pub fn admin_quorum(&self) -> u16 {
        match self {
            Self::V2(g) => g.request.admin_quorum,
            Self::V1(g) => g.request.admin_quorum,
        }
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        match self {
            Self::V2(g) => g.request.roster.len(),
            Self::V1(g) => usize::from(g.request.nodes),
        }
    }

    /// The cluster id (version 2).
    pub fn cluster_id(&self) -> Option<protocol::genesis::ClusterId> {
        match self {
            Self::V2(g) => Some(g.request.to_wire().cluster_id()),
            Self::V1(_) => None,
        }
    }
}

/// The body of `POST /v1/nodes/{node}/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The node's KMS key (a full key ARN, never an alias).
    pub kms_key_arn: protocol::KmsKeyArn,
}

/// Shortest nonce `POST /v1/nodes/{node}/attest` takes, bytes (the longest is
/// [`protocol::MAX_NONCE_LEN`]).
pub const MIN_NONCE_LEN: usize = 16;

/// The body of `POST /v1/nodes/{node}/attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// A fresh nonce (16 to 512 bytes, hex).
    pub nonce: Hex,
}

/// Who approves a key's signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyJson {
    /// Approver public keys.
    pub approvers: Vec<Hex>,
    /// Distinct approvals a signature needs.
    pub approvals_needed: u16,
}

/// A key-creation request, as the admins sign it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyJson {
    /// Request format version.
    pub v: u8,
    /// The cluster id (64 hex digits): the digest of the approved genesis.
    pub cluster: ClusterHex,
    /// New key id.
    pub key_id: String,
    /// `ecdsa-secp256k1` or `eddsa-ed25519`.
    pub scheme: Scheme,
    /// Signers needed.
    pub threshold: u16,
    /// Approval policy.
    pub policy: PolicyJson,
    /// 16 random bytes.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// The admin version the approvals were given under (issue 20): the cluster's current one
    /// (`GET /v1/cluster`; 0, which may be left out, until the admins are first replaced).
    /// The coordinator and every enclave refuse another (`stale_admins`).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub admins: u32,
    /// The roster version the request was made for (issue 20): the cluster's current one
    /// (`GET /v1/cluster`), the one whose nodes an import's holders dealt to; 0, which may be
    /// left out, until a roster change is committed. Every enclave refuses another
    /// (`stale_roster`).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub roster: u32,
}

/// A signing request, as the approvers sign it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequestJson {
    /// Request format version.
    pub v: u8,
    /// The cluster id (64 hex digits): the digest of the approved genesis.
    pub cluster: ClusterHex,
    /// The key.
    pub key_id: String,
    /// Non-hardened derivation path (ECDSA).
    pub path: Vec<u32>,
    /// What to sign: each a hex string, signed as given (a 32-byte ECDSA digest, signed in
    /// full only; an EdDSA message), or `{"hash", "preimage"}` for ECDSA, which the enclaves
    /// hash themselves and may sign from a presignature.
    pub payloads: Vec<PayloadJson>,
    /// 16 random bytes.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// The version of the key's approval policy the approvals were given under
    /// (`policy_version` of the key; 0, which may be left out, until the admins first change
    /// the key's approvers). Every enclave refuses a request under another version.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub policy: u32,
}

/// One payload of a signing request: a hex string (raw) or `{"hash", "preimage"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PayloadJson {
    /// Signed as given.
    Raw(Hex),
    /// Hashed by the enclaves with `hash`, then signed.
    Hashed {
        /// `sha256`, `sha256d` or `keccak256`.
        hash: HashFunction,
        /// The preimage.
        preimage: Hex,
    },
}

impl<'de> Deserialize<'de> for PayloadJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Hashed {
            hash: HashFunction,
            preimage: Hex,
        }
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => hex::decode(&s)
                .map(|b| Self::Raw(Hex(b)))
                .map_err(|e| D::Error::custom(format!("not hex: {e}"))),
            v @ serde_json::Value::Object(_) => serde_json::from_value::<Hashed>(v)
                .map(|h| Self::Hashed {
                    hash: h.hash,
                    preimage: h.preimage,
                })
                .map_err(|e| D::Error::custom(format!("a hashed payload: {e}"))),
            _ => Err(D::Error::custom(
                "a payload is a hex string or an object {\"hash\", \"preimage\"}",
            )),
        }
    }
}

impl PayloadJson {
    /// The bytes as given: the raw payload or the preimage.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Raw(h) | Self::Hashed { preimage: h, .. } => &h.0,
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> Payload {
        match self {
            Self::Raw(h) => Payload::Raw(buf(h)),
            Self::Hashed { hash, preimage } => Payload::Hashed {
                hash: *hash,
                preimage: buf(preimage),
            },
        }
    }

    /// From the wire form.
    pub fn from_wire(p: &Payload) -> Self {
        match p {
            Payload::Raw(b) => Self::Raw(Hex::from(b)),
            Payload::Hashed { hash, preimage } => Self::Hashed {
                hash: *hash,
                preimage: Hex::from(preimage),
            },
        }
    }
}

/// A request with its approvals: the body of `POST /v1/genesis`, `/v1/keys`, `/v1/signatures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedJson<T> {
    /// The request.
    pub request: T,
    /// Its approvals.
    pub approvals: Vec<ApprovalJson>,
    /// Signing only: whether to use a ready presignature (`prefer`, the default, or `never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presignature: Option<PresignatureUse>,
}

/// Whether a signature may come from a presignature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresignatureUse {
    /// Use one when a healthy quorum holds one (the default).
    Prefer,
    /// Always run full interactive signing.
    Never,
}

/// Conversion between the JSON and the wire form of a request.
pub trait Wire: Sized {
    /// The wire type.
    type Wire;
    /// JSON -> wire.
    fn to_wire(&self) -> Self::Wire;
    /// Wire -> JSON.
    fn from_wire(w: &Self::Wire) -> Self;
}

impl Wire for GenesisJson {
    type Wire = Genesis;
    fn to_wire(&self) -> Genesis {
        Genesis {
            v: self.v,
            cluster: self.cluster.clone(),
            nodes: self.nodes,
            admins: bufs(&self.admins),
            admin_quorum: self.admin_quorum,
        }
    }
    fn from_wire(g: &Genesis) -> Self {
        Self {
            v: g.v,
            cluster: g.cluster.clone(),
            nodes: g.nodes,
            admins: hexes(&g.admins),
            admin_quorum: g.admin_quorum,
        }
    }
}

impl Wire for PolicyJson {
    type Wire = KeyPolicy;
    fn to_wire(&self) -> KeyPolicy {
        KeyPolicy {
            approvers: bufs(&self.approvers),
            approvals_needed: self.approvals_needed,
        }
    }
    fn from_wire(p: &KeyPolicy) -> Self {
        Self {
            approvers: hexes(&p.approvers),
            approvals_needed: p.approvals_needed,
        }
    }
}

impl Wire for CreateKeyJson {
    type Wire = CreateKey;
    fn to_wire(&self) -> CreateKey {
        CreateKey {
            v: self.v,
            cluster: self.cluster.0,
            key_id: self.key_id.clone(),
            scheme: self.scheme,
            threshold: self.threshold,
            policy: self.policy.to_wire(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
            admins: self.admins,
            roster: self.roster,
        }
    }
    fn from_wire(r: &CreateKey) -> Self {
        Self {
            v: r.v,
            cluster: ClusterHex(r.cluster),
            key_id: r.key_id.clone(),
            scheme: r.scheme,
            threshold: r.threshold,
            policy: PolicyJson::from_wire(&r.policy),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
            admins: r.admins,
            roster: r.roster,
        }
    }
}

impl Wire for SignRequestJson {
    type Wire = SignRequest;
    fn to_wire(&self) -> SignRequest {
        SignRequest {
            v: self.v,
            cluster: self.cluster.0,
            key_id: self.key_id.clone(),
            path: self.path.clone(),
            payloads: self.payloads.iter().map(PayloadJson::to_wire).collect(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
            policy: self.policy,
        }
    }
    fn from_wire(r: &SignRequest) -> Self {
        Self {
            v: r.v,
            cluster: ClusterHex(r.cluster),
            key_id: r.key_id.clone(),
            path: r.path.clone(),
            payloads: r.payloads.iter().map(PayloadJson::from_wire).collect(),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
            policy: r.policy,
        }
    }
}

impl<T: Wire> ApprovedJson<T> {
    /// The wire form.
    pub fn to_wire(&self) -> Approved<T::Wire> {
        Approved {
            request: self.request.to_wire(),
            approvals: approvals_wire(&self.approvals),
        }
    }

    /// From the wire form.
    pub fn from_wire(a: &Approved<T::Wire>) -> Self {
        Self {
            request: T::from_wire(&a.request),
            approvals: approvals_json(&a.approvals),
            presignature: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_fields_and_unknown_fields() {
        let a: ApprovalJson =
            serde_json::from_str(r#"{"approver":"0a0b","signature":"ff"}"#).unwrap();
        assert_eq!(a.approver, Hex(vec![10, 11]));
        assert!(
            serde_json::from_str::<ApprovalJson>(r#"{"approver":"zz","signature":"ff"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<ApprovalJson>(r#"{"approver":"00","signature":"ff","x":1}"#)
                .is_err()
        );
    }

    #[test]
    fn the_admin_version_is_left_out_at_zero_and_kept_otherwise() {
        use protocol::policy::Canonical;
        let mut key = CreateKeyJson {
            v: protocol::policy::REQUEST_VERSION,
            cluster: ClusterHex(protocol::genesis::ClusterId([1; 32])),
            key_id: "k".into(),
            scheme: Scheme::EcdsaSecp256k1,
            threshold: 2,
            policy: PolicyJson {
                approvers: vec![Hex(vec![3; 32])],
                approvals_needed: 1,
            },
            request_id: Hex(vec![4; 16]),
            created: 10,
            expiry: 20,
            admins: 0,
            roster: 0,
        };
        let text = serde_json::to_string(&key).unwrap();
        assert!(!text.contains("admins"), "{text}");
        assert_eq!(serde_json::from_str::<CreateKeyJson>(&text).unwrap(), key);
        let before = key.to_wire().canonical_bytes();
        key.admins = 2;
        let text = serde_json::to_string(&key).unwrap();
        assert!(text.contains("\"admins\":2"), "{text}");
        let back: CreateKeyJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.to_wire().admins, 2);
        assert_eq!(CreateKeyJson::from_wire(&back.to_wire()), key);
        // The version is approved with the rest of the request.
        assert_ne!(back.to_wire().canonical_bytes(), before);
    }
}
