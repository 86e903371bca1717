//! The image build end to end with a real kernel from Debian's packages (scripts/setup.sh
//! fetches it; `COHORT_EIF_KERNEL` points elsewhere) and a real statically linked executable
//! (compiled here with rustc; `COHORT_EIF_ENCLAVE` substitutes the real cohort-enclave).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aws_nitro_enclaves_image_format::defs::EifHeader;
use cohort_eif::{EifError, ImageSpec, Measurements, Report, build, describe};
use tempfile::TempDir;

fn cache() -> PathBuf {
    std::env::var_os("COHORT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/cohort")
        })
}

/// The Debian kernel; its absence fails the test (scripts/setup.sh installs it).
fn kernel() -> PathBuf {
    let path = std::env::var_os("COHORT_EIF_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("kernel/vmlinuz"));
    assert!(
        path.is_file(),
        "no kernel at {}: run scripts/setup.sh (it fetches Debian's cloud kernel) or set COHORT_EIF_KERNEL",
        path.display()
    );
    path
}

/// A static x86-64 executable built once for the whole test binary.
fn static_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("COHORT_EIF_ENCLAVE") {
            return PathBuf::from(p);
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("static-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("main.rs");
        std::fs::write(&src, "fn main() { println!(\"cohort test enclave\"); }\n").unwrap();
        let out = dir.join("enclave");
        let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args([
                "--edition",
                "2024",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-o",
            ])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("rustc runs");
        assert!(
            status.success(),
            "rustc could not build a static test binary"
        );
        out
    })
    .clone()
}

fn spec(dir: &Path, enclave: PathBuf) -> ImageSpec {
    let init = dir.join("init");
    if !init.exists() {
        std::fs::copy(static_binary(), &init).unwrap();
    }
    ImageSpec {
        name: "cohort-enclave".into(),
        version: "test".into(),
        kernel: kernel(),
        cmdline: "reboot=k panic=30 pci=off nomodules console=ttyS0".into(),
        init,
        nsm_module: None,
        enclave,
        args: vec![
            "--listen".into(),
            "vsock:any:5005".into(),
            "--parent".into(),
            "vsock:3:8001".into(),
            "--log-to".into(),
            "vsock:3:8002".into(),
        ],
        env: vec!["RUST_LOG=info".into()],
        source_date_epoch: 1_700_000_000,
        signing: None,
    }
}

fn is_pcr(s: &str) -> bool {
    s.len() == 96 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn two_builds_of_the_same_inputs_are_identical_and_describe_recomputes_the_pcrs() {
    let tmp = TempDir::new().unwrap();
    let spec = spec(tmp.path(), static_binary());
    let (a, b) = (tmp.path().join("a.eif"), tmp.path().join("b.eif"));
    let ra = build(&spec, &a).unwrap();
    let rb = build(&spec, &b).unwrap();

    for pcr in [
        &ra.measurements.pcr0,
        &ra.measurements.pcr1,
        &ra.measurements.pcr2,
    ] {
        assert!(is_pcr(pcr), "{pcr}");
    }
    assert_eq!(ra.measurements.pcr8, None, "unsigned image has no PCR8");
    assert_eq!(ra, rb, "same inputs, same report");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "byte-identical images"
    );

    // Recomputed from the file by AWS's reader: the PCRs printed at build time.
    let described = describe(&a).unwrap();
    assert_eq!(described.measurements, ra.measurements);
    assert_eq!(described.image, ra.image);
    assert_eq!(
        described.inputs, ra.inputs,
        "inputs travel in the image's metadata"
    );

    // Nothing but the image is left in the output directory.
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.eif", "b.eif", "init"]);
}

#[test]
fn one_byte_of_the_enclave_binary_changes_pcr0_and_pcr2_only() {
    let tmp = TempDir::new().unwrap();
    let original = static_binary();
    let mut bytes = std::fs::read(&original).unwrap();
    // A byte well inside the file (past the ELF and program headers).
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let patched = tmp.path().join("enclave-patched");
    std::fs::write(&patched, &bytes).unwrap();

    let a = build(&spec(tmp.path(), original), &tmp.path().join("a.eif")).unwrap();
    let b = build(&spec(tmp.path(), patched), &tmp.path().join("b.eif")).unwrap();
    assert_eq!(
        a.measurements.differences(&b.measurements),
        vec!["PCR0", "PCR2"]
    );
}

#[test]
fn boot_inputs_change_pcr0_and_pcr1_and_not_pcr2() {
    let tmp = TempDir::new().unwrap();
    let base = spec(tmp.path(), static_binary());
    let a = build(&base, &tmp.path().join("a.eif")).unwrap();

    let mut cmdline = base.clone();
    cmdline.cmdline.push_str(" quiet");
    let b = build(&cmdline, &tmp.path().join("b.eif")).unwrap();
    assert_eq!(
        a.measurements.differences(&b.measurements),
        vec!["PCR0", "PCR1"]
    );

    let mut args = base.clone();
    args.args.push("--log-json".into());
    let c = build(&args, &tmp.path().join("c.eif")).unwrap();
    assert_eq!(
        a.measurements.differences(&c.measurements),
        vec!["PCR0", "PCR2"]
    );

    let mut epoch = base;
    epoch.source_date_epoch += 1;
    let d = build(&epoch, &tmp.path().join("d.eif")).unwrap();
    assert_eq!(
        a.measurements.differences(&d.measurements),
        vec!["PCR0", "PCR1", "PCR2"],
        "archive times are measured: builds must fix them"
    );
}

#[test]
fn a_signed_image_has_pcr8_and_it_is_recomputed_from_the_file() {
    let tmp = TempDir::new().unwrap();
    let key = tmp.path().join("key.pem");
    let cert = tmp.path().join("cert.pem");
    let ok = Command::new("openssl")
        .args(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out"])
        .arg(&key)
        .status()
        .expect("openssl runs")
        .success()
        && Command::new("openssl")
            .args([
                "req",
                "-new",
                "-x509",
                "-sha384",
                "-days",
                "30",
                "-subj",
                "/CN=cohort-test",
            ])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .status()
            .expect("openssl runs")
            .success();
    assert!(ok, "openssl could not make a signing key");

    let mut signed = spec(tmp.path(), static_binary());
    let unsigned = build(&signed, &tmp.path().join("u.eif")).unwrap();
    signed.signing = Some((key, cert));
    let out = tmp.path().join("s.eif");
    let report = build(&signed, &out).unwrap();
    let pcr8 = report
        .measurements
        .pcr8
        .clone()
        .expect("signed image has PCR8");
    assert!(is_pcr(&pcr8));
    assert_eq!(
        unsigned.measurements.differences(&report.measurements),
        vec!["PCR8"],
        "signing adds PCR8 and leaves the image's own measurements alone"
    );
    // A security team's unsigned rebuild is the same image as the signed one it deployed.
    assert!(unsigned.measurements.same_image(&report.measurements));
    assert!(report.measurements.same_image(&unsigned.measurements));
    let mut other = report.measurements.clone();
    other.pcr1 = other.pcr0.clone();
    assert!(!unsigned.measurements.same_image(&other));
    assert_eq!(describe(&out).unwrap().measurements, report.measurements);
}

#[test]
fn measurements_files_round_trip_and_nitro_cli_output_reads_too() {
    let tmp = TempDir::new().unwrap();
    let spec = spec(tmp.path(), static_binary());
    let report = build(&spec, &tmp.path().join("a.eif")).unwrap();
    let ours = tmp.path().join("ours.json");
    std::fs::write(&ours, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    assert_eq!(Report::read(&ours).unwrap(), report.measurements);

    let nitro = tmp.path().join("nitro.json");
    let m = &report.measurements;
    std::fs::write(
        &nitro,
        format!(
            r#"{{"EifVersion": 4, "Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{}", "PCR1": "{}", "PCR2": "{}"}}}}"#,
            m.pcr0.to_uppercase(),
            m.pcr1,
            m.pcr2
        ),
    )
    .unwrap();
    let read: Measurements = Report::read(&nitro).unwrap();
    assert!(read.differences(m).is_empty());

    std::fs::write(&nitro, r#"{"Measurements": {"PCR0": 7}}"#).unwrap();
    assert!(matches!(
        Report::read(&nitro),
        Err(EifError::BadMeasurements { .. })
    ));
}

#[test]
fn bad_inputs_are_refused_with_a_reason_and_leave_nothing_behind() {
    let tmp = TempDir::new().unwrap();
    let good = spec(tmp.path(), static_binary());
    let out = tmp.path().join("x.eif");

    let mut dynamic = good.clone();
    dynamic.enclave = PathBuf::from("/bin/sh");
    assert!(matches!(
        build(&dynamic, &out),
        Err(EifError::NotStatic { .. })
    ));

    let mut not_kernel = good.clone();
    not_kernel.kernel = static_binary();
    assert!(matches!(
        build(&not_kernel, &out),
        Err(EifError::NotAKernel { .. })
    ));

    let mut missing = good.clone();
    missing.init = tmp.path().join("absent");
    assert!(matches!(
        build(&missing, &out),
        Err(EifError::Read { what: "init", .. })
    ));

    let mut arg = good.clone();
    arg.args.push("two\nlines".into());
    assert!(matches!(build(&arg, &out), Err(EifError::BadText(_))));

    let mut env = good.clone();
    env.env.push("=x".into());
    assert!(matches!(build(&env, &out), Err(EifError::BadText(_))));

    let mut key = good;
    key.signing = Some((tmp.path().join("init"), tmp.path().join("init")));
    assert!(build(&key, &out).is_err(), "a key that is not a PEM key");

    assert!(!out.exists(), "no image from refused inputs");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "scratch left behind: {leftovers:?}");
}

#[test]
fn damaged_images_are_refused_not_misread() {
    let tmp = TempDir::new().unwrap();
    let image = tmp.path().join("a.eif");
    build(&spec(tmp.path(), static_binary()), &image).unwrap();
    let bytes = std::fs::read(&image).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };

    // One flipped byte in the application ramdisk's data: the CRC catches it.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 1000;
    flipped[at] ^= 0xff;
    let e = describe(&write("flipped.eif", &flipped)).unwrap_err();
    assert!(e.to_string().contains("CRC"), "{e}");

    // Truncated: a section claims more bytes than remain.
    let e = describe(&write("short.eif", &bytes[..bytes.len() / 2])).unwrap_err();
    assert!(matches!(e, EifError::BadImage { .. }), "{e}");

    // A section size of 2^64-1 must not make anyone allocate it.
    let mut huge = bytes.clone();
    let first_section = EifHeader::size();
    huge[first_section + 4..first_section + 12].copy_from_slice(&u64::MAX.to_be_bytes());
    let e = describe(&write("huge.eif", &huge)).unwrap_err();
    assert!(matches!(e, EifError::BadImage { .. }), "{e}");

    for junk in [&b""[..], b".eif", b"not an image at all"] {
        assert!(describe(&write("junk.eif", junk)).is_err());
    }
}
