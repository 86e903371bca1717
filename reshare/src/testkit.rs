//! Test support (feature `testkit`, and this crate's own tests): one process plays every dealer
//! and every member of a redistribution. Nothing here makes a key whole, but a real
//! redistribution never runs in one process: dealers and members are separate machines.

use generic_ec::{Curve, SecretScalar};
use rand::{CryptoRng, RngCore};

use crate::{NewShare, OldCommittee, Points, ReshareError, deal, receive};

/// Every dealer of `old` deals its share (`shares`, in dealer order) to `new` at threshold
/// `t`, and every member receives what was dealt to it: the new shares, in member order.
pub fn redistribute<E: Curve>(
    rng: &mut (impl RngCore + CryptoRng),
    old: &OldCommittee<E>,
    shares: &[&SecretScalar<E>],
    new: &Points<E>,
    t: u16,
) -> Result<Vec<NewShare<E>>, ReshareError> {
    let dealings = shares
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let public = old.public_shares.get(i).ok_or(ReshareError::Member(i))?;
            deal(rng, &old.dealers, i, x, public, new, t)
        })
        .collect::<Result<Vec<_>, _>>()?;
    (0..new.len())
        .map(|j| {
            let dealt: Vec<_> = dealings
                .iter()
                .map(|d| (d.commitments.clone(), d.sub_shares[j].clone()))
                .collect();
            receive(old, new, t, j, &dealt)
        })
        .collect()
}
