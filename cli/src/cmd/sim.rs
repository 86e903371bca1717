//! `cohort sim up`: run a simulated cluster on this machine until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use cli::sim::{SimCluster, SimOptions};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
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
        /// A RabbitMQ broker the coordinator takes requests from and publishes events to
        /// (`amqp://guest:guest@127.0.0.1:5672/%2f` on these machines; docs/events.md).
        #[arg(long, value_name = "URL")]
        amqp: Option<String>,
        /// Nodes to add later (`cohort node enroll | add | join --proxy`): enclaves and
        /// proxies numbered after the others, in no genesis and not the coordinator's.
        #[arg(long, default_value_t = 0)]
        candidates: usize,
    },
    /// The simulated cluster's stand-in for the deployment's blob sync: copy every node's
    /// sealed blobs to DIR/backup/node-I/ and write the manifest its proxy reads, so that
    /// `cohort key check-backups` sees them backed up.
    Backup {
        /// Cluster directory.
        #[arg(long, default_value = ".cohort-sim")]
        dir: PathBuf,
    },
}

/// Starts the cluster, prints its endpoints, and stops it on Ctrl-C or SIGTERM.
pub async fn run(command: SimCommand) -> anyhow::Result<ExitCode> {
    let (nodes, dir, fixture_primes, coordinator_args, candidates) = match command {
        SimCommand::Up {
            nodes,
            dir,
            fixture_primes,
            coordinator_args,
            amqp,
            candidates,
        } => {
            let broker = amqp.into_iter().flat_map(|url| ["--amqp".to_string(), url]);
            let args = broker.chain(coordinator_args).collect::<Vec<_>>();
            (nodes, dir, fixture_primes, args, candidates)
        }
        SimCommand::Backup { dir } => {
            let copied = cli::sim::backup(&dir)?;
            println!(
                "{copied} sealed blobs copied to {} and confirmed in each node's manifest",
                dir.join("backup").display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut options = SimOptions::new(nodes, dir)?;
    options.fixture_primes = fixture_primes;
    options.coordinator_args = coordinator_args;
    options.candidates = candidates;
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
    for n in &cluster.info.candidates {
        println!(
            "node to add {}: enclave {} ({}), proxy {}, KMS key {}",
            n.id, n.enclave, n.module_id, n.proxy_url, n.kms_key_arn
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
    host::startup::shutdown_signal().await;
    println!("stopping");
    cluster.stop().await?;
    Ok(ExitCode::SUCCESS)
}
