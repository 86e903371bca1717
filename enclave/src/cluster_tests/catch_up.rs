//! The catch-up of a roster change's commit (issue 20, attacker review helper-67 finding 1): a
//! node of the new roster that vouched for its key set, and to which a withdrawal or an admin
//! change came before its commit while another node had committed, commits the change late on
//! every node's statement. The attacks, written before the catch-up existed: a node that did
//! not vouch for the change (a node leaving, or a change no node vouched for) is refused
//! (`not_vouched`); statements missing, a wrong chain, a change other than the one named are
//! refused; a restart between the withdrawal and the catch-up keeps what it commits.

use std::collections::BTreeMap;

use protocol::policy::Scheme;
use protocol::roster::ChangeRoster;
use protocol::roster::commit::{CatchUp, CommitRoster, KeysHeldStatement, SetStatement};
use protocol::session::{Outcome, PeerDocument, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, Phase};
use serde_bytes::ByteBuf;

use super::commit::{
    Answer, commit, move_key, prepare_all, prepare_grown, send_commit, set_statement, vouch,
};
use super::join::join_one_more;
use super::move_key::facts;
use super::prepare::prepare;
use super::reshare::verify_eddsa;
use super::roster::proposed;
use super::signature_of;
use super::{Cluster, membership_refusal};
use crate::server::Enclave;
use crate::testkit::{IMAGE, admit_all, boot, document, session_id_ahead};

const KEY: &str = "caught-up";

/// A 3-node cluster with one 2-of-3 EdDSA key, its roster change to its first two nodes
/// prepared, the key moved and both nodes vouched: the change, the statements, each node's
/// word, the incoming blobs by node and the key's roster-0 blobs by node.
struct Vouched {
    c: Cluster,
    change: ChangeRoster,
    approved: protocol::policy::Approved<ChangeRoster>,
    statements: Vec<KeysHeldStatement>,
    words: Vec<Answer>,
    incoming: BTreeMap<u16, ByteBuf>,
    old: Vec<ByteBuf>,
    pk: Vec<u8>,
}

fn vouched() -> Vouched {
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), KEY, &pk);
    let old: Vec<ByteBuf> = c.blobs.iter().map(|b| b[2].clone()).collect();
    for blobs in &mut c.blobs {
        blobs.truncate(2);
    }
    let approved = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.propose(&approved);
    proposed(&mut c, &out, &approved.request);
    let change = approved.request.clone();
    let members = c.enclaves.clone();
    prepare_all(&mut c, &members, &change);
    let incoming = move_key(&c, &members, &info, &[0, 2]);
    let words: Vec<Answer> = (0..2)
        .map(|i| vouch(&c.enclaves[i], &change, &mut c.blobs[i][1]))
        .collect();
    let statements = words.iter().map(|w| w.held.clone()).collect();
    Vouched {
        c,
        change,
        approved,
        statements,
        words,
        incoming,
        old,
        pk,
    }
}

impl Vouched {
    /// Node 0 commits the change normally: its word that it did (its blob kept).
    fn first_commits(&mut self) -> [SetStatement; 1] {
        let committed = commit(&self.c.enclaves[0], &self.change, &self.statements).unwrap();
        assert!(committed.committed);
        self.c.blobs[0][1] = committed.sealed.clone().unwrap();
        [set_statement(&committed)]
    }
}

/// A catch-up of `up` with `statements` and `by`'s word that it committed, naming `up`'s hash.
fn catch_up(
    e: &Enclave,
    up: &protocol::policy::Approved<ChangeRoster>,
    (images, by): (u32, &[SetStatement]),
    statements: &[KeysHeldStatement],
) -> Result<Answer, String> {
    send_commit(e, &up.request, catching_up(up, (images, by), statements))
}

/// `e`'s refusal of a catch-up of `up` (the image count 0) on `by` and `statements`.
fn refusal(
    e: &Enclave,
    up: &protocol::policy::Approved<ChangeRoster>,
    by: &[SetStatement],
    statements: &[KeysHeldStatement],
) -> String {
    catch_up(e, up, (0, by), statements).err().unwrap()
}

fn catching_up(
    up: &protocol::policy::Approved<ChangeRoster>,
    (images, by): (u32, &[SetStatement]),
    statements: &[KeysHeldStatement],
) -> CommitRoster {
    CommitRoster {
        change: ByteBuf::from(up.request.hash().to_vec()),
        statements: statements.to_vec(),
        committed: by.to_vec(),
        keys: Vec::new(),
        aux: None,
        catch_up: Some(CatchUp {
            change: up.clone(),
            images,
        }),
    }
}

/// `e`'s refusal of `commit` as a malformed request.
fn bad_request(e: &Enclave, commit: CommitRoster) -> String {
    match e.handle(EnclaveRequest::CommitRoster { commit }) {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, protocol::ErrorCode::BadRequest, "{e}");
            e.message
        }
        other => panic!("{other:?}"),
    }
}

/// Boots `node` again from its blobs and `key_blobs`, admitting the other nodes as peers
/// where its roster allows (its peers are on two rosters): the keys it loaded.
fn restarted(c: &mut Cluster, node: usize, key_blobs: &[ByteBuf]) -> Vec<String> {
    let fresh = boot(&c.ca, node, IMAGE);
    fresh.test_hook(crate::node::TestHook::ClockAhead(c.ahead.get()));
    let mut blobs = c.blobs[node].clone();
    blobs.extend_from_slice(key_blobs);
    let keys = match fresh.handle(EnclaveRequest::Restore { blobs }) {
        EnclaveResponse::Restored { keys, .. } => keys,
        other => panic!("restore: {other:?}"),
    };
    // Admitted by the roster-0 peers' documents, as its parent does after a restart.
    let documents = (0..c.enclaves.len())
        .filter(|&i| i != node)
        .map(|i| PeerDocument {
            node: u16::try_from(i).unwrap(),
            document: document(&c.enclaves[i]),
        })
        .collect();
    match fresh.handle(EnclaveRequest::AdmitPeers { documents }) {
        EnclaveResponse::PeersAdmitted { .. } => {}
        other => panic!("admit: {other:?}"),
    }
    c.enclaves[node] = fresh;
    keys
}

/// Keeps each node's sealed genesis from a proposal's outcomes.
fn keep_proposed(c: &mut Cluster, out: &BTreeMap<u16, Outcome>) {
    for (node, o) in out {
        match o {
            Outcome::RosterProposed { sealed, .. } => {
                c.blobs[usize::from(*node)][1] = sealed.clone();
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
}

/// Node `node` refuses to create a key while it vouched for a change it has not committed.
fn fenced(c: &Cluster, node: usize) {
    let response = c.enclaves[node].handle(EnclaveRequest::StartSession {
        session: session_id_ahead(c.ahead.get()),
        participants: vec![0, 1, 2],
        kind: SessionKind::CreateKey {
            request: c.create_key_request_for(node, "fenced", Scheme::EddsaEd25519, 2),
        },
    });
    let refused = membership_refusal(response);
    assert!(refused.starts_with("vouched_not_committed"), "{refused}");
}

/// The two nodes of the new roster sign with the key on it.
fn signs(c: &mut Cluster, pk: &[u8], message: &[u8]) {
    let out = c.sign(&[0, 1], c.sign_request(KEY, vec![], message.to_vec()), None);
    verify_eddsa(pk, message, &signature_of(&out).0);
}

/// Node 0 commits a shrink from 3 nodes to 2; the admins, not seeing it, withdraw the change,
/// which reaches nodes 1 and 2 (node 0 refuses it: its roster is the new one). Node 1 can no
/// longer commit as before (`no_pending_change`), and without the catch-up node 0 would be
/// stranded. Shown the change with every statement, node 1 commits it, also after a restart
/// between the withdrawal and the catch-up; every attack on the catch-up is refused by name
/// and changes nothing; both nodes then sign on the new roster, and a restart keeps it.
#[test]
fn a_node_a_withdrawal_reached_before_its_commit_catches_up_on_the_committed_change() {
    let mut fixture = vouched();
    let by = fixture.first_commits();
    let Vouched {
        mut c,
        change,
        approved,
        statements,
        words,
        incoming,
        old,
        pk,
    } = fixture;

    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let kind = |request: &protocol::policy::Approved<ChangeRoster>| SessionKind::ProposeRoster {
        request: request.clone(),
        catch_up: None,
    };
    let out = c.run(&[1, 2], kind(&withdraw), |_, _| {});
    keep_proposed(&mut c, &out);
    let refused = c.run(&[0], kind(&withdraw), |_, _| {});
    match &refused[&0] {
        Outcome::Failed { message, .. } => {
            assert!(message.starts_with("stale_roster"), "{message}")
        }
        other => panic!("node 0: {other:?}"),
    }
    let stranded = commit(&c.enclaves[1], &change, &statements).err().unwrap();
    assert!(stranded.starts_with("no_pending_change"), "{stranded}");
    // Until it commits, no key work changes what it vouched for (helper-68, finding 2).
    fenced(&c, 1);
    // A replacing change proposed at the nodes that took the withdrawal abandons nothing: it
    // proves nothing about node 0 (helper-69, finding 1). (A second later: a change replaces a
    // withdrawal only if created after it.)
    c.clocks_ahead(1);
    let replacing = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.run(&[1, 2], kind(&replacing), |_, _| {});
    keep_proposed(&mut c, &out);
    fenced(&c, 1);

    // A restart between the withdrawal and the catch-up: the incoming generation it vouched
    // for is kept (the key in force is still roster 0's).
    let keys = restarted(&mut c, 1, &[old[1].clone(), incoming[&1].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    fenced(&c, 1);
    let restored = protocol::backups::sealed_sequence(&c.blobs[1][1]).unwrap();

    // The attacks. Every statement is needed.
    let refused = refusal(&c.enclaves[1], &approved, &by, &statements[..1]);
    assert!(refused.starts_with("missing_statement"), "{refused}");
    // Another image count names another chain, under which the statements prove nothing.
    let refused = bad_request(
        &c.enclaves[1],
        catching_up(&approved, (1, &by), &statements),
    );
    assert!(refused.contains("more than this chain"), "{refused}");
    // No node's word that it committed: node 0's statement put under node 1's key, or a
    // vouching statement in its place, or the word of a node leaving.
    let forged = [
        (
            SetStatement {
                node_key: statements[1].node_key.clone(),
                ..by[0].clone()
            },
            "unproven_statement",
        ),
        (
            SetStatement {
                statement: statements[0].statement.clone(),
                ..by[0].clone()
            },
            "unproven_statement",
        ),
        (
            SetStatement {
                node_key: ByteBuf::from(c.enclaves[2].node_binding().unwrap().node_key.to_vec()),
                ..by[0].clone()
            },
            "stranger_statement",
        ),
    ];
    for (word, kind) in forged {
        let refused = refusal(&c.enclaves[1], &approved, &[word], &statements);
        assert!(refused.starts_with(kind), "{kind}: {refused}");
    }
    // A change approved by the admins that no node vouched for.
    let other = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let refused = refusal(&c.enclaves[1], &other, &by, &statements);
    assert!(refused.starts_with("not_vouched"), "{refused}");
    // The node leaving vouched for nothing.
    let refused = refusal(&c.enclaves[2], &approved, &by, &statements);
    assert!(refused.starts_with("not_vouched"), "{refused}");
    // A catch-up whose change is not the one named.
    let mut mismatched = catching_up(&approved, (0, &by), &statements);
    mismatched.change = ByteBuf::from(other.request.hash().to_vec());
    let refused = bad_request(&c.enclaves[1], mismatched);
    assert!(refused.contains("is not the change named"), "{refused}");
    assert_eq!(c.enclaves[1].phase(), Phase::Operational);
    let stranded = commit(&c.enclaves[1], &change, &statements).err().unwrap();
    // (The replacing change is pending there, not prepared.)
    assert!(
        stranded.starts_with("not_prepared"),
        "refusals change nothing: {stranded}"
    );

    // The catch-up: node 1 commits, with the word it vouched with.
    let late = catch_up(&c.enclaves[1], &approved, (0, &by), &statements).unwrap();
    assert!(late.committed);
    assert_eq!(late.held, words[1].held);
    assert_eq!(late.count, 1);
    c.blobs[1][1] = late.sealed.unwrap();
    assert_eq!(c.enclaves[1].phase(), Phase::Operational);
    // Its genesis blob is numbered above the one it was restored from (helper-67, finding 2).
    assert!(protocol::backups::sealed_sequence(&c.blobs[1][1]).unwrap() > restored);
    // Asked again, the same answer, and the same blob: no second seal (finding 7).
    let again = catch_up(&c.enclaves[1], &approved, (0, &by), &statements).unwrap();
    assert!(again.committed && again.held == words[1].held);
    assert_eq!(again.sealed.as_ref(), Some(&c.blobs[1][1]));

    c.enclaves.truncate(2);
    c.blobs.truncate(2);
    admit_all(&c.enclaves);
    signs(&mut c, &pk, b"caught up: the new roster signs");
    // Restarted from its committed genesis, node 1 loads the moved share only.
    let keys = c.restart(1, &[old[1].clone(), incoming[&1].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    c.enclaves[1].test_hook(crate::node::TestHook::ClockAhead(c.ahead.get()));
    signs(&mut c, &pk, b"caught up and restarted");
    // Committed, key work goes on, on the new roster, for requests made for it: one made for
    // the roster the change replaced (an import's dealing sealed to its nodes) is refused by
    // both (attacker review helper-79).
    let request = c.create_key_request("after-catch-up", Scheme::EddsaEd25519, 2);
    assert_eq!(request.request.roster, 1);
    let mut before = request.clone();
    before.request.roster = 0;
    before.approvals = crate::testkit::approve(&before.request, &[&c.admins[0], &c.admins[1]]);
    let out = c.run(
        &[0, 1],
        SessionKind::CreateKey { request: before },
        |_, _| {},
    );
    // Both nodes answered, each refusing: an empty answer would pass the loop below.
    assert_eq!(
        out.keys().copied().collect::<Vec<u16>>(),
        vec![0, 1],
        "{out:?}"
    );
    for o in out.values() {
        assert!(
            matches!(o, Outcome::Failed { message, .. } if message.starts_with("stale_roster: the request names roster version 0")),
            "{out:?}"
        );
    }
    let out = c.run(&[0, 1], SessionKind::CreateKey { request }, |_, _| {});
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );
    let keys = c.restart(1, &[old[1].clone()]);
    assert!(keys.is_empty(), "{keys:?}");
}

/// The admins change their own set after node 0 committed and before node 1 did: the admin
/// change drops the pending change at node 1 (and moves its chain on). Node 1 commits late on
/// the statements, checked under the chain it vouched under, and the two sign on.
#[test]
fn a_node_an_admin_change_reached_before_its_commit_catches_up() {
    let mut fixture = vouched();
    let by = fixture.first_commits();
    let Vouched {
        mut c,
        change,
        approved,
        statements,
        words,
        incoming,
        old,
        pk,
    } = fixture;

    let mut next: Vec<ed25519_dalek::SigningKey> = c.admins.clone();
    next[2] = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let approvers = [&c.admins[0], &c.admins[1]];
    let admins = c.set_admins_request(0, &next, &approvers);
    for nodes in [&[0u16][..], &[1, 2]] {
        let out = c.set_admins(nodes, &admins, None);
        for (node, o) in out {
            match o {
                Outcome::AdminsSet { sealed, .. } => c.blobs[usize::from(node)][1] = sealed,
                other => panic!("node {node}: {other:?}"),
            }
        }
    }
    let stranded = commit(&c.enclaves[1], &change, &statements).err().unwrap();
    assert!(stranded.starts_with("no_pending_change"), "{stranded}");

    let late = catch_up(&c.enclaves[1], &approved, (0, &by), &statements).unwrap();
    assert!(late.committed);
    assert_eq!(late.held, words[1].held);
    c.blobs[1][1] = late.sealed.unwrap();
    c.enclaves.truncate(2);
    c.blobs.truncate(2);
    admit_all(&c.enclaves);
    signs(&mut c, &pk, b"caught up after an admin change");
    // Its restore replays the admin change, then the roster change under the admins it names.
    let keys = c.restart(1, &[old[1].clone(), incoming[&1].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    signs(&mut c, &pk, b"caught up, restarted");
}

/// The coordinator tries to commit a growth from 3 nodes to 4 at the node joining alone, then
/// relays a withdrawal to the members that have not committed, which take it. The joining node
/// commits on no statement set alone, nor on one member's word, as a commit or as a catch-up
/// (it needs a threshold of them: attacker review helper-70, finding 3); no member is caught up
/// on a joining node's word (helper-68, finding 1); and the members that vouched sign nothing
/// until they commit (helper-71, finding 1), so the old roster and the new never both sign.
/// Caught up on the committed member's word, a member commits, and the joining node then does
/// on two members' words: the grown roster signs.
#[test]
fn a_joining_node_commits_only_after_a_threshold_of_the_nodes_that_stay() {
    const GROWN: &str = "grown-key";
    let mut c = Cluster::new(3);
    let pk = c.create_key(GROWN, Scheme::EddsaEd25519, 2);
    let info = facts(c.blobs[0].last().unwrap(), GROWN, &pk);
    let mut joining = join_one_more(&mut c);
    let (_, parties) = prepare_grown(&mut c, &mut joining);
    let (newcomer, grow) = (joining.newcomer, joining.grow);
    let change = grow.request.clone();
    move_key(&c, &parties, &info, &[0, 1]);
    let mut sealed = ByteBuf::new();
    let words: Vec<Answer> = parties
        .iter()
        .map(|e| vouch(e, &change, &mut sealed))
        .collect();
    let statements: Vec<KeysHeldStatement> = words.iter().map(|w| w.held.clone()).collect();
    let refused = commit(&newcomer, &change, &statements).err().unwrap();
    assert!(refused.starts_with("too_few_committed"), "{refused}");
    // Node 0 commits; node 0's word alone does not commit the joining node, as a commit or as
    // a catch-up.
    let first = commit(&c.enclaves[0], &change, &statements).unwrap();
    let by = [set_statement(&first)];
    let refused = catch_up(&newcomer, &grow, (0, &by), &statements)
        .err()
        .unwrap();
    assert!(refused.contains("this node needs 2"), "{refused}");
    assert_eq!(newcomer.phase(), Phase::Joining);
    // A joining node's word is no kept node's (here forged: the joining node never committed).
    let theirs = [SetStatement {
        node_key: statements[3].node_key.clone(),
        statement: ByteBuf::from(vec![0; 64]),
    }];
    let refused = refusal(&c.enclaves[1], &grow, &theirs, &statements);
    assert!(refused.starts_with("stranger_statement"), "{refused}");
    // Nodes 1 and 2 vouched and did not commit: a withdrawal reaches them and they take it,
    // but they sign nothing on the old roster (node 0 may sign on the new one).
    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let out = c.run(
        &[1, 2],
        SessionKind::ProposeRoster {
            request: withdraw,
            catch_up: None,
        },
        |_, _| {},
    );
    keep_proposed(&mut c, &out);
    let out = c.sign(
        &[1, 2],
        c.sign_request(GROWN, vec![], b"split".to_vec()),
        None,
    );
    for node in [1, 2] {
        match &out[&node] {
            Outcome::Failed { message, .. } => {
                assert!(message.contains("vouched_not_committed"), "{message}")
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    // Node 1 is caught up on node 0's word; the joining node then commits, as a catch-up, on
    // the words of nodes 0 and 1.
    let second = catch_up(&c.enclaves[1], &grow, (0, &by), &statements).unwrap();
    assert!(second.committed);
    let both = [by[0].clone(), set_statement(&second)];
    let joined = catch_up(&newcomer, &grow, (0, &both), &statements).unwrap();
    assert!(joined.committed);
    assert_eq!(newcomer.phase(), Phase::Operational);
    c.enclaves.push(newcomer);
    // Node 2 is still on the old roster: nodes 1 and 3 admit each other alone.
    for (me, other) in [(1u16, 3u16), (3, 1)] {
        let documents = vec![PeerDocument {
            node: other,
            document: document(&c.enclaves[usize::from(other)]),
        }];
        let answer = c.enclaves[usize::from(me)].handle(EnclaveRequest::AdmitPeers { documents });
        assert!(
            matches!(&answer, EnclaveResponse::PeersAdmitted { refused, .. } if refused.is_empty()),
            "{answer:?}"
        );
    }
    let out = c.sign(
        &[1, 3],
        c.sign_request(GROWN, vec![], b"grown".to_vec()),
        None,
    );
    verify_eddsa(&pk, b"grown", &signature_of(&out).0);
}

/// Every node vouched and none committed; the admins replace the change. Proposed, the
/// replacing change abandons nothing (the fence stays); a node that vouched is prepared for it
/// only on the word of every node the first change keeps (none of them can have committed it:
/// a node that did gives no word at this version), and then drops its vouched set: key work
/// goes on once the replacing change is withdrawn (helper-69, findings 1 and 2; helper-70,
/// finding 2: a node the first change removes is not asked).
#[test]
fn a_change_every_node_vouched_for_is_abandoned_only_on_every_current_node_s_word() {
    let Vouched {
        mut c,
        approved,
        statements,
        ..
    } = vouched();
    c.clocks_ahead(1);
    // Node 1, which the first change keeps, leaves with this one.
    let roster = &c.genesis.request.roster;
    let replacing = c.roster_request(0, vec![roster[0].clone(), roster[2].clone()], &[0, 1]);
    let out = c.propose(&replacing);
    keep_proposed(&mut c, &out);
    fenced(&c, 0);
    let mut none = [ByteBuf::new(), ByteBuf::new()];
    let words: Vec<_> = c
        .enclaves
        .iter()
        .map(|e| prepare(e, &replacing.request, &[], &mut none).unwrap().0)
        .collect();
    // The new roster's words alone: node 1's is missing at a node that vouched (the first
    // change keeps node 1, which may have committed it).
    let refused = prepare(
        &c.enclaves[0],
        &replacing.request,
        &[words[0].clone(), words[2].clone()],
        &mut none,
    )
    .err()
    .unwrap();
    assert!(refused.starts_with("missing_statement"), "{refused}");
    fenced(&c, 0);
    for i in 0..3 {
        assert!(
            prepare(&c.enclaves[i], &replacing.request, &words, &mut c.blobs[i])
                .unwrap()
                .1
        );
    }
    // The first change can no longer be caught up on, even with a word that it committed.
    let by = [SetStatement {
        node_key: statements[1].node_key.clone(),
        statement: ByteBuf::from(vec![0; 64]),
    }];
    let refused = refusal(&c.enclaves[0], &approved, &by, &statements);
    assert!(refused.starts_with("not_vouched"), "{refused}");
    // Withdrawn, key work goes on.
    c.clocks_ahead(1);
    let withdraw = c.roster_request(0, c.genesis.request.roster.clone(), &[0, 1]);
    let out = c.propose(&withdraw);
    keep_proposed(&mut c, &out);
    let request = c.create_key_request("after-abandoning", Scheme::EddsaEd25519, 2);
    let out = c.run(&[0, 1, 2], SessionKind::CreateKey { request }, |_, _| {});
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );
}

/// Node 0 commits; a replacing change reaches node 1, which gives its word on it. One node's
/// word that it committed no longer catches node 1 up: that word may have let the others be
/// prepared for the replacing change, and one parent's rollback forges a committed word, so it
/// now needs a threshold of them (attacker review helper-70, finding 1).
#[test]
fn a_node_that_gave_its_word_on_another_change_needs_a_threshold_of_committed_words() {
    let mut fixture = vouched();
    let by = fixture.first_commits();
    let Vouched {
        mut c,
        approved,
        statements,
        ..
    } = fixture;
    c.clocks_ahead(1);
    let replacing = c.roster_request(0, c.genesis.request.roster[..2].to_vec(), &[0, 1]);
    let out = c.run(
        &[1, 2],
        SessionKind::ProposeRoster {
            request: replacing.clone(),
            catch_up: None,
        },
        |_, _| {},
    );
    keep_proposed(&mut c, &out);
    // Before its word, one committed word is enough (checked by asking for nothing else).
    let mut blobs = c.blobs[1].clone();
    let (_, prepared) = prepare(&c.enclaves[1], &replacing.request, &[], &mut blobs).unwrap();
    assert!(!prepared);
    assert_ne!(
        blobs[1], c.blobs[1][1],
        "the word is sealed before it is given"
    );
    let refused = refusal(&c.enclaves[1], &approved, &by, &statements);
    assert!(refused.starts_with("too_few_committed"), "{refused}");
    assert!(refused.contains("needs 2"), "{refused}");
}
