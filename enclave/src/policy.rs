//! Approvals ("stamps"): every enclave checks them itself, whatever the coordinator says.
//!
//! * An approval is an Ed25519 signature by an approver over the request's canonical bytes
//!   ([`protocol::policy::Canonical`]). Approvals by keys outside the policy, bad signatures and
//!   too few distinct approvers are refused.
//! * Requests expire: an expiry in the past, a creation time in the future (beyond the clock
//!   skew), or a validity (expiry minus creation) over `MAX_REQUEST_VALIDITY_SECS` is refused.
//! * Request ids are single use. The set of seen ids lives in memory; it needs no persistence
//!   because a request is only consumed if it was created after this enclave booted and not
//!   after its clock now: its creation time is a "not before". An earlier incarnation consumed
//!   only requests created before it died, so before this boot: every one of them is refused
//!   after a restart, however quickly the restart followed (issue 18: a request created ahead of
//!   the clock, which the skew allowance lets through the coordinator's window check, used to be
//!   consumed at once and could be consumed again by an incarnation booted before its creation
//!   time). A request created ahead of the enclave's clock is refused as not valid yet; the
//!   coordinator holds such a request until its creation time before it sends it.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
#[cfg(test)]
use protocol::policy::MAX_REQUEST_VALIDITY_SECS;
use protocol::policy::{self, Approval, Canonical, PolicyViolation};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An approval names a key outside the policy.
    #[error("approval by a key that is not an approver of this policy")]
    ForeignApprover,
    /// An approval's signature does not verify (wrong request, payloads or key).
    #[error("approval signature does not verify over this request")]
    BadApproval,
    /// Too few distinct approvers.
    #[error("{got} distinct approvals, {needed} needed")]
    Insufficient {
        /// Valid distinct approvals.
        got: usize,
        /// Needed.
        needed: usize,
    },
    /// Expired, or valid for longer than allowed, or made before this enclave booted.
    #[error("request expired or outside its validity window: {0}")]
    Expired(&'static str),
    /// The request id was used before.
    #[error("request id already used")]
    Replayed,
    /// Created after this enclave's clock: valid from its creation time on.
    #[error(
        "request not valid yet: created {ahead} s after this enclave's clock (its creation time is a not-before)"
    )]
    NotYet {
        /// Seconds until it becomes valid.
        ahead: u64,
    },
    /// The request is malformed (bad id length, unsupported version, bad key encoding).
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Checks `approvals` of `request` against `approvers` (32-byte Ed25519 keys) and `needed`
/// ([`protocol::policy::check_approvals`], the one rule the coordinator applies too).
pub fn check_approvals<T: Canonical>(
    request: &T,
    approvals: &[Approval],
    approvers: &[[u8; 32]],
    needed: u16,
) -> Result<(), PolicyError> {
    policy::check_approvals(request, approvals, approvers, needed)
        .map(|_| ())
        .map_err(PolicyError::from)
}

impl From<PolicyViolation> for PolicyError {
    fn from(v: PolicyViolation) -> Self {
        match v {
            PolicyViolation::NoThreshold => {
                Self::Malformed("a policy needs at least one approval".into())
            }
            PolicyViolation::MalformedApprover => {
                Self::Malformed("approver key is not 32 bytes".into())
            }
            v @ PolicyViolation::TooMany { .. } => Self::Malformed(v.to_string()),
            PolicyViolation::ForeignApprover(_) => Self::ForeignApprover,
            PolicyViolation::BadApproval(_) => Self::BadApproval,
            PolicyViolation::Insufficient { got, needed } => Self::Insufficient { got, needed },
            PolicyViolation::Expired => Self::Expired("expiry has passed"),
            PolicyViolation::FromTheFuture => Self::Expired("creation time lies in the future"),
            PolicyViolation::TooLong => Self::Expired("valid for longer than allowed"),
            PolicyViolation::Inverted => Self::Expired("expiry is not after creation"),
        }
    }
}

/// Parses a list of 32-byte public keys.
pub fn keys32(keys: &[serde_bytes::ByteBuf]) -> Result<Vec<[u8; 32]>, PolicyError> {
    keys.iter()
        .map(|k| {
            let key: [u8; 32] = k
                .as_slice()
                .try_into()
                .map_err(|_| PolicyError::Malformed("public key is not 32 bytes".into()))?;
            VerifyingKey::from_bytes(&key)
                .map_err(|_| PolicyError::Malformed("not an Ed25519 public key".into()))?;
            Ok(key)
        })
        .collect()
}

/// Expiry and single use of request ids.
#[derive(Debug)]
pub struct RequestGuard {
    boot_time: u64,
    /// Consumed use keys with their request's expiry. An expired request is refused by its
    /// window whether or not its id is here, so its entry is dropped (issue 18: memory follows
    /// the requests still valid, not every request ever seen).
    seen: HashMap<Vec<u8>, u64>,
    /// When expired entries were last dropped (at most once a second).
    pruned_at: u64,
    /// The latest time seen: a clock stepping back cannot make a pruned (expired) request
    /// valid again.
    high_water: u64,
}

impl RequestGuard {
    /// A guard for an enclave booted at `boot_time` (Unix seconds).
    pub fn new(boot_time: u64) -> Self {
        Self {
            boot_time,
            seen: HashMap::new(),
            pruned_at: 0,
            high_water: boot_time,
        }
    }

    /// Checks expiry and freshness at `now` without consuming the id (`request_id` is the
    /// caller's use key: the request id, with the payload index for signing requests).
    pub fn check(
        &self,
        request_id: &[u8],
        created: u64,
        expiry: u64,
        now: u64,
    ) -> Result<(), PolicyError> {
        if request_id.is_empty() {
            return Err(PolicyError::Malformed("empty request id".into()));
        }
        let now = now.max(self.high_water);
        policy::check_window(created, expiry, now)?;
        // An earlier incarnation consumed only requests created by its own clock, so before
        // this boot. (In whole seconds: a boot in the very second of the last consumption
        // would let that request through again. A Nitro enclave takes seconds to boot, so
        // only a simulated enclave, which has no security claims, can restart that fast.)
        if created < self.boot_time {
            return Err(PolicyError::Expired(
                "request predates this enclave's boot (or its joining the roster)",
            ));
        }
        if created > now {
            return Err(PolicyError::NotYet {
                ahead: created - now,
            });
        }
        if self.seen.contains_key(request_id) {
            return Err(PolicyError::Replayed);
        }
        Ok(())
    }

    /// How many consumed use keys are remembered (requests not expired yet, and those consumed
    /// within the last second).
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Drops the use keys of expired requests (at most once a second of `now`).
    fn prune(&mut self, now: u64) {
        if now > self.pruned_at {
            self.seen.retain(|_, expiry| *expiry > now);
            self.pruned_at = now;
        }
    }

    /// Refuses every request created before `t` from now on, as if this enclave booted then: a
    /// node that joined a roster saw none of the requests the nodes before it consumed, so it
    /// takes none created before its commit (attacker review helper-62, finding 12).
    pub fn refuse_created_before(&mut self, t: u64) {
        self.boot_time = self.boot_time.max(t);
        self.high_water = self.high_water.max(t);
    }

    /// Records that the clock reached `now`: a clock stepping back later cannot make a request
    /// that had expired by then valid again.
    pub fn observe(&mut self, now: u64) {
        self.high_water = self.high_water.max(now);
    }

    /// Checks, then marks the id used.
    pub fn consume(
        &mut self,
        request_id: &[u8],
        created: u64,
        expiry: u64,
        now: u64,
    ) -> Result<(), PolicyError> {
        self.check(request_id, created, expiry, now)?;
        let now = now.max(self.high_water);
        self.high_water = now;
        self.prune(now);
        self.seen.insert(request_id.to_vec(), expiry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use protocol::policy::SignRequest;
    use serde_bytes::ByteBuf;

    fn request(payload: u8) -> SignRequest {
        SignRequest {
            v: protocol::policy::SIGN_REQUEST_VERSION,
            cluster: protocol::genesis::ClusterId([7; 32]),
            key_id: "k1".into(),
            path: vec![],
            payloads: vec![protocol::policy::Payload::raw(vec![payload; 32])],
            request_id: ByteBuf::from(vec![9; 16]),
            created: 1_000_000,
            expiry: 1_000_100,
            policy: 0,
        }
    }

    fn approve(key: &SigningKey, req: &SignRequest) -> Approval {
        Approval {
            approver: ByteBuf::from(key.verifying_key().to_bytes().to_vec()),
            signature: ByteBuf::from(key.sign(&req.canonical_bytes()).to_bytes().to_vec()),
        }
    }

    #[test]
    fn approvals_are_counted_and_checked() {
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let approvers: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let req = request(1);
        let a0 = approve(&keys[0], &req);
        let a1 = approve(&keys[1], &req);
        assert!(check_approvals(&req, &[a0.clone(), a1.clone()], &approvers, 2).is_ok());
        // The same approver twice counts once.
        assert_eq!(
            check_approvals(&req, &[a0.clone(), a0.clone()], &approvers, 2),
            Err(PolicyError::Insufficient { got: 1, needed: 2 })
        );
        // A foreign approver.
        let stranger = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(
            check_approvals(&req, &[a0.clone(), approve(&stranger, &req)], &approvers, 2),
            Err(PolicyError::ForeignApprover)
        );
        // Approvals of other payloads do not carry over.
        let other = request(2);
        assert_eq!(
            check_approvals(&other, &[a0, a1], &approvers, 2),
            Err(PolicyError::BadApproval)
        );
    }

    #[test]
    fn expiry_replay_and_restart() {
        let mut guard = RequestGuard::new(1_000_000);
        let id = [5u8; 16];
        let now = 1_000_050;
        assert_eq!(
            guard.consume(&id, now - 10, now - 1, now),
            Err(PolicyError::Expired("expiry has passed"))
        );
        assert!(
            guard
                .consume(&id, now, now + MAX_REQUEST_VALIDITY_SECS + 1, now)
                .is_err()
        );
        assert!(
            guard.consume(&id, now + 120, now + 180, now).is_err(),
            "created in the future"
        );
        guard.consume(&id, now, now + 60, now).unwrap();
        assert_eq!(
            guard.consume(&id, now, now + 60, now),
            Err(PolicyError::Replayed)
        );
        // After a restart the same request is refused: it was made before the boot.
        let restarted = RequestGuard::new(now + 10);
        assert!(matches!(
            restarted.check(&id, now, now + 60, now + 11),
            Err(PolicyError::Expired(_))
        ));
        assert!(guard.check(&[], now, now + 60, now).is_err());
    }

    /// Issue 18 (audit finding 4): 10,000 consumed requests that expire are forgotten, so memory
    /// follows the requests still valid; an expired one stays refused by its window.
    #[test]
    fn ten_thousand_expired_requests_leave_memory_flat() {
        let boot = 3_000_000;
        let now = boot + 100;
        let mut guard = RequestGuard::new(boot);
        for i in 0..10_000u32 {
            let id = [&i.to_be_bytes()[..], &[0u8; 12]].concat();
            guard.consume(&id, now - 10, now + 5, now).unwrap();
        }
        assert_eq!(guard.remembered(), 10_000);
        // Once they expired, the next request leaves only itself remembered...
        let later = now + 6;
        guard.consume(&[1; 16], later, later + 60, later).unwrap();
        assert_eq!(guard.remembered(), 1);
        // ...and an expired one is refused all the same,
        let first = [&0u32.to_be_bytes()[..], &[0u8; 12]].concat();
        assert!(matches!(
            guard.consume(&first, now - 10, now + 5, later),
            Err(PolicyError::Expired(_))
        ));
        // even if the clock steps back to before its expiry: the guard keeps the latest time.
        assert!(matches!(
            guard.consume(&first, now - 10, now + 5, now + 1),
            Err(PolicyError::Expired(_))
        ));
    }

    /// Issue 18 (audit finding 3): a request created 50 s ahead of the enclave's clock (inside
    /// the skew allowance) comes in, the enclave restarts 5 s later, and the same request comes
    /// again. Before the fix the first incarnation consumed it at once and the new one, booted
    /// before its creation time, consumed it again: two signatures. Now neither consumes it
    /// before its creation time, and from then on exactly one incarnation does.
    #[test]
    fn a_request_created_ahead_is_refused_after_a_quick_restart() {
        let boot = 2_000_000;
        let now = boot + 3600;
        let id = [7u8; 16];
        let (created, expiry) = (now + 50, now + 300);
        let mut first = RequestGuard::new(boot);
        assert_eq!(
            first.consume(&id, created, expiry, now),
            Err(PolicyError::NotYet { ahead: 50 })
        );
        let mut restarted = RequestGuard::new(now + 5);
        assert_eq!(
            restarted.consume(&id, created, expiry, now + 5),
            Err(PolicyError::NotYet { ahead: 45 })
        );
        // At its creation time the running incarnation takes it, once.
        restarted.consume(&id, created, expiry, created).unwrap();
        assert_eq!(
            restarted.consume(&id, created, expiry, created + 1),
            Err(PolicyError::Replayed)
        );
        // Whatever incarnation boots in a later second refuses it: it predates that boot.
        let mut later = RequestGuard::new(created + 2);
        assert!(matches!(
            later.consume(&id, created, expiry, created + 2),
            Err(PolicyError::Expired(m)) if m.contains("predates")
        ));
    }
}
