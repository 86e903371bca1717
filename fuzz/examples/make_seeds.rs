//! Writes `fuzz/seeds/<target>/`: small valid inputs, so that fuzzing starts from real
//! structure. Run from anywhere with
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`; the output is
//! deterministic except for `kms_envelope/rsa-2048-spki.der`, which is kept once written.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};

use adapters::{ChainAdapter, Intent, Utxo};
use cohort_fuzz::{
    AdapterCase, MODE_SIGN, PEER_CONTEXT, adapter_cases, ecdsa_key, ecdsa_public, eddsa_key,
    eddsa_public, peer_key,
};
use coordinator::api::{
    ApprovalJson, ApprovedJson, AssembleRequest, CreateKeyJson, GenesisJson, Hex, PolicyJson,
    PrepareRequest, PresignatureUse, SignRequestJson,
};
use ed25519_dalek::Signer as _;
use k256::ecdsa::signature::hazmat::PrehashSigner as _;
use protocol::parent::{KmsOperation, ParentErrorCode, ParentRequest, ParentResponse};
use protocol::peer::{PEER_ENVELOPE_VERSION, PeerEnvelope};
use protocol::policy::{Approval, Approved, Canonical, Genesis, Scheme, SignRequest};
use protocol::session::{Outcome, PeerDocument, SessionKind, SessionUpdate};
use protocol::{EnclaveError, EnclaveRequest, EnclaveResponse, ErrorCode, Phase, encode_frame};
use serde_bytes::ByteBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("seeds").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn copy(target: &str, name: &str, from: &Path) {
    write(target, name, &fs::read(root().join(from)).unwrap());
}

fn buf(b: &[u8]) -> ByteBuf {
    ByteBuf::from(b.to_vec())
}

const SESSION: [u8; 32] = [0x5e; 32];

fn envelope(seq: u32, to: Option<u16>, body: &[u8]) -> PeerEnvelope {
    let mut e = PeerEnvelope {
        v: PEER_ENVELOPE_VERSION,
        session: buf(&SESSION),
        seq,
        from: 1,
        to,
        body: buf(body),
        sig: ByteBuf::new(),
    };
    e.sig = buf(&peer_key().sign(&e.signed_bytes(&PEER_CONTEXT)).to_bytes());
    e
}

fn approver() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x55; 32])
}

fn approve<T: Canonical>(request: T) -> Approved<T> {
    let key = approver();
    let signature = key.sign(&request.canonical_bytes()).to_bytes();
    Approved {
        request,
        approvals: vec![Approval {
            approver: buf(key.verifying_key().as_bytes()),
            signature: buf(&signature),
        }],
    }
}

fn genesis() -> Approved<Genesis> {
    approve(Genesis {
        v: 1,
        cluster: "fuzz".into(),
        nodes: 3,
        admins: vec![buf(approver().verifying_key().as_bytes())],
        admin_quorum: 1,
    })
}

fn sign_request() -> Approved<SignRequest> {
    approve(SignRequest {
        v: protocol::policy::SIGN_REQUEST_VERSION,
        cluster: protocol::genesis::ClusterId([0xc1; 32]),
        key_id: "treasury".into(),
        path: vec![0, 1],
        payloads: vec![
            protocol::policy::Payload::raw([0xd1; 32]),
            protocol::policy::Payload::hashed(
                protocol::policy::HashFunction::Keccak256,
                b"an unsigned EIP-1559 transaction".to_vec(),
            ),
        ],
        request_id: buf(&[0x0e; 16]),
        created: 1_780_315_200,
        expiry: 1_780_315_500,
        policy: 0,
    })
}

fn arn() -> protocol::KmsKeyArn {
    protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/fuzz").unwrap()
}

fn frames() {
    let requests = [
        (
            "attest",
            EnclaveRequest::Attest {
                nonce: Some(buf(&[0xab; 16])),
            },
        ),
        ("status", EnclaveRequest::Status),
        ("enroll", EnclaveRequest::Enroll { kms_key_arn: arn() }),
        (
            "genesis",
            EnclaveRequest::Genesis {
                request: genesis(),
                node: 0,
            },
        ),
        (
            "restore",
            EnclaveRequest::Restore {
                blobs: vec![buf(b"sealed-genesis"), buf(b"sealed-key")],
            },
        ),
        (
            "admit-peers",
            EnclaveRequest::AdmitPeers {
                documents: vec![PeerDocument {
                    node: 1,
                    document: buf(&[0xd2, 0x84, 0x44, 0xa1]),
                }],
            },
        ),
        (
            "start-sign",
            EnclaveRequest::StartSession {
                session: buf(&SESSION),
                participants: vec![0, 2],
                kind: SessionKind::Sign {
                    request: sign_request(),
                    payload: 0,
                    presignature: Some(buf(&[0x77; 32])),
                },
            },
        ),
        (
            "start-presign",
            EnclaveRequest::StartSession {
                session: buf(&SESSION),
                participants: vec![0, 1],
                kind: SessionKind::Presign {
                    key_id: "treasury".into(),
                    path: vec![0],
                },
            },
        ),
        (
            "deliver",
            EnclaveRequest::Deliver {
                session: buf(&SESSION),
                envelopes: vec![envelope(0, None, b"round 1"), envelope(0, Some(0), b"p2p")],
            },
        ),
        (
            "abort",
            EnclaveRequest::AbortSession {
                session: buf(&SESSION),
            },
        ),
    ];
    for (name, r) in requests {
        write(
            "frame",
            &format!("request-{name}"),
            &encode_frame(&r).unwrap(),
        );
    }
    let responses = [
        (
            "enrolled",
            EnclaveResponse::Enrolled {
                sealed: buf(b"sealed-node-key"),
                node_key: buf(&[0x4e; 32]),
                kms_key_arn: arn(),
            },
        ),
        (
            "status",
            EnclaveResponse::Status {
                phase: Phase::Operational,
                node: Some(1),
                keys: 2,
                presignatures: 5,
                primes_ready: true,
                failure: None,
                identity: Some(ByteBuf::from(vec![3; 32])),
                workers: None,
            },
        ),
        (
            "restored",
            EnclaveResponse::Restored {
                keys: vec!["treasury".into()],
                aux: true,
                resealed: vec![None, Some(buf(b"resealed"))],
            },
        ),
        (
            "peers-admitted",
            EnclaveResponse::PeersAdmitted {
                nodes: vec![1],
                refused: vec![(2, "pcr_mismatch".into())],
            },
        ),
        (
            "session-signed",
            EnclaveResponse::Session(SessionUpdate {
                session: buf(&SESSION),
                outgoing: vec![envelope(3, Some(2), b"last")],
                outcome: Some(Outcome::Signed {
                    signature: buf(&[0x5a; 64]),
                    public_key: buf(&ecdsa_public()),
                }),
            }),
        ),
        (
            "session-key-created",
            EnclaveResponse::Session(SessionUpdate {
                session: buf(&SESSION),
                outgoing: vec![],
                outcome: Some(Outcome::KeyCreated {
                    key_id: "treasury".into(),
                    scheme: Scheme::EcdsaSecp256k1,
                    public_key: buf(&ecdsa_public()),
                    chain_code: Some(buf(&[0x33; 32])),
                    sealed: buf(b"sealed-share"),
                    receipt: buf(&[0x66; 64]),
                }),
            }),
        ),
        (
            "error",
            EnclaveResponse::Error(EnclaveError::new(ErrorCode::Refused, "request expired")),
        ),
    ];
    for (name, r) in responses {
        write(
            "frame",
            &format!("response-{name}"),
            &encode_frame(&r).unwrap(),
        );
    }
    let parent = [
        (
            "parent-sign",
            encode_frame(&ParentRequest::SignKms {
                key: arn(),
                operation: KmsOperation::Decrypt,
                body_sha256: buf(&[0x01; 32]),
            }),
        ),
        (
            "parent-tunnel",
            encode_frame(&ParentRequest::OpenTunnel { key: arn() }),
        ),
        (
            "parent-tunnel-open",
            encode_frame(&ParentResponse::TunnelOpen),
        ),
        (
            "parent-signed",
            encode_frame(&ParentResponse::Signed {
                headers: vec![(
                    "authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=x".into(),
                )],
            }),
        ),
        (
            "parent-error",
            encode_frame(&ParentResponse::Error {
                code: ParentErrorCode::AccessDenied,
                message: "pcr0 not allowed".into(),
            }),
        ),
    ];
    for (name, f) in parent {
        write("frame", name, &f.unwrap());
    }
}

fn attestation() {
    let v = "../tests/vectors/attestation";
    for name in [
        "valid.cose",
        "forged-leaf.cose",
        "user-data-mismatch.cose",
        "node-valid.cose",
        "binding-v3.cose",
    ] {
        copy("attestation_doc", name, &Path::new(v).join(name));
    }
    copy(
        "attestation_doc",
        "aws-nitro-debug-2022-11-16.cose",
        &Path::new(v).join("aws/nitro-debug-2022-11-16.cose"),
    );
}

fn kms() {
    let d = Path::new("../attestation/src/testdata");
    copy(
        "kms_envelope",
        "kms-recipient-sample.ber",
        &d.join("kms-recipient-sample.ber"),
    );
    copy(
        "kms_envelope",
        "openssl-envelope.ber",
        &d.join("openssl-envelope.ber"),
    );
    let spki = root().join("seeds/kms_envelope/rsa-2048-spki.der");
    if !spki.exists() {
        let key = attestation::recipient::EphemeralKey::generate().unwrap();
        write("kms_envelope", "rsa-2048-spki.der", key.public_key_der());
    }
}

/// KMS's HTTP answers as the enclave reads them, each behind the target's two read-size bytes
/// (here 1 + 16·2 and 1 + 6 bytes a read).
fn kms_responses() {
    let answer = |name: &str, bytes: &[u8]| {
        let mut input = vec![2, 6];
        input.extend_from_slice(bytes);
        write("kms_response", name, &input);
    };
    let ok = br#"{"CiphertextBlob":"AQIDBA==","CiphertextForRecipient":"MIAGCSqGSIb3DQEHA6CAMIACAQIxggFr","KeyId":"arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000001"}"#;
    let mut content_length = format!(
        "HTTP/1.1 200 OK\r\nx-amzn-RequestId: 4a5b6c7d-0000-4000-8000-000000000000\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 GMT\r\n\r\n",
        ok.len()
    )
    .into_bytes();
    content_length.extend_from_slice(ok);
    answer("content-length.http", &content_length);
    let denied = br#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::000000000000:assumed-role/parent is not authorized to perform: kms:Decrypt"}"#;
    let mut chunked = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for part in denied.chunks(48) {
        chunked.extend_from_slice(format!("{:x};name=value\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    answer("chunked.http", &chunked);
    // Cut short: the content-length answer without its last 40 bytes.
    answer(
        "truncated.http",
        &content_length[..content_length.len() - 40],
    );
    let mut until_close =
        b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n".to_vec();
    until_close.extend_from_slice(br#"{"__type":"KMSInternalException"}"#);
    answer("until-close.http", &until_close);
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn peers() {
    let broadcast = envelope(0, None, b"commitment");
    let p2p = envelope(1, Some(2), &[0xc7; 48]);
    write("peer_envelope", "broadcast", &cbor(&broadcast));
    write("peer_envelope", "p2p", &cbor(&p2p));
    write(
        "peer_envelope",
        "list",
        &cbor(&vec![broadcast, p2p.clone()]),
    );
    write(
        "peer_envelope",
        "session-update",
        &cbor(&SessionUpdate {
            session: buf(&SESSION),
            outgoing: vec![p2p],
            outcome: None,
        }),
    );
}

/// The address of another key on an adapter's chain (a recipient).
fn recipient(a: &dyn ChainAdapter) -> String {
    match a.scheme() {
        Scheme::EcdsaSecp256k1 => {
            let k = k256::ecdsa::SigningKey::from_bytes(&[0x12u8; 32].into()).unwrap();
            a.address(k.verifying_key().to_encoded_point(true).as_bytes())
                .unwrap()
        }
        Scheme::EddsaEd25519 => a
            .address(
                ed25519_dalek::SigningKey::from_bytes(&[0x23; 32])
                    .verifying_key()
                    .as_bytes(),
            )
            .unwrap(),
    }
}

const BLOCKHASH: &str = "9zrUHnA1nCByPksy3aL8tQ47vqdaG2vnFs4HrxgcZj4F";
const MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const TOKEN: &str = "0xdAC17F958D2ee523a2206206994597C13D831ec7";

/// An intent every adapter of the chain's kind builds.
fn intents(a: &dyn ChainAdapter) -> Vec<(&'static str, Intent)> {
    let to = Some(recipient(a));
    let utxo = |n: u8, amount| Utxo {
        txid: hex::encode([n; 32]),
        vout: u32::from(n),
        amount,
    };
    match (a.chain(), a.scheme()) {
        ("solana", _) => vec![
            (
                "transfer",
                Intent {
                    to: to.clone(),
                    amount: Some("1500000".into()),
                    recent_blockhash: Some(BLOCKHASH.into()),
                    ..Intent::default()
                },
            ),
            (
                "token",
                Intent {
                    to,
                    amount: Some("2500".into()),
                    token: Some(MINT.into()),
                    decimals: Some(6),
                    recent_blockhash: Some(BLOCKHASH.into()),
                    ..Intent::default()
                },
            ),
        ],
        ("bitcoin" | "litecoin", _) => vec![(
            "utxos",
            Intent {
                to,
                amount: Some("50000".into()),
                utxos: Some(vec![utxo(1, 30_000), utxo(2, 40_000)]),
                fee_rate: Some(3),
                ..Intent::default()
            },
        )],
        _ => vec![
            (
                "eip1559",
                Intent {
                    to: to.clone(),
                    amount: Some("1000000000000000".into()),
                    nonce: Some(7),
                    max_fee_per_gas: Some("30000000000".into()),
                    max_priority_fee_per_gas: Some("1000000000".into()),
                    ..Intent::default()
                },
            ),
            (
                "legacy-token",
                Intent {
                    to,
                    amount: Some("1000000".into()),
                    token: Some(TOKEN.into()),
                    nonce: Some(8),
                    gas_price: Some("20000000000".into()),
                    ..Intent::default()
                },
            ),
        ],
    }
}

fn public_key(a: &dyn ChainAdapter) -> Vec<u8> {
    match a.scheme() {
        Scheme::EcdsaSecp256k1 => ecdsa_public(),
        Scheme::EddsaEd25519 => eddsa_public(),
    }
}

fn sign(unsigned: &adapters::Unsigned) -> Vec<Vec<u8>> {
    unsigned
        .payloads
        .iter()
        .map(|p| match p.scheme {
            Scheme::EcdsaSecp256k1 => {
                let s: k256::ecdsa::Signature =
                    ecdsa_key().sign_prehash(&p.signed_bytes()).unwrap();
                s.to_bytes().to_vec()
            }
            Scheme::EddsaEd25519 => eddsa_key().sign(&p.data).to_bytes().to_vec(),
        })
        .collect()
}

fn adapters_seeds() {
    for (index, AdapterCase { adapter, path }) in adapter_cases().iter().enumerate() {
        let a = adapter.as_ref();
        let pk = public_key(a);
        let selector = u8::try_from(index).unwrap();
        for (kind, intent) in intents(a) {
            let unsigned = a
                .build(&pk, path, &intent)
                .unwrap_or_else(|e| panic!("{} {}: {e}", a.chain(), a.network()));
            let signed = a.assemble(&pk, &unsigned.tx, &sign(&unsigned)).unwrap();
            let name = format!("{}-{}-{kind}", a.chain(), a.network());
            let mut input = vec![selector, MODE_SIGN];
            input.extend_from_slice(&unsigned.tx);
            write("adapter_decode", &format!("{name}-unsigned"), &input);
            let mut input = vec![selector, 0];
            input.extend_from_slice(&signed.raw);
            write("adapter_decode", &format!("{name}-signed"), &input);
        }
    }
}

fn api() {
    let sign = sign_request();
    let body = ApprovedJson {
        presignature: Some(PresignatureUse::Prefer),
        ..ApprovedJson::<SignRequestJson>::from_wire(&sign)
    };
    write("api_request", "sign", &serde_json::to_vec(&body).unwrap());
    let create = ApprovedJson {
        request: CreateKeyJson {
            v: protocol::policy::REQUEST_VERSION,
            cluster: coordinator::api::ClusterHex(protocol::genesis::ClusterId([0xc1; 32])),
            key_id: "treasury".into(),
            scheme: Scheme::EcdsaSecp256k1,
            threshold: 2,
            policy: PolicyJson {
                approvers: vec![Hex(approver().verifying_key().to_bytes().to_vec())],
                approvals_needed: 1,
            },
            request_id: Hex(vec![0x0f; 16]),
            created: 1_780_315_200,
            expiry: 1_780_315_500,
            admins: 0,
            roster: 0,
        },
        approvals: vec![ApprovalJson {
            approver: Hex(approver().verifying_key().to_bytes().to_vec()),
            signature: Hex(vec![0x99; 64]),
        }],
        presignature: None,
    };
    write(
        "api_request",
        "create-key",
        &serde_json::to_vec(&create).unwrap(),
    );
    let genesis = ApprovedJson::<GenesisJson>::from_wire(&genesis());
    write(
        "api_request",
        "genesis",
        &serde_json::to_vec(&genesis).unwrap(),
    );
    let node = |i: u8| coordinator::api::RosterEntryJson {
        node_key: Hex(vec![0x40 + i; 32]),
        kms_key_arn: protocol::KmsKeyArn::parse(&format!(
            "arn:aws:kms:eu-west-1:111122223333:key/fuzz-{i}"
        ))
        .unwrap(),
        pcr3: (i == 0).then(|| Hex(vec![0x33; 48])),
        pcr4: None,
    };
    let genesis_v2 = ApprovedJson {
        request: coordinator::api::GenesisV2Json {
            v: protocol::genesis::GENESIS_VERSION,
            name: "fuzz".into(),
            admins: vec![Hex(approver().verifying_key().to_bytes().to_vec())],
            admin_quorum: 1,
            image: coordinator::api::ImageJson {
                pcr0: Hex(vec![0x10; 48]),
                pcr1: Hex(vec![0x11; 48]),
                pcr2: Hex(vec![0x12; 48]),
            },
            roster: vec![node(0), node(1)],
        },
        approvals: vec![ApprovalJson {
            approver: Hex(approver().verifying_key().to_bytes().to_vec()),
            signature: Hex(vec![0x99; 64]),
        }],
        presignature: None,
    };
    write(
        "api_request",
        "genesis-v2",
        &serde_json::to_vec(&genesis_v2).unwrap(),
    );

    let registry = adapters::Registry::builtin();
    let cases = [
        ("bitcoin", "regtest", Some("m/1/0"), 0),
        ("ethereum", "sepolia", None, 0),
        ("polygon", "mainnet", Some("m/0/3"), 1),
        ("solana", "devnet", None, 1),
    ];
    for (chain, network, path, which) in cases {
        let a = registry.adapter(chain, Some(network)).unwrap();
        let (_, intent) = intents(a.as_ref()).swap_remove(which);
        let prepare = PrepareRequest {
            key_id: "treasury".into(),
            chain: chain.into(),
            network: Some(network.into()),
            path: path.map(str::to_string),
            intent: intent.clone(),
        };
        write(
            "api_request",
            &format!("prepare-{chain}"),
            &serde_json::to_vec(&prepare).unwrap(),
        );
        // Assembly with the key itself (path `m`), whose private half is known here.
        if path.is_none() {
            let pk = public_key(a.as_ref());
            let unsigned = a.build(&pk, &[], &intent).unwrap();
            let assemble = AssembleRequest {
                key_id: "treasury".into(),
                chain: chain.into(),
                network: Some(network.into()),
                path: None,
                unsigned_tx: Hex(unsigned.tx.clone()),
                signatures: self::sign(&unsigned).into_iter().map(Hex).collect(),
            };
            write(
                "api_request",
                &format!("assemble-{chain}"),
                &serde_json::to_vec(&assemble).unwrap(),
            );
        }
    }
    // `to_wire` is exercised on what parses: keep the sign request's wire form honest.
    assert_eq!(body.to_wire(), sign);
}

fn main() {
    frames();
    attestation();
    kms();
    kms_responses();
    peers();
    adapters_seeds();
    api();
    for (target, run) in cohort_fuzz::TARGETS {
        let dir = root().join("seeds").join(target);
        let mut total = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            total += bytes.len();
            run(&bytes);
        }
        println!("{target}: {total} bytes in {}", dir.display());
    }
}
