//! A simulated cluster: N enclaves and N parent proxies as separate processes, in one directory.
//!
//! ```text
//! DIR/ca/{root.pem, intermediate.pem, intermediate.key.pem}   simulated CA (kept across runs)
//! DIR/node-I/enclave.sock                                    enclave I's Unix socket
//! DIR/node-I/kms.sock                                        proxy I's KMS channel (enclave -> KMS)
//! DIR/node-I/log.sock                                        proxy I's log channel (enclave -> log)
//! DIR/node-I/kms-key-id                                      node I's KMS key in the stand-in
//! DIR/node-I/kms-key-arn                                     the same key's full ARN
//! DIR/node-I/pcr3                                            its parent role's PCR3 (hex)
//! DIR/node-I/blobs/                                          node I's sealed blobs
//! DIR/node-I/backed-up.json                                  what `cohort sim backup` copied
//! DIR/backup/node-I/                                         the copies (the deployment: S3)
//! DIR/kms/{keys/, audit.jsonl, kms.log}                      the local KMS stand-in's keys and log
//! DIR/kms.addr                                               the stand-in's HTTP address
//! DIR/node-I/{enclave.log, proxy.log, proxy.addr}            logs (the enclave's records reach
//!                                                            proxy.log too) and the proxy's address
//! DIR/coordinator/{coordinator.db, coordinator.log}         the coordinator's store and log
//! DIR/coordinator.addr                                       the coordinator's HTTP address
//! DIR/api-key.json, DIR/api-key.pub.json                    the admin API key (kept across runs)
//! DIR/cluster.json                                           root, measurements and endpoints
//! DIR/sim.pid                                                pid of the `cohort sim up` running it
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use attestation::sim::{SimulatedCa, measure_file, simulated_pcrs};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::process::{Child, Command};

use coordinator::client::HttpClient;

mod backup;
pub use backup::backup;

/// Name of the enclave executable.
pub const ENCLAVE_BIN: &str = "cohort-enclave";
/// Name of the proxy executable.
pub const PROXY_BIN: &str = "cohort-parent-proxy";
/// Name of the coordinator executable.
pub const COORDINATOR_BIN: &str = "cohort-coordinator";
/// Name of the local KMS stand-in executable.
pub const KMS_BIN: &str = "cohort-kms";
/// The static credentials the proxies give the stand-in (it checks no signature).
pub const SIM_AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "cohort-sim"),
    ("AWS_SECRET_ACCESS_KEY", "cohort-sim"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of enclave/proxy pairs.
    pub nodes: usize,
    /// The cluster directory.
    pub dir: PathBuf,
    /// Where `cohort-enclave` and `cohort-parent-proxy` are.
    pub bin_dir: PathBuf,
    /// How long to wait for every proxy to report its enclave attested.
    pub ready_timeout: Duration,
    /// Tests only: start enclaves with `--fixture-primes I` (the enclave binary must be built
    /// with the `test-fixtures` feature).
    pub fixture_primes: bool,
    /// Extra environment for the enclave processes (e.g. `RUST_LOG=trace`).
    pub enclave_env: Vec<(String, String)>,
    /// Extra arguments for the coordinator (e.g. `--store postgres://...`, `--pool-level 8`).
    pub coordinator_args: Vec<String>,
    /// Nodes to add later (issue 20, membership): enclave/proxy pairs started like the others
    /// (numbered after them, each with its own KMS key) but not given to the coordinator and
    /// not in the genesis: `cohort node enroll | add | join --proxy` reach them.
    pub candidates: usize,
}

impl SimOptions {
    /// Options with the binaries next to the running executable.
    pub fn new(nodes: usize, dir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            nodes,
            dir,
            bin_dir: sibling_bin_dir()?,
            ready_timeout: Duration::from_secs(60),
            fixture_primes: false,
            enclave_env: Vec::new(),
            coordinator_args: Vec::new(),
            candidates: 0,
        })
    }
}

/// The directory of the running executable (where cargo puts all of the workspace's binaries).
pub fn sibling_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let dir = exe.parent().context("executable has no parent directory")?;
    // Test executables live in target/<profile>/deps, examples in target/<profile>/examples;
    // binaries one level up.
    Ok(if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// One node as started.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// The node's index, from 0: the coordinator's node `id` (its `id`-th `--proxy`), as the
    /// API, the metrics and Terraform number nodes.
    pub id: usize,
    /// The NSM module id of its enclave.
    pub module_id: String,
    /// The enclave's socket.
    pub enclave: String,
    /// The proxy's base URL.
    pub proxy_url: String,
    /// The node's KMS key (id) in the local stand-in.
    pub kms_key_id: String,
    /// The same key's full ARN (what its enclave names when it enrolls).
    pub kms_key_arn: String,
    /// The PCR3 its enclave reports (its simulated parent's role), hex.
    pub pcr3: String,
}

/// What `cluster.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    /// PEM of the simulated root, to pin when verifying.
    pub root_pem_path: PathBuf,
    /// Expected PCRs (hex) of the enclave executable.
    pub pcrs: [String; 3],
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
    /// Nodes to add later ([`SimOptions::candidates`]), numbered after `nodes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<NodeInfo>,
    /// The coordinator's base URL.
    pub coordinator_url: String,
    /// The local KMS stand-in's base URL.
    pub kms_url: String,
    /// The stand-in's HTTPS address (HOST:PORT), where the proxies' tunnels lead: enclaves
    /// check its certificate against the simulated CA's root.
    #[serde(default)]
    pub kms_tls_addr: String,
    /// The admin API key every command given `--dir` signs its calls with (ADR 0017).
    pub api_key: PathBuf,
    /// Its public half, which the coordinator registers at start (`--admin-key`).
    pub api_public: PathBuf,
}

impl ClusterInfo {
    /// A client of the coordinator, signing with the cluster's admin key.
    pub fn api(&self) -> anyhow::Result<coordinator::client::ApiClient> {
        Ok(coordinator::client::ApiClient::new(&self.coordinator_url)
            .with_key(coordinator::api::ApiKey::load(&self.api_key)?))
    }
}

/// The admin API key in `dir` (made on first use, kept across runs) and its public half.
fn admin_api_key(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use coordinator::api::ApiKey;
    let key_path = dir.join(crate::ops::SIM_API_KEY);
    let public_path = dir.join(crate::ops::SIM_API_PUBLIC);
    let key = if key_path.exists() {
        ApiKey::load(&key_path)?
    } else {
        let key = ApiKey::generate("admin").map_err(|e| anyhow::anyhow!(e))?;
        key.save(&key_path)?;
        key
    };
    fs::write(
        &public_path,
        serde_json::to_string_pretty(&key.public())? + "\n",
    )?;
    Ok((key_path, public_path))
}

/// `--listen 127.0.0.1:0 --addr-file ADDR_FILE`: listen on a free port, written to `addr_file`.
fn listen_args(addr_file: &Path) -> Vec<String> {
    vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--addr-file".into(),
        addr_file.display().to_string(),
    ]
}

/// The arguments that point a coordinator at the cluster `info` describes (its proxies, root
/// and measurements), listening on a free port written to `addr_file`.
pub fn coordinator_args(info: &ClusterInfo, addr_file: &Path) -> Vec<String> {
    let mut args = listen_args(addr_file);
    args.extend(["--root".into(), info.root_pem_path.display().to_string()]);
    for (i, pcr) in info.pcrs.iter().enumerate() {
        args.extend([format!("--pcr{i}"), pcr.clone()]);
    }
    for n in &info.nodes {
        args.extend(["--proxy".into(), n.proxy_url.clone()]);
    }
    args.extend(["--admin-key".into(), info.api_public.display().to_string()]);
    args
}

/// How a process was started, to start it again: program, arguments, environment, log.
type ProcessCommand = (PathBuf, Vec<String>, Vec<(String, String)>, PathBuf);

/// A running simulated cluster. Dropping it kills every process it started.
pub struct SimCluster {
    /// Its directory.
    pub dir: PathBuf,
    /// Endpoints and measurements.
    pub info: ClusterInfo,
    children: Vec<(String, Child)>,
    commands: std::collections::BTreeMap<String, ProcessCommand>,
}

fn spawn_logged(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Child> {
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

fn log_file(path: &Path) -> anyhow::Result<Stdio> {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log {}", path.display()))?;
    Ok(Stdio::from(f))
}

fn check_binary(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "{} not found; build the workspace binaries first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Ok(())
}

fn claim_dir(dir: &Path) -> anyhow::Result<()> {
    let pid_file = dir.join("sim.pid");
    if let Ok(text) = fs::read_to_string(&pid_file)
        && let Ok(pid) = text.trim().parse::<i32>()
        && pid != std::process::id() as i32
        && kill(Pid::from_raw(pid), None).is_ok()
    {
        bail!(
            "{} is in use by a running cluster (pid {pid})",
            dir.display()
        );
    }
    fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))
}

impl SimCluster {
    /// Starts the cluster and waits until every proxy reports its enclave attested.
    pub async fn start(options: &SimOptions) -> anyhow::Result<Self> {
        if options.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        claim_dir(&dir)?;
        // Nodes were numbered from 1 here before they were numbered from 0 everywhere: in such
        // a directory node-1/ holds the first node's blobs, which would now start as the
        // second node under the coordinator's index 1.
        if !dir.join("node-0").exists() && dir.join(format!("node-{}", options.nodes)).exists() {
            bail!(
                "{} holds a simulated cluster whose nodes are numbered from 1 (node-1/ to \
                 node-{}/): nodes are numbered from 0 now; start a new cluster in another \
                 directory",
                dir.display(),
                options.nodes
            );
        }
        let ca_dir = dir.join("ca");
        SimulatedCa::load_or_generate(&ca_dir).context("simulated CA")?;
        let enclave_bin = options.bin_dir.join(ENCLAVE_BIN);
        let proxy_bin = options.bin_dir.join(PROXY_BIN);
        let coordinator_bin = options.bin_dir.join(COORDINATOR_BIN);
        check_binary(&enclave_bin)?;
        check_binary(&proxy_bin)?;
        check_binary(&coordinator_bin)?;
        let kms_bin = options.bin_dir.join(KMS_BIN);
        check_binary(&kms_bin)?;
        let pcrs = simulated_pcrs(&measure_file(&enclave_bin)?);
        let pcrs_hex = [0, 1, 2].map(|i| hex::encode(&pcrs[&i]));
        let (api_key, api_public) = admin_api_key(&dir)?;

        let mut cluster = Self {
            dir: dir.clone(),
            info: ClusterInfo {
                root_pem_path: ca_dir.join("root.pem"),
                pcrs: pcrs_hex.clone(),
                nodes: Vec::new(),
                candidates: Vec::new(),
                coordinator_url: String::new(),
                kms_url: String::new(),
                kms_tls_addr: String::new(),
                api_key,
                api_public,
            },
            children: Vec::new(),
            commands: Default::default(),
        };
        cluster.start_kms(&kms_bin, options.ready_timeout).await?;
        let kms = crate::kms::sim_client(&cluster.info.kms_url);
        for id in 0..options.nodes + options.candidates {
            let bins = (enclave_bin.as_path(), proxy_bin.as_path());
            cluster
                .start_node(id, options, bins, &kms, &pcrs_hex)
                .await?;
        }
        cluster.wait_for_proxies(options.ready_timeout).await?;
        // Nodes to add are no node of the coordinator's (nor of the genesis).
        cluster.info.candidates = cluster.info.nodes.split_off(options.nodes);
        cluster.start_coordinator(&coordinator_bin, options).await?;
        let json = serde_json::to_string_pretty(&cluster.info)?;
        // Written whole, then renamed into place: whoever waits for the file (a script, a test)
        // never reads it half-written (a CI run once read it empty).
        let partial = dir.join("cluster.json.partial");
        fs::write(&partial, json + "\n")?;
        fs::rename(&partial, dir.join("cluster.json"))?;
        Ok(cluster)
    }

    /// Starts node `id`'s enclave and proxy (`bins`), with its KMS key admitting `pcrs_hex`.
    async fn start_node(
        &mut self,
        id: usize,
        options: &SimOptions,
        (enclave_bin, proxy_bin): (&Path, &Path),
        kms: &aws_sdk_kms::Client,
        pcrs_hex: &[String; 3],
    ) -> anyhow::Result<()> {
        let node_dir = self.dir.join(format!("node-{id}"));
        fs::create_dir_all(&node_dir)?;
        let socket = format!("unix:{}", node_dir.join("enclave.sock").display());
        let module_id = format!("sim-node-{id}");
        let mut args: Vec<String> = [
            "--mode",
            "simulated",
            "--listen",
            &socket,
            "--module-id",
            &module_id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ca_dir = self.dir.join("ca");
        args.extend(["--sim-ca".to_string(), ca_dir.display().to_string()]);
        // The simulated parent's role: its enclave reports the role's PCR3, its key policy
        // pins it, and the ceremony expects it (`pcr3`, beside `kms-key-arn`).
        let role = crate::kms::sim_parent_role(id);
        args.extend(["--sim-parent-role".to_string(), role.clone()]);
        let pcr3 = crate::kms::pcr3_hex(&role);
        fs::write(node_dir.join("pcr3"), format!("{pcr3}\n"))?;
        let kms_socket = format!("unix:{}", node_dir.join("kms.sock").display());
        args.extend(["--parent".to_string(), kms_socket.clone()]);
        // The log channel, as in production: the enclave's records also reach proxy.log.
        let log_socket = format!("unix:{}", node_dir.join("log.sock").display());
        args.extend(["--log-to".to_string(), log_socket.clone()]);
        let kms_key_id = self
            .node_key(kms, id, &node_dir, pcrs_hex)
            .await
            .with_context(|| format!("KMS key of node {id}"))?;
        let kms_key_arn = crate::kms::key_arn(kms, &kms_key_id)
            .await
            .with_context(|| format!("KMS key ARN of node {id}"))?
            .to_string();
        fs::write(node_dir.join("kms-key-arn"), format!("{kms_key_arn}\n"))?;
        if options.fixture_primes {
            args.extend(["--fixture-primes".to_string(), id.to_string()]);
        }
        let log = node_dir.join("enclave.log");
        self.launch(
            format!("enclave-{id}"),
            (
                enclave_bin.to_path_buf(),
                args,
                options.enclave_env.clone(),
                log,
            ),
        )?;

        let addr_file = node_dir.join("proxy.addr");
        let _ = fs::remove_file(&addr_file);
        let mut args: Vec<String> = vec!["--enclave".into(), socket.clone()];
        args.extend(listen_args(&addr_file));
        args.extend([
            "--root".into(),
            self.info.root_pem_path.display().to_string(),
            "--pcr0".into(),
            pcrs_hex[0].clone(),
            "--pcr1".into(),
            pcrs_hex[1].clone(),
            "--pcr2".into(),
            pcrs_hex[2].clone(),
            "--blob-dir".into(),
            node_dir.join("blobs").display().to_string(),
            "--reattest-secs".into(),
            "5".into(),
            "--kms-listen".into(),
            kms_socket,
            "--kms-key-id".into(),
            kms_key_id.clone(),
            "--kms-tunnel-to".into(),
            self.info.kms_tls_addr.clone(),
            "--enclave-log-listen".into(),
            log_socket,
            "--backup-manifest".into(),
            backup::manifest_path(&node_dir).display().to_string(),
        ]);
        let env = SIM_AWS_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.launch(
            format!("proxy-{id}"),
            (
                proxy_bin.to_path_buf(),
                args,
                env,
                node_dir.join("proxy.log"),
            ),
        )?;
        self.info.nodes.push(NodeInfo {
            id,
            module_id,
            enclave: socket,
            proxy_url: String::new(),
            kms_key_id,
            kms_key_arn,
            pcr3,
        });
        Ok(())
    }

    /// Waits (until `timeout` from now) for every proxy's address, then for every proxy to
    /// report its enclave attested.
    async fn wait_for_proxies(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.info.nodes.len() {
            let id = i;
            let addr_file = self.dir.join(format!("node-{id}")).join("proxy.addr");
            let failure = format!(
                "proxy {id} did not start; see its log in {}",
                self.dir.display()
            );
            // A restarted proxy comes back on the same address: the coordinator knows it.
            self.info.nodes[i].proxy_url = self
                .bound_address(&format!("proxy-{id}"), &addr_file, deadline, failure)
                .await?;
        }
        let client = HttpClient::new();
        for node in self.info.nodes.clone() {
            loop {
                self.check_alive()?;
                let health = client.get(&format!("{}/healthz", node.proxy_url)).await;
                match health {
                    Ok((status, _)) if status.is_success() => break,
                    Ok((_, body)) if Instant::now() > deadline => {
                        bail!(
                            "node {} not attested: {}",
                            node.id,
                            String::from_utf8_lossy(&body)
                        )
                    }
                    Err(e) if Instant::now() > deadline => return Err(e),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// Starts the local KMS stand-in; a restart keeps its address.
    async fn start_kms(&mut self, program: &Path, timeout: Duration) -> anyhow::Result<()> {
        let data = self.dir.join("kms");
        fs::create_dir_all(&data)?;
        let addr_file = self.dir.join("kms.addr");
        let tls_addr_file = self.dir.join("kms-tls.addr");
        let _ = fs::remove_file(&addr_file);
        let _ = fs::remove_file(&tls_addr_file);
        let mut args: Vec<String> = vec!["--data-dir".into(), data.display().to_string()];
        args.extend(listen_args(&addr_file));
        let tls_listen = match self.info.kms_tls_addr.as_str() {
            "" => "127.0.0.1:0".to_string(),
            known => known.to_string(),
        };
        args.extend([
            "--attestation-root".into(),
            self.info.root_pem_path.display().to_string(),
            "--tls-listen".into(),
            tls_listen,
            "--tls-addr-file".into(),
            tls_addr_file.display().to_string(),
            "--tls-ca".into(),
            self.dir.join("ca").display().to_string(),
        ]);
        self.launch(
            "kms".into(),
            (program.to_path_buf(), args, vec![], data.join("kms.log")),
        )?;
        let failure = format!("the KMS stand-in did not start; see {}", data.display());
        self.info.kms_url = self
            .bound_address("kms", &addr_file, Instant::now() + timeout, failure)
            .await?;
        // The HTTPS address is written before the plain one: it is there now. Pinned too, so
        // that a restarted stand-in comes back where the proxies' tunnels lead.
        let tls_addr = fs::read_to_string(&tls_addr_file)
            .with_context(|| format!("the KMS stand-in wrote no {}", tls_addr_file.display()))?
            .trim()
            .to_string();
        if let Some((_, args, _, _)) = self.commands.get_mut("kms")
            && let Some(pos) = args.iter().position(|a| a == "--tls-listen")
        {
            args[pos + 1] = tls_addr.clone();
        }
        self.info.kms_tls_addr = tls_addr;
        Ok(())
    }

    /// Waits for process `name` to write the address it listens on into `addr_file`, and pins
    /// that address in its command so that a restart comes back on it. Returns `http://ADDR`;
    /// the error `failure` if no address by `deadline`.
    async fn bound_address(
        &mut self,
        name: &str,
        addr_file: &Path,
        deadline: Instant,
        failure: String,
    ) -> anyhow::Result<String> {
        let addr = loop {
            self.check_alive()?;
            if let Ok(a) = fs::read_to_string(addr_file) {
                break a.trim().to_string();
            }
            if Instant::now() > deadline {
                bail!(failure);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some((_, args, _, _)) = self.commands.get_mut(name)
            && let Some(pos) = args.iter().position(|a| a == "--listen")
        {
            args[pos + 1] = addr.clone();
        }
        Ok(format!("http://{addr}"))
    }

    /// Node `id`'s KMS key: created on first start with a policy admitting only the enclave
    /// image measured now; on later starts its policy is set to the current image (the
    /// operator's image rotation, done by `cohort sim up`).
    async fn node_key(
        &self,
        kms: &aws_sdk_kms::Client,
        id: usize,
        node_dir: &Path,
        pcrs_hex: &[String; 3],
    ) -> anyhow::Result<String> {
        let image = pcrs_hex
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.clone()))
            .collect();
        let policy = crate::kms::key_policy(&crate::kms::PolicyParams::simulated(id, image))?;
        fs::write(
            node_dir.join("kms-policy.json"),
            serde_json::to_string_pretty(&policy)? + "\n",
        )?;
        let key_file = node_dir.join("kms-key-id");
        if let Ok(existing) = fs::read_to_string(&key_file) {
            let key_id = existing.trim().to_string();
            crate::kms::put_policy(kms, &key_id, &policy).await?;
            return Ok(key_id);
        }
        let key_id =
            crate::kms::create_key(kms, &format!("cohort node {id} sealing"), &policy).await?;
        fs::write(&key_file, format!("{key_id}\n"))?;
        Ok(key_id)
    }

    /// Changes how process `name` is started the next time (its program and arguments), e.g.
    /// to run another enclave image.
    pub fn edit_command(
        &mut self,
        name: &str,
        edit: impl FnOnce(&mut PathBuf, &mut Vec<String>),
    ) -> anyhow::Result<()> {
        let (program, args, _, _) = self
            .commands
            .get_mut(name)
            .with_context(|| format!("no process {name}"))?;
        edit(program, args);
        Ok(())
    }

    async fn start_coordinator(
        &mut self,
        program: &Path,
        options: &SimOptions,
    ) -> anyhow::Result<()> {
        let data = self.dir.join("coordinator");
        fs::create_dir_all(&data)?;
        let addr_file = self.dir.join("coordinator.addr");
        let _ = fs::remove_file(&addr_file);
        let mut args = coordinator_args(&self.info, &addr_file);
        args.extend(["--data-dir".into(), data.display().to_string()]);
        args.extend(options.coordinator_args.iter().cloned());
        self.launch(
            "coordinator".into(),
            (
                program.to_path_buf(),
                args,
                vec![],
                data.join("coordinator.log"),
            ),
        )?;
        let failure = format!("the coordinator did not start; see {}", data.display());
        let deadline = Instant::now() + options.ready_timeout;
        self.info.coordinator_url = self
            .bound_address("coordinator", &addr_file, deadline, failure)
            .await?;
        Ok(())
    }

    fn launch(&mut self, name: String, command: ProcessCommand) -> anyhow::Result<()> {
        let (program, args, env, log) = &command;
        let child = spawn_logged(program, args, env, log)?;
        self.children.push((name.clone(), child));
        self.commands.insert(name, command);
        Ok(())
    }

    /// Kills process `name` (`enclave-0`, `proxy-2`, `coordinator`, ...) with SIGKILL.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let _ = self.child(name)?.kill().await;
        Ok(())
    }

    /// The running process `name`.
    fn child(&mut self, name: &str) -> anyhow::Result<&mut Child> {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, child)| child)
            .with_context(|| format!("no process {name}"))
    }

    /// Starts process `name` again with the arguments it was started with (after [`kill`],
    /// or killing it first if it still runs). Proxies and the coordinator keep their address.
    ///
    /// [`kill`]: SimCluster::kill
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let (program, args, env, log) = self
            .commands
            .get(name)
            .cloned()
            .with_context(|| format!("no process {name}"))?;
        let child = self.child(name)?;
        let _ = child.kill().await;
        *child = spawn_logged(&program, &args, &env, &log)?;
        Ok(())
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited early ({status}); see its log in {}",
                    self.dir.display()
                );
            }
        }
        Ok(())
    }

    /// Kills enclave `id` (numbered from 0) and starts it again: a new process, new identity keys, no
    /// state until its proxy hands it its sealed blobs.
    pub async fn restart_enclave(&mut self, id: usize) -> anyhow::Result<()> {
        self.restart(&format!("enclave-{id}")).await
    }

    /// Process ids of the cluster's processes, by name (`enclave-0`, `proxy-0`, ...).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .filter_map(|(n, c)| c.id().map(|p| (n.clone(), p)))
            .collect()
    }

    /// Stops every process (SIGTERM, then SIGKILL after five seconds) and releases the directory.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for (_, child) in &self.children {
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        for (name, child) in &mut self.children {
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    eprintln!("{name} ignored SIGTERM; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        self.children.clear();
        let _ = fs::remove_file(self.dir.join("sim.pid"));
        Ok(())
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        if !self.children.is_empty() {
            let _ = fs::remove_file(self.dir.join("sim.pid"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory left by a cluster that numbered its nodes from 1 is refused, before any
    /// process starts: its node-1/ would start as the second node.
    #[tokio::test]
    async fn a_directory_numbered_from_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for i in 1..=3 {
            fs::create_dir_all(dir.path().join(format!("node-{i}/blobs"))).unwrap();
        }
        let mut options = SimOptions::new(3, dir.path().to_path_buf()).unwrap();
        options.bin_dir = dir.path().join("no-binaries-here");
        let e = start_error(&options).await;
        assert!(e.contains("numbered from 1"), "{e}");
        // A directory of this numbering gets past that check (to the missing binaries).
        fs::create_dir_all(dir.path().join("node-0")).unwrap();
        let _ = fs::remove_file(dir.path().join("sim.pid"));
        let e = start_error(&options).await;
        assert!(!e.contains("numbered from 1"), "{e}");
    }

    async fn start_error(options: &SimOptions) -> String {
        match SimCluster::start(options).await {
            Ok(_) => panic!("a cluster started without its binaries"),
            Err(e) => format!("{e:#}"),
        }
    }
}
