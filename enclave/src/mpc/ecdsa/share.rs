//! A complete ECDSA key share, its storage, and HD (SLIP-10/BIP32) public key derivation.

use std::fmt;
use std::sync::Arc;

use cggmp21::generic_ec::Point;
use cggmp21::hd_wallet::{self, HdWallet as _, NonHardenedIndex, Slip10};
use cggmp21::key_share::KeyShare;
use zeroize::Zeroizing;

use super::{E, L, SecretAuxInfo, SecretIncompleteKeyShare};
use crate::mpc::envelope::{self, Kind};
use crate::mpc::{MpcError, PartyIndex};

/// A complete, validated, HD-capable key share (core share plus auxiliary info).
///
/// The only ways to obtain one are [`from_parts`](Self::from_parts) and
/// [`from_bytes`](Self::from_bytes), both of which validate (cggmp21's `Valid<_>` checks, plus
/// the presence of a chain code), so holding a `SecretKeyShare` means holding a usable share.
/// Machines share it through an `Arc`, so no copy of the secret is made per protocol run.
pub struct SecretKeyShare {
    pub(super) share: Arc<KeyShare<E, L>>,
    /// Master extended public key, extracted once (its presence is part of the validation).
    pub(super) epub: hd_wallet::ExtendedPublicKey<E>,
}

impl SecretKeyShare {
    /// Another handle on the same share, for a machine built on another thread: the secret is
    /// not copied (machines share it through an `Arc`).
    pub fn handle(&self) -> Self {
        Self {
            share: Arc::clone(&self.share),
            epub: self.epub,
        }
    }

    /// Completes a key share with this party's auxiliary info (same group, same index).
    pub fn from_parts(
        incomplete: SecretIncompleteKeyShare,
        aux: SecretAuxInfo,
    ) -> Result<Self, MpcError> {
        let share = KeyShare::from_parts((incomplete.0, aux.0)).map_err(|e| {
            MpcError::BadInput(format!(
                "key share and auxiliary info do not match: {}",
                e.error()
            ))
        })?;
        Self::checked(share)
    }

    /// A key share from a redistribution (`docs/resharing.md`; an import or a resharing): this
    /// party's new share at `index` among `n` parties at points `1..=n` (as cggmp21's keygen
    /// numbers them), every party's public share, the unchanged key, the new `threshold`, the
    /// key's `chain_code`, completed with this party's auxiliary info. Validated as any share:
    /// the secret must match its public share, and the public shares must interpolate to the
    /// key at the threshold.
    pub fn from_redistributed(
        index: PartyIndex,
        new: reshare::NewShare<E>,
        threshold: u16,
        chain_code: [u8; 32],
        aux: SecretAuxInfo,
    ) -> Result<Self, MpcError> {
        use cggmp21::generic_ec::{NonZero, Scalar};
        use cggmp21::key_share::{DirtyIncompleteKeyShare, DirtyKeyInfo, Validate as _, VssSetup};
        let zero = || MpcError::BadInput("a redistributed share or public share is zero".into());
        // The threshold the shares were dealt at (cggmp21's validation alone would accept any
        // threshold at or above it, and receipts would state more signers than the key needs).
        if new.commitment.len() != usize::from(threshold) {
            return Err(MpcError::BadInput(format!(
                "redistributed share: dealt at threshold {}, not {threshold}",
                new.commitment.len()
            )));
        }
        let public_shares = new
            .public_shares
            .iter()
            .map(|p| NonZero::from_point(*p).ok_or_else(zero))
            .collect::<Result<Vec<_>, _>>()?;
        let n = u16::try_from(public_shares.len())
            .map_err(|_| MpcError::BadInput("too many parties".into()))?;
        let points = (1..=u64::from(n))
            .map(|p| NonZero::from_scalar(Scalar::from(p)).ok_or_else(zero))
            .collect::<Result<Vec<_>, _>>()?;
        let core = DirtyIncompleteKeyShare {
            i: index,
            key_info: DirtyKeyInfo {
                curve: Default::default(),
                shared_public_key: NonZero::from_point(new.public_key).ok_or_else(zero)?,
                public_shares,
                vss_setup: Some(VssSetup {
                    min_signers: threshold,
                    I: points,
                }),
                chain_code: Some(chain_code),
            },
            x: NonZero::from_secret_scalar(new.secret).ok_or_else(zero)?,
        }
        .validate()
        .map_err(|e| MpcError::BadInput(format!("redistributed share: {}", e.error())))?;
        Self::from_parts(super::SecretIncompleteKeyShare(core), aux)
    }

    /// The share as a dealer of a resharing uses it. Refused for a share whose parties are not
    /// at points `1..=n` (cggmp21's keygen and [`Self::from_redistributed`] put them there).
    pub fn held(&self) -> Result<crate::mpc::Held<E>, MpcError> {
        use cggmp21::generic_ec::{Scalar, SecretScalar};
        let core = &self.share.core;
        let at_index_plus_one = core.vss_setup.as_ref().is_some_and(|vss| {
            vss.I
                .iter()
                .zip(1u64..)
                .all(|(point, p)| *point.as_ref() == Scalar::from(p))
        });
        if !at_index_plus_one {
            return Err(MpcError::BadInput(
                "the key share's parties are not at points 1..n".into(),
            ));
        }
        Ok(crate::mpc::Held {
            secret: SecretScalar::clone(core.x.as_ref()),
            public_shares: core.public_shares.iter().map(|p| *p.as_ref()).collect(),
            public_key: *core.shared_public_key.as_ref(),
        })
    }

    fn checked(share: KeyShare<E, L>) -> Result<Self, MpcError> {
        let epub = share
            .core
            .extended_public_key()
            .ok_or_else(|| MpcError::BadInput("key share is not HD-capable".into()))?;
        Ok(Self {
            share: Arc::new(share),
            epub,
        })
    }

    /// Encodes the key share for storage (versioned CBOR envelope).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        envelope::encode(Kind::EcdsaKeyShare, &*self.share)
    }

    /// Decodes a key share written by [`to_bytes`](Self::to_bytes) and validates it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        Self::checked(envelope::decode_body(Kind::EcdsaKeyShare, bytes)?)
    }

    /// This party's index at keygen.
    pub fn index(&self) -> PartyIndex {
        self.share.core.i
    }

    /// Number of parties sharing the key.
    pub fn parties(&self) -> u16 {
        // The validated share has one public share per party and at most u16::MAX of them.
        u16::try_from(self.share.core.public_shares.len()).unwrap_or(u16::MAX)
    }

    /// Number of parties needed to sign.
    pub fn threshold(&self) -> u16 {
        self.share
            .core
            .vss_setup
            .as_ref()
            .map_or_else(|| self.parties(), |vss| vss.min_signers)
    }

    /// The master public key, SEC1-compressed.
    pub fn master_public_key(&self) -> [u8; 33] {
        compressed(&self.epub.public_key)
    }

    /// The master extended public key (public key and chain code), for independent derivation.
    pub fn extended_public_key(&self) -> ExtendedPublicKey {
        ExtendedPublicKey::from_hd(&self.epub)
    }

    /// The child public key (SEC1-compressed) at a non-hardened `path` (empty: the master key).
    pub fn derive_public_key(&self, path: &[u32]) -> Result<[u8; 33], MpcError> {
        Ok(compressed(&derive_hd(self.epub, path)?.public_key))
    }
}

impl fmt::Debug for SecretKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyShare")
            .field("i", &self.index())
            .field("n", &self.parties())
            .field("t", &self.threshold())
            .finish_non_exhaustive()
    }
}

/// An extended public key: SEC1-compressed public key and BIP32/SLIP-10 chain code. Enough for
/// anyone to derive the non-hardened child keys the cluster signs with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExtendedPublicKey {
    /// SEC1-compressed public key.
    pub public_key: [u8; 33],
    /// Chain code.
    pub chain_code: [u8; 32],
}

impl ExtendedPublicKey {
    pub(super) fn from_hd(epub: &hd_wallet::ExtendedPublicKey<E>) -> Self {
        Self {
            public_key: compressed(&epub.public_key),
            chain_code: epub.chain_code,
        }
    }

    /// Derives the child at a non-hardened `path` (each index below 2^31) with SLIP-10, which
    /// equals BIP32 on secp256k1.
    pub fn derive(&self, path: &[u32]) -> Result<ExtendedPublicKey, MpcError> {
        let public_key = parse_public_key(&self.public_key)?;
        let epub = hd_wallet::ExtendedPublicKey {
            public_key,
            chain_code: self.chain_code,
        };
        Ok(Self::from_hd(&derive_hd(epub, path)?))
    }
}

pub(super) fn non_hardened_path(path: &[u32]) -> Result<Vec<NonHardenedIndex>, MpcError> {
    path.iter()
        .map(|&index| {
            NonHardenedIndex::try_from(index)
                .map_err(|_| MpcError::BadInput(format!("derivation index {index} is hardened")))
        })
        .collect()
}

pub(super) fn derive_hd(
    epub: hd_wallet::ExtendedPublicKey<E>,
    path: &[u32],
) -> Result<hd_wallet::ExtendedPublicKey<E>, MpcError> {
    let path = non_hardened_path(path)?;
    Ok(Slip10::derive_child_public_key_with_path(&epub, path))
}

fn compressed(point: &Point<E>) -> [u8; 33] {
    let mut out = [0u8; 33];
    let encoded = point.to_bytes(true);
    if encoded.len() == out.len() {
        out.copy_from_slice(&encoded);
    }
    out
}

pub(super) fn parse_public_key(bytes: &[u8; 33]) -> Result<Point<E>, MpcError> {
    let point = Point::<E>::from_bytes(bytes)
        .map_err(|_| MpcError::BadInput("public key is not a secp256k1 point".into()))?;
    if point.is_zero() {
        return Err(MpcError::BadInput("public key is the identity".into()));
    }
    Ok(point)
}

#[cfg(test)]
mod tests {
    use cggmp21::generic_ec::Scalar;

    use super::super::testutil::*;
    use super::super::{Keygen, PartialSignature, combine, fixtures};
    use super::*;
    use crate::mpc::envelope::StoredRef;

    #[test]
    fn keygen_2_of_3_and_key_share_storage() {
        let shares = group_2_of_3();
        let epub = shares[0].extended_public_key();
        for (i, share) in (0..).zip(shares) {
            assert_eq!(share.index(), i);
            assert_eq!((share.parties(), share.threshold()), (3, 2));
            assert_eq!(share.extended_public_key(), epub);
            assert_eq!(share.master_public_key(), epub.public_key);
        }
        assert!(matches!(epub.public_key[0], 2 | 3));
        assert_eq!(
            format!("{:?}", shares[1]),
            "SecretKeyShare { i: 1, n: 3, t: 2, .. }"
        );

        // Storage round trip; the loaded share is validated and signs like the original.
        let bytes = shares[1].to_bytes().unwrap();
        let loaded = SecretKeyShare::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.extended_public_key(), epub);
        assert_eq!(*loaded.to_bytes().unwrap(), *bytes);

        // Unknown version and trailing bytes are refused.
        let v2 = encode(&StoredRef {
            version: 2,
            kind: Kind::EcdsaKeyShare.tag(),
            body: &*shares[1].share,
        });
        assert!(matches!(
            SecretKeyShare::from_bytes(&v2),
            Err(MpcError::BadInput(_))
        ));
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(matches!(
            SecretKeyShare::from_bytes(&trailing),
            Err(MpcError::BadInput(_))
        ));
        // A share whose secret does not match its public share fails validation on load.
        let mut dirty = (*shares[1].share).clone().into_inner();
        dirty.core.x = cggmp21::generic_ec::NonZero::<cggmp21::generic_ec::SecretScalar<E>>::one();
        let forged = encode(&StoredRef {
            version: envelope::VERSION,
            kind: Kind::EcdsaKeyShare.tag(),
            body: &dirty,
        });
        assert!(matches!(
            SecretKeyShare::from_bytes(&forged),
            Err(MpcError::BadInput(_))
        ));

        // Another party's auxiliary info does not complete a key share.
        let mut cores = route_ok(
            (0..3)
                .map(|i| Keygen::start(b"keygen again", i, 3, 2).unwrap())
                .collect(),
        );
        let other = fixtures::aux_info(3, 1).unwrap();
        assert!(matches!(
            SecretKeyShare::from_parts(cores.remove(0), other),
            Err(MpcError::BadInput(_))
        ));
    }

    #[test]
    fn hd_derivation_matches_bip32_and_signs() {
        let shares = group_2_of_3();
        let epub = shares[0].extended_public_key();
        let path = [0, 1];

        // Independent BIP32 derivation from the master public key and chain code.
        let attrs = bip32::ExtendedKeyAttrs {
            depth: 0,
            parent_fingerprint: [0; 4],
            child_number: bip32::ChildNumber(0),
            chain_code: epub.chain_code,
        };
        let master = k256::ecdsa::VerifyingKey::from_sec1_bytes(&epub.public_key).unwrap();
        let mut xpub = bip32::XPub::new(master, attrs);
        for index in path {
            xpub = xpub
                .derive_child(bip32::ChildNumber::new(index, false).unwrap())
                .unwrap();
        }
        let bip32_child: [u8; 33] = xpub
            .public_key()
            .to_encoded_point(true)
            .as_bytes()
            .try_into()
            .unwrap();

        let child = shares[1].derive_public_key(&path).unwrap();
        assert_eq!(child, bip32_child);
        let derived = epub.derive(&path).unwrap();
        assert_eq!(derived.public_key, bip32_child);
        assert_eq!(derived.chain_code, xpub.attrs().chain_code);
        assert_ne!(child, epub.public_key);
        assert!(matches!(
            epub.derive(&[1 << 31]),
            Err(MpcError::BadInput(_))
        ));

        // Full signing with the child key.
        let digest = sha256(b"child key, full signing");
        let sigs = route_ok(start_sign(shares, &[1, 2], &path, digest, b"sign hd"));
        k256_verify(&bip32_child, &digest, &sigs[0]);

        // Presignatures bound to the path.
        let digest = sha256(b"child key, presigned");
        let presigs = route_ok(start_presign(shares, &[0, 2], &path, b"presign hd"));
        let partials: Vec<_> = presigs
            .into_iter()
            .map(|p| p.issue_partial_signature(digest, &path).unwrap())
            .collect();
        let sig = combine(&partials, &digest, &bip32_child).unwrap();
        k256_verify(&bip32_child, &digest, &sig);
        assert!(combine(&partials, &digest, &epub.public_key).is_err());
    }

    /// Issue 19: a 2-of-3 key redistributed (`reshare`) to 3-of-3 and back to 2-of-3 signs
    /// under the same key with cggmp21, by quorums of the new threshold only; a share of the old
    /// generation does not sign with new ones.
    #[test]
    fn redistributed_shares_sign_under_the_same_key() {
        use rand::SeedableRng;
        let shares = group_2_of_3();
        let epub = shares[0].extended_public_key();
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([5; 32]);
        let redistribute_as = |old: &[SecretKeyShare],
                               dealers: &[u16],
                               t: u16,
                               claimed: u16,
                               rng: &mut _| {
            let core = |s: &SecretKeyShare| s.share.core.clone();
            let points = reshare::Points::<E>::of_indices(dealers).unwrap();
            let public: Vec<Point<E>> = dealers
                .iter()
                .map(|d| *core(&old[usize::from(*d)]).public_shares[usize::from(*d)])
                .collect();
            let key = *core(&old[0]).shared_public_key;
            let committee =
                reshare::OldCommittee::new(points.clone(), public.clone(), old[0].threshold(), key)
                    .unwrap();
            let new = reshare::Points::<E>::of_indices(&[0, 1, 2]).unwrap();
            let xs: Vec<_> = dealers
                .iter()
                .map(|d| core(&old[usize::from(*d)]).x.clone().into_inner())
                .collect();
            let xs: Vec<_> = xs.iter().collect();
            let news = reshare::testkit::redistribute(rng, &committee, &xs, &new, t).unwrap();
            (0..3u16)
                .zip(news)
                .map(|(j, share)| {
                    let aux = fixtures::aux_info(3, j).unwrap();
                    SecretKeyShare::from_redistributed(j, share, claimed, epub.chain_code, aux)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let redistribute = |old: &[SecretKeyShare], dealers: &[u16], t: u16, rng: &mut _| {
            redistribute_as(old, dealers, t, t, rng).unwrap()
        };
        // Shares dealt at 2 are not taken as a 3-of-3 key (nor dealt at 3 as 2-of-3).
        assert!(matches!(
            redistribute_as(shares, &[0, 1], 2, 3, &mut rng),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            redistribute_as(shares, &[0, 1], 3, 2, &mut rng),
            Err(MpcError::BadInput(_))
        ));
        let three = redistribute(shares, &[0, 2], 3, &mut rng);
        assert_eq!(
            three[1].extended_public_key(),
            epub,
            "same key, same chain code"
        );
        assert_eq!(three[1].threshold(), 3);
        let digest = sha256(b"3-of-3 after a redistribution");
        let sigs = route_ok(start_sign(&three, &[0, 1, 2], &[], digest, b"sign 3-of-3"));
        k256_verify(&epub.public_key, &digest, &sigs[0]);
        // Two parties no longer make a quorum.
        assert!(super::super::Sign::start(b"two", 0, &[0, 1], &three[0], &[], digest).is_err());

        let back = redistribute(&three, &[0, 1, 2], 2, &mut rng);
        let digest = sha256(b"2-of-3 again");
        let sigs = route_ok(start_sign(&back, &[2, 0], &[7], digest, b"sign 2-of-3"));
        k256_verify(&epub.derive(&[7]).unwrap().public_key, &digest, &sigs[0]);
        for (i, (old, new)) in shares.iter().zip(&back).enumerate() {
            // x_i·G: a changed public share is a changed share.
            assert_ne!(
                old.share.core.public_shares[i], new.share.core.public_shares[i],
                "share {i} changed"
            );
        }
        // An old-generation share with a new one: the protocol runs, the signature does not
        // verify (or a party refuses it).
        let dup = |s: &SecretKeyShare| SecretKeyShare {
            share: s.share.clone(),
            epub: s.epub,
        };
        let mixed = [dup(&shares[0]), dup(&back[1])];
        let digest = sha256(b"mixed generations");
        let out = super::super::testutil::route(
            start_sign(&mixed, &[0, 1], &[], digest, b"mixed"),
            |_, _| {},
        );
        use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&epub.public_key).unwrap();
        let verified = out.into_iter().any(|r| {
            r.and_then(Result::ok).is_some_and(|sig| {
                let sig = k256::ecdsa::Signature::from_slice(&sig.to_bytes()).unwrap();
                key.verify_prehash(&digest, &sig).is_ok()
            })
        });
        assert!(!verified, "old and new shares do not sign together");

        // A secret that is not the party's public share, or a threshold the public shares do
        // not fit, is refused.
        let public: Vec<Point<E>> = back[0]
            .share
            .core
            .public_shares
            .iter()
            .map(|p| **p)
            .collect();
        let forged = |secret, public_shares| reshare::NewShare {
            secret,
            commitment: vec![Point::generator().into(); 2],
            public_shares,
            public_key: *back[0].share.core.shared_public_key,
        };
        let random = cggmp21::generic_ec::SecretScalar::<E>::random(&mut rng);
        let aux = || fixtures::aux_info(3, 0).unwrap();
        assert!(matches!(
            SecretKeyShare::from_redistributed(
                0,
                forged(random, public.clone()),
                2,
                [0; 32],
                aux()
            ),
            Err(MpcError::BadInput(_))
        ));
        let x0 = back[0].share.core.x.clone().into_inner();
        let mut swapped = public.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            SecretKeyShare::from_redistributed(0, forged(x0, swapped), 2, [0; 32], aux()),
            Err(MpcError::BadInput(_))
        ));
    }

    /// Writes today's storage encodings (a key share and a partial signature) to
    /// `src/mpc/testdata/`, so later versions can prove they still decode them.
    #[test]
    #[ignore = "writes the committed legacy storage fixtures"]
    fn generate_storage_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mpc/testdata");
        std::fs::create_dir_all(&dir).unwrap();
        let shares = group_2_of_3();
        let epub = shares[1].extended_public_key();
        std::fs::write(
            dir.join("ecdsa-key-share-v1.bin"),
            &*shares[1].to_bytes().unwrap(),
        )
        .unwrap();
        let hexs = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        std::fs::write(
            dir.join("ecdsa-key-share-v1.txt"),
            format!(
                "index 1\nparties 3\nthreshold 2\npublic_key {}\nchain_code {}\n",
                hexs(&epub.public_key),
                hexs(&epub.chain_code)
            ),
        )
        .unwrap();
        let partial = PartialSignature {
            signer: 1,
            r: Scalar::from(7u64),
            sigma: Scalar::from(11u64),
        };
        let bytes = partial.to_bytes().unwrap();
        println!("partial signature: {}", hexs(&bytes));
        std::fs::write(
            dir.join("ecdsa-partial-signature-v1.hex"),
            hexs(&bytes) + "\n",
        )
        .unwrap();
    }

    /// A key share written by the version before the shared storage envelope still loads, to
    /// the same values, and is written back byte for byte.
    #[test]
    fn legacy_key_share_fixture_decodes() {
        let bytes = include_bytes!("../testdata/ecdsa-key-share-v1.bin");
        let expected = include_str!("../testdata/ecdsa-key-share-v1.txt");
        let share = SecretKeyShare::from_bytes(bytes).unwrap();
        let epub = share.extended_public_key();
        let hexs = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let actual = format!(
            "index {}\nparties {}\nthreshold {}\npublic_key {}\nchain_code {}\n",
            share.index(),
            share.parties(),
            share.threshold(),
            hexs(&epub.public_key),
            hexs(&epub.chain_code)
        );
        assert_eq!(actual, expected);
        assert_eq!(share.to_bytes().unwrap().as_slice(), bytes.as_slice());
    }

    /// A partial signature written by the version before the shared envelope still decodes.
    #[test]
    fn legacy_partial_signature_fixture_decodes() {
        let text = include_str!("../testdata/ecdsa-partial-signature-v1.hex");
        let bytes = hex::decode(text.trim()).unwrap();
        let partial = PartialSignature::from_bytes(&bytes).unwrap();
        assert_eq!(
            partial,
            PartialSignature {
                signer: 1,
                r: Scalar::from(7u64),
                sigma: Scalar::from(11u64),
            }
        );
        assert_eq!(partial.to_bytes().unwrap(), bytes);
    }
}
