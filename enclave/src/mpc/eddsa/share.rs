//! A party's Ed25519 key share from the DKG: its validation and its storage.

use std::collections::BTreeMap;
use std::fmt;

use frost_ed25519::keys::{
    KeyPackage, PublicKeyPackage, VerifiableSecretSharingCommitment, VerifyingShare,
};
use serde::{Deserialize, Serialize};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::{PUBLIC_KEY_LEN, commitment_len, frost_reason, hex, identifier};
use crate::mpc::envelope::{self, Format, Kind};
use crate::mpc::{MpcError, PartyIndex};

/// A party's Ed25519 key share from the DKG: its FROST key package, the group's public key
/// package and the DKG commitments they derive from, with the party's index, `n` and `t`.
///
/// Every value of this type is validated: the verifying share matches the signing share, the
/// public key package is the one the DKG commitments define, and the group key of the key
/// package is the package's. The signing share is zeroized on drop (by FROST's `KeyPackage`).
pub struct SecretEddsaShare {
    pub(super) index: PartyIndex,
    pub(super) parties: u16,
    pub(super) threshold: u16,
    pub(super) key_package: KeyPackage,
    pub(super) public_key_package: PublicKeyPackage,
    /// Every party's round-1 VSS commitment, by party index: they determine the public key
    /// package, so a stored share can be checked in full.
    pub(super) dkg_commitments: Vec<VerifiableSecretSharingCommitment>,
    pub(super) public_key: [u8; PUBLIC_KEY_LEN],
}

// The only secret, the key package's signing share, zeroizes itself on drop.
impl ZeroizeOnDrop for SecretEddsaShare {}

impl fmt::Debug for SecretEddsaShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretEddsaShare")
            .field("group_public_key", &hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

/// Stored body: borrowing the share's parts when writing, owning them when reading.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredShareV1<K, P, C> {
    index: PartyIndex,
    parties: u16,
    threshold: u16,
    key_package: K,
    public_key_package: P,
    dkg_commitments: C,
}

/// The stored body as read.
type OwnedShareV1 =
    StoredShareV1<KeyPackage, PublicKeyPackage, Vec<VerifiableSecretSharingCommitment>>;

impl SecretEddsaShare {
    /// Builds a share after checking that all its parts agree (see the type's docs).
    pub(super) fn validated(
        index: PartyIndex,
        parties: u16,
        threshold: u16,
        key_package: KeyPackage,
        public_key_package: PublicKeyPackage,
        dkg_commitments: Vec<VerifiableSecretSharingCommitment>,
    ) -> Result<Self, String> {
        if threshold < 2 || threshold > parties || index >= parties {
            return Err(format!(
                "inconsistent parameters: index {index}, {parties} parties, threshold {threshold}"
            ));
        }
        let my_id = identifier(index).map_err(|e| e.to_string())?;
        if *key_package.identifier() != my_id {
            return Err("key package identifier does not match the party index".into());
        }
        if *key_package.min_signers() != threshold {
            return Err("key package threshold does not match".into());
        }
        if VerifyingShare::from(*key_package.signing_share()) != *key_package.verifying_share() {
            return Err("verifying share does not match the signing share".into());
        }
        // One commitment per party (a DKG), or one for the whole key (a redistribution: the
        // dealers' commitments summed, docs/resharing.md).
        if dkg_commitments.len() != usize::from(parties) && dkg_commitments.len() != 1 {
            return Err("wrong number of dkg commitments".into());
        }
        let mut by_id = BTreeMap::new();
        for (party, commitment) in (0..parties).zip(&dkg_commitments) {
            if commitment_len(commitment) != Some(usize::from(threshold)) {
                return Err(format!(
                    "dkg commitment of party {party} has a wrong length"
                ));
            }
            by_id.insert(identifier(party).map_err(|e| e.to_string())?, commitment);
        }
        let derived = if dkg_commitments.len() == 1 {
            let ids = (0..parties)
                .map(identifier)
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            PublicKeyPackage::from_commitment(&ids, &dkg_commitments[0])
        } else {
            PublicKeyPackage::from_dkg_commitments(&by_id)
        }
        .map_err(|e| format!("dkg commitments: {}", frost_reason(&e)))?;
        if derived != public_key_package {
            return Err("public key package does not match the dkg commitments".into());
        }
        if key_package.verifying_key() != public_key_package.verifying_key() {
            return Err("group key does not match the public key package".into());
        }
        if public_key_package.verifying_shares().get(&my_id) != Some(key_package.verifying_share())
        {
            return Err("verifying share does not match the public key package".into());
        }
        let public_key = public_key_package
            .verifying_key()
            .serialize()
            .ok()
            .and_then(|bytes| <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).ok())
            .ok_or("group key does not serialize to 32 bytes")?;
        Ok(Self {
            index,
            parties,
            threshold,
            key_package,
            public_key_package,
            dkg_commitments,
            public_key,
        })
    }

    /// A share from a redistribution (`docs/resharing.md`; an import or a resharing): this
    /// party's new share at `index` among `n` parties at identifiers `1..=n`, with the new
    /// polynomial's commitment (stored as the share's one VSS commitment) and the new
    /// `threshold`. Validated as a DKG's share is.
    pub fn from_redistributed(
        index: PartyIndex,
        new: reshare::NewShare<reshare::generic_ec::curves::Ed25519>,
        threshold: u16,
    ) -> Result<Self, MpcError> {
        use frost_ed25519::VerifyingKey;
        use frost_ed25519::keys::SigningShare;
        let bad = |what: &str| MpcError::BadInput(format!("redistributed share: {what}"));
        let parties = u16::try_from(new.public_shares.len()).map_err(|_| bad("too many"))?;
        let commitment = VerifiableSecretSharingCommitment::deserialize(
            new.commitment
                .iter()
                .map(|p| p.to_bytes(true).as_ref().to_vec()),
        )
        .map_err(|e| bad(&frost_reason(&e)))?;
        let key = new.public_key.to_bytes(true);
        let verifying_key =
            VerifyingKey::deserialize(key.as_ref()).map_err(|e| bad(&frost_reason(&e)))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        let mut encoded = new.secret.as_ref().to_le_bytes();
        secret.copy_from_slice(encoded.as_ref());
        zeroize::Zeroize::zeroize(encoded.as_mut());
        let signing_share =
            SigningShare::deserialize(secret.as_slice()).map_err(|e| bad(&frost_reason(&e)))?;
        let key_package = KeyPackage::new(
            identifier(index)?,
            signing_share,
            VerifyingShare::from(signing_share),
            verifying_key,
            threshold,
        );
        let ids = (0..parties).map(identifier).collect::<Result<_, _>>()?;
        let public_key_package = PublicKeyPackage::from_commitment(&ids, &commitment)
            .map_err(|e| bad(&frost_reason(&e)))?;
        Self::validated(
            index,
            parties,
            threshold,
            key_package,
            public_key_package,
            vec![commitment],
        )
        .map_err(|reason| bad(&reason))
    }

    /// The share as a dealer of a resharing uses it: FROST's scalars and points read into
    /// `generic-ec`'s Ed25519 (party `i` at identifier `i + 1`).
    pub fn held(&self) -> Result<crate::mpc::Held<reshare::generic_ec::curves::Ed25519>, MpcError> {
        use reshare::generic_ec::{Point, Scalar, SecretScalar};
        let bad = |what: &str| MpcError::Internal(format!("the key share's {what} do not convert"));
        let bytes = Zeroizing::new(self.key_package.signing_share().serialize());
        let mut scalar = Scalar::from_le_bytes(bytes.as_slice()).map_err(|_| bad("secret"))?;
        let secret = SecretScalar::new(&mut scalar);
        let shares = self.public_key_package.verifying_shares();
        let public_shares = (0..self.parties)
            .map(|party| {
                let share = shares
                    .get(&identifier(party)?)
                    .ok_or_else(|| bad("public shares"))?;
                let encoded = share.serialize().map_err(|_| bad("public shares"))?;
                Point::from_bytes(&encoded).map_err(|_| bad("public shares"))
            })
            .collect::<Result<Vec<_>, MpcError>>()?;
        let public_key = Point::from_bytes(self.public_key).map_err(|_| bad("group key"))?;
        Ok(crate::mpc::Held {
            secret,
            public_shares,
            public_key,
        })
    }

    /// The group's Ed25519 public key (32 bytes, the standard compressed encoding).
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public_key
    }

    /// This party's index.
    pub fn index(&self) -> PartyIndex {
        self.index
    }

    /// The number of parties holding shares (`n`).
    pub fn parties(&self) -> u16 {
        self.parties
    }

    /// The number of parties needed to sign (`t`).
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// The group's public key package (group key and every party's verifying share).
    pub fn public_key_package(&self) -> &PublicKeyPackage {
        &self.public_key_package
    }

    /// Serializes the share for storage (versioned CBOR). The bytes contain the secret share:
    /// they are zeroized when dropped and must be stored encrypted.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        self.encode(Format::V1)
    }

    fn encode(&self, format: Format) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        let stored = StoredShareV1 {
            index: self.index,
            parties: self.parties,
            threshold: self.threshold,
            key_package: &self.key_package,
            public_key_package: &self.public_key_package,
            dkg_commitments: &self.dkg_commitments,
        };
        envelope::encode_as(format, Kind::EddsaKeyShare, &stored)
    }

    /// Decodes and validates a share produced by [`SecretEddsaShare::to_bytes`] (or by a version
    /// that wrote the older `FrostEd25519V1` layout). Unknown versions, unknown fields, trailing
    /// bytes and inconsistent shares are rejected with [`MpcError::BadInput`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let (v1, format): (OwnedShareV1, Format) = envelope::decode(Kind::EddsaKeyShare, bytes)?;
        let share = Self::validated(
            v1.index,
            v1.parties,
            v1.threshold,
            v1.key_package,
            v1.public_key_package,
            v1.dkg_commitments,
        )
        .map_err(|reason| MpcError::BadInput(format!("invalid eddsa share: {reason}")))?;
        // Only the canonical encoding is accepted, so one share has one encoding.
        if share.encode(format)?.as_slice() != bytes {
            return Err(MpcError::BadInput(
                "non-canonical encoding of the eddsa share".into(),
            ));
        }
        Ok(share)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::super::testutil::*;
    use super::super::{Dkg, Sign};
    use super::*;

    #[test]
    fn share_round_trips_and_corruption_is_rejected() {
        let shares = run_dkg(3, 2);
        let bytes = shares[1].to_bytes().expect("encodes");
        let restored = SecretEddsaShare::from_bytes(&bytes).expect("decodes");
        assert_eq!(restored.public_key(), shares[1].public_key());
        assert_eq!(restored.index(), 1);
        assert_eq!(restored.key_package, shares[1].key_package);
        assert_eq!(
            restored.public_key_package(),
            shares[1].public_key_package()
        );
        assert_eq!(
            *restored.to_bytes().expect("encodes"),
            *bytes,
            "stable encoding"
        );
        let restored_all: Vec<SecretEddsaShare> = shares
            .iter()
            .map(|s| {
                SecretEddsaShare::from_bytes(&s.to_bytes().expect("encodes")).expect("decodes")
            })
            .collect();
        sign_and_check(&restored_all, &[1, 2], b"after restore");

        // Any single flipped bit is caught (decoding, parameters or consistency checks).
        for pos in 0..bytes.len() {
            let mut corrupted = bytes.to_vec();
            corrupted[pos] ^= 0x01;
            let err = expect_err(SecretEddsaShare::from_bytes(&corrupted));
            assert!(matches!(err, MpcError::BadInput(_)), "byte {pos}: {err}");
        }
        assert!(SecretEddsaShare::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(SecretEddsaShare::from_bytes(&trailing).is_err());

        // A signing share that is not the one the verifying share commits to.
        let kp = &shares[1].key_package;
        let other = *shares[2].key_package.signing_share();
        let swapped = KeyPackage::new(
            *kp.identifier(),
            other,
            *kp.verifying_share(),
            *kp.verifying_key(),
            2,
        );
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            swapped,
            shares[1].public_key_package.clone(),
            shares[1].dkg_commitments.clone(),
        );
        assert!(err.is_err_and(|e| e.contains("signing share")));

        // A public key package of another group.
        let others = run_dkg(3, 2);
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            kp.clone(),
            others[1].public_key_package.clone(),
            shares[1].dkg_commitments.clone(),
        );
        assert!(err.is_err());
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            kp.clone(),
            others[1].public_key_package.clone(),
            others[1].dkg_commitments.clone(),
        );
        assert!(err.is_err_and(|e| e.contains("group key") || e.contains("verifying share")));
    }

    /// Issue 19: a 2-of-3 key redistributed (`reshare`) to 3-of-3 and back signs under the
    /// same key with FROST, the stored share round-trips, and quorums of the old threshold no
    /// longer sign.
    #[test]
    fn redistributed_shares_sign_under_the_same_key() {
        use rand::SeedableRng;
        use reshare::generic_ec::curves::Ed25519;
        use reshare::generic_ec::{Point, Scalar, SecretScalar};
        let shares = run_dkg(3, 2);
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
        let redistribute = |old: &[SecretEddsaShare], dealers: &[u16], t: u16, rng: &mut _| {
            let secret = |s: &SecretEddsaShare| {
                let mut x =
                    Scalar::<Ed25519>::from_le_bytes(s.key_package.signing_share().serialize())
                        .unwrap();
                SecretScalar::new(&mut x)
            };
            let point = |b: Vec<u8>| Point::<Ed25519>::from_bytes(b).unwrap();
            let points = reshare::Points::<Ed25519>::of_indices(dealers).unwrap();
            let public: Vec<_> = dealers
                .iter()
                .map(|d| {
                    point(
                        old[usize::from(*d)]
                            .key_package
                            .verifying_share()
                            .serialize()
                            .unwrap(),
                    )
                })
                .collect();
            let key = point(old[0].public_key().to_vec());
            let committee =
                reshare::OldCommittee::new(points.clone(), public.clone(), old[0].threshold(), key)
                    .unwrap();
            let new = reshare::Points::<Ed25519>::of_indices(&[0, 1, 2]).unwrap();
            let xs: Vec<_> = dealers
                .iter()
                .map(|d| secret(&old[usize::from(*d)]))
                .collect();
            let xs: Vec<_> = xs.iter().collect();
            let news = reshare::testkit::redistribute(rng, &committee, &xs, &new, t).unwrap();
            (0..3u16)
                .zip(news)
                .map(|(j, share)| SecretEddsaShare::from_redistributed(j, share, t).unwrap())
                .collect::<Vec<_>>()
        };
        let three = redistribute(&shares, &[2, 0], 3, &mut rng);
        assert_eq!(three[0].public_key(), shares[0].public_key());
        assert_eq!(three[2].threshold(), 3);
        sign_and_check(&three, &[0, 1, 2], b"3-of-3 after a redistribution");
        assert!(Sign::start(&three[0], SESSION, &[0, 1], b"two", &mut OsRng).is_err());
        let stored = three[1].to_bytes().unwrap();
        let loaded = SecretEddsaShare::from_bytes(&stored).unwrap();
        assert_eq!(loaded.public_key_package(), three[1].public_key_package());

        let back = redistribute(&three, &[0, 1, 2], 2, &mut rng);
        sign_and_check(&back, &[2, 0], b"2-of-3 again");
        for (old, new) in shares.iter().zip(&back) {
            assert_ne!(
                old.key_package.signing_share().serialize(),
                new.key_package.signing_share().serialize(),
                "every share changed"
            );
        }
    }

    #[test]
    fn debug_output_is_redacted() {
        let shares = run_dkg(3, 2);
        let secret = hex(&shares[0].key_package.signing_share().serialize());
        let share_debug = format!("{:?}", shares[0]);
        assert!(share_debug.contains(&hex(&shares[0].public_key())));
        assert!(!share_debug.contains(&secret));
        let (dkg, _) = Dkg::start(SESSION, 0, 3, 2, &mut OsRng).expect("start");
        let (sign, _) = Sign::start(&shares[0], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        for text in [format!("{dkg:?}"), format!("{sign:?}")] {
            assert!(!text.contains(&secret));
        }
    }

    #[test]
    fn storage_snapshots() {
        // A stored share written by this version stays readable and keeps its encoding.
        let shares = seeded_dkg();
        let bytes = shares[0].to_bytes().expect("encodes");
        assert_eq!(hex(&bytes), SHARE_FIXTURE_V1);
        let loaded = SecretEddsaShare::from_bytes(&bytes).expect("fixture decodes");
        assert_eq!(hex(&loaded.public_key()), SHARE_FIXTURE_PUBLIC_KEY);

        // A share stored in the legacy layout (every version before the shared envelope) still
        // loads, to the same share, and its layout is unchanged.
        let legacy = shares[0]
            .encode(Format::LegacyFrostEd25519V1)
            .expect("encodes");
        assert_eq!(hex(&legacy), SHARE_FIXTURE);
        let fixture = hex::decode(SHARE_FIXTURE).expect("hex");
        let loaded = SecretEddsaShare::from_bytes(&fixture).expect("fixture decodes");
        assert_eq!(hex(&loaded.public_key()), SHARE_FIXTURE_PUBLIC_KEY);
        assert_eq!(loaded.key_package, shares[0].key_package);
        assert_eq!(loaded.public_key_package, shares[0].public_key_package);
        assert_eq!(loaded.dkg_commitments, shares[0].dkg_commitments);
        assert_eq!(
            (loaded.index(), loaded.parties(), loaded.threshold()),
            (0, 3, 2)
        );
        // Legacy bytes with a trailing byte are refused as before.
        let mut trailing = fixture.clone();
        trailing.push(0);
        assert!(SecretEddsaShare::from_bytes(&trailing).is_err());
    }

    const SHARE_FIXTURE_V1: &str = concat!(
        "a36776657273696f6e01646b696e647766726f73742d656432353531392f6b65792d736861726564626f6479",
        "a665696e64657800677061727469657303697468726573686f6c64026b6b65795f7061636b616765a6666865",
        "61646572a26776657273696f6e006b63697068657273756974658418b1186918f018da6a6964656e74696669",
        "6572982001000000000000000000000000000000000000000000000000000000000000006d7369676e696e67",
        "5f736861726598201835186718a3184618191830186c1018f318f2181b187a188718d918be18381899184e18",
        "6318f518cb1859182618c51828182318f5187f1886182318830f6f766572696679696e675f73686172659820",
        "18c818cd18be10189d141318280c18a518e4188d18f618f118591855184f18e118d1185818b70f1868061899",
        "1518d918dc18ad18e618e0182e6d766572696679696e675f6b65799820189b18ba04184d18c0185b18e418ae",
        "184f1888185e0918e6183718de18fe18bf18bc188118940118d118cb18e7188d18bb18ac1886185418cc1318",
        "b46b6d696e5f7369676e65727302727075626c69635f6b65795f7061636b616765a466686561646572a26776",
        "657273696f6e006b63697068657273756974658418b1186918f018da70766572696679696e675f7368617265",
        "73a398200100000000000000000000000000000000000000000000000000000000000000982018c818cd18be",
        "10189d141318280c18a518e4188d18f618f118591855184f18e118d1185818b70f18680618991518d918dc18",
        "ad18e618e0182e9820020000000000000000000000000000000000000000000000000000000000000098200a",
        "18da1853185018e41898189018fc1818181b18480f183a09188418de186e18771844183618fd1849187c18ab",
        "1869181b18181877182a189218d218bb98200300000000000000000000000000000000000000000000000000",
        "0000000000009820184e182e18f5183c1867186b184f185d183e18c2184f14183118d718f6189418b2182c18",
        "98181d1829181c1218700018a918e318a2185f1866182018296d766572696679696e675f6b65799820189b18",
        "ba04184d18c0185b18e418ae184f1888185e0918e6183718de18fe18bf18bc188118940118d118cb18e7188d",
        "18bb18ac1886185418cc1318b46b6d696e5f7369676e657273026f646b675f636f6d6d69746d656e74738382",
        "982018f818ea1820188d18f80e182e0018fb18330418251859183d18f218d7186b189e181818460e18750f18",
        "33182f185818fe18dc1881181f187d18499820181d18d205182e18c618fa188918e918ba184a182718590b18",
        "53183d187f18db050e11189b185d182818c618af1840183818c618d80b18b918488298201851184218ba184c",
        "18ca18b00f18a1189f182418d918b01898182618671894182818f9187e18d5188918b318af18d118c218c218",
        "83181c18b8181f186018bd9820185a1896189a186118eb185b0818cf186b187418c7189918b00018b818f918",
        "7d18b2188205183118ed090518df187e18fe18a41218d1188b0d82982018cb1831185b185118340a18be1859",
        "189f188818b01865187018361857184b1819184718921860187018fd188218c018c3189d18d51870185c18ec",
        "1118e89820184518e418f4182918361877187d18b3188118ae18ee18cd18231860189118de187118ff184818",
        "4d18bb184218ac1830183e186918c71892182e183d18a417",
    );
    const SHARE_FIXTURE: &str = concat!(
        "a16e46726f7374456432353531395631a665696e64657800677061727469657303697468726573686f6c6402",
        "6b6b65795f7061636b616765a666686561646572a26776657273696f6e006b63697068657273756974658418",
        "b1186918f018da6a6964656e7469666965729820010000000000000000000000000000000000000000000000",
        "00000000000000006d7369676e696e675f736861726598201835186718a3184618191830186c1018f318f218",
        "1b187a188718d918be18381899184e186318f518cb1859182618c51828182318f5187f1886182318830f6f76",
        "6572696679696e675f7368617265982018c818cd18be10189d141318280c18a518e4188d18f618f118591855",
        "184f18e118d1185818b70f18680618991518d918dc18ad18e618e0182e6d766572696679696e675f6b657998",
        "20189b18ba04184d18c0185b18e418ae184f1888185e0918e6183718de18fe18bf18bc188118940118d118cb",
        "18e7188d18bb18ac1886185418cc1318b46b6d696e5f7369676e65727302727075626c69635f6b65795f7061",
        "636b616765a466686561646572a26776657273696f6e006b63697068657273756974658418b1186918f018da",
        "70766572696679696e675f736861726573a39820010000000000000000000000000000000000000000000000",
        "0000000000000000982018c818cd18be10189d141318280c18a518e4188d18f618f118591855184f18e118d1",
        "185818b70f18680618991518d918dc18ad18e618e0182e982002000000000000000000000000000000000000",
        "0000000000000000000000000098200a18da1853185018e41898189018fc1818181b18480f183a09188418de",
        "186e18771844183618fd1849187c18ab1869181b18181877182a189218d218bb982003000000000000000000",
        "000000000000000000000000000000000000000000009820184e182e18f5183c1867186b184f185d183e18c2",
        "184f14183118d718f6189418b2182c1898181d1829181c1218700018a918e318a2185f1866182018296d7665",
        "72696679696e675f6b65799820189b18ba04184d18c0185b18e418ae184f1888185e0918e6183718de18fe18",
        "bf18bc188118940118d118cb18e7188d18bb18ac1886185418cc1318b46b6d696e5f7369676e657273026f64",
        "6b675f636f6d6d69746d656e74738382982018f818ea1820188d18f80e182e0018fb18330418251859183d18",
        "f218d7186b189e181818460e18750f1833182f185818fe18dc1881181f187d18499820181d18d205182e18c6",
        "18fa188918e918ba184a182718590b1853183d187f18db050e11189b185d182818c618af1840183818c618d8",
        "0b18b918488298201851184218ba184c18ca18b00f18a1189f182418d918b01898182618671894182818f918",
        "7e18d5188918b318af18d118c218c21883181c18b8181f186018bd9820185a1896189a186118eb185b0818cf",
        "186b187418c7189918b00018b818f9187d18b2188205183118ed090518df187e18fe18a41218d1188b0d8298",
        "2018cb1831185b185118340a18be1859189f188818b01865187018361857184b1819184718921860187018fd",
        "188218c018c3189d18d51870185c18ec1118e89820184518e418f4182918361877187d18b3188118ae18ee18",
        "cd18231860189118de187118ff1848184d18bb184218ac1830183e186918c71892182e183d18a417",
    );

    const SHARE_FIXTURE_PUBLIC_KEY: &str =
        "9bba044dc05be4ae4f885e09e637defebfbc819401d1cbe78dbbac8654cc13b4";
}
