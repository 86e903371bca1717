//! Single use of requests: the ids a request is known by, requests held in flight by a
//! session, request ids consumed when a session succeeds, and signatures kept so that exactly
//! the same request gets the same signature again.

use protocol::genesis::ClusterId;
use protocol::policy::{Approved, Canonical, CreateKey, REQUEST_ID_LEN, SignRequest};
use protocol::reshare::ReshareKey;
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use sha2::Digest;
use tracing::info;

use super::genesis::GenesisState;
use super::membership::MembershipError;
use super::session::{Purpose, Session};
use super::{Node, NodeError, bad, hex_short};

/// A signature this enclave released, kept until its request expires: a relay that lost it
/// (its coordinator died) gets the same signature again instead of a refusal. It is public.
pub(super) struct Released {
    /// SHA-256 of the approved request's canonical bytes: only exactly that request gets it.
    request_hash: [u8; 32],
    signature: Vec<u8>,
    public_key: Vec<u8>,
    expiry: u64,
}

/// What a key generation holds in flight: its key id, whatever request asks for it.
pub(super) fn key_id_use(key_id: &str) -> Vec<u8> {
    let mut k = b"key-id:".to_vec();
    k.extend_from_slice(key_id.as_bytes());
    k
}

/// What a key-creation request consumes.
pub(super) fn create_key_use(r: &CreateKey) -> Vec<u8> {
    request_use(&r.request_id)
}

/// What a resharing request consumes: an approved one, its request id in the same space as key
/// creations' and imports' (one id, one request that makes key material); a scheduled refresh
/// (never approved, always unapproved), its id in a space of its own, so that no unapproved
/// request can spend the id of one the admins approved (attacker review helper-39, finding 2).
pub(super) fn reshare_use(r: &ReshareKey) -> Vec<u8> {
    if !r.scheduled {
        request_use(&r.request_id)
    } else {
        let mut k = b"scheduled-refresh:".to_vec();
        k.extend_from_slice(&r.request_id);
        k
    }
}

fn request_use(request_id: &[u8]) -> Vec<u8> {
    let mut k = b"create-key:".to_vec();
    k.extend_from_slice(request_id);
    k
}

/// What signing one payload of a request holds and consumes: the request id and the payload
/// index.
pub(super) fn sign_use(r: &SignRequest, payload: u16) -> Vec<u8> {
    let mut use_key = r.request_id.to_vec();
    use_key.extend_from_slice(&payload.to_be_bytes());
    use_key
}

/// SHA-256 of a request's canonical bytes, to recognise exactly this request again.
pub(super) fn request_hash(r: &SignRequest) -> [u8; 32] {
    sha2::Sha256::digest(r.canonical_bytes()).into()
}

impl Node {
    /// Checks a request's version (`v`, where `version` is the one supported), cluster id and
    /// id length; returns the genesis.
    pub(super) fn check_request(
        &self,
        (v, version): (u8, u8),
        cluster: &ClusterId,
        request_id: &[u8],
    ) -> Result<&GenesisState, NodeError> {
        let g = self.genesis()?;
        if v != version {
            return Err(bad(format!(
                "request version {v} is not supported (this enclave takes version {version})"
            )));
        }
        let ours = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        if *cluster != ours {
            return Err(MembershipError::OtherCluster {
                named: cluster.to_string(),
                ours: ours.to_string(),
            }
            .into());
        }
        if request_id.len() != REQUEST_ID_LEN {
            return Err(bad("request id must be 16 bytes"));
        }
        Ok(g)
    }

    /// Holds `use_key` for a session: no other session may start with it meanwhile.
    pub(super) fn claim(&mut self, use_key: &[u8]) -> Result<(), NodeError> {
        if !self.in_flight.insert(use_key.to_vec()) {
            return Err(NodeError::InProgress("request already in progress".into()));
        }
        Ok(())
    }

    /// Lets go of what a failed or abandoned session held: its request can be tried again.
    pub(super) fn release(&mut self, session: &Session) {
        if let Some(k) = &session.use_key {
            self.in_flight.remove(k);
        }
    }

    /// Consumes the request a successful session held: it can never be used again. A
    /// signature is kept for [`Node::released_signature`].
    pub(super) fn consume(&mut self, s: &Session, outcome: &Outcome) {
        let Some(k) = &s.use_key else {
            return;
        };
        self.in_flight.remove(k);
        let now = self.now();
        match &s.purpose {
            Purpose::Sign(sg) => {
                let _ = self.guard.consume(k, sg.created, sg.expiry, now);
                if let Outcome::Signed {
                    signature,
                    public_key,
                } = outcome
                {
                    self.released.insert(
                        k.clone(),
                        Released {
                            request_hash: sg.request_hash,
                            signature: signature.to_vec(),
                            public_key: public_key.to_vec(),
                            expiry: sg.expiry,
                        },
                    );
                }
            }
            Purpose::CreateKey(r) | Purpose::ImportKey(r, _) => {
                let _ = self
                    .guard
                    .consume(&create_key_use(r), r.created, r.expiry, now);
            }
            Purpose::ReshareKey(r) => {
                let _ = self.guard.consume(&r.use_key, r.created, r.expiry, now);
            }
            Purpose::AuxInfo | Purpose::Presign(..) | Purpose::MoveKey(_) | Purpose::MoveAux(_) => {
            }
        }
    }

    /// The signature this enclave already released for exactly this approved request and
    /// payload, if it still holds it. Approvals are checked as for a new signature.
    pub(super) fn released_signature(
        &mut self,
        request: &Approved<SignRequest>,
        payload: u16,
    ) -> Result<Option<Outcome>, NodeError> {
        let now = self.now();
        self.released.retain(|_, r| r.expiry >= now);
        let r = &request.request;
        let Some(released) = self.released.get(&sign_use(r, payload)) else {
            return Ok(None);
        };
        if request_hash(r) != released.request_hash {
            return Ok(None);
        }
        if self.genesis()?.cluster_id() != Some(r.cluster) {
            return Ok(None);
        }
        self.approved_key(request)?;
        info!(request = %hex_short(&r.request_id), "signature released again");
        Ok(Some(Outcome::Signed {
            signature: ByteBuf::from(released.signature.clone()),
            public_key: ByteBuf::from(released.public_key.clone()),
        }))
    }
}
