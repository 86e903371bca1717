//! `cohort-eif`: build the enclave image and print its PCRs; recompute them from an image.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cohort_eif::{EifError, ImageSpec, Report, build, describe};

/// Cohort's enclave image (EIF) build.
#[derive(Debug, Parser)]
#[command(name = "cohort-eif", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    /// Assemble an EIF from a kernel, its command line, `init` and the static enclave binary;
    /// print the measurements JSON (and write it with --measurements-out).
    Build(BuildArgs),
    /// Recompute an image's PCRs from the file and print them; with --expect, exit 1 unless
    /// they equal those of a measurements file.
    Describe {
        /// The image.
        image: PathBuf,
        /// Measurements JSON to compare with (eif-build's output or `nitro-cli describe-eif`'s).
        #[arg(long)]
        expect: Option<PathBuf>,
    },
}

// `cohort-eif build`'s arguments (a plain comment: the subcommand's help is its variant's).
#[derive(Debug, Args)]
struct BuildArgs {
    /// The kernel: bzImage (x86-64) or Image (arm64). On AWS, nitro-cli's blobs/bzImage.
    #[arg(long)]
    kernel: PathBuf,
    /// The kernel command line.
    #[arg(
        long,
        conflicts_with = "cmdline_file",
        required_unless_present = "cmdline_file"
    )]
    cmdline: Option<String>,
    /// A file holding the kernel command line (nitro-cli's blobs/cmdline); trailing
    /// whitespace is dropped.
    #[arg(long)]
    cmdline_file: Option<PathBuf>,
    /// The bootstrap `init` (nitro-cli's blobs/init on AWS).
    #[arg(long)]
    init: PathBuf,
    /// The NSM driver module (nitro-cli's blobs/nsm.ko), for kernels without it built in.
    #[arg(long)]
    nsm_module: Option<PathBuf>,
    /// The statically linked cohort-enclave.
    #[arg(long)]
    enclave: PathBuf,
    /// An argument for the enclave binary (repeat), e.g. --arg=--parent --arg=vsock:3:8001.
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment entry NAME=VALUE for the enclave binary (repeat).
    #[arg(long = "env")]
    env: Vec<String>,
    /// The time every archive entry carries (default: $SOURCE_DATE_EPOCH, else 0).
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
    /// Image name recorded in its metadata.
    #[arg(long, default_value = "cohort-enclave")]
    name: String,
    /// Image version recorded in its metadata.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    image_version: String,
    /// Sign the image (PCR8) with this private key (PEM)...
    #[arg(long, requires = "signing_cert")]
    signing_key: Option<PathBuf>,
    /// ...whose certificate (PEM) this is.
    #[arg(long, requires = "signing_key")]
    signing_cert: Option<PathBuf>,
    /// Where to write the image.
    #[arg(long)]
    out: PathBuf,
    /// Also write the measurements JSON here.
    #[arg(long)]
    measurements_out: Option<PathBuf>,
    /// KEY=VALUE recorded under Inputs.Build in the measurements JSON (repeat): how the enclave
    /// binary was built (commit, toolchain, base image). Not part of the image.
    #[arg(long = "build-info", value_parser = key_value)]
    build_info: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{k:?}: a key is letters and digits"));
    }
    if v.contains(['\n', '\0']) {
        return Err(format!("{k}: a value is one line"));
    }
    Ok((k.to_string(), v.to_string()))
}

impl BuildArgs {
    /// The image these arguments describe (reading --cmdline-file), where to write it, and
    /// where to write its measurements.
    #[allow(clippy::type_complexity)] // a private helper's tuple
    fn into_spec(
        self,
    ) -> Result<(ImageSpec, PathBuf, Option<PathBuf>, Vec<(String, String)>), EifError> {
        let cmdline = match (self.cmdline, self.cmdline_file) {
            (Some(c), _) => c,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .map_err(|source| EifError::Read {
                    what: "command line file",
                    path: f,
                    source,
                })?
                .trim_end()
                .to_string(),
            (None, None) => {
                return Err(EifError::BadText("give --cmdline or --cmdline-file".into()));
            }
        };
        let spec = ImageSpec {
            name: self.name,
            version: self.image_version,
            kernel: self.kernel,
            cmdline,
            init: self.init,
            nsm_module: self.nsm_module,
            enclave: self.enclave,
            args: self.args,
            env: self.env,
            source_date_epoch: self.source_date_epoch,
            signing: self.signing_key.zip(self.signing_cert),
        };
        Ok((spec, self.out, self.measurements_out, self.build_info))
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print(report: &Report) -> Result<String, EifError> {
    serde_json::to_string_pretty(report).map_err(|e| EifError::BadText(e.to_string()))
}

fn run(cli: Cli) -> Result<ExitCode, EifError> {
    match cli.command {
        Command::Build(args) => {
            let (spec, out, measurements_out, build_info) = args.into_spec()?;
            let mut report = build(&spec, &out)?;
            if let Some(inputs) = report.inputs.as_mut() {
                inputs.build.extend(build_info);
            }
            let json = print(&report)?;
            if let Some(path) = measurements_out {
                std::fs::write(&path, format!("{json}\n"))
                    .map_err(|source| EifError::Write { path, source })?;
            }
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { image, expect } => {
            let report = describe(&image)?;
            println!("{}", print(&report)?);
            if let Some(path) = expect {
                let expected = Report::read(&path)?;
                let diff = expected.differences(&report.measurements);
                // PCR0-2 measure the image; PCR8 its signer. A rebuild of a signed image has
                // no signing key: its PCR0-2 are compared, and PCR8 only when both are signed.
                if !expected.same_image(&report.measurements)
                    || (diff.contains(&"PCR8")
                        && expected.pcr8.is_some()
                        && report.measurements.pcr8.is_some())
                {
                    eprintln!(
                        "MISMATCH: {} of {} differ from {}",
                        diff.join(", "),
                        image.display(),
                        path.display()
                    );
                    return Ok(ExitCode::from(1));
                }
                if diff.contains(&"PCR8") {
                    eprintln!(
                        "OK: PCR0, PCR1 and PCR2 of {} match {}; PCR8 not compared: only one of \
                         them is signed (compare the signing certificate separately)",
                        image.display(),
                        path.display()
                    );
                } else {
                    eprintln!("OK: {} matches {}", image.display(), path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
