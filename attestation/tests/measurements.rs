//! Measurements files (eif-build's `measurements.json`, `nitro-cli describe-eif` output) as the
//! proxies, the coordinator and `cohort attest verify` read them.

use attestation::{Policy, read_measurements};

fn pcr(b: u8) -> String {
    hex::encode([b; 48])
}

#[test]
fn eif_build_and_nitro_cli_forms_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("measurements.json");
    std::fs::write(
        &ours,
        serde_json::json!({
            "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr(0xa0),
                             "PCR1": pcr(0xa1), "PCR2": pcr(0xa2)},
            "Image": {"Sha384": pcr(1), "Size": 10},
        })
        .to_string(),
    )
    .unwrap();
    let bare = dir.path().join("bare.json");
    std::fs::write(
        &bare,
        serde_json::json!({"PCR0": pcr(0xa0).to_uppercase(), "PCR1": pcr(0xa1),
                           "PCR2": pcr(0xa2), "PCR8": pcr(0xa8)})
        .to_string(),
    )
    .unwrap();
    let a = read_measurements(&ours).unwrap();
    let b = read_measurements(&bare).unwrap();
    assert_eq!(a.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(b.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 8]);
    assert_eq!(a[&0], b[&0]);
    assert_eq!(a[&2], vec![0xa2; 48]);

    // Two files (an image rotation): both images' values are allowed.
    let policy = Policy::default()
        .allow_measurements(&ours)
        .unwrap()
        .allow_measurements(&bare)
        .unwrap();
    assert_eq!(policy.pcrs[&0].len(), 2);
    assert_eq!(policy.pcrs[&8], vec![vec![0xa8; 48]]);
}

#[test]
fn files_that_pin_nothing_or_are_malformed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.json");
    let only_pcr1 = serde_json::json!({"PCR1": pcr(1)}).to_string();
    let nested_pcr2 = serde_json::json!({"Measurements": {"PCR2": pcr(2)}}).to_string();
    for (body, why) in [
        ("not json", "not JSON"),
        (only_pcr1.as_str(), "no PCR0"),
        (nested_pcr2.as_str(), "no PCR0"),
        (r#"{"PCR0": "aa"}"#, "not 1"),
        (r#"{"PCR0": 7}"#, "not a string"),
        (r#"{"PCR0": "zz"}"#, "not hex"),
        (r#"{"PCR0": "abcd"}"#, "48"),
    ] {
        std::fs::write(&f, body).unwrap();
        let e = read_measurements(&f).unwrap_err();
        assert!(e.contains(why), "{body}: {e}");
    }
    let e = read_measurements(&dir.path().join("absent.json")).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}
