//! Replays every seed (`fuzz/seeds/<target>/`) and every saved crash (`fuzz/regressions/<target>/`)
//! through the target bodies, without fuzzing instrumentation: `cargo test --manifest-path
//! fuzz/Cargo.toml`. A target must return for each file; a seeds directory must not be empty.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (none when it does not exist), hidden files (`.gitkeep`) and READMEs
/// excepted, sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.eq_ignore_ascii_case("README.md")
        })
        .collect();
    files.sort();
    files
}

fn replay(name: &str) {
    let run = cohort_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name} in cohort_fuzz::TARGETS"));
    let seeds = inputs(&fuzz_dir().join("seeds").join(name));
    assert!(
        !seeds.is_empty(),
        "fuzz/seeds/{name}/ is empty: the test would pass vacuously"
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(name));
    let mut failed = Vec::new();
    for file in seeds.iter().chain(&regressions) {
        let bytes = fs::read(file).unwrap();
        if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "target {name} panicked on {} of {} input(s):\n  {}",
        failed.len(),
        seeds.len() + regressions.len(),
        failed.join("\n  ")
    );
}

#[test]
fn frame() {
    replay("frame");
}

#[test]
fn attestation_doc() {
    replay("attestation_doc");
}

#[test]
fn kms_envelope() {
    replay("kms_envelope");
}

#[test]
fn kms_response() {
    replay("kms_response");
}

#[test]
fn peer_envelope() {
    replay("peer_envelope");
}

#[test]
fn api_request() {
    replay("api_request");
}

#[test]
fn adapter_decode() {
    replay("adapter_decode");
}

/// Every bin in `fuzz_targets/` is a target listed in `TARGETS` and replayed above (this file
/// names each), and every seeds or regressions directory belongs to a target.
#[test]
fn every_target_is_replayed() {
    let bins: BTreeSet<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    let listed: BTreeSet<String> = cohort_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        bins, listed,
        "fuzz_targets/ and cohort_fuzz::TARGETS differ"
    );
    let this = fs::read_to_string(fuzz_dir().join("tests/regressions.rs")).unwrap();
    for name in &listed {
        assert!(
            this.contains(&format!("replay(\"{name}\")")),
            "tests/regressions.rs does not replay {name}"
        );
    }
    for kind in ["seeds", "regressions"] {
        for e in fs::read_dir(fuzz_dir().join(kind)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                assert!(listed.contains(&name), "fuzz/{kind}/{name}/ has no target");
            }
        }
    }
}
