//! Stepping of the protocol state machines, written once: cggmp21's round-based machines
//! ([`RoundMachine`]: check, decode and queue incoming payloads, encode outgoing ones) and, for
//! the hand-written FROST machines, the rule that an abort closes the machine ([`Closing`]).

use std::collections::{HashSet, VecDeque};
use std::fmt;

use cggmp21::round_based::state_machine::{self, ProceedResult, StateMachine};
use cggmp21::round_based::{Incoming, MessageDestination, MessageType, Outgoing, ProtocolMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};

/// Largest accepted protocol payload, in bytes. The largest honest message (an auxiliary-info
/// round with Paillier-Blum and factoring proofs) is far below this.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;

type Machine<M, T> = Box<dyn StateMachine<Output = Result<T, MpcError>, Msg = M>>;

/// One party's run of a round-based (cggmp21) protocol whose messages are `M` and whose output
/// is `T`: validates and decodes incoming payloads, queues them until the protocol asks for one,
/// and encodes what it sends. Not `Send` (round-based shares state through an `Rc`).
pub struct RoundMachine<M, T> {
    /// Name of the protocol, for `Debug`.
    name: &'static str,
    machine: Machine<M, T>,
    me: PartyIndex,
    n: u16,
    /// The delivery type of each round of this protocol (`None`: not a round of it).
    msg_type: fn(&M) -> Option<MessageType>,
    seen: HashSet<(u16, PartyIndex)>,
    queue: VecDeque<Incoming<M>>,
    next_id: u64,
    finished: bool,
}

impl<M, T> RoundMachine<M, T>
where
    M: Serialize + DeserializeOwned + ProtocolMessage + 'static,
    T: 'static,
{
    /// Starts party `me` of `n` running `protocol` (cggmp21's async protocol, given the
    /// round-based party it talks through); returns the machine and its first messages.
    pub(super) fn launch<F>(
        name: &'static str,
        me: PartyIndex,
        n: u16,
        msg_type: fn(&M) -> Option<MessageType>,
        protocol: impl FnOnce(state_machine::MpcParty<M>) -> F + 'static,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError>
    where
        F: Future<Output = Result<T, MpcError>> + 'static,
    {
        let mut driver = Self {
            name,
            machine: Box::new(state_machine::wrap_protocol(protocol)),
            me,
            n,
            msg_type,
            seen: HashSet::new(),
            queue: VecDeque::new(),
            next_id: 0,
            finished: false,
        };
        match driver.drive()? {
            Step::Continue(out) => Ok((driver, out)),
            Step::Done(..) => Err(MpcError::Internal(
                "protocol finished without receiving a message".into(),
            )),
        }
    }

    /// Feeds one message from a peer.
    pub fn handle(&mut self, msg: IncomingMessage) -> Result<Step<T>, MpcError> {
        if self.finished {
            return Err(MpcError::BadInput("protocol already finished".into()));
        }
        let incoming = self.decode(msg)?;
        self.queue.push_back(incoming);
        self.drive()
    }

    fn decode(&mut self, msg: IncomingMessage) -> Result<Incoming<M>, MpcError> {
        let from = msg.from;
        let bad = |reason: &str| MpcError::BadMessage {
            from,
            reason: reason.into(),
        };
        if from >= self.n {
            return Err(bad("sender index out of range"));
        }
        if from == self.me {
            return Err(bad("message claims to come from this party"));
        }
        if msg.payload.len() > MAX_PAYLOAD_LEN {
            return Err(bad("payload too large"));
        }
        let mut rest = msg.payload.as_slice();
        let decoded: M =
            ciborium::from_reader(&mut rest).map_err(|_| bad("payload does not decode"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the message"));
        }
        let expected = (self.msg_type)(&decoded)
            .ok_or_else(|| bad("message of a round this protocol does not have"))?;
        let actual = if msg.broadcast {
            MessageType::Broadcast
        } else {
            MessageType::P2P
        };
        if expected != actual {
            return Err(bad("broadcast/p2p delivery does not match the round"));
        }
        if !self.seen.insert((decoded.round(), from)) {
            return Err(bad("second message for the same round"));
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(Incoming {
            id,
            sender: from,
            msg_type: actual,
            msg: decoded,
        })
    }

    fn drive(&mut self) -> Result<Step<T>, MpcError> {
        let mut out = Vec::new();
        loop {
            match self.machine.proceed() {
                ProceedResult::SendMsg(msg) => out.push(encode_outgoing(msg)?),
                ProceedResult::NeedsOneMoreMessage => match self.queue.pop_front() {
                    Some(msg) => {
                        if self.machine.received_msg(msg).is_err() {
                            self.finished = true;
                            return Err(MpcError::Internal(
                                "state machine refused a message".into(),
                            ));
                        }
                    }
                    None => return Ok(Step::Continue(out)),
                },
                ProceedResult::Yielded => {}
                ProceedResult::Output(result) => {
                    self.finished = true;
                    return result.map(|output| Step::Done(output, out));
                }
                ProceedResult::Error(e) => {
                    self.finished = true;
                    return Err(MpcError::Internal(format!("state machine: {e}")));
                }
            }
        }
    }
}

impl<M, T> fmt::Debug for RoundMachine<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_machine(
            f,
            self.name,
            &[
                ("i", &self.me),
                ("n", &self.n),
                ("queued", &self.queue.len()),
                ("finished", &self.finished),
            ],
        )
    }
}

fn encode_outgoing<M: Serialize>(msg: Outgoing<M>) -> Result<OutgoingMessage, MpcError> {
    let to = match msg.recipient {
        MessageDestination::AllParties => None,
        MessageDestination::OneParty(j) => Some(j),
    };
    let payload = super::encode_secret(&msg.msg)
        .map_err(|e| MpcError::Internal(format!("encoding a protocol message: {e}")))?;
    Ok(OutgoingMessage { to, payload })
}

/// A hand-written protocol machine (FROST) whose abort or internal error is terminal: after one,
/// [`handle_closing`] closes it, and every further message is refused.
pub(super) trait Closing {
    /// What the protocol outputs.
    type Output;
    /// Feeds one message, without the closing rule.
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Self::Output>, MpcError>;
    /// Drops the secret state and refuses every further message.
    fn close(&mut self);
}

/// Feeds one message to `machine`, closing it on an abort or an internal error. A refused
/// message ([`MpcError::BadMessage`]) leaves the machine usable.
pub(super) fn handle_closing<C: Closing>(
    machine: &mut C,
    msg: IncomingMessage,
) -> Result<Step<C::Output>, MpcError> {
    let result = machine.step(msg);
    if matches!(
        result,
        Err(MpcError::Aborted { .. } | MpcError::Internal(_))
    ) {
        machine.close();
    }
    result
}

/// Writes a machine's `Debug` as a struct of the given public fields (never its secret state).
pub(super) fn debug_machine(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    fields: &[(&str, &dyn fmt::Debug)],
) -> fmt::Result {
    let mut out = f.debug_struct(name);
    for (field, value) in fields {
        out.field(field, value);
    }
    out.finish_non_exhaustive()
}
