//! Helpers of the EdDSA tests: DKG and signing runs through the shared in-process router with
//! a seeded random delivery order, and error matchers.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::{OsRng, StdRng};

use super::wire::{Body, decode};
use super::*;
use crate::mpc::test_router::{self, Delivery, Machine, Order};
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

pub(super) const SESSION: &[u8] = b"test-session";

/// The shared router with a delivery order seeded by `seed`.
pub(super) fn route<M: Machine>(
    started: Vec<(PartyIndex, M, Vec<OutgoingMessage>)>,
    seed: u64,
    hook: impl FnMut(&mut Delivery),
) -> BTreeMap<PartyIndex, Result<M::Output, MpcError>> {
    test_router::route(started, Order::Seeded(seed), hook)
}

pub(super) fn start_dkg(n: u16, t: u16) -> Vec<(PartyIndex, Dkg, Vec<OutgoingMessage>)> {
    (0..n)
        .map(|i| {
            let (m, out) = Dkg::start(SESSION, i, n, t, &mut OsRng).expect("valid parameters");
            (i, m, out)
        })
        .collect()
}

pub(super) fn run_dkg(n: u16, t: u16) -> Vec<SecretEddsaShare> {
    let results = route(start_dkg(n, t), u64::from(n) * 100 + u64::from(t), |_| {});
    assert_eq!(results.len(), usize::from(n), "every party finishes");
    let shares: Vec<SecretEddsaShare> = results
        .into_values()
        .map(|r| r.expect("dkg succeeds"))
        .collect();
    for (i, share) in shares.iter().enumerate() {
        assert_eq!(usize::from(share.index()), i);
        assert_eq!(share.parties(), n);
        assert_eq!(share.threshold(), t);
        assert_eq!(share.public_key(), shares[0].public_key());
        assert_eq!(share.public_key_package(), shares[0].public_key_package());
    }
    shares
}

pub(super) fn start_sign(
    shares: &[SecretEddsaShare],
    signers: &[PartyIndex],
    message: &[u8],
) -> Vec<(PartyIndex, Sign, Vec<OutgoingMessage>)> {
    signers
        .iter()
        .map(|&i| {
            let (m, out) = Sign::start(
                &shares[usize::from(i)],
                SESSION,
                signers,
                message,
                &mut OsRng,
            )
            .expect("valid signer set");
            (i, m, out)
        })
        .collect()
}

pub(super) fn sign_and_check(shares: &[SecretEddsaShare], signers: &[PartyIndex], message: &[u8]) {
    let results = route(
        start_sign(shares, signers, message),
        signers.len() as u64,
        |_| {},
    );
    assert_eq!(results.len(), signers.len());
    let public_key = shares[0].public_key();
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).expect("valid key");
    for (party, result) in results {
        let signature = result.expect("signing succeeds");
        dalek_key
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
            .unwrap_or_else(|_| panic!("signature of party {party} verifies"));
        verify(&public_key, message, &signature).expect("helper verifies");
        assert!(verify(&public_key, b"another message", &signature).is_err());
    }
}

pub(super) fn decoded(delivery: &Delivery) -> Option<Body> {
    decode(SESSION, delivery.from, &delivery.payload).ok()
}

/// Whether `result` is a `BadMessage` blaming party 1.
pub(super) fn is_bad<T>(result: Result<T, MpcError>) -> bool {
    matches!(expect_err(result), MpcError::BadMessage { from: 1, .. })
}

pub(super) fn expect_err<T>(result: Result<T, MpcError>) -> MpcError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// A 2-of-3 DKG whose randomness comes from fixed seeds, so its output is reproducible.
pub(super) fn seeded_dkg() -> Vec<SecretEddsaShare> {
    let started = (0..3)
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(1000 + u64::from(i));
            let (m, out) = Dkg::start(b"fixture", i, 3, 2, &mut rng).expect("start");
            (i, m, out)
        })
        .collect();
    route(started, 0, |_| {})
        .into_values()
        .map(|r| r.expect("dkg succeeds"))
        .collect()
}
