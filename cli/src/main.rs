//! `cohort`: the operator and client CLI.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::{
    address::AddressArgs, admins::AdminsCommand, attest::AttestCommand, audit::AuditCommand,
    bench::BenchArgs, credential::CredentialCommand, demo::DemoArgs, events::EventsCommand,
    genesis::GenesisArgs, images::ImagesCommand, key::KeyCommand, keygen::KeygenArgs,
    kms::KmsCommand, node::NodeCommand, sign::SignArgs, sim::SimCommand, trust::TrustArgs,
    tx::TxCommand,
};

/// Cohort threshold-signing cluster: operator and client CLI.
#[derive(Debug, Parser)]
#[command(name = "cohort", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated cluster on this machine.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Fetch and verify attestation documents.
    #[command(subcommand)]
    Attest(AttestCommand),
    /// KMS key policies.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Create an Ed25519 key file for an admin or approver; prints its public key.
    Keygen(KeygenArgs),
    /// Initialise the cluster: admins and their quorum, peer admission, auxiliary info.
    Genesis(Box<GenesisArgs>),
    /// Pin the cluster's approved genesis on this machine: keys are checked against it.
    Trust(TrustArgs),
    /// Keys: create, show (checked against the pinned genesis), list.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The cluster's admins: show them (checked against the pinned genesis), replace them,
    /// catch nodes that missed a change up.
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// The enclave images the cluster accepts: show them (checked against the pinned genesis),
    /// replace them (an image rotation), catch nodes that missed a change up.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// The cluster's roster: show it and the changes proposed to it (checked against the
    /// pinned genesis); propose adding, replacing or removing a node, or withdraw a proposal.
    #[command(subcommand)]
    Node(NodeCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API credentials: make a key, register, list and revoke them.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// The cluster as the coordinator reports it (JSON): genesis progress, nodes, pools.
    Status(cmd::ClusterArgs),
    /// Sign a payload (32-byte digest for ECDSA, message for EdDSA) with a key.
    Sign(SignArgs),
    /// Drive signing through the coordinator at a given concurrency; print p50/p95/p99
    /// latency, throughput and failures.
    Bench(BenchArgs),
    /// The address of a key on a chain.
    Address(AddressArgs),
    /// The coordinator's events on the broker (docs/events.md).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Chain transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Boot a simulated cluster, attest and verify every node, and stop it (the main job).
    Demo(DemoArgs),
}

impl Command {
    async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Sim(c) => cmd::sim::run(c).await,
            Command::Attest(c) => cmd::attest::run(c).await,
            Command::Kms(c) => cmd::kms::run(c),
            Command::Keygen(a) => cmd::keygen::run(a),
            Command::Genesis(a) => cmd::genesis::run(*a).await,
            Command::Trust(a) => cmd::trust::run(a),
            Command::Key(c) => cmd::key::run(c).await,
            Command::Admins(c) => cmd::admins::run(c).await,
            Command::Images(c) => cmd::images::run(c).await,
            Command::Node(c) => cmd::node::run(c).await,
            Command::Audit(c) => cmd::audit::run(c).await,
            Command::Credential(c) => cmd::credential::run(c).await,
            Command::Status(a) => {
                let status: coordinator::api::ClusterStatus = a.get("/v1/cluster").await?;
                cmd::print_json(&status)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Sign(a) => cmd::sign::run(a).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Address(a) => cmd::address::run(a).await,
            Command::Events(c) => cmd::events::run(c).await,
            Command::Tx(c) => cmd::tx::run(c).await,
            Command::Demo(a) => cmd::demo::run(a).await,
        }
    }
}

/// Process start-up: parse the command line, run the command on a Tokio runtime, and turn an
/// error into `cohort: ERROR` on stderr and exit code 2.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cohort: {e:#}");
            ExitCode::from(2)
        }
    }
}
