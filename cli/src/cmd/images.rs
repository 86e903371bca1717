//! `cohort images`: the enclave images the cluster accepts (issue 20, image rotation). `show`
//! checks the coordinator's chain of image changes against the pinned genesis; `accept`
//! replaces the set, approved by the admins in force, and checks every node's statement that it
//! applied the change; `catch-up` tries every recorded change again at the nodes that missed
//! it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use coordinator::api::{AdminsSetResult, ImageJson, ImagesStatus, Wire};

use super::{ClusterArgs, JsonFlag, read_keys};

/// `cohort images ...`.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Show the images accepted and every change of them, after checking the chain against
    /// the pinned genesis: each change for this cluster, approved by the admins of the admin
    /// version it names, and applied (signed) by nodes of the pinned roster.
    Show {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Replace the set of images the cluster accepts (approved by the admins in force): every
    /// node applies the change and signs that it did. A rotation is two changes: the old and
    /// the new image, then (every node restarted on the new one) the new one alone. A node
    /// refuses a set without the image it runs.
    Accept(AcceptArgs),
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

/// `cohort images accept`.
#[derive(Debug, Args)]
pub struct AcceptArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// An image accepted from then on (repeat for each; together they replace the set): a
    /// measurements file (eif-build's or `nitro-cli describe-eif`'s JSON, with PCR0, PCR1 and
    /// PCR2) or PCR0:PCR1:PCR2 in hex.
    #[arg(long = "image", required = true, value_name = "FILE|PCR0:PCR1:PCR2")]
    images: Vec<String>,
    /// Key files of admins in force approving the change (at least their quorum).
    #[arg(long = "admin", required = true, value_name = "FILE")]
    approvers: Vec<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs an images command.
pub async fn run(command: ImagesCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImagesCommand::Show { cluster, output } => show(&cluster, &output).await,
        ImagesCommand::Accept(a) => accept(a).await,
        ImagesCommand::CatchUp { cluster, output } => catch_up(&cluster, &output).await,
    }
}

/// The first 8 bytes of an image's PCR0, hex: enough to tell images apart in a listing.
fn short(image: &ImageJson) -> String {
    hex::encode(image.pcr0.0.get(..8).unwrap_or(image.pcr0.0.as_slice()))
}

async fn show(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let (_, _, _, status) = cli::images::fetch(&cluster.api()?, &trust).await?;
    let nodes = cli::roster::nodes_in_force(&cluster.api()?, &trust).await?;
    output.print(&status, |s: &ImagesStatus| {
        println!(
            "image version {}: {} image(s) accepted (checked against the pinned genesis of \
             cluster {})",
            s.version,
            s.images.len(),
            trust.cluster_id()
        );
        for i in &s.images {
            println!("  {}", cli::images::image_text(&i.to_wire()));
        }
        for c in &s.changes {
            let applied: Vec<u16> = c.statements.iter().map(|n| n.node).collect();
            let images: Vec<String> = c.request.request.images.iter().map(short).collect();
            println!(
                "version {}: [{}] (PCR0 prefixes), approved under admin version {}, request \
                 sha256 {}, applied at nodes {applied:?}{}",
                c.version,
                images.join(", "),
                c.request.request.admins,
                hex::encode(&c.request_sha256.0),
                if !cli::roster::every_node(&c.statements, nodes) {
                    " (not everywhere: cohort images catch-up)"
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
        "image version {} (request sha256 {}):",
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

async fn accept(a: AcceptArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster.api()?;
    let trust = a.cluster.trust()?;
    let images = a
        .images
        .iter()
        .map(|text| cli::images::parse_image(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let approvers = read_keys(&a.approvers)?;
    let (admins, chain, _, _) = cli::images::fetch(&api, &trust).await?;
    let (request, result) =
        cli::images::accept_images(&api, &trust, (&admins, &chain), &images, &approvers).await?;
    let nodes = cli::roster::nodes_in_force(&api, &trust).await?;
    a.output.print(&result, |r| {
        println!(
            "image version {} -> {}: {} image(s) accepted from now on",
            request.version,
            r.version,
            request.images.len()
        );
        for i in &request.images {
            println!("  {}", cli::images::image_text(i));
        }
        if !print_result(r, nodes) {
            println!(
                "the nodes that did not apply it admit peers and run on the images of version \
                 {} until they do: run cohort images catch-up once they are back",
                request.version
            );
        }
    })?;
    Ok(cli::roster::exit_code([result.applied.as_slice()], nodes))
}

async fn catch_up(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let results = cli::images::catch_up(&cluster.api()?, &trust).await?;
    let nodes = cli::roster::nodes_in_force(&cluster.api()?, &trust).await?;
    output.print(&results, |rs: &Vec<AdminsSetResult>| {
        if rs.is_empty() {
            println!("no image change is recorded");
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
