//! Changing the cluster's roster (issue 20, membership; `docs/lifecycle.md`, ADR 0022): the
//! proposal step. A roster change ([`protocol::roster::ChangeRoster`]), approved by the admins
//! in force under their version, names the roster version it replaces and the whole new
//! roster. The coordinator checks it as every enclave does (`ChangeRoster::diff` against the
//! roster in force and the highest threshold of the keys it holds, no key with a resharing
//! pending, the approvals, the window) and proposes it at every node of the roster in force,
//! each on its own; each node seals it as pending and signs, by its node key, that it holds it
//! as proposed, which is checked here under the node key the roster lists. A proposal is
//! recorded by its hash once a node holds it (`roster_proposals`); the same proposal posted
//! again tries every node, each shown another node's statement (so after its expiry too).
//!
//! The roster in force is the genesis' (version 0) until a change is committed, then the last
//! committed change's (`in_force`); a change replaces its version.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::inventory::AppliedChange;
use protocol::roster::{CHANGE_ROSTER_VERSION, ChangeRoster, RosterError};
use tracing::info;

use super::admins::AdminSet;
use super::changes::{self, failures_text, not_applied, nowhere_code, receipts, sessions, split};
use super::checks::{check_admin_approvals, check_version_and_cluster, check_window, not_before};
use super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, ApprovedJson, ChangeRosterJson, ErrorCode, GenesisBody, Hex, RosterDiffJson,
    RosterEntryJson, RosterProposal, RosterProposedResult, RosterStatus, Wire,
};
use crate::audit::AuditEntry;
use crate::store::ChangeRow;

/// A recorded roster change proposal, read back and checked against itself.
type Recorded = changes::Recorded<ChangeRosterJson>;

impl Recorded {
    fn json(&self) -> RosterProposal {
        RosterProposal {
            version: self.version(),
            request: self.approved.clone(),
            request_sha256: Hex(self.hash.to_vec()),
            statements: receipts(&self.statements),
            recorded: self.recorded,
        }
    }

    /// Its place in the order every node applies proposals of one version against the roster
    /// in force, `current` (`protocol::roster::proposal_order`).
    fn order(&self, current: &[RosterEntryJson]) -> (u64, bool, [u8; 32]) {
        let r = &self.approved.request;
        (r.created, r.roster.as_slice() == current, self.hash)
    }
}

/// A proposal the nodes hold, with each holder's statement by node index.
type Held = (ApprovedJson<ChangeRosterJson>, BTreeMap<u16, Vec<u8>>);

/// The recorded proposals that replace roster version `version` (whose roster is `current`),
/// in the order the nodes apply them: the last is the one they end on.
fn proposals_of(
    mut all: Vec<Recorded>,
    (version, current): (u32, &[RosterEntryJson]),
) -> Vec<Recorded> {
    all.retain(|p| p.approved.request.version == version);
    all.sort_by_key(|p| p.order(current));
    all
}

/// The change the nodes hold as pending, of `proposals` (in the order the nodes apply them):
/// the last approved under the admin version in force (`admins`: an admin change drops a
/// pending proposal at every node, attacker review helper-57, finding 3), unless it names the
/// roster in force (a withdrawal).
fn pending_of<'a>(
    proposals: &'a [Recorded],
    roster: &[RosterEntryJson],
    admins: u32,
) -> Option<&'a Recorded> {
    proposals
        .iter()
        .rfind(|p| p.approved.request.admins == admins)
        .filter(|p| p.approved.request.roster != roster)
}

/// A roster change's SHA-256 as a request names it.
fn change_hash(change: &Hex) -> Result<[u8; 32], ApiError> {
    change
        .0
        .as_slice()
        .try_into()
        .map_err(|_| err(ErrorCode::MalformedRequest, "change: a SHA-256 of 32 bytes"))
}

/// The refusal of a change a roster may not undergo, named by its kind.
fn roster_refused(e: &RosterError) -> ApiError {
    let message = match e.kind() {
        "malformed_roster_change" => format!("malformed_roster_change: {e}"),
        _ => e.to_string(),
    };
    err(ErrorCode::InvalidRequest, message)
}

/// What the audit record says of a proposal (its nodes are the record's `nodes`).
fn describe(r: &ChangeRoster, diff: &RosterDiffJson, withdrawal: bool) -> String {
    let what = if withdrawal {
        "withdrawal of the pending change (a fence when none is)".to_string()
    } else {
        let kept: Vec<(u16, u16)> = diff.kept.iter().map(|k| (k.from, k.to)).collect();
        format!(
            "{} nodes: kept {kept:?} (from, to), removed {:?}, added {:?}",
            r.roster.len(),
            diff.removed,
            diff.added
        )
    };
    format!(
        "roster version {} -> {} proposed: {what}, request sha256 {}",
        r.version,
        r.new_version(),
        hex::encode(r.hash())
    )
}

/// The statements of `statements` that verify, for `change`, under the node key `roster`
/// lists at each node's index.
fn verified(
    roster: &ClusterRoster,
    change: &ChangeRosterJson,
    statements: &BTreeMap<u16, Vec<u8>>,
) -> BTreeMap<u16, Vec<u8>> {
    use super::changes::ChangeJson;
    let expected = change.expected();
    let cluster = roster.cluster_id();
    statements
        .iter()
        .filter(|(node, statement)| {
            expected.signed_by((&cluster, &roster.roster), **node, statement)
        })
        .map(|(node, statement)| (*node, statement.clone()))
        .collect()
}

/// The statements with which a proposal the nodes' inventories report is recorded again, or
/// `None` when it is not: it names another cluster, the admins in force (`admins`) did not
/// approve it under their version, or no statement verifies under the node key the roster in
/// force (`roster`) lists for its node (only those that do are kept). An enclave holds only a change its admins
/// approved, so one reported otherwise is a node, or a relay, making it up.
fn restorable(
    roster: &ClusterRoster,
    admins: &AdminSet,
    approved: &ApprovedJson<ChangeRosterJson>,
    statements: &BTreeMap<u16, Vec<u8>>,
) -> Option<BTreeMap<u16, Vec<u8>>> {
    let r = approved.request.to_wire();
    let statements = verified(roster, &approved.request, statements);
    let approved_here =
        check_admin_approvals(&r, r.admins, &approved.to_wire().approvals, admins).is_ok();
    (!statements.is_empty() && r.cluster == roster.cluster_id() && approved_here)
        .then_some(statements)
}

impl Coordinator {
    /// Records again the roster change proposals the nodes hold that this coordinator has not
    /// recorded (its database was lost; `POST /v1/recover`): each proposal with the
    /// statements of the nodes that report it, recorded only when its statements verify under
    /// their roster node keys and it carries the approvals of the admins in force (an enclave
    /// holds only such a change; one that reports a change it made up is refused here).
    /// Returns how many were recorded.
    pub(super) async fn recover_roster_proposals(
        &self,
        roster: &ClusterRoster,
        held: Vec<(u16, AppliedChange<ChangeRoster>)>,
        credential: &str,
    ) -> Result<u32, ApiError> {
        let body = self.cluster().await?;
        let admins = self.current_admins(&body).await?;
        let recorded = self.roster_proposals().await?;
        let mut by_hash: BTreeMap<[u8; 32], Held> = BTreeMap::new();
        for (node, p) in held {
            let hash = p.request.request.hash();
            let (_, statements) = by_hash
                .entry(hash)
                .or_insert_with(|| (ApprovedJson::from_wire(&p.request), BTreeMap::new()));
            statements.insert(node, p.statement.to_vec());
        }
        let mut restored = 0;
        for (hash, (approved, statements)) in by_hash {
            if recorded.iter().any(|p| p.hash == hash) {
                continue;
            }
            let Some(statements) = restorable(roster, &admins, &approved, &statements) else {
                continue;
            };
            let r = approved.request.to_wire();
            let row = ChangeRow {
                version: r.new_version(),
                request: serde_json::to_string(&approved)
                    .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
                request_hash: hash.to_vec(),
                statements: changes::stored(&statements).into_iter().collect(),
                created_at: unix_now(),
            };
            let entry = AuditEntry {
                action: "recover_change".into(),
                actors: vec![],
                key_id: None,
                payload_digests: vec![],
                path: vec![],
                nodes: statements.keys().copied().collect(),
                outcome: "ok".into(),
                request_id: Some(hex::encode(&r.request_id)),
                credential: Some(credential.to_string()),
                detail: Some(format!(
                    "roster proposal of version {}, request sha256 {}",
                    r.new_version(),
                    hex::encode(hash)
                )),
            };
            self.db(move |s| s.record_roster_proposal(&row, unix_now(), &entry))
                .await?;
            restored += 1;
        }
        Ok(restored)
    }

    /// The pending roster change, which must be the one whose SHA-256 is `change`
    /// (`no_pending_change`, `other_change` otherwise).
    async fn pending_proposal(&self, change: &[u8; 32]) -> Result<RosterProposal, ApiError> {
        let status = self.roster_status().await?;
        let pending = status.as_ref().and_then(|s| s.pending.as_ref());
        let Some(proposal) = status.as_ref().and_then(|s| {
            s.proposals
                .iter()
                .find(|p| Some(&p.request_sha256) == pending)
        }) else {
            return Err(err(
                ErrorCode::Refused,
                "no_pending_change: no roster change is pending",
            ));
        };
        if proposal.request_sha256.0 != change {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "other_change: the pending roster change is {}, not {}",
                    hex::encode(&proposal.request_sha256.0),
                    hex::encode(change)
                ),
            ));
        }
        Ok(proposal.clone())
    }

    /// Every recorded roster change proposal.
    async fn roster_proposals(&self) -> Result<Vec<Recorded>, ApiError> {
        self.recorded_changes().await
    }

    /// The roster in force and the changes proposed to it, as `GET /v1/cluster` shows them;
    /// `None` until the genesis is ready, and for a genesis without a roster.
    pub async fn roster_status(&self) -> Result<Option<RosterStatus>, ApiError> {
        let genesis = match self.cluster().await {
            Ok(g) => g,
            Err(e) if e.code == ErrorCode::Storage => return Err(e),
            Err(_) => return Ok(None),
        };
        let GenesisBody::V2(_) = &genesis else {
            return Ok(None);
        };
        let in_force = self.roster_in_force().await?;
        let roster: Vec<RosterEntryJson> = in_force
            .roster
            .iter()
            .map(RosterEntryJson::from_wire)
            .collect();
        let proposals = proposals_of(self.roster_proposals().await?, (in_force.version, &roster));
        let admins = self.current_admins(&genesis).await?.version;
        let pending = pending_of(&proposals, &roster, admins).map(|p| Hex(p.hash.to_vec()));
        Ok(Some(RosterStatus {
            version: in_force.version,
            roster,
            proposals: proposals.iter().map(Recorded::json).collect(),
            pending,
            committed: self.committed_json().await?,
        }))
    }

    /// Proposes a roster change (`POST /v1/cluster/roster`): checked against the roster and
    /// the admin set in force and the keys held, proposed at every node of the roster in
    /// force and recorded once a node holds it. The same change posted again tries every node
    /// again, each shown another node's statement.
    pub async fn propose_roster(
        self: &Arc<Self>,
        body: ApprovedJson<ChangeRosterJson>,
        credential: String,
    ) -> Result<RosterProposedResult, ApiError> {
        self.measured("propose_roster", self.change_roster(body, credential))
            .await
    }

    async fn change_roster(
        self: &Arc<Self>,
        body: ApprovedJson<ChangeRosterJson>,
        credential: String,
    ) -> Result<RosterProposedResult, ApiError> {
        let genesis = self.cluster().await?;
        let roster = self.roster_in_force().await?;
        let wire = body.to_wire();
        let r = &wire.request;
        check_version_and_cluster((r.v, CHANGE_ROSTER_VERSION), &r.cluster, &genesis)?;
        r.check().map_err(|e| roster_refused(&e))?;
        check_roster_version("the change replaces", r.version, roster.version)?;
        let hash = r.hash();
        let recorded = self
            .roster_proposals()
            .await?
            .into_iter()
            .find(|p| p.hash == hash);
        // The keys held: the highest threshold bounds the new roster's size, and no key may
        // have a resharing pending (every key is reshared to the new roster from one
        // generation). Every enclave checks both against its own keys too.
        let keys = self.db(|s| s.keys()).await?;
        let max_threshold = keys.iter().map(|k| k.threshold).max().unwrap_or(0);
        let diff = match r.diff(&[roster.roster.as_slice()], max_threshold) {
            Ok(d) => Some(RosterDiffJson::from(&d)),
            Err(RosterError::Unchanged) => None,
            Err(e) => return Err(roster_refused(&e)),
        };
        let withdrawal = diff.is_none();
        // A withdrawal (or a fence, with nothing pending) never waits.
        if let (false, Some(k)) = (withdrawal, keys.iter().find(|k| k.pending.is_some())) {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "pending_generation: key {} has a resharing pending; it is resolved \
                     before the roster changes",
                    k.key_id
                ),
            ));
        }
        let diff = diff.unwrap_or_default();
        // A proposal recorded already is tried again at every node, each shown another
        // node's statement; a new one within its window, approved by the admins in force. An
        // expired new one is still asked of the nodes (one that took it before a crash here
        // answers again) and recorded then only on two nodes' statements or more, as an admin
        // change is (attacker review helper-45, finding 3).
        let admins = self.current_admins(&genesis).await?;
        let actors = check_admin_approvals(r, r.admins, &wire.approvals, &admins)?;
        let (expired, shown) = match &recorded {
            // Only statements that verify are shown: one bad stored statement must not stop
            // every node's catch-up (attacker review helper-57, finding 6).
            Some(p) => (false, verified(&roster, &body.request, &p.statements)),
            None => {
                let expired = match check_window(r.created, r.expiry, unix_now()) {
                    Ok(()) => false,
                    Err(e) if e.code == ErrorCode::RequestExpired => true,
                    Err(e) => return Err(e),
                };
                not_before(r.created).await;
                (expired, BTreeMap::new())
            }
        };
        self.run_proposal(
            &body,
            &roster,
            (actors, credential),
            expired,
            &shown,
            (diff, withdrawal),
        )
        .await
    }

    /// Proposes `body` at every node (each shown another node's statement of `shown`) and
    /// records the statements of the nodes that hold it.
    async fn run_proposal(
        &self,
        body: &ApprovedJson<ChangeRosterJson>,
        roster: &ClusterRoster,
        (actors, credential): (Vec<String>, String),
        expired: bool,
        shown: &BTreeMap<u16, Vec<u8>>,
        (diff, withdrawal): (RosterDiffJson, bool),
    ) -> Result<RosterProposedResult, ApiError> {
        use super::changes::ChangeJson;
        let wire = body.to_wire();
        let r = &wire.request;
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let runs = sessions(&all, shown, |catch_up| {
            ChangeRosterJson::session(&wire, catch_up)
        });
        let (applied, failed) = split(self.apply_at(roster, runs, body.request.expected()).await);
        let (version, hash) = (r.new_version(), r.hash());
        let mut entry = AuditEntry {
            action: ChangeRosterJson::ACTION.into(),
            actors,
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: applied.keys().copied().collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&r.request_id)),
            credential: Some(credential),
            detail: Some(format!(
                "{}{}",
                describe(r, &diff, withdrawal),
                not_applied(&failed)
            )),
        };
        let refusal = if expired && applied.len() < all.len().min(2) {
            Some((
                ErrorCode::RequestExpired,
                format!(
                    "the roster change has expired and fewer than two nodes say they hold it \
                     (nodes {:?}): approve it again",
                    applied.keys().collect::<Vec<_>>()
                ),
            ))
        } else if applied.is_empty() {
            Some((
                nowhere_code(&failed),
                format!(
                    "no node holds the roster change as proposed: {}",
                    failures_text(&failed)
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            entry.outcome = code.as_str().into();
            let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
            return Err(err(code, message));
        }
        let row = ChangeRow {
            version,
            request: serde_json::to_string(body)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            request_hash: hash.to_vec(),
            statements: changes::stored(&applied).into_iter().collect(),
            created_at: unix_now(),
        };
        self.db(move |s| s.record_roster_proposal(&row, unix_now(), &entry))
            .await?;
        info!(
            version,
            withdrawal,
            nodes = ?applied.keys().collect::<Vec<_>>(),
            "roster change proposed"
        );
        // This run's statements only: a node that held the change once may hold a later one
        // now, and its refusal is reported (attacker review helper-57, finding 1).
        Ok(RosterProposedResult {
            version,
            request_sha256: Hex(hash.to_vec()),
            withdrawal,
            diff,
            proposed: receipts(&applied),
            failed,
        })
    }
}

/// Refuses a request that names roster version `named` (`what`: how it names it) when the
/// cluster's is `current` (`stale_roster`, as every enclave refuses it).
pub(super) fn check_roster_version(what: &str, named: u32, current: u32) -> Result<(), ApiError> {
    if named == current {
        return Ok(());
    }
    Err(err(
        ErrorCode::Unapproved,
        format!(
            "stale_roster: {what} roster version {named}; the cluster's roster is version \
             {current}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_refusal_is_named_by_its_kind() {
        let e = roster_refused(&RosterError::RequestId(3));
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.starts_with("malformed_roster_change: "), "{e}");
        let e = roster_refused(&RosterError::BelowThreshold {
            nodes: 2,
            threshold: 3,
        });
        assert!(e.message.starts_with("below_threshold: "), "{e}");
    }

    /// A recorded proposal replacing roster version 0 with `roster`, created at `created`,
    /// approved under admin version `admins`.
    fn proposal(roster: &[RosterEntryJson], created: u64, admins: u32) -> Recorded {
        let request = ChangeRosterJson {
            v: CHANGE_ROSTER_VERSION,
            cluster: crate::api::ClusterHex(protocol::genesis::ClusterId([1; 32])),
            version: 0,
            roster: roster.to_vec(),
            request_id: Hex(vec![created as u8; 16]),
            created,
            expiry: created + 300,
            admins,
        };
        let hash = request.to_wire().hash();
        Recorded {
            approved: ApprovedJson {
                request,
                approvals: vec![],
                presignature: None,
            },
            hash,
            statements: BTreeMap::new(),
            recorded: 0,
        }
    }

    fn entry(i: u8) -> RosterEntryJson {
        RosterEntryJson {
            node_key: Hex(vec![i; 32]),
            kms_key_arn: protocol::KmsKeyArn::parse(&format!(
                "arn:aws:kms:us-east-1:000000000000:key/{i:08}-0000-0000-0000-000000000000"
            ))
            .unwrap(),
            pcr3: None,
            pcr4: None,
        }
    }

    #[test]
    fn the_pending_change_is_the_last_under_the_admins_in_force_unless_a_withdrawal() {
        let current = [entry(1), entry(2), entry(3)];
        let smaller = [entry(1), entry(2)];
        let larger = [entry(1), entry(2), entry(3), entry(4)];
        // Recorded out of order: the nodes apply them by creation time.
        let all = vec![proposal(&larger, 20, 0), proposal(&smaller, 10, 0)];
        let ordered = proposals_of(all, (0, &current));
        assert_eq!(ordered[0].approved.request.created, 10);
        let pending = pending_of(&ordered, &current, 0).unwrap();
        assert_eq!(pending.approved.request.roster, larger);
        // A withdrawal after them leaves nothing pending.
        let mut withdrawn = ordered.clone();
        withdrawn.push(proposal(&current, 30, 0));
        assert!(pending_of(&withdrawn, &current, 0).is_none());
        // An admin change dropped them at every node: nothing pending under admin version 1,
        // until a proposal approved under it.
        assert!(pending_of(&ordered, &current, 1).is_none());
        let mut after = ordered.clone();
        after.push(proposal(&smaller, 5, 1));
        assert_eq!(
            pending_of(&after, &current, 1)
                .unwrap()
                .approved
                .request
                .created,
            5
        );
        // Proposals of another roster version are not this version's.
        let mut other = proposal(&larger, 40, 0);
        other.approved.request.version = 1;
        assert_eq!(proposals_of(vec![other], (0, &current)).len(), 0);
        // In one second a withdrawal comes after a change, whatever their hashes.
        for seed in 0..8 {
            let mut change = proposal(&larger, 50, 0);
            change.approved.request.request_id = Hex(vec![seed; 16]);
            change.hash = change.approved.request.to_wire().hash();
            let fence = proposal(&current, 50, 0);
            let ordered = proposals_of(vec![fence, change], (0, &current));
            assert!(pending_of(&ordered, &current, 0).is_none(), "seed {seed}");
        }
    }

    #[test]
    fn a_withdrawal_and_a_change_are_described_apart() {
        let r = ChangeRoster {
            v: CHANGE_ROSTER_VERSION,
            cluster: protocol::genesis::ClusterId([1; 32]),
            version: 0,
            roster: vec![],
            request_id: serde_bytes::ByteBuf::from(vec![0; 16]),
            created: 0,
            expiry: 0,
            admins: 0,
        };
        let diff = RosterDiffJson {
            kept: vec![crate::api::KeptNode { from: 0, to: 0 }],
            removed: vec![1],
            added: vec![],
        };
        let change = describe(&r, &diff, false);
        assert!(
            change.contains("removed [1]") && change.contains("0 -> 1"),
            "{change}"
        );
        let withdrawal = describe(&r, &RosterDiffJson::default(), true);
        assert!(withdrawal.contains("withdrawal"), "{withdrawal}");
    }
}

mod commit;
mod in_force;
mod moved;
mod moves;
mod prepare;
mod recovered;

pub(crate) use in_force::ClusterRoster;
pub(crate) use recovered::{ReportedChain, same_chain};

#[cfg(test)]
mod recovery_tests;
