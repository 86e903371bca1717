//! API credentials against a running `cohort-coordinator` (ADR 0017), written as the attacks
//! they stop: an anonymous caller, a forged or tampered signature, an old or replayed call, a
//! revoked or expired credential, a credential reaching beyond its role. Each is refused with
//! its stable code and changes nothing (the audit log is the witness); what is allowed is
//! recorded under the credential that asked.
//!
//! The coordinator runs alone (its nodes' address is closed): nothing here needs an enclave.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coordinator::api::{
    ApiKey, AuditPage, AuthHeader, CredentialInfo, CredentialList, Hex, RegisterCredential, Role,
    signing_bytes,
};
use coordinator::client::ApiClient;
use coordinator::http::ROUTES;
use ed25519_dalek::{Signer, SigningKey};
use http::{Method, Request, header};
use http_body_util::Full;

mod common;
use common::process::Coordinator;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A coordinator whose first admin is `admin` (`--admin-key`), and its URL.
fn start(admin: &ApiKey, extra: &[&str]) -> (Coordinator, String) {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("admin.pub.json");
    std::fs::write(&public, serde_json::to_string(&admin.public()).unwrap()).unwrap();
    let public = public.display().to_string();
    let mut args = vec!["--admin-key", public.as_str()];
    args.extend_from_slice(extra);
    let mut c = Coordinator::start(&args);
    let addr = c.listening_or_exited().unwrap_or_else(|code| {
        panic!("the coordinator exited ({code:?}): {}", c.output());
    });
    // The key file may go once the coordinator has read it.
    drop(dir);
    (c, format!("http://{addr}"))
}

/// A route pattern with its parameter filled in (`credential` for `{credential}`).
fn concrete(pattern: &str, credential: &str) -> String {
    pattern
        .replace("{node}", "0")
        .replace("{key_id}", "k")
        .replace("{idempotency_key}", "i")
        .replace("{credential}", credential)
}

/// Sends `request`; returns the status and the error code (empty for none).
async fn send(api: &ApiClient, request: Request<Full<Bytes>>) -> (u16, String) {
    let (status, body) = api.exchange(request).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    (status.as_u16(), code)
}

/// Calls `path` as `api` is set up to (signed or not); returns status and error code.
async fn call(
    api: &ApiClient,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let (ct, bytes) = match body {
        Some(b) => (Some("application/json"), serde_json::to_vec(b).unwrap()),
        None => (None, Vec::new()),
    };
    let request = api.request(method, path, ct, &[], bytes).unwrap();
    send(api, request).await
}

/// A request to `path` carrying `authorization` as it is.
fn with_header(
    api: &ApiClient,
    method: Method,
    path: &str,
    authorization: &str,
    body: &[u8],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{}{path}", api.base()))
        .header(header::AUTHORIZATION, authorization);
    if !body.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder.body(Full::new(Bytes::from(body.to_vec()))).unwrap()
}

/// A header under a name nobody registered.
fn unknown_header(key: &SigningKey) -> String {
    signed_header("nobody", key, "POST", "/v1/credentials", b"x", now())
}

/// The header of a call by `credential` signed with `key` at `timestamp`.
fn signed_header(
    credential: &str,
    key: &SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    let nonce: [u8; 16] = rand::random();
    let bytes = signing_bytes(credential, method, path, None, body, timestamp, &nonce);
    AuthHeader {
        credential: credential.into(),
        timestamp,
        nonce,
        signature: key.sign(&bytes).to_bytes(),
    }
    .render()
}

async fn audit_len(admin: &ApiClient) -> usize {
    let page: AuditPage = admin.get("/v1/audit?limit=1000").await.unwrap();
    page.records.len()
}

async fn register(
    admin: &ApiClient,
    key: &ApiKey,
    role: Role,
    expires: Option<u64>,
) -> CredentialInfo {
    let p = key.public();
    admin
        .post(
            "/v1/credentials",
            &RegisterCredential {
                credential: p.credential,
                public_key: p.public_key,
                role,
                expires,
            },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_anonymous_forged_stale_replayed_revoked_and_underprivileged_calls() {
    let admin_key = ApiKey::generate("admin").unwrap();
    let (coordinator, base) = start(&admin_key, &[]);
    let admin = ApiClient::new(&base).with_key(admin_key.clone());
    let anonymous = ApiClient::new(&base);

    // The bootstrap admin is registered, with its audit record.
    let list: CredentialList = admin.get("/v1/credentials").await.unwrap();
    assert_eq!(list.credentials.len(), 1);
    assert_eq!(list.credentials[0].role, Role::Admin);
    assert_eq!(list.credentials[0].registered_by, "bootstrap");
    let records = audit_len(&admin).await;
    assert_eq!(records, 1);

    // Health, readiness and metrics answer anyone; every other route refuses an anonymous
    // caller with 401 `unauthenticated` and a WWW-Authenticate challenge, before its body is
    // read or anything is done.
    for (path, status) in [("/healthz", 200), ("/readyz", 503), ("/metrics", 200)] {
        assert_eq!(
            call(&anonymous, Method::GET, path, None).await.0,
            status,
            "{path}"
        );
    }
    for (method, pattern) in ROUTES {
        if matches!(*pattern, "/healthz" | "/readyz" | "/metrics") {
            continue;
        }
        let path = concrete(pattern, "admin");
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST).then(|| serde_json::json!({}));
        assert_eq!(
            call(&anonymous, method.clone(), &path, body.as_ref()).await,
            (401, "unauthenticated".to_string()),
            "{method} {path}"
        );
    }
    let (status, head) = raw_head(
        &base,
        "GET /v1/keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.contains("\r\nwww-authenticate: cohort-ed25519\r\n"),
        "{head}"
    );
    // A header that is not ours, or not whole, is the same.
    for bad in [
        "Bearer abc",
        "Cohort-Ed25519 credential=admin",
        "Cohort-Ed25519",
    ] {
        let r = with_header(&admin, Method::GET, "/v1/keys", bad, b"");
        assert_eq!(send(&admin, r).await.1, "unauthenticated", "{bad}");
    }

    // Forged: a key the coordinator does not know under the admin's name, an unknown name, a
    // signature over another body (the body swapped after signing), another path.
    let forger = SigningKey::generate(&mut rand::rngs::OsRng);
    let t = now();
    let forged = signed_header("admin", &forger, "GET", "/v1/credentials", b"", t);
    let r = with_header(&admin, Method::GET, "/v1/credentials", &forged, b"");
    assert_eq!(send(&admin, r).await, (401, "bad_credential".into()));
    // ... and a forged call with a body gets the same answer under a name that exists as
    // under one that does not: nothing answered before the signature depends on which names
    // exist.
    let r = with_header(&admin, Method::POST, "/v1/credentials", &forged, b"x");
    assert_eq!(send(&admin, r).await, (401, "bad_credential".into()));
    let r = with_header(
        &admin,
        Method::POST,
        "/v1/credentials",
        &unknown_header(&forger),
        b"x",
    );
    assert_eq!(send(&admin, r).await, (401, "bad_credential".into()));
    // A signed query or Idempotency-Key changed in flight.
    let h = admin_key.authorize("GET", "/v1/audit?limit=1", None, b"", now());
    let r = with_header(&admin, Method::GET, "/v1/audit?limit=1000", &h, b"");
    assert_eq!(send(&admin, r).await.1, "bad_credential");
    let h = admin_key.authorize("POST", "/v1/signatures", Some("mine"), b"{}", now());
    let mut r = with_header(&admin, Method::POST, "/v1/signatures", &h, b"{}");
    r.headers_mut()
        .insert("idempotency-key", "theirs".parse().unwrap());
    assert_eq!(send(&admin, r).await.1, "bad_credential");
    let unknown = signed_header("nobody", &forger, "GET", "/v1/keys", b"", t);
    let r = with_header(&admin, Method::GET, "/v1/keys", &unknown, b"");
    assert_eq!(send(&admin, r).await.1, "bad_credential");
    let evil = ApiKey::generate("evil").unwrap();
    let honest_body = serde_json::to_vec(&RegisterCredential {
        credential: "harmless".into(),
        public_key: evil.public().public_key,
        role: Role::Read,
        expires: None,
    })
    .unwrap();
    let swapped_body = serde_json::to_vec(&RegisterCredential {
        credential: "evil".into(),
        public_key: evil.public().public_key,
        role: Role::Admin,
        expires: None,
    })
    .unwrap();
    let header_value = admin_key.authorize("POST", "/v1/credentials", None, &honest_body, now());
    let r = with_header(
        &admin,
        Method::POST,
        "/v1/credentials",
        &header_value,
        &swapped_body,
    );
    assert_eq!(send(&admin, r).await, (401, "bad_credential".into()));
    let header_value = admin_key.authorize("GET", "/v1/keys", None, b"", now());
    let r = with_header(&admin, Method::GET, "/v1/credentials", &header_value, b"");
    assert_eq!(send(&admin, r).await.1, "bad_credential");

    // Stale: signed two minutes ago, or two minutes ahead.
    for t in [now() - 120, now() + 120] {
        let h = admin_key.authorize("GET", "/v1/keys", None, b"", t);
        let r = with_header(&admin, Method::GET, "/v1/keys", &h, b"");
        assert_eq!(send(&admin, r).await.1, "stale_request");
    }

    // Replayed: the same signed call twice; the second is refused.
    let h = admin_key.authorize("GET", "/v1/keys", None, b"", now());
    let r = with_header(&admin, Method::GET, "/v1/keys", &h, b"");
    assert_eq!(send(&admin, r).await.0, 200);
    let r = with_header(&admin, Method::GET, "/v1/keys", &h, b"");
    assert_eq!(send(&admin, r).await.1, "replayed");
    // A replayed registration registers nothing.
    let register_body = serde_json::to_vec(&RegisterCredential {
        credential: "once".into(),
        public_key: ApiKey::generate("once").unwrap().public().public_key,
        role: Role::Read,
        expires: None,
    })
    .unwrap();
    let h = admin_key.authorize("POST", "/v1/credentials", None, &register_body, now());
    let r = with_header(&admin, Method::POST, "/v1/credentials", &h, &register_body);
    assert_eq!(send(&admin, r).await.0, 201);
    let r = with_header(&admin, Method::POST, "/v1/credentials", &h, &register_body);
    assert_eq!(send(&admin, r).await.1, "replayed");

    // Nothing refused so far changed anything: the audit log holds the bootstrap and the one
    // registration, both by name.
    let page: AuditPage = admin.get("/v1/audit").await.unwrap();
    assert_eq!(page.records.len(), 2, "{page:?}");
    let registered = &page.records[1].entry;
    assert_eq!(registered.action, "register_credential");
    assert_eq!(registered.credential.as_deref(), Some("admin"));
    assert!(
        registered
            .detail
            .as_deref()
            .unwrap()
            .starts_with("once role read"),
        "{registered:?}"
    );
    let list: CredentialList = admin.get("/v1/credentials").await.unwrap();
    assert!(
        list.credentials
            .iter()
            .all(|c| c.credential != "evil" && c.credential != "harmless")
    );

    // Roles: a reader reads and nothing else; a requester cannot administer.
    let reader_key = ApiKey::generate("reader").unwrap();
    let requester_key = ApiKey::generate("requester").unwrap();
    register(&admin, &reader_key, Role::Read, None).await;
    register(&admin, &requester_key, Role::Request, None).await;
    let reader = ApiClient::new(&base).with_key(reader_key.clone());
    let requester = ApiClient::new(&base).with_key(requester_key.clone());
    assert_eq!(call(&reader, Method::GET, "/v1/keys", None).await.0, 200);
    assert_eq!(call(&reader, Method::GET, "/v1/audit", None).await.0, 200);
    let before = audit_len(&admin).await;
    let body = serde_json::json!({});
    // Every route above a role's reach, for the reader and the requester.
    let mut refused = 0;
    for (method, pattern) in ROUTES {
        let Some(needed) = coordinator::auth::required_role(method, pattern) else {
            continue;
        };
        let path = concrete(pattern, "reader");
        let method: Method = method.parse().unwrap();
        for (client, role) in [(&reader, Role::Read), (&requester, Role::Request)] {
            if role.allows(needed) {
                continue;
            }
            let b = (method == Method::POST).then_some(&body);
            assert_eq!(
                call(client, method.clone(), &path, b).await,
                (403, "forbidden".to_string()),
                "{role} {method} {path}"
            );
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        6 + 13 + 13,
        "read: 6 request routes and 13 admin ones; request: 13"
    );
    // A requester's own call gets past the credential check to the request's own checks.
    assert_eq!(
        call(&requester, Method::POST, "/v1/signatures", Some(&body)).await,
        (400, "malformed_request".to_string())
    );
    assert_eq!(audit_len(&admin).await, before);

    // Registration: names and keys are unique, names well formed and not reserved, keys valid
    // points, ends within range.
    let again = ApiKey::generate("reader").unwrap().public().public_key;
    let identity = Hex({
        let mut k = vec![0u8; 32];
        k[0] = 1;
        k
    });
    for (name, key, expires, code) in [
        ("reader", again.clone(), None, "credential_exists"),
        (
            "reader2",
            reader_key.public().public_key,
            None,
            "credential_exists",
        ),
        ("Bad Name", again.clone(), None, "invalid_request"),
        ("short-key", Hex(vec![1; 31]), None, "invalid_request"),
        ("identity", identity, None, "invalid_request"),
        ("bootstrap", again.clone(), None, "invalid_request"),
        ("far", again.clone(), Some(u64::MAX), "invalid_request"),
    ] {
        let body = RegisterCredential {
            credential: name.into(),
            public_key: key,
            role: Role::Admin,
            expires,
        };
        let e = admin
            .post::<CredentialInfo>("/v1/credentials", &body)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(code), "{name}");
    }

    // A call held open: an admin sends the head of a registration and holds back the body;
    // meanwhile it is revoked; the body then arrives. The registration is refused (the store
    // has the last word), and nothing is registered.
    let second_key = ApiKey::generate("second").unwrap();
    register(&admin, &second_key, Role::Admin, None).await;
    let sneaky = serde_json::to_vec(&RegisterCredential {
        credential: "sneaky".into(),
        public_key: ApiKey::generate("sneaky").unwrap().public().public_key,
        role: Role::Admin,
        expires: None,
    })
    .unwrap();
    let h = second_key.authorize("POST", "/v1/credentials", None, &sneaky, now());
    let head = format!(
        "POST /v1/credentials HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\nauthorization: {h}\r\ncontent-length: {}\r\n\r\n",
        sneaky.len()
    );
    let held = {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&sneaky[..10]).await.unwrap();
        tcp
    };
    let _: CredentialInfo = admin
        .post("/v1/credentials/second/revoke", &())
        .await
        .unwrap();
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = held;
        tcp.write_all(&sneaky[10..]).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("bad_credential"), "{answer}");
    let list: CredentialList = admin.get("/v1/credentials").await.unwrap();
    assert!(list.credentials.iter().all(|c| c.credential != "sneaky"));

    // Revoked: refused at once, like an unknown credential; revoking is idempotent, and the
    // last admin cannot be revoked.
    let revoked: CredentialInfo = admin
        .post("/v1/credentials/reader/revoke", &())
        .await
        .unwrap();
    assert!(revoked.revoked.is_some());
    assert_eq!(
        call(&reader, Method::GET, "/v1/keys", None).await,
        (401, "bad_credential".to_string())
    );
    let _: CredentialInfo = admin
        .post("/v1/credentials/reader/revoke", &())
        .await
        .unwrap();
    let e = admin
        .post::<CredentialInfo>("/v1/credentials/nobody/revoke", &())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    // An admin with an end does not count as the one left: it would leave none once it ends.
    register(
        &admin,
        &ApiKey::generate("temporary").unwrap(),
        Role::Admin,
        Some(now() + 3600),
    )
    .await;
    let e = admin
        .post::<CredentialInfo>("/v1/credentials/admin/revoke", &())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("last_admin"));
    assert_eq!(call(&admin, Method::GET, "/v1/keys", None).await.0, 200);

    // Expired: a credential valid for two more seconds works, then is refused once the
    // coordinator's clock has passed its end (the wait is for the clock, not a race).
    let brief_key = ApiKey::generate("brief").unwrap();
    let ends = now() + 2;
    register(&admin, &brief_key, Role::Read, Some(ends)).await;
    let brief = ApiClient::new(&base).with_key(brief_key);
    assert_eq!(call(&brief, Method::GET, "/v1/keys", None).await.0, 200);
    while now() <= ends + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        call(&brief, Method::GET, "/v1/keys", None).await,
        (401, "credential_expired".to_string())
    );

    // Every change named its credential.
    let page: AuditPage = admin.get("/v1/audit").await.unwrap();
    let actions: Vec<_> = page
        .records
        .iter()
        .map(|r| {
            (
                r.entry.action.as_str(),
                r.entry.credential.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("register_credential", "bootstrap"),
            ("register_credential", "admin"), // once
            ("register_credential", "admin"), // reader
            ("register_credential", "admin"), // requester
            ("register_credential", "admin"), // second
            ("revoke_credential", "admin"),   // second
            ("revoke_credential", "admin"),   // reader (the second revocation changed nothing)
            ("register_credential", "admin"), // temporary
            ("register_credential", "admin"), // brief
        ]
    );
    drop(coordinator);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_key_flag_registers_once_and_refuses_another_key_under_its_name() {
    let admin_key = ApiKey::generate("admin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("c.db").display());
    let (first, base) = start(&admin_key, &["--store", &store]);
    let admin = ApiClient::new(&base).with_key(admin_key.clone());
    assert_eq!(audit_len(&admin).await, 1);
    drop(first);
    // Started again with the same flag: nothing new is registered.
    let (second, base) = start(&admin_key, &["--store", &store]);
    let admin = ApiClient::new(&base).with_key(admin_key.clone());
    assert_eq!(audit_len(&admin).await, 1);
    drop(second);
    // Another key under the same name: the coordinator refuses to start (exit 1), naming why.
    let other = ApiKey::generate("admin").unwrap();
    let public = dir.path().join("other.pub.json");
    std::fs::write(&public, serde_json::to_string(&other.public()).unwrap()).unwrap();
    let mut c = Coordinator::start(&["--store", &store, "--admin-key", public.to_str().unwrap()]);
    assert_eq!(c.listening_or_exited(), Err(Some(1)), "{}", c.output());
    assert!(
        c.output().contains("exists with another public key"),
        "{}",
        c.output()
    );
}

/// Sends a raw HTTP/1.1 request; returns the status and the lowercased head.
async fn raw_head(base: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}
