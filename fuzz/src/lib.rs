//! The bodies of Cohort's fuzz targets.
//!
//! Each `fuzz_targets/<name>.rs` calls the function of the same name here, and
//! `tests/regressions.rs` feeds the same functions every file of `seeds/<name>/` and
//! `regressions/<name>/`, so a crash the fuzzer finds becomes a plain `cargo test`.
//!
//! A target returns for every input. It panics only when an invariant of the code under test
//! breaks: a decoded message that does not re-encode to itself, a document accepted without the
//! CA's key, a signed transaction that does not decode to what was approved. Those panics are
//! the findings.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use adapters::{AdapterError, ChainAdapter, Registry, Unsigned};
use attestation::{Policy, VerifiedDocument};
use coordinator::api::{
    ApiError, ApprovedJson, AssembleRequest, CreateKeyJson, ErrorCode, GenesisBody, GenesisJson,
    GenesisV2Json, PrepareRequest, SignRequestJson, Wire, parse_path,
};
use ed25519_dalek::Signer as _;
use k256::ecdsa::signature::hazmat::PrehashSigner as _;
use protocol::parent::{ParentRequest, ParentResponse};
use protocol::peer::PeerEnvelope;
use protocol::policy::{Canonical, Scheme};
use protocol::session::SessionUpdate;
use protocol::{EnclaveRequest, EnclaveResponse, FrameError};
use serde::Serialize;
use serde::de::DeserializeOwned;

// ---------------------------------------------------------------------------------------------
// frame
// ---------------------------------------------------------------------------------------------

/// Frames on the enclave <-> parent link, as the enclave, the proxy and the coordinator read
/// them: [`protocol::payload_len`] on the header, then [`protocol::decode_frame`] (and
/// [`protocol::decode_payload`] on the input taken as a payload) for every message type of the
/// link. Whatever decodes must re-encode with [`protocol::encode_frame`] and decode to an equal
/// value, and the re-encoding must be a fixed point.
pub fn frame(data: &[u8]) {
    if let Some(header) = data.first_chunk::<{ protocol::FRAME_HEADER_LEN }>()
        && let Ok(len) = protocol::payload_len(*header)
    {
        assert!(len <= protocol::MAX_FRAME_LEN);
    }
    frame_as::<EnclaveRequest>(data, |m| {
        assert_eq!(m.to_string(), m.kind());
    });
    frame_as::<EnclaveResponse>(data, |m| {
        assert_eq!(m.to_string(), m.kind());
    });
    frame_as::<ParentRequest>(data, |m| {
        let _ = m.check();
        let _ = m.operation();
    });
    frame_as::<ParentResponse>(data, |m| {
        let _ = format!("{m:?}");
    });
}

fn frame_as<M>(data: &[u8], inspect: impl Fn(&M))
where
    M: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if let Ok(m) = protocol::decode_frame::<M>(data) {
        inspect(&m);
        round_trip(&m);
        // The payload alone decodes to the same message.
        let payload = &data[protocol::FRAME_HEADER_LEN..];
        assert_eq!(protocol::decode_payload::<M>(payload).as_ref(), Ok(&m));
    }
    if let Ok(m) = protocol::decode_payload::<M>(data) {
        inspect(&m);
        round_trip(&m);
    }
}

/// `encode_frame(m)` decodes to `m`, and encoding is deterministic.
fn round_trip<M>(m: &M)
where
    M: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let frame = match protocol::encode_frame(m) {
        Ok(f) => f,
        // Only a message grown past the limit by re-encoding may fail to encode.
        Err(FrameError::TooLarge { .. }) => return,
        Err(e) => panic!("a decoded message does not re-encode: {e}"),
    };
    let back: M = protocol::decode_frame(&frame)
        .unwrap_or_else(|e| panic!("a re-encoded message does not decode: {e}"));
    assert_eq!(&back, m, "a message changed in a round trip");
    assert_eq!(
        protocol::encode_frame(&back).ok().as_deref(),
        Some(frame.as_slice()),
        "encoding is not deterministic"
    );
}

// ---------------------------------------------------------------------------------------------
// attestation_doc
// ---------------------------------------------------------------------------------------------

/// Validation time for the genuine AWS document in `seeds/attestation_doc/` (one second after
/// its timestamp, while its certificates were valid).
pub const AWS_AT: Duration = Duration::from_millis(1_668_589_955_179 + 1_000);

const VECTORS_JSON: &str = include_str!("../../tests/vectors/attestation/vectors.json");
const VECTORS_ROOT_PEM: &str = include_str!("../../tests/vectors/attestation/root.pem");

struct AttestationPolicies {
    /// The AWS root, production settings (debug refused). Nothing a fuzzer makes passes it.
    aws: Policy,
    /// The AWS root with debug documents allowed: the genuine debug document passes.
    aws_debug: Policy,
    /// The simulated root of the committed vectors, with the vectors' policy.
    sim: Policy,
    /// The vectors' policy requiring a node binding (version 2).
    sim_node: Policy,
    /// The simulated root with nothing else required (more inputs reach the content checks).
    sim_loose: Policy,
    /// The vectors' validation time.
    sim_at: Duration,
}

fn attestation_policies() -> &'static AttestationPolicies {
    static POLICIES: OnceLock<AttestationPolicies> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let m: serde_json::Value =
            serde_json::from_str(VECTORS_JSON).expect("the committed vectors.json is JSON");
        let root = attestation::pem_to_der(VECTORS_ROOT_PEM)
            .expect("the committed simulated root is a PEM certificate");
        let mut sim = Policy::default().with_root(root.clone());
        for (i, v) in m["pcrs"].as_object().expect("vectors.json has pcrs") {
            let index = i.parse().expect("PCR indices are numbers");
            let value = v.as_str().and_then(|v| hex::decode(v).ok());
            sim = sim.allow_pcr(index, value.expect("PCR values are hex"));
        }
        sim.nonce = m["nonce"].as_str().and_then(|n| hex::decode(n).ok());
        sim.max_age = m["max_age_secs"].as_u64().map(Duration::from_secs);
        sim.require_identity = true;
        let sim_at = Duration::from_secs(
            m["validation_time"]
                .as_u64()
                .expect("vectors.json has a validation time"),
        );
        AttestationPolicies {
            aws: Policy::default().with_root(attestation::aws_nitro_root_der()),
            aws_debug: Policy {
                allow_debug: true,
                ..Policy::default()
            },
            sim_node: Policy {
                require_node: true,
                ..sim.clone()
            },
            sim,
            sim_loose: Policy {
                allow_debug: true,
                ..Policy::default().with_root(root)
            },
            sim_at,
        }
    })
}

/// Nitro attestation documents, as the enclave (peer admission), the parent proxy and the CLI
/// read them: [`attestation::verify::decode_unverified`] and [`attestation::verify`] under the
/// AWS root and under the simulated root of the committed test vectors.
///
/// Under the AWS root with production settings every input must be refused: passing needs a
/// document signed by AWS's CA for a non-debug enclave, which no fuzzer can make. A document
/// accepted under any other policy must be exactly what decoding it without verification shows.
pub fn attestation_doc(data: &[u8]) {
    let p = attestation_policies();
    let unverified = attestation::verify::decode_unverified(data);
    let verdict = attestation::verify(data, &p.aws, AWS_AT);
    assert!(
        verdict.is_err(),
        "a fuzz input passed verification under the AWS root: {verdict:?}"
    );
    for (policy, at) in [
        (&p.aws_debug, AWS_AT),
        (&p.sim, p.sim_at),
        (&p.sim_loose, p.sim_at),
        (&p.sim_node, p.sim_at),
    ] {
        match attestation::verify(data, policy, at) {
            Ok(doc) => {
                let raw = unverified
                    .as_ref()
                    .expect("a verified document decodes without verification");
                let pcrs: BTreeMap<usize, Vec<u8>> =
                    raw.pcrs.iter().map(|(i, v)| (*i, v.to_vec())).collect();
                let decoded = VerifiedDocument {
                    module_id: raw.module_id.clone(),
                    timestamp_ms: raw.timestamp,
                    pcrs,
                    nonce: raw.nonce.as_ref().map(|b| b.to_vec()),
                    user_data: raw.user_data.as_ref().map(|b| b.to_vec()),
                    public_key: raw.public_key.as_ref().map(|b| b.to_vec()),
                    identity: doc.identity,
                    node: doc.node.clone(),
                    leaf_der: raw.certificate.to_vec(),
                };
                assert_eq!(doc, decoded, "verified and decoded documents differ");
                let _ = serde_json::to_string(&doc);
            }
            Err(e) => {
                let _ = e.kind();
                let _ = e.to_string();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kms_envelope
// ---------------------------------------------------------------------------------------------

/// KMS `CiphertextForRecipient` envelopes, which reach the enclave through the untrusted parent
/// ([`attestation::recipient::parse`], the first step of `EphemeralKey::open`), and Recipient
/// public keys ([`attestation::recipient::check_public_key`], what the KMS stand-in reads).
pub fn kms_envelope(data: &[u8]) {
    if let Ok(parts) = attestation::recipient::parse(data) {
        assert_eq!(parts.iv.len(), 16);
        assert!(!parts.ciphertext.is_empty() && parts.ciphertext.len() % 16 == 0);
    }
    let _ = attestation::recipient::check_public_key(data);
}

// ---------------------------------------------------------------------------------------------
// kms_response
// ---------------------------------------------------------------------------------------------

/// A stream that hands over `data` in reads of `sizes[0]`, `sizes[1]`, `sizes[0]`, ... bytes
/// (TLS hands over records, and whoever writes them chooses where they end).
struct Trickle<'a> {
    data: &'a [u8],
    sizes: [usize; 2],
    turn: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes[self.turn % 2]
            .min(buf.len())
            .min(self.data.len());
        self.turn += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The enclave's reader of KMS's HTTP answers ([`protocol::http1::read_response`]: status
/// line, headers, a `content-length`, chunked or until-close body). Input `[a, b, answer…]`:
/// the answer is read once from a slice (reads of up to 4 KiB) and once in reads of `1 + 16a`
/// and `1 + b` bytes in turn. Both must give the same answer — the same status and body, or
/// both a malformed answer — and a body is at most `MAX_BODY` bytes.
pub fn kms_response(data: &[u8]) {
    use protocol::http1::{MAX_BODY, ReadFailure, read_response};
    let [a, b, answer @ ..] = data else {
        return;
    };
    let whole = read_response(&mut &answer[..]);
    let split = read_response(&mut Trickle {
        data: answer,
        sizes: [1 + 16 * usize::from(*a), 1 + usize::from(*b)],
        turn: 0,
    });
    match (&whole, &split) {
        (Ok(w), Ok(s)) => {
            assert_eq!(
                w, s,
                "the answer depends on how its bytes are split into reads"
            );
            assert!(w.1.len() <= MAX_BODY, "a {}-byte body", w.1.len());
            assert!(w.0 <= 999, "status {}", w.0);
        }
        (Err(ReadFailure::Malformed(_)), Err(ReadFailure::Malformed(_))) => {}
        _ => panic!(
            "the answer depends on how its bytes are split into reads: {:?} / {:?}",
            whole.map(|(status, body)| (status, body.len())),
            split.map(|(status, body)| (status, body.len())),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// peer_envelope
// ---------------------------------------------------------------------------------------------

/// Domain tag at the start of [`PeerEnvelope::signed_bytes`] (pinned: a change is a wire change).
const PEER_SIGNING_DST: &[u8] = b"cohort/peer-envelope/v2";

/// Seed of the Ed25519 key that signs the envelopes in `seeds/peer_envelope/`.
pub const PEER_KEY_SEED: [u8; 32] = [0x44; 32];

/// The execution id the seed envelopes are signed under (the enclave derives it from the
/// session it was asked to run; it is not in the envelope).
pub const PEER_CONTEXT: [u8; 32] = [0x3c; 32];

/// The key that signs the seed envelopes.
pub fn peer_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&PEER_KEY_SEED)
}

/// Peer envelopes, as the enclave receives them in a `Deliver` request (CBOR, through
/// `ciborium::Value` like [`protocol::decode_payload`]) and the coordinator in a session
/// update: one envelope, a list of them, or a [`SessionUpdate`]. On what decodes:
/// [`PeerEnvelope::signed_bytes`] and [`PeerEnvelope::header_bytes`] must lay out the fields
/// unambiguously, an envelope signed by [`peer_key`] under [`PEER_CONTEXT`] must stop verifying
/// when any signed field or the execution id changes (the enclave checks the signature with `verify_strict`, as here), and the envelope
/// must survive a `Deliver` frame round trip.
pub fn peer_envelope(data: &[u8]) {
    let _ = ciborium::from_reader::<PeerEnvelope, _>(data);
    let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(data) else {
        return;
    };
    if let Ok(envelope) = value.deserialized::<PeerEnvelope>() {
        check_envelope(&envelope);
        let _ = format!("{envelope:?}");
    }
    if let Ok(envelopes) = value.deserialized::<Vec<PeerEnvelope>>() {
        envelopes.iter().for_each(check_envelope);
        let session = envelopes
            .first()
            .map(|e| e.session.clone())
            .unwrap_or_default();
        round_trip(&EnclaveRequest::Deliver { session, envelopes });
    }
    if let Ok(update) = value.deserialized::<SessionUpdate>() {
        update.outgoing.iter().for_each(check_envelope);
        round_trip(&EnclaveResponse::Session(update));
    }
}

fn check_envelope(e: &PeerEnvelope) {
    let header = PeerEnvelope::header_bytes(e.v, &e.session, e.seq, e.from, e.to);
    let signed = e.signed_bytes(&PEER_CONTEXT);
    let expected_len = PEER_SIGNING_DST.len() + header.len() + 32 + 8 + e.body.len();
    assert_eq!(signed.len(), expected_len);
    assert!(signed.starts_with(PEER_SIGNING_DST));
    assert_eq!(
        &signed[PEER_SIGNING_DST.len()..][..header.len()],
        header.as_slice()
    );
    assert_eq!(
        &signed[PEER_SIGNING_DST.len() + header.len()..][..32],
        PEER_CONTEXT.as_slice()
    );
    assert!(signed.ends_with(&e.body));
    // The header parses back to the fields, whatever the session's length (one length byte
    // below 255, else 0xff and four bytes).
    assert_eq!(header[0], e.v);
    let (len, start) = match header[1] {
        0xff => (
            u32::from_be_bytes(header[2..6].try_into().unwrap_or_default()) as usize,
            6,
        ),
        n => (usize::from(n), 2),
    };
    assert_eq!(len, e.session.len());
    assert_eq!(&header[start..start + len], e.session.as_slice());
    let rest = &header[start + len..];
    assert_eq!(rest[..4], e.seq.to_be_bytes());
    assert_eq!(rest[4..6], e.from.to_be_bytes());
    match e.to {
        None => assert_eq!(&rest[6..], [0]),
        Some(t) => {
            assert_eq!(rest[6], 1);
            assert_eq!(rest[7..], t.to_be_bytes());
        }
    }
    // The signature check of `enclave::peer::Channel::open`.
    let vk = peer_key().verifying_key();
    let verifies_in = |env: &PeerEnvelope, context: &[u8; 32]| {
        ed25519_dalek::Signature::from_slice(&env.sig)
            .is_ok_and(|sig| vk.verify_strict(&env.signed_bytes(context), &sig).is_ok())
    };
    let verifies = |env: &PeerEnvelope| verifies_in(env, &PEER_CONTEXT);
    if verifies(e) {
        // Under another execution id (the session started as something else): refused.
        let mut other = PEER_CONTEXT;
        other[0] ^= 1;
        assert!(
            !verifies_in(e, &other),
            "an envelope verifies under another execution id"
        );
        let mut changed: Vec<PeerEnvelope> = Vec::new();
        let mut c = e.clone();
        c.v = c.v.wrapping_add(1);
        changed.push(c);
        let mut c = e.clone();
        c.session.push(0);
        changed.push(c);
        let mut c = e.clone();
        c.seq = c.seq.wrapping_add(1);
        changed.push(c);
        let mut c = e.clone();
        c.from = c.from.wrapping_add(1);
        changed.push(c);
        let mut c = e.clone();
        c.to = match c.to {
            None => Some(0),
            Some(_) => None,
        };
        changed.push(c);
        let mut c = e.clone();
        c.body.push(0);
        changed.push(c);
        for c in &changed {
            assert!(!verifies(c), "a changed envelope still verifies: {c:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed keys
// ---------------------------------------------------------------------------------------------

/// The secp256k1 key standing for a cluster's ECDSA key (private half known here, so that the
/// targets can make valid signatures).
pub fn ecdsa_key() -> &'static k256::ecdsa::SigningKey {
    static KEY: OnceLock<k256::ecdsa::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        k256::ecdsa::SigningKey::from_bytes(&[0x11u8; 32].into())
            .expect("0x11.. is a valid secp256k1 scalar")
    })
}

/// [`ecdsa_key`]'s 33-byte compressed public key.
pub fn ecdsa_public() -> Vec<u8> {
    ecdsa_key()
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec()
}

/// The Ed25519 key standing for a cluster's EdDSA key.
pub fn eddsa_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x22; 32])
}

/// [`eddsa_key`]'s 32-byte public key.
pub fn eddsa_public() -> Vec<u8> {
    eddsa_key().verifying_key().to_bytes().to_vec()
}

/// BIP32 chain code of [`ecdsa_key`] for path derivation in `api_request`.
pub const CHAIN_CODE: [u8; 32] = [0x33; 32];

fn public_key_for(scheme: Scheme) -> Vec<u8> {
    match scheme {
        Scheme::EcdsaSecp256k1 => ecdsa_public(),
        Scheme::EddsaEd25519 => eddsa_public(),
    }
}

/// Signs every payload of `unsigned` with the fixed key of its scheme.
fn sign_payloads(unsigned: &Unsigned) -> Option<Vec<Vec<u8>>> {
    unsigned
        .payloads
        .iter()
        .map(|p| match p.scheme {
            Scheme::EcdsaSecp256k1 => {
                let s: k256::ecdsa::Signature = ecdsa_key().sign_prehash(&p.signed_bytes()).ok()?;
                Some(s.to_bytes().to_vec())
            }
            Scheme::EddsaEd25519 => Some(eddsa_key().sign(&p.data).to_bytes().to_vec()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// adapter_decode
// ---------------------------------------------------------------------------------------------

/// One adapter of the built-in registry and a derivation path its checks accept.
pub struct AdapterCase {
    /// The adapter.
    pub adapter: Arc<dyn ChainAdapter>,
    /// A path `check_path` accepts (the coin type first for Bitcoin-family chains).
    pub path: Vec<u32>,
}

/// The networks of a chain: an EVM chain's from its table entry, another chain's from the
/// `UnknownNetwork` error that lists them.
fn networks(registry: &Registry, chain: &str) -> Vec<String> {
    if let Some(evm) = registry.evm_chain(chain) {
        return evm.networks.keys().cloned().collect();
    }
    match registry.adapter(chain, Some("\u{0}not-a-network")) {
        Err(AdapterError::UnknownNetwork { known, .. }) => {
            known.split(", ").map(str::to_string).collect()
        }
        _ => vec!["mainnet".into()],
    }
}

/// Every (chain, network) of [`Registry::builtin`], in a fixed order (chains sorted, networks in
/// the order the registry lists them). `adapter_decode` picks one by its first input byte.
pub fn adapter_cases() -> &'static [AdapterCase] {
    static CASES: OnceLock<Vec<AdapterCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        let registry = Registry::builtin();
        let mut cases = Vec::new();
        for chain in registry.chains() {
            for network in networks(&registry, &chain) {
                let adapter = registry
                    .adapter(&chain, Some(&network))
                    .expect("the registry lists this network");
                let path = std::iter::once(vec![])
                    .chain((0..=2).map(|coin| vec![coin, 0, 7]))
                    .find(|p| adapter.check_path(p).is_ok())
                    .unwrap_or_default();
                cases.push(AdapterCase { adapter, path });
            }
        }
        assert!(!cases.is_empty(), "the registry lists no chains");
        cases
    })
}

/// The index of a (chain, network) in [`adapter_cases`] (for making seeds).
pub fn adapter_index(chain: &str, network: &str) -> Option<u8> {
    adapter_cases()
        .iter()
        .position(|c| c.adapter.chain() == chain && c.adapter.network() == network)
        .and_then(|i| u8::try_from(i).ok())
}

/// Mode bit of `adapter_decode`'s second byte: sign the inspected payloads with the fixed keys.
pub const MODE_SIGN: u8 = 1;

/// Every adapter's decoders. Input: `[adapter, mode, bytes...]`; the first byte selects one of
/// [`adapter_cases`], the bytes go to `decode` (as a broadcast transaction) and `inspect` (as an
/// unsigned one) with a fixed public key of the adapter's scheme. What inspects is assembled
/// with signatures taken from the input, and, in [`MODE_SIGN`], with valid signatures by the
/// fixed key: then assembly must succeed, and the signed transaction must decode to the sender
/// and transfers the approver was shown.
pub fn adapter_decode(data: &[u8]) {
    let [selector, mode, bytes @ ..] = data else {
        return;
    };
    let cases = adapter_cases();
    let case = &cases[usize::from(*selector) % cases.len()];
    let a = case.adapter.as_ref();
    if let Ok(summary) = a.decode(bytes) {
        assert_eq!(summary.chain, a.chain());
        assert_eq!(summary.network, a.network());
        let _ = summary.to_string();
    }
    let pk = public_key_for(a.scheme());
    let inspected = a.inspect(&pk, &case.path, bytes);
    let count = match &inspected {
        Ok(u) => u.payloads.len(),
        Err(_) => usize::from(*mode >> 1) % 3,
    };
    let fuzz_signatures: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            bytes
                .iter()
                .cycle()
                .skip(i * 64)
                .take(64)
                .copied()
                .collect()
        })
        .collect();
    let _ = a.assemble(&pk, bytes, &fuzz_signatures);
    let Ok(unsigned) = inspected else {
        return;
    };
    check_unsigned(case, &pk, &unsigned);
    if mode & MODE_SIGN != 0 {
        check_assembly(case, &pk, bytes, &unsigned);
    }
}

/// What `inspect` returned describes itself: inspecting its `tx` gives it again.
fn check_unsigned(case: &AdapterCase, pk: &[u8], unsigned: &Unsigned) {
    let a = case.adapter.as_ref();
    assert!(!unsigned.payloads.is_empty(), "nothing to sign");
    assert_eq!(unsigned.summary.chain, a.chain());
    assert_eq!(unsigned.summary.network, a.network());
    assert_eq!(
        unsigned.summary.from,
        a.address(pk).expect("the fixed key has an address")
    );
    let again = a
        .inspect(pk, &case.path, &unsigned.tx)
        .expect("an inspected transaction inspects again");
    assert_eq!(&again, unsigned, "inspect is not idempotent");
}

/// Valid signatures assemble, and the result decodes to what the approver saw.
fn check_assembly(case: &AdapterCase, pk: &[u8], bytes: &[u8], unsigned: &Unsigned) {
    let a = case.adapter.as_ref();
    let Some(signatures) = sign_payloads(unsigned) else {
        return;
    };
    let signed = a
        .assemble(pk, bytes, &signatures)
        .unwrap_or_else(|e| panic!("valid signatures do not assemble: {e}"));
    let decoded = a
        .decode(&signed.raw)
        .unwrap_or_else(|e| panic!("an assembled transaction does not decode: {e}"));
    let from = a.address(pk).expect("the fixed key has an address");
    assert_eq!(
        decoded.from, from,
        "the signed transaction is not the key's"
    );
    assert_eq!(signed.summary.from, from);
    assert_eq!(
        decoded.transfers, unsigned.summary.transfers,
        "the signed transaction moves other value than the approved one"
    );
    // One signature fewer or one changed byte is refused.
    if let Some(last) = signatures.len().checked_sub(1) {
        assert!(a.assemble(pk, bytes, &signatures[..last]).is_err());
        let mut bad = signatures.clone();
        bad[last][10] ^= 1;
        assert!(
            a.assemble(pk, bytes, &bad).is_err(),
            "a forged signature assembles"
        );
    }
}

mod api;
pub use api::api_request;

/// A target body.
pub type Target = fn(&[u8]);

/// All targets by name, for the regression test and the seed generator.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("attestation_doc", attestation_doc),
    ("kms_envelope", kms_envelope),
    ("kms_response", kms_response),
    ("peer_envelope", peer_envelope),
    ("api_request", api_request),
    ("adapter_decode", adapter_decode),
];
