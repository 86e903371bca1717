//! What a Solana message does, as an approver reads it: its SOL and SPL token transfers, the
//! token accounts it creates, its other instructions, and its fee (base and priority).

use std::collections::BTreeMap;

use solana_message::Message;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_pubkey::Pubkey;
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_token_interface::instruction::TokenInstruction;

use super::{
    COMPUTE_BUDGET, DECIMALS, DEFAULT_UNITS_PER_INSTRUCTION, FEE_PER_SIGNATURE, MAX_UNITS, Solana,
};
use crate::{AdapterError, Result, Summary, Transfer, format_units};

/// Token accounts a message creates: account -> (owner, mint).
type Created = BTreeMap<Pubkey, (Pubkey, Pubkey)>;

/// The key of an instruction's `i`-th account, if it has one.
fn key_at(keys: &[Pubkey], ix: &CompiledInstruction, i: usize) -> Option<Pubkey> {
    ix.accounts
        .get(i)
        .and_then(|k| keys.get(usize::from(*k)))
        .copied()
}

/// The associated token accounts the message creates (for an owner and a mint).
fn created_token_accounts(message: &Message) -> Created {
    let keys = &message.account_keys;
    let ata_program = spl_associated_token_account_interface::program::id();
    let mut created = BTreeMap::new();
    for ix in &message.instructions {
        if keys.get(usize::from(ix.program_id_index)) == Some(&ata_program)
            && (ix.data.is_empty() || ix.data == [0] || ix.data == [1])
            && let (Some(ata), Some(owner), Some(mint)) = (
                key_at(keys, ix, 1),
                key_at(keys, ix, 2),
                key_at(keys, ix, 3),
            )
            && get_associated_token_address(&owner, &mint) == ata
        {
            created.insert(ata, (owner, mint));
        }
    }
    created
}

/// The instructions of a message read one by one.
struct Reading<'a> {
    keys: &'a [Pubkey],
    from: &'a Pubkey,
    created: Created,
    transfers: Vec<Transfer>,
    details: Vec<(String, String)>,
    unit_limit: Option<u64>,
    unit_price: u64,
    other_instructions: u64,
}

impl Reading<'_> {
    /// Reads instruction `n`: a transfer, a compute budget, a token account creation, or
    /// something else shown as it is.
    fn instruction(&mut self, n: usize, ix: &CompiledInstruction) -> Result<()> {
        let keys = self.keys;
        let account = |i: usize| -> Result<Pubkey> {
            key_at(keys, ix, i).ok_or_else(|| {
                AdapterError::MalformedTransaction(format!(
                    "instruction {n}: account {i} is missing"
                ))
            })
        };
        let program = keys.get(usize::from(ix.program_id_index)).ok_or_else(|| {
            AdapterError::MalformedTransaction(format!(
                "instruction {n}: program index out of range"
            ))
        })?;
        if *program == COMPUTE_BUDGET {
            if self.compute_budget(&ix.data) {
                return Ok(());
            }
        } else {
            self.other_instructions += 1;
        }
        if *program == solana_system_interface::program::ID {
            if let Ok(solana_system_interface::instruction::SystemInstruction::Transfer {
                lamports,
            }) = bincode::deserialize(&ix.data)
            {
                self.transfers.push(Transfer {
                    to: account(1)?.to_string(),
                    amount: lamports.to_string(),
                    asset: "SOL".into(),
                    display: format!("{} SOL", format_units(u128::from(lamports), DECIMALS)),
                    change: false,
                });
                return Ok(());
            }
        } else if *program == spl_token_interface::id() {
            if let Ok(TokenInstruction::TransferChecked { amount, decimals }) =
                TokenInstruction::unpack(&ix.data)
            {
                let accounts = [account(0)?, account(1)?, account(2)?, account(3)?];
                self.token_transfer(n, amount, decimals, accounts);
                return Ok(());
            }
        } else if *program == spl_associated_token_account_interface::program::id()
            && ix.data == [1]
        {
            self.details.push((
                format!("instruction {n}"),
                format!(
                    "create the token account of {} for mint {} if missing (paid by the sender)",
                    account(2)?,
                    account(3)?
                ),
            ));
            return Ok(());
        }
        self.details.push((
            format!("instruction {n}"),
            format!(
                "program {program}, {} accounts, data 0x{}",
                ix.accounts.len(),
                hex::encode(&ix.data)
            ),
        ));
        Ok(())
    }

    /// Reads a compute budget instruction that sets the unit limit or price; false for any
    /// other.
    fn compute_budget(&mut self, data: &[u8]) -> bool {
        match (data.first(), data.get(1..)) {
            (Some(2), Some(v)) if v.len() == 4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(v);
                self.unit_limit = Some(u64::from(u32::from_le_bytes(b)));
                true
            }
            (Some(3), Some(v)) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                self.unit_price = u64::from_le_bytes(b);
                true
            }
            _ => false,
        }
    }

    /// Reads instruction `n`, a `transfer_checked` of `amount` with accounts source, mint,
    /// destination and authority.
    fn token_transfer(&mut self, n: usize, amount: u64, decimals: u8, accounts: [Pubkey; 4]) {
        let [source, mint, dest, authority] = accounts;
        // Name the recipient when the destination is the associated token account
        // of a wallet this transaction creates it for; else only the account.
        let to = match self.created.get(&dest) {
            Some((owner, m)) if *m == mint => owner.to_string(),
            _ => format!("token account {dest}"),
        };
        self.transfers.push(Transfer {
            to,
            amount: amount.to_string(),
            asset: mint.to_string(),
            display: format!(
                "{} of mint {mint} (into token account {dest})",
                format_units(u128::from(amount), decimals)
            ),
            change: false,
        });
        if authority != *self.from || source != get_associated_token_address(self.from, &mint) {
            self.details.push((
                format!("instruction {n}"),
                format!(
                    "the tokens come from {source} with authority {authority}, not \
                     the sender's own token account"
                ),
            ));
        }
    }

    /// The fee of a message needing `signatures` signatures: the base fee, and the priority
    /// fee when the instructions set a unit price.
    fn fee(&mut self, signatures: u64) -> String {
        let base = u128::from(signatures * FEE_PER_SIGNATURE);
        if self.unit_price == 0 {
            return format!("{} SOL (base fee)", format_units(base, DECIMALS));
        }
        // Priority fee: price (micro-lamports per compute unit) times the unit limit, the
        // runtime's default limit when none is set.
        let limit = self
            .unit_limit
            .unwrap_or(DEFAULT_UNITS_PER_INSTRUCTION.saturating_mul(self.other_instructions))
            .min(MAX_UNITS);
        let priority = (u128::from(self.unit_price) * u128::from(limit)).div_ceil(1_000_000);
        self.details.push((
            "compute budget".into(),
            format!("{limit} units at {} micro-lamports", self.unit_price),
        ));
        format!(
            "at most {} SOL (base {} + priority {})",
            format_units(base + priority, DECIMALS),
            format_units(base, DECIMALS),
            format_units(priority, DECIMALS)
        )
    }
}

impl Solana {
    /// What a (checked) message does.
    pub(super) fn summarize(&self, message: &Message) -> Result<Summary> {
        let keys = &message.account_keys;
        let from = keys
            .first()
            .ok_or_else(|| AdapterError::MalformedTransaction("no accounts".into()))?;
        let mut r = Reading {
            keys,
            from,
            created: created_token_accounts(message),
            transfers: Vec::new(),
            details: vec![(
                "recent blockhash".to_string(),
                message.recent_blockhash.to_string(),
            )],
            unit_limit: None,
            unit_price: 0,
            other_instructions: 0,
        };
        for (n, ix) in message.instructions.iter().enumerate() {
            r.instruction(n, ix)?;
        }
        let fee = r.fee(u64::from(message.header.num_required_signatures));
        Ok(Summary {
            chain: "solana".into(),
            network: self.network.into(),
            from: from.to_string(),
            transfers: r.transfers,
            fee,
            details: r.details,
        })
    }
}
