//! The coordinator's public JSON API: request and response bodies, and the stable error codes.
//! Byte strings travel as lowercase hex. `openapi.json` in this crate describes the same types;
//! the CLI and the tests use these definitions as the client side.

mod admins;
mod auth;
mod error;
mod hex;
mod images;
mod import;
mod moves;
mod names;
mod path;
mod recover;
mod requests;
mod responses;
mod roster;
mod transactions;

pub use admins::{AdminChange, AdminsSetResult, AdminsStatus, NodeFailure, SetAdminsJson};
pub use auth::{
    AUTH_SCHEME, ApiKey, AuthHeader, CredentialInfo, CredentialList, KeyFileError, MAX_SKEW_SECS,
    PublicCredential, RegisterCredential, Role, signing_bytes, valid_name,
};
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
pub use hex::{ClusterHex, Hex, buf};
pub use images::{AcceptImagesJson, ImageChange, ImagesStatus};
pub use import::{ImportBody, ImportKeyJson, LegacyDealerJson, ReshareKeyJson, SealedDealingJson};
pub use moves::{
    CommitRosterBody, JoiningProxy, MoveRosterBody, MoveStep, MovedKeyJson, NodeCommitted,
    NodeLeft, PartyFailure, PartyMoved, RosterCommitResult, RosterMovedResult,
};
pub use names::{MAX_IDEMPOTENCY_KEY_LEN, MAX_KEY_ID_LEN, valid_idempotency_key, valid_key_id};
pub use path::{parse_path, path_string};
pub use recover::{
    KeyCheckError, MAX_RECOVER_KEYS, NotRestored, PendingGeneration, RecoverReport, RecoverRequest,
};
pub use requests::{
    ApprovalJson, ApprovedJson, AttestRequest, CreateKeyJson, EnrollRequest, GenesisBody,
    GenesisJson, GenesisV2Json, ImageJson, MIN_NONCE_LEN, PayloadJson, PolicyJson, PresignatureUse,
    RosterEntryJson, SignRequestJson, Wire,
};
pub use responses::{
    AuditPage, AuditRecordJson, AuditVerification, ClusterStatus, EnrolledNode, GenesisStatus,
    KeyBackups, KeyInfo, KeyList, KeyReceipts, NodeBackup, NodeDocument, NodeReceipt, NodeStatus,
    PoolLevel, Reshared, SignResult, SignatureInfo,
};
pub use roster::{
    ChangeRosterJson, HeldStatementJson, KeptNode, NodePrepared, PrepareRosterBody,
    RosterCommitted, RosterDiffJson, RosterPreparedResult, RosterProposal, RosterProposedResult,
    RosterStatus,
};
pub use transactions::{
    AddressInfo, AssembleRequest, AssembledTransaction, PrepareRequest, PreparedTransaction,
    SenderRef,
};
