//! Requests that humans approve ("stamp"): cluster genesis, key creation, signing.
//!
//! Each request has a canonical, versioned byte form ([`Canonical::canonical_bytes`]): a domain
//! tag naming the request type and version, followed by the request's CBOR encoding (fields in
//! declaration order, definite lengths — deterministic for these types). Approvers sign those
//! bytes with Ed25519; every enclave verifies the signatures itself.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::genesis::ClusterId;

/// Version of [`CreateKey`]. Version 2 names the cluster by its id (the digest of the approved
/// genesis, ADR 0013) where version 1 named it by a label any cluster could share.
pub const REQUEST_VERSION: u8 = 2;
/// Version of [`SignRequest`]. Version 3 says of each payload whether it is signed as given or
/// hashed by the enclave first ([`Payload`], ADR 0016); version 2 carried bare bytes only.
pub const SIGN_REQUEST_VERSION: u8 = 3;
/// Version of the legacy [`Genesis`] (without a roster), which every enclave and coordinator
/// refuses (`legacy_genesis`); kept so the refusal can be tested and named.
pub const GENESIS_V1_VERSION: u8 = 1;
/// Length of a request id.
pub const REQUEST_ID_LEN: usize = 16;
/// Longest a signed request may be valid (expiry minus creation), seconds.
pub const MAX_REQUEST_VALIDITY_SECS: u64 = 600;
/// Most payloads one signing request carries.
pub const MAX_PAYLOADS: usize = 64;
/// Longest payload (an EdDSA message or an ECDSA preimage), bytes.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Longest derivation path (non-hardened indices).
pub const MAX_PATH_LEN: usize = 255;
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
    /// [`GENESIS_V1_VERSION`].
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
    /// The cluster's id: the digest of its approved genesis.
    pub cluster: ClusterId,
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
    /// The admin version its approvals were given under (issue 20,
    /// [`crate::admins::SetAdmins`]): every enclave refuses another than its current one. Absent
    /// from the canonical bytes at 0 (the genesis' admins), so a request without it is what it
    /// was.
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub admins: u32,
    /// The roster version the request was made for (issue 20, `crate::roster`): the one whose
    /// nodes an import's holders attested and dealt to. Every enclave refuses another than its
    /// current one, so that a dealing made for a roster a change has replaced is never taken
    /// (attacker review helper-79). Absent from the canonical bytes at 0 (the genesis'
    /// roster), so a request without it is what it was.
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub roster: u32,
}

/// A hash function an enclave applies to a preimage before signing the digest (ECDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashFunction {
    /// SHA-256 once.
    Sha256,
    /// SHA-256 twice: Bitcoin's signature hashes (BIP143 for segwit v0 inputs).
    Sha256d,
    /// Keccak-256 (the original Keccak padding, not SHA3-256): Ethereum's transaction hashes
    /// (the EIP-2718 signing encoding).
    Keccak256,
}

impl HashFunction {
    /// Every hash function, in order.
    pub const ALL: [Self; 3] = [Self::Sha256, Self::Sha256d, Self::Keccak256];

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).into(),
            Self::Sha256d => sha2::Sha256::digest(sha2::Sha256::digest(data)).into(),
            Self::Keccak256 => sha3::Keccak256::digest(data).into(),
        }
    }
}

impl std::fmt::Display for HashFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "sha256",
            Self::Sha256d => "sha256d",
            Self::Keccak256 => "keccak256",
        })
    }
}

impl std::str::FromStr for HashFunction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|h| h.to_string() == s)
            .ok_or_else(|| format!("unknown hash `{s}` (expected sha256, sha256d or keccak256)"))
    }
}

/// One thing a signing request signs.
///
/// ECDSA presignatures are used only for [`Payload::Hashed`]: a presignature must never sign a
/// digest whose preimage the enclave did not hash itself (RUSTSEC-2025-0127, ADR 0016).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Payload {
    /// Signed as given: a 32-byte digest (ECDSA, by full interactive signing only) or the
    /// message itself (EdDSA).
    Raw(ByteBuf),
    /// A preimage every enclave hashes with `hash` before signing the digest (ECDSA only).
    Hashed {
        /// The hash function.
        hash: HashFunction,
        /// What it hashes.
        preimage: ByteBuf,
    },
}

impl Payload {
    /// The raw bytes `bytes`.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Raw(ByteBuf::from(bytes.into()))
    }

    /// `preimage`, to be hashed with `hash`.
    pub fn hashed(hash: HashFunction, preimage: impl Into<Vec<u8>>) -> Self {
        Self::Hashed {
            hash,
            preimage: ByteBuf::from(preimage.into()),
        }
    }

    /// What an ECDSA key signs: the digest of a hashed payload, or a raw payload of exactly 32
    /// bytes; `None` for a raw payload of another length.
    pub fn ecdsa_digest(&self) -> Option<[u8; 32]> {
        match self {
            Self::Raw(bytes) => bytes.as_slice().try_into().ok(),
            Self::Hashed { hash, preimage } => Some(hash.digest(preimage)),
        }
    }

    /// The bytes as given: the raw payload or the preimage.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Raw(bytes) => bytes,
            Self::Hashed { preimage, .. } => preimage,
        }
    }

    /// Whether the enclave hashes it itself, so that a presignature may sign it.
    pub fn is_hashed(&self) -> bool {
        matches!(self, Self::Hashed { .. })
    }
}

/// Sign payloads with a key (approved under the key's policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// [`SIGN_REQUEST_VERSION`].
    pub v: u8,
    /// The cluster's id: the digest of its approved genesis.
    pub cluster: ClusterId,
    /// The key.
    pub key_id: String,
    /// Non-hardened derivation path (empty: the key itself). ECDSA keys only.
    pub path: Vec<u32>,
    /// What to sign.
    pub payloads: Vec<Payload>,
    /// Unique id of this request (16 bytes).
    pub request_id: ByteBuf,
    /// Unix seconds when the request was made.
    pub created: u64,
    /// Unix seconds after which the request is void.
    pub expiry: u64,
    /// The version of the key's policy its approvals were given under (issue 20): 0 from the
    /// key's creation until the admins first change who approves, then one more at each change
    /// ([`crate::reshare::ReshareKey::policy`]). Every enclave refuses a request naming another
    /// version than the key's current one: a request approved under a policy the admins
    /// replaced is void, and one approved under a new policy waits until that policy is the
    /// key's everywhere. Absent from the canonical bytes when 0, so a request for a key whose
    /// policy never changed is what it was.
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub policy: u32,
}

/// Most approvers a key's policy names.
pub const MAX_APPROVERS: usize = 32;

/// Why a key policy is malformed ([`KeyPolicy::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPolicyError {
    /// No approvers, or more than [`MAX_APPROVERS`].
    #[error("a key policy has 1 to {MAX_APPROVERS} approvers, not {0}")]
    ApproverCount(usize),
    /// An approver that is not a 32-byte Ed25519 public key.
    #[error("approver {0} is not an Ed25519 public key")]
    ApproverKey(usize),
    /// The same approver twice.
    #[error("approvers {first} and {second} are the same key")]
    DuplicateApprover {
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// Zero approvals needed, or more than there are approvers.
    #[error("approvals needed is 1 to {approvers}, not {needed}")]
    ApprovalsNeeded {
        /// Approvals needed.
        needed: u16,
        /// Approvers.
        approvers: usize,
    },
}

impl KeyPolicy {
    /// Checks the rules a policy the admins set must meet: 1 to [`MAX_APPROVERS`] distinct
    /// Ed25519 keys and 1 to that many approvals needed.
    pub fn check(&self) -> Result<(), KeyPolicyError> {
        let n = self.approvers.len();
        if n == 0 || n > MAX_APPROVERS {
            return Err(KeyPolicyError::ApproverCount(n));
        }
        for (i, a) in self.approvers.iter().enumerate() {
            let key: Option<[u8; 32]> = a.as_slice().try_into().ok();
            if key
                .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                .is_none()
            {
                return Err(KeyPolicyError::ApproverKey(i));
            }
            if let Some(first) = self.approvers[..i].iter().position(|b| b == a) {
                return Err(KeyPolicyError::DuplicateApprover { first, second: i });
            }
        }
        if self.approvals_needed == 0 || usize::from(self.approvals_needed) > n {
            return Err(KeyPolicyError::ApprovalsNeeded {
                needed: self.approvals_needed,
                approvers: n,
            });
        }
        Ok(())
    }
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
    const DOMAIN: &'static [u8] = b"cohort/create-key/v2\0";
}
impl Canonical for SignRequest {
    const DOMAIN: &'static [u8] = b"cohort/sign-request/v3\0";
}

/// Why approvals or a validity window do not hold (see [`check_approvals`], [`check_window`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// The policy needs no approval at all (a zero threshold): refused, never "anyone may".
    #[error("a policy needs at least one approval")]
    NoThreshold,
    /// An approval names a key that is not 32 bytes.
    #[error("approver key is not 32 bytes")]
    MalformedApprover,
    /// More approvals than the policy has approvers (each would cost a signature check).
    #[error("{got} approvals for a policy of {approvers} approvers")]
    TooMany {
        /// Approvals given.
        got: usize,
        /// Approvers in the policy.
        approvers: usize,
    },
    /// An approval names a key outside the policy.
    #[error("{} is not an approver of this request", hex(.0))]
    ForeignApprover([u8; 32]),
    /// An approval's signature does not verify over the request (or is not 64 bytes).
    #[error("the approval of {} does not sign this request", hex(.0))]
    BadApproval([u8; 32]),
    /// Too few distinct approvers.
    #[error("{got} distinct approvals, {needed} needed")]
    Insufficient {
        /// Valid distinct approvals.
        got: usize,
        /// Needed.
        needed: usize,
    },
    /// The expiry has passed.
    #[error("expiry has passed")]
    Expired,
    /// The creation time lies ahead of `now` by more than the clock skew.
    #[error("creation time lies in the future")]
    FromTheFuture,
    /// Valid (expiry minus creation) for longer than [`MAX_REQUEST_VALIDITY_SECS`].
    #[error("valid for longer than allowed")]
    TooLong,
    /// The expiry is not after the creation time.
    #[error("expiry is not after creation")]
    Inverted,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `approvals` of `request` against `approvers` (32-byte Ed25519 keys) needing `needed`
/// distinct valid ones; returns the distinct approvers, in order. Pure: no I/O, no clock.
pub fn check_approvals<T: Canonical>(
    request: &T,
    approvals: &[Approval],
    approvers: &[[u8; 32]],
    needed: u16,
) -> Result<std::collections::BTreeSet<[u8; 32]>, PolicyViolation> {
    if needed == 0 {
        return Err(PolicyViolation::NoThreshold);
    }
    // Bounded before any signature is checked: a relay repeating one valid approval tens of
    // thousands of times would otherwise hold the enclave's worker for seconds per request.
    if approvals.len() > approvers.len() {
        return Err(PolicyViolation::TooMany {
            got: approvals.len(),
            approvers: approvers.len(),
        });
    }
    let message = request.canonical_bytes();
    let mut distinct = std::collections::BTreeSet::new();
    for approval in approvals {
        let key: [u8; 32] = approval
            .approver
            .as_slice()
            .try_into()
            .map_err(|_| PolicyViolation::MalformedApprover)?;
        if !approvers.contains(&key) {
            return Err(PolicyViolation::ForeignApprover(key));
        }
        let bad = || PolicyViolation::BadApproval(key);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
        let sig = ed25519_dalek::Signature::from_slice(&approval.signature).map_err(|_| bad())?;
        vk.verify_strict(&message, &sig).map_err(|_| bad())?;
        distinct.insert(key);
    }
    if distinct.len() < usize::from(needed) {
        return Err(PolicyViolation::Insufficient {
            got: distinct.len(),
            needed: usize::from(needed),
        });
    }
    Ok(distinct)
}

/// Checks a request's validity window at `now` (Unix seconds, from the caller's clock): not
/// expired, not made in the future beyond [`MAX_CLOCK_SKEW_SECS`], valid for at most
/// [`MAX_REQUEST_VALIDITY_SECS`], expiry after creation. Pure: no I/O, no clock.
pub fn check_window(created: u64, expiry: u64, now: u64) -> Result<(), PolicyViolation> {
    if expiry <= now {
        return Err(PolicyViolation::Expired);
    }
    if created > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(PolicyViolation::FromTheFuture);
    }
    if expiry.saturating_sub(created) > MAX_REQUEST_VALIDITY_SECS {
        return Err(PolicyViolation::TooLong);
    }
    if expiry <= created {
        return Err(PolicyViolation::Inverted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_pinned() {
        let req = SignRequest {
            v: 3,
            cluster: ClusterId([0xC1; 32]),
            key_id: "k".into(),
            path: vec![0, 1],
            payloads: vec![
                Payload::raw(vec![0xAA; 2]),
                Payload::hashed(HashFunction::Sha256d, vec![0xBB]),
            ],
            request_id: ByteBuf::from(vec![1; 2]),
            created: 4,
            expiry: 5,
            policy: 0,
        };
        let bytes = req.canonical_bytes();
        // Computed independently with Python's cbor2 (the struct's fields in order, a payload
        // as a one-entry map from its kebab-case variant name).
        assert!(bytes.starts_with(b"cohort/sign-request/v3\0"));
        assert_eq!(
            hex::encode(&bytes[SignRequest::DOMAIN.len()..]),
            "a861760367636c75737465725820c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1\
             c1c1c1c1c1c1666b65795f6964616b6470617468820001687061796c6f61647382a16372617742aa\
             aaa166686173686564a26468617368677368613235366468707265696d61676541bb6a7265717565\
             73745f69644201016763726561746564046665787069727905"
        );
        let back: SignRequest =
            ciborium::from_reader(&bytes[SignRequest::DOMAIN.len()..]).expect("decodes");
        assert_eq!(back, req);
    }

    /// Known answers from Python's hashlib and pycryptodome's Keccak (original padding).
    #[test]
    fn hash_functions() {
        let cases = [
            (
                HashFunction::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashFunction::Sha256d,
                "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358",
            ),
            (
                HashFunction::Keccak256,
                "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
            ),
        ];
        for (hash, digest) in cases {
            assert_eq!(hex::encode(hash.digest(b"abc")), digest, "{hash}");
            assert_eq!(hash.to_string().parse::<HashFunction>(), Ok(hash));
            assert_eq!(
                Payload::hashed(hash, b"abc".to_vec()).ecdsa_digest(),
                Some(hash.digest(b"abc"))
            );
        }
        assert!("sha3-256".parse::<HashFunction>().is_err());
        assert_eq!(Payload::raw(vec![7; 32]).ecdsa_digest(), Some([7; 32]));
        assert_eq!(Payload::raw(vec![7; 31]).ecdsa_digest(), None);
        assert!(!Payload::raw(vec![7; 32]).is_hashed());
    }

    #[test]
    fn scheme_names() {
        for s in [Scheme::EcdsaSecp256k1, Scheme::EddsaEd25519] {
            assert_eq!(s.to_string().parse::<Scheme>().unwrap(), s);
        }
        assert!("rsa".parse::<Scheme>().is_err());
    }
    fn approve(seed: u8, req: &SignRequest) -> (Approval, [u8; 32]) {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let public = key.verifying_key().to_bytes();
        let approval = Approval {
            approver: ByteBuf::from(public.to_vec()),
            signature: ByteBuf::from(key.sign(&req.canonical_bytes()).to_bytes().to_vec()),
        };
        (approval, public)
    }

    fn sign_request(payload: u8) -> SignRequest {
        SignRequest {
            v: SIGN_REQUEST_VERSION,
            cluster: ClusterId([0xC1; 32]),
            key_id: "k".into(),
            path: vec![],
            payloads: vec![Payload::raw(vec![payload; 32])],
            request_id: ByteBuf::from(vec![1; 16]),
            created: 100,
            expiry: 200,
            policy: 0,
        }
    }

    /// Issue 20: the policy version is in the canonical bytes from version 1 on (an approval
    /// under one version is not one under another), and left out at 0 (a request for a key
    /// whose policy never changed keeps its bytes).
    #[test]
    fn the_policy_version_is_signed_and_left_out_at_zero() {
        let req = sign_request(1);
        let bytes = req.canonical_bytes();
        assert!(!bytes.windows(6).any(|w| w == b"policy"));
        let v1 = SignRequest {
            policy: 1,
            ..req.clone()
        };
        assert_ne!(v1.canonical_bytes(), bytes);
        let (approval, key) = approve(1, &req);
        assert!(check_approvals(&v1, &[approval], &[key], 1).is_err());
    }

    #[test]
    fn a_key_policy_is_checked() {
        use ed25519_dalek::SigningKey;
        let key = |i: u8| {
            ByteBuf::from(
                SigningKey::from_bytes(&[i; 32])
                    .verifying_key()
                    .to_bytes()
                    .to_vec(),
            )
        };
        let policy = |approvers: Vec<ByteBuf>, approvals_needed| KeyPolicy {
            approvers,
            approvals_needed,
        };
        assert_eq!(policy(vec![key(1), key(2)], 2).check(), Ok(()));
        assert_eq!(
            policy(vec![], 1).check(),
            Err(KeyPolicyError::ApproverCount(0))
        );
        assert_eq!(
            policy((0..33).map(key).collect(), 1).check(),
            Err(KeyPolicyError::ApproverCount(33))
        );
        assert_eq!(
            policy(vec![key(1), ByteBuf::from(vec![1; 31])], 1).check(),
            Err(KeyPolicyError::ApproverKey(1))
        );
        assert_eq!(
            policy(vec![key(1), key(2), key(1)], 1).check(),
            Err(KeyPolicyError::DuplicateApprover {
                first: 0,
                second: 2
            })
        );
        for needed in [0, 3] {
            assert_eq!(
                policy(vec![key(1), key(2)], needed).check(),
                Err(KeyPolicyError::ApprovalsNeeded {
                    needed,
                    approvers: 2
                })
            );
        }
    }

    #[test]
    fn approvals() {
        let req = sign_request(1);
        let (a1, k1) = approve(1, &req);
        let (a2, k2) = approve(2, &req);
        let (stranger, _) = approve(3, &req);
        let keys = [k1, k2];
        let both = [a1.clone(), a2.clone()];
        assert_eq!(check_approvals(&req, &both, &keys, 2).unwrap().len(), 2);
        assert_eq!(
            check_approvals(&req, &both, &keys, 0),
            Err(PolicyViolation::NoThreshold)
        );
        assert_eq!(
            check_approvals(&req, &[a1.clone(), a1.clone()], &keys, 2),
            Err(PolicyViolation::Insufficient { got: 1, needed: 2 })
        );
        // More approvals than approvers are refused before any is verified.
        assert_eq!(
            check_approvals(&req, &vec![a1.clone(); 10_000], &keys, 2),
            Err(PolicyViolation::TooMany {
                got: 10_000,
                approvers: 2
            })
        );
        assert!(matches!(
            check_approvals(&req, &[a1.clone(), stranger], &keys, 1),
            Err(PolicyViolation::ForeignApprover(_))
        ));
        let short = Approval {
            approver: ByteBuf::from(vec![1; 31]),
            signature: a1.signature.clone(),
        };
        assert_eq!(
            check_approvals(&req, &[short], &keys, 1),
            Err(PolicyViolation::MalformedApprover)
        );
        assert_eq!(
            check_approvals(&sign_request(2), &both, &keys, 1),
            Err(PolicyViolation::BadApproval(k1))
        );
        let torn = Approval {
            approver: a2.approver.clone(),
            signature: ByteBuf::from(vec![0; 63]),
        };
        assert_eq!(
            check_approvals(&req, &[torn], &keys, 1),
            Err(PolicyViolation::BadApproval(k2))
        );
    }

    #[test]
    fn windows() {
        assert_eq!(check_window(100, 200, 150), Ok(()));
        assert_eq!(check_window(100, 200, 200), Err(PolicyViolation::Expired));
        assert_eq!(
            check_window(100, 100 + MAX_REQUEST_VALIDITY_SECS + 1, 150),
            Err(PolicyViolation::TooLong)
        );
        assert_eq!(
            check_window(150 + MAX_CLOCK_SKEW_SECS + 1, 400, 150),
            Err(PolicyViolation::FromTheFuture)
        );
        assert_eq!(check_window(180, 180, 150), Err(PolicyViolation::Inverted));
        assert_eq!(check_window(180, 170, 150), Err(PolicyViolation::Inverted));
    }
}
