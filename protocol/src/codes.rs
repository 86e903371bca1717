//! The stable failure vocabulary: the enclave's [`ErrorCode`]s and the session-only codes that
//! together make [`FailureCode`], each encoded as its snake_case name.

use serde::{Deserialize, Serialize};

/// Defines [`ErrorCode`], [`FailureCode`] (every enclave code plus the session-only ones), their
/// names and the mapping between them from one list, so the two cannot drift apart.
macro_rules! codes {
    (
        enclave { $( $(#[$em:meta])* $ev:ident => $es:literal, )* }
        session { $( $(#[$sm:meta])* $sv:ident => $ss:literal, )* }
    ) => {
        /// Stable error codes the enclave returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$em])* $ev, )*
        }

        impl ErrorCode {
            /// The stable snake_case name (what it encodes as).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$ev => $es, )*
                }
            }
        }

        /// Why a session failed at one participant: every enclave [`ErrorCode`] plus the codes
        /// only a session has. One vocabulary for the enclave's outcomes, the coordinator's
        /// failover and its audit records; encoded as the snake_case name (the wire bytes of the
        /// string it replaced).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum FailureCode {
            $(
                #[doc = concat!("See [`ErrorCode::", stringify!($ev), "`].")]
                $ev,
            )*
            $( $(#[$sm])* $sv, )*
        }

        impl FailureCode {
            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$ev => $es, )*
                    $( Self::$sv => $ss, )*
                }
            }
        }

        impl From<ErrorCode> for FailureCode {
            fn from(code: ErrorCode) -> Self {
                match code {
                    $( ErrorCode::$ev => Self::$ev, )*
                }
            }
        }
    };
}

codes! {
    enclave {
        /// The frame could not be decoded or the request is invalid.
        BadRequest => "bad_request",
        /// The frame's protocol version is not spoken by this enclave.
        UnsupportedVersion => "unsupported_version",
        /// The request is not allowed in the enclave's current lifecycle phase.
        WrongPhase => "wrong_phase",
        /// The Nitro Secure Module (or its simulation) failed.
        Nsm => "nsm",
        /// The request is well formed but refused: approvals, expiry, unknown key.
        Refused => "refused",
        /// The request is already being worked on by another session at this enclave (retry
        /// elsewhere, or after that session ends or is aborted).
        InProgress => "in_progress",
        /// The request id was already used: this enclave signed (or generated) it before.
        Replayed => "replayed",
        /// The request's creation time is after this enclave's clock: it becomes valid then.
        /// Retry at its creation time (its creation time is a "not before", ADR 0011).
        NotYet => "not_yet",
        /// The enclave is at one of its caps on live sessions (signing, or setup: auxiliary
        /// info, key generation, presignatures) or on the session ids it remembers: retry
        /// elsewhere or a little later (sessions end, idle ones expire, ids expire).
        Busy => "busy",
        /// The enclave holds as many presignatures (ready or being made) as it may: ask for no
        /// more until some are used.
        Limit => "limit",
        /// A peer failed attestation or misbehaved.
        Peer => "peer",
        /// Sealing or unsealing failed: refused by the sealing authority (KMS key policy), or the
        /// blob or envelope does not authenticate.
        Sealing => "sealing",
        /// The sealing authority (KMS through the parent) cannot be reached now: retry later.
        SealingUnavailable => "sealing_unavailable",
        /// Refused for membership (ADR 0013): enrolling twice, a genesis or roster that does not
        /// list this enclave, a peer that is not the roster's node. The message starts with the
        /// stable kind (`already_enrolled: …`).
        Membership => "membership",
        /// An internal error; the message says which.
        Internal => "internal",
    }
    session {
        /// The threshold protocol failed (a peer misbehaved or a message did not verify); the
        /// culprits are named when known.
        Protocol => "protocol",
        /// The named presignature does not exist (any more) at this enclave.
        NoPresignature => "no_presignature",
        /// The relay aborted the session (another participant failed or it timed out).
        Aborted => "aborted",
        /// The participant did not answer (set by the relay, never by an enclave).
        Unreachable => "unreachable",
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
