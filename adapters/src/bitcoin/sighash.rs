//! BIP143 signature hashes (P2WPKH, SIGHASH_ALL) and the signed size they lead to: what the
//! payloads are and what the fee must pay for.

use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{Amount, Transaction, TxOut};

use crate::{AdapterError, Result};

/// The BIP143 signing data (P2WPKH, SIGHASH_ALL) of every input, given the outputs they spend:
/// the preimages whose double SHA-256 each input's signature signs. The enclaves hash them
/// themselves, so that a presignature never signs a bare digest (RUSTSEC-2025-0127).
pub(super) fn bip143_preimages(tx: &Transaction, spent: &[TxOut]) -> Result<Vec<Vec<u8>>> {
    let mut cache = SighashCache::new(tx);
    spent
        .iter()
        .enumerate()
        .map(|(i, prev)| {
            let bad = |e: String| AdapterError::MalformedTransaction(format!("input {i}: {e}"));
            let code = prev
                .script_pubkey
                .p2wpkh_script_code()
                .ok_or_else(|| bad("not a P2WPKH output".into()))?;
            let mut preimage = Vec::with_capacity(160);
            cache
                .segwit_v0_encode_signing_data_to(
                    &mut preimage,
                    i,
                    &code,
                    prev.value,
                    EcdsaSighashType::All,
                )
                .map_err(|e| bad(e.to_string()))?;
            Ok(preimage)
        })
        .collect()
}

/// Virtual size of a transaction once every input carries a P2WPKH witness (signature at its
/// longest, 72 bytes with the sighash byte): an upper bound.
pub(super) fn estimate_vsize(tx: &Transaction) -> u64 {
    let mut signed = tx.clone();
    for input in &mut signed.input {
        input.witness = bitcoin::Witness::from_slice(&[vec![0u8; 72], vec![0u8; 33]]);
    }
    signed.vsize() as u64
}

/// The fee a transaction needs at `fee_rate` sat/vB once signed.
pub(super) fn fee_for(tx: &Transaction, fee_rate: u64) -> Amount {
    Amount::from_sat(estimate_vsize(tx) * fee_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitcoin::Bitcoin;
    use bitcoin::consensus::encode::deserialize;
    use protocol::policy::HashFunction;

    /// BIP143's native P2WPKH example: the digest of input 1 and the published signed bytes'
    /// shape (the adapter's sighash code is rust-bitcoin's, checked against the BIP).
    #[test]
    fn bip143_known_answer() {
        let tx: Transaction = deserialize(&hex::decode("0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000").unwrap()).unwrap();
        // The BIP's input 1 key: 025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357.
        let pk = hex::decode("025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357")
            .unwrap();
        let cpk = Bitcoin::key(&pk).unwrap();
        assert_eq!(
            Bitcoin::own_script(&cpk).to_hex_string(),
            "00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1"
        );
        // The preimages the adapter's payloads carry (`bip143_preimages`, which `inspect`
        // uses); input 1 spends 6 BTC from the key above. Input 0 is a P2PK spend in the BIP,
        // whose digest this adapter never computes; its output does not enter input 1's.
        let own = TxOut {
            value: Amount::from_sat(600_000_000),
            script_pubkey: Bitcoin::own_script(&cpk),
        };
        let preimages = bip143_preimages(&tx, &[own.clone(), own.clone()]).unwrap();
        // Its double SHA-256 is the BIP's sighash of input 1.
        let digest = HashFunction::Sha256d.digest(&preimages[1]);
        assert_eq!(
            hex::encode(digest),
            "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"
        );
        // rust-bitcoin's own sighash agrees.
        use bitcoin::hashes::Hash;
        let theirs = SighashCache::new(&tx)
            .p2wpkh_signature_hash(1, &own.script_pubkey, own.value, EcdsaSighashType::All)
            .unwrap();
        assert_eq!(theirs.to_byte_array(), digest);
    }
}
