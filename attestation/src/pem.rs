//! PEM and DER forms of X.509 certificates (pinned roots, simulated CA material).

use der::pem::LineEnding;
use der::{Decode, DecodePem, Encode, EncodePem};
use x509_cert::Certificate;

/// A certificate that does not parse or encode.
#[derive(Debug, thiserror::Error)]
#[error("invalid certificate: {0}")]
pub struct PemError(String);

/// PEM ("CERTIFICATE") of a DER certificate.
pub fn der_to_pem(der_bytes: &[u8]) -> Result<String, PemError> {
    Certificate::from_der(der_bytes)
        .and_then(|c| c.to_pem(LineEnding::LF))
        .map_err(|e| PemError(e.to_string()))
}

/// DER of a PEM certificate.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PemError> {
    Certificate::from_pem(pem)
        .and_then(|c| c.to_der())
        .map_err(|e| PemError(e.to_string()))
}
