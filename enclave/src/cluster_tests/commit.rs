//! The commit of a roster change (issue 20, membership step 4): every node of the new roster
//! holds every key's incoming generation, says so over one digest of its whole key set, and,
//! shown every node's statement over its own digest, makes the new roster and those
//! generations current. The attacks, written before the commit existed: a commit while a key
//! has not moved (`key_not_moved`); a node's statement missing, twice, of a node leaving, or
//! forged (`missing_statement`, `stranger_statement`, `unproven_statement`); a relay that
//! replays a node's statement from before a key moved again (`keys_differ`: one digest per
//! key, one sharing); a restore that offers a share of the replaced roster (ignored). The
//! keys keep their public keys and sign on the new roster, the node that joined among the
//! signers, across restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::policy::Scheme;
use protocol::roster::commit::{
    CommitRoster, KeysHeldStatement, MovedKey, SetStatement, keys_held_message,
    roster_left_message, roster_set_message,
};
use protocol::roster::transfer::KeyInfo;
use protocol::roster::{ChangeRoster, HeldStatement};
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, Phase};
use serde_bytes::ByteBuf;

use super::join::{Joining, join, join_one_more, joined};
use super::move_key::{abort, facts, failures};
use super::prepare::{asked_for, prepare};
use super::reshare::verify_eddsa;
use super::roster::proposed;
use super::{Cluster, membership_refusal, signature_of};
use crate::server::Enclave;
use crate::testkit::{admit_all, document, run_session_as, session_id_ahead};

/// A commit step's answer: this node's statement, and, when it committed, its sealed genesis
/// blob and its roster-set statement (checked under its node key).
pub(super) struct Answer {
    pub(super) held: KeysHeldStatement,
    pub(super) count: u32,
    pub(super) sealed: Option<ByteBuf>,
    pub(super) committed: bool,
    pub(super) set_statement: Option<ByteBuf>,
    /// The key set its digest is of, as the node lists it (what a node leaving is shown).
    pub(super) set: Vec<MovedKey>,
    pub(super) aux: Option<ByteBuf>,
    /// The node left: `held.statement` is its `cohort/roster-left/v1` word.
    pub(super) left: bool,
}

pub(super) fn commit(
    e: &Enclave,
    change: &ChangeRoster,
    statements: &[KeysHeldStatement],
) -> Result<Answer, String> {
    commit_after(e, change, statements, &[])
}

/// [`commit`] with the words of nodes that stay that they committed (what a joining node
/// needs).
pub(super) fn commit_after(
    e: &Enclave,
    change: &ChangeRoster,
    statements: &[KeysHeldStatement],
    committed: &[SetStatement],
) -> Result<Answer, String> {
    send_commit(
        e,
        change,
        CommitRoster {
            change: ByteBuf::from(change.hash().to_vec()),
            statements: statements.to_vec(),
            committed: committed.to_vec(),
            keys: Vec::new(),
            aux: None,
            catch_up: None,
        },
    )
}

/// `answer`'s word that its node committed.
pub(super) fn set_statement(answer: &Answer) -> SetStatement {
    SetStatement {
        node_key: answer.held.node_key.clone(),
        statement: answer.set_statement.clone().unwrap(),
    }
}

/// Sends `commit` to `e` for `change`: its answer, checked, or its refusal.
pub(super) fn send_commit(
    e: &Enclave,
    change: &ChangeRoster,
    commit: CommitRoster,
) -> Result<Answer, String> {
    let statements = commit.statements.clone();
    // A node that leaves is shown the set and answers no roster-set word.
    let leaving = !commit.keys.is_empty();
    let response = e.handle(EnclaveRequest::CommitRoster { commit });
    let node_key = e.node_binding().expect("an enrolled node").node_key;
    if let EnclaveResponse::RosterLeft {
        version,
        statement,
        sealed,
    } = response
    {
        // Its word that it left, under its node key; its phase is `left` from here on.
        assert!(leaving);
        let message = roster_left_message(&change.cluster, &node_key, version, &change.hash());
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&node_key).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&statement).unwrap();
        assert!(vk.verify_strict(&message, &sig).is_ok());
        assert_eq!(e.phase(), Phase::Left);
        return Ok(Answer {
            held: KeysHeldStatement {
                node_key: ByteBuf::from(node_key.to_vec()),
                keys: ByteBuf::from(vec![0; 32]),
                statement,
            },
            count: 0,
            sealed: Some(sealed),
            committed: false,
            set_statement: None,
            set: Vec::new(),
            aux: None,
            left: true,
        });
    }
    let EnclaveResponse::RosterCommitted {
        version,
        keys,
        count,
        statement,
        set_statement,
        sealed,
        set,
        aux,
    } = response
    else {
        return Err(membership_refusal(response));
    };
    // The set it lists is the one its digest names, each key once.
    let held: Vec<_> = set.iter().map(MovedKey::held).collect();
    let aux32 = aux
        .as_ref()
        .map(|a| <[u8; 32]>::try_from(a.as_slice()).unwrap());
    assert_eq!(
        keys.as_slice(),
        protocol::roster::commit::set_digest(&held, aux32.as_ref())
    );
    assert_eq!(set.len(), count as usize);
    assert_eq!(version, change.new_version());
    if set_statement.is_some() || (!statements.is_empty() && !leaving) {
        assert!(sealed.is_some() && set_statement.is_some());
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&node_key).unwrap();
    if let Some(signed) = &set_statement {
        let message = roster_set_message(&change.cluster, &node_key, version, &change.hash());
        let sig = ed25519_dalek::Signature::from_slice(signed).unwrap();
        assert!(vk.verify_strict(&message, &sig).is_ok());
    }
    Ok(Answer {
        held: KeysHeldStatement {
            node_key: ByteBuf::from(node_key.to_vec()),
            keys,
            statement,
        },
        count,
        committed: set_statement.is_some(),
        set_statement,
        sealed,
        set,
        aux,
        left: false,
    })
}

/// Asks `e` for its word (vouching for its set the first time: the sealed genesis blob goes
/// to `genesis`).
pub(super) fn vouch(e: &Enclave, change: &ChangeRoster, genesis: &mut ByteBuf) -> Answer {
    let answer = commit(e, change, &[]).unwrap();
    assert!(!answer.committed);
    if let Some(sealed) = &answer.sealed {
        *genesis = sealed.clone();
    }
    answer
}

/// Moves `info`'s key among `parties` (every party of the change, in party order), dealt by
/// `dealers`: each receiver's incoming blob by party.
pub(super) fn move_key(
    c: &Cluster,
    parties: &[Arc<Enclave>],
    info: &KeyInfo,
    dealers: &[u16],
) -> BTreeMap<u16, ByteBuf> {
    moved_key(c, parties, info, dealers).0
}

/// [`move_key`], and the key as the committed set lists it (what the coordinator shows a node
/// that leaves).
pub(super) fn moved_key(
    c: &Cluster,
    parties: &[Arc<Enclave>],
    info: &KeyInfo,
    dealers: &[u16],
) -> (BTreeMap<u16, ByteBuf>, MovedKey) {
    let mut blobs = BTreeMap::new();
    let mut listed = None;
    for (p, o) in run_move(c, parties, info, dealers) {
        match o {
            Outcome::KeyMoved {
                key_id,
                generation,
                confirmed,
                key,
                sealed,
                ..
            } => {
                listed = Some(MovedKey {
                    key_id,
                    generation,
                    facts: key,
                    confirmed,
                });
                if let Some(sealed) = sealed {
                    blobs.insert(p, sealed);
                }
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    (blobs, listed.expect("a party's outcome"))
}

/// One run of `info`'s move, then the session aborted everywhere (as the coordinator ends a
/// failed one): every party's outcome.
pub(super) fn run_move(
    c: &Cluster,
    parties: &[Arc<Enclave>],
    info: &KeyInfo,
    dealers: &[u16],
) -> BTreeMap<u16, Outcome> {
    run_in_change(c, parties, |documents| SessionKind::MoveKey {
        key_id: info.key_id.clone(),
        generation: info.generation,
        dealers: dealers.to_vec(),
        key: Box::new(info.clone()),
        documents,
    })
}

/// One run of a roster change's session among `parties` (in party order), each given every
/// party's document, then the session aborted everywhere (as the coordinator ends a failed
/// one): every party's outcome.
pub(super) fn run_in_change(
    c: &Cluster,
    parties: &[Arc<Enclave>],
    kind: impl Fn(Vec<ByteBuf>) -> SessionKind,
) -> BTreeMap<u16, Outcome> {
    let docs: Vec<ByteBuf> = parties.iter().map(|e| document(e)).collect();
    let all: Vec<u16> = (0..u16::try_from(parties.len()).unwrap()).collect();
    let session = session_id_ahead(c.ahead.get());
    let out = run_session_as(
        parties,
        session.clone(),
        &all,
        |_| kind(docs.clone()),
        |_, _| {},
    );
    abort(parties, &session);
    out
}

/// Every member of `c` and the node joining prepared for the change `joining` joined: the
/// statements the members were shown, and every party of the change in party order.
pub(super) fn prepare_grown(
    c: &mut Cluster,
    joining: &mut Joining,
) -> (Vec<HeldStatement>, Vec<Arc<Enclave>>) {
    let change = &joining.grow.request;
    let held = asked_for(c, &joining.newcomer, change);
    for (i, e) in c.enclaves.iter().enumerate() {
        assert!(prepare(e, change, &held, &mut c.blobs[i]).unwrap().1);
    }
    assert!(
        prepare(&joining.newcomer, change, &held, &mut joining.blobs)
            .unwrap()
            .1
    );
    let parties = c
        .enclaves
        .iter()
        .cloned()
        .chain([joining.newcomer.clone()])
        .collect();
    (held, parties)
}

/// Every node of `nodes` prepared for `change` (each asked first, then shown every statement).
pub(super) fn prepare_all(c: &mut Cluster, nodes: &[Arc<Enclave>], change: &ChangeRoster) {
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let held: Vec<_> = nodes
        .iter()
        .map(|e| prepare(e, change, &[], &mut none).unwrap().0)
        .collect();
    for (i, e) in nodes.iter().enumerate() {
        let blobs = match c.blobs.get_mut(i) {
            Some(blobs) => blobs.as_mut_slice(),
            None => none.as_mut_slice(),
        };
        assert!(prepare(e, change, &held, blobs).unwrap().1);
    }
}

/// Node `signers[1]`'s refusal to sign with `key` beside `signers[0]`.
fn sign_refusal(c: &Cluster, key: &str, signers: &[u16]) -> String {
    let out = c.sign(
        signers,
        c.sign_request(key, vec![], b"refused".to_vec()),
        None,
    );
    match &out[&signers[1]] {
        Outcome::Failed { message, .. } => message.clone(),
        other => panic!("node {}: {other:?}", signers[1]),
    }
}

/// `signers` refuse to sign with `key`: each vouched for a roster change it has not committed.
pub(super) fn refuses_to_sign(c: &Cluster, key: &str, signers: &[u16]) {
    let out = c.sign(
        signers,
        c.sign_request(key, vec![], b"vouched".to_vec()),
        None,
    );
    for node in signers {
        match &out[node] {
            Outcome::Failed { message, .. } => {
                assert!(message.contains("vouched_not_committed"), "{message}")
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
}

/// A 3-node cluster holding two EdDSA keys shrinks to its first two nodes. Every attack on the
/// commit is refused by name and changes nothing; committed, the two nodes sign with both
/// keys on the new roster, under the same public keys, and a restart brings the committed
/// roster and the moved shares back while a stale share of the old roster is never loaded.
#[test]
fn a_shrunk_roster_is_committed_once_every_key_moved_and_signs_on() {
    const A: &str = "committed-a";
    const B: &str = "committed-b";
    let mut c = Cluster::new(3);
    let pk_a = c.create_key(A, Scheme::EddsaEd25519, 2);
    let info_a = facts(c.blobs[0].last().unwrap(), A, &pk_a);
    let pk_b = c.create_key(B, Scheme::EddsaEd25519, 2);
    let info_b = facts(c.blobs[0].last().unwrap(), B, &pk_b);
    // The keys' blobs as their proxies keep them (the current generations, of roster 0).
    let old_blobs: Vec<Vec<ByteBuf>> = c.blobs.iter().map(|b| b[2..].to_vec()).collect();
    for blobs in &mut c.blobs {
        blobs.truncate(2);
    }
    let sign = |c: &Cluster, key: &str, pk: &[u8], message: &[u8]| {
        let out = c.sign(&[0, 1], c.sign_request(key, vec![], message.to_vec()), None);
        verify_eddsa(pk, message, &signature_of(&out).0);
    };

    let shrink = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&shrink);
    proposed(&mut c, &out, &shrink.request);
    let change = shrink.request.clone();
    let members = c.enclaves.clone();

    // Not prepared: no node says it holds anything.
    let refused = commit(&c.enclaves[0], &change, &[]).err().unwrap();
    assert!(refused.starts_with("not_prepared"), "{refused}");

    prepare_all(&mut c, &members, &change);
    let mut incoming: Vec<Vec<ByteBuf>> = vec![Vec::new(); 2];
    let (moved_a, listed_a) = moved_key(&c, &members, &info_a, &[1, 2]);
    for (p, blob) in moved_a {
        incoming[usize::from(p)].push(blob);
    }
    sign(
        &c,
        A,
        &pk_a,
        b"moved, the roster in force signs until the commit",
    );

    // Key B has not moved: no node of the new roster vouches for a set without it.
    for e in &c.enclaves[..2] {
        let refused = commit(e, &change, &[]).err().unwrap();
        assert!(
            refused.starts_with("key_not_moved") && refused.contains(B),
            "{refused}"
        );
    }

    // B moves: each node vouches for the set of both keys, once (sealed with its genesis).
    let (moved_b, listed_b) = moved_key(&c, &members, &info_b, &[0, 2]);
    for (p, blob) in moved_b {
        incoming[usize::from(p)].push(blob);
    }
    let now: Vec<Answer> = (0..2)
        .map(|i| vouch(&c.enclaves[i], &change, &mut c.blobs[i][1]))
        .collect();
    assert!(now.iter().all(|a| a.count == 2 && a.sealed.is_some()));
    assert_eq!(now[0].held.keys, now[1].held.keys);
    // Asked again, the same word (the blob sealed again, for a parent that lost it).
    let again = vouch(&c.enclaves[0], &change, &mut c.blobs[0][1]);
    assert!(again.sealed.is_some());
    assert_eq!(again.held, now[0].held);
    // A node that vouched takes no further move: a relay cannot make it hold another sharing
    // of B (helper-66, finding H1). Nothing is kept anywhere.
    let out = run_move(&c, &members, &info_b, &[1, 2]);
    for (p, m) in failures(&out) {
        if p < 2 {
            assert!(m.starts_with("vouched"), "party {p}: {m}");
        }
    }
    assert_eq!(
        vouch(&c.enclaves[1], &change, &mut c.blobs[1][1]).held,
        now[1].held
    );
    let statements = [now[0].held.clone(), now[1].held.clone()];

    let refusals: Vec<(Vec<KeysHeldStatement>, &str)> = vec![
        (vec![now[0].held.clone()], "missing_statement"),
        (
            vec![
                now[0].held.clone(),
                now[1].held.clone(),
                now[0].held.clone(),
            ],
            "stranger_statement",
        ),
        // Node 1's statement with another set named than the one it signed.
        (
            vec![
                now[0].held.clone(),
                KeysHeldStatement {
                    keys: ByteBuf::from(vec![9; 32]),
                    ..now[1].held.clone()
                },
            ],
            "unproven_statement",
        ),
        // A leaving node's key is no node of the new roster.
        (
            vec![
                now[0].held.clone(),
                now[1].held.clone(),
                KeysHeldStatement {
                    node_key: ByteBuf::from(
                        c.enclaves[2].node_binding().unwrap().node_key.to_vec(),
                    ),
                    ..now[1].held.clone()
                },
            ],
            "stranger_statement",
        ),
    ];
    for (shown, kind) in refusals {
        for e in &c.enclaves[..2] {
            let refused = commit(e, &change, &shown).err().unwrap();
            assert!(refused.starts_with(kind), "{kind}: {refused}");
            assert_eq!(e.phase(), Phase::Operational);
        }
    }
    // The node leaving vouches for nothing: asked, it names the proof it needs to leave.
    let refused = commit(&c.enclaves[2], &change, &[]).err().unwrap();
    assert!(refused.starts_with("too_few_committed"), "{refused}");
    // Refused commits change nothing: the nodes that vouched sign nothing until they commit
    // (attacker review helper-71, finding 1).
    refuses_to_sign(&c, B, &[0, 1]);

    // Both statements shown: each node commits.
    let mut words = Vec::new();
    for (i, e) in c.enclaves[..2].iter().enumerate() {
        let answer = commit(e, &change, &statements).unwrap();
        assert!(answer.committed);
        c.blobs[i][1] = answer.sealed.clone().unwrap();
        words.push(set_statement(&answer));
    }
    // The node removed drops its shares once shown that the change was committed, by as many
    // nodes that stay as its keys' threshold (one word could be a rolled-back node's); after
    // that, and after a restart from its blobs, it holds no key.
    let left = &c.enclaves[2];
    let refused = commit_after(left, &change, &[], &words[..1]).err().unwrap();
    assert!(refused.contains("this node needs 2"), "{refused}");
    // Shown the words, and the set the nodes that stay vouched for, it checks that set holds
    // every key it holds: never the last copy (helper-75, finding 1).
    let leave = |keys: Vec<MovedKey>, statements: &[KeysHeldStatement]| CommitRoster {
        change: ByteBuf::from(change.hash().to_vec()),
        statements: statements.to_vec(),
        committed: words.clone(),
        keys,
        aux: None,
        catch_up: None,
    };
    let refused = send_commit(left, &change, leave(vec![listed_a.clone()], &statements))
        .err()
        .unwrap();
    assert!(refused.starts_with("keys_differ"), "{refused}");
    let refused = send_commit(
        left,
        &change,
        leave(vec![listed_a.clone(), listed_b.clone()], &[]),
    )
    .err()
    .unwrap();
    assert!(refused.starts_with("missing_statement"), "{refused}");
    // The set a node that stays lists with its word is the one shown (what the coordinator
    // reads it from).
    let mut listed = vec![listed_a, listed_b];
    listed.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    assert_eq!(commit(&c.enclaves[0], &change, &[]).unwrap().set, listed);
    let answer = send_commit(left, &change, leave(listed.clone(), &statements)).unwrap();
    assert!(answer.left && answer.count == 0);
    c.blobs[2][1] = answer.sealed.clone().unwrap();
    // Asked again (its parent lost the answer), it answers its leaving again.
    let again = send_commit(left, &change, leave(listed, &statements)).unwrap();
    assert!(again.left);
    // It takes no part in the cluster's work any more: its phase is `left`.
    let refused = sign_refusal(&c, A, &[1, 2]);
    assert!(refused.contains("enclave is left"), "{refused}");
    let fresh = crate::testkit::boot(&c.ca, 2, crate::testkit::IMAGE);
    let mut blobs = c.blobs[2].clone();
    blobs.extend(old_blobs[2].iter().cloned());
    match fresh.handle(EnclaveRequest::Restore { blobs }) {
        EnclaveResponse::Restored { keys, aux, .. } => assert!(keys.is_empty() && !aux, "{keys:?}"),
        other => panic!("restore: {other:?}"),
    }
    assert_eq!(fresh.phase(), Phase::Left);
    // Asked again (its parent lost the answer), a committed node answers the same: its word
    // as it committed on it, and the genesis blob sealed again (helper-66, finding M2).
    let again = commit(&c.enclaves[0], &change, &[]).unwrap();
    assert!(again.committed);
    assert_eq!(again.held, now[0].held);
    assert_eq!(again.count, 2);
    c.blobs[0][1] = again.sealed.unwrap();

    c.enclaves.truncate(2);
    c.blobs.truncate(2);
    admit_all(&c.enclaves);
    sign(&c, A, &pk_a, b"committed: the new roster signs with a");
    sign(&c, B, &pk_b, b"committed: the new roster signs with b");

    // Restarted from the committed genesis, its old key blobs (a share of roster 0: stale) and
    // the incoming blobs (the parent keeps them where the move left them).
    for i in 0..2 {
        let mut blobs = old_blobs[i].clone();
        blobs.extend(incoming[i].iter().cloned());
        let mut keys = c.restart(i, &blobs);
        keys.sort();
        assert_eq!(keys, vec![A.to_string(), B.to_string()]);
    }
    sign(&c, A, &pk_a, b"restarted on the new roster");
    sign(&c, B, &pk_b, b"restarted on the new roster, b");
    // Given only the replaced roster's blobs, a node loads no key at all: a share of roster 0
    // is never a share of roster 1.
    let keys = c.restart(0, &old_blobs[0]);
    assert!(keys.is_empty(), "{keys:?}");
}

/// A 3-node cluster grows to 4: the node joining holds the key's incoming share, commits with
/// the members, becomes operational at its index and signs with them under the same public
/// key, also after a restart from its blobs, where a blob of an earlier run of the key's move
/// is never taken for the committed one.
#[test]
fn a_grown_roster_is_committed_and_the_node_that_joined_signs() {
    const KEY: &str = "committed-four";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);

    let mut joining = join_one_more(&mut c);
    let (held, parties) = prepare_grown(&mut c, &mut joining);
    let Joining {
        newcomer,
        key: newcomer_key,
        blobs: mut newcomer_blobs,
        grow,
        join: join_request,
    } = joining;
    let change = grow.request.clone();
    // Moved twice (a relay's retry): the first run's blobs are what a parent may keep.
    let earlier = move_key(&c, &parties, &info, &[0, 2]);
    let incoming = move_key(&c, &parties, &info, &[0, 1]);
    assert_eq!(incoming.len(), 4);

    let mut vouched = vec![ByteBuf::new(); 4];
    let answers: Vec<Answer> = parties
        .iter()
        .zip(&mut vouched)
        .map(|(e, genesis)| vouch(e, &change, genesis))
        .collect();
    assert!(answers.iter().all(|a| a.count == 1 && a.sealed.is_some()));
    // The join sent again (the same change, the same chain) is answered from the state held:
    // the node stays prepared and vouched (helper-67, finding 3), and takes no move.
    joined(join(&newcomer, &join_request), &mut newcomer_blobs);
    let refused = failures(&run_move(&c, &parties, &info, &[0, 1]));
    assert!(
        refused
            .iter()
            .any(|(p, m)| *p == 3 && m.starts_with("vouched")),
        "{refused:?}"
    );
    let statements: Vec<KeysHeldStatement> = answers.iter().map(|a| a.held.clone()).collect();
    // The statement is its node key's over the change, the chain and the set.
    let chain = <[u8; 32]>::try_from(held[3].chain.as_slice()).unwrap();
    let keys = <[u8; 32]>::try_from(answers[3].held.keys.as_slice()).unwrap();
    let message = keys_held_message(
        &change.cluster,
        &newcomer_key,
        (1, &change.hash()),
        &chain,
        &keys,
    );
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&newcomer_key).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&answers[3].held.statement).unwrap();
    assert!(vk.verify_strict(&message, &sig).is_ok());

    // A request made before the commit, which the members might have consumed already; the
    // commit comes five seconds later by every clock.
    let early = c.sign_request(KEY, vec![], b"made before the commit".to_vec());
    c.clocks_ahead(5);
    // As far ahead as the members (booted after them, it was not moved before).
    newcomer.test_hook(crate::node::TestHook::ClockAhead(c.ahead.get()));
    // The joining node commits only after a threshold of the nodes that stay (the key is
    // 2-of-4): on the statements alone, or on one member's word, a relay could commit it
    // while the members abandon the change (attacker review helper-70, finding 3).
    let refused = commit(&newcomer, &change, &statements).err().unwrap();
    assert!(refused.starts_with("too_few_committed"), "{refused}");
    let mut words = Vec::new();
    for (i, e) in c.enclaves.iter().enumerate() {
        let answer = commit(e, &change, &statements).unwrap();
        c.blobs[i][1] = answer.sealed.clone().unwrap();
        words.push(set_statement(&answer));
    }
    let refused = commit_after(&newcomer, &change, &statements, &words[..1])
        .err()
        .unwrap();
    assert!(
        refused.contains("said they committed the change; this node needs 2"),
        "{refused}"
    );
    let twice = [words[0].clone(), words[0].clone()];
    let refused = commit_after(&newcomer, &change, &statements, &twice)
        .err()
        .unwrap();
    assert!(refused.starts_with("stranger_statement"), "{refused}");
    // One node's signature under another's node key proves nothing.
    let forged = [
        words[0].clone(),
        SetStatement {
            statement: words[0].statement.clone(),
            ..words[1].clone()
        },
    ];
    let refused = commit_after(&newcomer, &change, &statements, &forged)
        .err()
        .unwrap();
    assert!(refused.starts_with("unproven_statement"), "{refused}");
    assert_eq!(newcomer.phase(), Phase::Joining);
    let answer = commit_after(&newcomer, &change, &statements, &words[1..]).unwrap();
    words.push(set_statement(&answer));
    newcomer_blobs[1] = answer.sealed.unwrap();
    assert_eq!(newcomer.phase(), Phase::Operational);
    c.enclaves.push(newcomer);
    c.blobs.push(newcomer_blobs);
    admit_all(&c.enclaves);
    // The node that joined saw none of the requests consumed before its commit: it takes none
    // created before it (helper-62, finding 12); members that stay answer it from their record.
    let out = c.sign(&[2, 3], early.clone(), None);
    match &out[&3] {
        Outcome::Failed { message, .. } => {
            assert!(message.contains("joining the roster"), "{message}")
        }
        other => panic!("node 3: {other:?}"),
    }
    let out = c.sign(&[0, 1], early, None);
    verify_eddsa(&pk, b"made before the commit", &signature_of(&out).0);
    let sign = |c: &Cluster, signers: &[u16], message: &[u8]| {
        let out = c.sign(signers, c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };
    sign(&c, &[2, 3], b"the node that joined signs");
    sign(&c, &[0, 3], b"with any member");

    // Restarted from its committed genesis and the first run's blob alone, it loads no key:
    // that sharing is not the one committed (helper-66, finding M4).
    let keys = c.restart(3, std::slice::from_ref(&earlier[&3]));
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(c.enclaves[3].phase(), Phase::Operational);
    // With both runs' blobs, the committed one is its key; the other is ignored.
    let keys = c.restart(3, &[earlier[&3].clone(), incoming[&3].clone()]);
    c.enclaves[3].test_hook(crate::node::TestHook::ClockAhead(c.ahead.get()));
    assert_eq!(keys, vec![KEY.to_string()]);
    sign(&c, &[1, 3], b"after its restart");

    // Each node's inventory (a coordinator whose database was lost follows the roster again):
    // roster version 1 on every page, signed under the node key roster 1 lists; on the first
    // page the committed change without its key set, and the node's word that it committed it,
    // the same bytes as at the commit.
    let nonce = [0x5A; 16];
    for node in [0u16, 3] {
        let (report, signature) = c.inventory(usize::from(node), &nonce, None).unwrap();
        protocol::inventory::verify_inventory(
            (&change.cluster, &change.roster),
            node,
            (&nonce, None),
            &report,
            &signature,
        )
        .unwrap();
        assert_eq!(report.roster, 1);
        assert_eq!(report.rosters.len(), 1);
        let committed = &report.rosters[0];
        assert_eq!(committed.change.request.hash(), change.hash());
        assert_eq!(committed.statements, statements);
        assert!(committed.keys.is_empty() && committed.aux.is_none());
        assert_eq!(
            report.roster_words,
            vec![protocol::inventory::RosterWord {
                version: 1,
                statement: words[usize::from(node)].statement.clone(),
            }],
            "node {node}"
        );
    }
}

/// A parent rolls its node back to an earlier run of a key's move before the node vouches (the
/// relay ran the move twice): the two nodes of the new roster vouch for different sets, no
/// node commits on either (`keys_differ`), the node rolled back cannot be walked to the other
/// set (`vouched_other`), and neither signs (helper-71, finding 1) until the admins replace
/// the change and prepare the replacement at both (proof that neither committed; a withdrawal
/// alone keeps the vouched sets: helper-69, finding 1). A key is never split between two
/// committed sharings (helper-66, finding H1).
#[test]
fn two_runs_of_a_move_never_commit_two_sharings() {
    const KEY: &str = "moved-twice";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);
    let sign = |c: &Cluster, message: &[u8]| {
        let out = c.sign(&[0, 1], c.sign_request(KEY, vec![], message.to_vec()), None);
        verify_eddsa(&pk, message, &signature_of(&out).0);
    };
    let shrink = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&shrink);
    proposed(&mut c, &out, &shrink.request);
    let change = shrink.request.clone();
    let members = c.enclaves.clone();
    prepare_all(&mut c, &members, &change);
    let first = move_key(&c, &members, &info, &[0, 2]);
    let second = move_key(&c, &members, &info, &[1, 2]);
    assert_ne!(first[&1], second[&1]);

    // Node 1's parent restarts it with the first run's incoming blob.
    c.restart(1, std::slice::from_ref(&first[&1]));
    let words: Vec<Answer> = (0..2)
        .map(|i| vouch(&c.enclaves[i], &change, &mut c.blobs[i][1]))
        .collect();
    assert_ne!(words[0].held.keys, words[1].held.keys);
    let statements = [words[0].held.clone(), words[1].held.clone()];
    for e in &c.enclaves[..2] {
        let refused = commit(e, &change, &statements).err().unwrap();
        assert!(refused.starts_with("keys_differ"), "{refused}");
    }
    // Given the second run's blob now, node 1 vouches for no other set than its first.
    c.restart(1, std::slice::from_ref(&second[&1]));
    let refused = commit(&c.enclaves[1], &change, &[]).err().unwrap();
    assert!(refused.starts_with("vouched_other"), "{refused}");
    refuses_to_sign(&c, KEY, &[0, 1]);

    // Withdrawn, the change stays vouched for: still no signature.
    c.clocks_ahead(1);
    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let out = c.propose(&withdraw);
    proposed(&mut c, &out, &withdraw.request);
    let refused = commit(&c.enclaves[0], &change, &[]).err().unwrap();
    assert!(refused.starts_with("no_pending_change"), "{refused}");
    refuses_to_sign(&c, KEY, &[0, 1]);
    // A replacing change prepared at every node (the first change's kept nodes' words among
    // them) abandons it: the roster in force signs on.
    c.clocks_ahead(1);
    let roster = &c.genesis.request.roster;
    let replacing = c.roster_request(0, vec![roster[0].clone(), roster[2].clone()], &[0, 1]);
    let out = c.propose(&replacing);
    proposed(&mut c, &out, &replacing.request);
    let members = c.enclaves.clone();
    prepare_all(&mut c, &members, &replacing.request);
    sign(&c, b"abandoned, the roster in force signs on");
}
