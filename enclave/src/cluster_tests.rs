//! In-process cluster tests: several enclaves (real `Enclave`s with simulated NSMs and the
//! local sealing authority) driven through their request handler, with every envelope relayed
//! by [`protocol::relay::Relay`] — the same path the coordinator will use.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use attestation::sim::SimulatedCa;
use ed25519_dalek::SigningKey;
use protocol::peer::PeerEnvelope;
use protocol::policy::{
    Approved, Canonical, CreateKey, HashFunction, Payload, Scheme, SignRequest,
};
use protocol::session::{FailureCode, Outcome, PeerDocument, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, ErrorCode};
use rand::RngCore;
use serde_bytes::ByteBuf;
use sha2::Digest;

use crate::mpc::eddsa::SecretEddsaShare;
use crate::seal::{self, BlobKind, LocalSealingAuthority};
use crate::server::Enclave;
use crate::testkit::{
    IMAGE, admit_all, approve, boot, boot_sealed_by, create_key_request, document, found,
    fresh_session_id, run_session, run_session_as,
};

mod admins;
mod bounds;
mod catch_up;
mod commit;
mod governance;
mod images;
mod import;
mod inventory;
mod join;
mod move_aux;
mod move_key;
mod online;
mod prepare;
mod reshare;
mod roster;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn request_id() -> ByteBuf {
    let mut b = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    ByteBuf::from(b)
}

struct Cluster {
    ca: Arc<SimulatedCa>,
    enclaves: Vec<Arc<Enclave>>,
    admins: Vec<SigningKey>,
    approvers: Vec<SigningKey>,
    /// The approved genesis, as the coordinator stores it.
    genesis: Approved<protocol::genesis::Genesis>,
    /// Sealed blobs each node's proxy would store.
    blobs: Vec<Vec<ByteBuf>>,
    /// How far every node's clock was moved ahead (`TestHook::ClockAhead`): sessions and
    /// requests made here are dated by it.
    ahead: std::cell::Cell<u64>,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let ca = Arc::new(SimulatedCa::generate().unwrap());
        let enclaves: Vec<_> = (0..n).map(|i| boot(&ca, i, IMAGE)).collect();
        let admins: Vec<SigningKey> = (0..3)
            .map(|i| SigningKey::from_bytes(&[10 + i; 32]))
            .collect();
        let approvers: Vec<SigningKey> = (0..3)
            .map(|i| SigningKey::from_bytes(&[20 + i; 32]))
            .collect();
        let (approved, blobs) = found(
            &enclaves,
            "test-cluster",
            &admins,
            &[&admins[0], &admins[2]],
        );
        let mut c = Self {
            ca,
            enclaves,
            admins,
            approvers,
            genesis: approved,
            blobs,
            ahead: std::cell::Cell::new(0),
        };
        c.admit_all();
        c
    }

    fn admit_all(&mut self) {
        admit_all(&self.enclaves);
    }

    /// Runs a session among `participants`; `tamper` may alter each batch before delivery.
    fn run(
        &self,
        participants: &[u16],
        kind: SessionKind,
        tamper: impl FnMut(u16, &mut Vec<PeerEnvelope>),
    ) -> BTreeMap<u16, Outcome> {
        let session = crate::testkit::session_id_ahead(self.ahead.get());
        self.run_in(session, participants, kind, tamper)
    }

    fn run_in(
        &self,
        session: ByteBuf,
        participants: &[u16],
        kind: SessionKind,
        tamper: impl FnMut(u16, &mut Vec<PeerEnvelope>),
    ) -> BTreeMap<u16, Outcome> {
        run_session(&self.enclaves, session, participants, kind, tamper)
    }

    /// A request to create `key_id`, for the roster version node 0 reports (0 if it reports
    /// none), approved by two admins of the genesis.
    fn create_key_request(
        &self,
        key_id: &str,
        scheme: Scheme,
        threshold: u16,
    ) -> Approved<CreateKey> {
        self.create_key_request_for(0, key_id, scheme, threshold)
    }

    /// [`Cluster::create_key_request`] for the roster version node `node` reports.
    fn create_key_request_for(
        &self,
        node: usize,
        key_id: &str,
        scheme: Scheme,
        threshold: u16,
    ) -> Approved<CreateKey> {
        let mut approved = create_key_request(
            self.genesis.request.cluster_id(),
            key_id,
            scheme,
            threshold,
            &self.approvers,
            &[&self.admins[0], &self.admins[1]],
        );
        let roster = self
            .inventory(node, &[0x5a; 16], None)
            .map_or(0, |(report, _)| report.roster);
        if roster != 0 {
            approved.request.roster = roster;
            approved.approvals = approve(&approved.request, &[&self.admins[0], &self.admins[1]]);
        }
        approved
    }

    fn create_key(&mut self, key_id: &str, scheme: Scheme, threshold: u16) -> Vec<u8> {
        let approved = self.create_key_request(key_id, scheme, threshold);
        let request_hash = sha2::Sha256::digest(approved.request.canonical_bytes()).to_vec();
        let all: Vec<u16> = (0..self.enclaves.len() as u16).collect();
        let outcomes = self.run(
            &all,
            SessionKind::CreateKey { request: approved },
            |_, _| {},
        );
        let mut public = None;
        let mut chain = None;
        let mut signatures = Vec::new();
        for (node, outcome) in outcomes {
            match outcome {
                Outcome::KeyCreated {
                    public_key,
                    chain_code,
                    sealed,
                    receipt,
                    ..
                } => {
                    assert!(
                        public.get_or_insert(public_key.to_vec()) == &public_key.to_vec(),
                        "public keys disagree"
                    );
                    chain = chain_code;
                    signatures.push((node, receipt.to_vec()));
                    self.blobs[usize::from(node)].push(sealed);
                }
                other => panic!("create key at {node}: {other:?}"),
            }
        }
        // Every node signed the key's receipt with the node key the roster lists for it
        // (ADR 0013): what a client checks against its pinned genesis.
        let claim = protocol::receipt::KeyReceipt {
            v: protocol::receipt::KEY_RECEIPT_VERSION,
            cluster: self.genesis.request.cluster_id(),
            node: 0,
            key_id: key_id.into(),
            scheme,
            threshold,
            participants: all,
            public_key: ByteBuf::from(public.clone().unwrap()),
            chain_code: chain,
            generation: 0,
            request: ByteBuf::from(request_hash),
            policy_version: 0,
            policy: None,
        };
        protocol::receipt::verify_key_receipts(&self.genesis.request, &claim, &signatures).unwrap();
        let mut other = claim.clone();
        other.public_key[1] ^= 1;
        assert_eq!(
            protocol::receipt::verify_key_receipts(&self.genesis.request, &other, &signatures)
                .unwrap_err()
                .kind(),
            "bad_receipt"
        );
        public.unwrap()
    }

    /// A request to sign the raw `payload` (an ECDSA digest, an EdDSA message).
    fn sign_request(
        &self,
        key_id: &str,
        path: Vec<u32>,
        payload: Vec<u8>,
    ) -> Approved<SignRequest> {
        self.request_to_sign(key_id, path, Payload::raw(payload))
    }

    /// A request to sign the double SHA-256 of `preimage`, which the enclaves hash.
    fn sign_preimage(
        &self,
        key_id: &str,
        path: Vec<u32>,
        preimage: &[u8],
    ) -> Approved<SignRequest> {
        self.request_to_sign(
            key_id,
            path,
            Payload::hashed(HashFunction::Sha256d, preimage),
        )
    }

    fn request_to_sign(
        &self,
        key_id: &str,
        path: Vec<u32>,
        payload: Payload,
    ) -> Approved<SignRequest> {
        let t = now() + self.ahead.get();
        let request = SignRequest {
            v: protocol::policy::SIGN_REQUEST_VERSION,
            cluster: self.genesis.request.cluster_id(),
            key_id: key_id.into(),
            path,
            payloads: vec![payload],
            request_id: request_id(),
            created: t,
            expiry: t + 120,
            policy: 0,
        };
        Approved {
            approvals: approve(&request, &[&self.approvers[0], &self.approvers[2]]),
            request,
        }
    }

    fn sign(
        &self,
        participants: &[u16],
        request: Approved<SignRequest>,
        presignature: Option<ByteBuf>,
    ) -> BTreeMap<u16, Outcome> {
        self.run(
            participants,
            SessionKind::Sign {
                request,
                payload: 0,
                presignature,
            },
            |_, _| {},
        )
    }
}

fn signature_of(outcomes: &BTreeMap<u16, Outcome>) -> (Vec<u8>, Vec<u8>) {
    let mut result = None;
    for (node, o) in outcomes {
        match o {
            Outcome::Signed {
                signature,
                public_key,
            } => {
                let r = (signature.to_vec(), public_key.to_vec());
                if let Some(prev) = &result {
                    assert_eq!(prev, &r, "nodes disagree");
                }
                result = Some(r);
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    result.unwrap()
}

fn verify_ecdsa(public_key: &[u8], digest: &[u8; 32], signature: &[u8]) {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).unwrap();
    let sig = k256::ecdsa::Signature::from_slice(signature).unwrap();
    assert!(sig.normalize_s().is_none(), "low-s signature");
    vk.verify_prehash(digest, &sig).unwrap();
}

fn verify_eddsa(public_key: &[u8], message: &[u8], signature: &[u8]) {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public_key.try_into().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(signature).unwrap();
    vk.verify_strict(message, &sig).unwrap();
}

fn failure(outcomes: &BTreeMap<u16, Outcome>) -> Vec<(FailureCode, Vec<u16>)> {
    outcomes
        .values()
        .filter_map(|o| match o {
            Outcome::Failed { code, culprits, .. } => Some((*code, culprits.clone())),
            _ => None,
        })
        .collect()
}

/// One cluster for the whole file: auxiliary info costs tens of seconds.
fn cluster() -> &'static std::sync::Mutex<Cluster> {
    static C: OnceLock<std::sync::Mutex<Cluster>> = OnceLock::new();
    C.get_or_init(|| {
        let c = Cluster::new(3);
        let all = [0u16, 1, 2];
        let outcomes = c.run(&all, SessionKind::AuxInfo, |_, _| {});
        let mut c = c;
        for (node, o) in outcomes {
            match o {
                Outcome::AuxReady { sealed } => c.blobs[usize::from(node)].push(sealed),
                other => panic!("aux at {node}: {other:?}"),
            }
        }
        std::sync::Mutex::new(c)
    })
}

fn lock() -> std::sync::MutexGuard<'static, Cluster> {
    cluster().lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn ecdsa_keygen_full_and_presigned_signing_with_derivation() {
    let mut c = lock();
    let master = c.create_key("btc-1", Scheme::EcdsaSecp256k1, 2);
    assert_eq!(master.len(), 33);

    // Full signing by a 2-of-3 quorum, root key.
    let digest = [7u8; 32];
    let out = c.sign(
        &[0, 2],
        c.sign_request("btc-1", vec![], digest.to_vec()),
        None,
    );
    let (sig, pk) = signature_of(&out);
    assert_eq!(pk, master);
    verify_ecdsa(&pk, &digest, &sig);

    // Derived path m/0/1.
    let out = c.sign(
        &[1, 2],
        c.sign_request("btc-1", vec![0, 1], digest.to_vec()),
        None,
    );
    let (sig, child) = signature_of(&out);
    assert_ne!(child, master);
    verify_ecdsa(&child, &digest, &sig);

    // Presignature for path m/0/1 among {0, 1}, then one-round signing.
    let pid = fresh_session_id();
    let presign = c.run_in(
        pid.clone(),
        &[0, 1],
        SessionKind::Presign {
            key_id: "btc-1".into(),
            path: vec![0, 1],
        },
        |_, _| {},
    );
    assert!(
        presign.values().all(|o| *o == Outcome::PresignatureReady),
        "{presign:?}"
    );
    // Not for another path or quorum: the presignature is bound to both.
    let wrong_path = c.sign(
        &[0, 1],
        c.sign_preimage("btc-1", vec![0, 2], b"for another path"),
        Some(pid.clone()),
    );
    assert!(
        failure(&wrong_path)
            .iter()
            .all(|(code, _)| *code == FailureCode::NoPresignature),
        "{wrong_path:?}"
    );
    // RUSTSEC-2025-0127: a bare digest is never signed from a presignature. A coordinator
    // naming one for a raw payload is refused by every participant, and the presignature is
    // left unspent.
    let raw = c.sign(
        &[0, 1],
        c.sign_request("btc-1", vec![0, 1], [8u8; 32].to_vec()),
        Some(pid.clone()),
    );
    assert!(
        raw.values().all(|o| matches!(
            o,
            Outcome::Failed { code: FailureCode::Refused, message, .. } if message.contains("raw digest")
        )),
        "{raw:?}"
    );
    // A preimage the enclaves hash themselves is signed from it.
    let preimage = b"a BIP143 signature-hash preimage".to_vec();
    let digest2 = HashFunction::Sha256d.digest(&preimage);
    let out = c.sign(
        &[0, 1],
        c.sign_preimage("btc-1", vec![0, 1], &preimage),
        Some(pid.clone()),
    );
    let (sig, pk) = signature_of(&out);
    assert_eq!(pk, child);
    verify_ecdsa(&pk, &digest2, &sig);
    // Used once: a second request for the same presignature finds none.
    let again = c.sign(
        &[0, 1],
        c.sign_preimage("btc-1", vec![0, 1], b"another preimage"),
        Some(pid),
    );
    assert!(
        failure(&again)
            .iter()
            .all(|(code, _)| *code == FailureCode::NoPresignature),
        "{again:?}"
    );

    // One signer alone (t - 1) cannot sign: the session is refused outright.
    let lonely = c.sign(&[0], c.sign_request("btc-1", vec![], digest.to_vec()), None);
    assert!(!failure(&lonely).is_empty(), "{lonely:?}");
}

#[test]
fn eddsa_dkg_and_signing() {
    let mut c = lock();
    let pk = c.create_key("sol-1", Scheme::EddsaEd25519, 2);
    assert_eq!(pk.len(), 32);
    let message = b"a solana message".to_vec();
    for quorum in [&[0u16, 1][..], &[1, 2], &[0, 1, 2]] {
        let out = c.sign(
            quorum,
            c.sign_request("sol-1", vec![], message.clone()),
            None,
        );
        let (sig, signer) = signature_of(&out);
        assert_eq!(signer, pk);
        verify_eddsa(&pk, &message, &sig);
    }
}

/// Issue 18 (audit finding 4): 100,000 aborts of sessions that never started leave the
/// enclave's state flat, by its own counters, but for a bounded memory of the last 65,536 such
/// ids; an abort that arrives before its start still refuses that start.
#[test]
fn unknown_aborts_leave_memory_flat() {
    let c = lock();
    let node = &c.enclaves[0];
    let abort = |session: &[u8]| {
        node.handle(EnclaveRequest::AbortSession {
            session: ByteBuf::from(session.to_vec()),
        })
    };
    // Ids that could be started (not expired, not too far ahead), each one different.
    let expiry = now() + 600;
    let sid = |i: u32| {
        let mut rest = [0x5a; 24];
        rest[..4].copy_from_slice(&i.to_be_bytes());
        protocol::session::session_id_expiring(expiry, &rest)
    };
    // One request first, so the counters reflect this enclave's state.
    let _ = abort(&[0u8; 32]);
    let before = node.counters();
    for i in 0..100_000u32 {
        assert!(matches!(abort(&sid(i)), EnclaveResponse::Session(_)));
    }
    let after = node.counters();
    assert_eq!(
        (
            after.sessions,
            after.used_sessions,
            after.remembered_requests,
            after.presignatures
        ),
        (
            before.sessions,
            before.used_sessions,
            before.remembered_requests,
            before.presignatures
        ),
        "aborts of unknown sessions grew the enclave's state"
    );
    assert_eq!(after.aborted_remembered, 65_536, "bounded");
    let start = |i: u32| {
        node.handle(EnclaveRequest::StartSession {
            session: ByteBuf::from(sid(i).to_vec()),
            participants: vec![0, 1],
            kind: SessionKind::Presign {
                key_id: "no-such-key".into(),
                path: vec![],
            },
        })
    };
    // Ids that could never start (expired, or too far ahead) are not even remembered: the
    // oldest id remembered (100,000 - 65,536) is not pushed out by them.
    for far in [[0u8; 32], [0xff; 32]] {
        let _ = abort(&far);
    }
    // The oldest and the last one aborted are still refused if their start comes after all.
    for i in [100_000 - 65_536, 99_999] {
        match start(i) {
            EnclaveResponse::Error(e) => assert!(e.message.contains("already used"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn refusals_are_made_by_every_enclave() {
    let mut c = lock();
    c.create_key("refusals", Scheme::EddsaEd25519, 2);
    let message = b"pay".to_vec();

    // Too few approvals.
    let mut one = c.sign_request("refusals", vec![], message.clone());
    one.approvals.truncate(1);
    // Foreign approvals (admins are not this key's approvers).
    let mut foreign = c.sign_request("refusals", vec![], message.clone());
    foreign.approvals = approve(&foreign.request, &[&c.admins[0], &c.admins[1]]);
    // Approvals for other payloads.
    let mut other_payload = c.sign_request("refusals", vec![], message.clone());
    other_payload.request.payloads[0] = Payload::raw(b"pay more".to_vec());
    // Expired.
    let mut expired = c.sign_request("refusals", vec![], message.clone());
    expired.request.created = now() - 300;
    expired.request.expiry = now() - 1;
    expired.approvals = approve(&expired.request, &[&c.approvers[0], &c.approvers[1]]);
    for bad in [one, foreign, other_payload, expired] {
        for node in 0..3u16 {
            let r = c.enclaves[usize::from(node)].handle(EnclaveRequest::StartSession {
                session: fresh_session_id(),
                participants: vec![0, 1],
                kind: SessionKind::Sign {
                    request: bad.clone(),
                    payload: 0,
                    presignature: None,
                },
            });
            match r {
                EnclaveResponse::Error(e) if node == 2 => assert_eq!(e.code, ErrorCode::BadRequest),
                EnclaveResponse::Error(e) => {
                    assert_eq!(e.code, ErrorCode::Refused, "{}", e.message)
                }
                other => panic!("node {node} accepted: {other:?}"),
            }
        }
    }

    // Approved for another cluster (its own approvers' valid signatures, another cluster id):
    // every participant refuses it by name, as membership.
    let mut elsewhere = c.sign_request("refusals", vec![], message.clone());
    elsewhere.request.cluster = protocol::genesis::ClusterId([0xEE; 32]);
    elsewhere.approvals = approve(&elsewhere.request, &[&c.approvers[0], &c.approvers[1]]);
    for node in 0..2u16 {
        match c.enclaves[usize::from(node)].handle(EnclaveRequest::StartSession {
            session: fresh_session_id(),
            participants: vec![0, 1],
            kind: SessionKind::Sign {
                request: elsewhere.clone(),
                payload: 0,
                presignature: None,
            },
        }) {
            EnclaveResponse::Error(e) => {
                assert_eq!(e.code, ErrorCode::Membership, "{}", e.message);
                assert!(e.message.starts_with("other_cluster:"), "{}", e.message);
            }
            other => panic!("node {node} accepted another cluster's request: {other:?}"),
        }
    }

    // A request id is used once: asked again, the enclaves release the same signature (a relay
    // may have lost it) and make no new one; another payload under that id is refused.
    let ok = c.sign_request("refusals", vec![], message.clone());
    let first = signature_of(&c.sign(&[0, 1], ok.clone(), None));
    let again = c.sign(&[0, 1], ok.clone(), None);
    assert_eq!(signature_of(&again), first);
    let mut other = ok.clone();
    other.request.payloads[0] = Payload::raw(b"pay someone else".to_vec());
    other.approvals = approve(&other.request, &[&c.approvers[0], &c.approvers[2]]);
    let refused = c.sign(&[0, 1], other, None);
    assert!(
        failure(&refused)
            .iter()
            .all(|(code, _)| *code == FailureCode::Replayed),
        "{refused:?}"
    );
}

#[test]
fn tampering_relay_is_detected_and_blamed() {
    let mut c = lock();
    c.create_key("tamper", Scheme::EddsaEd25519, 2);
    let message = b"m".to_vec();

    // Altered body: signature check fails.
    let out = c.run(
        &[0, 1],
        SessionKind::Sign {
            request: c.sign_request("tamper", vec![], message.clone()),
            payload: 0,
            presignature: None,
        },
        |_, batch| {
            if let Some(e) = batch.first_mut() {
                e.body.push(0);
            }
        },
    );
    assert!(!failure(&out).is_empty(), "{out:?}");
    assert!(out.values().all(|o| !matches!(o, Outcome::Signed { .. })));

    // Duplicated (replayed) envelope: out of sequence, the sender is named.
    let out = c.run(
        &[0, 1],
        SessionKind::Sign {
            request: c.sign_request("tamper", vec![], message.clone()),
            payload: 0,
            presignature: None,
        },
        |_, batch| {
            if let Some(e) = batch.first().cloned() {
                batch.push(e);
            }
        },
    );
    let f = failure(&out);
    assert!(
        f.iter()
            .any(|(code, culprits)| *code == FailureCode::Peer && !culprits.is_empty()),
        "{out:?}"
    );

    // Moved from another session: record envelopes of one run, inject into the next.
    let mut recorded = Vec::new();
    let first = c.run(
        &[1, 2],
        SessionKind::Sign {
            request: c.sign_request("tamper", vec![], message.clone()),
            payload: 0,
            presignature: None,
        },
        |_, batch| recorded.extend(batch.iter().cloned()),
    );
    signature_of(&first);
    let out = c.run(
        &[1, 2],
        SessionKind::Sign {
            request: c.sign_request("tamper", vec![], message.clone()),
            payload: 0,
            presignature: None,
        },
        |_, batch| *batch = recorded.clone(),
    );
    assert!(
        failure(&out)
            .iter()
            .any(|(code, _)| *code == FailureCode::Peer),
        "{out:?}"
    );
}

/// ADR 0013 step 12. A relay (the coordinator) starts one session id as different sessions at
/// different nodes: a presignature for another path, or for another key, a full signature
/// where the other node presigns, or one signing request's payload where the other node signs
/// another. Before the execution id, the nodes ran the protocol with each other, and the
/// mismatch surfaced (if at all) inside cggmp21 or FROST, likely as a failed proof blaming an
/// honest peer. Now every participant refuses the first envelope as a bad signature, blaming no
/// one, and nothing reaches a protocol machine.
#[test]
fn one_session_id_started_as_different_sessions_fails_blaming_no_one() {
    let mut c = lock();
    c.create_key("eid-ecdsa", Scheme::EcdsaSecp256k1, 2);
    c.create_key("eid-other", Scheme::EcdsaSecp256k1, 2);
    c.create_key("eid-eddsa", Scheme::EddsaEd25519, 2);
    let presign = |key: &str, path: Vec<u32>| SessionKind::Presign {
        key_id: key.into(),
        path,
    };
    let sign = |request: &Approved<SignRequest>, payload: u16| SessionKind::Sign {
        request: request.clone(),
        payload,
        presignature: None,
    };
    let ecdsa = c.sign_request("eid-ecdsa", vec![1], vec![7; 32]);
    let mut two = c.sign_request("eid-eddsa", vec![], b"first".to_vec());
    two.request.payloads.push(Payload::raw(b"second".to_vec()));
    two.approvals = approve(&two.request, &[&c.approvers[0], &c.approvers[2]]);
    let cases: Vec<(&str, SessionKind, SessionKind)> = vec![
        (
            "another path",
            presign("eid-ecdsa", vec![1]),
            presign("eid-ecdsa", vec![2]),
        ),
        (
            "another key",
            presign("eid-ecdsa", vec![1]),
            presign("eid-other", vec![1]),
        ),
        (
            "a presignature here, a signature there",
            presign("eid-ecdsa", vec![1]),
            sign(&ecdsa, 0),
        ),
        ("another payload", sign(&two, 0), sign(&two, 1)),
    ];
    for (what, at0, at1) in cases {
        let out = run_session_as(
            &c.enclaves,
            fresh_session_id(),
            &[0, 1],
            |n| if n == 0 { at0.clone() } else { at1.clone() },
            |_, _| {},
        );
        assert_eq!(out.len(), 2, "{what}: {out:?}");
        for (node, o) in &out {
            match o {
                Outcome::Failed {
                    code,
                    message,
                    culprits,
                } => {
                    assert_eq!(*code, FailureCode::Peer, "{what}, node {node}: {message}");
                    assert!(message.contains("invalid signature"), "{what}: {message}");
                    assert!(culprits.is_empty(), "{what}: blamed {culprits:?}");
                }
                other => panic!("{what}, node {node}: {other:?}"),
            }
        }
    }
    // The same sessions started alike at both nodes succeed: the refusal was the mismatch.
    let out = c.run(&[0, 1], presign("eid-ecdsa", vec![1]), |_, _| {});
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::PresignatureReady)),
        "{out:?}"
    );
    let out = c.run(&[0, 1], sign(&two, 1), |_, _| {});
    signature_of(&out);
}

#[test]
fn restart_unseals_and_signs_again() {
    let mut c = lock();
    let pk = c.create_key("restart", Scheme::EddsaEd25519, 2);
    let ecdsa_pk = c.create_key("restart-ecdsa", Scheme::EcdsaSecp256k1, 2);
    let pid = fresh_session_id();
    let presign = c.run_in(
        pid.clone(),
        &[0, 1],
        SessionKind::Presign {
            key_id: "restart-ecdsa".into(),
            path: vec![],
        },
        |_, _| {},
    );
    assert!(
        presign.values().all(|o| *o == Outcome::PresignatureReady),
        "{presign:?}"
    );

    // Node 1 "restarts": a new enclave process with the same image, fed its sealed blobs.
    let fresh = boot(&c.ca, 1, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: c.blobs[1].clone(),
    }) {
        EnclaveResponse::Restored {
            keys,
            aux,
            resealed,
        } => {
            assert!(aux);
            assert!(resealed.iter().all(Option::is_none), "nothing to migrate");
            assert!(
                keys.contains(&"restart".to_string())
                    && keys.contains(&"restart-ecdsa".to_string())
            );
        }
        other => panic!("restore: {other:?}"),
    }
    c.enclaves[1] = fresh;
    c.admit_all();
    // The presignature made before the restart is gone from node 1's memory: never used.
    let stale = c.sign(
        &[0, 1],
        c.sign_preimage("restart-ecdsa", vec![], b"stale"),
        Some(pid),
    );
    assert!(
        stale.values().all(|o| !matches!(o, Outcome::Signed { .. })),
        "{stale:?}"
    );
    assert!(
        failure(&stale)
            .iter()
            .any(|(code, _)| *code == FailureCode::NoPresignature),
        "{stale:?}"
    );
    let out = c.sign(
        &[1, 2],
        c.sign_request("restart", vec![], b"after".to_vec()),
        None,
    );
    assert_eq!(signature_of(&out).1, pk);
    let digest = [9u8; 32];
    let out = c.sign(
        &[0, 1],
        c.sign_request("restart-ecdsa", vec![], digest.to_vec()),
        None,
    );
    let (sig, signer) = signature_of(&out);
    assert_eq!(signer, ecdsa_pk);
    verify_ecdsa(&signer, &digest, &sig);

    // An enclave built from another binary cannot open the blobs.
    let impostor = boot(&c.ca, 1, [0x99; 48]);
    match impostor.handle(EnclaveRequest::Restore {
        blobs: c.blobs[1].clone(),
    }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::Sealing),
        other => panic!("impostor restored: {other:?}"),
    }
    // ... and is not admitted as a peer either.
    let doc = document(&impostor);
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers {
        documents: vec![PeerDocument {
            node: 1,
            document: doc,
        }],
    }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(nodes.is_empty());
            assert!(refused[0].1.contains("PCR"), "{refused:?}");
        }
        other => panic!("{other:?}"),
    }

    // A node that lost its sealed node key cannot rejoin (ADR 0013; the recovery is node
    // replacement under an admin-approved roster change, issue 20): its other blobs do not
    // restore without it, and a new enclave that enrolls again has another node key, which
    // its peers never admit at its index and the genesis does not list.
    let amnesiac = boot(&c.ca, 1, IMAGE);
    let m = membership_refusal(amnesiac.handle(EnclaveRequest::Restore {
        blobs: c.blobs[1][1..].to_vec(),
    }));
    assert!(m.starts_with("no_node_key:"), "{m}");
    assert_eq!(amnesiac.phase(), protocol::Phase::Ready, "nothing kept");
    enroll(&amnesiac, &crate::testkit::node_arn(1));
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers {
        documents: vec![PeerDocument {
            node: 1,
            document: document(&amnesiac),
        }],
    }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(
                nodes.is_empty(),
                "node 0 admitted a new node key at index 1"
            );
            assert!(refused[0].1.contains("another node key"), "{refused:?}");
        }
        other => panic!("{other:?}"),
    }
    let m = membership_refusal(amnesiac.handle(EnclaveRequest::GenesisV2 {
        request: c.genesis.clone(),
    }));
    assert!(m.starts_with("not_in_roster:"), "{m}");
    c.admit_all();
}

#[test]
fn an_aborted_session_releases_its_request_for_another_quorum() {
    let mut c = lock();
    c.create_key("abort", Scheme::EddsaEd25519, 2);
    let request = c.sign_request("abort", vec![], b"retry me".to_vec());
    let kind = SessionKind::Sign {
        request: request.clone(),
        payload: 0,
        presignature: None,
    };
    // Quorum {0, 1} starts, then node 1 "dies": node 0 holds the request in flight.
    let stuck = fresh_session_id();
    let started = c.enclaves[0].handle(EnclaveRequest::StartSession {
        session: stuck.clone(),
        participants: vec![0, 1],
        kind: kind.clone(),
    });
    assert!(
        matches!(started, EnclaveResponse::Session(_)),
        "{started:?}"
    );
    let second = fresh_session_id();
    let blocked = c.run_in(second.clone(), &[0, 2], kind.clone(), |_, _| {});
    assert!(
        failure(&blocked)
            .iter()
            .any(|(code, _)| *code == FailureCode::InProgress),
        "{blocked:?}"
    );
    // The relay aborts the stuck session; the other quorum signs.
    match c.enclaves[0].handle(EnclaveRequest::AbortSession {
        session: stuck.clone(),
    }) {
        EnclaveResponse::Session(u) => assert!(
            matches!(u.outcome, Some(Outcome::Failed { ref code, .. }) if *code == FailureCode::Aborted),
            "{u:?}"
        ),
        other => panic!("abort: {other:?}"),
    }
    // Node 2 started the second attempt and holds the request too: the relay aborts that one.
    assert!(matches!(
        c.enclaves[2].handle(EnclaveRequest::AbortSession { session: second }),
        EnclaveResponse::Session(_)
    ));
    let (first, _) = signature_of(&c.sign(&[0, 2], request.clone(), None));
    // The aborted session cannot be resumed, and the signed request is now spent.
    let resumed = c.enclaves[0].handle(EnclaveRequest::Deliver {
        session: stuck,
        envelopes: vec![],
    });
    assert!(matches!(resumed, EnclaveResponse::Error(ref e) if e.code == ErrorCode::Refused));
    // Asked again (a relay that lost the answer), node 2 releases the same signature; node 1,
    // which never signed it, gets no partner for a new one.
    let again = c.sign(&[1, 2], request, None);
    assert!(
        matches!(again.get(&2), Some(Outcome::Signed { signature, .. }) if signature.to_vec() == first),
        "{again:?}"
    );
    assert!(!again.contains_key(&1), "{again:?}");
}

#[test]
fn one_generation_per_key_id_and_keys_are_never_replaced() {
    let c = lock();
    let make = |c: &Cluster| c.create_key_request("once", Scheme::EddsaEd25519, 2);
    let (first, second) = (make(&c), make(&c));
    let all = [0u16, 1, 2];
    // Two generations of one key id at once (two requests): the second is refused.
    let r = c.enclaves[0].handle(EnclaveRequest::StartSession {
        session: fresh_session_id(),
        participants: all.to_vec(),
        kind: SessionKind::CreateKey { request: first },
    });
    assert!(matches!(r, EnclaveResponse::Session(_)), "{r:?}");
    let r = c.enclaves[0].handle(EnclaveRequest::StartSession {
        session: fresh_session_id(),
        participants: all.to_vec(),
        kind: SessionKind::CreateKey {
            request: second.clone(),
        },
    });
    assert!(
        matches!(r, EnclaveResponse::Error(ref e) if e.code == ErrorCode::InProgress),
        "{r:?}"
    );
    drop(c);
    // Once the key exists, another request for its id is refused by every node.
    let pk = lock().create_key("once-more", Scheme::EddsaEd25519, 2);
    assert_eq!(pk.len(), 32);
    let c = lock();
    let mut again = make(&c);
    again.request.key_id = "once-more".into();
    again.approvals = approve(&again.request, &[&c.admins[0], &c.admins[1]]);
    for node in 0..3 {
        let r = c.enclaves[node].handle(EnclaveRequest::StartSession {
            session: fresh_session_id(),
            participants: all.to_vec(),
            kind: SessionKind::CreateKey {
                request: again.clone(),
            },
        });
        assert!(
            matches!(r, EnclaveResponse::Error(ref e) if e.code == ErrorCode::Refused),
            "{r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Known attacks (docs/threat-model.md, "Attacks tried"), as a coordinator, a second coordinator
// or a relay would mount them against the enclaves.
// ---------------------------------------------------------------------------------------------

fn sign_kind(request: Approved<SignRequest>, presignature: Option<ByteBuf>) -> SessionKind {
    SessionKind::Sign {
        request,
        payload: 0,
        presignature,
    }
}

/// Two coordinators (each with its own database, so no shared claim) name one presignature
/// for two different requests at the same time: the enclaves sign one of them with it, never
/// both; the other request signs later without it, with another nonce.
#[test]
fn one_presignature_named_by_two_coordinators_at_once_signs_once() {
    let mut c = lock();
    c.create_key("two-coordinators", Scheme::EcdsaSecp256k1, 2);
    let pid = fresh_session_id();
    let presign = c.run_in(
        pid.clone(),
        &[0, 1],
        SessionKind::Presign {
            key_id: "two-coordinators".into(),
            path: vec![],
        },
        |_, _| {},
    );
    assert!(
        presign.values().all(|o| *o == Outcome::PresignatureReady),
        "{presign:?}"
    );
    let (p1, p2) = (b"first preimage", b"second preimage");
    let (d1, d2) = (
        HashFunction::Sha256d.digest(p1),
        HashFunction::Sha256d.digest(p2),
    );
    let r1 = c.sign_preimage("two-coordinators", vec![], p1);
    let r2 = c.sign_preimage("two-coordinators", vec![], p2);
    // Coordinator A has started its session at both nodes when coordinator B runs its own.
    let mut second = None;
    let first = c.run(&[0, 1], sign_kind(r1, Some(pid.clone())), |_, _| {
        if second.is_none() {
            second = Some(c.run(&[0, 1], sign_kind(r2.clone(), Some(pid.clone())), |_, _| {}));
        }
    });
    let second = second.unwrap();
    assert!(!failure(&second).is_empty(), "{second:?}");
    let (sig1, pk) = signature_of(&first);
    verify_ecdsa(&pk, &d1, &sig1);
    assert!(
        second
            .values()
            .all(|o| !matches!(o, Outcome::Signed { .. })),
        "{second:?}"
    );
    assert!(
        failure(&second)
            .iter()
            .all(|(code, _)| *code == FailureCode::NoPresignature),
        "{second:?}"
    );
    // Named again once A is done: still spent.
    let again = c.sign(&[0, 1], r2.clone(), Some(pid));
    assert!(
        failure(&again)
            .iter()
            .all(|(code, _)| *code == FailureCode::NoPresignature),
        "{again:?}"
    );
    // Request 2 signs in full, with a fresh nonce (r differs).
    let (sig2, _) = signature_of(&c.sign(&[0, 1], r2, None));
    verify_ecdsa(&pk, &d2, &sig2);
    assert_ne!(sig1[..32], sig2[..32], "two signatures share a nonce");
}

/// A coordinator names duplicated participants, indices outside the cluster (u16::MAX would
/// become FROST identifier 0 if it wrapped), too few signers, or none: every enclave refuses
/// before any protocol state exists.
#[test]
fn duplicated_out_of_range_and_zero_party_indices_are_refused() {
    let mut c = lock();
    c.create_key("indices-ecdsa", Scheme::EcdsaSecp256k1, 2);
    c.create_key("indices-eddsa", Scheme::EddsaEd25519, 2);
    let kinds = [
        sign_kind(
            c.sign_request("indices-ecdsa", vec![], [1u8; 32].to_vec()),
            None,
        ),
        sign_kind(c.sign_request("indices-eddsa", vec![], b"m".to_vec()), None),
        SessionKind::Presign {
            key_id: "indices-ecdsa".into(),
            path: vec![],
        },
        SessionKind::CreateKey {
            request: c.create_key_request("indices-new", Scheme::EddsaEd25519, 2),
        },
    ];
    let sets: [&[u16]; 8] = [
        &[0, 0],
        &[1, 1],
        &[0, 0, 1],
        &[0, 1, 1],
        &[0, 3],
        &[u16::MAX, 0],
        &[0],
        &[],
    ];
    for kind in &kinds {
        for participants in sets {
            for node in 0..3u16 {
                let session = fresh_session_id();
                let r = c.enclaves[usize::from(node)].handle(EnclaveRequest::StartSession {
                    session: session.clone(),
                    participants: participants.to_vec(),
                    kind: kind.clone(),
                });
                match r {
                    EnclaveResponse::Error(e) => assert_eq!(
                        e.code,
                        ErrorCode::BadRequest,
                        "{participants:?} at {node}: {}",
                        e.message
                    ),
                    other => panic!("node {node} accepted {participants:?}: {other:?}"),
                }
                // Nothing was started under that session id.
                let r = c.enclaves[usize::from(node)].handle(EnclaveRequest::Deliver {
                    session,
                    envelopes: vec![],
                });
                assert!(
                    matches!(r, EnclaveResponse::Error(ref e) if e.code != ErrorCode::Internal),
                    "{r:?}"
                );
            }
        }
    }
    // The keys still sign with a proper set.
    signature_of(&c.sign(
        &[0, 2],
        c.sign_request("indices-eddsa", vec![], b"m".to_vec()),
        None,
    ));
}

/// FROST nonces are fresh for every signature and die with their session: many signatures of
/// one message by one quorum never repeat R; a session's rounds replayed after it finished, or
/// its round-1 commitments moved into another session, are refused.
#[test]
fn frost_nonces_are_never_reused() {
    let mut c = lock();
    let pk = c.create_key("frost-nonces", Scheme::EddsaEd25519, 2);
    let message = b"the same message every time".to_vec();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..24 {
        let (sig, signer) = signature_of(&c.sign(
            &[0, 1],
            c.sign_request("frost-nonces", vec![], message.clone()),
            None,
        ));
        assert_eq!(signer, pk);
        assert!(seen.insert(sig[..32].to_vec()), "R repeated");
    }

    // Record a whole session, then replay its deliveries to the same session: it is over.
    let session = fresh_session_id();
    let mut recorded: Vec<(u16, Vec<PeerEnvelope>)> = Vec::new();
    let out = c.run_in(
        session.clone(),
        &[1, 2],
        sign_kind(
            c.sign_request("frost-nonces", vec![], message.clone()),
            None,
        ),
        |to, batch| recorded.push((to, batch.clone())),
    );
    signature_of(&out);
    assert!(!recorded.is_empty());
    for (to, envelopes) in recorded.clone() {
        let r = c.enclaves[usize::from(to)].handle(EnclaveRequest::Deliver {
            session: session.clone(),
            envelopes,
        });
        assert!(
            matches!(r, EnclaveResponse::Error(ref e) if e.code == ErrorCode::Refused),
            "{r:?}"
        );
    }
    // Its round-1 commitments delivered into a new session of the same signers (another
    // request): refused, and no signature comes out of it.
    let round1 = recorded.first().unwrap().1.clone();
    let mut injected = false;
    let out = c.run(
        &[1, 2],
        sign_kind(
            c.sign_request("frost-nonces", vec![], b"other".to_vec()),
            None,
        ),
        |_, batch| {
            if !injected {
                *batch = round1.clone();
                injected = true;
            }
        },
    );
    assert!(
        out.values().all(|o| !matches!(o, Outcome::Signed { .. })),
        "{out:?}"
    );
    assert!(!failure(&out).is_empty(), "{out:?}");
}

/// An enclave running in debug mode (its PCRs zero: the parent can read its memory) attests
/// with a genuine document from the same hardware root, and is still never admitted as a peer.
#[test]
fn a_debug_mode_enclave_is_never_admitted() {
    let mut c = lock();
    let debug = crate::testkit::boot_debug(&c.ca, 1);
    let doc = document(&debug);
    for node in [0usize, 2] {
        match c.enclaves[node].handle(EnclaveRequest::AdmitPeers {
            documents: vec![PeerDocument {
                node: 1,
                document: doc.clone(),
            }],
        }) {
            EnclaveResponse::PeersAdmitted { nodes, refused } => {
                assert!(nodes.is_empty(), "admitted {nodes:?}");
                assert!(refused[0].1.contains("debug"), "{refused:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The genuine node 1 is admitted again.
    c.admit_all();
}

// ---------------------------------------------------------------------------------------------
// Membership (DESIGN §2 property 8; docs/threat-model.md, "Known attacks" and "Open attacks";
// docs/adr/0013). The rogue-enclave test shows an attack that still SUCCEEDS: peer admission
// checks only the image's measurements, and the image is public; issue 17 pins the membership
// (node keys, an admin-approved roster) and inverts it into "attack refused". The others show
// what is already refused: one identity at two indices, a peer's keys swapped mid-session.
// ---------------------------------------------------------------------------------------------

/// The master key of the local sealing authority the attacker's own enclaves seal through. It
/// stands for the KMS key in the attacker's own AWS account, whose key policy the attacker
/// writes: whatever such an enclave seals, the attacker can open.
const ATTACKER_MASTER: [u8; 32] = [0xA7; 32];

/// A key record as the attacker reads it from an opened share blob (the layout of
/// `node/keys.rs`' `KeyRecord` is public; fields the attacker does not need are skipped).
#[derive(serde::Deserialize)]
struct RecoveredRecord {
    key_id: String,
    share: ByteBuf,
}

/// A stored EdDSA share as the attacker reads it: the storage envelope of `mpc/envelope.rs`
/// (version 1) around the body of `mpc/eddsa/share.rs`, decoded with frost-ed25519's own serde.
#[derive(serde::Deserialize)]
struct RecoveredShare {
    version: u16,
    kind: String,
    body: RecoveredShareBody,
}

#[derive(serde::Deserialize)]
struct RecoveredShareBody {
    index: u16,
    threshold: u16,
    key_package: frost_ed25519::keys::KeyPackage,
}

/// Opens one of the attacker's enclaves' sealed share blobs with the attacker's sealing key and
/// decodes the FROST key package inside: no enclave takes part, and nothing but public formats
/// is used.
fn recover_eddsa_share(blob: &[u8], key_id: &str) -> frost_ed25519::keys::KeyPackage {
    let attacker = LocalSealingAuthority::new(&ATTACKER_MASTER, &IMAGE);
    let (id, plain) = seal::unseal(&attacker, blob, BlobKind::EddsaShare, Some(key_id))
        .expect("the attacker's sealing key opens its own enclaves' blobs");
    assert_eq!(id, key_id);
    let record: RecoveredRecord = ciborium::from_reader(plain.as_slice()).unwrap();
    assert_eq!(record.key_id, key_id);
    let stored: RecoveredShare = ciborium::from_reader(record.share.as_slice()).unwrap();
    assert_eq!(
        (stored.version, stored.kind.as_str()),
        (1, "frost-ed25519/key-share")
    );
    // The enclave's own decoder agrees: a complete, consistent share for that party index.
    let share = SecretEddsaShare::from_bytes(&record.share).unwrap();
    assert_eq!(
        (stored.body.index, stored.body.threshold),
        (share.index(), share.threshold())
    );
    stored.body.key_package
}

/// The audit's membership attack (issue 17), refused. It succeeded before node keys and the
/// roster: this test asserted then that the attacker ends up holding t shares of a cluster key.
///
/// Who: a compromised coordinator alone. No enclave and no parent of the cluster is
/// compromised. The image is public and reproducible, so the attacker starts two more genuine
/// enclaves of it (same hardware root, same measurements) in its own account, where their parent
/// and KMS, and so the keys they seal under, are its own ([`boot_sealed_by`] with
/// [`ATTACKER_MASTER`]; enrolled under its own KMS keys). Then:
/// 1. it replays the approved genesis it stores to them: refused, `not_in_roster` (their node
///    keys are not listed, and the index is not an input); a genesis without a roster at an
///    index of its choosing: refused, `legacy_genesis`;
/// 2. it gives them a genesis of its own admins, listing honest node 0's node key at 0 and the
///    rogues at 1 and 2: they accept it, but honest node 0 admits neither, because their
///    documents bind node keys its roster does not list at 1 and 2;
/// 3. it runs the next admin-approved EdDSA key generation among {node 0, rogue 1, rogue 2}:
///    nothing is created anywhere, so no share is ever sealed where the attacker can read it.
///
/// A control shows the attacker's tooling works: its rogues do make a key between themselves
/// under its own genesis, and it recovers that key from their blobs — a key of its own
/// cluster, under a cluster id no client of the real one trusts.
#[test]
fn rogue_enclaves_of_the_public_image_are_refused() {
    use crate::testkit::genesis_v2;
    const KEY: &str = "rogue-held";
    let c = Cluster::new(3);

    // Two genuine enclaves of the public image, enrolled under the attacker's KMS keys.
    let rogues = [1usize, 2].map(|i| boot_sealed_by(&c.ca, i, IMAGE, &ATTACKER_MASTER));
    let entries: Vec<protocol::genesis::RosterEntry> = rogues
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let arn = protocol::KmsKeyArn::parse(&format!(
                "arn:aws:kms:eu-west-1:999999999999:key/rogue-{i}"
            ))
            .unwrap();
            let (_, node_key) = enroll(r, &arn);
            protocol::genesis::RosterEntry {
                node_key: ByteBuf::from(node_key.to_vec()),
                kms_key_arn: arn,
                pcr3: None,
                pcr4: None,
            }
        })
        .collect();

    // 1. The stored approved genesis, replayed: not in its roster. A genesis without a roster,
    // at an index of the attacker's choosing: refused.
    for (index, rogue) in [1u16, 2].into_iter().zip(&rogues) {
        let m = membership_refusal(rogue.handle(EnclaveRequest::GenesisV2 {
            request: c.genesis.clone(),
        }));
        assert!(m.starts_with("not_in_roster:"), "{m}");
        let legacy = crate::testkit::genesis_request(
            &c.genesis.request.name,
            3,
            &c.admins,
            &[&c.admins[0], &c.admins[2]],
        );
        let m = membership_refusal(rogue.handle(EnclaveRequest::Genesis {
            request: legacy,
            node: index,
        }));
        assert!(m.starts_with("legacy_genesis:"), "{m}");
        assert_eq!(rogue.phase(), protocol::Phase::Enrolled);
    }

    // 2. A genesis of the attacker's own admins listing its rogues: they take it (their own
    // cluster, at indices 0 and 1 of it); honest node 0 admits neither at 1 or 2.
    let attacker_admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[0xE0 + i; 32]))
        .collect();
    let own = genesis_v2(
        &c.genesis.request.name,
        IMAGE,
        entries.clone(),
        &attacker_admins,
        &[&attacker_admins[0], &attacker_admins[1]],
    );
    for rogue in &rogues {
        assert!(matches!(
            rogue.handle(EnclaveRequest::GenesisV2 {
                request: own.clone()
            }),
            EnclaveResponse::GenesisAccepted { .. }
        ));
    }
    let offered: Vec<PeerDocument> = [1u16, 2]
        .iter()
        .zip(&rogues)
        .map(|(node, r)| PeerDocument {
            node: *node,
            document: document(r),
        })
        .collect();
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers { documents: offered }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(nodes.is_empty(), "node 0 admitted rogues at {nodes:?}");
            assert_eq!(refused.len(), 2, "{refused:?}");
            for (_, why) in &refused {
                assert!(why.contains("another node key"), "{why}");
            }
        }
        other => panic!("admit: {other:?}"),
    }
    // The rogues admit each other in their own cluster.
    admit_all(&rogues);

    // 3. An admin-approved EdDSA key among {node 0, rogue 1, rogue 2}: nothing is created.
    let attack: Vec<Arc<Enclave>> =
        vec![c.enclaves[0].clone(), rogues[0].clone(), rogues[1].clone()];
    let request = c.create_key_request(KEY, Scheme::EddsaEd25519, 2);
    let outcomes = run_session(
        &attack,
        fresh_session_id(),
        &[0, 1, 2],
        SessionKind::CreateKey { request },
        |_, _| {},
    );
    for (node, outcome) in &outcomes {
        assert!(
            !matches!(outcome, Outcome::KeyCreated { .. }),
            "node {node} created the key: {outcome:?}"
        );
    }
    assert!(
        outcomes
            .values()
            .any(|o| matches!(o, Outcome::Failed { .. })),
        "{outcomes:?}"
    );

    // Control: under its own genesis, its rogues make a key between themselves, and the
    // attacker recovers it from their blobs — its own cluster's key, not the real one's.
    // Its rogues refuse the real cluster's approved request: it names the real cluster's id,
    // not the id of the genesis they hold (however the attacker named it).
    let outcomes = run_session(
        &rogues,
        fresh_session_id(),
        &[0, 1],
        SessionKind::CreateKey {
            request: c.create_key_request("the-real-clusters", Scheme::EddsaEd25519, 2),
        },
        |_, _| {},
    );
    for (node, outcome) in &outcomes {
        match outcome {
            Outcome::Failed { message, .. } => {
                assert!(message.contains("other_cluster"), "rogue {node}: {message}")
            }
            other => panic!("rogue {node} took the real cluster's request: {other:?}"),
        }
    }
    let mut own_request = crate::testkit::create_key_request(
        own.request.cluster_id(),
        "attackers-own",
        Scheme::EddsaEd25519,
        2,
        &c.approvers,
        &[&attacker_admins[0], &attacker_admins[1]],
    );
    own_request.approvals = approve(
        &own_request.request,
        &[&attacker_admins[0], &attacker_admins[1]],
    );
    let outcomes = run_session(
        &rogues,
        fresh_session_id(),
        &[0, 1],
        SessionKind::CreateKey {
            request: own_request,
        },
        |_, _| {},
    );
    let mut public_key = None;
    let mut shares = Vec::new();
    for (node, outcome) in outcomes {
        match outcome {
            Outcome::KeyCreated {
                public_key: pk,
                sealed,
                ..
            } => {
                public_key = Some(pk.to_vec());
                shares.push(recover_eddsa_share(&sealed, "attackers-own"));
            }
            other => panic!("the control key at {node}: {other:?}"),
        }
    }
    let secret = frost_ed25519::keys::reconstruct(&shares).unwrap();
    assert_eq!(
        frost_ed25519::VerifyingKey::from(&secret)
            .serialize()
            .unwrap(),
        public_key.unwrap()
    );
    assert_ne!(own.request.cluster_id(), c.genesis.request.cluster_id());
}

/// One enclave identity is never admitted at two indices (issue 17, first step; the audit's
/// hole was shown open by this test before the fix), and since the roster (ADR 0013 step 10)
/// each index admits only the node key it lists.
///
/// A compromised coordinator offers honest node 0 a rogue enclave's document (the public
/// image, the attacker's own node key) at index 1 and at index 2, node 1's real (restarted)
/// document at 1 and at 2, and node 0's own document at index 2: with one identity at two
/// indices it would sit in the middle of node 0's point-to-point key-generation traffic. Node 0
/// refuses the rogue everywhere, admits node 1 at 1 only and refuses its own document.
#[test]
fn one_enclave_identity_is_never_admitted_at_two_indices() {
    let c = Cluster::new(3);
    let rogue = boot_sealed_by(&c.ca, 1, IMAGE, &ATTACKER_MASTER);
    enroll(&rogue, &crate::testkit::node_arn(1));
    let doc = document(&rogue);
    let documents = [1u16, 2]
        .map(|node| PeerDocument {
            node,
            document: doc.clone(),
        })
        .to_vec();
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers { documents }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(nodes.is_empty(), "a rogue node key admitted at {nodes:?}");
            assert_eq!(refused.len(), 2, "{refused:?}");
            assert!(
                refused
                    .iter()
                    .all(|(_, why)| why.contains("another node key"))
            );
        }
        other => panic!("admit: {other:?}"),
    }
    let restarted = boot(&c.ca, 1, IMAGE);
    assert!(matches!(
        restarted.handle(EnclaveRequest::Restore {
            blobs: c.blobs[1].clone()
        }),
        EnclaveResponse::Restored { .. }
    ));
    let doc = document(&restarted);
    let documents = [1u16, 2]
        .map(|node| PeerDocument {
            node,
            document: doc.clone(),
        })
        .to_vec();
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers { documents }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert_eq!(nodes, vec![1], "the identity is admitted at one index only");
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].0, 2);
            assert!(
                refused[0].1.contains("another node key"),
                "{}",
                refused[0].1
            );
        }
        other => panic!("admit: {other:?}"),
    }
    // Node 0's own document, offered at another index, is refused as well.
    let own = PeerDocument {
        node: 2,
        document: document(&c.enclaves[0]),
    };
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers {
        documents: vec![own],
    }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert!(nodes.is_empty(), "{nodes:?}");
            assert!(refused[0].1.contains("another node key"), "{refused:?}");
        }
        other => panic!("admit: {other:?}"),
    }
    // Index 2 still holds the honest node 2, whose document stays admissible there.
    let honest = PeerDocument {
        node: 2,
        document: document(&c.enclaves[2]),
    };
    match c.enclaves[0].handle(EnclaveRequest::AdmitPeers {
        documents: vec![honest],
    }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => {
            assert_eq!((nodes, refused), (vec![2], vec![]));
        }
        other => panic!("admit: {other:?}"),
    }
}

/// A peer admitted again while a session runs (a new document at its index) changes nothing
/// for that session: its peers' keys are the ones admitted when it started. Otherwise a
/// coordinator could swap a peer's keys in the middle of a key generation, between rounds.
/// A session started afterwards uses the new entry.
#[test]
fn readmitting_a_peer_mid_session_changes_nothing() {
    let c = Cluster::new(3);
    // Node 1 restarted elsewhere: its node key restored, new identity keys.
    let other = boot(&c.ca, 1, IMAGE);
    assert!(matches!(
        other.handle(EnclaveRequest::Restore {
            blobs: c.blobs[1].clone()
        }),
        EnclaveResponse::Restored { .. }
    ));
    let readmit = || {
        let documents = vec![PeerDocument {
            node: 1,
            document: document(&other),
        }];
        match c.enclaves[0].handle(EnclaveRequest::AdmitPeers { documents }) {
            EnclaveResponse::PeersAdmitted { nodes, refused } => {
                assert_eq!((nodes, refused), (vec![1], vec![]));
            }
            r => panic!("admit: {r:?}"),
        }
    };
    let request = c.create_key_request("readmitted-mid-session", Scheme::EddsaEd25519, 2);
    let mut readmitted = false;
    let outcomes = run_session(
        &c.enclaves,
        fresh_session_id(),
        &[0, 1, 2],
        SessionKind::CreateKey { request },
        |_, _| {
            if !readmitted {
                readmit();
                readmitted = true;
            }
        },
    );
    assert!(readmitted, "the re-admission never happened");
    assert_eq!(outcomes.len(), 3);
    for (node, outcome) in &outcomes {
        assert!(
            matches!(outcome, Outcome::KeyCreated { .. }),
            "node {node}: {outcome:?}"
        );
    }

    // The next session takes the new entry: the real node 1's envelopes no longer open at 0.
    let request = c.create_key_request("after-the-readmission", Scheme::EddsaEd25519, 2);
    let outcomes = run_session(
        &c.enclaves,
        fresh_session_id(),
        &[0, 1, 2],
        SessionKind::CreateKey { request },
        |_, _| {},
    );
    match outcomes.get(&0) {
        Some(Outcome::Failed { code, .. }) => assert_eq!(*code, FailureCode::Peer),
        other => panic!("node 0: {other:?}"),
    }
}

/// An identity offered at a wrong index does not keep its rightful node out: node 1 restarts
/// (new keys), a misbehaving coordinator first has node 0 admit the new document at index 2;
/// the next honest round (node 1's document at 1, node 2's at 2) admits both, because the batch
/// is admitted as a whole (attacker review of issue 17's first step).
#[test]
fn an_honest_round_heals_an_identity_offered_at_another_index() {
    let c = Cluster::new(3);
    let restarted = boot(&c.ca, 1, IMAGE);
    assert!(matches!(
        restarted.handle(EnclaveRequest::Restore {
            blobs: c.blobs[1].clone()
        }),
        EnclaveResponse::Restored { .. }
    ));
    let admit = |documents| match c.enclaves[0].handle(EnclaveRequest::AdmitPeers { documents }) {
        EnclaveResponse::PeersAdmitted { nodes, refused } => (nodes, refused),
        r => panic!("admit: {r:?}"),
    };
    let misplaced = vec![PeerDocument {
        node: 2,
        document: document(&restarted),
    }];
    // Since the roster, the misplaced document is refused outright (it binds node 1's key).
    let (nodes, refused) = admit(misplaced);
    assert!(nodes.is_empty() && refused.len() == 1, "{refused:?}");
    let round = vec![
        PeerDocument {
            node: 1,
            document: document(&restarted),
        },
        PeerDocument {
            node: 2,
            document: document(&c.enclaves[2]),
        },
    ];
    assert_eq!(admit(round), (vec![1, 2], vec![]));
}

fn enroll(e: &Enclave, arn: &protocol::KmsKeyArn) -> (ByteBuf, [u8; 32]) {
    match e.handle(EnclaveRequest::Enroll {
        kms_key_arn: arn.clone(),
    }) {
        EnclaveResponse::Enrolled {
            sealed,
            node_key,
            kms_key_arn,
        } => {
            assert_eq!(&kms_key_arn, arn);
            (sealed, node_key.as_slice().try_into().unwrap())
        }
        other => panic!("enroll: {other:?}"),
    }
}

fn membership_refusal(response: EnclaveResponse) -> String {
    match response {
        EnclaveResponse::Error(e) => {
            assert_eq!(e.code, ErrorCode::Membership, "{e}");
            e.message
        }
        other => panic!("expected a membership refusal, got {other:?}"),
    }
}

/// ADR 0013 step 5: an enclave makes its node key once, binds it (and its KMS key) into every
/// identity document from then on, and gets the same key back from its sealed blob after a
/// restart; a second enrollment, two node keys, or a record naming another KMS key than its
/// blob are refused by name and change nothing.
#[test]
fn a_node_key_is_made_once_bound_into_documents_and_restored() {
    use attestation::{NodeBinding, verify};
    let ca = SimulatedCa::generate().unwrap();
    let arn = protocol::KmsKeyArn::parse(
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    .unwrap();
    let at = || std::time::Duration::from_secs(now());
    let mut policy = attestation::Policy::default().with_root(ca.root_der().to_vec());
    policy.require_node = true;

    let e = boot(&ca, 0, IMAGE);
    assert_eq!(
        verify(&document(&e), &policy, at()).unwrap_err().kind(),
        "no_node_binding",
        "a fresh enclave attests without a node key"
    );
    let (sealed, node_key) = enroll(&e, &arn);
    assert_eq!(e.phase(), protocol::Phase::Enrolled);
    let binding = NodeBinding::new(node_key, arn.as_str()).unwrap();
    policy.node = Some(binding.clone());
    let doc = verify(&document(&e), &policy, at()).unwrap();
    assert_eq!(doc.identity, Some(e.identity()));
    assert_eq!(e.node_binding(), Some(binding.clone()));

    // Once only: asked again with the same KMS key it answers the same node key and blob (the
    // first answer may not have been stored); with another key it refuses.
    assert_eq!(enroll(&e, &arn), (sealed.clone(), node_key));
    assert_eq!(e.phase(), protocol::Phase::Enrolled);
    let other_arn =
        protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:444455556666:key/other").unwrap();
    let m = membership_refusal(e.handle(EnclaveRequest::Enroll {
        kms_key_arn: other_arn.clone(),
    }));
    assert!(m.starts_with("already_enrolled:"), "{m}");
    assert_eq!(e.node_binding(), Some(binding.clone()));

    // A restart: the node key comes back from its blob, and documents bind it again.
    let fresh = boot(&ca, 0, IMAGE);
    match fresh.handle(EnclaveRequest::Restore {
        blobs: vec![sealed.clone()],
    }) {
        EnclaveResponse::Restored { keys, aux, .. } => assert!(keys.is_empty() && !aux),
        other => panic!("restore: {other:?}"),
    }
    assert_eq!(fresh.phase(), protocol::Phase::Enrolled);
    assert_ne!(fresh.identity(), e.identity(), "identity keys are per boot");
    verify(&document(&fresh), &policy, at()).unwrap();
    assert_eq!(enroll(&fresh, &arn), (sealed.clone(), node_key));
    let m = membership_refusal(fresh.handle(EnclaveRequest::Enroll {
        kms_key_arn: other_arn.clone(),
    }));
    assert!(m.starts_with("already_enrolled:"), "{m}");

    // Two node keys, or a record whose KMS key is not its blob's: refused, nothing kept.
    let local = LocalSealingAuthority::new(&crate::testkit::MASTER, &IMAGE);
    #[derive(serde::Serialize)]
    struct Record<'a> {
        v: u8,
        secret: ByteBuf,
        kms_key_arn: &'a str,
        created: u64,
    }
    let record = |arn: &str| {
        let mut plain = Vec::new();
        ciborium::into_writer(
            &Record {
                v: 1,
                secret: ByteBuf::from(vec![7u8; 32]),
                kms_key_arn: arn,
                created: now(),
            },
            &mut plain,
        )
        .unwrap();
        plain
    };
    let mismatched = seal::seal(
        &local,
        BlobKind::NodeKey,
        arn.as_str(),
        &record(other_arn.as_str()),
    )
    .unwrap();
    let second = seal::seal(
        &local,
        BlobKind::NodeKey,
        arn.as_str(),
        &record(arn.as_str()),
    )
    .unwrap();
    let third = boot(&ca, 0, IMAGE);
    for (blobs, kind) in [
        (
            vec![sealed.clone(), ByteBuf::from(second)],
            "two_node_keys:",
        ),
        (vec![ByteBuf::from(mismatched)], "kms_key_mismatch:"),
    ] {
        let m = membership_refusal(third.handle(EnclaveRequest::Restore { blobs }));
        assert!(m.starts_with(kind), "{m}");
        assert_eq!(third.phase(), protocol::Phase::Ready);
        assert_eq!(third.node_binding(), None);
    }
    // ... and the real blob still restores afterwards.
    assert!(matches!(
        third.handle(EnclaveRequest::Restore {
            blobs: vec![sealed.clone()],
        }),
        EnclaveResponse::Restored { .. }
    ));
    assert_eq!(third.node_binding(), Some(binding.clone()));

    // A genesis without a roster is refused (ADR 0013 step 9), changing nothing; one whose
    // roster lists this node key is accepted, and a restore of the node key with it is
    // operational and keeps binding the node key.
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[80 + i; 32]))
        .collect();
    let both = [&admins[0], &admins[1]];
    let legacy = crate::testkit::genesis_request("enrolled", 2, &admins, &both);
    let m = membership_refusal(third.handle(EnclaveRequest::Genesis {
        request: legacy,
        node: 0,
    }));
    assert!(m.starts_with("legacy_genesis:"), "{m}");
    assert_eq!(third.phase(), protocol::Phase::Enrolled);
    let peer = boot(&ca, 1, IMAGE);
    let roster = vec![
        protocol::genesis::RosterEntry {
            node_key: ByteBuf::from(binding.node_key.to_vec()),
            kms_key_arn: arn.clone(),
            pcr3: None,
            pcr4: None,
        },
        crate::testkit::enroll_all(&[peer]).remove(0),
    ];
    let genesis = crate::testkit::genesis_v2("enrolled", IMAGE, roster, &admins, &both);
    let genesis_blob = match third.handle(EnclaveRequest::GenesisV2 { request: genesis }) {
        EnclaveResponse::GenesisAccepted { sealed, .. } => sealed,
        other => panic!("genesis: {other:?}"),
    };
    assert_eq!(third.phase(), protocol::Phase::Operational);
    let fourth = boot(&ca, 0, IMAGE);
    assert!(matches!(
        fourth.handle(EnclaveRequest::Restore {
            blobs: vec![sealed, genesis_blob],
        }),
        EnclaveResponse::Restored { .. }
    ));
    assert_eq!(fourth.phase(), protocol::Phase::Operational);
    assert_eq!(fourth.node_binding(), Some(binding));
    match fourth.handle(EnclaveRequest::Enroll { kms_key_arn: arn }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::WrongPhase),
        other => panic!("{other:?}"),
    }
}

/// ADR 0013 step 7: an enclave accepts a genesis with a roster only at the index that lists its
/// own node key (never an index it is given), answers a receipt under its node key, and refuses
/// every bad genesis by name, changing nothing; after a restart the sealed genesis is checked
/// again under the restored node key, so a forged genesis blob is refused too.
#[test]
fn a_genesis_with_a_roster_is_accepted_only_where_it_lists_this_node() {
    use crate::testkit::{enroll_all, genesis_v2, node_arn};
    use protocol::genesis::{ClusterId, genesis_receipt_message};
    let ca = SimulatedCa::generate().unwrap();
    let enclaves: Vec<_> = (0..3).map(|i| boot(&ca, i, IMAGE)).collect();
    let admins: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[90 + i; 32]))
        .collect();
    let both = [&admins[0], &admins[1]];
    // Not enrolled yet: a genesis with a roster needs the node key.
    let early = genesis_v2("roster", IMAGE, vec![], &admins, &both);
    match enclaves[0].handle(EnclaveRequest::GenesisV2 { request: early }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::WrongPhase),
        other => panic!("{other:?}"),
    }
    let entries = enroll_all(&enclaves);
    // Enclave 0's sealed node key, as its proxy stores it (asked again: the same blob).
    let key0 = match enclaves[0].handle(EnclaveRequest::Enroll {
        kms_key_arn: node_arn(0),
    }) {
        EnclaveResponse::Enrolled { sealed, .. } => sealed,
        other => panic!("{other:?}"),
    };
    // The roster lists enclave 2 first, enclave 0 second, enclave 1 third.
    let roster = vec![entries[2].clone(), entries[0].clone(), entries[1].clone()];
    let good = genesis_v2("roster", IMAGE, roster.clone(), &admins, &both);
    let cluster: ClusterId = good.request.cluster_id();

    // Each bad genesis is refused by name at enclave 0, which stays enrolled with nothing kept.
    let refused = |request, kind: &str| {
        let m = membership_refusal(enclaves[0].handle(EnclaveRequest::GenesisV2 { request }));
        assert!(m.starts_with(kind), "{kind}: {m}");
        assert_eq!(enclaves[0].phase(), protocol::Phase::Enrolled);
    };
    let others: Vec<_> = (0..3).map(|i| boot(&ca, i, IMAGE)).collect();
    let strangers = enroll_all(&others);
    refused(
        genesis_v2("roster", IMAGE, strangers.clone(), &admins, &both),
        "not_in_roster:",
    );
    let mut twice = roster.clone();
    twice[2] = twice[1].clone();
    refused(
        genesis_v2("roster", IMAGE, twice, &admins, &both),
        "duplicate_node_key:",
    );
    refused(
        genesis_v2("roster", IMAGE, roster.clone(), &admins, &[&admins[0]]),
        "approvals:",
    );
    let outsider = SigningKey::from_bytes(&[99; 32]);
    refused(
        genesis_v2(
            "roster",
            IMAGE,
            roster.clone(),
            &admins,
            &[&admins[0], &outsider],
        ),
        "approvals:",
    );
    refused(
        genesis_v2("roster", [0x99; 48], roster.clone(), &admins, &both),
        "other_image:",
    );
    let mut other_kms = roster.clone();
    other_kms[1].kms_key_arn = node_arn(7);
    refused(
        genesis_v2("roster", IMAGE, other_kms, &admins, &both),
        "kms_key_mismatch:",
    );
    let mut other_parent = roster.clone();
    other_parent[1].pcr3 = Some(ByteBuf::from(vec![0x33; 48]));
    refused(
        genesis_v2("roster", IMAGE, other_parent, &admins, &both),
        "parent_mismatch:",
    );
    // A parent pinned to what this enclave's parent is (simulated: zero) is accepted below.
    let mut pinned = roster.clone();
    pinned[1].pcr3 = Some(ByteBuf::from(vec![0; 48]));
    let good = genesis_v2("roster", IMAGE, pinned, &admins, &both);
    let cluster_pinned = good.request.cluster_id();
    assert_ne!(cluster_pinned, cluster);

    // The good genesis: each enclave finds its own index and signs a receipt with its node key.
    let mut blobs = Vec::new();
    for (i, e) in enclaves.iter().enumerate() {
        let expected = [1u16, 2, 0][i];
        match e.handle(EnclaveRequest::GenesisV2 {
            request: good.clone(),
        }) {
            EnclaveResponse::GenesisAccepted {
                sealed,
                receipt,
                node,
            } => {
                assert_eq!(node, Some(expected));
                let key = e.node_binding().unwrap().node_key;
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
                let sig = ed25519_dalek::Signature::from_slice(&receipt).unwrap();
                vk.verify_strict(&genesis_receipt_message(&cluster_pinned, expected), &sig)
                    .unwrap();
                blobs.push(sealed);
            }
            other => panic!("genesis at {i}: {other:?}"),
        }
        assert_eq!(e.phase(), protocol::Phase::Operational);
    }
    match enclaves[0].handle(EnclaveRequest::GenesisV2 {
        request: good.clone(),
    }) {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::WrongPhase),
        other => panic!("a second genesis: {other:?}"),
    }

    // The cluster works: by roster index, the enclaves are [2, 0, 1].
    let by_index: Vec<Arc<Enclave>> = vec![
        enclaves[2].clone(),
        enclaves[0].clone(),
        enclaves[1].clone(),
    ];
    admit_all(&by_index);
    let approvers: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[95 + i; 32]))
        .collect();
    let create = create_key_request(
        good.request.cluster_id(),
        "rostered",
        Scheme::EddsaEd25519,
        2,
        &approvers,
        &both,
    );
    let out = run_session(
        &by_index,
        fresh_session_id(),
        &[0, 1, 2],
        SessionKind::CreateKey { request: create },
        |_, _| {},
    );
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::KeyCreated { .. })),
        "{out:?}"
    );

    // A restart restores the node key and the genesis, checked again: same index.
    let fresh = boot(&ca, 0, IMAGE);
    assert!(matches!(
        fresh.handle(EnclaveRequest::Restore {
            blobs: vec![blobs[0].clone(), key0.clone()],
        }),
        EnclaveResponse::Restored { .. }
    ));
    assert_eq!(fresh.phase(), protocol::Phase::Operational);
    assert_eq!(
        fresh.node_binding().map(|b| b.node_key),
        enclaves[0].node_binding().map(|b| b.node_key)
    );
    // Without its node key, a genesis with a roster is not restored.
    let lone = boot(&ca, 0, IMAGE);
    let m = membership_refusal(lone.handle(EnclaveRequest::Restore {
        blobs: vec![blobs[0].clone()],
    }));
    assert!(m.starts_with("no_node_key:"), "{m}");
    // A forged genesis blob (sealed by a parent that knows the local master, approved by the
    // admins — say an old proposal) whose roster does not list this node key: refused at
    // restore, nothing kept.
    #[derive(serde::Serialize)]
    struct Sealed {
        v: u8,
        genesis: Approved<protocol::genesis::Genesis>,
    }
    let forged_genesis = genesis_v2("roster", IMAGE, strangers, &admins, &both);
    let mut plain = Vec::new();
    ciborium::into_writer(
        &Sealed {
            v: 2,
            genesis: forged_genesis,
        },
        &mut plain,
    )
    .unwrap();
    let local = LocalSealingAuthority::new(&crate::testkit::MASTER, &IMAGE);
    let forged = seal::seal(&local, BlobKind::Genesis, "forged", &plain).unwrap();
    let victim = boot(&ca, 0, IMAGE);
    let m = membership_refusal(victim.handle(EnclaveRequest::Restore {
        blobs: vec![key0.clone(), ByteBuf::from(forged)],
    }));
    assert!(m.starts_with("not_in_roster:"), "{m}");
    assert_eq!(victim.phase(), protocol::Phase::Ready);
    assert_eq!(victim.node_binding(), None);
}
