//! Peer channels: authenticated (and, point to point, encrypted) envelopes between attested
//! enclaves, through untrusted relays.
//!
//! * Every peer's identity keys come from its attestation document, verified by this enclave
//!   itself ([`Roster::admit`]): chain to the pinned root, PCRs equal to this enclave's own (all
//!   nodes run the same image), no debug mode, freshness, identity binding in `user_data`.
//! * Every envelope is signed with the sender's Ed25519 identity key over its header
//!   (version, session, seq, sender, receiver), the session's execution id and its body. The
//!   execution id (`protocol::session::SessionKind::execution_id`) is not sent: each enclave
//!   derives it from what it was asked to run (cluster, roster, session id, kind, key, path,
//!   participants and their identities, request, payload, presignature), so an envelope of a
//!   session started as something else at its sender fails as a bad signature.
//! * Point-to-point bodies are ChaCha20-Poly1305 ciphertexts under
//!   `HKDF-SHA256(X25519(sender, receiver), salt = execution id, info = DST || from || to)`,
//!   nonce `seq`, associated data the header: a key per session and direction, a nonce per
//!   message.
//! * Each sender numbers its broadcasts 0, 1, 2, ... and, separately, its point-to-point
//!   messages to each receiver. A receiver accepts each of its streams from each sender only in
//!   order without gaps: a replayed, duplicated, reordered or dropped message, or one moved from
//!   another session, is an error naming the sender where the sender can be blamed.

use std::collections::BTreeMap;
use std::time::Duration;

use attestation::{IdentityKeys, Policy, verify};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use protocol::peer::{PEER_ENVELOPE_VERSION, PeerEnvelope, SESSION_ID_LEN};
use serde_bytes::ByteBuf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identity::SecretIdentity;

/// How old a peer's attestation document may be when it is admitted.
pub const PEER_DOCUMENT_MAX_AGE: Duration = Duration::from_secs(300);
const P2P_DST: &[u8] = b"cohort/peer-p2p/v1";

/// Why a peer or one of its envelopes was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer's attestation document failed verification.
    #[error("peer {node} failed attestation: {reason}")]
    Attestation {
        /// The peer's node index.
        node: u16,
        /// The verification failure.
        reason: String,
    },
    /// The envelope names a node that is not an admitted peer.
    #[error("envelope from unknown or unattested node {0}")]
    UnknownSender(u16),
    /// The envelope is not addressed to this enclave.
    #[error("envelope from {from} addressed to {to:?}, not to this node")]
    NotForMe {
        /// Sender.
        from: u16,
        /// Receiver named in the envelope.
        to: Option<u16>,
    },
    /// The envelope belongs to another session.
    #[error("envelope from {from} belongs to another session")]
    WrongSession {
        /// Sender.
        from: u16,
    },
    /// Unsupported envelope version.
    #[error("envelope from {from} has unsupported version {v}")]
    Version {
        /// Sender.
        from: u16,
        /// Its version.
        v: u8,
    },
    /// The signature does not verify under the sender's attested key.
    #[error("envelope from {from} has an invalid signature")]
    BadSignature {
        /// Claimed sender.
        from: u16,
    },
    /// The sender's counter is not the next one expected.
    #[error(
        "envelope from {from} out of sequence: expected {expected}, got {got} (replayed, duplicated, reordered or dropped)"
    )]
    OutOfSequence {
        /// Sender.
        from: u16,
        /// Next expected counter.
        expected: u32,
        /// Counter in the envelope.
        got: u32,
    },
    /// A point-to-point body does not decrypt.
    #[error("envelope from {from} does not decrypt")]
    Decrypt {
        /// Sender.
        from: u16,
    },
    /// A peer's key is unusable (low-order X25519 point).
    #[error("node {0} has an unusable encryption key")]
    BadKey(u16),
    /// The document's identity is already admitted at another index (or is this enclave's
    /// own): one enclave is never two nodes.
    #[error("node {node}'s identity is already node {other}'s")]
    DuplicateIdentity {
        /// The index the document was offered for.
        node: u16,
        /// The index that holds the identity.
        other: u16,
    },
}

impl PeerError {
    /// The node to blame, when the sender is authenticated (a bad signature blames no one:
    /// anyone can forge a claim to be someone else).
    pub fn culprit(&self) -> Option<u16> {
        match self {
            Self::OutOfSequence { from, .. }
            | Self::Decrypt { from }
            | Self::WrongSession { from }
            | Self::Version { from, .. } => Some(*from),
            _ => None,
        }
    }
}

/// The admitted peers: node index -> attested identity keys.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    peers: BTreeMap<u16, IdentityKeys>,
    /// The PCR0-2 each peer's document showed when it was admitted (not this enclave's own
    /// entry): a peer admitted under an image the cluster retires later is dropped then.
    images: BTreeMap<u16, BTreeMap<usize, Vec<u8>>>,
}

impl Roster {
    /// Verifies `document` (a peer's attestation) with `policy` at `now` and admits the peer as
    /// node `node`. `policy` carries the pinned root and this enclave's own PCRs.
    pub fn admit(
        &mut self,
        node: u16,
        document: &[u8],
        policy: &Policy,
        now: Duration,
    ) -> Result<IdentityKeys, PeerError> {
        let mut policy = policy.clone();
        policy.max_age = Some(PEER_DOCUMENT_MAX_AGE);
        policy.require_identity = true;
        policy.allow_debug = false;
        let doc = verify(document, &policy, now).map_err(|e| PeerError::Attestation {
            node,
            reason: e.to_string(),
        })?;
        let keys = doc.identity.ok_or(PeerError::Attestation {
            node,
            reason: "document binds no identity keys".into(),
        })?;
        if let Some(other) = self.holder(node, &keys) {
            return Err(PeerError::DuplicateIdentity { node, other });
        }
        self.peers.insert(node, keys);
        let image = doc.pcrs.into_iter().filter(|(i, _)| *i < 3).collect();
        self.images.insert(node, image);
        Ok(keys)
    }

    /// Drops every peer admitted under an image `accepted` refuses (issue 20: the image was
    /// retired); returns their indices. Sessions under way keep their own view.
    pub fn drop_images(
        &mut self,
        accepted: impl Fn(&BTreeMap<usize, Vec<u8>>) -> bool,
    ) -> Vec<u16> {
        let dropped: Vec<u16> = self
            .images
            .iter()
            .filter(|(_, image)| !accepted(image))
            .map(|(node, _)| *node)
            .collect();
        for node in &dropped {
            self.peers.remove(node);
            self.images.remove(node);
        }
        dropped
    }

    /// The index other than `node` that holds either of `keys` (this enclave's own included):
    /// one identity, one index, so that no one key pair speaks for two nodes.
    pub fn holder(&self, node: u16, keys: &IdentityKeys) -> Option<u16> {
        self.peers
            .iter()
            .find(|(i, k)| {
                **i != node && (k.signing == keys.signing || k.encryption == keys.encryption)
            })
            .map(|(i, _)| *i)
    }

    /// Admits `node` with known keys (this enclave itself).
    pub fn insert_self(&mut self, node: u16, keys: IdentityKeys) {
        self.peers.insert(node, keys);
        self.images.remove(&node);
    }

    /// The keys of an admitted node.
    pub fn get(&self, node: u16) -> Option<&IdentityKeys> {
        self.peers.get(&node)
    }

    /// The entries of `nodes` alone, as they are now: a session's own view of its peers (their
    /// keys; not the images they were admitted under).
    pub fn subset(&self, nodes: &[u16]) -> Self {
        Self {
            peers: nodes
                .iter()
                .filter_map(|n| self.peers.get(n).map(|k| (*n, *k)))
                .collect(),
            // A session's view needs the keys only (images are dropped from the node's own
            // roster, never from a view): nothing is copied per session.
            images: BTreeMap::new(),
        }
    }

    /// Admitted node indices.
    pub fn nodes(&self) -> impl Iterator<Item = u16> + '_ {
        self.peers.keys().copied()
    }
}

fn p2p_key(
    identity: &SecretIdentity,
    peer: &IdentityKeys,
    peer_node: u16,
    context: &[u8; 32],
    from: u16,
    to: u16,
) -> Result<Zeroizing<[u8; 32]>, PeerError> {
    let shared = identity
        .agree(&peer.encryption)
        .ok_or(PeerError::BadKey(peer_node))?;
    let hk = Hkdf::<Sha256>::new(Some(context), shared.as_slice());
    let mut info = P2P_DST.to_vec();
    info.extend_from_slice(&from.to_be_bytes());
    info.extend_from_slice(&to.to_be_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(&info, key.as_mut_slice())
        .map_err(|_| PeerError::BadKey(peer_node))?;
    Ok(key)
}

fn nonce(seq: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[8..].copy_from_slice(&seq.to_be_bytes());
    Nonce::from(n)
}

/// One session's channel state at one enclave: its counters in and out, per stream (a
/// sender's broadcasts; a sender's point-to-point messages to one receiver).
#[derive(Debug)]
pub struct Channel {
    session: [u8; SESSION_ID_LEN],
    /// The session's execution id: signed in every envelope, the point-to-point keys' salt.
    context: [u8; 32],
    me: u16,
    /// Next counter out, by receiver (`None`: broadcast stream).
    next_out: BTreeMap<Option<u16>, u32>,
    /// Next counter in, by (sender, whether the stream is the broadcast one).
    next_in: BTreeMap<(u16, bool), u32>,
}

impl Channel {
    /// A channel for `session` with execution id `context` at node `me`, accepting messages
    /// from `peers`.
    pub fn new(
        session: [u8; SESSION_ID_LEN],
        context: [u8; 32],
        me: u16,
        peers: impl IntoIterator<Item = u16>,
    ) -> Self {
        Self {
            session,
            context,
            me,
            next_out: BTreeMap::new(),
            next_in: peers
                .into_iter()
                .filter(|p| *p != me)
                .flat_map(|p| [((p, true), 0), ((p, false), 0)])
                .collect(),
        }
    }

    /// The session id.
    pub fn session(&self) -> [u8; SESSION_ID_LEN] {
        self.session
    }

    /// Wraps `body` for `to` (`None`: broadcast).
    pub fn seal(
        &mut self,
        identity: &SecretIdentity,
        roster: &Roster,
        to: Option<u16>,
        body: &[u8],
    ) -> Result<PeerEnvelope, PeerError> {
        let seq = self.next_out.get(&to).copied().unwrap_or(0);
        let header =
            PeerEnvelope::header_bytes(PEER_ENVELOPE_VERSION, &self.session, seq, self.me, to);
        let body = match to {
            None => body.to_vec(),
            Some(node) => {
                let peer = roster.get(node).ok_or(PeerError::UnknownSender(node))?;
                let key = p2p_key(identity, peer, node, &self.context, self.me, node)?;
                ChaCha20Poly1305::new(&Key::from(*key))
                    .encrypt(
                        &nonce(seq),
                        Payload {
                            msg: body,
                            aad: &header,
                        },
                    )
                    .map_err(|_| PeerError::Decrypt { from: self.me })?
            }
        };
        let mut envelope = PeerEnvelope {
            v: PEER_ENVELOPE_VERSION,
            session: ByteBuf::from(self.session.to_vec()),
            seq,
            from: self.me,
            to,
            body: ByteBuf::from(body),
            sig: ByteBuf::new(),
        };
        envelope.sig = ByteBuf::from(
            identity
                .sign(&envelope.signed_bytes(&self.context))
                .to_vec(),
        );
        self.next_out.insert(to, seq + 1);
        Ok(envelope)
    }

    /// Checks and opens an envelope; returns `(sender, was_broadcast, body)`.
    pub fn open(
        &mut self,
        identity: &SecretIdentity,
        roster: &Roster,
        envelope: &PeerEnvelope,
    ) -> Result<(u16, bool, Zeroizing<Vec<u8>>), PeerError> {
        let from = envelope.from;
        let stream = (from, envelope.to.is_none());
        let expected = *self
            .next_in
            .get(&stream)
            .ok_or(PeerError::UnknownSender(from))?;
        let peer = roster.get(from).ok_or(PeerError::UnknownSender(from))?;
        let vk = VerifyingKey::from_bytes(&peer.signing).map_err(|_| PeerError::BadKey(from))?;
        let sig =
            Signature::from_slice(&envelope.sig).map_err(|_| PeerError::BadSignature { from })?;
        vk.verify_strict(&envelope.signed_bytes(&self.context), &sig)
            .map_err(|_| PeerError::BadSignature { from })?;
        // From here on the sender is authenticated: what is wrong is its doing.
        if envelope.v != PEER_ENVELOPE_VERSION {
            return Err(PeerError::Version {
                from,
                v: envelope.v,
            });
        }
        if envelope.session.as_slice() != self.session {
            return Err(PeerError::WrongSession { from });
        }
        if envelope.to.is_some_and(|t| t != self.me) {
            return Err(PeerError::NotForMe {
                from,
                to: envelope.to,
            });
        }
        if envelope.seq != expected {
            return Err(PeerError::OutOfSequence {
                from,
                expected,
                got: envelope.seq,
            });
        }
        let body = match envelope.to {
            None => envelope.body.to_vec(),
            Some(_) => {
                let header = PeerEnvelope::header_bytes(
                    envelope.v,
                    &envelope.session,
                    envelope.seq,
                    from,
                    envelope.to,
                );
                let key = p2p_key(identity, peer, from, &self.context, from, self.me)?;
                ChaCha20Poly1305::new(&Key::from(*key))
                    .decrypt(
                        &nonce(envelope.seq),
                        Payload {
                            msg: &envelope.body,
                            aad: &header,
                        },
                    )
                    .map_err(|_| PeerError::Decrypt { from })?
            }
        };
        self.next_in.insert(stream, expected + 1);
        Ok((from, envelope.to.is_none(), Zeroizing::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Vec<SecretIdentity>, Roster) {
        let ids: Vec<SecretIdentity> = (0..3).map(|_| SecretIdentity::generate()).collect();
        let mut roster = Roster::default();
        for (i, id) in ids.iter().enumerate() {
            roster.insert_self(i as u16, id.public());
        }
        (ids, roster)
    }

    /// The channels of session `session` at nodes 0..3, all started as the same session (its
    /// execution id stands in as `session` itself).
    fn channels(session: [u8; 32]) -> Vec<Channel> {
        (0..3)
            .map(|i| Channel::new(session, session, i, 0..3))
            .collect()
    }

    #[test]
    fn a_session_started_as_something_else_at_the_sender_is_refused_blaming_no_one() {
        // A relay starts one session id with different execution ids at nodes 0 and 1 (another
        // kind, key, path, request, participant list or peer identity): each envelope fails
        // as a bad signature, broadcast and point to point alike; no one is blamed.
        let (ids, roster) = setup();
        let mut at0 = Channel::new([1; 32], [0xa0; 32], 0, 0..3);
        let mut at1 = Channel::new([1; 32], [0xa1; 32], 1, 0..3);
        for to in [None, Some(1)] {
            let e = at1
                .open(
                    &ids[1],
                    &roster,
                    &at0.seal(&ids[0], &roster, to, b"r1").unwrap(),
                )
                .unwrap_err();
            assert_eq!(e, PeerError::BadSignature { from: 0 });
            assert_eq!(e.culprit(), None);
        }
        // The same envelope opens where the session was started as at its sender.
        let mut same = Channel::new([1; 32], [0xa0; 32], 1, 0..3);
        let mut again = Channel::new([1; 32], [0xa0; 32], 0, 0..3);
        let p = again.seal(&ids[0], &roster, Some(1), b"r1").unwrap();
        assert_eq!(same.open(&ids[1], &roster, &p).unwrap().2.as_slice(), b"r1");
    }

    #[test]
    fn an_identity_is_held_at_one_index_only() {
        let (ids, roster) = setup();
        let one = ids[1].public();
        assert_eq!(roster.holder(1, &one), None, "its own index");
        assert_eq!(roster.holder(2, &one), Some(1));
        let fresh = SecretIdentity::generate().public();
        assert_eq!(roster.holder(2, &fresh), None);
        // Either key alone is the identity.
        let signing_only = IdentityKeys {
            signing: one.signing,
            encryption: fresh.encryption,
        };
        let encryption_only = IdentityKeys {
            signing: fresh.signing,
            encryption: one.encryption,
        };
        assert_eq!(roster.holder(2, &signing_only), Some(1));
        assert_eq!(roster.holder(2, &encryption_only), Some(1));
    }

    #[test]
    fn a_subset_keeps_the_keys_it_was_taken_with() {
        let (ids, mut roster) = setup();
        let view = roster.subset(&[0, 1, 2]);
        let newcomer = SecretIdentity::generate();
        roster.insert_self(1, newcomer.public()); // node 1 admitted again, with other keys
        let mut ch = channels([1; 32]);
        let forged = Channel::new([1; 32], [1; 32], 1, 0..3)
            .seal(&newcomer, &roster, Some(0), b"x")
            .unwrap();
        assert!(matches!(
            ch[0].open(&ids[0], &view, &forged),
            Err(PeerError::BadSignature { from: 1 })
        ));
        let real = ch[1].seal(&ids[1], &view, Some(0), b"y").unwrap();
        assert_eq!(
            ch[0].open(&ids[0], &view, &real).unwrap().2.as_slice(),
            b"y"
        );
        assert_eq!(
            roster.subset(&[0, 2]).nodes().collect::<Vec<_>>(),
            vec![0, 2]
        );
    }

    #[test]
    fn broadcast_and_p2p_round_trip() {
        let (ids, roster) = setup();
        let mut ch = channels([1; 32]);
        let b = ch[0].seal(&ids[0], &roster, None, b"hello all").unwrap();
        assert_eq!(
            ch[1].open(&ids[1], &roster, &b).unwrap(),
            (0, true, Zeroizing::new(b"hello all".to_vec()))
        );
        assert_eq!(
            ch[2].open(&ids[2], &roster, &b).unwrap(),
            (0, true, Zeroizing::new(b"hello all".to_vec()))
        );
        let p = ch[0]
            .seal(&ids[0], &roster, Some(2), b"secret for 2")
            .unwrap();
        assert!(
            !p.body.windows(6).any(|w| w == b"secret"),
            "p2p bodies are encrypted"
        );
        assert_eq!(
            ch[2].open(&ids[2], &roster, &p).unwrap(),
            (0, false, Zeroizing::new(b"secret for 2".to_vec()))
        );
    }

    #[test]
    fn relay_tampering_is_detected() {
        let (ids, roster) = setup();
        let mut ch = channels([1; 32]);
        let m0 = ch[0].seal(&ids[0], &roster, Some(1), b"m0").unwrap();
        let m1 = ch[0].seal(&ids[0], &roster, Some(1), b"m1").unwrap();

        // Altered body or header: the signature fails; no one is blamed.
        let mut altered = m0.clone();
        altered.body[0] ^= 1;
        let e = ch[1].open(&ids[1], &roster, &altered).unwrap_err();
        assert_eq!(e, PeerError::BadSignature { from: 0 });
        assert_eq!(e.culprit(), None);
        let mut moved = m0.clone();
        moved.to = Some(2);
        assert!(matches!(
            ch[2].open(&ids[2], &roster, &moved),
            Err(PeerError::BadSignature { .. })
        ));

        // Reordered: m1 before m0.
        assert!(matches!(
            ch[1].open(&ids[1], &roster, &m1),
            Err(PeerError::OutOfSequence {
                from: 0,
                expected: 0,
                got: 1
            })
        ));
        ch[1].open(&ids[1], &roster, &m0).unwrap();
        // Duplicated / replayed.
        assert!(matches!(
            ch[1].open(&ids[1], &roster, &m0),
            Err(PeerError::OutOfSequence {
                expected: 1,
                got: 0,
                ..
            })
        ));
        ch[1].open(&ids[1], &roster, &m1).unwrap();

        // Delivered to the wrong receiver, unchanged: not for it.
        let m2 = ch[0].seal(&ids[0], &roster, Some(1), b"m2").unwrap();
        assert!(matches!(
            ch[2].open(&ids[2], &roster, &m2),
            Err(PeerError::NotForMe { .. })
        ));

        // Moved to another session: signed under another execution id.
        let mut other = channels([2; 32]);
        assert!(matches!(
            other[1].open(&ids[1], &roster, &m2),
            Err(PeerError::BadSignature { from: 0 })
        ));
        // Signed for this execution id but naming another session: the sender's doing.
        let mut renamed = Channel::new([2; 32], [1; 32], 0, 0..3);
        let m = renamed.seal(&ids[0], &roster, None, b"x").unwrap();
        assert_eq!(
            ch[1].open(&ids[1], &roster, &m),
            Err(PeerError::WrongSession { from: 0 })
        );

        // Forged by a node outside the roster.
        let stranger = SecretIdentity::generate();
        let mut outsider = Channel::new([1; 32], [1; 32], 7, 0..3);
        let forged = outsider.seal(&stranger, &roster, None, b"x").unwrap();
        assert_eq!(
            ch[1].open(&ids[1], &roster, &forged),
            Err(PeerError::UnknownSender(7))
        );
        // Claiming to be node 0 with another key.
        let mut imposter = Channel::new([1; 32], [1; 32], 0, 0..3);
        let mut forged = imposter.seal(&stranger, &roster, None, b"x").unwrap();
        forged.seq = 2;
        assert!(matches!(
            ch[1].open(&ids[1], &roster, &forged),
            Err(PeerError::BadSignature { .. })
        ));
    }
}
