//! Builds Cohort's enclave image file (EIF) reproducibly and measures it.
//!
//! An EIF holds a kernel, its command line and ramdisks. Like `nitro-cli build-enclave`, the
//! image has two ramdisks:
//!
//! 1. the bootstrap ramdisk: `init` (and `nsm.ko` for kernels without the NSM driver built in),
//!    from AWS's `aws-nitro-enclaves-cli` blobs on AWS;
//! 2. the application ramdisk: `rootfs/usr/bin/cohort-enclave` (statically linked), the
//!    command line `init` runs in `cmd` (one argument per line) and its environment in `env`.
//!
//! Both are written as [`cpio`] archives with fixed owners, inode numbers and times, so the same
//! inputs give the same bytes, and the image is assembled and measured by AWS's own
//! `aws-nitro-enclaves-image-format`: PCR0 hashes the whole image, PCR1 the kernel, command
//! line and bootstrap ramdisk, PCR2 the application ramdisk, PCR8 the signing certificate
//! when the image is signed. [`describe`] recomputes them from an EIF file.

pub mod cpio;
pub mod inputs;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use aws_nitro_enclaves_image_format::defs::{
    EIF_HDR_ARCH_ARM64, EIF_MAGIC, EifBuildInfo, EifHeader, EifIdentityInfo, EifSectionHeader,
    EifSectionType,
};
use aws_nitro_enclaves_image_format::utils::EifBuilder;
use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use aws_nitro_enclaves_image_format::utils::eif_signer::SignKeyData;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

pub use inputs::Arch;

/// Where `init` finds the enclave binary inside the application ramdisk's `rootfs`.
pub const ENCLAVE_PATH: &str = "/usr/bin/cohort-enclave";

/// Everything wrong that can happen while building or reading an image.
#[allow(missing_docs)] // each variant's message says what its fields are
#[derive(Debug, thiserror::Error)]
pub enum EifError {
    /// An input file could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The kernel file is neither an x86 bzImage nor an arm64 Image.
    #[error("{path} is not a kernel image (neither an x86 bzImage nor an arm64 Image)")]
    NotAKernel { path: PathBuf },
    /// The enclave binary is not an executable the image can run.
    #[error("{path} is not an enclave executable: {reason}")]
    NotAnExecutable { path: PathBuf, reason: &'static str },
    /// The enclave binary needs a dynamic loader the image does not have.
    #[error(
        "{path} is dynamically linked (it asks for {interpreter}); the enclave's root file system \
         has no libc: build it with RUSTFLAGS=\"-C target-feature=+crt-static\" (eif-build/build.sh)"
    )]
    NotStatic { path: PathBuf, interpreter: String },
    /// The kernel and the enclave binary are for different CPUs.
    #[error("the kernel is {kernel} but the enclave binary is {enclave}")]
    ArchMismatch {
        kernel: &'static str,
        enclave: &'static str,
    },
    /// A command line, argument or environment entry that cannot be encoded.
    #[error("{0}")]
    BadText(String),
    /// The file is not a well-formed EIF.
    #[error("{path} is not a valid enclave image: {reason}")]
    BadImage { path: PathBuf, reason: String },
    /// The image library gave up (it reports failures by panicking; the message is its own).
    #[error("the image library failed: {0}")]
    Library(String),
    /// A measurements file that is not what eif-build prints.
    #[error("{path} is not a measurements file: {reason}")]
    BadMeasurements { path: PathBuf, reason: String },
}

/// The inputs of an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Image name, recorded in the image's metadata.
    pub name: String,
    /// Image version, recorded in the image's metadata.
    pub version: String,
    /// The kernel (bzImage on x86-64, Image on arm64).
    pub kernel: PathBuf,
    /// The kernel command line.
    pub cmdline: String,
    /// The bootstrap ramdisk's `init`.
    pub init: PathBuf,
    /// The NSM driver module, for kernels without it built in.
    pub nsm_module: Option<PathBuf>,
    /// The statically linked `cohort-enclave`.
    pub enclave: PathBuf,
    /// Arguments after the binary's path in `cmd`.
    pub args: Vec<String>,
    /// `NAME=VALUE` lines of `env`.
    pub env: Vec<String>,
    /// The time every archive entry and the metadata carry, seconds since the epoch.
    pub source_date_epoch: u64,
    /// A private key (PEM) and its certificate (PEM) to sign the image with, for PCR8.
    pub signing: Option<(PathBuf, PathBuf)>,
}

/// PCRs of an image, in the form `nitro-cli describe-eif` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    /// The hash algorithm, as nitro-cli names it (`Sha384 { ... }`).
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: String,
    /// PCR0: the whole image (kernel, command line, every ramdisk), hex.
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    /// PCR1: the kernel, its command line and the bootstrap ramdisk, hex.
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    /// PCR2: the application ramdisk (the enclave binary, its arguments and environment), hex.
    #[serde(rename = "PCR2")]
    pub pcr2: String,
    /// PCR8: the signing certificate, for a signed image, hex.
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
}

impl Measurements {
    fn from_map(map: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| format!("the image library returned no {k}"))
        };
        Ok(Self {
            hash_algorithm: get("HashAlgorithm")?,
            pcr0: get("PCR0")?,
            pcr1: get("PCR1")?,
            pcr2: get("PCR2")?,
            pcr8: map.get("PCR8").cloned(),
        })
    }

    /// Whether the image's own PCRs (0, 1, 2) are those of `other`, whoever signed either: a
    /// security team rebuilding a signed image has no signing key, so its rebuild carries no
    /// PCR8 while the deployed image does.
    pub fn same_image(&self, other: &Self) -> bool {
        self.differences(other).iter().all(|pcr| *pcr == "PCR8")
    }

    /// The PCRs in which `self` and `other` differ, e.g. `["PCR0", "PCR2"]`.
    pub fn differences(&self, other: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, a, b) in [
            ("PCR0", Some(&self.pcr0), Some(&other.pcr0)),
            ("PCR1", Some(&self.pcr1), Some(&other.pcr1)),
            ("PCR2", Some(&self.pcr2), Some(&other.pcr2)),
            ("PCR8", self.pcr8.as_ref(), other.pcr8.as_ref()),
        ] {
            let same = match (a, b) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                out.push(name);
            }
        }
        out
    }
}

/// The digest of one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// SHA-384 of the file, hex.
    #[serde(rename = "Sha384")]
    pub sha384: String,
    /// Its size in bytes.
    #[serde(rename = "Size")]
    pub size: u64,
}

impl InputFile {
    fn of(bytes: &[u8]) -> Self {
        Self {
            sha384: hex::encode(Sha384::digest(bytes)),
            size: bytes.len() as u64,
        }
    }
}

/// What went into an image, recorded next to its PCRs so that a rebuild can be compared input
/// by input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// `x86_64` or `aarch64`.
    #[serde(rename = "Architecture")]
    pub arch: String,
    /// The kernel file.
    #[serde(rename = "Kernel")]
    pub kernel: InputFile,
    /// The version string the kernel carries.
    #[serde(rename = "KernelVersion", skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// The kernel command line.
    #[serde(rename = "Cmdline")]
    pub cmdline: String,
    /// The bootstrap `init`.
    #[serde(rename = "Init")]
    pub init: InputFile,
    /// The NSM driver module, when included.
    #[serde(rename = "NsmModule", skip_serializing_if = "Option::is_none")]
    pub nsm_module: Option<InputFile>,
    /// The enclave binary.
    #[serde(rename = "Enclave")]
    pub enclave: InputFile,
    /// The command `init` runs: the binary's path, then its arguments.
    #[serde(rename = "Cmd")]
    pub cmd: Vec<String>,
    /// Its environment, `NAME=VALUE`.
    #[serde(rename = "Env")]
    pub env: Vec<String>,
    /// The time every archive entry carries.
    #[serde(rename = "SourceDateEpoch")]
    pub source_date_epoch: u64,
    /// The bootstrap ramdisk as built.
    #[serde(rename = "BootstrapRamdisk")]
    pub bootstrap_ramdisk: InputFile,
    /// The application ramdisk as built.
    #[serde(rename = "ApplicationRamdisk")]
    pub application_ramdisk: InputFile,
    /// How the enclave binary was built, recorded by `build.sh` (`--build-info KEY=VALUE`):
    /// the commit and whether the tree was clean, rustc, cargo, gcc, glibc, the base image
    /// digest, the nitro-cli version, whether GMP's build cache was off. Not measured (it is
    /// not in the image): what a rebuild compares when the PCRs differ.
    #[serde(rename = "Build", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build: BTreeMap<String, String>,
}

/// The JSON eif-build prints and writes next to the image: `Measurements` is what KMS key
/// policies and verifiers take (`cohort kms policy`, `--measurements`), `Inputs` what a
/// security team compares after rebuilding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The PCRs.
    #[serde(rename = "Measurements")]
    pub measurements: Measurements,
    /// The image file.
    #[serde(rename = "Image")]
    pub image: InputFile,
    /// What went into the image (absent for images eif-build did not make).
    #[serde(rename = "Inputs", default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
}

impl Report {
    /// Reads a report (or a bare `{"Measurements": ..}` / `nitro-cli describe-eif` output).
    pub fn read(path: &Path) -> Result<Measurements, EifError> {
        let bad = |reason: String| EifError::BadMeasurements {
            path: path.to_path_buf(),
            reason,
        };
        let text = fs::read_to_string(path).map_err(|source| EifError::Read {
            what: "measurements file",
            path: path.to_path_buf(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let m = value.get("Measurements").unwrap_or(&value);
        serde_json::from_value(m.clone()).map_err(|e| bad(e.to_string()))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, EifError> {
    fs::read(path).map_err(|source| EifError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn line(what: &str, s: &str) -> Result<(), EifError> {
    if s.contains(['\n', '\0']) {
        return Err(EifError::BadText(format!(
            "{what} {s:?} contains a newline or a NUL byte"
        )));
    }
    Ok(())
}

/// The bootstrap ramdisk: `dev/`, `init`, and `nsm.ko` when given.
pub fn bootstrap_ramdisk(init: &[u8], nsm_module: Option<&[u8]>, mtime: u64) -> Vec<u8> {
    let mut a = cpio::Archive::new(mtime);
    a.dir("dev");
    a.file("init", 0o755, init);
    if let Some(m) = nsm_module {
        a.file("nsm.ko", 0o644, m);
    }
    a.finish()
}

/// The application ramdisk: `cmd`, `env` and a `rootfs` holding only the enclave binary and the
/// mount points `init` uses.
pub fn application_ramdisk(enclave: &[u8], cmd: &[String], env: &[String], mtime: u64) -> Vec<u8> {
    let lines = |v: &[String]| {
        let mut s = v.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s.into_bytes()
    };
    let mut a = cpio::Archive::new(mtime);
    a.file("cmd", 0o644, &lines(cmd));
    a.file("env", 0o644, &lines(env));
    for dir in [
        "rootfs",
        "rootfs/dev",
        "rootfs/proc",
        "rootfs/run",
        "rootfs/sys",
        "rootfs/tmp",
        "rootfs/usr",
        "rootfs/usr/bin",
    ] {
        a.dir(dir);
    }
    a.file(&format!("rootfs{ENCLAVE_PATH}"), 0o755, enclave);
    a.finish()
}

/// An RFC 3339 UTC time for `secs` since the epoch (the metadata's build time).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Runs `f`, turning a panic of the image library into [`EifError::Library`].
fn library<T>(f: impl FnOnce() -> T) -> Result<T, EifError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        EifError::Library(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown failure".into()),
        )
    })
}

/// Checks the command line, arguments and environment (one line each, `NAME=VALUE`) and that
/// the signing files, if any, can be read.
fn check_text_and_signing(spec: &ImageSpec) -> Result<(), EifError> {
    line("the kernel command line", &spec.cmdline)?;
    for a in &spec.args {
        line("the argument", a)?;
    }
    for e in &spec.env {
        line("the environment entry", e)?;
        if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(EifError::BadText(format!(
                "the environment entry {e:?} is not NAME=VALUE"
            )));
        }
    }
    if let Some((key, cert)) = &spec.signing {
        read("signing key", key)?;
        read("signing certificate", cert)?;
    }
    Ok(())
}

/// Builds the image at `out` (written to a temporary file and renamed: never half-written) and
/// returns its report.
pub fn build(spec: &ImageSpec, out: &Path) -> Result<Report, EifError> {
    let kernel = read("kernel", &spec.kernel)?;
    let kernel_info = inputs::kernel(&spec.kernel, &kernel)?;
    let init = read("init", &spec.init)?;
    let nsm = spec
        .nsm_module
        .as_deref()
        .map(|p| read("NSM module", p))
        .transpose()?;
    let enclave = read("enclave binary", &spec.enclave)?;
    let arch = inputs::static_executable(&spec.enclave, &enclave)?;
    if arch != kernel_info.arch {
        return Err(EifError::ArchMismatch {
            kernel: kernel_info.arch.name(),
            enclave: arch.name(),
        });
    }
    check_text_and_signing(spec)?;

    let mut cmd = vec![ENCLAVE_PATH.to_string()];
    cmd.extend(spec.args.iter().cloned());
    let epoch = spec.source_date_epoch;
    let bootstrap = bootstrap_ramdisk(&init, nsm.as_deref(), epoch);
    let application = application_ramdisk(&enclave, &cmd, &spec.env, epoch);

    let inputs = Inputs {
        arch: arch.name().into(),
        kernel: InputFile::of(&kernel),
        kernel_version: kernel_info.version.clone(),
        cmdline: spec.cmdline.clone(),
        init: InputFile::of(&init),
        nsm_module: nsm.as_deref().map(InputFile::of),
        enclave: InputFile::of(&enclave),
        cmd,
        env: spec.env.clone(),
        source_date_epoch: epoch,
        bootstrap_ramdisk: InputFile::of(&bootstrap),
        application_ramdisk: InputFile::of(&application),
        build: BTreeMap::new(),
    };

    // The library takes paths: the ramdisks go to a scratch directory beside the output.
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = out
        .file_name()
        .ok_or_else(|| EifError::BadText(format!("{} names no file", out.display())))?
        .to_string_lossy()
        .into_owned();
    let scratch = dir.join(format!(".{file_name}.parts-{}", std::process::id()));
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EifError::Write { path, source }
    };
    fs::create_dir_all(&scratch).map_err(write_err(&scratch))?;
    let result = (|| {
        let bootstrap_path = scratch.join("bootstrap.cpio");
        let application_path = scratch.join("application.cpio");
        fs::write(&bootstrap_path, &bootstrap).map_err(write_err(&bootstrap_path))?;
        fs::write(&application_path, &application).map_err(write_err(&application_path))?;
        let sign = match &spec.signing {
            Some((key, cert)) => Some(
                SignKeyData::new(&key.to_string_lossy(), cert)
                    .map_err(|e| EifError::BadText(format!("signing key: {e}")))?,
            ),
            None => None,
        };
        let identity = EifIdentityInfo {
            img_name: spec.name.clone(),
            img_version: spec.version.clone(),
            build_info: EifBuildInfo {
                build_time: rfc3339(epoch),
                build_tool: env!("CARGO_PKG_NAME").into(),
                build_tool_version: env!("CARGO_PKG_VERSION").into(),
                img_os: "linux".into(),
                img_kernel: kernel_info.version.clone().unwrap_or_default(),
            },
            docker_info: serde_json::Value::Null,
            custom_info: serde_json::to_value(&inputs)
                .map_err(|e| EifError::BadText(e.to_string()))?,
        };
        let flags = match arch {
            Arch::X86_64 => 0,
            Arch::Aarch64 => EIF_HDR_ARCH_ARM64,
        };
        let tmp = scratch.join("image.eif");
        let mut file = File::create(&tmp).map_err(write_err(&tmp))?;
        let map = library(|| {
            let mut builder = EifBuilder::new(
                &spec.kernel,
                spec.cmdline.clone(),
                sign,
                Sha384::new(),
                flags,
                identity,
            );
            builder.add_ramdisk(&bootstrap_path);
            builder.add_ramdisk(&application_path);
            builder.write_to(&mut file)
        })?;
        file.sync_all().map_err(write_err(&tmp))?;
        drop(file);
        let measurements = Measurements::from_map(&map).map_err(EifError::Library)?;
        let image = read("image", &tmp)?;
        fs::rename(&tmp, out).map_err(write_err(out))?;
        Ok(Report {
            measurements,
            image: InputFile::of(&image),
            inputs: Some(inputs),
        })
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Recomputes the PCRs of the image at `path` from its sections, after checking its structure
/// and its CRC.
pub fn describe(path: &Path) -> Result<Report, EifError> {
    let bad = |reason: String| EifError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    check_structure(path).map_err(bad)?;
    let mut reader =
        library(|| EifReader::from_eif(path.to_string_lossy().into_owned()))?.map_err(bad)?;
    if !reader.check_crc() {
        return Err(bad("its CRC does not match its contents".into()));
    }
    let map = library(|| reader.get_measurements())?.map_err(bad)?;
    let measurements = Measurements::from_map(&map).map_err(bad)?;
    let image = read("image", path)?;
    Ok(Report {
        measurements,
        image: InputFile::of(&image),
        inputs: reader
            .get_metadata()
            .and_then(|m| serde_json::from_value(m.custom_info).ok()),
    })
}

/// Walks the header and section headers before the library reads the file, so that a damaged
/// or hostile file is refused with a reason instead of making the library allocate whatever a
/// size field says.
fn check_structure(path: &Path) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    let mut header = vec![0u8; EifHeader::size()];
    f.read_exact(&mut header)
        .map_err(|_| "shorter than an EIF header".to_string())?;
    if header[..4] != EIF_MAGIC {
        return Err("no EIF magic".into());
    }
    EifHeader::from_be_bytes(&header)?;
    let mut at = EifHeader::size() as u64;
    let mut sections = 0;
    let mut kinds = (0, 0, 0); // kernels, cmdlines, ramdisks
    while at < len {
        let mut sh = vec![0u8; EifSectionHeader::size()];
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.read_exact(&mut sh))
            .map_err(|_| format!("truncated section header at byte {at}"))?;
        let section = EifSectionHeader::from_be_bytes(&sh)?;
        at += EifSectionHeader::size() as u64;
        if section.section_size > len - at {
            return Err(format!(
                "a section at byte {at} claims {} bytes but only {} remain",
                section.section_size,
                len - at
            ));
        }
        match section.section_type {
            EifSectionType::EifSectionKernel => kinds.0 += 1,
            EifSectionType::EifSectionCmdline => kinds.1 += 1,
            EifSectionType::EifSectionRamdisk => kinds.2 += 1,
            EifSectionType::EifSectionSignature | EifSectionType::EifSectionMetadata => {}
            EifSectionType::EifSectionInvalid => {
                return Err(format!("invalid section type at byte {at}"));
            }
        }
        at += section.section_size;
        sections += 1;
    }
    if kinds.0 != 1 || kinds.1 != 1 || kinds.2 < 2 {
        return Err(format!(
            "{sections} sections: {} kernels, {} command lines, {} ramdisks (expected 1, 1, 2 or more)",
            kinds.0, kinds.1, kinds.2
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59+00:00");
    }

    #[test]
    fn measurements_compare_case_insensitively_and_name_differences() {
        let a = Measurements {
            hash_algorithm: "Sha384".into(),
            pcr0: "AA".into(),
            pcr1: "bb".into(),
            pcr2: "cc".into(),
            pcr8: None,
        };
        let mut b = a.clone();
        b.pcr0 = "aa".into();
        assert!(a.differences(&b).is_empty());
        b.pcr2 = "dd".into();
        b.pcr8 = Some("ee".into());
        assert_eq!(a.differences(&b), vec!["PCR2", "PCR8"]);
    }

    #[test]
    fn text_with_newlines_is_refused() {
        assert!(line("x", "a b").is_ok());
        assert!(line("x", "a\nb").is_err());
        assert!(line("x", "a\0").is_err());
    }
}
