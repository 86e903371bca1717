//! Two-round FROST Ed25519 signing among a signer set (see the module docs).

use std::collections::BTreeMap;
use std::fmt;

use frost_ed25519 as frost;
use frost_ed25519::SigningPackage;
use frost_ed25519::keys::{KeyPackage, PublicKeyPackage};
use frost_ed25519::round1::{SigningCommitments, SigningNonces};
use frost_ed25519::round2::SignatureShare;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::wire::{Body, bad, broadcast, decode, expect_delivery, expect_first, unexpected};
use super::{
    PUBLIC_KEY_LEN, SIGNATURE_LEN, SecretEddsaShare, check_params, frost_abort, identifier,
    update_len_prefixed, verify,
};
use crate::mpc::driver::{Closing, debug_machine, handle_closing};
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};

/// Domain separator of the signing context digest.
const SIGN_CONTEXT_DOMAIN: &[u8] = b"cohort/mpc/eddsa/frost-ed25519/sign-context/v1";

/// Two-round FROST Ed25519 signing among a signer set (see the module docs).
///
/// The output is the 64-byte signature `R || s`, verified against the group key. Broadcasts
/// (`to: None`) are meant for the other signers only.
pub struct Sign {
    session_id: Vec<u8>,
    me: PartyIndex,
    n: u16,
    /// Sorted, without duplicates, including `me`.
    signers: Vec<PartyIndex>,
    message: Vec<u8>,
    /// Digest of session, group key, signer set and message, carried by the commitments.
    context: [u8; 32],
    public_key: [u8; PUBLIC_KEY_LEN],
    // The large FROST values are boxed to keep the machine small to move.
    key_package: Box<KeyPackage>,
    public_key_package: Box<PublicKeyPackage>,
    /// This signer's nonces: taken (and so zeroized and gone) by the round-2 signing step.
    nonces: Option<Box<SigningNonces>>,
    /// Everyone's commitments, including ours.
    commitments: BTreeMap<PartyIndex, SigningCommitments>,
    signing_package: Option<SigningPackage>,
    own_share: Option<SignatureShare>,
    /// The peers' signature shares.
    shares: BTreeMap<PartyIndex, SignatureShare>,
    closed: bool,
}

impl fmt::Debug for Sign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_machine(
            f,
            "Sign",
            &[
                ("me", &self.me),
                ("signers", &self.signers),
                ("commitments", &self.commitments.len()),
                ("shares", &self.shares.len()),
                ("closed", &self.closed),
            ],
        )
    }
}

impl Sign {
    /// Starts signing `message` with `share` among `signers` (party indices, at least `t`,
    /// including this party) in the session `session_id`. Returns the commitment broadcast.
    ///
    /// Fewer than `t` signers, duplicates, unknown parties or a signer set without this party
    /// are [`MpcError::BadInput`].
    pub fn start<R: RngCore + CryptoRng>(
        share: &SecretEddsaShare,
        session_id: &[u8],
        signers: &[PartyIndex],
        message: &[u8],
        rng: &mut R,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        let me = share.index;
        check_params(session_id, me, share.parties, share.threshold)?;
        let mut sorted = signers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != signers.len() {
            return Err(MpcError::BadInput("duplicate signer".into()));
        }
        if sorted.len() < usize::from(share.threshold) {
            return Err(MpcError::BadInput(format!(
                "{} signers given, at least {} needed",
                sorted.len(),
                share.threshold
            )));
        }
        if let Some(unknown) = sorted.iter().find(|p| **p >= share.parties) {
            return Err(MpcError::BadInput(format!("unknown signer {unknown}")));
        }
        if sorted.binary_search(&me).is_err() {
            return Err(MpcError::BadInput(
                "this party is not among the signers".into(),
            ));
        }

        let mut hasher = Sha256::new();
        update_len_prefixed(&mut hasher, SIGN_CONTEXT_DOMAIN);
        update_len_prefixed(&mut hasher, session_id);
        hasher.update(share.public_key);
        hasher.update((sorted.len() as u64).to_be_bytes());
        for signer in &sorted {
            hasher.update(signer.to_be_bytes());
        }
        update_len_prefixed(&mut hasher, message);
        let context: [u8; 32] = hasher.finalize().into();

        let (nonces, commitments) =
            frost::round1::commit(share.key_package.signing_share(), &mut *rng);
        let first = broadcast(
            session_id,
            Body::SignCommit {
                context: context.to_vec(),
                commitments: Box::new(commitments),
            },
        )?;
        let machine = Self {
            session_id: session_id.to_vec(),
            me,
            n: share.parties,
            signers: sorted,
            message: message.to_vec(),
            context,
            public_key: share.public_key,
            key_package: Box::new(share.key_package.clone()),
            public_key_package: Box::new(share.public_key_package.clone()),
            nonces: Some(Box::new(nonces)),
            commitments: BTreeMap::from([(me, commitments)]),
            signing_package: None,
            own_share: None,
            shares: BTreeMap::new(),
            closed: false,
        };
        Ok((machine, vec![first]))
    }

    /// Feeds one message from another signer. An invalid signature share aborts with
    /// [`MpcError::Aborted`] naming the signers whose shares are invalid.
    pub fn handle(&mut self, msg: IncomingMessage) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        handle_closing(self, msg)
    }

    fn advance(&mut self) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        let mut out = Vec::new();
        if self.signing_package.is_none() && self.commitments.len() == self.signers.len() {
            let mut commitments = BTreeMap::new();
            for (party, commitment) in &self.commitments {
                commitments.insert(identifier(*party)?, *commitment);
            }
            self.signing_package = Some(SigningPackage::new(commitments, &self.message));
            let share = self.sign_round2()?;
            out.push(broadcast(
                &self.session_id,
                Body::SignShare(Box::new(share)),
            )?);
        }
        if self.own_share.is_some() && self.shares.len() + 1 == self.signers.len() {
            let signature = self.aggregate()?;
            self.close();
            return Ok(Step::Done(signature, out));
        }
        Ok(Step::Continue(out))
    }

    /// Computes this signer's share, consuming the nonces: a second call is an error.
    fn sign_round2(&mut self) -> Result<SignatureShare, MpcError> {
        let nonces = self
            .nonces
            .take()
            .ok_or_else(|| MpcError::Internal("signing nonces already used".into()))?;
        let package = self
            .signing_package
            .as_ref()
            .ok_or_else(|| MpcError::Internal("signing package missing".into()))?;
        let share = frost::round2::sign(package, &nonces, &self.key_package)
            .map_err(|e| frost_abort(&e, self.n, "signing round 2"))?;
        self.own_share = Some(share);
        Ok(share)
    }

    /// Aggregates all shares, blaming every signer whose share is invalid, and verifies the
    /// result with strict Ed25519 verification.
    fn aggregate(&self) -> Result<[u8; SIGNATURE_LEN], MpcError> {
        let package = self
            .signing_package
            .as_ref()
            .ok_or_else(|| MpcError::Internal("signing package missing".into()))?;
        let own = self
            .own_share
            .ok_or_else(|| MpcError::Internal("own signature share missing".into()))?;
        let mut shares = BTreeMap::from([(identifier(self.me)?, own)]);
        for (party, share) in &self.shares {
            shares.insert(identifier(*party)?, *share);
        }
        let signature = frost::aggregate_custom(
            package,
            &shares,
            &self.public_key_package,
            frost::CheaterDetection::AllCheaters,
        )
        .map_err(|e| frost_abort(&e, self.n, "aggregating signature shares"))?;
        let signature = signature
            .serialize()
            .ok()
            .and_then(|bytes| <[u8; SIGNATURE_LEN]>::try_from(bytes).ok())
            .ok_or_else(|| MpcError::Internal("signature does not serialize to 64 bytes".into()))?;
        verify(&self.public_key, &self.message, &signature).map_err(|_| MpcError::Aborted {
            culprits: Vec::new(),
            reason: "aggregated signature fails strict ed25519 verification".into(),
        })?;
        Ok(signature)
    }
}

impl Closing for Sign {
    type Output = [u8; SIGNATURE_LEN];

    fn close(&mut self) {
        self.closed = true;
        self.nonces = None;
    }

    fn step(&mut self, msg: IncomingMessage) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        let from = msg.from;
        if self.closed {
            return Err(bad(from, "eddsa signing already finished"));
        }
        if from == self.me || self.signers.binary_search(&from).is_err() {
            return Err(bad(from, "sender is not another signer"));
        }
        match decode(&self.session_id, from, &msg.payload)? {
            Body::SignCommit {
                context,
                commitments,
            } => {
                expect_delivery(from, msg.broadcast, true, "signing commitment")?;
                expect_first(&self.commitments, from, "signing commitment")?;
                if context != self.context {
                    return Err(MpcError::Aborted {
                        culprits: vec![from],
                        reason: "signer disagrees on session, key, signer set or message".into(),
                    });
                }
                self.commitments.insert(from, *commitments);
            }
            Body::SignShare(share) => {
                expect_delivery(from, msg.broadcast, true, "signature share")?;
                expect_first(&self.shares, from, "signature share")?;
                self.shares.insert(from, *share);
            }
            other => return Err(unexpected(from, &other, "eddsa signing")),
        }
        self.advance()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::super::testutil::*;
    use super::*;

    #[test]
    fn fewer_than_t_signers_cannot_sign() {
        let shares = run_dkg(5, 3);
        for signers in [&[0, 1][..], &[2][..]] {
            let err = expect_err(Sign::start(&shares[0], SESSION, signers, b"m", &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{err}");
        }
        // Duplicates do not count twice, unknown parties and sets without us are refused.
        for signers in [&[0, 1, 1][..], &[0, 1, 5][..], &[1, 2, 3][..]] {
            let err = expect_err(Sign::start(&shares[0], SESSION, signers, b"m", &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{err}");
        }
    }

    /// FROST round 1 by hand for `signers`: their nonces and the signing package of `message`.
    fn commit_all(
        shares: &[SecretEddsaShare],
        signers: &[u16],
        message: &[u8],
    ) -> (BTreeMap<u16, SigningNonces>, SigningPackage) {
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for &i in signers {
            let (n, c) = frost::round1::commit(
                shares[usize::from(i)].key_package.signing_share(),
                &mut OsRng,
            );
            nonces.insert(i, n);
            commitments.insert(identifier(i).expect("id"), c);
        }
        (nonces, SigningPackage::new(commitments, message))
    }

    #[test]
    fn t_minus_1_shares_do_not_aggregate() {
        let shares = run_dkg(5, 3);
        let message = b"needs three";
        let pkp = shares[0].public_key_package().clone();

        // Shares of a threshold set, minus one, do not aggregate.
        let signers = [0u16, 1, 2];
        let (nonces, package) = commit_all(&shares, &signers, message);
        let mut sig_shares = BTreeMap::new();
        for &i in &signers {
            let share =
                frost::round2::sign(&package, &nonces[&i], &shares[usize::from(i)].key_package)
                    .expect("threshold signers sign");
            sig_shares.insert(identifier(i).expect("id"), share);
        }
        assert!(frost::aggregate(&package, &sig_shares, &pkp).is_ok());
        sig_shares.remove(&identifier(2).expect("id"));
        assert!(frost::aggregate(&package, &sig_shares, &pkp).is_err());

        // Two parties that pretend the threshold is two produce no valid signature either.
        let signers = [3u16, 4];
        let (nonces, package) = commit_all(&shares, &signers, message);
        let mut sig_shares = BTreeMap::new();
        for &i in &signers {
            let kp = &shares[usize::from(i)].key_package;
            let lowered = KeyPackage::new(
                *kp.identifier(),
                *kp.signing_share(),
                *kp.verifying_share(),
                *kp.verifying_key(),
                2,
            );
            let share = frost::round2::sign(&package, &nonces[&i], &lowered).expect("signs");
            sig_shares.insert(identifier(i).expect("id"), share);
        }
        let lowered_pkp =
            PublicKeyPackage::new(pkp.verifying_shares().clone(), *pkp.verifying_key(), None);
        let err = frost::aggregate(&package, &sig_shares, &lowered_pkp)
            .expect_err("t-1 shares do not make a signature");
        assert_eq!(err, frost::Error::InvalidSignature);
    }

    #[test]
    fn tampered_signature_share_is_an_error_not_a_panic() {
        let shares = run_dkg(3, 2);
        let signers = [0u16, 1];
        let message = b"tamper";
        let mut share_len = 0;
        route(start_sign(&shares, &signers, message), 0, |d| {
            if matches!(decoded(d), Some(Body::SignShare(_))) {
                share_len = d.payload.len();
            }
        });
        assert!(share_len > 0);
        let mut aborts = 0;
        for pos in 0..share_len {
            let results = route(start_sign(&shares, &signers, message), 0, |d| {
                if d.from == 1 && matches!(decoded(d), Some(Body::SignShare(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            match expect_err(
                results
                    .into_iter()
                    .find(|(p, _)| *p == 0)
                    .expect("party 0 stops")
                    .1,
            ) {
                MpcError::BadMessage { from, .. } => assert_eq!(from, 1),
                MpcError::Aborted { culprits, .. } => {
                    assert_eq!(culprits, vec![1], "byte {pos}");
                    aborts += 1;
                }
                other => panic!("byte {pos}: {other}"),
            }
        }
        assert!(
            aborts > 0,
            "some flips decode to a wrong share that aggregation blames"
        );
    }

    #[test]
    fn tampered_commitment_blames_or_rejects_the_sender() {
        let shares = run_dkg(3, 2);
        let signers = [0u16, 1];
        let mut len = 0;
        route(start_sign(&shares, &signers, b"m"), 0, |d| {
            if matches!(decoded(d), Some(Body::SignCommit { .. })) {
                len = d.payload.len();
            }
        });
        for pos in (0..len).step_by(4) {
            let results = route(start_sign(&shares, &signers, b"m"), 0, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::SignCommit { .. })) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x80;
                }
            });
            assert!(
                results.get(&0).is_some_and(|r| r.is_err()) || !results.contains_key(&0),
                "byte {pos}: party 0 must not output"
            );
            // A changed commitment makes every share invalid for someone: nobody outputs a
            // signature that fails verification.
            for signature in results.values().flatten() {
                verify(&shares[0].public_key(), b"m", signature).expect("only valid output");
            }
        }
    }

    #[test]
    fn messages_after_the_end_are_rejected() {
        let shares = run_dkg(3, 2);
        let mut started = start_sign(&shares, &[0, 1], b"m");
        let (_, mut m1, out1) = started.pop().expect("two");
        let (_, mut m0, out0) = started.pop().expect("two");
        let Ok(Step::Continue(share0)) = m1.handle(IncomingMessage {
            from: 0,
            broadcast: true,
            payload: out0[0].payload.clone(),
        }) else {
            panic!("party 1 signs");
        };
        let Ok(Step::Continue(share1)) = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        }) else {
            panic!("party 0 signs");
        };
        let Ok(Step::Done(sig, _)) = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: share0[0].payload.clone(),
        }) else {
            panic!("party 0 aggregates");
        };
        verify(&shares[0].public_key(), b"m", &sig).expect("valid");
        let Ok(Step::Done(_, _)) = m1.handle(IncomingMessage {
            from: 0,
            broadcast: true,
            payload: share1[0].payload.clone(),
        }) else {
            panic!("party 1 aggregates");
        };
        assert!(matches!(
            expect_err(m0.handle(IncomingMessage {
                from: 1,
                broadcast: true,
                payload: share1[0].payload.clone()
            })),
            MpcError::BadMessage { .. }
        ));
    }

    #[test]
    fn nonces_are_used_at_most_once() {
        let shares = run_dkg(3, 2);
        let mut started = start_sign(&shares, &[0, 1], b"once");
        let (_, _, out1) = started.pop().expect("two");
        let (_, mut m0, _) = started.pop().expect("two");
        let step = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        });
        assert!(
            matches!(step, Ok(Step::Continue(ref out)) if out.len() == 1),
            "share sent"
        );
        assert!(m0.nonces.is_none(), "nonces consumed");
        assert_eq!(
            expect_err(m0.sign_round2()),
            MpcError::Internal("signing nonces already used".into())
        );
    }

    #[test]
    fn signers_disagreeing_on_the_message_abort() {
        let shares = run_dkg(3, 2);
        let (mut m0, _) =
            Sign::start(&shares[0], SESSION, &[0, 1], b"pay alice", &mut OsRng).expect("start");
        let (_, out1) =
            Sign::start(&shares[1], SESSION, &[0, 1], b"pay mallory", &mut OsRng).expect("start");
        let err = expect_err(m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        }));
        assert!(
            matches!(err, MpcError::Aborted { ref culprits, .. } if culprits == &vec![1]),
            "{err}"
        );
        assert!(m0.nonces.is_none(), "an aborted machine drops its nonces");
    }
}
