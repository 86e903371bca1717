//! What a Bitcoin-family transaction does, as an approver reads it: the summary of a checked
//! PSBT (amounts, fee, fee rate, inputs) and of a signed transaction (as broadcast).

use bitcoin::absolute::LockTime;
use bitcoin::psbt::Psbt;
use bitcoin::transaction::Version;
use bitcoin::{Amount, CompressedPublicKey, ScriptBuf, Transaction, TxOut};

use super::Bitcoin;
use crate::{Summary, Transfer};

impl Bitcoin {
    /// The summary of a checked PSBT spending `spent` (this key's outputs, `own`).
    pub(super) fn unsigned_summary(
        &self,
        psbt: &Psbt,
        spent: &[TxOut],
        own: &ScriptBuf,
        fee: Amount,
        vsize: u64,
    ) -> Summary {
        let transfers = psbt
            .unsigned_tx
            .output
            .iter()
            .map(|o| self.transfer(o, o.script_pubkey == *own))
            .collect();
        Summary {
            chain: self.family.id.into(),
            network: self.net.name.into(),
            from: self.describe(own),
            transfers,
            fee: self.coins(fee.to_sat()),
            details: self.psbt_details(psbt, spent, fee, vsize),
        }
    }

    /// Size, fee rate, lock time, version and the inputs of a checked PSBT.
    fn psbt_details(
        &self,
        psbt: &Psbt,
        spent: &[TxOut],
        fee: Amount,
        vsize: u64,
    ) -> Vec<(String, String)> {
        let mut details = vec![
            (
                "inputs".to_string(),
                psbt.unsigned_tx.input.len().to_string(),
            ),
            (
                "virtual size (signed, at most)".into(),
                format!("{vsize} vB"),
            ),
            (
                "fee rate (at least)".into(),
                format!("{:.1} sat/vB", fee.to_sat() as f64 / vsize as f64),
            ),
        ];
        if psbt.unsigned_tx.lock_time != LockTime::ZERO {
            details.push((
                "lock time".into(),
                format!("{} (not valid before it)", psbt.unsigned_tx.lock_time),
            ));
        }
        if psbt.unsigned_tx.version != Version::TWO {
            details.push(("version".into(), psbt.unsigned_tx.version.0.to_string()));
        }
        for (i, (txin, prev)) in psbt.unsigned_tx.input.iter().zip(spent).enumerate() {
            let rbf = if txin.sequence.is_rbf() {
                ""
            } else {
                ", not replaceable"
            };
            let checked = if psbt.inputs[i].non_witness_utxo.is_some() {
                ", amount checked against the previous transaction"
            } else {
                ""
            };
            details.push((
                format!("input {i}"),
                format!(
                    "{} ({}{checked}), sequence {:#x}{rbf}",
                    txin.previous_output,
                    self.coins(prev.value.to_sat()),
                    txin.sequence.0
                ),
            ));
        }
        details
    }

    /// The summary of a signed transaction: its spent amounts are not in it, so neither is
    /// its fee.
    pub(super) fn signed_summary(&self, tx: &Transaction) -> Summary {
        // The sender, when the first input is a P2WPKH spend (signature, 33-byte key).
        let from = tx
            .input
            .first()
            .and_then(|i| i.witness.nth(1))
            .and_then(|k| CompressedPublicKey::from_slice(k).ok())
            .map(|pk| self.describe(&Self::own_script(&pk)))
            .unwrap_or_else(|| "unknown (not a P2WPKH spend)".into());
        let mut details = vec![
            ("txid".to_string(), tx.compute_txid().to_string()),
            ("virtual size".into(), format!("{} vB", tx.vsize())),
        ];
        for (i, input) in tx.input.iter().enumerate() {
            details.push((format!("input {i}"), input.previous_output.to_string()));
        }
        let transfers = tx
            .output
            .iter()
            .map(|o| {
                let t = self.transfer(o, false);
                Transfer {
                    change: t.to == from,
                    ..t
                }
            })
            .collect();
        Summary {
            chain: self.family.id.into(),
            network: self.net.name.into(),
            from,
            transfers,
            fee: "not in the transaction (the spent outputs' values are needed)".into(),
            details,
        }
    }

    /// One output as a transfer of the chain's coin.
    fn transfer(&self, o: &TxOut, change: bool) -> Transfer {
        Transfer {
            to: self.describe(&o.script_pubkey),
            amount: o.value.to_sat().to_string(),
            asset: self.family.symbol.into(),
            display: self.coins(o.value.to_sat()),
            change,
        }
    }
}
