//! Solana probe: system transfer and SPL token transfer built with solana-* 3.x crates, signed with
//! a raw ed25519-dalek key over the serialized message, passed across as bincode bytes, executed in
//! LiteSVM 0.12 (agave 3.1), balances checked.
use ed25519_dalek::{Signer, SigningKey};
use litesvm::LiteSVM;
use solana_account::Account;
use solana_hash::Hash;
use solana_instruction::Instruction;
use solana_message::Message;
use solana_program_option::COption;
use solana_program_pack::Pack;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::Transaction;
use spl_associated_token_account_interface::{address::get_associated_token_address, instruction::create_associated_token_account_idempotent};
use spl_token_interface::state::{Account as TokenAccount, AccountState, Mint};

/// Adapter side: intent -> unsigned message bytes (the signing payload is the message itself).
fn build(ixs: &[Instruction], payer: &Pubkey, blockhash: Hash) -> Message {
    Message::new_with_blockhash(ixs, Some(payer), &blockhash)
}

/// Adapter side: assemble the wire transaction from the message and the cluster's 64-byte signature.
fn assemble(message: Message, sig: [u8; 64]) -> Vec<u8> {
    let tx = Transaction { signatures: vec![Signature::from(sig)], message };
    tx.verify().expect("ed25519 over message"); // solana-transaction "verify" feature
    bincode::serialize(&tx).unwrap() // legacy wire format = bincode (short_vec lengths)
}

fn run(svm: &mut LiteSVM, raw: &[u8]) {
    // Test side: bytes -> the transaction type of litesvm's own solana-transaction.
    let tx: solana_transaction::versioned::VersionedTransaction = bincode::deserialize(raw).unwrap();
    match svm.send_transaction(tx) {
        Ok(meta) => println!("  executed: {} CU, sig {}", meta.compute_units_consumed, meta.signature),
        Err(e) => panic!("failed: {:?}\nlogs: {:#?}", e.err, e.meta.logs),
    }
}

fn main() {
    let key = SigningKey::from_bytes(&[0x33u8; 32]); // stands in for the cluster's FROST key
    let from = Pubkey::new_from_array(key.verifying_key().to_bytes()); // address = base58(pubkey)
    let to = Pubkey::new_from_array([7u8; 32]);
    println!("from {from}");

    let mut svm = LiteSVM::new();
    svm.airdrop(&from, 10_000_000_000).unwrap();

    // --- System transfer ---
    let lamports = 1_234_567;
    let ix = solana_system_interface::instruction::transfer(&from, &to, lamports);
    let msg = build(&[ix], &from, svm.latest_blockhash());
    let payload = msg.serialize(); // what the cluster signs (EdDSA over the raw message bytes)
    let raw = assemble(msg, key.sign(&payload).to_bytes());
    println!("system transfer: {} bytes: {}", raw.len(), hex::encode(&raw));
    let before = svm.get_balance(&from).unwrap();
    run(&mut svm, &raw);
    assert_eq!(svm.get_balance(&to), Some(lamports));
    assert_eq!(svm.get_balance(&from), Some(before - lamports - 5000)); // 5000 lamports/signature
    println!("system transfer balances OK");

    // Replaying the same bytes must fail (already processed).
    let replay: Transaction = bincode::deserialize(&raw).unwrap();
    assert!(svm.send_transaction(replay).is_err());

    // --- SPL token transfer (token program ELF shipped inside litesvm) ---
    let token_program = spl_token_interface::id();
    let mint = Pubkey::new_from_array([9u8; 32]);
    let mut data = vec![0u8; Mint::LEN];
    Mint { mint_authority: COption::None, supply: 1_000_000, decimals: 6, is_initialized: true, freeze_authority: COption::None }
        .pack_into_slice(&mut data);
    svm.set_account(mint, Account { lamports: svm.minimum_balance_for_rent_exemption(Mint::LEN), data, owner: token_program, executable: false, rent_epoch: 0 }).unwrap();
    let src_ata = get_associated_token_address(&from, &mint);
    let mut data = vec![0u8; TokenAccount::LEN];
    TokenAccount { mint, owner: from, amount: 1_000_000, delegate: COption::None, state: AccountState::Initialized, is_native: COption::None, delegated_amount: 0, close_authority: COption::None }
        .pack_into_slice(&mut data);
    svm.set_account(src_ata, Account { lamports: svm.minimum_balance_for_rent_exemption(TokenAccount::LEN), data, owner: token_program, executable: false, rent_epoch: 0 }).unwrap();

    let recipient = Pubkey::new_from_array([8u8; 32]);
    let dst_ata = get_associated_token_address(&recipient, &mint);
    let ixs = [
        create_associated_token_account_idempotent(&from, &recipient, &mint, &token_program),
        spl_token_interface::instruction::transfer_checked(&token_program, &src_ata, &mint, &dst_ata, &from, &[], 250_000, 6).unwrap(),
    ];
    svm.expire_blockhash();
    let msg = build(&ixs, &from, svm.latest_blockhash());
    let payload = msg.serialize();
    let raw = assemble(msg, key.sign(&payload).to_bytes());
    println!("spl transfer: {} bytes", raw.len());
    run(&mut svm, &raw);
    let bal = |svm: &LiteSVM, a: &Pubkey| TokenAccount::unpack(&svm.get_account(a).unwrap().data).unwrap().amount;
    assert_eq!(bal(&svm, &dst_ata), 250_000);
    assert_eq!(bal(&svm, &src_ata), 750_000);
    println!("spl token balances OK");

    // A bad signature is rejected by the runtime.
    let mut bad: Transaction = bincode::deserialize(&raw).unwrap();
    bad.signatures[0] = Signature::from([1u8; 64]);
    assert!(svm.send_transaction(bad).is_err());
    println!("solana OK");
}
