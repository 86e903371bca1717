//! Joining the cluster at a pending roster change (issue 20, the join step of
//! `docs/lifecycle.md`, ADR 0022). A node to add is enrolled as at genesis (its node key made
//! here and sealed under its own KMS key) and given the chain a member's genesis blob holds —
//! the approved genesis, every admin and image change since — with the pending roster change
//! that lists its node key and one member's proposed statement over that change. It checks all
//! of it itself, as a member checks its own blob at a restore: every approval from the genesis
//! on under the admins of the version each names, the change against the roster in force, its
//! own entry in the new roster (the KMS key its node key is sealed under, the parent PCRs the
//! entry pins), the member's statement under the node key the roster in force lists at that
//! member's index, and that it runs an image the cluster accepts. It then seals the chain as
//! its genesis blob and signs the change's proposed statement, as every member did.
//!
//! A joining node holds no key and takes no part in the cluster's work ([`Node::genesis`]
//! refuses it, and the lifecycle admits no session in phase `joining`) until the change is
//! committed (`commit.rs`). So a relay that feeds it a stale chain, or a change the members dropped,
//! gains nothing: the prepare step asks every member's statement over the same change before
//! anything is reshared to it. A change that replaced the one it joined (created later, in the
//! members' order) may be joined again; an earlier one is refused.

use protocol::genesis::RosterEntry;
use protocol::policy::MAX_CLOCK_SKEW_SECS;
use protocol::roster::{ChangeRoster, JoinCluster, proposal_order, roster_proposed_message};
use tracing::info;

use super::admins::hex;
use super::enroll::{NodeKey, key_hex};
use super::genesis::{
    GenesisState, OwnPcrs, SealedGenesisV2, check_entry, genesis_state, runs_accepted_image,
};
use super::membership::MembershipError;
use super::{Node, NodeError, bad};

/// Every check a joining node's chain must pass, at the join and again at every restore.
/// Returns the cluster as this node knows it: joining, at its index in the pending roster.
pub(super) fn check_joining(
    sealed: &SealedGenesisV2,
    node_key: &NodeKey,
    own: &OwnPcrs,
) -> Result<GenesisState, NodeError> {
    let (Some(change), Some(joined)) = (&sealed.proposed_roster, &sealed.joined) else {
        return Err(bad(
            "a joining node's chain names its change and a member's statement",
        ));
    };
    let mut state = genesis_state(sealed.genesis_request())?;
    for admins in &sealed.admins {
        state.apply_admins(admins)?;
    }
    for images in &sealed.images {
        state.apply_images(images, false)?;
    }
    for committed in &sealed.rosters {
        state.apply_committed(committed)?;
    }
    let public = node_key.key.public();
    let in_force: Vec<RosterEntry> = state
        .rosters()
        .last()
        .map(|r| r.to_vec())
        .unwrap_or_default();
    if in_force.iter().any(|e| e.node_key.as_slice() == public) {
        return Err(MembershipError::ListedInForce {
            node_key: key_hex(&public),
        }
        .into());
    }
    // The change as every member checks it (cluster, roster version in force, its rules,
    // approvals by the admins in force); no key is held here, so no threshold: the prepare
    // step checks the thresholds of the keys reshared.
    if state.check_roster_change(change, 0)?.is_none() {
        return Err(MembershipError::NothingToJoin.into());
    }
    let r = &change.request;
    let index = protocol::genesis::index_in(&r.roster, &public).ok_or_else(|| {
        MembershipError::NotInChange {
            node_key: key_hex(&public),
        }
    })?;
    check_entry(&r.roster[usize::from(index)], node_key, own)?;
    let cluster = state.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
    let proven = in_force
        .get(usize::from(joined.node))
        .is_some_and(|member| {
            <[u8; 32]>::try_from(member.node_key.as_slice()).is_ok_and(|key| {
                let message = roster_proposed_message(&cluster, &key, r.new_version(), &r.hash());
                member.signed(&message, &joined.statement)
            })
        });
    if !proven {
        return Err(MembershipError::UnprovenChange { node: joined.node }.into());
    }
    if !runs_accepted_image(&state, own) {
        return Err(MembershipError::OtherImage.into());
    }
    state.node = index;
    state.nodes = u16::try_from(r.roster.len()).unwrap_or(u16::MAX);
    state.sealed.proposed_roster = Some(change.clone());
    state.sealed.joined = Some(joined.clone());
    super::prepare::restore_prepared(&mut state, sealed.prepared.as_ref());
    state.sealed.vouched = sealed.vouched.clone();
    Ok(state)
}

impl Node {
    /// Joins the cluster at the pending roster change `join` names
    /// (`EnclaveRequest::JoinCluster`): every check of [`check_joining`] runs before anything
    /// is sealed or kept, and a refusal changes nothing. A member refuses (`already_member`);
    /// a joining node takes the same change again, or one that replaced its own (created later,
    /// in the members' order), never an earlier one (`roster_change_pending`). Returns the
    /// sealed genesis blob, this node's index in the pending roster, the roster version the
    /// change makes and this node's proposed statement over it.
    pub fn join_cluster(
        &mut self,
        join: &JoinCluster,
    ) -> Result<(Vec<u8>, u16, u32, Vec<u8>), NodeError> {
        let node_key = self.node_key.as_ref().ok_or(MembershipError::NotEnrolled)?;
        let r = &join.change.request;
        // As a member catching up on another's statement: never a change dated beyond this
        // node's clock's skew (attacker review helper-59, finding 7).
        let latest = self.now().saturating_add(MAX_CLOCK_SKEW_SECS);
        if r.created > latest {
            return Err(NodeError::NotYet(format!(
                "the roster change was created at {}, after this node's clock allows ({latest})",
                r.created
            )));
        }
        let state = check_joining(&SealedGenesisV2::joining(join), node_key, &self.own_pcrs)?;
        let cluster = state.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        if let Some(held) = &self.genesis {
            let ours = held.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
            if !held.joining() || ours != cluster {
                return Err(MembershipError::AlreadyMember {
                    cluster: ours.to_string(),
                }
                .into());
            }
            if let Some(pending) = &held.sealed.proposed_roster {
                // The members' order, after the admin version the change is approved under:
                // a change of a later admin version replaces one the members dropped on that
                // admin change, whenever either was created.
                let in_force = state.rosters().last().copied().unwrap_or_default();
                let order = |c: &ChangeRoster| (c.admins, proposal_order(c, in_force));
                let same = pending.request.hash() == r.hash();
                if same && held.chain_digest() == state.chain_digest() {
                    // The same change under the same chain: answered again from the state
                    // held, whose prepared record and vouched key set stay (attacker review
                    // helper-67, finding 3: a join sent again must not unlock a node that
                    // vouched). Another chain (an image change since) is joined anew.
                    let (version, hash) = (r.new_version(), r.hash());
                    let sealed = self.seal_genesis(&held.sealed, &cluster)?;
                    let statement = self.roster_statement(&cluster, version, &hash)?;
                    return Ok((sealed, held.node, version, statement));
                }
                if held.sealed.vouched.is_some() {
                    // Joined anew (under another chain, or to a later change), it would forget
                    // the set it vouched for and the incoming generations a catch-up commits
                    // (helper-68, finding 3; helper-69, finding 1): a node that vouched keeps
                    // them. One the admins give up on is wiped and enrolled again.
                    return Err(MembershipError::Vouched {
                        version: r.new_version(),
                    }
                    .into());
                }
                if !same && order(r) <= order(&pending.request) {
                    return Err(MembershipError::RosterChangePending {
                        version: pending.request.version,
                        pending: hex(&pending.request.hash()),
                        created: pending.request.created,
                    }
                    .into());
                }
            }
        }
        let (version, hash) = (r.new_version(), r.hash());
        // This blob and every later one are bound to the cluster (the KMS encryption context).
        self.sealing.bind_cluster(&cluster.to_string());
        let sealed = self.seal_genesis(&state.sealed, &cluster)?;
        let statement = self.roster_statement(&cluster, version, &hash)?;
        self.sealing.retire_legacy();
        let node = state.node;
        info!(
            %cluster,
            node,
            version,
            nodes = state.nodes,
            change = %hex(&hash),
            "joined a pending roster change"
        );
        if self.genesis.is_none() {
            // The auxiliary information of the new party set needs safe primes.
            self.primes.warm_up();
        }
        self.genesis = Some(state);
        Ok((sealed, node, version, statement))
    }

    /// Whether this node joined a roster change not committed yet.
    pub fn joining(&self) -> bool {
        self.genesis.as_ref().is_some_and(GenesisState::joining)
    }
}
