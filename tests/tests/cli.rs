//! The `cohort` binary as a user runs it: `sim up`, `attest fetch`, `attest verify`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use cli::client::HttpClient;
use cohort_tests::{Proc, bin};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn cohort(args: &[&str]) -> Output {
    std::process::Command::new(bin("cohort"))
        .args(args)
        .output()
        .unwrap()
}

fn vectors_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/attestation")
}

#[test]
fn attest_verify_gives_each_vector_its_verdict() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("vectors.json")).unwrap())
            .unwrap();
    let root = vectors_dir().join("root.pem");
    let at = manifest["validation_time"].as_u64().unwrap().to_string();
    let max_age = manifest["max_age_secs"].as_u64().unwrap().to_string();
    let pcrs = &manifest["pcrs"];
    for v in manifest["vectors"].as_array().unwrap() {
        let file = vectors_dir().join(v["file"].as_str().unwrap());
        let out = cohort(&[
            "attest",
            "verify",
            file.to_str().unwrap(),
            "--json",
            "--root",
            root.to_str().unwrap(),
            "--pcr0",
            pcrs["0"].as_str().unwrap(),
            "--pcr1",
            pcrs["1"].as_str().unwrap(),
            "--pcr2",
            pcrs["2"].as_str().unwrap(),
            "--nonce",
            manifest["nonce"].as_str().unwrap(),
            "--max-age",
            &max_age,
            "--at",
            &at,
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expect = v["expect"].as_str().unwrap();
        if expect == "ok" {
            assert_eq!(out.status.code(), Some(0), "{file:?}: {report}");
            assert_eq!(report["valid"], true);
            assert_eq!(report["document"]["module_id"], "i-vectors-enc-0001");
            assert_eq!(
                report["document"]["identity_signing"],
                manifest["identity"]["signing"]
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{file:?}: {report}");
            assert_eq!(report["error"]["kind"], expect, "{file:?}");
        }
    }
    // Text output names the reason; without --root the AWS root is pinned.
    let out = cohort(&[
        "attest",
        "verify",
        vectors_dir().join("valid.cose").to_str().unwrap(),
        "--at",
        &at,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INVALID (unknown_root)"), "{text}");
    assert!(text.contains("module id:"), "{text}");
    // A file that does not exist is a usage error, not a verdict.
    let out = cohort(&["attest", "verify", "/nonexistent/doc.cose"]);
    assert_eq!(out.status.code(), Some(2));
}

async fn wait_for_file(path: &Path, proc: &mut Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("cohort sim up exited ({status}): {}", proc.output());
        }
        assert!(
            Instant::now() < deadline,
            "no {}: {}",
            path.display(),
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_up_serves_attests_reuses_its_dir_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("cluster");
    let args: Vec<String> = [
        "sim",
        "up",
        "--nodes",
        "2",
        "--dir",
        sim_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut up = Proc::spawn(&bin("cohort"), &args, &dir.path().join("up.log")).unwrap();
    let cluster: serde_json::Value =
        serde_json::from_str(&wait_for_file(&sim_dir.join("cluster.json"), &mut up).await).unwrap();
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    let root_pem = std::fs::read(sim_dir.join("ca/root.pem")).unwrap();

    // A second `sim up` on the same directory while this one runs is refused.
    let second = cohort(&[
        "sim",
        "up",
        "--nodes",
        "1",
        "--dir",
        sim_dir.to_str().unwrap(),
    ]);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use"));

    // fetch + verify, as a security team would.
    let doc = dir.path().join("doc.cose");
    let nonce = "00112233445566778899aabbccddeeff";
    let proxy = nodes[0]["proxy_url"].as_str().unwrap();
    let out = cohort(&[
        "attest",
        "fetch",
        "--proxy",
        proxy,
        "--nonce",
        nonce,
        "--out",
        doc.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = sim_dir.join("ca/root.pem");
    let pcr0 = cluster["pcrs"][0].as_str().unwrap();
    let verify = |pcr0: &str, nonce: &str| {
        cohort(&[
            "attest",
            "verify",
            doc.to_str().unwrap(),
            "--json",
            "--root",
            root.to_str().unwrap(),
            "--pcr0",
            pcr0,
            "--nonce",
            nonce,
            "--max-age",
            "120",
        ])
    };
    let ok = verify(pcr0, nonce);
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(ok.status.code(), Some(0), "{report}");
    assert_eq!(report["document"]["module_id"], nodes[0]["module_id"]);
    assert_eq!(report["document"]["pcrs"]["0"], pcr0);
    let wrong_pcr = verify(&"ab".repeat(48), nonce);
    assert_eq!(wrong_pcr.status.code(), Some(1));
    let wrong_nonce = verify(pcr0, "ffff");
    let report: serde_json::Value = serde_json::from_slice(&wrong_nonce.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "nonce_mismatch");

    // API credentials from the command line (ADR 0017): `--dir` signs with the cluster's
    // admin key; a reader made with `credential new` and registered with `credential add`
    // reads but may not list credentials; revoked, it may not read either.
    let sim = sim_dir.to_str().unwrap();
    let reader = dir.path().join("reader.json");
    let reader_pub = dir.path().join("reader.pub.json");
    let out = cohort(&[
        "credential",
        "new",
        "--credential",
        "reader",
        "--out",
        reader.to_str().unwrap(),
        "--public",
        reader_pub.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cohort(&[
        "credential",
        "add",
        "--public",
        reader_pub.to_str().unwrap(),
        "--role",
        "read",
        "--dir",
        sim,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (added["credential"].as_str(), added["role"].as_str()),
        (Some("reader"), Some("read"))
    );
    let as_reader = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--dir", sim, "--api-key", reader.to_str().unwrap()]);
        cohort(&all)
    };
    assert!(as_reader(&["key", "list"]).status.success());
    let out = as_reader(&["credential", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{out:?}"
    );
    let out = cohort(&["credential", "revoke", "reader", "--dir", sim]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_reader(&["key", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad_credential"),
        "{out:?}"
    );
    let out = cohort(&["credential", "list", "--dir", sim]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["credentials"].as_array().unwrap().len(), 2, "{list}");

    // SIGTERM stops the cluster: `sim up` exits 0 and its proxies stop answering.
    kill(
        Pid::from_raw(up.child.id().unwrap() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), up.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{}", up.output());
    let client = HttpClient::new();
    for node in nodes {
        let url = format!("{}/healthz", node["proxy_url"].as_str().unwrap());
        assert!(
            client.get(&url).await.is_err(),
            "{url} still answers after sim up stopped"
        );
    }

    // A second run on the same directory reuses the CA.
    let mut again = Proc::spawn(&bin("cohort"), &args, &dir.path().join("up2.log")).unwrap();
    std::fs::remove_file(sim_dir.join("cluster.json")).unwrap();
    wait_for_file(&sim_dir.join("cluster.json"), &mut again).await;
    assert_eq!(
        std::fs::read(sim_dir.join("ca/root.pem")).unwrap(),
        root_pem
    );
    kill(
        Pid::from_raw(again.child.id().unwrap() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), again.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[test]
fn demo_boots_attests_creates_keys_signs_and_exits_zero() {
    let out = cohort(&["demo", "--nodes", "2", "--fixture-primes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("VERIFIED, identity key").count(), 2, "{text}");
    assert!(text.contains("refused: pcr0 mismatch"), "{text}");
    assert_eq!(
        text.matches("VERIFIED (independent library)").count(),
        4,
        "{text}"
    );
    // A preimage is signed from a presignature; a bare digest only in full (RUSTSEC-2025-0127).
    assert!(
        text.contains("from a presignature, key m: nodes [0, 1] (presigned)"),
        "{text}"
    );
    let bare = text
        .lines()
        .find(|l| l.contains("a bare digest"))
        .unwrap_or_else(|| panic!("no bare-digest run: {text}"));
    assert!(!bare.contains("(presigned)"), "{bare}");
    // One Bitcoin, two Ethereum and two Solana transactions, each checked by chain software.
    for check in [
        "bitcoin: every input under Bitcoin Core's script interpreter: OK",
        "ethereum ETH: accepted and mined by anvil, recipient balance grew by the amount: OK",
        "ethereum ERC-20: accepted and mined by anvil, recipient balance grew by the amount: OK",
        "solana SOL: executed by the Solana runtime, recipient balance grew by the amount: OK",
        "solana SPL token: executed by the Solana runtime, recipient balance grew by the amount: OK",
    ] {
        assert!(text.contains(check), "{check}\n{text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
    assert!(text.ends_with("demo passed\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn genesis_key_create_and_sign_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("cluster");
    let args: Vec<String> = [
        "sim",
        "up",
        "--nodes",
        "3",
        "--fixture-primes",
        "--dir",
        sim.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut up = Proc::spawn(&bin("cohort"), &args, &dir.path().join("up.log")).unwrap();
    wait_for_file(&sim.join("cluster.json"), &mut up).await;
    let d = sim.to_str().unwrap();

    let admin = dir.path().join("admin.key");
    let admin2 = dir.path().join("admin2.key");
    let approver = dir.path().join("approver.key");
    for k in [&admin, &admin2, &approver] {
        let out = cohort(&["keygen", "--out", k.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let public = |k: &Path| hex::encode(cli::ops::read_key(k).unwrap().verifying_key().to_bytes());
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let failed = |out: &Output, needle: &str| {
        assert!(!out.status.success(), "succeeded: {needle}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    };

    // The ceremony in three steps: prepare on the ceremony machine (every node enrolled and
    // its document verified here), approve on each admin's own machine, submit.
    let (p1, p2) = (public(&admin), public(&admin2));
    ok(&cohort(&[
        "genesis",
        "prepare",
        "--dir",
        d,
        "--cluster",
        "cli-test",
        "--admin-public",
        &p1,
        "--admin-public",
        &p2,
        "--quorum",
        "2",
        "--out",
        &file("proposal.json"),
    ]));
    // The roster pins each node's parent PCR3 (the simulated parent's role, as the deployment
    // gives it), checked against its document.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sim.join("cluster.json")).unwrap()).unwrap();
    let proposal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file("proposal.json")).unwrap()).unwrap();
    for i in 0..3 {
        let expected = info["nodes"][i]["pcr3"].as_str().unwrap();
        assert_eq!(expected.len(), 96);
        assert_ne!(expected, "0".repeat(96));
        assert_eq!(proposal["roster"][i]["pcr3"].as_str(), Some(expected));
    }
    // A node whose enclave runs on another parent role than the deployment says: refused
    // before any proposal is written.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut wrong = info.clone();
    wrong["nodes"][1]["pcr3"] = cli::kms::pcr3_hex("arn:aws:iam::000000000000:role/another").into();
    std::fs::write(elsewhere.join("cluster.json"), wrong.to_string()).unwrap();
    failed(
        &cohort(&[
            "genesis",
            "prepare",
            "--dir",
            elsewhere.to_str().unwrap(),
            "--api-key",
            sim.join("api-key.json").to_str().unwrap(),
            "--admin-public",
            &p1,
            "--out",
            &file("elsewhere.json"),
        ]),
        "node 1's enclave runs on a parent whose PCR3 is",
    );
    assert!(!Path::new(&file("elsewhere.json")).exists());
    let approve = |key: &Path, proposal: &str, out: &str| {
        cohort(&[
            "genesis",
            "approve",
            "--proposal",
            &file(proposal),
            "--admin",
            key.to_str().unwrap(),
            "--out",
            &file(out),
        ])
    };
    let out = approve(&admin, "proposal.json", "approval1.json");
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("node 2: node key"));
    ok(&approve(&admin2, "proposal.json", "approval2.json"));
    // Someone who is not one of its admins does not approve it.
    failed(
        &approve(&approver, "proposal.json", "stranger.json"),
        "not one of the proposal's admins",
    );
    // Another proposal (renamed), approved by admin 2: its approval does not count for this one.
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file("proposal.json")).unwrap()).unwrap();
    other["name"] = "not-cli-test".into();
    std::fs::write(file("other-proposal.json"), other.to_string()).unwrap();
    ok(&approve(
        &admin2,
        "other-proposal.json",
        "approval-other.json",
    ));
    let submit = |approvals: &[&str]| {
        let mut args = vec![
            "genesis".to_string(),
            "submit".into(),
            "--dir".into(),
            d.into(),
            "--proposal".into(),
            file("proposal.json"),
            "--out".into(),
            file("genesis.json"),
        ];
        for a in approvals {
            args.extend(["--approval".to_string(), file(a)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cohort(&args)
    };
    failed(
        &submit(&["approval1.json"]),
        "not approved by its admin quorum",
    );
    failed(
        &submit(&["approval1.json", "approval-other.json"]),
        "does not sign this request",
    );
    // Nothing was submitted.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sim.join("cluster.json")).unwrap()).unwrap();
    let api = coordinator::client::ApiClient::new(info["coordinator_url"].as_str().unwrap())
        .with_key(
            coordinator::api::ApiKey::load(std::path::Path::new(info["api_key"].as_str().unwrap()))
                .unwrap(),
        );
    let status: coordinator::api::ClusterStatus = api.get("/v1/cluster").await.unwrap();
    assert_eq!(status.genesis.state, "none", "{status:?}");
    let out = submit(&["approval1.json", "approval2.json"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("pinned cluster"));
    assert!(Path::new(&file("genesis.json")).exists());

    let mut public_keys = Vec::new();
    for (id, scheme) in [("cli-sol", "eddsa-ed25519"), ("cli-btc", "ecdsa-secp256k1")] {
        let out = cohort(&[
            "key",
            "create",
            "--dir",
            d,
            "--id",
            id,
            "--scheme",
            scheme,
            "--threshold",
            "2",
            "--admin",
            admin.to_str().unwrap(),
            "--admin",
            admin2.to_str().unwrap(),
            "--approver",
            approver.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        public_keys.push(hex::decode(v["public_key"].as_str().unwrap()).unwrap());
    }

    // EdDSA: sign a message, check with ed25519-dalek.
    let message = b"cli message";
    let out = cohort(&[
        "sign",
        "--dir",
        d,
        "--key",
        "cli-sol",
        "--payload",
        &hex::encode(message),
        "--approver",
        approver.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sig = hex::decode(v["signature"].as_str().unwrap()).unwrap();
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public_keys[0].as_slice().try_into().unwrap())
        .unwrap();
    vk.verify_strict(
        message,
        &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
    )
    .unwrap();

    // ECDSA with a derivation path: the signature verifies under the printed derived key.
    let digest = [0x33u8; 32];
    let out = cohort(&[
        "sign",
        "--dir",
        d,
        "--key",
        "cli-btc",
        "--payload",
        &hex::encode(digest),
        "--path",
        "m/0/1",
        "--approver",
        approver.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pk = hex::decode(v["public_key"].as_str().unwrap()).unwrap();
    assert_ne!(pk, public_keys[1]);
    let sig = hex::decode(v["signature"].as_str().unwrap()).unwrap();
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk)
        .unwrap()
        .verify_prehash(&digest, &k256::ecdsa::Signature::from_slice(&sig).unwrap())
        .unwrap();

    // An approver the key's policy does not name is refused, with a non-zero exit.
    let out = cohort(&[
        "sign",
        "--dir",
        d,
        "--key",
        "cli-sol",
        "--payload",
        "00",
        "--approver",
        admin.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an approver"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Addresses and a transaction from the command line, broadcast to anvil.
    let out = cohort(&[
        "address",
        "--dir",
        d,
        "--key",
        "cli-btc",
        "--chain",
        "bitcoin",
        "--network",
        "regtest",
        "--path",
        "m/1/1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bcrt1q"));
    let out = cohort(&[
        "address",
        "--dir",
        d,
        "--key",
        "cli-btc",
        "--chain",
        "ethereum",
        "--network",
        "anvil",
        "--path",
        "m/0/1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hex::decode(a["public_key"].as_str().unwrap()).unwrap(), pk);
    let from = a["address"].as_str().unwrap().to_string();
    let anvil = cli::devchain::Anvil::start(31337).await.unwrap();
    anvil.set_balance(&from, 10u128.pow(18)).await.unwrap();
    let recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let before = anvil.balance(recipient).await.unwrap();
    let send = |to: &str| {
        cohort(&[
            "tx",
            "send",
            "--dir",
            d,
            "--chain",
            "ethereum",
            "--network",
            "anvil",
            "--key",
            "cli-btc",
            "--path",
            "m/0/1",
            "--to",
            to,
            "--amount",
            "1000",
            "--approver",
            approver.to_str().unwrap(),
            "--rpc",
            &anvil.url,
            "--json",
        ])
    };
    let out = send(recipient);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["broadcast"].as_str().unwrap();
    assert_eq!(hash, v["txid"].as_str().unwrap());
    assert!(anvil.succeeded(hash).await.unwrap());
    assert_eq!(anvil.balance(recipient).await.unwrap(), before + 1000);
    // A mistyped address (broken checksum) is refused before anything is signed.
    let out = send("0x70997970C51812dc3A010C7d01b50e0d17dc79c8");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad_address") && err.contains("checksum"),
        "{err}"
    );

    // The coordinator kept the keys and an intact audit log of all of it.
    let out = cohort(&["key", "list", "--dir", d]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    let out = cohort(&["audit", "verify", "--dir", d]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The admin credential's registration, three enrolments, genesis, cluster ready, two keys,
    // three signatures (the refused requests left no record).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("intact: 11 records"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The genesis was pinned by the ceremony; `cohort key show` checks every node's receipt
    // against it.
    let show = |key: &str| cohort(&["key", "show", "--dir", d, "--key", key, "--json"]);
    let out = show("cli-sol");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["public_key"].as_str().unwrap(),
        hex::encode(&public_keys[0])
    );
    assert_eq!(v["receipts"]["signatures"].as_array().unwrap().len(), 3);

    // Backups (issue 23): no node's blobs were copied off its instance yet, so the key must not
    // be funded; after the blob sync (here its stand-in) every node's are; a share replaced
    // since the sync (a refresh, or a parent's swap) is not backed up until the next one.
    let backups = |key: &str| cohort(&["key", "check-backups", "--dir", d, "--key", key, "--json"]);
    let report =
        |out: &Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let out = backups("cli-btc");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert_eq!(r["backed_up"], false);
    assert_eq!(
        r["needed"],
        serde_json::json!([
            "node-key.blob",
            "genesis.blob",
            "aux.blob",
            protocol::backups::key_blob_name("cli-btc")
        ])
    );
    for n in r["nodes"].as_array().unwrap() {
        assert_eq!(n["manifest"], "absent", "{n}");
        assert_eq!(n["missing"], r["needed"], "{n}");
    }
    ok(&cohort(&["sim", "backup", "--dir", d]));
    for key in ["cli-btc", "cli-sol"] {
        let out = backups(key);
        ok(&out);
        let r = report(&out);
        assert_eq!(r["backed_up"], true, "{r}");
        assert_eq!(r["nodes"].as_array().unwrap().len(), 3);
    }
    let share = sim
        .join("node-1/blobs")
        .join(protocol::backups::key_blob_name("cli-btc"));
    let kept = std::fs::read(&share).unwrap();
    let mut swapped = kept.clone();
    swapped[0] ^= 1;
    std::fs::write(&share, &swapped).unwrap();
    let out = backups("cli-btc");
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    assert_eq!(r["nodes"][0]["backed_up"], true);
    assert_eq!(
        r["nodes"][1]["missing"],
        serde_json::json!([protocol::backups::key_blob_name("cli-btc")])
    );
    assert_eq!(r["nodes"][2]["backed_up"], true);
    std::fs::write(&share, &kept).unwrap();
    ok(&backups("cli-btc"));
    failed(&backups("no-such-key"), "not_found");

    // The attack: whoever controls the coordinator's database substitutes a key of its own
    // (an Ed25519 public key, an ECDSA chain code) or drops the receipts. The CLI refuses each
    // key before showing it, deriving an address from it or preparing a transaction with it.
    let db = rusqlite::Connection::open(sim.join("coordinator/coordinator.db")).unwrap();
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[0xA7; 32]);
    db.execute(
        "UPDATE keys SET public_key = ?1 WHERE key_id = 'cli-sol'",
        [attacker.verifying_key().to_bytes().to_vec()],
    )
    .unwrap();
    db.execute(
        "UPDATE keys SET chain_code = ?1 WHERE key_id = 'cli-btc'",
        [vec![0xC7u8; 32]],
    )
    .unwrap();
    let refused = |out: std::process::Output, key: &str, kind: &str| {
        assert!(!out.status.success(), "{key} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("key {key} is refused")) && err.contains(kind),
            "{err}"
        );
    };
    refused(show("cli-sol"), "cli-sol", "bad_receipt");
    refused(show("cli-btc"), "cli-btc", "bad_receipt");
    refused(
        cohort(&[
            "address",
            "--dir",
            d,
            "--key",
            "cli-btc",
            "--chain",
            "bitcoin",
            "--network",
            "regtest",
            "--path",
            "m/1/1",
        ]),
        "cli-btc",
        "bad_receipt",
    );
    refused(
        cohort(&[
            "address", "--dir", d, "--key", "cli-sol", "--chain", "solana",
        ]),
        "cli-sol",
        "bad_receipt",
    );
    refused(send(recipient), "cli-btc", "bad_receipt");
    // The right public key with another approval policy (an approver of the attacker's): the
    // receipts sign the creation request, whose policy is not that one.
    db.execute(
        "UPDATE keys SET public_key = ?1, policy = ?2 WHERE key_id = 'cli-sol'",
        rusqlite::params![
            public_keys[0].clone(),
            serde_json::json!({
                "approvers": [hex::encode(attacker.verifying_key().to_bytes())],
                "approvals_needed": 1
            })
            .to_string()
        ],
    )
    .unwrap();
    refused(show("cli-sol"), "cli-sol", "approval policy");
    db.execute(
        "UPDATE keys SET receipts = NULL WHERE key_id = 'cli-sol'",
        [],
    )
    .unwrap();
    refused(show("cli-sol"), "cli-sol", "no_receipts");
    // The coordinator still serves the substituted key: only the client's check stops it.
    let out = cohort(&["key", "list", "--dir", d]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.to_string()
            .contains(&hex::encode(attacker.verifying_key().to_bytes())),
        "{list}"
    );

    // Issue 20, membership: `cohort node` proposes a roster change at every node, each node's
    // statement checked against the pinned genesis; bad input is refused before anything is
    // sent; the roster in force proposed again withdraws it.
    let admins = [
        "--admin",
        admin.to_str().unwrap(),
        "--admin",
        admin2.to_str().unwrap(),
    ];
    let node = |args: &[&str]| {
        let mut all = vec!["node"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", d]);
        cohort(&all)
    };
    let with_admins = |args: &[&'static str]| -> Vec<&str> {
        args.iter().copied().chain(admins.iter().copied()).collect()
    };
    failed(
        &node(&with_admins(&[
            "add",
            "--node-key",
            "abcd",
            "--kms-key",
            "arn:aws:kms:us-east-1:000000000000:key/new-node",
        ])),
        "--node-key: not 32 bytes",
    );
    failed(
        &node(&with_admins(&["remove", "--node", "7"])),
        "node 7 is not in the roster in force",
    );
    let out = node(&with_admins(&["remove", "--node", "2"]));
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("roster version 1 proposed") && text.contains("removed [2]"),
        "{text}"
    );
    assert_eq!(
        text.matches("holds it (statement verified against the pinned genesis)")
            .count(),
        3,
        "{text}"
    );
    let out = node(&["show", "--json"]);
    ok(&out);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["pending"].is_string(), "{status}");
    ok(&node(&with_admins(&["withdraw"])));
    let out = node(&["show"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no roster change is pending"), "{text}");
    assert_eq!(text.matches("replaced or withdrawn").count(), 2, "{text}");

    // The pin: another genesis is not pinned over it, and an edited pin is refused.
    let pinned = sim.join("trusted-genesis.json");
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&pinned).unwrap()).unwrap();
    other["request"]["name"] = "another-cluster".into();
    let other_file = dir.path().join("other-genesis.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    let out = cohort(&[
        "trust",
        "--dir",
        d,
        "--genesis",
        other_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Renamed, its admins' approvals no longer verify.
    assert!(err.contains("not approved by its admin quorum"), "{err}");
    // Properly approved by its admin, another genesis is still not pinned over the first.
    let mut approved: coordinator::api::ApprovedJson<coordinator::api::GenesisV2Json> =
        serde_json::from_value(other.clone()).unwrap();
    let admin_keys = [
        cli::ops::read_key(&admin).unwrap(),
        cli::ops::read_key(&admin2).unwrap(),
    ];
    approved.approvals =
        coordinator::api::ApprovedJson::<coordinator::api::GenesisV2Json>::from_wire(
            &cli::requests::approve(
                &coordinator::api::Wire::to_wire(&approved.request),
                &admin_keys,
            ),
        )
        .approvals;
    std::fs::write(&other_file, serde_json::to_vec(&approved).unwrap()).unwrap();
    let out = cohort(&[
        "trust",
        "--dir",
        d,
        "--genesis",
        other_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to replace it"), "{err}");
    // A pin others may write is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pinned, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = show("cli-btc");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("group or others may write it"), "{err}");
    std::fs::set_permissions(&pinned, std::fs::Permissions::from_mode(0o600)).unwrap();
    let elsewhere = dir.path().join("elsewhere.json");
    let out = cohort(&[
        "trust",
        "--dir",
        d,
        "--trust",
        elsewhere.to_str().unwrap(),
        "--genesis",
        pinned.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pinned cluster"));
    std::fs::write(&pinned, other.to_string()).unwrap();
    let out = show("cli-btc");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not approved by its admin quorum"), "{err}");

    kill(
        Pid::from_raw(up.child.id().unwrap() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), up.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[test]
fn audit_verify_reports_the_chain() {
    use coordinator::audit::AuditEntry;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("coordinator.db");
    let mut store = coordinator::store::Store::sqlite(&db).unwrap();
    for i in 0..3u16 {
        let entry = AuditEntry {
            action: "sign".into(),
            actors: vec!["aa".repeat(32)],
            key_id: Some("k".into()),
            payload_digests: vec![],
            path: vec![],
            nodes: vec![i],
            outcome: "ok".into(),
            request_id: None,
            credential: None,
            detail: None,
        };
        store.append_audit(10, &entry).unwrap();
    }
    drop(store);
    let url = format!("sqlite:{}", db.display());
    let out = cohort(&["audit", "verify", "--store", &url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 3 records"));
    let out = cohort(&["audit", "verify", "--store", "mysql://nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported store url"));
}

#[test]
fn kms_policy_is_made_from_measurement_files() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.json"), dir.path().join("new.json"));
    let pcr = |b: u8| hex::encode([b; 48]);
    // The form `nitro-cli describe-eif` prints, and a bare one.
    std::fs::write(
        &old,
        serde_json::json!({"Measurements": {"HashAlgorithm": "Sha384 { ... }",
            "PCR0": pcr(0xa0), "PCR1": pcr(0xa1), "PCR2": pcr(0xa2)}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        &new,
        serde_json::json!({"PCR0": pcr(0xb0), "PCR1": pcr(0xb1), "PCR2": pcr(0xb2), "PCR8": pcr(0xb8)})
            .to_string(),
    )
    .unwrap();
    let role = "arn:aws:iam::111122223333:role/cohort-node-2-parent";
    let admin = "arn:aws:iam::111122223333:role/kms-admin";
    let out = cohort(&[
        "kms",
        "policy",
        "--node",
        "2",
        "--measurements",
        old.to_str().unwrap(),
        "--measurements",
        new.to_str().unwrap(),
        "--parent-role",
        role,
        "--admin",
        admin,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let st = policy["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 7, "admin, two images, four denies");
    assert_eq!(st[1]["Principal"]["AWS"], role);
    let cond = |i: usize, k: &str| st[i]["Condition"]["StringEqualsIgnoreCase"][k].clone();
    assert_eq!(
        cond(1, "kms:RecipientAttestation:ImageSha384"),
        pcr(0xa0).as_str()
    );
    assert_eq!(cond(2, "kms:RecipientAttestation:PCR8"), pcr(0xb8).as_str());
    assert_eq!(st[3]["Sid"], "DenyWithoutAttestation");
    assert_eq!(
        st[3]["Condition"]["Null"]["kms:RecipientAttestation:ImageSha384"],
        "true"
    );
    // Both images' PCR0, and no other, may use the key, whatever a grant allows; no grants.
    assert_eq!(st[4]["Sid"], "DenyOtherImages");
    assert_eq!(
        st[4]["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:ImageSha384"],
        serde_json::json!([pcr(0xa0), cond(2, "kms:RecipientAttestation:ImageSha384")])
    );
    assert_eq!(st[6]["Sid"], "DenyGrants");
    // The stand-in accepts the document as a key policy (its parser refuses what it would
    // not evaluate).
    kms_local::policy::KeyPolicy::parse(&policy.to_string()).unwrap();

    // A debug image (all-zero PCRs) or a missing PCR is refused, with the reason.
    std::fs::write(
        &old,
        serde_json::json!({"PCR0": hex::encode([0; 48]), "PCR1": pcr(1), "PCR2": pcr(2)})
            .to_string(),
    )
    .unwrap();
    std::fs::write(&new, serde_json::json!({"PCR0": pcr(3)}).to_string()).unwrap();
    for (file, why) in [(&old, "release image"), (&new, "PCR1 is missing")] {
        let out = cohort(&[
            "kms",
            "policy",
            "--node",
            "1",
            "--measurements",
            file.to_str().unwrap(),
            "--parent-role",
            role,
            "--admin",
            admin,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
}

/// Runs openssl with `args`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CLI (and the coordinator's client) speak HTTPS: the AWS deployment puts the client API
/// behind a TLS load balancer. A server whose certificate chains to a root the machine trusts
/// (here named by SSL_CERT_FILE) is reached; one from an unknown issuer is refused before any
/// request is sent.
#[test]
fn https_endpoints_are_reached_and_unknown_issuers_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ][..],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=cohort test CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
        ],
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "other.key",
        ],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "other.key",
            "-subj",
            "/CN=other CA",
            "-days",
            "2",
            "-out",
            "other.pem",
        ],
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "leaf.key",
        ],
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "leaf.csr",
        ],
    ] {
        openssl(d, args);
    }
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = KillOnDrop(
        std::process::Command::new("openssl")
            .current_dir(d)
            .args([
                "s_server", "-quiet", "-www", "-cert", "leaf.pem", "-key", "leaf.key",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let url = format!("https://127.0.0.1:{port}");
    let run = |roots: &str| {
        let out = std::process::Command::new(bin("cohort"))
            .args(["key", "list", "--coordinator", &url])
            .env("SSL_CERT_FILE", d.join(roots))
            .output()
            .unwrap();
        assert!(!out.status.success(), "s_server is no coordinator");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Trusted: the TLS session is made and the request answered (by openssl's status page,
    // which is not the coordinator's JSON).
    let trusted = run("ca.pem");
    assert!(!trusted.to_lowercase().contains("certificate"), "{trusted}");
    assert!(trusted.contains("unexpected answer"), "{trusted}");
    // Another root: refused during the handshake, and the message says why.
    let untrusted = run("other.pem");
    assert!(
        untrusted.contains("UnknownIssuer") && !untrusted.contains("unexpected answer"),
        "{untrusted}"
    );
}

/// Terraform's KMS key policy (terraform/examples/cluster, checked by `terraform test` against
/// tests/cli-policy-node-0.json) and `cohort kms policy` are the same document: this side checks
/// that the committed file is what the CLI prints for the same inputs.
#[test]
fn terraform_and_the_cli_make_the_same_key_policy() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/examples/cluster");
    let out = cohort(&[
        "kms",
        "policy",
        "--node",
        "0",
        "--measurements",
        example.join("measurements.example.json").to_str().unwrap(),
        "--parent-role",
        "arn:aws:iam::111122223333:role/mock-parent",
        "--pin-pcr3",
        "--admin",
        "arn:aws:iam::111122223333:role/cohort-deployer",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(example.join("tests/cli-policy-node-0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cli, committed,
        "regenerate tests/cli-policy-node-0.json and check terraform/modules/node/kms.tf"
    );
    // The PCR3 Terraform's test gives node 0 (tests/cluster.tftest.hcl, parent_pcr3) is what
    // `cohort kms pcr3` computes for the mocked role, and what the policy above pins.
    let out = cohort(&[
        "kms",
        "pcr3",
        "--role-arn",
        "arn:aws:iam::111122223333:role/mock-parent",
    ]);
    assert!(out.status.success());
    let pcr3 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let tftest = std::fs::read_to_string(example.join("tests/cluster.tftest.hcl")).unwrap();
    assert!(
        tftest.contains(&format!("parent_pcr3 = {{ \"0\" = \"{pcr3}\" }}")),
        "{pcr3}"
    );
    assert_eq!(
        committed["Statement"][1]["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR3"],
        serde_json::Value::from(pcr3)
    );
    let out = cohort(&["kms", "pcr3", "--role-arn", "i-0123456789abcdef0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an IAM role ARN"));
}

/// Admins who do not sign the genesis are named by public key (their key files stay with them);
/// bad keys and a quorum larger than the admins signing here are refused before anything is
/// sent.
#[test]
fn genesis_takes_public_keys_of_admins_who_do_not_sign() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("admin1.key");
    let out = cohort(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success());
    let other = hex::encode([7u8; 32]);
    let measurements = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../terraform/examples/cluster/measurements.example.json");
    // Nothing listens on port 9: an attempt to reach the coordinator would fail differently.
    let genesis = |extra: &[&str]| {
        let mut args = vec![
            "genesis",
            "--coordinator",
            "http://127.0.0.1:9",
            "--admin",
            key.to_str().unwrap(),
            "--measurements",
            measurements.to_str().unwrap(),
            "--kms-key",
            "0=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-000000000000",
            "--kms-key",
            "1=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-000000000001",
        ];
        args.extend_from_slice(extra);
        let out = cohort(&args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = genesis(&["--admin-public", "zz"]);
    assert!(err.contains("not a 32-byte hex public key"), "{err}");
    let err = genesis(&["--admin-public", &other, "--quorum", "2"]);
    assert!(err.contains("at most the admins signing here (1)"), "{err}");
    // Well-formed: it gets as far as the coordinator.
    let err = genesis(&["--admin-public", &other, "--quorum", "1"]);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    // Without the image's measurements a ceremony against a coordinator cannot check anything.
    let out = cohort(&[
        "genesis",
        "--coordinator",
        "http://127.0.0.1:9",
        "--admin",
        key.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--measurements FILE is needed"), "{err}");
}

/// Issue 19: `cohort key legacy` reads tss-lib's own save files on this machine and shows the
/// legacy key, the threshold its public shares show and its addresses (the Ethereum one checked
/// here with k256 and Keccak-256); a bad set of files is a typed error and a failed exit.
#[test]
fn key_legacy_shows_a_tss_lib_key_and_its_addresses() {
    use k256::elliptic_curve::sec1::ToEncodedPoint as _;
    use sha3::Digest as _;
    let file = |scheme: &str, i: usize| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!(
                "../cli/tests/vectors/tss-lib/{scheme}/keygen_data_{i}.json"
            ))
            .display()
            .to_string()
    };
    let (f0, f2, f4) = (file("ecdsa", 0), file("ecdsa", 2), file("ecdsa", 4));
    let out = cohort(&[
        "key",
        "legacy",
        "--format",
        "tss-lib-ecdsa",
        "--share",
        &f0,
        "--share",
        &f2,
        "--share",
        &f4,
        "--chain",
        "ethereum",
        "--chain",
        "bitcoin:testnet",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["scheme"], "ecdsa-secp256k1");
    assert_eq!(
        (j["holders"].as_u64(), j["threshold"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(j["given"], serde_json::json!([0, 2, 4]));
    assert_eq!(j["enough"], true);
    let key = hex::decode(j["public_key"].as_str().unwrap()).unwrap();
    let point = k256::PublicKey::from_sec1_bytes(&key)
        .unwrap()
        .to_encoded_point(false);
    let hash = sha3::Keccak256::digest(&point.as_bytes()[1..]);
    let eth = j["addresses"][0]["address"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert_eq!(eth, format!("0x{}", hex::encode(&hash[12..])));
    assert_eq!(j["addresses"][1]["network"], "testnet");
    assert!(
        j["addresses"][1]["address"]
            .as_str()
            .unwrap()
            .starts_with("tb1q")
    );

    // Two of five EdDSA holders: the key and its Solana address, not enough to deal.
    let out = cohort(&[
        "key",
        "legacy",
        "--format",
        "tss-lib-eddsa",
        "--share",
        &file("eddsa", 1),
        "--share",
        &file("eddsa", 3),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (j["enough"].as_bool(), j["threshold"].as_u64()),
        (Some(false), Some(3))
    );
    assert_eq!(j["addresses"][0]["chain"], "solana");

    // The same holder twice; an ECDSA file read as EdDSA; a chain of the other scheme.
    for (args, why) in [
        (
            vec!["--format", "tss-lib-ecdsa", "--share", &f0, "--share", &f0],
            "same holder",
        ),
        (
            vec!["--format", "tss-lib-eddsa", "--share", &f0],
            "wrong format",
        ),
        (
            vec![
                "--format",
                "tss-lib-ecdsa",
                "--share",
                &f0,
                "--chain",
                "solana",
            ],
            "signs with",
        ),
    ] {
        let mut all = vec!["key", "legacy"];
        all.extend(args);
        let out = cohort(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{all:?}: {stderr}"
        );
    }
}
