//! Verifiable secret redistribution: moves a Shamir-shared key from one committee and threshold
//! to another without the key ever existing whole (Desmedt and Jajodia, *Redistributing Secret
//! Shares to New Access Structures and Its Applications*, 1997; Wong, Wang and Wing, *Verifiable
//! Secret Redistribution for Archive Systems*, 2002). `docs/resharing.md` specifies it; this
//! crate is that specification's math, generic over the group (any [`generic_ec::Curve`]:
//! secp256k1 for CGGMP21 keys, Ed25519 for FROST keys), and nothing else: no I/O, no transport,
//! no encryption. The enclave and a legacy holder's tool carry the messages.
//!
//! An old committee's dealers `S` (at least the old threshold of them) each hold `x_i`, a point
//! `f(p_i)` on the old polynomial, and are known by their public shares `X_i = x_i·G`. Dealer
//! `i` [`deal`]s `w_i = λ_i·x_i` (`λ_i` the Lagrange coefficient of `p_i` at zero over `S`) with
//! a fresh random polynomial `g_i` of degree `t' - 1`, publishing Feldman [`Commitments`]
//! `C_ik = a_ik·G` and sending new member `j` the sub-share `g_i(q_j)`. New member `j`
//! [`receive`]s one sub-share per dealer and checks each against its commitments, each dealer's
//! constant term against `λ_i·X_i` (a dealer that does not know its share cannot pass), and that
//! the constant terms sum to the public key; its new share is the sum of its sub-shares. Every
//! new public share follows from the commitments. What it cannot check alone — that every new
//! member saw the same commitments for the same redistribution — the members check together
//! by comparing [`commitments_digest`]s.
//!
//! Every check names the dealer that failed it, by its position in `S`.

use generic_ec::{Curve, NonZero, Point, Scalar, SecretScalar};
use generic_ec_zkp::polynomial::{Polynomial, lagrange_coefficient, lagrange_coefficient_at_zero};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

pub use generic_ec;

/// Domain of [`commitments_digest`].
pub const COMMITMENTS_DST: &[u8] = b"cohort/reshare/commitments/v1\0";

/// Why a redistribution step refused its input. Dealers are named by their position among the
/// dealers; nothing here carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReshareError {
    /// A threshold below 1 or above the committee's size.
    #[error("threshold {threshold} is out of range for {members} members")]
    Threshold {
        /// The threshold asked for.
        threshold: u16,
        /// The committee's size.
        members: usize,
    },
    /// Evaluation points that are zero or repeat (two holders claiming one point).
    #[error("evaluation point {0} is zero or repeats an earlier one")]
    Points(usize),
    /// Fewer dealers than the old threshold.
    #[error("{got} dealer(s), the old threshold needs {need}")]
    TooFewDealers {
        /// Dealers given.
        got: usize,
        /// The old threshold.
        need: u16,
    },
    /// A number of items that does not match the committee (public shares, dealings).
    #[error("{what}: {got} given, {want} expected")]
    Count {
        /// What was counted.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// How many there must be.
        want: usize,
    },
    /// A member position outside the committee.
    #[error("member {0} is not in the committee")]
    Member(usize),
    /// The public shares do not lie on one polynomial of degree below the threshold whose
    /// value at zero is the public key (a tampered public share, or shares of another key).
    #[error("the public shares do not interpolate to the public key (first mismatch: {0})")]
    PublicShares(usize),
    /// A dealer's secret share does not match its public share: its file was altered, or it is
    /// another key's.
    #[error("dealer {0}'s share does not match its public share")]
    ShareMismatch(usize),
    /// A dealer committed to a polynomial of the wrong degree.
    #[error("dealer {dealer} committed to {got} coefficient(s), {want} expected")]
    CommitmentLength {
        /// The dealer.
        dealer: usize,
        /// Coefficients committed to.
        got: usize,
        /// The new threshold.
        want: usize,
    },
    /// A dealer's constant term is not its Lagrange-weighted public share: it dealt something
    /// other than its share of this key.
    #[error("dealer {0} dealt something other than its share of the key")]
    ConstantTerm(usize),
    /// A dealer's sub-share does not match its commitments.
    #[error("dealer {0}'s sub-share does not match its commitments")]
    SubShare(usize),
    /// The dealt constant terms sum to another key.
    #[error("the dealings add up to another public key")]
    PublicKey,
    /// The key or a public share is the group's identity (a zero secret): nothing to share.
    #[error("the key or a public share is the identity point")]
    Identity,
    /// A dealer's sealed sub-share does not open for this member (sealed to another key or
    /// another import, altered on the way, or a low-order ephemeral key).
    #[error("dealer {0}'s sealed sub-share does not open for this member")]
    Sealed(usize),
    /// The public key is not the one accepted encoding of a point of its curve (or is the
    /// identity).
    #[error("the public key is not a canonical encoding of a point on the key's curve")]
    KeyEncoding,
    /// Bytes that are not the one accepted encoding of a point or scalar of the key's curve.
    #[error("{what} {index} is not a canonical encoding on the key's curve")]
    Encoding {
        /// What was read (`the public share of dealer`, ...), read before the index.
        what: &'static str,
        /// Its position where it was read.
        index: usize,
    },
}

/// A committee's Shamir evaluation points: distinct and non-zero, in member order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Points<E: Curve>(Vec<NonZero<Scalar<E>>>);

impl<E: Curve> Points<E> {
    /// Checks `points`: none zero, none repeated.
    pub fn new(points: Vec<Scalar<E>>) -> Result<Self, ReshareError> {
        let mut checked: Vec<NonZero<Scalar<E>>> = Vec::with_capacity(points.len());
        for (i, p) in points.into_iter().enumerate() {
            let p = NonZero::from_scalar(p).ok_or(ReshareError::Points(i))?;
            if checked.contains(&p) {
                return Err(ReshareError::Points(i));
            }
            checked.push(p);
        }
        Ok(Self(checked))
    }

    /// The points `index + 1` of the given indices: how cggmp21 and frost number a cluster's
    /// parties (node `i` at `i + 1`).
    pub fn of_indices(indices: &[u16]) -> Result<Self, ReshareError> {
        Self::new(
            indices
                .iter()
                .map(|i| Scalar::from(u64::from(*i) + 1))
                .collect(),
        )
    }

    /// The members' points.
    pub fn as_slice(&self) -> &[NonZero<Scalar<E>>] {
        &self.0
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, member: usize) -> Result<&NonZero<Scalar<E>>, ReshareError> {
        self.0.get(member).ok_or(ReshareError::Member(member))
    }

    /// The Lagrange coefficient of member `member`'s point at zero over all of these points.
    pub fn lagrange_at_zero(&self, member: usize) -> Result<Scalar<E>, ReshareError> {
        self.get(member)?;
        // Distinct points: the denominator is never zero, and neither is the coefficient.
        lagrange_coefficient_at_zero(member, &self.0)
            .map(|l| *l)
            .ok_or(ReshareError::Points(member))
    }

    fn check_threshold(&self, threshold: u16) -> Result<(), ReshareError> {
        if threshold == 0 || usize::from(threshold) > self.len() {
            return Err(ReshareError::Threshold {
                threshold,
                members: self.len(),
            });
        }
        Ok(())
    }

    /// A new committee's threshold: at least 2. At 1 every sub-share would be the dealer's
    /// weighted share itself, and one member would add them up into the key.
    fn check_new_threshold(&self, threshold: u16) -> Result<(), ReshareError> {
        if threshold < 2 || usize::from(threshold) > self.len() {
            return Err(ReshareError::Threshold {
                threshold,
                members: self.len(),
            });
        }
        Ok(())
    }
}

/// Checks that `public_shares` (one per point of `points`) lie on one polynomial of degree
/// below `threshold` whose value at zero is `public_key`: the first `threshold` shares fix the
/// polynomial, each further one must lie on it, and it must give the key at zero.
pub fn check_public_shares<E: Curve>(
    points: &Points<E>,
    public_shares: &[Point<E>],
    threshold: u16,
    public_key: &Point<E>,
) -> Result<(), ReshareError> {
    points.check_threshold(threshold)?;
    if public_shares.len() != points.len() {
        return Err(ReshareError::Count {
            what: "public shares",
            got: public_shares.len(),
            want: points.len(),
        });
    }
    if public_key.is_zero() || public_shares.iter().any(Point::is_zero) {
        return Err(ReshareError::Identity);
    }
    let t = usize::from(threshold);
    let basis = &points.as_slice()[..t];
    let at = |x: Scalar<E>| -> Result<Point<E>, ReshareError> {
        let mut sum = Point::zero();
        for (j, share) in public_shares[..t].iter().enumerate() {
            let l = lagrange_coefficient(x, j, basis).ok_or(ReshareError::Points(j))?;
            sum += share * l;
        }
        Ok(sum)
    };
    if at(Scalar::zero())? != *public_key {
        return Err(ReshareError::PublicShares(0));
    }
    for (m, share) in public_shares.iter().enumerate().skip(t) {
        if at(*points.as_slice()[m])? != *share {
            return Err(ReshareError::PublicShares(m));
        }
    }
    Ok(())
}

/// A dealer's Feldman commitments to its polynomial's coefficients, constant term first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitments<E: Curve>(Vec<Point<E>>);

impl<E: Curve> Commitments<E> {
    /// Commitments as received.
    pub fn new(points: Vec<Point<E>>) -> Self {
        Self(points)
    }

    /// The committed points, constant term first.
    pub fn as_slice(&self) -> &[Point<E>] {
        &self.0
    }

    /// The committed constant term: `w_i·G`.
    pub fn constant_term(&self) -> Point<E> {
        self.0.first().copied().unwrap_or_else(Point::zero)
    }

    /// The committed polynomial at `x`, in the exponent: `g_i(x)·G`.
    pub fn at(&self, x: &Scalar<E>) -> Point<E> {
        self.0
            .iter()
            .rev()
            .fold(Point::zero(), |acc, c| acc * x + c)
    }
}

/// What new members compare before they keep anything: a digest of the whole public input —
/// `context` (the caller's binding: session id, key id, generation, chain code), the old
/// committee (dealers' points and public shares, the key), the new points and threshold — and
/// every dealer's commitments in dealer order. Equal digests mean the members checked their
/// sub-shares against the same polynomials for the same redistribution. The exchange itself
/// must be authenticated (each member signs its digest).
pub fn commitments_digest<E: Curve>(
    context: &[u8],
    old: &OldCommittee<E>,
    new: &Points<E>,
    new_threshold: u16,
    dealings: &[Commitments<E>],
) -> [u8; 32] {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    fn points<E: Curve>(h: &mut Sha256, ps: &[Point<E>]) {
        h.update((ps.len() as u64).to_be_bytes());
        for p in ps {
            field(h, p.to_bytes(true).as_ref());
        }
    }
    fn scalars<E: Curve>(h: &mut Sha256, xs: &[NonZero<Scalar<E>>]) {
        h.update((xs.len() as u64).to_be_bytes());
        for x in xs {
            field(h, x.to_be_bytes().as_ref());
        }
    }
    let mut h = Sha256::new();
    h.update(COMMITMENTS_DST);
    field(&mut h, E::CURVE_NAME.as_bytes());
    field(&mut h, context);
    scalars(&mut h, old.dealers.as_slice());
    points(&mut h, &old.public_shares);
    points(&mut h, std::slice::from_ref(&old.public_key));
    scalars(&mut h, new.as_slice());
    h.update(new_threshold.to_be_bytes());
    h.update((dealings.len() as u64).to_be_bytes());
    for c in dealings {
        points(&mut h, &c.0);
    }
    h.finalize().into()
}

/// One dealer's dealing: its commitments, for every new member, and one sub-share per new
/// member, in the new committee's order, each for that member alone.
pub struct Dealing<E: Curve> {
    /// The Feldman commitments.
    pub commitments: Commitments<E>,
    /// `g_i(q_j)` for each new member `j`.
    pub sub_shares: Vec<SecretScalar<E>>,
}

impl<E: Curve> std::fmt::Debug for Dealing<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dealing")
            .field("commitments", &self.commitments)
            .field(
                "sub_shares",
                &format_args!("[{} redacted]", self.sub_shares.len()),
            )
            .finish()
    }
}

/// Dealer `me` of `dealers` deals its share `share` (public share `public_share`) to the new
/// committee `new` at threshold `new_threshold`. Refuses a share that does not match its public
/// share: what the dealer's own file says must hold before anything leaves it.
pub fn deal<E: Curve>(
    rng: &mut (impl RngCore + CryptoRng),
    dealers: &Points<E>,
    me: usize,
    share: &SecretScalar<E>,
    public_share: &Point<E>,
    new: &Points<E>,
    new_threshold: u16,
) -> Result<Dealing<E>, ReshareError> {
    new.check_new_threshold(new_threshold)?;
    if Point::generator() * share != *public_share {
        return Err(ReshareError::ShareMismatch(me));
    }
    let lambda = dealers.lagrange_at_zero(me)?;
    let mut weighted = lambda * share;
    let weighted = SecretScalar::new(&mut weighted);
    let g = Polynomial::<SecretScalar<E>>::sample_with_const_term(
        rng,
        usize::from(new_threshold) - 1,
        weighted,
    );
    let commitments = Commitments(g.coefs().iter().map(|a| Point::generator() * a).collect());
    let sub_shares = new
        .as_slice()
        .iter()
        .map(|q| {
            let mut v: Scalar<E> = g.value(q.as_ref());
            SecretScalar::new(&mut v)
        })
        .collect();
    Ok(Dealing {
        commitments,
        sub_shares,
    })
}

/// The old committee as a new member knows it before anything is dealt: the dealers' points and
/// public shares, and the key, all from an approved request or the key's record.
#[derive(Clone, Debug)]
pub struct OldCommittee<E: Curve> {
    dealers: Points<E>,
    public_shares: Vec<Point<E>>,
    public_key: Point<E>,
}

impl<E: Curve> OldCommittee<E> {
    /// Checks that the dealers are at least `old_threshold`, that there is one public share per
    /// dealer, and that the public shares weighted by their Lagrange coefficients over the
    /// dealers add up to `public_key`.
    pub fn new(
        dealers: Points<E>,
        public_shares: Vec<Point<E>>,
        old_threshold: u16,
        public_key: Point<E>,
    ) -> Result<Self, ReshareError> {
        if dealers.len() < usize::from(old_threshold) || old_threshold == 0 {
            return Err(ReshareError::TooFewDealers {
                got: dealers.len(),
                need: old_threshold,
            });
        }
        if public_shares.len() != dealers.len() {
            return Err(ReshareError::Count {
                what: "public shares",
                got: public_shares.len(),
                want: dealers.len(),
            });
        }
        if public_key.is_zero() || public_shares.iter().any(Point::is_zero) {
            return Err(ReshareError::Identity);
        }
        let mut sum = Point::zero();
        for (i, x) in public_shares.iter().enumerate() {
            sum += x * dealers.lagrange_at_zero(i)?;
        }
        if sum != public_key {
            return Err(ReshareError::PublicShares(0));
        }
        Ok(Self {
            dealers,
            public_shares,
            public_key,
        })
    }

    /// The dealers' points.
    pub fn dealers(&self) -> &Points<E> {
        &self.dealers
    }

    /// The key being redistributed.
    pub fn public_key(&self) -> Point<E> {
        self.public_key
    }

    /// Checks a dealer's commitments alone (what every new member and the coordinator can
    /// check before any sub-share is opened): their length and their constant term.
    pub fn check_commitments(
        &self,
        dealer: usize,
        commitments: &Commitments<E>,
        new_threshold: u16,
    ) -> Result<(), ReshareError> {
        let x = self
            .public_shares
            .get(dealer)
            .ok_or(ReshareError::Member(dealer))?;
        if commitments.0.len() != usize::from(new_threshold) {
            return Err(ReshareError::CommitmentLength {
                dealer,
                got: commitments.0.len(),
                want: usize::from(new_threshold),
            });
        }
        if commitments.constant_term() != x * self.dealers.lagrange_at_zero(dealer)? {
            return Err(ReshareError::ConstantTerm(dealer));
        }
        Ok(())
    }
}

/// A new member's share of the redistributed key, with every new member's public share.
pub struct NewShare<E: Curve> {
    /// This member's secret share: the sum of its sub-shares.
    pub secret: SecretScalar<E>,
    /// The new polynomial in the exponent: the dealers' commitments summed coefficient-wise
    /// (constant term first, exactly `t'` points: its length is the threshold the shares were
    /// dealt at). FROST stores it as its VSS commitment.
    pub commitment: Vec<Point<E>>,
    /// Every new member's public share, in the new committee's order.
    pub public_shares: Vec<Point<E>>,
    /// The key: unchanged.
    pub public_key: Point<E>,
}

impl<E: Curve> std::fmt::Debug for NewShare<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewShare")
            .field("secret", &"redacted")
            .field("commitment", &self.commitment)
            .field("public_shares", &self.public_shares)
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// New member `me` of `new` combines what every dealer of `old` sent it — each dealer's
/// commitments and its sub-share, in dealer order — into its share at threshold
/// `new_threshold`, checking each dealing first. The first dealing that fails a check is named.
pub fn receive<E: Curve>(
    old: &OldCommittee<E>,
    new: &Points<E>,
    new_threshold: u16,
    me: usize,
    dealt: &[(Commitments<E>, SecretScalar<E>)],
) -> Result<NewShare<E>, ReshareError> {
    new.check_new_threshold(new_threshold)?;
    let q = *new.get(me)?;
    if dealt.len() != old.dealers.len() {
        return Err(ReshareError::Count {
            what: "dealings",
            got: dealt.len(),
            want: old.dealers.len(),
        });
    }
    let mut sum = Point::zero();
    for (i, (commitments, sub_share)) in dealt.iter().enumerate() {
        old.check_commitments(i, commitments, new_threshold)?;
        if Point::generator() * sub_share != commitments.at(&q) {
            return Err(ReshareError::SubShare(i));
        }
        sum += commitments.constant_term();
    }
    if sum != old.public_key {
        return Err(ReshareError::PublicKey);
    }
    let mut secret = Scalar::zero();
    for (_, s) in dealt {
        secret += s;
    }
    let secret = SecretScalar::new(&mut secret);
    let public_shares: Vec<Point<E>> = new
        .as_slice()
        .iter()
        .map(|q| dealt.iter().map(|(c, _)| c.at(q)).sum())
        .collect();
    // Holds when every check above did; kept as the property the share is for.
    if Point::generator() * &secret != public_shares[me] {
        return Err(ReshareError::PublicKey);
    }
    let commitment = (0..usize::from(new_threshold))
        .map(|k| dealt.iter().map(|(c, _)| c.0[k]).sum())
        .collect();
    Ok(NewShare {
        secret,
        commitment,
        public_shares,
        public_key: old.public_key,
    })
}

pub mod sealed;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(test)]
mod tests;
