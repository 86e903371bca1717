#![doc = include_str!("../README.md")]

#[cfg(feature = "aws-crosscheck")]
pub mod aws;
mod cose;
pub mod identity;
pub mod nsm;
pub mod parent;
mod pem;
pub mod recipient;
/// The simulated NSM and CA (simulated clusters and tests): only with the `sim` feature, which
/// production enclave images leave off (eif-build/check.sh proves it).
#[cfg(any(feature = "sim", test))]
pub mod sim;
pub mod verify;

pub use identity::{Binding, BindingError, IdentityKeys, NodeBinding};
pub use nsm::{AttestationRequest, Nsm, NsmError};
pub use pem::{PemError, der_to_pem, pem_to_der};
pub use verify::{Policy, VerifiedDocument, VerifyError, parse_pcr_hex, read_measurements, verify};

/// PEM of the AWS Nitro Enclaves root certificate (G1), the default pinned root.
///
/// SHA-256 fingerprint `641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B`, as
/// published by AWS; a test checks it.
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("roots/aws-nitro-root-g1.pem");

/// DER of [`AWS_NITRO_ROOT_G1_PEM`].
pub fn aws_nitro_root_der() -> Vec<u8> {
    pem_to_der(AWS_NITRO_ROOT_G1_PEM).expect("the embedded AWS root is a valid certificate")
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    #[test]
    fn aws_root_fingerprint() {
        let fp = sha2::Sha256::digest(super::aws_nitro_root_der());
        assert_eq!(
            hex::encode_upper(fp),
            "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
        );
    }
}
