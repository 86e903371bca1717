//! Bitcoin Core's script interpreter.

/// An output a transaction spends: its script and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    /// scriptPubKey bytes.
    pub script: Vec<u8>,
    /// Value in satoshi.
    pub amount: u64,
}

/// Why a transaction does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The bytes are not a transaction.
    #[error("not a transaction: {0}")]
    Malformed(String),
    /// Not one spent output per input.
    #[error("the transaction has {inputs} input(s) but {spent} spent output(s) were given")]
    Count {
        /// Inputs in the transaction.
        inputs: usize,
        /// Spent outputs given.
        spent: usize,
    },
    /// Core's interpreter refused an input.
    #[error("input {index} fails Bitcoin Core's script check: {reason}")]
    Script {
        /// The input.
        index: usize,
        /// libbitcoinconsensus's error.
        reason: String,
    },
}

/// Reads a Bitcoin compact-size integer.
fn compact_size(b: &[u8], at: &mut usize) -> Result<u64, VerifyError> {
    let eof = || VerifyError::Malformed("truncated".into());
    let first = *b.get(*at).ok_or_else(eof)?;
    *at += 1;
    let n = match first {
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
        v => return Ok(u64::from(v)),
    };
    let bytes = b.get(*at..*at + n).ok_or_else(eof)?;
    *at += n;
    let mut v = 0u64;
    for (i, byte) in bytes.iter().enumerate() {
        v |= u64::from(*byte) << (8 * i);
    }
    Ok(v)
}

/// The number of inputs, read from the raw bytes (segwit or not).
pub fn input_count(raw: &[u8]) -> Result<usize, VerifyError> {
    let mut at = 4; // version
    if raw.len() < 10 {
        return Err(VerifyError::Malformed("too short".into()));
    }
    if raw[4] == 0 && raw[5] == 1 {
        at = 6; // segwit marker and flag
    }
    let n = compact_size(raw, &mut at)?;
    usize::try_from(n).map_err(|_| VerifyError::Malformed("input count".into()))
}

/// Verifies every input of `raw` against the outputs it spends, with every pre-Taproot
/// consensus flag (P2SH, DERSIG, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS,
/// NULLDUMMY).
pub fn verify(raw: &[u8], spent: &[Spent]) -> Result<(), VerifyError> {
    let inputs = input_count(raw)?;
    if inputs != spent.len() || inputs == 0 {
        return Err(VerifyError::Count {
            inputs,
            spent: spent.len(),
        });
    }
    for (index, s) in spent.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            &s.script,
            s.amount,
            raw,
            None,
            index,
            bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT,
        )
        .map_err(|e| VerifyError::Script {
            index,
            reason: format!("{e:?}"),
        })?;
    }
    Ok(())
}

/// The version of libbitcoinconsensus linked in.
pub fn core_version() -> u32 {
    bitcoinconsensus::version()
}
