//! `cohort node`: the cluster's roster (issue 20, membership). `show` checks the roster and
//! the changes proposed to it against the pinned genesis; `add`, `replace` and `remove` build
//! a roster change from the roster in force, check it with the rules every enclave applies,
//! and propose it at every node, approved by the admins in force; `withdraw` proposes the
//! roster in force again; `propose-again` tries the pending change at the nodes that do not
//! hold it. Joining, resharing every key to the new roster and the commit are planned
//! (`docs/lifecycle.md`, "Membership"): a proposed change does not yet take effect.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cli::roster::Edit;
use coordinator::api::{RosterProposedResult, RosterStatus};
use protocol::genesis::RosterEntry;

use super::{ClusterArgs, JsonFlag, read_keys};

/// `cohort node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show the roster in force and the changes proposed to it, after checking them against
    /// the pinned genesis.
    Show {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Propose adding a node at the end of the roster (its node key made by its enclave at
    /// enrollment).
    Add {
        #[command(flatten)]
        entry: EntryArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Propose replacing node N (a lost node, or one to re-pin) with a new node at its index.
    Replace {
        /// The index of the node replaced, in the roster in force.
        #[arg(long)]
        node: u16,
        #[command(flatten)]
        entry: EntryArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Propose removing node N; the nodes after it move down by one.
    Remove {
        /// The index of the node removed, in the roster in force.
        #[arg(long)]
        node: u16,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Withdraw the change pending: the roster in force proposed again. With nothing pending,
    /// a fence: every change approved before it can no longer be made pending (run it after a
    /// proposal that failed or is unaccounted for).
    Withdraw {
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Propose the last change (or withdrawal, or fence) again at every node that does not
    /// hold it (down when it was proposed): each is shown another node's statement, so after
    /// its expiry too.
    ProposeAgain {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
}

/// A new node's roster entry.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// Its node key (32 bytes, hex), as its enclave made it at enrollment.
    #[arg(long, value_name = "HEX")]
    node_key: String,
    /// The KMS key its node key is sealed under (a full key ARN).
    #[arg(long = "kms-key", value_name = "ARN")]
    kms_key: String,
    /// Its parent's PCR3 (48 bytes, hex: `cohort kms pcr3 --role-arn`), pinned.
    #[arg(long, value_name = "HEX")]
    pcr3: Option<String>,
    /// Its parent's PCR4 (48 bytes, hex), pinned.
    #[arg(long, value_name = "HEX")]
    pcr4: Option<String>,
}

/// What every roster change takes.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Key files of admins in force approving the change (at least their quorum).
    #[arg(long = "admin", required = true, value_name = "FILE")]
    approvers: Vec<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// A PCR given in hex: 48 bytes, not all zeros.
fn pcr(flag: &str, value: &Option<String>) -> anyhow::Result<Option<serde_bytes::ByteBuf>> {
    value
        .as_deref()
        .map(|v| {
            let bytes = attestation::parse_pcr_hex(v)
                .ok()
                .filter(|b| b.len() == 48 && b.iter().any(|x| *x != 0))
                .with_context(|| format!("{flag}: not a 48-byte SHA-384 value in hex"))?;
            Ok(serde_bytes::ByteBuf::from(bytes))
        })
        .transpose()
}

impl EntryArgs {
    fn entry(&self) -> anyhow::Result<RosterEntry> {
        let node_key = hex::decode(&self.node_key)
            .ok()
            .filter(|k| k.len() == 32)
            .context("--node-key: not 32 bytes in hex")?;
        Ok(RosterEntry {
            node_key: serde_bytes::ByteBuf::from(node_key),
            kms_key_arn: protocol::KmsKeyArn::parse(&self.kms_key).context("--kms-key")?,
            pcr3: pcr("--pcr3", &self.pcr3)?,
            pcr4: pcr("--pcr4", &self.pcr4)?,
        })
    }
}

/// Runs a node command.
pub async fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Show { cluster, output } => show(&cluster, &output).await,
        NodeCommand::Add { entry, change } => propose(change, Edit::Add(entry.entry()?)).await,
        NodeCommand::Replace {
            node,
            entry,
            change,
        } => propose(change, Edit::Replace(node, entry.entry()?)).await,
        NodeCommand::Remove { node, change } => propose(change, Edit::Remove(node)).await,
        NodeCommand::Withdraw { change } => propose(change, Edit::Withdraw).await,
        NodeCommand::ProposeAgain { cluster, output } => again(&cluster, &output).await,
    }
}

async fn show(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let (_, status) = cli::roster::fetch(&cluster.api()?, &trust).await?;
    output.print(&status, |s: &RosterStatus| {
        println!(
            "roster version {} (checked against the pinned genesis of cluster {}):",
            s.version,
            trust.cluster_id()
        );
        for (i, e) in s.roster.iter().enumerate() {
            println!(
                "  node {i}: node key {}, KMS key {}",
                hex::encode(&e.node_key.0),
                e.kms_key_arn.as_str()
            );
        }
        for p in &s.proposals {
            let nodes: Vec<u16> = p.statements.iter().map(|n| n.node).collect();
            let state = if Some(&p.request_sha256) == s.pending.as_ref() {
                "pending"
            } else {
                "replaced or withdrawn"
            };
            println!(
                "proposed: roster version {} of {} nodes, request sha256 {}, held at nodes \
                 {nodes:?} ({state})",
                p.version,
                p.request.request.roster.len(),
                hex::encode(&p.request_sha256.0)
            );
        }
        if s.pending.is_none() {
            println!("no roster change is pending");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a proposal does and which nodes hold it; whether every node does.
fn print_result(r: &RosterProposedResult, nodes: usize) -> bool {
    if r.withdrawal {
        println!(
            "the roster in force proposed again (request sha256 {}): the pending change, if \
             any, is withdrawn, and every change created before it is fenced off:",
            hex::encode(&r.request_sha256.0)
        );
    } else {
        let d = &r.diff;
        println!(
            "roster version {} proposed (request sha256 {}): nodes kept {:?} (from -> to), \
             removed {:?}, added {:?}",
            r.version,
            hex::encode(&r.request_sha256.0),
            d.kept.iter().map(|k| (k.from, k.to)).collect::<Vec<_>>(),
            d.removed,
            d.added
        );
    }
    for s in &r.proposed {
        println!(
            "  node {}: holds it (statement verified against the pinned genesis)",
            s.node
        );
    }
    for f in &r.failed {
        println!("  node {}: does not: {}: {}", f.node, f.code, f.message);
    }
    cli::roster::every_node(&r.proposed, nodes)
}

async fn propose(a: ChangeArgs, edit: Edit) -> anyhow::Result<ExitCode> {
    let api = a.cluster.api()?;
    let trust = a.cluster.trust()?;
    let approvers = read_keys(&a.approvers)?;
    let (admins, status) = cli::roster::fetch(&api, &trust).await?;
    let (_, result) =
        cli::roster::propose(&api, &trust, (&admins, &status), edit, &approvers).await?;
    let nodes = trust.genesis().roster.len();
    a.output.print(&result, |r| {
        if !print_result(r, nodes) {
            println!("run cohort node propose-again once the nodes that do not hold it are back");
        }
        println!(
            "the roster in force is unchanged until the change is committed (joining, \
             resharing and the commit are not built yet)"
        );
    })?;
    Ok(if cli::roster::every_node(&result.proposed, nodes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn again(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let Some(result) = cli::roster::propose_again(&cluster.api()?, &trust).await? else {
        bail!("no roster change is recorded under the admins in force");
    };
    let nodes = trust.genesis().roster.len();
    output.print(&result, |r| {
        print_result(r, nodes);
    })?;
    Ok(if cli::roster::every_node(&result.proposed, nodes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
