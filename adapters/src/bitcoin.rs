//! Bitcoin (and Bitcoin-family chains): P2WPKH spends with BIP143 signature hashes.
//!
//! The unsigned transaction is a PSBT (BIP174) whose inputs carry their `witness_utxo`, so
//! anyone can recompute the BIP143 digests — one payload per input — and the fee. An intent
//! either lists UTXOs held by the sending key (the adapter builds the PSBT: coin selection in
//! the order given, fee from a sat/vB rate, change back to the sender) or carries an unsigned
//! PSBT from a wallet; either way [`Bitcoin::assemble`] returns the finalized PSBT and the
//! network transaction.
//!
//! Addresses are handled per [`Family`] (bech32 prefixes, base58 version bytes), so another
//! chain of the family is one more table: see `docs/adding-a-chain.md`.

use bitcoin::absolute::LockTime;
use bitcoin::base58;
use bitcoin::bech32::{self, Fe32, Hrp};
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::psbt::{Psbt, PsbtSighashType};
use bitcoin::secp256k1::{self, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, PubkeyHash, ScriptBuf, ScriptHash, Sequence,
    Transaction, TxIn, TxOut, Txid, WitnessProgram, WitnessVersion,
};
use protocol::policy::Scheme;

use crate::{
    AdapterError, ChainAdapter, Intent, Payload, Result, RpcDialect, Signed, Summary, Transfer,
    Unsigned, check_count, format_units, parse_amount, refuse_fields, required, signature64,
};

/// Highest fee rate an intent may ask for, sat/vB (a typo guard).
pub const MAX_FEE_RATE: u64 = 5_000;

/// One network's address parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// Network name (`mainnet`, `testnet`…).
    pub name: &'static str,
    /// Bech32 human-readable part of segwit addresses.
    pub hrp: &'static str,
    /// Base58 version byte of P2PKH addresses.
    pub p2pkh: u8,
    /// Base58 version byte of P2SH addresses.
    pub p2sh: u8,
    /// The first component every signing path must have (SLIP-44 coin type on mainnets, 1 on
    /// test networks). BIP143 digests commit to no chain or network, so a key used at the same
    /// path on two Bitcoin-family chains would sign transactions valid on both; this keeps
    /// their keys apart.
    pub coin: u32,
}

/// A Bitcoin-family chain: its id, coin, and networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Registry id.
    pub id: &'static str,
    /// Coin symbol.
    pub symbol: &'static str,
    /// Networks, the first being the default.
    pub networks: &'static [Net],
}

/// Bitcoin.
pub const BITCOIN: Family = Family {
    id: "bitcoin",
    symbol: "BTC",
    networks: &[
        Net {
            name: "mainnet",
            hrp: "bc",
            p2pkh: 0x00,
            p2sh: 0x05,
            coin: 0,
        },
        Net {
            name: "testnet",
            hrp: "tb",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
        Net {
            name: "signet",
            hrp: "tb",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
        Net {
            name: "regtest",
            hrp: "bcrt",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
    ],
};

/// A Bitcoin-family chain on one network.
#[derive(Debug, Clone)]
pub struct Bitcoin {
    family: Family,
    net: Net,
}

/// The digests to sign, and the spent outputs.
struct Inspected {
    psbt: Psbt,
    digests: Vec<[u8; 32]>,
    summary: Summary,
}

impl Bitcoin {
    /// Bitcoin on `mainnet`, `testnet`, `signet` or `regtest`.
    pub fn new(network: &str) -> Result<Self> {
        Self::of(BITCOIN, network)
    }

    /// A chain of the family on one of its networks.
    pub fn of(family: Family, network: &str) -> Result<Self> {
        let net = family
            .networks
            .iter()
            .find(|n| n.name == network)
            .copied()
            .ok_or_else(|| AdapterError::UnknownNetwork {
                chain: family.id.into(),
                network: network.into(),
                known: family
                    .networks
                    .iter()
                    .map(|n| n.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(Self { family, net })
    }

    fn check_coin(&self, path: &[u32]) -> Result<()> {
        if path.first() != Some(&self.net.coin) {
            return Err(AdapterError::InvalidIntent(format!(
                "{} {} keys are used under m/{}/…: the first path component keeps the keys of \
                 Bitcoin-family chains and networks apart (their signatures commit to no chain)",
                self.family.id, self.net.name, self.net.coin
            )));
        }
        Ok(())
    }

    fn key(public_key: &[u8]) -> Result<CompressedPublicKey> {
        if public_key.len() != 33 {
            return Err(AdapterError::BadPublicKey(format!(
                "{} bytes; expected a 33-byte compressed secp256k1 key",
                public_key.len()
            )));
        }
        let pk = secp256k1::PublicKey::from_slice(public_key)
            .map_err(|_| AdapterError::BadPublicKey("not a secp256k1 point".into()))?;
        Ok(CompressedPublicKey(pk))
    }

    /// The P2WPKH output script of a key.
    fn own_script(pk: &CompressedPublicKey) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&pk.wpubkey_hash())
    }

    /// The address of an output script, when one describes it.
    pub fn address_of(&self, script: &ScriptBuf) -> Option<String> {
        let hrp = Hrp::parse(self.net.hrp).ok()?;
        if script.is_p2pkh() {
            let mut v = vec![self.net.p2pkh];
            v.extend_from_slice(&script.as_bytes()[3..23]);
            return Some(base58::encode_check(&v));
        }
        if script.is_p2sh() {
            let mut v = vec![self.net.p2sh];
            v.extend_from_slice(&script.as_bytes()[2..22]);
            return Some(base58::encode_check(&v));
        }
        let version = script.witness_version()?;
        let program = &script.as_bytes()[2..];
        bech32::segwit::encode(hrp, Fe32::try_from(version.to_num()).ok()?, program).ok()
    }

    /// The output script an address pays to; refuses addresses of other networks and chains.
    pub fn parse_address(&self, address: &str) -> Result<ScriptBuf> {
        let bad = |reason: String| AdapterError::BadAddress {
            address: address.to_string(),
            reason,
        };
        let lower = address.to_ascii_lowercase();
        if lower.starts_with(&format!("{}1", self.net.hrp)) {
            let (hrp, version, program) = bech32::segwit::decode(address)
                .map_err(|e| bad(format!("bad bech32 address: {e}")))?;
            if !hrp.as_str().eq_ignore_ascii_case(self.net.hrp) {
                return Err(bad(format!(
                    "not a {} {} address",
                    self.family.id, self.net.name
                )));
            }
            let version = WitnessVersion::try_from(version)
                .map_err(|e| bad(format!("witness version: {e}")))?;
            let program = WitnessProgram::new(version, &program)
                .map_err(|e| bad(format!("witness program: {e}")))?;
            return Ok(ScriptBuf::new_witness_program(&program));
        }
        if let Ok(data) = base58::decode_check(address) {
            if data.len() == 21 {
                let hash: [u8; 20] = data[1..].try_into().map_err(|_| bad("length".into()))?;
                if data[0] == self.net.p2pkh {
                    return Ok(ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(hash)));
                }
                if data[0] == self.net.p2sh {
                    return Ok(ScriptBuf::new_p2sh(&ScriptHash::from_byte_array(hash)));
                }
            }
            return Err(bad(format!(
                "a base58 address of another network or chain (not {} {})",
                self.family.id, self.net.name
            )));
        }
        Err(bad(format!(
            "not a {} {} address ({}1… or base58)",
            self.family.id, self.net.name, self.net.hrp
        )))
    }

    fn coins(&self, sat: u64) -> String {
        format!(
            "{} {}",
            format_units(u128::from(sat), 8),
            self.family.symbol
        )
    }

    fn describe(&self, script: &ScriptBuf) -> String {
        self.address_of(script)
            .unwrap_or_else(|| format!("script:{}", script.to_hex_string()))
    }

    /// Parses and checks an unsigned PSBT spending only this key's P2WPKH outputs, and
    /// computes its BIP143 digests.
    fn inspect_psbt(&self, pk: &CompressedPublicKey, bytes: &[u8]) -> Result<Inspected> {
        let bad = |m: String| AdapterError::MalformedTransaction(m);
        let psbt = Psbt::deserialize(bytes).map_err(|e| bad(format!("not a PSBT: {e}")))?;
        let own = Self::own_script(pk);
        if psbt.unsigned_tx.input.is_empty() || psbt.unsigned_tx.output.is_empty() {
            return Err(bad("a transaction needs inputs and outputs".into()));
        }
        let mut spent = Vec::with_capacity(psbt.inputs.len());
        for (i, input) in psbt.inputs.iter().enumerate() {
            let utxo = input.witness_utxo.as_ref().ok_or_else(|| {
                bad(format!(
                    "input {i} has no witness_utxo (a P2WPKH signature commits to the spent amount)"
                ))
            })?;
            if utxo.script_pubkey != own {
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
            spent.push(utxo.clone());
        }
        let total_in = spent
            .iter()
            .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
            .ok_or_else(|| bad("input values overflow".into()))?;
        let total_out = psbt
            .unsigned_tx
            .output
            .iter()
            .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
            .ok_or_else(|| bad("output values overflow".into()))?;
        let fee = total_in
            .checked_sub(total_out)
            .ok_or_else(|| bad(format!("outputs ({total_out}) exceed inputs ({total_in})")))?;
        let digests = bip143_digests(&psbt.unsigned_tx, &spent)?;
        let vsize = estimate_vsize(&psbt.unsigned_tx);
        if fee.to_sat() > MAX_FEE_RATE.saturating_mul(vsize) {
            return Err(bad(format!(
                "the fee ({}) is over {MAX_FEE_RATE} sat/vB",
                self.coins(fee.to_sat())
            )));
        }
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
        for (i, (txin, prev)) in psbt.unsigned_tx.input.iter().zip(&spent).enumerate() {
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
        let transfers = psbt
            .unsigned_tx
            .output
            .iter()
            .map(|o| Transfer {
                to: self.describe(&o.script_pubkey),
                amount: o.value.to_sat().to_string(),
                asset: self.family.symbol.into(),
                display: self.coins(o.value.to_sat()),
                change: o.script_pubkey == own,
            })
            .collect();
        let summary = Summary {
            chain: self.family.id.into(),
            network: self.net.name.into(),
            from: self.describe(&own),
            transfers,
            fee: self.coins(fee.to_sat()),
            details,
        };
        Ok(Inspected {
            psbt,
            digests,
            summary,
        })
    }

    fn build_psbt(&self, pk: &CompressedPublicKey, intent: &Intent) -> Result<Psbt> {
        let invalid = |m: String| AdapterError::InvalidIntent(m);
        let own = Self::own_script(pk);
        let to = self.parse_address(required(&intent.to, "to")?)?;
        let amount = u64::try_from(parse_amount(intent)?)
            .map_err(|_| invalid("amount exceeds 64 bits".into()))?;
        let amount = Amount::from_sat(amount);
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
        let mut seen = std::collections::BTreeSet::new();
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: vec![TxOut {
                value: amount,
                script_pubkey: to,
            }],
        };
        let mut spent = Vec::new();
        let mut total = Amount::ZERO;
        let change_out = TxOut {
            value: Amount::ZERO,
            script_pubkey: own.clone(),
        };
        // Check the whole list before choosing from it.
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
        let mut psbt = Psbt::from_unsigned_tx(tx)
            .map_err(|e| AdapterError::MalformedTransaction(e.to_string()))?;
        for (input, prev) in psbt.inputs.iter_mut().zip(spent) {
            input.witness_utxo = Some(prev);
            input.sighash_type = Some(EcdsaSighashType::All.into());
        }
        Ok(psbt)
    }
}

/// The BIP143 digest (P2WPKH, SIGHASH_ALL) of every input, given the outputs they spend.
fn bip143_digests(tx: &Transaction, spent: &[TxOut]) -> Result<Vec<[u8; 32]>> {
    let mut cache = SighashCache::new(tx);
    spent
        .iter()
        .enumerate()
        .map(|(i, prev)| {
            cache
                .p2wpkh_signature_hash(i, &prev.script_pubkey, prev.value, EcdsaSighashType::All)
                .map(|h| h.to_byte_array())
                .map_err(|e| AdapterError::MalformedTransaction(format!("input {i}: {e}")))
        })
        .collect()
}

/// Virtual size of a transaction once every input carries a P2WPKH witness (signature at its
/// longest, 72 bytes with the sighash byte): an upper bound.
fn estimate_vsize(tx: &Transaction) -> u64 {
    let mut signed = tx.clone();
    for input in &mut signed.input {
        input.witness = bitcoin::Witness::from_slice(&[vec![0u8; 72], vec![0u8; 33]]);
    }
    signed.vsize() as u64
}

fn fee_for(tx: &Transaction, fee_rate: u64) -> Amount {
    Amount::from_sat(estimate_vsize(tx) * fee_rate)
}

/// Parses a PSBT given as base64 (BIP174's text form) or hex.
fn psbt_bytes(s: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(b);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| AdapterError::InvalidIntent("`psbt` is neither base64 nor hex".into()))
}

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
                .digests
                .iter()
                .map(|d| Payload {
                    scheme: Scheme::EcdsaSecp256k1,
                    data: d.to_vec(),
                    path: path.to_vec(),
                })
                .collect(),
            summary: i.summary,
        })
    }

    fn assemble(
        &self,
        public_key: &[u8],
        unsigned: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<Signed> {
        let pk = Self::key(public_key)?;
        let Inspected {
            mut psbt,
            digests,
            summary,
        } = self.inspect_psbt(&pk, unsigned)?;
        check_count(digests.len(), signatures.len())?;
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
            input.final_script_witness = Some(bitcoin::Witness::p2wpkh(&sig, &pk.0));
            // BIP174 finalizer: drop what only signers need.
            input.partial_sigs.clear();
            input.sighash_type = None;
            input.bip32_derivation.clear();
        }
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
                let to = self.describe(&o.script_pubkey);
                Transfer {
                    change: to == from,
                    to,
                    amount: o.value.to_sat().to_string(),
                    asset: self.family.symbol.into(),
                    display: self.coins(o.value.to_sat()),
                }
            })
            .collect();
        Ok(Summary {
            chain: self.family.id.into(),
            network: self.net.name.into(),
            from,
            transfers,
            fee: "not in the transaction (the spent outputs' values are needed)".into(),
            details,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Utxo;
    use k256::ecdsa::SigningKey;
    use k256::ecdsa::signature::hazmat::PrehashSigner;

    fn key() -> (SigningKey, Vec<u8>) {
        let sk = SigningKey::from_bytes(&[0x11u8; 32].into()).unwrap();
        let pk = sk
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec();
        (sk, pk)
    }

    fn sign(sk: &SigningKey, d: &[u8]) -> Vec<u8> {
        let s: k256::ecdsa::Signature = sk.sign_prehash(d).unwrap();
        s.to_bytes().to_vec()
    }

    fn utxo(n: u8, amount: u64) -> Utxo {
        Utxo {
            txid: hex::encode([n; 32]),
            vout: u32::from(n),
            amount,
        }
    }

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
        // The digests the adapter's payloads come from (`bip143_digests`, which `inspect`
        // uses); input 1 spends 6 BTC from the key above. Input 0 is a P2PK spend in the BIP,
        // whose digest this adapter never computes; its output does not enter input 1's.
        let own = TxOut {
            value: Amount::from_sat(600_000_000),
            script_pubkey: Bitcoin::own_script(&cpk),
        };
        let digests = bip143_digests(&tx, &[own.clone(), own]).unwrap();
        let u = &digests;
        assert_eq!(
            hex::encode(u[1]),
            "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"
        );
    }

    /// BIP173's test vector: the P2WPKH address of the generator point.
    #[test]
    fn bip173_addresses() {
        let g = hex::decode("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
            .unwrap();
        let want = [
            ("mainnet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ("testnet", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
            ("regtest", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
        ];
        for (net, addr) in want {
            let btc = Bitcoin::new(net).unwrap();
            assert_eq!(btc.address(&g).unwrap(), addr);
            let spk = btc.parse_address(addr).unwrap();
            assert_eq!(btc.address_of(&spk).unwrap(), addr);
        }
        // BIP173: upper case is valid too (QR codes use it).
        let upper = Bitcoin::new("mainnet").unwrap();
        assert_eq!(
            upper
                .parse_address("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
                .unwrap()
                .to_hex_string(),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        // Other address types round-trip: P2PKH, P2SH, P2WSH, P2TR (BIP350 vector).
        let btc = Bitcoin::new("mainnet").unwrap();
        for a in [
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ] {
            let spk = btc.parse_address(a).unwrap();
            assert_eq!(btc.address_of(&spk).unwrap(), a);
        }
    }

    #[test]
    fn builds_with_change_and_assembles() {
        let (sk, pk) = key();
        let btc = Bitcoin::new("regtest").unwrap();
        let intent = Intent {
            to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
            amount: Some("100000".into()),
            utxos: Some(vec![utxo(1, 70_000), utxo(2, 50_000), utxo(3, 10_000)]),
            fee_rate: Some(2),
            ..Default::default()
        };
        let u = btc.build(&pk, &[1, 7], &intent).unwrap();
        // Two inputs cover 100 000 + fee; the third is not spent.
        assert_eq!(u.payloads.len(), 2);
        assert!(
            u.payloads
                .iter()
                .all(|p| p.path == vec![1, 7] && p.data.len() == 32)
        );
        let change = u.summary.transfers.iter().find(|t| t.change).unwrap();
        let fee: u64 = 120_000 - 100_000 - change.amount.parse::<u64>().unwrap();
        let signed = btc
            .assemble(
                &pk,
                &u.tx,
                &u.payloads
                    .iter()
                    .map(|p| sign(&sk, &p.data))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let tx: Transaction = deserialize(&signed.raw).unwrap();
        // The fee pays at least the asked rate for the real size, and the estimate is tight.
        assert!(
            fee >= 2 * tx.vsize() as u64,
            "fee {fee} vsize {}",
            tx.vsize()
        );
        assert!(
            fee <= 2 * (tx.vsize() as u64 + 2),
            "fee {fee} vsize {}",
            tx.vsize()
        );
        let psbt = Psbt::deserialize(signed.psbt.as_ref().unwrap()).unwrap();
        assert!(psbt.inputs.iter().all(|i| i.final_script_witness.is_some()));
        let d = btc.decode(&signed.raw).unwrap();
        assert_eq!(d.from, btc.address(&pk).unwrap());
        assert_eq!(d.transfers[0].amount, "100000");
        // The same PSBT, given as a PSBT intent (base64), yields the same payloads.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&u.tx);
        let again = btc
            .build(
                &pk,
                &[1, 7],
                &Intent {
                    psbt: Some(b64),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(again.payloads, u.payloads);
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let (sk, pk) = key();
        let btc = Bitcoin::new("regtest").unwrap();
        let ok = Intent {
            to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
            amount: Some("10000".into()),
            utxos: Some(vec![utxo(1, 70_000)]),
            fee_rate: Some(2),
            ..Default::default()
        };
        assert!(btc.build(&pk, &[1], &ok).is_ok());
        for (to, want) in [
            (
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                "not a bitcoin regtest",
            ),
            ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081", "bech32"),
            ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "another network"),
            (
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "not a bitcoin regtest",
            ),
        ] {
            let e = btc
                .build(
                    &pk,
                    &[1],
                    &Intent {
                        to: Some(to.into()),
                        ..ok.clone()
                    },
                )
                .unwrap_err();
            assert!(matches!(e, AdapterError::BadAddress { .. }), "{e}");
            assert!(e.to_string().contains(want), "{to}: {e}");
        }
        let e = btc
            .build(
                &pk,
                &[1],
                &Intent {
                    amount: Some("1000000".into()),
                    ..ok.clone()
                },
            )
            .unwrap_err();
        assert!(matches!(e, AdapterError::InsufficientFunds { .. }), "{e}");
        let e = btc
            .build(
                &pk,
                &[1],
                &Intent {
                    amount: Some("100".into()),
                    ..ok.clone()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("dust"), "{e}");
        let e = btc
            .build(
                &pk,
                &[1],
                &Intent {
                    fee_rate: Some(1_000_000),
                    ..ok.clone()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("fee rate"), "{e}");
        let e = btc
            .build(
                &pk,
                &[1],
                &Intent {
                    utxos: Some(vec![utxo(1, 70_000), utxo(1, 70_000)]),
                    ..ok.clone()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = btc
            .build(
                &pk,
                &[1],
                &Intent {
                    nonce: Some(1),
                    ..ok.clone()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("nonce"), "{e}");
        // A PSBT spending another key's output is refused.
        let other = SigningKey::from_bytes(&[0x12u8; 32].into()).unwrap();
        let other_pk = other
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec();
        let u = btc.build(&other_pk, &[1], &ok).unwrap();
        let e = btc.inspect(&pk, &[1], &u.tx).unwrap_err();
        assert!(e.to_string().contains("does not spend this key"), "{e}");
        // Wrong signatures, wrong counts.
        let u = btc.build(&pk, &[1], &ok).unwrap();
        assert!(matches!(
            btc.assemble(&pk, &u.tx, &[sign(&other, &u.payloads[0].data)]),
            Err(AdapterError::BadSignature { index: 0, .. })
        ));
        assert!(matches!(
            btc.assemble(&pk, &u.tx, &[]),
            Err(AdapterError::SignatureCount { .. })
        ));
        assert!(
            btc.assemble(&pk, &u.tx, &[sign(&sk, &u.payloads[0].data)])
                .is_ok()
        );
        for junk in [&b""[..], &b"psbt\xff"[..], &[0u8; 50][..]] {
            assert!(btc.inspect(&pk, &[1], junk).is_err());
            assert!(btc.decode(junk).is_err());
        }
        assert!(Bitcoin::new("mainnet-beta").is_err());
        // Regtest keys live under m/1/…: another first component (or none) is refused, so a
        // signature for one Bitcoin-family network cannot be asked under another's path.
        for path in [&[][..], &[0][..], &[2, 1][..]] {
            let e = btc.build(&pk, path, &ok).unwrap_err();
            assert!(e.to_string().contains("m/1/"), "{e}");
            assert!(btc.check_path(path).is_err());
        }
        assert!(btc.check_path(&[1, 0]).is_ok());
        assert!(matches!(
            btc.address(&pk[..32]),
            Err(AdapterError::BadPublicKey(_))
        ));
    }
}
