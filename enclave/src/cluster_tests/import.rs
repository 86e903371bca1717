//! Imports (issue 19) as the enclaves run them, and the attacks on them: legacy holders made by
//! a trusted dealer here (a 3-of-5 key on random evaluation points, as tss-lib's share ids
//! are) deal to the cluster; a cheating dealer, a relay showing different nodes different
//! dealings, a dealing replayed into another import, a tampered public share and a request
//! without its admin quorum are each refused, and no node keeps anything.

use protocol::import::{IMPORT_VERSION, ImportKey, LegacyDealer, SealedDealing};
use protocol::policy::{Approved, Canonical, Scheme};
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use rand::rngs::OsRng;
use reshare::generic_ec::curves::Ed25519;
use reshare::generic_ec::{Point, Scalar, SecretScalar};
use reshare::sealed::{Binding, Ephemeral, Purpose};
use reshare::{Points, deal};
use serde_bytes::ByteBuf;
use sha2::Digest;

use super::Cluster;
use crate::testkit::fresh_session_id;

type E = Ed25519;

/// A legacy key shared `t`-of-`n` on random points: (points, secret shares, public shares, key).
struct Legacy {
    points: Vec<Scalar<E>>,
    shares: Vec<SecretScalar<E>>,
    public_shares: Vec<Point<E>>,
    key: Point<E>,
}

fn legacy(t: usize, n: usize) -> Legacy {
    let coefs: Vec<Scalar<E>> = (0..t).map(|_| Scalar::random(&mut OsRng)).collect();
    let eval = |x: &Scalar<E>| {
        coefs
            .iter()
            .rev()
            .fold(Scalar::<E>::zero(), |acc, c| acc * x + c)
    };
    let points: Vec<Scalar<E>> = (0..n).map(|_| Scalar::random(&mut OsRng)).collect();
    let shares: Vec<SecretScalar<E>> = points
        .iter()
        .map(|p| SecretScalar::new(&mut eval(p)))
        .collect();
    let public_shares = shares.iter().map(|s| Point::generator() * s).collect();
    Legacy {
        points,
        shares,
        public_shares,
        key: Point::generator() * coefs[0],
    }
}

fn bytes(p: &Point<E>) -> ByteBuf {
    ByteBuf::from(p.to_bytes(true).as_ref().to_vec())
}

impl Cluster {
    /// An import of `legacy`'s key as `key_id`, 2 of the cluster, dealt by holders `dealers`,
    /// approved by `admins` (indices into the cluster's admins).
    fn import_request(
        &self,
        key_id: &str,
        legacy: &Legacy,
        dealers: &[usize],
        admins: &[usize],
    ) -> Approved<ImportKey> {
        let key = self
            .create_key_request(key_id, Scheme::EddsaEd25519, 2)
            .request;
        let request = ImportKey {
            v: IMPORT_VERSION,
            key,
            public_key: bytes(&legacy.key),
            chain_code: None,
            master_key_network: None,
            dealers: dealers
                .iter()
                .map(|i| LegacyDealer {
                    point: ByteBuf::from(legacy.points[*i].to_be_bytes().as_ref().to_vec()),
                    public_share: bytes(&legacy.public_shares[*i]),
                })
                .collect(),
        };
        let keys: Vec<&ed25519_dalek::SigningKey> =
            admins.iter().map(|i| &self.admins[*i]).collect();
        Approved {
            approvals: crate::testkit::approve(&request, &keys),
            request,
        }
    }

    /// Each of `dealers` deals its share of `legacy` for `request`, sealed to the nodes'
    /// identity keys; `share_of(i)` is the share dealer `i` deals (its own, honestly).
    fn deal(
        &self,
        request: &Approved<ImportKey>,
        legacy: &Legacy,
        dealers: &[usize],
        share_of: impl Fn(usize) -> SecretScalar<E>,
    ) -> Vec<SealedDealing> {
        let hash: [u8; 32] = sha2::Sha256::digest(request.request.canonical_bytes()).into();
        let points = Points::new(dealers.iter().map(|i| legacy.points[*i]).collect()).unwrap();
        let n = self.enclaves.len() as u16;
        let new = Points::of_indices(&(0..n).collect::<Vec<_>>()).unwrap();
        dealers
            .iter()
            .enumerate()
            .map(|(d, holder)| {
                let share = share_of(*holder);
                let public = Point::generator() * &share;
                let dealt = deal(&mut OsRng, &points, d, &share, &public, &new, 2).unwrap();
                let e = Ephemeral::generate(&mut OsRng);
                let sub_shares = dealt
                    .sub_shares
                    .iter()
                    .enumerate()
                    .map(|(m, s)| {
                        let key = self.enclaves[m].identity().encryption;
                        let b = Binding {
                            purpose: Purpose::Import,
                            context: &hash,
                            dealer: d as u16,
                            member: m as u16,
                        };
                        ByteBuf::from(e.seal(&key, &b, s).unwrap())
                    })
                    .collect();
                SealedDealing {
                    commitments: dealt.commitments.as_slice().iter().map(bytes).collect(),
                    ephemeral: ByteBuf::from(e.public().to_vec()),
                    sub_shares,
                }
            })
            .collect()
    }

    fn import(
        &self,
        request: Approved<ImportKey>,
        dealings: Vec<SealedDealing>,
    ) -> std::collections::BTreeMap<u16, Outcome> {
        let all: Vec<u16> = (0..self.enclaves.len() as u16).collect();
        let session = fresh_session_id();
        let outcomes = self.run_in(
            session.clone(),
            &all,
            SessionKind::ImportKey { request, dealings },
            |_, _| {},
        );
        self.abort_everywhere(&session);
        outcomes
    }

    /// Aborts `session` at every node, as the coordinator does after a failure.
    fn abort_everywhere(&self, session: &ByteBuf) {
        for e in &self.enclaves {
            e.handle(EnclaveRequest::AbortSession {
                session: session.clone(),
            });
        }
    }

    fn key_counts(&self) -> Vec<u32> {
        self.enclaves
            .iter()
            .map(|e| match e.handle(EnclaveRequest::Status) {
                EnclaveResponse::Status { keys, .. } => keys,
                other => panic!("status: {other:?}"),
            })
            .collect()
    }
}

fn own(legacy: &Legacy) -> impl Fn(usize) -> SecretScalar<E> + '_ {
    |i| legacy.shares[i].clone()
}

/// The failure messages of `outcomes`.
fn failures(outcomes: &std::collections::BTreeMap<u16, Outcome>) -> Vec<String> {
    outcomes
        .values()
        .filter_map(|o| match o {
            Outcome::Failed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_imported_key_signs_under_its_legacy_key() {
    let mut c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [4, 0, 2];
    let request = c.import_request("imported", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&request, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(request, dealings);
    for (node, o) in &outcomes {
        match o {
            Outcome::KeyCreated {
                public_key, sealed, ..
            } => {
                assert_eq!(public_key.as_slice(), bytes(&legacy.key).as_slice());
                c.blobs[usize::from(*node)].push(sealed.clone());
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    assert_eq!(c.key_counts(), [1, 1, 1]);
    let message = b"signed by an imported key".to_vec();
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(bytes(&legacy.key).as_slice().try_into().unwrap())
            .unwrap();
    for quorum in [[0u16, 1], [1, 2], [0, 2]] {
        let outcomes = c.sign(
            &quorum,
            c.sign_request("imported", vec![], message.clone()),
            None,
        );
        let (signature, _) = super::signature_of(&outcomes);
        vk.verify_strict(
            &message,
            &ed25519_dalek::Signature::from_slice(&signature).unwrap(),
        )
        .unwrap();
    }
}

/// An import made for another roster version than the node's (its holders attested and dealt
/// to that roster's nodes) is refused by every node, and nothing is kept (attacker review
/// helper-79: a dealing made before a committed change would seal a share to a node that left).
#[test]
fn an_import_for_another_roster_version_is_refused_and_nothing_is_kept() {
    let c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [0, 1, 2];
    let mut request = c.import_request("other-roster", &legacy, &dealers, &[0, 1]);
    request.request.key.roster = 1;
    request.approvals = crate::testkit::approve(&request.request, &[&c.admins[0], &c.admins[1]]);
    let dealings = c.deal(&request, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(request, dealings);
    let failed = failures(&outcomes);
    assert_eq!(failed.len(), 3, "{outcomes:?}");
    for m in failed {
        assert!(
            m.starts_with("stale_roster: the request names roster version 1; this node's current roster version is 0"),
            "{m}"
        );
    }
    assert_eq!(c.key_counts(), [0, 0, 0]);
}

#[test]
fn a_dealer_off_its_polynomial_or_without_its_share_is_named_and_nothing_is_kept() {
    let c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [0, 1, 2];
    // Dealer 1 seals node 2 a sub-share that is not on its committed polynomial.
    let request = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let mut dealings = c.deal(&request, &legacy, &dealers, own(&legacy));
    let hash: [u8; 32] = sha2::Sha256::digest(request.request.canonical_bytes()).into();
    let e = Ephemeral::generate(&mut OsRng);
    dealings[1].ephemeral = ByteBuf::from(e.public().to_vec());
    for m in 0..3u16 {
        let key = c.enclaves[usize::from(m)].identity().encryption;
        let b = Binding {
            purpose: Purpose::Import,
            context: &hash,
            dealer: 1,
            member: m,
        };
        let bogus = SecretScalar::<E>::new(&mut Scalar::random(&mut OsRng));
        dealings[1].sub_shares[usize::from(m)] = ByteBuf::from(e.seal(&key, &b, &bogus).unwrap());
    }
    let outcomes = c.import(request, dealings);
    let failed = failures(&outcomes);
    assert!(
        failed
            .iter()
            .any(|m| m.contains("dealer 1's sub-share does not match its commitments")),
        "{outcomes:?}"
    );
    assert_eq!(c.key_counts(), [0, 0, 0]);

    // Dealer 2 does not know its share: it deals another secret under its public share.
    let request = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&request, &legacy, &dealers, |i| {
        if i == 2 {
            SecretScalar::new(&mut Scalar::random(&mut OsRng))
        } else {
            legacy.shares[i].clone()
        }
    });
    let outcomes = c.import(request, dealings);
    assert!(
        failures(&outcomes)
            .iter()
            .any(|m| m.contains("dealer 2 dealt something other than its share")),
        "{outcomes:?}"
    );
    assert_eq!(c.key_counts(), [0, 0, 0]);

    // The key id was never taken: an honest import under it goes through.
    let request = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&request, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(request, dealings);
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{outcomes:?}"
    );
}

#[test]
fn a_relay_showing_nodes_different_dealings_is_caught_before_anything_is_kept() {
    let c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [0, 1, 3];
    let request = c.import_request("k", &legacy, &dealers, &[0, 1]);
    // Two honest dealings of the same request: each checks out alone at every node.
    let first = c.deal(&request, &legacy, &dealers, own(&legacy));
    let second = c.deal(&request, &legacy, &dealers, own(&legacy));
    let all = [0u16, 1, 2];
    let session = fresh_session_id();
    let outcomes = crate::testkit::run_session_as(
        &c.enclaves,
        session.clone(),
        &all,
        |node| SessionKind::ImportKey {
            request: request.clone(),
            dealings: if node == 0 {
                first.clone()
            } else {
                second.clone()
            },
        },
        |_, _| {},
    );
    c.abort_everywhere(&session);
    assert!(
        !outcomes
            .values()
            .any(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{outcomes:?}"
    );
    assert!(!failures(&outcomes).is_empty(), "{outcomes:?}");
    assert_eq!(c.key_counts(), [0, 0, 0]);
}

#[test]
fn a_dealing_for_another_import_a_tampered_public_share_or_too_few_admins_are_refused() {
    let c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [0, 1, 2];
    // Dealings made for one request, replayed under another (same key, new request id).
    let first = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&first, &legacy, &dealers, own(&legacy));
    let second = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let outcomes = c.import(second, dealings);
    assert!(
        failures(&outcomes)
            .iter()
            .all(|m| m.contains("dealer 0's sealed sub-share does not open")),
        "{outcomes:?}"
    );
    // A public share in the request that is not the holder's: the dealers' shares do not
    // give the key.
    let mut tampered = c.import_request("k", &legacy, &dealers, &[0, 1]);
    tampered.request.dealers[1].public_share = bytes(&legacy.public_shares[3]);
    tampered.approvals = crate::testkit::approve(&tampered.request, &[&c.admins[0], &c.admins[1]]);
    let dealings = c.deal(&tampered, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(tampered, dealings);
    assert!(
        failures(&outcomes)
            .iter()
            .all(|m| m.contains("do not interpolate to the public key")),
        "{outcomes:?}"
    );
    // One admin of the quorum of two.
    let lone = c.import_request("k", &legacy, &dealers, &[0]);
    let dealings = c.deal(&lone, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(lone, dealings);
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Failed { .. })),
        "{outcomes:?}"
    );
    assert_eq!(c.key_counts(), [0, 0, 0]);
}

#[test]
fn a_key_in_another_encoding_or_a_misshapen_dealing_is_refused_by_name_and_nothing_is_kept() {
    let c = Cluster::new(3);
    let legacy = legacy(3, 5);
    let dealers = [0, 1, 2];
    let approve = |r: &mut Approved<ImportKey>| {
        r.approvals = crate::testkit::approve(&r.request, &[&c.admins[0], &c.admins[1]]);
    };
    let refused = |request: Approved<ImportKey>, dealings: Vec<SealedDealing>, why: &str| {
        let outcomes = c.import(request, dealings);
        let failed = failures(&outcomes);
        assert!(
            !failed.is_empty() && failed.iter().all(|m| m.contains(why)),
            "{why}: {outcomes:?}"
        );
        assert_eq!(c.key_counts(), [0, 0, 0]);
    };
    // The key as an encoding no node would hash alike (the identity, or one byte too many):
    // refused by name before anything is kept.
    for public_key in [
        bytes(&Point::zero()),
        ByteBuf::from([bytes(&legacy.key).to_vec(), vec![0]].concat()),
    ] {
        let mut r = c.import_request("k", &legacy, &dealers, &[0, 1]);
        r.request.public_key = public_key;
        approve(&mut r);
        let dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
        refused(r, dealings, "the public key is not a canonical encoding");
    }
    // A dealer point with a leading zero byte: the same scalar, another encoding.
    let mut r = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let point = r.request.dealers[2].point.to_vec();
    r.request.dealers[2].point = ByteBuf::from([vec![0], point].concat());
    approve(&mut r);
    let dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
    refused(
        r,
        dealings,
        "the evaluation point of dealer 2 is not a canonical encoding",
    );
    // A dealing with one commitment too many, or a sealed sub-share cut short: the dealer is
    // named before any point is decompressed or anything decrypted.
    let r = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let mut dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
    let extra = dealings[1].commitments[0].clone();
    dealings[1].commitments.push(extra);
    refused(
        r,
        dealings,
        "dealer 1 committed to 3 coefficient(s), 2 expected",
    );
    let r = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let mut dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
    dealings[0].sub_shares[2] = ByteBuf::from(dealings[0].sub_shares[2][..40].to_vec());
    refused(r, dealings, "dealer 0's sealed sub-share does not open");
    // A master key network on an EdDSA key (it has no Bitcoin address).
    let mut r = c.import_request("k", &legacy, &dealers, &[0, 1]);
    r.request.master_key_network = Some("bitcoin:mainnet".into());
    approve(&mut r);
    let dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
    refused(r, dealings, "a master key's network is a Bitcoin-family");

    // Nothing was claimed: the honest import under the same id goes through.
    let r = c.import_request("k", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&r, &legacy, &dealers, own(&legacy));
    let outcomes = c.import(r, dealings);
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{outcomes:?}"
    );
}

/// Prepared for a roster change, every member refuses an import (`roster_change_prepared`),
/// keeping nothing: the keys moved to the new roster are the keys the cluster holds (attacker
/// review helper-62, finding 4). Withdrawn, the same approved import goes through.
#[test]
fn an_import_is_refused_while_a_roster_change_is_prepared() {
    let mut c = Cluster::new(3);
    let shrink = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&shrink);
    super::roster::proposed(&mut c, &out, &shrink.request);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let held: Vec<_> = c
        .enclaves
        .iter()
        .map(|e| {
            super::prepare::prepare(e, &shrink.request, &[], &mut none)
                .unwrap()
                .0
        })
        .collect();
    for (i, e) in c.enclaves.iter().enumerate() {
        let (_, prepared) =
            super::prepare::prepare(e, &shrink.request, &held, &mut c.blobs[i]).unwrap();
        assert!(prepared, "node {i}");
    }
    let legacy = legacy(2, 3);
    let dealers = [0, 1];
    let request = c.import_request("imported-after-the-gate", &legacy, &dealers, &[0, 1]);
    let dealings = c.deal(&request, &legacy, &dealers, own(&legacy));
    let refused = failures(&c.import(request.clone(), dealings.clone()));
    assert_eq!(refused.len(), 3, "{refused:?}");
    for m in refused {
        assert!(
            m.starts_with("roster_change_prepared") && m.contains("version 1"),
            "{m}"
        );
    }
    assert_eq!(c.key_counts(), [0, 0, 0]);

    // The admins withdraw the change (the roster in force proposed again): the import runs.
    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let out = c.propose(&withdraw);
    super::roster::proposed(&mut c, &out, &withdraw.request);
    let outcomes = c.import(request, dealings);
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{outcomes:?}"
    );
    assert_eq!(c.key_counts(), [1, 1, 1]);
}
