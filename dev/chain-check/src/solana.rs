//! The Solana runtime (LiteSVM) behind a subset of Solana's JSON-RPC.
//!
//! One thread owns the runtime and executes requests in order, as a validator would; the HTTP
//! side runs on tokio. Supported methods, with Solana's request and response shapes:
//! `getGenesisHash`, `getLatestBlockhash`, `getBalance`, `requestAirdrop`, `sendTransaction`
//! (base58 or base64), `getTokenAccountBalance`, `getSignatureStatuses`. One extra, development-only method seeds
//! SPL tokens: `cohort_mintTo [mint, owner, amount, decimals]` creates the mint when missing
//! and credits `amount` to the owner's associated token account.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::mpsc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use litesvm::LiteSVM;
use serde_json::{Value, json};
use solana_account::Account;
use solana_program_option::COption;
use solana_program_pack::Pack;
use solana_pubkey::Pubkey;
use solana_transaction::versioned::VersionedTransaction;
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_token_interface::state::{Account as TokenAccount, AccountState, Mint};
use tokio::sync::oneshot;

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

struct Call {
    method: String,
    params: Value,
    reply: oneshot::Sender<Result<Value, RpcError>>,
}

/// A running local Solana: the runtime thread and its JSON-RPC server.
pub struct LocalSolana {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl LocalSolana {
    /// Starts the runtime and serves JSON-RPC on `addr` (port 0: any free port).
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Call>();
        std::thread::Builder::new()
            .name("litesvm".into())
            .spawn(move || runtime(rx))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(req, tx.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, server })
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LocalSolana {
    fn drop(&mut self) {
        // The runtime thread ends when the last request sender (held by the server) is gone.
        self.server.abort();
    }
}

async fn serve(
    req: Request<Incoming>,
    tx: mpsc::Sender<Call>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |v: Value| {
        let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(r)
    };
    let error = |id: Value, code: i64, message: String| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(error(
                Value::Null,
                -32600,
                "body too large or broken".into(),
            ));
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return reply(error(Value::Null, -32700, "parse error".into()));
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        return reply(error(id, -32600, "no method".into()));
    };
    let params = v.get("params").cloned().unwrap_or(Value::Array(vec![]));
    let (rtx, rrx) = oneshot::channel();
    let call = Call {
        method: method.to_string(),
        params,
        reply: rtx,
    };
    if tx.send(call).is_err() {
        return reply(error(id, -32603, "runtime stopped".into()));
    }
    match rrx.await {
        Ok(Ok(result)) => reply(json!({"jsonrpc": "2.0", "id": id, "result": result})),
        Ok(Err((code, message))) => reply(error(id, code, message)),
        Err(_) => reply(error(id, -32603, "runtime stopped".into())),
    }
}

fn param<'a>(params: &'a Value, i: usize, name: &str) -> Result<&'a Value, RpcError> {
    params
        .get(i)
        .ok_or_else(|| (-32602, format!("missing parameter {i} ({name})")))
}

fn pubkey(params: &Value, i: usize) -> Result<Pubkey, RpcError> {
    param(params, i, "address")?
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| (-32602, format!("parameter {i} is not a base58 address")))
}

fn u64_param(params: &Value, i: usize, name: &str) -> Result<u64, RpcError> {
    param(params, i, name)?
        .as_u64()
        .ok_or_else(|| (-32602, format!("parameter {i} ({name}) is not an integer")))
}

struct Node {
    svm: LiteSVM,
    slot: u64,
    processed: HashSet<String>,
    /// The first blockhash, standing in for a genesis hash (`getGenesisHash`).
    genesis: String,
}

fn runtime(rx: mpsc::Receiver<Call>) {
    let svm = LiteSVM::new();
    let genesis = svm.latest_blockhash().to_string();
    let mut node = Node {
        svm,
        slot: 1,
        processed: HashSet::new(),
        genesis,
    };
    while let Ok(call) = rx.recv() {
        let result = node.handle(&call.method, &call.params);
        let _ = call.reply.send(result);
    }
}

impl Node {
    fn context(&self, value: Value) -> Value {
        json!({"context": {"slot": self.slot}, "value": value})
    }

    fn handle(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        match method {
            "getLatestBlockhash" => Ok(self.context(json!({
                "blockhash": self.svm.latest_blockhash().to_string(),
                "lastValidBlockHeight": self.slot + 150,
            }))),
            "getGenesisHash" => Ok(json!(self.genesis)),
            "getBalance" => {
                let k = pubkey(params, 0)?;
                Ok(self.context(json!(self.svm.get_balance(&k).unwrap_or(0))))
            }
            "requestAirdrop" => {
                let k = pubkey(params, 0)?;
                let lamports = u64_param(params, 1, "lamports")?;
                let meta = self
                    .svm
                    .airdrop(&k, lamports)
                    .map_err(|e| (-32002, format!("airdrop failed: {:?}", e.err)))?;
                self.slot += 1;
                // The next airdrop to the same account must not look like a replay.
                self.svm.expire_blockhash();
                Ok(json!(meta.signature.to_string()))
            }
            "sendTransaction" => self.send(params),
            "getSignatureStatuses" => {
                let sigs = param(params, 0, "signatures")?
                    .as_array()
                    .ok_or((-32602, "signatures must be an array".to_string()))?;
                let statuses: Vec<Value> = sigs
                    .iter()
                    .map(|s| match s.as_str() {
                        Some(s) if self.processed.contains(s) => json!({
                            "slot": self.slot, "confirmations": null, "err": null,
                            "confirmationStatus": "finalized"
                        }),
                        _ => Value::Null,
                    })
                    .collect();
                Ok(self.context(json!(statuses)))
            }
            "getTokenAccountBalance" => {
                let k = pubkey(params, 0)?;
                let account = self
                    .svm
                    .get_account(&k)
                    .ok_or((-32602, format!("could not find account {k}")))?;
                let token = TokenAccount::unpack(&account.data)
                    .map_err(|_| (-32602, format!("{k} is not a token account")))?;
                let decimals = self
                    .svm
                    .get_account(&token.mint)
                    .and_then(|m| Mint::unpack(&m.data).ok())
                    .map(|m| m.decimals)
                    .unwrap_or(0);
                Ok(self.context(json!({
                    "amount": token.amount.to_string(),
                    "decimals": decimals,
                })))
            }
            "cohort_mintTo" => self.mint_to(params),
            other => Err((-32601, format!("method `{other}` is not served here"))),
        }
    }

    fn send(&mut self, params: &Value) -> Result<Value, RpcError> {
        let encoded = param(params, 0, "transaction")?
            .as_str()
            .ok_or((-32602, "transaction must be a string".to_string()))?;
        let encoding = params
            .get(1)
            .and_then(|c| c.get("encoding"))
            .and_then(Value::as_str)
            .unwrap_or("base58");
        let raw = match encoding {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| (-32602, "invalid base64".to_string()))?,
            "base58" => bs58::decode(encoded)
                .into_vec()
                .map_err(|_| (-32602, "invalid base58".to_string()))?,
            e => return Err((-32602, format!("unsupported encoding {e}"))),
        };
        let tx: VersionedTransaction = bincode::deserialize(&raw)
            .map_err(|e| (-32602, format!("failed to deserialize transaction: {e}")))?;
        match self.svm.send_transaction(tx) {
            Ok(meta) => {
                self.slot += 1;
                let sig = meta.signature.to_string();
                self.processed.insert(sig.clone());
                Ok(json!(sig))
            }
            Err(failed) => Err((
                -32002,
                format!(
                    "Transaction simulation failed: {:?}; logs: {}",
                    failed.err,
                    failed.meta.logs.join(" | ")
                ),
            )),
        }
    }

    fn mint_to(&mut self, params: &Value) -> Result<Value, RpcError> {
        let mint = pubkey(params, 0)?;
        let owner = pubkey(params, 1)?;
        let amount = u64_param(params, 2, "amount")?;
        let decimals = u8::try_from(u64_param(params, 3, "decimals")?)
            .map_err(|_| (-32602, "decimals must fit in a byte".to_string()))?;
        let program = spl_token_interface::id();
        let supply = match self.svm.get_account(&mint) {
            Some(a) => {
                let m = Mint::unpack(&a.data).map_err(|_| (-32602, "not a mint".to_string()))?;
                if m.decimals != decimals {
                    return Err((-32602, format!("the mint has {} decimals", m.decimals)));
                }
                m.supply
            }
            None => 0,
        };
        let mut data = vec![0u8; Mint::LEN];
        Mint {
            mint_authority: COption::None,
            supply: supply.saturating_add(amount),
            decimals,
            is_initialized: true,
            freeze_authority: COption::None,
        }
        .pack_into_slice(&mut data);
        self.set(mint, data, program)?;
        let ata = get_associated_token_address(&owner, &mint);
        let held = self
            .svm
            .get_account(&ata)
            .and_then(|a| TokenAccount::unpack(&a.data).ok())
            .map(|t| t.amount)
            .unwrap_or(0);
        let mut data = vec![0u8; TokenAccount::LEN];
        TokenAccount {
            mint,
            owner,
            amount: held.saturating_add(amount),
            delegate: COption::None,
            state: AccountState::Initialized,
            is_native: COption::None,
            delegated_amount: 0,
            close_authority: COption::None,
        }
        .pack_into_slice(&mut data);
        self.set(ata, data, program)?;
        Ok(json!(ata.to_string()))
    }

    fn set(&mut self, address: Pubkey, data: Vec<u8>, owner: Pubkey) -> Result<(), RpcError> {
        let lamports = self.svm.minimum_balance_for_rent_exemption(data.len());
        self.svm
            .set_account(
                address,
                Account {
                    lamports,
                    data,
                    owner,
                    executable: false,
                    rent_epoch: 0,
                },
            )
            .map_err(|e| (-32603, format!("set account: {e:?}")))
    }
}
