//! `cohort attest verify`: verification with a report a person or a script can read.

use std::collections::BTreeMap;
use std::time::Duration;

use attestation::verify::decode_unverified;
use attestation::{Binding, Policy, verify};
use serde::Serialize;

/// What a verification found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether the document verified under the policy.
    pub valid: bool,
    /// Why not.
    pub error: Option<ReportError>,
    /// Validation time used, seconds since the epoch.
    pub validation_time: u64,
    /// Document fields (for an invalid document: as decoded, not verified).
    pub document: Option<Summary>,
}

/// A failure, with its stable kind.
#[derive(Debug, Serialize)]
pub struct ReportError {
    /// Stable kind (`pcr_mismatch`, `unknown_root`, ...).
    pub kind: String,
    /// Human-readable reason.
    pub message: String,
}

/// The fields a verifier looks at.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// NSM module id.
    pub module_id: String,
    /// Document timestamp, ms since the epoch.
    pub timestamp_ms: u64,
    /// PCRs by index (hex).
    pub pcrs: BTreeMap<String, String>,
    /// Ed25519 identity key (hex), from `public_key`.
    pub identity_signing: Option<String>,
    /// X25519 identity key (hex), from `public_key`.
    pub identity_encryption: Option<String>,
    /// The enclave's long-term node key (hex), from a version-2 binding in `public_key`.
    pub node_key: Option<String>,
    /// The KMS key ARN the node key is sealed under, from a version-2 binding.
    pub kms_key_arn: Option<String>,
    /// The nonce (hex).
    pub nonce: Option<String>,
}

fn summary(
    module_id: String,
    timestamp_ms: u64,
    pcrs: impl Iterator<Item = (usize, Vec<u8>)>,
    public_key: Option<&[u8]>,
    nonce: Option<&[u8]>,
) -> Summary {
    let binding = public_key.and_then(|k| Binding::parse(k).ok());
    let identity = binding.as_ref().map(|b| b.identity);
    let node = binding.and_then(|b| b.node);
    Summary {
        module_id,
        timestamp_ms,
        pcrs: pcrs.map(|(i, v)| (i.to_string(), hex::encode(v))).collect(),
        identity_signing: identity.map(|k| hex::encode(k.signing)),
        identity_encryption: identity.map(|k| hex::encode(k.encryption)),
        node_key: node.as_ref().map(|n| hex::encode(n.node_key)),
        kms_key_arn: node.as_ref().map(|n| n.kms_key_arn().to_string()),
        nonce: nonce.map(hex::encode),
    }
}

/// Verifies `document` under `policy` at `at` and reports.
pub fn report(document: &[u8], policy: &Policy, at: Duration) -> Report {
    let verified = verify(document, policy, at)
        .and_then(|doc| attestation::aws::cross_check(document, policy, at).map(|_| doc));
    match verified {
        Ok(doc) => Report {
            valid: true,
            error: None,
            validation_time: at.as_secs(),
            document: Some(summary(
                doc.module_id,
                doc.timestamp_ms,
                doc.pcrs.into_iter(),
                doc.public_key.as_deref(),
                doc.nonce.as_deref(),
            )),
        },
        Err(e) => Report {
            valid: false,
            error: Some(ReportError {
                kind: e.kind().to_string(),
                message: e.to_string(),
            }),
            validation_time: at.as_secs(),
            document: decode_unverified(document).ok().map(|d| {
                summary(
                    d.module_id,
                    d.timestamp,
                    d.pcrs.into_iter().map(|(i, v)| (i, v.into_vec())),
                    d.public_key.as_deref().map(|v| v.as_slice()),
                    d.nonce.as_deref().map(|v| v.as_slice()),
                )
            }),
        },
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            None => writeln!(f, "result:              VALID")?,
            Some(e) => writeln!(
                f,
                "result:              INVALID ({}): {}",
                e.kind, e.message
            )?,
        }
        writeln!(f, "validation time:     {}", self.validation_time)?;
        let Some(d) = &self.document else {
            return Ok(());
        };
        if !self.valid {
            writeln!(f, "(fields below are decoded, NOT verified)")?;
        }
        writeln!(f, "module id:           {}", d.module_id)?;
        writeln!(
            f,
            "timestamp:           {} (ms since epoch)",
            d.timestamp_ms
        )?;
        for (i, v) in &d.pcrs {
            if v.bytes().any(|b| b != b'0') || ["0", "1", "2"].contains(&i.as_str()) {
                writeln!(f, "pcr{i:<17}{v}")?;
            }
        }
        let none = "-".to_string();
        writeln!(
            f,
            "identity (ed25519):  {}",
            d.identity_signing.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "identity (x25519):   {}",
            d.identity_encryption.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "node key (ed25519):  {}",
            d.node_key.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "kms key:             {}",
            d.kms_key_arn.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "nonce:               {}",
            d.nonce.as_ref().unwrap_or(&none)
        )
    }
}
