//! Sealing: shares and cluster state exist at rest only as sealed blobs that the parent proxy
//! stores and cannot open.
//!
//! Envelope encryption with KMS: a [`SealingAuthority`] issues a fresh 256-bit data key with
//! its wrapped form (`GenerateDataKey`) and unwraps it later (`Decrypt`). The blob carries the
//! wrapped key; the plaintext is AES-256-GCM-encrypted under the data key with the blob's
//! header as associated data. The data key is zeroized after use.
//!
//! The authority is [`crate::kms::KmsSealingAuthority`] in both modes: KMS (or, in simulated
//! mode, the local KMS stand-in) through the parent, gated by a key policy on this enclave's
//! PCRs. [`LocalSealingAuthority`], the interim authority of simulated clusters before KMS
//! sealing existed, remains only to read the blobs it sealed (migrated on the first restore,
//! see [`Sealer`]) and for in-process test clusters.
//!
//! Blob format, version 3 (CBOR map, unknown fields rejected):
//! `{ v: 3, authority, kind, key_id, context, seq?, wrapped_key, nonce (12 bytes), ciphertext }`,
//! associated data `"cohort/sealed-blob/v3" || CBOR([3, authority, kind, key_id, context,
//! wrapped_key])`, or with `seq` (a genesis blob's sequence number) `... || CBOR([3,
//! authority, kind, key_id, context, wrapped_key, seq])`. `context` is the KMS encryption context the data key was made under (and
//! must be given again to `Decrypt`): the blob's kind and key id, and the node key and cluster
//! id it belongs to once they exist ([`Context`]). KMS binds the wrapped key to it and the
//! blob's associated data repeats it, so a blob of another node or cluster sealed under the
//! same KMS key is refused ([`SealError::WrongBinding`]) even though it opens.
//! Version 2 (`{ v: 2, authority, kind, key_id, wrapped_key, nonce, ciphertext }`, associated
//! data `"cohort/sealed-blob/v2" || CBOR([2, authority, kind, key_id, wrapped_key])`, no
//! context) is still read.
//! Version 1 (`{ v: 1, kind, key_id, wrapped_key, nonce, ciphertext }`, associated data
//! `"cohort/sealed-blob/v1" || CBOR([1, kind, key_id, wrapped_key])`) was always sealed by the
//! local authority.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use protocol::parent::kms_http::context as kms_context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

/// Version of the sealed-blob format written by this build.
pub const SEALED_BLOB_VERSION: u8 = 3;
/// Largest blob accepted for unsealing.
pub const MAX_BLOB_LEN: usize = 4 * 1024 * 1024;

/// Errors of sealing and unsealing. None carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The sealing authority cannot be reached now (parent or KMS down): retry later.
    #[error("sealing authority unavailable: {0}")]
    Unavailable(String),
    /// The sealing authority refused (the KMS key policy does not allow this enclave).
    #[error("sealing authority refused: {0}")]
    Refused(String),
    /// The authority's answer does not open or is not what was asked for (a tampered CMS
    /// envelope, a key of the wrong size, a confused parent).
    #[error("sealing authority answer rejected: {0}")]
    BadAnswer(String),
    /// The blob does not parse, has another version, or is too large.
    #[error("malformed sealed blob: {0}")]
    Malformed(String),
    /// The blob is of another kind or for another key than expected.
    #[error("sealed blob is a {found}, expected a {expected}")]
    WrongKind {
        /// Found kind and key.
        found: String,
        /// Expected kind and key.
        expected: String,
    },
    /// The parent answered for another KMS key than the one the enclave named (ADR 0013).
    #[error("the parent answered for KMS key {got}, not the named key {expected}")]
    WrongKmsKey {
        /// The key the enclave named.
        expected: String,
        /// The key the answer is for.
        got: String,
    },
    /// The enclave's KMS key is already named, as another key: it never changes.
    #[error("the KMS key is already named as {pinned}; {asked} is refused")]
    KmsKeyPinned {
        /// The key named first.
        pinned: String,
        /// The key asked for now.
        asked: String,
    },
    /// The connection to KMS did not authenticate: the parent's tunnel leads somewhere else
    /// (a certificate that does not chain to a pinned root, altered or replayed TLS records).
    #[error("the KMS connection is not authentic: {0}")]
    Untrusted(String),
    /// The blob opens but belongs to another node or cluster (its encryption context).
    #[error("wrong_binding: the blob belongs to {what} {blob}, not {expected}")]
    WrongBinding {
        /// `node` or `cluster`.
        what: &'static str,
        /// The blob's.
        blob: String,
        /// This enclave's.
        expected: String,
    },
    /// Authentication failed: the blob was altered or sealed under another key.
    #[error("sealed blob does not authenticate (altered, or sealed for another enclave image)")]
    Tampered,
}

impl SealError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Which authority wrapped a blob's data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorityKind {
    /// KMS (or the local KMS stand-in) through the parent, gated by attestation.
    Kms,
    /// The interim local authority (simulated clusters before KMS sealing; in-process tests).
    Local,
}

/// Issues and unwraps data keys (KMS GenerateDataKey / Decrypt, or the local stand-in).
pub trait SealingAuthority: Send + Sync {
    /// Which authority this is (recorded in every blob it seals).
    fn kind(&self) -> AuthorityKind;
    /// A fresh data key and its wrapped form, bound to `context` (KMS's encryption context).
    fn generate_data_key(
        &self,
        context: &Context,
    ) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError>;
    /// Unwraps a data key produced by [`SealingAuthority::generate_data_key`] under `context`.
    fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &Context,
    ) -> Result<Zeroizing<[u8; 32]>, SealError>;
    /// Names the KMS key every later call must use (ADR 0013): once named, a call for another
    /// key is never made and an answer for another key is refused. Naming the same key again is
    /// no change; naming another is [`SealError::KmsKeyPinned`]. Authorities that do not call
    /// KMS accept and ignore it.
    fn name_kms_key(&self, _arn: &protocol::KmsKeyArn) -> Result<(), SealError> {
        Ok(())
    }
    /// Forgets the named KMS key. Only for a key nothing was sealed or opened under yet (an
    /// enrollment or a restore that failed), so that the next attempt may name another.
    fn forget_kms_key(&self) {}
}

/// No sealing available (no parent endpoint configured, or the NSM is missing): every call
/// fails with the reason, so the enclave boots and attests but refuses to create or load keys.
#[derive(Debug)]
pub struct UnavailableSealing(pub String);

impl SealingAuthority for UnavailableSealing {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Kms
    }
    fn generate_data_key(&self, _: &Context) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        Err(SealError::Unavailable(self.0.clone()))
    }
    fn decrypt_data_key(&self, _: &[u8], _: &Context) -> Result<Zeroizing<[u8; 32]>, SealError> {
        Err(SealError::Unavailable(self.0.clone()))
    }
}

pub(crate) fn nonce_of(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>, SealError> {
    let n: [u8; 12] = bytes
        .try_into()
        .map_err(|_| SealError::Malformed("nonce is not 12 bytes".into()))?;
    Ok(Nonce::from(n))
}

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobKind {
    /// The cluster's genesis state (admins, quorum, this node's index).
    Genesis,
    /// CGGMP21 auxiliary info of this node (Paillier keys), for future ECDSA keys.
    AuxInfo,
    /// A threshold ECDSA key share (with its auxiliary info).
    EcdsaShare,
    /// A threshold EdDSA key share.
    EddsaShare,
    /// The enclave's long-term node key (ADR 0013); the header's key id is the KMS key ARN.
    NodeKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Blob {
    v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authority: Option<AuthorityKind>,
    kind: BlobKind,
    key_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    context: Context,
    /// The sequence number of a genesis blob (version 3 only, in the authenticated data): each
    /// one an enclave seals is numbered above the one before, across restarts, so that a parent
    /// never stores an older genesis blob over a newer one when two answers race
    /// (`protocol::backups::sealed_sequence` reads it; attacker review helper-67, finding 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    wrapped_key: ByteBuf,
    nonce: ByteBuf,
    ciphertext: ByteBuf,
}

impl Blob {
    /// The authority that wrapped the data key (version 1: always the local one).
    fn authority(&self) -> AuthorityKind {
        self.authority.unwrap_or(AuthorityKind::Local)
    }

    fn aad(&self) -> Vec<u8> {
        let mut out = format!("cohort/sealed-blob/v{}", self.v).into_bytes();
        let (v, kind, key_id) = (self.v, self.kind, &self.key_id);
        let wrapped_key = &self.wrapped_key;
        let written = match (self.authority, v) {
            (None, _) => ciborium::into_writer(&(v, kind, key_id, wrapped_key), &mut out),
            (Some(a), 2) => ciborium::into_writer(&(v, a, kind, key_id, wrapped_key), &mut out),
            (Some(a), _) => match self.seq {
                None => ciborium::into_writer(
                    &(v, a, kind, key_id, &self.context, wrapped_key),
                    &mut out,
                ),
                Some(seq) => ciborium::into_writer(
                    &(v, a, kind, key_id, &self.context, wrapped_key, seq),
                    &mut out,
                ),
            },
        };
        written.expect("serializing into a Vec cannot fail");
        out
    }
}

/// A KMS encryption context: string pairs, in a canonical order.
pub type Context = BTreeMap<String, String>;

/// The context key naming the blob's kind (`protocol::parent::kms_http::context`, which the
/// key policy requires).
pub const CONTEXT_BLOB: &str = kms_context::BLOB;
/// The context key naming the blob's key id.
pub const CONTEXT_ID: &str = kms_context::ID;
/// The context key naming the node key (hex) the blob belongs to.
pub const CONTEXT_NODE: &str = kms_context::NODE;
/// The context key naming the cluster id (hex) the blob belongs to.
pub const CONTEXT_CLUSTER: &str = kms_context::CLUSTER;

/// Which node and cluster new blobs belong to (hex; `None` until known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The node key, once enrolled.
    pub node: Option<String>,
    /// The cluster id, once genesis is accepted.
    pub cluster: Option<String>,
}

/// The encryption context of a blob of `kind` for `key_id`, bound as `binding` says.
pub fn context_of(kind: BlobKind, key_id: &str, binding: &Binding) -> Context {
    let mut c = Context::new();
    let kind = match kind {
        BlobKind::Genesis => "genesis",
        BlobKind::AuxInfo => "aux-info",
        BlobKind::EcdsaShare => "ecdsa-share",
        BlobKind::EddsaShare => "eddsa-share",
        BlobKind::NodeKey => "node-key",
    };
    c.insert(CONTEXT_BLOB.into(), kind.into());
    c.insert(CONTEXT_ID.into(), key_id.into());
    if let Some(node) = &binding.node {
        c.insert(CONTEXT_NODE.into(), node.clone());
    }
    if let Some(cluster) = &binding.cluster {
        c.insert(CONTEXT_CLUSTER.into(), cluster.clone());
    }
    c
}

/// Refuses a blob context naming another node or cluster than `binding` (where both name one).
pub fn check_binding(context: &Context, binding: &Binding) -> Result<(), SealError> {
    for (what, key, expected) in [
        ("node", CONTEXT_NODE, &binding.node),
        ("cluster", CONTEXT_CLUSTER, &binding.cluster),
    ] {
        if let (Some(blob), Some(expected)) = (context.get(key), expected)
            && blob != expected
        {
            return Err(SealError::WrongBinding {
                what,
                blob: blob.chars().take(80).collect(),
                expected: expected.clone(),
            });
        }
    }
    Ok(())
}

/// A data key fetched ahead of the blob it will seal (so a session that ends in a secret to
/// seal cannot fail at its very end because KMS is down: it fails before it starts).
pub struct DataKey {
    authority: AuthorityKind,
    key: Zeroizing<[u8; 32]>,
    wrapped: Vec<u8>,
    context: Context,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// Seals `plaintext` as a blob of `kind` for `key_id`, bound to no node or cluster.
pub fn seal(
    authority: &dyn SealingAuthority,
    kind: BlobKind,
    key_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    seal_bound(authority, kind, key_id, &Binding::default(), plaintext)
}

/// Seals `plaintext` as a blob of `kind` for `key_id`, bound as `binding` says.
pub fn seal_bound(
    authority: &dyn SealingAuthority,
    kind: BlobKind,
    key_id: &str,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    seal_numbered(authority, (kind, key_id, None), binding, plaintext)
}

/// Seals `plaintext` as a blob of `kind` for `key_id` numbered `seq` (if any), bound as
/// `binding` says.
fn seal_numbered(
    authority: &dyn SealingAuthority,
    (kind, key_id, seq): (BlobKind, &str, Option<u64>),
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let context = context_of(kind, key_id, binding);
    let (key, wrapped) = authority.generate_data_key(&context)?;
    seal_with(
        DataKey {
            authority: authority.kind(),
            key,
            wrapped,
            context,
        },
        (kind, key_id, seq),
        plaintext,
    )
}

/// Seals `plaintext` under a data key fetched earlier (used once).
fn seal_with(
    data_key: DataKey,
    (kind, key_id, seq): (BlobKind, &str, Option<u64>),
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let DataKey {
        authority,
        key,
        wrapped,
        context,
    } = data_key;
    // The data key was made under a context naming the blob: it seals that blob only.
    if context.get(CONTEXT_BLOB) != context_of(kind, key_id, &Binding::default()).get(CONTEXT_BLOB)
        || context.get(CONTEXT_ID).map(String::as_str) != Some(key_id)
    {
        return Err(SealError::WrongKind {
            found: format!("a data key for {:?}", context),
            expected: format!("{kind:?} for {key_id}"),
        });
    }
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut blob = Blob {
        v: SEALED_BLOB_VERSION,
        authority: Some(authority),
        kind,
        key_id: key_id.to_string(),
        context,
        seq,
        wrapped_key: ByteBuf::from(wrapped),
        nonce: ByteBuf::from(nonce.to_vec()),
        ciphertext: ByteBuf::new(),
    };
    let ciphertext = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &blob.aad(),
            },
        )
        .map_err(|_| SealError::BadAnswer("encryption failed".into()))?;
    blob.ciphertext = ByteBuf::from(ciphertext);
    let mut out = Vec::new();
    ciborium::into_writer(&blob, &mut out).map_err(|e| SealError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Which authority wrapped a blob's data key, without opening it.
pub fn authority_of(blob: &[u8]) -> Result<AuthorityKind, SealError> {
    parse(blob).map(|b| b.authority())
}

/// Reads a blob's sequence number (a genesis blob's) without opening it; authentic once the
/// blob opened.
pub fn sequence_of(blob: &[u8]) -> Result<Option<u64>, SealError> {
    parse(blob).map(|b| b.seq)
}

/// Reads a blob's kind and key id without opening it.
pub fn peek(blob: &[u8]) -> Result<(BlobKind, String), SealError> {
    let b = parse(blob)?;
    Ok((b.kind, b.key_id))
}

fn parse(blob: &[u8]) -> Result<Blob, SealError> {
    if blob.len() > MAX_BLOB_LEN {
        return Err(SealError::Malformed("blob too large".into()));
    }
    let mut rest = blob;
    let b: Blob =
        ciborium::from_reader(&mut rest).map_err(|e| SealError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SealError::Malformed("trailing bytes".into()));
    }
    if b.v < 3 && b.seq.is_some() {
        return Err(SealError::Malformed(format!(
            "a version {} blob with a sequence number",
            b.v
        )));
    }
    if b.v < 3 && !b.context.is_empty() {
        return Err(SealError::Malformed(format!(
            "a version {} blob with a context",
            b.v
        )));
    }
    match (b.v, b.authority) {
        (1, None) | (2 | 3, Some(_)) => {}
        (1..=3, _) => {
            return Err(SealError::Malformed(format!(
                "a version {} blob {} an authority field",
                b.v,
                if b.v == 1 { "with" } else { "without" }
            )));
        }
        (v, _) => {
            return Err(SealError::Malformed(format!(
                "unsupported blob version {v}"
            )));
        }
    }
    if b.nonce.len() != 12 {
        return Err(SealError::Malformed("nonce is not 12 bytes".into()));
    }
    Ok(b)
}

/// An opened blob: its key id, its plaintext, and the blob sealed again in the current format
/// when it was not (see [`Sealer::open`]).
pub type Opened = (String, Zeroizing<Vec<u8>>, Option<Vec<u8>>);

/// A blob's encryption context, without opening it (authentic once the blob has opened: KMS
/// and the associated data both bind it).
pub fn context(blob: &[u8]) -> Result<Context, SealError> {
    parse(blob).map(|b| b.context)
}

/// Checks an opened blob against the node and cluster being restored. A version-3 blob must
/// name both where `binding` has them (a node-key blob names its node only: it precedes every
/// cluster); a version-2 blob (sealed before contexts existed) names neither and is taken as it
/// is (it is sealed again as version 3 once the binding is known, see [`Sealer::needs_reseal`]).
pub fn check_restored(blob: &[u8], binding: &Binding) -> Result<(), SealError> {
    let b = parse(blob)?;
    if b.v < 3 {
        return check_binding(&b.context, binding);
    }
    let required: &[(&'static str, &str, &Option<String>)] = match b.kind {
        BlobKind::NodeKey => &[("node", CONTEXT_NODE, &binding.node)],
        _ => &[
            ("node", CONTEXT_NODE, &binding.node),
            ("cluster", CONTEXT_CLUSTER, &binding.cluster),
        ],
    };
    for (what, key, expected) in required {
        if let Some(expected) = expected
            && b.context.get(*key) != Some(expected)
        {
            return Err(SealError::WrongBinding {
                what,
                blob: b
                    .context
                    .get(*key)
                    .map_or_else(|| "none".into(), |v| v.chars().take(80).collect()),
                expected: expected.clone(),
            });
        }
    }
    Ok(())
}

/// The authority an enclave seals with, the local one it can still read (migration), and the
/// node and cluster new blobs are bound to.
pub struct Sealer {
    current: Box<dyn SealingAuthority>,
    legacy: Option<LocalSealingAuthority>,
    binding: Mutex<Binding>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.kind())
            .field("legacy", &self.legacy.is_some())
            .field("binding", &*self.binding())
            .finish()
    }
}

impl Sealer {
    /// Seals with `current`; opens blobs of the local authority with `legacy`, if given.
    pub fn new(current: Box<dyn SealingAuthority>, legacy: Option<LocalSealingAuthority>) -> Self {
        Self {
            current,
            legacy,
            binding: Mutex::new(Binding::default()),
        }
    }

    fn binding(&self) -> MutexGuard<'_, Binding> {
        // Only ever assigned whole fields: a poisoned lock still holds a consistent value.
        self.binding.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds blobs sealed from now on to the node key `node` (hex), and refuses to open blobs
    /// of another node.
    pub fn bind_node(&self, node: &str) {
        self.binding().node = Some(node.to_string());
    }

    /// Binds blobs sealed from now on to the cluster `cluster` (hex), and refuses to open blobs
    /// of another cluster.
    pub fn bind_cluster(&self, cluster: &str) {
        self.binding().cluster = Some(cluster.to_string());
    }

    /// Forgets the binding (an enrollment or a restore that failed).
    pub fn unbind(&self) {
        *self.binding() = Binding::default();
    }

    /// The current binding.
    pub fn current_binding(&self) -> Binding {
        self.binding().clone()
    }

    /// Stops reading blobs of the interim local authority: once an enclave's genesis is sealed
    /// under the current authority, a local blob can only be one the host made up (it holds
    /// the local master secret), never one to migrate.
    pub fn retire_legacy(&mut self) {
        self.legacy = None;
    }

    /// Names the KMS key every later call of the current authority uses
    /// ([`SealingAuthority::name_kms_key`]).
    pub fn name_kms_key(&self, arn: &protocol::KmsKeyArn) -> Result<(), SealError> {
        self.current.name_kms_key(arn)
    }

    /// Forgets the named KMS key ([`SealingAuthority::forget_kms_key`]).
    pub fn forget_kms_key(&self) {
        self.current.forget_kms_key()
    }

    /// Fetches a data key from the current authority, to seal one blob of `kind` for `key_id`
    /// later.
    pub fn data_key(&self, kind: BlobKind, key_id: &str) -> Result<DataKey, SealError> {
        let context = context_of(kind, key_id, &self.current_binding());
        let (key, wrapped) = self.current.generate_data_key(&context)?;
        Ok(DataKey {
            authority: self.current.kind(),
            key,
            wrapped,
            context,
        })
    }

    /// Seals `plaintext` under `data_key` (from [`Sealer::data_key`] for this kind and id).
    pub fn seal_with(
        &self,
        data_key: DataKey,
        kind: BlobKind,
        key_id: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        seal_with(data_key, (kind, key_id, None), plaintext)
    }

    /// Seals `plaintext` with the current authority, bound to the current node and cluster.
    pub fn seal(
        &self,
        kind: BlobKind,
        key_id: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let binding = self.current_binding();
        seal_bound(self.current.as_ref(), kind, key_id, &binding, plaintext)
    }

    /// Seals `plaintext` as [`Sealer::seal`] does, numbered `seq` in the blob's authenticated
    /// header (a genesis blob: [`sequence_of`]).
    pub fn seal_numbered(
        &self,
        kind: BlobKind,
        key_id: &str,
        seq: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let binding = self.current_binding();
        seal_numbered(
            self.current.as_ref(),
            (kind, key_id, Some(seq)),
            &binding,
            plaintext,
        )
    }

    /// Whether a blob should be sealed again in the current format once opened: one of another
    /// authority (migration), of version 1, or a version-2 share or auxiliary-info blob (no
    /// context: sealed again bound to the node and cluster). Version-2 node-key and genesis
    /// blobs are not (the proxy never replaces those files; their contents name the node and
    /// cluster themselves).
    pub fn needs_reseal(&self, blob: &[u8]) -> Result<bool, SealError> {
        let b = parse(blob)?;
        Ok(b.v == 1
            || b.authority() != self.current.kind()
            || (b.v == 2 && !matches!(b.kind, BlobKind::NodeKey | BlobKind::Genesis)))
    }

    /// Opens a blob of `kind` (for `key_id`, or any) that belongs to this node and cluster
    /// (where the blob and this sealer both name one); returns its key id and its plaintext,
    /// sealing nothing again (the caller does, once the binding is known: a restore).
    pub fn open_only(
        &self,
        blob: &[u8],
        kind: BlobKind,
        key_id: Option<&str>,
    ) -> Result<(String, Zeroizing<Vec<u8>>), SealError> {
        let b = parse(blob)?;
        check_binding(&b.context, &self.current_binding())?;
        let authority: &dyn SealingAuthority = if b.authority() == self.current.kind() {
            self.current.as_ref()
        } else {
            match (&self.legacy, b.authority()) {
                (Some(local), AuthorityKind::Local) => local,
                (_, other) => {
                    return Err(SealError::Refused(format!(
                        "the blob was sealed by the {other:?} authority, which this enclave cannot reach"
                    )));
                }
            }
        };
        open_with(authority, b, kind, key_id)
    }

    /// Opens a blob of `kind` (for `key_id`, or any) that belongs to this node and cluster
    /// (where the blob and this sealer both name one); returns its key id, its plaintext and,
    /// when [`Sealer::needs_reseal`], the same plaintext sealed again with the current authority
    /// under the current binding (the caller stores it in place of the old one).
    pub fn open(
        &self,
        blob: &[u8],
        kind: BlobKind,
        key_id: Option<&str>,
    ) -> Result<Opened, SealError> {
        let migrated = self.needs_reseal(blob)?;
        let (id, plain) = self.open_only(blob, kind, key_id)?;
        let resealed = if migrated {
            Some(self.seal(kind, &id, &plain)?)
        } else {
            None
        };
        Ok((id, plain, resealed))
    }
}

/// Opens a blob, which must be of `kind` for `key_id` (`None`: any key id).
pub fn unseal(
    authority: &dyn SealingAuthority,
    blob: &[u8],
    kind: BlobKind,
    key_id: Option<&str>,
) -> Result<(String, Zeroizing<Vec<u8>>), SealError> {
    let b = parse(blob)?;
    if b.authority() != authority.kind() {
        return Err(SealError::Refused(format!(
            "the blob was sealed by the {:?} authority, not {:?}",
            b.authority(),
            authority.kind()
        )));
    }
    open_with(authority, b, kind, key_id)
}

fn open_with(
    authority: &dyn SealingAuthority,
    b: Blob,
    kind: BlobKind,
    key_id: Option<&str>,
) -> Result<(String, Zeroizing<Vec<u8>>), SealError> {
    if b.kind != kind || key_id.is_some_and(|k| k != b.key_id) {
        return Err(SealError::WrongKind {
            found: format!("{:?} for {}", b.kind, b.key_id),
            expected: format!("{kind:?} for {}", key_id.unwrap_or("any key")),
        });
    }
    // A context that names another kind or id than the header: made up (KMS would refuse it
    // anyway, as the data key was made under the context written at sealing).
    if b.v >= 3
        && (b.context.get(CONTEXT_ID) != Some(&b.key_id)
            || b.context.get(CONTEXT_BLOB)
                != context_of(b.kind, &b.key_id, &Binding::default()).get(CONTEXT_BLOB))
    {
        return Err(SealError::Tampered);
    }
    let key = authority.decrypt_data_key(&b.wrapped_key, &b.context)?;
    let plain = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .decrypt(
            &nonce_of(&b.nonce)?,
            Payload {
                msg: &b.ciphertext,
                aad: &b.aad(),
            },
        )
        .map_err(|_| SealError::Tampered)?;
    Ok((b.key_id, Zeroizing::new(plain)))
}

mod local;
pub use local::LocalSealingAuthority;

#[cfg(test)]
mod tests;
