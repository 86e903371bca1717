//! The enclave images the cluster accepts over time (issue 20, image rotation;
//! `docs/lifecycle.md`, ADR 0021): the genesis' image alone is image version 0; each change
//! ([`protocol::images::AcceptImages`]), approved by the admins in force under their version,
//! names the image version it replaces and the whole new set. The coordinator keeps the chain
//! of changes beside the genesis (`store::images`) and relays a change to every node as it
//! relays an admin change (`changes`): each node checks it against its own image version and
//! admin set, refuses a set without the image it runs, seals its genesis again with the change,
//! and signs a statement that it applied it, which is checked here under its roster node key.
//! A change is recorded once a node applied it; the same change posted again tries every node,
//! each shown another node's statement (so after its expiry too).

use std::sync::Arc;

use protocol::genesis::Image;
use protocol::images::{ACCEPT_IMAGES_VERSION, AcceptImages};
use tracing::{info, warn};

use super::changes::{self, receipts};
use super::checks::{check_admin_approvals, check_version_and_cluster, check_window, not_before};
use super::{Coordinator, err, unix_now};
use crate::api::{
    AcceptImagesJson, AdminsSetResult, ApiError, ApprovedJson, ErrorCode, GenesisBody,
    GenesisV2Json, Hex, ImageChange, ImageJson, ImagesStatus,
};

/// The image set in force: the images nodes admit as peers and may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageSet {
    /// Its version (0: the genesis' image alone); an image change names it.
    version: u32,
    /// Its images.
    images: Vec<ImageJson>,
}

/// A recorded image change, read back and checked against itself.
type Recorded = changes::Recorded<AcceptImagesJson>;

impl Recorded {
    fn json(&self) -> ImageChange {
        ImageChange {
            version: self.version(),
            request: self.approved.clone(),
            request_sha256: Hex(self.hash.to_vec()),
            statements: receipts(&self.statements),
            recorded: self.recorded,
        }
    }
}

/// The image set in force: the genesis' image alone (version 0), replaced by each recorded
/// change in order, each of which must replace the version before it.
fn image_set(genesis: &GenesisV2Json, changes: &[Recorded]) -> Result<ImageSet, ApiError> {
    let mut set = ImageSet {
        version: 0,
        images: vec![genesis.image.clone()],
    };
    for c in changes {
        let r = &c.approved.request;
        let version = r
            .version
            .checked_add(1)
            .filter(|_| r.version == set.version)
            .ok_or_else(|| {
                err(
                    ErrorCode::Storage,
                    format!(
                        "a recorded image change replaces version {}, not version {}: the \
                         recorded chain is broken",
                        r.version, set.version
                    ),
                )
            })?;
        set = ImageSet {
            version,
            images: r.images.clone(),
        };
    }
    Ok(set)
}

/// Where a posted change stands against the set in force and the recorded changes.
#[derive(Debug, PartialEq, Eq)]
enum Placed<'a> {
    /// It replaces the version in force: it is checked and run.
    New,
    /// The very change is recorded already: the nodes without a statement of it catch up.
    Recorded(&'a Recorded),
}

/// Places `request`: a change of the version in force is new; one recorded already (the same
/// request) is caught up; any other is stale.
fn place<'a>(
    request: &AcceptImages,
    set: &ImageSet,
    changes: &'a [Recorded],
) -> Result<Placed<'a>, ApiError> {
    if request.version == set.version {
        return Ok(Placed::New);
    }
    let hash = request.hash();
    match changes
        .iter()
        .find(|c| c.approved.request.version == request.version)
    {
        Some(c) if c.hash == hash => Ok(Placed::Recorded(c)),
        other => Err(err(
            ErrorCode::Unapproved,
            format!(
                "stale_images: the change replaces image version {}; the cluster's images are \
                 version {}{}",
                request.version,
                set.version,
                if other.is_some() {
                    " (another change of that version is recorded)"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// The images, for a message: the first 8 bytes of each PCR0, hex.
fn pcr0_prefixes(images: &[Image]) -> String {
    images
        .iter()
        .map(|i| hex::encode(i.pcr0.get(..8).unwrap_or(i.pcr0.as_slice())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the audit record says of a change (its nodes are the record's `nodes`).
fn describe(r: &AcceptImages) -> String {
    format!(
        "image version {} -> {}: [{}], request sha256 {}",
        r.version,
        r.new_version(),
        pcr0_prefixes(&r.images),
        hex::encode(r.hash())
    )
}

impl Coordinator {
    /// Every recorded image change, in version order.
    async fn image_changes(&self) -> Result<Vec<Recorded>, ApiError> {
        self.recorded_changes().await
    }

    /// The image set in force and every change of it, as `GET /v1/cluster` shows them;
    /// `None` until the genesis is ready, and for a genesis without a roster (it names no
    /// image).
    pub async fn images_status(&self) -> Result<Option<ImagesStatus>, ApiError> {
        let genesis = match self.cluster().await {
            Ok(g) => g,
            Err(e) if e.code == ErrorCode::Storage => return Err(e),
            Err(_) => return Ok(None),
        };
        let GenesisBody::V2(pinned) = &genesis else {
            return Ok(None);
        };
        let changes = self.image_changes().await?;
        let set = image_set(&pinned.request, &changes)?;
        Ok(Some(ImagesStatus {
            version: set.version,
            images: set.images,
            changes: changes.iter().map(Recorded::json).collect(),
        }))
    }

    /// Points the nodes' attestation policy at the image set in force (once the genesis is
    /// ready): the coordinator attests the images the enclaves admit, so a node restarted onto
    /// an accepted image during a rotation is used again, with no restart of the coordinator,
    /// and after a retire a node on the old image is not (`Nodes::follow_images`). Run by the
    /// health loop; several coordinators on one store follow the same chain.
    pub(super) async fn follow_images(&self) {
        match self.images_status().await {
            Ok(Some(status)) => {
                let images = status
                    .images
                    .iter()
                    .map(|i| [i.pcr0.0.clone(), i.pcr1.0.clone(), i.pcr2.0.clone()])
                    .collect();
                if self.nodes.follow_images(images) {
                    info!(
                        version = status.version,
                        images = status.images.len(),
                        "attesting nodes against the image set in force"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "the image set in force could not be read"),
        }
    }

    /// Changes the set of enclave images the cluster accepts (`POST /v1/cluster/images`): the
    /// change is checked against the image set and the admin set in force, run at every node
    /// and recorded once a node applied it. The same change posted again tries the nodes that
    /// have not applied it.
    pub async fn accept_images(
        self: &Arc<Self>,
        body: ApprovedJson<AcceptImagesJson>,
        credential: String,
    ) -> Result<AdminsSetResult, ApiError> {
        self.measured("accept_images", self.change_images(body, credential))
            .await
    }

    async fn change_images(
        self: &Arc<Self>,
        body: ApprovedJson<AcceptImagesJson>,
        credential: String,
    ) -> Result<AdminsSetResult, ApiError> {
        let genesis = self.cluster().await?;
        let GenesisBody::V2(pinned) = &genesis else {
            return Err(err(
                ErrorCode::InvalidRequest,
                "legacy_genesis: a cluster without a roster has no image changes",
            ));
        };
        let roster = self.roster_in_force().await?;
        let wire = body.to_wire();
        let r = &wire.request;
        check_version_and_cluster((r.v, ACCEPT_IMAGES_VERSION), &r.cluster, &genesis)?;
        r.check()
            .map_err(|e| err(ErrorCode::InvalidRequest, format!("the image change: {e}")))?;
        let changes = self.image_changes().await?;
        let set = image_set(&pinned.request, &changes)?;
        if let Placed::Recorded(recorded) = place(r, &set, &changes)? {
            return self.catch_up_change(&roster, recorded, credential).await;
        }
        // As for an admin change (`admins`): an expired change is still asked of the nodes, and
        // recorded then only on two nodes' statements or more.
        let expired = match check_window(r.created, r.expiry, unix_now()) {
            Ok(()) => false,
            Err(e) if e.code == ErrorCode::RequestExpired => true,
            Err(e) => return Err(e),
        };
        let admins = self.current_admins(&genesis).await?;
        let actors = check_admin_approvals(r, r.admins, &wire.approvals, &admins)?;
        not_before(r.created).await;
        self.run_change(&body, &roster, (actors, credential), (expired, describe(r)))
            .await
    }
}

#[cfg(test)]
mod tests;
