//! The Nitro Secure Module, behind one trait.
//!
//! The enclave holds a `Box<dyn Nsm>`: the real driver (`/dev/nsm`, in the enclave crate) in
//! production, [`crate::sim::SimulatedNsm`] in simulated mode. Both return the raw COSE_Sign1 bytes
//! of an attestation document; everything downstream is the same code.

/// What an attestation document should carry besides the PCRs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    /// Application data (at most 512 bytes); Cohort puts the identity binding here.
    pub user_data: Option<Vec<u8>>,
    /// The verifier's nonce (at most 512 bytes).
    pub nonce: Option<Vec<u8>>,
    /// A public key for the verifier (at most 1024 bytes).
    pub public_key: Option<Vec<u8>>,
}

/// The NSM failed to produce a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NsmError {
    /// The request exceeds the NSM's limits.
    #[error("invalid attestation request: {0}")]
    InvalidRequest(String),
    /// The device (or the simulation) failed.
    #[error("nsm device error: {0}")]
    Device(String),
}

/// A Nitro Secure Module: produces attestation documents and reads PCRs.
pub trait Nsm: Send + Sync {
    /// Returns the raw COSE_Sign1 bytes of a fresh attestation document.
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError>;

    /// Human-readable name of the implementation, for logs.
    fn kind(&self) -> &'static str;
}

/// Checks a request against the NSM's documented limits.
pub fn check_request(request: &AttestationRequest) -> Result<(), NsmError> {
    let limits = [
        (
            "user_data",
            request.user_data.as_ref(),
            crate::verify::MAX_USER_DATA_LEN,
        ),
        (
            "nonce",
            request.nonce.as_ref(),
            crate::verify::MAX_NONCE_LEN,
        ),
        (
            "public_key",
            request.public_key.as_ref(),
            crate::verify::MAX_PUBLIC_KEY_LEN,
        ),
    ];
    for (field, value, max) in limits {
        if let Some(v) = value
            && v.len() > max
        {
            return Err(NsmError::InvalidRequest(format!(
                "{field} is {} bytes, more than {max}",
                v.len()
            )));
        }
    }
    Ok(())
}
