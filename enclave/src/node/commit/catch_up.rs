//! The catch-up of a roster change's commit (issue 20, helper-67 finding 1): a node of the new
//! roster that vouched for its key set, and to which a withdrawal, an admin change or an image
//! change came before its commit while another node had committed, no longer holds the change
//! as pending and could never commit it; the nodes that committed would be stranded on a
//! roster the rest never reach. Shown the change as committed, with every node's statement,
//! it commits it as they did.
//!
//! Every node of the new roster vouched for one key set before any node could commit, so a
//! change shown with every node's statement *is* committed (or can be, by any relay holding
//! them): a late withdrawal cannot undo that, and this node reaching the same roster is the
//! only way the cluster stays whole. What it commits is checked as a restore checks a
//! committed change ([`GenesisState::apply_committed`]): the roster version it replaces is
//! the one in force here, its rules, the approvals of the admins of the version it names,
//! every statement under the chain of that moment, which must be the chain this node vouched
//! under, over the set this node vouched for and still holds, and one node of the new roster's
//! word that it committed (so a withdrawal that reached every node before any commit ends the
//! change, whoever holds the statements). A node that did not vouch for the change, or was
//! prepared for another change since on the word of every node of the roster in force (proof
//! that none committed it: the set is then dropped), refuses (`not_vouched`).

use std::collections::BTreeSet;

use protocol::roster::ChangeRoster;
use protocol::roster::commit::{
    CatchUp, CommitRoster, CommittedRoster, MovedKey, SetStatement, roster_set_message,
};
use tracing::info;

use super::super::admins::hex;
use super::super::genesis::GenesisState;
use super::super::membership::MembershipError;
use super::super::{Node, NodeError, bad};
use super::{Committed, check_keys_held};
use crate::identity::SecretIdentity;

impl Node {
    /// Commits the change `up` names, which this node vouched for and no longer holds as
    /// pending, on `commit`'s statements ([`CommitRoster::catch_up`]).
    pub(super) fn catch_up(
        &mut self,
        identity: &SecretIdentity,
        commit: &CommitRoster,
        up: &CatchUp,
    ) -> Result<Committed, NodeError> {
        let hash = up.change.request.hash();
        if commit.change.as_slice() != hash {
            return Err(bad(format!(
                "the catch-up's change {} is not the change named, {}",
                hex(&hash),
                hex(&commit.change)
            )));
        }
        // Nothing is pruned before the checks: a refusal changes nothing (helper-68, finding
        // 7); the set is read under the vouched frame, and the commit keeps that set alone.
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        // Another change pending here and not prepared (a node is prepared for one only when
        // its vouched set is dropped) does not stop it: the commit replaces it.
        let not_vouched = || MembershipError::NotVouched { change: hex(&hash) };
        let (vouched, vouched_chain) = g.vouched_for(&hash).ok_or_else(not_vouched)?;
        let frame = g.vouched_frame().ok_or_else(not_vouched)?;
        let (moved, digest) = self.set_under(&frame)?;
        if digest != vouched {
            return Err(MembershipError::VouchedOther {
                vouched: hex(&vouched),
                holds: hex(&digest),
            }
            .into());
        }
        let version = up.change.request.new_version();
        if frame.1 != version {
            return Err(not_vouched().into());
        }
        // A node that stays, of the roster in force here and the new one, committed it: it
        // then refused any withdrawal (`stale_roster`), so a withdrawal or admin change that
        // every node of the roster in force took ends the change, also where a joining node
        // alone committed it (helper-68, finding 1).
        // One such word is enough while this node gave no word on another change; once it
        // did (that word may have let the others be prepared for that change), a threshold of
        // them, so that an honest one, which then refused that change, is among them: one
        // parent's rollback or one compromised enclave forges one (helper-70, finding 1). A
        // joining node needs that threshold always, as at its commit (helper-70, finding 3).
        let need = if g.renounced() || g.joining() {
            self.threshold_of(&up.change.request, &moved)
        } else {
            1
        };
        check_committed(g, &up.change.request, &commit.committed, need)?;
        // Every node's word, over this node's set, under the chain it vouched under: refused by
        // name as at a commit (`missing_statement`, `keys_differ`, `unproven_statement`, ...).
        check_keys_held(
            &cluster,
            &up.change.request,
            &vouched_chain,
            &digest,
            &commit.statements,
        )?;
        // Then as a restore will: the change's rules and approvals, and the statements again
        // under the chain recomputed from the image count named (a wrong count proves none).
        let mut next = g.clone();
        let aux = self.aux_digest_under(Some(frame));
        let chain = next.apply_committed(&CommittedRoster {
            change: up.change.clone(),
            images: up.images,
            statements: commit.statements.clone(),
            keys: moved.clone(),
            aux: aux.clone(),
        })?;
        if chain != vouched_chain {
            return Err(bad(format!(
                "the catch-up's chain {} is not the one this node vouched under, {}",
                hex(&chain),
                hex(&vouched_chain)
            )));
        }
        let statement = self.keys_held_statement(&cluster, (version, &hash), &chain, &digest)?;
        let (sealed, set_statement) = self.install(identity, next, &moved, &hash)?;
        info!(version, change = %hex(&hash), "a roster change committed elsewhere, committed here late");
        Ok(Committed {
            version,
            keys: digest,
            count: u32::try_from(moved.len()).unwrap_or(u32::MAX),
            statement,
            set_statement: Some(set_statement),
            sealed: Some(sealed),
            set: moved,
            aux,
            left: false,
        })
    }
}

impl Node {
    /// How many committed words of nodes that stay a joining node, or a node that renounced,
    /// needs for `change`: the highest threshold of the keys of `moved` held incoming here
    /// (every key id of `moved` is one of them: [`Node::set_under`]); with no key, two, or as
    /// many as stay if fewer (attacker review helper-71, finding 3: one rolled-back word would
    /// otherwise make a node that joined operational on a change the members abandoned).
    pub(super) fn threshold_of(&self, change: &ChangeRoster, moved: &[MovedKey]) -> usize {
        let highest = moved
            .iter()
            .filter_map(|k| self.incoming.get(&k.key_id))
            .map(|i| usize::from(i.on.key.threshold))
            .max();
        self.words_needed_for(change, highest)
    }

    /// How many committed words of nodes that stay `change` needs here: `highest`, the
    /// highest threshold of the keys concerned, or, with no key, two (as many as stay if
    /// fewer).
    pub(super) fn words_needed_for(&self, change: &ChangeRoster, highest: Option<usize>) -> usize {
        highest.unwrap_or_else(|| {
            let in_force = self
                .genesis
                .as_ref()
                .and_then(|g| g.rosters().last().copied())
                .unwrap_or_default();
            let kept = change
                .roster
                .iter()
                .filter(|e| in_force.iter().any(|f| f.node_key == e.node_key))
                .count();
            kept.min(2)
        })
    }
}

/// Checks `words`, each the word of a node that stays that it committed `change`
/// ([`roster_set_message`]): listed in the roster in force in `g` and in the change's, once
/// (`stranger_statement`), its node key's signature (`unproven_statement`), and at least `need`
/// of them (`too_few_committed`).
pub(super) fn check_committed(
    g: &GenesisState,
    change: &ChangeRoster,
    words: &[SetStatement],
    need: usize,
) -> Result<(), MembershipError> {
    let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
    let (version, hash) = (change.new_version(), change.hash());
    let in_force = g.rosters().last().copied().unwrap_or_default();
    let mut committed = BTreeSet::new();
    for by in words {
        let entry = change
            .roster
            .iter()
            .find(|e| e.node_key == by.node_key)
            .filter(|_| in_force.iter().any(|e| e.node_key == by.node_key))
            .filter(|_| !committed.contains(by.node_key.as_slice()))
            .ok_or_else(|| MembershipError::StrangerStatement {
                node_key: hex(&by.node_key),
            })?;
        let key = <[u8; 32]>::try_from(by.node_key.as_slice()).unwrap_or_default();
        if !entry.signed(
            &roster_set_message(&cluster, &key, version, &hash),
            &by.statement,
        ) {
            return Err(MembershipError::UnprovenStatement {
                node_key: hex(&by.node_key),
            });
        }
        committed.insert(by.node_key.as_slice());
    }
    if committed.len() < need {
        return Err(MembershipError::TooFewCommitted {
            have: committed.len(),
            need,
        });
    }
    Ok(())
}
