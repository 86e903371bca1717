//! Response bodies: keys, signatures, cluster status and the audit log.

use protocol::policy::Scheme;
use serde::{Deserialize, Serialize};

use super::{ClusterHex, CreateKeyJson, ErrorDetail, Hex, PolicyJson};

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
    /// What every node's enclave signed for this key with its node key: a client holding the
    /// pinned genesis checks the fields above with them (`cohort key show`). `null` for none.
    pub receipts: Option<KeyReceipts>,
    /// Its refresh schedule in seconds, as the admins last set it (0, left out: off). The
    /// enclaves hold it sealed and enforce it; this is the coordinator's copy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_every: u64,
    /// When its current generation was stored (Unix seconds; 0, left out, for generation 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refreshed: u64,
    /// The version of `policy` (issue 20): 0, left out, until the admins first replace the
    /// key's approvers; signing requests name it (`policy`). From version 1 on every node's
    /// receipt of the current generation signs the policy, which a client checks.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub policy_version: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The key receipts of a key (ADR 0013; `protocol::receipt::KeyReceipt`): the fields every
/// participant signed besides the key's own, and each one's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReceipts {
    /// The cluster id.
    pub cluster: ClusterHex,
    /// The nodes holding a share (every node, in index order).
    pub participants: Vec<u16>,
    /// The key generation (0 at creation).
    pub generation: u32,
    /// The creation request the admins approved (the receipts sign the SHA-256 of its
    /// canonical bytes): a client checks the key's id, scheme, threshold and approval policy
    /// against it.
    pub creation: CreateKeyJson,
    /// For an imported key: the import request the admins approved, whose `key` is
    /// `creation`; the receipts then sign the SHA-256 of its canonical bytes, and a client
    /// checks the legacy public key and chain code against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<super::ImportKeyJson>,
    /// Each participant's node-key signature over its receipt (of generation `generation`).
    pub signatures: Vec<NodeReceipt>,
    /// For a key reshared or refreshed since it was made (issue 19): the resharing that made
    /// the current generation, whose hash the current receipts sign, and the receipts of
    /// generation 0, which sign the creation or import request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshared: Option<Reshared>,
    /// The roster version whose nodes signed `signatures` (issue 20, membership): 0, left
    /// out, for the genesis roster. A client checks them under the node keys of that roster,
    /// as the committed roster changes it checked make it.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub roster: u32,
    /// How many generations committed roster changes moved the key on since its creation or
    /// its last resharing (issue 20): 0, left out, for none. A move deals the key's current
    /// generation to the new roster as the next one, with the same request and facts, so the
    /// current receipts sign the request of that creation or resharing.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub moved: u32,
}

/// How a key came to its current generation: the last resharing the admins approved, and what
/// every node signed when the key was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshared {
    /// The approved resharing that made the current generation (its `generation` is the one
    /// before).
    pub request: super::ReshareKeyJson,
    /// The key's threshold at generation 0.
    pub origin_threshold: u16,
    /// Each node's signature over its generation-0 receipt.
    pub origin_signatures: Vec<NodeReceipt>,
    /// Each node's signature over `protocol::reshare::retired_message`: the current
    /// generation is the one it signs with (a receipt says only that it sealed it). Empty in
    /// a record made before there were any (a client then refuses the key).
    #[serde(default)]
    pub retired: Vec<NodeReceipt>,
    /// The roster version whose nodes signed `retired` (the one in force at the resharing;
    /// issue 20): 0, left out, for the genesis roster.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub roster: u32,
    /// The generation `origin_signatures` are of: 0, left out, unless a committed roster
    /// change moved the key before its first resharing (its receipts of the moved generation
    /// sign the creation or import request as well).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub origin_generation: u32,
    /// The roster version whose nodes signed `origin_signatures`: 0, left out, for the genesis
    /// roster.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub origin_roster: u32,
}

/// One node's signature over its key receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReceipt {
    /// The node index.
    pub node: u16,
    /// Ed25519 signature (64 bytes) by its node key.
    pub signature: Hex,
}

/// A reshared key's current generation, its resharing request's SHA-256, and each node's
/// statement that it signs with it (node index, bytes).
pub type RetiredClaim = (u32, [u8; 32], Vec<(u16, Vec<u8>)>);

/// A key's receipt as its key info claims it, and each node's signature (node index, bytes).
pub type ReceiptClaim = (protocol::receipt::KeyReceipt, Vec<(u16, Vec<u8>)>);

impl KeyInfo {
    /// Which of the key's fields differs from its approved creation request (id, scheme,
    /// threshold, approval policy, cluster), if any; `None` also without receipts.
    pub fn creation_mismatch(&self) -> Option<&'static str> {
        let r = self.receipts.as_ref()?;
        let c = &r.creation;
        let origin_threshold = r
            .reshared
            .as_ref()
            .map_or(self.threshold, |x| x.origin_threshold);
        [
            (c.key_id != self.key_id, "key id"),
            (c.scheme != self.scheme, "scheme"),
            (c.threshold != origin_threshold, "threshold"),
            (
                r.reshared.as_ref().is_some_and(|x| {
                    x.request.key_id != self.key_id
                        || x.request.cluster != r.cluster
                        || x.request.threshold != self.threshold
                        || x.request
                            .generation
                            .checked_add(1)
                            .and_then(|g| g.checked_add(r.moved))
                            != Some(r.generation)
                }),
                "resharing request",
            ),
            // Generation 0, or the one the moves since its creation made.
            (
                r.reshared.is_none() && r.generation != r.moved,
                "generation",
            ),
            // A policy changes only with a resharing: a key never reshared is at version 0
            // (attacker review helper-42, finding 1).
            (
                r.reshared.is_none() && self.policy_version != 0,
                "policy version",
            ),
            // A policy the admins replaced is checked against the receipts instead.
            (
                self.policy_version == 0 && c.policy != self.policy,
                "approval policy",
            ),
            (c.cluster != r.cluster, "cluster"),
            (
                r.import.as_ref().is_some_and(|i| {
                    i.key != *c
                        || i.public_key != self.public_key
                        || (i.chain_code.is_some() && i.chain_code != self.chain_code)
                }),
                "import request",
            ),
        ]
        .into_iter()
        .find_map(|(differs, what)| differs.then_some(what))
    }

    /// For an imported key, the Bitcoin-family network (`CHAIN:NETWORK`) whose legacy funds
    /// are at the key's own address, as its approved import request names it: there the empty
    /// path signs. Checked against the receipts with the rest of the key.
    pub fn master_key_network(&self) -> Option<&str> {
        self.receipts
            .as_ref()?
            .import
            .as_ref()?
            .master_key_network
            .as_deref()
    }

    /// The receipt this key info claims every participant signed (with node 0's index: a
    /// verifier sets each signer's own; the request hash is that of the creation request
    /// served with it) and the signatures; `None` without receipts.
    pub fn receipt_claim(&self) -> Option<ReceiptClaim> {
        use protocol::policy::Canonical;
        use sha2::Digest;
        let r = self.receipts.as_ref()?;
        let (claim, signatures) = match &r.reshared {
            Some(x) => {
                let request =
                    sha2::Sha256::digest(super::Wire::to_wire(&x.request).canonical_bytes())
                        .to_vec();
                self.claim(r, r.generation, self.threshold, request, &r.signatures)
            }
            None => self.claim(
                r,
                r.moved,
                self.threshold,
                self.origin_request()?,
                &r.signatures,
            ),
        };
        // The current generation's receipts sign the key's policy from version 1 on, whatever
        // the generation shown (helper-42, finding 1).
        let policy = super::Wire::to_wire(&self.policy);
        Some((claim.with_policy(self.policy_version, &policy), signatures))
    }

    /// For a reshared key, the receipt every node of the roster of version `x.origin_roster`
    /// (`nodes` nodes) signed at generation `x.origin_generation` (over the creation or import
    /// request) and the signatures: the key's origin, checked beside the current generation.
    /// `None` for a key never reshared (its one claim is [`KeyInfo::receipt_claim`]).
    pub fn origin_claim(&self, nodes: u16) -> Option<ReceiptClaim> {
        let r = self.receipts.as_ref()?;
        let x = r.reshared.as_ref()?;
        let (mut claim, signatures) = self.claim(
            r,
            x.origin_generation,
            x.origin_threshold,
            self.origin_request()?,
            &x.origin_signatures,
        );
        claim.participants = (0..nodes).collect();
        Some((claim, signatures))
    }

    /// For a reshared key, the generation every node must say it signs with, the resharing
    /// request's SHA-256, and the nodes' statements (`protocol::reshare::verify_retired`).
    pub fn retired_claim(&self) -> Option<RetiredClaim> {
        use protocol::policy::Canonical;
        use sha2::Digest;
        let r = self.receipts.as_ref()?;
        let x = r.reshared.as_ref()?;
        let request: [u8; 32] =
            sha2::Sha256::digest(super::Wire::to_wire(&x.request).canonical_bytes()).into();
        let signatures = x
            .retired
            .iter()
            .map(|s| (s.node, s.signature.0.clone()))
            .collect();
        Some((r.generation.saturating_sub(r.moved), request, signatures))
    }

    /// SHA-256 of the creation (or import) request served with the receipts.
    fn origin_request(&self) -> Option<Vec<u8>> {
        use protocol::policy::Canonical;
        use sha2::Digest;
        let r = self.receipts.as_ref()?;
        Some(match &r.import {
            Some(import) => {
                sha2::Sha256::digest(super::Wire::to_wire(import).canonical_bytes()).to_vec()
            }
            None => {
                sha2::Sha256::digest(super::Wire::to_wire(&r.creation).canonical_bytes()).to_vec()
            }
        })
    }

    fn claim(
        &self,
        r: &KeyReceipts,
        generation: u32,
        threshold: u16,
        request: Vec<u8>,
        signatures: &[NodeReceipt],
    ) -> ReceiptClaim {
        let claim = protocol::receipt::KeyReceipt {
            v: protocol::receipt::KEY_RECEIPT_VERSION,
            cluster: r.cluster.0,
            node: 0,
            key_id: self.key_id.clone(),
            scheme: self.scheme,
            threshold,
            participants: r.participants.clone(),
            public_key: serde_bytes::ByteBuf::from(self.public_key.0.clone()),
            chain_code: self
                .chain_code
                .as_ref()
                .map(|c| serde_bytes::ByteBuf::from(c.0.clone())),
            generation,
            request: serde_bytes::ByteBuf::from(request),
            policy_version: 0,
            policy: None,
        };
        let signatures = signatures
            .iter()
            .map(|s| (s.node, s.signature.0.clone()))
            .collect();
        (claim, signatures)
    }
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
    /// Whether it came from a presignature: only a payload the enclaves hashed can be; a raw
    /// ECDSA digest is always signed in full (RUSTSEC-2025-0127).
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
    /// The cluster's name (a label).
    pub cluster: Option<String>,
    /// The cluster id (64 hex digits): the digest of the approved genesis, which every
    /// key-creation and signing request names.
    pub cluster_id: Option<ClusterHex>,
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
    /// The peers that admitted its current identity. It takes part in sessions only once every
    /// peer that is up has.
    pub known_to: Vec<u16>,
    /// Last error: a failed call or session, or what the enclave reports went wrong (the
    /// reason of a `failed` phase, a panic it contained), prefixed `enclave: `.
    pub error: Option<String>,
    /// Its enclave's clock minus the coordinator's, in seconds, at its last health check
    /// (the enclave checks documents against its clock, so a skew nearing their 5-minute
    /// window is worth an alarm). Unsigned, so the parent's word: an early warning, never a
    /// control. Null when the node did not answer or its enclave does not report its clock.
    pub clock_skew_secs: Option<i64>,
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
    /// The admin set in force and every change of it (issue 20); `null` until the genesis is
    /// ready (and from a coordinator that predates admin changes).
    #[serde(default)]
    pub admins: Option<super::AdminsStatus>,
    /// The set of enclave images the cluster accepts and every change of it (issue 20, image
    /// rotation); `null` until the genesis is ready, for a cluster without a roster (and from a
    /// coordinator that predates image changes).
    #[serde(default)]
    pub images: Option<super::ImagesStatus>,
    /// The roster in force and the changes proposed to it (issue 20, membership); `null` until
    /// the genesis is ready, for a cluster without a roster (and from a coordinator that
    /// predates roster changes).
    #[serde(default)]
    pub roster: Option<super::RosterStatus>,
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

/// The answer to `POST /v1/nodes/{node}/enroll` (the enclave's word; verify its document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledNode {
    /// The node index.
    pub node: u16,
    /// Its node key (32 bytes).
    pub node_key: Hex,
    /// The KMS key it is sealed under.
    pub kms_key_arn: protocol::KmsKeyArn,
}

/// The answer to `POST /v1/nodes/{node}/attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDocument {
    /// The node index.
    pub node: u16,
    /// Its enclave's attestation document (COSE_Sign1, hex).
    pub document: Hex,
}

/// `GET /v1/keys/{key_id}/backups` (`cohort key check-backups`): whether every node's copy off
/// its instance holds what the key's share needs there (the parents' word: issue 23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBackups {
    /// The key.
    pub key_id: String,
    /// Whether every node's blobs are backed up: fund the key only then.
    pub backed_up: bool,
    /// The blobs each node needs backed up for this key (node key, genesis, auxiliary info for
    /// ECDSA, the key's current share).
    pub needed: Vec<String>,
    /// Each node, in index order.
    pub nodes: Vec<NodeBackup>,
}

/// One node's backup of a key's blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBackup {
    /// The node.
    pub node: u16,
    /// Whether each needed blob's current content is confirmed copied off the instance.
    pub backed_up: bool,
    /// The needed blobs that are not (all of them when the proxy did not answer).
    pub missing: Vec<String>,
    /// The proxy's backup manifest: `ok`, `absent` or `unreadable: REASON` (empty when it did
    /// not answer).
    pub manifest: String,
    /// When the node's last blob sync checked (Unix seconds).
    pub checked: Option<u64>,
    /// Why the proxy did not answer.
    pub error: Option<String>,
}
