//! Culprits of a failed cggmp21 run: cggmp21 names the parties it blames only in its errors'
//! `Debug` text, so that text is parsed here, in one place, against the texts its errors print.

use super::{MpcError, PartyIndex};

/// Maps a cggmp21 error to [`MpcError`].
///
/// cggmp21's error types are opaque: the blamed parties are only visible in their `Debug`
/// output. We read them from there (format of cggmp21 0.6.3 / cggmp21-keygen 0.5 /
/// round-based 0.4, covered by tests) and keep only indices below `n`. The reason is the
/// `Display` chain, which carries no secret.
pub(super) fn protocol_error(err: &(dyn std::error::Error + 'static), n: u16) -> MpcError {
    let debug = format!("{err:?}");
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        reason.push_str(": ");
        reason.push_str(&e.to_string());
        source = e.source();
    }
    classify(&debug, reason, n)
}

/// The [`MpcError`] for a cggmp21 error printed as `debug` (its `Debug` text), with `reason`.
fn classify(debug: &str, reason: String, n: u16) -> MpcError {
    let mut culprits = blamed_parties(debug);
    culprits.retain(|&j| j < n);
    culprits.sort_unstable();
    culprits.dedup();
    // `KeygenError(Aborted(..))`, `SigningError(InvalidArgs(..))`, ...
    let kind = debug.split_once('(').map_or("", |(_, rest)| rest);
    if kind.starts_with("InvalidArgs") || kind.starts_with("InvalidKeyShare") {
        MpcError::BadInput(reason)
    } else if kind.starts_with("Aborted") || kind.starts_with("IoError") || !culprits.is_empty() {
        // Our delivery never fails, so an i/o error is a peer message the router rejected.
        MpcError::Aborted { culprits, reason }
    } else {
        MpcError::Internal(reason)
    }
}

/// Party indices named in a cggmp21 error's `Debug` output.
fn blamed_parties(debug: &str) -> Vec<PartyIndex> {
    let mut out = Vec::new();
    // `AbortBlame { faulty_party: j, .. }` (keygen, aux info) and the router's
    // `AttemptToOverwriteReceivedMsg { sender: j, .. }`.
    for key in ["faulty_party: ", "sender: "] {
        for (pos, _) in debug.match_indices(key) {
            out.extend(leading_number(&debug[pos + key.len()..]));
        }
    }
    // Keygen `FeldmanVerificationFailed { parties: [j, ..] }` (lists of plain numbers only).
    for (pos, _) in debug.match_indices("parties: [") {
        let list = &debug[pos + "parties: [".len()..];
        if let Some(end) = list.find(']') {
            let items: Vec<_> = list[..end].split(", ").map(str::parse::<u16>).collect();
            if items.iter().all(Result::is_ok) {
                out.extend(items.into_iter().flatten());
            }
        }
    }
    // Signing and keygen variants holding `[(j, msg ids..), ..]`.
    for marker in [
        "EncProofOfK(",
        "InvalidPsi(",
        "InvalidPsiPrimePrime(",
        "Round1aNotReliable(",
        "Round1NotReliable(",
    ] {
        for (pos, _) in debug.match_indices(marker) {
            let rest = &debug[pos + marker.len()..];
            if rest.starts_with('[') {
                out.extend(tuple_list_heads(rest));
            }
        }
    }
    out
}

/// First elements of the tuples of a `Debug`-printed list `[(a, ..), (b, ..)]`.
fn tuple_list_heads(list: &str) -> Vec<PartyIndex> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    for (idx, c) in list.char_indices() {
        match c {
            '[' | '(' | '{' => {
                depth += 1;
                if c == '(' && depth == 2 {
                    out.extend(leading_number(&list[idx + 1..]));
                }
            }
            ']' | ')' | '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    out
}

fn leading_number(s: &str) -> Option<PartyIndex> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn culprits_parsed_from_cggmp21_errors() {
        let keygen = "KeygenError(Aborted(InvalidSchnorrProof([AbortBlame { faulty_party: 2, data_message: 4, proof_message: 9 }])))";
        assert_eq!(blamed_parties(keygen), [2]);
        let feldman = "KeygenError(Aborted(FeldmanVerificationFailed { parties: [1, 3] }))";
        assert_eq!(blamed_parties(feldman), [1, 3]);
        let psi = "SigningError(Aborted(InvalidPsi([(1, 3, 7, (Some(InvalidProof(EqualityCheck(2))), None, None)), (4, 5, 6, (None, None, None))])))";
        assert_eq!(blamed_parties(psi), [1, 4]);
        let router = "SigningError(IoError(RouteReceivedError(ProcessMessage(AttemptToOverwriteReceivedMsg { msgs_ids: [1, 2], sender: 3 }))))";
        assert_eq!(blamed_parties(router), [3]);
        assert!(blamed_parties("SigningError(Aborted(MismatchedDelta))").is_empty());
    }

    /// The `Debug` texts cggmp21 0.6.3 printed in this module's tests (a malicious Paillier
    /// modulus in auxiliary-info generation, a tampered keygen share, tampered presigning
    /// messages), with the parties each blames and the error it becomes.
    #[test]
    fn real_cggmp21_error_texts() {
        let aborted = |culprits: &[PartyIndex]| MpcError::Aborted {
            culprits: culprits.to_vec(),
            reason: "r".into(),
        };
        let cases: [(&str, MpcError); 6] = [
            (
                "KeyRefreshError(InternalError(PiMod(Error(FindResidue))))",
                MpcError::Internal("r".into()),
            ),
            (
                "KeyRefreshError(Aborted(ProtocolAborted { reason: InvalidRingPedersenParameters, parties: [AbortBlame { faulty_party: 1, data_message: 2, proof_message: 2 }] }))",
                aborted(&[1]),
            ),
            (
                "KeyRefreshError(Aborted(ProtocolAborted { reason: InvalidModProof, parties: [AbortBlame { faulty_party: 1, data_message: 2, proof_message: 3 }] }))",
                aborted(&[1]),
            ),
            (
                "KeygenError(Aborted(FeldmanVerificationFailed { parties: [2] }))",
                aborted(&[2]),
            ),
            (
                "SigningError(Aborted(InvalidPsi([(1, 0, 3, (Some(InvalidProof(EqualityCheck(3))), None, None))])))",
                aborted(&[1]),
            ),
            (
                "SigningError(Aborted(InvalidPsiPrimePrime([(1, 0, 4)])))",
                aborted(&[1]),
            ),
        ];
        for (debug, expected) in cases {
            assert_eq!(classify(debug, "r".into(), 3), expected, "{debug}");
        }
        // Indices out of the run's range are dropped.
        assert_eq!(
            classify(
                "KeygenError(Aborted(FeldmanVerificationFailed { parties: [2] }))",
                "r".into(),
                2
            ),
            MpcError::Aborted {
                culprits: vec![],
                reason: "r".into()
            }
        );
    }
}
