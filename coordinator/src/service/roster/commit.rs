//! The commit of the pending roster change (issue 20, step 4 of `docs/lifecycle.md`):
//! `POST /v1/cluster/roster/commit`, in the order the enclaves require.
//!
//! 1. Every node of the new roster vouches: asked with no statements, each answers its
//!    keys-held statement over the set it holds incoming and the set itself (a node that
//!    committed already answers its statement as committed). Every node must answer, over one
//!    digest (`keys_differ` otherwise, naming each node's).
//! 2. The nodes that stay are shown every statement and commit; each answers its
//!    `cohort/roster-set/v1` word, checked here under its node key.
//! 3. The nodes that join are shown the statements and those words (a threshold of them is
//!    what they need).
//! 4. The nodes the change removes are shown the words, the set and the statements, and leave:
//!    they drop every share and answer their `cohort/roster-left/v1` word. One that cannot be
//!    reached (a lost node) is reported, not fatal: the runbook terminates it and disables its
//!    KMS key.
//!
//! Every step can run again: a node asked again answers as it did. The enclaves check every
//! statement and word themselves; the checks here are early refusals and what the client is
//! shown, which it checks again. Once a node that stays committed, the commit is recorded with
//! every node's proxy (`in_force`): the coordinator serves the new roster from then on, its
//! nodes admitting each other under the new roster's entries. The change committed last can be
//! committed again (`moving` with `committed`): a node that missed a step is asked again, at
//! the proxy recorded for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::roster::commit::{
    CommitRoster, KeysHeldStatement, MovedKey, SetStatement, roster_left_message,
    roster_set_message, set_digest,
};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;
use tracing::info;

use super::super::{Coordinator, err, unix_now};
use super::moves::{Moving, Party, place};
use crate::api::{
    ApiError, CommitRosterBody, ErrorCode, Hex, MovedKeyJson, NodeCommitted, NodeLeft,
    PartyFailure, RosterCommitResult,
};
use crate::audit::AuditEntry;
use crate::nodes::{Route, Target};

/// How long a node has to answer a commit step (no protocol round: checks, a signature and
/// one seal).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node answered at a commit step.
enum Answer {
    /// Its keys-held statement, the set and, once committed, its roster-set word.
    Held {
        keys: ByteBuf,
        statement: ByteBuf,
        set_statement: Option<ByteBuf>,
        set: Vec<MovedKey>,
        aux: Option<ByteBuf>,
    },
    /// It left: its roster-left word.
    Left { statement: ByteBuf },
}

impl Coordinator {
    /// The commit of the pending roster change (`POST /v1/cluster/roster/commit`).
    pub async fn commit_roster(
        self: &Arc<Self>,
        body: CommitRosterBody,
        credential: String,
    ) -> Result<RosterCommitResult, ApiError> {
        self.measured("commit_roster", self.run_commit(body, credential))
            .await
    }

    async fn run_commit(
        self: &Arc<Self>,
        body: CommitRosterBody,
        credential: String,
    ) -> Result<RosterCommitResult, ApiError> {
        let m = self.moving((&body.change, &body.joining), true).await?;
        let result = self.commit_steps(&m).await;
        let (outcome, detail) = match &result {
            Ok(r) => (
                if r.failed.is_empty() { "ok" } else { "partial" }.to_string(),
                format!(
                    "roster version {}: change {} committed at new indices {:?} over key set {} \
                     ({} keys); left: nodes {:?}{}",
                    r.version,
                    hex::encode(m.hash),
                    r.nodes
                        .iter()
                        .filter(|n| n.set_statement.is_some())
                        .map(|n| n.index)
                        .collect::<Vec<_>>(),
                    hex::encode(&r.keys.0),
                    r.set.len(),
                    r.left.iter().map(|l| l.node).collect::<Vec<_>>(),
                    r.failed
                        .iter()
                        .map(|f| format!("; {}: {}: {}", f.party, f.code, f.message))
                        .collect::<String>()
                ),
            ),
            Err(e) => (
                e.code.as_str().to_string(),
                format!(
                    "roster version {}: change {}: {}",
                    m.version,
                    hex::encode(m.hash),
                    e.message
                ),
            ),
        };
        let entry = AuditEntry {
            action: "commit_roster".into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: result
                .as_ref()
                .map(|r| {
                    r.nodes
                        .iter()
                        .filter(|n| n.set_statement.is_some())
                        .map(|n| n.index)
                        .collect()
                })
                .unwrap_or_default(),
            outcome,
            request_id: None,
            credential: Some(credential),
            detail: Some(detail),
        };
        // The nodes sealed whatever they sealed: a failed write is reported, and the step may
        // run again (a node asked again answers as it did). A commit is recorded with its
        // audit record, and from then on this coordinator and every other on the store serve
        // the new roster.
        match result {
            Ok(r) => match self.replaced_proxies(&m) {
                Ok(replaced) => self.record_commit((&m.hash, &r), replaced, entry).await,
                Err(e) => {
                    self.db(move |s| s.append_audit(unix_now(), &entry)).await?;
                    Err(e)
                }
            },
            Err(e) => {
                self.db(move |s| s.append_audit(unix_now(), &entry)).await?;
                Err(e)
            }
        }
    }

    /// Asks `party` for its commit step with `commit`.
    async fn ask_commit(
        &self,
        route: &Route,
        (p, party): (u16, &Party),
        commit: CommitRoster,
    ) -> Result<Answer, PartyFailure> {
        let failure = |code: &str, message: String| PartyFailure {
            party: place(party.at, p),
            code: code.into(),
            message,
        };
        match route
            .call(p, &EnclaveRequest::CommitRoster { commit }, COMMIT_TIMEOUT)
            .await
        {
            Ok(EnclaveResponse::RosterCommitted {
                keys,
                statement,
                set_statement,
                set,
                aux,
                ..
            }) => Ok(Answer::Held {
                keys,
                statement,
                set_statement,
                set,
                aux,
            }),
            Ok(EnclaveResponse::RosterLeft { statement, .. }) => Ok(Answer::Left { statement }),
            Ok(EnclaveResponse::Error(e)) => Err(failure(e.code.as_str(), e.message)),
            Ok(other) => Err(failure("internal", format!("it answered {other}"))),
            Err(e) => Err(failure("unreachable", e.0)),
        }
    }

    async fn commit_steps(&self, m: &Moving) -> Result<RosterCommitResult, ApiError> {
        // An image change drops a pending roster change at every node, so the chain the nodes
        // vouch under holds the image changes recorded before they are asked; read first, so
        // that one recorded meanwhile is not counted (attacker review helper-77, M2).
        let images = self.images_status().await?.map_or(0, |s| s.version);
        let all: Vec<(u16, &Party)> = (0u16..).zip(&m.parties).collect();
        let route = self.route_of(&all);
        let cluster = m.roster.cluster_id();
        let change = ByteBuf::from(m.hash.to_vec());
        let asked =
            |statements: Vec<KeysHeldStatement>, committed: Vec<SetStatement>| CommitRoster {
                change: change.clone(),
                statements,
                committed,
                keys: Vec::new(),
                aux: None,
                catch_up: None,
            };
        let receivers: Vec<(u16, &Party)> = m
            .parties
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at.next.is_some())
            .map(|(p, party)| (p as u16, party))
            .collect();

        // 1. Every node of the new roster vouches, over one set.
        let mut held = Vec::new();
        let mut failed = Vec::new();
        // The set a node that stays lists, which hashes to the digest it signed (attacker
        // review helper-76, finding L3: not a joining node's, and never one unchecked).
        let mut listed: Option<(ByteBuf, Vec<MovedKey>, Option<ByteBuf>)> = None;
        for (p, party) in &receivers {
            match self
                .ask_commit(&route, (*p, party), asked(vec![], vec![]))
                .await
            {
                Ok(Answer::Held {
                    keys,
                    statement,
                    set,
                    aux,
                    ..
                }) => {
                    if listed.is_none() && party.at.current.is_some() && lists(&keys, &set, &aux) {
                        listed = Some((keys.clone(), set, aux));
                    }
                    held.push(KeysHeldStatement {
                        node_key: party.entry.node_key.clone(),
                        keys,
                        statement,
                    });
                }
                Ok(Answer::Left { .. }) => failed.push(PartyFailure {
                    party: place(party.at, *p),
                    code: "internal".into(),
                    message: "a node of the new roster answered that it left".into(),
                }),
                Err(f) => failed.push(f),
            }
        }
        if !failed.is_empty() {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "not every node of the new roster vouches for its key set: {}",
                    failures_text(&failed)
                ),
            ));
        }
        if held.iter().any(|h| h.keys != held[0].keys) {
            let digests: Vec<String> = receivers
                .iter()
                .zip(&held)
                .map(|((p, party), h)| format!("{}: {}", place(party.at, *p), hex::encode(&h.keys)))
                .collect();
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "keys_differ: the nodes of the new roster hold different key sets ({}): move \
                     the keys again",
                    digests.join(", ")
                ),
            ));
        }
        let Some((digest, set, aux)) = listed else {
            return Err(err(
                ErrorCode::Refused,
                "unlisted_set: no node that stays listed a key set its digest names",
            ));
        };

        // 2, 3. The nodes that stay commit, then the nodes that join, on their words.
        let set_word = |party: &Party, statement: &[u8]| {
            let key = <[u8; 32]>::try_from(party.entry.node_key.as_slice()).unwrap_or_default();
            party.entry.signed(
                &roster_set_message(&cluster, &key, m.version, &m.hash),
                statement,
            )
        };
        let mut words: Vec<SetStatement> = Vec::new();
        let mut nodes: BTreeMap<u16, NodeCommitted> = BTreeMap::new();
        for joining in [false, true] {
            for (p, party) in receivers
                .iter()
                .filter(|(_, party)| party.at.current.is_none() == joining)
            {
                let index = party.at.next.unwrap_or_default();
                let ask = asked(held.clone(), if joining { words.clone() } else { vec![] });
                let answer = self.ask_commit(&route, (*p, party), ask).await;
                let statement = &held[usize::from(index)].statement;
                let mut node = NodeCommitted {
                    index,
                    node_key: Hex::from(&party.entry.node_key),
                    statement: Hex::from(statement),
                    set_statement: None,
                };
                match answer {
                    Ok(Answer::Held {
                        set_statement: Some(word),
                        ..
                    }) if set_word(party, &word) => {
                        if !joining {
                            words.push(SetStatement {
                                node_key: party.entry.node_key.clone(),
                                statement: word.clone(),
                            });
                        }
                        node.set_statement = Some(Hex::from(&word));
                    }
                    Ok(Answer::Held { .. }) | Ok(Answer::Left { .. }) => {
                        failed.push(PartyFailure {
                            party: place(party.at, *p),
                            code: "bad_statement".into(),
                            message:
                                "it answered no roster-set word that verifies under its node key"
                                    .into(),
                        })
                    }
                    Err(f) => failed.push(f),
                }
                nodes.insert(index, node);
            }
        }
        if words.is_empty() {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "no node that stays committed the change: {}",
                    failures_text(&failed)
                ),
            ));
        }

        // 4. The nodes the change removes leave, shown the words and the set.
        let mut left = Vec::new();
        for (p, party) in m
            .parties
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at.next.is_none())
        {
            let p = p as u16;
            let node = party.at.current.unwrap_or_default();
            let mut ask = asked(held.clone(), words.clone());
            ask.keys = set.clone();
            ask.aux = aux.clone();
            match self.ask_commit(&route, (p, party), ask).await {
                Ok(Answer::Left { statement }) => {
                    let key =
                        <[u8; 32]>::try_from(party.entry.node_key.as_slice()).unwrap_or_default();
                    let message = roster_left_message(&cluster, &key, m.version, &m.hash);
                    if party.entry.signed(&message, &statement) {
                        left.push(NodeLeft {
                            node,
                            node_key: Hex::from(&party.entry.node_key),
                            statement: Hex::from(&statement),
                        });
                    } else {
                        failed.push(PartyFailure {
                            party: place(party.at, p),
                            code: "bad_statement".into(),
                            message: "its word that it left does not verify under its node key"
                                .into(),
                        });
                    }
                }
                Ok(Answer::Held { .. }) => failed.push(PartyFailure {
                    party: place(party.at, p),
                    code: "internal".into(),
                    message: "a node the change removes answered as a node of the new roster"
                        .into(),
                }),
                Err(f) => failed.push(f),
            }
        }
        let mut proxies: Vec<(u16, String)> = Vec::new();
        for p in &m.parties {
            if let Some(j) = p.at.next {
                proxies.push((j, self.url_of(p)?));
            }
        }
        proxies.sort();
        info!(
            version = m.version,
            committed = words.len(),
            left = left.len(),
            failed = failed.len(),
            "roster change committed"
        );
        Ok(RosterCommitResult {
            version: m.version,
            request_sha256: Hex(m.hash.to_vec()),
            keys: Hex::from(&digest),
            set: set
                .iter()
                .map(|k| MovedKeyJson {
                    key_id: k.key_id.clone(),
                    generation: k.generation,
                    facts: Hex::from(&k.facts),
                    confirmed: Hex::from(&k.confirmed),
                })
                .collect(),
            aux: aux.as_ref().map(Hex::from),
            nodes: nodes.into_values().collect(),
            left,
            failed,
            proxies: proxies.into_iter().map(|(_, url)| url).collect(),
            images,
        })
    }

    /// The parent proxy of each node of the roster the change replaces, by index in it.
    fn replaced_proxies(&self, m: &Moving) -> Result<Vec<String>, ApiError> {
        let mut replaced: Vec<(u16, String)> = Vec::new();
        for p in &m.parties {
            if let Some(i) = p.at.current {
                replaced.push((i, self.url_of(p)?));
            }
        }
        replaced.sort();
        Ok(replaced.into_iter().map(|(_, url)| url).collect())
    }

    /// The parent proxy at which `party` is reached.
    fn url_of(&self, party: &Party) -> Result<String, ApiError> {
        match &party.target {
            Target::Node(i) => self.nodes.proxy(*i).ok_or_else(|| {
                err(
                    ErrorCode::Internal,
                    format!("node {i} is not one of this coordinator's nodes"),
                )
            }),
            Target::Proxy(url) => Ok(url.clone()),
        }
    }
}

/// Whether `set` (with `aux`) is the set whose digest is `keys`.
fn lists(keys: &[u8], set: &[MovedKey], aux: &Option<ByteBuf>) -> bool {
    let held: Vec<_> = set.iter().map(MovedKey::held).collect();
    let aux = aux
        .as_ref()
        .and_then(|a| <[u8; 32]>::try_from(a.as_slice()).ok());
    keys == set_digest(&held, aux.as_ref())
}

fn failures_text(failed: &[PartyFailure]) -> String {
    failed
        .iter()
        .map(|f| format!("{}: {}: {}", f.party, f.code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_listed_only_under_the_digest_it_makes() {
        let key = MovedKey {
            key_id: "k".into(),
            generation: 2,
            facts: ByteBuf::from(vec![1; 32]),
            confirmed: ByteBuf::from(vec![2; 32]),
        };
        let set = vec![key.clone()];
        let digest = set_digest(&[key.held()], None);
        assert!(lists(&digest, &set, &None));
        // Another set, the same set with an aux digest it does not name, or none at all.
        assert!(!lists(&digest, &[], &None));
        assert!(!lists(&digest, &set, &Some(ByteBuf::from(vec![3; 32]))));
        let with_aux = set_digest(&[key.held()], Some(&[3; 32]));
        assert!(lists(&with_aux, &set, &Some(ByteBuf::from(vec![3; 32]))));
    }
}
