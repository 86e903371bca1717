//! The prepare gate of the pending roster change (issue 20, step 3 of `docs/lifecycle.md`):
//! `POST /v1/cluster/roster/prepare` at every node of the roster in force.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use protocol::session::FailureCode;
use tracing::info;

use super::super::changes::{failures_text, not_applied, nowhere_code};
use super::super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, ErrorCode, HeldStatementJson, Hex, NodeFailure, NodePrepared, PrepareRosterBody,
    RosterPreparedResult, Wire,
};
use crate::audit::AuditEntry;

/// How long a node has to answer a prepare step (no protocol round: a check, a signature
/// and, when shown the set, one seal).
const PREPARE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Coordinator {
    /// The prepare gate of the pending roster change (`POST /v1/cluster/roster/prepare`) at
    /// every node of the roster in force: each asked for its statement that it holds the
    /// change under its chain, or, given every node's, to check them and be prepared. Each
    /// statement is checked here under the node key the roster lists (a client checks them
    /// again, and the chain against the one it pinned); the nodes that join are not this
    /// coordinator's, and the client asks them at their parent proxies.
    pub async fn prepare_roster(
        self: &Arc<Self>,
        body: PrepareRosterBody,
        credential: String,
    ) -> Result<RosterPreparedResult, ApiError> {
        let started = Instant::now();
        let result = self.run_prepare(body, credential).await;
        self.metrics.observe("prepare_roster", started.elapsed());
        if let Err(e) = &result {
            self.metrics.failure("prepare_roster", e.code.as_str());
        }
        result
    }

    async fn run_prepare(
        self: &Arc<Self>,
        body: PrepareRosterBody,
        credential: String,
    ) -> Result<RosterPreparedResult, ApiError> {
        let roster = self.roster_in_force().await?;
        let malformed = |what: &str| err(ErrorCode::MalformedRequest, what.to_string());
        let change = super::change_hash(&body.change)?;
        if body
            .statements
            .iter()
            .any(|s| s.node_key.0.len() != 32 || s.chain.0.len() != 32 || s.statement.0.len() != 64)
        {
            return Err(malformed(
                "statements: node keys and chains of 32 bytes, statements of 64",
            ));
        }
        let keys: std::collections::BTreeSet<&[u8]> = body
            .statements
            .iter()
            .map(|s| s.node_key.0.as_slice())
            .collect();
        if keys.len() != body.statements.len() {
            return Err(malformed("statements: one per node key"));
        }
        let nonce = body.nonce.as_ref().map(|n| n.0.clone()).unwrap_or_default();
        if nonce.len() > protocol::roster::MAX_PREPARE_NONCE {
            return Err(malformed("nonce: at most 64 bytes"));
        }
        let proposal = self.pending_proposal(&change).await?;
        // One statement per node of either roster at most.
        let listed = roster.roster.len() + proposal.request.request.roster.len();
        if body.statements.len() > listed {
            return Err(malformed("statements: more than the two rosters list"));
        }
        let version = proposal.version;
        let cluster = roster.cluster_id();
        let request = protocol::EnclaveRequest::PrepareRoster {
            prepare: protocol::roster::PrepareRoster {
                change: serde_bytes::ByteBuf::from(change.to_vec()),
                statements: body.statements.iter().map(Wire::to_wire).collect(),
                nonce: serde_bytes::ByteBuf::from(nonce),
            },
        };
        let mut tasks = tokio::task::JoinSet::new();
        for node in 0..self.nodes.count() {
            let (nodes, request) = (self.nodes.clone(), request.clone());
            tasks.spawn(async move { (node, nodes.call(node, &request, PREPARE_TIMEOUT).await) });
        }
        let mut answers = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((node, answer)) = joined {
                answers.insert(node, answer);
            }
        }
        let (mut prepared, mut failed) = (Vec::new(), Vec::new());
        for node in 0..self.nodes.count() {
            let failure = |code: &str, message: String| NodeFailure {
                node,
                code: code.into(),
                message,
            };
            match answers.remove(&node) {
                Some(Ok(protocol::EnclaveResponse::RosterPrepared {
                    version: v,
                    chain,
                    statement,
                    prepared: is_prepared,
                    prepared_statement,
                    ..
                })) => {
                    let entry = roster.roster.get(usize::from(node));
                    let signed = entry.is_some_and(|e| {
                        <[u8; 32]>::try_from(e.node_key.as_slice())
                            .ok()
                            .zip(<[u8; 32]>::try_from(chain.as_slice()).ok())
                            .is_some_and(|(key, chain)| {
                                let message = protocol::roster::roster_held_message(
                                    &cluster, &key, version, &change, &chain,
                                );
                                e.signed(&message, &statement)
                            })
                    });
                    match entry {
                        Some(e) if signed && v == version => prepared.push(NodePrepared {
                            node,
                            held: HeldStatementJson {
                                node_key: Hex::from(&e.node_key),
                                chain: Hex::from(&chain),
                                statement: Hex::from(&statement),
                            },
                            prepared: is_prepared,
                            prepared_statement: prepared_statement.as_ref().map(Hex::from),
                        }),
                        _ => failed.push(failure(
                            "bad_statement",
                            format!(
                                "it answered roster version {v} with a statement that does not \
                                 verify under its roster node key"
                            ),
                        )),
                    }
                }
                Some(Ok(protocol::EnclaveResponse::Error(e))) => {
                    failed.push(failure(e.code.as_str(), e.message))
                }
                Some(Ok(other)) => failed.push(failure(
                    FailureCode::Internal.as_str(),
                    format!("it answered {other}"),
                )),
                Some(Err(e)) => failed.push(failure("unreachable", e.0)),
                None => failed.push(failure("unreachable", "no answer".into())),
            }
        }
        let refusal = prepared.is_empty().then(|| {
            (
                nowhere_code(&failed),
                format!(
                    "no node answered the prepare step: {}",
                    failures_text(&failed)
                ),
            )
        });
        if !body.statements.is_empty() {
            let ready: Vec<u16> = prepared
                .iter()
                .filter(|p| p.prepared)
                .map(|p| p.node)
                .collect();
            let chains: std::collections::BTreeSet<String> = body
                .statements
                .iter()
                .map(|s| hex::encode(&s.chain.0))
                .collect();
            let shown: Vec<String> = body
                .statements
                .iter()
                .map(|s| hex::encode(&s.node_key.0))
                .collect();
            let outcome = match (&refusal, failed.is_empty()) {
                (Some((code, _)), _) => code.as_str(),
                (None, true) => "ok",
                (None, false) => "partial",
            };
            let entry = AuditEntry {
                action: "prepare_roster".into(),
                actors: vec![],
                key_id: None,
                payload_digests: vec![],
                path: vec![],
                nodes: ready.clone(),
                outcome: outcome.into(),
                request_id: None,
                credential: Some(credential),
                detail: Some(format!(
                    "roster version {version}: change {}; statements of node keys {shown:?} \
                     under chains {chains:?}; nodes saying they are prepared {ready:?}{}",
                    hex::encode(change),
                    not_applied(&failed)
                )),
            };
            // The nodes sealed whatever they sealed: a failed write is reported, and the
            // client (which checks every node's signed word) may run the step again.
            self.db(move |s| s.append_audit(unix_now(), &entry)).await?;
            info!(version, nodes = ?ready, "prepare step shown to the roster in force");
        }
        if let Some((code, message)) = refusal {
            return Err(err(code, message));
        }
        Ok(RosterPreparedResult {
            version,
            request_sha256: Hex(change.to_vec()),
            nodes: prepared,
            failed,
        })
    }
}
