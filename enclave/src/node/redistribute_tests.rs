//! The redistribution machine on its own, every party in one process (no sessions, no
//! envelopes): a roster change's committee, where a node leaving only deals and a node joining
//! only receives, and the attacks on it.

use std::collections::{BTreeMap, VecDeque};

use reshare::Points;
use reshare::generic_ec::curves::Ed25519;
use reshare::generic_ec::{Point, Scalar, SecretScalar};

use super::*;
use crate::mpc::eddsa::SecretEddsaShare;

type E = Ed25519;

/// A key shared at threshold 2 among 3 nodes (points 1, 2, 3): the secret, and each holder's
/// view of it.
fn old_sharing() -> (Scalar<E>, Vec<OldKey<E>>) {
    let mut rng = rand::rngs::OsRng;
    let secret = Scalar::<E>::random(&mut rng);
    let slope = Scalar::<E>::random(&mut rng);
    let shares: Vec<Scalar<E>> = (1u64..=3)
        .map(|x| secret + slope * Scalar::from(x))
        .collect();
    let public_shares: Vec<Point<E>> = shares.iter().map(|s| Point::generator() * s).collect();
    let public_key = Point::generator() * secret;
    let views = shares
        .into_iter()
        .map(|mut s| OldKey {
            public_shares: public_shares.clone(),
            public_key,
            secret: Some(SecretScalar::new(&mut s)),
        })
        .collect();
    (secret, views)
}

/// A view of the key in which B's public share (index 1) is the point of a secret the attacker
/// knows and the key is what dealers 0 and 1 then imply: the forged view (no share), and the
/// attacker's (that secret as B's share).
fn forged_view(b: &OldKey<E>) -> (OldKey<E>, OldKey<E>) {
    let mut x = Scalar::<E>::random(&mut rand::rngs::OsRng);
    let dealers = Points::<E>::of_indices(&[0, 1]).expect("points");
    let mut public_shares = b.public_shares.clone();
    public_shares[1] = Point::generator() * x;
    let public_key: Point<E> = (0..2)
        .map(|i| public_shares[i] * dealers.lagrange_at_zero(i).expect("coefficient"))
        .sum();
    let forged = OldKey {
        public_shares,
        public_key,
        secret: None,
    };
    let mut attacker = public_view(&forged);
    attacker.secret = Some(SecretScalar::new(&mut x));
    (forged, attacker)
}

/// Another copy of a holder's view, its share included.
fn copy_view(of: &OldKey<E>) -> OldKey<E> {
    OldKey {
        public_shares: of.public_shares.clone(),
        public_key: of.public_key,
        secret: of.secret.as_ref().map(|s| {
            let mut v = *s.as_ref();
            SecretScalar::new(&mut v)
        }),
    }
}

/// A view of the key without a share: what a node joining is given.
fn public_view(of: &OldKey<E>) -> OldKey<E> {
    OldKey {
        public_shares: of.public_shares.clone(),
        public_key: of.public_key,
        secret: None,
    }
}

fn eddsa_maker(threshold: u16) -> MakeShare<E> {
    Box::new(move |index, new| {
        SecretEddsaShare::from_redistributed(index, new, threshold)
            .map(|s| Share::from(Box::new(s)))
    })
}

/// The committee of a session across `diff` (every party computes it from the change it
/// holds): the parties whose index in force is in `dealers` deal at it, every party with a
/// new index receives at it.
fn committee_across(diff: &protocol::roster::RosterDiff, dealers: &[u16]) -> Committee {
    let parties = diff.parties();
    let mut committee = Committee {
        dealers: vec![],
        receivers: vec![],
    };
    for d in dealers {
        let party = parties
            .iter()
            .position(|p| p.current == Some(*d))
            .expect("a dealer is a party");
        committee
            .dealers
            .push((u16::try_from(party).expect("few parties"), *d));
    }
    for (i, p) in parties.iter().enumerate() {
        if let Some(next) = p.next {
            assert_eq!(
                usize::from(next),
                committee.receivers.len(),
                "new roster first, in order"
            );
            committee
                .receivers
                .push(u16::try_from(i).expect("few parties"));
        }
    }
    committee
}

/// Old roster [A, B, C]; the change removes B and adds D and E: new roster [A, C, D, E].
/// Parties: the new roster's nodes at their new index (A 0, C 1, D 2, E 3), then B, leaving,
/// as party 4.
fn diff() -> protocol::roster::RosterDiff {
    protocol::roster::RosterDiff {
        kept: vec![(0, 0), (2, 1)],
        removed: vec![1],
        added: vec![2, 3],
    }
}

/// Every node of the old roster deals, at its old index.
fn roster_change() -> Committee {
    committee_across(&diff(), &[0, 1, 2])
}

const PARTIES: [PartyIndex; 5] = [0, 1, 2, 3, 4];

fn part(me: PartyIndex, threshold: u16) -> Part {
    part_of(roster_change(), me, threshold)
}

fn part_of(committee: Committee, me: PartyIndex, threshold: u16) -> Part {
    Part {
        me,
        committee,
        old_threshold: 2,
        threshold,
        context: [7; 32],
    }
}

/// What each slot ended with: its product, or the error that stopped it; `None` if it is
/// still waiting when nothing is left in flight.
type Ends = BTreeMap<u16, Option<Result<Product, MpcError>>>;

/// A machine in the network, playing `party`. Usually one slot per party; an equivocating
/// party is two slots, each reaching some parties.
struct Slot {
    party: PartyIndex,
    machine: Redistribution<E>,
}

/// Every party's machine, and the messages each sent as it started.
type Started = (
    BTreeMap<PartyIndex, Redistribution<E>>,
    Vec<(PartyIndex, Vec<OutgoingMessage>)>,
);

/// Whether a message with `tag` goes from slot `from` to slot `to`.
type Deliver<'a> = &'a dyn Fn(u16, u16, u8) -> bool;

/// Delivers every message (broadcasts to every slot of every other party, a point-to-point one
/// to every slot of its party), as `deliver` allows, until nothing is in flight.
fn run_with(
    mut slots: BTreeMap<u16, Slot>,
    first: Vec<(u16, Vec<OutgoingMessage>)>,
    deliver: Deliver<'_>,
) -> Ends {
    let mut queue: VecDeque<(u16, u16, bool, Zeroizing<Vec<u8>>)> = VecDeque::new();
    let parties: Vec<(u16, PartyIndex)> = slots.iter().map(|(k, s)| (*k, s.party)).collect();
    let push = |queue: &mut VecDeque<_>, from: u16, out: Vec<OutgoingMessage>| {
        let sender = parties.iter().find(|(k, _)| *k == from).map(|(_, p)| *p);
        for m in out {
            let tag = m.payload.first().copied().unwrap_or(0);
            for (to, party) in &parties {
                let addressed = match m.to {
                    Some(p) => p == *party,
                    None => Some(*party) != sender,
                };
                if addressed && deliver(from, *to, tag) {
                    queue.push_back((from, *to, m.to.is_none(), m.payload.clone()));
                }
            }
        }
    };
    for (from, out) in first {
        push(&mut queue, from, out);
    }
    let mut ends: Ends = slots.keys().map(|k| (*k, None)).collect();
    while let Some((from, to, broadcast, payload)) = queue.pop_front() {
        if ends.get(&to).is_some_and(Option::is_some) {
            continue;
        }
        let Some(from_party) = parties.iter().find(|(k, _)| *k == from).map(|(_, p)| *p) else {
            continue;
        };
        let Some(slot) = slots.get_mut(&to) else {
            continue;
        };
        match slot.machine.step(IncomingMessage {
            from: from_party,
            broadcast,
            payload,
        }) {
            Ok(Step::Continue(out)) => push(&mut queue, to, out),
            Ok(Step::Done(product, out)) => {
                push(&mut queue, to, out);
                ends.insert(to, Some(Ok(product)));
            }
            Err(e) => {
                ends.insert(to, Some(Err(e)));
            }
        }
    }
    ends
}

fn run(
    machines: BTreeMap<PartyIndex, Redistribution<E>>,
    first: Vec<(PartyIndex, Vec<OutgoingMessage>)>,
) -> Ends {
    run_dropping(machines, first, &|_, _, _| true)
}

fn run_dropping(
    machines: BTreeMap<PartyIndex, Redistribution<E>>,
    first: Vec<(PartyIndex, Vec<OutgoingMessage>)>,
    deliver: Deliver<'_>,
) -> Ends {
    let slots = machines
        .into_iter()
        .map(|(party, machine)| (party, Slot { party, machine }))
        .collect();
    run_with(slots, first, deliver)
}

/// Starts every party of `committee` with the views given (by party).
fn start_all(
    committee: &Committee,
    views: BTreeMap<PartyIndex, OldKey<E>>,
    threshold: u16,
) -> Started {
    let mut machines = BTreeMap::new();
    let mut first = Vec::new();
    for (p, view) in views {
        let (m, out) = start(
            view,
            part_of(committee.clone(), p, threshold),
            eddsa_maker(threshold),
            None,
        )
        .expect("a party starts");
        machines.insert(p, m);
        first.push((p, out));
    }
    (machines, first)
}

fn secret_of(product: &Product) -> Scalar<E> {
    let Product::Redistributed {
        share: Some(Share::Eddsa(share)),
        ..
    } = product
    else {
        panic!("a receiver ends with an EdDSA share");
    };
    *share.held().expect("the share converts").secret.as_ref()
}

#[test]
fn a_roster_change_redistributes_from_the_old_nodes_to_the_new_ones() {
    let (secret, mut old) = old_sharing();
    let c = old.pop().expect("C");
    let b = old.pop().expect("B");
    let a = old.pop().expect("A");
    let views = BTreeMap::from([
        (0, a),
        (1, c),
        (2, public_view(&b)),
        (3, public_view(&b)),
        (4, b),
    ]);
    let (machines, first) = start_all(&roster_change(), views, 3);
    let ends = run(machines, first);
    for p in PARTIES {
        assert!(
            matches!(ends[&p], Some(Ok(_))),
            "party {p} ended: {:?}",
            ends[&p].as_ref().map(|r| r.as_ref().err())
        );
    }
    assert!(
        matches!(
            ends[&4],
            Some(Ok(Product::Redistributed { share: None, .. }))
        ),
        "the node leaving deals and keeps nothing"
    );
    for p in 0..4u16 {
        let Some(Ok(Product::Redistributed {
            share: Some(share), ..
        })) = &ends[&p]
        else {
            panic!("party {p} made a share");
        };
        assert_eq!(share.index(), p, "a receiver's share is at its new index");
    }
    let new: Vec<Scalar<E>> = (0..4u16)
        .map(|p| {
            secret_of(
                ends[&p]
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .expect("a share"),
            )
        })
        .collect();
    // Any 3 of the 4 new shares give the key; 2 do not.
    for chosen in [[0u16, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]] {
        let points = Points::<E>::of_indices(&chosen).expect("points");
        let mut sum = Scalar::<E>::zero();
        for (k, j) in chosen.iter().enumerate() {
            sum += points.lagrange_at_zero(k).expect("coefficient") * new[usize::from(*j)];
        }
        assert_eq!(sum, secret, "shares {chosen:?} interpolate to the key");
    }
    let two = Points::<E>::of_indices(&[0, 1]).expect("points");
    let guess = two.lagrange_at_zero(0).expect("l0") * new[0]
        + two.lagrange_at_zero(1).expect("l1") * new[1];
    assert_ne!(
        guess, secret,
        "two shares of a threshold-3 key do not give it"
    );
}

#[test]
fn a_node_that_leaves_is_sent_no_sub_share() {
    let (_, mut old) = old_sharing();
    let b = old.remove(1);
    let (mut leaving, _) = start(b, part(4, 2), eddsa_maker(2), None).expect("starts");
    let mut payload = Zeroizing::new(vec![SUB_SHARE]);
    payload.extend_from_slice(&[1; 32]);
    let refused = leaving.step(IncomingMessage {
        from: 0,
        broadcast: false,
        payload,
    });
    assert!(
        matches!(&refused, Err(MpcError::BadMessage { from: 0, reason }) if reason.contains("receives none")),
        "{:?}",
        refused.err()
    );
}

#[test]
fn a_confirmation_from_outside_the_committee_is_refused() {
    let (_, mut old) = old_sharing();
    let a = old.remove(0);
    let (mut machine, _) = start(a, part(0, 2), eddsa_maker(2), None).expect("starts");
    let mut payload = Zeroizing::new(vec![CONFIRM]);
    payload.extend_from_slice(&[0; 32]);
    let refused = machine.step(IncomingMessage {
        from: 9,
        broadcast: true,
        payload,
    });
    assert!(
        matches!(&refused, Err(MpcError::BadMessage { from: 9, .. })),
        "{:?}",
        refused.err()
    );
}

/// The attack: the relay and the leaving node B (compromised), one of the two dealers, give a
/// joining node D a forged view of the key — B's public share replaced by the public point of
/// a secret B's attacker knows, the key adjusted to match — and B deals that secret. D's checks
/// pass on its forged view; the nodes that hold shares (and E, given the true view) check
/// against their own and name B; so no confirmation reaches D and it keeps nothing.
#[test]
fn a_joining_node_given_a_forged_view_of_the_key_keeps_nothing() {
    let (_, mut old) = old_sharing();
    let c = old.pop().expect("C");
    let b = old.pop().expect("B");
    let a = old.pop().expect("A");
    let (forged, attacker) = forged_view(&b);
    let views = BTreeMap::from([
        (0, a),
        (1, c),
        (2, public_view(&forged)),
        (3, public_view(&b)),
        (4, attacker),
    ]);
    let committee = committee_across(&diff(), &[0, 1]);
    let (machines, first) = start_all(&committee, views, 2);
    let ends = run(machines, first);
    for holder in [0u16, 1] {
        assert!(
            matches!(&ends[&holder], Some(Err(MpcError::Aborted { culprits, .. })) if culprits == &vec![4]),
            "party {holder} names B: {:?}",
            ends[&holder].as_ref().map(|r| r.as_ref().err())
        );
    }
    // E was given its view too: a dealing off that view may be the giver's lie, so E refuses
    // it and blames no one (helper-62, finding 6).
    assert!(
        matches!(&ends[&3], Some(Err(MpcError::Aborted { culprits, .. })) if culprits.is_empty()),
        "{:?}",
        ends[&3].as_ref().map(|r| r.as_ref().err())
    );
    assert!(
        ends[&2].is_none(),
        "the joining node with the forged view made its share but keeps none: it waits for \
         confirmations that never come"
    );
}

#[test]
fn a_committee_that_is_not_one_is_refused_before_anything_is_sent() {
    let cases: [(Committee, &str); 4] = [
        (
            Committee {
                dealers: vec![(0, 1), (1, 0)],
                receivers: vec![0, 1],
            },
            "increasing",
        ),
        (
            Committee {
                dealers: vec![(0, 0), (0, 1)],
                receivers: vec![0, 1],
            },
            "one party each",
        ),
        (
            Committee {
                dealers: vec![(0, 0), (1, 1)],
                receivers: vec![0, 0],
            },
            "at one index each",
        ),
        (
            Committee {
                dealers: vec![],
                receivers: vec![0, 1],
            },
            "one party each",
        ),
    ];
    for (committee, why) in cases {
        let (_, mut old) = old_sharing();
        let mut p = part(0, 2);
        p.committee = committee;
        let refused = start(old.remove(0), p, eddsa_maker(2), None).err();
        assert!(
            matches!(&refused, Some(StartError::Committee(reason)) if reason.contains(why)),
            "{refused:?}"
        );
    }
    let (_, mut old) = old_sharing();
    let refused = start(old.remove(0), part(7, 2), eddsa_maker(2), None).err();
    assert!(
        matches!(refused, Some(StartError::NotAParty)),
        "{refused:?}"
    );
    let (_, old) = old_sharing();
    let refused = start(public_view(&old[1]), part(4, 2), eddsa_maker(2), None).err();
    assert!(matches!(refused, Some(StartError::NoShare)), "{refused:?}");
}

/// The attack the digest is for: B equivocates, dealing its true share to the nodes that hold
/// the key and, to D (given a forged view that fits), a secret its attacker knows. Every
/// dealing checks out where it lands; only the confirmed digests differ, so D keeps nothing,
/// and no one is blamed (who lied is not provable).
#[test]
fn a_dealer_that_equivocates_to_a_joining_node_is_caught_by_the_confirmations() {
    let (_, mut old) = old_sharing();
    let c = old.pop().expect("C");
    let b = old.pop().expect("B");
    let a = old.pop().expect("A");
    let (forged, lying_b) = forged_view(&b);
    let committee = committee_across(&diff(), &[0, 1]);
    // Slots: 0 A, 1 C, 2 D (forged view), 3 E, 4 B honest (reaches all but D), 5 B lying
    // (reaches only D).
    let views: [(u16, PartyIndex, OldKey<E>); 6] = [
        (0, 0, a),
        (1, 1, c),
        (2, 2, public_view(&forged)),
        (3, 3, public_view(&b)),
        (4, 4, b),
        (5, 4, lying_b),
    ];
    let mut slots = BTreeMap::new();
    let mut first = Vec::new();
    for (slot, party, view) in views {
        let (machine, out) = start(
            view,
            part_of(committee.clone(), party, 2),
            eddsa_maker(2),
            None,
        )
        .expect("starts");
        slots.insert(slot, Slot { party, machine });
        first.push((slot, out));
    }
    let ends = run_with(slots, first, &|from, to, _| match (from, to) {
        (4, 2) | (2, 4) => false,
        (5, t) => t == 2,
        (f, 5) => f == 2,
        _ => true,
    });
    assert!(
        matches!(&ends[&2], Some(Err(MpcError::Aborted { culprits, reason })) if culprits.is_empty() && reason.contains("digest differs")),
        "D, shown the holders' digests, keeps nothing: {:?}",
        ends[&2].as_ref().map(|r| r.as_ref().err())
    );
    for slot in [0u16, 1, 3] {
        assert!(
            !matches!(ends[&slot], Some(Ok(_))),
            "slot {slot} keeps nothing while D confirmed another digest"
        );
    }
}

#[test]
fn no_party_finishes_without_every_other_partys_confirmation() {
    let (_, old) = old_sharing();
    let views = || {
        let mut old: Vec<OldKey<E>> = old.iter().map(copy_view).collect();
        let c = old.pop().expect("C");
        let b = old.pop().expect("B");
        let a = old.pop().expect("A");
        BTreeMap::from([
            (0, a),
            (1, c),
            (2, public_view(&b)),
            (3, public_view(&b)),
            (4, b),
        ])
    };
    // B's confirmation lost: no receiver keeps its share; B, confirmed by all, is done.
    let (machines, first) = start_all(&roster_change(), views(), 2);
    let ends = run_dropping(machines, first, &|from, _, tag| {
        !(from == 4 && tag == CONFIRM)
    });
    for p in 0..4u16 {
        assert!(ends[&p].is_none(), "party {p} waits for B's confirmation");
    }
    assert!(matches!(
        ends[&4],
        Some(Ok(Product::Redistributed { share: None, .. }))
    ));
    // E's confirmation to B lost: B, which deals only, is not done; the receivers are.
    let (machines, first) = start_all(&roster_change(), views(), 2);
    let ends = run_dropping(machines, first, &|from, to, tag| {
        !(from == 3 && to == 4 && tag == CONFIRM)
    });
    assert!(ends[&4].is_none(), "B waits for E's confirmation");
    for p in 0..4u16 {
        assert!(
            matches!(
                ends[&p],
                Some(Ok(Product::Redistributed { share: Some(_), .. }))
            ),
            "party {p} is done"
        );
    }
}

#[test]
fn a_joining_node_given_a_wrong_view_blames_no_honest_dealer() {
    let (_, old) = old_sharing();
    // A view in which A's public share is another point, the key adjusted to fit: it passes
    // every check of its own, and A's honest dealing does not fit it.
    let committee = committee_across(&diff(), &[0, 1]);
    let dealers = Points::<E>::of_indices(&[0, 1]).expect("points");
    let mut wrong = public_view(&old[0]);
    wrong.public_shares[0] = Point::generator() * Scalar::<E>::random(&mut rand::rngs::OsRng);
    wrong.public_key = (0..2)
        .map(|i| wrong.public_shares[i] * dealers.lagrange_at_zero(i).expect("coefficient"))
        .sum();
    let (mut joining, _) = start(
        wrong,
        part_of(committee.clone(), 2, 2),
        eddsa_maker(2),
        None,
    )
    .expect("starts");
    let (_, mut out) = start(
        copy_view(&old[0]),
        part_of(committee, 0, 2),
        eddsa_maker(2),
        None,
    )
    .expect("A starts");
    let commitments = out.remove(0);
    assert!(
        commitments.to.is_none(),
        "a dealer's first message is its commitments"
    );
    let refused = joining.step(IncomingMessage {
        from: 0,
        broadcast: true,
        payload: commitments.payload,
    });
    assert!(
        matches!(&refused, Err(MpcError::Aborted { culprits, reason }) if culprits.is_empty() && reason.contains("was given")),
        "{:?}",
        refused.err()
    );
}

#[test]
fn every_party_checks_the_new_threshold_at_once() {
    for threshold in [0u16, 1, 5] {
        let (_, old) = old_sharing();
        let refused = start(
            public_view(&old[0]),
            part(2, threshold),
            eddsa_maker(2),
            None,
        )
        .err();
        assert!(
            matches!(
                refused,
                Some(StartError::Reshare(ReshareError::Threshold { .. }))
            ),
            "threshold {threshold}: {refused:?}"
        );
    }
}

/// A receiver's share is made at its index in the new roster, which the committee gives, not
/// at its party index (helper-63, finding 6: with parties numbered as `RosterDiff::parties`
/// numbers them the two coincide, so this committee numbers them apart).
#[test]
fn a_receivers_share_is_at_its_new_index_not_its_party_index() {
    let (secret, old) = old_sharing();
    let committee = Committee {
        dealers: vec![(0, 0), (4, 1), (1, 2)],
        receivers: vec![2, 0, 1, 3],
    };
    let views = BTreeMap::from([
        (0, copy_view(&old[0])),
        (1, copy_view(&old[2])),
        (2, public_view(&old[1])),
        (3, public_view(&old[1])),
        (4, copy_view(&old[1])),
    ]);
    let (machines, first) = start_all(&committee, views, 2);
    let ends = run(machines, first);
    let mut shares = Vec::new();
    for (index, party) in (0u16..).zip(&committee.receivers) {
        let Some(Ok(product)) = &ends[party] else {
            panic!("party {party} made a share");
        };
        let Product::Redistributed {
            share: Some(share), ..
        } = product
        else {
            panic!("party {party} receives");
        };
        assert_eq!(
            share.index(),
            index,
            "party {party} holds the share at index {index}"
        );
        shares.push(secret_of(product));
    }
    let points = Points::<E>::of_indices(&[0, 3]).expect("points");
    let key = points.lagrange_at_zero(0).expect("l0") * shares[0]
        + points.lagrange_at_zero(1).expect("l1") * shares[3];
    assert_eq!(key, secret, "the shares at indices 0 and 3 give the key");
}
