//! `cohort-chain-check`: chain software none of us wrote, for `cohort demo` and for operators
//! trying Cohort without a chain.
//!
//! * `cohort-chain-check solana-rpc [--listen ADDR] [--addr-file F]` serves the Solana runtime
//!   (LiteSVM) over Solana's JSON-RPC until interrupted.
//! * `cohort-chain-check bitcoin-verify --tx HEX --spent SCRIPT_HEX:SATS …` runs every input
//!   through Bitcoin Core's script interpreter; exits 0 when all verify, 1 otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chain_check::bitcoin::{Spent, verify};
use chain_check::solana::LocalSolana;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cohort-chain-check", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve a local Solana runtime over JSON-RPC.
    SolanaRpc {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Write the URL here once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
    /// Verify a signed Bitcoin transaction with Bitcoin Core's script interpreter.
    BitcoinVerify {
        /// The raw transaction, hex.
        #[arg(long)]
        tx: String,
        /// Each spent output, in input order: `SCRIPT_HEX:SATOSHI`.
        #[arg(long, num_args = 1.., required = true)]
        spent: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::SolanaRpc { listen, addr_file } => {
            let node = LocalSolana::start(listen).await?;
            if let Some(f) = addr_file {
                let tmp = f.with_extension("tmp");
                std::fs::write(&tmp, node.url())?;
                std::fs::rename(&tmp, &f)?;
            }
            eprintln!(
                "solana runtime (LiteSVM) serving JSON-RPC at {}",
                node.url()
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            Ok(())
        }
        Cmd::BitcoinVerify { tx, spent } => {
            let raw = hex::decode(tx.trim()).context("--tx is not hex")?;
            let spent = spent
                .iter()
                .map(|s| {
                    let (script, amount) = s
                        .split_once(':')
                        .context("--spent takes SCRIPT_HEX:SATOSHI")?;
                    Ok(Spent {
                        script: hex::decode(script).context("script is not hex")?,
                        amount: amount.parse().context("amount is not an integer")?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            match verify(&raw, &spent) {
                Ok(()) => {
                    println!(
                        "all {} input(s) verify under Bitcoin Core's script interpreter (libbitcoinconsensus v{})",
                        spent.len(),
                        chain_check::bitcoin::core_version()
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
