//! The node's thread: what it does with each job (a request, a worker's result), and the
//! continuation that brings a worker's result back to it (issue 22).

use std::sync::{Mutex, OnceLock, Weak, mpsc};

use attestation::NodeBinding;
use protocol::{EnclaveError, EnclaveRequest, EnclaveResponse, ErrorCode, Phase};
use serde_bytes::ByteBuf;
use tracing::warn;

use super::{Job, Work};
use crate::identity::SecretIdentity;
use crate::lifecycle::{Event, Lifecycle};
#[cfg(test)]
use crate::node::TestHook;
use crate::node::{MembershipError, Node, Progress, Then, panic_reason};

/// Does one piece of work on the worker thread, containing its panics; says whether the
/// worker goes on.
///
/// A panic here (a protocol machine's own panics are contained to their session earlier, in
/// the node) may have left `node` half-changed: a request id held but never released or
/// consumed, a signature released but its request not recorded as used. Rather than reason
/// about every such state, the worker drops it (its secrets are zeroized on drop) and the
/// enclave enters the terminal `failed` phase with the reason; a restart restores what was
/// sealed. Presignatures are lost with it, which is safe: they live in memory only.
pub(super) fn work(
    node: &mut Option<Node>,
    (identity, lifecycle, binding): (&SecretIdentity, &Mutex<Lifecycle>, &OnceLock<NodeBinding>),
    work: Work,
    then: &dyn Fn() -> Then,
) -> (Option<EnclaveResponse>, bool) {
    let Some(state) = node.as_mut() else {
        // A job queued before the failure: nothing reaches the state left behind.
        let l = lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        let why = l.failure().unwrap_or("the cluster worker failed");
        let e = EnclaveError::new(ErrorCode::WrongPhase, format!("the enclave failed: {why}"));
        return (Some(EnclaveResponse::Error(e)), true);
    };
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match work {
        Work::Request(request) => (
            cluster_request(state, (identity, lifecycle, binding), request, then),
            true,
        ),
        Work::Resume(resumed) => {
            let answer = state.resume(identity, resumed).map_or_else(
                |e| EnclaveResponse::Error(e.into()),
                EnclaveResponse::Session,
            );
            (Some(answer), true)
        }
        #[cfg(test)]
        Work::Hold(gate) => {
            state.hold_background(gate);
            (Some(applied()), true)
        }
        #[cfg(test)]
        Work::Probe(probe) => {
            probe(state);
            (Some(applied()), true)
        }
        #[cfg(test)]
        Work::Test(hook) => {
            state.apply_test_hook(hook);
            (Some(applied()), !matches!(hook, TestHook::StopWorker))
        }
        // Carried in a response the worker already answers, for the test alone.
        #[cfg(test)]
        Work::Incoming => (
            Some(EnclaveResponse::PeersAdmitted {
                nodes: vec![],
                refused: state.incoming_generations(),
            }),
            true,
        ),
    }));
    match done {
        Ok(done) => done,
        Err(payload) => {
            let why = format!(
                "the cluster worker panicked: {}",
                panic_reason(payload.as_ref())
            );
            warn!(reason = %why, "enclave failed: its cluster state is dropped");
            if let Err(e) = lifecycle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply(Event::WorkerFailed, Some(why.clone()))
            {
                warn!(error = %e, "lifecycle transition refused");
            }
            let state = node.take();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(state)));
            (
                Some(EnclaveResponse::Error(EnclaveError::new(
                    ErrorCode::Internal,
                    why,
                ))),
                true,
            )
        }
    }
}

/// Tests only: what a test hook answers once applied.
#[cfg(test)]
fn applied() -> EnclaveResponse {
    EnclaveResponse::PeersAdmitted {
        nodes: vec![],
        refused: vec![],
    }
}

/// The continuation of a background task: its result goes back to the node's thread as a job
/// answering `reply`. Once the enclave is gone it goes nowhere.
pub(super) fn resume_on(
    jobs: &Weak<Mutex<mpsc::Sender<Job>>>,
    reply: &mpsc::Sender<EnclaveResponse>,
) -> Then {
    let jobs = jobs
        .upgrade()
        .map(|tx| tx.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let reply = reply.clone();
    Box::new(move |resumed| {
        if let Some(jobs) = jobs {
            let _ = jobs.send(Job {
                work: Work::Resume(resumed),
                reply,
            });
        }
    })
}

/// Runs one cluster request on the node's thread; `None` when a worker answers it later.
fn cluster_request(
    node: &mut Node,
    (identity, lifecycle, binding): (&SecretIdentity, &Mutex<Lifecycle>, &OnceLock<NodeBinding>),
    request: EnclaveRequest,
    then: &dyn Fn() -> Then,
) -> Option<EnclaveResponse> {
    // The node key is published for documents before the phase says enrolled (or operational
    // after a restore): no document of those phases binds less than the node holds.
    let advance = |node: &Node, event| {
        publish_node_binding(node, binding);
        if let Err(e) = lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(event, None)
        {
            warn!(error = %e, "lifecycle transition refused");
        }
    };
    // A request admitted while the node was operational and queued behind its leaving runs on
    // a node that left: refused as the phase now refuses it (attacker review helper-76,
    // finding L4). Its shares are gone already; this keeps the rule in one place.
    if node.has_left() && !matches!(request, EnclaveRequest::CommitRoster { .. }) {
        return Some(EnclaveResponse::Error(EnclaveError::new(
            ErrorCode::WrongPhase,
            format!("{request} needs phase operational, enclave is left"),
        )));
    }
    let progress = |p: Progress| match p {
        Progress::Now(update) => Some(EnclaveResponse::Session(update)),
        Progress::Later => None,
    };
    let result = match request {
        EnclaveRequest::Enroll { kms_key_arn } => {
            node.enroll(&kms_key_arn).map(|(sealed, node_key)| {
                // A repeated enroll (same key) answers the same node key and moves nothing.
                let ready =
                    lifecycle.lock().unwrap_or_else(|p| p.into_inner()).phase() == Phase::Ready;
                if ready {
                    advance(node, Event::Enrolled);
                }
                EnclaveResponse::Enrolled {
                    sealed: ByteBuf::from(sealed),
                    node_key: ByteBuf::from(node_key.to_vec()),
                    kms_key_arn,
                }
            })
        }
        // A genesis without a roster: refused (ADR 0013 step 9), changing nothing.
        EnclaveRequest::Genesis { .. } => Err(MembershipError::LegacyGenesis.into()),
        EnclaveRequest::GenesisV2 { request } => {
            node.genesis_v2_request(identity, &request)
                .map(|(sealed, index, receipt)| {
                    advance(node, Event::GenesisAccepted);
                    EnclaveResponse::GenesisAccepted {
                        sealed: ByteBuf::from(sealed),
                        receipt: ByteBuf::from(receipt),
                        node: Some(index),
                    }
                })
        }
        EnclaveRequest::JoinCluster { join } => {
            node.join_cluster(&join)
                .map(|(sealed, index, version, statement)| {
                    advance(node, Event::Joined);
                    EnclaveResponse::Joined {
                        sealed: ByteBuf::from(sealed),
                        node: index,
                        version,
                        statement: ByteBuf::from(statement),
                    }
                })
        }
        EnclaveRequest::PrepareRoster { prepare } => {
            node.prepare_roster(&prepare)
                .map(|held| EnclaveResponse::RosterPrepared {
                    version: held.version,
                    chain: ByteBuf::from(held.chain.to_vec()),
                    statement: ByteBuf::from(held.statement),
                    prepared: held.prepared_statement.is_some(),
                    prepared_statement: held.prepared_statement.map(ByteBuf::from),
                    joining: held.joining,
                    sealed: held.sealed.map(ByteBuf::from),
                })
        }
        EnclaveRequest::CommitRoster { commit } => node.commit_roster(identity, &commit).map(|c| {
            if c.left {
                advance(node, Event::Left);
                return EnclaveResponse::RosterLeft {
                    version: c.version,
                    statement: ByteBuf::from(c.statement),
                    sealed: ByteBuf::from(c.sealed.unwrap_or_default()),
                };
            }
            if c.set_statement.is_some() {
                advance(node, Event::Committed);
            }
            EnclaveResponse::RosterCommitted {
                version: c.version,
                keys: ByteBuf::from(c.keys.to_vec()),
                count: c.count,
                statement: ByteBuf::from(c.statement),
                set_statement: c.set_statement.map(ByteBuf::from),
                sealed: c.sealed.map(ByteBuf::from),
                set: c.set,
                aux: c.aux,
            }
        }),
        EnclaveRequest::Restore { blobs } => {
            node.restore(identity, &blobs).map(|(keys, aux, resealed)| {
                advance(
                    node,
                    if node.joining() {
                        Event::RestoredJoining
                    } else if node.has_left() {
                        Event::RestoredLeft
                    } else if node.index().is_some() {
                        Event::Restored
                    } else {
                        Event::Enrolled
                    },
                );
                EnclaveResponse::Restored {
                    keys,
                    aux,
                    resealed,
                }
            })
        }
        EnclaveRequest::AdmitPeers { documents } => node
            .admit_peers(&documents)
            .map(|(nodes, refused)| EnclaveResponse::PeersAdmitted { nodes, refused }),
        EnclaveRequest::StartSession {
            session,
            participants,
            kind,
        } => match node.start_session(identity, &session, &participants, &kind, then) {
            Ok(p) => return progress(p),
            Err(e) => Err(e),
        },
        EnclaveRequest::Deliver { session, envelopes } => {
            match node.deliver(identity, &session, &envelopes, then) {
                Ok(p) => return progress(p),
                Err(e) => Err(e),
            }
        }
        EnclaveRequest::AbortSession { session } => {
            node.abort_session(&session).map(EnclaveResponse::Session)
        }
        EnclaveRequest::Inventory { nonce, after } => {
            let page = node.inventory(&nonce, after.as_deref());
            page.map(|(report, signature)| {
                let signature = ByteBuf::from(signature);
                EnclaveResponse::Inventory {
                    report: Box::new(report),
                    signature,
                }
            })
        }
        EnclaveRequest::Attest { .. } | EnclaveRequest::Status | EnclaveRequest::Clock => {
            return Some(EnclaveResponse::Error(EnclaveError::new(
                ErrorCode::Internal,
                "not a cluster request",
            )));
        }
    };
    Some(result.unwrap_or_else(|e| EnclaveResponse::Error(e.into())))
}

/// Publishes the node's node key for attestation once it holds one (it never changes after).
fn publish_node_binding(node: &Node, published: &OnceLock<NodeBinding>) {
    if published.get().is_some() {
        return;
    }
    if let Some((key, arn)) = node.node_binding() {
        match NodeBinding::new(key, arn.as_str()) {
            Ok(b) => {
                let _ = published.set(b);
            }
            Err(e) => warn!(error = %e, "the node key cannot be bound into documents"),
        }
    }
}
