//! The commit of the pending roster change (issue 20, step 4 of `docs/lifecycle.md`), after
//! every key moved: `POST /v1/cluster/roster/commit`, and every word in the answer checked
//! here against the pending change and the chain this machine checked from the pinned genesis.
//!
//! A node of the new roster counts as committed only on its own `cohort/roster-set/v1` word
//! under the node key the change lists; its keys-held statement must verify under the chain
//! digest computed here and name the set every other node named; the set listed must be the
//! one that digest names. A node removed counts as gone only on its `cohort/roster-left/v1`
//! word under the node key the roster in force lists. The coordinator could leave a node out
//! or make a word up; neither passes here.

use anyhow::{Context, bail};
use coordinator::api::{CommitRosterBody, Hex, JoiningProxy, RosterCommitResult};
use coordinator::client::{ApiClient, HttpClient};
use protocol::genesis::RosterEntry;
use protocol::roster::commit::{
    HeldKey, keys_held_message, roster_left_message, roster_set_message, set_digest,
};

use super::join::{Candidate, pending_or_committed};
use super::moves::joining_of;
use crate::trust::Trust;

/// The commit, checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Committed {
    /// The roster version the change makes.
    pub version: u32,
    /// The change's SHA-256 (hex).
    pub request_sha256: String,
    /// How many keys the new roster holds.
    pub keys: usize,
    /// The new roster's indices whose word that they committed verified here.
    pub committed: Vec<u16>,
    /// The indices (in the roster in force) of the nodes removed whose word that they left
    /// verified here.
    pub left: Vec<u16>,
    /// The nodes that did not commit or leave: every index of the new roster without a word
    /// verified here and every node removed without one, with the coordinator's reason where
    /// it gave one. Empty only when the change is committed everywhere and every removed node
    /// left, by their own words.
    pub failed: Vec<String>,
    /// The new roster's parent proxies, by index.
    pub proxies: Vec<String>,
}

fn key32(entry: &RosterEntry) -> anyhow::Result<[u8; 32]> {
    entry
        .node_key
        .as_slice()
        .try_into()
        .context("a node key of 32 bytes")
}

/// Every index of the new roster `next` not in `committed` and every node of the roster in
/// force `current` the change removes not in `left`, in words.
fn missing(
    (next, current): (&[RosterEntry], &[RosterEntry]),
    committed: &[u16],
    left: &[u16],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in next.iter().enumerate() {
        if !committed.contains(&(i as u16)) {
            out.push(format!(
                "index {i} (node key {}) gave no word that it committed",
                hex::encode(&e.node_key)
            ));
        }
    }
    for (i, e) in current.iter().enumerate() {
        let removed = !next.iter().any(|n| n.node_key == e.node_key);
        if removed && !left.contains(&(i as u16)) {
            out.push(format!(
                "node {i} (node key {}), removed, gave no word that it left",
                hex::encode(&e.node_key)
            ));
        }
    }
    out
}

/// Runs the commit and checks the answer.
pub async fn commit(
    api: &ApiClient,
    trust: &Trust,
    http: &HttpClient,
    joiners: &[Candidate<'_>],
) -> anyhow::Result<Committed> {
    let pending = pending_or_committed(api, trust, true).await?;
    let chain = pending.chain_digest(trust);
    let r = &pending.change.request;
    let (version, change) = (r.new_version(), r.hash());
    let joining: Vec<JoiningProxy> = joining_of(http, &pending, joiners).await?;
    let answer: RosterCommitResult = api
        .post(
            "/v1/cluster/roster/commit",
            &CommitRosterBody {
                change: Hex(change.to_vec()),
                joining,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if answer.version != version || answer.request_sha256.0 != change {
        bail!("the coordinator answered for another roster change than the one pending");
    }
    let cluster = trust.cluster_id();
    // The set, and the digest it makes.
    let held: Vec<HeldKey<'_>> = answer
        .set
        .iter()
        .map(|k| -> anyhow::Result<HeldKey<'_>> {
            Ok(HeldKey {
                key_id: &k.key_id,
                generation: k.generation,
                facts: k
                    .facts
                    .0
                    .as_slice()
                    .try_into()
                    .context("facts of 32 bytes")?,
                confirmed: k
                    .confirmed
                    .0
                    .as_slice()
                    .try_into()
                    .context("a confirmed digest of 32 bytes")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let aux: Option<[u8; 32]> = match &answer.aux {
        Some(a) => Some(
            a.0.as_slice()
                .try_into()
                .context("an aux digest of 32 bytes")?,
        ),
        None => None,
    };
    let digest = set_digest(&held, aux.as_ref());
    if answer.keys.0 != digest {
        bail!("the key set the coordinator lists is not the one the nodes' digest names");
    }
    let mut committed = Vec::new();
    if answer.nodes.len() != r.roster.len() {
        bail!(
            "the coordinator answered for {} nodes of a new roster of {}",
            answer.nodes.len(),
            r.roster.len()
        );
    }
    for (i, n) in answer.nodes.iter().enumerate() {
        let entry = r
            .roster
            .get(usize::from(n.index))
            .filter(|_| usize::from(n.index) == i)
            .context("the coordinator's answer lists the new roster out of order")?;
        let key = key32(entry)?;
        let message = keys_held_message(&cluster, &key, (version, &change), &chain, &digest);
        if !entry.signed(&message, &n.statement.0) {
            bail!(
                "index {}'s keys-held statement does not verify under its node key, over the set \
                 and the chain pinned here",
                n.index
            );
        }
        if let Some(word) = &n.set_statement {
            if !entry.signed(
                &roster_set_message(&cluster, &key, version, &change),
                &word.0,
            ) {
                bail!(
                    "index {}'s word that it committed does not verify under its node key",
                    n.index
                );
            }
            committed.push(n.index);
        }
    }
    let in_force = pending.replaced();
    let mut left = Vec::new();
    for l in &answer.left {
        let entry = in_force
            .get(usize::from(l.node))
            .context("the coordinator names a node the roster in force does not list")?;
        let key = key32(entry)?;
        if !entry.signed(
            &roster_left_message(&cluster, &key, version, &change),
            &l.statement.0,
        ) {
            bail!(
                "node {}'s word that it left does not verify under its node key",
                l.node
            );
        }
        left.push(l.node);
    }
    // Coverage from the change itself, never from the coordinator's list of failures: every
    // index of the new roster and every node removed, each by its own word (attacker review
    // helper-76, finding M1).
    let reported: Vec<String> = answer
        .failed
        .iter()
        .map(|f| format!("{}: {}: {}", f.party, f.code, f.message))
        .collect();
    let mut failed = missing((&r.roster, in_force), &committed, &left);
    if !failed.is_empty() {
        failed.extend(
            reported
                .into_iter()
                .map(|r| format!("the coordinator says: {r}")),
        );
    }
    left.sort_unstable();
    left.dedup();
    Ok(Committed {
        version,
        request_sha256: hex::encode(change),
        keys: answer.set.len(),
        committed,
        left,
        failed,
        proxies: answer.proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> RosterEntry {
        RosterEntry {
            node_key: serde_bytes::ByteBuf::from(vec![i; 32]),
            kms_key_arn: protocol::KmsKeyArn::parse(&format!(
                "arn:aws:kms:us-east-1:000000000000:key/{i:08}-0000-0000-0000-000000000000"
            ))
            .unwrap(),
            pcr3: None,
            pcr4: None,
        }
    }

    /// Attacker review helper-76, finding M1: the client names every node of the new roster
    /// without a word that it committed and every removed node without a word that it left,
    /// whatever the coordinator says failed.
    #[test]
    fn every_node_not_committed_or_not_gone_is_named() {
        let current = [entry(1), entry(2), entry(3)];
        let next = [entry(1), entry(3), entry(4)];
        assert!(missing((&next, &current), &[0, 1, 2], &[1]).is_empty());
        let m = missing((&next, &current), &[0, 2], &[]);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("index 1 "), "{m:?}");
        assert!(
            m[1].starts_with("node 1 ") && m[1].contains("left"),
            "{m:?}"
        );
        // A node that stays is not one that leaves.
        assert!(missing((&next, &current), &[0, 1, 2], &[]).len() == 1);
    }
}
