//! Full interactive ECDSA signing, for when no presignature is ready.

use std::sync::Arc;

use cggmp21::ExecutionId;
use rand::rngs::OsRng;

use super::presign::signing_msg_type;
use super::share::{derive_hd, non_hardened_path};
use super::signature::data_to_sign;
use super::{SecretKeyShare, Signature, SigningMsg, check_signers};
use crate::mpc::blame::protocol_error;
use crate::mpc::driver::RoundMachine;
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

/// Interactive signing of a 32-byte digest by the `t` parties of `signers` with the child key at
/// a non-hardened `path`, for when no presignature is ready.
pub type Sign = RoundMachine<SigningMsg, Signature>;

impl Sign {
    /// Starts party `i` (index within this run, `0 <= i < t`).
    pub fn start(
        session_id: &[u8],
        i: PartyIndex,
        signers: &[PartyIndex],
        share: &SecretKeyShare,
        path: &[u32],
        digest: [u8; 32],
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        let t = check_signers(i, signers, share)?;
        let hd_path = non_hardened_path(path)?;
        let child = derive_hd(share.epub, path)?.public_key;
        let sid = session_id.to_vec();
        let signers = signers.to_vec();
        let key_share = Arc::clone(&share.share);
        RoundMachine::launch("Sign", i, t, signing_msg_type, move |party| async move {
            let message = data_to_sign(&digest);
            let sig = cggmp21::signing(ExecutionId::new(&sid), i, &signers, &key_share)
                .enforce_reliable_broadcast(true)
                .set_derivation_path(hd_path)
                .map_err(|e| MpcError::BadInput(format!("derivation path: {e}")))?
                .sign(&mut OsRng, party, message)
                .await
                .map_err(|e| protocol_error(&e, t))?
                .normalize_s();
            // cggmp21 verifies too; check again against the key we derived ourselves.
            sig.verify(&child, &message)
                .map_err(|_| MpcError::Aborted {
                    culprits: Vec::new(),
                    reason: "signature does not verify under the derived key".into(),
                })?;
            Ok(Signature::from_cggmp(&sig))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn keygen_3_of_5_and_full_signing() {
        let shares = group_3_of_5();
        let epub = shares[0].extended_public_key();
        assert!(shares.iter().all(|s| s.extended_public_key() == epub));
        assert!(
            shares
                .iter()
                .all(|s| (s.parties(), s.threshold()) == (5, 3))
        );

        let digest = sha256(b"3-of-5 full signing");
        let sigs = route_ok(start_sign(shares, &[4, 0, 2], &[], digest, b"sign 3-of-5"));
        assert!(sigs.iter().all(|s| *s == sigs[0]));
        k256_verify(&epub.public_key, &digest, &sigs[0]);
        sigs[0].verify(&epub.public_key, &digest).unwrap();
    }
}
