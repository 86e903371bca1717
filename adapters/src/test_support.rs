//! Helpers the adapters' unit tests share: secp256k1 test keys and signatures, and the error
//! an adapter refuses an intent with.

use k256::ecdsa::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashSigner;

use crate::{AdapterError, ChainAdapter, Intent};

/// A secp256k1 test key made of one repeated byte, and its 33-byte compressed public key.
pub(crate) fn secp256k1_key(seed: u8) -> (SigningKey, Vec<u8>) {
    let sk = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pk = sk
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    (sk, pk)
}

/// An ECDSA signature (r‖s, 64 bytes) over a 32-byte digest, as the cluster returns it.
pub(crate) fn sign_prehash(sk: &SigningKey, digest: &[u8]) -> Vec<u8> {
    let s: k256::ecdsa::Signature = sk.sign_prehash(digest).unwrap();
    s.to_bytes().to_vec()
}

/// The error `build` refuses `base` with once `change` is made to it (the test fails if it
/// builds).
pub(crate) fn build_err<A: ChainAdapter + ?Sized>(
    adapter: &A,
    public_key: &[u8],
    path: &[u32],
    base: &Intent,
    change: impl FnOnce(&mut Intent),
) -> AdapterError {
    let mut intent = base.clone();
    change(&mut intent);
    adapter.build(public_key, path, &intent).unwrap_err()
}
