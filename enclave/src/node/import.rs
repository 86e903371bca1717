//! Importing a legacy key (issue 19, ADR 0018, `docs/resharing.md`): every node opens the
//! sub-shares the legacy holders sealed to it, checks each dealing against the approved request
//! (the dealer's constant term against its Lagrange-weighted public share, the sub-share
//! against the commitments, the sum against the key), and makes its share of the same key. It
//! keeps the share only once every other node confirmed, in an envelope signed under the
//! session's execution id, the same digest of the whole redistribution: the relay cannot have
//! shown different commitments to different nodes, and no node keeps a share that another
//! node refused.

use std::collections::BTreeSet;

use protocol::import::{
    IMPORT_VERSION, ImportKey, MAX_DEALERS, MAX_NETWORK_LEN, SEALED_LEN, SealedDealing,
};
use protocol::policy::{Approved, Canonical, Scheme};
use reshare::generic_ec::Curve;
use reshare::generic_ec::curves::{Ed25519, Secp256k1};
use reshare::{Commitments, NewShare, OldCommittee, Points, ReshareError, sealed};
use sha2::Digest;

use super::keys::Share;
use super::machine::{Machine, Product};
use super::session::{Purpose, Start};
use super::single_use::key_id_use;
use super::{Node, NodeError, bad, internal};
use crate::identity::SecretIdentity;
use crate::mpc::ecdsa::{SecretAuxInfo, SecretKeyShare};
use crate::mpc::eddsa::SecretEddsaShare;
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};
use crate::seal::BlobKind;

// The coordinator checks lengths by the protocol's constant, the enclave by the sealing's.
const _: () = assert!(SEALED_LEN == sealed::SEALED_LEN);

/// Why a dealing is refused, naming the dealer (its position in the request's list).
fn dealing(e: ReshareError) -> NodeError {
    NodeError::BadRequest(format!("import refused: {e}"))
}

/// The redistribution as this node received it: its new share and the digest every node must
/// confirm.
struct Received<E: Curve> {
    share: NewShare<E>,
    digest: [u8; 32],
}

/// Opens and checks what the dealers sent this node (`me` among `participants`).
fn receive<E: Curve>(
    identity: &SecretIdentity,
    request: &ImportKey,
    request_hash: &[u8; 32],
    dealings: &[SealedDealing],
    participants: &[u16],
    me: usize,
) -> Result<Received<E>, ReshareError> {
    let t = request.key.threshold;
    // Every count and length first: nothing is decompressed or decrypted for a dealing of the
    // wrong shape.
    if dealings.len() != request.dealers.len() {
        return Err(ReshareError::Count {
            what: "dealings",
            got: dealings.len(),
            want: request.dealers.len(),
        });
    }
    for (i, d) in dealings.iter().enumerate() {
        if d.commitments.len() != usize::from(t) {
            return Err(ReshareError::CommitmentLength {
                dealer: i,
                got: d.commitments.len(),
                want: usize::from(t),
            });
        }
        if d.sub_shares.len() != participants.len() {
            return Err(ReshareError::Count {
                what: "sealed sub-shares",
                got: d.sub_shares.len(),
                want: participants.len(),
            });
        }
        if d.ephemeral.len() != 32 || d.sub_shares.iter().any(|s| s.len() != sealed::SEALED_LEN) {
            return Err(ReshareError::Sealed(i));
        }
    }
    let points = request
        .dealers
        .iter()
        .enumerate()
        .map(|(i, d)| sealed::scalar::<E>(&d.point, "the evaluation point of dealer", i))
        .collect::<Result<Vec<_>, _>>()?;
    let public_shares = request
        .dealers
        .iter()
        .enumerate()
        .map(|(i, d)| sealed::point::<E>(&d.public_share, true, "the public share of dealer", i))
        .collect::<Result<Vec<_>, _>>()?;
    let public_key = sealed::point::<E>(&request.public_key, true, "public key", 0)
        .map_err(|_| ReshareError::KeyEncoding)?;
    let n_dealers = u16::try_from(points.len()).map_err(|_| ReshareError::Points(0))?;
    // The request lists the dealers only: their public shares must give the key, whatever the
    // legacy threshold was (fewer than it cannot interpolate to the key).
    let old = OldCommittee::new(Points::new(points)?, public_shares, n_dealers, public_key)?;
    let new = Points::of_indices(participants)?;
    let own_key = identity.public().encryption;
    let mut dealt = Vec::with_capacity(dealings.len());
    for (i, d) in dealings.iter().enumerate() {
        let commitments = Commitments::new(
            d.commitments
                .iter()
                .map(|c| sealed::point::<E>(c, false, "a commitment of dealer", i))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let ephemeral: [u8; 32] = d
            .ephemeral
            .as_slice()
            .try_into()
            .map_err(|_| ReshareError::Sealed(i))?;
        let shared = identity.agree(&ephemeral).ok_or(ReshareError::Sealed(i))?;
        let binding = sealed::Binding {
            purpose: sealed::Purpose::Import,
            context: request_hash,
            dealer: u16::try_from(i).map_err(|_| ReshareError::Member(i))?,
            member: u16::try_from(me).map_err(|_| ReshareError::Member(me))?,
        };
        let sub_share =
            sealed::open::<E>(&shared, &ephemeral, &own_key, &binding, &d.sub_shares[me])?;
        dealt.push((commitments, sub_share));
    }
    let share = reshare::receive(&old, &new, t, me, &dealt)?;
    let all: Vec<Commitments<E>> = dealt.into_iter().map(|(c, _)| c).collect();
    let digest = reshare::commitments_digest(request_hash, &old, &new, t, &all);
    Ok(Received { share, digest })
}

/// The confirmation round: this node broadcasts its digest and keeps its share once every
/// other node broadcast the same one.
struct Confirm {
    digest: [u8; 32],
    waiting: BTreeSet<PartyIndex>,
    share: Option<Share>,
}

impl Machine for Confirm {
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError> {
        if !msg.broadcast || msg.payload.as_slice() != self.digest {
            return Err(MpcError::Aborted {
                culprits: vec![msg.from],
                reason: format!(
                    "node {} confirmed another redistribution (its digest differs): the \
                     dealings it checked are not the ones this node checked",
                    msg.from
                ),
            });
        }
        if !self.waiting.remove(&msg.from) {
            return Err(MpcError::BadMessage {
                from: msg.from,
                reason: "a second confirmation".into(),
            });
        }
        if !self.waiting.is_empty() {
            return Ok(Step::Continue(vec![]));
        }
        let share = self
            .share
            .take()
            .ok_or_else(|| MpcError::Internal("the import's share is gone".into()))?;
        Ok(Step::Done(Product::Share(share), vec![]))
    }

    fn positional(&self) -> bool {
        false
    }
}

impl Node {
    /// Starts an import (all nodes, in index order): checks the
    /// request, opens and checks this node's sub-shares, and broadcasts its confirmation.
    pub(super) fn start_import(
        &mut self,
        identity: &SecretIdentity,
        participants: &[u16],
        request: &Approved<ImportKey>,
        dealings: &[SealedDealing],
    ) -> Result<Start, NodeError> {
        if !self.all_nodes(participants)? {
            return Err(bad("an import involves all nodes, in index order"));
        }
        let r = &request.request;
        if r.v != IMPORT_VERSION {
            return Err(bad(format!(
                "import request version {} (this enclave reads {IMPORT_VERSION})",
                r.v
            )));
        }
        if r.dealers.is_empty() || r.dealers.len() > MAX_DEALERS {
            return Err(bad(format!(
                "an import names 1 to {MAX_DEALERS} dealers, not {}",
                r.dealers.len()
            )));
        }
        let chain_code = match (r.key.scheme, &r.chain_code) {
            (_, None) => [0u8; 32],
            (Scheme::EcdsaSecp256k1, Some(c)) => c
                .as_slice()
                .try_into()
                .map_err(|_| bad("a chain code is 32 bytes"))?,
            (Scheme::EddsaEd25519, Some(_)) => {
                return Err(bad("an EdDSA key has no chain code"));
            }
        };
        if let Some(network) = &r.master_key_network {
            // Which network is the chain adapters' to judge (they enforce it); the enclave
            // holds the request to what an approved import may say of it.
            if r.key.scheme != Scheme::EcdsaSecp256k1
                || network.is_empty()
                || network.len() > MAX_NETWORK_LEN
                || !network.contains(':')
                || !network
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_:".contains(&b))
            {
                return Err(bad(
                    "a master key's network is a Bitcoin-family CHAIN:NETWORK of at most \
                     64 bytes of a-z 0-9 - _ :, for an ECDSA key",
                ));
            }
        }
        self.check_new_key(&r.key)?;
        let g = self.genesis()?;
        g.check_admins(r, &request.approvals, r.key.admins)?;
        self.refuse_while_prepared()?;
        let node = g.node;
        self.check_single_use(&r.key)?;
        let request_hash: [u8; 32] = sha2::Sha256::digest(r.canonical_bytes()).into();
        let me = usize::from(node);
        let threshold = r.key.threshold;
        let (share, digest): (Share, [u8; 32]) = match r.key.scheme {
            Scheme::EcdsaSecp256k1 => {
                let got =
                    receive::<Secp256k1>(identity, r, &request_hash, dealings, participants, me)
                        .map_err(dealing)?;
                let aux = self.aux.as_ref().ok_or_else(|| {
                    NodeError::Refused("ECDSA keys need auxiliary info first".into())
                })?;
                let aux = SecretAuxInfo::from_bytes(&aux.to_bytes().map_err(internal)?)
                    .map_err(internal)?;
                let share =
                    SecretKeyShare::from_redistributed(node, got.share, threshold, chain_code, aux)
                        .map_err(internal)?;
                (share.into(), got.digest)
            }
            Scheme::EddsaEd25519 => {
                let got =
                    receive::<Ed25519>(identity, r, &request_hash, dealings, participants, me)
                        .map_err(dealing)?;
                let share = SecretEddsaShare::from_redistributed(node, got.share, threshold)
                    .map_err(internal)?;
                (Box::new(share).into(), got.digest)
            }
        };
        let kind = match r.key.scheme {
            Scheme::EcdsaSecp256k1 => BlobKind::EcdsaShare,
            Scheme::EddsaEd25519 => BlobKind::EddsaShare,
        };
        let data_key = self.sealing.data_key(kind, &r.key.key_id)?;
        let key = key_id_use(&r.key.key_id);
        self.claim(&key)?;
        let me = node;
        let machine = Confirm {
            digest,
            waiting: participants.iter().copied().filter(|p| *p != me).collect(),
            share: Some(share),
        };
        let first = vec![OutgoingMessage {
            to: None,
            payload: zeroize::Zeroizing::new(digest.to_vec()),
        }];
        Ok(Start::new(
            Box::new(machine),
            Purpose::ImportKey(r.key.clone(), request_hash),
            first,
        )
        .holding(key)
        .sealed_under(data_key))
    }
}
