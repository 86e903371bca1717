//! Local chains for `cohort demo` and the tests, all software none of us wrote:
//!
//! * [`Anvil`]: the anvil EVM node (npm `@foundry-rs/anvil-linux-amd64`, installed into
//!   `dev/tools/` by `scripts/setup.sh`), driven over its JSON-RPC;
//! * [`LocalSolana`]: the Solana runtime (LiteSVM) served over Solana's JSON-RPC by
//!   `cohort-chain-check solana-rpc`;
//! * [`bitcoin_verify`]: Bitcoin Core's script interpreter, run by
//!   `cohort-chain-check bitcoin-verify`.
//!
//! The Solana runtime and libbitcoinconsensus live in `cohort-chain-check`, a separate binary,
//! so that `cohort` itself links neither.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use coordinator::rpc::{JsonRpc, parse_quantity};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The ERC-20 token the demo deploys (see `cli/assets/README.md`).
pub const TOKEN_BYTECODE: &str = include_str!("../assets/Token.bin");

const ANVIL_IN_TOOLS: &str = "dev/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Where anvil is: `$COHORT_ANVIL`, else `dev/tools/` of this checkout (as `scripts/setup.sh`
/// installs it), else `anvil` on the PATH.
pub fn anvil_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("COHORT_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = vec![checkout.join(ANVIL_IN_TOOLS)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(ANVIL_IN_TOOLS));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("anvil")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "anvil not found: run scripts/setup.sh (it installs the npm package \
             @foundry-rs/anvil-linux-amd64 into dev/tools/) or set COHORT_ANVIL"
        )
    })
}

/// Where `cohort-chain-check` is: `$COHORT_CHAIN_CHECK`, else next to this executable (or one
/// directory up, for test binaries in `target/*/deps`).
pub fn chain_check_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("COHORT_CHAIN_CHECK") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("cohort-chain-check");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    bail!(
        "cohort-chain-check not found next to {} (build it: cargo build -p chain-check)",
        exe.display()
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `command` with its output discarded, killed when dropped.
fn spawn_quiet(command: &mut Command, bin: &Path) -> anyhow::Result<Child> {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// A local chain process and its JSON-RPC client; the process is stopped when dropped.
struct RpcProcess {
    _child: Child,
    rpc: JsonRpc,
}

impl RpcProcess {
    /// Waits until `child` answers `method` at `url`.
    async fn answering(mut child: Child, url: &str, method: &str) -> anyhow::Result<Self> {
        let rpc = JsonRpc::new(url);
        let start = Instant::now();
        loop {
            if rpc.call(method, json!([])).await.is_ok() {
                return Ok(Self { _child: child, rpc });
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited before answering: {status}", rpc.url());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("{} did not answer {method} within 30 s", rpc.url());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.rpc
            .call(method, params)
            .await
            .map_err(|e| anyhow!("{e}"))
    }
}

/// A running anvil on 127.0.0.1, stopped when dropped.
pub struct Anvil {
    process: RpcProcess,
    /// Its JSON-RPC URL.
    pub url: String,
}

impl Anvil {
    /// Starts anvil with an EIP-155 chain id.
    pub async fn start(chain_id: u64) -> anyhow::Result<Self> {
        let bin = anvil_binary()?;
        let port = free_port()?;
        let child = spawn_quiet(
            Command::new(&bin)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--silent",
                ])
                .args(["--chain-id", &chain_id.to_string()]),
            &bin,
        )?;
        let url = format!("http://127.0.0.1:{port}");
        let process = RpcProcess::answering(child, &url, "eth_chainId").await?;
        Ok(Self { process, url })
    }

    /// Calls a method.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.process.call(method, params).await
    }

    async fn quantity(&self, method: &str, params: Value) -> anyhow::Result<u128> {
        let v = self.call(method, params).await?;
        parse_quantity(&v).ok_or_else(|| anyhow!("{method}: {v} is not a quantity"))
    }

    /// Sets an account's balance (anvil_setBalance).
    pub async fn set_balance(&self, address: &str, wei: u128) -> anyhow::Result<()> {
        self.call("anvil_setBalance", json!([address, format!("{wei:#x}")]))
            .await
            .map(|_| ())
    }

    /// An account's balance, wei.
    pub async fn balance(&self, address: &str) -> anyhow::Result<u128> {
        self.quantity("eth_getBalance", json!([address, "latest"]))
            .await
    }

    /// Deploys the demo ERC-20 token with the whole supply held by `holder`; returns its
    /// address.
    pub async fn deploy_token(&self, holder: &str) -> anyhow::Result<String> {
        let accounts = self.call("eth_accounts", json!([])).await?;
        let deployer = accounts
            .get(0)
            .and_then(Value::as_str)
            .context("anvil has no unlocked account")?;
        let holder = holder.trim_start_matches("0x").to_ascii_lowercase();
        let data = format!("0x{}{:0>64}", TOKEN_BYTECODE.trim(), holder);
        let hash = self
            .call(
                "eth_sendTransaction",
                json!([{"from": deployer, "data": data}]),
            )
            .await?;
        let receipt = self.receipt(hash.as_str().unwrap_or_default()).await?;
        receipt
            .get("contractAddress")
            .and_then(Value::as_str)
            .map(str::to_string)
            .context("the deployment has no contract address")
    }

    /// A token balance (`balanceOf`).
    pub async fn token_balance(&self, token: &str, holder: &str) -> anyhow::Result<u128> {
        let holder = holder.trim_start_matches("0x").to_ascii_lowercase();
        let data = format!("0x70a08231{holder:0>64}");
        self.quantity("eth_call", json!([{"to": token, "data": data}, "latest"]))
            .await
    }

    /// Waits for a transaction's receipt (anvil mines at once).
    pub async fn receipt(&self, hash: &str) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let r = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !r.is_null() {
                return Ok(r);
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("no receipt for {hash} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a mined transaction succeeded (receipt status 1).
    pub async fn succeeded(&self, hash: &str) -> anyhow::Result<bool> {
        let r = self.receipt(hash).await?;
        Ok(r.get("status").and_then(parse_quantity) == Some(1))
    }
}

/// A running `cohort-chain-check solana-rpc`, stopped when dropped.
pub struct LocalSolana {
    process: RpcProcess,
    _dir: tempfile::TempDir,
    /// Its JSON-RPC URL.
    pub url: String,
}

impl LocalSolana {
    /// Starts the Solana runtime behind JSON-RPC.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = chain_check_binary()?;
        let dir = tempfile::tempdir()?;
        let addr_file = dir.path().join("url");
        let mut child = spawn_quiet(
            Command::new(&bin)
                .arg("solana-rpc")
                .arg("--addr-file")
                .arg(&addr_file),
            &bin,
        )?;
        let start = Instant::now();
        let url = loop {
            if let Ok(u) = std::fs::read_to_string(&addr_file) {
                break u;
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited: {status}", bin.display());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{} did not start within 60 s", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let process = RpcProcess::answering(child, &url, "getLatestBlockhash").await?;
        Ok(Self {
            process,
            _dir: dir,
            url,
        })
    }

    /// Calls a method.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.process.call(method, params).await
    }

    /// Credits lamports.
    pub async fn airdrop(&self, address: &str, lamports: u64) -> anyhow::Result<()> {
        self.call("requestAirdrop", json!([address, lamports]))
            .await
            .map(|_| ())
    }

    /// An account's lamports.
    pub async fn balance(&self, address: &str) -> anyhow::Result<u64> {
        let v = self.call("getBalance", json!([address])).await?;
        v.pointer("/value")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("getBalance: {v}"))
    }

    /// Creates (or grows) a mint and credits `owner`'s token account; returns that account.
    pub async fn mint_to(
        &self,
        mint: &str,
        owner: &str,
        amount: u64,
        decimals: u8,
    ) -> anyhow::Result<String> {
        let v = self
            .call("cohort_mintTo", json!([mint, owner, amount, decimals]))
            .await?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("cohort_mintTo: {v}"))
    }

    /// A token account's balance, base units (0 when the account does not exist).
    pub async fn token_balance(&self, account: &str) -> anyhow::Result<u64> {
        match self.call("getTokenAccountBalance", json!([account])).await {
            Ok(v) => v
                .pointer("/value/amount")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("getTokenAccountBalance: {v}")),
            Err(e) if e.to_string().contains("could not find account") => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Runs every input of a signed Bitcoin transaction through Bitcoin Core's script interpreter
/// against the outputs it spends (`(script, satoshi)`, in input order). Ok: the checker's
/// report; Err: why it refused.
pub async fn bitcoin_verify(raw: &[u8], spent: &[(Vec<u8>, u64)]) -> anyhow::Result<String> {
    let bin = chain_check_binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("bitcoin-verify").arg("--tx").arg(hex::encode(raw));
    cmd.arg("--spent");
    for (script, amount) in spent {
        cmd.arg(format!("{}:{amount}", hex::encode(script)));
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim())
    }
}
