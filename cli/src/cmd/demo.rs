//! `cohort demo`: boot a simulated cluster, attest and verify every node, run the threshold
//! and chain parts, and stop it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use attestation::Policy;
use clap::Args;
use cli::client::HttpClient;
use cli::sim::{ClusterInfo, SimCluster, SimOptions};
use rand::RngCore;

use super::attest::read_root;
use super::now;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Cluster directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Tests only: enclaves load committed safe primes.
    #[arg(long, hide = true)]
    fixture_primes: bool,
}

/// Runs the demo; an error (exit 2) if any check failed.
pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let nodes = a.nodes;
    let temp;
    let dir = match a.dir {
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
    options.fixture_primes = a.fixture_primes;
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
    let mut failures = attest_nodes(&cluster.info, root, &expected).await?;
    println!(
        "[4/4] threshold keys (genesis, auxiliary info, an ECDSA and an EdDSA key, signatures) and \
         chain transactions"
    );
    let api = cluster.info.api()?;
    let expect = cli::ceremony::Expectations::of_sim_dir(&cluster.dir)?;
    let threshold = cli::demo::run(&api, &chains, &expect).await;
    cluster.stop().await?;
    failures += threshold?;
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    println!("demo passed");
    Ok(ExitCode::SUCCESS)
}

/// Steps 2 and 3: every node's document verifies against the cluster's `root` and `expected`
/// PCRs, and a verifier expecting another image refuses one. Returns the failed checks.
async fn attest_nodes(
    info: &ClusterInfo,
    root: Vec<u8>,
    expected: &[Vec<u8>],
) -> anyhow::Result<usize> {
    let client = HttpClient::new();
    let mut failures = 0;
    let mut first_doc = None;
    for node in &info.nodes {
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
    Ok(failures)
}
