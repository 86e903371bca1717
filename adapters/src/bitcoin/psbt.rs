//! PSBT in and out: a PSBT given as text (base64 or hex), the outputs a PSBT spends, and the
//! BIP174 finalizer that puts the cluster's signatures in as P2WPKH witnesses.

use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::{self, Secp256k1};
use bitcoin::sighash::EcdsaSighashType;
use bitcoin::{CompressedPublicKey, Witness};

use crate::{AdapterError, Result, signature64};

/// Parses a PSBT given as base64 (BIP174's text form) or hex.
pub(super) fn psbt_bytes(s: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(b);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| AdapterError::InvalidIntent("`psbt` is neither base64 nor hex".into()))
}

/// The outputs a PSBT spends, in input order: `(scriptPubKey, satoshi)` from each input's
/// `witness_utxo` (what a script interpreter needs to verify the signed transaction).
pub fn spent_outputs(psbt: &[u8]) -> Result<Vec<(Vec<u8>, u64)>> {
    let psbt = Psbt::deserialize(psbt)
        .map_err(|e| AdapterError::MalformedTransaction(format!("not a PSBT: {e}")))?;
    psbt.inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            input
                .witness_utxo
                .as_ref()
                .map(|o| (o.script_pubkey.to_bytes(), o.value.to_sat()))
                .ok_or_else(|| {
                    AdapterError::MalformedTransaction(format!("input {i} has no witness_utxo"))
                })
        })
        .collect()
}

/// Finalizes every input of a checked PSBT with its signature (r‖s over its digest, one per
/// input, checked against the key; s normalised to the lower half) as a P2WPKH witness.
pub(super) fn finalize(
    psbt: &mut Psbt,
    pk: &CompressedPublicKey,
    digests: &[[u8; 32]],
    signatures: &[Vec<u8>],
) -> Result<()> {
    let secp = Secp256k1::verification_only();
    for (i, (digest, sig)) in digests.iter().zip(signatures).enumerate() {
        let compact = signature64(i, sig)?;
        let mut s = secp256k1::ecdsa::Signature::from_compact(&compact).map_err(|_| {
            AdapterError::BadSignature {
                index: i,
                reason: "not r‖s".into(),
            }
        })?;
        s.normalize_s(); // BIP146 LOW_S: standardness needs the lower half
        secp.verify_ecdsa(&secp256k1::Message::from_digest(*digest), &s, &pk.0)
            .map_err(|_| AdapterError::BadSignature {
                index: i,
                reason: "does not verify under the sending key".into(),
            })?;
        let sig = bitcoin::ecdsa::Signature {
            signature: s,
            sighash_type: EcdsaSighashType::All,
        };
        let input = &mut psbt.inputs[i];
        input.final_script_witness = Some(Witness::p2wpkh(&sig, &pk.0));
        // BIP174 finalizer: drop what only signers need.
        input.partial_sigs.clear();
        input.sighash_type = None;
        input.bip32_derivation.clear();
    }
    Ok(())
}
