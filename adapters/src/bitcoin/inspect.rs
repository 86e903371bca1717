//! Checking an unsigned PSBT the way an approver would: it spends only this key's P2WPKH
//! outputs, asks for SIGHASH_ALL only, is not finalized, and pays a sane fee; then its BIP143
//! BIP143 preimages (the payloads) and digests, and its summary.

use bitcoin::psbt::{self, Psbt, PsbtSighashType};
use bitcoin::sighash::EcdsaSighashType;
use bitcoin::{Amount, CompressedPublicKey, ScriptBuf, Transaction, TxOut};

use protocol::policy::HashFunction;

use super::sighash::{bip143_preimages, estimate_vsize};
use super::{Bitcoin, MAX_FEE_RATE};
use crate::{AdapterError, Result, Summary};

/// A checked PSBT, the digests to sign (one per input), and what it does.
pub(super) struct Inspected {
    pub(super) psbt: Psbt,
    pub(super) preimages: Vec<Vec<u8>>,
    pub(super) digests: Vec<[u8; 32]>,
    pub(super) summary: Summary,
}

fn bad(m: String) -> AdapterError {
    AdapterError::MalformedTransaction(m)
}

impl Bitcoin {
    /// Parses and checks an unsigned PSBT spending only this key's P2WPKH outputs, and
    /// computes its BIP143 digests.
    pub(super) fn inspect_psbt(&self, pk: &CompressedPublicKey, bytes: &[u8]) -> Result<Inspected> {
        let psbt = Psbt::deserialize(bytes).map_err(|e| bad(format!("not a PSBT: {e}")))?;
        let own = Self::own_script(pk);
        if psbt.unsigned_tx.input.is_empty() || psbt.unsigned_tx.output.is_empty() {
            return Err(bad("a transaction needs inputs and outputs".into()));
        }
        let spent = (0..psbt.inputs.len())
            .map(|i| spent_output(&psbt, i, &own))
            .collect::<Result<Vec<_>>>()?;
        let fee = fee_of(&psbt.unsigned_tx, &spent)?;
        let preimages = bip143_preimages(&psbt.unsigned_tx, &spent)?;
        let digests = preimages
            .iter()
            .map(|p| HashFunction::Sha256d.digest(p))
            .collect();
        let vsize = estimate_vsize(&psbt.unsigned_tx);
        if fee.to_sat() > MAX_FEE_RATE.saturating_mul(vsize) {
            return Err(bad(format!(
                "the fee ({}) is over {MAX_FEE_RATE} sat/vB",
                self.coins(fee.to_sat())
            )));
        }
        let summary = self.unsigned_summary(&psbt, &spent, &own, fee, vsize);
        Ok(Inspected {
            psbt,
            preimages,
            digests,
            summary,
        })
    }
}

/// The output input `i` spends, once it is checked to be this key's (`own`), signed with
/// SIGHASH_ALL, not yet finalized, and consistent with the previous transaction when the PSBT
/// carries it.
fn spent_output(psbt: &Psbt, i: usize, own: &ScriptBuf) -> Result<TxOut> {
    let input: &psbt::Input = &psbt.inputs[i];
    let utxo = input.witness_utxo.as_ref().ok_or_else(|| {
        bad(format!(
            "input {i} has no witness_utxo (a P2WPKH signature commits to the spent amount)"
        ))
    })?;
    if utxo.script_pubkey != *own {
        return Err(bad(format!(
            "input {i} does not spend this key's P2WPKH output"
        )));
    }
    if let Some(t) = input.sighash_type
        && t != PsbtSighashType::from(EcdsaSighashType::All)
    {
        return Err(bad(format!(
            "input {i} asks for sighash type {t}; only ALL is signed"
        )));
    }
    if input.final_script_witness.is_some() || input.final_script_sig.is_some() {
        return Err(bad(format!("input {i} is already finalized")));
    }
    // The full previous transaction, when the PSBT carries it, must be the one spent
    // and must agree on the amount (a signature commits only to its own input's amount:
    // see the SegWit fee attack in docs/threat-model.md).
    if let Some(prev) = &input.non_witness_utxo {
        let outpoint = psbt.unsigned_tx.input[i].previous_output;
        if prev.compute_txid() != outpoint.txid
            || prev.output.get(outpoint.vout as usize) != Some(utxo)
        {
            return Err(bad(format!(
                "input {i}: non_witness_utxo does not match the outpoint and witness_utxo"
            )));
        }
    }
    Ok(utxo.clone())
}

/// What the spent outputs hold beyond what the transaction pays out.
fn fee_of(tx: &Transaction, spent: &[TxOut]) -> Result<Amount> {
    let total_in = spent
        .iter()
        .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
        .ok_or_else(|| bad("input values overflow".into()))?;
    let total_out = tx
        .output
        .iter()
        .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
        .ok_or_else(|| bad("output values overflow".into()))?;
    total_in
        .checked_sub(total_out)
        .ok_or_else(|| bad(format!("outputs ({total_out}) exceed inputs ({total_in})")))
}
