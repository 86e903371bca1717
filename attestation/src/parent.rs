//! The parent instance's PCRs as Nitro measures them: PCR3 measures the IAM role of the parent
//! instance, PCR4 its instance id. Each is one extension of an all-zero register,
//! `SHA-384(48 zero bytes || UTF-8 of the value)`, as the Nitro Enclaves user guide
//! ("Where to get an enclave's measurements") computes them. Terraform has no SHA-384, so
//! `cohort kms pcr3` computes PCR3 for it from the parent role's ARN.
//!
//! That these are the bytes a real Nitro hypervisor extends (the role's ARN, not its
//! instance profile's; the path included) is AWS's documentation's word; it is to be checked
//! against a real parent instance's document (ADR 0013, "Uncertain").

use sha2::{Digest, Sha384};

/// One extension of an all-zero 48-byte register with `value`.
fn extend_zero(value: &str) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update([0u8; 48]);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// PCR3 of an enclave whose parent instance has the IAM role `role_arn`.
pub fn pcr3_of_role(role_arn: &str) -> [u8; 48] {
    extend_zero(role_arn)
}

/// PCR4 of an enclave whose parent instance has id `instance_id`.
pub fn pcr4_of_instance(instance_id: &str) -> [u8; 48] {
    extend_zero(instance_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers computed with Python's hashlib exactly as the user guide does:
    /// `h = sha384(); h.update(b'\0' * 48); h.update(value.encode('utf-8'))`.
    #[test]
    fn parent_pcrs_are_as_the_user_guide_computes_them() {
        assert_eq!(
            hex::encode(pcr3_of_role("arn:aws:iam::123456789012:role/MyRole")),
            "6695c2fbe70b81969f16468cd055fa953332e1bf39b43eb81b1113f3655bc7f7\
             cf314b85608948b8a51563f5d972a60f"
        );
        assert_eq!(
            hex::encode(pcr4_of_instance("i-0123456789abcdef0")),
            "d6432900ac1c343cb40286898792c55e962aef0cc35c4910c0c286145b51af19\
             e782cb21cc31a042671d7dfbd398251c"
        );
    }
}
