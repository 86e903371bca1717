//! `cohort kms policy`: the key policy of a node's KMS key; `cohort kms pcr3`: the PCR3 of a
//! parent role, for Terraform and `cohort genesis prepare --pcr3`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Print the key policy of a node's KMS key: only an enclave with these measurements may
    /// have data keys, and nobody without an attestation document.
    Policy {
        /// The node's index, from 0 as the coordinators number nodes (their i-th --proxy) and
        /// as Terraform keys them, for the policy id.
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
        /// Also require the parent role's PCR3 (`cohort kms pcr3`): only an enclave on an
        /// instance with that role may have data keys (Terraform's `parent_pcr3`).
        #[arg(long)]
        pin_pcr3: bool,
        /// The principal ARN that administers the key (it cannot use it).
        #[arg(long)]
        admin: String,
    },
    /// Print the PCR3 an enclave reports on a parent instance with this IAM role (SHA-384 of 48
    /// zero bytes and the role's ARN): Terraform's `parent_pcr3` and `genesis prepare --pcr3`.
    Pcr3 {
        /// The IAM role ARN of the parent instance (the node module's `parent_role_arn`).
        #[arg(long)]
        role_arn: String,
    },
}

/// Prints the policy as JSON, or the PCR3 as hex.
pub fn run(command: KmsCommand) -> anyhow::Result<ExitCode> {
    match command {
        KmsCommand::Policy {
            node,
            measurements,
            parent_role,
            pin_pcr3,
            admin,
        } => {
            let images = measurements
                .iter()
                .map(|p| cli::kms::read_measurements(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let policy = cli::kms::key_policy(&cli::kms::PolicyParams {
                node,
                images,
                parent_role,
                pin_pcr3,
                admin,
            })?;
            super::print_json(&policy)?;
        }
        KmsCommand::Pcr3 { role_arn } => {
            if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
                anyhow::bail!(
                    "{role_arn} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
                );
            }
            println!("{}", cli::kms::pcr3_hex(&role_arn));
        }
    }
    Ok(ExitCode::SUCCESS)
}
