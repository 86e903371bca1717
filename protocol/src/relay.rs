//! Moving a session's envelopes between enclaves, without I/O: whoever relays (the
//! coordinator, a test driver) feeds each enclave's [`SessionUpdate`] in and asks for the next
//! batch to deliver. Envelopes from one sender reach each receiver in the order they were sent.
//! The relay is untrusted: enclaves check everything it hands them.

use std::collections::{BTreeMap, VecDeque};

use crate::peer::PeerEnvelope;
use crate::session::{Outcome, SessionUpdate};

/// Routing state of one session.
#[derive(Debug)]
pub struct Relay {
    participants: Vec<u16>,
    queues: BTreeMap<u16, VecDeque<PeerEnvelope>>,
    outcomes: BTreeMap<u16, Outcome>,
}

impl Relay {
    /// A relay for `participants` (node indices).
    pub fn new(participants: &[u16]) -> Self {
        Self {
            participants: participants.to_vec(),
            queues: participants.iter().map(|p| (*p, VecDeque::new())).collect(),
            outcomes: BTreeMap::new(),
        }
    }

    /// Takes in what node `from` answered: routes its envelopes, records its outcome.
    pub fn absorb(&mut self, from: u16, update: SessionUpdate) {
        for envelope in update.outgoing {
            match envelope.to {
                Some(to) => {
                    if let Some(q) = self.queues.get_mut(&to) {
                        q.push_back(envelope);
                    }
                }
                None => {
                    for p in &self.participants {
                        if *p != from
                            && let Some(q) = self.queues.get_mut(p)
                        {
                            q.push_back(envelope.clone());
                        }
                    }
                }
            }
        }
        if let Some(outcome) = update.outcome {
            self.outcomes.insert(from, outcome);
        }
    }

    /// The next node with envelopes waiting (and still running), with all of them.
    pub fn next_delivery(&mut self) -> Option<(u16, Vec<PeerEnvelope>)> {
        let outcomes = &self.outcomes;
        let (node, queue) = self
            .queues
            .iter_mut()
            .find(|(n, q)| !q.is_empty() && !outcomes.contains_key(n))?;
        Some((*node, queue.drain(..).collect()))
    }

    /// Whether every participant has an outcome.
    pub fn finished(&self) -> bool {
        self.outcomes.len() == self.participants.len()
    }

    /// Outcomes so far, by node.
    pub fn outcomes(&self) -> &BTreeMap<u16, Outcome> {
        &self.outcomes
    }

    /// Records an outcome for a node that failed outside the session (unreachable, refused).
    pub fn fail(&mut self, node: u16, outcome: Outcome) {
        self.outcomes.insert(node, outcome);
    }
}
