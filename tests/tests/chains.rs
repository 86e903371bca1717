//! Chain transactions signed by a simulated cluster, end to end through the coordinator's API
//! (prepare, approve and sign, assemble), and checked by chain software none of us wrote:
//! Bitcoin Core's script interpreter, anvil (EVM), the Solana runtime. Also what the API says
//! to bad requests, and what a client says to a coordinator that lies about a transaction.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use adapters::{Intent, Registry, Utxo};
use cli::devchain::{Anvil, LocalSolana, bitcoin_verify};
use cli::ops;
use cli::sim::{SimCluster, SimOptions};
use cli::trust::{Trust, VerifiedKey};
use cli::tx::{Rpc, Sent, TxRequest, address, check_prepared, send};
use coordinator::api::{
    AddressInfo, AssembleRequest, AssembledTransaction, Hex, PayloadJson, PrepareRequest,
    PreparedTransaction,
};
use coordinator::client::{ApiCallError, ApiClient};
use ed25519_dalek::SigningKey;
use protocol::policy::Scheme;

const CLUSTER: &str = "chains-test";
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

struct World {
    _dir: tempfile::TempDir,
    cluster: SimCluster,
    api: ApiClient,
    anvil: Anvil,
    solana: LocalSolana,
    approvers: Vec<SigningKey>,
    /// The genesis's admins (they approve imports).
    admins: Vec<SigningKey>,
    /// The genesis the ceremony approved, as a client pins it.
    trust: Trust,
    ecdsa: VerifiedKey,
    eddsa: VerifiedKey,
    registry: Registry,
}

async fn world() -> World {
    let anvil = Anvil::start(31337).await.unwrap();
    let solana = LocalSolana::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(3, dir.path().to_path_buf()).unwrap();
    options.bin_dir = cohort_tests::bin_dir();
    options.fixture_primes = true;
    options.coordinator_args = vec![
        format!("--rpc=ethereum:anvil={}", anvil.url),
        format!("--rpc=solana={}", solana.url),
        // Nothing listens there: preparing for sepolia must fail with rpc_failed.
        "--rpc=ethereum:sepolia=http://127.0.0.1:1".into(),
        // Pools at the paths the transactions below spend from: every adapter's payloads are
        // preimages the enclaves hash, so presignatures serve them (RUSTSEC-2025-0127).
        "--pool-path=m/1/5".into(),
        "--pool-path=m/0/0".into(),
        "--pool-level=2".into(),
    ];
    let cluster = SimCluster::start(&options).await.unwrap();
    let api = cluster.info.api().unwrap();
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[40 + i; 32]))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[50 + i; 32]))
        .collect();
    let trust = ops::genesis(
        &api,
        &cohort_tests::expectations(&cluster),
        CLUSTER,
        &admins,
        2,
    )
    .await
    .unwrap();
    let approver_keys: Vec<[u8; 32]> = approvers
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    let ecdsa = ops::create_key(
        &api,
        trust.cluster_id(),
        "ecdsa",
        Scheme::EcdsaSecp256k1,
        2,
        &admins,
        &approver_keys,
        2,
    )
    .await
    .unwrap();
    let eddsa = ops::create_key(
        &api,
        trust.cluster_id(),
        "eddsa",
        Scheme::EddsaEd25519,
        2,
        &admins,
        &approver_keys,
        2,
    )
    .await
    .unwrap();
    let ecdsa = trust.verify_key(ecdsa).unwrap();
    let eddsa = trust.verify_key(eddsa).unwrap();
    World {
        _dir: dir,
        cluster,
        api,
        anvil,
        solana,
        approvers,
        admins,
        trust,
        ecdsa,
        eddsa,
        registry: Registry::builtin(),
    }
}

impl World {
    /// The address of `key`, made by the client from the key checked against the pinned
    /// genesis.
    async fn address(
        &self,
        key: &str,
        chain: &str,
        network: Option<&str>,
        path: &[u32],
    ) -> AddressInfo {
        address(
            &self.api,
            &self.trust,
            &self.registry,
            key,
            chain,
            network,
            path,
        )
        .await
        .unwrap()
    }

    async fn send(
        &self,
        key: &str,
        chain: &str,
        network: &str,
        path: &[u32],
        intent: Intent,
        rpc: Rpc<'_>,
    ) -> Sent {
        send(
            &self.api,
            &self.trust,
            &self.registry,
            TxRequest {
                key_id: key.into(),
                chain: chain.into(),
                network: Some(network.into()),
                path: path.to_vec(),
                intent,
            },
            &self.approvers,
            rpc,
            |_| {},
        )
        .await
        .unwrap()
    }
}

fn expect_code<T: std::fmt::Debug>(r: Result<T, ApiCallError>, status: u16, code: &str) -> String {
    match r {
        Err(ApiCallError::Api { status: s, body }) => {
            assert_eq!((s, body.error.code.as_str()), (status, code), "{body:?}");
            body.error.message
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

fn funding(n: u8, amount: u64) -> Utxo {
    use sha2::Digest;
    Utxo {
        txid: hex::encode(sha2::Sha256::digest(
            [b"funding ".as_slice(), &[n]].concat(),
        )),
        vout: u32::from(n % 3),
        amount,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_signed_transactions_pass_the_chains_own_software() {
    let w = world().await;

    // Addresses: the client's BIP32 derivation (from the key checked against the pinned
    // genesis) and the coordinator's agree with an independent one.
    // Bitcoin-family test networks keep their keys under m/1/….
    let path = [1u32, 5];
    let a = w.address("ecdsa", "bitcoin", Some("regtest"), &path).await;
    let child = cohort_tests::bip32_child(
        &w.ecdsa.info().public_key.0,
        &w.ecdsa.info().chain_code.as_ref().unwrap().0,
        &path,
    );
    assert_eq!(a.public_key.0, child);
    let btc = w.registry.adapter("bitcoin", Some("regtest")).unwrap();
    assert_eq!(a.address, btc.address(&child).unwrap());
    assert!(a.address.starts_with("bcrt1q"), "{}", a.address);
    let theirs: AddressInfo = w
        .api
        .get("/v1/keys/ecdsa/address?chain=bitcoin&network=regtest&path=m/1/5")
        .await
        .unwrap();
    assert_eq!(theirs, a);
    let sol_addr = w.address("eddsa", "solana", None, &[]).await;
    assert_eq!(sol_addr.public_key, w.eddsa.info().public_key);

    // --- Bitcoin: three inputs, every one through Core's interpreter. ---
    ops::wait_for_pool(&w.api, "ecdsa", &path, 2, Duration::from_secs(600))
        .await
        .unwrap();
    let sent = w
        .send(
            "ecdsa",
            "bitcoin",
            "regtest",
            &path,
            Intent {
                to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                amount: Some("150000".into()),
                utxos: Some(vec![
                    funding(1, 60_000),
                    funding(2, 60_000),
                    funding(3, 60_000),
                ]),
                fee_rate: Some(3),
                ..Default::default()
            },
            Rpc::default(),
        )
        .await;
    assert_eq!(sent.prepared.payloads.len(), 3);
    // Each input's BIP143 preimage was signed from a presignature.
    assert!(
        sent.signed.signatures.iter().all(|s| s.presigned),
        "{:?}",
        sent.signed
    );
    let spent = adapters::bitcoin::spent_outputs(&sent.assembled.psbt.as_ref().unwrap().0).unwrap();
    assert_eq!(spent.len(), 3);
    let verdict = bitcoin_verify(&sent.assembled.raw_tx.0, &spent).await;
    assert!(verdict.is_ok(), "{verdict:?}");
    // The checker is not a rubber stamp: one satoshi off in a spent amount fails.
    let mut wrong = spent.clone();
    wrong[2].1 -= 1;
    assert!(
        bitcoin_verify(&sent.assembled.raw_tx.0, &wrong)
            .await
            .is_err()
    );

    // A PSBT from elsewhere (here: the first transaction's unsigned PSBT for other coins).
    let wallet = btc
        .build(
            &child,
            &path,
            &Intent {
                to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                amount: Some("10000".into()),
                utxos: Some(vec![funding(9, 25_000)]),
                fee_rate: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let sent = w
        .send(
            "ecdsa",
            "bitcoin",
            "regtest",
            &path,
            Intent {
                psbt: Some(hex::encode(&wallet.tx)),
                ..Default::default()
            },
            Rpc::default(),
        )
        .await;
    let spent = adapters::bitcoin::spent_outputs(&sent.assembled.psbt.as_ref().unwrap().0).unwrap();
    bitcoin_verify(&sent.assembled.raw_tx.0, &spent)
        .await
        .unwrap();

    // --- Litecoin (a Bitcoin-family chain, one adapter module): the same interpreter rules. ---
    let ltc = w.address("ecdsa", "litecoin", Some("regtest"), &path).await;
    assert!(ltc.address.starts_with("rltc1q"), "{}", ltc.address);
    assert_eq!(ltc.public_key.0, child);
    let sent = w
        .send(
            "ecdsa",
            "litecoin",
            "regtest",
            &path,
            Intent {
                to: Some(ltc.address.clone()),
                amount: Some("40000".into()),
                utxos: Some(vec![funding(4, 50_000)]),
                fee_rate: Some(10),
                ..Default::default()
            },
            Rpc::default(),
        )
        .await;
    assert_eq!(sent.assembled.summary.transfers[0].display, "0.0004 LTC");
    let spent = adapters::bitcoin::spent_outputs(&sent.assembled.psbt.as_ref().unwrap().0).unwrap();
    bitcoin_verify(&sent.assembled.raw_tx.0, &spent)
        .await
        .unwrap();
    let r = w
        .api
        .post::<PreparedTransaction>(
            "/v1/transactions",
            &PrepareRequest {
                key_id: "ecdsa".into(),
                chain: "litecoin".into(),
                network: Some("regtest".into()),
                path: Some("m/1/5".into()),
                intent: Intent {
                    to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                    amount: Some("1000".into()),
                    utxos: Some(vec![funding(4, 50_000)]),
                    fee_rate: Some(1),
                    ..Default::default()
                },
            },
        )
        .await;
    expect_code(r, 400, "bad_address");

    // --- Ethereum on anvil: EIP-1559 (the coordinator fetches nonce and fees), legacy EIP-155
    // (the client fetches the nonce), ERC-20. ---
    let eth_path = [0u32, 0];
    let from = w
        .address("ecdsa", "ethereum", Some("anvil"), &eth_path)
        .await;
    w.anvil
        .set_balance(&from.address, 10u128.pow(19))
        .await
        .unwrap();
    let token = w.anvil.deploy_token(&from.address).await.unwrap();
    let before = w.anvil.balance(RECIPIENT).await.unwrap();
    let url = w.anvil.url.clone();
    ops::wait_for_pool(&w.api, "ecdsa", &eth_path, 1, Duration::from_secs(600))
        .await
        .unwrap();
    let eip1559 = w
        .send(
            "ecdsa",
            "ethereum",
            "anvil",
            &eth_path,
            Intent {
                to: Some(RECIPIENT.into()),
                amount: Some("1234567890000000".into()),
                ..Default::default()
            },
            Rpc {
                url: Some(&url),
                fill_locally: false,
            },
        )
        .await;
    assert!(
        eip1559.prepared.filled.contains(&"nonce".to_string())
            && eip1559.prepared.filled.contains(&"gas_limit".to_string()),
        "{:?}",
        eip1559.prepared.filled
    );
    // The EIP-2718 signing encoding was signed from a presignature.
    assert!(
        eip1559.signed.signatures[0].presigned,
        "{:?}",
        eip1559.signed
    );
    // A plain transfer to an account without code: estimated at exactly 21 000, no margin.
    assert_eq!(eip1559.prepared.intent.gas_limit, Some(21_000));
    assert!(
        w.anvil
            .succeeded(eip1559.broadcast.as_ref().unwrap())
            .await
            .unwrap()
    );
    let legacy = w
        .send(
            "ecdsa",
            "ethereum",
            "anvil",
            &eth_path,
            Intent {
                to: Some(RECIPIENT.into()),
                amount: Some("42".into()),
                gas_price: Some("3000000000".into()),
                ..Default::default()
            },
            Rpc {
                url: Some(&url),
                fill_locally: true,
            },
        )
        .await;
    assert!(
        legacy.prepared.filled.is_empty(),
        "the client filled the nonce itself"
    );
    assert!(
        legacy.assembled.raw_tx.0[0] >= 0xc0,
        "a legacy transaction is an RLP list"
    );
    assert!(
        w.anvil
            .succeeded(legacy.broadcast.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(
        w.anvil.balance(RECIPIENT).await.unwrap(),
        before + 1_234_567_890_000_042
    );
    let erc20 = w
        .send(
            "ecdsa",
            "ethereum",
            "anvil",
            &eth_path,
            Intent {
                to: Some(RECIPIENT.into()),
                amount: Some("777".into()),
                token: Some(token.clone()),
                ..Default::default()
            },
            Rpc {
                url: Some(&url),
                fill_locally: false,
            },
        )
        .await;
    assert!(
        w.anvil
            .succeeded(erc20.broadcast.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(w.anvil.token_balance(&token, RECIPIENT).await.unwrap(), 777);
    // The signer anvil recovered is the cluster's address.
    let tx = w
        .anvil
        .call(
            "eth_getTransactionByHash",
            serde_json::json!([erc20.assembled.txid]),
        )
        .await
        .unwrap();
    assert_eq!(
        tx["from"].as_str().unwrap().to_lowercase(),
        from.address.to_lowercase()
    );

    // --- Polygon: an EVM chain added by one entry in the registry, on an anvil with its chain
    // id (137); the client fetches nonce and fees. ---
    let polygon = Anvil::start(137).await.unwrap();
    polygon
        .set_balance(&from.address, 10u128.pow(19))
        .await
        .unwrap();
    let sent = w
        .send(
            "ecdsa",
            "polygon",
            "mainnet",
            &eth_path,
            Intent {
                to: Some(RECIPIENT.into()),
                amount: Some("5000000000000000".into()),
                ..Default::default()
            },
            Rpc {
                url: Some(&polygon.url),
                fill_locally: true,
            },
        )
        .await;
    assert!(
        polygon
            .succeeded(sent.broadcast.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(sent.assembled.summary.from, from.address);
    assert_eq!(sent.assembled.summary.transfers[0].display, "0.005 POL");
    assert!(
        sent.assembled
            .summary
            .details
            .contains(&("chain id".into(), "137".into()))
    );
    // The same bytes are refused by the Ethereum (31337) node: EIP-155 binds the chain.
    assert!(
        coordinator::rpc::broadcast(
            &coordinator::rpc::JsonRpc::new(&w.anvil.url),
            adapters::RpcDialect::Ethereum { chain_id: 31337 },
            &sent.assembled.raw_tx.0,
        )
        .await
        .is_err()
    );

    // --- Solana: SOL and an SPL token through the runtime. ---
    let sol = &w.solana;
    sol.airdrop(&sol_addr.address, 1_000_000_000).await.unwrap();
    let to = w
        .registry
        .adapter("solana", None)
        .unwrap()
        .address(SigningKey::from_bytes(&[77; 32]).verifying_key().as_bytes())
        .unwrap();
    let sent = w
        .send(
            "eddsa",
            "solana",
            "localnet",
            &[],
            Intent {
                to: Some(to.clone()),
                amount: Some("1000000".into()),
                ..Default::default()
            },
            Rpc {
                url: Some(&sol.url),
                fill_locally: false,
            },
        )
        .await;
    assert_eq!(sent.prepared.filled, vec!["recent_blockhash".to_string()]);
    assert_eq!(sol.balance(&to).await.unwrap(), 1_000_000);
    assert_eq!(
        sol.balance(&sol_addr.address).await.unwrap(),
        1_000_000_000 - 1_000_000 - 5_000
    );
    let mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    let source = sol.mint_to(mint, &sol_addr.address, 500, 2).await.unwrap();
    w.send(
        "eddsa",
        "solana",
        "localnet",
        &[],
        Intent {
            to: Some(to.clone()),
            amount: Some("123".into()),
            token: Some(mint.into()),
            decimals: Some(2),
            ..Default::default()
        },
        Rpc {
            url: Some(&sol.url),
            fill_locally: false,
        },
    )
    .await;
    let dest = adapters::solana::associated_token_address(&to, mint).unwrap();
    assert_eq!(sol.token_balance(&dest).await.unwrap(), 123);
    assert_eq!(sol.token_balance(&source).await.unwrap(), 377);

    // --- What a client does with a coordinator that lies. ---
    let asked = TxRequest {
        key_id: "ecdsa".into(),
        chain: "ethereum".into(),
        network: Some("anvil".into()),
        path: eth_path.to_vec(),
        intent: Intent {
            to: Some(RECIPIENT.into()),
            amount: Some("1".into()),
            ..Default::default()
        },
    };
    let prepare = |intent: Intent, network: &str| PrepareRequest {
        key_id: "ecdsa".into(),
        chain: "ethereum".into(),
        network: Some(network.into()),
        path: Some("m/0/0".into()),
        intent,
    };
    let prepared: PreparedTransaction = w
        .api
        .post("/v1/transactions", &prepare(asked.intent.clone(), "anvil"))
        .await
        .unwrap();
    check_prepared(&w.registry, &w.ecdsa, &asked, &prepared).unwrap();
    let refused = |lie: &PreparedTransaction| {
        let e = check_prepared(&w.registry, &w.ecdsa, &asked, lie).unwrap_err();
        e.to_string()
    };
    // Payload or summary that is not the transaction's; another key.
    let mut lie = prepared.clone();
    let PayloadJson::Hashed { hash, preimage } = &mut lie.payloads[0] else {
        panic!("an EVM payload is a preimage: {:?}", prepared.payloads[0]);
    };
    assert_eq!(*hash, protocol::policy::HashFunction::Keccak256);
    assert_eq!(preimage.0, prepared.unsigned_tx.0);
    preimage.0[0] ^= 1;
    assert!(refused(&lie).contains("payloads"));
    // The same transaction's digest given raw is refused too (it is not what was built).
    let mut lie = prepared.clone();
    lie.payloads[0] = PayloadJson::Raw(Hex(protocol::policy::HashFunction::Keccak256
        .digest(&prepared.unsigned_tx.0)
        .to_vec()));
    assert!(refused(&lie).contains("payloads"));
    let mut lie = prepared.clone();
    lie.summary.transfers[0].amount = "1000".into();
    assert!(refused(&lie).contains("summary"));
    let mut lie = prepared.clone();
    lie.public_key = w.ecdsa.info().public_key.clone();
    assert!(refused(&lie).contains("public key"));
    // A whole, self-consistent transaction to someone else, or for more: refused, because it is
    // not the intent asked for.
    for other in [
        Intent {
            to: Some("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into()),
            ..asked.intent.clone()
        },
        Intent {
            amount: Some("1000000000000000000".into()),
            ..asked.intent.clone()
        },
    ] {
        let lie: PreparedTransaction = w
            .api
            .post("/v1/transactions", &prepare(other, "anvil"))
            .await
            .unwrap();
        assert!(refused(&lie).contains("changed the intent"));
    }
    // The same intent on another network (holesky: no endpoint configured, nonce and fees
    // given): refused.
    let mut lie: PreparedTransaction = w
        .api
        .post(
            "/v1/transactions",
            &prepare(
                Intent {
                    nonce: Some(0),
                    gas_price: Some("1".into()),
                    ..asked.intent.clone()
                },
                "holesky",
            ),
        )
        .await
        .unwrap();
    assert!(refused(&lie).contains("holesky"));
    // A field the coordinator may not fill (or did not say it filled).
    lie = prepared.clone();
    lie.intent.token = Some(token.clone());
    assert!(refused(&lie).contains("added `token`"));
    lie = prepared.clone();
    lie.filled.clear();
    assert!(refused(&lie).contains("to the intent"));

    // --- Bad requests: each gets its code, and a message naming what is wrong. ---
    let prep = |key: &str, chain: &str, network: Option<&str>, path: Option<&str>, intent| {
        serde_json::to_value(PrepareRequest {
            key_id: key.into(),
            chain: chain.into(),
            network: network.map(str::to_string),
            path: path.map(str::to_string),
            intent,
        })
        .unwrap()
    };
    let pay = |to: &str| Intent {
        to: Some(to.into()),
        amount: Some("1000".into()),
        nonce: Some(0),
        gas_price: Some("1".into()),
        ..Default::default()
    };
    let spend = |to: &str, amount: &str| Intent {
        to: Some(to.into()),
        amount: Some(amount.into()),
        utxos: Some(vec![funding(1, 5000)]),
        fee_rate: Some(1),
        ..Default::default()
    };
    let unfilled = |extra: Intent| Intent {
        to: Some(RECIPIENT.into()),
        amount: Some("1".into()),
        ..extra
    };
    let anvil = Some("anvil");
    let regtest = Some("regtest");
    let cases = [
        (
            prep("ecdsa", "dogecoin", None, None, pay(RECIPIENT)),
            400,
            "unknown_chain",
            "bitcoin, ethereum, litecoin, polygon, solana",
        ),
        (
            prep("ecdsa", "ethereum", Some("ropsten"), None, pay(RECIPIENT)),
            400,
            "unknown_chain",
            "ropsten",
        ),
        (
            prep(
                "ecdsa",
                "ethereum",
                anvil,
                None,
                pay("0x70997970C51812dc3A010C7d01b50e0d17dc79c8"),
            ),
            400,
            "bad_address",
            "checksum",
        ),
        (
            prep(
                "ecdsa",
                "bitcoin",
                regtest,
                Some("m/1/0"),
                spend("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "1000"),
            ),
            400,
            "bad_address",
            "regtest",
        ),
        (
            prep(
                "ecdsa",
                "bitcoin",
                regtest,
                Some("m/1/0"),
                spend("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "100000"),
            ),
            400,
            "insufficient_funds",
            "have",
        ),
        (
            prep("eddsa", "ethereum", anvil, None, pay(RECIPIENT)),
            400,
            "invalid_request",
            "ecdsa-secp256k1",
        ),
        (
            prep(
                "ecdsa",
                "ethereum",
                anvil,
                Some("m/2147483648"),
                pay(RECIPIENT),
            ),
            400,
            "invalid_request",
            "hardened",
        ),
        (
            prep("nokey", "ethereum", anvil, None, pay(RECIPIENT)),
            404,
            "not_found",
            "nokey",
        ),
        (
            prep(
                "ecdsa",
                "ethereum",
                Some("sepolia"),
                None,
                unfilled(Intent::default()),
            ),
            502,
            "rpc_failed",
            "127.0.0.1:1",
        ),
        (
            serde_json::json!({
                "key_id": "ecdsa", "chain": "ethereum", "intent": {"to": RECIPIENT, "colour": "red"}
            }),
            400,
            "malformed_request",
            "colour",
        ),
        (
            prep(
                "ecdsa",
                "ethereum",
                anvil,
                None,
                unfilled(Intent {
                    fee_rate: Some(3),
                    ..Default::default()
                }),
            ),
            400,
            "invalid_request",
            "fee_rate",
        ),
    ];
    for (body, status, code, named) in cases {
        let r = w
            .api
            .post::<PreparedTransaction>("/v1/transactions", &body)
            .await;
        let m = expect_code(r, status, code);
        assert!(m.contains(named), "{code}: {m}");
    }
    let r = w
        .api
        .get::<coordinator::api::AddressInfo>("/v1/keys/ecdsa/address")
        .await;
    expect_code(r, 400, "invalid_request");
    let r = w
        .api
        .get::<coordinator::api::AddressInfo>("/v1/keys/ecdsa/address?chain=solana")
        .await;
    expect_code(r, 400, "invalid_request");

    // Assemble refuses signatures that are not the key's, and wrong counts.
    let assemble = |signatures: Vec<Hex>| AssembleRequest {
        key_id: "ecdsa".into(),
        chain: "ethereum".into(),
        network: Some("anvil".into()),
        path: Some("m/0/0".into()),
        unsigned_tx: prepared.unsigned_tx.clone(),
        signatures,
    };
    let r = w
        .api
        .post::<AssembledTransaction>(
            "/v1/transactions/assemble",
            &assemble(vec![Hex(vec![7; 64])]),
        )
        .await;
    let m = expect_code(r, 400, "invalid_request");
    assert!(m.contains("signature"), "{m}");
    let r = w
        .api
        .post::<AssembledTransaction>("/v1/transactions/assemble", &assemble(vec![]))
        .await;
    expect_code(r, 400, "invalid_request");
    let r = w
        .api
        .post::<AssembledTransaction>(
            "/v1/transactions/assemble",
            &AssembleRequest {
                unsigned_tx: Hex(vec![0xde, 0xad]),
                ..assemble(vec![Hex(vec![7; 64])])
            },
        )
        .await;
    expect_code(r, 400, "invalid_request");

    imported_keys_spend_from_their_legacy_addresses(&w).await;

    // Every signature went through the audit log, and the chain holds.
    let v: coordinator::api::AuditVerification = w.api.get("/v1/audit/verify").await.unwrap();
    assert!(v.ok, "{v:?}");
    w.cluster.stop().await.unwrap();
}

/// Issue 19: tss-lib's own save files (3 of 5 holders each) imported into the cluster; the
/// legacy keys' addresses, computed here from the files' public keys alone, spend on each chain
/// and the chain's own software accepts the signatures.
async fn imported_keys_spend_from_their_legacy_addresses(w: &World) {
    use cli::import::inspect::Format;
    use cli::import::submit::{Cluster, ImportPlan, import_files};
    let vectors =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/vectors/tss-lib");
    let root_der = cohort_tests::expectations(&w.cluster).root_der;
    let cluster = Cluster {
        api: &w.api,
        trust: &w.trust,
        root_der: &root_der,
    };
    let plan = |id: &str, master_key_network: Option<&str>| ImportPlan {
        key_id: id.into(),
        threshold: 2,
        approvers: w
            .approvers
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect(),
        approvals_needed: 2,
        chain_code: None,
        master_key_network: master_key_network.map(String::from),
    };
    let files = |scheme: &str, which: [usize; 3]| {
        which.map(|i| vectors.join(format!("{scheme}/keygen_data_{i}.json")))
    };
    let ecdsa = import_files(
        &cluster,
        Format::TssLibEcdsa,
        &files("ecdsa", [1, 2, 3]),
        None,
        // Its legacy funds are on regtest: there its own key signs.
        &plan("legacy-ecdsa", Some("bitcoin:regtest")),
        &w.admins,
    )
    .await
    .unwrap();
    let eddsa = import_files(
        &cluster,
        Format::TssLibEddsa,
        &files("eddsa", [0, 2, 3]),
        None,
        &plan("legacy-eddsa", None),
        &w.admins,
    )
    .await
    .unwrap();

    // Bitcoin: the legacy key's own P2WPKH address; every input through Core's interpreter.
    let btc = w.registry.adapter("bitcoin", Some("regtest")).unwrap();
    let a = w
        .address("legacy-ecdsa", "bitcoin", Some("regtest"), &[])
        .await;
    assert_eq!(a.public_key, ecdsa.public_key);
    assert_eq!(a.address, btc.address(&ecdsa.public_key.0).unwrap());
    let sent = w
        .send(
            "legacy-ecdsa",
            "bitcoin",
            "regtest",
            &[],
            Intent {
                to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                amount: Some("20000".into()),
                utxos: Some(vec![funding(11, 15_000), funding(12, 15_000)]),
                fee_rate: Some(2),
                ..Default::default()
            },
            Rpc::default(),
        )
        .await;
    let spent = adapters::bitcoin::spent_outputs(&sent.assembled.psbt.as_ref().unwrap().0).unwrap();
    assert_eq!(spent.len(), 2);
    bitcoin_verify(&sent.assembled.raw_tx.0, &spent)
        .await
        .unwrap();

    // Ethereum: the address is Keccak-256 of the legacy key (computed here with k256 and sha3),
    // and anvil recovers it as the sender.
    let eth = {
        use k256::elliptic_curve::sec1::ToEncodedPoint as _;
        use sha3::Digest as _;
        let point = k256::PublicKey::from_sec1_bytes(&ecdsa.public_key.0)
            .unwrap()
            .to_encoded_point(false);
        format!(
            "0x{}",
            hex::encode(&sha3::Keccak256::digest(&point.as_bytes()[1..])[12..])
        )
    };
    let from = w
        .address("legacy-ecdsa", "ethereum", Some("anvil"), &[])
        .await;
    assert_eq!(from.address.to_lowercase(), eth);
    w.anvil
        .set_balance(&from.address, 10u128.pow(18))
        .await
        .unwrap();
    let before = w.anvil.balance(RECIPIENT).await.unwrap();
    let url = w.anvil.url.clone();
    let transfer = w
        .send(
            "legacy-ecdsa",
            "ethereum",
            "anvil",
            &[],
            Intent {
                to: Some(RECIPIENT.into()),
                amount: Some("4242".into()),
                ..Default::default()
            },
            Rpc {
                url: Some(&url),
                fill_locally: false,
            },
        )
        .await;
    assert!(
        w.anvil
            .succeeded(transfer.broadcast.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(w.anvil.balance(RECIPIENT).await.unwrap(), before + 4242);
    let tx = w
        .anvil
        .call(
            "eth_getTransactionByHash",
            serde_json::json!([transfer.assembled.txid]),
        )
        .await
        .unwrap();
    assert_eq!(tx["from"].as_str().unwrap().to_lowercase(), eth);

    // Solana: the legacy EdDSA key is the account; a SOL and an SPL transfer execute.
    let sol = &w.solana;
    let account = w.address("legacy-eddsa", "solana", None, &[]).await;
    assert_eq!(account.public_key, eddsa.public_key);
    assert_eq!(
        account.address,
        w.registry
            .adapter("solana", None)
            .unwrap()
            .address(&eddsa.public_key.0)
            .unwrap()
    );
    sol.airdrop(&account.address, 1_000_000_000).await.unwrap();
    let to = w
        .registry
        .adapter("solana", None)
        .unwrap()
        .address(SigningKey::from_bytes(&[78; 32]).verifying_key().as_bytes())
        .unwrap();
    w.send(
        "legacy-eddsa",
        "solana",
        "localnet",
        &[],
        Intent {
            to: Some(to.clone()),
            amount: Some("2000000".into()),
            ..Default::default()
        },
        Rpc {
            url: Some(&sol.url),
            fill_locally: false,
        },
    )
    .await;
    assert_eq!(sol.balance(&to).await.unwrap(), 2_000_000);
    let mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    let source = sol.mint_to(mint, &account.address, 90, 2).await.unwrap();
    w.send(
        "legacy-eddsa",
        "solana",
        "localnet",
        &[],
        Intent {
            to: Some(to.clone()),
            amount: Some("40".into()),
            token: Some(mint.into()),
            decimals: Some(2),
            ..Default::default()
        },
        Rpc {
            url: Some(&sol.url),
            fill_locally: false,
        },
    )
    .await;
    assert_eq!(sol.token_balance(&source).await.unwrap(), 50);
}
