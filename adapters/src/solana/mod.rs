//! Solana: system transfers and SPL token transfers, signed by the cluster's Ed25519 key.
//!
//! The unsigned transaction is the serialized legacy message, and it is also the one payload:
//! Ed25519 signs the message itself, not a digest. The sending key pays the fee and is the only
//! signer. A token transfer creates the recipient's associated token account when it is missing
//! (idempotently) and uses `transfer_checked`, so the mint's decimals are checked on chain.

mod summary;

use solana_hash::Hash;
use solana_message::Message;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::Transaction;
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent;

use protocol::policy::Scheme;

use crate::{
    AdapterError, ChainAdapter, Intent, Payload, Result, RpcDialect, Signed, Summary, Unsigned,
    check_count, parse_amount_u64, refuse_fields, required, signature64,
};

/// Lamports per SOL.
const DECIMALS: u8 = 9;
/// The base fee per signature, lamports.
const FEE_PER_SIGNATURE: u64 = 5_000;
/// The largest transaction the network accepts, bytes.
const PACKET_DATA_SIZE: usize = 1232;

const NETWORKS: &[&str] = &["mainnet", "devnet", "testnet", "localnet"];

/// The compute budget program (priority fees).
const COMPUTE_BUDGET: Pubkey =
    Pubkey::from_str_const("ComputeBudget111111111111111111111111111111");
/// Compute units an instruction may use when no limit is set, and the most a transaction may.
const DEFAULT_UNITS_PER_INSTRUCTION: u64 = 200_000;
const MAX_UNITS: u64 = 1_400_000;

/// Solana on one network (addresses and transactions look the same on all of them; the
/// network names the cluster whose blockhash the transaction carries).
#[derive(Debug, Clone)]
pub struct Solana {
    network: &'static str,
}

impl Solana {
    /// The adapter for `mainnet`, `devnet`, `testnet` or `localnet`.
    pub fn new(network: &str) -> Result<Self> {
        let network = NETWORKS.iter().find(|n| **n == network).ok_or_else(|| {
            AdapterError::UnknownNetwork {
                chain: "solana".into(),
                network: network.into(),
                known: NETWORKS.join(", "),
            }
        })?;
        Ok(Self { network })
    }

    fn key(public_key: &[u8]) -> Result<Pubkey> {
        let bytes: [u8; 32] = public_key.try_into().map_err(|_| {
            AdapterError::BadPublicKey(format!(
                "{} bytes; a Solana key is a 32-byte Ed25519 key",
                public_key.len()
            ))
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| AdapterError::BadPublicKey("not an Ed25519 point".into()))?;
        Ok(Pubkey::new_from_array(bytes))
    }

    fn message(&self, from: &Pubkey, unsigned: &[u8]) -> Result<Message> {
        let message: Message = decode_canonical(
            unsigned,
            "message",
            "not a canonical Solana message (trailing or non-canonical bytes)",
        )?;
        if message.account_keys.first() != Some(from) {
            return Err(AdapterError::MalformedTransaction(
                "the sending key is not the fee payer".into(),
            ));
        }
        if message.header.num_required_signatures != 1 {
            return Err(AdapterError::MalformedTransaction(format!(
                "the message needs {} signatures; the cluster provides the fee payer's only",
                message.header.num_required_signatures
            )));
        }
        for ix in &message.instructions {
            let n = message.account_keys.len();
            if usize::from(ix.program_id_index) >= n
                || ix.accounts.iter().any(|a| usize::from(*a) >= n)
            {
                return Err(AdapterError::MalformedTransaction(
                    "an instruction refers to a missing account".into(),
                ));
            }
        }
        Ok(message)
    }
}

/// Decodes a Solana `what` (message or transaction) from bincode, refusing bytes that do not
/// encode it back exactly (trailing or non-canonical bytes) with `non_canonical`.
fn decode_canonical<T>(bytes: &[u8], what: &str, non_canonical: &str) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let v: T = bincode::deserialize(bytes)
        .map_err(|e| AdapterError::MalformedTransaction(format!("not a Solana {what}: {e}")))?;
    if bincode::serialize(&v).ok().as_deref() != Some(bytes) {
        return Err(AdapterError::MalformedTransaction(non_canonical.into()));
    }
    Ok(v)
}

/// Parses a base58 Solana address.
pub fn parse_address(s: &str) -> Result<Pubkey> {
    s.parse::<Pubkey>().map_err(|_| AdapterError::BadAddress {
        address: s.to_string(),
        reason: "not a base58 Solana address (32 bytes)".into(),
    })
}

/// The associated token account of `owner` for `mint` (where SPL transfers land).
pub fn associated_token_address(owner: &str, mint: &str) -> Result<String> {
    Ok(get_associated_token_address(&parse_address(owner)?, &parse_address(mint)?).to_string())
}

impl ChainAdapter for Solana {
    fn chain(&self) -> &str {
        "solana"
    }

    fn network(&self) -> &str {
        self.network
    }

    fn scheme(&self) -> Scheme {
        Scheme::EddsaEd25519
    }

    fn rpc_dialect(&self) -> RpcDialect {
        // A message names no cluster: the blockhash it carries ties it to one. Checking the
        // endpoint's genesis hash keeps a "devnet" transaction from getting a mainnet blockhash.
        RpcDialect::Solana {
            genesis: match self.network {
                "mainnet" => Some("5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"),
                "devnet" => Some("EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG"),
                "testnet" => Some("4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY"),
                _ => None,
            },
        }
    }

    fn address(&self, public_key: &[u8]) -> Result<String> {
        Ok(Self::key(public_key)?.to_string())
    }

    fn build(&self, public_key: &[u8], path: &[u32], intent: &Intent) -> Result<Unsigned> {
        refuse_fields(
            "solana",
            intent,
            &["to", "amount", "token", "decimals", "recent_blockhash"],
        )?;
        let from = Self::key(public_key)?;
        let to = parse_address(required(&intent.to, "to")?)?;
        let amount = parse_amount_u64(intent)?;
        let blockhash = required(&intent.recent_blockhash, "recent_blockhash")?;
        let blockhash: Hash = blockhash.parse().map_err(|_| {
            AdapterError::InvalidIntent(format!(
                "recent_blockhash `{blockhash}` is not a base58 hash"
            ))
        })?;
        let instructions = match &intent.token {
            None => {
                if intent.decimals.is_some() {
                    return Err(AdapterError::InvalidIntent(
                        "`decimals` applies to token transfers only".into(),
                    ));
                }
                vec![solana_system_interface::instruction::transfer(
                    &from, &to, amount,
                )]
            }
            Some(mint) => {
                let mint = parse_address(mint)?;
                let decimals = intent.decimals.ok_or_else(|| {
                    AdapterError::InvalidIntent(
                        "`decimals` (the mint's) is required for a token transfer".into(),
                    )
                })?;
                let program = spl_token_interface::id();
                let source = get_associated_token_address(&from, &mint);
                let destination = get_associated_token_address(&to, &mint);
                vec![
                    create_associated_token_account_idempotent(&from, &to, &mint, &program),
                    spl_token_interface::instruction::transfer_checked(
                        &program,
                        &source,
                        &mint,
                        &destination,
                        &from,
                        &[],
                        amount,
                        decimals,
                    )
                    .map_err(|e| AdapterError::InvalidIntent(e.to_string()))?,
                ]
            }
        };
        let message = Message::new_with_blockhash(&instructions, Some(&from), &blockhash);
        self.inspect(public_key, path, &message.serialize())
    }

    fn inspect(&self, public_key: &[u8], path: &[u32], unsigned: &[u8]) -> Result<Unsigned> {
        if !path.is_empty() {
            return Err(AdapterError::InvalidIntent(
                "Ed25519 keys have no derivation paths".into(),
            ));
        }
        let from = Self::key(public_key)?;
        let message = self.message(&from, unsigned)?;
        if unsigned.len() + 1 + 64 > PACKET_DATA_SIZE {
            return Err(AdapterError::InvalidIntent(format!(
                "the transaction would be {} bytes; Solana's limit is {PACKET_DATA_SIZE}",
                unsigned.len() + 65
            )));
        }
        Ok(Unsigned {
            tx: unsigned.to_vec(),
            payloads: vec![Payload::eddsa(unsigned.to_vec())],
            summary: self.summarize(&message)?,
        })
    }

    fn assemble(&self, public_key: &[u8], unsigned: &[u8], sigs: &[Vec<u8>]) -> Result<Signed> {
        let from = Self::key(public_key)?;
        let message = self.message(&from, unsigned)?;
        check_count(1, sigs.len())?;
        let sig = signature64(0, &sigs[0])?;
        let tx = Transaction {
            signatures: vec![Signature::from(sig)],
            message,
        };
        tx.verify().map_err(|_| AdapterError::BadSignature {
            index: 0,
            reason: "does not verify under the sending key".into(),
        })?;
        let raw = bincode::serialize(&tx)
            .map_err(|e| AdapterError::MalformedTransaction(e.to_string()))?;
        let summary = self.summarize(&tx.message)?;
        Ok(Signed {
            raw,
            txid: tx.signatures[0].to_string(),
            psbt: None,
            summary,
        })
    }

    fn decode(&self, raw: &[u8]) -> Result<Summary> {
        let tx: Transaction =
            decode_canonical(raw, "transaction", "trailing or non-canonical bytes")?;
        if tx.signatures.len() != usize::from(tx.message.header.num_required_signatures)
            || tx.verify().is_err()
        {
            return Err(AdapterError::MalformedTransaction(
                "signatures missing or invalid".into(),
            ));
        }
        let mut s = self.summarize(&tx.message)?;
        if let Some(sig) = tx.signatures.first() {
            s.details.push(("signature".into(), sig.to_string()));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::build_err;
    use ed25519_dalek::{Signer, SigningKey};

    const BLOCKHASH: &str = "9zrUHnA1nCByPksy3aL8tQ47vqdaG2vnFs4HrxgcZj4F";

    fn key(seed: u8) -> (SigningKey, Vec<u8>) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = sk.verifying_key().to_bytes().to_vec();
        (sk, pk)
    }

    /// A transfer of `amount` base units to `to`, on [`BLOCKHASH`].
    fn transfer(to: &Pubkey, amount: &str) -> Intent {
        Intent {
            to: Some(to.to_string()),
            amount: Some(amount.into()),
            recent_blockhash: Some(BLOCKHASH.into()),
            ..Default::default()
        }
    }

    /// Known answer: a system transfer message laid out by hand from the Solana wire format
    /// (header, short-vec account keys, blockhash, compiled instruction with the little-endian
    /// `Transfer` discriminant 2 and lamports), independent of solana-message.
    #[test]
    fn system_transfer_matches_the_wire_format() {
        let (_, pk) = key(0x33);
        let to = Pubkey::new_from_array([7u8; 32]);
        let sol = Solana::new("localnet").unwrap();
        let u = sol.build(&pk, &[], &transfer(&to, "1234567")).unwrap();
        let mut want = vec![1u8, 0, 1, 3]; // 1 signer, 0 ro-signed, 1 ro-unsigned; 3 keys
        want.extend_from_slice(&pk);
        want.extend_from_slice(&[7u8; 32]);
        want.extend_from_slice(&[0u8; 32]); // the system program
        want.extend_from_slice(&BLOCKHASH.parse::<Hash>().unwrap().to_bytes());
        want.extend_from_slice(&[1, 2, 2, 0, 1, 12, 2, 0, 0, 0]);
        want.extend_from_slice(&1_234_567u64.to_le_bytes());
        assert_eq!(hex::encode(&u.tx), hex::encode(&want));
        assert_eq!(u.payloads[0].data, want);
        assert_eq!(u.summary.transfers[0].display, "0.001234567 SOL");
    }

    /// Known answer published by another implementation (Trust Wallet's wallet-core,
    /// `tests/chains/Solana/TransactionTests.cpp`, `TransferMessageData`): 42 lamports from
    /// 6eoo7i… to 56B334…, blockhash of zeros.
    #[test]
    fn published_transfer_message() {
        let from: Pubkey = "6eoo7i1khGhVm8tLBMAdq4ax2FxkKP4G7mCcfHyr3STN"
            .parse()
            .unwrap();
        let sol = Solana::new("mainnet").unwrap();
        let u = sol
            .build(
                &from.to_bytes(),
                &[],
                &Intent {
                    to: Some("56B334QvCDMSirsmtEJGfanZm8GqeQarrSjdAb2MbeNM".into()),
                    amount: Some("42".into()),
                    recent_blockhash: Some("11111111111111111111111111111111".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            hex::encode(&u.tx),
            concat!(
                "0100010353f9d600fe925083bb399907ea648d23a6a081fc7e9059202fd725f7edd281dd3cc1ff9ba3c7a876c8",
                "082df2f8a36ea9342ce3819dd4b6fa72d4a18e04a5363a00000000000000000000000000000000000000000000",
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000010202",
                "00010c020000002a00000000000000"
            )
        );
    }

    #[test]
    fn token_transfer_round_trips() {
        let (sk, pk) = key(0x33);
        let sol = Solana::new("mainnet").unwrap();
        let mint = Pubkey::new_from_array([9u8; 32]);
        let to = Pubkey::new_from_array([8u8; 32]);
        let u = sol
            .build(
                &pk,
                &[],
                &Intent {
                    token: Some(mint.to_string()),
                    decimals: Some(6),
                    ..transfer(&to, "250000")
                },
            )
            .unwrap();
        let dest = get_associated_token_address(&to, &mint);
        assert_eq!(
            u.summary.transfers[0].display,
            format!("0.25 of mint {mint} (into token account {dest})")
        );
        // The recipient is named: the destination is the token account created for them.
        assert_eq!(u.summary.transfers[0].to, to.to_string());
        assert_eq!(u.summary.details.len(), 2, "{:?}", u.summary.details);
        assert!(
            u.summary
                .details
                .iter()
                .any(|(_, v)| v.contains("create the token account"))
        );
        let sig = sk.sign(&u.payloads[0].data).to_bytes().to_vec();
        let signed = sol.assemble(&pk, &u.tx, &[sig]).unwrap();
        let decoded = sol.decode(&signed.raw).unwrap();
        assert_eq!(decoded.transfers, u.summary.transfers);
        assert_eq!(decoded.from, sol.address(&pk).unwrap());
        // Another key's signature, a short one, two of them: refused.
        let (other, _) = key(0x34);
        let bad = other.sign(&u.payloads[0].data).to_bytes().to_vec();
        assert!(matches!(
            sol.assemble(&pk, &u.tx, &[bad]),
            Err(AdapterError::BadSignature { .. })
        ));
        assert!(sol.assemble(&pk, &u.tx, &[vec![0; 63]]).is_err());
        assert!(matches!(
            sol.assemble(&pk, &u.tx, &[vec![0; 64], vec![0; 64]]),
            Err(AdapterError::SignatureCount { .. })
        ));
    }

    /// A priority fee (compute budget instructions) is in the fee an approver sees.
    #[test]
    fn priority_fees_are_shown() {
        let (_, pk) = key(0x33);
        let from = Pubkey::new_from_array(pk.clone().try_into().unwrap());
        let ixs = [
            solana_instruction::Instruction::new_with_bytes(
                COMPUTE_BUDGET,
                &[2, 0xe0, 0x93, 0x04, 0x00], // SetComputeUnitLimit(300 000)
                vec![],
            ),
            solana_instruction::Instruction::new_with_bytes(
                COMPUTE_BUDGET,
                &[3, 0x40, 0x42, 0x0f, 0, 0, 0, 0, 0], // SetComputeUnitPrice(1 000 000)
                vec![],
            ),
            solana_system_interface::instruction::transfer(
                &from,
                &Pubkey::new_from_array([7u8; 32]),
                1,
            ),
        ];
        let message =
            Message::new_with_blockhash(&ixs, Some(&from), &BLOCKHASH.parse::<Hash>().unwrap());
        let u = Solana::new("mainnet")
            .unwrap()
            .inspect(&pk, &[], &message.serialize())
            .unwrap();
        assert_eq!(
            u.summary.fee,
            "at most 0.000305 SOL (base 0.000005 + priority 0.0003)"
        );
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let (_, pk) = key(0x33);
        let sol = Solana::new("devnet").unwrap();
        let ok = transfer(&Pubkey::new_from_array([7u8; 32]), "1");
        let e = build_err(&sol, &pk, &[], &ok, |i| i.to = Some("0OIl".into()));
        assert!(matches!(e, AdapterError::BadAddress { .. }), "{e}");
        let e = build_err(&sol, &pk, &[], &ok, |i| i.recent_blockhash = None);
        assert!(e.to_string().contains("recent_blockhash"), "{e}");
        let e = build_err(&sol, &pk, &[], &ok, |i| {
            i.token = Some(Pubkey::new_from_array([9u8; 32]).to_string())
        });
        assert!(e.to_string().contains("decimals"), "{e}");
        let e = build_err(&sol, &pk, &[], &ok, |i| i.nonce = Some(1));
        assert!(e.to_string().contains("nonce"), "{e}");
        assert!(matches!(
            sol.build(&pk[..31], &[], &ok),
            Err(AdapterError::BadPublicKey(_))
        ));
        assert!(sol.build(&pk, &[0], &ok).is_err());
        // A message paid by someone else is refused.
        let (_, other) = key(0x35);
        let u = sol.build(&other, &[], &ok).unwrap();
        let e = sol.inspect(&pk, &[], &u.tx).unwrap_err();
        assert!(e.to_string().contains("fee payer"), "{e}");
        for junk in [&b""[..], &[1u8, 0, 1][..], &[0xff; 100][..]] {
            assert!(sol.inspect(&pk, &[], junk).is_err());
            assert!(sol.decode(junk).is_err());
        }
        let mut trailing = u.tx.clone();
        trailing.push(0);
        assert!(sol.inspect(&other, &[], &trailing).is_err());
        assert!(Solana::new("mainnet-beta").is_err());
    }
}
