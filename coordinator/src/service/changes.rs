//! What changes of the admin set (`admins`) and of the accepted enclave images (`images`)
//! share (issue 20): each is a chain of versions from the genesis, each change recorded beside
//! it once a node applied it (`store::changes`); a change runs at every node in a session of
//! its own with no rounds, and each node answers with a statement that it applied it, checked
//! here under the node key its roster lists.

use std::collections::BTreeMap;

use protocol::genesis::{ClusterId, Genesis};
use protocol::session::{FailureCode, Outcome, SessionKind};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use super::{Coordinator, err};
use crate::api::{
    AcceptImagesJson, AdminsSetResult, ApiError, ApprovedJson, ErrorCode, Hex, NodeFailure,
    NodeReceipt, SetAdminsJson, Wire,
};
use crate::nodes::{new_session_id, run_session};
use crate::store::ChangeRow;

/// A change request as the admins sign it (JSON): one link of a chain of versions.
pub(super) trait ChangeJson: Wire + DeserializeOwned {
    /// What its versions are called in messages (`admin`, `image`).
    const WHAT: &'static str;
    /// The version it replaces (the change makes the next).
    fn replaces(&self) -> u32;
    /// SHA-256 of its canonical bytes.
    fn sha256(&self) -> [u8; 32];
}

impl ChangeJson for SetAdminsJson {
    const WHAT: &'static str = "admin";
    fn replaces(&self) -> u32 {
        self.version
    }
    fn sha256(&self) -> [u8; 32] {
        self.to_wire().hash()
    }
}

impl ChangeJson for AcceptImagesJson {
    const WHAT: &'static str = "image";
    fn replaces(&self) -> u32 {
        self.version
    }
    fn sha256(&self) -> [u8; 32] {
        self.to_wire().hash()
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
    /// The message a node's statement signs: cluster, node, version, request SHA-256.
    pub(super) message: fn(&ClusterId, u16, u32, &[u8; 32]) -> Vec<u8>,
}

impl Coordinator {
    /// Runs each session of `runs` (see [`sessions`]) at its node, all at once (a node that
    /// fails or hangs holds up no other): each node's statement, when it says it applied the
    /// change and its statement verifies under the node key the roster lists for it, else why
    /// it has none.
    pub(super) async fn apply_at(
        &self,
        roster: &Genesis,
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
                            let message = (expected.message)(
                                &cluster,
                                node,
                                expected.version,
                                &expected.hash,
                            );
                            let signed = roster
                                .roster
                                .get(usize::from(node))
                                .is_some_and(|e| e.signed(&message, &statement));
                            if v == expected.version && signed {
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
