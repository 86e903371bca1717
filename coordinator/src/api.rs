//! The coordinator's public JSON API: request and response bodies, and the stable error codes.
//! Byte strings travel as lowercase hex. `openapi.json` in this crate describes the same types;
//! the CLI and the tests use these definitions as the client side.

use protocol::policy::{Approval, Approved, CreateKey, Genesis, KeyPolicy, Scheme, SignRequest};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Bytes as a hex string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hex(pub Vec<u8>);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", hex::encode(&self.0))
    }
}

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .map(Hex)
            .map_err(|e| serde::de::Error::custom(format!("not hex: {e}")))
    }
}

impl From<&ByteBuf> for Hex {
    fn from(b: &ByteBuf) -> Self {
        Hex(b.to_vec())
    }
}

/// The wire form of hex bytes.
pub fn buf(h: &Hex) -> ByteBuf {
    ByteBuf::from(h.0.clone())
}

fn hexes(v: &[ByteBuf]) -> Vec<Hex> {
    v.iter().map(Hex::from).collect()
}

fn bufs(v: &[Hex]) -> Vec<ByteBuf> {
    v.iter().map(buf).collect()
}

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
    /// Cluster name.
    pub cluster: String,
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
}

/// A signing request, as the approvers sign it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequestJson {
    /// Request format version.
    pub v: u8,
    /// Cluster name.
    pub cluster: String,
    /// The key.
    pub key_id: String,
    /// Non-hardened derivation path (ECDSA).
    pub path: Vec<u32>,
    /// 32-byte digests (ECDSA) or messages (EdDSA).
    pub payloads: Vec<Hex>,
    /// 16 random bytes.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
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
            cluster: self.cluster.clone(),
            key_id: self.key_id.clone(),
            scheme: self.scheme,
            threshold: self.threshold,
            policy: self.policy.to_wire(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
        }
    }
    fn from_wire(r: &CreateKey) -> Self {
        Self {
            v: r.v,
            cluster: r.cluster.clone(),
            key_id: r.key_id.clone(),
            scheme: r.scheme,
            threshold: r.threshold,
            policy: PolicyJson::from_wire(&r.policy),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
        }
    }
}

impl Wire for SignRequestJson {
    type Wire = SignRequest;
    fn to_wire(&self) -> SignRequest {
        SignRequest {
            v: self.v,
            cluster: self.cluster.clone(),
            key_id: self.key_id.clone(),
            path: self.path.clone(),
            payloads: bufs(&self.payloads),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
        }
    }
    fn from_wire(r: &SignRequest) -> Self {
        Self {
            v: r.v,
            cluster: r.cluster.clone(),
            key_id: r.key_id.clone(),
            path: r.path.clone(),
            payloads: hexes(&r.payloads),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
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

/// A key as `GET /v1/keys/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// Its id.
    pub key_id: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// Signers needed.
    pub threshold: u16,
    /// Public key (33-byte compressed secp256k1, or 32-byte Ed25519).
    pub public_key: Hex,
    /// BIP32 chain code (ECDSA).
    pub chain_code: Option<Hex>,
    /// Approval policy.
    pub policy: PolicyJson,
    /// Unix seconds.
    pub created: u64,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    /// Every key, by id.
    pub keys: Vec<KeyInfo>,
}

/// One signed payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureInfo {
    /// Index into the request's payloads.
    pub payload: u16,
    /// 64 bytes: r || s (low s) for ECDSA, R || s for EdDSA.
    pub signature: Hex,
    /// The (derived) public key it verifies under.
    pub public_key: Hex,
    /// The nodes that signed.
    pub nodes: Vec<u16>,
    /// Whether it came from a presignature.
    pub presigned: bool,
}

/// `POST /v1/signatures` result (also what a resubmission returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignResult {
    /// The idempotency key the request ran under.
    pub idempotency_key: String,
    /// The request id.
    pub request_id: Hex,
    /// The key.
    pub key_id: String,
    /// `completed` or `failed`.
    pub status: String,
    /// One per payload signed (all of them when completed).
    pub signatures: Vec<SignatureInfo>,
    /// Why it failed.
    pub error: Option<ErrorDetail>,
    /// Sessions tried (more than one payload count means failover happened).
    pub attempts: u32,
}

/// Genesis progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisStatus {
    /// `none`, `initialising`, `ready` or `failed`.
    pub state: String,
    /// What is happening, or why it failed.
    pub detail: String,
    /// The cluster's name.
    pub cluster: Option<String>,
}

/// One node as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStatus {
    /// Node index.
    pub node: u16,
    /// Its proxy's URL.
    pub proxy: String,
    /// Whether the last status call answered.
    pub reachable: bool,
    /// Reachable, attested, operational, and not failing: eligible for quorums.
    pub healthy: bool,
    /// Enclave lifecycle phase.
    pub phase: Option<String>,
    /// Whether the coordinator verified its attestation document (fresh nonce).
    pub attested: bool,
    /// Why attestation failed, if it did.
    pub attestation_error: Option<String>,
    /// Its NSM module id.
    pub module_id: Option<String>,
    /// Its identity signing key.
    pub identity: Option<Hex>,
    /// Keys it holds.
    pub keys: u32,
    /// Presignatures it holds.
    pub presignatures: u32,
    /// Safe primes ready.
    pub primes_ready: bool,
    /// Last error.
    pub error: Option<String>,
}

/// A presignature pool level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolLevel {
    /// The key.
    pub key_id: String,
    /// Derivation path (`m/...`).
    pub path: String,
    /// The quorum holding them.
    pub quorum: Vec<u16>,
    /// Ready presignatures.
    pub ready: u32,
    /// The level refills aim for.
    pub target: u32,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterStatus {
    /// Genesis progress.
    pub genesis: GenesisStatus,
    /// Every node.
    pub nodes: Vec<NodeStatus>,
    /// Presignature pools.
    pub pools: Vec<PoolLevel>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecordJson {
    /// Position, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// What happened.
    pub entry: crate::audit::AuditEntry,
    /// Previous record's hash.
    pub prev_hash: Hex,
    /// This record's hash.
    pub hash: Hex,
}

/// `GET /v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    /// Records, in order.
    pub records: Vec<AuditRecordJson>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<u64>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerification {
    /// Whether the whole chain holds.
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// The first broken record.
    pub broken_at: Option<u64>,
    /// Why it is broken.
    pub reason: Option<String>,
}

/// `POST /v1/transactions`: an intent to prepare for signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    /// The sending key.
    pub key_id: String,
    /// Chain id in the registry (`bitcoin`, `ethereum`, `solana`…).
    pub chain: String,
    /// Network (default `mainnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Derivation path of the sending key, `m/0/0` (ECDSA; default `m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What to do; values left out (EVM nonce and fees, Solana blockhash) are fetched from the
    /// chain's JSON-RPC endpoint when the coordinator has one.
    pub intent: adapters::Intent,
}

/// A prepared transaction: the unsigned bytes, what to sign, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedTransaction {
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// The sending key.
    pub key_id: String,
    /// Its derivation path.
    pub path: String,
    /// The sending address.
    pub from: String,
    /// The (derived) public key that signs.
    pub public_key: Hex,
    /// The unsigned transaction (PSBT, EIP-2718 signing preimage, or Solana message).
    pub unsigned_tx: Hex,
    /// What the cluster must sign, in order: the `payloads` of the signing request.
    pub payloads: Vec<Hex>,
    /// What the transaction does.
    pub summary: adapters::Summary,
    /// The intent the transaction was built from: the request's, plus the fields in `filled`.
    pub intent: adapters::Intent,
    /// Intent fields the coordinator fetched from the chain.
    pub filled: Vec<String>,
}

/// `POST /v1/transactions/assemble`: signatures to put into a prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssembleRequest {
    /// The sending key.
    pub key_id: String,
    /// Chain.
    pub chain: String,
    /// Network (default `mainnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Derivation path (default `m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The unsigned transaction, as prepared.
    pub unsigned_tx: Hex,
    /// One 64-byte signature per payload, in order.
    pub signatures: Vec<Hex>,
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssembledTransaction {
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// Its id as explorers show it.
    pub txid: String,
    /// The bytes to broadcast.
    pub raw_tx: Hex,
    /// Bitcoin: the finalized PSBT.
    pub psbt: Option<Hex>,
    /// What it does, decoded from the signed bytes.
    pub summary: adapters::Summary,
}

/// `GET /v1/keys/{key_id}/address?chain=…&network=…&path=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInfo {
    /// The key.
    pub key_id: String,
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// Derivation path.
    pub path: String,
    /// The address.
    pub address: String,
    /// The (derived) public key.
    pub public_key: Hex,
}

/// An error's code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable code (see [`ErrorCode`]).
    pub code: String,
    /// What happened (no secrets).
    pub message: String,
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The stable error codes of the API and their HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not JSON of the expected shape.
    MalformedRequest,
    /// 400: well-formed but invalid (lengths, thresholds, versions, cluster name).
    InvalidRequest,
    /// 400: the request's validity window is over (or has not begun).
    RequestExpired,
    /// 400: no adapter for the chain (or network) named.
    UnknownChain,
    /// 400: an address that does not parse or belongs to another network.
    BadAddress,
    /// 400: the spent outputs do not cover amount and fee.
    InsufficientFunds,
    /// 403: approvals missing, unknown or not over this request.
    Unapproved,
    /// 404: no such route, key or record.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 409: the idempotency key was used for a different request.
    IdempotencyConflict,
    /// 409: the key id is taken.
    KeyExists,
    /// 409: genesis was already submitted.
    GenesisExists,
    /// 409: the cluster has no completed genesis yet.
    NotInitialised,
    /// 409: the enclaves refused (e.g. the request id was already used).
    Refused,
    /// 413: the body exceeds the size limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 502: every quorum tried failed.
    SigningFailed,
    /// 502: key generation failed (a node failed, or the nodes disagree).
    KeygenFailed,
    /// 502: the request was in flight when its coordinator stopped, and cannot be resumed.
    Interrupted,
    /// 502: the chain's JSON-RPC endpoint failed or refused (or none is configured).
    RpcFailed,
    /// 503: fewer healthy nodes than the threshold.
    NoQuorum,
    /// 504: the request's deadline passed.
    DeadlineExceeded,
    /// 500: storage failed.
    Storage,
    /// 500: a bug.
    Internal,
}

impl ErrorCode {
    /// The code's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::InvalidRequest => "invalid_request",
            Self::RequestExpired => "request_expired",
            Self::UnknownChain => "unknown_chain",
            Self::BadAddress => "bad_address",
            Self::InsufficientFunds => "insufficient_funds",
            Self::Unapproved => "unapproved",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::KeyExists => "key_exists",
            Self::GenesisExists => "genesis_exists",
            Self::NotInitialised => "not_initialised",
            Self::Refused => "refused",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::SigningFailed => "signing_failed",
            Self::KeygenFailed => "keygen_failed",
            Self::Interrupted => "interrupted",
            Self::RpcFailed => "rpc_failed",
            Self::NoQuorum => "no_quorum",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }

    /// Its HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::MalformedRequest
            | Self::InvalidRequest
            | Self::RequestExpired
            | Self::UnknownChain
            | Self::BadAddress
            | Self::InsufficientFunds => 400,
            Self::Unapproved => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IdempotencyConflict
            | Self::KeyExists
            | Self::GenesisExists
            | Self::NotInitialised
            | Self::Refused => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::SigningFailed | Self::KeygenFailed | Self::Interrupted | Self::RpcFailed => 502,
            Self::NoQuorum => 503,
            Self::DeadlineExceeded => 504,
            Self::Storage | Self::Internal => 500,
        }
    }

    /// Whether a request that failed with this code may run again when resubmitted under the
    /// same idempotency key (the cluster could not serve it then; nothing was signed).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::NoQuorum | Self::DeadlineExceeded | Self::SigningFailed
        )
    }

    /// Every code, for documentation checks.
    pub const ALL: [ErrorCode; 24] = [
        Self::MalformedRequest,
        Self::InvalidRequest,
        Self::RequestExpired,
        Self::UnknownChain,
        Self::BadAddress,
        Self::InsufficientFunds,
        Self::Unapproved,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::IdempotencyConflict,
        Self::KeyExists,
        Self::GenesisExists,
        Self::NotInitialised,
        Self::Refused,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::SigningFailed,
        Self::KeygenFailed,
        Self::Interrupted,
        Self::RpcFailed,
        Self::NoQuorum,
        Self::DeadlineExceeded,
        Self::Storage,
        Self::Internal,
    ];
}

/// An API error: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// The message (no secrets).
    pub message: String,
}

impl ApiError {
    /// An error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().into(),
                message: self.message.clone(),
            },
        }
    }
}

impl From<adapters::AdapterError> for ApiError {
    fn from(e: adapters::AdapterError) -> Self {
        use adapters::AdapterError as A;
        let code = match &e {
            A::UnknownChain { .. } | A::UnknownNetwork { .. } => ErrorCode::UnknownChain,
            A::BadAddress { .. } => ErrorCode::BadAddress,
            A::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            _ => ErrorCode::InvalidRequest,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::rpc::RpcError> for ApiError {
    fn from(e: crate::rpc::RpcError) -> Self {
        ApiError::new(ErrorCode::RpcFailed, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(ErrorCode::Storage, e.to_string())
    }
}

/// Formats a path as `m/0/1`.
pub fn path_string(path: &[u32]) -> String {
    let mut s = "m".to_string();
    for i in path {
        s.push('/');
        s.push_str(&i.to_string());
    }
    s
}

/// Parses `m/0/1` (non-hardened indices only).
pub fn parse_path(path: &str) -> Result<Vec<u32>, String> {
    let rest = path.strip_prefix('m').ok_or("a path starts with m")?;
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let rest = rest.strip_prefix('/').ok_or("bad path")?;
    rest.split('/')
        .map(|c| {
            let i: u32 = c.parse().map_err(|_| format!("bad path component `{c}`"))?;
            if i >= 1 << 31 {
                return Err("hardened indices cannot be derived from a threshold key".into());
            }
            Ok(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
        assert_eq!(path_string(&[0, 1]), "m/0/1");
        assert!(parse_path("0/1").is_err());
        assert!(parse_path("m/x").is_err());
        assert!(parse_path("m/2147483648").is_err());
    }

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
    fn codes_are_distinct() {
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
