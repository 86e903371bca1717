//! Moving the cluster's keys to the pending roster change (issue 20, step 3 of
//! `docs/lifecycle.md`): `POST /v1/cluster/roster/move`, one step per call — the new party
//! set's auxiliary information (`SessionKind::MoveAux`), or one key (`SessionKind::MoveKey`) —
//! so that a client prints progress between steps and runs a failed one again.
//!
//! The parties are every node of the new roster at its index in it, then, for a key, the nodes
//! leaving (`protocol::roster::RosterDiff::parties`), which every enclave computes from its
//! own sealed change; the coordinator reaches a node that stays or leaves at its own proxy and
//! a node that joins at the parent proxy the client names. Nothing here is trusted by the
//! enclaves: each checks that it is prepared for the change, verifies every party's document
//! against the entry the rosters list for it, and takes a key's facts from its own record (a
//! joining node from the facts the holders confirm). The coordinator checks each receiver's
//! signed word under the node key the new roster lists, and that every party confirmed one
//! digest, so a client is told a step moved only what the commit will find.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::genesis::RosterEntry;
use protocol::roster::transfer::{KeyInfo, key_moved_message};
use protocol::roster::{ChangeParty, ChangeRoster};
use protocol::session::{FailureCode, Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use rand::RngCore;
use serde_bytes::ByteBuf;
use tracing::info;

use super::super::{Coordinator, err, unix_now};
use super::ClusterRoster;
use crate::api::{
    ApiError, ErrorCode, Hex, JoiningProxy, MoveRosterBody, MoveStep, PartyMoved,
    RosterMovedResult, Wire,
};
use crate::audit::AuditEntry;
use crate::nodes::{Route, SessionRun, Target, new_session_id, run_routed_session};

/// How long a party has to answer a status or attestation call of a move.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One party of a move: where it is reached and the entry the rosters list for it.
pub(super) struct Party {
    /// Its place in the change (`current`: index in the roster in force, `next`: in the new).
    pub(super) at: ChangeParty,
    pub(super) target: Target,
    pub(super) entry: RosterEntry,
}

/// The pending change a move is for, with what every step needs.
pub(super) struct Moving {
    /// The roster the change replaces.
    pub(super) roster: ClusterRoster,
    pub(super) hash: [u8; 32],
    pub(super) version: u32,
    pub(super) parties: Vec<Party>,
}

/// The parent proxies the client named, by node key, each checked to be a node the change
/// adds, once.
fn joining_proxies(
    joining: &[JoiningProxy],
    added: &BTreeSet<Vec<u8>>,
) -> Result<BTreeMap<Vec<u8>, String>, ApiError> {
    let malformed = |m: String| err(ErrorCode::MalformedRequest, m);
    let mut out = BTreeMap::new();
    for j in joining {
        if !is_proxy_base(&j.proxy) {
            return Err(malformed(format!(
                "joining: proxy {:?} is not a base URL (http:// or https://, a host and a port, \
                 no user, path, query or fragment)",
                j.proxy
            )));
        }
        if !added.contains(&j.node_key.0) {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "not_joining: node key {} is not a node the pending change adds",
                    hex::encode(&j.node_key.0)
                ),
            ));
        }
        if out.insert(j.node_key.0.clone(), j.proxy.clone()).is_some() {
            return Err(malformed(format!(
                "joining: node key {} named twice",
                hex::encode(&j.node_key.0)
            )));
        }
    }
    Ok(out)
}

/// Whether `url` is a parent proxy's base URL: `http://` or `https://`, a host (and port), no
/// user info, no path beyond `/`, no query or fragment. The coordinator calls
/// `<url>/v1/enclave` there, and nothing else (attacker review helper-76, finding L2: a URL
/// ending in `?` would reach any path of any host).
fn is_proxy_base(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let scheme = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority = uri
        .authority()
        .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty());
    scheme
        && authority
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
        && !url.contains('#')
}

/// Where the parties of a change are reached.
enum Reach<'a> {
    /// The pending change: a node of the roster in force at its node, a node that joins at the
    /// parent proxy named for its node key.
    Pending(&'a BTreeMap<Vec<u8>, String>),
    /// The change committed last: every party at the proxy recorded for it (`replaced`, by
    /// index in the roster it replaced; `proxies`, by index in the new), a node that joined at
    /// the proxy named for its node key instead, if one is (its parent moved).
    Committed {
        replaced: &'a [String],
        proxies: &'a [String],
        joining: &'a BTreeMap<Vec<u8>, String>,
    },
}

/// Every party of the change in party order, with where it is reached.
fn parties_of(
    (roster, change): (&ClusterRoster, &ChangeRoster),
    diff: &protocol::roster::RosterDiff,
    reach: Reach<'_>,
) -> Result<Vec<Party>, ApiError> {
    let recorded = |urls: &[String], i: u16| {
        urls.get(usize::from(i))
            .cloned()
            .map(Target::Proxy)
            .ok_or_else(|| {
                err(
                    ErrorCode::Storage,
                    "the recorded commit names no proxy for a party (a commit recorded again \
                     by POST /v1/recover names none of the roster it replaced: run the commit \
                     at the nodes of the roster in force only)",
                )
            })
    };
    diff.parties()
        .into_iter()
        .map(|at| {
            let entry = match (at.next, at.current) {
                (Some(j), _) => change.roster.get(usize::from(j)),
                (None, Some(i)) => roster.roster.get(usize::from(i)),
                (None, None) => None,
            }
            .cloned()
            .ok_or_else(|| err(ErrorCode::Internal, "a party the rosters do not list"))?;
            let target = match (&reach, at.current, at.next) {
                (Reach::Committed { replaced, .. }, Some(i), _) => recorded(replaced, i)?,
                (Reach::Committed { joining, .. }, None, Some(_))
                    if joining.contains_key(entry.node_key.as_slice()) =>
                {
                    Target::Proxy(joining[entry.node_key.as_slice()].clone())
                }
                (Reach::Committed { proxies, .. }, None, Some(j)) => recorded(proxies, j)?,
                (Reach::Committed { .. }, None, None) => {
                    return Err(err(ErrorCode::Internal, "a party the rosters do not list"));
                }
                (Reach::Pending(_), Some(i), _) => Target::Node(i),
                (Reach::Pending(proxies), None, _) => Target::Proxy(proxies.get(entry.node_key.as_slice()).cloned().ok_or_else(
                    || {
                        err(
                            ErrorCode::InvalidRequest,
                            format!(
                                "missing_proxy: no parent proxy named for the node that joins at \
                                 index {} (node key {})",
                                at.next.unwrap_or_default(),
                                hex::encode(&entry.node_key)
                            ),
                        )
                    },
                )?),
            };
            Ok(Party { at, target, entry })
        })
        .collect()
}

/// Party `party`'s place in the change, in words.
pub(super) fn place(at: ChangeParty, party: u16) -> String {
    match at {
        ChangeParty {
            next: Some(j),
            current: None,
        } => format!("the node joining at index {j}"),
        ChangeParty {
            next: Some(j),
            current: Some(i),
        } => format!("node {i} (index {j} in the new roster)"),
        ChangeParty {
            current: Some(i), ..
        } => format!("node {i} (leaving)"),
        _ => format!("party {party}"),
    }
}

/// What a failed session says, naming the party by its place in the change (`at`, by party).
fn session_failure(run: &SessionRun, at: &BTreeMap<u16, ChangeParty>) -> Option<ApiError> {
    let (party, code, message) = run.failure()?;
    let place = match at.get(&party) {
        Some(at) => place(*at, party),
        None => format!("party {party}"),
    };
    let api = match code {
        FailureCode::Unreachable | FailureCode::Aborted => ErrorCode::NoQuorum,
        _ => ErrorCode::Refused,
    };
    Some(err(api, format!("{place}: {code}: {message}")))
}

impl Coordinator {
    /// One step of moving the keys to the pending roster change (`POST
    /// /v1/cluster/roster/move`): the new party set's auxiliary information, or one key.
    pub async fn move_roster(
        self: &Arc<Self>,
        body: MoveRosterBody,
        credential: String,
    ) -> Result<RosterMovedResult, ApiError> {
        self.measured("move_roster", self.run_move(body, credential))
            .await
    }

    async fn run_move(
        self: &Arc<Self>,
        body: MoveRosterBody,
        credential: String,
    ) -> Result<RosterMovedResult, ApiError> {
        let moving = self.moving((&body.change, &body.joining), false).await?;
        let (result, action, key_id) = match &body.step {
            MoveStep::Aux => (self.move_aux(&moving).await, "move_aux", None),
            MoveStep::Key { key_id } => (
                self.move_key(&moving, key_id).await,
                "move_key",
                Some(key_id.clone()),
            ),
        };
        let (outcome, detail) = match &result {
            Ok(r) => (
                "ok".to_string(),
                format!(
                    "roster version {}: change {}; sealed incoming at new indices {:?}{}",
                    r.version,
                    hex::encode(moving.hash),
                    r.moved.iter().map(|m| m.index).collect::<Vec<_>>(),
                    match (&r.generation, r.moved.first()) {
                        (Some(g), Some(m)) => format!(
                            ", dealt from generation {g} by nodes {:?}, confirmed {}",
                            r.dealers,
                            hex::encode(&m.digest.0)
                        ),
                        (None, Some(m)) => format!(", public digest {}", hex::encode(&m.digest.0)),
                        _ => String::new(),
                    }
                ),
            ),
            Err(e) => (
                e.code.as_str().to_string(),
                format!(
                    "roster version {}: change {}: {}",
                    moving.version,
                    hex::encode(moving.hash),
                    e.message
                ),
            ),
        };
        let entry = AuditEntry {
            action: action.into(),
            actors: vec![],
            key_id,
            payload_digests: vec![],
            path: vec![],
            nodes: result
                .as_ref()
                .map(|r| r.moved.iter().map(|m| m.index).collect())
                .unwrap_or_default(),
            outcome,
            request_id: None,
            credential: Some(credential),
            detail: Some(detail),
        };
        // The nodes sealed whatever they sealed: a failed write is reported, and the step may
        // run again (a later run replaces an earlier one at every node).
        self.db(move |s| s.append_audit(unix_now(), &entry)).await?;
        result
    }

    /// The pending change whose SHA-256 is `change`, its parties and where each is reached
    /// (a node that joins at the proxy `joining` names for it). With `committed`, also the
    /// change committed last, run again (a node that missed the commit catches up): its
    /// parties at the proxies recorded with it.
    pub(super) async fn moving(
        &self,
        (change, joining): (&Hex, &[JoiningProxy]),
        committed: bool,
    ) -> Result<Moving, ApiError> {
        let hash = super::change_hash(change)?;
        // The nodes a change adds to `roster`, by node key.
        let added = |roster: &ClusterRoster, change: &ChangeRoster| -> BTreeSet<Vec<u8>> {
            change
                .roster
                .iter()
                .filter(|e| roster.roster.iter().all(|r| r.node_key != e.node_key))
                .map(|e| e.node_key.to_vec())
                .collect()
        };
        if committed {
            let commits = self.commits().await?;
            if let Some(last) = commits.last().filter(|c| c.change.hash == hash) {
                let rosters = self.rosters().await?;
                let roster = rosters
                    .get(rosters.len().saturating_sub(2))
                    .cloned()
                    .ok_or_else(|| err(ErrorCode::Internal, "no roster before the last"))?;
                let change = last.change.approved.request.to_wire();
                let proxies = joining_proxies(joining, &added(&roster, &change))?;
                let reach = Reach::Committed {
                    replaced: &last.row.replaced,
                    proxies: &last.row.proxies,
                    joining: &proxies,
                };
                return Self::moving_of(roster, (hash, &change), reach);
            }
        }
        let roster = self.roster_in_force().await?;
        let proposal = self.pending_proposal(&hash).await?;
        let change = proposal.request.request.to_wire();
        let proxies = joining_proxies(joining, &added(&roster, &change))?;
        Self::moving_of(roster, (hash, &change), Reach::Pending(&proxies))
    }

    fn moving_of(
        roster: ClusterRoster,
        (hash, change): ([u8; 32], &ChangeRoster),
        reach: Reach<'_>,
    ) -> Result<Moving, ApiError> {
        let diff = change
            .diff(&[roster.roster.as_slice()], 0)
            .map_err(|e| super::roster_refused(&e))?;
        let parties = parties_of((&roster, change), &diff, reach)?;
        Ok(Moving {
            roster,
            version: change.new_version(),
            hash,
            parties,
        })
    }

    /// Where each of `parties` (party index, party) is reached.
    pub(super) fn route_of(&self, parties: &[(u16, &Party)]) -> Route {
        Route::to(
            &self.nodes,
            parties
                .iter()
                .map(|(p, party)| (*p, party.target.clone()))
                .collect(),
        )
    }

    /// Runs the session `kind` among `parties` (party index, party), in party order, on
    /// `route`: the outcomes, or the first failure named by the party's place in the change.
    async fn run_among(
        &self,
        route: &Route,
        parties: &[(u16, &Party)],
        kind: &SessionKind,
    ) -> Result<SessionRun, ApiError> {
        let participants: Vec<u16> = parties.iter().map(|(p, _)| *p).collect();
        let run = run_routed_session(
            route,
            &new_session_id(),
            &participants,
            kind,
            self.settings.setup_round_timeout,
        )
        .await;
        let at: BTreeMap<u16, ChangeParty> = parties.iter().map(|(i, p)| (*i, p.at)).collect();
        match session_failure(&run, &at) {
            Some(e) => Err(e),
            None => Ok(run),
        }
    }

    /// A fresh attestation document of every party of `parties`, in their order: what the
    /// enclaves verify each party by, against the entry the rosters list for it.
    async fn documents(&self, parties: &[(u16, &Party)]) -> Result<Vec<ByteBuf>, ApiError> {
        let mut out = Vec::with_capacity(parties.len());
        for (_, p) in parties {
            let document = match &p.target {
                Target::Node(i) => self.nodes.attest(*i).await.map(|(d, _)| d).map_err(|e| e.0),
                Target::Proxy(url) => {
                    let mut nonce = vec![0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut nonce);
                    let call = EnclaveRequest::Attest {
                        nonce: Some(ByteBuf::from(nonce)),
                    };
                    match self.nodes.call_proxy(url, &call, ASK_TIMEOUT).await {
                        Ok(EnclaveResponse::Attestation { document }) => Ok(document.into_vec()),
                        Ok(other) => Err(format!("{url}: unexpected {other}")),
                        Err(e) => Err(e.0),
                    }
                }
            }
            .map_err(|why| {
                err(
                    ErrorCode::NoQuorum,
                    format!(
                        "every party's attestation document is needed: {}",
                        why.chars().take(300).collect::<String>()
                    ),
                )
            })?;
            out.push(ByteBuf::from(document));
        }
        Ok(out)
    }

    /// The new party set's auxiliary information: every node of the new roster, at its index
    /// in it. A node without safe primes ready is asked alone first, which starts them there
    /// (and refuses): the others keep theirs for the run, and the client asks again.
    async fn move_aux(&self, m: &Moving) -> Result<RosterMovedResult, ApiError> {
        // The new roster's nodes come first in the party space, at their index in it.
        let receivers: Vec<(u16, &Party)> = (0u16..)
            .zip(&m.parties)
            .filter(|(_, p)| p.at.next.is_some())
            .collect();
        // Needed where a node holds auxiliary information for the roster in force (each such
        // node refuses the commit without the new party set's): none does in a cluster that
        // never made any, and the step is then a no-op, named by an empty `moved`.
        if !self.holds_aux(m).await {
            return Ok(RosterMovedResult {
                version: m.version,
                request_sha256: Hex(m.hash.to_vec()),
                step: MoveStep::Aux,
                generation: None,
                facts: None,
                dealers: vec![],
                moved: vec![],
                leaving: vec![],
            });
        }
        let route = self.route_of(&receivers);
        let participants: Vec<u16> = receivers.iter().map(|(j, _)| *j).collect();
        let mut unready = Vec::new();
        for j in &participants {
            match route.call(*j, &EnclaveRequest::Status, ASK_TIMEOUT).await {
                Ok(EnclaveResponse::Status { primes_ready, .. }) => {
                    if !primes_ready {
                        unready.push(*j)
                    }
                }
                Ok(other) => {
                    return Err(err(
                        ErrorCode::NoQuorum,
                        format!("index {j}: unexpected {other}"),
                    ));
                }
                Err(e) => return Err(err(ErrorCode::NoQuorum, format!("index {j}: {}", e.0))),
            }
        }
        let documents = self.documents(&receivers).await?;
        let kind = SessionKind::MoveAux { documents };
        if !unready.is_empty() {
            for j in &unready {
                let start = EnclaveRequest::StartSession {
                    session: new_session_id(),
                    participants: participants.clone(),
                    kind: kind.clone(),
                };
                // Refused, having started its primes (or for a reason the run will name).
                let _ = route.call(*j, &start, ASK_TIMEOUT).await;
            }
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "primes_not_ready: the nodes at new indices {unready:?} are generating safe \
                     primes (20 to 50 s each); ask again"
                ),
            ));
        }
        info!(
            version = m.version,
            parties = participants.len(),
            "making the new party set's auxiliary information"
        );
        let run = self.run_among(&route, &receivers, &kind).await?;
        let mut moved = Vec::new();
        for (j, p) in receivers.iter().copied() {
            match run.outcomes.get(&j) {
                Some(Outcome::AuxMoved {
                    version,
                    index,
                    aux,
                    ..
                }) if *version == m.version && *index == j => moved.push(PartyMoved {
                    index: *index,
                    node_key: Hex::from(&p.entry.node_key),
                    digest: Hex(aux.to_vec()),
                    statement: None,
                }),
                other => {
                    return Err(err(
                        ErrorCode::Internal,
                        format!("index {j} answered {other:?} to the auxiliary information"),
                    ));
                }
            }
        }
        one_digest(&moved)?;
        info!(
            version = m.version,
            "the new party set's auxiliary information is made"
        );
        Ok(RosterMovedResult {
            version: m.version,
            request_sha256: Hex(m.hash.to_vec()),
            step: MoveStep::Aux,
            generation: None,
            facts: None,
            dealers: vec![],
            moved,
            leaving: vec![],
        })
    }

    /// Whether any node of the roster in force says, in its signed inventory, that it holds
    /// auxiliary information (or does not answer: then the step runs, and the enclaves decide).
    async fn holds_aux(&self, m: &Moving) -> bool {
        let mut nonce = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        for node in 0..m.roster.roster.len() as u16 {
            match self.inventory_page(&m.roster, node, &nonce, None).await {
                Ok(report) if !report.aux => continue,
                _ => return true,
            }
        }
        false
    }

    /// The facts of key `key_id` as node `node` of the roster in force holds it, from its
    /// signed inventory.
    async fn key_facts(
        &self,
        roster: &ClusterRoster,
        node: u16,
        key_id: &str,
    ) -> Result<KeyInfo, ApiError> {
        let mut nonce = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut after = None;
        loop {
            let report = self
                .inventory_page(roster, node, &nonce, after.clone())
                .await?;
            if let Some(k) = report.keys.iter().find(|k| k.receipt.key_id == key_id) {
                if k.pending.is_some() {
                    return Err(err(
                        ErrorCode::Refused,
                        format!(
                            "pending_generation: key {key_id} has a resharing pending at node \
                             {node}; it is resolved before the key moves"
                        ),
                    ));
                }
                return k.key_info().ok_or_else(|| {
                    err(
                        ErrorCode::Refused,
                        format!(
                            "not_movable: key {key_id}'s current generation names no request (it \
                             was sealed before requests were kept): refresh it first"
                        ),
                    )
                });
            }
            if !report.more || report.keys.is_empty() {
                return Err(err(
                    ErrorCode::NotFound,
                    format!("node {node} holds no key {key_id}"),
                ));
            }
            after = report.keys.last().map(|k| k.receipt.key_id.clone());
        }
    }

    /// One key, dealt from its current generation by as many healthy nodes of the roster in
    /// force as its threshold, to every node of the new roster.
    async fn move_key(&self, m: &Moving, key_id: &str) -> Result<RosterMovedResult, ApiError> {
        let row = self
            .db({
                let id = key_id.to_string();
                move |s| s.key(&id)
            })
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))?;
        let healthy: Vec<u16> = (0..m.roster.roster.len() as u16)
            .filter(|i| self.nodes.healthy(*i))
            .collect();
        let dealers: Vec<u16> = healthy
            .iter()
            .copied()
            .take(usize::from(row.threshold))
            .collect();
        if dealers.len() < usize::from(row.threshold) {
            return Err(err(
                ErrorCode::NoQuorum,
                format!(
                    "key {key_id} needs {} dealers of the roster in force; healthy: {healthy:?}",
                    row.threshold
                ),
            ));
        }
        let info = self.key_facts(&m.roster, dealers[0], key_id).await?;
        // The committee: every node of the new roster and the dealers, in party order. A node
        // that leaves without dealing takes no part (it may be gone for good).
        let all: Vec<(u16, &Party)> = (0u16..)
            .zip(&m.parties)
            .filter(|(_, p)| {
                p.at.next.is_some() || p.at.current.is_some_and(|c| dealers.contains(&c))
            })
            .collect();
        let documents = self.documents(&all).await?;
        let kind = SessionKind::MoveKey {
            key_id: key_id.to_string(),
            generation: info.generation,
            dealers: dealers.clone(),
            key: Box::new(info.clone()),
            documents,
        };
        let route = self.route_of(&all);
        info!(
            key_id,
            version = m.version,
            ?dealers,
            "moving a key to the new roster"
        );
        let run = self.run_among(&route, &all, &kind).await?;
        let facts = info.digest();
        let cluster = m.roster.cluster_id();
        let (mut moved, mut leaving) = (Vec::new(), Vec::new());
        for (p, party) in all.iter().copied() {
            let Some(Outcome::KeyMoved {
                key_id: id,
                generation,
                version,
                index,
                confirmed,
                key,
                statement,
                ..
            }) = run.outcomes.get(&p)
            else {
                return Err(err(
                    ErrorCode::Internal,
                    format!("party {p} answered no key move"),
                ));
            };
            let same = id == key_id
                && *generation == info.generation
                && *version == m.version
                && *index == party.at.next
                && key.as_slice() == facts;
            if !same {
                return Err(err(
                    ErrorCode::Refused,
                    format!("party {p} answered another key move ({id}, generation {generation})"),
                ));
            }
            match (party.at.next, statement) {
                (Some(j), Some(statement)) => {
                    let node_key =
                        <[u8; 32]>::try_from(party.entry.node_key.as_slice()).unwrap_or_default();
                    let confirmed32 =
                        <[u8; 32]>::try_from(confirmed.as_slice()).unwrap_or_default();
                    let message = key_moved_message(
                        &cluster,
                        &node_key,
                        (m.version, &m.hash),
                        (key_id, info.generation),
                        j,
                        &confirmed32,
                        &facts,
                    );
                    if !party.entry.signed(&message, statement) {
                        return Err(err(
                            ErrorCode::Refused,
                            format!(
                                "bad_statement: index {j}'s key-moved statement does not verify \
                                 under the node key the new roster lists"
                            ),
                        ));
                    }
                    moved.push(PartyMoved {
                        index: j,
                        node_key: Hex::from(&party.entry.node_key),
                        digest: Hex(confirmed.to_vec()),
                        statement: Some(Hex(statement.to_vec())),
                    });
                }
                (Some(j), None) => {
                    return Err(err(
                        ErrorCode::Refused,
                        format!("index {j} sealed nothing of key {key_id}"),
                    ));
                }
                (None, _) => leaving.extend(party.at.current),
            }
        }
        one_digest(&moved)?;
        info!(key_id, version = m.version, "key moved to the new roster");
        Ok(RosterMovedResult {
            version: m.version,
            request_sha256: Hex(m.hash.to_vec()),
            step: MoveStep::Key {
                key_id: key_id.to_string(),
            },
            generation: Some(info.generation),
            facts: Some(Hex(facts.to_vec())),
            dealers,
            moved,
            leaving,
        })
    }
}

/// Refused unless every node sealed what the step moved under one digest: parties that
/// confirmed different digests hold different sharings, which no commit takes.
fn one_digest(moved: &[PartyMoved]) -> Result<(), ApiError> {
    let digests: BTreeSet<&[u8]> = moved.iter().map(|m| m.digest.0.as_slice()).collect();
    if digests.len() > 1 {
        return Err(err(
            ErrorCode::Refused,
            format!(
                "digests_differ: the nodes of the new roster sealed {} different digests; run the \
                 step again",
                digests.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "moves_tests.rs"]
mod tests;
