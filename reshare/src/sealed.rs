//! Sub-shares sealed to one new member (`docs/resharing.md`, "Transport"): a dealer encrypts
//! each member's sub-share to that member's X25519 identity key, as the member's attestation
//! document binds it, so that the relay carrying the dealing learns nothing and cannot move a
//! sub-share to another member, dealer or redistribution.
//!
//! ```text
//! shared = X25519(e, P_j)                       e: the dealing's ephemeral secret
//! info   = DST || lp(purpose) || lp(curve name) || E || P_j || u16 dealer || u16 member
//!          || context
//! key    = HKDF-SHA256(ikm = shared, salt = empty, info)
//! sealed = ChaCha20-Poly1305(key, nonce = 0, plaintext = sub-share (scalar, big-endian),
//!                            associated data = info)
//! ```
//!
//! `E` is the dealing's ephemeral public key, `P_j` the member's identity key, `purpose` what the
//! redistribution is for (`import`, `reshare`), `context` the caller's binding (for an import,
//! SHA-256 of the approved request's canonical bytes), `lp` a 4-byte big-endian length prefix.
//! A key is used for one message only, so the fixed nonce is safe.
//!
//! [`point`] and [`scalar`] read the public values a dealing is checked against. Each accepts
//! one encoding only (compressed points, 32-byte big-endian scalars below the order, read
//! back and compared byte for byte), so that two byte strings never name the same value: what
//! every node hashes and confirms is then what it checked.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use generic_ec::{Curve, Point, Scalar, SecretScalar};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::ReshareError;

/// Domain of a sealed sub-share's key and associated data.
pub const SUB_SHARE_DST: &[u8] = b"cohort/reshare/sub-share/v1\0";

/// What a redistribution is for. It is part of every sealed sub-share's key, so a sub-share
/// dealt for one purpose never opens as another's, whatever the two share as context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A legacy key dealt into the cluster by its legacy holders.
    Import,
    /// A cluster key dealt by its current holders to a new committee.
    Reshare,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Import => b"import",
            Self::Reshare => b"reshare",
        }
    }
}

/// The length of a sealed sub-share: a 32-byte scalar and ChaCha20-Poly1305's 16-byte tag.
pub const SEALED_LEN: usize = 32 + 16;

/// Where a sealed sub-share belongs: which kind of redistribution, which one, dealer and member.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// What the redistribution is for.
    pub purpose: Purpose,
    /// The caller's binding of the redistribution (an approved request's hash).
    pub context: &'a [u8],
    /// The dealer's position among the dealers.
    pub dealer: u16,
    /// The member's position among the new members.
    pub member: u16,
}

fn info<E: Curve>(ephemeral: &[u8; 32], member_key: &[u8; 32], b: &Binding<'_>) -> Vec<u8> {
    let mut info = SUB_SHARE_DST.to_vec();
    for part in [b.purpose.tag(), E::CURVE_NAME.as_bytes()] {
        info.extend_from_slice(&(part.len() as u32).to_be_bytes());
        info.extend_from_slice(part);
    }
    info.extend_from_slice(ephemeral);
    info.extend_from_slice(member_key);
    info.extend_from_slice(&b.dealer.to_be_bytes());
    info.extend_from_slice(&b.member.to_be_bytes());
    info.extend_from_slice(b.context);
    info
}

fn cipher(shared: &[u8; 32], info: &[u8]) -> ChaCha20Poly1305 {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared)
        .expand(info, &mut *key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    // From the slice: no copy of the key is left behind on the stack.
    ChaCha20Poly1305::new_from_slice(&key[..]).expect("32 bytes is a ChaCha20-Poly1305 key")
}

/// A dealing's ephemeral key: one per dealing, dropped (and zeroized) once it is sealed.
pub struct Ephemeral(StaticSecret);

impl Ephemeral {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *bytes);
        Self(StaticSecret::from(*bytes))
    }

    /// Its public half, sent with the dealing.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// Seals `sub_share` to the member whose identity key is `member_key`.
    pub fn seal<E: Curve>(
        &self,
        member_key: &[u8; 32],
        binding: &Binding<'_>,
        sub_share: &SecretScalar<E>,
    ) -> Result<Vec<u8>, ReshareError> {
        let shared = self.0.diffie_hellman(&PublicKey::from(*member_key));
        if !shared.was_contributory() {
            return Err(ReshareError::Sealed(usize::from(binding.dealer)));
        }
        let shared = Zeroizing::new(shared.to_bytes());
        let info = info::<E>(&self.public(), member_key, binding);
        let mut encoded = sub_share.as_ref().to_be_bytes();
        let plain = Zeroizing::new(encoded.as_bytes().to_vec());
        encoded.as_mut().zeroize();
        cipher(&shared, &info)
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: &plain,
                    aad: &info,
                },
            )
            .map_err(|_| ReshareError::Sealed(usize::from(binding.dealer)))
    }
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ephemeral").finish_non_exhaustive()
    }
}

/// Opens a sub-share sealed to this member: `shared` is X25519 of the member's identity secret
/// and the dealing's `ephemeral` key (the member computes it where its secret lives), and
/// `member_key` the member's own identity key.
pub fn open<E: Curve>(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    member_key: &[u8; 32],
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<SecretScalar<E>, ReshareError> {
    let dealer = usize::from(binding.dealer);
    let info = info::<E>(ephemeral, member_key, binding);
    if sealed.len() != SEALED_LEN {
        return Err(ReshareError::Sealed(dealer));
    }
    let plain = Zeroizing::new(
        cipher(shared, &info)
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: sealed,
                    aad: &info,
                },
            )
            .map_err(|_| ReshareError::Sealed(dealer))?,
    );
    let mut scalar =
        Scalar::<E>::from_be_bytes(&plain).map_err(|_| ReshareError::Sealed(dealer))?;
    Ok(SecretScalar::new(&mut scalar))
}

/// A point from its one accepted encoding, compressed; `what` and `index` name it in the
/// error. The identity is refused where `nonzero` (a public key or public share).
pub fn point<E: Curve>(
    bytes: &[u8],
    nonzero: bool,
    what: &'static str,
    index: usize,
) -> Result<Point<E>, ReshareError> {
    let bad = || ReshareError::Encoding { what, index };
    let p = Point::<E>::from_bytes(bytes).map_err(|_| bad())?;
    if (nonzero && p.is_zero()) || p.to_bytes(true).as_bytes() != bytes {
        return Err(bad());
    }
    Ok(p)
}

/// A scalar from its one accepted encoding, 32 bytes big-endian and below the order; `what`
/// and `index` name it in the error.
pub fn scalar<E: Curve>(
    bytes: &[u8],
    what: &'static str,
    index: usize,
) -> Result<Scalar<E>, ReshareError> {
    let bad = || ReshareError::Encoding { what, index };
    let s = Scalar::<E>::from_be_bytes(bytes).map_err(|_| bad())?;
    // The value read back may be a secret (a sub-share): its encoding is wiped.
    let mut encoded = s.to_be_bytes();
    let canonical = encoded.as_bytes() == bytes;
    zeroize::Zeroize::zeroize(encoded.as_mut());
    if !canonical {
        return Err(bad());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use generic_ec::curves::{Ed25519, Secp256k1};
    use rand::SeedableRng;

    use super::*;

    fn round_trip<E: Curve>() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let member = StaticSecret::random_from_rng(&mut rng);
        let member_key = PublicKey::from(&member).to_bytes();
        let e = Ephemeral::generate(&mut rng);
        let b = Binding {
            purpose: Purpose::Import,
            context: b"request",
            dealer: 1,
            member: 2,
        };
        let mut v = Scalar::<E>::random(&mut rng);
        let x = SecretScalar::new(&mut v);
        let sealed = e.seal(&member_key, &b, &x).expect("seals");
        let shared = member
            .diffie_hellman(&PublicKey::from(e.public()))
            .to_bytes();
        let opened: SecretScalar<E> =
            open(&shared, &e.public(), &member_key, &b, &sealed).expect("opens");
        assert_eq!(opened.as_ref(), x.as_ref());
        // Moved to another member, dealer or redistribution, or altered: refused, naming the
        // dealer.
        for other in [
            Binding { member: 0, ..b },
            Binding { dealer: 0, ..b },
            Binding {
                purpose: Purpose::Reshare,
                ..b
            },
            Binding {
                context: b"another request",
                ..b
            },
        ] {
            assert_eq!(
                open::<E>(&shared, &e.public(), &member_key, &other, &sealed).err(),
                Some(ReshareError::Sealed(usize::from(other.dealer)))
            );
        }
        let mut altered = sealed.clone();
        altered[3] ^= 1;
        assert_eq!(
            open::<E>(&shared, &e.public(), &member_key, &b, &altered).err(),
            Some(ReshareError::Sealed(1))
        );
        // Another member cannot open it.
        let stranger = StaticSecret::random_from_rng(&mut rng);
        let theirs = stranger
            .diffie_hellman(&PublicKey::from(e.public()))
            .to_bytes();
        assert!(open::<E>(&theirs, &e.public(), &member_key, &b, &sealed).is_err());
        // A low-order member key is refused at sealing.
        assert_eq!(
            e.seal(&[0u8; 32], &b, &x).err(),
            Some(ReshareError::Sealed(1))
        );
    }

    #[test]
    fn a_sealed_sub_share_opens_only_for_its_member_dealer_and_context() {
        round_trip::<Secp256k1>();
        round_trip::<Ed25519>();
    }

    #[test]
    fn bad_encodings_are_named() {
        let named = |what, index| Some(ReshareError::Encoding { what, index });
        assert_eq!(
            point::<Secp256k1>(&[5u8; 33], false, "public share", 4).err(),
            named("public share", 4)
        );
        assert_eq!(
            scalar::<Secp256k1>(&[0xff; 32], "point", 1).err(),
            named("point", 1)
        );
        // One value, one encoding: the uncompressed form of a valid point, a scalar with a
        // leading zero byte or one byte short, the identity where a key is expected.
        let g = Point::<Secp256k1>::generator().to_point();
        let compressed = g.to_bytes(true).as_bytes().to_vec();
        assert_eq!(point::<Secp256k1>(&compressed, true, "k", 0).ok(), Some(g));
        let uncompressed = g.to_bytes(false).as_bytes().to_vec();
        assert_eq!(
            point::<Secp256k1>(&uncompressed, true, "k", 0).err(),
            named("k", 0)
        );
        let zero = Point::<Secp256k1>::zero()
            .to_bytes(true)
            .as_bytes()
            .to_vec();
        assert_eq!(point::<Secp256k1>(&zero, true, "k", 2).err(), named("k", 2));
        assert!(point::<Secp256k1>(&zero, false, "c", 0).is_ok());
        let one = Scalar::<Ed25519>::one().to_be_bytes().as_bytes().to_vec();
        assert!(scalar::<Ed25519>(&one, "s", 0).is_ok());
        let mut long = vec![0u8];
        long.extend_from_slice(&one);
        assert_eq!(scalar::<Ed25519>(&long, "s", 0).err(), named("s", 0));
        assert_eq!(scalar::<Ed25519>(&one[1..], "s", 3).err(), named("s", 3));
    }
}
