//! The stable error codes, their HTTP statuses, and the error body.

use serde::{Deserialize, Serialize};

/// An error's code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable code (see [`ErrorCode`]).
    pub code: String,
    /// What happened (no secrets).
    pub message: String,
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The stable error codes of the API and their HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not JSON of the expected shape.
    MalformedRequest,
    /// 400: well-formed but invalid (lengths, thresholds, versions, cluster name).
    InvalidRequest,
    /// 400: the request's validity window is over (or has not begun).
    RequestExpired,
    /// 400: no adapter for the chain (or network) named.
    UnknownChain,
    /// 400: an address that does not parse or belongs to another network.
    BadAddress,
    /// 400: the spent outputs do not cover amount and fee.
    InsufficientFunds,
    /// 401: no `Authorization: Cohort-Ed25519 ...` header, or one that does not parse.
    Unauthenticated,
    /// 401: the credential is unknown or revoked, or the signature does not verify.
    BadCredential,
    /// 401: the credential's validity ended.
    CredentialExpired,
    /// 401: the call's timestamp is more than a minute from the coordinator's clock.
    StaleRequest,
    /// 401: the call's nonce was used before (a replayed call).
    Replayed,
    /// 403: approvals missing, unknown or not over this request.
    Unapproved,
    /// 403: the credential's role does not allow this route.
    Forbidden,
    /// 404: no such route, key or record.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 409: the idempotency key was used for a different request.
    IdempotencyConflict,
    /// 409: the key id is taken.
    KeyExists,
    /// 409: genesis was already submitted.
    GenesisExists,
    /// 409: the credential name or public key is registered already.
    CredentialExists,
    /// 409: revoking the last usable admin credential would lock every admin out.
    LastAdmin,
    /// 409: the cluster has no completed genesis yet.
    NotInitialised,
    /// 409: the enclaves refused (e.g. the request id was already used).
    Refused,
    /// 413: the body exceeds the size limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 502: every quorum tried failed.
    SigningFailed,
    /// 502: key generation failed (a node failed, or the nodes disagree).
    KeygenFailed,
    /// 502: the request was in flight when its coordinator stopped, and cannot be resumed.
    Interrupted,
    /// 502: the chain's JSON-RPC endpoint failed or refused (or none is configured).
    RpcFailed,
    /// 503: fewer healthy nodes than the threshold.
    NoQuorum,
    /// 504: the request's deadline passed.
    DeadlineExceeded,
    /// 500: storage failed.
    Storage,
    /// 500: a bug.
    Internal,
}

impl ErrorCode {
    /// The code's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::InvalidRequest => "invalid_request",
            Self::RequestExpired => "request_expired",
            Self::UnknownChain => "unknown_chain",
            Self::BadAddress => "bad_address",
            Self::InsufficientFunds => "insufficient_funds",
            Self::Unauthenticated => "unauthenticated",
            Self::BadCredential => "bad_credential",
            Self::CredentialExpired => "credential_expired",
            Self::StaleRequest => "stale_request",
            Self::Replayed => "replayed",
            Self::Unapproved => "unapproved",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::KeyExists => "key_exists",
            Self::GenesisExists => "genesis_exists",
            Self::CredentialExists => "credential_exists",
            Self::LastAdmin => "last_admin",
            Self::NotInitialised => "not_initialised",
            Self::Refused => "refused",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::SigningFailed => "signing_failed",
            Self::KeygenFailed => "keygen_failed",
            Self::Interrupted => "interrupted",
            Self::RpcFailed => "rpc_failed",
            Self::NoQuorum => "no_quorum",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }

    /// Its HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::MalformedRequest
            | Self::InvalidRequest
            | Self::RequestExpired
            | Self::UnknownChain
            | Self::BadAddress
            | Self::InsufficientFunds => 400,
            Self::Unauthenticated
            | Self::BadCredential
            | Self::CredentialExpired
            | Self::StaleRequest
            | Self::Replayed => 401,
            Self::Unapproved | Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::IdempotencyConflict
            | Self::KeyExists
            | Self::GenesisExists
            | Self::CredentialExists
            | Self::LastAdmin
            | Self::NotInitialised
            | Self::Refused => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::SigningFailed | Self::KeygenFailed | Self::Interrupted | Self::RpcFailed => 502,
            Self::NoQuorum => 503,
            Self::DeadlineExceeded => 504,
            Self::Storage | Self::Internal => 500,
        }
    }

    /// Whether a request that failed with this code may run again when resubmitted under the
    /// same idempotency key (the cluster could not serve it then; nothing was signed).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::NoQuorum | Self::DeadlineExceeded | Self::SigningFailed
        )
    }

    /// Every code, for documentation checks.
    pub const ALL: [ErrorCode; 33] = [
        Self::MalformedRequest,
        Self::InvalidRequest,
        Self::RequestExpired,
        Self::UnknownChain,
        Self::BadAddress,
        Self::InsufficientFunds,
        Self::Unauthenticated,
        Self::BadCredential,
        Self::CredentialExpired,
        Self::StaleRequest,
        Self::Replayed,
        Self::Unapproved,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::IdempotencyConflict,
        Self::KeyExists,
        Self::GenesisExists,
        Self::CredentialExists,
        Self::LastAdmin,
        Self::NotInitialised,
        Self::Refused,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::SigningFailed,
        Self::KeygenFailed,
        Self::Interrupted,
        Self::RpcFailed,
        Self::NoQuorum,
        Self::DeadlineExceeded,
        Self::Storage,
        Self::Internal,
    ];
}

/// An API error: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// The message (no secrets).
    pub message: String,
}

impl ApiError {
    /// An error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().into(),
                message: self.message.clone(),
            },
        }
    }
}

impl From<adapters::AdapterError> for ApiError {
    fn from(e: adapters::AdapterError) -> Self {
        use adapters::AdapterError as A;
        let code = match &e {
            A::UnknownChain { .. } | A::UnknownNetwork { .. } => ErrorCode::UnknownChain,
            A::BadAddress { .. } => ErrorCode::BadAddress,
            A::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            _ => ErrorCode::InvalidRequest,
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(feature = "server")]
impl From<crate::rpc::RpcError> for ApiError {
    fn from(e: crate::rpc::RpcError) -> Self {
        ApiError::new(ErrorCode::RpcFailed, e.to_string())
    }
}

#[cfg(feature = "server")]
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(ErrorCode::Storage, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
