//! Chain transactions from the client's side: prepare through the coordinator, check what it
//! prepared the way an approver must (recompute the public key, payloads and summary locally),
//! approve and sign, assemble, and optionally broadcast.

use adapters::{Intent, Registry};
use anyhow::{Context, anyhow, bail};
use coordinator::api::{
    AddressInfo, AssembleRequest, AssembledTransaction, Hex, PrepareRequest, PreparedTransaction,
    PresignatureUse, SignResult, path_string,
};
use coordinator::chains::ChainSettings;
use coordinator::client::ApiClient;
use coordinator::rpc::{JsonRpc, fill_intent};
use ed25519_dalek::SigningKey;
use protocol::policy::Payload;

use crate::ops;
use crate::trust::{Trust, VerifiedKey};

/// What to send.
#[derive(Debug, Clone)]
pub struct TxRequest {
    /// The sending key.
    pub key_id: String,
    /// Chain id in the registry.
    pub chain: String,
    /// Network (default mainnet).
    pub network: Option<String>,
    /// Derivation path of the sending key (ECDSA).
    pub path: Vec<u32>,
    /// The intent.
    pub intent: Intent,
}

/// A transaction carried through every step.
#[derive(Debug, Clone)]
pub struct Sent {
    /// What the coordinator prepared (and the client checked).
    pub prepared: PreparedTransaction,
    /// The cluster's signatures.
    pub signed: SignResult,
    /// The signed transaction.
    pub assembled: AssembledTransaction,
    /// The id the chain's node returned, when broadcast.
    pub broadcast: Option<String>,
}

fn api_err(e: coordinator::client::ApiCallError) -> anyhow::Error {
    anyhow!("{e}")
}

/// Whether `signature` by `public_key` verifies over `payload` (a 32-byte digest for ECDSA, the
/// message for EdDSA), checked here with k256 / ed25519-dalek.
pub fn signature_verifies(
    scheme: protocol::policy::Scheme,
    public_key: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> bool {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    match scheme {
        protocol::policy::Scheme::EcdsaSecp256k1 => {
            k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .ok()
                .zip(k256::ecdsa::Signature::from_slice(signature).ok())
                .is_some_and(|(vk, sig)| vk.verify_prehash(payload, &sig).is_ok())
        }
        protocol::policy::Scheme::EddsaEd25519 => <[u8; 32]>::try_from(public_key)
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .zip(ed25519_dalek::Signature::from_slice(signature).ok())
            .is_some_and(|(vk, sig)| vk.verify_strict(payload, &sig).is_ok()),
    }
}

/// The public key at `path` of a verified key.
pub fn derived(key: &VerifiedKey, path: &[u32]) -> anyhow::Result<Vec<u8>> {
    let key = key.info();
    match &key.chain_code {
        Some(cc) => coordinator::service::derive_public_key(&key.public_key.0, &cc.0, path)
            .map_err(|e| anyhow!("cannot derive the key at {}: {e}", path_string(path))),
        None if path.is_empty() => Ok(key.public_key.0.clone()),
        None => bail!("{} keys have no derivation paths", key.scheme),
    }
}

/// The address of a key on a chain, made here: the key is fetched from the coordinator and
/// checked against the pinned genesis (its receipts), then the child key is derived and the
/// address encoded with this machine's adapter. The coordinator never names the address.
pub async fn address(
    api: &ApiClient,
    trust: &Trust,
    registry: &Registry,
    key_id: &str,
    chain: &str,
    network: Option<&str>,
    path: &[u32],
) -> anyhow::Result<AddressInfo> {
    let key = trust.fetch_key(api, key_id).await?;
    address_of(registry, &key, chain, network, path)
}

/// The address of a verified key on a chain (see [`address`]).
pub fn address_of(
    registry: &Registry,
    key: &VerifiedKey,
    chain: &str,
    network: Option<&str>,
    path: &[u32],
) -> anyhow::Result<AddressInfo> {
    let adapter = registry
        .adapter_for_key(chain, network, key.info().master_key_network())
        .map_err(|e| anyhow!("{e}"))?;
    adapter.check_path(path).map_err(|e| anyhow!("{e}"))?;
    if adapter.scheme() != key.info().scheme {
        bail!(
            "{} signs with {}; key {} is {}",
            adapter.chain(),
            adapter.scheme(),
            key.info().key_id,
            key.info().scheme
        );
    }
    let public_key = derived(key, path)?;
    Ok(AddressInfo {
        key_id: key.info().key_id.clone(),
        chain: adapter.chain().to_string(),
        network: adapter.network().to_string(),
        path: path_string(path),
        address: adapter.address(&public_key).map_err(|e| anyhow!("{e}"))?,
        public_key: Hex(public_key),
    })
}

/// Intent fields a coordinator may fill in from the chain.
const FILLABLE: &[&str] = &[
    "nonce",
    "gas_limit",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "gas_price",
    "recent_blockhash",
];

/// Checks a prepared transaction as an approver must before approving it:
///
/// * it is for the chain, network and path asked for, and the public key is the key's
///   (derived here from the key's public key and chain code);
/// * its intent is the one asked for: every field the client gave is unchanged, and the
///   coordinator only added fields it may fetch from the chain (and said so);
/// * rebuilding that intent with this machine's adapter gives exactly the unsigned bytes,
///   payloads and summary the coordinator returned.
///
/// A coordinator that shows one transaction and asks for the signature of another, or builds a
/// transaction other than the one asked for, is refused.
pub fn check_prepared(
    registry: &Registry,
    key: &VerifiedKey,
    req: &TxRequest,
    prepared: &PreparedTransaction,
) -> anyhow::Result<()> {
    let network = req.network.as_deref().unwrap_or("mainnet");
    if prepared.chain != req.chain || prepared.network != network {
        bail!(
            "the coordinator prepared a {} {} transaction, not {} {network}",
            prepared.chain,
            prepared.network,
            req.chain
        );
    }
    if prepared.path != path_string(&req.path) {
        bail!(
            "the coordinator prepared a transaction for path {}",
            prepared.path
        );
    }
    let public_key = derived(key, &req.path)?;
    if public_key != prepared.public_key.0 {
        bail!("the coordinator prepared a transaction for another public key");
    }
    let asked = serde_json::to_value(&req.intent)?;
    let built = serde_json::to_value(&prepared.intent)?;
    let (Some(asked), Some(built)) = (asked.as_object(), built.as_object()) else {
        bail!("intents are JSON objects");
    };
    for (field, value) in asked {
        if built.get(field) != Some(value) {
            bail!("the coordinator changed the intent's `{field}`: refusing to approve");
        }
    }
    for field in built.keys().filter(|f| !asked.contains_key(*f)) {
        if !FILLABLE.contains(&field.as_str()) || !prepared.filled.contains(field) {
            bail!("the coordinator added `{field}` to the intent: refusing to approve");
        }
    }
    let adapter = registry
        .adapter_for_key(
            &prepared.chain,
            Some(&prepared.network),
            key.info().master_key_network(),
        )
        .context("this client does not know the chain (pass --evm-chains for extra EVM chains)")?;
    let local = adapter
        .build(&public_key, &req.path, &prepared.intent)
        .context("the prepared intent does not build here")?;
    if local.tx != prepared.unsigned_tx.0 {
        bail!(
            "the coordinator's transaction is not the one its intent builds: refusing to approve"
        );
    }
    let payloads: Vec<Payload> = local.payloads.iter().map(|p| p.to_request()).collect();
    let theirs: Vec<Payload> = prepared.payloads.iter().map(|p| p.to_wire()).collect();
    if payloads != theirs {
        bail!("the coordinator's payloads are not the transaction's: refusing to approve");
    }
    if local.summary != prepared.summary {
        bail!("the coordinator's summary is not the transaction's: refusing to approve");
    }
    Ok(())
}

/// Where a transaction's chain values come from and where it goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rpc<'a> {
    /// The chain's JSON-RPC endpoint: broadcast there.
    pub url: Option<&'a str>,
    /// Also fetch the values the intent leaves out from `url` here, before preparing (when
    /// false, the coordinator fetches them from its own endpoint, if it has one).
    pub fill_locally: bool,
}

/// Prepares, checks, approves and signs, assembles, and (with an RPC URL) broadcasts. `show`
/// sees the checked summary before anything is signed.
pub async fn send(
    api: &ApiClient,
    trust: &Trust,
    registry: &Registry,
    req: TxRequest,
    approvers: &[SigningKey],
    rpc: Rpc<'_>,
    show: impl FnOnce(&PreparedTransaction),
) -> anyhow::Result<Sent> {
    let key = trust.fetch_key(api, &req.key_id).await?;
    let mut req = req;
    let settings = ChainSettings {
        registry: registry.clone(),
        rpc: Default::default(),
    };
    let network = req.network.clone().unwrap_or_else(|| "mainnet".into());
    if let (Some(url), true) = (rpc.url, rpc.fill_locally) {
        let dialect = settings
            .dialect(&req.chain, &network)
            .with_context(|| format!("unknown chain {} {network}", req.chain))?;
        let from = address_of(registry, &key, &req.chain, Some(&network), &req.path)?;
        fill_intent(&JsonRpc::new(url), dialect, &from.address, &mut req.intent)
            .await
            .map_err(|e| anyhow!("{e}"))?;
    }
    let prepared: PreparedTransaction = api
        .post(
            "/v1/transactions",
            &PrepareRequest {
                key_id: req.key_id.clone(),
                chain: req.chain.clone(),
                network: Some(network.clone()),
                path: Some(path_string(&req.path)),
                intent: req.intent.clone(),
            },
        )
        .await
        .map_err(api_err)?;
    check_prepared(registry, &key, &req, &prepared)?;
    show(&prepared);
    let cluster = trust.cluster_id();
    let payloads: Vec<Payload> = prepared.payloads.iter().map(|p| p.to_wire()).collect();
    let body = ops::sign_body(
        cluster,
        ops::KeyRef::of(key.info()),
        &req.path,
        payloads,
        approvers,
        Some(PresignatureUse::Prefer),
    );
    let signed: SignResult = api.post("/v1/signatures", &body).await.map_err(api_err)?;
    if signed.status != "completed" {
        bail!(
            "signing {}: {}",
            signed.status,
            signed
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default()
        );
    }
    let mut signatures: Vec<(u16, Hex)> = signed
        .signatures
        .iter()
        .map(|s| (s.payload, s.signature.clone()))
        .collect();
    signatures.sort_by_key(|(i, _)| *i);
    let assembled: AssembledTransaction = api
        .post(
            "/v1/transactions/assemble",
            &AssembleRequest {
                key_id: req.key_id.clone(),
                chain: prepared.chain.clone(),
                network: Some(prepared.network.clone()),
                path: Some(prepared.path.clone()),
                unsigned_tx: prepared.unsigned_tx.clone(),
                signatures: signatures.into_iter().map(|(_, s)| s).collect(),
            },
        )
        .await
        .map_err(api_err)?;
    let broadcast = match rpc.url {
        Some(url) => Some(
            coordinator::chains::send_raw(
                &settings,
                url,
                &prepared.chain,
                &prepared.network,
                &assembled.raw_tx.0,
            )
            .await
            .map_err(|e| anyhow!("broadcast: {}", e.message))?,
        ),
        None => None,
    };
    Ok(Sent {
        prepared,
        signed,
        assembled,
        broadcast,
    })
}
