//! Transactions through the coordinator: prepare (intent -> unsigned transaction, payloads,
//! summary), then the usual approved signing request, then assemble (signatures -> signed
//! transaction). The chain logic is the `adapters` crate's; this module finds the key, derives
//! the sending public key, and fetches chain values from a configured JSON-RPC endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapters::{ChainAdapter, Registry};
use protocol::policy::Scheme;

use crate::api::{
    AddressInfo, ApiError, AssembleRequest, AssembledTransaction, ErrorCode, Hex, PayloadJson,
    PrepareRequest, PreparedTransaction, SenderRef, parse_path, path_string,
};
use crate::rpc::{JsonRpc, RpcDialect, broadcast, fill_intent};
use crate::service::{Coordinator, derive_public_key};

/// Which chains the coordinator serves and where their JSON-RPC endpoints are.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// The chain registry (built-in chains plus any EVM chains configured).
    pub registry: Registry,
    /// JSON-RPC endpoint by `chain` or `chain:network` (the more specific wins).
    pub rpc: BTreeMap<String, String>,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self {
            registry: Registry::builtin(),
            rpc: BTreeMap::new(),
        }
    }
}

impl ChainSettings {
    /// The endpoint for a chain and network, if one is configured.
    pub fn rpc_url(&self, chain: &str, network: &str) -> Option<&str> {
        self.rpc
            .get(&format!("{chain}:{network}"))
            .or_else(|| self.rpc.get(chain))
            .map(String::as_str)
    }

    /// How the nodes of `chain` on `network` speak JSON-RPC.
    pub fn dialect(&self, chain: &str, network: &str) -> Option<RpcDialect> {
        self.registry
            .adapter(chain, Some(network))
            .ok()
            .map(|a| a.rpc_dialect())
    }
}

/// Parses `CHAIN[:NETWORK]=URL` (the coordinator's `--rpc`).
pub fn parse_rpc(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected CHAIN[:NETWORK]=URL")?;
    if !(v.starts_with("http://") || v.starts_with("https://")) {
        return Err(format!("`{v}` is not an http(s) URL"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn optional_path(path: Option<&str>) -> Result<Vec<u32>, ApiError> {
    match path {
        None => Ok(vec![]),
        Some(p) => parse_path(p).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e)),
    }
}

impl Coordinator {
    /// The chain's adapter, the checked derivation path, and the public key that signs there:
    /// what every chain endpoint starts from.
    async fn sender(
        &self,
        (key_id, chain, network, path): SenderRef<'_>,
    ) -> Result<(Arc<dyn ChainAdapter>, Vec<u32>, Vec<u8>), ApiError> {
        let registry = &self.settings().chains.registry;
        let mut adapter = registry.adapter(chain, network)?;
        let path = optional_path(path)?;
        if path.is_empty() {
            // An imported key's own key signs on the one network its legacy funds are on, as
            // its approved import names it (an unknown key is refused below).
            if let Ok(key) = self.key(key_id).await {
                adapter = registry.adapter_for_key(chain, network, key.master_key_network())?;
            }
        }
        adapter.check_path(&path)?;
        let public_key = self.sending_key(key_id, adapter.as_ref(), &path).await?;
        Ok((adapter, path, public_key))
    }

    /// The public key at `path` of a key, checked against the chain's scheme.
    async fn sending_key(
        &self,
        key_id: &str,
        adapter: &dyn ChainAdapter,
        path: &[u32],
    ) -> Result<Vec<u8>, ApiError> {
        let key = self.key(key_id).await?;
        if key.scheme != adapter.scheme() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "{} signs with {}; key {key_id} is {}",
                    adapter.chain(),
                    adapter.scheme(),
                    key.scheme
                ),
            ));
        }
        match key.scheme {
            Scheme::EcdsaSecp256k1 => {
                let chain_code = key.chain_code.as_ref().ok_or_else(|| {
                    ApiError::new(ErrorCode::Internal, "ECDSA key without a chain code")
                })?;
                derive_public_key(&key.public_key.0, &chain_code.0, path)
                    .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))
            }
            Scheme::EddsaEd25519 => {
                if !path.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "Ed25519 keys have no derivation paths",
                    ));
                }
                Ok(key.public_key.0.clone())
            }
        }
    }

    /// The address of a key on a chain.
    pub async fn address(
        &self,
        key_id: &str,
        chain: &str,
        network: Option<&str>,
        path: Option<&str>,
    ) -> Result<AddressInfo, ApiError> {
        let (adapter, path, public_key) = self.sender((key_id, chain, network, path)).await?;
        Ok(AddressInfo {
            key_id: key_id.to_string(),
            chain: adapter.chain().to_string(),
            network: adapter.network().to_string(),
            path: path_string(&path),
            address: adapter.address(&public_key)?,
            public_key: Hex(public_key),
        })
    }

    /// Prepares a transaction for signing.
    pub async fn prepare(&self, req: PrepareRequest) -> Result<PreparedTransaction, ApiError> {
        let (adapter, path, public_key) = self.sender(req.sender()).await?;
        let from = adapter.address(&public_key)?;
        let mut intent = req.intent;
        let chains = &self.settings().chains;
        let mut filled = Vec::new();
        if let Some(url) = chains.rpc_url(adapter.chain(), adapter.network()) {
            let dialect = adapter.rpc_dialect();
            filled = fill_intent(&JsonRpc::new(url), dialect, &from, &mut intent).await?;
        }
        let unsigned = adapter.build(&public_key, &path, &intent)?;
        Ok(PreparedTransaction {
            chain: adapter.chain().to_string(),
            network: adapter.network().to_string(),
            key_id: req.key_id,
            path: path_string(&path),
            from,
            public_key: Hex(public_key),
            payloads: unsigned
                .payloads
                .iter()
                .map(|p| PayloadJson::from_wire(&p.to_request()))
                .collect(),
            unsigned_tx: Hex(unsigned.tx),
            summary: unsigned.summary,
            intent,
            filled,
        })
    }

    /// Assembles a signed transaction from a prepared one and its signatures.
    pub async fn assemble(&self, req: AssembleRequest) -> Result<AssembledTransaction, ApiError> {
        let (adapter, _, public_key) = self.sender(req.sender()).await?;
        let signatures: Vec<Vec<u8>> = req.signatures.into_iter().map(|h| h.0).collect();
        let signed = adapter.assemble(&public_key, &req.unsigned_tx.0, &signatures)?;
        Ok(AssembledTransaction {
            chain: adapter.chain().to_string(),
            network: adapter.network().to_string(),
            txid: signed.txid,
            raw_tx: Hex(signed.raw),
            psbt: signed.psbt.map(Hex),
            summary: signed.summary,
        })
    }
}

/// Broadcasts through a JSON-RPC endpoint of the right kind for the chain.
pub async fn send_raw(
    settings: &ChainSettings,
    url: &str,
    chain: &str,
    network: &str,
    raw: &[u8],
) -> Result<String, ApiError> {
    let dialect = settings.dialect(chain, network).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownChain,
            format!("unknown chain {chain} {network}"),
        )
    })?;
    Ok(broadcast(&JsonRpc::new(url), dialect, raw).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_flags_and_lookup() {
        assert_eq!(
            parse_rpc("ethereum:anvil=http://127.0.0.1:8545").unwrap(),
            ("ethereum:anvil".into(), "http://127.0.0.1:8545".into())
        );
        assert!(parse_rpc("ethereum").is_err());
        assert!(parse_rpc("ethereum=ftp://x").is_err());
        let mut s = ChainSettings::default();
        s.rpc.insert("ethereum".into(), "http://a".into());
        s.rpc.insert("ethereum:anvil".into(), "http://b".into());
        assert_eq!(s.rpc_url("ethereum", "anvil"), Some("http://b"));
        assert_eq!(s.rpc_url("ethereum", "mainnet"), Some("http://a"));
        assert_eq!(s.rpc_url("solana", "mainnet"), None);
        assert_eq!(
            s.dialect("ethereum", "anvil"),
            Some(RpcDialect::Ethereum { chain_id: 31337 })
        );
        assert_eq!(s.dialect("ethereum", "nope"), None);
        assert_eq!(
            s.dialect("solana", "devnet"),
            Some(RpcDialect::Solana {
                genesis: Some("EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG")
            })
        );
    }
}
