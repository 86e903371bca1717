//! The cluster's admin set over time (issue 20, `docs/lifecycle.md`): the genesis' admins are
//! version 0; each change ([`protocol::admins::SetAdmins`]), approved by the quorum of the
//! version it replaces, makes the next. The coordinator keeps the chain of changes beside the
//! genesis (`store::admins`), checks every admin request's approvals against the set in force
//! ([`AdminSet`]), and relays a change to every node, each in a session of its own with no
//! rounds: each node checks it against its own current set, seals its genesis again with the
//! change, and signs a statement that it applied it, which is checked here under its roster
//! node key. A change is recorded once a node applied it; the same change posted again tries the
//! nodes that have not, each shown another node's statement (so after its expiry too).

use std::sync::Arc;

use protocol::admins::{SET_ADMINS_VERSION, SetAdmins};

use super::changes::{self, receipts};
use super::checks::{
    check_approvals, check_version_and_cluster, check_window, keys_of, not_before,
};
use super::{Coordinator, err, unix_now};
use crate::api::{
    AdminChange, AdminsSetResult, AdminsStatus, ApiError, ApprovedJson, ErrorCode, GenesisBody,
    Hex, SetAdminsJson,
};

/// The admin set in force: what every admin request's approvals are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AdminSet {
    /// Its version (0: the genesis' admins); admin requests name it.
    pub(super) version: u32,
    /// The admins' public keys.
    pub(super) admins: Vec<Hex>,
    /// How many of them approve an admin request.
    pub(super) quorum: u16,
}

/// A recorded admin change, read back and checked against itself.
type Recorded = changes::Recorded<SetAdminsJson>;

impl Recorded {
    fn json(&self) -> AdminChange {
        AdminChange {
            version: self.version(),
            request: self.approved.clone(),
            request_sha256: Hex(self.hash.to_vec()),
            statements: receipts(&self.statements),
            recorded: self.recorded,
        }
    }
}

/// The admin set in force: the genesis' admins (version 0), replaced by each recorded change in
/// order, each of which must replace the version before it.
fn admin_set(genesis: &GenesisBody, changes: &[Recorded]) -> Result<AdminSet, ApiError> {
    let mut set = AdminSet {
        version: 0,
        admins: genesis.admins().to_vec(),
        quorum: genesis.admin_quorum(),
    };
    for c in changes {
        let r = &c.approved.request;
        let version = r
            .version
            .checked_add(1)
            .filter(|_| r.version == set.version)
            .ok_or_else(|| {
                err(
                    ErrorCode::Storage,
                    format!(
                        "a recorded admin change replaces version {}, not version {}: the \
                         recorded chain is broken",
                        r.version, set.version
                    ),
                )
            })?;
        set = AdminSet {
            version,
            admins: r.admins.clone(),
            quorum: r.admin_quorum,
        };
    }
    Ok(set)
}

/// Where a posted change stands against the set in force and the recorded changes.
#[derive(Debug, PartialEq, Eq)]
enum Placed<'a> {
    /// It replaces the version in force: it is checked and run.
    New,
    /// The very change is recorded already: the nodes without a statement of it catch up.
    Recorded(&'a Recorded),
}

/// Places `request`: a change of the version in force is new; one recorded already (the same
/// request) is caught up; any other is stale.
fn place<'a>(
    request: &SetAdmins,
    set: &AdminSet,
    changes: &'a [Recorded],
) -> Result<Placed<'a>, ApiError> {
    if request.version == set.version {
        return Ok(Placed::New);
    }
    let hash = request.hash();
    match changes
        .iter()
        .find(|c| c.approved.request.version == request.version)
    {
        Some(c) if c.hash == hash => Ok(Placed::Recorded(c)),
        other => Err(err(
            ErrorCode::Unapproved,
            format!(
                "stale_admins: the change replaces admin version {}; the cluster's admins are \
                 version {}{}",
                request.version,
                set.version,
                if other.is_some() {
                    " (another change of that version is recorded)"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// What the audit record says of a change (its nodes are the record's `nodes`).
fn describe(r: &SetAdmins) -> String {
    format!(
        "admin version {} -> {}: {} of [{}], request sha256 {}",
        r.version,
        r.new_version(),
        r.admin_quorum,
        r.admins
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join(", "),
        hex::encode(r.hash())
    )
}

impl Coordinator {
    /// Every recorded admin change, in version order.
    async fn admin_changes(&self) -> Result<Vec<Recorded>, ApiError> {
        self.recorded_changes().await
    }

    /// The admin set in force: the genesis' admins replaced by every recorded change.
    pub(super) async fn current_admins(&self, genesis: &GenesisBody) -> Result<AdminSet, ApiError> {
        admin_set(genesis, &self.admin_changes().await?)
    }

    /// The admin set in force and every change of it, as `GET /v1/cluster` shows them;
    /// `None` until the genesis is ready.
    pub async fn admins_status(&self) -> Result<Option<AdminsStatus>, ApiError> {
        let genesis = match self.cluster().await {
            Ok(g) => g,
            Err(e) if e.code == ErrorCode::Storage => return Err(e),
            Err(_) => return Ok(None),
        };
        let changes = self.admin_changes().await?;
        let set = admin_set(&genesis, &changes)?;
        Ok(Some(AdminsStatus {
            version: set.version,
            admins: set.admins,
            admin_quorum: set.quorum,
            changes: changes.iter().map(Recorded::json).collect(),
        }))
    }

    /// Changes the cluster's admins (`POST /v1/cluster/admins`): the change is checked against
    /// the set in force, run at every node and recorded once a node applied it. The same
    /// change posted again tries the nodes that have not applied it.
    pub async fn set_admins(
        self: &Arc<Self>,
        body: ApprovedJson<SetAdminsJson>,
        credential: String,
    ) -> Result<AdminsSetResult, ApiError> {
        self.measured("set_admins", self.change_admins(body, credential))
            .await
    }

    async fn change_admins(
        self: &Arc<Self>,
        body: ApprovedJson<SetAdminsJson>,
        credential: String,
    ) -> Result<AdminsSetResult, ApiError> {
        let genesis = self.cluster().await?;
        let GenesisBody::V2(_) = &genesis else {
            return Err(err(
                ErrorCode::InvalidRequest,
                "legacy_genesis: a cluster without a roster has no admin changes",
            ));
        };
        let roster = self.roster_in_force().await?;
        let wire = body.to_wire();
        let r = &wire.request;
        check_version_and_cluster((r.v, SET_ADMINS_VERSION), &r.cluster, &genesis)?;
        r.check()
            .map_err(|e| err(ErrorCode::InvalidRequest, format!("the admin change: {e}")))?;
        keys_of(&body.request.admins, "admin")?;
        let changes = self.admin_changes().await?;
        let set = admin_set(&genesis, &changes)?;
        if let Placed::Recorded(recorded) = place(r, &set, &changes)? {
            return self.catch_up_change(&roster, recorded, credential).await;
        }
        // An expired change is still asked of the nodes: one that applied it before this
        // coordinator could record it (a crash in between) answers it again, and it is recorded;
        // every other node refuses it as expired. A change that landed nowhere stays refused.
        // Recorded then only on two nodes' statements or more (attacker review helper-45,
        // finding 3: one compromised enclave alone cannot make an expired change that landed
        // nowhere be recorded, and so caught up everywhere).
        let expired = match check_window(r.created, r.expiry, unix_now()) {
            Ok(()) => false,
            Err(e) if e.code == ErrorCode::RequestExpired => true,
            Err(e) => return Err(e),
        };
        let actors = check_approvals(
            r,
            &wire.approvals,
            &keys_of(&set.admins, "admin")?,
            set.quorum,
        )?;
        not_before(r.created).await;
        self.run_change(&body, &roster, (actors, credential), (expired, describe(r)))
            .await
    }
}

#[cfg(test)]
mod tests;
