//! The cluster's admin set and quorum over time (issue 20, `docs/lifecycle.md`): every
//! admin-approved request names the admin version it was approved under, and each node checks
//! it against that version's set; a change of the set is applied node by node, sealed with the
//! genesis as a chain each link of which the set before it approved.

use protocol::admins::{SetAdmins, admins_set_message};
use protocol::policy::{Approval, Approved, Canonical};
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use tracing::info;

use super::genesis::{AdminSet, GenesisState};
use super::membership::MembershipError;
use super::{Node, NodeError};
use crate::policy::{check_approvals, keys32};

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl GenesisState {
    /// The current admin version (0: the genesis' admins).
    pub(super) fn admin_version(&self) -> u32 {
        u32::try_from(self.admin_sets.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Checks the approvals of an admin request for new work (a key creation, import or
    /// resharing to start): it must name the current admin version (`named`), and carry its
    /// quorum. A request approved under a replaced set is refused, and so is one approved
    /// under a set that has not landed here yet.
    pub(super) fn check_admins<T: Canonical>(
        &self,
        request: &T,
        approvals: &[Approval],
        named: u32,
    ) -> Result<(), NodeError> {
        let current = self.admin_version();
        if named != current {
            return Err(MembershipError::StaleAdmins { named, current }.into());
        }
        self.check_admins_at(request, approvals, named)
    }

    /// Checks the approvals of an admin request against the set of the admin version it names
    /// (`named`), current or earlier: to resolve a resharing started before an admin change.
    pub(super) fn check_admins_at<T: Canonical>(
        &self,
        request: &T,
        approvals: &[Approval],
        named: u32,
    ) -> Result<(), NodeError> {
        let set = usize::try_from(named)
            .ok()
            .and_then(|v| self.admin_sets.get(v))
            .ok_or(MembershipError::StaleAdmins {
                named,
                current: self.admin_version(),
            })?;
        let admins = keys32(&set.admins)?;
        check_approvals(request, approvals, &admins, set.quorum)?;
        Ok(())
    }

    /// Appends an admin change to this state once its shape, cluster, version and the current
    /// quorum's approvals hold (not its window: the caller's, or, at a restore, already checked
    /// when it was applied).
    pub(super) fn apply_admins(&mut self, change: &Approved<SetAdmins>) -> Result<(), NodeError> {
        let r = &change.request;
        r.check().map_err(MembershipError::AdminChange)?;
        let ours = self.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        if r.cluster != ours {
            return Err(MembershipError::OtherCluster {
                named: r.cluster.to_string(),
                ours: ours.to_string(),
            }
            .into());
        }
        self.check_admins(r, &change.approvals, r.version)?;
        self.admin_sets.push(AdminSet {
            admins: r.admins.clone(),
            quorum: r.admin_quorum,
        });
        self.sealed.admins.push(change.clone());
        Ok(())
    }
}

impl Node {
    /// Applies an admin change here (`SessionKind::SetAdmins`): approved by the quorum of the
    /// version it replaces, which must be this node's current one, and within its window, or,
    /// after it, shown `catch_up`: another roster node's signed statement that it applied the
    /// change. The genesis is sealed again with the change appended and the statement signed
    /// before anything changes; a change applied already is answered again.
    pub(super) fn set_admins(
        &mut self,
        request: &Approved<SetAdmins>,
        catch_up: Option<&(u16, ByteBuf)>,
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let r = &request.request;
        let hash = r.hash();
        let applied = usize::try_from(r.version)
            .ok()
            .and_then(|v| g.sealed.admins.get(v));
        if let Some(applied) = applied {
            if applied.request.hash() != hash {
                // Named, so that two changes of one version (a fork) are seen as such
                // (helper-45, finding 2).
                return Err(MembershipError::OtherAdminChange {
                    version: r.version,
                    applied: hex(&applied.request.hash()),
                }
                .into());
            }
            return self.admins_answer(r.new_version(), &hash);
        }
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let mut next = g.clone();
        next.apply_admins(request)?;
        // A roster proposal is the replaced admins' work: it is dropped, and the new admins
        // approve it again if they want it (attacker review helper-56, finding 1).
        next.sealed.proposed_roster = None;
        next.sealed.prepared = None;
        let version = r.new_version();
        // An admin change is approved by the set it replaces, always the current one here.
        self.change_in_time(
            g,
            catch_up,
            |node| admins_set_message(&cluster, node, version, &hash),
            (b"set-admins:", &r.request_id, r.created, r.expiry),
        )?;
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let statement = self.admins_statement(&cluster, next.node, next.admin_version(), &hash)?;
        let frozen = self.freeze_pending()?;
        info!(
            version = next.admin_version(),
            admins = r.admins.len(),
            quorum = r.admin_quorum,
            "admin set changed"
        );
        let version = next.admin_version();
        self.genesis = Some(next);
        for (key_id, _) in &frozen {
            if let Some(p) = self.keys.get_mut(key_id).and_then(|k| k.pending.as_mut()) {
                p.frozen = true;
            }
        }
        self.drop_admin_sessions();
        Ok(Outcome::AdminsSet {
            version,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
            frozen,
        })
    }

    /// Every pending generation held here, sealed frozen (key id, blob): what an admin change
    /// leaves of the work the replaced set approved. Changes nothing in memory.
    fn freeze_pending(&self) -> Result<Vec<(String, ByteBuf)>, NodeError> {
        self.keys
            .iter()
            .filter(|(_, k)| k.pending.is_some())
            .map(|(id, _)| Ok((id.clone(), ByteBuf::from(self.seal_pending_frozen(id)?))))
            .collect()
    }

    /// Whether a cluster change not applied here yet may be applied now: shown `catch_up`
    /// (another roster node's signature over `message(that node)`, its statement that it
    /// applied the change: answered `true`), or within its window (`tag` and the request id
    /// make its use key, never consumed: the version it replaces is what makes it single use;
    /// answered `false`).
    pub(super) fn change_in_time(
        &self,
        g: &GenesisState,
        catch_up: Option<&(u16, ByteBuf)>,
        message: impl Fn(u16) -> Vec<u8>,
        (tag, request_id, created, expiry): (&[u8], &[u8], u64, u64),
    ) -> Result<bool, NodeError> {
        let shown = catch_up.is_some_and(|(node, statement)| {
            *node != g.node
                && g.pinned
                    .as_ref()
                    .and_then(|p| p.roster.get(usize::from(*node)))
                    .is_some_and(|entry| entry.signed(&message(*node), statement))
        });
        if shown {
            // A statement makes a change that was valid elsewhere current here, never one made
            // in this node's future (attacker review helper-58, finding 3: a fence dated
            // ahead would block every roster change until an admin change).
            if created
                > self
                    .now()
                    .saturating_add(protocol::policy::MAX_CLOCK_SKEW_SECS)
            {
                return Err(NodeError::Refused(format!(
                    "the change was made at {created}, in this node's future: another node's \
                     statement does not make it current early"
                )));
            }
            return Ok(true);
        }
        let mut use_key = tag.to_vec();
        use_key.extend_from_slice(request_id);
        self.guard
            .check(&use_key, created, expiry, self.now())
            .map_err(|e| match catch_up {
                Some(_) => NodeError::Refused(format!(
                    "{e}; and the statement shown is not another roster node's that it applied \
                     this change"
                )),
                None => e.into(),
            })?;
        Ok(false)
    }

    /// The answer again for a change applied here already: the genesis blob as it is, sealed
    /// anew, and the statement for the version the change made.
    fn admins_answer(&self, version: u32, hash: &[u8; 32]) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let sealed = self.seal_genesis(&g.sealed, &cluster)?;
        let statement = self.admins_statement(&cluster, g.node, version, hash)?;
        // The frozen pending generations again: a relay that lost the first answer, or a
        // parent that did not store them, gets them once more.
        let frozen = self
            .keys
            .iter()
            .filter(|(_, k)| k.pending.as_ref().is_some_and(|p| p.frozen))
            .map(|(id, _)| Ok((id.clone(), ByteBuf::from(self.seal_pending_frozen(id)?))))
            .collect::<Result<_, NodeError>>()?;
        Ok(Outcome::AdminsSet {
            version,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
            frozen,
        })
    }

    fn admins_statement(
        &self,
        cluster: &protocol::genesis::ClusterId,
        node: u16,
        version: u32,
        hash: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        self.node_statement(&admins_set_message(cluster, node, version, hash))
    }

    /// This node's node key (public half).
    pub(super) fn node_key_public(&self) -> Result<[u8; 32], NodeError> {
        Ok(self
            .node_key
            .as_ref()
            .ok_or(super::MembershipError::NotEnrolled)?
            .key
            .public())
    }

    /// This node's node-key signature over `message` (under one of its domain tags).
    pub(super) fn node_statement(&self, message: &[u8]) -> Result<Vec<u8>, NodeError> {
        Ok(self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?
            .key
            .sign(message)
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .to_vec())
    }
}
