//! `cohort genesis`: initialise the cluster with the genesis ceremony in one command (ADR
//! 0013): enroll every node under its KMS key, verify each node's document here, approve the
//! genesis with the admin keys given, submit it, wait for peer admission and auxiliary info.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use cli::ceremony::Expectations;

use super::{ClusterArgs, hex_public, public_keys, read_keys};

#[derive(Debug, Args)]
pub struct GenesisArgs {
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
    /// Node I's KMS key, `I=ARN` (repeat for every node; with --coordinator). From the
    /// deployment's outputs; a simulated cluster's come from its directory.
    #[arg(long = "kms-key", value_name = "I=ARN")]
    kms_keys: Vec<String>,
    /// The image's measurements (eif-build's measurements.json; with --coordinator).
    #[arg(long)]
    measurements: Option<PathBuf>,
    /// PEM of the attestation root (default: the AWS Nitro root).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Also write the approved genesis here (JSON), for every client to pin with `cohort
    /// trust --genesis FILE`. This machine pins it at --trust (or its default) either way.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn admin_public(text: &str) -> anyhow::Result<[u8; 32]> {
    hex_public(text)
        .ok_or_else(|| anyhow::anyhow!("--admin-public {text}: not a 32-byte hex public key"))
}

/// What the nodes must be: from the sim directory, or from --measurements and --kms-key.
fn expectations(a: &GenesisArgs) -> anyhow::Result<Expectations> {
    if let Some(dir) = a.cluster_args.sim_dir()
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
    let mut by_node = std::collections::BTreeMap::new();
    for text in &a.kms_keys {
        let (i, arn) = text
            .split_once('=')
            .with_context(|| format!("--kms-key {text}: expected I=ARN"))?;
        let i: usize = i
            .parse()
            .with_context(|| format!("--kms-key {text}: {i} is not a node index"))?;
        let arn = protocol::KmsKeyArn::parse(arn).with_context(|| format!("--kms-key {text}"))?;
        if by_node.insert(i, arn).is_some() {
            bail!("--kms-key names node {i} twice");
        }
    }
    if by_node.keys().copied().ne(0..by_node.len()) || by_node.len() < 2 {
        bail!("--kms-key must name every node 0..N-1 once (at least two nodes)");
    }
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
        allow_debug: false,
    })
}

/// Runs the ceremony and waits until every node is ready.
pub async fn run(a: GenesisArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster_args.api()?;
    let others = public_keys(&a.admin_publics, admin_public)?;
    let admins = read_keys(&a.admins)?;
    let expect = expectations(&a)?;
    let (approved, _) =
        cli::ceremony::run(&api, &a.cluster, &admins, &others, a.quorum, &expect).await?;
    println!("genesis done on every node; peers admitted; auxiliary info ready");
    let trust = cli::ceremony::pin(&approved, &a.cluster_args.trust_path())?;
    println!(
        "pinned cluster {} at {}",
        trust.cluster_id(),
        a.cluster_args.trust_path().display()
    );
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_vec_pretty(&approved)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("approved genesis written to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
