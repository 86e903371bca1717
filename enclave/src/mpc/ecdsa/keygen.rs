//! Threshold key generation of an HD-capable master key, and its incomplete key share.

use std::fmt;

use cggmp21::ExecutionId;
use cggmp21::key_share::IncompleteKeyShare;
use cggmp21::round_based::MessageType;
use rand::rngs::OsRng;

use super::{D, E, ExtendedPublicKey, L, check_party};
use crate::mpc::blame::protocol_error;
use crate::mpc::driver::RoundMachine;
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

type KeygenMsg = cggmp21::keygen::msg::threshold::Msg<E, L, D>;

/// Output of [`Keygen`]: a validated threshold key share without auxiliary info yet. Complete it
/// with [`SecretKeyShare::from_parts`].
pub struct SecretIncompleteKeyShare(pub(super) IncompleteKeyShare<E>);

impl SecretIncompleteKeyShare {
    /// This party's index at keygen.
    pub fn index(&self) -> PartyIndex {
        self.0.i
    }

    /// The shared public key with its chain code (the key is always HD-capable).
    pub fn extended_public_key(&self) -> Result<ExtendedPublicKey, MpcError> {
        let epub = self
            .0
            .extended_public_key()
            .ok_or_else(|| MpcError::Internal("keygen output has no chain code".into()))?;
        Ok(ExtendedPublicKey::from_hd(&epub))
    }
}

impl fmt::Debug for SecretIncompleteKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretIncompleteKeyShare")
            .field("i", &self.0.i)
            .field("n", &self.0.n())
            .field("t", &self.0.min_signers())
            .finish_non_exhaustive()
    }
}

fn keygen_msg_type(msg: &KeygenMsg) -> Option<MessageType> {
    use cggmp21::keygen::msg::threshold::Msg;
    Some(match msg {
        Msg::Round1(_) | Msg::Round2Broad(_) | Msg::Round3(_) | Msg::ReliabilityCheck(_) => {
            MessageType::Broadcast
        }
        Msg::Round2Uni(_) => MessageType::P2P,
    })
}

/// Threshold key generation (`t`-of-`n`) of an HD-capable (SLIP-10/BIP32) master key.
pub type Keygen = RoundMachine<KeygenMsg, SecretIncompleteKeyShare>;

impl Keygen {
    /// Starts party `i` of `n` for a key that any `t` parties can use (`2 <= t <= n`).
    pub fn start(
        session_id: &[u8],
        i: PartyIndex,
        n: u16,
        t: u16,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        check_party(i, n)?;
        if !(2..=n).contains(&t) {
            return Err(MpcError::BadInput(format!(
                "threshold {t} is not between 2 and {n}"
            )));
        }
        let sid = session_id.to_vec();
        RoundMachine::launch("Keygen", i, n, keygen_msg_type, move |party| async move {
            cggmp21::keygen::<E>(ExecutionId::new(&sid), i, n)
                .set_threshold(t)
                .hd_wallet(true)
                .enforce_reliable_broadcast(true)
                .start(&mut OsRng, party)
                .await
                .map(SecretIncompleteKeyShare)
                .map_err(|e| protocol_error(&e, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use cggmp21::generic_ec::Scalar;

    use super::super::testutil::*;
    use super::*;

    #[test]
    fn keygen_rejects_bad_parameters() {
        assert!(matches!(
            Keygen::start(b"x", 0, 3, 1),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            Keygen::start(b"x", 0, 3, 4),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            Keygen::start(b"x", 3, 3, 2),
            Err(MpcError::BadInput(_))
        ));
        assert!(matches!(
            Keygen::start(b"x", 0, 1, 1),
            Err(MpcError::BadInput(_))
        ));
    }

    #[test]
    fn tampered_keygen_share_blames_sender() {
        let started = (0..3)
            .map(|i| Keygen::start(b"tampered keygen", i, 3, 2).unwrap())
            .collect();
        let results = route(started, |to, msg| {
            if to == 0
                && msg.from == 2
                && let Ok(KeygenMsgOf::Round2Uni(mut m)) =
                    ciborium::from_reader(msg.payload.as_slice())
            {
                m.sigma += Scalar::one();
                msg.payload = encode(&KeygenMsgOf::Round2Uni(m)).into();
            }
        });
        match &results[0] {
            Some(Err(MpcError::Aborted { culprits, .. })) => assert_eq!(culprits, &[2]),
            other => panic!(
                "party 0 should abort, got {:?}",
                other.as_ref().map(|r| r.as_ref().err())
            ),
        }
        // The other parties were not lied to: they wait for party 0's last round, without error.
        assert!(results[1..].iter().all(|r| !matches!(r, Some(Err(_)))));
    }

    type KeygenMsgOf = cggmp21::keygen::msg::threshold::Msg<E, L, D>;
}
