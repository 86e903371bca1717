//! Presignature generation bound to a derivation path, and the single-use presignature.

use std::fmt;
use std::sync::Arc;

use cggmp21::ExecutionId;
use cggmp21::round_based::MessageType;
use rand::rngs::OsRng;

use super::share::non_hardened_path;
use super::signature::data_to_sign;
use super::{E, PartialSignature, SecretKeyShare, SigningMsg, check_signers};
use crate::mpc::blame::protocol_error;
use crate::mpc::driver::RoundMachine;
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

/// A presignature, bound at generation time to one derivation path.
///
/// Design decision: the derivation path (possibly empty, the master key) is fixed when the
/// presignature is requested ([`Presign::start`]), applied with
/// `Presignature::set_derivation_path` as soon as the presignature exists, and stored with it;
/// [`issue_partial_signature`](Self::issue_partial_signature) refuses any other path. cggmp21
/// allows choosing the path after the presignature (and so its `R`) is known, but with additive
/// (BIP32) derivation that freedom enables the related-key attack on ECDSA presignatures of
/// Groth & Shoup (2021): an attacker who picks the tweak after seeing `R` can forge. Fixing the
/// path before `R` exists removes that freedom.
///
/// Single use: issuing a partial signature consumes the presignature, it is neither `Clone` nor
/// serializable, and its nonce shares are zeroized on drop.
pub struct SecretPresignature {
    path: Vec<u32>,
    signer: PartyIndex,
    inner: cggmp21::Presignature<E>,
}

impl SecretPresignature {
    /// The derivation path this presignature is bound to.
    pub fn path(&self) -> &[u32] {
        &self.path
    }

    /// Issues this party's partial signature of `digest` for the child key at `path`, consuming
    /// the presignature. `path` must equal [`path`](Self::path), otherwise the request is
    /// refused with [`MpcError::BadInput`] (and the presignature is still consumed: check
    /// `path()` first when picking one from a pool).
    pub fn issue_partial_signature(
        self,
        digest: [u8; 32],
        path: &[u32],
    ) -> Result<PartialSignature, MpcError> {
        if path != self.path.as_slice() {
            return Err(MpcError::BadInput(
                "presignature is bound to another derivation path".into(),
            ));
        }
        let signer = self.signer;
        let partial = self.inner.issue_partial_signature(data_to_sign(&digest));
        Ok(PartialSignature {
            signer,
            r: partial.r,
            sigma: partial.sigma,
        })
    }
}

impl fmt::Debug for SecretPresignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretPresignature")
            .field("path", &self.path)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// Presignature generation by the `t` parties of `signers` (their keygen indices; party `i` of
/// this run is `signers[i]`), bound to one derivation path.
pub type Presign = RoundMachine<SigningMsg, SecretPresignature>;

impl Presign {
    /// Starts party `i` (index within this run, `0 <= i < t`).
    pub fn start(
        session_id: &[u8],
        i: PartyIndex,
        signers: &[PartyIndex],
        share: &SecretKeyShare,
        path: &[u32],
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        let t = check_signers(i, signers, share)?;
        let hd_path = non_hardened_path(path)?;
        let stored_path = path.to_vec();
        let epub = share.epub;
        let sid = session_id.to_vec();
        let signers = signers.to_vec();
        let key_share = Arc::clone(&share.share);
        RoundMachine::launch("Presign", i, t, presign_msg_type, move |party| async move {
            let presignature = cggmp21::signing(ExecutionId::new(&sid), i, &signers, &key_share)
                .enforce_reliable_broadcast(true)
                .generate_presignature(&mut OsRng, party)
                .await
                .map_err(|e| protocol_error(&e, t))?;
            let inner = presignature
                .set_derivation_path(epub, hd_path)
                .map_err(|e| match e {})?;
            Ok(SecretPresignature {
                path: stored_path,
                signer: i,
                inner,
            })
        })
    }
}

pub(super) fn signing_msg_type(msg: &SigningMsg) -> Option<MessageType> {
    use cggmp21::signing::msg::Msg;
    Some(match msg {
        Msg::Round1a(_) | Msg::Round4(_) | Msg::ReliabilityCheck(_) => MessageType::Broadcast,
        Msg::Round1b(_) | Msg::Round2(_) | Msg::Round3(_) => MessageType::P2P,
    })
}

fn presign_msg_type(msg: &SigningMsg) -> Option<MessageType> {
    match msg {
        // Presignature generation stops before the signing round.
        cggmp21::signing::msg::Msg::Round4(_) => None,
        _ => signing_msg_type(msg),
    }
}

#[cfg(test)]
mod tests {
    use cggmp21::generic_ec::{Point, Scalar};

    use super::super::testutil::*;
    use super::super::{MAX_PAYLOAD_LEN, PartialSignature, Sign, combine};
    use super::*;
    use crate::mpc::{IncomingMessage, Step};

    #[test]
    fn presignature_partials_combine() {
        let shares = group_2_of_3();
        let pk = shares[0].master_public_key();
        let digest = sha256(b"presigned message");
        let presigs = route_ok(start_presign(shares, &[2, 0], &[], b"presign 2-of-3"));
        let partials: Vec<_> = presigs
            .into_iter()
            .map(|p| {
                assert_eq!(p.path(), &[] as &[u32]);
                let partial = p.issue_partial_signature(digest, &[]).unwrap();
                // Partial signatures travel as bytes.
                PartialSignature::from_bytes(&partial.to_bytes().unwrap()).unwrap()
            })
            .collect();
        assert_eq!(
            partials
                .iter()
                .map(PartialSignature::signer)
                .collect::<Vec<_>>(),
            [0, 1]
        );
        let sig = combine(&partials, &digest, &pk).unwrap();
        k256_verify(&pk, &digest, &sig);

        // The same partials do not make a signature of another digest or under another key.
        let other = sha256(b"another message");
        assert!(matches!(
            combine(&partials, &other, &pk),
            Err(MpcError::Aborted { .. })
        ));
        let child = shares[0].derive_public_key(&[7]).unwrap();
        assert!(matches!(
            combine(&partials, &digest, &child),
            Err(MpcError::Aborted { .. })
        ));
        // Duplicated partials are refused.
        let dup = [partials[0].clone(), partials[0].clone()];
        assert!(matches!(
            combine(&dup, &digest, &pk),
            Err(MpcError::BadInput(_))
        ));
    }

    #[test]
    fn fewer_than_threshold_cannot_sign() {
        let shares = group_2_of_3();
        let pk = shares[0].master_public_key();
        let digest = sha256(b"t-1 parties");
        let mut presigs = route_ok(start_presign(shares, &[0, 1], &[], b"presign t-1"));
        let lone = presigs
            .remove(0)
            .issue_partial_signature(digest, &[])
            .unwrap();
        assert!(matches!(
            combine(&[lone], &digest, &pk),
            Err(MpcError::Aborted { .. })
        ));
        // A signing or presigning run with fewer than t parties does not even start.
        assert!(matches!(
            Sign::start(b"s", 0, &[0], &shares[0], &[], digest),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            Presign::start(b"s", 0, &[0], &shares[0], &[]),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            combine(&[], &digest, &pk),
            Err(MpcError::BadInput(_))
        ));
    }

    #[test]
    fn presignature_refused_for_another_path() {
        let shares = group_2_of_3();
        let digest = sha256(b"wrong path");
        let mut presigs = route_ok(start_presign(shares, &[0, 1], &[0, 1], b"presign bound"));
        assert_eq!(presigs[0].path(), &[0, 1]);
        assert!(format!("{:?}", presigs[0]).starts_with("SecretPresignature { path: [0, 1]"));
        let second = presigs.remove(1);
        let first = presigs.remove(0);
        assert!(matches!(
            first.issue_partial_signature(digest, &[]),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            second.issue_partial_signature(digest, &[0, 2]),
            Err(MpcError::BadInput(_))
        ));
        // Hardened paths are refused up front.
        assert!(matches!(
            Presign::start(b"h", 0, &[0, 1], &shares[0], &[1 << 31]),
            Err(MpcError::BadInput(_))
        ));
    }

    #[test]
    fn malformed_and_misrouted_messages_are_rejected() {
        let shares = group_2_of_3();
        let (mut p0, _) = Presign::start(b"misrouted", 0, &[0, 1], &shares[0], &[]).unwrap();
        let (_p1, out1) = Presign::start(b"misrouted", 1, &[0, 1], &shares[1], &[]).unwrap();
        let bcast = out1
            .iter()
            .find(|m| m.to.is_none())
            .unwrap()
            .payload
            .clone();
        let msg = |from, broadcast, payload: &[u8]| IncomingMessage {
            from,
            broadcast,
            payload: payload.to_vec().into(),
        };
        let bad_from = |r: Result<Step<SecretPresignature>, MpcError>| match r {
            Err(MpcError::BadMessage { from, .. }) => from,
            other => panic!("expected BadMessage, got {:?}", other.err()),
        };
        assert_eq!(bad_from(p0.handle(msg(7, true, &bcast))), 7);
        assert_eq!(bad_from(p0.handle(msg(0, true, &bcast))), 0);
        assert_eq!(bad_from(p0.handle(msg(1, true, b"\xff\x00garbage"))), 1);
        assert_eq!(bad_from(p0.handle(msg(1, false, &bcast))), 1);
        let mut trailing = bcast.clone();
        trailing.push(0);
        assert_eq!(bad_from(p0.handle(msg(1, true, &trailing))), 1);
        let round4 = encode(&SigningMsg::Round4(cggmp21::signing::msg::MsgRound4 {
            sigma: Scalar::one(),
        }));
        assert_eq!(bad_from(p0.handle(msg(1, true, &round4))), 1);
        // The genuine message is accepted; a replay of it is not.
        assert!(matches!(
            p0.handle(msg(1, true, &bcast)),
            Ok(Step::Continue(_))
        ));
        assert_eq!(bad_from(p0.handle(msg(1, true, &bcast))), 1);
        let huge = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(bad_from(p0.handle(msg(1, false, &huge))), 1);
    }

    #[test]
    fn tampered_signing_message_blames_sender() {
        let shares = group_2_of_3();
        // A flipped byte in a p2p round-2 payload: refused as undecodable or caught by the ZK
        // proofs; either way party 0 names party 1 and nothing panics.
        let mut flipped = false;
        let results = route(start_presign(shares, &[0, 1], &[], b"flip"), |to, msg| {
            if to == 0 && !flipped && matches!(decode_signing(&msg.payload), SigningMsg::Round2(_))
            {
                let mid = msg.payload.len() / 2;
                msg.payload[mid] ^= 0x01;
                flipped = true;
            }
        });
        assert!(flipped);
        match &results[0] {
            Some(Err(MpcError::BadMessage { from: 1, .. })) => {}
            Some(Err(MpcError::Aborted { culprits, .. })) => assert_eq!(culprits, &[1]),
            other => panic!(
                "party 0 should fail, got {:?}",
                other.as_ref().map(|r| r.as_ref().err())
            ),
        }

        // A well-formed but wrong round-3 value: the ZK proof fails and cggmp21 blames party 1.
        let results = route(start_presign(shares, &[0, 1], &[], b"tamper"), |to, msg| {
            if to == 0
                && let SigningMsg::Round3(mut r3) = decode_signing(&msg.payload)
            {
                r3.Delta += Point::generator();
                msg.payload = encode(&SigningMsg::Round3(r3)).into();
            }
        });
        match &results[0] {
            Some(Err(MpcError::Aborted { culprits, .. })) => assert_eq!(culprits, &[1]),
            other => panic!(
                "party 0 should abort, got {:?}",
                other.as_ref().map(|r| r.as_ref().err())
            ),
        }
    }
}
