//! The proxy's view of its enclave's attestation, kept fresh by a background task.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attestation::{Policy, verify};
use protocol::{EnclaveRequest, EnclaveResponse};
use rand::RngCore;
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::blobs::BlobStore;
use crate::link::EnclaveLink;

/// After an enclave (re)starts it is `ready` with no state: hand it its sealed blobs, and store
/// the blobs it sealed again in the current format in place of the old ones. Says when to try
/// again if the enclave still waits for its state.
async fn restore_if_needed(link: &EnclaveLink, store: &BlobStore) -> Restore {
    let Ok(EnclaveResponse::Status { phase, .. }) = link.call(&EnclaveRequest::Status).await else {
        return Restore::Done;
    };
    if phase != protocol::Phase::Ready {
        return Restore::Done;
    }
    let (names, blobs): (Vec<String>, Vec<_>) = match store.all() {
        Ok(b) if !b.is_empty() => b.into_iter().unzip(),
        Ok(_) => return Restore::Done,
        Err(e) => {
            warn!(error = %e, "cannot read sealed blobs");
            return Restore::Later;
        }
    };
    match link.call(&EnclaveRequest::Restore { blobs }).await {
        Ok(EnclaveResponse::Restored {
            keys,
            aux,
            resealed,
        }) => {
            let mut migrated = 0;
            for (name, blob) in names.iter().zip(resealed) {
                if let Some(blob) = blob {
                    match store.replace(name, &blob) {
                        Ok(()) => migrated += 1,
                        Err(e) => {
                            warn!(name, error = %e, "cannot store a resealed blob; the old one stays")
                        }
                    }
                }
            }
            info!(keys = keys.len(), aux, migrated, "enclave state restored");
            Restore::Done
        }
        Ok(EnclaveResponse::Error(e)) if e.code == protocol::ErrorCode::SealingUnavailable => {
            warn!(code = %e.code, reason = %e.message, "enclave could not restore its sealed state; retrying soon");
            Restore::Soon
        }
        Ok(EnclaveResponse::Error(e)) => {
            warn!(code = %e.code, reason = %e.message, "enclave refused its sealed state; retrying in a while");
            Restore::Later
        }
        Ok(other) => {
            warn!(response = %other, "unexpected answer to restore");
            Restore::Later
        }
        Err(e) => {
            warn!(error = %e, "restore failed");
            Restore::Soon
        }
    }
}

/// When to offer the sealed state again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restore {
    /// Nothing to restore, or restored.
    Done,
    /// KMS or the enclave was unreachable: soon.
    Soon,
    /// Refused (KMS policy, a blob that does not authenticate): an operator must act; retrying
    /// often would only fill the KMS audit trail.
    Later,
}

/// What the proxy knows of its enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AttestationState {
    /// Not attested yet (enclave not reachable, or connection lost).
    Pending {
        /// Why not yet.
        reason: String,
    },
    /// The last attestation verified.
    Attested {
        /// NSM module id.
        module_id: String,
        /// PCRs (hex) by index.
        pcrs: BTreeMap<String, String>,
        /// Identity keys (hex).
        identity: Identity,
        /// When the document was verified, ms since the epoch.
        attested_at_ms: u64,
    },
    /// The enclave's document failed verification: the proxy relays nothing.
    Refused {
        /// The verification failure.
        reason: String,
        /// Its stable kind (`pcr_mismatch`, `unknown_root`, ...).
        kind: String,
    },
}

/// Identity keys, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Ed25519 public key.
    pub signing: String,
    /// X25519 public key.
    pub encryption: String,
}

impl AttestationState {
    /// Whether frames may be relayed.
    pub fn is_attested(&self) -> bool {
        matches!(self, Self::Attested { .. })
    }

    /// Why frames may not be relayed.
    pub fn reason(&self) -> String {
        match self {
            Self::Pending { reason } => format!("enclave not attested yet: {reason}"),
            Self::Refused { reason, .. } => format!("enclave failed attestation: {reason}"),
            Self::Attested { .. } => "attested".into(),
        }
    }
}

/// Shared attestation state plus a way to ask for a re-attestation now.
pub struct Attestor {
    state: RwLock<AttestationState>,
    wake: Notify,
}

impl Default for Attestor {
    fn default() -> Self {
        Self {
            state: RwLock::new(AttestationState::Pending {
                reason: "starting".into(),
            }),
            wake: Notify::new(),
        }
    }
}

impl Attestor {
    /// The current state.
    pub fn state(&self) -> AttestationState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, next: AttestationState) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state != next {
            match &next {
                AttestationState::Attested { module_id, .. } => {
                    info!(module_id, "enclave attested")
                }
                AttestationState::Refused { reason, .. } => {
                    warn!(reason, "enclave refused: attestation failed")
                }
                AttestationState::Pending { reason } => info!(reason, "enclave pending"),
            }
        }
        *state = next;
    }

    /// The enclave connection broke: stop relaying until it attests again.
    pub fn connection_lost(&self, reason: String) {
        self.set(AttestationState::Pending { reason });
        self.wake.notify_one();
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One attestation round: fresh nonce, fetch, verify.
pub async fn attest_once(link: &EnclaveLink, policy: &Policy) -> AttestationState {
    let mut nonce = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let response = link
        .call(&EnclaveRequest::Attest {
            nonce: Some(nonce.clone().into()),
        })
        .await;
    let document = match response {
        Ok(EnclaveResponse::Attestation { document }) => document,
        Ok(EnclaveResponse::Error(e)) => {
            return AttestationState::Refused {
                reason: format!("enclave cannot attest: {e}"),
                kind: "enclave_error".into(),
            };
        }
        Ok(other) => {
            return AttestationState::Refused {
                reason: format!("unexpected {other} response to attest"),
                kind: "protocol".into(),
            };
        }
        Err(e) => {
            link.reset();
            return AttestationState::Pending {
                reason: e.to_string(),
            };
        }
    };
    let mut policy = policy.clone();
    policy.nonce = Some(nonce);
    let at = now();
    let verified = verify(&document, &policy, at)
        .and_then(|doc| attestation::aws::cross_check(&document, &policy, at).map(|_| doc));
    match verified {
        Ok(doc) => {
            let Some(identity) = doc.identity else {
                return AttestationState::Refused {
                    reason: "document binds no identity keys".into(),
                    kind: "user_data_mismatch".into(),
                };
            };
            AttestationState::Attested {
                module_id: doc.module_id,
                pcrs: doc
                    .pcrs
                    .iter()
                    .filter(|(_, v)| v.iter().any(|b| *b != 0))
                    .map(|(i, v)| (i.to_string(), hex::encode(v)))
                    .collect(),
                identity: Identity {
                    signing: hex::encode(identity.signing),
                    encryption: hex::encode(identity.encryption),
                },
                attested_at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            }
        }
        Err(e) => AttestationState::Refused {
            reason: e.to_string(),
            kind: e.kind().into(),
        },
    }
}

/// Keeps `attestor` fresh: attests now, then every `interval` (every second while pending),
/// and at once when woken by [`Attestor::connection_lost`].
pub async fn keep_attested(
    attestor: Arc<Attestor>,
    link: Arc<EnclaveLink>,
    policy: Policy,
    interval: Duration,
    blobs: Option<BlobStore>,
) {
    // After a refusal, the same enclave (same identity) is offered its blobs again only every
    // 30 s; a restarted one (new identity) at once. Attestation keeps its own pace.
    let mut refused: Option<(String, Instant)> = None;
    loop {
        let state = attest_once(&link, &policy).await;
        // What the enclave is, before what it holds: the state is visible before a restore is
        // tried, so whoever reads a restore's outcome in the log also sees the attestation.
        attestor.set(state.clone());
        let mut restore = Restore::Done;
        if let (AttestationState::Attested { identity, .. }, Some(store)) = (&state, &blobs) {
            let backing_off = refused.as_ref().is_some_and(|(who, when)| {
                *who == identity.signing && when.elapsed() < Duration::from_secs(30)
            });
            if !backing_off {
                restore = restore_if_needed(&link, store).await;
                refused =
                    (restore == Restore::Later).then(|| (identity.signing.clone(), Instant::now()));
            }
        }
        let wait = match (&state, restore) {
            (AttestationState::Pending { .. }, _) => Duration::from_secs(1).min(interval),
            (AttestationState::Refused { .. }, _) => Duration::from_secs(5).min(interval),
            // Sealed state not loaded yet because KMS is unreachable: offer it again soon.
            (AttestationState::Attested { .. }, Restore::Soon) => {
                Duration::from_secs(2).min(interval)
            }
            (AttestationState::Attested { .. }, _) => interval,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = attestor.wake.notified() => {}
        }
    }
}
