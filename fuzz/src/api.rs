//! The `api_request` target: every JSON body the coordinator's API reads, as it reads it
//! (split from `lib.rs`; the shared keys and adapters are the crate root's).

use super::*;

/// Parses a request body the way the coordinator's `http::parse_json` does, with its error.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("bad JSON: {e}")))
}

/// The coordinator's JSON API request bodies, parsed as its HTTP handlers parse them
/// (`serde_json::from_slice` into the route's type; errors become `malformed_request`): the
/// approved genesis, key-creation and signing requests, and the transaction `prepare` and
/// `assemble` bodies. Approved requests convert to their wire form and canonical (signed) bytes
/// and back; `prepare` and `assemble` go through the steps the coordinator takes after finding
/// the key (adapter, path, derived public key, build or assemble), with a fixed key.
pub fn api_request(data: &[u8]) {
    approved::<SignRequestJson>(data);
    approved::<CreateKeyJson>(data);
    approved::<GenesisJson>(data);
    approved::<GenesisV2Json>(data);
    // What POST /v1/cluster/admins reads (issue 20): an approved change of the admin set.
    approved::<coordinator::api::SetAdminsJson>(data);
    // What POST /v1/cluster/images reads (issue 20): an approved change of the accepted images.
    approved::<coordinator::api::AcceptImagesJson>(data);
    // What POST /v1/genesis reads: by version, each with its own errors.
    match parse_body::<GenesisBody>(data) {
        Ok(GenesisBody::V2(g)) => {
            json_round_trip(&g);
            let _ = g.request.to_wire().check();
        }
        Ok(GenesisBody::V1(g)) => json_round_trip(&g),
        Err(e) => error_body(&e),
    }
    match parse_body::<PrepareRequest>(data) {
        Ok(req) => {
            json_round_trip(&req);
            if let Err(e) = prepare(&req) {
                error_body(&e);
            }
        }
        Err(e) => error_body(&e),
    }
    match parse_body::<AssembleRequest>(data) {
        Ok(req) => {
            json_round_trip(&req);
            if let Err(e) = assemble(&req) {
                error_body(&e);
            }
        }
        Err(e) => error_body(&e),
    }
    // What POST /v1/keys/import reads (issue 19): an approved import and sealed dealings.
    match parse_body::<coordinator::api::ImportBody>(data) {
        Ok(body) => {
            json_round_trip(&body);
            let wire = body.import.to_wire();
            let _ = protocol::policy::Canonical::canonical_bytes(&wire.request);
        }
        Err(e) => error_body(&e),
    }
    // What POST /v1/keys/{key_id}/reshare reads (issue 19): an approved resharing.
    match parse_body::<ApprovedJson<coordinator::api::ReshareKeyJson>>(data) {
        Ok(body) => {
            json_round_trip(&body);
            let wire = body.to_wire();
            let _ = protocol::policy::Canonical::canonical_bytes(&wire.request);
        }
        Err(e) => error_body(&e),
    }
    match parse_body::<coordinator::api::RegisterCredential>(data) {
        Ok(req) => json_round_trip(&req),
        Err(e) => error_body(&e),
    }
    // The Authorization header of a signed call (ADR 0017): what parses renders back the same.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(h) = coordinator::api::AuthHeader::parse(text)
    {
        assert_eq!(coordinator::api::AuthHeader::parse(&h.render()), Some(h));
    }
}

fn approved<T>(data: &[u8])
where
    T: Wire + Serialize + DeserializeOwned + PartialEq + Debug,
    T::Wire: Canonical + DeserializeOwned + PartialEq + Debug,
{
    let req = match parse_body::<ApprovedJson<T>>(data) {
        Ok(r) => r,
        Err(e) => return error_body(&e),
    };
    json_round_trip(&req);
    let wire = req.to_wire();
    let canonical = wire.request.canonical_bytes();
    assert!(canonical.starts_with(T::Wire::DOMAIN));
    let back = ApprovedJson::<T>::from_wire(&wire);
    assert_eq!(back.request, req.request);
    assert_eq!(back.approvals, req.approvals);
    // The wire form travels to the enclave in a frame.
    round_trip(&wire);
}

fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_vec(value).expect("API types serialize");
    let back: T = serde_json::from_slice(&json).expect("serialized API types parse");
    assert_eq!(&back, value, "a request changed in a JSON round trip");
}

fn error_body(e: &ApiError) {
    let body = serde_json::to_string(&e.body()).expect("error bodies serialize");
    assert!(body.contains(e.code.as_str()));
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

/// What the coordinator's `sender` finds: the adapter, the checked path, and the key's (derived)
/// public key.
type Sender = (Arc<dyn ChainAdapter>, Vec<u32>, Vec<u8>);

/// The coordinator's `sender`, with the fixed keys standing for the key store.
fn sender(chain: &str, network: Option<&str>, path: Option<&str>) -> Result<Sender, ApiError> {
    let adapter = registry().adapter(chain, network)?;
    let path = match path {
        None => vec![],
        Some(p) => parse_path(p).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?,
    };
    adapter.check_path(&path)?;
    let public_key = match adapter.scheme() {
        Scheme::EcdsaSecp256k1 => {
            coordinator::service::derive_public_key(&ecdsa_public(), &CHAIN_CODE, &path)
                .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?
        }
        Scheme::EddsaEd25519 => {
            if !path.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Ed25519 keys have no derivation paths",
                ));
            }
            eddsa_public()
        }
    };
    Ok((adapter, path, public_key))
}

/// `Coordinator::prepare` without the key store and JSON-RPC.
fn prepare(req: &PrepareRequest) -> Result<(), ApiError> {
    let (adapter, path, public_key) =
        sender(&req.chain, req.network.as_deref(), req.path.as_deref())?;
    let _from = adapter.address(&public_key)?;
    let unsigned = adapter.build(&public_key, &path, &req.intent)?;
    // `build` is `inspect` of the bytes it produced.
    let inspected = adapter
        .inspect(&public_key, &path, &unsigned.tx)
        .expect("a built transaction inspects");
    assert_eq!(inspected, unsigned, "build and inspect disagree");
    Ok(())
}

/// `Coordinator::assemble` without the key store.
fn assemble(req: &AssembleRequest) -> Result<(), ApiError> {
    let (adapter, _, public_key) = sender(&req.chain, req.network.as_deref(), req.path.as_deref())?;
    let signatures: Vec<Vec<u8>> = req.signatures.iter().map(|h| h.0.clone()).collect();
    let signed = adapter.assemble(&public_key, &req.unsigned_tx.0, &signatures)?;
    assert!(adapter.decode(&signed.raw).is_ok());
    Ok(())
}
