//! Legacy key shares for an import (issue 19, `docs/resharing.md`): each format is read by its
//! own module into a [`LegacyShare`], and [`Holders::check`] checks that the shares given are
//! of one key, distinct, enough, and consistent with the key's public shares, before any holder
//! deals anything. Every refusal is a typed [`ImportError`] naming the holder (by the position
//! of its file among those given) and changes nothing.
//!
//! A legacy holder runs this on its own machine: its share is read, checked and dealt there,
//! and never sent anywhere whole.

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

/// The holders of one legacy key who will deal, checked.
#[derive(Debug)]
pub struct Holders<E: Curve> {
    /// The shares, in the order given.
    pub shares: Vec<LegacyShare<E>>,
    /// The legacy threshold: the fewest holders whose public shares determine the key.
    pub threshold: u16,
    /// The dealers' evaluation points, in the order given.
    pub dealers: Points<E>,
}

impl<E: Curve> Holders<E> {
    /// Checks `shares`: of one key (the same key, points and public shares as the first), no
    /// holder twice, each share matching its own public share, the public shares consistent
    /// with the key at a threshold `t` (found: the least that fits), and at least `t` holders.
    pub fn check(shares: Vec<LegacyShare<E>>) -> Result<Self, ImportError> {
        let first = shares.first().ok_or(ImportError::NoShares)?;
        for (holder, s) in shares.iter().enumerate().skip(1) {
            if s.public_key != first.public_key
                || s.points != first.points
                || s.public_shares != first.public_shares
            {
                return Err(ImportError::MixedKeys { holder });
            }
        }
        for (second, s) in shares.iter().enumerate() {
            if let Some(first) = shares[..second].iter().position(|o| o.index == s.index) {
                return Err(ImportError::DuplicateHolder { first, second });
            }
        }
        for (holder, s) in shares.iter().enumerate() {
            if Point::generator() * &s.share != s.public_shares[s.index] {
                return Err(ImportError::ShareMismatch { holder });
            }
        }
        let all = Points::new(first.points.clone())?;
        let n = u16::try_from(all.len()).map_err(|_| ImportError::Inconsistent)?;
        let threshold = (1..=n)
            .find(|t| {
                check_public_shares(&all, &first.public_shares, *t, &first.public_key).is_ok()
            })
            .ok_or(ImportError::Inconsistent)?;
        if shares.len() < usize::from(threshold) {
            return Err(ImportError::TooFewHolders {
                got: shares.len(),
                need: threshold,
            });
        }
        let dealers = Points::new(shares.iter().map(|s| s.points[s.index]).collect())?;
        Ok(Self {
            shares,
            threshold,
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
