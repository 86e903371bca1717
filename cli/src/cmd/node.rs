//! `cohort node`: the cluster's roster (issue 20, membership). `show` checks the roster and
//! the changes proposed to it against the pinned genesis; `add`, `replace` and `remove` build
//! a roster change from the roster in force, check it with the rules every enclave applies,
//! and propose it at every node, approved by the admins in force; `withdraw` proposes the
//! roster in force again; `propose-again` tries the pending change at the nodes that do not
//! hold it. `enroll` and `add --proxy` take a new node's entry from its own document, verified
//! here; `join` hands it the pending change (`cli::roster::join`); `prepare` runs the prepare
//! gate (`cli::roster::prepare`). Resharing every key to the new roster and the commit are
//! planned (`docs/lifecycle.md`, "Membership"): a proposed
//! change does not yet take effect.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cli::roster::Edit;
use cli::roster::join::{self, Candidate};
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
    /// Enroll a node to add (its enclave makes its node key, sealed under --kms-key, unless it
    /// holds one), verify its document here and print the roster entry it shows.
    Enroll {
        #[command(flatten)]
        node: CandidateArgs,
        /// The KMS key its node key is sealed under (a full key ARN).
        #[arg(long = "kms-key", value_name = "ARN")]
        kms_key: String,
        /// Pin the PCR3 and PCR4 its document shows (its parent's role and instance).
        #[arg(long)]
        pin_parent: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Hand the pending roster change to the node it adds: the chain from the pinned genesis,
    /// the change and a member's statement, all checked here, as is the node's document and
    /// its answer. The node holds the change from then on and takes no part in the cluster's
    /// work until it is committed.
    Join {
        #[command(flatten)]
        node: CandidateArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// The prepare gate of the pending roster change: every member (through the coordinator)
    /// and every node that joins (at its parent proxy) says under which chain it holds the
    /// change; each statement is checked here against the chain pinned here, and every node is
    /// then shown the whole set and is prepared, counted so only on its own signature for this
    /// run. A node that holds another chain, gave no statement or did not sign is named.
    Prepare {
        /// The parent proxy of each node the change adds (base URL; repeat for each).
        #[arg(long = "proxy", value_name = "URL")]
        proxies: Vec<String>,
        /// PEM of the attestation root their documents must chain to (default: the simulated
        /// cluster's in --dir, else the AWS Nitro root).
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Moves every key to the pending roster change, after the prepare gate: the new party
    /// set's auxiliary information first when the cluster holds an ECDSA key (minutes), then
    /// each key, with progress. Every node of the new roster's signed word that it sealed each
    /// key is checked here under the node key the change lists.
    Move {
        /// The parent proxy of each node the change adds (base URL; repeat for each).
        #[arg(long = "proxy", value_name = "URL")]
        proxies: Vec<String>,
        /// PEM of the attestation root their documents must chain to (default: the simulated
        /// cluster's in --dir, else the AWS Nitro root).
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// The commit of the pending roster change, after every key moved: every node of the new
    /// roster vouches for one key set, the nodes that stay commit, the nodes that join commit
    /// on their words, the nodes removed leave (dropping every share). Every word is checked
    /// here under the node keys of the pending change and the roster in force.
    Commit {
        /// The parent proxy of each node the change adds (base URL; repeat for each).
        #[arg(long = "proxy", value_name = "URL")]
        proxies: Vec<String>,
        /// PEM of the attestation root their documents must chain to (default: the simulated
        /// cluster's in --dir, else the AWS Nitro root).
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: JsonFlag,
    },
}

/// A new node's roster entry: from its own document, verified here (`--proxy`), or given by
/// hand (`--node-key`).
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The new node's parent proxy: its enclave is enrolled under --kms-key unless it is
    /// already, its document verified here, and the entry taken from it.
    #[arg(long, value_name = "URL", conflicts_with = "node_key")]
    proxy: Option<String>,
    /// PEM of the attestation root the new node's document must chain to (default: the
    /// simulated cluster's in --dir, else the AWS Nitro root).
    #[arg(long, value_name = "FILE", requires = "proxy")]
    root: Option<PathBuf>,
    /// With --proxy: pin the PCR3 and PCR4 the new node's document shows (its parent's role
    /// and instance), so that peers admit it only on that parent.
    #[arg(long, requires = "proxy", conflicts_with_all = ["pcr3", "pcr4"])]
    pin_parent: bool,
    /// Its node key (32 bytes, hex), as its enclave made it at enrollment (by hand: prefer
    /// --proxy, which verifies it).
    #[arg(long, value_name = "HEX", required_unless_present = "proxy")]
    node_key: Option<String>,
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

/// Where the node to add is.
#[derive(Debug, Args)]
pub struct CandidateArgs {
    /// The new node's parent proxy (base URL).
    #[arg(long, value_name = "URL")]
    proxy: String,
    /// PEM of the attestation root its document must chain to (default: the simulated
    /// cluster's in --dir, else the AWS Nitro root).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
}

/// The attestation root: `root`, else the simulated cluster's in the sim dir, else AWS's.
fn root_der(root: Option<&std::path::Path>, cluster: &ClusterArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = root {
        return super::attest::read_root(path);
    }
    match cluster.sim_dir() {
        Some(dir) if dir.join("cluster.json").exists() => {
            Ok(cli::ceremony::Expectations::of_sim_dir(dir)?.root_der)
        }
        _ => Ok(attestation::aws_nitro_root_der()),
    }
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
    async fn entry(&self, cluster: &ClusterArgs) -> anyhow::Result<RosterEntry> {
        let kms_key = protocol::KmsKeyArn::parse(&self.kms_key).context("--kms-key")?;
        if let Some(proxy) = &self.proxy {
            let root = root_der(self.root.as_deref(), cluster)?;
            let node = Candidate {
                proxy,
                root_der: &root,
            };
            let images = join::accepted_images(&cluster.api()?, &cluster.trust()?).await?;
            let http = coordinator::client::HttpClient::new();
            let mut entry = join::enroll(&http, node, &images, &kms_key, self.pin_parent).await?;
            if !self.pin_parent {
                entry.pcr3 = pcr("--pcr3", &self.pcr3)?;
                entry.pcr4 = pcr("--pcr4", &self.pcr4)?;
            }
            return Ok(entry);
        }
        let node_key = self
            .node_key
            .as_deref()
            .and_then(|k| hex::decode(k).ok())
            .filter(|k| k.len() == 32)
            .context("--node-key: not 32 bytes in hex")?;
        Ok(RosterEntry {
            node_key: serde_bytes::ByteBuf::from(node_key),
            kms_key_arn: kms_key,
            pcr3: pcr("--pcr3", &self.pcr3)?,
            pcr4: pcr("--pcr4", &self.pcr4)?,
        })
    }
}

/// Runs a node command.
pub async fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Show { cluster, output } => show(&cluster, &output).await,
        NodeCommand::Add { entry, change } => {
            let entry = entry.entry(&change.cluster).await?;
            propose(change, Edit::Add(entry)).await
        }
        NodeCommand::Replace {
            node,
            entry,
            change,
        } => {
            let entry = entry.entry(&change.cluster).await?;
            propose(change, Edit::Replace(node, entry)).await
        }
        NodeCommand::Enroll {
            node,
            kms_key,
            pin_parent,
            cluster,
            output,
        } => enroll(&node, &kms_key, pin_parent, &cluster, &output).await,
        NodeCommand::Join {
            node,
            cluster,
            output,
        } => join_node(&node, &cluster, &output).await,
        NodeCommand::Prepare {
            proxies,
            root,
            cluster,
            output,
        } => prepare(&proxies, root.as_deref(), &cluster, &output).await,
        NodeCommand::Move {
            proxies,
            root,
            cluster,
            output,
        } => move_keys(&proxies, root.as_deref(), &cluster, &output).await,
        NodeCommand::Commit {
            proxies,
            root,
            cluster,
            output,
        } => commit(&proxies, root.as_deref(), &cluster, &output).await,
        NodeCommand::Remove { node, change } => propose(change, Edit::Remove(node)).await,
        NodeCommand::Withdraw { change } => propose(change, Edit::Withdraw).await,
        NodeCommand::ProposeAgain { cluster, output } => again(&cluster, &output).await,
    }
}

async fn show(cluster: &ClusterArgs, output: &JsonFlag) -> anyhow::Result<ExitCode> {
    let trust = cluster.trust()?;
    let (_, status, rosters) = cli::roster::fetch(&cluster.api()?, &trust).await?;
    output.print(&status, |s: &RosterStatus| {
        println!(
            "roster version {} (checked against the pinned genesis of cluster {} and every \
             committed change):",
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
        for (version, nodes) in &rosters.incomplete {
            println!(
                "roster version {version}: nodes {nodes:?} gave no word that they committed it \
                 yet; run cohort node commit again once they are reachable"
            );
        }
    })?;
    Ok(if rosters.incomplete.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    let (admins, status, rosters) = cli::roster::fetch(&api, &trust).await?;
    let (_, result) =
        cli::roster::propose(&api, &trust, (&admins, &status, &rosters), edit, &approvers).await?;
    let nodes = rosters.in_force().len();
    a.output.print(&result, |r| {
        if !print_result(r, nodes) {
            println!("run cohort node propose-again once the nodes that do not hold it are back");
        }
        println!(
            "the roster in force is unchanged until the change is committed; next: a node it \
             adds joins (cohort node join), every node is prepared (cohort node prepare), \
             the keys move (cohort node move) and the change is committed (cohort node commit)"
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
    let Some((result, rosters)) = cli::roster::propose_again(&cluster.api()?, &trust).await? else {
        bail!("no roster change is recorded under the admins in force");
    };
    let nodes = rosters.in_force().len();
    output.print(&result, |r| {
        print_result(r, nodes);
    })?;
    Ok(if cli::roster::every_node(&result.proposed, nodes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The roster entry as `cohort node enroll` prints it.
#[derive(serde::Serialize)]
struct EntryJson {
    node_key: String,
    kms_key_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr4: Option<String>,
}

async fn enroll(
    node: &CandidateArgs,
    kms_key: &str,
    pin_parent: bool,
    cluster: &ClusterArgs,
    output: &JsonFlag,
) -> anyhow::Result<ExitCode> {
    let kms_key = protocol::KmsKeyArn::parse(kms_key).context("--kms-key")?;
    let root = root_der(node.root.as_deref(), cluster)?;
    let images = join::accepted_images(&cluster.api()?, &cluster.trust()?).await?;
    let candidate = Candidate {
        proxy: &node.proxy,
        root_der: &root,
    };
    let http = coordinator::client::HttpClient::new();
    let entry = join::enroll(&http, candidate, &images, &kms_key, pin_parent).await?;
    let json = EntryJson {
        node_key: hex::encode(&entry.node_key),
        kms_key_arn: entry.kms_key_arn.to_string(),
        pcr3: entry.pcr3.as_ref().map(hex::encode),
        pcr4: entry.pcr4.as_ref().map(hex::encode),
    };
    output.print(&json, |e| {
        println!(
            "the node behind {} is enrolled; its document verified here (root, an image the \
             cluster accepts, a fresh nonce):",
            node.proxy
        );
        println!("  node key {}", e.node_key);
        println!("  KMS key  {}", e.kms_key_arn);
        for (name, value) in [("PCR3", &e.pcr3), ("PCR4", &e.pcr4)] {
            if let Some(v) = value {
                println!("  {name} {v} (pinned)");
            }
        }
        println!(
            "propose it with: cohort node add --proxy {} --kms-key {}{}",
            node.proxy,
            e.kms_key_arn,
            if pin_parent { " --pin-parent" } else { "" }
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn join_node(
    node: &CandidateArgs,
    cluster: &ClusterArgs,
    output: &JsonFlag,
) -> anyhow::Result<ExitCode> {
    let root = root_der(node.root.as_deref(), cluster)?;
    let candidate = Candidate {
        proxy: &node.proxy,
        root_der: &root,
    };
    let http = coordinator::client::HttpClient::new();
    let joined = join::join(&cluster.api()?, &cluster.trust()?, &http, candidate).await?;
    #[derive(serde::Serialize)]
    struct JoinedJson {
        node: u16,
        version: u32,
        request_sha256: String,
        node_key: String,
    }
    let json = JoinedJson {
        node: joined.node,
        version: joined.version,
        request_sha256: hex::encode(joined.change),
        node_key: hex::encode(&joined.entry.node_key),
    };
    output.print(&json, |j| {
        println!(
            "the node behind {} joined roster version {} (request sha256 {}) as node {}; its \
             statement verified under node key {}",
            node.proxy, j.version, j.request_sha256, j.node, j.node_key
        );
        println!(
            "it takes no part in the cluster's work until the change is committed; next: \
             cohort node prepare, move and commit"
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The nodes behind `proxies`, their documents checked against the root `root`.
fn candidates<'a>(proxies: &'a [String], root: &'a [u8]) -> Vec<Candidate<'a>> {
    proxies
        .iter()
        .map(|proxy| Candidate {
            proxy,
            root_der: root,
        })
        .collect()
}

async fn prepare(
    proxies: &[String],
    root: Option<&std::path::Path>,
    cluster: &ClusterArgs,
    output: &JsonFlag,
) -> anyhow::Result<ExitCode> {
    let root = root_der(root, cluster)?;
    let joiners = candidates(proxies, &root);
    let http = coordinator::client::HttpClient::new();
    let prepared =
        cli::roster::prepare::prepare(&cluster.api()?, &cluster.trust()?, &http, &joiners).await?;
    output.print(&prepared, |p| {
        println!(
            "every node of roster version {} holds change {} under chain {} and is prepared:",
            p.version, p.request_sha256, p.chain
        );
        for n in &p.nodes {
            let role = match (n.member, n.index) {
                (Some(m), Some(i)) => format!("member {m}, index {i} of the new roster"),
                (Some(m), None) => format!("member {m}, leaving"),
                (None, Some(i)) => format!("joining at index {i}"),
                (None, None) => "neither roster".to_string(),
            };
            println!(
                "  {} ({role}){}",
                n.node_key,
                if n.prepared { "" } else { ": not prepared" }
            );
        }
        println!("next: move every key to the new roster (`cohort node move`)");
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn move_keys(
    proxies: &[String],
    root: Option<&std::path::Path>,
    cluster: &ClusterArgs,
    output: &JsonFlag,
) -> anyhow::Result<ExitCode> {
    let root = root_der(root, cluster)?;
    let joiners = candidates(proxies, &root);
    let http = coordinator::client::HttpClient::new();
    // Progress goes to stderr, so that --json stays one document on stdout.
    let mut progress = |line: &str| eprintln!("{line}");
    let moved = cli::roster::moves::move_keys(
        &cluster.api()?,
        &cluster.trust()?,
        &http,
        &joiners,
        &mut progress,
    )
    .await?;
    output.print(&moved, |m| {
        println!(
            "every key moved to roster version {} (change {}):",
            m.version, m.request_sha256
        );
        for s in &m.steps {
            println!(
                "  {}: {} nodes, digest {}, {:.1} s",
                s.step, s.nodes, s.digest, s.seconds
            );
        }
        println!("next: the commit (cohort node commit)");
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn commit(
    proxies: &[String],
    root: Option<&std::path::Path>,
    cluster: &ClusterArgs,
    output: &JsonFlag,
) -> anyhow::Result<ExitCode> {
    let root = root_der(root, cluster)?;
    let joiners = candidates(proxies, &root);
    let http = coordinator::client::HttpClient::new();
    let committed =
        cli::roster::commit::commit(&cluster.api()?, &cluster.trust()?, &http, &joiners).await?;
    output.print(&committed, |c| {
        println!(
            "roster version {} (change {}) committed over {} keys at indices {:?}; left: nodes \
             {:?}",
            c.version, c.request_sha256, c.keys, c.committed, c.left
        );
        for f in &c.failed {
            println!("  not committed or left: {f}");
        }
        println!(
            "the new roster's proxies, in index order: {} (the coordinator does not follow a \
             committed roster yet: it serves its nodes at their indices)",
            c.proxies.join(" ")
        );
    })?;
    Ok(if committed.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
