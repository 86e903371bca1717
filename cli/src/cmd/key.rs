//! `cohort key`: create a key by distributed key generation; show one, checked against the
//! pinned genesis; list the cluster's keys; read legacy shares to be imported (`legacy`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{ClusterArgs, JsonFlag, hex_public, print_json, public_keys, read_keys};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key by distributed key generation on every node.
    Create(CreateArgs),
    /// Show a key after checking its receipts against the pinned genesis: every node of the
    /// roster signed its public key, chain code, scheme and threshold with its node key.
    Show {
        #[command(flatten)]
        target: super::KeyArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Check that every node's copy off its instance holds what the key's share needs there
    /// (node key, genesis, auxiliary info for ECDSA, the key's current share), as each node's
    /// parent proxy answers from the deployment's blob sync. Exits 1 unless every node's is:
    /// fund a key only after this passes, and again after a refresh or resharing.
    CheckBackups {
        #[command(flatten)]
        target: super::KeyArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// List the cluster's keys (JSON). Keep a copy with your backups: after a loss of the
    /// coordinator's database, `cohort key recover` restores the keys' records from it.
    List {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// After the coordinator's database was lost and the genesis restored (`cohort genesis
    /// restore`): rebuild the key records from what every node holds, signed by its node key,
    /// and the archive `cohort key list` wrote; each key restored with receipts is checked
    /// against the pinned genesis here.
    Recover {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The archived `cohort key list` output (JSON).
        #[arg(long)]
        archive: Option<std::path::PathBuf>,
        /// Then restore the keys refused for want of a record (`no_archive`), and only those,
        /// without receipts: they sign; clients refuse them, and the coordinator reshares
        /// none, until a record that checks is posted, which gives them their receipts.
        #[arg(long)]
        without_receipts: bool,
    },
    /// Read legacy key shares on this machine (tss-lib, cggmp21, frost) and show the key they
    /// share: its public key, the threshold its public shares show, the holders given, and its
    /// addresses, to compare with the cluster's after an import. Nothing is sent anywhere.
    Legacy(LegacyArgs),
    /// Import a legacy key (tss-lib, cggmp21, frost) without making it whole: every share
    /// given deals its part to the cluster's nodes, each sub-share sealed to a node whose
    /// document this machine verified against the pinned genesis; the admins given approve
    /// the import. The key keeps its public key, so every address stays the same.
    Import(Box<super::import::ImportCommand>),
    /// Move a key to another threshold of the cluster's nodes without changing its public key
    /// (admin approved): the dealers deal their shares of the current generation, every node
    /// checks them and seals the next one, and the old generation is retired everywhere only
    /// once every node's receipt of the new one verifies. Addresses stay the same.
    Reshare(ReshareArgs),
    /// Refresh every share of a key at its own threshold (a resharing to the same threshold):
    /// shares taken from any node before the refresh are useless with the new ones.
    Refresh(ReshareArgs),
    /// A key's approval policy: who approves its signing requests.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replace who approves a key's signing requests (admin approved): a refresh of the key
    /// that carries the new approvers, sealed by every node with the new generation. Once it
    /// lands the key's policy version goes up by one: requests approved under the old one are
    /// refused by every enclave, and new requests name the new version.
    Set(PolicySetArgs),
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    #[command(flatten)]
    target: super::KeyArgs,
    /// The new approvers' public keys (hex), or key files (repeat for each; they replace the
    /// key's approvers).
    #[arg(long = "approver", required = true)]
    approvers: Vec<String>,
    /// Approvals a signature needs under the new policy.
    #[arg(long)]
    approvals: u16,
    /// The nodes that deal the refresh, as `0,2` (default: nodes 0 to the threshold - 1).
    #[arg(long, value_delimiter = ',')]
    dealers: Option<Vec<u16>>,
    /// Admin key files approving the change (at least the quorum of the admins in force).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    #[command(flatten)]
    output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ReshareArgs {
    #[command(flatten)]
    target: super::KeyArgs,
    /// The new threshold (reshare only; a refresh keeps the key's own).
    #[arg(long)]
    threshold: Option<u16>,
    /// The nodes that deal, as `0,2` (default: nodes 0 to the current threshold - 1): at
    /// least the key's current threshold of them, each reachable.
    #[arg(long, value_delimiter = ',')]
    dealers: Option<Vec<u16>>,
    /// Admin key files approving the resharing (at least the quorum of the admins in force).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    /// Turn on the key's scheduled refresh with this period (`90d`, `12h`, `30m`, `45s`), or
    /// `off`; default: the key's schedule is kept. While it is on, the coordinator refreshes
    /// the key by itself each time its generation is that old, without approvals; each
    /// enclave allows it no sooner, and never at another threshold.
    #[arg(long, value_parser = cli::ops::parse_every)]
    every: Option<u64>,
    #[command(flatten)]
    output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// The files' format.
    #[arg(long, value_enum)]
    format: cli::import::inspect::Format,
    /// One holder's share file (repeat for several holders).
    #[arg(long = "share", required = true)]
    shares: Vec<PathBuf>,
    /// frost-ed25519: the group's public key package.
    #[arg(long)]
    public: Option<PathBuf>,
    /// A chain to show the key's address on, as CHAIN or CHAIN:NETWORK (repeatable; default
    /// bitcoin and ethereum for ECDSA keys, solana for EdDSA keys).
    #[arg(long = "chain")]
    chains: Vec<String>,
    #[command(flatten)]
    output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The key's id.
    #[arg(long)]
    id: String,
    /// ecdsa-secp256k1 or eddsa-ed25519.
    #[arg(long)]
    scheme: protocol::policy::Scheme,
    /// Nodes needed to sign.
    #[arg(long)]
    threshold: u16,
    /// Admin key files approving the creation (at least the quorum of the admins in force).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    /// Approvers' public keys (hex), or key files.
    #[arg(long = "approver", required = true)]
    approvers: Vec<String>,
    /// Approvals a signature needs.
    #[arg(long, default_value_t = 1)]
    approvals: u16,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs a key command.
pub async fn run(command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Create(a) => create(a).await,
        KeyCommand::Show { target, output } => show(&target, &output).await,
        KeyCommand::CheckBackups { target, output } => check_backups(&target, &output).await,
        KeyCommand::List { cluster } => list(&cluster).await,
        KeyCommand::Recover {
            cluster,
            archive,
            without_receipts,
        } => recover(&cluster, archive.as_deref(), without_receipts).await,
        KeyCommand::Legacy(a) => legacy(&a),
        KeyCommand::Import(a) => super::import::run(*a).await,
        KeyCommand::Reshare(a) => reshare(a, false).await,
        KeyCommand::Refresh(a) => reshare(a, true).await,
        KeyCommand::Policy(PolicyCommand::Set(a)) => set_policy(a).await,
    }
}

fn legacy(a: &LegacyArgs) -> anyhow::Result<ExitCode> {
    use protocol::policy::Scheme;
    let chains: Vec<(String, Option<String>)> = if a.chains.is_empty() {
        match a.format.scheme() {
            Scheme::EcdsaSecp256k1 => vec![("bitcoin".into(), None), ("ethereum".into(), None)],
            Scheme::EddsaEd25519 => vec![("solana".into(), None)],
        }
    } else {
        a.chains
            .iter()
            .map(|c| match c.split_once(':') {
                Some((chain, network)) => (chain.to_string(), Some(network.to_string())),
                None => (c.clone(), None),
            })
            .collect()
    };
    let summary = cli::import::inspect::inspect(a.format, &a.shares, a.public.as_deref(), &chains)?;
    a.output.print(&summary, |s| {
        println!(
            "legacy {} key {}: {} holders, any {} deal; given {:?} ({})",
            s.scheme,
            s.public_key,
            s.holders,
            s.threshold,
            s.given,
            if s.enough {
                "enough to deal"
            } else {
                "not enough to deal"
            }
        );
        for address in &s.addresses {
            println!("{} {}: {}", address.chain, address.network, address.address);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn approver_public(text: &str) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = hex_public(text) {
        return Ok(key);
    }
    Ok(cli::ops::read_key(std::path::Path::new(text))?
        .verifying_key()
        .to_bytes())
}

async fn create(a: CreateArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster.api()?;
    let trust = a.cluster.trust()?;
    let approvers = public_keys(&a.approvers, approver_public)?;
    let admins = read_keys(&a.admins)?;
    let (id, scheme, threshold) = (&a.id, a.scheme, a.threshold);
    let info = cli::ops::create_key(
        &api,
        trust.cluster_id(),
        id,
        scheme,
        threshold,
        &admins,
        &approvers,
        a.approvals,
    )
    .await?;
    // What the coordinator answers is checked like any key: every node signed it.
    let info = trust.check_key(&api, info).await?;
    let info = info.info();
    if info.key_id != *id || info.scheme != scheme || info.threshold != threshold {
        anyhow::bail!("the coordinator answered another key than the one created");
    }
    a.output.print(info, |info| {
        println!(
            "key {id} ({scheme}, {threshold} of the cluster): public key {}",
            hex::encode(&info.public_key.0)
        );
        if let Some(c) = &info.chain_code {
            println!("chain code: {}", hex::encode(&c.0));
        }
        println!("receipts: every node's verified against the pinned genesis");
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn reshare(a: ReshareArgs, refresh: bool) -> anyhow::Result<ExitCode> {
    let api = a.target.api()?;
    let trust = a.target.trust()?;
    let admins = read_keys(&a.admins)?;
    // The key as every node signed it, before and after.
    let before = trust.fetch_key(&api, &a.target.key).await?;
    let before = before.info();
    let threshold = match (refresh, a.threshold) {
        (true, Some(_)) => anyhow::bail!("a refresh keeps the key's threshold: drop --threshold"),
        (true, None) => before.threshold,
        (false, Some(t)) => t,
        (false, None) => anyhow::bail!("--threshold is needed (or use `cohort key refresh`)"),
    };
    let info = cli::ops::reshare_key(
        &api,
        trust.cluster_id(),
        before,
        threshold,
        a.dealers.as_deref(),
        &admins,
        cli::ops::Changes {
            refresh_every: a.every,
            policy: None,
        },
    )
    .await?;
    let info = trust.check_key(&api, info).await?;
    let after = info.info();
    let generation = after.receipts.as_ref().map_or(0, |r| r.generation);
    if after.key_id != before.key_id
        || after.public_key != before.public_key
        || after.chain_code != before.chain_code
        || after.threshold != threshold
    {
        anyhow::bail!("the coordinator answered another key than the one reshared");
    }
    a.output.print(after, |k| {
        println!(
            "key {} {}: generation {generation}, {} of {} (public key unchanged: {})",
            k.key_id,
            if refresh { "refreshed" } else { "reshared" },
            k.threshold,
            k.receipts.as_ref().map_or(0, |r| r.participants.len()),
            hex::encode(&k.public_key.0)
        );
        println!("receipts: every node's verified against the pinned genesis and its rosters");
        println!("{}", schedule_line(k));
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn set_policy(a: PolicySetArgs) -> anyhow::Result<ExitCode> {
    let api = a.target.api()?;
    let trust = a.target.trust()?;
    let admins = read_keys(&a.admins)?;
    let policy = protocol::policy::KeyPolicy {
        approvers: public_keys(&a.approvers, approver_public)?
            .into_iter()
            .map(|k| serde_bytes::ByteBuf::from(k.to_vec()))
            .collect(),
        approvals_needed: a.approvals,
    };
    policy.check()?;
    let before = trust.fetch_key(&api, &a.target.key).await?;
    let before = before.info();
    let info = cli::ops::reshare_key(
        &api,
        trust.cluster_id(),
        before,
        before.threshold,
        a.dealers.as_deref(),
        &admins,
        cli::ops::Changes {
            refresh_every: None,
            policy: Some(policy.clone()),
        },
    )
    .await?;
    // Every node's receipt of the new generation signs the new policy and its version.
    let info = trust.check_key(&api, info).await?;
    let after = info.info();
    if after.key_id != before.key_id
        || after.public_key != before.public_key
        || after.threshold != before.threshold
        || Some(after.policy_version) != before.policy_version.checked_add(1)
        || coordinator::api::Wire::to_wire(&after.policy) != policy
    {
        anyhow::bail!("the coordinator answered another key or policy than the one set");
    }
    a.output.print(after, |k| {
        println!(
            "key {}: policy version {}, {} of {} approvers (signing requests name version {})",
            k.key_id,
            k.policy_version,
            k.policy.approvals_needed,
            k.policy.approvers.len(),
            k.policy_version
        );
        println!("receipts: every node's verified against the pinned genesis, with the policy");
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The key's refresh schedule, as the coordinator reports it.
fn schedule_line(k: &coordinator::api::KeyInfo) -> String {
    match k.refresh_every {
        0 => "refresh:    not scheduled".into(),
        every => format!(
            "refresh:    every {every} s, next due at {} (Unix s; as the coordinator reports \
             it: the enclaves enforce the schedule they sealed)",
            k.refreshed.saturating_add(every)
        ),
    }
}

async fn check_backups(target: &super::KeyArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let api = target.api()?;
    let path = format!("/v1/keys/{}/backups", target.key);
    let report: coordinator::api::KeyBackups = api.get(&path).await?;
    output.print(&report, |r| {
        for n in &r.nodes {
            let state = match (&n.error, n.backed_up) {
                (Some(e), _) => format!("no answer: {e}"),
                (None, true) => "backed up".to_string(),
                (None, false) => {
                    format!("missing {} (manifest {})", n.missing.join(", "), n.manifest)
                }
            };
            println!("node {}: {state}", n.node);
        }
        println!(
            "key {}: {}",
            r.key_id,
            match r.backed_up {
                true => "backed up at every node",
                false => "NOT backed up at every node: do not fund it yet",
            }
        );
    })?;
    Ok(match report.backed_up {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

async fn show(target: &super::KeyArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = target.trust()?;
    let key = trust.fetch_key(&target.api()?, &target.key).await?;
    output.print(key.info(), |k| {
        println!(
            "key {} ({}, {} of {}, generation {})",
            k.key_id,
            k.scheme,
            k.threshold,
            k.receipts.as_ref().map_or(0, |r| r.participants.len()),
            k.receipts.as_ref().map_or(0, |r| r.generation)
        );
        println!("public key: {}", hex::encode(&k.public_key.0));
        if let Some(c) = &k.chain_code {
            println!("chain code: {}", hex::encode(&c.0));
        }
        println!(
            "receipts:   verified: every node of cluster {} signed this key",
            trust.cluster_id()
        );
        println!("{}", schedule_line(k));
        println!(
            "policy:     version {}, {} of {} approvers",
            k.policy_version,
            k.policy.approvals_needed,
            k.policy.approvers.len()
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn list(cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let list: coordinator::api::KeyList = cluster.get("/v1/keys").await?;
    print_json(&list)?;
    Ok(ExitCode::SUCCESS)
}

async fn recover(
    cluster: &ClusterArgs,
    archive: Option<&std::path::Path>,
    without_receipts: bool,
) -> anyhow::Result<ExitCode> {
    let archive: coordinator::api::KeyList = match archive {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: not a `cohort key list` output: {e}", path.display()))?,
        None => coordinator::api::KeyList { keys: Vec::new() },
    };
    let trust = cluster.trust()?;
    let report = cli::recover::recover(&cluster.api()?, &trust, &archive, without_receipts).await?;
    print_json(&report)?;
    eprintln!(
        "roster version {} in force ({} committed changes recorded again, checked against the \
         pinned genesis); {} of {} keys the nodes hold restored with receipts (each checked \
         against the pinned genesis), {} without, {} not restored",
        report.roster,
        report.roster_commits_restored,
        report.restored.len(),
        report.held,
        report.restored_without_receipts.len(),
        report.not_restored.len()
    );
    Ok(if report.not_restored.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
