//! The enclave's lifecycle as an explicit state machine.
//!
//! ```text
//!   booting --boot_succeeded--> ready --genesis_accepted--> operational
//!   booting --boot_failed-----> boot_failed   (terminal)      ready --restored--> operational
//! ```
//!
//! Each request names the phase it needs ([`required_phase`]); the server refuses it with a
//! `wrong_phase` error in any other phase. Later phases (genesis, keys loaded) extend this table.

use protocol::{EnclaveError, EnclaveRequest, ErrorCode, Phase};

/// What moves the lifecycle forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Identity keys exist and the NSM attests them.
    BootSucceeded,
    /// Boot could not complete.
    BootFailed,
    /// A genesis was accepted.
    GenesisAccepted,
    /// Sealed state was restored.
    Restored,
}

/// An event that is not allowed in the current phase (a bug in the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is not allowed in phase {phase}")]
pub struct InvalidTransition {
    /// The phase.
    pub phase: Phase,
    /// The refused event.
    pub event: Event,
}

/// The phase a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any phase, even `boot_failed` (status reporting).
    Any,
    /// One of these phases.
    In(&'static [Phase]),
}

/// Which phase each request needs.
pub fn required_phase(request: &EnclaveRequest) -> Requirement {
    match request {
        EnclaveRequest::Status => Requirement::Any,
        EnclaveRequest::Attest { .. } => Requirement::In(&[Phase::Ready, Phase::Operational]),
        EnclaveRequest::Genesis { .. } | EnclaveRequest::Restore { .. } => {
            Requirement::In(&[Phase::Ready])
        }
        EnclaveRequest::AdmitPeers { .. }
        | EnclaveRequest::StartSession { .. }
        | EnclaveRequest::Deliver { .. }
        | EnclaveRequest::AbortSession { .. } => Requirement::In(&[Phase::Operational]),
    }
}

/// The current phase and the reason of a boot failure.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    failure: Option<String>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle in `booting`.
    pub fn new() -> Self {
        Self {
            phase: Phase::Booting,
            failure: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Applies `event`; `reason` is kept for a boot failure (it must hold no secret).
    pub fn apply(
        &mut self,
        event: Event,
        reason: Option<String>,
    ) -> Result<Phase, InvalidTransition> {
        let next = match (self.phase, event) {
            (Phase::Booting, Event::BootSucceeded) => Phase::Ready,
            (Phase::Booting, Event::BootFailed) => Phase::BootFailed,
            (Phase::Ready, Event::GenesisAccepted | Event::Restored) => Phase::Operational,
            (phase, event) => return Err(InvalidTransition { phase, event }),
        };
        if next == Phase::BootFailed {
            self.failure = reason;
        }
        self.phase = next;
        Ok(next)
    }

    /// Admits `request` in the current phase, or says why not.
    pub fn admit(&self, request: &EnclaveRequest) -> Result<(), EnclaveError> {
        match required_phase(request) {
            Requirement::Any => Ok(()),
            Requirement::In(allowed) if allowed.contains(&self.phase) => Ok(()),
            Requirement::In(allowed) => Err(EnclaveError::new(ErrorCode::WrongPhase, {
                let p = allowed
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ");
                match (&self.phase, &self.failure) {
                    (Phase::BootFailed, Some(why)) => {
                        format!("{request} needs phase {p}; boot failed: {why}")
                    }
                    (phase, _) => format!("{request} needs phase {p}, enclave is {phase}"),
                }
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_success_and_failure_paths() {
        let mut ok = Lifecycle::new();
        assert_eq!(ok.apply(Event::BootSucceeded, None), Ok(Phase::Ready));
        assert!(ok.admit(&EnclaveRequest::Attest { nonce: None }).is_ok());
        // No way back into booting or into failure from ready.
        assert!(ok.apply(Event::BootFailed, None).is_err());
        assert!(ok.apply(Event::BootSucceeded, None).is_err());
        let session = EnclaveRequest::Deliver {
            session: vec![0; 32].into(),
            envelopes: vec![],
        };
        assert!(ok.admit(&session).is_err(), "sessions need genesis");
        assert_eq!(
            ok.apply(Event::GenesisAccepted, None),
            Ok(Phase::Operational)
        );
        assert!(ok.admit(&session).is_ok());
        assert!(
            ok.admit(&EnclaveRequest::Restore { blobs: vec![] })
                .is_err(),
            "genesis is once"
        );
        assert!(ok.apply(Event::Restored, None).is_err());

        let mut failed = Lifecycle::new();
        failed
            .apply(Event::BootFailed, Some("no nsm".into()))
            .unwrap();
        assert!(
            failed.apply(Event::BootSucceeded, None).is_err(),
            "boot failure is terminal"
        );
        let err = failed
            .admit(&EnclaveRequest::Attest { nonce: None })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongPhase);
        assert!(err.message.contains("no nsm"));
        assert!(failed.admit(&EnclaveRequest::Status).is_ok());
    }

    #[test]
    fn nothing_but_status_while_booting() {
        let booting = Lifecycle::new();
        assert!(booting.admit(&EnclaveRequest::Status).is_ok());
        assert!(
            booting
                .admit(&EnclaveRequest::Attest { nonce: None })
                .is_err()
        );
    }
}
