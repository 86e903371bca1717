//! Legacy key shares for an import (issue 19, `docs/resharing.md`): each format is read by its
//! own module into a [`LegacyShare`]. [`LegacyKey`] checks the key's public part without any
//! secret (the points, the public shares on one polynomial through the key, the legacy
//! threshold), [`LegacyKey::check_share`] one holder's file against it, [`LegacyKey::dealers`]
//! the set that will deal. Every refusal is a typed [`ImportError`] naming the holder (by the
//! position of its file among those given) and changes nothing.
//!
//! A legacy holder runs this on its own machine with its own share only: the share is read,
//! checked and dealt there, and never sent anywhere, whole or not. [`Holders`] is for a process
//! that holds several shares anyway (a holder of several, a simulated cluster's import).

pub mod cggmp21;
pub mod deal;
pub mod frost;
pub mod inspect;
pub mod steps;
pub mod submit;
pub mod tsslib;

use reshare::generic_ec::{Curve, Point, Scalar, SecretScalar};
use reshare::{Points, ReshareError, check_public_shares};

/// Why legacy shares cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The bytes are not the format's (truncated, not JSON, a missing field, a bad number).
    #[error("malformed share file: {0}")]
    Malformed(String),
    /// A file of another format or scheme than the one named.
    #[error("wrong format: {0}")]
    Format(&'static str),
    /// A file for another curve.
    #[error("a share on curve {got:?} where {want} is expected")]
    Curve {
        /// The curve the format needs.
        want: &'static str,
        /// The curve the file names (cut).
        got: String,
    },
    /// No share was given.
    #[error("no share given")]
    NoShares,
    /// Holder `holder`'s file is of another key than the first one's.
    #[error("holder {holder}'s share is of another key than holder 0's")]
    MixedKeys {
        /// The holder (position among the files).
        holder: usize,
    },
    /// Two files are the same holder's.
    #[error("holders {first} and {second} are the same holder (share id)")]
    DuplicateHolder {
        /// The first file.
        first: usize,
        /// The file repeating it.
        second: usize,
    },
    /// The legacy public shares do not lie on one polynomial through the key at any threshold.
    #[error("the legacy public shares do not interpolate to the public key at any threshold")]
    Inconsistent,
    /// Fewer holders than the legacy threshold.
    #[error("{got} holder(s) given; the legacy key needs {need} to deal")]
    TooFewHolders {
        /// Holders given.
        got: usize,
        /// The legacy threshold.
        need: u16,
    },
    /// A holder's secret share does not match its public share (a tampered `Xi` or `BigXj`).
    #[error("holder {holder}'s share does not match its public share")]
    ShareMismatch {
        /// The holder.
        holder: usize,
    },
    /// A chain code given for the key that is not the one the holders' files carry (derived
    /// keys and addresses would change).
    #[error("the chain code given is not the one the holders' files carry")]
    ChainCode,
    /// The redistribution refused its input.
    #[error(transparent)]
    Reshare(#[from] ReshareError),
}

/// One legacy holder's share, as its file states it.
pub struct LegacyShare<E: Curve> {
    /// The holder's position among the key's holders (`points`, `public_shares`).
    pub index: usize,
    /// The holder's secret share `x_i`.
    pub share: SecretScalar<E>,
    /// Every holder's evaluation point.
    pub points: Vec<Scalar<E>>,
    /// Every holder's public share `X_j`.
    pub public_shares: Vec<Point<E>>,
    /// The key.
    pub public_key: Point<E>,
    /// The key's BIP32 chain code, where the format carries one (cggmp21 HD keys): an import
    /// keeps it, so that derived addresses stay the same.
    pub chain_code: Option<[u8; 32]>,
}

impl<E: Curve> std::fmt::Debug for LegacyShare<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyShare")
            .field("index", &self.index)
            .field("share", &"redacted")
            .field("holders", &self.points.len())
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// The most holders a legacy key may have (finding its threshold costs about `n·t³`).
pub const MAX_HOLDERS: usize = 256;

/// The public side of a legacy key, as every holder's file states it, checked without any
/// secret: what each holder, and the admins approving an import, can check on their own.
#[derive(Debug, Clone)]
pub struct LegacyKey<E: Curve> {
    /// Every holder's evaluation point, distinct and non-zero.
    pub points: Points<E>,
    /// Every holder's public share.
    pub public_shares: Vec<Point<E>>,
    /// The key.
    pub public_key: Point<E>,
    /// The legacy threshold: the fewest holders whose shares determine the key.
    pub threshold: u16,
    /// The chain code, where the format carries one.
    pub chain_code: Option<[u8; 32]>,
}

impl<E: Curve> LegacyKey<E> {
    /// Checks the public part: at most [`MAX_HOLDERS`] holders, distinct non-zero points, one
    /// public share per point, and all of them on one polynomial through the key; the
    /// threshold is the least degree that fits.
    pub fn from_public(
        points: Vec<Scalar<E>>,
        public_shares: Vec<Point<E>>,
        public_key: Point<E>,
        chain_code: Option<[u8; 32]>,
    ) -> Result<Self, ImportError> {
        if points.len() > MAX_HOLDERS {
            return Err(ImportError::Malformed(format!(
                "{} holders, at most {MAX_HOLDERS}",
                points.len()
            )));
        }
        let points = Points::new(points)?;
        let n = points.len() as u16;
        let threshold = (1..=n)
            .find(|t| check_public_shares(&points, &public_shares, *t, &public_key).is_ok())
            .ok_or(ImportError::Inconsistent)?;
        Ok(Self {
            points,
            public_shares,
            public_key,
            threshold,
            chain_code,
        })
    }

    /// Whether `share` states this key's public part.
    fn same_key(&self, share: &LegacyShare<E>) -> bool {
        share.public_key == self.public_key
            && share.chain_code == self.chain_code
            && share.public_shares == self.public_shares
            && share.points.len() == self.points.len()
            && share
                .points
                .iter()
                .zip(self.points.as_slice())
                .all(|(a, b)| a == b.as_ref())
    }

    /// Checks one holder's file (`holder` names it in errors) against the key: the same public
    /// part, and a secret that matches the holder's own public share. Needs that holder's
    /// secret only.
    pub fn check_share(&self, holder: usize, share: &LegacyShare<E>) -> Result<(), ImportError> {
        if !self.same_key(share) {
            return Err(ImportError::MixedKeys { holder });
        }
        let own = share
            .public_shares
            .get(share.index)
            .ok_or(ImportError::MixedKeys { holder })?;
        if Point::generator() * &share.share != *own {
            return Err(ImportError::ShareMismatch { holder });
        }
        Ok(())
    }

    /// The dealers' points, for the holders at positions `holders` of the key's holder list:
    /// no holder twice (named by position in `holders`), at least the threshold of them.
    pub fn dealers(&self, holders: &[usize]) -> Result<Points<E>, ImportError> {
        for (second, h) in holders.iter().enumerate() {
            if let Some(first) = holders[..second].iter().position(|o| o == h) {
                return Err(ImportError::DuplicateHolder { first, second });
            }
        }
        if holders.len() < usize::from(self.threshold) {
            return Err(ImportError::TooFewHolders {
                got: holders.len(),
                need: self.threshold,
            });
        }
        let points = holders
            .iter()
            .map(|h| {
                self.points
                    .as_slice()
                    .get(*h)
                    .map(|p| **p)
                    .ok_or(ImportError::MixedKeys { holder: *h })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Points::new(points)?)
    }

    /// The key as the first of `shares` states it, with every file checked against it
    /// ([`Self::check_share`], holders named by position among `shares`).
    pub fn of_shares(shares: &[LegacyShare<E>]) -> Result<Self, ImportError> {
        let first = shares.first().ok_or(ImportError::NoShares)?;
        let key = Self::from_public(
            first.points.clone(),
            first.public_shares.clone(),
            first.public_key,
            first.chain_code,
        )?;
        for (holder, s) in shares.iter().enumerate() {
            key.check_share(holder, s)?;
        }
        Ok(key)
    }

    /// The public shares of the holders at positions `holders`.
    pub fn dealer_public_shares(&self, holders: &[usize]) -> Vec<Point<E>> {
        holders.iter().map(|h| self.public_shares[*h]).collect()
    }
}

/// Several holders' shares of one legacy key, checked, for a process that holds them all
/// anyway: a holder of several shares, or a simulated cluster's import. A holder with one
/// share checks it alone ([`LegacyKey::check_share`]) and deals it on its own machine.
#[derive(Debug)]
pub struct Holders<E: Curve> {
    /// The shares, in the order given.
    pub shares: Vec<LegacyShare<E>>,
    /// The legacy threshold.
    pub threshold: u16,
    /// The dealers' evaluation points, in the order given.
    pub dealers: Points<E>,
}

impl<E: Curve> Holders<E> {
    /// Checks `shares`: the key's public part (from the first file), each file against it,
    /// then the dealers (no holder twice, at least the threshold).
    pub fn check(shares: Vec<LegacyShare<E>>) -> Result<Self, ImportError> {
        let key = LegacyKey::of_shares(&shares)?;
        let positions: Vec<usize> = shares.iter().map(|s| s.index).collect();
        let dealers = key.dealers(&positions)?;
        Ok(Self {
            shares,
            threshold: key.threshold,
            dealers,
        })
    }

    /// The dealers' public shares, in the order given.
    pub fn dealer_public_shares(&self) -> Vec<Point<E>> {
        self.shares
            .iter()
            .map(|s| s.public_shares[s.index])
            .collect()
    }

    /// The key.
    pub fn public_key(&self) -> Point<E> {
        self.shares[0].public_key
    }
}

#[cfg(test)]
mod tests;
