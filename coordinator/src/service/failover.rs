//! Failover: choosing a quorum (one holding a presignature when allowed, else the next in
//! rotation), running one signing attempt, and judging its failure by its typed codes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::policy::{Approved, Scheme, SignRequest};
use protocol::session::{FailureCode, Outcome, SessionKind};
use serde_bytes::ByteBuf;
use tracing::warn;

use super::ledger::Ticket;
use super::{Coordinator, MAX_ATTEMPTS, NO_QUORUM_POLL, err, unix_now, verify_signature};
use crate::api::{ApiError, ErrorCode, Hex, KeyInfo, PresignatureUse, SignatureInfo, path_string};
use crate::nodes::{SessionRun, run_session_yielding};

/// All `k`-subsets of `nodes`, in order.
pub fn combinations(nodes: &[u16], k: usize) -> Vec<Vec<u16>> {
    fn go(nodes: &[u16], k: usize, start: usize, cur: &mut Vec<u16>, out: &mut Vec<Vec<u16>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..nodes.len() {
            cur.push(nodes[i]);
            go(nodes, k, i + 1, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if k > 0 && k <= nodes.len() {
        go(nodes, k, 0, &mut Vec::new(), &mut out);
    }
    out
}

pub(super) fn quorum_string(q: &[u16]) -> String {
    q.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

pub(super) fn parse_quorum(q: &str) -> Vec<u16> {
    q.split(',').filter_map(|n| n.parse().ok()).collect()
}

/// How many times a payload's signing waits and tries the same quorum again after `not_yet`;
/// after that the quorum counts as failed.
const NOT_YET_RETRIES: u32 = 2;

/// How long to wait before trying again after an enclave answered `not_yet`.
const NOT_YET_PAUSE: std::time::Duration = std::time::Duration::from_millis(1000);

/// Whether an enclave refused the request itself (its approvals, expiry or shape), as opposed
/// to failing to run it.
pub(super) fn refusal(code: FailureCode) -> bool {
    matches!(code, FailureCode::Refused | FailureCode::BadRequest)
}

/// One payload's signing attempt ended.
enum Attempt {
    Signed(SignatureInfo),
    /// Try again (with another quorum, or without the presignature).
    Retry {
        /// Nodes not to use again for this payload.
        exclude: Vec<u16>,
        /// Nodes that misbehaved or did not answer: left out of every quorum for a while.
        suspend: Vec<u16>,
        /// The failure that decides how to retry (`NoPresignature`: retry without one).
        code: Option<FailureCode>,
        why: String,
    },
    /// Stop: retrying cannot help.
    Fatal(ApiError),
}

impl Coordinator {
    /// Picks a quorum among healthy nodes not excluded whose members admitted each other
    /// (`Nodes::usable`) and that did not fail this request already: one holding a ready
    /// presignature when allowed (claimed atomically), otherwise the next in rotation.
    async fn pick_quorum(
        &self,
        key: &KeyInfo,
        path: &[u32],
        excluded: &BTreeSet<u16>,
        failed: &BTreeSet<Vec<u16>>,
        use_presignature: bool,
    ) -> Result<(Vec<u16>, Option<Vec<u8>>), ApiError> {
        let healthy: Vec<u16> = self
            .nodes
            .healthy_nodes()
            .into_iter()
            .filter(|n| !excluded.contains(n))
            .collect();
        let t = usize::from(key.threshold);
        let mut quorums = combinations(&healthy, t);
        let candidates = quorums.len();
        quorums.retain(|q| self.nodes.usable(q) && !failed.contains(q));
        if quorums.is_empty() {
            return Err(err(
                ErrorCode::NoQuorum,
                format!(
                    "{} healthy node(s) available, {t} needed; none of their {candidates} \
                     quorum(s) both admitted by each other and not yet failed",
                    healthy.len()
                ),
            ));
        }
        if use_presignature && key.scheme == Scheme::EcdsaSecp256k1 && self.settings.pool_level > 0
        {
            let (k, p) = (key.key_id.clone(), path_string(path));
            let qs: Vec<String> = quorums.iter().map(|q| quorum_string(q)).collect();
            if let Some((id, q)) = self
                .db(move |s| s.claim_best_presignature(&k, &p, &qs, unix_now()))
                .await?
            {
                return Ok((parse_quorum(&q), Some(id)));
            }
        }
        let i = self.rotation.fetch_add(1, Ordering::Relaxed) % quorums.len();
        Ok((quorums[i].clone(), None))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn sign_payload(
        &self,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        index: u16,
        expected_key: &[u8],
        ticket: &Ticket,
        deadline: Instant,
        presign: Option<PresignatureUse>,
        attempts: &mut u32,
    ) -> Result<SignatureInfo, ApiError> {
        let r = &wire.request;
        let mut attempt_no = 0u32;
        let mut excluded = BTreeSet::new();
        // Quorums whose session failed for this payload: not tried again (a failure no one is
        // blamed for, such as an envelope that does not verify, leaves out the pair, not
        // whoever reported it).
        let mut failed = BTreeSet::new();
        // A presignature signs only a preimage the enclaves hash themselves; a raw digest is
        // signed in full (RUSTSEC-2025-0127), and the result says so (`presigned: false`).
        let mut use_presig = presign != Some(PresignatureUse::Never)
            && r.payloads
                .get(usize::from(index))
                .is_some_and(protocol::policy::Payload::is_hashed);
        let mut last_error = String::new();
        let mut not_yet_left = NOT_YET_RETRIES;
        loop {
            if Instant::now() >= deadline {
                return Err(err(
                    ErrorCode::DeadlineExceeded,
                    format!("no quorum signed before the deadline; last error: {last_error}"),
                ));
            }
            if attempt_no >= MAX_ATTEMPTS {
                return Err(err(
                    ErrorCode::SigningFailed,
                    format!("{MAX_ATTEMPTS} sessions failed; last error: {last_error}"),
                ));
            }
            let (quorum, presig) = match self
                .pick_quorum(key, &r.path, &excluded, &failed, use_presig)
                .await
            {
                Ok(q) => q,
                Err(e) if e.code == ErrorCode::NoQuorum => {
                    // Wait, within the deadline, for enough nodes to be healthy again (a node
                    // restarting, a coordinator that just started and has not attested yet).
                    if Instant::now() + NO_QUORUM_POLL >= deadline {
                        let why = if last_error.is_empty() {
                            e.message
                        } else {
                            format!("{}; last error: {last_error}", e.message)
                        };
                        return Err(err(ErrorCode::NoQuorum, why));
                    }
                    self.nodes.check(self.settings.attest_interval).await;
                    tokio::time::sleep(NO_QUORUM_POLL).await;
                    excluded.clear();
                    failed.clear();
                    continue;
                }
                Err(e) => return Err(e),
            };
            if attempt_no > 0 {
                self.metrics.failover();
            }
            let session = ticket.session(index, attempt_no);
            attempt_no += 1;
            *attempts += 1;
            let attempt = self
                .attempt(
                    wire,
                    key,
                    index,
                    expected_key,
                    &quorum,
                    presig.clone(),
                    &session,
                    deadline,
                )
                .await;
            match attempt {
                Attempt::Signed(sig) => return Ok(sig),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry {
                    exclude,
                    suspend,
                    code,
                    why,
                } => {
                    warn!(
                        key = r.key_id,
                        ?quorum,
                        why,
                        "signing attempt failed; retrying"
                    );
                    if code == Some(FailureCode::NotYet) && not_yet_left > 0 {
                        // An enclave whose clock is behind ours: the same quorum, a moment
                        // later (the request is valid from its creation time at every node).
                        // Only a few times: a parent could answer `not_yet` for ever.
                        not_yet_left -= 1;
                        let left = deadline.saturating_duration_since(Instant::now());
                        tokio::time::sleep(NOT_YET_PAUSE.min(left)).await;
                    } else if code == Some(FailureCode::NoPresignature) && presig.is_some() {
                        use_presig = false;
                    } else {
                        failed.insert(quorum);
                    }
                    for n in &suspend {
                        self.nodes.suspend(*n, &why);
                    }
                    excluded.extend(exclude);
                    last_error = why;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        index: u16,
        expected_key: &[u8],
        quorum: &[u16],
        presignature: Option<Vec<u8>>,
        session: &ByteBuf,
        deadline: Instant,
    ) -> Attempt {
        let presigned = presignature.is_some();
        let kind = SessionKind::Sign {
            request: wire.clone(),
            payload: index,
            presignature: presignature.map(ByteBuf::from),
        };
        let round = self
            .settings
            .sign_round_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100));
        let run = run_session_yielding(
            &self.nodes,
            session,
            quorum,
            &kind,
            round,
            Some(deadline),
            &|| false,
        )
        .await;
        let payload = &wire.request.payloads[usize::from(index)];
        // What the signature is over: the digest (ECDSA) or the message (EdDSA).
        let signed_over = match (key.scheme, payload.ecdsa_digest()) {
            (Scheme::EcdsaSecp256k1, Some(digest)) => digest.to_vec(),
            _ => payload.bytes().to_vec(),
        };
        let expected = Expected {
            scheme: key.scheme,
            public_key: expected_key,
            payload: &signed_over,
            index,
            quorum,
            presigned,
        };
        match signed(&run.outcomes, &expected) {
            Some(attempt) => attempt,
            None => judge_failures(&run, quorum),
        }
    }

    /// Aborts, at every node, every session a previous owner of a request may have started.
    pub(super) async fn abort_sessions_of(&self, previous: &Ticket, payloads: u16) {
        let mut tasks = tokio::task::JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(32));
        for payload in 0..payloads {
            for attempt in 0..MAX_ATTEMPTS {
                for node in 0..self.nodes.count() {
                    let nodes = self.nodes.clone();
                    let request = protocol::EnclaveRequest::AbortSession {
                        session: previous.session(payload, attempt),
                    };
                    let permits = permits.clone();
                    tasks.spawn(async move {
                        let _permit = permits.acquire().await;
                        let _ = nodes.call(node, &request, Duration::from_secs(2)).await;
                    });
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// What a signing attempt must produce.
struct Expected<'a> {
    scheme: Scheme,
    public_key: &'a [u8],
    payload: &'a [u8],
    index: u16,
    quorum: &'a [u16],
    presigned: bool,
}

/// The attempt's result if a participant answered with a signature: accepted only if it is
/// under the expected key and verifies.
fn signed(
    outcomes: &std::collections::BTreeMap<u16, Outcome>,
    e: &Expected<'_>,
) -> Option<Attempt> {
    for (node, o) in outcomes {
        if let Outcome::Signed {
            signature,
            public_key,
        } = o
        {
            if public_key.as_slice() != e.public_key {
                return Some(Attempt::Retry {
                    exclude: vec![*node],
                    suspend: vec![*node],
                    code: None,
                    why: format!("node {node} signed under an unexpected public key"),
                });
            }
            if let Err(err) = verify_signature(e.scheme, e.public_key, e.payload, signature) {
                return Some(Attempt::Retry {
                    exclude: vec![*node],
                    suspend: vec![*node],
                    code: None,
                    why: format!("node {node} returned a signature that does not verify: {err}"),
                });
            }
            return Some(Attempt::Signed(SignatureInfo {
                payload: e.index,
                signature: Hex(signature.to_vec()),
                public_key: Hex(e.public_key.to_vec()),
                nodes: e.quorum.to_vec(),
                presigned: e.presigned,
            }));
        }
    }
    None
}

/// What to do after a session that produced no signature: retry (elsewhere, or without the
/// presignature) or give up, from the participants' failure codes.
fn judge_failures(run: &SessionRun, quorum: &[u16]) -> Attempt {
    let failures: Vec<(u16, FailureCode, String)> = run
        .outcomes
        .iter()
        .filter_map(|(n, o)| match o {
            Outcome::Failed { code, message, .. } if *code != FailureCode::Aborted => {
                Some((*n, *code, message.clone()))
            }
            _ => None,
        })
        .collect();
    let why = failures
        .iter()
        .map(|(n, c, m)| format!("node {n}: {c}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    if failures
        .iter()
        .any(|(_, c, _)| *c == FailureCode::NoPresignature)
    {
        return Attempt::Retry {
            exclude: vec![],
            suspend: vec![],
            code: Some(FailureCode::NoPresignature),
            why: format!("{}: {why}", FailureCode::NoPresignature),
        };
    }
    // An enclave whose clock has not reached the request's creation time yet (`not_yet`):
    // nothing is wrong with the request or the nodes; try again shortly (ADR 0011).
    // Blame still applies (the answer is not authenticated: a parent could send it to shield a
    // partner), and the caller tries the same quorum only a couple of times.
    if let Some((n, _, m)) = failures.iter().find(|(_, c, _)| *c == FailureCode::NotYet) {
        let suspend = run.blamed();
        return Attempt::Retry {
            exclude: suspend.clone(),
            suspend,
            code: Some(FailureCode::NotYet),
            why: format!("node {n}: {m}"),
        };
    }
    // An enclave that consumed the request but no longer holds its signature (`replayed`):
    // the request was signed in a session whose result was lost, and cannot be signed again.
    if let Some((n, _, m)) = failures
        .iter()
        .find(|(_, c, _)| *c == FailureCode::Replayed)
    {
        return Attempt::Fatal(err(
            ErrorCode::Interrupted,
            format!(
                "node {n} refuses this request ({m}): it was signed in a session whose result \
                 was lost; make a new request"
            ),
        ));
    }
    // `in_progress`: a session the relay lost track of still holds the request at these
    // nodes (until they hear the abort, or it idles out); `busy`: these nodes are at their cap
    // of live sessions (issue 18). Neither is misbehaviour: other nodes are tried, and once
    // every quorum is left out the caller waits and tries them all again.
    let busy: Vec<u16> = failures
        .iter()
        .filter(|(_, c, _)| matches!(*c, FailureCode::InProgress | FailureCode::Busy))
        .map(|(n, _, _)| *n)
        .collect();
    // Refused by every participant: the request itself is refused (approvals, expiry).
    let refused: Vec<&(u16, FailureCode, String)> =
        failures.iter().filter(|(_, c, _)| refusal(*c)).collect();
    if !refused.is_empty() && refused.len() == quorum.len() {
        return Attempt::Fatal(err(ErrorCode::Refused, refused[0].2.clone()));
    }
    let suspend = run.blamed();
    // A failure no one is blamed for (an envelope that does not verify: the relay's doing,
    // or a peer's parent's) leaves out no node: the caller does not try this quorum again.
    // Leaving out whoever reported it would let one parent, by corrupting its own node's
    // envelopes, have every honest partner it is paired with left out in turn.
    let mut exclude = suspend.clone();
    exclude.extend(refused.iter().map(|(n, _, _)| *n));
    exclude.extend(busy);
    Attempt::Retry {
        exclude,
        suspend,
        code: failures.first().map(|(_, c, _)| *c),
        why: if why.is_empty() {
            "session did not finish".into()
        } else {
            why
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcomes: &[(u16, FailureCode)]) -> SessionRun {
        SessionRun {
            outcomes: outcomes
                .iter()
                .map(|(n, code)| {
                    let o = Outcome::Failed {
                        code: *code,
                        message: code.to_string(),
                        culprits: vec![],
                    };
                    (*n, o)
                })
                .collect(),
            unresponsive: vec![],
        }
    }

    /// Issue 18: a node at its cap of live sessions (`busy`) is left out of this payload's
    /// next quorums, not suspended: it did nothing wrong.
    #[test]
    fn a_busy_node_is_tried_again_later_not_blamed() {
        let attempt = judge_failures(
            &run(&[(0, FailureCode::Aborted), (1, FailureCode::Busy)]),
            &[0, 1],
        );
        match attempt {
            Attempt::Retry {
                exclude,
                suspend,
                code,
                ..
            } => {
                assert_eq!(exclude, vec![1]);
                assert!(suspend.is_empty());
                assert_eq!(code, Some(FailureCode::Busy));
            }
            _ => panic!("a busy node is retried elsewhere"),
        }
    }

    #[test]
    fn combinations_are_all_subsets() {
        assert_eq!(
            combinations(&[0, 1, 2], 2),
            vec![vec![0, 1], vec![0, 2], vec![1, 2]]
        );
        assert_eq!(combinations(&[0, 1], 3), Vec::<Vec<u16>>::new());
        assert_eq!(combinations(&[0, 1, 2, 3, 4], 3).len(), 10);
    }
}
