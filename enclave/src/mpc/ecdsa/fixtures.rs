//! Committed test fixtures. Compiled only for this crate's tests or with the `test-fixtures`
//! feature (off by default), so production builds cannot reach them.

use super::{MpcError, SecretAuxInfo, SecretPrimes};

/// Number of parties with committed primes.
pub const PARTIES: usize = 5;

/// Path of party `i`'s committed primes.
pub fn primes_path(i: usize) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/primes")
        .join(format!("party-{i}.bin"))
}

/// Loads party `i`'s committed safe primes (`i < PARTIES`).
pub fn primes(i: usize) -> Result<SecretPrimes, MpcError> {
    let bytes = std::fs::read(primes_path(i))
        .map_err(|e| MpcError::BadInput(format!("reading primes fixture {i}: {e}")))?;
    SecretPrimes::from_bytes(&bytes)
}

/// Group sizes with committed auxiliary info (made from the committed primes of parties
/// `0..n`).
pub const AUX_GROUPS: [u16; 2] = [3, 5];

/// Path of party `i`'s committed auxiliary info for a group of `n`.
pub fn aux_info_path(n: u16, i: u16) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/aux/n{n}"))
        .join(format!("party-{i}.bin"))
}

/// Loads party `i`'s committed auxiliary info for a group of `n` (`n` in `AUX_GROUPS`).
pub fn aux_info(n: u16, i: u16) -> Result<SecretAuxInfo, MpcError> {
    let bytes = std::fs::read(aux_info_path(n, i))
        .map_err(|e| MpcError::BadInput(format!("reading aux fixture {n}/{i}: {e}")))?;
    SecretAuxInfo::from_bytes(&bytes)
}
