//! Unit tests of the enclave's request handling (`server.rs`).

use super::*;
use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
use attestation::{Policy, verify};
use std::time::{SystemTime, UNIX_EPOCH};

fn config(nsm: Result<Arc<dyn Nsm>, String>, root: Vec<u8>) -> BootConfig {
    BootConfig {
        nsm,
        sealing: crate::seal::Sealer::new(
            Box::new(crate::seal::UnavailableSealing("test".into())),
            None,
        ),
        root_der: root,
        primes: PrimePool::default(),
        workers: Some(1),
        background: Background::Nice,
    }
}

fn simulated() -> (Enclave, Vec<u8>) {
    let ca = SimulatedCa::generate().unwrap();
    let root = ca.root_der().to_vec();
    let nsm = SimulatedNsm::new(ca, "test-enclave".into(), simulated_pcrs(&[3; 48]));
    (Enclave::boot(config(Ok(Arc::new(nsm)), root.clone())), root)
}

/// A host that opens more than `MAX_CONNECTIONS` connections gets the extra ones closed at
/// once, and the connections already served keep working.
#[test]
fn connections_beyond_the_limit_are_closed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = protocol::Endpoint::Unix(dir.path().join("e.sock"));
    let listener = Listener::bind(&endpoint).unwrap();
    let (enclave, _) = simulated();
    let (stop, stopped) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        run(listener, Arc::new(enclave), move || {
            let _ = stopped.recv();
        })
    });
    let timeout = std::time::Duration::from_secs(10);
    let status = protocol::encode_frame(&EnclaveRequest::Status).unwrap();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut c = transport::connect(&endpoint, timeout).unwrap();
        // Served: each connection answers before the next is opened, so all are counted.
        transport::write_frame(&mut c, &status).unwrap();
        assert!(transport::read_frame(&mut c).unwrap().is_some());
        held.push(c);
    }
    let mut extra = transport::connect(&endpoint, timeout).unwrap();
    let _ = transport::write_frame(&mut extra, &status);
    let mut rest = Vec::new();
    assert_eq!(
        extra.read_to_end(&mut rest).unwrap_or(0),
        0,
        "closed unanswered"
    );
    // A served connection still answers; once some close, new ones are served again.
    transport::write_frame(&mut held[0], &status).unwrap();
    assert!(transport::read_frame(&mut held[0]).unwrap().is_some());
    held.truncate(MAX_CONNECTIONS - 8);
    let deadline = std::time::Instant::now() + timeout;
    let served = loop {
        let mut again = transport::connect(&endpoint, timeout).unwrap();
        if transport::write_frame(&mut again, &status).is_ok()
            && matches!(transport::read_frame(&mut again), Ok(Some(_)))
        {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(served, "a connection was served again once others closed");
    stop.send(()).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn attestation_binds_identity_and_nonce() {
    let (enclave, root) = simulated();
    assert_eq!(enclave.phase(), Phase::Ready);
    let nonce = vec![0x42; 24];
    let EnclaveResponse::Attestation { document } = enclave.handle(EnclaveRequest::Attest {
        nonce: Some(ByteBuf::from(nonce.clone())),
    }) else {
        panic!("expected a document")
    };
    let mut policy = Policy::default().with_root(root).allow_pcr(0, vec![3; 48]);
    policy.nonce = Some(nonce);
    policy.identity = Some(enclave.identity());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let doc = verify(&document, &policy, now).unwrap();
    assert_eq!(doc.identity, Some(enclave.identity()));
}

#[test]
fn boot_failure_is_terminal_and_explained() {
    let enclave = Enclave::boot(config(Err("cannot open /dev/nsm".into()), vec![]));
    assert_eq!(enclave.phase(), Phase::BootFailed);
    let EnclaveResponse::Error(e) = enclave.handle(EnclaveRequest::Attest { nonce: None }) else {
        panic!("expected an error")
    };
    assert_eq!(e.code, ErrorCode::WrongPhase);
    assert!(e.message.contains("/dev/nsm"));
    assert!(matches!(
        enclave.handle(EnclaveRequest::Status),
        EnclaveResponse::Status {
            phase: Phase::BootFailed,
            ..
        }
    ));
    // Its clock too (any phase): what watchers compare with theirs.
    let EnclaveResponse::Clock { time } = enclave.handle(EnclaveRequest::Clock) else {
        panic!("expected the clock")
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(time.abs_diff(now) <= 1, "{time} vs {now}");
}

#[test]
fn bad_payloads_get_typed_errors() {
    let (enclave, _) = simulated();
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (vec![0xff, 0x00], ErrorCode::BadRequest),
        (vec![], ErrorCode::BadRequest),
        // [2, "status"]: a version this build does not speak.
        (
            vec![0x82, 0x02, 0x66, b's', b't', b'a', b't', b'u', b's'],
            ErrorCode::UnsupportedVersion,
        ),
    ];
    for (payload, code) in cases {
        match enclave.handle_payload(&payload) {
            EnclaveResponse::Error(e) => assert_eq!(e.code, code, "{payload:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let long = EnclaveRequest::Attest {
        nonce: Some(ByteBuf::from(vec![0; MAX_NONCE_LEN + 1])),
    };
    assert!(matches!(
        enclave.handle(long),
        EnclaveResponse::Error(EnclaveError {
            code: ErrorCode::BadRequest,
            ..
        })
    ));
}
