//! Safe primes for a party's Paillier key, generated ahead of time.

use std::fmt;

use cggmp21::PregeneratedPrimes;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::L;
use crate::mpc::MpcError;
use crate::mpc::envelope::{self, Kind};

/// Two safe primes (security level 128) for one party's Paillier key, generated ahead of time
/// because generation is slow (tens of seconds). Consumed by [`AuxInfoGen::start`].
pub struct SecretPrimes(pub(super) PregeneratedPrimes<L>);

impl SecretPrimes {
    /// Generates two safe primes with the OS random generator. Slow: 20-50 s on a small machine.
    pub fn generate() -> Self {
        Self(PregeneratedPrimes::generate(&mut OsRng))
    }

    /// Encodes the primes for storage (versioned CBOR envelope).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        envelope::encode(Kind::EcdsaPrimes, &self.0)
    }

    /// Decodes primes written by [`to_bytes`](Self::to_bytes). Checks their size and that both
    /// are (probable) safe primes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let primes: PregeneratedPrimes<L> = envelope::decode_body(Kind::EcdsaPrimes, bytes)?;
        let (p, q) = primes.split();
        if !is_safe_prime(&p) || !is_safe_prime(&q) {
            return Err(MpcError::BadInput(
                "stored primes are not safe primes".into(),
            ));
        }
        PregeneratedPrimes::new(p, q)
            .map(Self)
            .ok_or_else(|| MpcError::BadInput("stored primes are too small".into()))
    }
}

impl fmt::Debug for SecretPrimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPrimes(..)")
    }
}

fn is_safe_prime(p: &cggmp21::rug::Integer) -> bool {
    use cggmp21::rug::integer::IsPrime;
    if p.is_probably_prime(30) == IsPrime::No {
        return false;
    }
    let half = cggmp21::rug::Integer::from(p - 1u32) >> 1u32;
    half.is_probably_prime(30) != IsPrime::No
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    #[ignore = "slow (minutes): regenerates the committed safe-prime fixtures"]
    fn generate_prime_fixtures() {
        let dir = fixtures::primes_path(0);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::thread::scope(|s| {
            for i in 0..fixtures::PARTIES {
                s.spawn(move || {
                    let primes = SecretPrimes::generate();
                    std::fs::write(fixtures::primes_path(i), &*primes.to_bytes().unwrap()).unwrap();
                });
            }
        });
        for i in 0..fixtures::PARTIES {
            fixtures::primes(i).unwrap();
        }
    }

    #[test]
    fn primes_round_trip_and_reject_garbage() {
        let primes = fixtures::primes(0).unwrap();
        let bytes = primes.to_bytes().unwrap();
        assert_eq!(
            *SecretPrimes::from_bytes(&bytes)
                .unwrap()
                .to_bytes()
                .unwrap(),
            *bytes
        );
        assert_eq!(format!("{primes:?}"), "SecretPrimes(..)");
        assert!(matches!(
            SecretPrimes::from_bytes(b"\x01\x02"),
            Err(MpcError::BadInput(_))
        ));
        // Primes stored under another kind are refused.
        let other = envelope::encode(Kind::EcdsaAuxInfo, &primes.0).unwrap();
        assert!(matches!(
            SecretPrimes::from_bytes(&other),
            Err(MpcError::BadInput(_))
        ));
    }
}
