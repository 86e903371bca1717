//! The trust boundary in the dependency graph (DESIGN §3): untrusted crates never depend on the
//! enclave; the enclave links no HTTP server, AWS SDK, async runtime or chain code, and exactly
//! the crates listed in `tests/enclave-links.txt` — among them one TLS client (rustls with ring,
//! for KMS, ADR 0014).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

fn metadata() -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package name -> names of its normal (non-dev, non-build) dependencies, per the resolve graph.
fn graph(meta: &serde_json::Value) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut deps = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let normal: Vec<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        deps.insert(node["id"].as_str().unwrap().to_string(), normal);
    }
    (names, deps)
}

fn closure(
    root: &str,
    names: &BTreeMap<String, String>,
    deps: &BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let start = names
        .iter()
        .find(|(_, n)| *n == root)
        .map(|(id, _)| id.clone())
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for d in deps.get(&id).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen.into_iter().map(|id| names[&id].clone()).collect()
}

#[test]
fn untrusted_crates_never_depend_on_the_enclave() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let workspace: BTreeSet<&String> = names.values().collect();
    let mut checked = 0;
    for untrusted in [
        "parent-proxy",
        "coordinator",
        "adapters",
        "chain-check",
        "cli",
        "kms-local",
        "host",
    ] {
        if !workspace.contains(&untrusted.to_string()) {
            continue; // not a crate yet
        }
        checked += 1;
        let closure = closure(untrusted, &names, &deps);
        assert!(
            !closure.contains("enclave"),
            "{untrusted} depends on enclave"
        );
    }
    assert_eq!(
        checked, 7,
        "an untrusted crate went missing from the workspace"
    );
}

#[test]
fn the_enclave_links_no_http_server_aws_sdk_runtime_or_chain_code() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let closure = closure("enclave", &names, &deps);
    for forbidden in [
        "hyper",
        "reqwest",
        "openssl",
        "aws-lc-rs",
        "aws-sigv4",
        "aws-config",
        "aws-sdk-kms",
        "aws-smithy-runtime",
        "aws-smithy-http-client",
        "h2",
        "parent-proxy",
        "kms-local",
        "cli",
        // The host side's I/O layer (tokio, hyper): the enclave has its own blocking transport.
        "host",
        "tokio",
        // No chain code inside the trust boundary: the enclave signs digests and messages.
        "adapters",
        "chain-check",
        "bitcoin",
        "alloy-consensus",
        "litesvm",
    ] {
        assert!(
            !closure.contains(forbidden),
            "the enclave depends on {forbidden}"
        );
    }
    assert!(closure.contains("protocol") && closure.contains("attestation"));
    // The one TLS client, for KMS (ADR 0014).
    assert!(closure.contains("rustls") && closure.contains("ring"));
}

/// Exactly the listed crates: a new dependency of the enclave (direct or not) fails here until
/// it is added to `tests/enclave-links.txt`, in the same change, for review.
#[test]
fn the_enclave_links_exactly_the_listed_crates() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let closure = closure("enclave", &names, &deps);
    let listed: BTreeSet<String> = include_str!("../enclave-links.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let added: Vec<&String> = closure.difference(&listed).collect();
    let gone: Vec<&String> = listed.difference(&closure).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "the enclave's dependencies changed: new {added:?}, no longer linked {gone:?}; \
         review the change and update tests/enclave-links.txt"
    );
}
