//! What changes of the admin set (`admins`), of the accepted enclave images (`images`) and
//! proposals of roster changes (`roster`) share (issue 20): each is a chain of versions from
//! the genesis, each change recorded beside it once a node applied it (`store::changes`); a
//! change runs at every node in a session of its own with no rounds, and each node answers
//! with a statement that it applied it, checked here under the node key its roster lists.

use std::collections::BTreeMap;

use protocol::genesis::{ClusterId, RosterEntry};
use protocol::policy::Approved;
use protocol::session::{FailureCode, Outcome, SessionKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use tracing::info;

use super::roster::ClusterRoster;
use super::{Coordinator, err, unix_now};
use crate::api::{
    AcceptImagesJson, AdminsSetResult, ApiError, ApprovedJson, ChangeRosterJson, ErrorCode, Hex,
    NodeFailure, NodeReceipt, SetAdminsJson, Wire,
};
use crate::audit::AuditEntry;
use crate::nodes::{new_session_id, run_session};
use crate::store::{ChangeRow, ChangeTable};

/// A change request as the admins sign it (JSON): one link of a chain of versions.
pub(super) trait ChangeJson:
    Wire + DeserializeOwned + Serialize + Send + Sync + 'static
{
    /// What its versions are called in messages (`admin`, `image`).
    const WHAT: &'static str;
    /// The audit action of a change (`set_admins`, `accept_images`).
    const ACTION: &'static str;
    /// The store's table of these changes.
    const TABLE: ChangeTable;
    /// The version it replaces (the change makes the next).
    fn replaces(&self) -> u32;
    /// SHA-256 of its canonical bytes.
    fn sha256(&self) -> [u8; 32];
    /// Its request id.
    fn request_id(&self) -> &[u8];
    /// What a node's answer to it must hold.
    fn expected(&self) -> Expected;
    /// The session applying `change` at one node, shown another node's statement `catch_up`.
    fn session(change: &Approved<Self::Wire>, catch_up: Option<(u16, ByteBuf)>) -> SessionKind;
}

impl ChangeJson for SetAdminsJson {
    const WHAT: &'static str = "admin";
    const ACTION: &'static str = "set_admins";
    const TABLE: ChangeTable = ChangeTable::Admins;
    fn replaces(&self) -> u32 {
        self.version
    }
    fn sha256(&self) -> [u8; 32] {
        self.to_wire().hash()
    }
    fn request_id(&self) -> &[u8] {
        &self.request_id.0
    }
    fn expected(&self) -> Expected {
        let r = self.to_wire();
        Expected {
            what: Self::WHAT,
            version: r.new_version(),
            hash: r.hash(),
            applied: |outcome| match outcome {
                Outcome::AdminsSet {
                    version, statement, ..
                } => Some((version, statement)),
                _ => None,
            },
            message: |cluster, node, _, version, hash| {
                protocol::admins::admins_set_message(cluster, node, version, hash)
            },
        }
    }
    fn session(change: &Approved<Self::Wire>, catch_up: Option<(u16, ByteBuf)>) -> SessionKind {
        SessionKind::SetAdmins {
            request: change.clone(),
            catch_up,
        }
    }
}

impl ChangeJson for AcceptImagesJson {
    const WHAT: &'static str = "image";
    const ACTION: &'static str = "accept_images";
    const TABLE: ChangeTable = ChangeTable::Images;
    fn replaces(&self) -> u32 {
        self.version
    }
    fn sha256(&self) -> [u8; 32] {
        self.to_wire().hash()
    }
    fn request_id(&self) -> &[u8] {
        &self.request_id.0
    }
    fn expected(&self) -> Expected {
        let r = self.to_wire();
        Expected {
            what: Self::WHAT,
            version: r.new_version(),
            hash: r.hash(),
            applied: |outcome| match outcome {
                Outcome::ImagesAccepted {
                    version, statement, ..
                } => Some((version, statement)),
                _ => None,
            },
            message: |cluster, node, _, version, hash| {
                protocol::images::images_set_message(cluster, node, version, hash)
            },
        }
    }
    fn session(change: &Approved<Self::Wire>, catch_up: Option<(u16, ByteBuf)>) -> SessionKind {
        SessionKind::AcceptImages {
            request: change.clone(),
            catch_up,
        }
    }
}

/// A roster change proposal (issue 20, membership): read back as a change, but recorded by
/// its hash (`Coordinator::propose_roster`), never by `run_change` (the admins may replace a
/// proposal, so several may make one version). Its statements name the node by node key.
impl ChangeJson for ChangeRosterJson {
    const WHAT: &'static str = "roster";
    const ACTION: &'static str = "propose_roster";
    const TABLE: ChangeTable = ChangeTable::RosterProposals;
    fn replaces(&self) -> u32 {
        self.version
    }
    fn sha256(&self) -> [u8; 32] {
        self.to_wire().hash()
    }
    fn request_id(&self) -> &[u8] {
        &self.request_id.0
    }
    fn expected(&self) -> Expected {
        let r = self.to_wire();
        Expected {
            what: Self::WHAT,
            version: r.new_version(),
            hash: r.hash(),
            applied: |outcome| match outcome {
                Outcome::RosterProposed {
                    version, statement, ..
                } => Some((version, statement)),
                _ => None,
            },
            message: |cluster, _, node_key, version, hash| {
                <[u8; 32]>::try_from(node_key)
                    .map(|key| {
                        protocol::roster::roster_proposed_message(cluster, &key, version, hash)
                    })
                    .unwrap_or_default()
            },
        }
    }
    fn session(change: &Approved<Self::Wire>, catch_up: Option<(u16, ByteBuf)>) -> SessionKind {
        SessionKind::ProposeRoster {
            request: change.clone(),
            catch_up,
        }
    }
}

/// A recorded change, read back and checked against itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recorded<T> {
    /// The approved change.
    pub(super) approved: ApprovedJson<T>,
    /// SHA-256 of its canonical bytes.
    pub(super) hash: [u8; 32],
    /// Each node's statement that it applied it, by node index.
    pub(super) statements: BTreeMap<u16, Vec<u8>>,
    /// When it was recorded (Unix seconds).
    pub(super) recorded: u64,
}

impl<T: ChangeJson> Recorded<T> {
    /// The version it made.
    pub(super) fn version(&self) -> u32 {
        self.approved.request.replaces().saturating_add(1)
    }

    /// A stored change, refused (`storage`) unless its version and hash are its request's and
    /// its statements are hex.
    pub(super) fn from_row(row: &ChangeRow) -> Result<Self, ApiError> {
        let corrupt = |m: String| {
            err(
                ErrorCode::Storage,
                format!(
                    "the recorded change to {} version {}: {m}",
                    T::WHAT,
                    row.version
                ),
            )
        };
        let approved: ApprovedJson<T> =
            serde_json::from_str(&row.request).map_err(|e| corrupt(e.to_string()))?;
        let hash = approved.request.sha256();
        if row.request_hash.as_slice() != hash.as_slice()
            || approved.request.replaces().checked_add(1) != Some(row.version)
        {
            return Err(corrupt("its version or hash is not its request's".into()));
        }
        let statements: BTreeMap<u16, Vec<u8>> = row
            .statements
            .iter()
            .map(|(node, s)| {
                hex::decode(s)
                    .map(|s| (*node, s))
                    .map_err(|e| corrupt(format!("node {node}'s statement: {e}")))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Self {
            approved,
            hash,
            statements,
            recorded: row.created_at,
        })
    }
}

/// The statements, as the API shows them.
pub(super) fn receipts(statements: &BTreeMap<u16, Vec<u8>>) -> Vec<NodeReceipt> {
    statements
        .iter()
        .map(|(node, s)| NodeReceipt {
            node: *node,
            signature: Hex(s.clone()),
        })
        .collect()
}

/// Why `node` has not applied a change.
pub(super) fn failure(node: u16, code: &str, message: String) -> NodeFailure {
    NodeFailure {
        node,
        code: code.into(),
        message,
    }
}

/// Each node's answer: its statement, or why it has none.
pub(super) type Answers = BTreeMap<u16, Result<Vec<u8>, NodeFailure>>;

/// The statements and the failures of `answers`.
pub(super) fn split(answers: Answers) -> (BTreeMap<u16, Vec<u8>>, Vec<NodeFailure>) {
    let (mut applied, mut failed) = (BTreeMap::new(), Vec::new());
    for (node, answer) in answers {
        match answer {
            Ok(statement) => {
                applied.insert(node, statement);
            }
            Err(f) => failed.push(f),
        }
    }
    (applied, failed)
}

/// The error when no node applied a change: `refused` when an enclave refused it (its
/// approvals, its version, its window), else `no_quorum` (no node could run it).
pub(super) fn nowhere_code(failed: &[NodeFailure]) -> ErrorCode {
    let refusals = [
        FailureCode::Refused,
        FailureCode::BadRequest,
        FailureCode::Membership,
        FailureCode::Replayed,
    ]
    .map(FailureCode::as_str);
    if failed.iter().any(|f| refusals.contains(&f.code.as_str())) {
        ErrorCode::Refused
    } else {
        ErrorCode::NoQuorum
    }
}

/// The failures, for a message.
pub(super) fn failures_text(failed: &[NodeFailure]) -> String {
    failed
        .iter()
        .map(|f| format!("node {}: {}: {}", f.node, f.code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What an audit record adds when some nodes did not apply a change (nothing when all did).
pub(super) fn not_applied(failed: &[NodeFailure]) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let nodes: Vec<u16> = failed.iter().map(|f| f.node).collect();
    format!("; not applied at nodes {nodes:?}")
}

/// The answer to a posted change: the version it makes, its hash, the nodes that applied it
/// and the ones that did not.
pub(super) fn answer(
    version: u32,
    hash: &[u8; 32],
    statements: &BTreeMap<u16, Vec<u8>>,
    failed: Vec<NodeFailure>,
) -> AdminsSetResult {
    AdminsSetResult {
        version,
        request_sha256: Hex(hash.to_vec()),
        applied: receipts(statements),
        failed,
    }
}

/// The sessions applying a change at each of `nodes`, each (`kind`) shown another node's
/// statement of `shown` where there is one: a node's own is never its proof.
pub(super) fn sessions(
    nodes: &[u16],
    shown: &BTreeMap<u16, Vec<u8>>,
    kind: impl Fn(Option<(u16, ByteBuf)>) -> SessionKind,
) -> Vec<(u16, SessionKind)> {
    nodes
        .iter()
        .map(|node| {
            let catch_up = shown
                .iter()
                .find(|(other, _)| *other != node)
                .map(|(other, s)| (*other, ByteBuf::from(s.clone())));
            (*node, kind(catch_up))
        })
        .collect()
}

/// The message a node's statement signs: cluster, node index, the node key its roster entry
/// lists, version, request SHA-256.
pub(super) type StatementMessage = fn(&ClusterId, u16, &[u8], u32, &[u8; 32]) -> Vec<u8>;

/// What a node's answer to a change must hold to count as applied.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected {
    /// What the versions are called in messages (`admin`, `image`).
    pub(super) what: &'static str,
    /// The version the change makes.
    pub(super) version: u32,
    /// SHA-256 of the change's canonical bytes.
    pub(super) hash: [u8; 32],
    /// The version and the statement of an outcome that says the node applied a change of
    /// this kind; `None` for any other outcome.
    pub(super) applied: fn(Outcome) -> Option<(u32, ByteBuf)>,
    /// The message a node's statement signs: cluster, node index, the node key its roster
    /// entry lists (a roster change's statements name the node by key), version, request
    /// SHA-256.
    pub(super) message: StatementMessage,
}

impl Expected {
    /// Whether `statement` is node `node`'s that it took this change: a signature over
    /// [`Expected::message`] by the node key `roster` (of cluster `cluster`) lists for it.
    pub(super) fn signed_by(
        &self,
        (cluster, roster): (&ClusterId, &[RosterEntry]),
        node: u16,
        statement: &[u8],
    ) -> bool {
        roster.get(usize::from(node)).is_some_and(|e| {
            let message = (self.message)(cluster, node, &e.node_key, self.version, &self.hash);
            e.signed(&message, statement)
        })
    }
}

impl Coordinator {
    /// Runs each session of `runs` (see [`sessions`]) at its node, all at once (a node that
    /// fails or hangs holds up no other): each node's statement, when it says it applied the
    /// change and its statement verifies under the node key the roster lists for it, else why
    /// it has none.
    pub(super) async fn apply_at(
        &self,
        roster: &ClusterRoster,
        runs: Vec<(u16, SessionKind)>,
        expected: Expected,
    ) -> Answers {
        let nodes: Vec<u16> = runs.iter().map(|(node, _)| *node).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (node, kind) in runs {
            let all = self.nodes.clone();
            let timeout = self.settings.setup_round_timeout;
            tasks.spawn(async move {
                let mut run = run_session(&all, &new_session_id(), &[node], &kind, timeout).await;
                (node, run.outcomes.remove(&node))
            });
        }
        let mut outcomes = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((node, outcome)) = joined {
                outcomes.insert(node, outcome);
            }
        }
        let cluster = roster.cluster_id();
        nodes
            .into_iter()
            .map(|node| {
                let answer = match outcomes.remove(&node).flatten() {
                    Some(Outcome::Failed { code, message, .. }) => {
                        Err(failure(node, code.as_str(), message))
                    }
                    Some(outcome) => match (expected.applied)(outcome) {
                        Some((v, statement)) => {
                            if v == expected.version
                                && expected.signed_by((&cluster, &roster.roster), node, &statement)
                            {
                                Ok(statement.to_vec())
                            } else {
                                Err(failure(
                                    node,
                                    "bad_statement",
                                    format!(
                                        "it answered {} version {v} with a statement that does \
                                         not verify under its roster node key",
                                        expected.what
                                    ),
                                ))
                            }
                        }
                        None => Err(failure(
                            node,
                            FailureCode::Internal.as_str(),
                            "it answered with another outcome".into(),
                        )),
                    },
                    None => Err(failure(
                        node,
                        FailureCode::Unreachable.as_str(),
                        "no answer".into(),
                    )),
                };
                (node, answer)
            })
            .collect()
    }
}

/// Statements as stored: node index, signature as hex.
pub(super) fn stored(statements: &BTreeMap<u16, Vec<u8>>) -> Vec<(u16, String)> {
    statements
        .iter()
        .map(|(node, s)| (*node, hex::encode(s)))
        .collect()
}

impl Coordinator {
    /// Every recorded change of kind `T`, in version order, each checked against itself.
    pub(super) async fn recorded_changes<T: ChangeJson>(
        &self,
    ) -> Result<Vec<Recorded<T>>, ApiError> {
        self.db(|s| s.changes(T::TABLE))
            .await?
            .iter()
            .map(Recorded::from_row)
            .collect()
    }

    /// Runs a new change at every node (its shape, version, window and approvals by `actors`
    /// checked already; `expired` once its window has passed; `detail` describes it for the
    /// audit record) and records it once a node applied it. An expired change is still asked
    /// of the nodes: one that applied it before a coordinator could record it (a crash in
    /// between) answers it again; it is recorded then only on two nodes' statements or more
    /// (attacker review helper-45, finding 3: one compromised enclave alone cannot make an
    /// expired change that landed nowhere be recorded, and so caught up everywhere).
    pub(super) async fn run_change<T: ChangeJson>(
        &self,
        body: &ApprovedJson<T>,
        roster: &ClusterRoster,
        (actors, credential): (Vec<String>, String),
        (expired, detail): (bool, String),
    ) -> Result<AdminsSetResult, ApiError> {
        let wire = body.to_wire();
        let r = &body.request;
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let runs = sessions(&all, &BTreeMap::new(), |catch_up| {
            T::session(&wire, catch_up)
        });
        let (applied, failed) = split(self.apply_at(roster, runs, r.expected()).await);
        let (what, version, hash) = (T::WHAT, r.replaces().saturating_add(1), r.sha256());
        let mut entry = AuditEntry {
            action: T::ACTION.into(),
            actors,
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: applied.keys().copied().collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(r.request_id())),
            credential: Some(credential),
            detail: Some(format!("{detail}{}", not_applied(&failed))),
        };
        if expired && applied.len() < all.len().min(2) {
            entry.outcome = ErrorCode::RequestExpired.as_str().into();
            let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
            return Err(err(
                ErrorCode::RequestExpired,
                format!(
                    "the change to {what} version {version} has expired and fewer than two \
                     nodes say they applied it (nodes {:?}): approve it again",
                    applied.keys().collect::<Vec<_>>()
                ),
            ));
        }
        if applied.is_empty() {
            let code = nowhere_code(&failed);
            entry.outcome = code.as_str().into();
            let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
            return Err(err(
                code,
                format!(
                    "no node applied the change to {what} version {version}: {}",
                    failures_text(&failed)
                ),
            ));
        }
        let row = ChangeRow {
            version,
            request: serde_json::to_string(body)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            request_hash: hash.to_vec(),
            statements: stored(&applied).into_iter().collect(),
            created_at: unix_now(),
        };
        let (row_copy, recorded) = (row.clone(), entry.clone());
        if self
            .db(move |s| s.insert_change(T::TABLE, &row_copy, unix_now(), &recorded))
            .await?
        {
            info!(what, version, nodes = ?entry.nodes, "cluster change recorded");
            return Ok(answer(version, &hash, &applied, failed));
        }
        // Another coordinator recorded this version first: the same change gets these
        // statements too; another change of the same version, approved as well, is a split
        // the admins must resolve (the nodes that applied this one refuse theirs).
        let changes = self.recorded_changes::<T>().await?;
        match changes.iter().find(|c| c.version() == version) {
            Some(c) if c.hash == hash => {
                let statements = stored(&applied);
                self.db(move |s| {
                    s.add_change_statements(T::TABLE, version, &statements, unix_now(), &entry)
                })
                .await?;
                let mut all = c.statements.clone();
                all.extend(applied);
                let failed = failed
                    .into_iter()
                    .filter(|f| !all.contains_key(&f.node))
                    .collect();
                Ok(answer(version, &hash, &all, failed))
            }
            _ => {
                let nodes = entry.nodes.clone();
                entry.outcome = ErrorCode::Refused.as_str().into();
                let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
                Err(err(
                    ErrorCode::Refused,
                    format!(
                        "another change of {what} version {} was recorded meanwhile, while \
                         nodes {nodes:?} applied this one (request sha256 {}): the admins \
                         approved two changes of one version",
                        r.replaces(),
                        hex::encode(hash)
                    ),
                ))
            }
        }
    }

    /// Tries a recorded change again at every node, each shown another node's statement (so
    /// that it applies the change after its expiry too): a node that has it answers again, and
    /// one restored from an older genesis blob, whose statement is recorded already, is caught
    /// up too (attacker review helper-45, finding 4).
    pub(super) async fn catch_up_change<T: ChangeJson>(
        &self,
        roster: &ClusterRoster,
        change: &Recorded<T>,
        credential: String,
    ) -> Result<AdminsSetResult, ApiError> {
        let (what, version) = (T::WHAT, change.version());
        let every: Vec<u16> = (0..self.nodes.count()).collect();
        let wire = change.approved.to_wire();
        let runs = sessions(&every, &change.statements, |catch_up| {
            T::session(&wire, catch_up)
        });
        let r = &change.approved.request;
        let (applied, failed) = split(self.apply_at(roster, runs, r.expected()).await);
        let mut entry = AuditEntry {
            action: T::ACTION.into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: applied.keys().copied().collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(r.request_id())),
            credential: Some(credential),
            detail: Some(format!(
                "{what} version {} -> {version} caught up (request sha256 {}){}",
                r.replaces(),
                hex::encode(change.hash),
                not_applied(&failed)
            )),
        };
        let mut statements = change.statements.clone();
        if applied.is_empty() {
            entry.outcome = nowhere_code(&failed).as_str().into();
            let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
        } else {
            let add = stored(&applied);
            if !self
                .db(move |s| s.add_change_statements(T::TABLE, version, &add, unix_now(), &entry))
                .await?
            {
                return Err(err(
                    ErrorCode::Storage,
                    format!("the recorded change to {what} version {version} is gone"),
                ));
            }
            info!(what, version, nodes = ?applied.keys().collect::<Vec<_>>(), "cluster change caught up");
            statements.extend(applied);
        }
        Ok(answer(version, &change.hash, &statements, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node each of `nodes` is shown the statement of, from `shown`.
    fn shown_to(nodes: &[u16], shown: &BTreeMap<u16, Vec<u8>>) -> Vec<Option<u16>> {
        let request = protocol::policy::Approved {
            request: protocol::images::AcceptImages {
                v: protocol::images::ACCEPT_IMAGES_VERSION,
                cluster: ClusterId([7; 32]),
                version: 0,
                images: vec![],
                request_id: ByteBuf::from(vec![0; 16]),
                created: 0,
                expiry: 0,
                admins: 0,
            },
            approvals: vec![],
        };
        let kind = |catch_up: Option<(u16, ByteBuf)>| SessionKind::AcceptImages {
            request: request.clone(),
            catch_up,
        };
        sessions(nodes, shown, kind)
            .iter()
            .map(|(_, kind)| match kind {
                SessionKind::AcceptImages { catch_up, .. } => {
                    catch_up.as_ref().map(|(other, _)| *other)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_node_is_shown_another_nodes_statement_never_its_own() {
        let shown = BTreeMap::from([(0, vec![1; 64]), (2, vec![3; 64])]);
        assert_eq!(
            shown_to(&[0, 1, 2], &shown),
            vec![Some(2), Some(0), Some(0)]
        );
        assert_eq!(shown_to(&[1], &BTreeMap::new()), vec![None]);
        // The only statement is the node's own: it is shown none.
        let own = BTreeMap::from([(1, vec![1; 64])]);
        assert_eq!(shown_to(&[1], &own), vec![None]);
    }

    #[test]
    fn answers_split_into_statements_and_failures_and_name_the_nodes_left() {
        let answers: Answers = BTreeMap::from([
            (0, Ok(vec![1; 64])),
            (1, Err(failure(1, "unreachable", "no answer".into()))),
            (2, Ok(vec![2; 64])),
        ]);
        let (applied, failed) = split(answers);
        assert_eq!(applied.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(failed.len(), 1);
        assert_eq!(not_applied(&failed), "; not applied at nodes [1]");
        assert_eq!(not_applied(&[]), "");
        assert_eq!(
            failures_text(&failed),
            "node 1: unreachable: no answer".to_string()
        );
        let shown = answer(3, &[9; 32], &applied, failed);
        assert_eq!(shown.version, 3);
        assert_eq!(shown.applied[1].node, 2);
        assert_eq!(shown.request_sha256, Hex(vec![9; 32]));
    }
}
