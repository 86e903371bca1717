//! Resharing and refresh (issue 19) as the enclaves run them: a key moves 2-of-3 -> 3-of-3 ->
//! 2-of-3 and is refreshed, keeping its public key while every share changes; the old
//! generation signs until every node's receipt of the new one is shown, and never after; a
//! node that crashed mid-way, a stale backup of an old generation and retire proofs that do not
//! hold each leave exactly one usable generation.

use std::collections::BTreeMap;

use protocol::policy::{Approved, Canonical, Scheme};
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt, verify_key_receipts};
use protocol::reshare::{RESHARE_VERSION, ReshareKey};
use protocol::session::{FailureCode, Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;
use sha2::Digest;

use super::{Cluster, failure, lock, now, request_id, signature_of, verify_ecdsa};
use crate::seal::{self, BlobKind, LocalSealingAuthority};
use crate::testkit::{IMAGE, MASTER, boot};

/// What one resharing left: each node's sealed pending share and receipt, by node.
pub(super) struct Reshared {
    pub(super) generation: u32,
    /// SHA-256 of the resharing request.
    pub(super) request: [u8; 32],
    pub(super) sealed: Vec<ByteBuf>,
    pub(super) receipts: Vec<ByteBuf>,
}

/// A key record as a test reads it from a blob it opens with the cluster's sealing key.
#[derive(serde::Deserialize)]
struct Record {
    share: ByteBuf,
    generation: u32,
    current: bool,
    #[serde(default)]
    refresh_every: u64,
}

fn open_record(blob: &[u8], kind: BlobKind, key_id: &str) -> Record {
    let authority = LocalSealingAuthority::new(&MASTER, &IMAGE);
    let (_, plain) = seal::unseal(&authority, blob, kind, Some(key_id)).unwrap();
    ciborium::from_reader(plain.as_slice()).unwrap()
}

/// The FROST signing share inside an EdDSA key blob.
fn eddsa_secret(blob: &[u8], key_id: &str) -> Vec<u8> {
    let record = open_record(blob, BlobKind::EddsaShare, key_id);
    let share = crate::mpc::eddsa::SecretEddsaShare::from_bytes(&record.share).unwrap();
    share.held().unwrap().secret.as_ref().to_be_bytes().to_vec()
}

pub(super) fn verify_eddsa(public_key: &[u8], message: &[u8], signature: &[u8]) {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public_key.try_into().unwrap()).unwrap();
    vk.verify_strict(
        message,
        &ed25519_dalek::Signature::from_slice(signature).unwrap(),
    )
    .unwrap();
}

impl Cluster {
    /// A resharing of `key_id` from `generation` to threshold `threshold`, dealt by `dealers`,
    /// approved by the admins `admins` (indices into the cluster's admins).
    pub(super) fn reshare_request(
        &self,
        key_id: &str,
        generation: u32,
        threshold: u16,
        dealers: &[u16],
        admins: &[usize],
    ) -> Approved<ReshareKey> {
        let t = now() + self.ahead.get();
        let request = ReshareKey {
            v: RESHARE_VERSION,
            cluster: self.genesis.request.cluster_id(),
            key_id: key_id.into(),
            generation,
            threshold,
            dealers: dealers.to_vec(),
            request_id: request_id(),
            created: t,
            expiry: t + 300,
            refresh_every: None,
            scheduled: false,
            policy: None,
            admins: 0,
        };
        let keys: Vec<&ed25519_dalek::SigningKey> =
            admins.iter().map(|i| &self.admins[*i]).collect();
        Approved {
            approvals: crate::testkit::approve(&request, &keys),
            request,
        }
    }

    pub(super) fn all(&self) -> Vec<u16> {
        (0..self.enclaves.len() as u16).collect()
    }

    /// A refresh of `key_id` from `generation` with no approvals at all, as a coordinator makes
    /// one on a key's schedule.
    fn unapproved(
        &self,
        key_id: &str,
        generation: u32,
        threshold: u16,
        refresh_every: Option<u64>,
    ) -> Approved<ReshareKey> {
        let mut a = self.reshare_request(key_id, generation, threshold, &[0, 1], &[]);
        assert!(a.approvals.is_empty());
        a.request.refresh_every = refresh_every;
        a.request.scheduled = true;
        a
    }

    /// An admin-approved refresh of `key_id` from `generation` that sets its schedule.
    fn scheduling(&self, key_id: &str, generation: u32, every: u64) -> Approved<ReshareKey> {
        let mut a = self.reshare_request(key_id, generation, 2, &[1, 2], &[]);
        a.request.refresh_every = Some(every);
        let keys: Vec<&ed25519_dalek::SigningKey> = self.admins[..2].iter().collect();
        a.approvals = crate::testkit::approve(&a.request, &keys);
        a
    }

    /// Moves every node's clock `secs` forward.
    pub(super) fn clocks_ahead(&self, secs: u64) {
        for e in &self.enclaves {
            e.test_hook(crate::node::TestHook::ClockAhead(secs));
        }
        self.ahead.set(self.ahead.get() + secs);
    }

    /// Runs a resharing and checks that it succeeded everywhere: the same public key, receipts
    /// that verify for the new generation against the pinned genesis.
    pub(super) fn reshare(
        &self,
        request: Approved<ReshareKey>,
        scheme: Scheme,
        public_key: &[u8],
    ) -> Reshared {
        let r = request.request.clone();
        let hash = sha2::Sha256::digest(r.canonical_bytes()).to_vec();
        let outcomes = self.run(&self.all(), SessionKind::ReshareKey { request }, |_, _| {});
        let mut sealed = Vec::new();
        let mut receipts = Vec::new();
        let mut signatures = Vec::new();
        let mut chain = None;
        for (node, o) in outcomes {
            match o {
                Outcome::KeyReshared {
                    key_id,
                    generation,
                    public_key: pk,
                    chain_code,
                    sealed: s,
                    receipt,
                } => {
                    assert_eq!(
                        (key_id.as_str(), generation, pk.as_slice()),
                        (r.key_id.as_str(), r.generation + 1, public_key)
                    );
                    chain = chain_code;
                    sealed.push(s);
                    signatures.push((node, receipt.to_vec()));
                    receipts.push(receipt);
                }
                other => panic!("reshare at {node}: {other:?}"),
            }
        }
        // What a client checks: every node of the pinned roster signed the new generation.
        let claim = KeyReceipt {
            v: KEY_RECEIPT_VERSION,
            cluster: self.genesis.request.cluster_id(),
            node: 0,
            key_id: r.key_id.clone(),
            scheme,
            threshold: r.threshold,
            participants: self.all(),
            public_key: ByteBuf::from(public_key.to_vec()),
            chain_code: chain,
            generation: r.generation + 1,
            request: ByteBuf::from(hash),
            policy_version: 0,
            policy: None,
        };
        // The tests change a key's policy once at most: a new one is version 1.
        let claim = match &r.policy {
            Some(policy) => claim.with_policy(1, policy),
            None => claim,
        };
        verify_key_receipts(&self.genesis.request, &claim, &signatures).unwrap();
        Reshared {
            generation: r.generation + 1,
            request: sha2::Sha256::digest(r.canonical_bytes()).into(),
            sealed,
            receipts,
        }
    }

    /// Retires `key_id` into `generation` at `nodes` with `receipts`.
    pub(super) fn retire(
        &self,
        nodes: &[u16],
        key_id: &str,
        generation: u32,
        receipts: &[ByteBuf],
    ) -> BTreeMap<u16, Outcome> {
        self.retire_thawing(nodes, key_id, generation, receipts, None)
    }

    /// Retires as [`Self::retire`], showing `thaw` (another node's retired statement).
    pub(super) fn retire_thawing(
        &self,
        nodes: &[u16],
        key_id: &str,
        generation: u32,
        receipts: &[ByteBuf],
        thaw: Option<(u16, ByteBuf)>,
    ) -> BTreeMap<u16, Outcome> {
        self.run(
            nodes,
            SessionKind::RetireGeneration {
                key_id: key_id.into(),
                generation,
                receipts: receipts.to_vec(),
                thaw,
            },
            |_, _| {},
        )
    }

    /// Retires into `reshared` everywhere; returns each node's new current blob. Every node
    /// says, signed with its node key, that the new generation is the one it signs with.
    pub(super) fn retire_all(&self, key_id: &str, reshared: &Reshared) -> Vec<ByteBuf> {
        let out = self.retire(&self.all(), key_id, reshared.generation, &reshared.receipts);
        let mut statements = Vec::new();
        let blobs = out
            .into_iter()
            .map(|(node, o)| match o {
                Outcome::GenerationRetired {
                    generation,
                    sealed,
                    statement,
                    ..
                } => {
                    assert_eq!(generation, reshared.generation);
                    statements.push((node, statement.to_vec()));
                    sealed
                }
                other => panic!("retire at {node}: {other:?}"),
            })
            .collect();
        let verify = |statements: &[(u16, Vec<u8>)]| {
            protocol::reshare::verify_retired(
                &self.genesis.request,
                key_id,
                reshared.generation,
                &reshared.request,
                statements,
            )
        };
        verify(&statements).unwrap();
        // Not for another generation, and not with one node's missing.
        assert_eq!(
            protocol::reshare::verify_retired(
                &self.genesis.request,
                key_id,
                reshared.generation + 1,
                &reshared.request,
                &statements
            ),
            Err(0)
        );
        assert_eq!(verify(&statements[1..]), Err(0));
        blobs
    }

    /// Signs `message` with `key_id` among `quorum`; the outcomes.
    fn sign_message(&self, quorum: &[u16], key_id: &str, message: &[u8]) -> BTreeMap<u16, Outcome> {
        self.sign(
            quorum,
            self.sign_request(key_id, vec![], message.to_vec()),
            None,
        )
    }

    /// Restarts node `node` from `blobs` (its node key, genesis, auxiliary info and the given
    /// key blobs); the keys it loaded.
    pub(super) fn restart(&mut self, node: usize, key_blobs: &[ByteBuf]) -> Vec<String> {
        let fresh = boot(&self.ca, node, IMAGE);
        let mut blobs = self.blobs[node].clone();
        blobs.extend_from_slice(key_blobs);
        let keys = match fresh.handle(EnclaveRequest::Restore { blobs }) {
            EnclaveResponse::Restored { keys, .. } => keys,
            other => panic!("restore: {other:?}"),
        };
        self.enclaves[node] = fresh;
        self.admit_all();
        keys
    }
}

/// The Done-when of issue 19 for resharing, on an EdDSA key: 2-of-3 -> 3-of-3 -> 2-of-3, then a
/// refresh. The public key never changes; every node's share changes at every step; the old
/// generation keeps signing until the retire and is refused after it.
#[test]
fn a_key_moves_to_3_of_3_and_back_and_is_refreshed_keeping_its_public_key() {
    const KEY: &str = "moving";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let gen0: Vec<ByteBuf> = (0..3).map(|i| c.blobs[i].pop().unwrap()).collect();

    // 2-of-3 -> 3-of-3, dealt by nodes 0 and 2.
    let request = c.reshare_request(KEY, 0, 3, &[0, 2], &[0, 1]);
    let gen1 = c.reshare(request, Scheme::EddsaEd25519, &pk);
    for (node, blob) in gen1.sealed.iter().enumerate() {
        let record = open_record(blob, BlobKind::EddsaShare, KEY);
        assert_eq!(
            (record.generation, record.current),
            (1, false),
            "node {node}"
        );
        assert_ne!(
            eddsa_secret(blob, KEY),
            eddsa_secret(&gen0[node], KEY),
            "node {node}'s share did not change"
        );
    }
    // Pending: the old generation still signs, 2 of 3.
    let out = c.sign_message(&[0, 1], KEY, b"before the retire");
    verify_eddsa(&pk, b"before the retire", &signature_of(&out).0);

    let current1 = c.retire_all(KEY, &gen1);
    for blob in &current1 {
        let record = open_record(blob, BlobKind::EddsaShare, KEY);
        assert_eq!((record.generation, record.current), (1, true));
    }
    // Two signers are no longer enough; all three sign under the same key.
    let out = c.sign_message(&[0, 1], KEY, b"two of three");
    assert!(
        out.values().all(|o| !matches!(o, Outcome::Signed { .. })),
        "{out:?}"
    );
    let out = c.sign_message(&[0, 1, 2], KEY, b"three of three");
    verify_eddsa(&pk, b"three of three", &signature_of(&out).0);

    // A request for the retired generation is refused everywhere, nothing changes.
    let stale = c.reshare_request(KEY, 0, 2, &[0, 1, 2], &[0, 1]);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey { request: stale },
        |_, _| {},
    );
    assert!(
        out.values().all(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("generation 1 here"))),
        "{out:?}"
    );

    // 3-of-3 -> 2-of-3: every node deals (the old threshold is 3).
    let request = c.reshare_request(KEY, 1, 2, &[0, 1, 2], &[1, 2]);
    let gen2 = c.reshare(request, Scheme::EddsaEd25519, &pk);
    c.retire_all(KEY, &gen2);
    let out = c.sign_message(&[1, 2], KEY, b"back to two of three");
    verify_eddsa(&pk, b"back to two of three", &signature_of(&out).0);

    // Refresh: same threshold, dealt by nodes 0 and 1; every share changes again.
    let request = c.reshare_request(KEY, 2, 2, &[0, 1], &[0, 2]);
    let gen3 = c.reshare(request, Scheme::EddsaEd25519, &pk);
    for node in 0..3 {
        assert_ne!(
            eddsa_secret(&gen3.sealed[node], KEY),
            eddsa_secret(&gen2.sealed[node], KEY),
            "node {node}'s share did not change in the refresh"
        );
    }
    let current3 = c.retire_all(KEY, &gen3);
    let out = c.sign_message(&[0, 2], KEY, b"refreshed");
    verify_eddsa(&pk, b"refreshed", &signature_of(&out).0);

    // A stale backup: node 1 restarts from its generation-0 blob beside its current one; the
    // old generation is ignored and node 1 signs with the others at generation 3.
    let keys = c.restart(1, &[gen0[1].clone(), current3[1].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    let out = c.sign_message(&[0, 1], KEY, b"after a stale backup");
    verify_eddsa(&pk, b"after a stale backup", &signature_of(&out).0);

    // A parent that withholds the current blob and restores generation 0 alone: node 1 then
    // holds only the old generation, which no longer signs with the others' shares.
    let keys = c.restart(1, &[gen0[1].clone()]);
    assert_eq!(keys, vec![KEY.to_string()]);
    let out = c.sign_message(&[0, 1], KEY, b"old and new mixed");
    assert!(
        out.values().all(|o| !matches!(o, Outcome::Signed { .. })),
        "a signature by an old generation's share: {out:?}"
    );
    // Put right by its current blob.
    c.restart(1, &[current3[1].clone()]);
    let out = c.sign_message(&[1, 2], KEY, b"restored");
    verify_eddsa(&pk, b"restored", &signature_of(&out).0);
}

/// A crash between the new generation's sealing and its retire, and retire proofs that do not
/// hold: each leaves exactly one usable generation.
#[test]
fn a_crash_mid_reshare_or_a_bad_retire_proof_leaves_exactly_one_usable_generation() {
    const KEY: &str = "crash";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let gen0: Vec<ByteBuf> = (0..3).map(|i| c.blobs[i].pop().unwrap()).collect();

    // Node 2 crashes before it sealed anything: its confirmations never arrive, so nodes 0 and
    // 1 wait, and node 2 comes back with generation 0 only.
    let request = c.reshare_request(KEY, 0, 3, &[0, 1], &[0, 1]);
    let session = crate::testkit::fresh_session_id();
    let out = c.run_in(
        session.clone(),
        &c.all(),
        SessionKind::ReshareKey { request },
        |to, envelopes| {
            if to == 2 {
                envelopes.clear();
            }
        },
    );
    assert!(
        out.values()
            .all(|o| !matches!(o, Outcome::KeyReshared { .. })),
        "{out:?}"
    );
    // The coordinator gives up on the session: the nodes that waited let it go.
    for e in &c.enclaves {
        e.handle(EnclaveRequest::AbortSession {
            session: session.clone(),
        });
    }
    c.restart(2, &[gen0[2].clone()]);
    let out = c.sign_message(&[0, 2], KEY, b"the old generation");
    verify_eddsa(&pk, b"the old generation", &signature_of(&out).0);

    // The resharing again: every node seals generation 1, pending.
    let request = c.reshare_request(KEY, 0, 3, &[0, 1], &[0, 1]);
    let gen1 = c.reshare(request, Scheme::EddsaEd25519, &pk);

    // Retire proofs that do not hold, refused with the old generation kept: a receipt
    // missing, a node's receipt swapped for another's, another generation.
    let out = c.retire(&c.all(), KEY, 1, &gen1.receipts[..2]);
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("every node's receipt"))),
        "{out:?}"
    );
    let swapped = vec![
        gen1.receipts[1].clone(),
        gen1.receipts[0].clone(),
        gen1.receipts[2].clone(),
    ];
    let out = c.retire(&c.all(), KEY, 1, &swapped);
    assert!(
        out.values().all(
            |o| matches!(o, Outcome::Failed { message, .. } if message.contains("node 0's receipt"))
        ),
        "{out:?}"
    );
    // Generation 0 is never retired into (nor signed as such, helper-38).
    let out = c.retire(&c.all(), KEY, 0, &gen1.receipts);
    assert!(
        out.values().all(
            |o| matches!(o, Outcome::Failed { message, .. } if message.contains("generation 0"))
        ),
        "{out:?}"
    );
    let out = c.retire(&c.all(), KEY, 2, &gen1.receipts);
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("no pending generation 2"))),
        "{out:?}"
    );
    let out = c.sign_message(&[1, 2], KEY, b"still the old one");
    verify_eddsa(&pk, b"still the old one", &signature_of(&out).0);

    // Node 0 retires; node 1 crashes before it did. Restarted from its blobs (generation 0 and
    // the pending generation 1), it retires with the same receipts, as does node 2.
    let out = c.retire(&[0], KEY, 1, &gen1.receipts);
    assert!(
        matches!(out[&0], Outcome::GenerationRetired { .. }),
        "{out:?}"
    );
    c.restart(1, &[gen0[1].clone(), gen1.sealed[1].clone()]);
    let out = c.retire(&[1, 2], KEY, 1, &gen1.receipts);
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::GenerationRetired { .. })),
        "{out:?}"
    );
    // Answered again at node 0, which retired already (its parent may have lost the answer).
    let out = c.retire(&[0], KEY, 1, &gen1.receipts);
    assert!(
        matches!(out[&0], Outcome::GenerationRetired { .. }),
        "{out:?}"
    );
    let out = c.sign_message(&[0, 1, 2], KEY, b"the new generation");
    verify_eddsa(&pk, b"the new generation", &signature_of(&out).0);
    let out = c.sign_message(&[0, 1], KEY, b"two are not enough");
    assert!(!failure(&out).is_empty(), "{out:?}");
}

/// An ECDSA key refreshed: the chain code and every derived key stay; a presignature of the old
/// generation is dropped at the retire and never used; the new shares sign.
#[test]
fn an_ecdsa_key_is_refreshed_and_its_old_presignatures_are_dropped() {
    const KEY: &str = "refresh-ecdsa";
    let mut c = lock();
    let pk = c.create_key(KEY, Scheme::EcdsaSecp256k1, 2);
    let pid = crate::testkit::fresh_session_id();
    let presign = c.run_in(
        pid.clone(),
        &[0, 1],
        SessionKind::Presign {
            key_id: KEY.into(),
            path: vec![],
        },
        |_, _| {},
    );
    assert!(presign.values().all(|o| *o == Outcome::PresignatureReady));
    let digest = [3u8; 32];
    let out = c.sign(
        &[0, 1],
        c.sign_request(KEY, vec![0, 5], digest.to_vec()),
        None,
    );
    let (_, derived) = signature_of(&out);
    let request = c.reshare_request(KEY, 0, 2, &[1, 2], &[0, 2]);
    let gen1 = c.reshare(request, Scheme::EcdsaSecp256k1, &pk);
    c.retire_all(KEY, &gen1);
    let stale = c.sign(
        &[0, 1],
        c.sign_preimage(KEY, vec![], b"with an old presignature"),
        Some(pid),
    );
    assert!(
        failure(&stale)
            .iter()
            .any(|(code, _)| *code == protocol::session::FailureCode::NoPresignature),
        "{stale:?}"
    );
    let out = c.sign(
        &[0, 2],
        c.sign_request(KEY, vec![0, 5], digest.to_vec()),
        None,
    );
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, derived, "the derived key changed");
    verify_ecdsa(&signer, &digest, &sig);
    let out = c.sign(&[1, 2], c.sign_request(KEY, vec![], digest.to_vec()), None);
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, pk);
    verify_ecdsa(&signer, &digest, &sig);
}

/// A compromised dealer enclave is named by every node it cheated, and no node keeps a new
/// generation: one that deals a secret other than its share of the key (every node refuses
/// its constant term), one that sends a node a sub-share off its polynomial (that node
/// refuses it; the others never get its confirmation). Requests without the admin quorum or
/// with fewer dealers than the key's threshold change nothing either.
#[test]
fn a_cheating_dealer_is_named_and_no_node_keeps_a_new_generation() {
    use crate::node::Cheat;
    use crate::node::TestHook;
    const KEY: &str = "cheated";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);

    let abort = |c: &Cluster, session: &ByteBuf| {
        for e in &c.enclaves {
            e.handle(EnclaveRequest::AbortSession {
                session: session.clone(),
            });
        }
    };
    let no_pending = |c: &Cluster| {
        let fake = vec![ByteBuf::from(vec![0u8; 64]); 3];
        let out = c.retire(&c.all(), KEY, 1, &fake);
        assert!(
            out.values().all(
                |o| matches!(o, Outcome::Failed { message, .. } if message.contains("no pending generation 1"))
            ),
            "{out:?}"
        );
    };

    c.enclaves[1].test_hook(TestHook::CheatInNextDealing(Cheat::OtherSecret));
    let session = crate::testkit::fresh_session_id();
    let request = c.reshare_request(KEY, 0, 2, &[0, 1], &[0, 1]);
    let out = c.run_in(
        session.clone(),
        &c.all(),
        SessionKind::ReshareKey { request },
        |_, _| {},
    );
    abort(&c, &session);
    for node in [0u16, 2] {
        match &out[&node] {
            Outcome::Failed {
                message, culprits, ..
            } => {
                assert_eq!(culprits, &vec![1], "{message}");
                assert!(
                    message.contains("node 1 (dealer 1 of the request) is refused")
                        && message.contains("other than its share of the key"),
                    "{message}"
                );
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    no_pending(&c);

    c.enclaves[0].test_hook(TestHook::CheatInNextDealing(Cheat::OffPolynomial(2)));
    let session = crate::testkit::fresh_session_id();
    let request = c.reshare_request(KEY, 0, 2, &[0, 2], &[0, 1]);
    let out = c.run_in(
        session.clone(),
        &c.all(),
        SessionKind::ReshareKey { request },
        |_, _| {},
    );
    abort(&c, &session);
    match &out[&2] {
        Outcome::Failed {
            message, culprits, ..
        } => {
            assert_eq!(culprits, &vec![0], "{message}");
            assert!(message.contains("sub-share"), "{message}");
        }
        other => panic!("node 2: {other:?}"),
    }
    assert!(
        out.values()
            .all(|o| !matches!(o, Outcome::KeyReshared { .. })),
        "{out:?}"
    );
    no_pending(&c);

    // One admin approval where the quorum is two; a single dealer for a 2-of-3 key.
    for request in [
        c.reshare_request(KEY, 0, 2, &[0, 1], &[0]),
        c.reshare_request(KEY, 0, 2, &[1], &[0, 1]),
        c.reshare_request(KEY, 0, 2, &[1, 1], &[0, 1]),
        c.reshare_request(KEY, 0, 1, &[0, 1], &[0, 1]),
    ] {
        let out = c.run(&c.all(), SessionKind::ReshareKey { request }, |_, _| {});
        assert!(
            out.values().all(|o| matches!(o, Outcome::Failed { .. })),
            "{out:?}"
        );
    }
    no_pending(&c);
    let out = c.sign_message(&[0, 2], KEY, b"unchanged");
    verify_eddsa(&pk, b"unchanged", &signature_of(&out).0);
}

/// Attacker review helper-36, finding 1: a coordinator that gets a second resharing of the same
/// generation approved (by making the first look failed) must not be able to retire one
/// resharing at some nodes and the other elsewhere. A pending generation is never replaced: a
/// second request is refused while one is pending. A resharing that did not finish everywhere
/// is resolved: every node sealed it (retire), or every node disowns it and it is abandoned on
/// all their statements; a node that froze it while another retired into it is thawed by that
/// node's signed word (helper-39).
#[test]
fn a_second_resharing_of_a_generation_cannot_split_the_cluster() {
    const KEY: &str = "split";
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    let _ = (c.blobs[0].pop(), c.blobs[1].pop(), c.blobs[2].pop());

    // Request A runs everywhere; the coordinator keeps its receipts and does not retire.
    let a = c.reshare_request(KEY, 0, 3, &[0, 1], &[0, 1]);
    let gen_a = c.reshare(a.clone(), Scheme::EddsaEd25519, &pk);
    // Request B for the same generation is refused everywhere while A is pending.
    let b = c.reshare_request(KEY, 0, 2, &[1, 2], &[0, 1]);
    let out = c.run(&c.all(), SessionKind::ReshareKey { request: b }, |_, _| {});
    assert!(
        out.values().all(|o| matches!(o, Outcome::Failed { message, .. } if message.contains("pending generation 1"))),
        "{out:?}"
    );
    // Resolving A: every node sealed it, and says so again with its receipt; those receipts
    // retire A everywhere.
    let out = c.run(
        &c.all(),
        SessionKind::ResolveGeneration { request: a.clone() },
        |_, _| {},
    );
    let receipts: Vec<ByteBuf> = out
        .values()
        .map(|o| match o {
            Outcome::Sealed { receipt, .. } => receipt.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(receipts, gen_a.receipts, "the same receipts, signed again");
    // helper-37, finding 1: once node 0 retired into A, no node's word can get A dropped
    // elsewhere. Node 0 refuses to disown A (it is current there), and one node's statement
    // (node 2's: it freezes its pending A to give it) abandons nothing at node 1.
    let out = c.retire(&[0], KEY, 1, &gen_a.receipts);
    assert!(
        matches!(out[&0], Outcome::GenerationRetired { .. }),
        "{out:?}"
    );
    let out = c.run(
        &[0],
        SessionKind::DisownGeneration { request: a.clone() },
        |_, _| {},
    );
    assert!(
        matches!(&out[&0], Outcome::Failed { message, .. } if message.contains("is current here")),
        "{out:?}"
    );
    let out = c.run(
        &[2],
        SessionKind::DisownGeneration { request: a.clone() },
        |_, _| {},
    );
    let Outcome::Disowned {
        statement,
        sealed: Some(frozen_blob),
        ..
    } = out[&2].clone()
    else {
        panic!("{out:?}")
    };
    assert!(open_record(&frozen_blob, BlobKind::EddsaShare, KEY).generation == 1);
    let hash_a = ByteBuf::from(sha2::Sha256::digest(a.request.canonical_bytes()).to_vec());
    let forged = vec![statement.clone(), statement.clone(), statement];
    let out = c.run(
        &[1],
        SessionKind::AbandonGeneration {
            key_id: KEY.into(),
            generation: 1,
            request: hash_a,
            statements: forged,
        },
        |_, _| {},
    );
    assert!(
        matches!(&out[&1], Outcome::Failed { message, .. } if message.contains("node 0's statement")),
        "{out:?}"
    );
    // Node 1 retires into A. Node 2 froze A: the receipts alone no longer retire it there
    // (that is what its disowning promised while no node had A current).
    let out = c.retire(&[1], KEY, 1, &gen_a.receipts);
    let Outcome::GenerationRetired {
        statement: retired_1,
        ..
    } = out[&1].clone()
    else {
        panic!("{out:?}")
    };
    let out = c.retire(&[2], KEY, 1, &gen_a.receipts);
    assert!(
        matches!(&out[&2], Outcome::Failed { message, .. } if message.contains("frozen")),
        "{out:?}"
    );
    let out = c.sign_message(&[0, 1], KEY, b"nodes 0 and 1 on A");
    assert!(
        !failure(&out).is_empty(),
        "A is 3-of-3: two do not sign: {out:?}"
    );
    // helper-39, finding 1 (the open attack of helper-37): left so, the key would be split
    // for good (node 2 on generation 0, nodes 0 and 1 on A, 3-of-3: nothing signs, and no
    // resharing can start). Another node's signed word that A is current there thaws it:
    // not a statement under the wrong node, not node 2's own, not for another generation.
    for thaw in [
        (0, retired_1.clone()),
        (2, retired_1.clone()),
        (7, retired_1.clone()),
    ] {
        let out = c.retire_thawing(&[2], KEY, 1, &gen_a.receipts, Some(thaw));
        assert!(
            matches!(&out[&2], Outcome::Failed { message, .. } if message.contains("frozen")),
            "{out:?}"
        );
    }
    let out = c.retire_thawing(&[2], KEY, 2, &gen_a.receipts, Some((1, retired_1.clone())));
    assert!(matches!(&out[&2], Outcome::Failed { .. }), "{out:?}");
    let out = c.retire_thawing(&[2], KEY, 1, &gen_a.receipts, Some((1, retired_1)));
    let Outcome::GenerationRetired { statement, .. } = &out[&2] else {
        panic!("{out:?}")
    };
    assert!(protocol::reshare::retired_by(
        (&c.genesis.request.cluster_id(), &c.genesis.request.roster),
        2,
        (KEY, 1),
        &gen_a.request,
        statement
    ));
    let out = c.sign_message(&[0, 1, 2], KEY, b"A everywhere");
    verify_eddsa(&pk, b"A everywhere", &signature_of(&out).0);

    // Request C fails at node 2 after nodes 0 and 1 sealed it: node 2 never gets their
    // confirmations. Node 2's session is aborted.
    let request = c.reshare_request(KEY, 1, 2, &[0, 1, 2], &[0, 1]);
    let session = crate::testkit::fresh_session_id();
    let out = c.run_in(
        session.clone(),
        &c.all(),
        SessionKind::ReshareKey {
            request: request.clone(),
        },
        |to, envelopes| {
            if to == 2 {
                envelopes.retain(|e| e.to.is_some() || e.body.first() != Some(&3));
            }
        },
    );
    assert!(matches!(out[&0], Outcome::KeyReshared { .. }), "{out:?}");
    assert!(matches!(out[&1], Outcome::KeyReshared { .. }), "{out:?}");
    assert!(!out.contains_key(&2), "{out:?}");
    c.enclaves[2].handle(EnclaveRequest::AbortSession {
        session: session.clone(),
    });
    // A new request is refused at nodes 0 and 1, which hold C pending.
    let d = c.reshare_request(KEY, 1, 2, &[0, 1, 2], &[0, 1]);
    let session = crate::testkit::fresh_session_id();
    let out = c.run_in(
        session.clone(),
        &c.all(),
        SessionKind::ReshareKey { request: d },
        |_, _| {},
    );
    // Node 2 started it and waits for the others: the coordinator aborts it.
    for e in &c.enclaves {
        e.handle(EnclaveRequest::AbortSession {
            session: session.clone(),
        });
    }
    assert!(
        [0u16, 1].iter().all(|n| matches!(&out[n], Outcome::Failed { message, .. } if message.contains("pending generation 2"))),
        "{out:?}"
    );
    // Resolving C: nodes 0 and 1 sealed it, node 2 did not, none has it current. Every node
    // disowns it (0 and 1 freeze their pending C, node 2 consumes the request), and on all
    // three statements nodes 0 and 1 drop it.
    let out = c.run(
        &c.all(),
        SessionKind::ResolveGeneration {
            request: request.clone(),
        },
        |_, _| {},
    );
    assert!(
        matches!(out[&0], Outcome::Sealed { current: false, .. }),
        "{out:?}"
    );
    assert!(matches!(out[&2], Outcome::NotSealed { .. }), "{out:?}");
    let out = c.run(
        &c.all(),
        SessionKind::DisownGeneration {
            request: request.clone(),
        },
        |_, _| {},
    );
    let statements: Vec<ByteBuf> = (0..3u16)
        .map(|n| match &out[&n] {
            Outcome::Disowned {
                statement, sealed, ..
            } => {
                assert_eq!(sealed.is_some(), n < 2, "node {n}");
                statement.clone()
            }
            other => panic!("node {n}: {other:?}"),
        })
        .collect();
    // Node 2 cannot be made to seal C afterwards.
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey {
            request: request.clone(),
        },
        |_, _| {},
    );
    assert!(matches!(&out[&2], Outcome::Failed { .. }), "{out:?}");
    let hash = ByteBuf::from(sha2::Sha256::digest(request.request.canonical_bytes()).to_vec());
    let abandon = |statements: Vec<ByteBuf>, hash: ByteBuf| SessionKind::AbandonGeneration {
        key_id: KEY.into(),
        generation: 2,
        request: hash,
        statements,
    };
    // Two statements, swapped statements, or statements over another request abandon nothing.
    let out = c.run(
        &[0, 1],
        abandon(statements[..2].to_vec(), hash.clone()),
        |_, _| {},
    );
    assert!(
        out.values().all(|o| matches!(o, Outcome::Failed { .. })),
        "{out:?}"
    );
    let swapped = vec![
        statements[1].clone(),
        statements[0].clone(),
        statements[2].clone(),
    ];
    let out = c.run(&[0, 1], abandon(swapped, hash.clone()), |_, _| {});
    assert!(
        out.values().all(|o| matches!(o, Outcome::Failed { .. })),
        "{out:?}"
    );
    let out = c.run(
        &[0, 1],
        abandon(statements.clone(), ByteBuf::from(vec![7u8; 32])),
        |_, _| {},
    );
    assert!(
        out.values().all(|o| matches!(o, Outcome::Failed { .. })),
        "{out:?}"
    );
    let out = c.run(&c.all(), abandon(statements, hash), |_, _| {});
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::GenerationAbandoned { generation: 2, .. })),
        "{out:?}"
    );
    // Generation 1 signs; a new resharing goes through everywhere.
    let out = c.sign_message(&[0, 1, 2], KEY, b"generation 1 still");
    verify_eddsa(&pk, b"generation 1 still", &signature_of(&out).0);
    let e = c.reshare_request(KEY, 1, 2, &[0, 1, 2], &[0, 1]);
    let gen2 = c.reshare(e, Scheme::EddsaEd25519, &pk);
    c.retire_all(KEY, &gen2);
    let out = c.sign_message(&[0, 2], KEY, b"generation 2");
    verify_eddsa(&pk, b"generation 2", &signature_of(&out).0);
}

/// Every node's failure message, asserting that every node failed with `code`.
pub(super) fn failed_everywhere(out: &BTreeMap<u16, Outcome>, code: FailureCode) -> Vec<String> {
    out.iter()
        .map(|(node, o)| match o {
            Outcome::Failed {
                code: c, message, ..
            } if *c == code => message.clone(),
            other => panic!("node {node}: {other:?}, expected {code}"),
        })
        .collect()
}

/// A scheduled refresh (issue 19): the admins turn a key's schedule on with an approved
/// refresh; from then on the coordinator may refresh the key with no approvals, but only as
/// the schedule each node sealed allows. The attacks of a compromised coordinator: refresh a
/// key that has no schedule, refresh before it is due (to drain presignature pools), change
/// the threshold or the schedule under a "refresh", or disown its way past a schedule.
#[test]
fn an_unapproved_refresh_runs_only_as_the_keys_sealed_schedule_allows() {
    const KEY: &str = "scheduled";
    const DAY: u64 = 86_400;
    let mut c = Cluster::new(3);
    let pk = c.create_key(KEY, Scheme::EddsaEd25519, 2);
    // helper-39, finding 8: without a schedule, a key's record has no schedule fields, so an
    // earlier image (whose record refuses unknown fields) still restores it.
    let blob = c.blobs[0].last().unwrap();
    let authority = LocalSealingAuthority::new(&MASTER, &IMAGE);
    let (_, plain) = seal::unseal(&authority, blob, BlobKind::EddsaShare, Some(KEY)).unwrap();
    let fields: ciborium::Value = ciborium::from_reader(plain.as_slice()).unwrap();
    let names: Vec<String> = fields
        .as_map()
        .unwrap()
        .iter()
        .filter_map(|(k, _)| k.as_text().map(String::from))
        .collect();
    assert!(
        !names.iter().any(|n| n == "refresh_every" || n == "since"),
        "{names:?}"
    );
    // A schedule longer than ten years is refused by every node.
    let mut too_long = c.reshare_request(KEY, 0, 2, &[0, 1], &[]);
    too_long.request.refresh_every = Some(protocol::reshare::MAX_REFRESH_EVERY + 1);
    let keys: Vec<&ed25519_dalek::SigningKey> = c.admins[..2].iter().collect();
    too_long.approvals = crate::testkit::approve(&too_long.request, &keys);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey { request: too_long },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::BadRequest);

    // No schedule: an unapproved refresh is refused everywhere.
    let attack = c.unapproved(KEY, 0, 2, None);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey { request: attack },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("no refresh schedule"), "{m}");
    }
    // helper-39, finding 2: an unapproved request cannot spend the id of one the admins
    // approved. helper-40, finding 1: nor can it stand in for it. The admins' request with its
    // approvals stripped is refused outright (an unapproved request is only ever a scheduled
    // refresh); marked scheduled, it is another request (another hash): disowning it is
    // answered but spends an id of its own kind only, and its statements abandon nothing the
    // approved request makes.
    let approved = c.scheduling(KEY, 0, DAY);
    let stripped = Approved {
        approvals: vec![],
        request: approved.request.clone(),
    };
    let out = c.run(
        &c.all(),
        SessionKind::DisownGeneration { request: stripped },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("only ever a scheduled refresh"), "{m}");
    }
    // Approved by the admins and marked scheduled: refused too (never both).
    let mut marked = approved.clone();
    marked.request.scheduled = true;
    let keys: Vec<&ed25519_dalek::SigningKey> = c.admins[..2].iter().collect();
    marked.approvals = crate::testkit::approve(&marked.request, &keys);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey {
            request: marked.clone(),
        },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::BadRequest);
    // helper-43, finding 1: unapproved, with a schedule of its own, it is refused outright,
    // even to be disowned.
    let with_schedule = Approved {
        approvals: vec![],
        request: marked.request.clone(),
    };
    let out = c.run(
        &c.all(),
        SessionKind::DisownGeneration {
            request: with_schedule,
        },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("never sets a key's policy or schedule"), "{m}");
    }
    // Without one, it is a scheduled refresh's shape, and another request than the admins'.
    let mut plain = marked.request;
    plain.refresh_every = None;
    let burn = Approved {
        approvals: vec![],
        request: plain,
    };
    let burn_hash = ByteBuf::from(sha2::Sha256::digest(burn.request.canonical_bytes()).to_vec());
    let out = c.run(
        &c.all(),
        SessionKind::DisownGeneration { request: burn },
        |_, _| {},
    );
    let statements: Vec<ByteBuf> = out
        .values()
        .map(|o| match o {
            Outcome::Disowned {
                statement,
                sealed: None,
                ..
            } => statement.clone(),
            other => panic!("{other:?}"),
        })
        .collect();

    // The admins turn a daily refresh on, with a refresh; each node seals the schedule. The
    // statements about the marked copy abandon none of it.
    let gen1 = c.reshare(approved, Scheme::EddsaEd25519, &pk);
    let out = c.run(
        &c.all(),
        SessionKind::AbandonGeneration {
            key_id: KEY.into(),
            generation: 1,
            request: burn_hash,
            statements,
        },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| !matches!(o, Outcome::GenerationAbandoned { .. })),
        "{out:?}"
    );
    for blob in c.retire_all(KEY, &gen1) {
        assert_eq!(
            open_record(&blob, BlobKind::EddsaShare, KEY).refresh_every,
            DAY
        );
    }

    // Not due yet at any node: refused, nothing changes (a coordinator cannot drain the
    // key's presignatures by refreshing it over and over).
    let early = c.unapproved(KEY, 1, 2, None);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey { request: early },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::NotYet) {
        assert!(m.contains("due at"), "{m}");
    }
    c.clocks_ahead(DAY);
    // Due now; but an unapproved request that changes the threshold or the schedule is not a
    // refresh: refused everywhere.
    for attack in [
        c.unapproved(KEY, 1, 3, None),
        c.unapproved(KEY, 1, 2, Some(1)),
        c.unapproved(KEY, 1, 2, Some(0)),
    ] {
        let out = c.run(
            &c.all(),
            SessionKind::ReshareKey { request: attack },
            |_, _| {},
        );
        for m in failed_everywhere(&out, FailureCode::Refused) {
            assert!(m.contains("keeps the key's threshold"), "{m}");
        }
    }
    // Disowning a scheduled refresh is allowed (it is the key's own kind of request), and it
    // spends the request: it can never run afterwards.
    let spent = c.unapproved(KEY, 1, 2, None);
    let out = c.run(
        &c.all(),
        SessionKind::DisownGeneration {
            request: spent.clone(),
        },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Disowned { sealed: None, .. })),
        "{out:?}"
    );
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey { request: spent },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::Replayed);

    // The scheduled refresh itself: every share changes, the key and its schedule stay.
    let gen2 = c.reshare(c.unapproved(KEY, 1, 2, None), Scheme::EddsaEd25519, &pk);
    for (node, blob) in gen2.sealed.iter().enumerate() {
        assert_ne!(
            eddsa_secret(blob, KEY),
            eddsa_secret(&gen1.sealed[node], KEY),
            "node {node}'s share did not change"
        );
    }
    for blob in c.retire_all(KEY, &gen2) {
        let record = open_record(&blob, BlobKind::EddsaShare, KEY);
        assert_eq!((record.generation, record.refresh_every), (2, DAY));
    }
    let out = c.sign_message(&[0, 2], KEY, b"refreshed on schedule");
    verify_eddsa(&pk, b"refreshed on schedule", &signature_of(&out).0);
    // The schedule starts again from the refresh: the next one is not due.
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey {
            request: c.unapproved(KEY, 2, 2, None),
        },
        |_, _| {},
    );
    failed_everywhere(&out, FailureCode::NotYet);

    // The admins turn it off: no unapproved refresh is accepted again, however late.
    let gen3 = c.reshare(c.scheduling(KEY, 2, 0), Scheme::EddsaEd25519, &pk);
    c.retire_all(KEY, &gen3);
    c.clocks_ahead(10 * DAY);
    let out = c.run(
        &c.all(),
        SessionKind::ReshareKey {
            request: c.unapproved(KEY, 3, 2, None),
        },
        |_, _| {},
    );
    for m in failed_everywhere(&out, FailureCode::Refused) {
        assert!(m.contains("no refresh schedule"), "{m}");
    }
}
