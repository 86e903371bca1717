//! The roster in force as the coordinator follows it (issue 20, membership): the genesis'
//! (version 0) until a change is committed, then the last committed change's. A commit is
//! recorded (`roster_commits`) with the parent proxy of every node of the new roster; every
//! coordinator on the store then reaches the nodes of the roster in force at those proxies
//! (`Nodes::follow_roster`, from the health loop), checks node words under the node keys it
//! lists, and proposes changes that replace its version.

use protocol::genesis::{ClusterId, Genesis, RosterEntry};
use tracing::{info, warn};

use super::super::{Coordinator, err};
use super::Recorded;
use crate::api::{
    ApiError, ErrorCode, GenesisBody, Hex, NodeReceipt, RosterCommitResult, RosterCommitted, Wire,
};
use crate::store::RosterCommitRow;

/// A roster of the cluster: what node words are checked under, by node index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterRoster {
    cluster: ClusterId,
    /// Its roster version (0: the genesis').
    pub(crate) version: u32,
    /// Its nodes, by index.
    pub(crate) roster: Vec<RosterEntry>,
}

impl ClusterRoster {
    /// The genesis' roster, version 0.
    pub(crate) fn genesis(g: &Genesis) -> Self {
        Self {
            cluster: g.cluster_id(),
            version: 0,
            roster: g.roster.clone(),
        }
    }

    /// The cluster's id (the genesis').
    pub(crate) fn cluster_id(&self) -> ClusterId {
        self.cluster
    }

    /// The roster `change` makes of this one (the caller checked that it replaces it).
    pub(crate) fn changed_by(&self, change: &protocol::roster::ChangeRoster) -> Self {
        Self {
            cluster: self.cluster,
            version: change.new_version(),
            roster: change.roster.clone(),
        }
    }

    /// A roster of `cluster` at `version`, as a committed change made it (tests).
    #[cfg(test)]
    pub(super) fn at(cluster: ClusterId, version: u32, roster: Vec<RosterEntry>) -> Self {
        Self {
            cluster,
            version,
            roster,
        }
    }
}

/// A committed roster change as recorded, checked against the chain before it.
#[derive(Debug, Clone)]
pub(super) struct Commit {
    pub(super) row: RosterCommitRow,
    /// The change (a recorded proposal).
    pub(super) change: Recorded,
    /// The commit's answer, every node's word kept across runs.
    pub(super) result: RosterCommitResult,
}

/// `result` with what `earlier` (a run of the same commit before it) had and it lacks: a
/// node's word, a node's leave. A node asked again answers as it did, so the two never
/// disagree where both have a word; the later run's failures are the ones that stand.
pub(super) fn merged(
    mut result: RosterCommitResult,
    earlier: &RosterCommitResult,
) -> RosterCommitResult {
    for node in &mut result.nodes {
        if node.set_statement.is_none() {
            node.set_statement = earlier
                .nodes
                .iter()
                .find(|n| n.index == node.index && n.node_key == node.node_key)
                .and_then(|n| n.set_statement.clone());
        }
    }
    for left in &earlier.left {
        if !result.left.iter().any(|l| l.node == left.node) {
            result.left.push(left.clone());
        }
    }
    result.left.sort_by_key(|l| l.node);
    // The chain it was committed under is the first run's.
    result.images = earlier.images;
    result
}

/// Whether a commit row's `proxies` fit a roster of `nodes`: one per node; or none for a
/// change before the last, recorded again by a recovery (`POST /v1/recover` learns the parent
/// proxies of the roster in force alone: nothing is reached at those of a roster replaced
/// since).
fn proxies_fit(proxies: &[String], nodes: usize, last: bool) -> bool {
    proxies.len() == nodes || (proxies.is_empty() && !last)
}

impl Coordinator {
    /// Every committed roster change, in version order, each checked against the chain from the
    /// genesis: it makes the version after the one before, replaces that version, is a recorded
    /// proposal, and its answer is for it (`storage` otherwise: a store that lost or reordered
    /// a commit is not followed).
    pub(super) async fn commits(&self) -> Result<Vec<Commit>, ApiError> {
        let rows = self.db(|s| s.roster_commits()).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let proposals = self.roster_proposals().await?;
        let corrupt = |version: u32, m: &str| {
            err(
                ErrorCode::Storage,
                format!("the recorded commit of roster version {version}: {m}"),
            )
        };
        let count = rows.len();
        let mut out: Vec<Commit> = Vec::with_capacity(count);
        for (i, row) in rows.into_iter().enumerate() {
            let version = row.version;
            if usize::try_from(version).ok() != Some(i + 1) {
                return Err(corrupt(version, "a version is missing before it"));
            }
            let change = proposals
                .iter()
                .find(|p| p.hash.as_slice() == row.request_hash.as_slice())
                .cloned()
                .ok_or_else(|| corrupt(version, "its change is no recorded proposal"))?;
            let result: RosterCommitResult =
                serde_json::from_str(&row.result).map_err(|e| corrupt(version, &e.to_string()))?;
            if change.approved.request.version + 1 != version
                || result.version != version
                || result.request_sha256.0 != row.request_hash
                || !proxies_fit(
                    &row.proxies,
                    change.approved.request.roster.len(),
                    i + 1 == count,
                )
            {
                return Err(corrupt(version, "it is not the commit of its change"));
            }
            out.push(Commit {
                row,
                change,
                result,
            });
        }
        Ok(out)
    }

    /// Every roster of the cluster, version 0 (the genesis') first, then each committed
    /// change's; the last is the roster in force. A legacy genesis has none
    /// (`legacy_genesis`).
    pub(super) async fn rosters(&self) -> Result<Vec<ClusterRoster>, ApiError> {
        let commits = self.commits().await?;
        self.rosters_of(&commits).await
    }

    async fn rosters_of(&self, commits: &[Commit]) -> Result<Vec<ClusterRoster>, ApiError> {
        let genesis = match self.cluster().await? {
            GenesisBody::V2(pinned) => pinned.request.to_wire(),
            _ => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "legacy_genesis: a cluster without a roster has no roster changes",
                ));
            }
        };
        let first = ClusterRoster::genesis(&genesis);
        let mut out = vec![first.clone()];
        for c in commits {
            out.push(ClusterRoster {
                cluster: first.cluster,
                version: c.row.version,
                roster: c
                    .change
                    .approved
                    .request
                    .roster
                    .iter()
                    .map(Wire::to_wire)
                    .collect(),
            });
        }
        Ok(out)
    }

    /// The roster in force: the last committed change's, or the genesis'. The nodes are
    /// pointed at its proxies first, so that what is asked of them by index goes to its nodes
    /// even before the health loop followed a commit another coordinator recorded (attacker
    /// review helper-77, L3).
    pub(crate) async fn roster_in_force(&self) -> Result<ClusterRoster, ApiError> {
        let commits = self.commits().await?;
        if let Some(last) = commits.last() {
            self.nodes.follow_roster(last.row.proxies.clone());
        }
        let mut all = self.rosters_of(&commits).await?;
        all.pop()
            .ok_or_else(|| err(ErrorCode::Internal, "no roster, not even the genesis'"))
    }

    /// Every committed change as a client checks it (`GET /v1/cluster`): each node's word by
    /// index in the roster it made.
    pub(super) async fn committed_json(&self) -> Result<Vec<RosterCommitted>, ApiError> {
        Ok(self
            .commits()
            .await?
            .into_iter()
            .map(|c| RosterCommitted {
                version: c.row.version,
                request_sha256: Hex(c.change.hash.to_vec()),
                request: c.change.approved,
                committed: c
                    .result
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        n.set_statement.as_ref().map(|s| NodeReceipt {
                            node: n.index,
                            signature: s.clone(),
                        })
                    })
                    .collect(),
                images: c.result.images,
                keys: c.result.keys.clone(),
                vouched: c
                    .result
                    .nodes
                    .iter()
                    .map(|n| NodeReceipt {
                        node: n.index,
                        signature: n.statement.clone(),
                    })
                    .collect(),
                recorded: c.row.created_at,
            })
            .collect())
    }

    /// Points the nodes at the parent proxies of the roster in force, once a change is
    /// committed: every node is attested and admitted again at its index in it. Run by the
    /// health loop and after a commit; several coordinators on one store follow the same
    /// commits.
    pub(crate) async fn follow_roster(&self) {
        match self.commits().await {
            Ok(commits) => {
                if let Some(last) = commits.last()
                    && self.nodes.follow_roster(last.row.proxies.clone())
                {
                    info!(
                        version = last.row.version,
                        nodes = last.row.proxies.len(),
                        "serving the nodes of the committed roster"
                    );
                }
            }
            Err(e) => warn!(error = %e, "the committed rosters could not be read"),
        }
    }

    /// Records the commit `result` of the change `change` (its answer merged with an earlier
    /// run's), with its audit record; then the nodes of the new roster are served at their
    /// proxies and admit each other, and the keys it moved are recorded at their new
    /// generation (`record_moved_keys`). `replaced`: the parent proxy of each node of the roster
    /// the change replaced.
    pub(super) async fn record_commit(
        &self,
        (change, result): (&[u8; 32], &RosterCommitResult),
        replaced: Vec<String>,
        entry: crate::audit::AuditEntry,
    ) -> Result<RosterCommitResult, ApiError> {
        let earlier = self
            .commits()
            .await?
            .into_iter()
            .find(|c| c.row.version == result.version);
        let result = match &earlier {
            Some(c) => merged(result.clone(), &c.result),
            None => result.clone(),
        };
        let row = RosterCommitRow {
            version: result.version,
            request_hash: change.to_vec(),
            proxies: result.proxies.clone(),
            replaced,
            result: serde_json::to_string(&result)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            created_at: super::super::unix_now(),
        };
        // No presignature session runs while the commit is recorded: one started before it
        // would record a presignature of the replaced shares after every ready one was marked
        // dead (attacker review helper-77, L5).
        let gate = self.presign_gate.write().await;
        let recorded = self
            .db(move |s| s.record_roster_commit(&row, super::super::unix_now(), &entry))
            .await?;
        drop(gate);
        if !recorded {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "another change is recorded as roster version {}, or one before it is \
                     missing",
                    result.version
                ),
            ));
        }
        self.follow_roster().await;
        // A node that committed forgot the peers it admitted under the replaced roster: the
        // nodes of the new roster admit each other, under its entries, before anything is
        // signed.
        for (node, peer, why) in self.nodes.admit_all().await {
            info!(node, peer, why, "a peer refused after the commit");
        }
        // Every key the change moved is recorded at the generation the new roster holds; a key
        // some node has not committed yet is recorded when the commit is run again.
        if let Err(e) = self.record_moved_keys().await {
            warn!(error = %e, "the moved keys are not recorded yet");
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NodeCommitted, NodeLeft};

    fn node(index: u16, word: Option<u8>) -> NodeCommitted {
        NodeCommitted {
            index,
            node_key: Hex(vec![index as u8; 32]),
            statement: Hex(vec![1; 64]),
            set_statement: word.map(|w| Hex(vec![w; 64])),
        }
    }

    fn result(nodes: Vec<NodeCommitted>, left: Vec<u16>) -> RosterCommitResult {
        RosterCommitResult {
            version: 1,
            request_sha256: Hex(vec![9; 32]),
            keys: Hex(vec![8; 32]),
            set: vec![],
            aux: None,
            nodes,
            left: left
                .into_iter()
                .map(|n| NodeLeft {
                    node: n,
                    node_key: Hex(vec![0xee; 32]),
                    statement: Hex(vec![2; 64]),
                })
                .collect(),
            failed: vec![],
            proxies: vec![],
            images: 0,
        }
    }

    #[test]
    fn only_a_commit_before_the_last_may_name_no_proxies() {
        let three = vec!["a".to_string(), "b".into(), "c".into()];
        assert!(proxies_fit(&three, 3, true) && proxies_fit(&three, 3, false));
        assert!(proxies_fit(&[], 3, false));
        assert!(!proxies_fit(&[], 3, true));
        assert!(!proxies_fit(&three[..2], 3, false));
    }

    #[test]
    fn a_commit_run_again_keeps_every_word_an_earlier_run_had() {
        let earlier = result(vec![node(0, Some(1)), node(1, None)], vec![3]);
        let later = result(vec![node(0, None), node(1, Some(2))], vec![]);
        let m = merged(later, &earlier);
        assert_eq!(m.nodes, vec![node(0, Some(1)), node(1, Some(2))]);
        assert_eq!(m.left.iter().map(|l| l.node).collect::<Vec<_>>(), vec![3]);
        // A word is taken only for the same node key at the same index.
        let mut other = node(0, None);
        other.node_key = Hex(vec![0x55; 32]);
        let m = merged(result(vec![other.clone()], vec![]), &earlier);
        assert_eq!(m.nodes, vec![other]);
    }
}
