//! Moving every key to the pending roster change (issue 20, step 3 of `docs/lifecycle.md`),
//! after the prepare gate: the new party set's auxiliary information first where the nodes
//! hold the roster in force's, then each key, one `POST /v1/cluster/roster/move` each, with progress
//! between steps (the auxiliary information takes minutes).
//!
//! The nodes that join are found at the parent proxies named here, each verified by its own
//! document as at the prepare gate, and named to the coordinator by their node keys. Each
//! key's answer is checked here: every node of the new roster, at its index, signed by the
//! node key the pending change lists that it sealed the key's incoming generation under one
//! confirmed digest. The coordinator could leave a node out or make a statement up; neither
//! passes here, and the enclaves check the same again at the commit.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use coordinator::api::{Hex, JoiningProxy, KeyList, MoveRosterBody, MoveStep, RosterMovedResult};
use coordinator::client::{ApiCallError, ApiClient, HttpClient};
use protocol::policy::Scheme;
use protocol::roster::transfer::key_moved_message;

use super::join::{Candidate, Pending, entry_of, pending, verified_document};
use crate::trust::Trust;

/// How long the auxiliary information's step waits for safe primes in all (a set takes 20 to 50 s
/// of CPU at each node that has none; they generate in parallel).
const PRIMES_WAIT: Duration = Duration::from_secs(10 * 60);

/// One step done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MovedStep {
    /// `aux`, or the key's id.
    pub step: String,
    /// For a key: the generation dealt from.
    pub generation: Option<u32>,
    /// The digest every node of the new roster sealed under (hex).
    pub digest: String,
    /// How many nodes of the new roster sealed it.
    pub nodes: usize,
    /// Wall time of the step, seconds.
    pub seconds: f64,
}

/// Every key moved to the pending change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moved {
    /// The roster version the change makes.
    pub version: u32,
    /// The change's SHA-256 (hex).
    pub request_sha256: String,
    /// Each step, in order.
    pub steps: Vec<MovedStep>,
}

/// Moves every key the coordinator lists to the pending change, the new party set's
/// auxiliary information first where the nodes hold the roster in force's. `joiners` are the parent proxies of the
/// nodes the change adds; `progress` is told of each step as it starts and ends.
pub async fn move_keys(
    api: &ApiClient,
    trust: &Trust,
    http: &HttpClient,
    joiners: &[Candidate<'_>],
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Moved> {
    let pending = pending(api, trust).await?;
    let r = &pending.change.request;
    let (version, change) = (r.new_version(), r.hash());
    let joining = joining_of(http, &pending, joiners).await?;
    let keys: KeyList = api
        .get("/v1/keys")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ids: Vec<(String, Scheme)> = keys
        .keys
        .iter()
        .map(|k| (k.key_id.clone(), k.scheme))
        .collect();
    ids.sort();
    let mut steps = Vec::new();
    let body = |step: MoveStep| MoveRosterBody {
        change: Hex(change.to_vec()),
        joining: joining.clone(),
        step,
    };
    // The new party set's auxiliary information, wherever a node holds the roster in force's
    // (every node does once an ECDSA key can exist): the coordinator answers with no node when
    // none does. An ECDSA key needs it; so does the commit, at a node that holds some.
    progress("the new party set's auxiliary information (minutes of CPU at every node)");
    let started = Instant::now();
    let answer = loop {
        match post(api, &body(MoveStep::Aux)).await {
            Err(e) if is_primes_not_ready(&e) && started.elapsed() < PRIMES_WAIT => {
                progress(&format!("  {e}"));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            other => break other?,
        }
    };
    if answer.moved.is_empty() {
        if ids.iter().any(|(_, s)| *s == Scheme::EcdsaSecp256k1) {
            bail!("the coordinator made no auxiliary information, and an ECDSA key needs it");
        }
        progress("  no node holds auxiliary information: none to make");
    } else {
        let digest = checked_aux(&answer, (version, &change), r.roster.len())?;
        progress(&format!(
            "  made at {} nodes in {:.1} s",
            answer.moved.len(),
            started.elapsed().as_secs_f64()
        ));
        steps.push(MovedStep {
            step: "aux".into(),
            generation: None,
            digest,
            nodes: answer.moved.len(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    for (key_id, _) in &ids {
        progress(&format!("key {key_id}"));
        let started = Instant::now();
        let answer = post(
            api,
            &body(MoveStep::Key {
                key_id: key_id.clone(),
            }),
        )
        .await
        .with_context(|| format!("moving key {key_id}"))?;
        let digest = checked_key(trust, &answer, (version, &change), &r.roster, key_id)?;
        progress(&format!(
            "  sealed at {} nodes from generation {} in {:.1} s",
            answer.moved.len(),
            answer.generation.unwrap_or_default(),
            started.elapsed().as_secs_f64()
        ));
        steps.push(MovedStep {
            step: key_id.clone(),
            generation: answer.generation,
            digest,
            nodes: answer.moved.len(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(Moved {
        version,
        request_sha256: hex::encode(change),
        steps,
    })
}

/// The nodes behind `joiners`, each verified by its own document and named by its node key,
/// which must be one the pending change adds.
pub(super) async fn joining_of(
    http: &HttpClient,
    pending: &Pending,
    joiners: &[Candidate<'_>],
) -> anyhow::Result<Vec<JoiningProxy>> {
    let r = &pending.change.request;
    let in_force = pending.replaced();
    let mut joining = Vec::new();
    for candidate in joiners {
        let doc =
            verified_document(http, *candidate, &pending.image_chain.current().images).await?;
        let entry = entry_of(&doc, false)?;
        let listed = r.roster.iter().any(|e| e.node_key == entry.node_key);
        let member = in_force.iter().any(|e| e.node_key == entry.node_key);
        if !listed || member {
            bail!(
                "the node behind {} (node key {}) is not a node the pending change adds",
                candidate.proxy,
                hex::encode(&entry.node_key)
            );
        }
        joining.push(JoiningProxy {
            node_key: Hex(entry.node_key.to_vec()),
            proxy: candidate.proxy.to_string(),
        });
    }
    Ok(joining)
}

fn is_primes_not_ready(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiCallError>()
        .is_some_and(|e| e.code() == Some("refused") && e.to_string().contains("primes_not_ready"))
}

async fn post(api: &ApiClient, body: &MoveRosterBody) -> anyhow::Result<RosterMovedResult> {
    Ok(api.post("/v1/cluster/roster/move", body).await?)
}

/// The answer names this change, every index of the new roster once, in order, and one digest.
fn checked_common(
    answer: &RosterMovedResult,
    (version, change): (u32, &[u8; 32]),
    nodes: usize,
) -> anyhow::Result<String> {
    if answer.version != version || answer.request_sha256.0 != change {
        bail!("the coordinator answered for another roster change than the one pending");
    }
    let indices: Vec<u16> = answer.moved.iter().map(|m| m.index).collect();
    if !indices.iter().copied().map(usize::from).eq(0..nodes) {
        bail!("the coordinator answered for indices {indices:?} of a new roster of {nodes} nodes");
    }
    let first = answer.moved.first().context("no node of the new roster")?;
    if answer.moved.iter().any(|m| m.digest != first.digest) {
        bail!("the nodes of the new roster sealed different digests");
    }
    Ok(hex::encode(&first.digest.0))
}

fn checked_aux(
    answer: &RosterMovedResult,
    change: (u32, &[u8; 32]),
    nodes: usize,
) -> anyhow::Result<String> {
    if answer.step != MoveStep::Aux {
        bail!("the coordinator answered another step");
    }
    checked_common(answer, change, nodes)
}

/// A key's step: every node of the new roster's statement checked under the node key the
/// pending change lists at its index.
fn checked_key(
    trust: &Trust,
    answer: &RosterMovedResult,
    (version, change): (u32, &[u8; 32]),
    roster: &[protocol::genesis::RosterEntry],
    key_id: &str,
) -> anyhow::Result<String> {
    let asked = MoveStep::Key {
        key_id: key_id.to_string(),
    };
    if answer.step != asked {
        bail!("the coordinator answered another step");
    }
    let digest = checked_common(answer, (version, change), roster.len())?;
    let generation = answer.generation.context("no generation")?;
    let facts: [u8; 32] = answer
        .facts
        .as_ref()
        .and_then(|f| f.0.as_slice().try_into().ok())
        .context("no key facts' digest of 32 bytes")?;
    for m in &answer.moved {
        let entry = &roster[usize::from(m.index)];
        let node_key: [u8; 32] = entry.node_key.as_slice().try_into()?;
        let confirmed: [u8; 32] = m.digest.0.as_slice().try_into()?;
        let message = key_moved_message(
            &trust.cluster_id(),
            &node_key,
            (version, change),
            (key_id, generation),
            m.index,
            &confirmed,
            &facts,
        );
        let signed = m
            .statement
            .as_ref()
            .is_some_and(|s| entry.signed(&message, &s.0));
        if !signed {
            bail!(
                "index {}'s statement that it sealed key {key_id} does not verify under node key \
                 {}",
                m.index,
                hex::encode(node_key)
            );
        }
    }
    Ok(digest)
}
