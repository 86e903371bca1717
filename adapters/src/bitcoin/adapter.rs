//! The [`ChainAdapter`] of a Bitcoin-family chain: builds, inspects, assembles and decodes
//! through the PSBT modules beside it.

use bitcoin::Transaction;
use bitcoin::consensus::encode::{deserialize, serialize};
use protocol::policy::{HashFunction, Scheme};

use super::Bitcoin;
use super::inspect::Inspected;
use super::psbt::{finalize, psbt_bytes};
use super::sighash::estimate_vsize;
use crate::{
    AdapterError, ChainAdapter, Intent, Payload, Result, RpcDialect, Signed, Summary, Unsigned,
    check_count, refuse_fields,
};

impl ChainAdapter for Bitcoin {
    fn chain(&self) -> &str {
        self.family.id
    }

    fn network(&self) -> &str {
        self.net.name
    }

    fn scheme(&self) -> Scheme {
        Scheme::EcdsaSecp256k1
    }

    fn rpc_dialect(&self) -> RpcDialect {
        RpcDialect::Bitcoind
    }

    fn address(&self, public_key: &[u8]) -> Result<String> {
        let pk = Self::key(public_key)?;
        Ok(self.describe(&Self::own_script(&pk)))
    }

    fn build(&self, public_key: &[u8], path: &[u32], intent: &Intent) -> Result<Unsigned> {
        let pk = Self::key(public_key)?;
        let bytes = match &intent.psbt {
            Some(p) => {
                refuse_fields(self.family.id, intent, &["psbt"]).map_err(|_| {
                    AdapterError::InvalidIntent(
                        "a PSBT intent carries the PSBT alone (its outputs and fee are in it)"
                            .into(),
                    )
                })?;
                psbt_bytes(p)?
            }
            None => {
                refuse_fields(
                    self.family.id,
                    intent,
                    &["to", "amount", "utxos", "fee_rate"],
                )?;
                self.build_psbt(&pk, intent)?.serialize()
            }
        };
        self.inspect(public_key, path, &bytes)
    }

    fn check_path(&self, path: &[u32]) -> Result<()> {
        self.check_coin(path)
    }

    fn inspect(&self, public_key: &[u8], path: &[u32], unsigned: &[u8]) -> Result<Unsigned> {
        self.check_coin(path)?;
        let pk = Self::key(public_key)?;
        let i = self.inspect_psbt(&pk, unsigned)?;
        Ok(Unsigned {
            tx: i.psbt.serialize(),
            payloads: i
                .preimages
                .into_iter()
                .map(|p| Payload::ecdsa(HashFunction::Sha256d, p, path))
                .collect(),
            summary: i.summary,
        })
    }

    fn assemble(&self, public_key: &[u8], unsigned: &[u8], sigs: &[Vec<u8>]) -> Result<Signed> {
        let pk = Self::key(public_key)?;
        let Inspected {
            mut psbt,
            digests,
            summary,
            ..
        } = self.inspect_psbt(&pk, unsigned)?;
        check_count(digests.len(), sigs.len())?;
        finalize(&mut psbt, &pk, &digests, sigs)?;
        let finalized = psbt.serialize();
        let tx = psbt.extract_tx().map_err(|e| {
            AdapterError::MalformedTransaction(format!("cannot extract the transaction: {e}"))
        })?;
        debug_assert!(tx.vsize() as u64 <= estimate_vsize(&tx));
        Ok(Signed {
            txid: tx.compute_txid().to_string(),
            raw: serialize(&tx),
            psbt: Some(finalized),
            summary,
        })
    }

    fn decode(&self, raw: &[u8]) -> Result<Summary> {
        let tx: Transaction = deserialize(raw)
            .map_err(|e| AdapterError::MalformedTransaction(format!("not a transaction: {e}")))?;
        Ok(self.signed_summary(&tx))
    }
}
