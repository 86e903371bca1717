//! `cohort genesis`: initialise the cluster with the genesis ceremony (ADR 0013): enroll every
//! node under its KMS key, verify each node's document here, approve the genesis, submit it,
//! wait for peer admission and auxiliary info, pin it. In three steps (`prepare`, `approve` on
//! each admin's machine, `submit`) or in one command with the admin keys given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cli::ceremony::Expectations;
use coordinator::api::{ApprovalJson, ApprovedJson, GenesisV2Json, Wire};

use super::{ClusterArgs, hex_public, public_keys, read_keys};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct GenesisArgs {
    #[command(subcommand)]
    step: Option<Step>,
    #[command(flatten)]
    one: OneCommand,
}

/// The ceremony in three steps, each on its own machine.
#[derive(Debug, Subcommand)]
enum Step {
    /// Step 1, on the ceremony machine: enroll every node, verify each node's document here,
    /// and write the proposal (the genesis to approve) with the admins' public keys.
    Prepare(PrepareArgs),
    /// Step 2, on an admin's own machine: show the proposal and sign it with the admin's key.
    Approve(ApproveArgs),
    /// Step 3: check the approvals here, submit the approved genesis, wait until the cluster is
    /// ready, and pin it.
    Submit(SubmitArgs),
    /// After the coordinator's database was lost: give the coordinator the pinned genesis
    /// again (every node holds it) and wait until the cluster is ready.
    Restore(RestoreArgs),
}

/// What the nodes must be (with --coordinator; a sim cluster's come from its directory).
#[derive(Debug, Args)]
struct NodeArgs {
    /// Node I's KMS key, `I=ARN` (repeat for every node; with --coordinator). From the
    /// deployment's outputs; a simulated cluster's come from its directory.
    #[arg(long = "kms-key", value_name = "I=ARN")]
    kms_keys: Vec<String>,
    /// Node I's parent PCR3, `I=HEX` (repeat; `cohort kms pcr3 --role-arn` of the node's
    /// parent role, Terraform's `genesis_inputs`): its document must show it, and the roster
    /// pins it. A node without one is not pinned to a parent role.
    #[arg(long = "pcr3", value_name = "I=HEX")]
    pcr3: Vec<String>,
    /// The image's measurements (eif-build's measurements.json; with --coordinator).
    #[arg(long)]
    measurements: Option<PathBuf>,
    /// PEM of the attestation root (default: the AWS Nitro root).
    #[arg(long)]
    root: Option<PathBuf>,
}

/// The one-command form: prepare, approve with the admin keys given, submit.
#[derive(Debug, Args)]
struct OneCommand {
    #[command(flatten)]
    cluster_args: ClusterArgs,
    /// The cluster's name (a label; approvals name the cluster id the genesis hashes to).
    #[arg(long, default_value = "cohort")]
    cluster: String,
    /// Key files of the admins approving the genesis here (at least QUORUM of them; all of
    /// them sign).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    /// Public key (hex) of a further admin, who does not sign the genesis (repeat). Their key
    /// files stay with them.
    #[arg(long = "admin-public")]
    admin_publics: Vec<String>,
    /// How many admins must approve admin requests.
    #[arg(long, default_value_t = 1)]
    quorum: u16,
    #[command(flatten)]
    nodes: NodeArgs,
    /// Also write the approved genesis here (JSON), for every client to pin with `cohort
    /// trust --genesis FILE`. This machine pins it at --trust (or its default) either way.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PrepareArgs {
    #[command(flatten)]
    cluster_args: ClusterArgs,
    /// The cluster's name (a label).
    #[arg(long, default_value = "cohort")]
    cluster: String,
    /// Public key (hex) of every admin (repeat).
    #[arg(long = "admin-public", required = true)]
    admin_publics: Vec<String>,
    /// How many admins must approve this genesis and later admin requests.
    #[arg(long, default_value_t = 1)]
    quorum: u16,
    #[command(flatten)]
    nodes: NodeArgs,
    /// Where to write the proposal (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ApproveArgs {
    /// The proposal `prepare` wrote.
    #[arg(long)]
    proposal: PathBuf,
    /// This admin's key file.
    #[arg(long)]
    admin: PathBuf,
    /// Where to write the approval (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct SubmitArgs {
    #[command(flatten)]
    cluster_args: ClusterArgs,
    /// The proposal `prepare` wrote.
    #[arg(long)]
    proposal: PathBuf,
    /// An admin's approval (repeat; at least the proposal's quorum).
    #[arg(long = "approval", required = true)]
    approvals: Vec<PathBuf>,
    /// Also write the approved genesis here (JSON), for other clients to pin.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    #[command(flatten)]
    cluster_args: ClusterArgs,
}

fn admin_public(text: &str) -> anyhow::Result<[u8; 32]> {
    hex_public(text)
        .ok_or_else(|| anyhow::anyhow!("--admin-public {text}: not a 32-byte hex public key"))
}

/// What the nodes must be: from the sim directory, or from --measurements and --kms-key.
fn expectations(cluster: &ClusterArgs, a: &NodeArgs) -> anyhow::Result<Expectations> {
    if let Some(dir) = cluster.sim_dir()
        && a.kms_keys.is_empty()
        && a.measurements.is_none()
    {
        return Expectations::of_sim_dir(dir);
    }
    let Some(file) = &a.measurements else {
        bail!("--measurements FILE is needed with --coordinator (the image the nodes must run)");
    };
    let pcrs = attestation::read_measurements(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pcr = |i: usize| {
        pcrs.get(&i)
            .cloned()
            .with_context(|| format!("{} has no PCR{i}", file.display()))
    };
    let image = [pcr(0)?, pcr(1)?, pcr(2)?];
    let by_node = indexed("--kms-key", "ARN", &a.kms_keys, |arn| {
        protocol::KmsKeyArn::parse(arn).map_err(anyhow::Error::from)
    })?;
    if by_node.keys().copied().ne(0..by_node.len()) || by_node.len() < 2 {
        bail!("--kms-key must name every node 0..N-1 once (at least two nodes)");
    }
    let pcr3 = indexed("--pcr3", "HEX", &a.pcr3, |value| {
        let value = attestation::parse_pcr_hex(value)
            .ok()
            .filter(|v| v.len() == 48)
            .context("not a 48-byte SHA-384 value in hex")?;
        if value.iter().all(|b| *b == 0) {
            bail!("all zeros is an instance without an IAM role, not a parent role");
        }
        Ok(value)
    })?;
    if let Some(i) = pcr3.keys().find(|i| **i >= by_node.len()) {
        bail!("--pcr3 names node {i}, and there is no node {i}");
    }
    let pcr3 = pcr3.into_iter().map(|(i, v)| (i as u16, v)).collect();
    let root_der = match &a.root {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            attestation::pem_to_der(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => attestation::aws_nitro_root_der(),
    };
    Ok(Expectations {
        root_der,
        image,
        kms_keys: by_node.into_values().collect(),
        pcr3,
        allow_debug: false,
    })
}

/// Parses repeated `FLAG I=VALUE` arguments into values by node index, each index once.
fn indexed<T>(
    flag: &str,
    what: &str,
    texts: &[String],
    parse: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<std::collections::BTreeMap<usize, T>> {
    let mut by_node = std::collections::BTreeMap::new();
    for text in texts {
        let (i, value) = text
            .split_once('=')
            .with_context(|| format!("{flag} {text}: expected I={what}"))?;
        let i: u16 = i
            .parse()
            .with_context(|| format!("{flag} {text}: {i} is not a node index"))?;
        let value = parse(value).with_context(|| format!("{flag} {text}"))?;
        if by_node.insert(usize::from(i), value).is_some() {
            bail!("{flag} names node {i} twice");
        }
    }
    Ok(by_node)
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not {what}", path.display()))
}

pub(super) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Pins what was approved here and writes it to `out`.
fn finish(
    approved: &ApprovedJson<GenesisV2Json>,
    cluster_args: &ClusterArgs,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    println!("genesis done on every node; peers admitted; auxiliary info ready");
    let path = cluster_args.trust_path();
    let trust = cli::ceremony::pin(approved, &path)?;
    println!(
        "pinned cluster {} at {}",
        trust.cluster_id(),
        path.display()
    );
    if let Some(out) = out {
        write_json(out, approved)?;
        println!(
            "approved genesis written to {} (cohort trust --genesis FILE)",
            out.display()
        );
    }
    Ok(())
}

/// Runs the ceremony (one step of it, or all in one command).
pub async fn run(a: GenesisArgs) -> anyhow::Result<ExitCode> {
    match a.step {
        None => one_command(a.one).await,
        Some(Step::Prepare(p)) => prepare(p).await,
        Some(Step::Approve(p)) => approve(p),
        Some(Step::Submit(p)) => submit(p).await,
        Some(Step::Restore(p)) => restore(p).await,
    }
}

async fn one_command(a: OneCommand) -> anyhow::Result<ExitCode> {
    let api = a.cluster_args.api()?;
    let others = public_keys(&a.admin_publics, admin_public)?;
    let admins = read_keys(&a.admins)?;
    let expect = expectations(&a.cluster_args, &a.nodes)?;
    let (approved, _) =
        cli::ceremony::run(&api, &a.cluster, &admins, &others, a.quorum, &expect).await?;
    finish(&approved, &a.cluster_args, a.out.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

async fn prepare(a: PrepareArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster_args.api()?;
    let admins = public_keys(&a.admin_publics, admin_public)?;
    if a.quorum == 0 || usize::from(a.quorum) > admins.len() {
        bail!(
            "the quorum ({}) must be between 1 and the number of admins ({})",
            a.quorum,
            admins.len()
        );
    }
    let expect = expectations(&a.cluster_args, &a.nodes)?;
    let admins = admins
        .iter()
        .map(|k| serde_bytes::ByteBuf::from(k.to_vec()))
        .collect();
    let g = cli::ceremony::prepare(&api, &a.cluster, admins, a.quorum, &expect).await?;
    write_json(&a.out, &GenesisV2Json::from_wire(&g))?;
    println!(
        "proposal written to {}: each admin checks it and runs cohort genesis approve",
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn approve(a: ApproveArgs) -> anyhow::Result<ExitCode> {
    let proposal: GenesisV2Json = read_json(&a.proposal, "a genesis proposal")?;
    let g = proposal.to_wire();
    let admin = cli::ops::read_key(&a.admin)?;
    let approval = cli::ceremony::approve(&g, &admin)?;
    cli::ceremony::print_proposal(&g);
    write_json(&a.out, &approval)?;
    println!(
        "approved by {}: approval written to {}",
        hex::encode(&approval.approver.0),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn submit(a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster_args.api()?;
    let proposal: GenesisV2Json = read_json(&a.proposal, "a genesis proposal")?;
    let approvals = a
        .approvals
        .iter()
        .map(|p| read_json::<ApprovalJson>(p, "an approval"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (approved, _) = cli::ceremony::submit(&api, proposal.to_wire(), approvals).await?;
    finish(&approved, &a.cluster_args, a.out.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

async fn restore(a: RestoreArgs) -> anyhow::Result<ExitCode> {
    let trust = a.cluster_args.trust()?;
    let api = a.cluster_args.api()?;
    cli::ceremony::restore(&api, &trust).await?;
    println!(
        "cluster {} restored at the coordinator from the pinned genesis (the coordinator \
         checked every node's signed inventory); now `cohort key recover`",
        trust.cluster_id()
    );
    Ok(ExitCode::SUCCESS)
}
