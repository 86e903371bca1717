//! Enclave-to-enclave envelopes: how one protocol message travels between enclaves through
//! untrusted proxies and the coordinator.
//!
//! An envelope is bound to `(session, seq, from, to)`. Its body is plaintext for a broadcast and
//! ChaCha20-Poly1305 ciphertext for a point-to-point message; in both cases the sender signs
//! [`PeerEnvelope::signed_bytes`] with its attested Ed25519 identity key. `seq` counts the
//! sender's messages in the session from 0 without gaps, so a receiver detects a replayed,
//! duplicated, reordered or dropped message.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Version of the envelope format.
pub const PEER_ENVELOPE_VERSION: u8 = 1;
/// Length of a session id.
pub const SESSION_ID_LEN: usize = 32;
const SIGNING_DST: &[u8] = b"cohort/peer-envelope/v1";

/// One protocol message between two enclaves (or from one to all, `to = None`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEnvelope {
    /// [`PEER_ENVELOPE_VERSION`].
    pub v: u8,
    /// The session (32 bytes).
    pub session: ByteBuf,
    /// The sender's message counter in this session, from 0, without gaps.
    pub seq: u32,
    /// Sender's node index.
    pub from: u16,
    /// Receiver's node index, or `None` for a broadcast.
    pub to: Option<u16>,
    /// Plaintext (broadcast) or AEAD ciphertext (point-to-point).
    pub body: ByteBuf,
    /// Ed25519 signature of [`PeerEnvelope::signed_bytes`] by the sender's identity key.
    pub sig: ByteBuf,
}

impl std::fmt::Debug for PeerEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerEnvelope")
            .field("seq", &self.seq)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl PeerEnvelope {
    /// The header: version, session, seq, sender, receiver (also the AEAD's associated data).
    pub fn header_bytes(v: u8, session: &[u8], seq: u32, from: u16, to: Option<u16>) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 1 + session.len() + 4 + 2 + 3);
        out.push(v);
        out.push(session.len() as u8);
        out.extend_from_slice(session);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&from.to_be_bytes());
        match to {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.to_be_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// What the sender signs: a domain tag, the header, and the body.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let header = Self::header_bytes(self.v, &self.session, self.seq, self.from, self.to);
        let mut out = Vec::with_capacity(SIGNING_DST.len() + header.len() + 8 + self.body.len());
        out.extend_from_slice(SIGNING_DST);
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.body.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}
