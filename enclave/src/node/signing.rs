//! Signing: checking a signing request, ECDSA presignatures, and starting the signing session
//! a key's scheme needs (ECDSA in full or from a presignature, FROST).

use std::collections::BTreeMap;

use protocol::policy::{
    Approved, MAX_PATH_LEN, MAX_PAYLOAD_LEN, MAX_PAYLOADS, Payload, SIGN_REQUEST_VERSION,
    SignRequest,
};
use protocol::session::FailureCode;

use super::background::Launch;
use super::keys::{Key, Share};
use super::machine::{Machine, Product};
use super::session::{Opening, Purpose, Start};
use super::single_use::{request_hash, sign_use};
use super::{Node, NodeError, bad, failed, internal, session_id};
use crate::mpc::ecdsa::{self, SecretPresignature};
use crate::mpc::eddsa;
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};
use crate::policy::check_approvals;

/// Refuses a derivation path longer than [`MAX_PATH_LEN`] (each index is a derivation step on
/// the worker) or with a hardened index.
fn check_path(path: &[u32]) -> Result<(), NodeError> {
    if path.len() > MAX_PATH_LEN || path.iter().any(|i| *i >= 1 << 31) {
        return Err(bad(format!(
            "a path has at most {MAX_PATH_LEN} non-hardened indices"
        )));
    }
    Ok(())
}

/// A presignature ready at this enclave, for one key, derivation path and quorum.
pub(super) struct Presignature {
    pub(super) key_id: String,
    pub(super) participants: Vec<u16>,
    pub(super) secret: SecretPresignature,
    /// When it was made (this enclave's session clock): dropped after
    /// `Limits::presignature_lifetime_secs`.
    pub(super) made: u64,
}

/// What a signing session signs, for the outcome.
pub(super) struct Signing {
    /// The key: a retire of its generation drops the session (attacker review helper-42,
    /// finding 3: nothing started under the old generation and policy finishes after it).
    pub(super) key_id: String,
    pub(super) use_key: Vec<u8>,
    pub(super) public_key: Vec<u8>,
    pub(super) digest: [u8; 32],
    /// Whether this enclave hashed the payload's preimage itself (only then may a presignature
    /// sign it: RUSTSEC-2025-0127).
    pub(super) hashed: bool,
    /// SHA-256 of the request's canonical bytes, to recognise exactly this request again.
    pub(super) request_hash: [u8; 32],
    pub(super) created: u64,
    pub(super) expiry: u64,
}

/// One-round signing from a presignature: collecting every participant's partial signature.
struct Presigned {
    partials: BTreeMap<PartyIndex, ecdsa::PartialSignature>,
    participants: usize,
    public_key: Vec<u8>,
    digest: [u8; 32],
}

impl Machine for Presigned {
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError> {
        let partial = ecdsa::PartialSignature::from_bytes(&msg.payload)?;
        if self.partials.insert(msg.from, partial).is_some() {
            return Err(MpcError::BadMessage {
                from: msg.from,
                reason: "second partial signature".into(),
            });
        }
        if self.partials.len() < self.participants {
            return Ok(Step::Continue(vec![]));
        }
        let all: Vec<_> = self.partials.values().cloned().collect();
        let pk: [u8; 33] = self
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| MpcError::Internal("bad public key length".into()))?;
        let sig = ecdsa::combine(&all, &self.digest, &pk)?;
        Ok(Step::Done(sig.into(), vec![]))
    }

    fn positional(&self) -> bool {
        true
    }
}

impl Node {
    /// Starts a presignature for an ECDSA key, with exactly threshold participants, under
    /// execution id `eid`.
    pub(super) fn start_presign(
        &self,
        eid: &[u8; 32],
        participants: &[u16],
        my_position: u16,
        key_id: &str,
        path: &[u32],
    ) -> Result<Start, NodeError> {
        self.refuse_while_vouched()?;
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        let Share::Ecdsa(share) = &key.share else {
            return Err(bad("presignatures exist for ECDSA keys only"));
        };
        check_path(path)?;
        if participants.len() != usize::from(key.threshold) {
            return Err(bad("a presignature needs exactly threshold participants"));
        }
        // Built and stepped on a worker thread: a presignature costs CPU seconds.
        let (share, eid, signers, path) =
            (share.handle(), *eid, participants.to_vec(), path.to_vec());
        let launch: Launch = Box::new(move || {
            let (m, first) = ecdsa::Presign::start(&eid, my_position, &signers, &share, &path)?;
            Ok((Box::new(m) as Box<dyn Machine>, first))
        });
        let purpose = Purpose::Presign(key_id.to_string(), key.generation);
        Ok(Start::background(launch, true, purpose))
    }

    /// Starts signing one payload of an approved request under execution id `eid`, or answers
    /// at once: with the signature already released for it, or without a matching presignature.
    pub(super) fn start_sign(
        &mut self,
        eid: &[u8; 32],
        participants: &[u16],
        my_position: u16,
        request: &Approved<SignRequest>,
        payload: u16,
        presignature: Option<&[u8]>,
    ) -> Result<Opening, NodeError> {
        if let Some(outcome) = self.released_signature(request, payload)? {
            return Ok(Opening::Answered(outcome));
        }
        self.refuse_while_vouched()?;
        let (key, signing) = self.check_sign(request, payload)?;
        let threshold = usize::from(key.threshold);
        let r = &request.request;
        let use_key = signing.use_key.clone();
        let start = match (&key.share, presignature) {
            (Share::Ecdsa(share), None) => {
                if participants.len() != threshold {
                    return Err(bad("ECDSA signing needs exactly threshold participants"));
                }
                // Full signing makes a presignature first: on a worker thread, like one.
                let (share, eid, signers) = (share.handle(), *eid, participants.to_vec());
                let (path, digest) = (r.path.clone(), signing.digest);
                let launch: Launch = Box::new(move || {
                    let (m, first) =
                        ecdsa::Sign::start(&eid, my_position, &signers, &share, &path, digest)?;
                    Ok((Box::new(m) as Box<dyn Machine>, first))
                });
                Start::background(launch, true, Purpose::Sign(signing))
            }
            (Share::Ecdsa(_), Some(id)) => {
                return self.start_presigned(participants, my_position, r, signing, id);
            }
            (Share::Eddsa(share), None) => {
                if participants.len() < threshold {
                    return Err(bad("FROST signing needs at least threshold participants"));
                }
                let Some(Payload::Raw(message)) = r.payloads.get(usize::from(payload)) else {
                    return Err(bad("EdDSA payloads are raw messages"));
                };
                let (m, out) =
                    eddsa::Sign::start(share, eid, participants, message, &mut rand::rngs::OsRng)
                        .map_err(internal)?;
                Start::new(Box::new(m), Purpose::Sign(signing), out)
            }
            (Share::Eddsa(_), Some(_)) => {
                return Err(bad("presignatures exist for ECDSA keys only"));
            }
        };
        self.claim(&use_key)?;
        Ok(Opening::Run(start.holding(use_key)))
    }

    /// ECDSA signing from presignature `id`: this enclave's partial signature goes out at once.
    fn start_presigned(
        &mut self,
        participants: &[u16],
        my_position: u16,
        r: &SignRequest,
        signing: Signing,
        id: &[u8],
    ) -> Result<Opening, NodeError> {
        if !signing.hashed {
            // Never a bare digest from a presignature (RUSTSEC-2025-0127): the coordinator
            // asked for what only full signing may do.
            return Err(NodeError::Refused(
                "a presignature signs only a preimage this enclave hashes (the payload is a raw digest)"
                    .into(),
            ));
        }
        let pid = session_id(id)?;
        let matches = self.presignatures.get(&pid).is_some_and(|p| {
            p.key_id == r.key_id && p.participants == participants && p.secret.path() == r.path
        });
        if !matches {
            return Ok(Opening::Answered(failed(
                FailureCode::NoPresignature,
                "no ready presignature for this key, path and quorum",
                vec![],
            )));
        }
        self.claim(&signing.use_key)?;
        // Removed before the partial signature exists: never used twice.
        let presig = self
            .presignatures
            .remove(&pid)
            .ok_or_else(|| NodeError::Internal("presignature vanished".into()))?;
        let partial = presig
            .secret
            .issue_partial_signature(signing.digest, &r.path)
            .map_err(internal)?;
        let bytes = partial.to_bytes().map_err(internal)?;
        let machine = Presigned {
            partials: BTreeMap::from([(my_position, partial)]),
            participants: participants.len(),
            public_key: signing.public_key.clone(),
            digest: signing.digest,
        };
        let first = vec![OutgoingMessage {
            to: None,
            payload: bytes.into(),
        }];
        let use_key = signing.use_key.clone();
        Ok(Opening::Run(
            Start::new(Box::new(machine), Purpose::Sign(signing), first).holding(use_key),
        ))
    }

    /// The key of a signing request, once the request meets its policy.
    pub(super) fn approved_key(&self, request: &Approved<SignRequest>) -> Result<&Key, NodeError> {
        let r = &request.request;
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        // Approvals count only under the policy they were given for (issue 20): one the admins
        // replaced is void, and one not landed here yet is not the key's policy.
        if r.policy != key.policy_version {
            return Err(NodeError::Refused(format!(
                "the request was approved under policy version {} of key {}; its policy is \
                 version {} here",
                r.policy, r.key_id, key.policy_version
            )));
        }
        if key.policy_void {
            return Err(NodeError::Refused(format!(
                "policy_void: a change of key {}'s policy was disowned here, so its policy \
                 version {} approves nothing until the admins set a policy again",
                r.key_id, key.policy_version
            )));
        }
        check_approvals(r, &request.approvals, &key.approvers, key.approvals_needed)?;
        Ok(key)
    }

    fn check_sign(
        &self,
        request: &Approved<SignRequest>,
        payload: u16,
    ) -> Result<(&Key, Signing), NodeError> {
        let r = &request.request;
        self.check_request((r.v, SIGN_REQUEST_VERSION), &r.cluster, &r.request_id)?;
        // The shape first, then the approvals: nothing costly for a request out of bounds.
        if r.payloads.is_empty() || r.payloads.len() > MAX_PAYLOADS {
            return Err(bad(format!(
                "a request carries 1 to {MAX_PAYLOADS} payloads"
            )));
        }
        if r.payloads.iter().any(|p| p.bytes().len() > MAX_PAYLOAD_LEN) {
            return Err(bad(format!(
                "a payload has at most {MAX_PAYLOAD_LEN} bytes"
            )));
        }
        check_path(&r.path)?;
        let key = self.approved_key(request)?;
        let message = r
            .payloads
            .get(usize::from(payload))
            .ok_or_else(|| bad("payload index out of range"))?;
        let use_key = sign_use(r, payload);
        self.guard
            .check(&use_key, r.created, r.expiry, self.now())?;
        let (public_key, digest) = match &key.share {
            Share::Ecdsa(share) => {
                let digest = message.ecdsa_digest().ok_or_else(|| {
                    bad("raw ECDSA payloads are 32-byte digests (or name a hash and a preimage)")
                })?;
                (
                    share
                        .derive_public_key(&r.path)
                        .map_err(|e| bad(e.to_string()))?
                        .to_vec(),
                    digest,
                )
            }
            Share::Eddsa(share) => {
                if message.is_hashed() {
                    return Err(bad(
                        "EdDSA payloads are raw messages (Ed25519 hashes them itself)",
                    ));
                }
                if !r.path.is_empty() {
                    return Err(bad("derivation paths apply to ECDSA keys only"));
                }
                (share.public_key().to_vec(), [0; 32])
            }
        };
        Ok((
            key,
            Signing {
                key_id: r.key_id.clone(),
                use_key,
                public_key,
                digest,
                hashed: message.is_hashed(),
                request_hash: request_hash(r),
                created: r.created,
                expiry: r.expiry,
            },
        ))
    }
}
