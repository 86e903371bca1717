//! Enclave-to-enclave envelopes: how one protocol message travels between enclaves through
//! untrusted proxies and the coordinator.
//!
//! An envelope is bound to `(session, seq, from, to)` and to the session's execution id, which
//! it does not carry: each enclave derives it from what it was asked to run. Its body is plaintext for a broadcast and
//! ChaCha20-Poly1305 ciphertext for a point-to-point message; in both cases the sender signs
//! [`PeerEnvelope::signed_bytes`] with its attested Ed25519 identity key. `seq` counts the
//! sender's messages in the session from 0 without gaps, so a receiver detects a replayed,
//! duplicated, reordered or dropped message.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Version of the envelope format.
pub const PEER_ENVELOPE_VERSION: u8 = 2;
/// Length of a session id.
pub const SESSION_ID_LEN: usize = 32;
const SIGNING_DST: &[u8] = b"cohort/peer-envelope/v2";
/// The header's length byte announcing a four-byte session length.
const LONG_SESSION: u8 = 0xff;

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
    ///
    /// The session is length-prefixed: one byte for up to 254 bytes (a session id is 32), else
    /// `0xff` and four bytes, so that no two headers are alike whatever a peer sends (a session
    /// of 256 bytes once encoded its length as 0, as an empty one does; found by fuzzing).
    pub fn header_bytes(v: u8, session: &[u8], seq: u32, from: u16, to: Option<u16>) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 5 + session.len() + 4 + 2 + 3);
        out.push(v);
        match u8::try_from(session.len()) {
            Ok(len) if len < LONG_SESSION => out.push(len),
            _ => {
                out.push(LONG_SESSION);
                let len = u32::try_from(session.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
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

    /// What the sender signs: a domain tag, the header, the session's execution id `context`
    /// ([`crate::session::SessionKind::execution_id`]: what the session is, which the envelope
    /// does not carry), and the body.
    pub fn signed_bytes(&self, context: &[u8; 32]) -> Vec<u8> {
        let header = Self::header_bytes(self.v, &self.session, self.seq, self.from, self.to);
        let mut out =
            Vec::with_capacity(SIGNING_DST.len() + header.len() + 32 + 8 + self.body.len());
        out.extend_from_slice(SIGNING_DST);
        out.extend_from_slice(&header);
        out.extend_from_slice(context);
        out.extend_from_slice(&(self.body.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the session length back from a header (what makes the encoding unambiguous).
    fn session_len(header: &[u8]) -> usize {
        match header[1] {
            LONG_SESSION => u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize,
            n => usize::from(n),
        }
    }

    /// The signed bytes of envelope version 2, pinned (computed independently with Python's
    /// hashlib and struct): the header, then the execution id, then the body's length and body.
    #[test]
    fn signed_bytes_are_pinned() {
        use sha2::{Digest, Sha256};
        let e = PeerEnvelope {
            v: PEER_ENVELOPE_VERSION,
            session: ByteBuf::from(vec![3; 32]),
            seq: 5,
            from: 1,
            to: Some(2),
            body: ByteBuf::from(b"hi".to_vec()),
            sig: ByteBuf::new(),
        };
        let signed = e.signed_bytes(&[0xc0; 32]);
        assert_eq!(signed.len(), 108);
        assert_eq!(
            hex::encode(Sha256::digest(&signed)),
            "22f229c40c0479121e5f4aa7a09082dcdd9627c4fc10f20d7c1aedba017da10e"
        );
        assert_ne!(signed, e.signed_bytes(&[0xc1; 32]));
    }

    #[test]
    fn headers_are_unambiguous_for_every_session_length() {
        // Regression (fuzzing): a 256-byte session encoded its length as 0, as an empty one did,
        // so two different envelopes could share their signed bytes.
        let long = PeerEnvelope::header_bytes(1, &[7; 256], 0, 0, None);
        let empty = PeerEnvelope::header_bytes(1, &[], 0, 0, None);
        assert_ne!(long[..2], empty[..2]);
        for len in [0usize, 1, 32, 254, 255, 256, 1000] {
            let h = PeerEnvelope::header_bytes(1, &vec![9; len], 5, 2, Some(1));
            assert_eq!(session_len(&h), len);
            let prefix = if len < 255 { 2 } else { 6 };
            assert_eq!(h.len(), prefix + len + 4 + 2 + 3);
        }
        // A session id's header is what it always was.
        let id = PeerEnvelope::header_bytes(1, &[3; SESSION_ID_LEN], 0, 1, None);
        assert_eq!(id[..2], [1, 32]);
    }
}
