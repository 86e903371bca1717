//! `cohort kms policy`: the key policy of a node's KMS key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Print the key policy of a node's KMS key: only an enclave with these measurements may
    /// have data keys, and nobody without an attestation document.
    Policy {
        /// The node (1-based), for the policy id.
        #[arg(long)]
        node: usize,
        /// Measurements JSON (`{"PCR0": .., "PCR1": .., "PCR2": ..}`, at the top level or under
        /// `Measurements`, as eif-build and `nitro-cli describe-eif` print them); repeat during
        /// an image rotation to allow both images.
        #[arg(long = "measurements", required = true)]
        measurements: Vec<PathBuf>,
        /// The IAM role ARN of the node's parent instance.
        #[arg(long)]
        parent_role: String,
        /// The principal ARN that administers the key (it cannot use it).
        #[arg(long)]
        admin: String,
    },
}

/// Prints the policy as JSON.
pub fn run(command: KmsCommand) -> anyhow::Result<ExitCode> {
    let KmsCommand::Policy {
        node,
        measurements,
        parent_role,
        admin,
    } = command;
    let images = measurements
        .iter()
        .map(|p| cli::kms::read_measurements(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let policy = cli::kms::key_policy(&cli::kms::PolicyParams {
        node,
        images,
        parent_role,
        admin,
    })?;
    super::print_json(&policy)?;
    Ok(ExitCode::SUCCESS)
}
