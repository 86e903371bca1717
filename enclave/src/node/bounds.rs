//! Bounds on what the enclave's memory holds (issue 18, audit finding 4): caps on live sessions
//! and presignatures, the memory of used session ids kept to the ids not expired yet, and
//! panics of a protocol machine contained to their session.
//!
//! Whoever can start sessions at an enclave (the coordinator, or the parent, which can send
//! any request) could otherwise fill its memory with sessions that never finish, presignatures
//! nobody uses or session ids, and so stop it (an out-of-memory abort loses every presignature
//! and every running session). The caps turn that into a typed refusal that ends by itself:
//! sessions finish, are aborted or expire when idle; presignatures are used; ids expire.

use std::any::Any;
use std::collections::BTreeSet;

use protocol::peer::SESSION_ID_LEN;
use protocol::session::{
    MAX_SESSION_ID_LIFETIME_SECS, SessionKind, session_id_expiring, session_id_expiry,
};

use super::session::Purpose;
use super::{Node, NodeError, bad};

/// The caps of one enclave. Overall, not per key: whoever can start sessions (the coordinator,
/// a parent) is not tied to a key, memory is one pool, and a per-key cap would stop no one the
/// overall caps do not; the coordinator's pool targets decide how presignatures are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Signing sessions in progress at once.
    pub signing_sessions: usize,
    /// Setup sessions in progress at once (auxiliary info, key generation, presignatures):
    /// counted apart, so that setup work, whose idle sessions live 15 minutes, never keeps
    /// signing out.
    pub setup_sessions: usize,
    /// Presignatures held, ready or being made.
    pub presignatures: usize,
    /// Session ids remembered as used (ids not expired yet).
    pub used_session_ids: usize,
    /// Seconds a presignature is kept unused before it is dropped: presignatures whose partners
    /// restarted, whose run failed at a partner, or that a coordinator never recorded would
    /// otherwise stay until the cap and answer `limit` for good.
    pub presignature_lifetime_secs: u64,
}

impl Limits {
    /// The caps every enclave runs with.
    pub const DEFAULT: Self = Self {
        signing_sessions: 256,
        setup_sessions: 32,
        presignatures: 65_536,
        used_session_ids: 1 << 20,
        presignature_lifetime_secs: 24 * 60 * 60,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The ids in `used` still startable at `now` (expiring at `now` or later): the others are
/// refused by their expiry, remembered or not.
pub(super) fn unexpired(
    used: &mut BTreeSet<[u8; SESSION_ID_LEN]>,
    now: u64,
) -> BTreeSet<[u8; SESSION_ID_LEN]> {
    used.split_off(&session_id_expiring(now, &[0; SESSION_ID_LEN - 8]))
}

/// Why a session id cannot be started at `now`, if it cannot.
pub(super) fn check_session_id(sid: &[u8; SESSION_ID_LEN], now: u64) -> Result<(), NodeError> {
    let expiry = session_id_expiry(sid);
    if expiry < now {
        return Err(NodeError::Refused(format!(
            "session id expired {} s ago",
            now - expiry
        )));
    }
    if expiry - now > MAX_SESSION_ID_LIFETIME_SECS {
        return Err(bad(format!(
            "session id expires {} s from now, more than {MAX_SESSION_ID_LIFETIME_SECS} s",
            expiry - now
        )));
    }
    Ok(())
}

/// What a panic says, for a status and an error: its message when it is text, cut to 160
/// characters and escaped (library panic messages are static text and bounds, not secrets).
pub fn panic_reason(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    match text {
        Some(t) => t.chars().take(160).flat_map(char::escape_debug).collect(),
        None => "no message".into(),
    }
}

impl Node {
    /// The latest time this enclave's clock showed (a clock stepping back cannot make an
    /// expired session id startable again once it was forgotten).
    pub(super) fn session_clock(&mut self) -> u64 {
        self.latest = self.latest.max(self.now());
        self.latest
    }

    /// Forgets the used session ids that expired: they are refused by their expiry.
    pub(super) fn forget_expired_session_ids(&mut self, now: u64) {
        if self
            .used_sessions
            .first()
            .is_some_and(|first| session_id_expiry(first) < now)
        {
            self.used_sessions = unexpired(&mut self.used_sessions, now);
        }
    }

    /// Drops (and so zeroizes) the presignatures older than their lifetime: a presignature no one
    /// names within a day will not be named (its pool died with a partner's restart, or its
    /// coordinator never recorded it).
    pub(super) fn forget_stale_presignatures(&mut self, now: u64) {
        let lifetime = self.limits.presignature_lifetime_secs;
        self.presignatures
            .retain(|_, p| p.made.saturating_add(lifetime) > now);
    }

    /// Refuses a session of `kind` while this enclave is at a cap: `busy` for sessions and
    /// session ids (retryable: they end, idle out or expire), `limit` for presignatures (until
    /// some are used).
    pub(super) fn check_capacity(&self, kind: &SessionKind) -> Result<(), NodeError> {
        let l = &self.limits;
        if self.used_sessions.len() >= l.used_session_ids {
            return Err(NodeError::Busy(format!(
                "this enclave remembers {} session ids that have not expired yet, its cap",
                l.used_session_ids
            )));
        }
        let signing = self
            .sessions
            .values()
            .filter(|s| matches!(s.purpose, Purpose::Sign(_)))
            .count();
        let setup = self.sessions.len() - signing;
        match kind {
            SessionKind::Sign { .. } if signing >= l.signing_sessions => {
                Err(NodeError::Busy(format!(
                    "{signing} signing sessions in progress, the cap; retry elsewhere or later"
                )))
            }
            SessionKind::Sign { .. } => Ok(()),
            _ if setup >= l.setup_sessions => Err(NodeError::Busy(format!(
                "{setup} setup sessions in progress, the cap; retry later"
            ))),
            SessionKind::Presign { .. } => {
                let making = self
                    .sessions
                    .values()
                    .filter(|s| matches!(s.purpose, Purpose::Presign(..)))
                    .count();
                let held = self.presignatures.len() + making;
                if held >= l.presignatures {
                    return Err(NodeError::Limit(format!(
                        "{held} presignatures ready or being made, the cap; use some first"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Notes a panic contained to its session: counted and reported by `status`.
    pub(super) fn note_contained_panic(&mut self, reason: &str) {
        self.contained_panics += 1;
        self.last_panic = Some(reason.to_string());
    }

    /// Number of panics contained to their session so far.
    pub fn contained_panic_count(&self) -> usize {
        self.contained_panics
    }

    /// The last panic contained to its session, for `status`.
    pub fn last_contained_panic(&self) -> Option<&str> {
        self.last_panic.as_deref()
    }
}

/// What tests may do to a node's worker: never compiled into an image.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum TestHook {
    /// Panic in the worker, outside any protocol machine.
    PanicInWorker,
    /// Panic in the next protocol machine step.
    PanicInNextStep,
    /// Stop the worker thread, as if it had died.
    StopWorker,
    /// Run with these caps.
    Limits(Limits),
    /// Move this node's clock forward by this many seconds.
    ClockAhead(u64),
    /// Cheat in this node's next dealing of a resharing, as a compromised enclave would.
    CheatInNextDealing(super::redistribute::Cheat),
    /// Hold party `i`'s committed safe primes again (a pool of committed primes never
    /// refills: a second auxiliary-information run needs them given again).
    FixturePrimes(usize),
}

/// A node's test state: an injected panic pending, its clock's offset.
#[cfg(test)]
#[derive(Debug, Default)]
pub(super) struct TestState {
    pub(super) panic_next_step: bool,
    pub(super) clock_ahead: u64,
    pub(super) cheat: Option<super::redistribute::Cheat>,
    /// Background tasks are held here until it opens.
    pub(super) gate: Option<std::sync::Arc<super::background::Gate>>,
}

#[cfg(test)]
impl Node {
    /// Applies a test hook (the worker handles `PanicInWorker` and `StopWorker` itself).
    pub fn apply_test_hook(&mut self, hook: TestHook) {
        match hook {
            TestHook::PanicInWorker => panic!("injected panic in the cluster worker"),
            TestHook::PanicInNextStep => self.test.panic_next_step = true,
            TestHook::StopWorker => {}
            TestHook::Limits(l) => self.limits = l,
            TestHook::ClockAhead(secs) => self.test.clock_ahead += secs,
            TestHook::CheatInNextDealing(cheat) => self.test.cheat = Some(cheat),
            TestHook::FixturePrimes(i) => {
                self.primes = crate::primes::PrimePool::preloaded(
                    crate::mpc::ecdsa::fixtures::primes(i).expect("committed primes"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(expiry: u64, fill: u8) -> [u8; SESSION_ID_LEN] {
        session_id_expiring(expiry, &[fill; 24])
    }

    #[test]
    fn expired_ids_are_split_off_and_the_rest_kept() {
        let mut used: BTreeSet<_> = [id(99, 0xff), id(100, 0), id(100, 7), id(250, 1)].into();
        let kept = unexpired(&mut used, 100);
        assert_eq!(
            used,
            [id(99, 0xff)].into(),
            "expired at 99, forgotten at 100"
        );
        assert_eq!(kept, [id(100, 0), id(100, 7), id(250, 1)].into());
    }

    #[test]
    fn session_ids_are_startable_from_now_to_the_lifetime() {
        let now = 1_000_000;
        assert!(check_session_id(&id(now, 1), now).is_ok());
        assert!(check_session_id(&id(now + MAX_SESSION_ID_LIFETIME_SECS, 1), now).is_ok());
        assert!(matches!(
            check_session_id(&id(now - 1, 1), now),
            Err(NodeError::Refused(_))
        ));
        assert!(matches!(
            check_session_id(&id(now + MAX_SESSION_ID_LIFETIME_SECS + 1, 1), now),
            Err(NodeError::BadRequest(_))
        ));
        assert!(check_session_id(&[0xff; SESSION_ID_LEN], now).is_err());
    }

    #[test]
    fn panic_reasons_are_cut_and_escaped() {
        let long = "x".repeat(1000) + "\n";
        let r = std::panic::catch_unwind(|| panic!("{long}")).unwrap_err();
        assert_eq!(panic_reason(r.as_ref()).len(), 160);
        let r = std::panic::catch_unwind(|| panic!("line\nbreak")).unwrap_err();
        assert_eq!(panic_reason(r.as_ref()), "line\\nbreak");
        let r = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_reason(r.as_ref()), "no message");
    }
}
