//! FROST Ed25519 distributed key generation with an echo round (see the module docs).

use std::collections::BTreeMap;
use std::fmt;

use frost_ed25519::Identifier;
use frost_ed25519::keys::dkg;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::wire::{
    Body, bad, broadcast, decode, encode, expect_delivery, expect_first, unexpected,
};
use super::{
    SecretEddsaShare, check_params, commitment_len, frost_abort, frost_reason, identifier,
    party_of, update_len_prefixed,
};
use crate::mpc::driver::{Closing, debug_machine, handle_closing};
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};

/// Domain separator of the DKG echo digest.
const ECHO_DOMAIN: &[u8] = b"cohort/mpc/eddsa/frost-ed25519/dkg-echo/v1";

enum DkgPhase {
    /// Round-1 package sent; waiting for the peers' round-1 packages.
    Round1(dkg::round1::SecretPackage),
    /// Echo sent; waiting for matching echoes from all peers.
    Echo {
        secret: dkg::round1::SecretPackage,
        digest: [u8; 32],
    },
    /// Round-2 packages sent; waiting for the peers' round-2 packages.
    Round2(dkg::round2::SecretPackage),
    /// Finished or aborted: every further message is refused.
    Closed,
}

impl DkgPhase {
    fn name(&self) -> &'static str {
        match self {
            DkgPhase::Round1(_) => "round1",
            DkgPhase::Echo { .. } => "echo",
            DkgPhase::Round2(_) => "round2",
            DkgPhase::Closed => "closed",
        }
    }
}

/// FROST Ed25519 distributed key generation with an echo round (see the module docs).
///
/// The output is a [`SecretEddsaShare`].
pub struct Dkg {
    session_id: Vec<u8>,
    me: PartyIndex,
    n: u16,
    t: u16,
    phase: DkgPhase,
    own_round1: Box<dkg::round1::Package>,
    /// The peers' round-1 packages.
    round1: BTreeMap<PartyIndex, dkg::round1::Package>,
    /// The peers' echoes.
    echoes: BTreeMap<PartyIndex, [u8; 32]>,
    /// The peers' round-2 packages (secret shares; zeroized on drop by FROST).
    round2: BTreeMap<PartyIndex, dkg::round2::Package>,
}

impl fmt::Debug for Dkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_machine(
            f,
            "Dkg",
            &[
                ("me", &self.me),
                ("n", &self.n),
                ("t", &self.t),
                ("phase", &self.phase.name()),
            ],
        )
    }
}

impl Dkg {
    /// Starts the DKG as party `me` of `n` (indices `0..n`), for a `t`-of-`n` key, in the session
    /// `session_id` (non-empty, the same at every party). Returns the round-1 broadcast.
    pub fn start<R: RngCore + CryptoRng>(
        session_id: &[u8],
        me: PartyIndex,
        n: u16,
        t: u16,
        rng: &mut R,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        check_params(session_id, me, n, t)?;
        let (secret, package) = dkg::part1(identifier(me)?, n, t, &mut *rng)
            .map_err(|e| MpcError::BadInput(frost_reason(&e)))?;
        let first = broadcast(session_id, Body::DkgRound1(Box::new(package.clone())))?;
        let machine = Self {
            session_id: session_id.to_vec(),
            me,
            n,
            t,
            phase: DkgPhase::Round1(secret),
            own_round1: Box::new(package),
            round1: BTreeMap::new(),
            echoes: BTreeMap::new(),
            round2: BTreeMap::new(),
        };
        Ok((machine, vec![first]))
    }

    /// Feeds one message from a peer.
    ///
    /// On an echo mismatch it aborts with [`MpcError::Aborted`] naming the parties whose echo
    /// differs from ours. That list is imperfect: the echoes only show that views differ, not
    /// who caused it (the untrusted relay, the sender of the package shown inconsistently, or
    /// this party's own view) — with one tampered view, the party that saw it blames everyone
    /// and everyone else blames it.
    pub fn handle(&mut self, msg: IncomingMessage) -> Result<Step<SecretEddsaShare>, MpcError> {
        handle_closing(self, msg)
    }

    /// Moves through every phase whose messages are all present.
    fn advance(&mut self) -> Result<Step<SecretEddsaShare>, MpcError> {
        let peers = usize::from(self.n) - 1;
        let mut out = Vec::new();
        loop {
            // Taking the phase leaves `Closed` behind if anything below fails.
            match std::mem::replace(&mut self.phase, DkgPhase::Closed) {
                DkgPhase::Round1(secret) if self.round1.len() == peers => {
                    let digest = self.transcript_digest()?;
                    out.push(broadcast(&self.session_id, Body::DkgEcho(digest.to_vec()))?);
                    self.phase = DkgPhase::Echo { secret, digest };
                }
                DkgPhase::Echo { secret, digest } => {
                    let differing: Vec<PartyIndex> = self
                        .echoes
                        .iter()
                        .filter(|(_, echo)| **echo != digest)
                        .map(|(party, _)| *party)
                        .collect();
                    if !differing.is_empty() {
                        return Err(MpcError::Aborted {
                            culprits: differing,
                            reason: "inconsistent dkg round-1 broadcast: echo differs".into(),
                        });
                    }
                    if self.echoes.len() < peers {
                        self.phase = DkgPhase::Echo { secret, digest };
                        break;
                    }
                    let round1 = self.peer_round1()?;
                    let (secret, packages) = dkg::part2(secret, &round1)
                        .map_err(|e| frost_abort(&e, self.n, "dkg part 2"))?;
                    for (id, package) in packages {
                        let to = party_of(&id, self.n).ok_or_else(|| {
                            MpcError::Internal("dkg part 2 produced an unknown identifier".into())
                        })?;
                        out.push(OutgoingMessage {
                            to: Some(to),
                            payload: encode(&self.session_id, Body::DkgRound2(Box::new(package)))?,
                        });
                    }
                    self.phase = DkgPhase::Round2(secret);
                }
                DkgPhase::Round2(secret) if self.round2.len() == peers => {
                    let round1 = self.peer_round1()?;
                    let mut round2 = BTreeMap::new();
                    for (party, package) in std::mem::take(&mut self.round2) {
                        round2.insert(identifier(party)?, package);
                    }
                    let (key_package, public_key_package) =
                        dkg::part3(&secret, &round1, &round2)
                            .map_err(|e| frost_abort(&e, self.n, "dkg part 3"))?;
                    let mut commitments = Vec::with_capacity(usize::from(self.n));
                    for party in 0..self.n {
                        let package = if party == self.me {
                            &*self.own_round1
                        } else {
                            self.round1.get(&party).ok_or_else(|| {
                                MpcError::Internal("round-1 package missing".into())
                            })?
                        };
                        commitments.push(package.commitment().clone());
                    }
                    let share = SecretEddsaShare::validated(
                        self.me,
                        self.n,
                        self.t,
                        key_package,
                        public_key_package,
                        commitments,
                    )
                    .map_err(|reason| MpcError::Internal(format!("dkg output: {reason}")))?;
                    return Ok(Step::Done(share, out));
                }
                other => {
                    self.phase = other;
                    break;
                }
            }
        }
        Ok(Step::Continue(out))
    }

    /// The peers' round-1 packages keyed by FROST identifier.
    fn peer_round1(&self) -> Result<BTreeMap<Identifier, dkg::round1::Package>, MpcError> {
        self.round1
            .iter()
            .map(|(party, package)| Ok((identifier(*party)?, package.clone())))
            .collect()
    }

    /// SHA-256 over the session, the parameters and all round-1 packages ordered by sender.
    fn transcript_digest(&self) -> Result<[u8; 32], MpcError> {
        let mut hasher = Sha256::new();
        update_len_prefixed(&mut hasher, ECHO_DOMAIN);
        update_len_prefixed(&mut hasher, &self.session_id);
        hasher.update(self.n.to_be_bytes());
        hasher.update(self.t.to_be_bytes());
        for party in 0..self.n {
            let package = if party == self.me {
                &*self.own_round1
            } else {
                self.round1
                    .get(&party)
                    .ok_or_else(|| MpcError::Internal("round-1 package missing".into()))?
            };
            let bytes = package.serialize().map_err(|e| {
                MpcError::Internal(format!("round-1 package: {}", frost_reason(&e)))
            })?;
            hasher.update(party.to_be_bytes());
            update_len_prefixed(&mut hasher, &bytes);
        }
        Ok(hasher.finalize().into())
    }
}

impl Closing for Dkg {
    type Output = SecretEddsaShare;

    fn close(&mut self) {
        self.phase = DkgPhase::Closed;
        self.round2.clear();
    }

    fn step(&mut self, msg: IncomingMessage) -> Result<Step<SecretEddsaShare>, MpcError> {
        let from = msg.from;
        if matches!(self.phase, DkgPhase::Closed) {
            return Err(bad(from, "eddsa dkg already finished"));
        }
        if from >= self.n || from == self.me {
            return Err(bad(from, "sender is not a peer of this dkg"));
        }
        match decode(&self.session_id, from, &msg.payload)? {
            Body::DkgRound1(package) => {
                expect_delivery(from, msg.broadcast, true, "dkg round-1 package")?;
                expect_first(&self.round1, from, "dkg round-1 package")?;
                if commitment_len(package.commitment()) != Some(usize::from(self.t)) {
                    return Err(bad(from, "dkg commitment does not match the threshold"));
                }
                self.round1.insert(from, *package);
            }
            Body::DkgEcho(digest) => {
                expect_delivery(from, msg.broadcast, true, "dkg echo")?;
                let digest = <[u8; 32]>::try_from(digest.as_slice())
                    .map_err(|_| bad(from, "dkg echo is not 32 bytes"))?;
                expect_first(&self.echoes, from, "dkg echo")?;
                self.echoes.insert(from, digest);
            }
            Body::DkgRound2(package) => {
                expect_delivery(from, msg.broadcast, false, "dkg round-2 package")?;
                if matches!(self.phase, DkgPhase::Round1(_)) {
                    // A peer sends round 2 only after our echo, which we have not sent yet.
                    return Err(bad(from, "dkg round-2 package before the echo round"));
                }
                expect_first(&self.round2, from, "dkg round-2 package")?;
                self.round2.insert(from, *package);
            }
            other => return Err(unexpected(from, &other, "the eddsa dkg")),
        }
        self.advance()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::super::testutil::*;
    use super::*;

    #[test]
    fn dkg_2_of_3_then_sign_with_threshold_and_all() {
        let shares = run_dkg(3, 2);
        sign_and_check(&shares, &[0, 2], b"2-of-3 by parties 0 and 2");
        sign_and_check(&shares, &[1, 2], b"2-of-3 by parties 1 and 2");
        sign_and_check(&shares, &[0, 1, 2], b"2-of-3 by everyone");
    }

    #[test]
    fn dkg_3_of_5_then_sign_with_subsets() {
        let shares = run_dkg(5, 3);
        sign_and_check(&shares, &[1, 3, 4], b"3-of-5 by a threshold set");
        sign_and_check(&shares, &[4, 0, 2, 3], b"3-of-5 by four, unsorted");
        sign_and_check(&shares, &[0, 1, 2, 3, 4], b"");
    }

    #[test]
    fn bad_parameters_are_bad_input() {
        for (me, n, t) in [(0, 3, 1), (0, 3, 4), (3, 3, 2), (0, 1, 1)] {
            let err = expect_err(Dkg::start(SESSION, me, n, t, &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{me} {n} {t}: {err}");
        }
        assert!(matches!(
            expect_err(Dkg::start(b"", 0, 3, 2, &mut OsRng)),
            MpcError::BadInput(_)
        ));
    }

    #[test]
    fn echo_catches_inconsistent_round1_relay() {
        let (n, t) = (4, 3);
        // The relay shows party 2 another (well-formed) round-1 package for party 0.
        let (_, forged) = dkg::part1(identifier(0).expect("id"), n, t, OsRng).expect("part1");
        let forged = encode(SESSION, Body::DkgRound1(Box::new(forged))).expect("encodes");
        let mut round2_sent = false;
        let results = route(start_dkg(n, t), 7, |d| match decoded(d) {
            Some(Body::DkgRound1(_)) if d.from == 0 && d.to == 2 => d.payload = forged.clone(),
            Some(Body::DkgRound2(_)) => round2_sent = true,
            _ => {}
        });
        assert!(
            !round2_sent,
            "no secret share leaves a party before the echo check"
        );
        assert_eq!(results.len(), usize::from(n), "every party stops");
        for (party, result) in results {
            match expect_err(result) {
                MpcError::Aborted { culprits, .. } => {
                    if party == 2 {
                        assert!(
                            !culprits.is_empty() && !culprits.contains(&2),
                            "{culprits:?}"
                        );
                    } else {
                        assert_eq!(culprits, vec![2]);
                    }
                }
                other => panic!("party {party}: expected an abort, got {other}"),
            }
        }
    }

    #[test]
    fn tampered_dkg_messages_give_errors_and_no_output_to_the_victim() {
        let (n, t) = (3, 2);
        let mut round1_len = 0;
        let mut round2_len = 0;
        route(start_dkg(n, t), 1, |d| match decoded(d) {
            Some(Body::DkgRound1(_)) => round1_len = d.payload.len(),
            Some(Body::DkgRound2(_)) => round2_len = d.payload.len(),
            _ => {}
        });
        assert!(round1_len > 0 && round2_len > 0);

        for pos in (0..round1_len).step_by(5) {
            let results = route(start_dkg(n, t), pos as u64, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::DkgRound1(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            // Party 0 either refuses the package or sees another one, so nobody finishes and
            // someone notices. (A party that detects a differing echo aborts without sending
            // its own, so the others may stall until the session times out.)
            assert!(
                results.values().all(|r| r.is_err()),
                "byte {pos}: {results:?}"
            );
            assert!(!results.is_empty(), "byte {pos}");
        }
        for pos in (0..round2_len).step_by(3) {
            let results = route(start_dkg(n, t), pos as u64, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::DkgRound2(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            let err = expect_err(
                results
                    .into_iter()
                    .find(|(p, _)| *p == 0)
                    .expect("party 0 stops")
                    .1,
            );
            match err {
                MpcError::BadMessage { from, .. } => assert_eq!(from, 1),
                MpcError::Aborted { culprits, .. } => assert_eq!(culprits, vec![1]),
                other => panic!("byte {pos}: {other}"),
            }
        }
    }
}
