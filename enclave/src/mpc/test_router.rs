//! The in-process multi-party message router of the tests of both schemes: delivers every
//! message (FIFO or in a seeded random order) and lets a hook observe or tamper with each one.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step, ecdsa, eddsa};

/// A protocol machine as the router drives it.
pub(crate) trait Machine {
    /// What the protocol outputs.
    type Output;
    /// Feeds one message.
    fn feed(&mut self, msg: IncomingMessage) -> Result<Step<Self::Output>, MpcError>;
}

macro_rules! impl_machine {
    ($($m:ty => $o:ty),+ $(,)?) => {$(
        impl Machine for $m {
            type Output = $o;
            fn feed(&mut self, msg: IncomingMessage) -> Result<Step<$o>, MpcError> {
                self.handle(msg)
            }
        }
    )+};
}
impl_machine! {
    ecdsa::AuxInfoGen => ecdsa::SecretAuxInfo,
    ecdsa::Keygen => ecdsa::SecretIncompleteKeyShare,
    ecdsa::Presign => ecdsa::SecretPresignature,
    ecdsa::Sign => ecdsa::Signature,
    eddsa::Dkg => eddsa::SecretEddsaShare,
    eddsa::Sign => [u8; eddsa::SIGNATURE_LEN],
}

/// One message in flight from `from` to `to`.
pub(crate) struct Delivery {
    pub(crate) from: PartyIndex,
    pub(crate) to: PartyIndex,
    pub(crate) broadcast: bool,
    pub(crate) payload: zeroize::Zeroizing<Vec<u8>>,
}

/// The order messages are delivered in.
#[derive(Clone, Copy)]
pub(crate) enum Order {
    /// First sent, first delivered.
    Fifo,
    /// A random order from this seed (exercises the machines' buffering of early messages).
    Seeded(u64),
}

fn enqueue(
    queue: &mut Vec<Delivery>,
    parties: &[PartyIndex],
    from: PartyIndex,
    msgs: Vec<OutgoingMessage>,
) {
    for msg in msgs {
        match msg.to {
            None => {
                for &to in parties.iter().filter(|p| **p != from) {
                    queue.push(Delivery {
                        from,
                        to,
                        broadcast: true,
                        payload: msg.payload.clone(),
                    });
                }
            }
            Some(to) => queue.push(Delivery {
                from,
                to,
                broadcast: false,
                payload: msg.payload,
            }),
        }
    }
}

/// Delivers every message in `order`, calling `hook` on each one first (also on those to a
/// party that already stopped, which are then dropped), and returns each party's outcome
/// (first error or output). Parties that stall have no entry.
pub(crate) fn route<M: Machine>(
    started: Vec<(PartyIndex, M, Vec<OutgoingMessage>)>,
    order: Order,
    mut hook: impl FnMut(&mut Delivery),
) -> BTreeMap<PartyIndex, Result<M::Output, MpcError>> {
    let parties: Vec<PartyIndex> = started.iter().map(|(p, _, _)| *p).collect();
    let mut machines = BTreeMap::new();
    let mut queue = Vec::new();
    for (party, machine, out) in started {
        enqueue(&mut queue, &parties, party, out);
        machines.insert(party, machine);
    }
    let mut rng = match order {
        Order::Fifo => None,
        Order::Seeded(seed) => Some(StdRng::seed_from_u64(seed)),
    };
    let mut results = BTreeMap::new();
    while !queue.is_empty() {
        let mut delivery = match rng.as_mut() {
            None => queue.remove(0),
            Some(rng) => queue.swap_remove(rng.gen_range(0..queue.len())),
        };
        hook(&mut delivery);
        if results.contains_key(&delivery.to) {
            continue;
        }
        let machine = machines.get_mut(&delivery.to).expect("known receiver");
        let step = machine.feed(IncomingMessage {
            from: delivery.from,
            broadcast: delivery.broadcast,
            payload: delivery.payload,
        });
        match step {
            Ok(Step::Continue(out)) => enqueue(&mut queue, &parties, delivery.to, out),
            Ok(Step::Done(output, out)) => {
                results.insert(delivery.to, Ok(output));
                enqueue(&mut queue, &parties, delivery.to, out);
            }
            Err(e) => {
                results.insert(delivery.to, Err(e));
            }
        }
    }
    results
}
