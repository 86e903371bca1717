#![doc = include_str!("../README.md")]

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

pub mod admins;
mod arn;
pub mod backups;
mod codes;
mod endpoint;
pub mod genesis;
pub mod http1;
pub mod images;
pub mod import;
pub mod inventory;
pub mod parent;
pub mod peer;
pub mod policy;
pub mod receipt;
pub mod relay;
pub mod reshare;
pub mod roster;
pub mod session;
pub mod skip;
pub use arn::{ArnError, KmsKeyArn, MAX_KMS_KEY_ARN_LEN};
pub use codes::ErrorCode;
pub use endpoint::{Endpoint, EndpointError};

/// The only protocol version this build speaks. Every frame carries it.
pub const PROTOCOL_VERSION: u64 = 1;

/// Largest payload a frame may carry (8 MiB). Protocol rounds of threshold ECDSA with Paillier
/// proofs stay far below it; anything larger is refused before it is read.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Size of the big-endian length prefix of a frame.
pub const FRAME_HEADER_LEN: usize = 4;

/// Largest nonce an attestation request may carry (the NSM's own limit).
pub const MAX_NONCE_LEN: usize = 512;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`] bytes.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced (or produced) payload length.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// Fewer bytes than the frame (or its CBOR payload) needs.
    #[error("truncated frame: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes needed (for the payload: as announced by the prefix).
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Bytes left over after the frame's single message.
    #[error("{count} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u64),
    /// The payload is not a well-formed message (bad CBOR, unknown variant or field, ...).
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Reads the length prefix of a frame and checks it against [`MAX_FRAME_LEN`].
///
/// Readers call this on the first [`FRAME_HEADER_LEN`] bytes before reading the payload.
pub fn payload_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(len)
}

/// Encodes `message` as one complete frame (length prefix, version, message).
pub fn encode_frame<M: Serialize>(message: &M) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; FRAME_HEADER_LEN];
    ciborium::into_writer(&(PROTOCOL_VERSION, message), &mut buf)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = buf.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let prefix = u32::try_from(len).expect("len <= MAX_FRAME_LEN fits in u32");
    buf[..FRAME_HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(buf)
}

/// Decodes exactly one complete frame: no byte missing, no byte left over.
pub fn decode_frame<M: DeserializeOwned>(frame: &[u8]) -> Result<M, FrameError> {
    let Some((header, payload)) = frame.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(FrameError::Truncated {
            needed: FRAME_HEADER_LEN,
            got: frame.len(),
        });
    };
    let len = payload_len(*header)?;
    match payload.len() {
        got if got < len => Err(FrameError::Truncated { needed: len, got }),
        got if got > len => Err(FrameError::TrailingBytes { count: got - len }),
        _ => decode_payload(payload),
    }
}

/// Decodes the payload of a frame whose length prefix has already been read and checked.
pub fn decode_payload<M: DeserializeOwned>(payload: &[u8]) -> Result<M, FrameError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut rest = payload;
    let (version, body): (u64, ciborium::Value) =
        ciborium::from_reader(&mut rest).map_err(|e| match e {
            ciborium::de::Error::Io(_) => FrameError::Truncated {
                needed: payload.len() + 1,
                got: payload.len(),
            },
            other => FrameError::Malformed(other.to_string()),
        })?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { count: rest.len() });
    }
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    body.deserialized()
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

/// A request from the parent proxy to its enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EnclaveRequest {
    /// Produce an attestation document binding the enclave's identity keys, with the caller's
    /// nonce (at most [`MAX_NONCE_LEN`] bytes).
    Attest {
        /// Caller-chosen freshness nonce.
        nonce: Option<ByteBuf>,
    },
    /// Report the enclave's lifecycle phase and readiness.
    Status,
    /// Make this enclave's long-term node key, sealed under the KMS key named here, which it
    /// uses for every KMS call from then on (ADR 0013). Only once: a second `Enroll`, or one
    /// after the node key was restored, is refused (`membership`).
    Enroll {
        /// The node's KMS key (a full key ARN, never an alias).
        kms_key_arn: KmsKeyArn,
    },
    /// Initialise the cluster at this enclave, which is node `node`.
    Genesis {
        /// The genesis, approved by its admin quorum.
        request: policy::Approved<policy::Genesis>,
        /// This enclave's node index.
        node: u16,
    },
    /// Initialise the cluster at this enclave from a genesis with a roster (ADR 0013): the
    /// enclave takes the index that lists its own node key. Needs phase `enrolled`.
    GenesisV2 {
        /// The genesis, approved by its admin quorum.
        request: policy::Approved<genesis::Genesis>,
    },
    /// Join the cluster at a pending roster change that lists this enclave's node key (issue
    /// 20, the join step): the enclave checks the chain from the genesis on and seals it as its
    /// genesis blob; it takes the index that lists its node key in the pending roster, and no
    /// part in the cluster's work until the change is committed. Needs phase `enrolled` (or
    /// `joining`, for a change that replaced the one it joined).
    JoinCluster {
        /// The chain, the change and a member's statement.
        join: roster::JoinCluster,
    },
    /// The prepare step's gate of a pending roster change (issue 20): answer this node's
    /// statement that it holds the change under its chain, or, shown every node's, check them
    /// and seal this node as prepared ([`roster::PrepareRoster`]). Needs phase `operational`
    /// (a member) or `joining`.
    PrepareRoster {
        /// The change's hash and the statements.
        prepare: roster::PrepareRoster,
    },
    /// The commit step of a pending roster change (issue 20): answer this node's statement
    /// that it holds every key's incoming generation, or, shown every node's of the new roster
    /// over the same key set, make the new roster and those generations current
    /// ([`roster::commit::CommitRoster`]). Needs phase `operational` (a member) or `joining`.
    CommitRoster {
        /// The change's hash and the statements.
        commit: roster::commit::CommitRoster,
    },
    /// Reload sealed state after a restart: the genesis blob, auxiliary info and key shares.
    Restore {
        /// Sealed blobs, as the enclave returned them.
        blobs: Vec<ByteBuf>,
    },
    /// Verify peers' attestation documents and admit them for peer channels.
    AdmitPeers {
        /// One document per peer.
        documents: Vec<session::PeerDocument>,
    },
    /// Start a threshold-protocol session.
    StartSession {
        /// Session id (32 bytes, never reused).
        session: ByteBuf,
        /// Node indices taking part, in protocol order.
        participants: Vec<u16>,
        /// What to compute.
        kind: session::SessionKind,
    },
    /// Deliver envelopes of a running session.
    Deliver {
        /// The session.
        session: ByteBuf,
        /// Envelopes addressed to (or broadcast to) this enclave.
        envelopes: Vec<peer::PeerEnvelope>,
    },
    /// Abandon a running session (the relay gave up on it: a peer died or was too slow). A
    /// request the session held in flight may be signed again by another quorum; a presignature
    /// already spent stays spent. Answered with a `Failed { code: "aborted" }` outcome, also for
    /// a session the enclave does not know (aborting is idempotent).
    AbortSession {
        /// The session.
        session: ByteBuf,
    },
    /// Report what this node holds (issue 20, disaster recovery): one page of its keys, in
    /// key-id order, signed by its node key with the caller's nonce. Changes nothing.
    Inventory {
        /// Caller-chosen freshness nonce ([`inventory::MIN_INVENTORY_NONCE`] to
        /// [`inventory::MAX_INVENTORY_NONCE`] bytes).
        nonce: ByteBuf,
        /// The page starts after this key id (`None`: the first page).
        after: Option<String>,
    },
    /// Report the enclave's clock (any phase). Apart from `Status` so that an enclave image
    /// with it still answers an older coordinator's `Status`, and an older enclave answers
    /// this with an error, not a status its caller cannot read.
    Clock,
}

impl EnclaveRequest {
    /// The request's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Attest { .. } => "attest",
            Self::Status => "status",
            Self::Enroll { .. } => "enroll",
            Self::Genesis { .. } => "genesis",
            Self::GenesisV2 { .. } => "genesis_v2",
            Self::JoinCluster { .. } => "join_cluster",
            Self::PrepareRoster { .. } => "prepare_roster",
            Self::CommitRoster { .. } => "commit_roster",
            Self::Restore { .. } => "restore",
            Self::AdmitPeers { .. } => "admit_peers",
            Self::StartSession { .. } => "start_session",
            Self::Deliver { .. } => "deliver",
            Self::AbortSession { .. } => "abort_session",
            Self::Inventory { .. } => "inventory",
            Self::Clock => "clock",
        }
    }
}

impl fmt::Display for EnclaveRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// The enclave's lifecycle phase, as reported on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Generating identity keys and measuring itself.
    Booting,
    /// Identity keys exist and attestation works; no node key and no cluster genesis yet.
    Ready,
    /// The enclave holds its node key (made by `Enroll`, or restored) and waits for a genesis.
    Enrolled,
    /// Genesis done (or restored): the enclave takes part in the cluster.
    Operational,
    /// The enclave joined a pending roster change (or was restored so): it holds the
    /// cluster's chain and takes no part in its work until the change is committed.
    Joining,
    /// A committed roster change removed this node, and it dropped every share (or was
    /// restored so): it takes no part in the cluster's work any more (issue 20).
    Left,
    /// Boot failed; the enclave answers nothing but errors until restarted.
    BootFailed,
    /// The cluster worker panicked outside a protocol machine: its state is not trusted any
    /// more, and the enclave answers nothing but `status` (with the reason) until restarted
    /// (its state then comes back from its sealed blobs).
    Failed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Booting => "booting",
            Self::Ready => "ready",
            Self::Enrolled => "enrolled",
            Self::Operational => "operational",
            Self::Joining => "joining",
            Self::Left => "left",
            Self::BootFailed => "boot_failed",
            Self::Failed => "failed",
        })
    }
}

/// A response from the enclave to its parent proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EnclaveResponse {
    /// A COSE_Sign1 attestation document (raw bytes, as the NSM returns it).
    Attestation {
        /// The document.
        document: ByteBuf,
    },
    /// The enclave's lifecycle phase and readiness.
    Status {
        /// Current phase.
        phase: Phase,
        /// This enclave's node index, once genesis is known.
        node: Option<u16>,
        /// Keys it holds a share of.
        keys: u32,
        /// Presignatures ready in its memory.
        presignatures: u32,
        /// Whether pregenerated safe primes are ready for the next auxiliary-info run.
        primes_ready: bool,
        /// What went wrong, for operators: why the phase is `boot_failed` or `failed`, or the
        /// last panic contained to its session (the enclave still operational). Never a secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
        /// The Ed25519 identity key of this enclave process (32 bytes), as its attestation
        /// documents bind it. A hint only: a watcher that sees it change knows the enclave
        /// restarted and attests it again; it believes an identity only from a document.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<ByteBuf>,
        /// Worker threads it runs background protocol work on (presignatures and the like),
        /// one per CPU by default: the coordinator keeps that many presignature sessions
        /// running at this node while pools refill. Absent from older enclaves.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workers: Option<u16>,
    },
    /// Enrolled: the sealed node key to store (`node-key.blob` at the proxy) and its public half.
    Enrolled {
        /// The sealed node-key record.
        sealed: ByteBuf,
        /// The Ed25519 node key (32 bytes).
        node_key: ByteBuf,
        /// The KMS key it is sealed under.
        kms_key_arn: KmsKeyArn,
    },
    /// Genesis accepted: the sealed genesis state to store, and a receipt.
    GenesisAccepted {
        /// Sealed genesis state.
        sealed: ByteBuf,
        /// For a version-1 genesis: the identity key's signature over
        /// [`session::genesis_receipt_message`]. For version 2: the node key's signature over
        /// [`genesis::genesis_receipt_message`] of the cluster id and `node`.
        receipt: ByteBuf,
        /// The index this enclave found for itself (version 2); `None` for version 1.
        #[serde(default)]
        node: Option<u16>,
    },
    /// A pending roster change joined: the sealed genesis state to store (it replaces any
    /// before), the index the enclave found for itself in the pending roster, and its node key's
    /// [`roster::roster_proposed_message`] over the change — the statement every member of the
    /// change makes.
    Joined {
        /// Sealed genesis state.
        sealed: ByteBuf,
        /// This enclave's index in the pending roster.
        node: u16,
        /// The roster version the change makes.
        version: u32,
        /// Ed25519 signature (64 bytes) by the node key.
        statement: ByteBuf,
    },
    /// A node's word on a pending roster change ([`EnclaveRequest::PrepareRoster`]).
    RosterPrepared {
        /// The roster version the change makes.
        version: u32,
        /// The digest of the chain this node holds the change under
        /// ([`roster::chain_digest`], 32 bytes).
        chain: ByteBuf,
        /// Its node key's signature over [`roster::roster_held_message`] (64 bytes).
        statement: ByteBuf,
        /// Whether this node is prepared for the change (every node's statement checked and
        /// sealed), now or before: the parent could rewrite it, so a client checks
        /// `prepared_statement` instead.
        prepared: bool,
        /// When it is prepared: its node key's signature over
        /// [`roster::roster_prepared_message`] of the statements it sealed and the request's
        /// nonce.
        #[serde(default)]
        prepared_statement: Option<ByteBuf>,
        /// Whether this node is a joining node (else a member): the parent stores the blob
        /// only where its own record agrees (a joining node's genesis blob sits beside its
        /// `joined` marker).
        joining: bool,
        /// The sealed genesis state to store (it replaces the one before), when this answer
        /// sealed it.
        #[serde(default)]
        sealed: Option<ByteBuf>,
    },
    /// A node's word at a roster change's commit step ([`EnclaveRequest::CommitRoster`]).
    RosterCommitted {
        /// The roster version the change makes.
        version: u32,
        /// The digest of the key set this node holds incoming
        /// ([`roster::commit::keys_digest`], 32 bytes).
        keys: ByteBuf,
        /// How many keys the set holds.
        count: u32,
        /// Its node key's signature over [`roster::commit::keys_held_message`] (64 bytes).
        statement: ByteBuf,
        /// Once the node committed the change: its node key's signature over
        /// [`roster::commit::roster_set_message`]. A node asked again after its commit answers
        /// the same (its own statement as it committed on it, the blob sealed again).
        #[serde(default)]
        set_statement: Option<ByteBuf>,
        /// The sealed genesis state to store (it replaces the one before), when this answer
        /// sealed it: the first time the node vouches for a key set (it seals that set as the
        /// only one it ever vouches for, for this change), and when it committed (with
        /// `set_statement`; at a node that joined, its `joined` marker goes). The keys'
        /// incoming blobs become their current ones: the enclave reads the generation, not the
        /// name.
        #[serde(default)]
        sealed: Option<ByteBuf>,
        /// The key set `keys` is the digest of (public: each key's id, generation dealt from,
        /// facts' digest and confirmed digest), what a node the change removes is shown to
        /// leave ([`roster::commit::CommitRoster::keys`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        set: Vec<roster::commit::MovedKey>,
        /// With `set`: the digest of the new party set's auxiliary information the set's
        /// digest names, if any ([`roster::commit::set_digest`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aux: Option<ByteBuf>,
    },
    /// A node the roster change removes left ([`EnclaveRequest::CommitRoster`], shown that the
    /// change was committed): it dropped every share and its auxiliary information, and its
    /// phase is `left` from here on.
    RosterLeft {
        /// The roster version the change makes.
        version: u32,
        /// Its node key's signature over [`roster::commit::roster_left_message`] (64 bytes).
        statement: ByteBuf,
        /// The sealed genesis state to store (it replaces the one before); the parent deletes
        /// the node's key, incoming and auxiliary-information blobs, which it will never load.
        sealed: ByteBuf,
    },
    /// Sealed state reloaded.
    Restored {
        /// Keys whose shares were loaded.
        keys: Vec<String>,
        /// Whether auxiliary info was loaded.
        aux: bool,
        /// Blobs of an older format, sealed again in the current one: entry `i` replaces the
        /// request's blob `i` (`None`: keep it).
        #[serde(default)]
        resealed: Vec<Option<ByteBuf>>,
    },
    /// Peers admitted (and refused, with the reason).
    PeersAdmitted {
        /// Admitted node indices.
        nodes: Vec<u16>,
        /// Refused node indices and why.
        refused: Vec<(u16, String)>,
    },
    /// Progress of a session.
    Session(session::SessionUpdate),
    /// One page of what this node holds, and its node key's signature over
    /// [`inventory::InventoryReport::message`].
    Inventory {
        /// The page.
        report: Box<inventory::InventoryReport>,
        /// Ed25519 signature (64 bytes) by the node key.
        signature: ByteBuf,
    },
    /// The request failed.
    Error(EnclaveError),
    /// The enclave's clock when it answered (Unix seconds): the clock it checks peers'
    /// documents, requests and receipts against. Unsigned, so the parent's word like `Status`:
    /// a watcher comparing it with its own clock sees a drift early, or a parent's lie, never
    /// anything the enclaves rely on.
    Clock {
        /// Unix seconds.
        time: u64,
    },
}

impl EnclaveResponse {
    /// The response's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Attestation { .. } => "attestation",
            Self::Status { .. } => "status",
            Self::Enrolled { .. } => "enrolled",
            Self::GenesisAccepted { .. } => "genesis_accepted",
            Self::Joined { .. } => "joined",
            Self::RosterPrepared { .. } => "roster_prepared",
            Self::RosterCommitted { .. } => "roster_committed",
            Self::RosterLeft { .. } => "roster_left",
            Self::Restored { .. } => "restored",
            Self::PeersAdmitted { .. } => "peers_admitted",
            Self::Session(_) => "session",
            Self::Inventory { .. } => "inventory",
            Self::Error(_) => "error",
            Self::Clock { .. } => "clock",
        }
    }
}

impl fmt::Display for EnclaveResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// An error answered by the enclave. The message never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable detail (lowercase, no secrets).
    pub message: String,
}

impl EnclaveError {
    /// Builds an error from its code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for EnclaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EnclaveError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn attest() -> EnclaveRequest {
        EnclaveRequest::Attest {
            nonce: Some(ByteBuf::from(vec![0xAB; 4])),
        }
    }

    /// Byte snapshots: every encoding is pinned. A change here is a wire-format change and needs
    /// a new protocol version.
    #[test]
    fn snapshots() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                encode_frame(&attest()).unwrap(),
                "000000168201a166617474657374a1656e6f6e636544abababab",
            ),
            (
                encode_frame(&EnclaveRequest::Attest { nonce: None }).unwrap(),
                "000000128201a166617474657374a1656e6f6e6365f6",
            ),
            (
                encode_frame(&EnclaveRequest::Status).unwrap(),
                "00000009820166737461747573",
            ),
            (
                encode_frame(&EnclaveResponse::Attestation {
                    document: ByteBuf::from(vec![1, 2, 3]),
                })
                .unwrap(),
                "0000001d8201a16b6174746573746174696f6ea168646f63756d656e7443010203",
            ),
            (
                encode_frame(&EnclaveResponse::Status {
                    phase: Phase::Ready,
                    node: None,
                    keys: 0,
                    presignatures: 0,
                    primes_ready: false,
                    failure: None,
                    identity: None,
                    workers: None,
                })
                .unwrap(),
                "000000408201a166737461747573a5657068617365657265616479646e6f6465f6646b657973006d7072657369676e617475726573006c7072696d65735f7265616479f4",
            ),
            (
                encode_frame(&EnclaveResponse::Error(EnclaveError::new(
                    ErrorCode::WrongPhase,
                    "not ready",
                )))
                .unwrap(),
                "0000002d8201a1656572726f72a264636f64656b77726f6e675f7068617365676d657373616765696e6f74207265616479",
            ),
        ];
        for (bytes, expected) in cases {
            let expected: String = expected.split_whitespace().collect();
            assert_eq!(hex::encode(&bytes), expected);
        }
    }

    #[test]
    fn round_trip() {
        let requests = [attest(), EnclaveRequest::Status, EnclaveRequest::Clock];
        for r in requests {
            let frame = encode_frame(&r).unwrap();
            assert_eq!(decode_frame::<EnclaveRequest>(&frame).unwrap(), r);
        }
        let responses = [
            EnclaveResponse::Attestation {
                document: ByteBuf::from(vec![9; 100]),
            },
            EnclaveResponse::Status {
                phase: Phase::BootFailed,
                node: Some(2),
                keys: 3,
                presignatures: 4,
                primes_ready: true,
                failure: Some("boot failed: no nsm".into()),
                identity: None,
                workers: None,
            },
            EnclaveResponse::Status {
                phase: Phase::Failed,
                node: Some(1),
                keys: 3,
                presignatures: 0,
                primes_ready: false,
                failure: Some("the cluster worker panicked".into()),
                identity: Some(ByteBuf::from(vec![7; 32])),
                workers: None,
            },
            EnclaveResponse::Error(EnclaveError::new(ErrorCode::Nsm, "x")),
            EnclaveResponse::Error(EnclaveError::new(ErrorCode::Busy, "full")),
            EnclaveResponse::Error(EnclaveError::new(ErrorCode::Limit, "full")),
            EnclaveResponse::Clock {
                time: 1_796_000_000,
            },
        ];
        for r in responses {
            let frame = encode_frame(&r).unwrap();
            assert_eq!(decode_frame::<EnclaveResponse>(&frame).unwrap(), r);
        }
    }

    #[test]
    fn rejects_oversized_prefix_before_reading() {
        let mut frame = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_frame::<EnclaveRequest>(&frame),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
        assert!(payload_len(u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn rejects_oversized_message_on_encode() {
        let big = EnclaveResponse::Attestation {
            document: ByteBuf::from(vec![0; MAX_FRAME_LEN]),
        };
        assert!(matches!(
            encode_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_truncated() {
        let frame = encode_frame(&attest()).unwrap();
        assert_eq!(
            decode_frame::<EnclaveRequest>(&frame[..2]),
            Err(FrameError::Truncated { needed: 4, got: 2 })
        );
        let short = &frame[..frame.len() - 1];
        assert!(matches!(
            decode_frame::<EnclaveRequest>(short),
            Err(FrameError::Truncated { .. })
        ));
        // A prefix that matches a payload whose CBOR is cut short.
        let payload = &frame[4..frame.len() - 2];
        assert!(matches!(
            decode_payload::<EnclaveRequest>(payload),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut frame = encode_frame(&attest()).unwrap();
        frame.push(0);
        assert_eq!(
            decode_frame::<EnclaveRequest>(&frame),
            Err(FrameError::TrailingBytes { count: 1 })
        );
        // Trailing bytes inside the announced payload.
        let mut payload = frame[4..frame.len() - 1].to_vec();
        payload.push(0xf6);
        assert_eq!(
            decode_payload::<EnclaveRequest>(&payload),
            Err(FrameError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn rejects_unknown_version() {
        let mut frame = encode_frame(&attest()).unwrap();
        assert_eq!(frame[5], 0x01);
        frame[5] = 0x02;
        assert_eq!(
            decode_frame::<EnclaveRequest>(&frame),
            Err(FrameError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn rejects_unknown_variant_and_field() {
        let unknown_variant = encode_frame(&("launch_missiles", 1)).unwrap();
        assert!(matches!(
            decode_frame::<EnclaveRequest>(&unknown_variant),
            Err(FrameError::Malformed(_))
        ));

        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Extended {
            Attest { nonce: Option<ByteBuf>, extra: u8 },
        }
        let extra = encode_frame(&Extended::Attest {
            nonce: None,
            extra: 1,
        })
        .unwrap();
        assert!(matches!(
            decode_frame::<EnclaveRequest>(&extra),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            let _ = decode_frame::<EnclaveRequest>(&junk);
            let _ = decode_payload::<EnclaveResponse>(&junk);
        }
    }

    #[test]
    fn display_prints_kind_only() {
        assert_eq!(attest().to_string(), "attest");
        let doc = EnclaveResponse::Attestation {
            document: ByteBuf::from(b"secret-looking".to_vec()),
        };
        assert_eq!(doc.to_string(), "attestation");
    }
}
