//! In-process clusters for tests and the in-process benchmark: real [`Enclave`]s with simulated
//! NSMs and the local sealing authority, driven through their request handler, every envelope
//! relayed by [`protocol::relay::Relay`] — the coordinator's path without proxies or HTTP.
//!
//! Compiled only for this crate's tests or with the `test-fixtures` feature (off by default):
//! enclaves boot with the committed safe primes.

use std::collections::BTreeMap;
use std::sync::Arc;

use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
use ed25519_dalek::{Signer, SigningKey};
use protocol::peer::PeerEnvelope;
use protocol::policy::{
    Approval, Approved, Canonical, CreateKey, Genesis, KeyPolicy, REQUEST_ID_LEN, REQUEST_VERSION,
    Scheme,
};
use protocol::relay::Relay;
use protocol::session::{Outcome, PeerDocument, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use crate::mpc::ecdsa::fixtures;
use crate::node::Background;
use crate::primes::PrimePool;
use crate::seal::{LocalSealingAuthority, Sealer};
use crate::server::{BootConfig, Enclave};

/// The measurement of the in-process enclaves' image.
pub const IMAGE: [u8; 48] = [0x42; 48];
/// The local sealing authority's master key.
pub const MASTER: [u8; 32] = [0x17; 32];

/// Boots node `node` (with committed primes) under `ca`, measured as `image`.
///
/// # Panics
/// If the CA cannot be copied or the committed primes are missing (test code).
pub fn boot(ca: &SimulatedCa, node: usize, image: [u8; 48]) -> Arc<Enclave> {
    boot_measured(ca, node, image, simulated_pcrs(&image), &MASTER)
}

/// Boots an enclave of `image` as anyone can run the public image: genuine hardware (the same
/// simulated root as `ca`), genuine measurements, but sealing through a local sealing authority
/// whose master key is `master` — the parent and KMS of whoever started it. An attacker who
/// starts enclaves in its own account holds the keys they seal under (the membership attack
/// tests, issue 17).
///
/// # Panics
/// As [`boot`].
pub fn boot_sealed_by(
    ca: &SimulatedCa,
    node: usize,
    image: [u8; 48],
    master: &[u8; 32],
) -> Arc<Enclave> {
    boot_measured(ca, node, image, simulated_pcrs(&image), master)
}

/// Boots node `node` measured as `image`, sealing as an enclave of `kms_image` does: what KMS
/// does during an image rotation, when the node's key policy admits both images (issue 20; the
/// local sealing authority binds its key to one PCR0). The enclave's own checks are what a test
/// of it exercises.
///
/// # Panics
/// As [`boot`].
pub fn boot_rotating(
    ca: &SimulatedCa,
    node: usize,
    image: [u8; 48],
    kms_image: [u8; 48],
) -> Arc<Enclave> {
    boot_measured(ca, node, kms_image, simulated_pcrs(&image), &MASTER)
}

/// Boots node `node` as an enclave in debug mode would attest: PCR0, PCR1 and PCR2 all zero
/// (Nitro zeroes them when an enclave runs with `--debug-mode`), whatever its image.
///
/// # Panics
/// As [`boot`].
pub fn boot_debug(ca: &SimulatedCa, node: usize) -> Arc<Enclave> {
    let zero = (0..3).map(|i| (i, vec![0u8; 48])).collect();
    boot_measured(ca, node, IMAGE, zero, &MASTER)
}

fn boot_measured(
    ca: &SimulatedCa,
    node: usize,
    image: [u8; 48],
    pcrs: BTreeMap<usize, Vec<u8>>,
    master: &[u8; 32],
) -> Arc<Enclave> {
    // A CA clone: same root and intermediate (the simulated "hardware").
    let dir = tempfile::tempdir().expect("temporary directory");
    ca.save(dir.path()).expect("save the simulated CA");
    let ca = SimulatedCa::load(dir.path()).expect("load the simulated CA");
    let root = ca.root_der().to_vec();
    let nsm = SimulatedNsm::new(ca, format!("node-{node}"), pcrs);
    Arc::new(Enclave::boot(BootConfig {
        nsm: Ok(Arc::new(nsm)),
        sealing: Sealer::new(Box::new(LocalSealingAuthority::new(master, &image)), None),
        root_der: root,
        primes: PrimePool::preloaded(fixtures::primes(node).expect("committed primes")),
        workers: None,
        background: Background::Nice,
    }))
}

/// A fresh session id (random, expiring in ten minutes: session ids carry their expiry).
pub fn fresh_session_id() -> ByteBuf {
    session_id_ahead(0)
}

/// A fresh session id for enclaves whose clocks run `ahead` seconds ahead of this machine's.
pub fn session_id_ahead(ahead: u64) -> ByteBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + ahead;
    let mut rest = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rest);
    ByteBuf::from(protocol::session::session_id_expiring(now + 600, &rest).to_vec())
}

/// An enclave's attestation document.
///
/// # Panics
/// If the enclave does not attest.
pub fn document(e: &Enclave) -> ByteBuf {
    match e.handle(EnclaveRequest::Attest { nonce: None }) {
        EnclaveResponse::Attestation { document } => document,
        other => panic!("unexpected {other:?}"),
    }
}

/// Approvals of `request` by `keys`.
pub fn approve<T: Canonical>(request: &T, keys: &[&SigningKey]) -> Vec<Approval> {
    keys.iter()
        .map(|k| Approval {
            approver: ByteBuf::from(k.verifying_key().to_bytes().to_vec()),
            signature: ByteBuf::from(k.sign(&request.canonical_bytes()).to_bytes().to_vec()),
        })
        .collect()
}

/// Has every enclave verify and admit every other one.
///
/// # Panics
/// If an enclave refuses a peer.
pub fn admit_all(enclaves: &[Arc<Enclave>]) {
    let docs: Vec<PeerDocument> = enclaves
        .iter()
        .enumerate()
        .map(|(i, e)| PeerDocument {
            node: i as u16,
            document: document(e),
        })
        .collect();
    for (i, e) in enclaves.iter().enumerate() {
        let others: Vec<PeerDocument> = docs
            .iter()
            .filter(|d| d.node != i as u16)
            .cloned()
            .collect();
        match e.handle(EnclaveRequest::AdmitPeers { documents: others }) {
            EnclaveResponse::PeersAdmitted { nodes, refused } => {
                assert!(refused.is_empty(), "{refused:?}");
                assert_eq!(nodes.len(), enclaves.len() - 1);
            }
            other => panic!("admit: {other:?}"),
        }
    }
}

fn failed(e: protocol::EnclaveError) -> Outcome {
    Outcome::Failed {
        code: e.code.into(),
        message: e.message,
        culprits: vec![],
    }
}

/// Runs one session among `participants` of `enclaves`; `tamper` may alter each batch of
/// envelopes before it is delivered.
///
/// # Panics
/// On an answer that is not a session update or an error, or a session that never ends.
pub fn run_session(
    enclaves: &[Arc<Enclave>],
    session: ByteBuf,
    participants: &[u16],
    kind: SessionKind,
    tamper: impl FnMut(u16, &mut Vec<PeerEnvelope>),
) -> BTreeMap<u16, Outcome> {
    run_session_as(enclaves, session, participants, |_| kind.clone(), tamper)
}

/// [`run_session`], with the session started as `kind_at(node)` at each participant: what a
/// relay that asks different nodes to run different things under one session id does.
///
/// # Panics
/// As [`run_session`].
pub fn run_session_as(
    enclaves: &[Arc<Enclave>],
    session: ByteBuf,
    participants: &[u16],
    kind_at: impl Fn(u16) -> SessionKind,
    mut tamper: impl FnMut(u16, &mut Vec<PeerEnvelope>),
) -> BTreeMap<u16, Outcome> {
    let mut relay = Relay::new(participants);
    for p in participants {
        let request = EnclaveRequest::StartSession {
            session: session.clone(),
            participants: participants.to_vec(),
            kind: kind_at(*p),
        };
        match enclaves[usize::from(*p)].handle(request) {
            EnclaveResponse::Session(update) => relay.absorb(*p, update),
            EnclaveResponse::Error(e) => relay.fail(*p, failed(e)),
            other => panic!("start: {other:?}"),
        }
    }
    let mut rounds = 0;
    while let Some((node, mut envelopes)) = relay.next_delivery() {
        rounds += 1;
        assert!(rounds < 10_000, "session does not terminate");
        tamper(node, &mut envelopes);
        let request = EnclaveRequest::Deliver {
            session: session.clone(),
            envelopes,
        };
        match enclaves[usize::from(node)].handle(request) {
            EnclaveResponse::Session(update) => relay.absorb(node, update),
            EnclaveResponse::Error(e) => relay.fail(node, failed(e)),
            other => panic!("deliver: {other:?}"),
        }
    }
    relay.outcomes().clone()
}

/// The 32-byte public keys of `keys`, as requests carry them.
pub fn public_keys(keys: &[SigningKey]) -> Vec<ByteBuf> {
    keys.iter()
        .map(|k| ByteBuf::from(k.verifying_key().to_bytes().to_vec()))
        .collect()
}

/// A legacy (version-1) genesis of `nodes` nodes for `cluster` with `admins` (quorum 2),
/// approved by `approving`: refused everywhere; for the tests of that refusal.
pub fn genesis_request(
    cluster: &str,
    nodes: u16,
    admins: &[SigningKey],
    approving: &[&SigningKey],
) -> Approved<Genesis> {
    let genesis = Genesis {
        v: protocol::policy::GENESIS_V1_VERSION,
        cluster: cluster.into(),
        nodes,
        admins: public_keys(admins),
        admin_quorum: 2,
    };
    Approved {
        approvals: approve(&genesis, approving),
        request: genesis,
    }
}

/// A request (fresh id, valid for two minutes) to create `key_id` whose signatures need two of
/// `approvers`, approved by the admins `approving`.
pub fn create_key_request(
    cluster: protocol::genesis::ClusterId,
    key_id: &str,
    scheme: Scheme,
    threshold: u16,
    approvers: &[SigningKey],
    approving: &[&SigningKey],
) -> Approved<CreateKey> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut request_id = vec![0u8; REQUEST_ID_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut request_id);
    let request = CreateKey {
        v: REQUEST_VERSION,
        cluster,
        key_id: key_id.into(),
        scheme,
        threshold,
        policy: KeyPolicy {
            approvers: public_keys(approvers),
            approvals_needed: 2,
        },
        request_id: ByteBuf::from(request_id),
        created: now,
        expiry: now + 120,
        admins: 0,
        roster: 0,
    };
    Approved {
        approvals: approve(&request, approving),
        request,
    }
}

/// The KMS key ARN the in-process node `i` enrolls with (the local sealing authority ignores
/// it; the roster and the documents carry it).
///
/// # Panics
/// Never: the ARN is well formed.
pub fn node_arn(i: usize) -> protocol::KmsKeyArn {
    protocol::KmsKeyArn::parse(&format!(
        "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-{i:012}"
    ))
    .expect("a well-formed key ARN")
}

/// Enrolls every enclave (node `i` with [`node_arn`]`(i)`); returns each one's roster entry
/// and its sealed node key.
///
/// # Panics
/// If an enclave does not enroll.
pub fn enroll_each(enclaves: &[Arc<Enclave>]) -> Vec<(protocol::genesis::RosterEntry, ByteBuf)> {
    enclaves
        .iter()
        .enumerate()
        .map(|(i, e)| {
            match e.handle(EnclaveRequest::Enroll {
                kms_key_arn: node_arn(i),
            }) {
                EnclaveResponse::Enrolled {
                    sealed,
                    node_key,
                    kms_key_arn,
                } => (
                    protocol::genesis::RosterEntry {
                        node_key,
                        kms_key_arn,
                        pcr3: None,
                        pcr4: None,
                    },
                    sealed,
                ),
                other => panic!("enroll: {other:?}"),
            }
        })
        .collect()
}

/// Enrolls every enclave; returns each one's roster entry.
///
/// # Panics
/// If an enclave does not enroll.
pub fn enroll_all(enclaves: &[Arc<Enclave>]) -> Vec<protocol::genesis::RosterEntry> {
    enroll_each(enclaves).into_iter().map(|(e, _)| e).collect()
}

/// Founds a cluster of `enclaves` (of [`IMAGE`]) by the ceremony: enrolls each, approves a
/// genesis listing them in order with `approving` of `admins`, hands it to each. Returns the
/// approved genesis and each node's sealed blobs (node key, genesis), as its proxy stores them.
///
/// # Panics
/// If an enclave refuses.
pub fn found(
    enclaves: &[Arc<Enclave>],
    name: &str,
    admins: &[SigningKey],
    approving: &[&SigningKey],
) -> (Approved<protocol::genesis::Genesis>, Vec<Vec<ByteBuf>>) {
    let enrolled = enroll_each(enclaves);
    let roster = enrolled.iter().map(|(e, _)| e.clone()).collect();
    let approved = genesis_v2(name, IMAGE, roster, admins, approving);
    let blobs = enclaves
        .iter()
        .zip(enrolled)
        .enumerate()
        .map(|(i, (e, (_, node_key)))| {
            match e.handle(EnclaveRequest::GenesisV2 {
                request: approved.clone(),
            }) {
                EnclaveResponse::GenesisAccepted { sealed, node, .. } => {
                    assert_eq!(node, Some(i as u16));
                    vec![node_key, sealed]
                }
                other => panic!("genesis at {i}: {other:?}"),
            }
        })
        .collect();
    (approved, blobs)
}

/// A version-2 genesis named `name` for enclaves of `image` with `roster`, admins `admins`
/// (quorum 2), approved by `approving`.
pub fn genesis_v2(
    name: &str,
    image: [u8; 48],
    roster: Vec<protocol::genesis::RosterEntry>,
    admins: &[SigningKey],
    approving: &[&SigningKey],
) -> Approved<protocol::genesis::Genesis> {
    let pcrs = simulated_pcrs(&image);
    let pcr = |i: usize| ByteBuf::from(pcrs.get(&i).cloned().unwrap_or_default());
    let genesis = protocol::genesis::Genesis {
        v: protocol::genesis::GENESIS_VERSION,
        name: name.into(),
        admins: public_keys(admins),
        admin_quorum: 2,
        image: protocol::genesis::Image {
            pcr0: pcr(0),
            pcr1: pcr(1),
            pcr2: pcr(2),
        },
        roster,
    };
    Approved {
        approvals: approve(&genesis, approving),
        request: genesis,
    }
}
