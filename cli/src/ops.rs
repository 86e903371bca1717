//! Cluster operations behind `cohort genesis`, `cohort key create` and `cohort sign`, run against
//! a cluster directory written by `cohort sim up` (its `cluster.json` names the proxies).
//! Until the coordinator exists, the CLI relays the sessions itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use protocol::policy::Scheme;
use protocol::session::{Outcome, SessionKind};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::cluster::{ClusterClient, new_session_id};
use crate::requests;

/// Writes a new Ed25519 key (hex seed, mode 0600) and returns its public key.
pub fn keygen(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key.to_bytes()))?;
    Ok(key.verifying_key().to_bytes())
}

/// Reads a key written by [`keygen`].
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).with_context(|| format!("{} is not a hex key", path.display()))?,
    );
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} does not hold a 32-byte key", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

#[derive(Deserialize)]
struct ClusterFile {
    nodes: Vec<NodeEntry>,
}

#[derive(Deserialize)]
struct NodeEntry {
    proxy_url: String,
}

/// What the CLI remembers of the cluster (in `DIR/state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CliState {
    /// The cluster's name, from genesis.
    pub cluster: String,
    /// Keys created, by id.
    pub keys: std::collections::BTreeMap<String, KeyInfo>,
}

/// A created key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Its scheme.
    pub scheme: Scheme,
    /// Its threshold.
    pub threshold: u16,
    /// Public key, hex.
    pub public_key: String,
    /// BIP32 chain code, hex (ECDSA).
    pub chain_code: Option<String>,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Loads `DIR/state.json`.
pub fn load_state(dir: &Path) -> anyhow::Result<CliState> {
    let text = std::fs::read_to_string(state_path(dir)).with_context(|| {
        format!(
            "no cluster state in {} (run cohort genesis first)",
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn save_state(dir: &Path, state: &CliState) -> anyhow::Result<()> {
    let tmp = dir.join(".state.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(state)? + "\n")?;
    std::fs::rename(tmp, state_path(dir))?;
    Ok(())
}

/// A client for the proxies listed in `DIR/cluster.json`.
pub fn client(dir: &Path) -> anyhow::Result<ClusterClient> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).with_context(|| {
        format!(
            "no cluster.json in {} (is `cohort sim up` running?)",
            dir.display()
        )
    })?;
    let file: ClusterFile = serde_json::from_str(&text)?;
    Ok(ClusterClient::new(
        file.nodes.into_iter().map(|n| n.proxy_url).collect(),
    ))
}

fn refused_any(
    refusals: &std::collections::BTreeMap<u16, Vec<(u16, String)>>,
) -> anyhow::Result<()> {
    for (node, refused) in refusals {
        if let Some((peer, why)) = refused.first() {
            bail!("node {node} refused peer {peer}: {why}");
        }
    }
    Ok(())
}

/// Genesis on every node, peer admission, and auxiliary info for ECDSA keys.
pub async fn genesis(
    dir: &Path,
    cluster: &str,
    admins: &[SigningKey],
    quorum: u16,
) -> anyhow::Result<()> {
    let client = client(dir)?;
    let q = usize::from(quorum);
    if q == 0 || q > admins.len() {
        bail!("the quorum must be between 1 and the number of admins");
    }
    let g = requests::approve(
        &requests::genesis(cluster, client.nodes(), admins, quorum),
        &admins[..q],
    );
    client.genesis(&g).await?;
    save_state(
        dir,
        &CliState {
            cluster: cluster.into(),
            keys: Default::default(),
        },
    )?;
    refused_any(&client.admit_peers().await?)?;
    client.wait_for_primes().await?;
    let all: Vec<u16> = (0..client.nodes()).collect();
    let outcomes = client
        .run_session(&new_session_id(), &all, &SessionKind::AuxInfo)
        .await?;
    for (node, o) in outcomes {
        if let Outcome::Failed { message, .. } = o {
            bail!("auxiliary info failed at node {node}: {message}");
        }
    }
    Ok(())
}

/// Creates a key; returns its info.
#[allow(clippy::too_many_arguments)]
pub async fn create_key(
    dir: &Path,
    key_id: &str,
    scheme: Scheme,
    threshold: u16,
    admins: &[SigningKey],
    approvers: &[[u8; 32]],
    approvals_needed: u16,
) -> anyhow::Result<KeyInfo> {
    let mut state = load_state(dir)?;
    let client = client(dir)?;
    refused_any(&client.admit_peers().await?)?;
    let approvers: Vec<ByteBuf> = approvers
        .iter()
        .map(|k| ByteBuf::from(k.to_vec()))
        .collect();
    let request = requests::approve(
        &requests::create_key(
            &state.cluster,
            key_id,
            scheme,
            threshold,
            &approvers,
            approvals_needed,
        ),
        admins,
    );
    let all: Vec<u16> = (0..client.nodes()).collect();
    let outcomes = client
        .run_session(&new_session_id(), &all, &SessionKind::CreateKey { request })
        .await?;
    let mut info: Option<KeyInfo> = None;
    for (node, o) in outcomes {
        match o {
            Outcome::KeyCreated {
                public_key,
                chain_code,
                ..
            } => {
                let this = KeyInfo {
                    scheme,
                    threshold,
                    public_key: hex::encode(&public_key),
                    chain_code: chain_code.map(hex::encode),
                };
                if let Some(prev) = &info
                    && prev.public_key != this.public_key
                {
                    bail!("nodes disagree on the new key's public key: refusing it");
                }
                info = Some(this);
            }
            Outcome::Failed { message, .. } => bail!("node {node}: {message}"),
            other => bail!("node {node}: unexpected {other:?}"),
        }
    }
    let info = info.context("no node answered")?;
    state.keys.insert(key_id.into(), info.clone());
    save_state(dir, &state)?;
    Ok(info)
}

/// Signs one payload; returns (signature, public key).
pub async fn sign(
    dir: &Path,
    key_id: &str,
    path: &[u32],
    payload: Vec<u8>,
    approvers: &[SigningKey],
    quorum: Option<Vec<u16>>,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let state = load_state(dir)?;
    let key = state
        .keys
        .get(key_id)
        .with_context(|| format!("unknown key {key_id}"))?;
    let client = client(dir)?;
    refused_any(&client.admit_peers().await?)?;
    let request = requests::approve(
        &requests::sign_request(&state.cluster, key_id, path, vec![payload]),
        approvers,
    );
    let quorum = quorum.unwrap_or_else(|| (0..key.threshold).collect());
    let kind = SessionKind::Sign {
        request,
        payload: 0,
        presignature: None,
    };
    let outcomes = client
        .run_session(&new_session_id(), &quorum, &kind)
        .await?;
    let mut result = None;
    for (node, o) in outcomes {
        match o {
            Outcome::Signed {
                signature,
                public_key,
            } => result = Some((signature.to_vec(), public_key.to_vec())),
            Outcome::Failed { message, .. } => bail!("node {node}: {message}"),
            other => bail!("node {node}: unexpected {other:?}"),
        }
    }
    result.context("no node answered")
}
