//! A second opinion on production documents from evervault's `attestation-doc-validation`
//! crate (feature `aws-crosscheck`).
//!
//! That crate pins the AWS Nitro root and validates at the system clock's time, so it can speak
//! only to production documents checked at the present time: it cannot check simulated
//! documents, nor a document verified at an explicit past time. [`cross_check`] says when it did
//! not apply. It is called explicitly, after [`crate::verify`], by the CLI and the parent proxy;
//! `verify` itself never calls it, so the enclave behaves the same however it is built.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Policy, VerifyError};

/// What the cross-check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossCheck {
    /// It ran and agreed.
    Passed,
    /// It does not apply (the policy pins another root, or the validation time is not now).
    NotApplicable,
}

/// Runs the second verifier on a document that [`crate::verify`] accepted under `policy` at `at`.
pub fn cross_check(
    document: &[u8],
    policy: &Policy,
    at: Duration,
) -> Result<CrossCheck, VerifyError> {
    let aws = crate::aws_nitro_root_der();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if !policy.roots.contains(&aws) || now.abs_diff(at) > Duration::from_secs(60) {
        return Ok(CrossCheck::NotApplicable);
    }
    attestation_doc_validation::validate_attestation_doc(document)
        .map_err(|e| VerifyError::CrossCheck(e.to_string()))?;
    Ok(CrossCheck::Passed)
}
