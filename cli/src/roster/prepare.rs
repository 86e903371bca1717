//! The prepare gate of the pending roster change (issue 20, step 3 of `docs/lifecycle.md`):
//! every node of the new roster holds one change under one chain before anything is reshared
//! to it.
//!
//! This machine computes the chain digest itself from the admin and image chains it checked
//! against the pinned genesis, asks every member (through the coordinator,
//! `POST /v1/cluster/roster/prepare`) and every node that joins (at its parent proxy, as
//! `cohort node join` does) for its statement, checks each under the node key the rosters list
//! and against that digest, and names every node that holds another chain or gave no
//! statement. Only then does it show every node the whole set with a fresh nonce; each node
//! checks it again itself before it is prepared, and counts as prepared here only on its own
//! signature over the change, the chain, that set and the nonce (never on an answer's flag,
//! which a coordinator or a parent could rewrite).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use coordinator::api::{HeldStatementJson, PrepareRosterBody, RosterPreparedResult, Wire};
use coordinator::client::{ApiClient, HttpClient};
use protocol::genesis::RosterEntry;
use protocol::roster::{
    HeldStatement, PrepareRoster, roster_held_message, roster_prepared_message, statements_digest,
};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::join::{Candidate, entry_of, pending, verified_document};
use crate::trust::Trust;

/// Where a node of the gate stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreparedNode {
    /// Its node key (hex).
    pub node_key: String,
    /// Its index in the roster in force, if it is a member.
    pub member: Option<u16>,
    /// Its index in the new roster, if it stays or joins (`None`: it leaves).
    pub index: Option<u16>,
    /// Whether it is prepared: its own signature over the change, the chain, the set it was
    /// shown and this run's nonce verified here.
    pub prepared: bool,
}

/// The gate passed: every node of the new roster prepared for one change under one chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prepared {
    /// The roster version the change makes.
    pub version: u32,
    /// The change's SHA-256 (hex).
    pub request_sha256: String,
    /// The chain digest every node holds it under (hex).
    pub chain: String,
    /// Every node that took part.
    pub nodes: Vec<PreparedNode>,
}

/// One node's statement, checked here: under `entry`'s node key, over `change` and `chain`.
fn checked(
    trust: &Trust,
    (version, change, chain): (u32, &[u8; 32], &[u8; 32]),
    entry: &RosterEntry,
    (claimed, statement): (&[u8], &[u8]),
) -> anyhow::Result<()> {
    let key: [u8; 32] = entry
        .node_key
        .as_slice()
        .try_into()
        .context("a node key of 32 bytes")?;
    let claimed: [u8; 32] = claimed.try_into().context("a chain digest of 32 bytes")?;
    let message = roster_held_message(&trust.cluster_id(), &key, version, change, &claimed);
    if !entry.signed(&message, statement) {
        bail!(
            "the statement of node key {} is not its signature over the pending change",
            hex::encode(key)
        );
    }
    if &claimed != chain {
        bail!(
            "node key {} holds the pending change under chain {}, not the pinned chain {} (a \
             joining node given another chain: join it again with `cohort node join`)",
            hex::encode(key),
            hex::encode(claimed),
            hex::encode(chain)
        );
    }
    Ok(())
}

/// Runs the gate: asks every member and every node behind `joiners`, checks every statement
/// here, then shows each node the whole set and checks that each is prepared.
pub async fn prepare(
    api: &ApiClient,
    trust: &Trust,
    http: &HttpClient,
    joiners: &[Candidate<'_>],
) -> anyhow::Result<Prepared> {
    let pending = pending(api, trust).await?;
    let chain = pending.chain_digest(trust);
    let r = &pending.change.request;
    let (version, change) = (r.new_version(), r.hash());
    let in_force = pending.replaced();
    let index_in = |roster: &[RosterEntry], key: &[u8]| {
        roster
            .iter()
            .position(|e| e.node_key.as_slice() == key)
            .and_then(|i| u16::try_from(i).ok())
    };

    // Every member's statement, through the coordinator.
    let asked = post(api, change, vec![], &[]).await?;
    let mut held: BTreeMap<Vec<u8>, (HeldStatement, PreparedNode)> = BTreeMap::new();
    for n in &asked.nodes {
        let entry = in_force
            .get(usize::from(n.node))
            .with_context(|| format!("the coordinator answers for node {}", n.node))?;
        checked(
            trust,
            (version, &change, &chain),
            entry,
            (&n.held.chain.0, &n.held.statement.0),
        )?;
        let statement = HeldStatement {
            node_key: entry.node_key.clone(),
            ..n.held.to_wire()
        };
        let node = PreparedNode {
            node_key: hex::encode(&entry.node_key),
            member: Some(n.node),
            index: index_in(&r.roster, &entry.node_key),
            prepared: false,
        };
        held.insert(entry.node_key.to_vec(), (statement, node));
    }
    // Every node that joins, at its parent proxy.
    let mut proxies = BTreeMap::new();
    for candidate in joiners {
        let doc =
            verified_document(http, *candidate, &pending.image_chain.current().images).await?;
        let entry = entry_of(&doc, false)?;
        let index = index_in(&r.roster, &entry.node_key).with_context(|| {
            format!(
                "the node behind {} (node key {}) is not in the pending roster change",
                candidate.proxy,
                hex::encode(&entry.node_key)
            )
        })?;
        if index_in(in_force, &entry.node_key).is_some() {
            bail!(
                "the node behind {} is a member: it is asked through the coordinator",
                candidate.proxy
            );
        }
        let listed = &r.roster[usize::from(index)];
        let (claimed, statement, _) = ask(http, candidate.proxy, change, vec![], &[]).await?;
        checked(
            trust,
            (version, &change, &chain),
            listed,
            (&claimed, &statement),
        )?;
        held.insert(
            listed.node_key.to_vec(),
            (
                HeldStatement {
                    node_key: listed.node_key.clone(),
                    chain: ByteBuf::from(claimed),
                    statement: ByteBuf::from(statement),
                },
                PreparedNode {
                    node_key: hex::encode(&listed.node_key),
                    member: None,
                    index: Some(index),
                    prepared: false,
                },
            ),
        );
        proxies.insert(listed.node_key.to_vec(), candidate.proxy.to_string());
    }
    let missing: Vec<String> = r
        .roster
        .iter()
        .enumerate()
        .filter(|(_, e)| !held.contains_key(e.node_key.as_slice()))
        .map(|(i, e)| format!("index {i} (node key {})", hex::encode(&e.node_key)))
        .collect();
    if !missing.is_empty() {
        bail!(
            "no statement from every node of the new roster: missing {} (a node that joins is \
             named with --proxy; {})",
            missing.join(", "),
            refusals(&asked)
        );
    }

    // Every node shown the whole set, with a fresh nonce: a node is counted prepared only on
    // its own signed word over the change, the chain, this set and the nonce, never on the
    // answer's flag, which a coordinator or a parent could rewrite (attacker review
    // helper-61, finding 1).
    let statements: Vec<HeldStatement> = held.values().map(|(s, _)| s.clone()).collect();
    let nonce: [u8; 32] = rand::random();
    let set = statements_digest(&statements);
    let signed_prepared = |entry: &RosterEntry, signature: Option<&[u8]>| {
        let Ok(key) = <[u8; 32]>::try_from(entry.node_key.as_slice()) else {
            return false;
        };
        let message = roster_prepared_message(
            &trust.cluster_id(),
            &key,
            (version, &change),
            &chain,
            &set,
            &nonce,
        );
        signature.is_some_and(|s| entry.signed(&message, s))
    };
    let shown = post(api, change, statements.clone(), &nonce).await?;
    for n in &shown.nodes {
        let entry = in_force
            .get(usize::from(n.node))
            .with_context(|| format!("the coordinator answers for node {}", n.node))?;
        if let Some((_, node)) = held.get_mut(entry.node_key.as_slice()) {
            node.prepared =
                signed_prepared(entry, n.prepared_statement.as_ref().map(|s| s.0.as_slice()));
        }
    }
    for (key, proxy) in &proxies {
        let signature = ask(http, proxy, change, statements.clone(), &nonce)
            .await?
            .2;
        if let Some((_, node)) = held.get_mut(key) {
            let index = node.index.map(usize::from).unwrap_or(usize::MAX);
            node.prepared = r
                .roster
                .get(index)
                .is_some_and(|e| signed_prepared(e, signature.as_deref()));
        }
    }
    let nodes: Vec<PreparedNode> = held.into_values().map(|(_, n)| n).collect();
    let unprepared: Vec<String> = nodes
        .iter()
        .filter(|n| n.index.is_some() && !n.prepared)
        .map(|n| n.node_key.clone())
        .collect();
    if !unprepared.is_empty() {
        bail!(
            "nodes of the new roster are not prepared: {} ({})",
            unprepared.join(", "),
            refusals(&shown)
        );
    }
    Ok(Prepared {
        version,
        request_sha256: hex::encode(change),
        chain: hex::encode(chain),
        nodes,
    })
}

/// The members that did not answer with a statement, and why.
fn refusals(answer: &RosterPreparedResult) -> String {
    if answer.failed.is_empty() {
        return "every member answered".to_string();
    }
    answer
        .failed
        .iter()
        .map(|f| format!("member {}: {}: {}", f.node, f.code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `POST /v1/cluster/roster/prepare`, its answer for this change.
async fn post(
    api: &ApiClient,
    change: [u8; 32],
    statements: Vec<HeldStatement>,
    nonce: &[u8],
) -> anyhow::Result<RosterPreparedResult> {
    let body = PrepareRosterBody {
        change: coordinator::api::Hex(change.to_vec()),
        statements: statements
            .iter()
            .map(HeldStatementJson::from_wire)
            .collect(),
        nonce: (!nonce.is_empty()).then(|| coordinator::api::Hex(nonce.to_vec())),
    };
    let answer: RosterPreparedResult = api
        .post("/v1/cluster/roster/prepare", &body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if answer.request_sha256.0 != change {
        bail!("the coordinator answered for another roster change than the one named");
    }
    Ok(answer)
}

/// `prepare_roster` at the node behind `proxy`: its claimed chain, its held statement and,
/// when it is prepared, its signed word on it.
async fn ask(
    http: &HttpClient,
    proxy: &str,
    change: [u8; 32],
    statements: Vec<HeldStatement>,
    nonce: &[u8],
) -> anyhow::Result<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)> {
    let request = EnclaveRequest::PrepareRoster {
        prepare: PrepareRoster {
            change: ByteBuf::from(change.to_vec()),
            statements,
            nonce: ByteBuf::from(nonce.to_vec()),
        },
    };
    match http.enclave_call(proxy, &request).await? {
        EnclaveResponse::RosterPrepared {
            chain,
            statement,
            prepared_statement,
            ..
        } => Ok((
            chain.into_vec(),
            statement.into_vec(),
            prepared_statement.map(ByteBuf::into_vec),
        )),
        EnclaveResponse::Error(e) => bail!("the node behind {proxy} refused: {e}"),
        other => bail!("the node behind {proxy} answered {other}"),
    }
}
