//! `cohort`: the operator and client CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use attestation::Policy;
use clap::{Args, Parser, Subcommand};
use cli::client::HttpClient;
use cli::sim::{SimCluster, SimOptions};
use coordinator::api::PresignatureUse;
use rand::RngCore;

#[derive(Debug, Parser)]
#[command(
    name = "cohort",
    version,
    about = "Cohort threshold-signing cluster: operator and client CLI"
)]
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
    Keygen {
        /// Where to write the key (hex seed, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Initialise the cluster: admins and their quorum, peer admission, auxiliary info.
    Genesis {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
        /// The cluster's name.
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
    },
    /// Keys: create.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Sign a payload (32-byte digest for ECDSA, message for EdDSA) with a key.
    Sign {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
        /// The key.
        #[arg(long)]
        key: String,
        /// Payload, hex.
        #[arg(long, value_parser = parse_hex_arg)]
        payload: Hex,
        /// Derivation path (ECDSA keys), e.g. m/0/1.
        #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
        path: std::vec::Vec<u32>,
        /// Approver key files.
        #[arg(long = "approver", required = true)]
        approvers: Vec<PathBuf>,
        /// Use a ready presignature if a healthy quorum holds one (`prefer`), or not (`never`).
        #[arg(long, default_value = "prefer", value_parser = parse_presignature)]
        presignature: PresignatureUse,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drive signing through the coordinator at a given concurrency; print p50/p95/p99
    /// latency, throughput and failures.
    Bench {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
        /// The key.
        #[arg(long)]
        key: String,
        /// Derivation path (ECDSA keys).
        #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
        path: std::vec::Vec<u32>,
        /// Approver key files.
        #[arg(long = "approver", required = true)]
        approvers: Vec<PathBuf>,
        /// Signing requests to measure.
        #[arg(long, default_value_t = 100, conflicts_with = "duration")]
        count: usize,
        /// Instead of a count: send new requests for this many seconds (a sustained load).
        #[arg(long)]
        duration: Option<u64>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Requests sent first and not measured.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// `prefer` (sign from presignatures when the pools hold some) or `never`.
        #[arg(long, default_value = "prefer", value_parser = parse_presignature)]
        presignature: PresignatureUse,
        /// Before measuring, wait until every quorum's pool holds this many presignatures.
        #[arg(long, default_value_t = 0)]
        wait_pool: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The address of a key on a chain.
    Address {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
        /// The key.
        #[arg(long)]
        key: String,
        /// bitcoin, solana, or an EVM chain of the registry (ethereum, …).
        #[arg(long)]
        chain: String,
        /// Network (default mainnet): bitcoin testnet/signet/regtest, ethereum sepolia/anvil, …
        #[arg(long)]
        network: Option<String>,
        /// Derivation path (ECDSA keys), e.g. m/0/1.
        #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
        path: std::vec::Vec<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Chain transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Boot a simulated cluster, attest and verify every node, and stop it (the main job).
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Cluster directory (default: a temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Tests only: enclaves load committed safe primes.
        #[arg(long, hide = true)]
        fixture_primes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TxCommand {
    /// Build a transfer through the coordinator, check it locally, approve and sign it,
    /// assemble it; print the raw signed transaction, and broadcast it with --rpc.
    Send(Box<SendArgs>),
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Cluster directory (from `cohort sim up`), to find its coordinator.
    #[arg(long, default_value = ".cohort-sim")]
    dir: PathBuf,
    /// The coordinator's URL (default: the one of the sim cluster in --dir).
    #[arg(long, env = "COHORT_COORDINATOR")]
    coordinator: Option<String>,
    /// bitcoin, solana, or an EVM chain of the registry (ethereum, …).
    #[arg(long)]
    chain: String,
    /// Network (default mainnet).
    #[arg(long)]
    network: Option<String>,
    /// The sending key.
    #[arg(long)]
    key: String,
    /// Derivation path of the sending key (ECDSA), e.g. m/0/0.
    #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
    path: std::vec::Vec<u32>,
    /// Recipient address.
    #[arg(long)]
    to: Option<String>,
    /// Amount in base units (satoshi, wei, lamports, token units).
    #[arg(long)]
    amount: Option<String>,
    /// ERC-20 contract or SPL mint to send instead of the native coin.
    #[arg(long)]
    token: Option<String>,
    /// SPL: the mint's decimals.
    #[arg(long)]
    decimals: Option<u8>,
    /// Bitcoin: an output to spend, TXID:VOUT:SATOSHI (repeat).
    #[arg(long = "utxo")]
    utxos: Vec<String>,
    /// Bitcoin: fee rate, sat/vB.
    #[arg(long)]
    fee_rate: Option<u64>,
    /// Bitcoin: sign this unsigned PSBT (base64 or hex, or @FILE) instead of building one.
    #[arg(long)]
    psbt: Option<String>,
    /// EVM: nonce (default: from --rpc or the coordinator's endpoint).
    #[arg(long)]
    nonce: Option<u64>,
    /// EVM: gas limit.
    #[arg(long)]
    gas_limit: Option<u64>,
    /// EVM (EIP-1559): max fee per gas, wei.
    #[arg(long)]
    max_fee_per_gas: Option<String>,
    /// EVM (EIP-1559): max priority fee per gas, wei.
    #[arg(long)]
    max_priority_fee_per_gas: Option<String>,
    /// EVM (legacy EIP-155): gas price, wei.
    #[arg(long)]
    gas_price: Option<String>,
    /// Solana: recent blockhash (default: from --rpc or the coordinator's endpoint).
    #[arg(long)]
    blockhash: Option<String>,
    /// Approver key files.
    #[arg(long = "approver", required = true)]
    approvers: Vec<PathBuf>,
    /// The chain's JSON-RPC endpoint: fill nonce/fees/blockhash from it and broadcast there.
    #[arg(long)]
    rpc: Option<String>,
    /// More EVM chains (TOML, the format of adapters/src/evm_chains.toml).
    #[arg(long)]
    evm_chains: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_utxo(s: &str) -> anyhow::Result<adapters::Utxo> {
    let mut it = s.split(':');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(txid), Some(vout), Some(amount), None) => Ok(adapters::Utxo {
            txid: txid.to_string(),
            vout: vout.parse().context("--utxo: VOUT is not a number")?,
            amount: amount.parse().context("--utxo: SATOSHI is not a number")?,
        }),
        _ => bail!("--utxo takes TXID:VOUT:SATOSHI, got `{s}`"),
    }
}

async fn tx_send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let api = cli::ops::api(a.coordinator.as_deref(), &a.dir)?;
    let mut registry = adapters::Registry::builtin();
    if let Some(f) = &a.evm_chains {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        registry = registry.with_evm_chains(&text)?;
    }
    let psbt = match &a.psbt {
        Some(p) if p.starts_with('@') => Some(
            std::fs::read_to_string(&p[1..])
                .with_context(|| format!("reading {}", &p[1..]))?
                .trim()
                .to_string(),
        ),
        other => other.clone(),
    };
    let utxos = if a.utxos.is_empty() {
        None
    } else {
        Some(
            a.utxos
                .iter()
                .map(|u| parse_utxo(u))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let intent = adapters::Intent {
        to: a.to.clone(),
        amount: a.amount.clone(),
        token: a.token.clone(),
        decimals: a.decimals,
        utxos,
        fee_rate: a.fee_rate,
        psbt,
        nonce: a.nonce,
        gas_limit: a.gas_limit,
        max_fee_per_gas: a.max_fee_per_gas.clone(),
        max_priority_fee_per_gas: a.max_priority_fee_per_gas.clone(),
        gas_price: a.gas_price.clone(),
        recent_blockhash: a.blockhash.clone(),
    };
    let json = a.json;
    let sent = cli::tx::send(
        &api,
        &registry,
        cli::tx::TxRequest {
            key_id: a.key.clone(),
            chain: a.chain.clone(),
            network: a.network.clone(),
            path: a.path.clone(),
            intent,
        },
        &read_keys(&a.approvers)?,
        cli::tx::Rpc {
            url: a.rpc.as_deref(),
            fill_locally: true,
        },
        |p| {
            if !json {
                print!("{}", p.summary);
            }
        },
    )
    .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "chain": sent.assembled.chain,
                "network": sent.assembled.network,
                "txid": sent.assembled.txid,
                "raw_tx": hex::encode(&sent.assembled.raw_tx.0),
                "psbt": sent.assembled.psbt.as_ref().map(|p| hex::encode(&p.0)),
                "summary": sent.assembled.summary,
                "broadcast": sent.broadcast,
            }))?
        );
    } else {
        println!("txid:   {}", sent.assembled.txid);
        println!("raw tx: {}", hex::encode(&sent.assembled.raw_tx.0));
        if let Some(p) = &sent.assembled.psbt {
            println!("psbt:   {}", hex::encode(&p.0));
        }
        if let Some(id) = &sent.broadcast {
            println!("broadcast: the node accepted it as {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Start N enclaves and N proxies; stop them on Ctrl-C or SIGTERM.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Cluster directory (reused if it exists).
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// Tests only: enclaves load committed safe primes (their binary must be built with the
        /// `test-fixtures` feature).
        #[arg(long, hide = true)]
        fixture_primes: bool,
        /// Extra argument for the coordinator, e.g. --coordinator-arg=--pool-level=8 (repeat).
        #[arg(long = "coordinator-arg", allow_hyphen_values = true)]
        coordinator_args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit log; exit 1 at the first broken link. Reads the
    /// coordinator's store directly with --store, or asks the coordinator.
    Verify {
        /// The coordinator's store: sqlite:PATH or postgres://...
        #[arg(long)]
        store: Option<String>,
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key by distributed key generation on every node.
    Create {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
        /// The key's id.
        #[arg(long)]
        id: String,
        /// ecdsa-secp256k1 or eddsa-ed25519.
        #[arg(long)]
        scheme: protocol::policy::Scheme,
        /// Nodes needed to sign.
        #[arg(long)]
        threshold: u16,
        /// Admin key files approving the creation (at least the genesis quorum).
        #[arg(long = "admin", required = true)]
        admins: Vec<PathBuf>,
        /// Approvers' public keys (hex), or key files.
        #[arg(long = "approver", required = true)]
        approvers: Vec<String>,
        /// Approvals a signature needs.
        #[arg(long, default_value_t = 1)]
        approvals: u16,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the cluster's keys (JSON).
    List {
        /// Cluster directory (from `cohort sim up`), to find its coordinator.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
        /// The coordinator's URL (default: the one of the sim cluster in --dir).
        #[arg(long, env = "COHORT_COORDINATOR")]
        coordinator: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KmsCommand {
    /// Print the key policy of a node's KMS key: only an enclave with these measurements may
    /// have data keys, and nobody without an attestation document.
    Policy {
        /// The node (1-based), for the policy id.
        #[arg(long)]
        node: usize,
        /// Measurements JSON (`{"PCR0": .., "PCR1": .., "PCR2": ..}`, at the top level or under
        /// `Measurements`, as eif-build and `nitro-cli describe-eif` print them); repeat during
        /// an image rotation to allow both images.
        #[arg(long = "measurements", required = true)]
        measurements: Vec<PathBuf>,
        /// The IAM role ARN of the node's parent instance.
        #[arg(long)]
        parent_role: String,
        /// The principal ARN that administers the key (it cannot use it).
        #[arg(long)]
        admin: String,
    },
}

#[derive(Debug, Subcommand)]
enum AttestCommand {
    /// Fetch an attestation document (raw COSE bytes) through a proxy.
    Fetch {
        /// The proxy's base URL, e.g. http://127.0.0.1:7070.
        #[arg(long)]
        proxy: String,
        /// Nonce to include, hex (default: 32 random bytes, printed).
        #[arg(long, value_parser = parse_hex_arg)]
        nonce: Option<Hex>,
        /// Where to write the document.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a document; exit 0 if it verifies, 1 if not.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The document (raw COSE bytes).
    file: PathBuf,
    /// PEM of the root to pin instead of the AWS Nitro root.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Allowed PCR0 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr0: Vec<Vec<u8>>,
    /// Allowed PCR1 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr1: Vec<Vec<u8>>,
    /// Allowed PCR2 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr2: Vec<Vec<u8>>,
    /// Allowed PCR8 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr8: Vec<Vec<u8>>,
    /// The image's measurements file (eif-build's measurements.json or `nitro-cli describe-eif`
    /// output): allows its PCR0, PCR1, PCR2 (and PCR8). Repeatable.
    #[arg(long = "measurements")]
    measurements: Vec<PathBuf>,
    /// The nonce the document must carry (hex).
    #[arg(long, value_parser = parse_hex_arg)]
    nonce: Option<Hex>,
    /// Maximum age of the document at the validation time, seconds.
    #[arg(long)]
    max_age: Option<u64>,
    /// Validation time, seconds since the Unix epoch (default: now).
    #[arg(long)]
    at: Option<u64>,
    /// Accept debug-mode documents (all-zero PCRs).
    #[arg(long)]
    allow_debug: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_presignature(s: &str) -> Result<PresignatureUse, String> {
    match s {
        "prefer" => Ok(PresignatureUse::Prefer),
        "never" => Ok(PresignatureUse::Never),
        other => Err(format!("`{other}`: expected prefer or never")),
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("not hex: {e}"))
}

/// Bytes given as hex on the command line (a newtype, so that clap does not read
/// `Option<Vec<u8>>` as a list of numbers).
#[derive(Debug, Clone)]
struct Hex(Vec<u8>);

fn parse_hex_arg(s: &str) -> Result<Hex, String> {
    parse_hex(s).map(Hex)
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn read_root(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    attestation::sim::pem_to_der(&pem)
        .with_context(|| format!("{} is not a PEM certificate", path.display()))
}

fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let document = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut policy = Policy::default();
    if let Some(root) = &args.root {
        policy = policy.with_root(read_root(root)?);
    }
    let mut pcrs = BTreeMap::new();
    for (i, v) in [
        (0, args.pcr0),
        (1, args.pcr1),
        (2, args.pcr2),
        (8, args.pcr8),
    ] {
        if !v.is_empty() {
            pcrs.insert(i, v);
        }
    }
    policy.pcrs = pcrs;
    for file in &args.measurements {
        policy = policy
            .allow_measurements(file)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    policy.nonce = args.nonce.map(|h| h.0);
    policy.max_age = args.max_age.map(Duration::from_secs);
    policy.allow_debug = args.allow_debug;
    let at = args.at.map(Duration::from_secs).unwrap_or_else(now);
    let report = cli::attest::report(&document, &policy, at);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn sim_up(
    nodes: usize,
    dir: PathBuf,
    fixture_primes: bool,
    coordinator_args: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let mut options = SimOptions::new(nodes, dir)?;
    options.fixture_primes = fixture_primes;
    options.coordinator_args = coordinator_args;
    let cluster = SimCluster::start(&options).await?;
    println!("simulated cluster up in {}", cluster.dir.display());
    println!("root certificate: {}", cluster.info.root_pem_path.display());
    println!("pcr0: {}", cluster.info.pcrs[0]);
    for n in &cluster.info.nodes {
        println!(
            "node {}: enclave {} ({}), proxy {}, KMS key {}",
            n.id, n.enclave, n.module_id, n.proxy_url, n.kms_key_id
        );
    }
    println!("coordinator: {}", cluster.info.coordinator_url);
    println!(
        "KMS stand-in: {} (key policies admit pcr0 above only; decisions in {})",
        cluster.info.kms_url,
        cluster.dir.join("kms/audit.jsonl").display()
    );
    println!(
        "endpoints written to {}",
        cluster.dir.join("cluster.json").display()
    );
    println!("press Ctrl-C to stop");
    shutdown_signal().await;
    println!("stopping");
    cluster.stop().await?;
    Ok(ExitCode::SUCCESS)
}

async fn fetch(proxy: String, nonce: Option<Hex>, out: PathBuf) -> anyhow::Result<ExitCode> {
    let nonce = nonce.map(|h| h.0).unwrap_or_else(|| {
        let mut n = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut n);
        n
    });
    let document = HttpClient::new().fetch_attestation(&proxy, &nonce).await?;
    std::fs::write(&out, &document).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} bytes to {}", document.len(), out.display());
    println!("nonce: {}", hex::encode(&nonce));
    Ok(ExitCode::SUCCESS)
}

async fn demo(
    nodes: usize,
    dir: Option<PathBuf>,
    fixture_primes: bool,
) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new().prefix("cohort-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "[1/4] booting a simulated cluster of {nodes} enclaves and {nodes} proxies in {}",
        dir.display()
    );
    println!("      starting local chains: anvil (EVM) and the Solana runtime (LiteSVM)");
    let chains = cli::demo::LocalChains::start().await?;
    let mut options = SimOptions::new(nodes, dir)?;
    options.fixture_primes = fixture_primes;
    options.coordinator_args = chains.coordinator_args();
    let cluster = SimCluster::start(&options).await?;
    let root = read_root(&cluster.info.root_pem_path)?;
    let expected: Vec<Vec<u8>> = cluster
        .info
        .pcrs
        .iter()
        .map(hex::decode)
        .collect::<Result<_, _>>()?;
    println!("      enclave measurement pcr0 = {}", cluster.info.pcrs[0]);

    println!("[2/4] attesting every node through its proxy with a fresh nonce");
    let client = HttpClient::new();
    let mut failures = 0;
    let mut first_doc = None;
    for node in &cluster.info.nodes {
        let mut nonce = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let document = client.fetch_attestation(&node.proxy_url, &nonce).await?;
        let mut policy = Policy::default().with_root(root.clone());
        for (i, v) in expected.iter().enumerate() {
            policy = policy.allow_pcr(i, v.clone());
        }
        policy.nonce = Some(nonce);
        policy.max_age = Some(Duration::from_secs(60));
        policy.require_identity = true;
        match attestation::verify(&document, &policy, now()) {
            Ok(doc) => {
                let id = doc
                    .identity
                    .map(|k| hex::encode(k.signing))
                    .unwrap_or_default();
                println!(
                    "      node {} ({}): VERIFIED, identity key {}",
                    node.id, doc.module_id, id
                );
            }
            Err(e) => {
                failures += 1;
                println!("      node {}: FAILED: {e}", node.id);
            }
        }
        first_doc.get_or_insert(document);
    }

    println!("[3/4] checking that a verifier expecting another enclave image refuses the document");
    if let Some(doc) = first_doc {
        let policy = Policy::default()
            .with_root(root)
            .allow_pcr(0, vec![0xAB; 48]);
        match attestation::verify(&doc, &policy, now()) {
            Err(attestation::VerifyError::PcrMismatch { .. }) => {
                println!("      refused: pcr0 mismatch (as expected)")
            }
            other => {
                failures += 1;
                println!("      UNEXPECTED: {other:?}");
            }
        }
    }
    println!(
        "[4/4] threshold keys (genesis, auxiliary info, an ECDSA and an EdDSA key, signatures) and \
         chain transactions"
    );
    let api = coordinator::client::ApiClient::new(&cluster.info.coordinator_url);
    let threshold = cli::demo::run(&api, &chains).await;
    cluster.stop().await?;
    failures += threshold?;
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    println!("demo passed");
    Ok(ExitCode::SUCCESS)
}

/// A 32-byte public key given in hex.
fn hex_public(text: &str) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(hex::decode(text).ok()?.as_slice()).ok()
}

fn approver_public(text: &str) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = hex_public(text) {
        return Ok(key);
    }
    Ok(cli::ops::read_key(std::path::Path::new(text))?
        .verifying_key()
        .to_bytes())
}

fn admin_public(text: &str) -> anyhow::Result<[u8; 32]> {
    hex_public(text)
        .ok_or_else(|| anyhow::anyhow!("--admin-public {text}: not a 32-byte hex public key"))
}

fn read_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<ed25519_dalek::SigningKey>> {
    paths.iter().map(|p| cli::ops::read_key(p)).collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(SimCommand::Up {
            nodes,
            dir,
            fixture_primes,
            coordinator_args,
        }) => sim_up(nodes, dir, fixture_primes, coordinator_args).await,
        Command::Attest(AttestCommand::Fetch { proxy, nonce, out }) => {
            fetch(proxy, nonce, out).await
        }
        Command::Attest(AttestCommand::Verify(args)) => verify_command(args),
        Command::Kms(KmsCommand::Policy { node, measurements, parent_role, admin }) => (|| {
            let images = measurements
                .iter()
                .map(|p| cli::kms::read_measurements(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let policy = cli::kms::key_policy(&cli::kms::PolicyParams {
                node,
                images,
                parent_role,
                admin,
            })?;
            println!("{}", serde_json::to_string_pretty(&policy)?);
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Demo { nodes, dir, fixture_primes } => demo(nodes, dir, fixture_primes).await,
        Command::Address { dir, coordinator, key, chain, network, path, json } => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let a = cli::tx::address(&api, &key, &chain, network.as_deref(), &path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&a)?);
            } else {
                println!("{}", a.address);
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
        Command::Tx(TxCommand::Send(args)) => tx_send(*args).await,
        Command::Audit(AuditCommand::Verify { store: Some(store), .. }) => (|| {
            let mut store = coordinator::store::open(&store)?;
            Ok(match coordinator::store::verify_log(&mut store)? {
                Ok(n) => {
                    println!("audit chain intact: {n} records");
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    println!("{broken}");
                    ExitCode::from(1)
                }
            })
        })(),
        Command::Audit(AuditCommand::Verify { store: None, dir, coordinator }) => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let v: coordinator::api::AuditVerification =
                api.get("/v1/audit/verify").await.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(if v.ok {
                println!("audit chain intact: {} records", v.records);
                ExitCode::SUCCESS
            } else {
                println!(
                    "audit chain broken at record {}: {}",
                    v.broken_at.unwrap_or_default(),
                    v.reason.unwrap_or_default()
                );
                ExitCode::from(1)
            })
        }
        .await,
        Command::Keygen { out } => cli::ops::keygen(&out).map(|pk| {
            println!("public key: {}", hex::encode(pk));
            ExitCode::SUCCESS
        }),
        Command::Genesis { dir, coordinator, cluster, admins, admin_publics, quorum } => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let others = admin_publics.iter().map(|a| admin_public(a)).collect::<anyhow::Result<Vec<_>>>()?;
            cli::ops::genesis_with(&api, &cluster, None, &read_keys(&admins)?, &others, quorum).await?;
            println!("genesis done on every node; peers admitted; auxiliary info ready");
            Ok(ExitCode::SUCCESS)
        }
        .await,
        Command::Key(KeyCommand::Create { dir, coordinator, id, scheme, threshold, admins, approvers, approvals, json }) => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let approvers = approvers.iter().map(|a| approver_public(a)).collect::<anyhow::Result<Vec<_>>>()?;
            let info = cli::ops::create_key(&api, &id, scheme, threshold, &read_keys(&admins)?, &approvers, approvals).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("key {id} ({scheme}, {threshold} of the cluster): public key {}", hex::encode(&info.public_key.0));
                if let Some(c) = &info.chain_code {
                    println!("chain code: {}", hex::encode(&c.0));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
        Command::Key(KeyCommand::List { dir, coordinator }) => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let list: coordinator::api::KeyList =
                api.get("/v1/keys").await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&list)?);
            Ok(ExitCode::SUCCESS)
        }
        .await,
        Command::Sign { dir, coordinator, key, payload, path, approvers, presignature, json } => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let result =
                cli::ops::sign(&api, &key, &path, payload.0, &read_keys(&approvers)?, Some(presignature)).await?;
            let s = result.signatures.first().context("no signature in the answer")?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "signature": hex::encode(&s.signature.0),
                        "public_key": hex::encode(&s.public_key.0),
                        "nodes": s.nodes,
                        "presigned": s.presigned,
                        "request_id": hex::encode(&result.request_id.0),
                    })
                );
            } else {
                println!("signature:  {}", hex::encode(&s.signature.0));
                println!("public key: {}", hex::encode(&s.public_key.0));
                println!("nodes:      {:?}{}", s.nodes, if s.presigned { " (presigned)" } else { "" });
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
        Command::Bench { dir, coordinator, key, path, approvers, count, duration, concurrency, warmup, presignature, wait_pool, json } => async {
            let api = cli::ops::api(coordinator.as_deref(), &dir)?;
            let approvers = read_keys(&approvers)?;
            if wait_pool > 0 {
                cli::ops::wait_for_pool(&api, &key, &path, wait_pool, Duration::from_secs(1800)).await?;
            }
            let length = match duration {
                Some(secs) => cli::ops::BenchLength::Duration(Duration::from_secs(secs)),
                None => cli::ops::BenchLength::Count(count),
            };
            let r = cli::ops::bench(&api, &key, &path, &approvers, length, concurrency, warmup, presignature).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} {} ({:?}): {} requests at concurrency {}: {} ok ({} presigned), failures {:?}",
                    r.key_id, r.scheme, r.presignature, r.requests, r.concurrency, r.ok, r.presigned, r.failures
                );
                println!(
                    "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}; throughput {:.1}/s over {:.1} s",
                    r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms, r.throughput_per_s, r.wall_s
                );
                println!(
                    "p50 of the first tenth {:.2} ms, of the last tenth {:.2} ms",
                    r.p50_first_tenth_ms, r.p50_last_tenth_ms
                );
            }
            Ok(if r.ok == r.requests { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        .await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cohort: {e:#}");
            ExitCode::from(2)
        }
    }
}
