//! `cohort key import`: bring a legacy key (tss-lib, cggmp21, frost) into the cluster without
//! making it whole (issue 19). In one command where one process holds every dealing share and
//! the admin keys (a simulated cluster, a holder of several shares), or in four steps across
//! machines (`begin`, `approve` on each admin's machine, `contribute` on each holder's, `finish`):
//! `cli::import::steps`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cli::import::inspect::Format;
use cli::import::steps::{self, DealingFile};
use cli::import::submit::{Cluster, ImportPlan, import_files};
use coordinator::api::{ApprovalJson, ApprovedJson, ImportKeyJson, KeyInfo, Wire};

use super::genesis::{read_json, write_json};
use super::key::approver_public;
use super::{ClusterArgs, JsonFlag, public_keys, read_keys};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImportCommand {
    #[command(subcommand)]
    step: Option<Step>,
    #[command(flatten)]
    one: OneCommand,
}

/// The import in four steps, each on its own machine.
#[derive(Debug, Subcommand)]
enum Step {
    /// Step 1, with one holder's file: write the import request (unsigned), naming the holders
    /// that will deal (by their position, as `cohort key legacy` lists them) and the admin
    /// version in force (asked of the coordinator).
    Begin(BeginArgs),
    /// Step 2, on an admin's machine: show the request and sign it with the admin's key (one
    /// of the admins of the version it names: the pinned genesis' for version 0, else checked
    /// against the pinned genesis through the coordinator's chain of admin changes).
    Approve(ApproveArgs),
    /// Step 3, on a holder's machine: check the request against the holder's own file, verify
    /// every node's document against the pinned genesis, and deal the holder's share sealed to
    /// the nodes. The dealing written is public.
    Contribute(ContributeArgs),
    /// Step 4: submit the approved request and every holder's dealing, and check the key the
    /// cluster answers.
    Finish(FinishArgs),
}

/// The key as the cluster will hold it.
#[derive(Debug, Args)]
struct PlanArgs {
    /// The key's id in the cluster.
    #[arg(long)]
    id: String,
    /// Nodes needed to sign in the cluster.
    #[arg(long)]
    threshold: u16,
    /// Approvers' public keys (hex), or key files.
    #[arg(long = "approver", required = true)]
    approvers: Vec<String>,
    /// Approvals a signature needs [default: 1]. (No clap default: the one-command form's
    /// plan is absent when a step is run.)
    #[arg(long)]
    approvals: Option<u16>,
    /// The BIP-32 chain code to keep (64 hex digits; ECDSA), when the files carry none.
    #[arg(long)]
    chain_code: Option<String>,
    /// The Bitcoin-family network whose legacy funds are at the key's own address, as
    /// CHAIN:NETWORK (e.g. bitcoin:mainnet): there, and only there, the key's own (master) key
    /// signs (ECDSA).
    #[arg(long)]
    master_key_network: Option<String>,
}

impl PlanArgs {
    fn plan(&self) -> anyhow::Result<ImportPlan> {
        let chain_code = self
            .chain_code
            .as_deref()
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| anyhow::anyhow!("--chain-code takes 64 hex digits"))
            })
            .transpose()?;
        Ok(ImportPlan {
            key_id: self.id.clone(),
            threshold: self.threshold,
            approvers: public_keys(&self.approvers, approver_public)?,
            approvals_needed: self.approvals.unwrap_or(1),
            chain_code,
            master_key_network: self.master_key_network.clone(),
        })
    }
}

/// The one-command form.
#[derive(Debug, Args)]
struct OneCommand {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The files' format.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// One holder's share file (repeat for each dealing holder: at least the legacy threshold).
    #[arg(long = "share", required = true)]
    shares: Vec<PathBuf>,
    /// frost-ed25519: the group's public key package.
    #[arg(long)]
    public: Option<PathBuf>,
    #[command(flatten)]
    plan: Option<PlanArgs>,
    /// Admin key files approving the import (at least the quorum of the admins in force).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    /// The attestation root (PEM) the nodes' documents chain to (default: the simulated
    /// cluster's in --dir, else AWS's Nitro root).
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// One holder's share file.
#[derive(Debug, Args)]
struct HolderFile {
    /// The file's format.
    #[arg(long, value_enum)]
    format: Format,
    /// One holder's share file (`begin` reads the key's public part from it; `contribute`
    /// deals its share).
    #[arg(long)]
    share: PathBuf,
    /// frost-ed25519: the group's public key package.
    #[arg(long)]
    public: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BeginArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    file: HolderFile,
    /// A holder that will deal, by its position among the key's holders (repeat; at least the
    /// legacy threshold; dealing order).
    #[arg(long = "holder", required = true)]
    holders: Vec<usize>,
    #[command(flatten)]
    plan: PlanArgs,
    /// Where to write the request (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// The request `begin` wrote, and the hash it printed.
#[derive(Debug, Args)]
struct ExpectedRequest {
    /// The request `begin` wrote.
    #[arg(long)]
    request: PathBuf,
    /// The request's SHA-256 as `begin` printed it, from a channel the relay of the request
    /// file does not control: a request with another hash is refused.
    #[arg(long = "expect-sha256", value_name = "HEX")]
    expect_sha256: String,
}

impl ExpectedRequest {
    /// The request, shown in full (the step checks its hash before using it).
    fn read(&self) -> anyhow::Result<protocol::import::ImportKey> {
        let request = read_json::<ImportKeyJson>(&self.request, "an import request")?.to_wire();
        print!("{}", steps::describe(&request));
        Ok(request)
    }
}

#[derive(Debug, Args)]
struct ApproveArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    request: ExpectedRequest,
    /// This admin's key file.
    #[arg(long)]
    admin: PathBuf,
    /// Where to write the approval (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ContributeArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    request: ExpectedRequest,
    #[command(flatten)]
    file: HolderFile,
    /// The attestation root (PEM) the nodes' documents chain to (default: the simulated
    /// cluster's in --dir, else AWS's Nitro root).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where to write the dealing (JSON; public).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct FinishArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The request `begin` wrote.
    #[arg(long)]
    request: PathBuf,
    /// An admin's approval (repeat; at least the quorum of the admins in force).
    #[arg(long = "approval", required = true)]
    approvals: Vec<PathBuf>,
    /// A holder's dealing (repeat: one per dealer, any order).
    #[arg(long = "dealing", required = true)]
    dealings: Vec<PathBuf>,
    /// The attestation root (PEM) of the nodes (default: the simulated cluster's in --dir,
    /// else AWS's Nitro root).
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs `cohort key import` (one step of it, or all in one command).
pub async fn run(a: ImportCommand) -> anyhow::Result<ExitCode> {
    match a.step {
        None => one_command(a.one).await,
        Some(Step::Begin(b)) => begin(&b).await,
        Some(Step::Approve(b)) => approve(&b).await,
        Some(Step::Contribute(b)) => contribute(&b).await,
        Some(Step::Finish(b)) => finish(&b).await,
    }
}

fn root_der(root: Option<&Path>, cluster: &ClusterArgs) -> anyhow::Result<Vec<u8>> {
    let pem = match (root, cluster.sim_dir()) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        (None, Some(dir)) => {
            return Ok(cli::ceremony::Expectations::of_sim_dir(dir)?.root_der);
        }
        (None, None) => attestation::AWS_NITRO_ROOT_G1_PEM.to_string(),
    };
    attestation::pem_to_der(&pem).map_err(|e| anyhow::anyhow!("the attestation root: {e}"))
}

/// The coordinator, the pinned genesis and the attestation root, for a step that talks to the
/// cluster.
struct Connection {
    api: coordinator::client::ApiClient,
    trust: cli::trust::Trust,
    root_der: Vec<u8>,
}

impl Connection {
    fn open(cluster: &ClusterArgs, root: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            api: cluster.api()?,
            trust: cluster.trust()?,
            root_der: root_der(root, cluster)?,
        })
    }

    fn cluster(&self) -> Cluster<'_> {
        Cluster {
            api: &self.api,
            trust: &self.trust,
            root_der: &self.root_der,
        }
    }
}

fn print_key(output: &JsonFlag, info: &KeyInfo) -> anyhow::Result<()> {
    output.print(info, |info| {
        println!(
            "key {} ({}, {} of the cluster) imported: public key {} (the legacy key)",
            info.key_id,
            info.scheme,
            info.threshold,
            hex::encode(&info.public_key.0)
        );
        if let Some(c) = &info.chain_code {
            println!("chain code: {}", hex::encode(&c.0));
        }
        println!("receipts: every node's verified against the pinned genesis");
    })
}

async fn one_command(a: OneCommand) -> anyhow::Result<ExitCode> {
    let (Some(format), Some(plan)) = (a.format, &a.plan) else {
        anyhow::bail!("cohort key import needs --format, --id, --threshold and --approver");
    };
    let conn = Connection::open(&a.cluster, a.root.as_deref())?;
    let plan = plan.plan()?;
    let admins = read_keys(&a.admins)?;
    let cluster = conn.cluster();
    let info = import_files(
        &cluster,
        format,
        &a.shares,
        a.public.as_deref(),
        &plan,
        &admins,
    )
    .await?;
    print_key(&a.output, &info)?;
    Ok(ExitCode::SUCCESS)
}

async fn begin(a: &BeginArgs) -> anyhow::Result<ExitCode> {
    let trust = a.cluster.trust()?;
    // The admins who approve it are the ones in force, as the coordinator reports them (an
    // enclave refuses a request naming another version than its own).
    // The roster whose nodes the holders deal to is the one in force, checked from the pinned
    // genesis; each holder checks it again before it deals.
    let api = a.cluster.api()?;
    let admins = cli::admins::admin_version(&api).await?;
    let (_, _, rosters) = cli::roster::fetch(&api, &trust).await?;
    let request = steps::begin(
        &trust,
        a.file.format,
        &a.file.share,
        a.file.public.as_deref(),
        &a.holders,
        &a.plan.plan()?,
        (admins, rosters.version()),
    )?;
    write_json(&a.out, &ImportKeyJson::from_wire(&request))?;
    print!("{}", steps::describe(&request));
    println!(
        "request written to {}: give every admin and dealing holder its sha256 above over a \
         channel of your own; each admin runs cohort key import approve, each dealing holder \
         cohort key import contribute, with --expect-sha256, before it expires in 10 minutes",
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn approve(a: &ApproveArgs) -> anyhow::Result<ExitCode> {
    let trust = a.cluster.trust()?;
    let admin = cli::ops::read_key(&a.admin)?;
    let request = a.request.read()?;
    // The genesis' admins (version 0) are pinned here; a later version's set comes from the
    // coordinator, its chain of changes checked against the pinned genesis.
    let chain = match request.key.admins {
        0 => cli::admins::AdminChain::genesis(&trust),
        _ => cli::admins::fetch(&a.cluster.api()?, &trust).await?.0,
    };
    let admins = chain.at(request.key.admins).ok_or_else(|| {
        anyhow::anyhow!(
            "the request names admin version {}; the cluster's admins are version {}",
            request.key.admins,
            chain.current().version
        )
    })?;
    let approval = steps::approve(&trust, &request, &a.request.expect_sha256, &admin, admins)?;
    write_json(&a.out, &approval)?;
    println!(
        "approved by {}: approval written to {}",
        hex::encode(&approval.approver.0),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn contribute(a: &ContributeArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::open(&a.cluster, a.root.as_deref())?;
    let cluster = conn.cluster();
    let request = a.request.read()?;
    let dealing = steps::contribute(
        &cluster,
        &request,
        &a.request.expect_sha256,
        a.file.format,
        &a.file.share,
        a.file.public.as_deref(),
    )
    .await?;
    write_json(&a.out, &dealing)?;
    println!(
        "dealer {} dealt to every node of the pinned cluster: dealing written to {}",
        dealing.dealer,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn finish(a: &FinishArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::open(&a.cluster, a.root.as_deref())?;
    let cluster = conn.cluster();
    let request: ImportKeyJson = read_json(&a.request, "an import request")?;
    let approvals = a
        .approvals
        .iter()
        .map(|p| read_json::<ApprovalJson>(p, "an approval"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let approved = ApprovedJson {
        request,
        approvals,
        presignature: None,
    }
    .to_wire();
    let dealings = a
        .dealings
        .iter()
        .map(|p| read_json::<DealingFile>(p, "a dealing"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let info = steps::finish(&cluster, &approved, dealings).await?;
    print_key(&a.output, &info)?;
    Ok(ExitCode::SUCCESS)
}
