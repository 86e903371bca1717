//! The enclave images the cluster accepts, as this machine trusts them (issue 20, image
//! rotation), behind `cohort images`.
//!
//! Image version 0 is the pinned genesis' image alone. Each later version comes from the
//! coordinator, which is not trusted: its chain of changes is checked here ([`ImageChain`]) —
//! each change for the pinned cluster, replacing the version before it, approved by the admins
//! of the admin version it names (from the admin chain, checked the same way:
//! [`crate::admins::AdminChain`]), and signed by nodes of the pinned roster that applied it.

use std::path::Path;

use anyhow::{Context, bail};
use coordinator::api::{
    AcceptImagesJson, AdminsSetResult, AdminsStatus, ApprovedJson, ClusterStatus, ImagesStatus,
    Wire,
};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use protocol::genesis::{Image, PCR_LEN};
use protocol::images::{AcceptImages, images_set_message};
use serde_bytes::ByteBuf;

use crate::admins::{AdminChain, check_approvers, verify_node_statements};
use crate::requests;
use crate::trust::Trust;

/// One version of the image set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Its version (0: the genesis' image alone).
    pub version: u32,
    /// The images: the ones nodes admit as peers and may run on.
    pub images: Vec<Image>,
}

/// Every version of the image set from the pinned genesis on, each change checked: only
/// [`ImageChain::genesis`] and [`ImageChain::verify`] make one.
#[derive(Debug, Clone)]
pub struct ImageChain {
    /// Version 0.
    genesis: ImageSet,
    /// Version `v` at index `v - 1`.
    changed: Vec<ImageSet>,
}

impl ImageChain {
    /// The pinned genesis' image alone (version 0).
    pub fn genesis(trust: &Trust) -> Self {
        Self {
            genesis: ImageSet {
                version: 0,
                images: vec![trust.genesis().image.clone()],
            },
            changed: Vec::new(),
        }
    }

    /// The set in force.
    pub fn current(&self) -> &ImageSet {
        self.changed.last().unwrap_or(&self.genesis)
    }

    /// The set of image version `version`, if the chain reaches it.
    pub fn at(&self, version: u32) -> Option<&ImageSet> {
        match version.checked_sub(1) {
            None => Some(&self.genesis),
            Some(i) => self.changed.get(usize::try_from(i).ok()?),
        }
    }

    /// Checks the image set the coordinator reports (`GET /v1/cluster`) against the pinned
    /// genesis: each change for the pinned cluster, well formed, replacing the version before
    /// it, approved by the admins of the admin version it names (as `admins`, the checked
    /// admin chain, has them), with its hash, and with at least one statement, every one of
    /// which verifies under the pinned roster; and the set in force as the last change makes
    /// it.
    pub fn verify(
        trust: &Trust,
        admins: &AdminChain,
        status: &ImagesStatus,
    ) -> anyhow::Result<Self> {
        let mut chain = Self::genesis(trust);
        for change in &status.changes {
            let approved = change.request.to_wire();
            let r = &approved.request;
            let before = chain.current().clone();
            if r.version != before.version || change.version != r.new_version() {
                bail!(
                    "the coordinator's change to image version {} does not replace version {}: \
                     refusing its image set",
                    change.version,
                    before.version
                );
            }
            if r.cluster != trust.cluster_id() {
                bail!(
                    "the coordinator's change to image version {} is for another cluster than \
                     the pinned one",
                    change.version
                );
            }
            r.check()
                .with_context(|| format!("the change to image version {}", change.version))?;
            admins.check_approved(
                &format!("the change to image version {}", change.version),
                (r, r.admins),
                &approved.approvals,
            )?;
            let hash = r.hash();
            if change.request_sha256.0 != hash {
                bail!(
                    "the coordinator names another hash for the change to image version {}",
                    change.version
                );
            }
            if change.statements.is_empty() {
                bail!(
                    "no node says it applied the change to image version {}",
                    change.version
                );
            }
            verify_statements(trust, change.version, &hash, &change.statements)?;
            chain.changed.push(ImageSet {
                version: change.version,
                images: r.images.clone(),
            });
        }
        let current = chain.current();
        if status.version != current.version
            || !status
                .images
                .iter()
                .map(|i| i.to_wire())
                .eq(current.images.iter().cloned())
        {
            bail!("the coordinator's image set in force is not the one its changes make");
        }
        Ok(chain)
    }
}

/// Checks each statement that a node applied the image change whose SHA-256 is `hash`,
/// making image `version`, under the node key the pinned roster lists for that node.
pub fn verify_statements(
    trust: &Trust,
    version: u32,
    hash: &[u8; 32],
    statements: &[coordinator::api::NodeReceipt],
) -> anyhow::Result<()> {
    verify_node_statements(
        trust,
        ("image", images_set_message),
        version,
        hash,
        statements,
    )
}

/// An image given on the command line: `PCR0:PCR1:PCR2` (hex, 48 bytes each), or a
/// measurements file (JSON with `PCR0`, `PCR1` and `PCR2`, at the top level or under
/// `Measurements`, as eif-build and `nitro-cli describe-eif` print them).
pub fn parse_image(text: &str) -> anyhow::Result<Image> {
    let parts: Vec<&str> = text.split(':').collect();
    if let [pcr0, pcr1, pcr2] = parts.as_slice()
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        let pcr = |i: u8, digits: &str| -> anyhow::Result<ByteBuf> {
            let value = hex::decode(digits).with_context(|| format!("PCR{i} of `{text}`"))?;
            if value.len() != PCR_LEN {
                bail!("PCR{i} of `{text}` is {} bytes, not {PCR_LEN}", value.len());
            }
            Ok(ByteBuf::from(value))
        };
        return Ok(Image {
            pcr0: pcr(0, pcr0)?,
            pcr1: pcr(1, pcr1)?,
            pcr2: pcr(2, pcr2)?,
        });
    }
    read_image(Path::new(text))
}

/// The image (PCR0, PCR1, PCR2, 48 bytes each) of a measurements file.
pub fn read_image(path: &Path) -> anyhow::Result<Image> {
    let pcrs = attestation::read_measurements(path).map_err(anyhow::Error::msg)?;
    let pcr = |i: usize| -> anyhow::Result<ByteBuf> {
        let value = pcrs
            .get(&i)
            .with_context(|| format!("{} has no PCR{i}", path.display()))?;
        if value.len() != PCR_LEN {
            bail!(
                "PCR{i} in {} is {} bytes, not {PCR_LEN}",
                path.display(),
                value.len()
            );
        }
        Ok(ByteBuf::from(value.clone()))
    };
    Ok(Image {
        pcr0: pcr(0)?,
        pcr1: pcr(1)?,
        pcr2: pcr(2)?,
    })
}

/// An image as `cohort images` prints it: `PCR0:PCR1:PCR2` in hex, the form `--image` takes.
pub fn image_text(image: &Image) -> String {
    format!(
        "{}:{}:{}",
        hex::encode(&image.pcr0),
        hex::encode(&image.pcr1),
        hex::encode(&image.pcr2)
    )
}

fn api_err(e: coordinator::client::ApiCallError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The coordinator's admin set and image set with their changes, from one `GET /v1/cluster`,
/// each chain checked against the pinned genesis (the image changes' approvals against the
/// admin chain), with what it reported of both.
pub async fn fetch(
    api: &ApiClient,
    trust: &Trust,
) -> anyhow::Result<(AdminChain, ImageChain, AdminsStatus, ImagesStatus)> {
    let (admin_chain, image_chain, admins, images, _) = fetch_checked(api, trust).await?;
    Ok((admin_chain, image_chain, admins, images))
}

/// [`fetch`], with `trust` holding the rosters checked with the chains.
async fn fetch_checked(
    api: &ApiClient,
    trust: &Trust,
) -> anyhow::Result<(AdminChain, ImageChain, AdminsStatus, ImagesStatus, Trust)> {
    let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
    let (Some(admins), Some(images)) = (status.admins, status.images) else {
        bail!(
            "the coordinator reports no admin set or no image set (is the cluster's genesis \
             ready, and the coordinator recent enough?)"
        );
    };
    let committed = status.roster.map(|r| r.committed).unwrap_or_default();
    let (admin_chain, trust, _) =
        crate::roster::verify_with_rosters(trust, &committed, (&admins, Some(&images)))?;
    let image_chain = ImageChain::verify(&trust, &admin_chain, &images)?;
    Ok((admin_chain, image_chain, admins, images, trust))
}

/// Checks the coordinator's answer to `request`: the version it makes, its hash, and every
/// statement under the pinned roster.
fn check_answer(
    trust: &Trust,
    request: &AcceptImages,
    answer: &AdminsSetResult,
) -> anyhow::Result<()> {
    let hash = request.hash();
    if answer.version != request.new_version() || answer.request_sha256.0 != hash {
        bail!("the coordinator answered for another image change than the one sent");
    }
    verify_statements(trust, answer.version, &hash, &answer.applied)
}

/// Replaces the set of enclave images the cluster accepts with `images`, approved by
/// `approvers` (admins of the admin set in force, `admins`' current one, at least its quorum
/// of them), replacing the image set in force (`chain`'s current one). The answer's statements
/// are checked against the pinned roster; nodes that did not apply the change are in its
/// `failed` ([`catch_up`] tries them again).
pub async fn accept_images(
    api: &ApiClient,
    trust: &Trust,
    (admins, chain): (&AdminChain, &ImageChain),
    images: &[Image],
    approvers: &[SigningKey],
) -> anyhow::Result<(AcceptImages, AdminsSetResult)> {
    let trust = &crate::roster::checked_trust(api, trust).await?;
    let set = admins.current();
    check_approvers(set, approvers)?;
    let request = requests::accept_images(
        trust.cluster_id(),
        (chain.current().version, images),
        set.version,
    );
    request.check().context("the new image set")?;
    let approved = requests::approve(&request, approvers);
    let answer: AdminsSetResult = api
        .post(
            "/v1/cluster/images",
            &ApprovedJson::<AcceptImagesJson>::from_wire(&approved),
        )
        .await
        .map_err(api_err)?;
    check_answer(trust, &request, &answer)?;
    Ok((request, answer))
}

/// Posts again, in version order, every recorded image change: the coordinator tries it at
/// every node, each shown another node's statement (so after the change expired too); a node
/// that has it answers again, and one that missed it is caught up. The answers, checked.
pub async fn catch_up(api: &ApiClient, trust: &Trust) -> anyhow::Result<Vec<AdminsSetResult>> {
    let (_, _, _, images, trust) = &fetch_checked(api, trust).await?;
    let mut answers = Vec::new();
    for change in &images.changes {
        let answer: AdminsSetResult = api
            .post("/v1/cluster/images", &change.request)
            .await
            .map_err(api_err)?;
        check_answer(trust, &change.request.request.to_wire(), &answer)?;
        answers.push(answer);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests;
