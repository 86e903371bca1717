//! A legacy holder's side of an import (issue 19, `docs/resharing.md`): find each node's
//! identity key from a document the node attests now, with a fresh nonce, and that this machine
//! verifies against the pinned genesis (root, image, the node key and KMS key the roster lists
//! at that index, its pinned parent PCRs); build the import request the admins approve; deal
//! each holder's share to the nodes, every sub-share sealed to one node's identity key and
//! bound to the approved request.
//!
//! The coordinator only relays: it cannot substitute a node's key (the document would not
//! verify), read a sub-share, or move one to another node, dealer or import.

use std::time::Duration;

use anyhow::Context;
use attestation::{NodeBinding, Policy};
use coordinator::api::{AttestRequest, Hex, NodeDocument};
use coordinator::client::ApiClient;
use protocol::genesis::{Image, RosterEntry};
use protocol::import::{IMPORT_VERSION, ImportKey, LegacyDealer, SealedDealing};
use protocol::policy::CreateKey;
use rand::{CryptoRng, RngCore};
use reshare::generic_ec::{Curve, Point};
use reshare::sealed::{Binding, Ephemeral, Purpose};
use reshare::{Points, deal};
use serde_bytes::ByteBuf;

use super::{ImportError, LegacyKey, LegacyShare};
use crate::ceremony::image_policy;
use crate::trust::Trust;

fn now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// What node `node`'s document must show: one of the images the cluster accepts (`images`, the
/// checked image chain's set in force) and the root, the nonce, an identity binding, and the
/// node key, KMS key and parent PCRs its entry in the roster in force (`roster`) pins.
pub fn node_policy(
    (roster, images): (&[RosterEntry], &[Image]),
    root_der: &[u8],
    node: u16,
    nonce: &[u8],
) -> anyhow::Result<Policy> {
    let entry = roster
        .get(usize::from(node))
        .with_context(|| format!("node {node} is not in the roster in force"))?;
    let (image, others) = images
        .split_first()
        .context("the cluster accepts no enclave image")?;
    let mut policy = image_policy(root_der, [&image.pcr0, &image.pcr1, &image.pcr2], nonce);
    for other in others {
        policy = policy
            .allow_pcr(0, other.pcr0.to_vec())
            .allow_pcr(1, other.pcr1.to_vec())
            .allow_pcr(2, other.pcr2.to_vec());
    }
    if let Some(v) = &entry.pcr3 {
        policy = policy.allow_pcr(3, v.to_vec());
    }
    if let Some(v) = &entry.pcr4 {
        policy = policy.allow_pcr(4, v.to_vec());
    }
    let node_key: [u8; 32] = entry
        .node_key
        .as_slice()
        .try_into()
        .context("a roster node key is not 32 bytes")?;
    policy.node = Some(
        NodeBinding::new(node_key, entry.kms_key_arn.as_str())
            .map_err(|e| anyhow::anyhow!("node {node}'s roster entry: {e}"))?,
    );
    policy.require_node = true;
    policy.allow_debug = false;
    Ok(policy)
}

/// The roster version in force and every node's X25519 identity key, in index order, each
/// from a document the node attested just now and that verifies here against the roster in
/// force and the images the cluster accepts, both checked from the pinned genesis (`root_der`:
/// the attestation root, AWS's or a simulated cluster's). Not the genesis' roster: after a
/// committed change, a node that left (its genuine document binds the genesis entry at its old
/// index) would be dealt a share (attacker review helper-79, H-B). The import request names
/// that version, so that no enclave takes a dealing made for a roster a change replaced since.
pub async fn member_keys(
    api: &ApiClient,
    trust: &Trust,
    root_der: &[u8],
) -> anyhow::Result<(u32, Vec<[u8; 32]>)> {
    let (_, _, rosters) = crate::roster::fetch(api, trust).await?;
    let (_, image_chain, _, _) = crate::images::fetch(api, trust).await?;
    let attest = async |node: u16, nonce: &[u8; 32]| -> anyhow::Result<Vec<u8>> {
        let answer: NodeDocument = api
            .post(
                &format!("/v1/nodes/{node}/attest"),
                &AttestRequest {
                    nonce: Hex(nonce.to_vec()),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("node {node}: {e}"))?;
        Ok(answer.document.0)
    };
    let keys =
        attested_members((&rosters, &image_chain.current().images), root_der, attest).await?;
    Ok((rosters.version(), keys))
}

/// Every member's X25519 identity key, in index order: the members are the roster in force of
/// `rosters` (the checked chain), each asked by `attest` for a document answering a fresh
/// nonce, which must verify against its entry there and `images` ([`member_key`]).
pub async fn attested_members(
    (rosters, images): (&crate::roster::Rosters, &[Image]),
    root_der: &[u8],
    mut attest: impl AsyncFnMut(u16, &[u8; 32]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<[u8; 32]>> {
    let roster = rosters.in_force();
    let mut keys = Vec::with_capacity(roster.len());
    for node in 0..u16::try_from(roster.len())? {
        let nonce: [u8; 32] = rand::random();
        let document = attest(node, &nonce).await?;
        keys.push(member_key(
            (roster, images),
            root_der,
            (node, &nonce),
            &document,
        )?);
    }
    Ok(keys)
}

/// Node `node`'s X25519 identity key from `document`, the answer to `nonce`, once it verifies
/// against its entry in `roster` (the roster in force) and the images the cluster accepts.
pub fn member_key(
    (roster, images): (&[RosterEntry], &[Image]),
    root_der: &[u8],
    (node, nonce): (u16, &[u8]),
    document: &[u8],
) -> anyhow::Result<[u8; 32]> {
    let policy = node_policy((roster, images), root_der, node, nonce)?;
    let doc = attestation::verify(document, &policy, now()).map_err(|e| {
        anyhow::anyhow!(
            "node {node}'s document does not verify against the roster in force and the images \
             the cluster accepts: {e}"
        )
    })?;
    let identity = doc
        .identity
        .with_context(|| format!("node {node}'s document binds no identity key"))?;
    Ok(identity.encryption)
}

pub(super) fn compressed<E: Curve>(p: &Point<E>) -> ByteBuf {
    ByteBuf::from(p.to_bytes(true).as_ref().to_vec())
}

/// The import request for `legacy`'s key, dealt by the holders at positions `holders` of its
/// holder list (in that order; no holder twice, at least the legacy threshold), with the key's
/// fields in `key`, the chain code to keep (the one the files carry, which `chain_code` may only
/// repeat; else `chain_code`) and the
/// Bitcoin-family network its legacy funds are on, if any.
pub fn import_request<E: Curve>(
    key: CreateKey,
    legacy: &LegacyKey<E>,
    holders: &[usize],
    chain_code: Option<[u8; 32]>,
    master_key_network: Option<String>,
) -> Result<ImportKey, ImportError> {
    let points = legacy.dealers(holders)?;
    let dealers = points
        .as_slice()
        .iter()
        .zip(legacy.dealer_public_shares(holders))
        .map(|(point, public_share)| LegacyDealer {
            point: ByteBuf::from(point.to_be_bytes().as_ref().to_vec()),
            public_share: compressed(&public_share),
        })
        .collect();
    let chain_code = match (chain_code, legacy.chain_code) {
        (Some(given), Some(carried)) if given != carried => return Err(ImportError::ChainCode),
        (given, carried) => given.or(carried),
    };
    Ok(ImportKey {
        v: IMPORT_VERSION,
        key,
        public_key: compressed(&legacy.public_key),
        chain_code: chain_code.map(|c| ByteBuf::from(c.to_vec())),
        master_key_network,
        dealers,
    })
}

/// Dealer `dealer` of `dealers` (its share `share`) deals to the nodes whose identity keys are
/// `members` (index order) at threshold `threshold`, for the import whose approved request has
/// hash `request_hash`. Only the dealer's own share is used; nothing secret leaves unsealed.
pub fn seal_dealing<E: Curve>(
    rng: &mut (impl RngCore + CryptoRng),
    dealers: &Points<E>,
    dealer: usize,
    share: &LegacyShare<E>,
    members: &[[u8; 32]],
    threshold: u16,
    request_hash: &[u8; 32],
) -> Result<SealedDealing, ImportError> {
    let indices: Vec<u16> = (0..u16::try_from(members.len()).unwrap_or(u16::MAX)).collect();
    let new = Points::of_indices(&indices)?;
    let dealt = deal(
        rng,
        dealers,
        dealer,
        &share.share,
        &share.public_shares[share.index],
        &new,
        threshold,
    )?;
    let ephemeral = Ephemeral::generate(rng);
    let sub_shares = dealt
        .sub_shares
        .iter()
        .zip(members)
        .enumerate()
        .map(|(member, (sub_share, key))| {
            let binding = Binding {
                purpose: Purpose::Import,
                context: request_hash,
                dealer: u16::try_from(dealer).unwrap_or(u16::MAX),
                member: u16::try_from(member).unwrap_or(u16::MAX),
            };
            ephemeral.seal(key, &binding, sub_share).map(ByteBuf::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SealedDealing {
        commitments: dealt
            .commitments
            .as_slice()
            .iter()
            .map(compressed)
            .collect(),
        ephemeral: ByteBuf::from(ephemeral.public().to_vec()),
        sub_shares,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
    use attestation::{AttestationRequest, Binding, IdentityKeys, NodeBinding, Nsm};

    use super::*;

    fn entry(node_key: [u8; 32], i: u8) -> RosterEntry {
        RosterEntry {
            node_key: ByteBuf::from(node_key.to_vec()),
            kms_key_arn: protocol::KmsKeyArn::parse(&format!(
                "arn:aws:kms:eu-west-1:111122223333:key/node-{i}"
            ))
            .unwrap(),
            pcr3: None,
            pcr4: None,
        }
    }

    /// Attacker review helper-79, H-B, as the attack: node 2 was replaced by a committed roster
    /// change, but its old enclave (a genuine one of the accepted image) still runs under the
    /// genesis' entry. A coordinator answers for index 2 with that enclave's document, made for
    /// the holder's fresh nonce, to be dealt the imported key's sub-share there. Checked
    /// against the genesis' roster (what the holder did before the fix) it is taken; against
    /// the checked chain, whose roster in force lists the new node, it is refused by name.
    #[tokio::test]
    async fn a_removed_nodes_genuine_document_is_refused_at_its_old_index() {
        let ca = SimulatedCa::generate().unwrap();
        let root = ca.root_der().to_vec();
        let pcrs = simulated_pcrs(&[7; 48]);
        let images = [Image {
            pcr0: ByteBuf::from(pcrs[&0].clone()),
            pcr1: ByteBuf::from(pcrs[&1].clone()),
            pcr2: ByteBuf::from(pcrs[&2].clone()),
        }];
        let genesis: Vec<RosterEntry> = (0..3).map(|i| entry([i + 1; 32], i)).collect();
        let mut in_force = genesis.clone();
        in_force[2] = entry([9; 32], 9);
        // The enclaves a coordinator can reach: nodes 0 and 1, and the removed node 2, each
        // under its genesis entry and with identity key [10 + i; 32].
        let nsm = SimulatedNsm::new(ca, "i-genuine".into(), pcrs);
        let attest = async |node: u16, nonce: &[u8; 32]| -> anyhow::Result<Vec<u8>> {
            let e = &genesis[usize::from(node)];
            let binding = Binding {
                identity: IdentityKeys {
                    signing: [20; 32],
                    encryption: [10 + node as u8; 32],
                },
                node: Some(NodeBinding::new(
                    e.node_key.as_slice().try_into().unwrap(),
                    e.kms_key_arn.as_str(),
                )?),
            };
            Ok(nsm.attest(&AttestationRequest {
                user_data: Some(binding.user_data().to_vec()),
                nonce: Some(nonce.to_vec()),
                public_key: Some(binding.public_key()),
            })?)
        };
        let chain = |all: Vec<Vec<RosterEntry>>| crate::roster::Rosters {
            all,
            committed: Vec::new(),
            incomplete: Vec::new(),
        };

        // Before the change, or with the genesis' roster: the removed node is dealt to.
        let taken = attested_members((&chain(vec![genesis.clone()]), &images), &root, &attest)
            .await
            .unwrap();
        assert_eq!(taken, vec![[10; 32], [11; 32], [12; 32]]);
        // After it: refused at index 2, by name.
        let e = attested_members(
            (&chain(vec![genesis.clone(), in_force]), &images),
            &root,
            &attest,
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("node 2's document does not verify against the roster in force"),
            "{e:#}"
        );
    }
}
