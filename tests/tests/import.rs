//! Issue 19: legacy keys imported into a simulated cluster without ever being whole, from the
//! command line as a holder runs it. tss-lib's own save files (any 3 of 5 holders) become
//! 2-of-3 cluster keys whose public keys are the files' `ECDSAPub`/`EDDSAPub` (compared here
//! with the files' decimal coordinates), and whose signatures verify under them with k256 and
//! ed25519-dalek. Bad dealings are refused by the enclaves, naming the dealer, and nothing is
//! kept.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use cohort_tests::{Proc, bin};

fn cohort(args: &[&str]) -> Output {
    std::process::Command::new(bin("cohort"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn vector(scheme: &str, i: usize) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../cli/tests/vectors/tss-lib/{scheme}/keygen_data_{i}.json"
    ))
}

/// `bytes` (big-endian) as a decimal number.
fn decimal(bytes: &[u8]) -> String {
    let mut n: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

/// The decimal coordinates of the point the save file names `field` (`ECDSAPub`, `EDDSAPub`),
/// read from the file's text as written (JSON numbers wider than any float).
fn coords(file: &Path, field: &str) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text.find(&format!("\"{field}\"")).unwrap();
    let rest = &text[at..];
    let coords = rest.find("\"Coords\"").unwrap();
    let open = coords + rest[coords..].find('[').unwrap() + 1;
    let close = open + rest[open..].find(']').unwrap();
    let (x, y) = rest[open..close].split_once(',').unwrap();
    (x.trim().to_string(), y.trim().to_string())
}

async fn wait_for_file(path: &Path, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("cohort sim up exited ({status}): {}", proc.output());
        }
        assert!(Instant::now() < deadline, "no {}", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tss_lib_keys_import_into_the_cluster_and_sign_under_their_legacy_keys() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("cluster");
    let d = sim.to_str().unwrap().to_string();
    let args: Vec<String> = ["sim", "up", "--nodes", "3", "--fixture-primes", "--dir", &d]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut up = Proc::spawn(&bin("cohort"), &args, &dir.path().join("up.log")).unwrap();
    wait_for_file(&sim.join("cluster.json"), &mut up).await;
    let admin = dir.path().join("admin.key");
    let approver = dir.path().join("approver.key");
    for k in [&admin, &approver] {
        ok(&cohort(&["keygen", "--out", k.to_str().unwrap()]));
    }
    let (admin, approver) = (
        admin.to_str().unwrap().to_string(),
        approver.to_str().unwrap().to_string(),
    );
    ok(&cohort(&["genesis", "--dir", &d, "--admin", &admin]));

    let import = |id: &str, format: &str, files: &[PathBuf]| {
        let mut args: Vec<String> = [
            "key",
            "import",
            "--dir",
            &d,
            "--id",
            id,
            "--format",
            format,
            "--threshold",
            "2",
            "--admin",
            &admin,
            "--approver",
            &approver,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for f in files {
            args.extend(["--share".to_string(), f.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cohort(&args)
    };
    let sign = |id: &str, payload: &[u8]| {
        let v = ok(&cohort(&[
            "sign",
            "--dir",
            &d,
            "--key",
            id,
            "--payload",
            &hex::encode(payload),
            "--approver",
            &approver,
            "--json",
        ]));
        hex::decode(v["signature"].as_str().unwrap()).unwrap()
    };

    // ECDSA: holders 0, 2 and 4 of tss-lib's five deal to the three nodes, 2 of 3 sign.
    let ecdsa = [vector("ecdsa", 0), vector("ecdsa", 2), vector("ecdsa", 4)];
    let key = ok(&import("legacy-ecdsa", "tss-lib-ecdsa", &ecdsa));
    assert_eq!(key["threshold"], 2);
    let public = hex::decode(key["public_key"].as_str().unwrap()).unwrap();
    {
        use k256::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = k256::PublicKey::from_sec1_bytes(&public)
            .unwrap()
            .to_encoded_point(false);
        let (x, y) = coords(&ecdsa[0], "ECDSAPub");
        assert_eq!(
            decimal(point.x().unwrap()),
            x,
            "the key is the file's ECDSAPub"
        );
        assert_eq!(decimal(point.y().unwrap()), y);
    }
    // The audit record names what the admins approved: the request's hash and the legacy key.
    let api = cli::ops::api(None, &sim, None).unwrap();
    let records = cohort_tests::audit_log(&api).await;
    let record = records
        .iter()
        .find(|r| {
            r.entry.action == "import_key" && r.entry.key_id.as_deref() == Some("legacy-ecdsa")
        })
        .expect("an audit record of the import");
    assert_eq!(record.entry.outcome, "ok");
    let detail = record.entry.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&hex::encode(&public)) && detail.contains("import request sha256 "),
        "{detail}"
    );
    let digest = [0x5au8; 32];
    let signature = sign("legacy-ecdsa", &digest);
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    k256::ecdsa::VerifyingKey::from_sec1_bytes(&public)
        .unwrap()
        .verify_prehash(
            &digest,
            &k256::ecdsa::Signature::from_slice(&signature).unwrap(),
        )
        .unwrap();

    // EdDSA: holders 1, 3 and 4, each on its own machine, in the four steps: `begin` writes
    // the request from one holder's file, each admin approves it on the admin's machine, each
    // holder deals its own share after checking the request against its own file, `finish`
    // submits. Nothing here holds more than one share, and no admin key meets a share.
    let eddsa = [vector("eddsa", 1), vector("eddsa", 3), vector("eddsa", 4)];
    let share_args = |files: &[PathBuf]| {
        let mut args = vec!["key", "legacy", "--format", "tss-lib-eddsa", "--json"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for f in files {
            args.extend(["--share".to_string(), f.display().to_string()]);
        }
        args
    };
    let args = share_args(&eddsa);
    let legacy = ok(&cohort(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let holders: Vec<String> = legacy["given"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let mut begin: Vec<String> = [
        "key",
        "import",
        "begin",
        "--dir",
        &d,
        "--format",
        "tss-lib-eddsa",
        "--id",
        "legacy-eddsa",
        "--threshold",
        "2",
        "--approver",
        &approver,
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    begin.extend([
        file("request.json"),
        "--share".into(),
        eddsa[0].display().to_string(),
    ]);
    for h in &holders {
        begin.extend(["--holder".to_string(), h.clone()]);
    }
    let begun = cohort(&begin.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&begun);
    // The hash the parties compare over a channel of their own.
    let sha = String::from_utf8_lossy(&begun.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("import request sha256 ").map(str::to_string))
        .expect("begin prints the request's sha256");
    let request = file("request.json");
    let approve = |request: &str, key: &str, sha: &str, out: &str| {
        cohort(&[
            "key",
            "import",
            "approve",
            "--dir",
            &d,
            "--request",
            request,
            "--admin",
            key,
            "--expect-sha256",
            sha,
            "--out",
            out,
        ])
    };
    ok(&approve(&request, &admin, &sha, &file("approval.json")));
    // Someone who is not an admin of the pinned genesis: refused on that machine.
    let out = approve(&request, &approver, &sha, &file("not-an-approval.json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not one of the pinned genesis's admins"),
        "{err}"
    );
    // A relay that swaps the approvers (keeping every count and everything a holder's file
    // can check) to give itself the key: the admin's machine refuses, the hash differs.
    let mut swapped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    swapped["key"]["policy"]["approvers"][0] = serde_json::json!(hex::encode([7u8; 32]));
    let swapped_path = file("swapped.json");
    std::fs::write(&swapped_path, swapped.to_string()).unwrap();
    let out = approve(&swapped_path, &admin, &sha, &file("swapped-approval.json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it was altered on its way"), "{err}");
    assert!(!Path::new(&file("swapped-approval.json")).exists());
    let contribute = |request: &str, sha: &str, share: &Path, out: &str| {
        cohort(&[
            "key",
            "import",
            "contribute",
            "--dir",
            &d,
            "--request",
            request,
            "--expect-sha256",
            sha,
            "--format",
            "tss-lib-eddsa",
            "--share",
            share.to_str().unwrap(),
            "--out",
            out,
        ])
    };
    let out = contribute(
        &swapped_path,
        &sha,
        &eddsa[0],
        &file("swapped-dealing.json"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it was altered on its way"), "{err}");
    let dealings: Vec<String> = eddsa
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let out = file(&format!("dealing-{i}.json"));
            ok(&contribute(&request, &sha, share, &out));
            out
        })
        .collect();
    // A holder not named as a dealer, and a request whose dealer's public share was altered
    // (even one whose altered hash the holder was given): each refused on the holder's
    // machine, before anything is dealt.
    let out = contribute(&request, &sha, &vector("eddsa", 0), &file("stranger.json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this holder is not among the request's dealers"),
        "{err}"
    );
    let mut altered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let other = altered["dealers"][0]["public_share"].clone();
    altered["dealers"][1]["public_share"] = other;
    let altered_path = file("altered.json");
    std::fs::write(&altered_path, altered.to_string()).unwrap();
    let out = contribute(&altered_path, &sha, &eddsa[0], &file("refused.json"));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let altered_sha = err
        .split("SHA-256 is ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("the refusal names the request's hash")
        .to_string();
    let out = contribute(
        &altered_path,
        &altered_sha,
        &eddsa[0],
        &file("refused.json"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not state this key as this holder's file does"),
        "{err}"
    );
    let finish = |dealings: &[String]| {
        let mut args: Vec<&str> = vec![
            "key",
            "import",
            "finish",
            "--dir",
            &d,
            "--request",
            &request,
            "--approval",
        ];
        let approval = file("approval.json");
        args.push(&approval);
        for f in dealings {
            args.extend(["--dealing", f.as_str()]);
        }
        args.push("--json");
        cohort(&args)
    };
    // A dealing missing: refused before anything is sent.
    let out = finish(&dealings[..2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dealer 2's dealing is missing"), "{err}");
    // A dealing cut short on its way (its ephemeral key): the coordinator refuses its shape,
    // naming the dealer, before any node sees it; the request is not used up.
    let mut cut: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dealings[1]).unwrap()).unwrap();
    cut["dealing"]["ephemeral"] = serde_json::json!("00ff");
    let cut_path = file("cut.json");
    std::fs::write(&cut_path, cut.to_string()).unwrap();
    let out = finish(&[dealings[0].clone(), cut_path, dealings[2].clone()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dealer 1's dealing is malformed"), "{err}");
    let key = ok(&finish(&[
        dealings[2].clone(),
        dealings[0].clone(),
        dealings[1].clone(),
    ]));
    let public: [u8; 32] = hex::decode(key["public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let (_, y) = coords(&eddsa[0], "EDDSAPub");
    let mut y_be = public;
    y_be[31] &= 0x7f;
    y_be.reverse();
    assert_eq!(decimal(&y_be), y, "the key is the file's EDDSAPub");
    let message = b"an imported key signs";
    let signature = sign("legacy-eddsa", message);
    ed25519_dalek::VerifyingKey::from_bytes(&public)
        .unwrap()
        .verify_strict(
            message,
            &ed25519_dalek::Signature::from_slice(&signature).unwrap(),
        )
        .unwrap();

    // The same id again: refused, the key unchanged.
    let out = import("legacy-ecdsa", "tss-lib-ecdsa", &ecdsa);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key_exists"), "{err}");
    // Too few holders, or one twice: refused on the holder's machine, nothing sent.
    let out = import("short", "tss-lib-ecdsa", &ecdsa[..2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the legacy key needs 3 to deal"), "{err}");
    let out = import(
        "twice",
        "tss-lib-ecdsa",
        &[ecdsa[0].clone(), ecdsa[1].clone(), ecdsa[0].clone()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("are the same holder"), "{err}");
    // cggmp21 shares from another deployment (its trusted dealer, random points, an HD chain
    // code): the key keeps its chain code, so derived keys and addresses stay the same.
    use rand::SeedableRng as _;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([19; 32]);
    let shares = key_share::trusted_dealer::builder::<reshare::generic_ec::curves::Secp256k1>(5)
        .set_threshold(Some(3))
        .hd_wallet(true)
        .generate_shares_at_random(&mut rng)
        .unwrap();
    let files: Vec<PathBuf> = [4, 1, 2]
        .iter()
        .map(|i| {
            let f = dir.path().join(format!("cggmp21-{i}.json"));
            std::fs::write(&f, serde_json::to_string(&shares[*i]).unwrap()).unwrap();
            f
        })
        .collect();
    let key = ok(&import("other-cggmp21", "cggmp21", &files));
    let legacy_key = shares[0].shared_public_key.to_bytes(true).to_vec();
    let chain_code = shares[0].chain_code.unwrap();
    assert_eq!(
        key["public_key"].as_str().unwrap(),
        hex::encode(&legacy_key)
    );
    assert_eq!(key["chain_code"].as_str().unwrap(), hex::encode(chain_code));
    let v = ok(&cohort(&[
        "sign",
        "--dir",
        &d,
        "--key",
        "other-cggmp21",
        "--payload",
        &hex::encode(digest),
        "--path",
        "m/0/1",
        "--approver",
        &approver,
        "--json",
    ]));
    let derived = hex::decode(v["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        derived,
        cohort_tests::bip32_child(&legacy_key, &chain_code, &[0, 1])
    );
    k256::ecdsa::VerifyingKey::from_sec1_bytes(&derived)
        .unwrap()
        .verify_prehash(
            &digest,
            &k256::ecdsa::Signature::from_slice(
                &hex::decode(v["signature"].as_str().unwrap()).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();

    // frost-ed25519 key packages with identifiers derived from names; frost itself verifies
    // the cluster's signature under the group's verifying key.
    use frost_ed25519::keys::{IdentifierList, KeyPackage, generate_with_dealer};
    let ids: Vec<frost_ed25519::Identifier> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|n| frost_ed25519::Identifier::derive(n.as_bytes()).unwrap())
        .collect();
    let (secret_shares, group) =
        generate_with_dealer(5, 3, IdentifierList::Custom(&ids), &mut rng).unwrap();
    let public_file = dir.path().join("frost-public.bin");
    std::fs::write(&public_file, group.serialize().unwrap()).unwrap();
    let files: Vec<PathBuf> = [0, 2, 4]
        .iter()
        .map(|i| {
            let f = dir.path().join(format!("frost-{i}.bin"));
            let package = KeyPackage::try_from(secret_shares[&ids[*i]].clone()).unwrap();
            std::fs::write(&f, package.serialize().unwrap()).unwrap();
            f
        })
        .collect();
    let mut args: Vec<String> = [
        "key",
        "import",
        "--dir",
        &d,
        "--id",
        "other-frost",
        "--format",
        "frost-ed25519",
        "--public",
        public_file.to_str().unwrap(),
        "--threshold",
        "2",
        "--admin",
        &admin,
        "--approver",
        &approver,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in &files {
        args.extend(["--share".to_string(), f.display().to_string()]);
    }
    let key = ok(&cohort(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(
        key["public_key"].as_str().unwrap(),
        hex::encode(group.verifying_key().serialize().unwrap())
    );
    let message = b"frost verifies the cluster";
    let signature = sign("other-frost", message);
    group
        .verifying_key()
        .verify(
            message,
            &frost_ed25519::Signature::deserialize(&signature).unwrap(),
        )
        .unwrap();

    let listed: serde_json::Value = ok(&cohort(&["key", "list", "--dir", &d]));
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "legacy-ecdsa",
            "legacy-eddsa",
            "other-cggmp21",
            "other-frost"
        ]
    );
}
