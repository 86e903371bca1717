//! A node to add (issue 20, membership): enrolled and its document verified here, its roster
//! entry taken from that document ([`enroll`]), and the join (`docs/lifecycle.md`, step 2):
//! the pending change, with the chain from the pinned genesis and a member's statement, handed
//! to the new node's enclave ([`join`]), whose answer is checked here.
//!
//! The node to add is not the coordinator's yet (the coordinator relays to the roster in force):
//! this machine talks to its parent proxy (`POST /v1/enclave`) as the genesis ceremony's
//! machine does to every node. Nothing either answers is taken on trust: the document is
//! verified here with a fresh nonce against the attestation root and the images the cluster
//! accepts (each image's PCR0-2 together); the chain, the change and the member statements are
//! checked against the pinned genesis; the join's answer must be the change's proposed
//! statement by the node key the verified document binds, at the index the change lists it.

use anyhow::{Context, bail};
use attestation::VerifiedDocument;
use coordinator::api::ClusterStatus;
use coordinator::client::{ApiClient, HttpClient};
use protocol::genesis::{Image, RosterEntry};
use protocol::roster::{JoinCluster, roster_proposed_message};
use protocol::{EnclaveRequest, EnclaveResponse, KmsKeyArn};
use serde_bytes::ByteBuf;

use crate::ceremony::image_policy;
use crate::images::ImageChain;
use crate::trust::Trust;

/// The node to add: its parent proxy's base URL and the attestation root its document must
/// chain to (DER).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The proxy's base URL.
    pub proxy: &'a str,
    /// DER of the attestation root.
    pub root_der: &'a [u8],
}

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The node's current document, with a fresh nonce, verified here: the root, an identity
/// binding, its age, and the PCR0-2 of one of `images` together (never mixed).
pub async fn verified_document(
    http: &HttpClient,
    node: Candidate<'_>,
    images: &[Image],
) -> anyhow::Result<VerifiedDocument> {
    let nonce: [u8; 32] = rand::random();
    let document = http
        .fetch_attestation(node.proxy, &nonce)
        .await
        .with_context(|| format!("the node behind {}", node.proxy))?;
    let mut refused = String::from("the cluster accepts no image");
    for image in images {
        let policy = image_policy(
            node.root_der,
            [&image.pcr0, &image.pcr1, &image.pcr2],
            &nonce,
        );
        match attestation::verify(&document, &policy, now()) {
            Ok(doc) => return Ok(doc),
            Err(e) => refused = e.to_string(),
        }
    }
    bail!(
        "the document of the node behind {} does not verify under any image the cluster \
         accepts: {refused}",
        node.proxy
    )
}

/// The roster entry a verified document shows: the node key and KMS key it binds, and its
/// parent's PCR3 and PCR4 when `pin_parent` (peers then admit it only on that parent).
pub fn entry_of(doc: &VerifiedDocument, pin_parent: bool) -> anyhow::Result<RosterEntry> {
    let binding = doc
        .node
        .as_ref()
        .context("the node's document binds no node key: enroll it first (`cohort node enroll`)")?;
    let pcr = |i: usize| -> anyhow::Result<Option<ByteBuf>> {
        if !pin_parent {
            return Ok(None);
        }
        let value = doc.pcrs.get(&i).with_context(|| {
            format!("the node's document shows no PCR{i} to pin (not on an EC2 parent?)")
        })?;
        Ok(Some(ByteBuf::from(value.clone())))
    };
    Ok(RosterEntry {
        node_key: ByteBuf::from(binding.node_key.to_vec()),
        kms_key_arn: KmsKeyArn::parse(binding.kms_key_arn())
            .context("the KMS key the node's document binds")?,
        pcr3: pcr(3)?,
        pcr4: pcr(4)?,
    })
}

/// Enrolls the node under `kms_key` unless its document binds a node key already, and returns
/// the roster entry its verified document then shows (see [`entry_of`]). A node enrolled under
/// another KMS key is refused: a node key is never replaced.
pub async fn enroll(
    http: &HttpClient,
    node: Candidate<'_>,
    images: &[Image],
    kms_key: &KmsKeyArn,
    pin_parent: bool,
) -> anyhow::Result<RosterEntry> {
    let mut doc = verified_document(http, node, images).await?;
    if doc.node.is_none() {
        let answer = http
            .enclave_call(
                node.proxy,
                &EnclaveRequest::Enroll {
                    kms_key_arn: kms_key.clone(),
                },
            )
            .await?;
        match answer {
            EnclaveResponse::Enrolled { .. } => {}
            EnclaveResponse::Error(e) => bail!("the node refused to enroll: {e}"),
            other => bail!("the node answered {other} to enroll"),
        }
        doc = verified_document(http, node, images).await?;
    }
    let entry = entry_of(&doc, pin_parent)?;
    if &entry.kms_key_arn != kms_key {
        bail!(
            "the node is enrolled under KMS key {}, not {kms_key}: a node key is never replaced \
             (a node enrolled by mistake needs a new enclave host and an empty blob store)",
            entry.kms_key_arn
        );
    }
    Ok(entry)
}

/// The images the cluster accepts now, from one `GET /v1/cluster` checked against the pinned
/// genesis.
pub async fn accepted_images(api: &ApiClient, trust: &Trust) -> anyhow::Result<Vec<Image>> {
    let (_, chain, _, _) = crate::images::fetch(api, trust).await?;
    Ok(chain.current().images.clone())
}

/// What a node that joined answered, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Its index in the roster the change makes.
    pub node: u16,
    /// The roster version the change makes.
    pub version: u32,
    /// The change's SHA-256.
    pub change: [u8; 32],
    /// Its entry in that roster.
    pub entry: RosterEntry,
}

/// The pending roster change as the coordinator reports it (`GET /v1/cluster`), checked
/// against the pinned genesis: the admin and image chains, every proposal, which one is
/// pending.
pub(super) struct Pending {
    /// The admin chain as reported (checked).
    pub(super) admins: coordinator::api::AdminsStatus,
    /// The image chain as reported (checked).
    pub(super) images: coordinator::api::ImagesStatus,
    /// The image chain, checked.
    pub(super) image_chain: ImageChain,
    /// The pending proposal, with the members' proposed statements (checked).
    pub(super) proposal: coordinator::api::RosterProposal,
    /// The pending change.
    pub(super) change: protocol::policy::Approved<protocol::roster::ChangeRoster>,
    /// The rosters, checked; the change replaces the last of them, or, for the change
    /// committed last ([`pending_or_committed`]), the one before.
    pub(super) rosters: super::Rosters,
    /// Whether the change is the one committed last, not a pending one.
    pub(super) committed: bool,
    /// For the change committed last: how many image changes the chain it was committed
    /// under held (`None` for a pending change: every one recorded).
    pub(super) images_at: Option<u32>,
}

impl Pending {
    /// The roster the change replaces.
    pub(super) fn replaced(&self) -> &[RosterEntry] {
        let all = &self.rosters.all;
        let at = all.len().saturating_sub(if self.committed { 2 } else { 1 });
        all.get(at).map(Vec::as_slice).unwrap_or_default()
    }

    /// The digest of the chain every node must hold the change under: the pinned cluster,
    /// every admin and image change and every roster change committed before it, as checked
    /// here.
    pub(super) fn chain_digest(&self, trust: &Trust) -> [u8; 32] {
        // A committed change's chain is the one of its moment: the admin changes up to the
        // version it was approved under, the image changes it was committed under (attacker
        // review helper-77, L1); a pending change's is every change recorded.
        let (admins_at, images_at) = match self.images_at {
            Some(images) => (self.change.request.admins, images),
            None => (u32::MAX, u32::MAX),
        };
        let upto = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let admins: Vec<_> = self
            .admins
            .changes
            .iter()
            .take(upto(admins_at))
            .map(|c| c.request.to_wire())
            .collect();
        let images: Vec<_> = self
            .images
            .changes
            .iter()
            .take(upto(images_at))
            .map(|c| c.request.to_wire())
            .collect();
        let before = self.rosters.committed.len() - usize::from(self.committed);
        protocol::roster::chain_digest_with_rosters(
            &trust.cluster_id(),
            &admins,
            &images,
            &self.rosters.committed[..before],
        )
    }
}

/// The pending roster change, checked against the pinned genesis ([`Pending`]).
pub(super) async fn pending(api: &ApiClient, trust: &Trust) -> anyhow::Result<Pending> {
    pending_or_committed(api, trust, false).await
}

/// The pending roster change, or with `committed`, when none is pending, the change committed
/// last (its commit run again: a node that missed it catches up).
pub(super) async fn pending_or_committed(
    api: &ApiClient,
    trust: &Trust,
    committed: bool,
) -> anyhow::Result<Pending> {
    let status: ClusterStatus = api
        .get("/v1/cluster")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (Some(admins), Some(images), Some(roster)) = (status.admins, status.images, status.roster)
    else {
        bail!(
            "the coordinator reports no admin set, image set or roster (is the cluster's genesis \
             ready, and the coordinator recent enough?)"
        );
    };
    // Statements of nodes a committed change added are checked under the rosters that list
    // them (attacker review helper-79, H-A).
    let (admin_chain, trust, rosters) =
        super::verify_with_rosters(trust, &roster.committed, (&admins, Some(&images)))?;
    let image_chain = ImageChain::verify(&trust, &admin_chain, &images)?;
    let rosters = super::verify_status(&trust, &admin_chain, &roster, rosters)?;
    if committed
        && roster.pending.is_none()
        && let Some(last) = roster.committed.last()
    {
        return Ok(Pending {
            admins,
            images,
            image_chain,
            proposal: coordinator::api::RosterProposal {
                version: last.version,
                request: last.request.clone(),
                request_sha256: last.request_sha256.clone(),
                statements: Vec::new(),
                recorded: last.recorded,
            },
            change: last.request.to_wire(),
            rosters,
            committed: true,
            images_at: Some(last.images),
        });
    }
    let pending = roster.pending.as_ref().context(
        "no roster change is pending: propose one first (`cohort node add` or `replace`)",
    )?;
    let proposal = roster
        .proposals
        .iter()
        .find(|p| &p.request_sha256 == pending)
        .context("the coordinator names a pending roster change it does not list")?
        .clone();
    let change = proposal.request.to_wire();
    Ok(Pending {
        admins,
        images,
        image_chain,
        proposal,
        change,
        rosters,
        committed: false,
        images_at: None,
    })
}

/// Hands the pending roster change to the node behind `node.proxy`: the coordinator's report
/// (`GET /v1/cluster`) is checked against the pinned genesis (the admin and image chains, the
/// proposals, which one is pending); the node's document is verified here and the node key it
/// binds must be one the pending change adds, with the same KMS key; the join carries the
/// pinned approved genesis, every admin and image change, the change and one member's checked
/// statement. The node's answer must be its statement over that change by that node key, at
/// the index the change lists it.
pub async fn join(
    api: &ApiClient,
    trust: &Trust,
    http: &HttpClient,
    node: Candidate<'_>,
) -> anyhow::Result<Joined> {
    let Pending {
        admins,
        images,
        image_chain,
        proposal,
        change,
        rosters,
        ..
    } = pending(api, trust).await?;
    let r = &change.request;
    // Checked by `verify` under the pinned roster, as the node checks it again.
    let member = proposal
        .statements
        .first()
        .context("no member holds the pending roster change")?;
    let doc = verified_document(http, node, &image_chain.current().images).await?;
    let entry = entry_of(&doc, false)?;
    let index = r
        .roster
        .iter()
        .position(|e| e.node_key == entry.node_key)
        .with_context(|| {
            format!(
                "the pending roster change does not list the node key {} that the node's \
                 document binds",
                hex::encode(&entry.node_key)
            )
        })?;
    let key: [u8; 32] = entry
        .node_key
        .as_slice()
        .try_into()
        .context("a node key of 32 bytes")?;
    if protocol::genesis::index_in(rosters.in_force(), &key).is_some() {
        bail!(
            "the node behind {} is a member of the roster in force, not a node to add",
            node.proxy
        );
    }
    let listed = r.roster[index].clone();
    if listed.kms_key_arn != entry.kms_key_arn {
        bail!(
            "the pending roster change lists the node under KMS key {}, but it is sealed under \
             {}",
            listed.kms_key_arn,
            entry.kms_key_arn
        );
    }
    let request = JoinCluster {
        genesis: trust.approved().clone(),
        admins: admins.changes.iter().map(|c| c.request.to_wire()).collect(),
        images: images.changes.iter().map(|c| c.request.to_wire()).collect(),
        // Every committed change, with the statements it was committed on: the node checks
        // each itself, from the genesis on.
        rosters: rosters.committed.clone(),
        change: change.clone(),
        proposed_by: member.node,
        statement: ByteBuf::from(member.signature.0.clone()),
    };
    let answer = http
        .enclave_call(node.proxy, &EnclaveRequest::JoinCluster { join: request })
        .await?;
    let (joined_at, version, statement) = match answer {
        EnclaveResponse::Joined {
            node,
            version,
            statement,
            ..
        } => (node, version, statement),
        EnclaveResponse::Error(e) => bail!("the node refused the join: {e}"),
        other => bail!("the node answered {other} to the join"),
    };
    let hash = r.hash();
    let message = roster_proposed_message(&trust.cluster_id(), &key, version, &hash);
    if usize::from(joined_at) != index
        || version != r.new_version()
        || !listed.signed(&message, &statement)
    {
        bail!(
            "the node's answer is not its statement over the pending change at index {index} \
             (it answered index {joined_at}, roster version {version})"
        );
    }
    Ok(Joined {
        node: joined_at,
        version,
        change: hash,
        entry: listed,
    })
}
