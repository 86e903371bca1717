#![doc = include_str!("../README.md")]

pub mod policy;
pub mod server;
pub mod store;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use attestation::Policy;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::policy::{Caller, Decision, KeyPolicy, RequestContext};
use crate::store::{Grant, KeyRecord, KeyStore};

/// A KMS error as the JSON protocol carries it (`__type`, `message`, HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct KmsError {
    /// The exception name (`AccessDeniedException`, `NotFoundException`, ...).
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
    /// HTTP status.
    pub status: u16,
}

impl KmsError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: 400,
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: "KMSInternalException",
            message: message.into(),
            status: 500,
        }
    }
}

const BLOB_MAGIC: &[u8; 5] = b"CKMS\x01";
const BLOB_LEN: usize = BLOB_MAGIC.len() + 36 + 12 + 32 + 16;

/// The stand-in: its keys, the root Recipient documents must chain to, an audit log.
pub struct LocalKms {
    keys: KeyStore,
    region: String,
    recipient_policy: Policy,
    audit: Mutex<Option<std::fs::File>>,
    audit_path: PathBuf,
    /// Access key id → principal ARN (`--principal`); empty: callers are unnamed.
    principals: BTreeMap<String, String>,
}

/// The operations a grant may name (KMS's list for a symmetric encryption key).
const GRANT_OPERATIONS: [&str; 10] = [
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
];

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn field_str<'a>(req: &'a Value, name: &str) -> Result<Option<&'a str>, KmsError> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KmsError::new(
            "SerializationException",
            format!("{name} must be a string"),
        )),
    }
}

fn required<'a>(req: &'a Value, name: &str) -> Result<&'a str, KmsError> {
    field_str(req, name)?.ok_or_else(|| {
        KmsError::new(
            "ValidationException",
            format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

fn blob_field(req: &Value, name: &str) -> Result<Option<Vec<u8>>, KmsError> {
    field_str(req, name)?
        .map(|s| {
            B64.decode(s).map_err(|_| {
                KmsError::new("SerializationException", format!("{name} is not base64"))
            })
        })
        .transpose()
}

/// The request's encryption context (none: empty).
fn encryption_context(req: &Value) -> Result<BTreeMap<String, String>, KmsError> {
    match req.get("EncryptionContext") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().ok_or_else(|| {
                    KmsError::new(
                        "SerializationException",
                        "EncryptionContext values are strings",
                    )
                })?;
                Ok((k.clone(), v.to_string()))
            })
            .collect(),
        Some(_) => Err(KmsError::new(
            "SerializationException",
            "EncryptionContext is a map",
        )),
    }
}

/// The encryption context as associated data: sorted `key=value` lines.
fn context_aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in context {
        out.extend_from_slice(format!("{}={}\n", k.len(), k).as_bytes());
        out.extend_from_slice(format!("{}={}\n", v.len(), v).as_bytes());
    }
    out
}

/// A verified Recipient: the PCRs of its document and its RSA public key.
struct Recipient {
    module_id: String,
    pcrs: BTreeMap<usize, Vec<u8>>,
    public_key: Vec<u8>,
}

impl LocalKms {
    /// A stand-in keeping its keys in `data_dir`, accepting Recipient documents that chain to
    /// `root_der` and are at most `max_age` old.
    pub fn open(
        data_dir: &Path,
        region: &str,
        root_der: Vec<u8>,
        max_age: Duration,
    ) -> std::io::Result<Self> {
        let keys = KeyStore::open(data_dir, region)?;
        let mut recipient_policy = Policy::default().with_root(root_der);
        recipient_policy.max_age = Some(max_age);
        // PCRs are the key policy's business; debug-mode documents reach it too (their PCRs
        // are zero, which no generated policy allows).
        recipient_policy.allow_debug = true;
        Ok(Self {
            keys,
            region: region.to_string(),
            recipient_policy,
            audit: Mutex::new(None),
            audit_path: data_dir.join("audit.jsonl"),
            principals: BTreeMap::new(),
        })
    }

    /// The same stand-in naming callers: `principals` maps access key ids to principal ARNs.
    /// With none (the default), every caller is [`Caller::Unnamed`] and matches every
    /// `Principal`; with some, a request signed with another access key id is refused.
    pub fn with_principals(mut self, principals: BTreeMap<String, String>) -> Self {
        self.principals = principals;
        self
    }

    /// The caller of a request signed with `access_key_id` (from its SigV4 `Credential`).
    pub fn caller(&self, access_key_id: Option<&str>) -> Result<Caller, KmsError> {
        if self.principals.is_empty() {
            return Ok(Caller::Unnamed);
        }
        access_key_id
            .and_then(|id| self.principals.get(id))
            .map(|arn| Caller::Principal(arn.clone()))
            .ok_or_else(|| {
                KmsError::new(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            })
    }

    /// The region of this stand-in's keys.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Answers one JSON-protocol request (`X-Amz-Target: TrentService.<operation>`) of an
    /// unnamed caller.
    pub fn handle(&self, operation: &str, request: &Value) -> Result<Value, KmsError> {
        self.handle_as(operation, request, &Caller::Unnamed)
    }

    /// Answers one JSON-protocol request of `caller`.
    pub fn handle_as(
        &self,
        operation: &str,
        request: &Value,
        caller: &Caller,
    ) -> Result<Value, KmsError> {
        if !request.is_object() {
            return Err(KmsError::new(
                "SerializationException",
                "the request body is a JSON object",
            ));
        }
        let result = match operation {
            "CreateKey" => self.create_key(request, caller),
            "DescribeKey" => self.describe_key(request, caller),
            "GetKeyPolicy" => self.get_key_policy(request, caller),
            "PutKeyPolicy" => self.put_key_policy(request, caller),
            "CreateGrant" => self.create_grant(request, caller),
            "GenerateDataKey" => self.generate_data_key(request, caller),
            "Decrypt" => self.decrypt(request, caller),
            other => Err(KmsError::new(
                "UnknownOperationException",
                format!("operation {other} is not supported by the local KMS stand-in"),
            )),
        };
        if let Err(e) = &result {
            self.audit(json!({"operation": operation, "caller": caller.arn(), "error": e.kind, "message": e.message}));
        }
        result
    }

    fn audit(&self, mut event: Value) {
        event["time_ms"] = json!(now().as_millis() as u64);
        let mut file = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            *file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.audit_path)
                .ok();
        }
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{event}");
        }
    }

    fn key(&self, request: &Value) -> Result<KeyRecord, KmsError> {
        let key_id = required(request, "KeyId")?;
        self.keys
            .get(key_id)
            .map_err(KmsError::internal)?
            .ok_or_else(|| {
                KmsError::new(
                    "NotFoundException",
                    format!("Key '{key_id}' does not exist"),
                )
            })
    }

    /// The key policy's verdict on `action` by `caller` with `recipient` (verified) and the
    /// encryption context `context` (empty for operations without one). An explicit deny wins;
    /// otherwise an allowing statement or one of the key's grants to the caller for the
    /// operation allows it, as at KMS.
    fn authorize(
        &self,
        key: &KeyRecord,
        action: &str,
        caller: &Caller,
        recipient: Option<&Recipient>,
        context: &BTreeMap<String, String>,
    ) -> Result<(), KmsError> {
        let policy = KeyPolicy::parse(&key.policy).map_err(KmsError::internal)?;
        let request = RequestContext::new(action, recipient.map(|r| &r.pcrs))
            .by(caller.clone())
            .with_encryption_context(context)
            .map_err(|e| KmsError::new("ValidationException", e))?;
        let mut decision = policy.evaluate(&request);
        let operation = action.strip_prefix("kms:").unwrap_or(action);
        let grant = (decision == Decision::ImplicitDeny)
            .then(|| {
                key.grants
                    .iter()
                    .find(|g| caller.is(&g.grantee) && g.operations.iter().any(|o| o == operation))
            })
            .flatten();
        if grant.is_some() {
            decision = Decision::Allow;
        }
        self.audit(json!({
            "operation": action,
            "key_id": key.key_id,
            "caller": caller.arn(),
            "recipient": recipient.map(|r| json!({
                "module_id": r.module_id,
                "pcr0": r.pcrs.get(&0).map(hex::encode),
            })),
            // CloudTrail shows the encryption context of every cryptographic call too.
            "encryption_context": context,
            "decision": if decision == Decision::Allow { "allow" } else { "deny" },
            "statement": match &decision {
                Decision::ExplicitDeny(sid) => json!(sid),
                _ => Value::Null,
            },
            "grant": grant.map(|g| g.grant_id.clone()),
        }));
        let why = match decision {
            Decision::Allow => return Ok(()),
            Decision::ExplicitDeny(sid) => {
                format!("with an explicit deny in the key policy ({sid})")
            }
            Decision::ImplicitDeny => "because no resource-based policy allows the action".into(),
        };
        let user = caller.arn().map_or_else(
            || format!("arn:aws:sts::{}:assumed-role/parent", store::ACCOUNT),
            str::to_string,
        );
        Err(KmsError::new(
            "AccessDeniedException",
            format!(
                "User: {user} is not authorized to perform: {action} on resource: {} {why}",
                key.arn
            ),
        ))
    }

    fn recipient(&self, request: &Value) -> Result<Option<Recipient>, KmsError> {
        let Some(r) = request.get("Recipient").filter(|r| !r.is_null()) else {
            return Ok(None);
        };
        match field_str(r, "KeyEncryptionAlgorithm")? {
            Some("RSAES_OAEP_SHA_256") => {}
            other => {
                return Err(KmsError::new(
                    "ValidationException",
                    format!("Recipient KeyEncryptionAlgorithm {other:?} is not RSAES_OAEP_SHA_256"),
                ));
            }
        }
        let document = blob_field(r, "AttestationDocument")?.ok_or_else(|| {
            KmsError::new(
                "ValidationException",
                "Recipient has no AttestationDocument",
            )
        })?;
        let verified =
            attestation::verify(&document, &self.recipient_policy, now()).map_err(|e| {
                KmsError::new(
                    "ValidationException",
                    format!("the Recipient attestation document is not valid: {e}"),
                )
            })?;
        let public_key = verified.public_key.ok_or_else(|| {
            KmsError::new(
                "ValidationException",
                "the Recipient attestation document carries no public key",
            )
        })?;
        attestation::recipient::check_public_key(&public_key).map_err(|e| {
            KmsError::new(
                "ValidationException",
                format!("the Recipient attestation document's public key: {e}"),
            )
        })?;
        Ok(Some(Recipient {
            module_id: verified.module_id,
            pcrs: verified.pcrs,
            public_key,
        }))
    }

    fn metadata(&self, key: &KeyRecord) -> Value {
        json!({
            "AWSAccountId": store::ACCOUNT,
            "KeyId": key.key_id,
            "Arn": key.arn,
            "CreationDate": key.created,
            "Enabled": true,
            "Description": key.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": false,
        })
    }

    fn create_key(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        for (field, allowed) in [
            ("KeySpec", "SYMMETRIC_DEFAULT"),
            ("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
            ("KeyUsage", "ENCRYPT_DECRYPT"),
            ("Origin", "AWS_KMS"),
        ] {
            if let Some(v) = field_str(request, field)?
                && v != allowed
            {
                return Err(KmsError::new(
                    "UnsupportedOperationException",
                    format!("the local KMS stand-in makes {allowed} keys only, not {field} {v}"),
                ));
            }
        }
        let default_policy = json!({
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", store::ACCOUNT)},
                "Action": "kms:*", "Resource": "*"}]
        })
        .to_string();
        let policy = field_str(request, "Policy")?.map_or(default_policy, str::to_string);
        store::check_policy(&policy)
            .map_err(|e| KmsError::new("MalformedPolicyDocumentException", e))?;
        let description = field_str(request, "Description")?.unwrap_or("");
        let key = self
            .keys
            .create(description, &policy)
            .map_err(KmsError::internal)?;
        self.audit(
            json!({"operation": "kms:CreateKey", "key_id": key.key_id, "caller": caller.arn()}),
        );
        Ok(json!({"KeyMetadata": self.metadata(&key)}))
    }

    fn describe_key(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let key = self.key(request)?;
        self.authorize(&key, "kms:DescribeKey", caller, None, &BTreeMap::new())?;
        Ok(json!({"KeyMetadata": self.metadata(&key)}))
    }

    fn get_key_policy(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let key = self.key(request)?;
        self.authorize(&key, "kms:GetKeyPolicy", caller, None, &BTreeMap::new())?;
        Ok(json!({"Policy": key.policy, "PolicyName": "default"}))
    }

    fn put_key_policy(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let key = self.key(request)?;
        if let Some(name) = field_str(request, "PolicyName")?
            && name != "default"
        {
            return Err(KmsError::new(
                "ValidationException",
                "PolicyName must be default",
            ));
        }
        let policy = required(request, "Policy")?;
        store::check_policy(policy)
            .map_err(|e| KmsError::new("MalformedPolicyDocumentException", e))?;
        self.authorize(&key, "kms:PutKeyPolicy", caller, None, &BTreeMap::new())?;
        self.keys
            .put_policy(&key, policy)
            .map_err(KmsError::internal)?;
        Ok(json!({}))
    }

    /// `CreateGrant`: `GranteePrincipal` may perform `Operations` on the key. Allowed by the key
    /// policy's `kms:CreateGrant` for the caller (Cohort's node policies deny it to everyone).
    /// Grant constraints and grant tokens are not modelled: a request with them is refused.
    fn create_grant(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let key = self.key(request)?;
        for field in ["Constraints", "GrantTokens", "RetiringPrincipal", "DryRun"] {
            if request.get(field).is_some_and(|v| !v.is_null()) {
                return Err(KmsError::new(
                    "ValidationException",
                    format!("CreateGrant {field} is not supported by the local KMS stand-in"),
                ));
            }
        }
        let grantee = required(request, "GranteePrincipal")?;
        if !grantee.starts_with("arn:") || grantee.len() > 256 {
            return Err(KmsError::new(
                "ValidationException",
                "GranteePrincipal must be an ARN",
            ));
        }
        let operations = match request.get("Operations") {
            Some(Value::Array(ops)) if !ops.is_empty() => ops
                .iter()
                .map(|o| {
                    o.as_str()
                        .filter(|o| GRANT_OPERATIONS.contains(o))
                        .map(str::to_string)
                        .ok_or_else(|| {
                            KmsError::new(
                                "ValidationException",
                                format!("Operations: {o} is not a grant operation"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(KmsError::new(
                    "ValidationException",
                    "Operations must list at least one operation",
                ));
            }
        };
        self.authorize(&key, "kms:CreateGrant", caller, None, &BTreeMap::new())?;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let grant_id = hex::encode(raw);
        self.keys
            .add_grant(
                &key,
                Grant {
                    grant_id: grant_id.clone(),
                    grantee: grantee.to_string(),
                    operations,
                    created_by: caller.arn().map(str::to_string),
                },
            )
            .map_err(KmsError::internal)?;
        self.audit(json!({"operation": "kms:CreateGrant", "key_id": key.key_id,
            "caller": caller.arn(), "grantee": grantee, "grant_id": grant_id}));
        Ok(json!({"GrantId": grant_id, "GrantToken": B64.encode(grant_id.as_bytes())}))
    }

    fn generate_data_key(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let key = self.key(request)?;
        // Data keys for AES-256 only: the ciphertext-blob format holds 32-byte keys.
        match (field_str(request, "KeySpec")?, request.get("NumberOfBytes")) {
            (Some("AES_256"), None) => {}
            (None, Some(n)) if n.as_u64() == Some(32) => {}
            _ => {
                return Err(KmsError::new(
                    "ValidationException",
                    "the local KMS stand-in makes 32-byte data keys only: KeySpec AES_256 or NumberOfBytes 32",
                ));
            }
        }
        let context = encryption_context(request)?;
        let recipient = self.recipient(request)?;
        self.authorize(
            &key,
            "kms:GenerateDataKey",
            caller,
            recipient.as_ref(),
            &context,
        )?;
        let mut plaintext = Zeroizing::new(vec![0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut plaintext);
        let blob = self.wrap(&key, &plaintext, &context_aad(&context))?;
        let mut out = json!({"KeyId": key.arn, "CiphertextBlob": B64.encode(blob)});
        self.answer(&mut out, &plaintext, recipient.as_ref())?;
        Ok(out)
    }

    fn decrypt(&self, request: &Value, caller: &Caller) -> Result<Value, KmsError> {
        let blob = blob_field(request, "CiphertextBlob")?
            .ok_or_else(|| KmsError::new("ValidationException", "CiphertextBlob is required"))?;
        if let Some(a) = field_str(request, "EncryptionAlgorithm")?
            && a != "SYMMETRIC_DEFAULT"
        {
            return Err(KmsError::new(
                "InvalidCiphertextException",
                format!("EncryptionAlgorithm {a} does not apply to a symmetric key"),
            ));
        }
        if blob.len() != BLOB_LEN || !blob.starts_with(BLOB_MAGIC) {
            return Err(KmsError::new(
                "InvalidCiphertextException",
                "the ciphertext is not a ciphertext of this KMS",
            ));
        }
        let blob_key = std::str::from_utf8(&blob[BLOB_MAGIC.len()..BLOB_MAGIC.len() + 36])
            .map_err(|_| {
                KmsError::new("InvalidCiphertextException", "the ciphertext is invalid")
            })?;
        let key = self
            .keys
            .get(blob_key)
            .map_err(KmsError::internal)?
            .ok_or_else(|| {
                KmsError::new("InvalidCiphertextException", "the ciphertext is invalid")
            })?;
        if let Some(asked) = field_str(request, "KeyId")?
            && asked != key.key_id
            && asked != key.arn
        {
            return Err(KmsError::new(
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this operation.",
            ));
        }
        let context = encryption_context(request)?;
        let recipient = self.recipient(request)?;
        self.authorize(&key, "kms:Decrypt", caller, recipient.as_ref(), &context)?;
        let plaintext = self.unwrap(&key, &blob, &context_aad(&context))?;
        let mut out = json!({"KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"});
        self.answer(&mut out, &plaintext, recipient.as_ref())?;
        Ok(out)
    }

    /// Plaintext to a caller without a Recipient; only the CMS envelope to one with.
    fn answer(
        &self,
        out: &mut Value,
        plaintext: &[u8],
        recipient: Option<&Recipient>,
    ) -> Result<(), KmsError> {
        match recipient {
            None => out["Plaintext"] = json!(B64.encode(plaintext)),
            Some(r) => {
                let envelope = attestation::recipient::seal_envelope(&r.public_key, plaintext)
                    .map_err(|e| KmsError::internal(format!("cannot build the envelope: {e}")))?;
                out["CiphertextForRecipient"] = json!(B64.encode(envelope));
            }
        }
        Ok(())
    }

    fn wrap(&self, key: &KeyRecord, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError> {
        let material = key.material().map_err(KmsError::internal)?;
        let mut blob = BLOB_MAGIC.to_vec();
        blob.extend_from_slice(key.key_id.as_bytes());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut aad = blob.clone();
        aad.extend_from_slice(context);
        let sealed = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*material))
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KmsError::internal("wrapping failed"))?;
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    fn unwrap(
        &self,
        key: &KeyRecord,
        blob: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let material = key.material().map_err(KmsError::internal)?;
        let head = BLOB_MAGIC.len() + 36;
        let mut aad = blob[..head].to_vec();
        aad.extend_from_slice(context);
        let nonce: [u8; 12] = blob[head..head + 12].try_into().map_err(|_| {
            KmsError::new("InvalidCiphertextException", "the ciphertext is invalid")
        })?;
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*material))
            .decrypt(&Nonce::from(nonce), Payload { msg: &blob[head + 12..], aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                KmsError::new(
                    "InvalidCiphertextException",
                    "the ciphertext does not decrypt under its key (altered, or another encryption context)",
                )
            })
    }
}
