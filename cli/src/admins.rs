//! The cluster's admin set as this machine trusts it (issue 20), behind `cohort admins` and
//! every admin request the CLI builds.
//!
//! The genesis' admins (version 0) come from the pinned genesis. Each later version comes from
//! the coordinator, which is not trusted: its chain of changes is checked here ([`AdminChain`])
//! — each change for the pinned cluster, replacing the version before it, approved by that
//! version's quorum, and signed by nodes of the pinned roster that applied it. An admin request
//! names the version in force ([`admin_version`], one call, unchecked: an enclave refuses a
//! request naming another version than its own, so a coordinator that lies about it only gets
//! the request refused).

use anyhow::{Context, bail};
use coordinator::api::{
    AdminsSetResult, AdminsStatus, ApprovedJson, ClusterStatus, NodeReceipt, SetAdminsJson, Wire,
};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use protocol::admins::{SetAdmins, admins_set_message};
use protocol::genesis::ClusterId;
use serde_bytes::ByteBuf;

use crate::requests;
use crate::trust::Trust;

/// One version of the admin set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSet {
    /// Its version (0: the genesis' admins).
    pub version: u32,
    /// The admins' Ed25519 public keys.
    pub admins: Vec<ByteBuf>,
    /// How many of them approve an admin request.
    pub quorum: u16,
}

/// Every version of the admin set from the pinned genesis on, each change checked: only
/// [`AdminChain::genesis`] and [`AdminChain::verify`] make one.
#[derive(Debug, Clone)]
pub struct AdminChain {
    /// Version 0.
    genesis: AdminSet,
    /// Version `v` at index `v - 1`.
    changed: Vec<AdminSet>,
}

impl AdminChain {
    /// The pinned genesis' admins alone (version 0).
    pub fn genesis(trust: &Trust) -> Self {
        let g = trust.genesis();
        Self {
            genesis: AdminSet {
                version: 0,
                admins: g.admins.clone(),
                quorum: g.admin_quorum,
            },
            changed: Vec::new(),
        }
    }

    /// The set in force.
    pub fn current(&self) -> &AdminSet {
        self.changed.last().unwrap_or(&self.genesis)
    }

    /// The set of admin version `version`, if the chain reaches it.
    pub fn at(&self, version: u32) -> Option<&AdminSet> {
        match version.checked_sub(1) {
            None => Some(&self.genesis),
            Some(i) => self.changed.get(usize::try_from(i).ok()?),
        }
    }

    /// Checks the admin set the coordinator reports (`GET /v1/cluster`) against the pinned
    /// genesis: each change for the pinned cluster, well formed, replacing the version before
    /// it, approved by that version's quorum, with its hash, and with at least one statement,
    /// every one of which verifies under the pinned roster; and the set in force as the last
    /// change makes it.
    pub fn verify(trust: &Trust, status: &AdminsStatus) -> anyhow::Result<Self> {
        let mut chain = Self::genesis(trust);
        for change in &status.changes {
            let approved = change.request.to_wire();
            let r = &approved.request;
            let before = chain.current().clone();
            if r.version != before.version || change.version != r.new_version() {
                bail!(
                    "the coordinator's change to admin version {} does not replace version {}: \
                     refusing its admin set",
                    change.version,
                    before.version
                );
            }
            if r.cluster != trust.cluster_id() {
                bail!(
                    "the coordinator's change to admin version {} is for another cluster than \
                     the pinned one",
                    change.version
                );
            }
            r.check()
                .with_context(|| format!("the change to admin version {}", change.version))?;
            let admins: Vec<[u8; 32]> = before
                .admins
                .iter()
                .filter_map(|a| a.as_slice().try_into().ok())
                .collect();
            protocol::policy::check_approvals(r, &approved.approvals, &admins, before.quorum)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the change to admin version {} is not approved by the admins of version \
                         {}: {e}",
                        change.version,
                        before.version
                    )
                })?;
            let hash = r.hash();
            if change.request_sha256.0 != hash {
                bail!(
                    "the coordinator names another hash for the change to admin version {}",
                    change.version
                );
            }
            if change.statements.is_empty() {
                bail!(
                    "no node says it applied the change to admin version {}",
                    change.version
                );
            }
            verify_statements(trust, change.version, &hash, &change.statements)?;
            chain.changed.push(AdminSet {
                version: change.version,
                admins: r.admins.clone(),
                quorum: r.admin_quorum,
            });
        }
        let current = chain.current();
        if status.version != current.version
            || status.admin_quorum != current.quorum
            || !status
                .admins
                .iter()
                .map(|a| a.0.as_slice())
                .eq(current.admins.iter().map(|a| a.as_slice()))
        {
            bail!("the coordinator's admin set in force is not the one its changes make");
        }
        Ok(chain)
    }
}

/// What a node's statement that it applied a change signs: cluster, node, the version the
/// change makes, the change's SHA-256 (`protocol::admins::admins_set_message`,
/// `protocol::images::images_set_message`).
pub type StatementMessage = fn(&ClusterId, u16, u32, &[u8; 32]) -> Vec<u8>;

impl AdminChain {
    /// Checks that `request` (`what` it is, for messages) carries the approvals of the quorum
    /// of admin version `named`, as this checked chain has it.
    pub fn check_approved<T: protocol::policy::Canonical>(
        &self,
        what: &str,
        (request, named): (&T, u32),
        approvals: &[protocol::policy::Approval],
    ) -> anyhow::Result<()> {
        let Some(set) = self.at(named) else {
            bail!(
                "{what} names admin version {named}, which the checked admin chain does not reach"
            );
        };
        let keys: Vec<[u8; 32]> = set
            .admins
            .iter()
            .filter_map(|a| a.as_slice().try_into().ok())
            .collect();
        protocol::policy::check_approvals(request, approvals, &keys, set.quorum).map_err(|e| {
            anyhow::anyhow!("{what} is not approved by the admins of version {named}: {e}")
        })?;
        Ok(())
    }
}

/// Checks each statement that a node applied the change whose SHA-256 is `hash`, making admin
/// `version`, under the node key the pinned roster lists for that node.
pub fn verify_statements(
    trust: &Trust,
    version: u32,
    hash: &[u8; 32],
    statements: &[NodeReceipt],
) -> anyhow::Result<()> {
    verify_node_statements(
        trust,
        ("admin", admins_set_message),
        version,
        hash,
        statements,
    )
}

/// Checks each statement that a node applied a change (`what`: `admin`, `image`) whose SHA-256
/// is `hash`, making `version`, over `statement_message`, under the node key the pinned roster
/// lists for that node.
pub fn verify_node_statements(
    trust: &Trust,
    (what, statement_message): (&str, StatementMessage),
    version: u32,
    hash: &[u8; 32],
    statements: &[NodeReceipt],
) -> anyhow::Result<()> {
    let cluster = trust.cluster_id();
    for s in statements {
        let message = statement_message(&cluster, s.node, version, hash);
        // Under the node key a roster of the cluster lists at its index: the change may have
        // been applied under any roster in force since the genesis (issue 20; attacker review
        // helper-78, H1). A statement names an index, not a roster version, so a node that
        // held that index in an earlier roster counts as its word.
        let signed = trust.rosters().iter().any(|roster| {
            roster
                .get(usize::from(s.node))
                .is_some_and(|entry| entry.signed(&message, &s.signature.0))
        });
        if !signed {
            bail!(
                "node {}'s statement that it applied {what} version {version} does not verify \
                 under its node key in the pinned genesis or a committed roster",
                s.node
            );
        }
    }
    Ok(())
}

fn api_err(e: coordinator::client::ApiCallError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn status(api: &ApiClient) -> anyhow::Result<ClusterStatus> {
    api.get("/v1/cluster").await.map_err(api_err)
}

/// The admin version in force, as the coordinator reports it (one `GET /v1/cluster`; 0 from a
/// coordinator that predates admin changes): what a new admin request names. Not checked: an
/// enclave refuses a request naming another version than its own.
pub async fn admin_version(api: &ApiClient) -> anyhow::Result<u32> {
    Ok(status(api).await?.admins.map_or(0, |a| a.version))
}

/// The coordinator's admin set and its changes, checked against the pinned genesis
/// ([`AdminChain::verify`]), with what it reported.
pub async fn fetch(api: &ApiClient, trust: &Trust) -> anyhow::Result<(AdminChain, AdminsStatus)> {
    let (chain, admins, _) = fetch_checked(api, trust).await?;
    Ok((chain, admins))
}

/// [`fetch`], with `trust` holding the rosters checked with the chain.
async fn fetch_checked(
    api: &ApiClient,
    trust: &Trust,
) -> anyhow::Result<(AdminChain, AdminsStatus, Trust)> {
    let status = status(api).await?;
    let Some(admins) = status.admins else {
        bail!(
            "the coordinator reports no admin set (is the cluster's genesis ready, and the \
             coordinator recent enough?)"
        );
    };
    let committed = status.roster.map(|r| r.committed).unwrap_or_default();
    let (chain, trust, _) =
        crate::roster::verify_with_rosters(trust, &committed, (&admins, status.images.as_ref()))?;
    Ok((chain, admins, trust))
}

/// Checks the coordinator's answer to `request`: the version it makes, its hash, and every
/// statement under the pinned roster.
fn check_answer(
    trust: &Trust,
    request: &SetAdmins,
    answer: &AdminsSetResult,
) -> anyhow::Result<()> {
    let hash = request.hash();
    if answer.version != request.new_version() || answer.request_sha256.0 != hash {
        bail!("the coordinator answered for another admin change than the one sent");
    }
    verify_statements(trust, answer.version, &hash, &answer.applied)
}

/// Refuses to approve with `approvers` unless each is an admin of `set` (the one in force) and
/// there are at least its quorum of them.
pub fn check_approvers(set: &AdminSet, approvers: &[SigningKey]) -> anyhow::Result<()> {
    for key in approvers {
        let public = requests::public(key);
        if !set.admins.contains(&public) {
            bail!(
                "{} is not an admin of version {} (the one in force): refusing to approve",
                hex::encode(&public),
                set.version
            );
        }
    }
    if approvers.len() < usize::from(set.quorum) {
        bail!(
            "admin version {} needs {} approvals; {} admin key(s) given",
            set.version,
            set.quorum,
            approvers.len()
        );
    }
    Ok(())
}

/// Replaces the cluster's admins with `admins` and `quorum`, approved by `approvers` (admins
/// of the set in force, `chain`'s current one, at least its quorum of them). The answer's
/// statements are checked against the pinned roster; nodes that did not apply the change are
/// in its `failed` ([`catch_up`] tries them again).
pub async fn set_admins(
    api: &ApiClient,
    trust: &Trust,
    chain: &AdminChain,
    (admins, quorum): (&[[u8; 32]], u16),
    approvers: &[SigningKey],
) -> anyhow::Result<(SetAdmins, AdminsSetResult)> {
    let trust = &crate::roster::checked_trust(api, trust).await?;
    let current = chain.current();
    check_approvers(current, approvers)?;
    let request = requests::set_admins(trust.cluster_id(), current.version, admins, quorum);
    request.check().context("the new admin set")?;
    let approved = requests::approve(&request, approvers);
    let answer: AdminsSetResult = api
        .post(
            "/v1/cluster/admins",
            &ApprovedJson::<SetAdminsJson>::from_wire(&approved),
        )
        .await
        .map_err(api_err)?;
    check_answer(trust, &request, &answer)?;
    Ok((request, answer))
}

/// Posts again, in version order, every recorded change: the coordinator tries it at every
/// node, each shown another node's statement (so after the change expired too); a node that
/// has it answers again, and one restored from an older genesis blob (whose statement is
/// recorded already) is caught up (attacker review helper-45, finding 4). The answers, checked.
pub async fn catch_up(api: &ApiClient, trust: &Trust) -> anyhow::Result<Vec<AdminsSetResult>> {
    let (_, admins, trust) = &fetch_checked(api, trust).await?;
    let mut answers = Vec::new();
    for change in &admins.changes {
        let answer: AdminsSetResult = api
            .post("/v1/cluster/admins", &change.request)
            .await
            .map_err(api_err)?;
        check_answer(trust, &change.request.request.to_wire(), &answer)?;
        answers.push(answer);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, pinned};
    use coordinator::api::{AdminChange, Hex};
    use ed25519_dalek::Signer;

    /// The change from `version` to the admins of seeds `new` (any `quorum` of them), approved
    /// by `approvers`, with the statements of the nodes at `appliers` (signed by `nodes`).
    fn change(
        trust: &Trust,
        nodes: &[SigningKey],
        version: u32,
        (new, quorum): (Vec<u8>, u16),
        approvers: &[SigningKey],
        appliers: &[u16],
    ) -> AdminChange {
        let new: Vec<[u8; 32]> = new
            .iter()
            .map(|s| key(*s).verifying_key().to_bytes())
            .collect();
        let request = requests::set_admins(trust.cluster_id(), version, &new, quorum);
        let hash = request.hash();
        let approved = requests::approve(&request, approvers);
        AdminChange {
            version: version + 1,
            request: ApprovedJson::<SetAdminsJson>::from_wire(&approved),
            request_sha256: Hex(hash.to_vec()),
            statements: appliers
                .iter()
                .map(|n| {
                    let message = admins_set_message(&trust.cluster_id(), *n, version + 1, &hash);
                    NodeReceipt {
                        node: *n,
                        signature: Hex(nodes[usize::from(*n)].sign(&message).to_bytes().to_vec()),
                    }
                })
                .collect(),
            recorded: 1,
        }
    }

    /// The status a coordinator shows after `changes`.
    fn status(trust: &Trust, changes: Vec<AdminChange>) -> AdminsStatus {
        let (version, admins, admin_quorum) = match changes.last() {
            Some(c) => (
                c.version,
                c.request.request.admins.clone(),
                c.request.request.admin_quorum,
            ),
            None => (
                0,
                trust.genesis().admins.iter().map(Hex::from).collect(),
                trust.genesis().admin_quorum,
            ),
        };
        AdminsStatus {
            version,
            admins,
            admin_quorum,
            changes,
        }
    }

    #[test]
    fn a_chain_of_approved_applied_changes_verifies_and_names_every_version() {
        let nodes = [key(11), key(12)];
        let trust = pinned(&nodes);
        let genesis = AdminChain::verify(&trust, &status(&trust, vec![])).unwrap();
        assert_eq!(genesis.current().version, 0);
        assert!(genesis.at(1).is_none());
        let first = change(
            &trust,
            &nodes,
            0,
            (vec![4, 5], 1),
            &[key(1), key(3)],
            &[0, 1],
        );
        let second = change(&trust, &nodes, 1, (vec![6], 1), &[key(5)], &[1]);
        let chain = AdminChain::verify(&trust, &status(&trust, vec![first, second])).unwrap();
        assert_eq!(
            chain.current(),
            &AdminSet {
                version: 2,
                admins: vec![requests::public(&key(6))],
                quorum: 1,
            }
        );
        assert_eq!(chain.at(1).unwrap().admins.len(), 2);
        assert_eq!(chain.at(0).unwrap().quorum, 2);
        assert!(chain.at(3).is_none());
    }

    #[test]
    fn a_change_not_approved_by_the_set_before_it_or_not_signed_by_the_roster_is_refused() {
        let nodes = [key(11), key(12)];
        let trust = pinned(&nodes);
        let first = || change(&trust, &nodes, 0, (vec![4, 5], 1), &[key(1), key(2)], &[0]);
        let refused = [
            // One genesis admin is not the quorum.
            vec![change(&trust, &nodes, 0, (vec![4], 1), &[key(1)], &[0])],
            // A replaced admin approves the next change.
            vec![
                first(),
                change(&trust, &nodes, 1, (vec![6], 1), &[key(1)], &[0]),
            ],
            // A change that skips a version.
            vec![change(
                &trust,
                &nodes,
                1,
                (vec![4], 1),
                &[key(1), key(2)],
                &[0],
            )],
            // No node applied it.
            vec![change(
                &trust,
                &nodes,
                0,
                (vec![4], 1),
                &[key(1), key(2)],
                &[],
            )],
            // A statement by another key than the roster's.
            vec![change(
                &trust,
                &[key(12), key(11)],
                0,
                (vec![4], 1),
                &[key(1), key(2)],
                &[0],
            )],
        ];
        for changes in refused {
            assert!(AdminChain::verify(&trust, &status(&trust, changes)).is_err());
        }
        // The set in force must be the one the changes make.
        let mut lying = status(&trust, vec![first()]);
        lying.admin_quorum = 2;
        assert!(AdminChain::verify(&trust, &lying).is_err());
        let mut lying = status(&trust, vec![first()]);
        lying.version = 0;
        assert!(AdminChain::verify(&trust, &lying).is_err());
    }

    /// A change applied after a committed roster change put a new node at index 1 carries that
    /// node's statement: it verifies under the roster that lists it, which the client holds
    /// once it checked the committed changes (attacker review helper-78, H1), and under no
    /// other.
    #[test]
    fn a_statement_of_a_node_a_committed_change_added_verifies_under_that_roster_alone() {
        let nodes = [key(11), key(12)];
        let trust = pinned(&nodes);
        let replaced = [key(11), key(13)];
        let applied = || {
            vec![change(
                &trust,
                &replaced,
                0,
                (vec![4, 5], 1),
                &[key(1), key(2)],
                &[0, 1],
            )]
        };
        assert!(AdminChain::verify(&trust, &status(&trust, applied())).is_err());
        let mut later = trust.genesis().roster.clone();
        later[1].node_key = requests::public(&key(13));
        let with = trust.with_rosters(vec![trust.genesis().roster.clone(), later.clone()]);
        assert_eq!(with.rosters().len(), 2);
        let chain = AdminChain::verify(&with, &status(&trust, applied())).unwrap();
        assert_eq!(chain.current().version, 1);
        // A roster without the genesis' first is given it first.
        assert_eq!(trust.with_rosters(vec![later]).rosters().len(), 2);
        // Another key at index 1 in that roster: refused.
        let mut other = trust.genesis().roster.clone();
        other[1].node_key = requests::public(&key(14));
        let wrong = trust.with_rosters(vec![other]);
        assert!(AdminChain::verify(&wrong, &status(&trust, applied())).is_err());
    }
}
