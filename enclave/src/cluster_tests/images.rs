//! Rolling image rotation (issue 20): the admins accept the old and the new image together,
//! the nodes are restarted one at a time on the new one while a quorum keeps signing, and
//! another change accepts the new image alone. The attacks: a node restarted on an image the
//! admins did not accept; a change the admins did not approve, or one naming a replaced image
//! version; a change that retires the image a node still runs; a node left on the retired image.

use std::collections::BTreeMap;

use protocol::genesis::Image;
use protocol::images::{ACCEPT_IMAGES_VERSION, AcceptImages, images_set_message};
use protocol::policy::{Approved, Scheme};
use protocol::session::{FailureCode, Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::reshare::{failed_everywhere, verify_eddsa};
use super::{Cluster, now, request_id, signature_of};
use crate::testkit::{IMAGE, approve, boot_rotating};

/// The next build of the enclave (another PCR0).
pub(super) const NEW: [u8; 48] = [0x43; 48];
/// A build the admins never accept.
const ROGUE: [u8; 48] = [0x44; 48];

/// A simulated build's PCR0-2, as a change names them.
fn image(digest: [u8; 48]) -> Image {
    let pcrs = attestation::sim::simulated_pcrs(&digest);
    let pcr = |i: usize| ByteBuf::from(pcrs[&i].clone());
    Image {
        pcr0: pcr(0),
        pcr1: pcr(1),
        pcr2: pcr(2),
    }
}

impl Cluster {
    /// A change to `images` replacing image version `version`, approved by admins `by`.
    pub(super) fn accept_images_request(
        &self,
        version: u32,
        images: &[[u8; 48]],
        by: &[usize],
    ) -> Approved<AcceptImages> {
        let t = now() + self.ahead.get();
        let request = AcceptImages {
            v: ACCEPT_IMAGES_VERSION,
            cluster: self.genesis.request.cluster_id(),
            version,
            images: images.iter().map(|d| image(*d)).collect(),
            request_id: request_id(),
            created: t,
            expiry: t + 120,
            admins: 0,
        };
        let keys: Vec<&ed25519_dalek::SigningKey> = by.iter().map(|i| &self.admins[*i]).collect();
        Approved {
            approvals: approve(&request, &keys),
            request,
        }
    }

    pub(super) fn accept_images(&self, request: &Approved<AcceptImages>) -> BTreeMap<u16, Outcome> {
        self.run(
            &self.all(),
            SessionKind::AcceptImages {
                request: request.clone(),
                catch_up: None,
            },
            |_, _| {},
        )
    }

    /// Restarts node `node` on build `digest` from its parent's blobs, KMS admitting every
    /// build (so that the enclave's own checks are what is tested): the restore's refusal, if
    /// any.
    pub(super) fn restart_on(&mut self, node: usize, digest: [u8; 48]) -> Result<(), String> {
        let fresh = boot_rotating(&self.ca, node, digest, IMAGE);
        match fresh.handle(EnclaveRequest::Restore {
            blobs: self.blobs[node].clone(),
        }) {
            EnclaveResponse::Restored { .. } => {
                self.enclaves[node] = fresh;
                self.admit_all();
                Ok(())
            }
            EnclaveResponse::Error(e) => Err(e.message),
            other => panic!("restore: {other:?}"),
        }
    }
}

/// Every node applied the change to `version`, each statement under its roster node key; the
/// new genesis blobs are kept as the proxies keep them.
pub(super) fn applied(
    c: &mut Cluster,
    out: &BTreeMap<u16, Outcome>,
    request: &AcceptImages,
    version: u32,
) {
    let cluster = c.genesis.request.cluster_id();
    for (node, o) in out {
        match o {
            Outcome::ImagesAccepted {
                version: v,
                sealed,
                statement,
            } => {
                assert_eq!(*v, version);
                let message = images_set_message(&cluster, *node, version, &request.hash());
                assert!(c.genesis.request.roster[usize::from(*node)].signed(&message, statement));
                c.blobs[usize::from(*node)][1] = sealed.clone();
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
}

fn refused_with(out: &BTreeMap<u16, Outcome>, code: FailureCode, kind: &str) {
    for m in failed_everywhere(out, code) {
        assert!(m.contains(kind), "{m}");
    }
}

/// The Done-when of issue 20 for image rotation, on the in-process cluster: a 3-node cluster
/// moves from one build to another (different PCR0) one node at a time, a 2-of-3 quorum
/// signing between every step, across mixed images; then the old image is retired.
#[test]
fn a_rolling_image_rotation_keeps_a_quorum_signing_throughout() {
    const KEY: &str = "rotating";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let sign = |c: &Cluster, nodes: &[u16], message: &[u8]| {
        let out = c.sign(nodes, c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };

    // Before any change: the new build cannot restore a node.
    let refused = c.restart_on(0, NEW).unwrap_err();
    assert!(refused.contains("other_image"), "{refused}");
    // Refused everywhere, nothing sealed: one admin's approval; a set that drops the image
    // every node runs; a change naming an image version not held.
    let out = c.accept_images(&c.accept_images_request(0, &[IMAGE, NEW], &[0]));
    failed_everywhere(&out, FailureCode::Refused);
    let out = c.accept_images(&c.accept_images_request(0, &[NEW], &[0, 1]));
    refused_with(&out, FailureCode::Membership, "own_image_dropped");
    let out = c.accept_images(&c.accept_images_request(1, &[IMAGE, NEW], &[0, 1]));
    refused_with(&out, FailureCode::Membership, "stale_images");

    // Version 1: both builds.
    let both = c.accept_images_request(0, &[IMAGE, NEW], &[0, 1]);
    let out = c.accept_images(&both);
    applied(&mut c, &out, &both.request, 1);
    // A build the admins did not accept still cannot restore a node.
    let refused = c.restart_on(2, ROGUE).unwrap_err();
    assert!(refused.contains("other_image"), "{refused}");

    // One node at a time; a quorum signs after each restart, across the two images.
    sign(&c, &[0, 1], b"before");
    c.restart_on(0, NEW).unwrap();
    sign(&c, &[0, 1], b"node 0 on the new build");
    sign(&c, &[0, 2], b"mixed");
    c.restart_on(1, NEW).unwrap();
    sign(&c, &[1, 2], b"node 1 on the new build");
    // While node 2 still runs the old build, retiring it is refused there (and so not applied
    // everywhere: the change is run again once node 2 moved).
    let only_new = c.accept_images_request(1, &[NEW], &[0, 2]);
    let mut out = c.accept_images(&only_new);
    assert!(
        matches!(&out[&2], Outcome::Failed { message, .. } if message.contains("own_image_dropped")),
        "{out:?}"
    );
    out.remove(&2);
    applied(&mut c, &out, &only_new.request, 2);
    let Outcome::ImagesAccepted { statement, .. } = &out[&0] else {
        panic!("{out:?}")
    };
    let statement = statement.clone();
    c.restart_on(2, NEW).unwrap();
    sign(&c, &[0, 2], b"every node on the new build");

    // Version 2 at node 2 too, restarted since the change was made: caught up on node 0's
    // statement (`cohort images catch-up`).
    let out = c.run(
        &[2],
        SessionKind::AcceptImages {
            request: only_new.clone(),
            catch_up: Some((0, statement)),
        },
        |_, _| {},
    );
    applied(&mut c, &out, &only_new.request, 2);
    // Sealed so: a node restarted on the old build is refused; on the new one it signs.
    let refused = c.restart_on(1, IMAGE).unwrap_err();
    assert!(refused.contains("other_image"), "{refused}");
    c.restart_on(1, NEW).unwrap();
    sign(&c, &[1, 2], b"after the rotation");
    // The replaced versions' changes are stale; a fork of an applied version names the change
    // applied, as for admin changes (helper-47).
    let out = c.accept_images(&c.accept_images_request(1, &[IMAGE, NEW], &[0, 1]));
    let applied_hash = hex::encode(only_new.request.hash());
    for m in failed_everywhere(&out, FailureCode::Membership) {
        assert!(
            m.contains("stale_images") && m.contains(&applied_hash),
            "{m}"
        );
    }
    let out = c.accept_images(&c.accept_images_request(0, &[IMAGE, ROGUE], &[0, 1]));
    refused_with(&out, FailureCode::Membership, "stale_images");
}

/// Attacker review helper-47, finding 1: a node that missed an image change (down, or a
/// coordinator that withheld it) and then applied an admin change could never apply the image
/// change (approved under the replaced admin version), nor any image change after it: after a
/// rotation it could not restore at all. Caught up on another node's statement, the change is
/// checked against the admins of the version it names, as at a restore; a new change still
/// names the admins in force.
#[test]
fn an_image_change_missed_before_an_admin_change_is_caught_up_after_it() {
    let c = Cluster::new(3);
    let all = c.all();
    let both = c.accept_images_request(0, &[IMAGE, NEW], &[0, 1]);
    let run = |c: &Cluster, nodes: &[u16], catch_up: Option<(u16, ByteBuf)>| {
        c.run(
            nodes,
            SessionKind::AcceptImages {
                request: both.clone(),
                catch_up,
            },
            |_, _| {},
        )
    };
    let out = run(&c, &[0, 1], None);
    let Outcome::ImagesAccepted { statement, .. } = &out[&0] else {
        panic!("{out:?}")
    };
    let statement = statement.clone();
    let [a0, a2] = [0, 2].map(|i| c.admins[i].clone());
    let n0 = ed25519_dalek::SigningKey::from_bytes(&[40; 32]);
    let change = c.set_admins_request(0, &[a0.clone(), n0.clone()], &[&a0, &a2]);
    let out = c.set_admins(&all, &change, None);
    assert!(
        out.values().all(|o| matches!(o, Outcome::AdminsSet { .. })),
        "{out:?}"
    );
    c.clocks_ahead(600);
    let out = run(&c, &[2], Some((0, statement)));
    assert!(
        matches!(out[&2], Outcome::ImagesAccepted { version: 1, .. }),
        "{out:?}"
    );
    // Every node is at image version 1; a new change under the replaced admin version is
    // refused everywhere.
    let stale = c.accept_images_request(1, &[IMAGE, NEW, ROGUE], &[0, 1]);
    refused_with(
        &c.accept_images(&stale),
        FailureCode::Membership,
        "stale_admins",
    );
}

/// Attacker review helper-47, finding 3: a node left on the retired image (its parent keeps it
/// running, a compromised coordinator keeps it in quorums) stayed admitted at the peers that
/// applied the retire, and signed with them until its next admission. A node applying a change
/// now drops the peers it admitted under an image the change retires: a session with such a
/// peer is refused there, and admitting it again is refused too (its image is not accepted).
#[test]
fn a_peer_left_on_a_retired_image_signs_with_no_one_that_retired_it() {
    const KEY: &str = "retired";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let both = c.accept_images_request(0, &[IMAGE, NEW], &[0, 1]);
    let out = c.accept_images(&both);
    applied(&mut c, &out, &both.request, 1);
    c.restart_on(1, NEW).unwrap();
    c.restart_on(2, NEW).unwrap();
    // Node 0 stays on the old build; nodes 1 and 2 apply the retire (node 0 is not asked: it
    // would refuse it).
    let only_new = c.accept_images_request(1, &[NEW], &[0, 1]);
    let out = c.run(
        &[1, 2],
        SessionKind::AcceptImages {
            request: only_new.clone(),
            catch_up: None,
        },
        |_, _| {},
    );
    applied(&mut c, &out, &only_new.request, 2);
    let out = c.sign(&[1, 2], c.sign_request(KEY, vec![], b"new".to_vec()), None);
    verify_eddsa(&pk, b"new", &signature_of(&out).0);

    // Node 0 still takes its part; nodes 1 and 2 no longer admit it.
    for partner in [1u16, 2] {
        let out = c.sign(
            &[0, partner],
            c.sign_request(KEY, vec![], b"old".to_vec()),
            None,
        );
        assert!(
            matches!(&out[&partner], Outcome::Failed { message, .. } if message.contains("has not been admitted")),
            "{out:?}"
        );
        assert!(
            !out.values().any(|o| matches!(o, Outcome::Signed { .. })),
            "{out:?}"
        );
    }
    // Its document is refused when offered again (as it was before the fix too: its image is
    // no longer accepted).
    let doc = protocol::session::PeerDocument {
        node: 0,
        document: crate::testkit::document(&c.enclaves[0]),
    };
    match c.enclaves[1].handle(EnclaveRequest::AdmitPeers {
        documents: vec![doc],
    }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(nodes.is_empty(), "{nodes:?}");
            assert_eq!(refused.len(), 1, "{refused:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// Attacker review helper-48, finding 1: admins removed by an admin change, with one parent
/// that rolls its node back to its genesis blob from before the change. That node applies an
/// image change the removed admins approve (under its admin version, within its window); the
/// coordinator then shows every other node that node's statement, and a catch-up is checked
/// against the admins of the version it names: the removed admins' image would be accepted
/// everywhere. A change caught up under a replaced admin version must have been created while
/// that version could still land changes (at most the request validity after the change that
/// replaced it); a legitimate one missed before the admin change still is (test above).
#[test]
fn removed_admins_cannot_spread_an_image_change_from_a_rolled_back_node() {
    let mut c = Cluster::new(3);
    let all = c.all();
    let [a0, a1] = [0, 1].map(|i| c.admins[i].clone());
    let n0 = ed25519_dalek::SigningKey::from_bytes(&[41; 32]);
    // Admins 1 and 2 are removed (version 1); the blobs kept are from before the change.
    let change = c.set_admins_request(0, &[a0.clone(), n0], &[&a0, &a1]);
    let out = c.set_admins(&all, &change, None);
    assert!(
        out.values().all(|o| matches!(o, Outcome::AdminsSet { .. })),
        "{out:?}"
    );
    // Node 0's parent restores the genesis blob from before the change; the removed admins
    // act well after their removal.
    c.restart_on(0, IMAGE).unwrap();
    c.clocks_ahead(1300);
    let rogue = c.accept_images_request(0, &[IMAGE, ROGUE], &[1, 2]);
    let out = c.run(
        &[0],
        SessionKind::AcceptImages {
            request: rogue.clone(),
            catch_up: None,
        },
        |_, _| {},
    );
    let Outcome::ImagesAccepted { statement, .. } = &out[&0] else {
        panic!("the rolled-back node applies it: {out:?}")
    };
    let out = c.run(
        &[1, 2],
        SessionKind::AcceptImages {
            request: rogue.clone(),
            catch_up: Some((0, statement.clone())),
        },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::Membership) {
        assert!(
            m.contains("stale_admins") && m.contains("after that version could land changes"),
            "{m}"
        );
    }
}
