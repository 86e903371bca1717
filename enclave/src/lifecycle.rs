//! The enclave's lifecycle as an explicit state machine.
//!
//! ```text
//!   booting --boot_succeeded--> ready --enrolled--> enrolled --genesis_accepted--> operational
//!   booting --boot_failed-----> boot_failed (terminal)
//!   ready --genesis_accepted | restored--> operational   (a genesis without node keys: until
//!                                                        ADR 0013 step 9 refuses it)
//! ```
//!
//! `enrolled` is reached by `Enroll` or by restoring a node key alone; a restore with the
//! genesis goes to `operational`.
//!
//! ```text
//!   enrolled | joining --joined--> joining          (issue 20: a pending roster change joined)
//!   ready --restored_joining--> joining             (a joining node's sealed state restored)
//!   joining | operational --committed--> operational (the roster change committed)
//! ```
//!
//! `joining`: the node holds the cluster's chain and a pending roster change that lists it; it
//! answers `attest`, `status`, `clock`, a `join_cluster` for a change that replaced its own and
//! `prepare_roster` (the gate every node of the new roster passes, members too) and the
//! sessions that move keys to the roster it joined (`start_session` of kind `move_key`,
//! `deliver`, `abort_session`) and `commit_roster`, and takes no other part in the cluster's
//! work until the change is committed; then it is `operational`.
//!
//! ```text
//!   ready | enrolled | operational --worker_failed--> failed (terminal)
//! ```
//!
//! `failed`: the cluster worker panicked outside a protocol machine (issue 18). Its state may
//! be half-changed, so it is not used again: like `boot_failed`, the phase answers `status`
//! only, with the reason, until the enclave is restarted (and restored from its sealed blobs).
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
    /// A node key was made (`Enroll`) or restored without a genesis.
    Enrolled,
    /// A genesis was accepted.
    GenesisAccepted,
    /// A pending roster change was joined.
    Joined,
    /// A joining node's sealed state was restored.
    RestoredJoining,
    /// A roster change was committed: a joining node is a member from here on.
    Committed,
    /// Sealed state was restored.
    Restored,
    /// A committed roster change removed this node, and it dropped every share.
    Left,
    /// The sealed state of a node that left was restored.
    RestoredLeft,
    /// The cluster worker panicked outside a protocol machine, or stopped.
    WorkerFailed,
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
        EnclaveRequest::Status | EnclaveRequest::Clock => Requirement::Any,
        EnclaveRequest::Attest { .. } => Requirement::In(&[
            Phase::Ready,
            Phase::Enrolled,
            Phase::Joining,
            Phase::Operational,
            Phase::Left,
        ]),
        EnclaveRequest::Enroll { .. } | EnclaveRequest::Genesis { .. } => {
            Requirement::In(&[Phase::Ready, Phase::Enrolled])
        }
        EnclaveRequest::GenesisV2 { .. } => Requirement::In(&[Phase::Enrolled]),
        EnclaveRequest::JoinCluster { .. } => Requirement::In(&[Phase::Enrolled, Phase::Joining]),
        EnclaveRequest::PrepareRoster { .. } => {
            Requirement::In(&[Phase::Joining, Phase::Operational])
        }
        // A node that left answers its leaving again (a lost answer).
        EnclaveRequest::CommitRoster { .. } => {
            Requirement::In(&[Phase::Joining, Phase::Operational, Phase::Left])
        }
        EnclaveRequest::Restore { .. } => Requirement::In(&[Phase::Ready]),
        // A joining node takes part in two kinds of session: a key's move to the roster it
        // joined, and that roster's auxiliary information (issue 20). It admits no peers; each
        // such session admits its own.
        EnclaveRequest::StartSession {
            kind:
                protocol::session::SessionKind::MoveKey { .. }
                | protocol::session::SessionKind::MoveAux { .. },
            ..
        }
        | EnclaveRequest::Deliver { .. }
        | EnclaveRequest::AbortSession { .. } => {
            Requirement::In(&[Phase::Joining, Phase::Operational])
        }
        EnclaveRequest::AdmitPeers { .. }
        | EnclaveRequest::StartSession { .. }
        | EnclaveRequest::Inventory { .. } => Requirement::In(&[Phase::Operational]),
    }
}

/// The current phase and the reason of a boot or worker failure.
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

    /// Why the phase is `boot_failed` or `failed`, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Applies `event`; `reason` is kept for a boot or worker failure (it must hold no secret).
    pub fn apply(
        &mut self,
        event: Event,
        reason: Option<String>,
    ) -> Result<Phase, InvalidTransition> {
        let next = match (self.phase, event) {
            (Phase::Booting, Event::BootSucceeded) => Phase::Ready,
            (Phase::Booting, Event::BootFailed) => Phase::BootFailed,
            (Phase::Ready, Event::Enrolled) => Phase::Enrolled,
            (Phase::Ready | Phase::Enrolled, Event::GenesisAccepted) => Phase::Operational,
            (Phase::Ready, Event::Restored) => Phase::Operational,
            (Phase::Enrolled | Phase::Joining, Event::Joined) => Phase::Joining,
            (Phase::Ready, Event::RestoredJoining) => Phase::Joining,
            (Phase::Joining | Phase::Operational, Event::Committed) => Phase::Operational,
            (Phase::Operational | Phase::Left, Event::Left) => Phase::Left,
            (Phase::Ready, Event::RestoredLeft) => Phase::Left,
            (
                Phase::Ready | Phase::Enrolled | Phase::Joining | Phase::Operational | Phase::Left,
                Event::WorkerFailed,
            ) => Phase::Failed,
            (phase, event) => return Err(InvalidTransition { phase, event }),
        };
        if matches!(next, Phase::BootFailed | Phase::Failed) {
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
                    (Phase::Failed, Some(why)) => {
                        format!("{request} needs phase {p}; the enclave failed: {why}")
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

    /// The enrolled phase (ADR 0013): reached from ready only, left only by a genesis; a node
    /// key is not made in any other phase, and restore is for a fresh enclave only.
    #[test]
    fn the_enrolled_phase_table() {
        let arn = protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
        let enroll = EnclaveRequest::Enroll { kms_key_arn: arn };
        let restore = EnclaveRequest::Restore { blobs: vec![] };
        let admit = EnclaveRequest::AdmitPeers { documents: vec![] };
        assert!(
            Lifecycle::new().admit(&enroll).is_err(),
            "not while booting"
        );
        let mut l = Lifecycle::new();
        l.apply(Event::BootSucceeded, None).unwrap();
        assert!(l.admit(&enroll).is_ok());
        assert_eq!(l.apply(Event::Enrolled, None), Ok(Phase::Enrolled));
        // Enrolled: attest, a (second) enroll reaches the node, which refuses it by name;
        // no restore over a held node key, no cluster work before a genesis.
        assert!(l.admit(&EnclaveRequest::Attest { nonce: None }).is_ok());
        assert!(l.admit(&enroll).is_ok());
        assert_eq!(l.admit(&restore).unwrap_err().code, ErrorCode::WrongPhase);
        assert_eq!(l.admit(&admit).unwrap_err().code, ErrorCode::WrongPhase);
        assert!(l.apply(Event::Enrolled, None).is_err());
        assert!(l.apply(Event::Restored, None).is_err());
        assert_eq!(
            l.apply(Event::GenesisAccepted, None),
            Ok(Phase::Operational)
        );
        assert_eq!(l.admit(&enroll).unwrap_err().code, ErrorCode::WrongPhase);
        assert!(l.admit(&admit).is_ok());
        assert!(l.apply(Event::Enrolled, None).is_err());
    }

    /// The joining phase (issue 20): reached from enrolled by joining, or from ready by
    /// restoring a joining node; it admits attestation, status and a later join, and no cluster
    /// work; a genesis never makes a joining node operational.
    #[test]
    fn the_joining_phase_table() {
        let admit = EnclaveRequest::AdmitPeers { documents: vec![] };
        let start = EnclaveRequest::StartSession {
            session: vec![0; 32].into(),
            participants: vec![],
            kind: protocol::session::SessionKind::Presign {
                key_id: "k".into(),
                path: vec![],
            },
        };
        let inventory = EnclaveRequest::Inventory {
            nonce: vec![0; 32].into(),
            after: None,
        };
        let mut l = Lifecycle::new();
        l.apply(Event::BootSucceeded, None).unwrap();
        assert!(
            l.apply(Event::Joined, None).is_err(),
            "a node key comes first"
        );
        l.apply(Event::Enrolled, None).unwrap();
        assert_eq!(l.apply(Event::Joined, None), Ok(Phase::Joining));
        assert_eq!(l.apply(Event::Joined, None), Ok(Phase::Joining));
        assert!(l.admit(&EnclaveRequest::Attest { nonce: None }).is_ok());
        assert!(l.admit(&EnclaveRequest::Status).is_ok());
        let prepare = EnclaveRequest::PrepareRoster {
            prepare: protocol::roster::PrepareRoster {
                change: vec![0; 32].into(),
                statements: vec![],
                nonce: vec![].into(),
            },
        };
        assert!(
            l.admit(&prepare).is_ok(),
            "the prepare gate includes joiners"
        );
        for refused in [&admit, &start, &inventory] {
            assert_eq!(
                l.admit(refused).unwrap_err().code,
                ErrorCode::WrongPhase,
                "{refused:?}"
            );
        }
        // The one session a joining node takes part in: a key's move to its roster.
        let moving = EnclaveRequest::StartSession {
            session: vec![0; 32].into(),
            participants: vec![],
            kind: protocol::session::SessionKind::MoveKey {
                key_id: "k".into(),
                generation: 0,
                dealers: vec![],
                key: Box::new(protocol::roster::transfer::KeyInfo {
                    v: protocol::roster::transfer::KEY_INFO_VERSION,
                    key_id: "k".into(),
                    scheme: protocol::policy::Scheme::EddsaEd25519,
                    generation: 0,
                    threshold: 2,
                    public_key: vec![].into(),
                    chain_code: None,
                    public_shares: vec![],
                    request: vec![].into(),
                    policy_version: 0,
                    policy: protocol::policy::KeyPolicy {
                        approvers: vec![],
                        approvals_needed: 1,
                    },
                    refresh_every: 0,
                }),
                documents: vec![],
            },
        };
        let deliver = EnclaveRequest::Deliver {
            session: vec![0; 32].into(),
            envelopes: vec![],
        };
        for admitted in [&moving, &deliver] {
            assert!(l.admit(admitted).is_ok(), "{admitted:?}");
        }
        assert!(l.apply(Event::GenesisAccepted, None).is_err());
        assert!(l.apply(Event::Restored, None).is_err());

        let mut restored = Lifecycle::new();
        restored.apply(Event::BootSucceeded, None).unwrap();
        assert_eq!(
            restored.apply(Event::RestoredJoining, None),
            Ok(Phase::Joining)
        );
        assert_eq!(
            restored.apply(Event::WorkerFailed, Some("worker panicked".into())),
            Ok(Phase::Failed)
        );
    }

    /// Issue 18: a worker failure is terminal from every phase the worker runs in, keeps its
    /// reason, and leaves only `status`.
    #[test]
    fn a_worker_failure_is_terminal_and_explained() {
        for events in [
            &[Event::BootSucceeded][..],
            &[Event::BootSucceeded, Event::Enrolled],
            &[
                Event::BootSucceeded,
                Event::Enrolled,
                Event::GenesisAccepted,
            ],
        ] {
            let mut l = Lifecycle::new();
            for e in events {
                l.apply(*e, None).unwrap();
            }
            assert_eq!(
                l.apply(Event::WorkerFailed, Some("worker panicked".into())),
                Ok(Phase::Failed)
            );
            assert_eq!(l.failure(), Some("worker panicked"));
            for e in [
                Event::BootSucceeded,
                Event::Enrolled,
                Event::GenesisAccepted,
                Event::Restored,
                Event::WorkerFailed,
            ] {
                assert!(l.apply(e, None).is_err(), "{e:?} after failed");
            }
            assert!(l.admit(&EnclaveRequest::Status).is_ok());
            let err = l
                .admit(&EnclaveRequest::Attest { nonce: None })
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::WrongPhase);
            assert!(err.message.contains("the enclave failed: worker panicked"));
        }
        let mut booting = Lifecycle::new();
        assert!(booting.apply(Event::WorkerFailed, None).is_err());
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
