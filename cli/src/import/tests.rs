//! The tss-lib readers on real tss-lib save files (`cli/tests/vectors/tss-lib`, 5 holders, any
//! 3 sign), their redistribution to a 2-of-3 cluster, and every bad input a typed error.

#![allow(clippy::unwrap_used)]

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reshare::OldCommittee;
use reshare::generic_ec::curves::{Ed25519, Secp256k1};

use super::tsslib::{parse_ecdsa, parse_eddsa, quote_numbers};
use super::*;

fn vector(scheme: &str, i: usize) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/vectors/tss-lib/{scheme}/keygen_data_{i}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn ecdsa(which: &[usize]) -> Vec<LegacyShare<Secp256k1>> {
    which
        .iter()
        .map(|i| parse_ecdsa(&vector("ecdsa", *i)).unwrap())
        .collect()
}

fn eddsa(which: &[usize]) -> Vec<LegacyShare<Ed25519>> {
    which
        .iter()
        .map(|i| parse_eddsa(&vector("eddsa", *i)).unwrap())
        .collect()
}

/// The checked holders deal to a 2-of-3 cluster (nodes at 1, 2, 3); returns the new shares.
fn import<E: Curve>(holders: &Holders<E>) -> Vec<reshare::NewShare<E>> {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let cluster = Points::<E>::of_indices(&[0, 1, 2]).unwrap();
    let old = OldCommittee::new(
        holders.dealers.clone(),
        holders.dealer_public_shares(),
        holders.threshold,
        holders.public_key(),
    )
    .unwrap();
    let shares: Vec<_> = holders.shares.iter().map(|s| &s.share).collect();
    reshare::testkit::redistribute(&mut rng, &old, &shares, &cluster, 2).unwrap()
}

/// Test-only: the key two new shares (nodes `a`, `b`) give.
fn whole<E: Curve>(new: &[reshare::NewShare<E>], a: usize, b: usize) -> Scalar<E> {
    let pts = Points::<E>::of_indices(&[a as u16, b as u16]).unwrap();
    pts.lagrange_at_zero(0).unwrap() * &new[a].secret
        + pts.lagrange_at_zero(1).unwrap() * &new[b].secret
}

#[test]
fn tss_lib_ecdsa_shares_import_into_a_two_of_three_cluster() {
    let file = vector("ecdsa", 0);
    let own = parse_ecdsa(&file).unwrap();
    // The key as an independent library reads it: ECDSAPub's coordinates, SEC1-encoded.
    let coords: serde_json::Value = serde_json::from_str(&quote_numbers(&file).unwrap()).unwrap();
    let xy = |k: &str| {
        num_bigint::BigUint::parse_bytes(
            coords["ECDSAPub"]["Coords"][if k == "x" { 0 } else { 1 }]
                .as_str()
                .unwrap()
                .as_bytes(),
            10,
        )
        .unwrap()
        .to_bytes_be()
    };
    let mut sec1 = vec![4u8];
    for k in ["x", "y"] {
        let b = xy(k);
        sec1.extend(std::iter::repeat_n(0, 32 - b.len()));
        sec1.extend(b);
    }
    let legacy = k256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    assert_eq!(own.public_key.to_bytes(false).as_ref(), sec1.as_slice());
    assert_eq!(own.points.len(), 5);

    for which in [[0, 1, 2], [2, 3, 4], [4, 0, 2]] {
        let holders = Holders::check(ecdsa(&which)).unwrap();
        assert_eq!(holders.threshold, 3, "tss-lib threshold 2: 3 signers");
        let new = import(&holders);
        for n in &new {
            assert_eq!(n.public_key, own.public_key, "the key is unchanged");
        }
        // Any two of the three cluster shares give the legacy key (checked with k256).
        for (a, b) in [(0, 1), (1, 2), (0, 2)] {
            let x = whole(&new, a, b);
            let sk = k256::SecretKey::from_slice(x.to_be_bytes().as_ref()).unwrap();
            assert_eq!(sk.public_key(), legacy);
        }
    }
}

#[test]
fn tss_lib_eddsa_shares_import_into_a_two_of_three_cluster() {
    let own = parse_eddsa(&vector("eddsa", 1)).unwrap();
    // The key as ed25519-dalek reads its encoding.
    let enc: [u8; 32] = own.public_key.to_bytes(true).as_ref().try_into().unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&enc).unwrap();
    for which in [[0, 1, 2], [1, 3, 4], [4, 2, 0]] {
        let holders = Holders::check(eddsa(&which)).unwrap();
        assert_eq!(holders.threshold, 3);
        let new = import(&holders);
        for (a, b) in [(0, 1), (1, 2), (0, 2)] {
            assert_eq!(
                Point::generator() * whole(&new, a, b),
                own.public_key,
                "nodes {a} and {b} hold the legacy key"
            );
        }
    }
}

#[test]
fn bad_holder_sets_are_typed_errors_that_name_the_holder() {
    // The same holder twice.
    assert_eq!(
        Holders::check(ecdsa(&[0, 1, 1])).unwrap_err(),
        ImportError::DuplicateHolder {
            first: 1,
            second: 2
        }
    );
    // Fewer holders than the legacy threshold.
    assert_eq!(
        Holders::check(ecdsa(&[3, 1])).unwrap_err(),
        ImportError::TooFewHolders { got: 2, need: 3 }
    );
    assert_eq!(
        Holders::check(Vec::<LegacyShare<Secp256k1>>::new()).unwrap_err(),
        ImportError::NoShares
    );
    // A share of another key among them.
    let mut mixed = ecdsa(&[0, 1]);
    let mut other = ecdsa(&[2]).pop().unwrap();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut x = Scalar::<Secp256k1>::random(&mut rng);
    other.public_key = Point::generator() * x;
    other.share = SecretScalar::new(&mut x);
    mixed.push(other);
    assert_eq!(
        Holders::check(mixed).unwrap_err(),
        ImportError::MixedKeys { holder: 2 }
    );
    // A tampered Xi: the file still parses, its share no longer matches its public share.
    let file = vector("ecdsa", 4);
    let own = parse_ecdsa(&file).unwrap();
    let mut tampered = parse_ecdsa(&file).unwrap();
    let mut x = Scalar::<Secp256k1>::one() + &own.share;
    tampered.share = SecretScalar::new(&mut x);
    let mut shares = ecdsa(&[0, 1]);
    shares.insert(1, tampered);
    assert_eq!(
        Holders::check(shares).unwrap_err(),
        ImportError::ShareMismatch { holder: 1 }
    );
    // Legacy public shares that do not interpolate to the key: holder 4's public share
    // replaced by holder 3's, in every file alike.
    let mut swapped = ecdsa(&[0, 1, 2]);
    for s in &mut swapped {
        s.public_shares[4] = s.public_shares[3];
    }
    assert_eq!(
        Holders::check(swapped).unwrap_err(),
        ImportError::Inconsistent
    );
}

#[test]
fn bad_files_are_typed_errors() {
    let file = vector("ecdsa", 2);
    // Truncated.
    assert!(matches!(
        parse_ecdsa(&file[..file.len() / 2]).unwrap_err(),
        ImportError::Malformed(_)
    ));
    assert!(matches!(
        parse_ecdsa("").unwrap_err(),
        ImportError::Malformed(_)
    ));
    // Of the other scheme.
    assert!(matches!(
        parse_eddsa(&file).unwrap_err(),
        ImportError::Format(_)
    ));
    assert!(matches!(
        parse_ecdsa(&vector("eddsa", 0)).unwrap_err(),
        ImportError::Format(_)
    ));
    // Of another curve.
    assert_eq!(
        parse_ecdsa(&file.replace("\"secp256k1\"", "\"P-256\"")).unwrap_err(),
        ImportError::Curve {
            want: "secp256k1",
            got: "P-256".into()
        }
    );
    // Not a tss-lib file at all; a fractional number; a coordinate off the curve.
    assert!(matches!(
        parse_ecdsa("{\"Xi\": \"1\"}").unwrap_err(),
        ImportError::Malformed(_)
    ));
    assert!(matches!(
        parse_ecdsa(&file.replacen("\"Xi\": ", "\"Xi\": 1.5, \"Ignored\": ", 1)).unwrap_err(),
        ImportError::Malformed(_)
    ));
    let eddsa = vector("eddsa", 0);
    let own = parse_eddsa(&eddsa).unwrap();
    let v: serde_json::Value = serde_json::from_str(&quote_numbers(&eddsa).unwrap()).unwrap();
    let x = v["EDDSAPub"]["Coords"][0].as_str().unwrap().to_string();
    // x + 2: the same parity (the encoding alone would not notice), off the curve.
    let x2 = (num_bigint::BigUint::parse_bytes(x.as_bytes(), 10).unwrap() + 2u8).to_string();
    let err = parse_eddsa(&eddsa.replace(&x, &x2)).unwrap_err();
    assert!(
        matches!(err, ImportError::Malformed(ref m) if m.contains("not a point")),
        "{err}"
    );
    assert_eq!(own.points.len(), 5);
}

#[test]
fn numbers_are_quoted_outside_strings_only() {
    let q = quote_numbers(r#"{"a1": 12345678901234567890123, "s": "x\"9", "l": [0, 7]}"#);
    assert_eq!(
        q.unwrap().as_str(),
        r#"{"a1": "12345678901234567890123", "s": "x\"9", "l": ["0", "7"]}"#
    );
    assert!(quote_numbers("[-7]").is_err());
    assert!(quote_numbers("[1e5]").is_err());
    assert!(quote_numbers("[2.5]").is_err());
}

#[test]
fn shares_stay_out_of_debug_output() {
    let own = parse_ecdsa(&vector("ecdsa", 0)).unwrap();
    let shown = format!("{own:?}");
    assert!(shown.contains("redacted"), "{shown}");
    let v: serde_json::Value =
        serde_json::from_str(&quote_numbers(&vector("ecdsa", 0)).unwrap()).unwrap();
    assert!(!shown.contains(v["Xi"].as_str().unwrap()));
}

#[test]
fn cggmp21_shares_from_its_trusted_dealer_import() {
    use super::cggmp21::parse_cggmp21;
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    // Shares at random points, as another deployment may hold them, with a chain code.
    let shares = key_share::trusted_dealer::builder::<Secp256k1>(5)
        .set_threshold(Some(3))
        .hd_wallet(true)
        .generate_shares_at_random(&mut rng)
        .unwrap();
    let json: Vec<String> = shares
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    let parsed: Vec<_> = [4, 1, 2]
        .iter()
        .map(|i| parse_cggmp21(&json[*i]).unwrap())
        .collect();
    let key = parsed[0].public_key;
    assert_eq!(key, *shares[0].shared_public_key);
    assert_eq!(parsed[0].chain_code, shares[0].chain_code);
    assert!(parsed[0].chain_code.is_some());
    // The request keeps the files' chain code; another one given is refused (derived keys and
    // addresses would change), the same one is taken.
    let legacy = LegacyKey::of_shares(&parsed).unwrap();
    let positions: Vec<usize> = parsed.iter().map(|s| s.index).collect();
    let key_fields = || {
        crate::requests::create_key(
            protocol::genesis::ClusterId([7; 32]),
            "hd",
            protocol::policy::Scheme::EcdsaSecp256k1,
            2,
            &[],
            1,
        )
    };
    let request = |c| deal::import_request(key_fields(), &legacy, &positions, c, None);
    assert_eq!(request(Some([9; 32])).unwrap_err(), ImportError::ChainCode);
    let carried = shares[0].chain_code.unwrap();
    for given in [None, Some(carried)] {
        assert_eq!(
            request(given).unwrap().chain_code.unwrap().as_slice(),
            carried.as_slice()
        );
    }
    let holders = Holders::check(parsed).unwrap();
    assert_eq!(holders.threshold, 3);
    let new = import(&holders);
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        assert_eq!(Point::generator() * whole(&new, a, b), key);
    }
    // A complete key share's JSON reads the same (its auxiliary info is not read).
    let complete = format!("{{\"core\":{},\"aux\":{{}}}}", json[3]);
    assert_eq!(parse_cggmp21(&complete).unwrap().public_key, key);

    // An additive (n-of-n) share; another curve; a secret that is not its public share;
    // truncated; a share of another key among them.
    let additive = key_share::trusted_dealer::builder::<Secp256k1>(3)
        .generate_shares(&mut rng)
        .unwrap();
    assert!(matches!(
        parse_cggmp21(&serde_json::to_string(&additive[0]).unwrap()).unwrap_err(),
        ImportError::Format(_)
    ));
    assert!(json[0].contains("\"secp256k1\""), "{}", &json[0][..80]);
    assert!(matches!(
        parse_cggmp21(&json[0].replace("\"secp256k1\"", "\"ed25519\"")).unwrap_err(),
        ImportError::Curve { .. }
    ));
    let mut forged = (*shares[0]).clone();
    forged.x = reshare::generic_ec::NonZero::<SecretScalar<Secp256k1>>::random(&mut rng);
    assert!(matches!(
        parse_cggmp21(&serde_json::to_string(&forged).unwrap()).unwrap_err(),
        ImportError::Malformed(_)
    ));
    assert!(matches!(
        parse_cggmp21(&json[0][..json[0].len() - 9]).unwrap_err(),
        ImportError::Malformed(_)
    ));
    let other = key_share::trusted_dealer::builder::<Secp256k1>(5)
        .set_threshold(Some(3))
        .hd_wallet(true)
        .generate_shares_at_random(&mut rng)
        .unwrap();
    let mixed = vec![
        parse_cggmp21(&json[0]).unwrap(),
        parse_cggmp21(&json[1]).unwrap(),
        parse_cggmp21(&serde_json::to_string(&other[2]).unwrap()).unwrap(),
    ];
    assert_eq!(
        Holders::check(mixed).unwrap_err(),
        ImportError::MixedKeys { holder: 2 }
    );
}

#[test]
fn frost_shares_with_any_identifiers_import() {
    use frost_ed25519::Identifier;
    use frost_ed25519::keys::{IdentifierList, KeyPackage, generate_with_dealer};

    use super::frost::parse_frost;
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let ids: Vec<Identifier> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|n| Identifier::derive(n.as_bytes()).unwrap())
        .collect();
    let (secret_shares, public) =
        generate_with_dealer(5, 3, IdentifierList::Custom(&ids), &mut rng).unwrap();
    let public_bytes = public.serialize().unwrap();
    let files: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            KeyPackage::try_from(secret_shares[id].clone())
                .unwrap()
                .serialize()
                .unwrap()
        })
        .collect();
    let parsed: Vec<_> = [0, 2, 4]
        .iter()
        .map(|i| parse_frost(&files[*i], &public_bytes).unwrap())
        .collect();
    let key = parsed[0].public_key;
    assert_eq!(
        key.to_bytes(true).as_ref(),
        public.verifying_key().serialize().unwrap().as_slice()
    );
    let holders = Holders::check(parsed).unwrap();
    assert_eq!(holders.threshold, 3);
    let new = import(&holders);
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        assert_eq!(Point::generator() * whole(&new, a, b), key);
    }

    // A key package with another group's public package; truncated bytes; the two swapped.
    let (_, other) = generate_with_dealer(5, 3, IdentifierList::Custom(&ids), &mut rng).unwrap();
    assert_eq!(
        parse_frost(&files[0], &other.serialize().unwrap()).unwrap_err(),
        ImportError::MixedKeys { holder: 0 }
    );
    assert!(matches!(
        parse_frost(&files[0][..files[0].len() - 1], &public_bytes).unwrap_err(),
        ImportError::Malformed(_)
    ));
    assert!(matches!(
        parse_frost(&public_bytes, &files[0]).unwrap_err(),
        ImportError::Malformed(_)
    ));
}

#[test]
fn decimals_convert_exactly_up_to_two_to_the_256() {
    use super::tsslib::decimal_32;
    let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    assert_eq!(*decimal_32(max, "x").unwrap(), [0xff; 32]);
    let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    assert!(decimal_32(over, "x").is_err());
    assert_eq!(*decimal_32("0", "x").unwrap(), [0; 32]);
    let mut v = [0u8; 32];
    v[30] = 0x01;
    v[31] = 0x00;
    assert_eq!(*decimal_32("256", "x").unwrap(), v);
    for text in ["", "12a", "-1", " 1"] {
        assert!(decimal_32(text, "x").is_err(), "{text:?}");
    }
    // Against an independent big-integer library.
    let n = "59857031556462284717113645237935722663924232558699039874171440941840562677323";
    let want = num_bigint::BigUint::parse_bytes(n.as_bytes(), 10)
        .unwrap()
        .to_bytes_be();
    assert_eq!(decimal_32(n, "x").unwrap()[32 - want.len()..], want[..]);
}
