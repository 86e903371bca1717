//! The committed roster changes a coordinator whose database was lost records again
//! (`POST /v1/recover`, issue 20: disaster recovery after a membership change).
//!
//! Each node's first inventory page carries the roster changes it committed and its word that
//! it committed each one whose roster lists it. Before a page is checked under any key, its
//! admin, image and roster chains are checked from the pinned genesis as the enclaves applied
//! them ([`verify_chains`]: approvals, each roster change against every roster before it, the
//! statement of every node of its roster that it vouched for one key set under the chain of
//! that moment); the page is then checked under the node key the roster in force lists, and
//! every node must report that very chain. The changes are recorded with the words the nodes
//! of the roster in force give: a client checks them from its pinned genesis
//! (`cli::roster::rosters`). Nothing is taken on one node's word.

use std::collections::BTreeMap;

use protocol::admins::SetAdmins;
use protocol::genesis::{Genesis, RosterEntry};
use protocol::images::AcceptImages;
use protocol::inventory::{InventoryReport, RosterWord};
use protocol::policy::{Approved, check_approvals};
use protocol::roster::chain_digest_with_rosters;
use protocol::roster::commit::{CommittedRoster, keys_held_message, roster_set_message};
use serde_bytes::ByteBuf;

use super::super::{Coordinator, err, unix_now};
use super::ClusterRoster;
use crate::api::{
    ApiError, ApprovedJson, ChangeRosterJson, ErrorCode, Hex, NodeCommitted, RosterCommitResult,
};
use crate::audit::AuditEntry;
use crate::store::{ChangeRow, RosterCommitRow};

fn refused(m: String) -> ApiError {
    err(ErrorCode::Refused, m)
}

/// The rosters a node's committed chain makes of the genesis, by version (the genesis' first,
/// the roster in force last): each change is for this cluster, replaces the version before
/// it, is well formed, and is a change of every roster before it as the enclaves check it (no
/// node key that left comes back). Its approvals and statements are checked by
/// [`verify_chains`], which calls this once the approvals hold.
pub(crate) fn chain_rosters(
    genesis: &Genesis,
    chain: &[CommittedRoster],
) -> Result<Vec<ClusterRoster>, String> {
    let cluster = genesis.cluster_id();
    let mut out = vec![ClusterRoster::genesis(genesis)];
    for (committed, version) in chain.iter().zip(1u32..) {
        let r = &committed.change.request;
        if r.cluster != cluster || r.version.checked_add(1) != Some(version) {
            return Err(format!(
                "committed roster version {version}: its change is for another cluster or \
                 replaces another version"
            ));
        }
        r.check()
            .map_err(|e| format!("committed roster version {version}: {e}"))?;
        let history: Vec<&[RosterEntry]> = out.iter().map(|r| r.roster.as_slice()).collect();
        r.diff(&history, 0)
            .map_err(|e| format!("committed roster version {version}: {e}"))?;
        let next = out
            .last()
            .map(|before| before.changed_by(r))
            .ok_or_else(|| "no genesis roster".to_string())?;
        out.push(next);
    }
    Ok(out)
}

/// Most committed roster changes a recovery follows (the chain is checked change by change
/// against every roster before it; a node reporting more is refused before any of that work).
pub(crate) const MAX_ROSTER_VERSIONS: usize = 1_024;

/// The chains a node's first inventory page reports, as every enclave holds them.
pub(crate) struct Chains<'a> {
    pub(crate) admins: &'a [Approved<SetAdmins>],
    pub(crate) images: &'a [Approved<AcceptImages>],
    pub(crate) rosters: &'a [CommittedRoster],
}

/// Checks the chains a node reports from the pinned genesis, as every enclave applied them, and
/// returns the rosters the committed roster changes make (the roster in force last): each admin
/// change for this cluster, replacing the version before it, well formed and approved by the
/// quorum of the set it replaces; each image change likewise, approved by the admins of the
/// version it names; each committed roster change as [`chain_rosters`] checks it, approved by
/// the admins of the version it names, and vouched for by every node of its roster over one key
/// set under the chain digest of that moment ([`vouched`]). Only then is a page checked under
/// a key the last roster lists: a parent (or the network) answering for every node cannot make
/// the coordinator record an admin set or a roster of its own (attacker review helper-82,
/// finding 1). Not checked: the windows (applied long ago) and whether an image change was
/// approved before its admins were replaced (the enclaves' `approved_before_replaced`).
pub(crate) fn verify_chains(
    genesis: &Genesis,
    chains: &Chains<'_>,
) -> Result<Vec<ClusterRoster>, String> {
    if chains.rosters.len() > MAX_ROSTER_VERSIONS {
        return Err(format!(
            "{} committed roster changes, more than the {MAX_ROSTER_VERSIONS} a recovery follows",
            chains.rosters.len()
        ));
    }
    let cluster = genesis.cluster_id();
    let key =
        |b: &ByteBuf| <[u8; 32]>::try_from(b.as_slice()).map_err(|_| "an admin key".to_string());
    let mut sets: Vec<(Vec<[u8; 32]>, u16)> = vec![(
        genesis.admins.iter().map(key).collect::<Result<_, _>>()?,
        genesis.admin_quorum,
    )];
    for (change, version) in chains.admins.iter().zip(0u32..) {
        let r = &change.request;
        let (admins, quorum) = sets.last().cloned().unwrap_or_default();
        let approved = r.check().is_ok()
            && r.cluster == cluster
            && r.version == version
            && check_approvals(r, &change.approvals, &admins, quorum).is_ok();
        if !approved {
            return Err(format!(
                "admin change {}: not this cluster's change of version {version} approved by the \
                 admins it replaces",
                version + 1
            ));
        }
        sets.push((
            r.admins.iter().map(key).collect::<Result<_, _>>()?,
            r.admin_quorum,
        ));
    }
    let at = |named: u32| usize::try_from(named).ok().and_then(|v| sets.get(v));
    for (change, version) in chains.images.iter().zip(0u32..) {
        let r = &change.request;
        let approved = r.check().is_ok()
            && r.cluster == cluster
            && r.version == version
            && at(r.admins).is_some_and(|(admins, quorum)| {
                check_approvals(r, &change.approvals, admins, *quorum).is_ok()
            });
        if !approved {
            return Err(format!(
                "image change {}: not this cluster's change of version {version} approved by the \
                 admins of the version it names",
                version + 1
            ));
        }
    }
    // The approvals first: a chain nobody approved costs one signature check per change, not
    // the history check, which grows with the square of the chain (helper-83, finding 1).
    for (committed, version) in chains.rosters.iter().zip(1u32..) {
        let r = &committed.change.request;
        let approved = at(r.admins).is_some_and(|(admins, quorum)| {
            check_approvals(r, &committed.change.approvals, admins, *quorum).is_ok()
        });
        if !approved {
            return Err(format!(
                "committed roster version {version}: not approved by the admins of the version \
                 it names"
            ));
        }
    }
    let rosters = chain_rosters(genesis, chains.rosters)?;
    for (i, committed) in chains.rosters.iter().enumerate() {
        let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let r = &committed.change.request;
        let bad = |m: &str| format!("committed roster version {version}: {m}");
        let (Some(admins), Some(images)) = (
            usize::try_from(r.admins)
                .ok()
                .and_then(|n| chains.admins.get(..n)),
            usize::try_from(committed.images)
                .ok()
                .and_then(|n| chains.images.get(..n)),
        ) else {
            return Err(bad("its chain holds more changes than the node applied"));
        };
        let digest = chain_digest_with_rosters(&cluster, admins, images, &chains.rosters[..i]);
        vouched(&cluster, (version, &r.hash()), &digest, committed).map_err(|m| bad(&m))?;
    }
    Ok(rosters)
}

/// Whether two nodes report the same committed chain (the same changes, each committed under
/// the same chain): their copies of the statements may differ in order only.
pub(crate) fn same_chain(a: &[CommittedRoster], b: &[CommittedRoster]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.change.request.hash() == y.change.request.hash() && x.images == y.images
        })
}

/// What the nodes of the roster in force report of the committed chain: the chain (every
/// node's, the same), and each node's words by index in the roster in force.
pub(crate) struct ReportedChain {
    pub(crate) rosters: Vec<ClusterRoster>,
    pub(crate) chain: Vec<CommittedRoster>,
    pub(crate) words: Vec<(u16, Vec<RosterWord>)>,
}

impl Coordinator {
    /// Node `node`'s first inventory page for `nonce`: its chains checked from `genesis`
    /// ([`verify_chains`]), then the page under the node key the roster in force they make
    /// lists for it: the page, and the rosters by version.
    pub(crate) async fn reported_first_page(
        &self,
        genesis: &Genesis,
        node: u16,
        nonce: &[u8],
    ) -> Result<(InventoryReport, Vec<ClusterRoster>), ApiError> {
        let (report, signature) = self.inventory_call(node, nonce, None).await?;
        let admins: Vec<_> = report
            .admin_changes
            .iter()
            .map(|c| c.request.clone())
            .collect();
        let images: Vec<_> = report
            .image_changes
            .iter()
            .map(|c| c.request.clone())
            .collect();
        let chains = Chains {
            admins: &admins,
            images: &images,
            rosters: &report.rosters,
        };
        let rosters = verify_chains(genesis, &chains)
            .map_err(|e| refused(format!("node {node}'s inventory: {e}")))?;
        let in_force = rosters
            .last()
            .ok_or_else(|| err(ErrorCode::Internal, "no roster, not even the genesis'"))?;
        Self::verify_page(in_force, node, (nonce, None), &report, &signature)?;
        Ok((report, rosters))
    }

    /// The committed chain every node reports, and the rosters it makes of `genesis` (the
    /// roster in force last): each node's first page is checked under the node key of the
    /// roster its own chain makes ([`Coordinator::reported_first_page`]), and every node must
    /// report the same chain; a node behind or ahead of another, or a fork, is refused by name.
    pub(crate) async fn reported_chain(
        &self,
        genesis: &Genesis,
    ) -> Result<(Vec<CommittedRoster>, Vec<ClusterRoster>), ApiError> {
        let mut nonce = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut reported: Option<(u16, Vec<CommittedRoster>, Vec<ClusterRoster>)> = None;
        for node in 0..self.nodes.count() {
            let (page, rosters) = self.reported_first_page(genesis, node, &nonce).await?;
            match &reported {
                None => reported = Some((node, page.rosters, rosters)),
                Some((first, chain, _)) if !same_chain(chain, &page.rosters) => {
                    return Err(refused(if chain.len() == page.rosters.len() {
                        format!(
                            "fork: nodes {first} and {node} committed other roster changes, at \
                             roster version {}",
                            chain.len()
                        )
                    } else {
                        format!(
                            "node {first} is at roster version {}, node {node} at {}: every \
                             node of the roster in force must have committed it (run the \
                             commit again against a coordinator that records it, or restore \
                             a snapshot of the database)",
                            chain.len(),
                            page.rosters.len()
                        )
                    }));
                }
                Some(_) => {}
            }
        }
        reported
            .map(|(_, chain, rosters)| (chain, rosters))
            .ok_or_else(|| err(ErrorCode::Internal, "a coordinator relaying to no node"))
    }

    /// Records again the committed roster changes `reported` (every node of the roster in force
    /// reports them alike, each checked at every node's first page by [`verify_chains`]) that
    /// this coordinator has not recorded (its database was lost): each recorded as a proposal
    /// and as committed, with its statements (recomputed against `admins` and `images`, the
    /// nodes' chains, recorded already) and the words of the nodes that gave one. A chain that forks from the commits recorded
    /// here is refused by name. Returns how many were recorded.
    pub(crate) async fn recover_commits(
        &self,
        genesis: &Genesis,
        reported: &ReportedChain,
        (admins, images): (&[Approved<SetAdmins>], &[Approved<AcceptImages>]),
        credential: &str,
    ) -> Result<u32, ApiError> {
        let recorded = self.commits().await?;
        let ReportedChain {
            rosters,
            chain,
            words,
        } = reported;
        // A database that holds key records but misses commits is a stale copy (a snapshot
        // from before a commit): its keys are at the generations before the move, which a
        // recorded commit alone would not bring forward (attacker review helper-82, finding 3).
        if recorded.len() < chain.len() && !self.db(|s| s.keys()).await?.is_empty() {
            return Err(refused(format!(
                "stale_database: this coordinator holds key records and {} committed roster \
                 changes, the nodes {}: commit the last change again (`cohort node commit`) if \
                 only it is missing, else rebuild into an empty database",
                recorded.len(),
                chain.len()
            )));
        }
        if recorded.len() > chain.len() {
            return Err(refused(format!(
                "this coordinator has recorded roster version {} that the nodes did not commit",
                chain.len() + 1
            )));
        }
        let cluster = genesis.cluster_id();
        let in_force = rosters
            .last()
            .ok_or_else(|| err(ErrorCode::Internal, "no roster, not even the genesis'"))?;
        let mut restored = 0;
        for (i, committed) in chain.iter().enumerate() {
            let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let approved = &committed.change;
            let r = &approved.request;
            let hash = r.hash();
            if let Some(c) = recorded.get(i) {
                if c.change.hash != hash {
                    return Err(refused(format!(
                        "fork at roster version {version}: this coordinator recorded change \
                         {}, the nodes committed {}",
                        hex::encode(c.change.hash),
                        hex::encode(hash)
                    )));
                }
                continue;
            }
            // Checked at every node's first page (`verify_chains`): approved, and vouched for
            // under the chain of that moment; here the statements become the record's.
            let bad = |m: &str| refused(format!("committed roster version {version}: {m}"));
            let (Some(admins), Some(images)) = (
                usize::try_from(r.admins).ok().and_then(|n| admins.get(..n)),
                usize::try_from(committed.images)
                    .ok()
                    .and_then(|n| images.get(..n)),
            ) else {
                return Err(bad("its chain holds more changes than the nodes applied"));
            };
            let digest = chain_digest_with_rosters(&cluster, admins, images, &chain[..i]);
            let nodes =
                vouched(&cluster, (version, &hash), &digest, committed).map_err(|m| bad(&m))?;
            let nodes = with_words(&cluster, (version, &hash), in_force, words, nodes);
            let last = i + 1 == chain.len();
            let result = RosterCommitResult {
                version,
                request_sha256: Hex(hash.to_vec()),
                keys: Hex(named_keys(committed).to_vec()),
                set: Vec::new(),
                aux: None,
                nodes,
                left: Vec::new(),
                failed: Vec::new(),
                proxies: if last {
                    self.nodes.proxies()
                } else {
                    Vec::new()
                },
                images: committed.images,
            };
            let json = ApprovedJson::<ChangeRosterJson>::from_wire(approved);
            let proposal = ChangeRow {
                version,
                request: json_text(&json)?,
                request_hash: hash.to_vec(),
                statements: Default::default(),
                created_at: unix_now(),
            };
            let commit = RosterCommitRow {
                version,
                request_hash: hash.to_vec(),
                proxies: result.proxies.clone(),
                replaced: Vec::new(),
                result: json_text(&result)?,
                created_at: unix_now(),
            };
            let entry = self.recovered_entry(
                "recover_roster_commit",
                &r.request_id,
                credential,
                format!(
                    "roster version {version} of {} nodes, request sha256 {}",
                    r.roster.len(),
                    hex::encode(hash)
                ),
            );
            let proposal_entry = AuditEntry {
                action: "recover_change".into(),
                detail: Some(format!(
                    "committed roster proposal of version {version}, request sha256 {}",
                    hex::encode(hash)
                )),
                ..entry.clone()
            };
            self.db(move |s| s.record_roster_proposal(&proposal, unix_now(), &proposal_entry))
                .await?;
            if !self
                .db(move |s| s.record_roster_commit(&commit, unix_now(), &entry))
                .await?
            {
                return Err(refused(format!(
                    "roster version {version} could not be recorded (another coordinator \
                     recorded a commit meanwhile?)"
                )));
            }
            restored += 1;
        }
        if restored > 0 {
            self.follow_roster().await;
        }
        Ok(restored)
    }
}

/// The key-set digest the statements of `committed` name (every one the same: checked by
/// [`vouched`]).
fn named_keys(committed: &CommittedRoster) -> [u8; 32] {
    committed
        .statements
        .first()
        .and_then(|s| <[u8; 32]>::try_from(s.keys.as_slice()).ok())
        .unwrap_or_default()
}

/// Each node of `committed`'s roster, by index, with its statement that it holds the key set
/// the change was committed on, under the chain whose digest is `digest`: one per node, each
/// its node key's signature over one key set (as the enclaves check it when they commit).
pub(super) fn vouched(
    cluster: &protocol::genesis::ClusterId,
    (version, hash): (u32, &[u8; 32]),
    digest: &[u8; 32],
    committed: &CommittedRoster,
) -> Result<Vec<NodeCommitted>, String> {
    let named = named_keys(committed);
    let roster = &committed.change.request.roster;
    if committed.statements.len() != roster.len() {
        return Err(format!(
            "{} keys-held statements for a roster of {} nodes",
            committed.statements.len(),
            roster.len()
        ));
    }
    let mut out = Vec::with_capacity(roster.len());
    for (index, entry) in (0u16..).zip(roster) {
        let statement = committed
            .statements
            .iter()
            .find(|s| s.node_key == entry.node_key)
            .ok_or_else(|| format!("node {index} of its roster vouched for no key set"))?;
        let signed = statement.keys.as_slice() == named
            && <[u8; 32]>::try_from(entry.node_key.as_slice()).is_ok_and(|key| {
                let message = keys_held_message(cluster, &key, (version, hash), digest, &named);
                entry.signed(&message, &statement.statement)
            });
        if !signed {
            return Err(format!(
                "node {index}'s statement that it holds the key set does not verify under its \
                 node key, over the chain of that moment and the set the others name"
            ));
        }
        out.push(NodeCommitted {
            index,
            node_key: Hex(entry.node_key.to_vec()),
            statement: Hex(statement.statement.to_vec()),
            set_statement: None,
        });
    }
    Ok(out)
}

/// `nodes` (of the roster the change made), each with its word that it committed the change
/// if a node of the roster in force gave one that verifies under its node key (a word that
/// does not verify is left out: the client counts only words that do).
pub(super) fn with_words(
    cluster: &protocol::genesis::ClusterId,
    (version, hash): (u32, &[u8; 32]),
    in_force: &ClusterRoster,
    words: &[(u16, Vec<RosterWord>)],
    mut nodes: Vec<NodeCommitted>,
) -> Vec<NodeCommitted> {
    let by_key: BTreeMap<&[u8], &[u8]> = words
        .iter()
        .filter_map(|(node, w)| {
            let entry = in_force.roster.get(usize::from(*node))?;
            let word = w.iter().find(|w| w.version == version)?;
            Some((entry.node_key.as_slice(), word.statement.as_slice()))
        })
        .collect();
    for n in &mut nodes {
        let Some(word) = by_key.get(n.node_key.0.as_slice()) else {
            continue;
        };
        let entry = in_force
            .roster
            .iter()
            .find(|e| e.node_key.as_slice() == n.node_key.0.as_slice());
        let signed = entry.is_some_and(|e| {
            <[u8; 32]>::try_from(e.node_key.as_slice())
                .is_ok_and(|key| e.signed(&roster_set_message(cluster, &key, version, hash), word))
        });
        if signed {
            n.set_statement = Some(Hex(word.to_vec()));
        }
    }
    nodes
}

/// JSON text of what is stored (its failure an internal error).
fn json_text<T: serde::Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| err(ErrorCode::Internal, e.to_string()))
}
