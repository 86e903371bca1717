//! `cohort tx send`: build, check, approve, sign and assemble a transfer; broadcast it with
//! --rpc.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{ApproverFiles, ClusterArgs, JsonFlag};

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Build a transfer through the coordinator, check it locally, approve and sign it,
    /// assemble it; print the raw signed transaction, and broadcast it with --rpc.
    Send(Box<SendArgs>),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// bitcoin, solana, or an EVM chain of the registry (ethereum, …).
    #[arg(long)]
    chain: String,
    /// Network (default mainnet).
    #[arg(long)]
    network: Option<String>,
    /// The sending key.
    #[arg(long)]
    key: String,
    /// Derivation path of the sending key (ECDSA), e.g. m/0/0.
    #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
    path: std::vec::Vec<u32>,
    /// Recipient address.
    #[arg(long)]
    to: Option<String>,
    /// Amount in base units (satoshi, wei, lamports, token units).
    #[arg(long)]
    amount: Option<String>,
    /// ERC-20 contract or SPL mint to send instead of the native coin.
    #[arg(long)]
    token: Option<String>,
    /// SPL: the mint's decimals.
    #[arg(long)]
    decimals: Option<u8>,
    /// Bitcoin: an output to spend, TXID:VOUT:SATOSHI (repeat).
    #[arg(long = "utxo")]
    utxos: Vec<String>,
    /// Bitcoin: fee rate, sat/vB.
    #[arg(long)]
    fee_rate: Option<u64>,
    /// Bitcoin: sign this unsigned PSBT (base64 or hex, or @FILE) instead of building one.
    #[arg(long)]
    psbt: Option<String>,
    /// EVM: nonce (default: from --rpc or the coordinator's endpoint).
    #[arg(long)]
    nonce: Option<u64>,
    /// EVM: gas limit.
    #[arg(long)]
    gas_limit: Option<u64>,
    /// EVM (EIP-1559): max fee per gas, wei.
    #[arg(long)]
    max_fee_per_gas: Option<String>,
    /// EVM (EIP-1559): max priority fee per gas, wei.
    #[arg(long)]
    max_priority_fee_per_gas: Option<String>,
    /// EVM (legacy EIP-155): gas price, wei.
    #[arg(long)]
    gas_price: Option<String>,
    /// Solana: recent blockhash (default: from --rpc or the coordinator's endpoint).
    #[arg(long)]
    blockhash: Option<String>,
    #[command(flatten)]
    approvers: ApproverFiles,
    /// The chain's JSON-RPC endpoint: fill nonce/fees/blockhash from it and broadcast there.
    #[arg(long)]
    rpc: Option<String>,
    /// More EVM chains (TOML, the format of adapters/src/evm_chains.toml).
    #[arg(long)]
    evm_chains: Option<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs a tx command.
pub async fn run(command: TxCommand) -> anyhow::Result<ExitCode> {
    match command {
        TxCommand::Send(args) => send(*args).await,
    }
}

fn parse_utxo(s: &str) -> anyhow::Result<adapters::Utxo> {
    let mut it = s.split(':');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(txid), Some(vout), Some(amount), None) => Ok(adapters::Utxo {
            txid: txid.to_string(),
            vout: vout.parse().context("--utxo: VOUT is not a number")?,
            amount: amount.parse().context("--utxo: SATOSHI is not a number")?,
        }),
        _ => bail!("--utxo takes TXID:VOUT:SATOSHI, got `{s}`"),
    }
}

/// The transfer the options describe.
fn intent(a: &SendArgs) -> anyhow::Result<adapters::Intent> {
    let psbt = match &a.psbt {
        Some(p) if p.starts_with('@') => Some(
            std::fs::read_to_string(&p[1..])
                .with_context(|| format!("reading {}", &p[1..]))?
                .trim()
                .to_string(),
        ),
        other => other.clone(),
    };
    let utxos = if a.utxos.is_empty() {
        None
    } else {
        Some(
            a.utxos
                .iter()
                .map(|u| parse_utxo(u))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    Ok(adapters::Intent {
        to: a.to.clone(),
        amount: a.amount.clone(),
        token: a.token.clone(),
        decimals: a.decimals,
        utxos,
        fee_rate: a.fee_rate,
        psbt,
        nonce: a.nonce,
        gas_limit: a.gas_limit,
        max_fee_per_gas: a.max_fee_per_gas.clone(),
        max_priority_fee_per_gas: a.max_priority_fee_per_gas.clone(),
        gas_price: a.gas_price.clone(),
        recent_blockhash: a.blockhash.clone(),
    })
}

async fn send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster.api()?;
    let mut registry = adapters::Registry::builtin();
    if let Some(f) = &a.evm_chains {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        registry = registry.with_evm_chains(&text)?;
    }
    let intent = intent(&a)?;
    let json = a.output.json;
    let trust = a.cluster.trust()?;
    let sent = cli::tx::send(
        &api,
        &trust,
        &registry,
        cli::tx::TxRequest {
            key_id: a.key.clone(),
            chain: a.chain.clone(),
            network: a.network.clone(),
            path: a.path.clone(),
            intent,
        },
        &a.approvers.read()?,
        cli::tx::Rpc {
            url: a.rpc.as_deref(),
            fill_locally: true,
        },
        |p| {
            if !json {
                print!("{}", p.summary);
            }
        },
    )
    .await?;
    print_sent(&sent, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_sent(sent: &cli::tx::Sent, json: bool) -> anyhow::Result<()> {
    let assembled = &sent.assembled;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "chain": assembled.chain,
                "network": assembled.network,
                "txid": assembled.txid,
                "raw_tx": hex::encode(&assembled.raw_tx.0),
                "psbt": assembled.psbt.as_ref().map(|p| hex::encode(&p.0)),
                "summary": assembled.summary,
                "broadcast": sent.broadcast,
            }))?
        );
    } else {
        println!("txid:   {}", assembled.txid);
        println!("raw tx: {}", hex::encode(&assembled.raw_tx.0));
        if let Some(p) = &assembled.psbt {
            println!("psbt:   {}", hex::encode(&p.0));
        }
        if let Some(id) = &sent.broadcast {
            println!("broadcast: the node accepted it as {id}");
        }
    }
    Ok(())
}
