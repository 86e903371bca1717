//! Building an unsigned PSBT from an intent: the recipient and amount, the UTXOs to spend
//! (coin selection in the order given), a fee from a sat/vB rate, change back to the sender.

use std::collections::BTreeSet;

use bitcoin::absolute::LockTime;
use bitcoin::psbt::Psbt;
use bitcoin::sighash::EcdsaSighashType;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
};

use super::sighash::fee_for;
use super::{Bitcoin, MAX_FEE_RATE};
use crate::{AdapterError, Intent, Result, Utxo, parse_amount_u64, required};

fn invalid(m: String) -> AdapterError {
    AdapterError::InvalidIntent(m)
}

impl Bitcoin {
    /// The unsigned PSBT of a UTXO intent, its inputs carrying their `witness_utxo` and
    /// SIGHASH_ALL.
    pub(super) fn build_psbt(&self, pk: &CompressedPublicKey, intent: &Intent) -> Result<Psbt> {
        let own = Self::own_script(pk);
        let to = self.parse_address(required(&intent.to, "to")?)?;
        let amount = Amount::from_sat(parse_amount_u64(intent)?);
        if amount > Amount::MAX_MONEY {
            return Err(invalid(format!("{amount} exceeds the coin's supply")));
        }
        if amount < to.minimal_non_dust() {
            return Err(invalid(format!(
                "{amount} is below the dust limit ({}) for that output",
                to.minimal_non_dust()
            )));
        }
        let fee_rate = intent
            .fee_rate
            .ok_or_else(|| invalid("`fee_rate` (sat/vB) is required".into()))?;
        if !(1..=MAX_FEE_RATE).contains(&fee_rate) {
            return Err(invalid(format!(
                "fee rate {fee_rate} sat/vB is outside 1..={MAX_FEE_RATE}"
            )));
        }
        let utxos = intent
            .utxos
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("`utxos` (the outputs to spend) are required".into()))?;
        let outpoints = outpoints(utxos)?;
        let payment = TxOut {
            value: amount,
            script_pubkey: to,
        };
        let (tx, spent) = self.select_coins(payment, utxos, outpoints, &own, fee_rate)?;
        let mut psbt = Psbt::from_unsigned_tx(tx)
            .map_err(|e| AdapterError::MalformedTransaction(e.to_string()))?;
        for (input, prev) in psbt.inputs.iter_mut().zip(spent) {
            input.witness_utxo = Some(prev);
            input.sighash_type = Some(EcdsaSighashType::All.into());
        }
        Ok(psbt)
    }

    /// Spends `utxos` in the order given until they cover the payment and the fee, with a
    /// change output back to `own` when the remainder is above dust. Returns the unsigned
    /// transaction and the outputs its inputs spend.
    fn select_coins(
        &self,
        payment: TxOut,
        utxos: &[Utxo],
        outpoints: Vec<OutPoint>,
        own: &ScriptBuf,
        fee_rate: u64,
    ) -> Result<(Transaction, Vec<TxOut>)> {
        let amount = payment.value;
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: vec![payment],
        };
        let mut spent = Vec::new();
        let mut total = Amount::ZERO;
        let change_out = TxOut {
            value: Amount::ZERO,
            script_pubkey: own.clone(),
        };
        for (u, outpoint) in utxos.iter().zip(outpoints) {
            tx.input.push(TxIn {
                previous_output: outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Default::default(),
            });
            spent.push(TxOut {
                value: Amount::from_sat(u.amount),
                script_pubkey: own.clone(),
            });
            total = total
                .checked_add(Amount::from_sat(u.amount))
                .ok_or_else(|| invalid("utxo values overflow".into()))?;
            // Enough with a change output?
            let mut with_change = tx.clone();
            with_change.output.push(change_out.clone());
            let fee = fee_for(&with_change, fee_rate);
            if let Some(change) = total.checked_sub(amount).and_then(|r| r.checked_sub(fee))
                && change >= own.minimal_non_dust()
            {
                tx = with_change;
                if let Some(last) = tx.output.last_mut() {
                    last.value = change;
                }
                break;
            }
            // Enough without one (the remainder, below dust, goes to the fee)?
            if amount
                .checked_add(fee_for(&tx, fee_rate))
                .is_some_and(|need| total >= need)
            {
                break;
            }
        }
        let need = amount
            .checked_add(fee_for(&tx, fee_rate))
            .ok_or_else(|| invalid("amount and fee overflow".into()))?;
        if total < need {
            return Err(AdapterError::InsufficientFunds {
                need: self.coins(need.to_sat()),
                have: self.coins(total.to_sat()),
            });
        }
        Ok((tx, spent))
    }
}

/// The outpoints of the listed UTXOs, the whole list checked before any is chosen: txids
/// parse, none is listed twice, none is empty.
fn outpoints(utxos: &[Utxo]) -> Result<Vec<OutPoint>> {
    let mut seen = BTreeSet::new();
    let mut outpoints = Vec::with_capacity(utxos.len());
    for u in utxos {
        let txid: Txid = u
            .txid
            .parse()
            .map_err(|_| invalid(format!("utxo txid `{}` is not 64 hex digits", u.txid)))?;
        let outpoint = OutPoint { txid, vout: u.vout };
        if !seen.insert(outpoint) {
            return Err(invalid(format!("utxo {outpoint} is listed twice")));
        }
        if u.amount == 0 {
            return Err(invalid(format!("utxo {outpoint} has no value")));
        }
        outpoints.push(outpoint);
    }
    Ok(outpoints)
}
