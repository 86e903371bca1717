//! Threshold protocols driven as state machines fed by relayed messages.
//!
//! Every protocol here (ECDSA keygen, auxiliary info, presignature, signing; EdDSA DKG and
//! signing) has the same shape, so the session layer and the peer channels handle them alike:
//!
//! * `start(..) -> (machine, Vec<OutgoingMessage>)` creates the local party and its first messages;
//! * `handle(IncomingMessage) -> Step<Output>` feeds one message received from a peer and returns
//!   the messages to send next, or the output once the protocol finished.
//!
//! Payloads are opaque bytes (CBOR of the protocol crate's message type); the peer layer wraps
//! them in authenticated envelopes bound to session, round, sender and receiver. Local secret
//! state never leaves the machine and never reaches `Debug`.

mod blame;
mod driver;
pub mod ecdsa;
pub mod eddsa;
mod envelope;
#[cfg(test)]
mod test_router;

/// A party's index within one protocol run (0-based, as the protocol crates number parties).
pub type PartyIndex = u16;

/// Serializes `value` as CBOR into a buffer allocated once at its exact size and wiped when
/// dropped: no reallocation leaves a copy of a secret-bearing message behind.
pub fn encode_secret<T: serde::Serialize>(
    value: &T,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ciborium::ser::Error<std::io::Error>> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    ciborium::into_writer(value, &mut count)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(count.0));
    ciborium::into_writer(value, &mut *out)?;
    Ok(out)
}

/// What a holder of a share knows of its key, as a dealer of a resharing needs it
/// (`docs/resharing.md`): its secret share, every party's public share (party `i` at
/// evaluation point `i + 1`) and the key.
pub struct Held<E: reshare::generic_ec::Curve> {
    /// This party's share (zeroized on drop).
    pub secret: reshare::generic_ec::SecretScalar<E>,
    /// Every party's public share, by party index.
    pub public_shares: Vec<reshare::generic_ec::Point<E>>,
    /// The key.
    pub public_key: reshare::generic_ec::Point<E>,
}

/// A message to send to one peer (`to = Some(i)`) or to all peers (`to = None`, broadcast).
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Receiver, or `None` for a broadcast.
    pub to: Option<PartyIndex>,
    /// Opaque protocol bytes (a point-to-point one may carry a secret share of a key
    /// generation or a nonce: zeroized when dropped).
    pub payload: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("to", &self.to)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// A message received from a peer.
#[derive(Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// Sender.
    pub from: PartyIndex,
    /// Whether it was sent as a broadcast.
    pub broadcast: bool,
    /// Opaque protocol bytes, as decrypted (zeroized when dropped, like outgoing ones).
    pub payload: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IncomingMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingMessage")
            .field("from", &self.from)
            .field("broadcast", &self.broadcast)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// What feeding a message produced.
pub enum Step<T> {
    /// Not finished: send these (possibly none) and wait for more messages.
    Continue(Vec<OutgoingMessage>),
    /// Finished with this output; send these final messages too (possibly none).
    Done(T, Vec<OutgoingMessage>),
}

/// Errors of the threshold protocols. Messages are lowercase and carry no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpcError {
    /// A peer's message does not decode or does not fit the protocol's current round.
    #[error("bad message from party {from}: {reason}")]
    BadMessage {
        /// The sender.
        from: PartyIndex,
        /// What is wrong.
        reason: String,
    },
    /// The protocol aborted; `culprits` are the parties it blames (possibly empty).
    #[error("protocol aborted (culprits {culprits:?}): {reason}")]
    Aborted {
        /// Blamed parties.
        culprits: Vec<PartyIndex>,
        /// Why.
        reason: String,
    },
    /// The caller's input is invalid (bad threshold, index out of range, bad derivation path).
    #[error("invalid input: {0}")]
    BadInput(String),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}
