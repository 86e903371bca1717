//! Running one protocol session among some nodes: fresh session ids, the relay of envelopes
//! round by round with a time limit on every round, and how a session ended.

use super::*;

/// How long after it is made a session id stays startable: the coordinator starts a session
/// at once, so this is margin for enclave clocks ahead of ours (an enclave refuses an expired
/// id, and one expiring more than an hour after its clock).
pub const SESSION_ID_LIFETIME_SECS: u64 = 600;
const _: () = assert!(SESSION_ID_LIFETIME_SECS < protocol::session::MAX_SESSION_ID_LIFETIME_SECS);

/// A fresh session id: it expires [`SESSION_ID_LIFETIME_SECS`] from now (session ids carry
/// their expiry, `protocol::session::session_id_expiry`), the rest random.
pub fn new_session_id() -> ByteBuf {
    let mut rest = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut rest);
    let expiry = now().as_secs() + SESSION_ID_LIFETIME_SECS;
    ByteBuf::from(protocol::session::session_id_expiring(expiry, &rest).to_vec())
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct SessionRun {
    /// Each participant's outcome (a node that could not be reached gets a `Failed` one).
    pub outcomes: BTreeMap<u16, Outcome>,
    /// Nodes that did not answer in time or could not be reached.
    pub unresponsive: Vec<u16>,
}

impl SessionRun {
    /// Nodes to blame for a failure: the unresponsive, and the culprits enclaves named.
    /// A culprit outside the session is ignored: session results are not authenticated yet
    /// (issue 18), so one parent could otherwise name every node of the cluster.
    pub fn blamed(&self) -> Vec<u16> {
        let mut blamed = self.unresponsive.clone();
        for o in self.outcomes.values() {
            if let Outcome::Failed { culprits, .. } = o {
                blamed.extend(culprits.iter().filter(|c| self.outcomes.contains_key(c)));
            }
        }
        blamed.sort_unstable();
        blamed.dedup();
        blamed
    }

    /// The first failure, if any: (node, code, message).
    pub fn failure(&self) -> Option<(u16, FailureCode, String)> {
        self.outcomes.iter().find_map(|(n, o)| match o {
            Outcome::Failed { code, message, .. } => Some((*n, *code, message.clone())),
            _ => None,
        })
    }
}

fn unreachable(message: String) -> Outcome {
    Outcome::Failed {
        code: FailureCode::Unreachable,
        message,
        culprits: vec![],
    }
}

/// Runs one session among `participants`, relaying every round, with `round_timeout` on each
/// call to an enclave. On the first failure the session is aborted at every participant (so a
/// request it held can be retried by another quorum) and the run ends.
pub async fn run_session(
    nodes: &Arc<Nodes>,
    session: &ByteBuf,
    participants: &[u16],
    kind: &SessionKind,
    round_timeout: Duration,
) -> SessionRun {
    run_session_yielding(
        nodes,
        session,
        participants,
        kind,
        round_timeout,
        None,
        &|| false,
    )
    .await
}

/// Longest a background session waits between two rounds for live requests to pass (well
/// under the enclaves' idle limit for setup sessions).
pub const MAX_YIELD: Duration = Duration::from_secs(120);

/// [`run_session`] for background work: before each round it waits while `yield_now()` says
/// live requests are running (at most [`MAX_YIELD`] per round), so that an enclave, which
/// computes one request at a time, serves them first.
pub async fn run_session_yielding(
    nodes: &Arc<Nodes>,
    session: &ByteBuf,
    participants: &[u16],
    kind: &SessionKind,
    round_timeout: Duration,
    deadline: Option<Instant>,
    yield_now: &(dyn Fn() -> bool + Sync),
) -> SessionRun {
    let route = Route::nodes(nodes);
    relay_session(
        &route,
        (session, participants, kind),
        (round_timeout, deadline),
        yield_now,
    )
    .await
}

/// Where a session's parties are reached. A session among the cluster's nodes reaches party
/// `i` at node `i`; one across a roster change (issue 20) has parties that are not this
/// coordinator's nodes yet (the nodes that join), reached at their parent proxies.
#[derive(Clone)]
pub struct Route {
    nodes: Arc<Nodes>,
    /// Party index to where it is reached; `None`: party `i` is node `i`.
    targets: Option<Arc<BTreeMap<u16, Target>>>,
}

/// Where one party of a session is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Node `i` of this coordinator's nodes (the roster in force).
    Node(u16),
    /// The enclave behind the parent proxy at this URL (a node that joins).
    Proxy(String),
}

impl Route {
    /// Party `i` is node `i`.
    pub fn nodes(nodes: &Arc<Nodes>) -> Self {
        Self {
            nodes: nodes.clone(),
            targets: None,
        }
    }

    /// Each party where `targets` says.
    pub fn to(nodes: &Arc<Nodes>, targets: BTreeMap<u16, Target>) -> Self {
        Self {
            nodes: nodes.clone(),
            targets: Some(Arc::new(targets)),
        }
    }

    /// Sends one request to party `party`, with a time limit.
    pub async fn call(
        &self,
        party: u16,
        request: &EnclaveRequest,
        timeout: Duration,
    ) -> Result<EnclaveResponse, CallError> {
        let Some(targets) = &self.targets else {
            return self.nodes.call(party, request, timeout).await;
        };
        match targets.get(&party) {
            Some(Target::Node(node)) => self.nodes.call(*node, request, timeout).await,
            Some(Target::Proxy(url)) => self
                .nodes
                .call_proxy(url, request, timeout)
                .await
                .map_err(|e| CallError(format!("party {party}: {}", e.0))),
            None => Err(CallError(format!("no party {party}"))),
        }
    }
}

/// Runs one session among the `participants` of `route`, as [`run_session`] does.
pub async fn run_routed_session(
    route: &Route,
    session: &ByteBuf,
    participants: &[u16],
    kind: &SessionKind,
    round_timeout: Duration,
) -> SessionRun {
    relay_session(
        route,
        (session, participants, kind),
        (round_timeout, None),
        &|| false,
    )
    .await
}

async fn relay_session(
    route: &Route,
    (session, participants, kind): (&ByteBuf, &[u16], &SessionKind),
    (round_timeout, deadline): (Duration, Option<Instant>),
    yield_now: &(dyn Fn() -> bool + Sync),
) -> SessionRun {
    // Each call gets the round's limit, cut to what is left before the deadline.
    let limit = move || match deadline {
        Some(d) => round_timeout
            .min(d.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(50)),
        None => round_timeout,
    };
    let mut relay = Relay::new(participants);
    let mut unresponsive = Vec::new();
    let mut tasks = JoinSet::new();
    for p in participants {
        let (route, node) = (route.clone(), *p);
        let request = EnclaveRequest::StartSession {
            session: session.clone(),
            participants: participants.to_vec(),
            kind: kind.clone(),
        };
        let t = limit();
        tasks.spawn(async move { (node, route.call(node, &request, t).await) });
    }
    let mut failed = false;
    'rounds: loop {
        while let Some(joined) = tasks.join_next().await {
            let Ok((node, result)) = joined else {
                failed = true;
                break 'rounds;
            };
            match result {
                Ok(EnclaveResponse::Session(update)) => relay.absorb(node, update),
                Ok(EnclaveResponse::Error(e)) => relay.fail(
                    node,
                    Outcome::Failed {
                        code: e.code.into(),
                        message: e.message,
                        culprits: vec![],
                    },
                ),
                Ok(other) => relay.fail(node, unreachable(format!("unexpected answer {other}"))),
                Err(e) => {
                    unresponsive.push(node);
                    relay.fail(node, unreachable(e.0));
                }
            }
            if relay
                .outcomes()
                .values()
                .any(|o| matches!(o, Outcome::Failed { .. }))
            {
                failed = true;
                break 'rounds;
            }
        }
        let waiting = Instant::now();
        while yield_now() && waiting.elapsed() < MAX_YIELD {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut any = false;
        while let Some((node, envelopes)) = relay.next_delivery() {
            any = true;
            let route = route.clone();
            let request = EnclaveRequest::Deliver {
                session: session.clone(),
                envelopes,
            };
            let t = limit();
            tasks.spawn(async move { (node, route.call(node, &request, t).await) });
        }
        if !any {
            break;
        }
    }
    if failed || !relay.finished() {
        tasks.abort_all();
        // Also at nodes that did not answer in time: a slow node may be alive and hold the
        // request until it hears of the abort.
        abort(route, session, participants).await;
        for p in participants {
            if !relay.outcomes().contains_key(p) {
                relay.fail(
                    *p,
                    Outcome::Failed {
                        code: FailureCode::Aborted,
                        message: "session aborted after another participant failed".into(),
                        culprits: vec![],
                    },
                );
            }
        }
    }
    SessionRun {
        outcomes: relay.outcomes().clone(),
        unresponsive,
    }
}

/// Aborts a session at every participant that still answers (best effort, briefly).
async fn abort(route: &Route, session: &ByteBuf, participants: &[u16]) {
    let mut tasks = JoinSet::new();
    for p in participants {
        let (route, node) = (route.clone(), *p);
        let request = EnclaveRequest::AbortSession {
            session: session.clone(),
        };
        tasks.spawn(async move {
            let _ = route.call(node, &request, Duration::from_secs(2)).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
