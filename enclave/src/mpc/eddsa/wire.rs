//! The EdDSA wire format: a versioned CBOR envelope bound to the session, whose body names the
//! round; decoding checks version, session, canonical encoding and that nothing trails.

use frost_ed25519::keys::dkg;
use frost_ed25519::round1::SigningCommitments;
use frost_ed25519::round2::SignatureShare;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mpc::envelope::cbor_error;
use crate::mpc::{MpcError, OutgoingMessage, PartyIndex};

/// Every message on the wire, tagged with its format version.
#[derive(Serialize, Deserialize)]
pub(super) enum Wire {
    V1(WireV1),
}

/// Version 1 of the envelope.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WireV1 {
    #[serde(with = "serde_bytes")]
    session_id: Vec<u8>,
    body: Body,
}

/// The round a message belongs to, with its content.
#[derive(Serialize, Deserialize)]
pub(super) enum Body {
    /// DKG round 1 (broadcast): commitment and proof of knowledge.
    DkgRound1(Box<dkg::round1::Package>),
    /// DKG echo (broadcast): digest of all round-1 packages as seen by the sender.
    DkgEcho(#[serde(with = "serde_bytes")] Vec<u8>),
    /// DKG round 2 (point-to-point): the secret share for the receiver.
    DkgRound2(Box<dkg::round2::Package>),
    /// Signing round 1 (broadcast): nonce commitments and the signing-context digest.
    SignCommit {
        #[serde(with = "serde_bytes")]
        context: Vec<u8>,
        commitments: Box<SigningCommitments>,
    },
    /// Signing round 2 (broadcast): the signature share.
    SignShare(Box<SignatureShare>),
}

impl Body {
    fn kind(&self) -> &'static str {
        match self {
            Body::DkgRound1(_) => "dkg round-1",
            Body::DkgEcho(_) => "dkg echo",
            Body::DkgRound2(_) => "dkg round-2",
            Body::SignCommit { .. } => "signing commitment",
            Body::SignShare(_) => "signature share",
        }
    }
}

pub(super) fn encode(
    session_id: &[u8],
    body: Body,
) -> Result<zeroize::Zeroizing<Vec<u8>>, MpcError> {
    let wire = Wire::V1(WireV1 {
        session_id: session_id.to_vec(),
        body,
    });
    // Round-2 DKG packages carry secret shares: one exact allocation, handed over whole.
    crate::mpc::encode_secret(&wire)
        .map_err(|e| MpcError::Internal(format!("cannot encode eddsa message: {e}")))
}

pub(super) fn bad(from: PartyIndex, reason: impl Into<String>) -> MpcError {
    MpcError::BadMessage {
        from,
        reason: reason.into(),
    }
}

/// Decodes one payload from `from`, checking version, session and that nothing trails it.
pub(super) fn decode(
    session_id: &[u8],
    from: PartyIndex,
    payload: &[u8],
) -> Result<Body, MpcError> {
    let mut reader = payload;
    let wire: Wire = ciborium::de::from_reader(&mut reader).map_err(|e| {
        bad(
            from,
            format!("payload is not an eddsa v1 message: {}", cbor_error(&e)),
        )
    })?;
    if !reader.is_empty() {
        return Err(bad(from, "trailing bytes after the message"));
    }
    // Only the canonical encoding is accepted (ciborium tolerates, for example, arrays that
    // announce more elements than a fixed-size field reads), so one value has one encoding.
    let mut canonical = Zeroizing::new(Vec::with_capacity(payload.len()));
    ciborium::ser::into_writer(&wire, &mut *canonical)
        .map_err(|e| MpcError::Internal(format!("cannot re-encode eddsa message: {e}")))?;
    if canonical.as_slice() != payload {
        return Err(bad(from, "non-canonical encoding"));
    }
    let Wire::V1(v1) = wire;
    if v1.session_id != session_id {
        return Err(bad(from, "message of another session"));
    }
    Ok(v1.body)
}

pub(super) fn broadcast(session_id: &[u8], body: Body) -> Result<OutgoingMessage, MpcError> {
    Ok(OutgoingMessage {
        to: None,
        payload: encode(session_id, body)?,
    })
}

/// Refuses a message delivered as broadcast when its round is point-to-point, or the reverse.
pub(super) fn expect_delivery(
    from: PartyIndex,
    broadcast: bool,
    round_is_broadcast: bool,
    what: &str,
) -> Result<(), MpcError> {
    match (broadcast, round_is_broadcast) {
        (false, true) => Err(bad(from, format!("{what} must be broadcast"))),
        (true, false) => Err(bad(from, format!("{what} must be point-to-point"))),
        _ => Ok(()),
    }
}

/// Refuses a message of a round that `protocol` does not have.
pub(super) fn unexpected(from: PartyIndex, body: &Body, protocol: &str) -> MpcError {
    bad(
        from,
        format!("unexpected {} message in {protocol}", body.kind()),
    )
}

/// Refuses a second message of one round from `from`.
pub(super) fn expect_first<T>(
    received: &std::collections::BTreeMap<PartyIndex, T>,
    from: PartyIndex,
    what: &str,
) -> Result<(), MpcError> {
    if received.contains_key(&from) {
        return Err(bad(from, format!("duplicate {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::super::testutil::*;
    use super::super::{Dkg, Sign, hex};
    use super::*;
    use crate::mpc::{IncomingMessage, Step};

    #[test]
    fn wrong_round_and_misrouted_messages_are_rejected() {
        let shares = run_dkg(3, 2);
        let (mut dkg, _) = Dkg::start(SESSION, 0, 3, 2, &mut OsRng).expect("start");
        let (mut sign, _) =
            Sign::start(&shares[0], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        let (_, sign1_out) =
            Sign::start(&shares[1], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        let (_, dkg1_out) = Dkg::start(SESSION, 1, 3, 2, &mut OsRng).expect("start");
        let commit = sign1_out[0].payload.clone();
        let round1 = dkg1_out[0].payload.clone();
        let round2 = encode(
            SESSION,
            Body::DkgRound2(Box::new(dkg::round2::Package::new(
                *shares[1].key_package.signing_share(),
            ))),
        )
        .expect("encodes");
        let msg = |from, broadcast, payload: &Vec<u8>| IncomingMessage {
            from,
            broadcast,
            payload: payload.clone().into(),
        };

        // Signing message to the DKG, DKG message to signing.
        assert!(is_bad(dkg.handle(msg(1, true, &commit))));
        assert!(is_bad(sign.handle(msg(1, true, &round1))));
        // A round-2 package before the echo round.
        assert!(is_bad(dkg.handle(msg(1, false, &round2))));
        // Wrong broadcast flag, wrong session, unknown version, garbage.
        assert!(is_bad(dkg.handle(msg(1, false, &round1))));
        let other_session = {
            let mut v = Vec::new();
            ciborium::ser::into_writer(
                &Wire::V1(WireV1 {
                    session_id: b"other".to_vec(),
                    body: Body::DkgEcho(vec![0; 32]),
                }),
                &mut v,
            )
            .expect("encodes");
            v
        };
        assert!(is_bad(dkg.handle(msg(1, true, &other_session))));
        let v2 = {
            let value = ciborium::Value::Map(vec![(
                ciborium::Value::Text("V2".into()),
                ciborium::Value::Map(vec![]),
            )]);
            let mut v = Vec::new();
            ciborium::ser::into_writer(&value, &mut v).expect("encodes");
            v
        };
        assert!(is_bad(dkg.handle(msg(1, true, &v2))));
        assert!(is_bad(dkg.handle(msg(1, true, &vec![0xff; 10]))));
        let mut trailing = round1.clone();
        trailing.push(0);
        assert!(is_bad(dkg.handle(msg(1, true, &trailing))));
        // Echo of the wrong length.
        let short_echo = encode(SESSION, Body::DkgEcho(vec![0; 31])).expect("encodes");
        assert!(is_bad(dkg.handle(msg(1, true, &short_echo))));
        // Unknown sender / self.
        assert!(matches!(
            expect_err(dkg.handle(msg(3, true, &round1))),
            MpcError::BadMessage { from: 3, .. }
        ));
        assert!(matches!(
            expect_err(sign.handle(msg(2, true, &commit))),
            MpcError::BadMessage { from: 2, .. }
        ));

        // The machines are still usable: the genuine messages are accepted once.
        assert!(matches!(
            dkg.handle(msg(1, true, &round1)),
            Ok(Step::Continue(_))
        ));
        assert!(is_bad(dkg.handle(msg(1, true, &round1))), "duplicate");
        assert!(matches!(
            sign.handle(msg(1, true, &commit)),
            Ok(Step::Continue(_))
        ));
        assert!(is_bad(sign.handle(msg(1, true, &commit))), "duplicate");
    }

    #[test]
    fn wire_snapshot() {
        let echo = encode(b"sid", Body::DkgEcho(vec![0xab; 32])).expect("encodes");
        assert_eq!(hex(&echo), ECHO_FIXTURE);
    }

    const ECHO_FIXTURE: &str = "a1625631a26a73657373696f6e5f69644373696464626f6479a167446b674563686f5820abababababababababababababababababababababababababababababababab";
}
