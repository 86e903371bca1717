//! The API contract (issue 18): `openapi.json` says what the server enforces, read from both
//! sides. The document's enumerations, versions, lengths, patterns and limits are compared with
//! the code's own (the checks' predicates are run against the document's patterns on probe
//! strings); then a running `cohort-coordinator` is sent, for every operation, requests that the
//! document calls valid (generated from its schemas, one per enum value and `oneOf` branch,
//! with optional parts left out, given and null): every answer must be a status the document
//! lists for that operation, with an error code its description names, and never one that says
//! the server could not read the request (`malformed_request`, `unsupported_media_type`,
//! `payload_too_large`). Each route is also called anonymously (a documented 401 but for the
//! public ones), and `/readyz` answers a documented 503 before genesis.
//!
//! The coordinator runs alone (its nodes' address is closed) and before genesis: nothing here
//! needs an enclave, and the requests are refused by the server's own checks, which is what the
//! test reads.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use coordinator::api::{
    ApiKey, Hex, MAX_IDEMPOTENCY_KEY_LEN, MAX_KEY_ID_LEN, MIN_NONCE_LEN, PresignatureUse, Role,
    parse_path, valid_idempotency_key, valid_key_id, valid_name,
};
use coordinator::auth::required_role;
use coordinator::client::ApiClient;
use coordinator::http::{OPENAPI, ROUTES};
use http::Method;
use protocol::genesis::{
    ClusterId, GENESIS_VERSION, MAX_ADMINS, MAX_NAME_LEN, MAX_NODES, MIN_NODES, PCR_LEN,
};
use protocol::images::{ACCEPT_IMAGES_VERSION, MAX_IMAGES};
use protocol::policy::{
    GENESIS_V1_VERSION, HashFunction, MAX_PATH_LEN, MAX_PAYLOAD_LEN, MAX_PAYLOADS, REQUEST_ID_LEN,
    REQUEST_VERSION, SIGN_REQUEST_VERSION, Scheme,
};
use protocol::{KmsKeyArn, MAX_KMS_KEY_ARN_LEN, MAX_NONCE_LEN};
use serde_json::Value;

mod common;
use common::process::Coordinator;
use common::schema::{Doc, HEX, Optional, Variant, string_ok, upper_bound};

fn doc() -> Doc {
    Doc::parse(OPENAPI)
}

/// The JSON names of `values`, as serde writes them.
fn names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The strings of an `enum`.
fn enumeration(schema: &Value) -> Vec<String> {
    schema["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum in {schema}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

// Every value of the code's enumerations. The matches stop compiling when a variant is added,
// so that it is added here, and then to the document.
fn every_scheme() -> Vec<Scheme> {
    let all = [Scheme::EcdsaSecp256k1, Scheme::EddsaEd25519];
    for s in all {
        match s {
            Scheme::EcdsaSecp256k1 | Scheme::EddsaEd25519 => {}
        }
    }
    all.to_vec()
}

fn every_hash() -> Vec<HashFunction> {
    for h in HashFunction::ALL {
        match h {
            HashFunction::Sha256 | HashFunction::Sha256d | HashFunction::Keccak256 => {}
        }
    }
    HashFunction::ALL.to_vec()
}

fn every_role() -> Vec<Role> {
    let all = [Role::Read, Role::Request, Role::Admin];
    for r in all {
        match r {
            Role::Read | Role::Request | Role::Admin => {}
        }
    }
    all.to_vec()
}

fn every_presignature_use() -> Vec<PresignatureUse> {
    let all = [PresignatureUse::Prefer, PresignatureUse::Never];
    for p in all {
        match p {
            PresignatureUse::Prefer | PresignatureUse::Never => {}
        }
    }
    all.to_vec()
}

/// Each built-in chain with its networks, as the adapters' registry knows them.
fn registry_networks() -> Vec<(String, BTreeSet<String>)> {
    let registry = adapters::Registry::builtin();
    registry
        .chains()
        .into_iter()
        .map(|chain| {
            // The registry names a chain's networks when asked for one it does not have.
            let known = match registry.adapter(&chain, Some("no-such-network")) {
                Err(adapters::AdapterError::UnknownNetwork { known, .. }) => known,
                other => panic!("{chain}: {:?}", other.map(|a| a.network().to_string())),
            };
            let networks = known.split(", ").map(str::to_string).collect();
            (chain, networks)
        })
        .collect()
}

/// Strings around a valid one: every ASCII character (and two others) alone, before and after
/// it, the empty string, and `max` and `max + 1` copies of its first character.
fn probes(valid: &str, max: usize) -> Vec<String> {
    let mut out = vec![String::new(), valid.to_string()];
    let first = valid.chars().next().unwrap();
    out.push(first.to_string().repeat(max));
    out.push(first.to_string().repeat(max + 1));
    for c in (0u8..=127).map(char::from).chain(['é', '\u{2026}']) {
        out.push(c.to_string());
        out.push(format!("{valid}{c}"));
        out.push(format!("{c}{valid}"));
    }
    out
}

/// Asserts that the document's string schema and the code's check agree on every probe.
fn agree(what: &str, schema: &Value, code: impl Fn(&str) -> bool, probes: &[String]) {
    for p in probes {
        assert_eq!(
            string_ok(schema, p),
            code(p),
            "{what}: the document ({schema}) and the server disagree on `{p}`"
        );
    }
}

/// The parameter `name` of the operation `method path`, its schema resolved.
fn parameter<'a>(d: &'a Doc, method: &str, path: &str, name: &str) -> &'a Value {
    let op = &d.root["paths"][path][method];
    let p = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| d.resolve(p)["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    d.resolve(&d.resolve(p)["schema"])
}

#[test]
fn the_document_declares_the_enumerations_versions_and_limits_the_server_checks() {
    let d = doc();

    // Enumerations: the document's values are the code's, no more and no fewer.
    assert_eq!(enumeration(d.schema("Scheme")), names(&every_scheme()));
    assert_eq!(enumeration(d.schema("HashFunction")), names(&every_hash()));
    assert_eq!(enumeration(d.schema("Role")), names(&every_role()));
    assert_eq!(
        enumeration(d.schema("PresignatureUse")),
        names(&every_presignature_use())
    );
    let registry = registry_networks();
    let chain = d.schema("Chain");
    let chains: Vec<String> = registry.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(enumeration(chain), chains, "chains");
    let documented = chain["x-cohort-networks"].as_object().unwrap();
    assert_eq!(documented.len(), registry.len(), "x-cohort-networks");
    let mut every_network = BTreeSet::new();
    for (chain, networks) in &registry {
        let listed: BTreeSet<String> = enumeration(&serde_json::json!({
            "enum": documented[chain]
        }))
        .into_iter()
        .collect();
        assert_eq!(&listed, networks, "the networks of {chain}");
        every_network.extend(networks.iter().cloned());
    }
    let network: BTreeSet<String> = enumeration(d.schema("Network")).into_iter().collect();
    assert_eq!(network, every_network, "networks");

    // Request versions: the one each request type is accepted in.
    for (schema, version) in [
        ("CreateKey", REQUEST_VERSION),
        ("SignRequest", SIGN_REQUEST_VERSION),
        ("GenesisV2", GENESIS_VERSION),
        ("Genesis", GENESIS_V1_VERSION),
        ("AcceptImages", ACCEPT_IMAGES_VERSION),
    ] {
        assert_eq!(
            d.schema(schema)["properties"]["v"]["enum"],
            serde_json::json!([version]),
            "{schema}.v"
        );
    }

    // Limits, as the code's constants.
    let hex_len = |bytes: usize| (2 * bytes) as u64;
    let s = "/components/schemas";
    let limits: Vec<(String, &str, u64)> = vec![
        (
            format!("{s}/SignRequest/properties/payloads"),
            "minItems",
            1,
        ),
        (
            format!("{s}/SignRequest/properties/payloads"),
            "maxItems",
            MAX_PAYLOADS as u64,
        ),
        (
            format!("{s}/SignPayload/oneOf/0"),
            "maxLength",
            hex_len(MAX_PAYLOAD_LEN),
        ),
        (
            format!("{s}/SignPayload/oneOf/1/properties/preimage"),
            "maxLength",
            hex_len(MAX_PAYLOAD_LEN),
        ),
        (
            format!("{s}/SignRequest/properties/path"),
            "maxItems",
            MAX_PATH_LEN as u64,
        ),
        (
            format!("{s}/SignRequest/properties/path/items"),
            "maximum",
            (1 << 31) - 1,
        ),
        (
            format!("{s}/SignRequest/properties/request_id"),
            "minLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (
            format!("{s}/SignRequest/properties/request_id"),
            "maxLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (
            format!("{s}/CreateKey/properties/request_id"),
            "minLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (
            format!("{s}/CreateKey/properties/request_id"),
            "maxLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (format!("{s}/CreateKey/properties/threshold"), "minimum", 2),
        (format!("{s}/Policy/properties/approvers"), "minItems", 1),
        (
            format!("{s}/Policy/properties/approvals_needed"),
            "minimum",
            1,
        ),
        (
            format!("{s}/Approval/properties/approver"),
            "minLength",
            hex_len(32),
        ),
        (
            format!("{s}/Approval/properties/approver"),
            "maxLength",
            hex_len(32),
        ),
        (
            format!("{s}/Approval/properties/signature"),
            "minLength",
            hex_len(64),
        ),
        (
            format!("{s}/Approval/properties/signature"),
            "maxLength",
            hex_len(64),
        ),
        (format!("{s}/GenesisV2/properties/name"), "minLength", 1),
        (
            format!("{s}/GenesisV2/properties/name"),
            "maxLength",
            MAX_NAME_LEN as u64,
        ),
        (format!("{s}/AcceptImages/properties/images"), "minItems", 1),
        (
            format!("{s}/AcceptImages/properties/images"),
            "maxItems",
            MAX_IMAGES as u64,
        ),
        (
            format!("{s}/AcceptImages/properties/request_id"),
            "minLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (
            format!("{s}/AcceptImages/properties/request_id"),
            "maxLength",
            hex_len(REQUEST_ID_LEN),
        ),
        (format!("{s}/GenesisV2/properties/admins"), "minItems", 1),
        (
            format!("{s}/GenesisV2/properties/admins"),
            "maxItems",
            MAX_ADMINS as u64,
        ),
        (
            format!("{s}/GenesisV2/properties/admin_quorum"),
            "minimum",
            1,
        ),
        (
            format!("{s}/GenesisV2/properties/roster"),
            "minItems",
            MIN_NODES as u64,
        ),
        (
            format!("{s}/GenesisV2/properties/roster"),
            "maxItems",
            MAX_NODES as u64,
        ),
        (
            format!("{s}/RosterEntry/properties/node_key"),
            "minLength",
            hex_len(32),
        ),
        (
            format!("{s}/RosterEntry/properties/node_key"),
            "maxLength",
            hex_len(32),
        ),
        (
            format!("{s}/AttestRequest/properties/nonce"),
            "minLength",
            hex_len(MIN_NONCE_LEN),
        ),
        (
            format!("{s}/AttestRequest/properties/nonce"),
            "maxLength",
            hex_len(MAX_NONCE_LEN),
        ),
        (
            format!("{s}/KmsKeyArn"),
            "maxLength",
            MAX_KMS_KEY_ARN_LEN as u64,
        ),
        (
            format!("{s}/IdempotencyKey"),
            "maxLength",
            MAX_IDEMPOTENCY_KEY_LEN as u64,
        ),
        (format!("{s}/KeyId"), "maxLength", MAX_KEY_ID_LEN as u64),
        (
            format!("{s}/AssembleRequest/properties/signatures/items"),
            "minLength",
            hex_len(64),
        ),
        (
            format!("{s}/AssembleRequest/properties/signatures/items"),
            "maxLength",
            hex_len(64),
        ),
    ];
    let pcrs = [
        "Image/properties/pcr0",
        "Image/properties/pcr1",
        "Image/properties/pcr2",
    ]
    .into_iter()
    .chain(["RosterEntry/properties/pcr3", "RosterEntry/properties/pcr4"]);
    let limits = limits.into_iter().chain(pcrs.flat_map(|p| {
        [
            (format!("{s}/{p}"), "minLength", hex_len(PCR_LEN)),
            (format!("{s}/{p}"), "maxLength", hex_len(PCR_LEN)),
        ]
    }));
    for (pointer, key, value) in limits {
        assert_eq!(d.at(&pointer)[key], value, "{pointer} {key}");
    }

    // Patterns, against the server's checks: the ones its handlers make (idempotency keys, key
    // ids, credential names) and the ones its decoders make (hex, cluster ids, KMS key ARNs).
    let idem = d.schema("IdempotencyKey");
    agree(
        "Idempotency-Key",
        idem,
        valid_idempotency_key,
        &probes("a-1._:Z", 128),
    );
    for (method, path, name) in [
        ("post", "/v1/signatures", "Idempotency-Key"),
        ("get", "/v1/signatures/{idempotency_key}", "idempotency_key"),
    ] {
        assert_eq!(
            parameter(&d, method, path, name),
            idem,
            "{method} {path} {name}"
        );
    }
    let key_id = d.schema("KeyId");
    agree("key id", key_id, valid_key_id, &probes("k-1._Z", 128));
    for (method, path) in [
        ("get", "/v1/keys/{key_id}"),
        ("get", "/v1/keys/{key_id}/address"),
    ] {
        assert_eq!(
            parameter(&d, method, path, "key_id"),
            key_id,
            "{method} {path}"
        );
    }
    for schema in [
        "CreateKey",
        "SignRequest",
        "PrepareRequest",
        "AssembleRequest",
    ] {
        assert_eq!(
            d.resolve(&d.schema(schema)["properties"]["key_id"]),
            key_id,
            "{schema}"
        );
    }
    let credential = d.schema("CredentialName");
    agree(
        "credential name",
        credential,
        valid_name,
        &probes("ops-1._", 64),
    );
    assert_eq!(
        d.resolve(&d.schema("RegisterCredential")["properties"]["credential"]),
        credential
    );
    assert_eq!(
        parameter(
            &d,
            "post",
            "/v1/credentials/{credential}/revoke",
            "credential"
        ),
        credential
    );
    let is_hex = |s: &str| serde_json::from_value::<Hex>(Value::from(s)).is_ok();
    agree(
        "hex",
        &serde_json::json!({ "pattern": HEX }),
        is_hex,
        &probes("0aF9", 8),
    );
    let cluster = d.schema("ClusterId");
    agree(
        "cluster id",
        cluster,
        |s| ClusterId::from_hex(s).is_ok(),
        &probes(&"0aF9".repeat(16), 64),
    );
    let arn = d.schema("KmsKeyArn");
    let valid_arn = arn["example"].as_str().unwrap();
    let mut arns = probes(valid_arn, MAX_KMS_KEY_ARN_LEN);
    // Region shapes, partitions, accounts and resources; the two region rules the pattern
    // cannot say (no `fips` part, at most 32 characters) are in its description.
    for other in [
        "arn:aws:kms:us-gov-west-1:111122223333:key/abc",
        "arn:aws-cn:kms:cn-north-1:111122223333:key/abc",
        "arn:aws-us-gov:kms:eusc-de-east-1:111122223333:key/A-1",
        "arn:aws:kms:eu-west-10:111122223333:key/abc",
        "arn:aws:kms:eu-west-100:111122223333:key/abc",
        "arn:aws:kms:eu-1:111122223333:key/abc",
        "arn:aws:kms:e-west-1:111122223333:key/abc",
        "arn:aws:kms:europe-west-1:111122223333:key/abc",
        "arn:aws:kms:eu-West-1:111122223333:key/abc",
        "arn:aws:kms:eu--1:111122223333:key/abc",
        "arn:aws:kms:s3:111122223333:key/abc",
        "arn:aws:kms:eu-west-1:11112222333:key/abc",
        "arn:aws:kms:eu-west-1:111122223333:alias/abc",
        "arn:aws:kms:eu-west-1:111122223333:key/",
        "arn:aws:kms:eu-west-1:111122223333:key/a_b",
        "arn:aws:kms:eu-west-1:111122223333:key/a:b",
        "arn:aws:s3:eu-west-1:111122223333:key/abc",
        "arn:aws-eu:kms:eu-west-1:111122223333:key/abc",
        "arn:aws:kms:eu-west-1:111122223333",
    ] {
        arns.push(other.to_string());
    }
    agree("KMS key ARN", arn, |s| KmsKeyArn::parse(s).is_ok(), &arns);
    for schema in ["RosterEntry", "EnrollRequest"] {
        assert_eq!(
            d.resolve(&d.schema(schema)["properties"]["kms_key_arn"]),
            arn,
            "{schema}"
        );
    }
    let path = d.schema("DerivationPath");
    agree(
        "derivation path",
        path,
        |s| parse_path(s).is_ok(),
        &probes("m/0/1", 16),
    );

    // Every integer a request carries is bounded as its type is (a larger one would not parse),
    // and every pattern is anchored.
    for s in d.request_schemas() {
        if s["type"] == "integer" && s.get("enum").is_none() {
            assert!(
                s.get("minimum").is_some() && upper_bound(s).is_some(),
                "an integer without a minimum and a maximum (or format): {s}"
            );
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            assert!(
                p.starts_with('^') && p.ends_with('$'),
                "an unanchored pattern: {p}"
            );
        }
    }

    // Statuses every operation of a kind can answer: an authenticated one 401 and 403 (the
    // credential) and 500 (the credentials are in the store); a POST 413 and 415 (its body is
    // read); one with a body 400.
    for (method, path) in ROUTES {
        let op = &d.root["paths"][path][method.to_lowercase()];
        let mut needed = Vec::new();
        if required_role(method, path).is_some() {
            needed.extend(["401", "403", "500"]);
            if *method == "POST" {
                needed.extend(["413", "415"]);
            }
        }
        if op.get("requestBody").is_some() {
            needed.push("400");
        }
        for status in needed {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
}

/// A request built from the document: path, query, headers and body.
struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// `value` as a path segment or query value (percent-encoded where it must be).
fn encode(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Call {
    /// The request `v` makes of operation `method path`.
    fn of(d: &Doc, path: &str, method: &str, op: &Value, v: Variant) -> Self {
        let mut uri = path.to_string();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = d.resolve(p);
            let name = p["name"].as_str().unwrap();
            let required = p["required"] == true;
            if !required && v.optional == Optional::Omitted {
                continue;
            }
            let value = d.generate(&p["schema"], v);
            match p["in"].as_str().unwrap() {
                "path" => uri = uri.replace(&format!("{{{name}}}"), &encode(&value)),
                "query" => query.push(format!("{name}={}", encode(&value))),
                "header" => headers.push((name.to_string(), value.as_str().unwrap().to_string())),
                other => panic!("a parameter in {other}"),
            }
        }
        assert!(
            !uri.contains('{'),
            "{method} {path}: a path parameter is not documented"
        );
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        let body = op.get("requestBody").and_then(|b| {
            let schema = &b["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{method} {path}: a body that is not JSON"
            );
            let required = b["required"] == true;
            (required || v.optional != Optional::Omitted)
                .then(|| serde_json::to_vec(&d.generate(schema, v)).unwrap())
        });
        Self {
            method: method.to_uppercase().parse().unwrap(),
            path: uri,
            headers,
            body,
        }
    }

    /// Sends it as `api` is set up to (signed or not): the status, the error code (empty for
    /// none) and the body.
    async fn send(&self, api: &ApiClient) -> (u16, String, Value) {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let content_type = self.body.as_ref().map(|_| "application/json");
        let request = api
            .request(
                self.method.clone(),
                &self.path,
                content_type,
                &headers,
                self.body.clone().unwrap_or_default(),
            )
            .unwrap();
        let (status, body) = api.exchange(request).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (status.as_u16(), code, body)
    }
}

/// Why an answer is not one the document lists for `op`, if it is not.
fn undocumented(op: &Value, status: u16, code: &str) -> Option<String> {
    let Some(response) = op["responses"].get(status.to_string()) else {
        return Some(format!("status {status} ({code}) is not documented"));
    };
    let description = response["description"].as_str().unwrap_or_default();
    if !code.is_empty() && !description.contains(&format!("`{code}`")) {
        return Some(format!(
            "{status} `{code}` is not named in the {status} description"
        ));
    }
    // What says "cannot read this": never the answer to a request the document calls valid.
    if [
        "malformed_request",
        "unsupported_media_type",
        "payload_too_large",
    ]
    .contains(&code)
    {
        return Some(format!("a request the document calls valid is {code}"));
    }
    None
}

/// A coordinator whose first admin is `admin`, and its URL.
fn start(admin: &ApiKey) -> (Coordinator, String) {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("admin.pub.json");
    std::fs::write(&public, serde_json::to_string(&admin.public()).unwrap()).unwrap();
    let mut c = Coordinator::start(&["--admin-key", public.to_str().unwrap()]);
    let addr = c
        .listening_or_exited()
        .unwrap_or_else(|code| panic!("the coordinator exited ({code:?}): {}", c.output()));
    (c, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_parses_what_the_document_calls_valid_and_answers_what_it_documents() {
    let d = doc();
    let admin_key = ApiKey::generate("admin").unwrap();
    let (coordinator, base) = start(&admin_key);
    let admin = ApiClient::new(&base).with_key(admin_key);
    let anonymous = ApiClient::new(&base);

    // Before genesis, readiness is a documented 503.
    let variants = Variant::all(d.most_choices());
    let readyz = &d.root["paths"]["/readyz"]["get"];
    let ready = Call::of(&d, "/readyz", "get", readyz, variants[0]);
    let (status, _, body) = ready.send(&anonymous).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("not_ready")),
        "{body}"
    );
    assert_eq!(undocumented(readyz, status, ""), None);

    // The document served is this one.
    let (status, _, served) = Call::of(
        &d,
        "/openapi.json",
        "get",
        &d.root["paths"]["/openapi.json"]["get"],
        variants[0],
    )
    .send(&admin)
    .await;
    assert_eq!((status, &served), (200, &d.root));

    let mut drifts = Vec::new();
    let mut calls = 0;
    for (path, ops) in d.root["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let public = op["security"] == serde_json::json!([]);
            for &v in &variants {
                let call = Call::of(&d, path, method, op, v);
                let (status, code, body) = call.send(&admin).await;
                calls += 1;
                if let Some(why) = undocumented(op, status, &code) {
                    drifts.push(format!("{method} {} ({v:?}): {why}: {body}", call.path));
                }
            }
            // An anonymous call: the public routes answer it, the others with a 401.
            let call = Call::of(&d, path, method, op, variants[0]);
            let (status, code, body) = call.send(&anonymous).await;
            if let Some(why) = undocumented(op, status, &code) {
                drifts.push(format!("anonymous {method} {}: {why}: {body}", call.path));
            }
            if !public && (status, code.as_str()) != (401, "unauthenticated") {
                drifts.push(format!("anonymous {method} {}: {status} {code}", call.path));
            }
        }
    }
    assert_eq!(calls, variants.len() * ROUTES.len());
    assert!(
        drifts.is_empty(),
        "the server and openapi.json disagree:\n{}",
        drifts.join("\n")
    );
    drop(coordinator);
}
