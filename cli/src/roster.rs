//! The cluster's roster, as this machine trusts it (issue 20, membership), behind
//! `cohort node`.
//!
//! The roster in force is the pinned genesis' (roster version 0) until a roster change is
//! committed, then the last committed change's: every committed change the coordinator lists
//! is checked here from the pinned genesis on ([`rosters`]), by its admins' approvals and the
//! word of every node of its roster that it committed it. A change adds a node at the end, replaces one at its index or removes
//! one ([`edited`]); it is checked here with the rules every enclave applies
//! (`ChangeRoster::diff`), approved by the admins in force, and proposed at every node; each
//! node's statement that it holds it as proposed is checked under the node key the pinned
//! roster lists. The proposals the coordinator reports are checked the same way ([`verify`]).

use anyhow::{Context, bail};
use coordinator::api::{
    AdminsStatus, ApprovedJson, ChangeRosterJson, ClusterStatus, ImagesStatus, KeyList,
    NodeReceipt, RosterCommitted, RosterDiffJson, RosterProposedResult, RosterStatus, Wire,
};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use protocol::genesis::RosterEntry;
use protocol::roster::commit::{
    CommittedRoster, KeysHeldStatement, keys_held_message, roster_set_message,
};
use protocol::roster::{ChangeRoster, RosterError, roster_proposed_message};
use serde_bytes::ByteBuf;

use crate::admins::{AdminChain, check_approvers};

pub mod commit;
pub mod join;
pub mod moves;
pub mod prepare;
use crate::requests;
use crate::trust::Trust;

/// The cluster's rosters as this machine checked them ([`rosters`]): the pinned genesis'
/// (version 0), then each committed change's; the last is the roster in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rosters {
    /// Each roster's nodes, by version.
    pub all: Vec<Vec<RosterEntry>>,
    /// Each committed change as a node that joins a later change is given it: with the
    /// keys-held statements it was committed on (each shown one checked here too,
    /// `verify_vouched`; a joining node checks that there is one of every node).
    pub committed: Vec<CommittedRoster>,
    /// The nodes of the last committed change's roster that gave no word that they committed
    /// it yet (by version): the commit is run again for them (`cohort node commit`).
    pub incomplete: Vec<(u32, Vec<u16>)>,
}

impl Rosters {
    /// The roster version in force.
    pub fn version(&self) -> u32 {
        u32::try_from(self.all.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The roster in force.
    pub fn in_force(&self) -> &[RosterEntry] {
        self.all.last().map(Vec::as_slice).unwrap_or_default()
    }
}

/// Checks the committed roster changes the coordinator lists, in order from the pinned
/// genesis: each makes the version after the one before and replaces it, is for the pinned
/// cluster, well formed, a real change of the roster before it, approved by the admins of the
/// admin version it names (`admins`, the checked admin chain), with its hash; a node of its
/// roster that stays gave its word that it committed it, under the node key that roster lists,
/// or a node of its roster vouched for the next change under a chain that holds it; every
/// keys-held statement shown verifies over the chain of its change's moment (`hashes`: the
/// admin and image changes the coordinator lists). A change the admins did not approve, or
/// that no node of its roster is shown to have committed, is refused.
pub fn rosters(
    trust: &Trust,
    (admins, hashes): (&AdminChain, &ChangeHashes),
    committed: &[RosterCommitted],
) -> anyhow::Result<Rosters> {
    let cluster = trust.cluster_id();
    let mut out = Rosters {
        all: vec![trust.genesis().roster.clone()],
        committed: Vec::new(),
        incomplete: Vec::new(),
    };
    let mut unanchored = Vec::new();
    // Each change's hash, computed once: the chain digest of a later change names them all.
    let mut earlier: Vec<[u8; 32]> = Vec::with_capacity(committed.len());
    for (i, c) in committed.iter().enumerate() {
        let before = out.version();
        let approved = c.request.to_wire();
        let r = &approved.request;
        let hash = r.hash();
        if c.version != before + 1 || r.version != before || c.request_sha256.0 != hash {
            bail!(
                "the coordinator lists a committed roster change out of order, or under another \
                 version or hash than its request's (version {})",
                c.version
            );
        }
        if r.cluster != cluster {
            bail!("a committed roster change is for another cluster");
        }
        r.check().context("a committed roster change")?;
        admins.check_approved(
            "a committed roster change",
            (r, r.admins),
            &approved.approvals,
        )?;
        // Against every roster before it, as the enclaves check it: no node key that left
        // comes back (attacker review helper-77, L6).
        let history: Vec<&[RosterEntry]> = out.all.iter().map(Vec::as_slice).collect();
        r.diff(&history, 0)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("a committed roster change")?;
        let (missing, anchored) =
            words_of(&cluster, (c.version, &hash), (out.in_force(), &r.roster), c)?;
        if !missing.is_empty() {
            out.incomplete.push((c.version, missing));
        }
        if !anchored {
            unanchored.push(i);
        }
        verify_vouched(&cluster, hashes, (c, r, &hash), &earlier)?;
        earlier.push(hash);
        let statements = c
            .vouched
            .iter()
            .map(|v| {
                let entry = r
                    .roster
                    .get(usize::from(v.node))
                    .context("a keys-held statement of a node its roster does not list")?;
                Ok(KeysHeldStatement {
                    node_key: entry.node_key.clone(),
                    keys: ByteBuf::from(c.keys.0.clone()),
                    statement: ByteBuf::from(v.signature.0.clone()),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        out.committed.push(CommittedRoster {
            change: approved.clone(),
            images: c.images,
            statements,
            keys: Vec::new(),
            aux: None,
        });
        out.all.push(r.roster.clone());
    }
    // A change no node that stays gave its word on is followed only if a node of its roster
    // vouched for the next change under a chain that holds it (helper-82, finding 4).
    for i in unanchored {
        if !vouched_after(&out.all, committed, i) {
            bail!(
                "no node that stays in roster version {} gave its word that it committed the \
                 change, and no node of that roster vouched for the next change under a chain \
                 that holds it",
                committed[i].version
            );
        }
    }
    // Only the last change can lack a node's word for good reason: a node of an earlier
    // roster that is still a member committed every change since, and one that left can
    // commit nothing any more (a coordinator rebuilt from the nodes knows no word of a node
    // that left; helper-82, finding 5).
    let last = out.version();
    out.incomplete.retain(|(version, _)| *version == last);
    Ok(out)
}

/// The request hashes of the admin and image changes the coordinator lists, in version order:
/// what the digest of the chain a node vouched for a roster change under is recomputed from
/// ([`verify_vouched`]). Not checked here: a hash the coordinator made up makes a digest no
/// node signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeHashes {
    /// Each admin change's, by version.
    pub admins: Vec<[u8; 32]>,
    /// Each image change's, by version.
    pub images: Vec<[u8; 32]>,
}

impl ChangeHashes {
    /// The hashes of the changes `admins` and `images` list (no image change without it).
    pub fn of(admins: &AdminsStatus, images: Option<&ImagesStatus>) -> Self {
        Self {
            admins: admins
                .changes
                .iter()
                .map(|c| c.request.request.to_wire().hash())
                .collect(),
            images: images
                .map(|i| {
                    i.changes
                        .iter()
                        .map(|c| c.request.request.to_wire().hash())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Checks every keys-held statement the coordinator shows for the committed change `c` (its
/// request `r`, whose hash is `hash`; `before`: the hashes of the changes before it), the
/// change making roster version `c.version`: each under the node key its roster lists at
/// the statement's index, over the key set the change names and the digest of the chain of its
/// moment — the admin changes up to the version it names, the image changes it was committed
/// under, the roster changes before it, as each enclave computed it when it vouched
/// (`chain_digest_with_rosters`). One that does not verify, or one index shown twice, is
/// refused: the coordinator shows a node's word it did not give. What [`vouched_after`]
/// relies on.
fn verify_vouched(
    cluster: &protocol::genesis::ClusterId,
    hashes: &ChangeHashes,
    (c, r, hash): (&RosterCommitted, &ChangeRoster, &[u8; 32]),
    before: &[[u8; 32]],
) -> anyhow::Result<()> {
    if c.vouched.is_empty() {
        return Ok(());
    }
    let upto = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let (Some(admins), Some(images)) = (
        hashes.admins.get(..upto(r.admins)),
        hashes.images.get(..upto(c.images)),
    ) else {
        bail!(
            "committed roster version {} was committed under more admin or image changes than \
             the coordinator lists",
            c.version
        );
    };
    let keys = <[u8; 32]>::try_from(c.keys.0.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "committed roster version {}: the key set's digest is not 32 bytes",
            c.version
        )
    })?;
    let chain = protocol::roster::chain_digest_of_hashes(cluster, admins, images, before);
    let mut seen = std::collections::BTreeSet::new();
    for v in &c.vouched {
        let signed = r.roster.get(usize::from(v.node)).is_some_and(|entry| {
            <[u8; 32]>::try_from(entry.node_key.as_slice()).is_ok_and(|key| {
                let message = keys_held_message(cluster, &key, (c.version, hash), &chain, &keys);
                entry.signed(&message, &v.signature.0)
            })
        });
        if !signed || !seen.insert(v.node) {
            bail!(
                "node {}'s statement that it holds the key set of roster version {} does not \
                 verify under its node key over the chain of that moment, or is shown twice",
                v.node,
                c.version
            );
        }
    }
    Ok(())
}

/// Whether a node of the roster `committed[i]` made (`all[i + 1]`) that stays in the next
/// change's roster vouched for that next change: its keys-held statement (checked by
/// [`verify_vouched`]) is over the digest of a chain that holds `committed[..=i]`. A node of
/// that roster holds the change in its chain only if it committed it (its own commit or a
/// catch-up, each on other nodes' words; a node joins only a roster it is not in), so the
/// statement is its word that the change took effect, kept by every node that commits later
/// (helper-82, finding 4: after the database is lost, the roster-set words of nodes that have
/// left are gone). A node that joined with the next change is not counted: it was given the
/// chain, it did not commit it.
fn vouched_after(all: &[Vec<RosterEntry>], committed: &[RosterCommitted], i: usize) -> bool {
    // `all[0]` is the genesis' roster, `all[i + 1]` the one `committed[i]` made.
    let (Some(next), Some(made), Some(roster)) =
        (committed.get(i + 1), all.get(i + 1), all.get(i + 2))
    else {
        return false;
    };
    next.vouched.iter().any(|v| {
        roster
            .get(usize::from(v.node))
            .is_some_and(|entry| made.iter().any(|e| e.node_key == entry.node_key))
    })
}

/// Checks the roster-set words of the committed change `c` (making roster `version`, whose
/// SHA-256 is `hash`) of `next`, the roster it made of `current`: every word shown must verify
/// under the node key `next` lists at its index (a forged one is refused, and so is one named
/// twice or at no index). Returns the nodes that gave no word yet (a node that missed the
/// commit: attacker review helper-77, H1), and whether a node that stays gave its word (every
/// node, when none stays): an enclave commits only a change the admins approved, once every
/// node of the new roster vouched for one key set, so one node's word is that the change took
/// effect. Without one, [`vouched_after`] must show it.
fn words_of(
    cluster: &protocol::genesis::ClusterId,
    (version, hash): (u32, &[u8; 32]),
    (current, next): (&[RosterEntry], &[RosterEntry]),
    c: &RosterCommitted,
) -> anyhow::Result<(Vec<u16>, bool)> {
    let mut given = std::collections::BTreeSet::new();
    for w in &c.committed {
        let entry = next.get(usize::from(w.node)).with_context(|| {
            format!(
                "a word of node {}, which roster version {version} does not list",
                w.node
            )
        })?;
        let signed = <[u8; 32]>::try_from(entry.node_key.as_slice()).is_ok_and(|key| {
            entry.signed(
                &roster_set_message(cluster, &key, version, hash),
                &w.signature.0,
            )
        });
        if !signed || !given.insert(w.node) {
            bail!(
                "node {}'s word that it committed roster version {version} does not verify \
                 under its node key, or is shown twice",
                w.node
            );
        }
    }
    let stays = |i: usize| current.iter().any(|e| e.node_key == next[i].node_key);
    let kept: Vec<usize> = (0..next.len()).filter(|i| stays(*i)).collect();
    let anchored = if kept.is_empty() {
        given.len() == next.len()
    } else {
        kept.iter().any(|i| given.contains(&(*i as u16)))
    };
    let missing = (0..next.len() as u16)
        .filter(|i| !given.contains(i))
        .collect();
    Ok((missing, anchored))
}

/// How a roster change edits the roster in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// A new node at the end.
    Add(RosterEntry),
    /// A new node in place of the node at this index (a lost node, or a node to re-pin).
    Replace(u16, RosterEntry),
    /// The node at this index leaves; the nodes after it move down by one.
    Remove(u16),
    /// The roster in force proposed again: withdraws the change pending.
    Withdraw,
}

/// The roster `edit` makes of `current`; an index out of the roster is refused by name.
pub fn edited(current: &[RosterEntry], edit: Edit) -> anyhow::Result<Vec<RosterEntry>> {
    let mut roster = current.to_vec();
    let check = |node: u16| {
        if usize::from(node) >= current.len() {
            bail!(
                "node {node} is not in the roster in force (nodes 0 to {})",
                current.len().saturating_sub(1)
            );
        }
        Ok(usize::from(node))
    };
    match edit {
        Edit::Add(entry) => roster.push(entry),
        Edit::Replace(node, entry) => roster[check(node)?] = entry,
        Edit::Remove(node) => {
            roster.remove(check(node)?);
        }
        Edit::Withdraw => {}
    }
    Ok(roster)
}

/// Checks each statement that a node of the roster in force (`roster`) holds the roster
/// change whose SHA-256 is `hash` (making roster `version`) as proposed, under the node key
/// that roster lists at its index.
pub fn verify_proposed(
    trust: &Trust,
    (roster, version): (&[RosterEntry], u32),
    hash: &[u8; 32],
    statements: &[NodeReceipt],
) -> anyhow::Result<()> {
    let cluster = trust.cluster_id();
    for s in statements {
        let signed = roster.get(usize::from(s.node)).is_some_and(|entry| {
            <[u8; 32]>::try_from(entry.node_key.as_slice()).is_ok_and(|key| {
                let message = roster_proposed_message(&cluster, &key, version, hash);
                entry.signed(&message, &s.signature.0)
            })
        });
        if !signed {
            bail!(
                "node {}'s statement that it holds roster version {version} as proposed does \
                 not verify under its node key in the roster in force",
                s.node
            );
        }
    }
    Ok(())
}

/// Checks the roster the coordinator reports (`GET /v1/cluster`) against the pinned genesis:
/// the roster in force is the one the committed changes make ([`rosters`]), and each proposal
/// is for the pinned cluster, replaces that version, is well formed, approved by the admins of the admin version
/// it names (`admins`, the checked admin chain), with its hash, and has at least one node's
/// statement, every one of which verifies; the proposals are in the order the nodes apply
/// them, and the change pending is the last approved under the admin version in force, unless
/// it is a withdrawal.
pub fn verify(
    trust: &Trust,
    (admins, hashes): (&AdminChain, &ChangeHashes),
    status: &RosterStatus,
) -> anyhow::Result<Rosters> {
    let rosters = rosters(trust, (admins, hashes), &status.committed)?;
    verify_status(trust, admins, status, rosters)
}

/// [`verify`] with the rosters `status.committed` makes, checked already ([`rosters`]).
fn verify_status(
    trust: &Trust,
    admins: &AdminChain,
    status: &RosterStatus,
    rosters: Rosters,
) -> anyhow::Result<Rosters> {
    let version = rosters.version();
    if status.version != version
        || !status
            .roster
            .iter()
            .map(Wire::to_wire)
            .eq(rosters.in_force().iter().cloned())
    {
        bail!(
            "the coordinator reports roster version {} with another roster than the one the \
             pinned genesis and the committed changes make (version {version})",
            status.version
        );
    }
    // The order the nodes apply proposals in is checked here, not taken from the
    // coordinator: by creation time, then by request hash, each hash once (attacker review
    // helper-57, finding 2).
    let order: Vec<(u64, Vec<u8>)> = status
        .proposals
        .iter()
        .map(|p| (p.request.request.created, p.request_sha256.0.clone()))
        .collect();
    if order.windows(2).any(|w| w[0] >= w[1]) {
        bail!(
            "the coordinator lists the roster proposals out of the order the nodes apply them \
             (created, then request hash), or one twice"
        );
    }
    for p in &status.proposals {
        let approved = p.request.to_wire();
        let r = &approved.request;
        if r.cluster != trust.cluster_id() || r.version != version {
            bail!("a roster proposal is for another cluster or roster version");
        }
        r.check().context("a roster proposal")?;
        admins.check_approved("a roster proposal", (r, r.admins), &approved.approvals)?;
        let hash = r.hash();
        if p.request_sha256.0 != hash || p.version != r.new_version() {
            bail!("the coordinator names another hash or version for a roster proposal");
        }
        if p.statements.is_empty() {
            bail!(
                "no node holds the roster proposal {} as proposed",
                hex::encode(hash)
            );
        }
        verify_proposed(trust, (rosters.in_force(), p.version), &hash, &p.statements)?;
    }
    // Pending: the last proposal approved under the admin version in force (an admin change
    // drops a pending proposal at every node), unless it is a withdrawal.
    let admin_version = admins.current().version;
    let pending = status
        .proposals
        .iter()
        .rfind(|p| p.request.request.admins == admin_version)
        .filter(|p| p.request.request.roster != status.roster)
        .map(|p| &p.request_sha256);
    if status.pending.as_ref() != pending {
        bail!("the coordinator names another pending roster change than its proposals make");
    }
    Ok(rosters)
}

/// Whether `statements` name every node of a roster of `nodes` (distinct indices: a
/// statement repeated counts once, attacker review helper-57, finding 7).
pub fn every_node(statements: &[NodeReceipt], nodes: usize) -> bool {
    let named: std::collections::BTreeSet<u16> = statements
        .iter()
        .map(|s| s.node)
        .filter(|n| usize::from(*n) < nodes)
        .collect();
    named.len() >= nodes
}

/// The exit code of a step each node of a roster of `nodes` applies: success only when every
/// list of `applied` statements names every node ([`every_node`]).
pub fn exit_code<'a>(
    applied: impl IntoIterator<Item = &'a [NodeReceipt]>,
    nodes: usize,
) -> std::process::ExitCode {
    if applied.into_iter().all(|a| every_node(a, nodes)) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

fn api_err(e: coordinator::client::ApiCallError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The admin chain and the roster with its proposals, from one `GET /v1/cluster`, both
/// checked against the pinned genesis, with the rosters they make.
pub async fn fetch(
    api: &ApiClient,
    trust: &Trust,
) -> anyhow::Result<(AdminChain, RosterStatus, Rosters)> {
    let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
    let (Some(admins), Some(roster)) = (status.admins, status.roster) else {
        bail!(
            "the coordinator reports no admin set or no roster (is the cluster's genesis ready, \
             and the coordinator recent enough?)"
        );
    };
    let (chain, trust, rosters) =
        verify_with_rosters(trust, &roster.committed, (&admins, status.images.as_ref()))?;
    let rosters = verify_status(&trust, &chain, &roster, rosters)?;
    Ok((chain, roster, rosters))
}

/// `trust` with every roster of the cluster as this machine checks them from the pinned
/// genesis ([`fetch`]): what node statements and key receipts signed after a committed change
/// are checked under.
pub async fn checked_trust(api: &ApiClient, trust: &Trust) -> anyhow::Result<Trust> {
    let (_, _, rosters) = fetch(api, trust).await?;
    Ok(trust.with_rosters(rosters.all))
}

/// Checks the admin chain `admins` (whose node statements name an index, not a roster) with
/// `trust` holding the rosters `committed` lists, then checks those committed changes against
/// that chain ([`rosters`]: approvals and node words): a statement accepted under a roster the
/// coordinator made up is refused with it. The chain's approvals never depend on the rosters
/// (each change is approved by the admins before it, from the pinned genesis on). Returns the
/// chain, the trust with the rosters checked, and those rosters. `images`, the image chain as
/// the coordinator reports it, gives the digests committed changes were vouched for under.
pub(crate) fn verify_with_rosters(
    trust: &Trust,
    committed: &[RosterCommitted],
    (admins, images): (&AdminsStatus, Option<&ImagesStatus>),
) -> anyhow::Result<(AdminChain, Trust, Rosters)> {
    let mut listed = vec![trust.genesis().roster.clone()];
    listed.extend(committed.iter().map(|c| c.request.request.to_wire().roster));
    let candidate = trust.with_rosters(listed);
    let chain = AdminChain::verify(&candidate, admins)?;
    let hashes = ChangeHashes::of(admins, images);
    let checked = rosters(&candidate, (&chain, &hashes), committed)?;
    Ok((chain, trust.with_rosters(checked.all.clone()), checked))
}

/// The roster version in force as the coordinator reports it (0 from a coordinator that
/// predates roster changes): what a new key's request names. Not checked: every enclave
/// refuses a request naming another version than its own (`stale_roster`).
pub async fn roster_version(api: &ApiClient) -> anyhow::Result<u32> {
    let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
    Ok(status.roster.map_or(0, |r| r.version))
}

/// How many nodes the roster in force has, as this machine checks it ([`fetch`]): what a
/// change every node applies is counted against (attacker review helper-77, M1: not the
/// pinned genesis' count, which misses a node a committed change added).
pub async fn nodes_in_force(api: &ApiClient, trust: &Trust) -> anyhow::Result<usize> {
    let (_, _, rosters) = fetch(api, trust).await?;
    Ok(rosters.in_force().len())
}

/// The highest threshold of the keys the coordinator lists: a new roster needs at least as
/// many nodes (checked here early; every enclave checks it against the keys it holds).
pub async fn max_threshold(api: &ApiClient) -> anyhow::Result<u16> {
    let keys: KeyList = api.get("/v1/keys").await.map_err(api_err)?;
    Ok(keys.keys.iter().map(|k| k.threshold).max().unwrap_or(0))
}

/// Proposes `edit` of the pinned roster, approved by `approvers` (admins of the set in force,
/// `admins`' current one, at least its quorum of them), created after every proposal of
/// `status` (both from [`fetch`]): checked here first with the rules
/// every enclave applies (a withdrawal only as [`Edit::Withdraw`]), then posted; the answer's
/// statements are checked against the pinned roster. Nodes that do not hold it are in its
/// `failed`; posting the same change again ([`propose_again`]) tries them.
pub async fn propose(
    api: &ApiClient,
    trust: &Trust,
    (admins, status, rosters): (&AdminChain, &RosterStatus, &Rosters),
    edit: Edit,
    approvers: &[SigningKey],
) -> anyhow::Result<(ChangeRoster, RosterProposedResult)> {
    let set = admins.current();
    check_approvers(set, approvers)?;
    let pinned = rosters.in_force();
    let withdraw = edit == Edit::Withdraw;
    let roster = edited(pinned, edit)?;
    let mut request = requests::change_roster(
        trust.cluster_id(),
        (rosters.version(), &roster),
        set.version,
    );
    // Created after every proposal recorded, so that the nodes take it over any of them, also
    // one made in the same second (attacker review helper-58, finding 2); the coordinator
    // waits out the second at most.
    if let Some(last) = status
        .proposals
        .iter()
        .map(|p| p.request.request.created)
        .max()
        && last >= request.created
    {
        let validity = request.expiry - request.created;
        request.created = last + 1;
        request.expiry = request.created + validity;
    }
    match request.diff(&[pinned], max_threshold(api).await?) {
        Ok(_) if !withdraw => {}
        Err(RosterError::Unchanged) if withdraw => {}
        Ok(_) => bail!("a withdrawal names the roster in force"),
        Err(e) => return Err(anyhow::anyhow!("{e}")).context("the new roster"),
    }
    let approved = requests::approve(&request, approvers);
    let answer = post(
        (api, trust, rosters),
        &ApprovedJson::<ChangeRosterJson>::from_wire(&approved),
    )
    .await?;
    Ok((request, answer))
}

/// Posts `change` and checks the answer: the version it makes, its hash, and every statement
/// under the roster in force.
async fn post(
    (api, trust, rosters): (&ApiClient, &Trust, &Rosters),
    change: &ApprovedJson<ChangeRosterJson>,
) -> anyhow::Result<RosterProposedResult> {
    let answer: RosterProposedResult = api
        .post("/v1/cluster/roster", change)
        .await
        .map_err(api_err)?;
    let r = change.request.to_wire();
    let hash = r.hash();
    if answer.version != r.new_version() || answer.request_sha256.0 != hash {
        bail!("the coordinator answered for another roster change than the one sent");
    }
    // What the change does is computed here, not taken from the coordinator (the thresholds
    // do not change the diff).
    let (diff, withdrawal) = match r.diff(&[rosters.in_force()], 0) {
        Ok(d) => (RosterDiffJson::from(&d), false),
        Err(RosterError::Unchanged) => (RosterDiffJson::default(), true),
        Err(e) => return Err(anyhow::anyhow!("{e}")).context("the roster change"),
    };
    if answer.diff != diff || answer.withdrawal != withdrawal {
        bail!("the coordinator describes the roster change otherwise than it reads");
    }
    verify_proposed(
        trust,
        (rosters.in_force(), answer.version),
        &hash,
        &answer.proposed,
    )?;
    Ok(answer)
}

/// Posts the last roster proposal again (checked first; the pending change, or a withdrawal or
/// fence, approved under the admin version in force): every node that does not hold it is
/// shown another node's statement and takes it, after its expiry too (attacker review
/// helper-58, finding 1: a fence some node missed is completed so). `None` when there is none.
pub async fn propose_again(
    api: &ApiClient,
    trust: &Trust,
) -> anyhow::Result<Option<(RosterProposedResult, Rosters)>> {
    let (admins, status, rosters) = fetch(api, trust).await?;
    let version = admins.current().version;
    let Some(last) = status
        .proposals
        .iter()
        .rfind(|p| p.request.request.admins == version)
    else {
        return Ok(None);
    };
    let answer = post((api, trust, &rosters), &last.request).await?;
    Ok(Some((answer, rosters)))
}

#[cfg(test)]
mod tests;
