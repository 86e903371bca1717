//! The redistribution against its own properties, on both curves: the key is unchanged, any
//! `t'` new shares and no fewer determine it, every share changes, and each kind of cheating is
//! caught and names the cheat.
//!
//! The tests alone make keys whole (a trusted dealer to start from, an interpolation to check
//! the result): the crate never does.

#![allow(clippy::unwrap_used)]

use generic_ec::curves::{Ed25519, Secp256k1};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

/// A trusted dealer's `threshold`-of-`points` sharing of a random key: the secret (for the
/// tests' checks), the shares and the public shares.
fn sharing<E: Curve>(
    rng: &mut ChaCha20Rng,
    points: &Points<E>,
    threshold: u16,
) -> (Scalar<E>, Vec<SecretScalar<E>>, Vec<Point<E>>) {
    let f = Polynomial::<Scalar<E>>::sample(rng, usize::from(threshold) - 1);
    let secret: Scalar<E> = f.value(&Scalar::zero());
    let shares: Vec<SecretScalar<E>> = points
        .as_slice()
        .iter()
        .map(|p| {
            let mut v: Scalar<E> = f.value(p.as_ref());
            SecretScalar::new(&mut v)
        })
        .collect();
    let public = shares.iter().map(|s| Point::generator() * s).collect();
    (secret, shares, public)
}

/// Interpolates `shares` at `points` to zero (test-only: makes the key whole).
fn interpolate<E: Curve>(points: &[Scalar<E>], shares: &[&SecretScalar<E>]) -> Scalar<E> {
    let points = Points::new(points.to_vec()).unwrap();
    shares
        .iter()
        .enumerate()
        .map(|(i, s)| points.lagrange_at_zero(i).unwrap() * *s)
        .sum()
}

fn pick<E: Curve>(points: &Points<E>, which: &[usize]) -> Points<E> {
    Points::new(which.iter().map(|i| *points.as_slice()[*i]).collect()).unwrap()
}

/// Dealers `which` of the old sharing deal to `new` at `t`; every new member receives.
#[allow(clippy::too_many_arguments)]
fn redistribute<E: Curve>(
    rng: &mut ChaCha20Rng,
    old_points: &Points<E>,
    old_t: u16,
    old_shares: &[SecretScalar<E>],
    old_public: &[Point<E>],
    which: &[usize],
    new: &Points<E>,
    t: u16,
) -> Vec<NewShare<E>> {
    let dealers = pick(old_points, which);
    let mut key = Point::zero();
    for (i, d) in which.iter().enumerate() {
        key += old_public[*d] * dealers.lagrange_at_zero(i).unwrap();
    }
    let publics = which.iter().map(|d| old_public[*d]).collect();
    let old = OldCommittee::new(dealers, publics, old_t, key).unwrap();
    let shares: Vec<_> = which.iter().map(|d| &old_shares[*d]).collect();
    crate::testkit::redistribute(rng, &old, &shares, new, t).unwrap()
}

fn moves_a_key_to_another_threshold_and_back<E: Curve>() {
    let mut rng = rng();
    // An imported key's holders need not sit at 1..n: tss-lib's points are large.
    let old_points =
        Points::<E>::new([101u64, 7, 55].iter().map(|p| Scalar::from(*p)).collect()).unwrap();
    let (secret, shares, public) = sharing(&mut rng, &old_points, 2);
    let key = Point::generator() * secret;
    check_public_shares(&old_points, &public, 2, &key).unwrap();

    // 2-of-3 -> 3-of-5, dealt by holders 0 and 2.
    let five = Points::<E>::of_indices(&[0, 1, 2, 3, 4]).unwrap();
    let new = redistribute(
        &mut rng,
        &old_points,
        2,
        &shares,
        &public,
        &[0, 2],
        &five,
        3,
    );
    let new_shares: Vec<SecretScalar<E>> = new.iter().map(|n| n.secret.clone()).collect();
    for n in &new {
        assert_eq!(n.public_key, key, "the key is unchanged");
        assert_eq!(n.public_shares, new[0].public_shares, "every member agrees");
    }
    check_public_shares(&five, &new[0].public_shares, 3, &key).unwrap();
    // The summed commitment is the new polynomial: its value at each point is that member's
    // public share, at zero the key.
    let summed = Commitments::new(new[0].commitment.clone());
    assert_eq!(summed.constant_term(), key);
    for (j, q) in five.as_slice().iter().enumerate() {
        assert_eq!(summed.at(q), new[0].public_shares[j]);
    }
    // Any 3 new shares give the key; 2 do not.
    let q: Vec<Scalar<E>> = five.as_slice().iter().map(|p| **p).collect();
    for which in [[0, 1, 2], [1, 3, 4], [0, 2, 4]] {
        let pts: Vec<_> = which.iter().map(|i| q[*i]).collect();
        let sh: Vec<_> = which.iter().map(|i| &new_shares[*i]).collect();
        assert_eq!(interpolate(&pts, &sh), secret);
    }
    assert_ne!(
        interpolate(&q[..2], &[&new_shares[0], &new_shares[1]]),
        secret
    );
    // The 2-of-3 public shares no longer fit a degree-1 polynomial.
    assert!(check_public_shares(&five, &new[0].public_shares, 2, &key).is_err());

    // 3-of-5 -> 2-of-3 on nodes 0..3, dealt by members 1, 3 and 4.
    let three = Points::<E>::of_indices(&[0, 1, 2]).unwrap();
    let five_public = new[0].public_shares.clone();
    let back = redistribute(
        &mut rng,
        &five,
        3,
        &new_shares,
        &five_public,
        &[1, 3, 4],
        &three,
        2,
    );
    check_public_shares(&three, &back[0].public_shares, 2, &key).unwrap();
    let q3: Vec<Scalar<E>> = three.as_slice().iter().map(|p| **p).collect();
    assert_eq!(
        interpolate(&q3[1..], &[&back[1].secret, &back[2].secret]),
        secret
    );

    // A refresh (same committee, same threshold): every share changes, the key does not.
    let old3: Vec<SecretScalar<E>> = back.iter().map(|n| n.secret.clone()).collect();
    let public3 = back[0].public_shares.clone();
    let refreshed = redistribute(&mut rng, &three, 2, &old3, &public3, &[0, 1], &three, 2);
    for (j, n) in refreshed.iter().enumerate() {
        assert_eq!(n.public_key, key);
        assert_ne!(n.public_shares[j], public3[j], "share {j} changed");
    }
    assert_eq!(
        interpolate(&q3[..2], &[&refreshed[0].secret, &refreshed[1].secret]),
        secret
    );
}

#[test]
fn moves_a_key_to_another_threshold_and_back_secp256k1() {
    moves_a_key_to_another_threshold_and_back::<Secp256k1>();
}

#[test]
fn moves_a_key_to_another_threshold_and_back_ed25519() {
    moves_a_key_to_another_threshold_and_back::<Ed25519>();
}

/// A 2-of-3 sharing, dealers 0 and 1, dealing to 2-of-3 at 1..3; returns what receive needs.
struct Setup<E: Curve> {
    old: OldCommittee<E>,
    new: Points<E>,
    dealings: Vec<Dealing<E>>,
    shares: Vec<SecretScalar<E>>,
    public: Vec<Point<E>>,
    dealers: Points<E>,
}

fn setup<E: Curve>(rng: &mut ChaCha20Rng) -> Setup<E> {
    let points = Points::<E>::of_indices(&[0, 1, 2]).unwrap();
    let (secret, shares, public) = sharing(rng, &points, 2);
    let dealers = pick(&points, &[0, 1]);
    let dealings = (0..2)
        .map(|i| deal(rng, &dealers, i, &shares[i], &public[i], &points, 2).unwrap())
        .collect();
    let old = OldCommittee::new(
        dealers.clone(),
        public[..2].to_vec(),
        2,
        Point::generator() * secret,
    )
    .unwrap();
    Setup {
        old,
        new: points,
        dealings,
        shares,
        public,
        dealers,
    }
}

/// Dealer `dealer` of the setup deals its share again, at threshold `t`.
fn redeal<E: Curve>(rng: &mut ChaCha20Rng, s: &Setup<E>, dealer: usize, t: u16) -> Dealing<E> {
    deal(
        rng,
        &s.dealers,
        dealer,
        &s.shares[dealer],
        &s.public[dealer],
        &s.new,
        t,
    )
    .unwrap()
}

fn dealt_to<E: Curve>(dealings: &[Dealing<E>], j: usize) -> Vec<(Commitments<E>, SecretScalar<E>)> {
    dealings
        .iter()
        .map(|d| (d.commitments.clone(), d.sub_shares[j].clone()))
        .collect()
}

fn cheating_is_caught_and_named<E: Curve>() {
    let mut rng = rng();
    let s = setup::<E>(&mut rng);
    for j in 0..3 {
        receive(&s.old, &s.new, 2, j, &dealt_to(&s.dealings, j)).unwrap();
    }

    // Dealer 1 sends member 2 a sub-share off its polynomial: member 2 names it, member 0 (an
    // honest sub-share) does not notice; comparing nothing else, that is why members complain.
    let mut bad = dealt_to(&s.dealings, 2);
    let mut off = Scalar::<E>::one() + &bad[1].1;
    bad[1].1 = SecretScalar::new(&mut off);
    assert_eq!(
        receive(&s.old, &s.new, 2, 2, &bad).unwrap_err(),
        ReshareError::SubShare(1)
    );

    // Dealer 0 does not know its share: it deals a random one. Its constant term betrays it.
    let fake = SecretScalar::<E>::random(&mut rng);
    let fake_public = Point::generator() * &fake;
    let forged = deal(&mut rng, &s.dealers, 0, &fake, &fake_public, &s.new, 2).unwrap();
    let mut dealt = dealt_to(&s.dealings, 0);
    dealt[0] = (forged.commitments.clone(), forged.sub_shares[0].clone());
    assert_eq!(
        receive(&s.old, &s.new, 2, 0, &dealt).unwrap_err(),
        ReshareError::ConstantTerm(0)
    );
    assert_eq!(
        s.old
            .check_commitments(0, &forged.commitments, 2)
            .unwrap_err(),
        ReshareError::ConstantTerm(0)
    );

    // Dealer 1 commits to a polynomial of another degree (it would raise the threshold).
    let high = redeal(&mut rng, &s, 1, 3);
    let mut dealt = dealt_to(&s.dealings, 0);
    dealt[1] = (high.commitments.clone(), high.sub_shares[0].clone());
    assert_eq!(
        receive(&s.old, &s.new, 2, 0, &dealt).unwrap_err(),
        ReshareError::CommitmentLength {
            dealer: 1,
            got: 3,
            want: 2
        }
    );

    // Dealer 1 sends members different commitments: each set checks out alone, the digests
    // the members compare differ.
    let again = redeal(&mut rng, &s, 1, 2);
    let mut to_2 = dealt_to(&s.dealings, 2);
    to_2[1] = (again.commitments.clone(), again.sub_shares[2].clone());
    receive(&s.old, &s.new, 2, 2, &to_2).unwrap();
    let seen_by_0: Vec<_> = s.dealings.iter().map(|d| d.commitments.clone()).collect();
    let seen_by_2: Vec<_> = to_2.iter().map(|(c, _)| c.clone()).collect();
    let digest = |context: &[u8], t: u16, seen: &[Commitments<E>]| {
        commitments_digest(context, &s.old, &s.new, t, seen)
    };
    assert_ne!(digest(b"s", 2, &seen_by_0), digest(b"s", 2, &seen_by_2));
    assert_eq!(
        digest(b"s", 2, &seen_by_0),
        digest(b"s", 2, &seen_by_0.clone())
    );
    // Bound to the redistribution: another session, threshold or committee differs.
    assert_ne!(digest(b"s", 2, &seen_by_0), digest(b"t", 2, &seen_by_0));
    assert_ne!(digest(b"s", 2, &seen_by_0), digest(b"s", 3, &seen_by_0));
    let other = pick(&s.new, &[0, 2]);
    assert_ne!(
        digest(b"s", 2, &seen_by_0),
        commitments_digest(b"s", &s.old, &other, 2, &seen_by_0)
    );

    // A dealing missing, or one too many.
    let dealt = dealt_to(&s.dealings, 0);
    assert!(matches!(
        receive(&s.old, &s.new, 2, 0, &dealt[..1]).unwrap_err(),
        ReshareError::Count {
            got: 1,
            want: 2,
            ..
        }
    ));
    assert_eq!(
        receive(&s.old, &s.new, 2, 3, &dealt).unwrap_err(),
        ReshareError::Member(3)
    );
}

#[test]
fn cheating_is_caught_and_named_secp256k1() {
    cheating_is_caught_and_named::<Secp256k1>();
}

#[test]
fn cheating_is_caught_and_named_ed25519() {
    cheating_is_caught_and_named::<Ed25519>();
}

fn bad_committees_are_refused<E: Curve>() {
    let mut rng = rng();
    let s = setup::<E>(&mut rng);
    let key = s.old.public_key();

    // A holder's share that is not its public share (a tampered `Xi`): it deals nothing.
    assert_eq!(
        deal(
            &mut rng,
            &s.dealers,
            1,
            &s.shares[0],
            &s.public[1],
            &s.new,
            2
        )
        .unwrap_err(),
        ReshareError::ShareMismatch(1)
    );
    // Thresholds out of range; a new threshold of 1 would hand each member the dealers'
    // weighted shares, which add up to the key.
    for t in [0u16, 1, 4] {
        assert_eq!(
            deal(
                &mut rng,
                &s.dealers,
                0,
                &s.shares[0],
                &s.public[0],
                &s.new,
                t
            )
            .unwrap_err(),
            ReshareError::Threshold {
                threshold: t,
                members: 3
            }
        );
    }
    // Zero and repeated evaluation points (two holders claiming one point).
    assert_eq!(
        Points::<E>::new(vec![Scalar::from(3u64), Scalar::zero()]).unwrap_err(),
        ReshareError::Points(1)
    );
    assert_eq!(
        Points::<E>::new(vec![
            Scalar::from(3u64),
            Scalar::from(5u64),
            Scalar::from(3u64)
        ])
        .unwrap_err(),
        ReshareError::Points(2)
    );
    // Fewer dealers than the old threshold.
    let one = pick(&s.new, &[0]);
    assert_eq!(
        OldCommittee::new(one, s.public[..1].to_vec(), 2, key).unwrap_err(),
        ReshareError::TooFewDealers { got: 1, need: 2 }
    );
    // Public shares of another key, or a tampered one.
    let mut tampered = s.public.clone();
    tampered[1] += Point::generator();
    assert_eq!(
        OldCommittee::new(s.dealers.clone(), tampered[..2].to_vec(), 2, key).unwrap_err(),
        ReshareError::PublicShares(0)
    );
    assert_eq!(
        check_public_shares(&s.new, &tampered, 2, &key).unwrap_err(),
        ReshareError::PublicShares(0)
    );
    let mut third = s.public.clone();
    third[2] += Point::generator();
    assert_eq!(
        check_public_shares(&s.new, &third, 2, &key).unwrap_err(),
        ReshareError::PublicShares(2)
    );
    assert!(check_public_shares(&s.new, &s.public, 2, &(key + Point::generator())).is_err());
    assert!(matches!(
        check_public_shares(&s.new, &s.public[..2], 2, &key).unwrap_err(),
        ReshareError::Count { .. }
    ));
    // The identity as the key or a public share (a zero secret): refused, not dealt.
    let mut zero = s.public.clone();
    zero[0] = Point::zero();
    assert_eq!(
        check_public_shares(&s.new, &zero, 2, &key).unwrap_err(),
        ReshareError::Identity
    );
    assert_eq!(
        OldCommittee::new(s.dealers.clone(), s.public[..2].to_vec(), 2, Point::zero()).unwrap_err(),
        ReshareError::Identity
    );
}

#[test]
fn bad_committees_are_refused_secp256k1() {
    bad_committees_are_refused::<Secp256k1>();
}

#[test]
fn bad_committees_are_refused_ed25519() {
    bad_committees_are_refused::<Ed25519>();
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut rng = rng();
    let s = setup::<Secp256k1>(&mut rng);
    let shown = format!("{:?}", s.dealings[0]);
    assert!(shown.contains("redacted"), "{shown}");
    let share = receive(&s.old, &s.new, 2, 0, &dealt_to(&s.dealings, 0)).unwrap();
    let hex_secret = format!("{:?}", share.secret.as_ref().to_be_bytes());
    let shown = format!("{share:?}");
    assert!(
        shown.contains("redacted") && !shown.contains(&hex_secret),
        "{shown}"
    );
}
