//! Chain JSON-RPC: what the coordinator fetches to complete an intent (EVM nonce, gas and fees;
//! Solana's recent blockhash), and broadcasting signed transactions (EVM, Solana, bitcoind).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use adapters::Intent;
use base64::Engine as _;
use http::Method;
use serde_json::{Value, json};

use crate::client::HttpClient;

/// How long one JSON-RPC call may take.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON-RPC failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The endpoint did not answer.
    #[error("{url}: {reason}")]
    Transport {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
    /// The endpoint answered with a JSON-RPC error.
    #[error("{method}: error {code}: {message}")]
    Rpc {
        /// The method called.
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer is not what the method returns.
    #[error("{method}: unexpected answer: {reason}")]
    BadResponse {
        /// The method called.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The endpoint serves another chain.
    #[error("the RPC endpoint serves chain id {served}, not {expected}")]
    WrongChain {
        /// Its chain id.
        served: u64,
        /// The chain id the transaction is for.
        expected: u64,
    },
    /// The endpoint serves another Solana cluster.
    #[error("the RPC endpoint serves the Solana cluster with genesis {served}, not {expected}")]
    WrongCluster {
        /// Its genesis hash.
        served: String,
        /// The genesis hash of the transaction's network.
        expected: String,
    },
}

/// A JSON-RPC 2.0 endpoint over HTTP.
pub struct JsonRpc {
    url: String,
    http: HttpClient,
    id: AtomicU64,
}

impl JsonRpc {
    /// A client of `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            http: HttpClient::new().with_timeout(RPC_TIMEOUT),
            id: AtomicU64::new(1),
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with `params`; returns `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, bytes) = self
            .http
            .send(
                Method::POST,
                &self.url,
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await
            .map_err(|e| RpcError::Transport {
                url: self.url.clone(),
                reason: format!("{e:#}"),
            })?;
        let bad = |reason: String| RpcError::BadResponse {
            method: method.to_string(),
            reason,
        };
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| bad(format!("HTTP {status}, body is not JSON")))?;
        if let Some(e) = v.get("error") {
            return Err(RpcError::Rpc {
                method: method.to_string(),
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_string(),
            });
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| bad("no result".into()))
    }

    async fn quantity(&self, method: &str, params: Value) -> Result<u128, RpcError> {
        let v = self.call(method, params).await?;
        parse_quantity(&v).ok_or_else(|| RpcError::BadResponse {
            method: method.to_string(),
            reason: format!("{v} is not a hex quantity"),
        })
    }
}

/// Parses an Ethereum hex quantity (`"0x1a"`).
pub fn parse_quantity(v: &Value) -> Option<u128> {
    let s = v.as_str()?.strip_prefix("0x")?;
    u128::from_str_radix(if s.is_empty() { "0" } else { s }, 16).ok()
}

pub use adapters::RpcDialect;

/// Fills the values an intent leaves out from the chain: EVM nonce (pending), fees and the gas
/// limit (estimated; plus a fifth unless it is a plain 21 000 transfer); Solana's recent
/// blockhash.
/// Returns the names of the fields it filled.
pub async fn fill_intent(
    rpc: &JsonRpc,
    dialect: RpcDialect,
    from: &str,
    intent: &mut Intent,
) -> Result<Vec<String>, RpcError> {
    let mut filled = Vec::new();
    match dialect {
        RpcDialect::Ethereum { chain_id } => {
            let served = rpc.quantity("eth_chainId", json!([])).await?;
            if served != u128::from(chain_id) {
                return Err(RpcError::WrongChain {
                    served: u64::try_from(served).unwrap_or(u64::MAX),
                    expected: chain_id,
                });
            }
            if intent.nonce.is_none() {
                let n = rpc
                    .quantity("eth_getTransactionCount", json!([from, "pending"]))
                    .await?;
                intent.nonce = Some(u64::try_from(n).unwrap_or(u64::MAX));
                filled.push("nonce".into());
            }
            let no_fees = intent.max_fee_per_gas.is_none()
                && intent.max_priority_fee_per_gas.is_none()
                && intent.gas_price.is_none();
            if no_fees {
                let block = rpc
                    .call("eth_getBlockByNumber", json!(["latest", false]))
                    .await?;
                match block.get("baseFeePerGas").and_then(parse_quantity) {
                    Some(base) => {
                        let tip = rpc.quantity("eth_maxPriorityFeePerGas", json!([])).await?;
                        // Room for the base fee to double before the transaction is stuck.
                        let max = base.saturating_mul(2).saturating_add(tip);
                        intent.max_fee_per_gas = Some(max.to_string());
                        intent.max_priority_fee_per_gas = Some(tip.to_string());
                        filled.push("max_fee_per_gas".into());
                        filled.push("max_priority_fee_per_gas".into());
                    }
                    None => {
                        let price = rpc.quantity("eth_gasPrice", json!([])).await?;
                        intent.gas_price = Some(price.to_string());
                        filled.push("gas_price".into());
                    }
                }
            }
            if intent.gas_limit.is_none()
                && let (Some(to), Some(amount)) = (&intent.to, &intent.amount)
                && let (Ok(to), Ok(amount)) =
                    (adapters::evm::parse_address(to), amount.parse::<u128>())
            {
                // What the transaction will run: a token's `transfer`, or a value transfer,
                // which costs more than 21 000 when the recipient is a contract.
                let call = match &intent.token {
                    Some(token) => json!({
                        "from": from,
                        "to": token,
                        "data": format!(
                            "0x{}",
                            hex::encode(adapters::evm::erc20_transfer(to, alloy_u256(amount)))
                        ),
                    }),
                    None => json!({
                        "from": from,
                        "to": to.to_checksum(None),
                        "value": format!("{amount:#x}"),
                    }),
                };
                let gas = rpc.quantity("eth_estimateGas", json!([call])).await?;
                // A margin for state that changes before inclusion; none for a plain transfer.
                let limit = if gas == 21_000 {
                    gas
                } else {
                    gas.saturating_add(gas / 5)
                };
                intent.gas_limit = Some(u64::try_from(limit).unwrap_or(u64::MAX));
                filled.push("gas_limit".into());
            }
        }
        RpcDialect::Solana { genesis } => {
            if intent.recent_blockhash.is_none() {
                check_cluster(rpc, genesis).await?;
                let v = rpc
                    .call("getLatestBlockhash", json!([{"commitment": "finalized"}]))
                    .await?;
                let hash = v
                    .pointer("/value/blockhash")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RpcError::BadResponse {
                        method: "getLatestBlockhash".into(),
                        reason: "no value.blockhash".into(),
                    })?;
                intent.recent_blockhash = Some(hash.to_string());
                filled.push("recent_blockhash".into());
            }
        }
        RpcDialect::Bitcoind => {}
    }
    Ok(filled)
}

fn alloy_u256(v: u128) -> adapters::evm::U256 {
    adapters::evm::U256::from(v)
}

/// Checks that a Solana endpoint serves the cluster with this genesis hash.
async fn check_cluster(rpc: &JsonRpc, genesis: Option<&str>) -> Result<(), RpcError> {
    let Some(expected) = genesis else {
        return Ok(());
    };
    let served = rpc.call("getGenesisHash", json!([])).await?;
    let served = served.as_str().unwrap_or_default();
    if served != expected {
        return Err(RpcError::WrongCluster {
            served: served.to_string(),
            expected: expected.to_string(),
        });
    }
    Ok(())
}

/// Broadcasts a signed transaction; returns the id the node reports. A Solana transaction goes
/// only to an endpoint of its network's cluster.
pub async fn broadcast(rpc: &JsonRpc, dialect: RpcDialect, raw: &[u8]) -> Result<String, RpcError> {
    if let RpcDialect::Solana { genesis } = dialect {
        check_cluster(rpc, genesis).await?;
    }
    let (method, params) = match dialect {
        RpcDialect::Ethereum { .. } => (
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        ),
        RpcDialect::Solana { .. } => (
            "sendTransaction",
            json!([
                base64::engine::general_purpose::STANDARD.encode(raw),
                {"encoding": "base64"}
            ]),
        ),
        RpcDialect::Bitcoind => ("sendrawtransaction", json!([hex::encode(raw)])),
    };
    let v = rpc.call(method, params).await?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| RpcError::BadResponse {
            method: method.into(),
            reason: format!("{v} is not a transaction id"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(&json!("0x0")), Some(0));
        assert_eq!(parse_quantity(&json!("0x")), Some(0));
        assert_eq!(parse_quantity(&json!("0x7a69")), Some(31337));
        assert_eq!(parse_quantity(&json!("7a69")), None);
        assert_eq!(parse_quantity(&json!(5)), None);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_transport_error() {
        let rpc = JsonRpc::new("http://127.0.0.1:1");
        let e = rpc.call("eth_chainId", json!([])).await.unwrap_err();
        assert!(matches!(e, RpcError::Transport { .. }), "{e}");
    }
}
