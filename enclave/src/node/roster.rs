//! Roster changes (issue 20, ADR 0022, `docs/lifecycle.md`): adding, replacing and removing
//! nodes. Built here: the first step, the proposal. Each node of the current roster checks an
//! admin-approved change against its chain of rosters, its keys' thresholds and its pending
//! generations, seals it with the genesis as pending and signs that it did; the current roster
//! stays in force. The admins withdraw a proposal by proposing the roster in force (with nothing
//! pending, the same fences off every change approved before it); an admin change drops it.
//! Joining, resharing to the new roster and the commit are planned.

use protocol::genesis::RosterEntry;
use protocol::policy::Approved;
use protocol::roster::{
    ChangeRoster, RosterDiff, RosterError, proposal_order, roster_proposed_message,
};
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use tracing::info;

use super::admins::hex;
use super::genesis::GenesisState;
use super::membership::MembershipError;
use super::{Node, NodeError};

impl GenesisState {
    /// Every roster version of the cluster, in order: the genesis' and each committed
    /// change's; the last is current.
    pub(super) fn rosters(&self) -> Vec<&[RosterEntry]> {
        if self.pinned.is_none() {
            return Vec::new();
        }
        std::iter::once(self.sealed.genesis_request().request.roster.as_slice())
            .chain(
                self.sealed
                    .rosters
                    .iter()
                    .map(|c| c.change.request.roster.as_slice()),
            )
            .collect()
    }

    /// The current roster version (0: the genesis').
    pub(super) fn roster_version(&self) -> u32 {
        u32::try_from(self.rosters().len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Checks a roster change against this cluster: its cluster, the roster version it
    /// replaces (this node's current one), its approvals by the admins in force naming their
    /// version (always: a proposal outlives no admin change, which drops it), and what it does
    /// ([`ChangeRoster::diff`]) against every roster version and `max_threshold`, the highest
    /// threshold of a key held here. A change back to the roster in force is a withdrawal
    /// (`None`). Not its window.
    pub(super) fn check_roster_change(
        &self,
        change: &Approved<ChangeRoster>,
        max_threshold: u16,
    ) -> Result<Option<RosterDiff>, NodeError> {
        let r = &change.request;
        self.check_names(r)?;
        let diff = match r.diff(&self.rosters(), max_threshold) {
            Ok(diff) => Some(diff),
            Err(RosterError::Unchanged) => None,
            Err(e) => return Err(MembershipError::RosterChange(e).into()),
        };
        self.check_admins(r, &change.approvals, r.admins)?;
        Ok(diff)
    }

    /// A roster change names this cluster and, as the version it replaces, the roster version
    /// in force here.
    pub(super) fn check_names(&self, r: &ChangeRoster) -> Result<(), NodeError> {
        let ours = self.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        if r.cluster != ours {
            return Err(MembershipError::OtherCluster {
                named: r.cluster.to_string(),
                ours: ours.to_string(),
            }
            .into());
        }
        let current = self.roster_version();
        if r.version != current {
            return Err(MembershipError::StaleRoster {
                named: r.version,
                current,
            }
            .into());
        }
        Ok(())
    }

    /// The roster change pending here, if any: a withdrawal (the roster in force proposed
    /// again) leaves none.
    pub(super) fn pending_roster(&self) -> Option<&Approved<ChangeRoster>> {
        let current = self.rosters().last().copied();
        self.sealed
            .proposed_roster
            .as_ref()
            .filter(|p| Some(p.request.roster.as_slice()) != current)
    }
}

/// Whether `change` comes after `pending` in the one order every node applies
/// ([`proposal_order`]) against the roster in force, `current`.
fn supersedes(change: &ChangeRoster, pending: &ChangeRoster, current: &[RosterEntry]) -> bool {
    proposal_order(change, current) > proposal_order(pending, current)
}

impl Node {
    /// Proposes a roster change here (`SessionKind::ProposeRoster`): approved by the admins in
    /// force, replacing this node's current roster version, a change a roster may undergo
    /// with the keys held here, no key with a pending generation; within its window, or shown
    /// another current roster node's statement that it proposed it. The roster in force
    /// proposed again withdraws a pending change, and with nothing pending is sealed as a
    /// fence; neither waits for a resharing. A pending change (or withdrawal) is replaced
    /// only by another of the same version that comes after it (created later; at the same
    /// second, a withdrawal after a change, then the higher request hash), so a relay cannot
    /// bring back a change the admins replaced, and nodes shown both end on the same one.
    /// Sealed and signed before anything changes; a change proposed already is answered
    /// again.
    pub(super) fn propose_roster(
        &mut self,
        request: &Approved<ChangeRoster>,
        catch_up: Option<&(u16, ByteBuf)>,
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let r = &request.request;
        let hash = r.hash();
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let version = r.new_version();
        if let Some(pending) = &g.sealed.proposed_roster {
            if pending.request.hash() == hash {
                return self.roster_proposed_answer(version, &hash);
            }
            let current = g.rosters().last().copied().unwrap_or_default();
            if pending.request.version == r.version && !supersedes(r, &pending.request, current) {
                return Err(MembershipError::RosterChangePending {
                    version: pending.request.version,
                    pending: hex(&pending.request.hash()),
                    created: pending.request.created,
                }
                .into());
            }
        }
        let max_threshold = self.keys.values().map(|k| k.threshold).max().unwrap_or(0);
        let roster = g.rosters().last().map(|r| r.to_vec()).unwrap_or_default();
        self.change_in_time(
            g,
            catch_up,
            |node| {
                roster
                    .get(usize::from(node))
                    .and_then(|e| <[u8; 32]>::try_from(e.node_key.as_slice()).ok())
                    .map(|key| roster_proposed_message(&cluster, &key, version, &hash))
                    .unwrap_or_default()
            },
            (b"propose-roster:", &r.request_id, r.created, r.expiry),
        )?;
        let diff = g.check_roster_change(request, max_threshold)?;
        // A change waits for every resharing to finish (every key is reshared to the new
        // roster from one generation); a withdrawal never waits.
        if diff.is_some()
            && let Some((key_id, _)) = self.keys.iter().find(|(_, k)| k.pending.is_some())
        {
            return Err(MembershipError::PendingGeneration {
                key_id: key_id.clone(),
            }
            .into());
        }
        // The roster in force with nothing pending is sealed too, as a fence: a change the
        // admins approved before it (one a coordinator withheld, or whose post failed) can no
        // longer be made pending, also after its window on another node's statement (attacker
        // review helper-57, finding 4).
        let withdrawn = g.pending_roster().is_some();
        let mut next = g.clone();
        next.sealed.proposed_roster = Some(request.clone());
        // Prepared for the change it replaces, not for this one.
        next.sealed.prepared = None;
        // A set this node vouched for stays: another change proposed proves nothing about
        // whether a node committed the one it vouched for (helper-69, finding 1); being
        // prepared for another change on every current node's word does.
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let statement = self.roster_statement(&cluster, version, &hash)?;
        match &diff {
            Some(diff) => info!(
                version,
                nodes = r.roster.len(),
                kept = diff.kept.len(),
                added = diff.added.len(),
                removed = diff.removed.len(),
                "roster change proposed"
            ),
            None if withdrawn => info!(version, "pending roster change withdrawn"),
            None => info!(
                version,
                "roster fenced: changes created before it are refused"
            ),
        }
        self.genesis = Some(next);
        Ok(Outcome::RosterProposed {
            version,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
        })
    }

    /// The answer again for a change proposed here already.
    fn roster_proposed_answer(&self, version: u32, hash: &[u8; 32]) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let sealed = self.seal_genesis(&g.sealed, &cluster)?;
        let statement = self.roster_statement(&cluster, version, hash)?;
        Ok(Outcome::RosterProposed {
            version,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
        })
    }

    pub(super) fn roster_statement(
        &self,
        cluster: &protocol::genesis::ClusterId,
        version: u32,
        hash: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        let key = self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?
            .key
            .public();
        self.node_statement(&roster_proposed_message(cluster, &key, version, hash))
    }
}
