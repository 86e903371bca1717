//! `cohort admins`: the cluster's admin set (issue 20). `show` checks the coordinator's chain of
//! admin changes against the pinned genesis; `set` replaces the admins and their quorum,
//! approved by the admins in force, and checks every node's statement that it applied the
//! change; `catch-up` tries a recorded change again at the nodes that missed it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use coordinator::api::{AdminsSetResult, AdminsStatus};

use super::key::approver_public;
use super::{ClusterArgs, JsonFlag, public_keys, read_keys};

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// Show the admins in force and every change of them, after checking the chain against the
    /// pinned genesis: each change for this cluster, approved by the admins before it, and
    /// applied (signed) by nodes of the pinned roster.
    Show {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Replace the cluster's admins and their quorum (approved by the admins in force): every
    /// node applies the change and signs that it did. Admin requests name the new admin
    /// version from then on; requests approved under the old one are refused.
    Set(SetArgs),
    /// Try every recorded change again at the nodes that have not applied it (down when it
    /// was made): each is shown another node's statement, so the change applies after its
    /// expiry too.
    CatchUp {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The new admins' public keys (hex), or key files (repeat for each; they replace every
    /// admin).
    #[arg(long = "admin", required = true)]
    admins: Vec<String>,
    /// How many of the new admins approve an admin request.
    #[arg(long)]
    quorum: u16,
    /// Key files of admins in force approving the change (at least their quorum).
    #[arg(long = "current-admin", required = true, value_name = "FILE")]
    approvers: Vec<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs an admins command.
pub async fn run(command: AdminsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminsCommand::Show { cluster, output } => show(&cluster, &output).await,
        AdminsCommand::Set(a) => set(a).await,
        AdminsCommand::CatchUp { cluster, output } => catch_up(&cluster, &output).await,
    }
}

async fn show(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let (_, status) = cli::admins::fetch(&cluster.api()?, &trust).await?;
    let nodes = cli::roster::nodes_in_force(&cluster.api()?, &trust).await?;
    output.print(&status, |s: &AdminsStatus| {
        println!(
            "admin version {}: any {} of {} admins approve (checked against the pinned genesis \
             of cluster {})",
            s.version,
            s.admin_quorum,
            s.admins.len(),
            trust.cluster_id()
        );
        for a in &s.admins {
            println!("  {}", hex::encode(&a.0));
        }
        for c in &s.changes {
            let applied: Vec<u16> = c.statements.iter().map(|n| n.node).collect();
            println!(
                "version {}: {} of {} admins, request sha256 {}, applied at nodes {applied:?}{}",
                c.version,
                c.request.request.admin_quorum,
                c.request.request.admins.len(),
                hex::encode(&c.request_sha256.0),
                if !cli::roster::every_node(&c.statements, nodes) {
                    " (not everywhere: cohort admins catch-up)"
                } else {
                    ""
                }
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints which nodes applied a change; whether every node of the roster did.
fn print_result(r: &AdminsSetResult, nodes: usize) -> bool {
    println!(
        "admin version {} (request sha256 {}):",
        r.version,
        hex::encode(&r.request_sha256.0)
    );
    for s in &r.applied {
        println!(
            "  node {}: applied (statement verified against the pinned genesis)",
            s.node
        );
    }
    for f in &r.failed {
        println!("  node {}: not applied: {}: {}", f.node, f.code, f.message);
    }
    cli::roster::every_node(&r.applied, nodes)
}

async fn set(a: SetArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster.api()?;
    let trust = a.cluster.trust()?;
    let admins = public_keys(&a.admins, approver_public)?;
    let approvers = read_keys(&a.approvers)?;
    let (chain, _) = cli::admins::fetch(&api, &trust).await?;
    let (request, result) = cli::admins::set_admins(
        &api,
        &trust,
        &chain,
        (admins.as_slice(), a.quorum),
        &approvers,
    )
    .await?;
    let nodes = cli::roster::nodes_in_force(&api, &trust).await?;
    a.output.print(&result, |r| {
        println!(
            "admin version {} -> {}: any {} of {} admins approve from now on",
            request.version,
            r.version,
            request.admin_quorum,
            request.admins.len()
        );
        if !print_result(r, nodes) {
            println!(
                "the nodes that did not apply it refuse admin requests of version {} until they \
                 do: run cohort admins catch-up once they are back",
                r.version
            );
        }
    })?;
    Ok(cli::roster::exit_code([result.applied.as_slice()], nodes))
}

async fn catch_up(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let results = cli::admins::catch_up(&cluster.api()?, &trust).await?;
    let nodes = cli::roster::nodes_in_force(&cluster.api()?, &trust).await?;
    output.print(&results, |rs: &Vec<AdminsSetResult>| {
        if rs.is_empty() {
            println!("no admin change is recorded");
        }
        for r in rs {
            print_result(r, nodes);
        }
    })?;
    Ok(cli::roster::exit_code(
        results.iter().map(|r| r.applied.as_slice()),
        nodes,
    ))
}
