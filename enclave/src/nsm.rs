//! The real Nitro Secure Module, through `/dev/nsm` (production mode only).

use std::sync::Mutex;

use attestation::nsm::{AttestationRequest, Nsm, NsmError, check_request};
use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;

/// The NSM device of a Nitro Enclave.
pub struct NitroNsm {
    fd: Mutex<i32>,
}

impl NitroNsm {
    /// Opens `/dev/nsm`; fails outside a Nitro Enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Device(
                "cannot open /dev/nsm (not running in a Nitro Enclave?)".into(),
            ));
        }
        Ok(Self { fd: Mutex::new(fd) })
    }
}

impl Nsm for NitroNsm {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        check_request(request)?;
        let fd = self
            .fd
            .lock()
            .map_err(|_| NsmError::Device("nsm lock poisoned".into()))?;
        let response = driver::nsm_process_request(
            *fd,
            Request::Attestation {
                user_data: request.user_data.clone().map(ByteBuf::from),
                nonce: request.nonce.clone().map(ByteBuf::from),
                public_key: request.public_key.clone().map(ByteBuf::from),
            },
        );
        match response {
            Response::Attestation { document } => Ok(document),
            Response::Error(code) => Err(NsmError::Device(format!("nsm refused: {code:?}"))),
            _ => Err(NsmError::Device("unexpected nsm response".into())),
        }
    }

    fn kind(&self) -> &'static str {
        "nitro"
    }
}

impl Drop for NitroNsm {
    fn drop(&mut self) {
        if let Ok(fd) = self.fd.lock() {
            driver::nsm_exit(*fd);
        }
    }
}
