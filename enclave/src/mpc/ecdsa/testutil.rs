//! Helpers of the ECDSA tests: groups of key shares, runs started for every party, and the
//! shared in-process router with FIFO delivery.

use std::sync::OnceLock;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use serde::Serialize;

use super::fixtures;
use super::*;
use crate::mpc::test_router::{self, Delivery, Machine, Order};
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

/// Runs parties `0..n` (in the order started) through the shared router with FIFO delivery,
/// letting `tamper(to, msg)` change each message on the way. Returns each party's outcome
/// (`None`: still waiting when traffic stopped). A party that errs gets no more messages.
pub(super) fn route<P: Machine>(
    started: Vec<(P, Vec<OutgoingMessage>)>,
    mut tamper: impl FnMut(PartyIndex, &mut Delivery),
) -> Vec<Option<Result<P::Output, MpcError>>> {
    let n = u16::try_from(started.len()).unwrap();
    let started = (0..n)
        .zip(started)
        .map(|(i, (m, out))| (i, m, out))
        .collect();
    let mut results = test_router::route(started, Order::Fifo, |d| tamper(d.to, d));
    (0..n).map(|i| results.remove(&i)).collect()
}

pub(super) fn route_ok<P: Machine>(started: Vec<(P, Vec<OutgoingMessage>)>) -> Vec<P::Output> {
    route(started, |_, _| {})
        .into_iter()
        .map(|r| r.expect("party finished").expect("party succeeded"))
        .collect()
}

/// Live auxiliary-info generation for parties `0..n`, from the committed primes.
pub(super) fn run_aux_info_gen(n: u16, sid: &[u8]) -> Vec<SecretAuxInfo> {
    route_ok(
        (0..n)
            .map(|i| {
                let primes = fixtures::primes(usize::from(i)).unwrap();
                AuxInfoGen::start(sid, i, n, primes).unwrap()
            })
            .collect(),
    )
}

/// Committed aux info (made by `AuxInfoGen`, see `generate_aux_fixtures`) plus a live
/// keygen for a `t`-of-`n` group.
pub(super) fn setup(n: u16, t: u16) -> Vec<SecretKeyShare> {
    let aux = (0..n)
        .map(|i| fixtures::aux_info(n, i).unwrap())
        .collect::<Vec<_>>();
    let sid = format!("test keygen {t}-of-{n}");
    let cores = route_ok(
        (0..n)
            .map(|i| Keygen::start(sid.as_bytes(), i, n, t).unwrap())
            .collect(),
    );
    cores
        .into_iter()
        .zip(aux)
        .map(|(core, aux)| SecretKeyShare::from_parts(core, aux).unwrap())
        .collect()
}

pub(super) fn group_2_of_3() -> &'static [SecretKeyShare] {
    static GROUP: OnceLock<Vec<SecretKeyShare>> = OnceLock::new();
    GROUP.get_or_init(|| setup(3, 2))
}

pub(super) fn group_3_of_5() -> &'static [SecretKeyShare] {
    static GROUP: OnceLock<Vec<SecretKeyShare>> = OnceLock::new();
    GROUP.get_or_init(|| setup(5, 3))
}

/// Starts presignature generation for `signers` (keygen indices).
pub(super) fn start_presign(
    shares: &[SecretKeyShare],
    signers: &[PartyIndex],
    path: &[u32],
    sid: &[u8],
) -> Vec<(Presign, Vec<OutgoingMessage>)> {
    (0..)
        .zip(signers)
        .map(|(i, &s)| Presign::start(sid, i, signers, &shares[usize::from(s)], path).unwrap())
        .collect()
}

pub(super) fn start_sign(
    shares: &[SecretKeyShare],
    signers: &[PartyIndex],
    path: &[u32],
    digest: [u8; 32],
    sid: &[u8],
) -> Vec<(Sign, Vec<OutgoingMessage>)> {
    (0..)
        .zip(signers)
        .map(|(i, &s)| Sign::start(sid, i, signers, &shares[usize::from(s)], path, digest).unwrap())
        .collect()
}

/// Verifies with k256 (an independent ECDSA implementation), requiring low s.
pub(super) fn k256_verify(public_key: &[u8; 33], digest: &[u8; 32], sig: &Signature) {
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).unwrap();
    let sig = k256::ecdsa::Signature::from_slice(&sig.to_bytes()).unwrap();
    assert!(sig.normalize_s().is_none(), "signature must have low s");
    key.verify_prehash(digest, &sig).unwrap();
}

pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

pub(super) fn decode_signing(payload: &[u8]) -> SigningMsg {
    ciborium::from_reader(payload).unwrap()
}

pub(super) fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(msg, &mut out).unwrap();
    out
}
