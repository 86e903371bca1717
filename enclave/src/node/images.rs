//! The enclave images the cluster accepts over time (issue 20, rolling image rotation;
//! `docs/lifecycle.md`): the genesis' image is version 0's one-element set; each change,
//! approved by the admins in force, names the image version it replaces and the whole new set,
//! and is sealed with the genesis as a chain of its own. Peers are admitted on any image of the
//! current set; a node runs only on one of them.

use protocol::images::{AcceptImages, images_set_message};
use protocol::policy::{Approved, MAX_REQUEST_VALIDITY_SECS};
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use tracing::info;

use super::genesis::{GenesisState, OwnPcrs, is_image};
use super::membership::MembershipError;
use super::{Node, NodeError};

impl GenesisState {
    /// The current image version (0: the genesis' image alone).
    pub(super) fn image_version(&self) -> u32 {
        u32::try_from(self.images.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Appends an image change once its shape, cluster, version and approvals hold: by the
    /// admins in force naming their version when it is applied (`current_admins`), by the
    /// admins of the version it names when the chain is replayed at a restore (admin changes
    /// since do not undo it). Not its window.
    pub(super) fn apply_images(
        &mut self,
        change: &Approved<AcceptImages>,
        current_admins: bool,
    ) -> Result<(), NodeError> {
        let r = &change.request;
        r.check().map_err(MembershipError::ImageChange)?;
        let ours = self.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        if r.cluster != ours {
            return Err(MembershipError::OtherCluster {
                named: r.cluster.to_string(),
                ours: ours.to_string(),
            }
            .into());
        }
        let current = self.image_version();
        if r.version != current {
            return Err(MembershipError::StaleImages {
                named: r.version,
                current,
            }
            .into());
        }
        if current_admins {
            self.check_admins(r, &change.approvals, r.admins)?;
        } else {
            self.check_admins_at(r, &change.approvals, r.admins)?;
            self.approved_before_replaced(r.admins, r.created)?;
        }
        self.images.push(r.images.clone());
        self.sealed.images.push(change.clone());
        Ok(())
    }

    /// A change (image or roster) approved under an admin version replaced since (caught up, or
    /// replayed at a restore) must have been made while that version could still land changes: created at
    /// most [`MAX_REQUEST_VALIDITY_SECS`] after the change that replaced it. An image change
    /// first applied while its admins were in force was applied before the admin change, which
    /// was applied within its own window, so every honest chain passes. Removed admins whose
    /// change one rolled-back node applied within its window (its blob from before their
    /// removal), and which a coordinator then has every other node catch up on, are refused
    /// unless they act within twice that time of their removal (attacker review helper-48,
    /// finding 1; the residual is in the threat model).
    pub(super) fn approved_before_replaced(
        &self,
        admins: u32,
        created: u64,
    ) -> Result<(), NodeError> {
        let replaced = usize::try_from(admins)
            .ok()
            .and_then(|v| self.sealed.admins.get(v));
        match replaced {
            Some(next)
                if created
                    > next
                        .request
                        .created
                        .saturating_add(MAX_REQUEST_VALIDITY_SECS) =>
            {
                Err(MembershipError::AdminsReplacedBefore {
                    named: admins,
                    replaced_at: next.request.created,
                    created,
                }
                .into())
            }
            _ => Ok(()),
        }
    }
}

impl Node {
    /// Applies an image change here (`SessionKind::AcceptImages`): approved by the admins in
    /// force, replacing this node's current image version, accepting the image this enclave
    /// runs (a node is restarted on an accepted image before its own is retired), within its
    /// window or shown another roster node's statement that it applied it. Sealed and signed
    /// before anything changes; a change applied already is answered again.
    pub(super) fn accept_images(
        &mut self,
        request: &Approved<AcceptImages>,
        catch_up: Option<&(u16, ByteBuf)>,
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let r = &request.request;
        let hash = r.hash();
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let applied = usize::try_from(r.version)
            .ok()
            .and_then(|v| g.sealed.images.get(v));
        if let Some(applied) = applied {
            if applied.request.hash() != hash {
                // Named, as for admin changes, so that a fork is seen as one (helper-47).
                return Err(MembershipError::OtherImageChange {
                    version: r.version,
                    applied: super::admins::hex(&applied.request.hash()),
                }
                .into());
            }
            let version = r.new_version();
            let sealed = self.seal_genesis(&g.sealed, &cluster)?;
            let statement =
                self.node_statement(&images_set_message(&cluster, g.node, version, &hash))?;
            return Ok(Outcome::ImagesAccepted {
                version,
                sealed: ByteBuf::from(sealed),
                statement: ByteBuf::from(statement),
            });
        }
        let version = r.new_version();
        let caught_up = self.change_in_time(
            g,
            catch_up,
            |node| images_set_message(&cluster, node, version, &hash),
            (b"accept-images:", &r.request_id, r.created, r.expiry),
        )?;
        // Applied first within its window, a change is approved by the admins in force here;
        // caught up after an admin change landed, by the admins of the version it names, as at
        // a restore: else a node that missed it before an admin change could never apply it,
        // nor any image change after it (attacker review helper-47, finding 1).
        let mut next = g.clone();
        next.apply_images(request, !caught_up)?;
        if !r.images.iter().any(|image| is_image(image, &self.own_pcrs)) {
            return Err(MembershipError::OwnImageDropped.into());
        }
        // Prepared under the chain this change extends: no longer (the nodes are shown every
        // statement over the new chain again).
        next.sealed.prepared = None;
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let statement =
            self.node_statement(&images_set_message(&cluster, next.node, version, &hash))?;
        info!(version, images = r.images.len(), "accepted images changed");
        self.genesis = Some(next);
        // Peers admitted under an image this change retires are dropped: a node left on it
        // signs with no node that applied the retire, and is refused when admitted again
        // (attacker review helper-47, finding 3).
        let dropped = self.roster.drop_images(|pcrs| {
            let shown = OwnPcrs(pcrs.clone());
            r.images.iter().any(|image| is_image(image, &shown))
        });
        if !dropped.is_empty() {
            info!(?dropped, "peers on a retired image dropped");
        }
        Ok(Outcome::ImagesAccepted {
            version,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
        })
    }
}
