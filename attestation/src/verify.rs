//! Verification of a Nitro attestation document.
//!
//! Order of checks (each failure has its own [`VerifyError`] variant):
//!
//! 1. size and COSE_Sign1 structure; the protected header must name ES384;
//! 2. the payload decodes as an `AttestationDoc` and passes AWS's syntactic rules (module id,
//!    SHA384 digest, 1..=32 PCRs of 32/48/64 bytes, field size limits);
//! 3. the certificate chain: `cabundle[0]` must be a pinned root (byte for byte); every following
//!    certificate and the leaf must be signed (ecdsa-with-SHA384, P-384) by the one before, issued
//!    by its subject, every issuer must be a CA, and every certificate valid at the validation time;
//! 4. the COSE signature, with the leaf's key;
//! 5. content: debug-mode PCRs, the PCR policy, the nonce, the age of the timestamp, and the
//!    binding of the identity keys in `user_data`.
//!
//! The validation time is always explicit: callers pass it, tests fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_nitro_enclaves_cose::CoseSign1;
use aws_nitro_enclaves_cose::error::CoseError;
use aws_nitro_enclaves_cose::header_map::CborValue;
use aws_nitro_enclaves_nsm_api::api::{AttestationDoc, Digest as NsmDigest};
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use der::{Decode, Encode, Sequence};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{DerSignature, VerifyingKey};
use serde::Serialize;
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use crate::cose::{P384Public, Sha2};
use crate::identity::{Binding, BindingError, IdentityKeys, NodeBinding};

/// Largest COSE document accepted (real ones are about 4.5 KiB).
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;
/// Largest `user_data` and `nonce` (the NSM's limits).
pub const MAX_USER_DATA_LEN: usize = 512;
/// Largest `nonce`.
pub const MAX_NONCE_LEN: usize = 512;
/// Largest `public_key`.
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// Largest certificate, in `cabundle` or as the leaf.
pub const MAX_CERT_LEN: usize = 1024;
/// How far in the future a document's timestamp may lie (clock skew between NSM and verifier).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

const ES384: i128 = -35;
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// PCR indices a policy may constrain: image (0), kernel and boot ramfs (1), application (2),
/// parent instance role (3), parent instance id (4), signing certificate (8).
pub const POLICY_PCRS: [usize; 6] = [0, 1, 2, 3, 4, 8];

/// What a verifier requires of a document.
#[derive(Debug, Clone)]
pub struct Policy {
    /// DER of the roots `cabundle[0]` may be. Default: the AWS Nitro root G1 only.
    pub roots: Vec<Vec<u8>>,
    /// Allowed values per PCR index (one of [`POLICY_PCRS`]); an index not listed is not
    /// checked. A listed index with no value in the document fails.
    pub pcrs: BTreeMap<usize, Vec<Vec<u8>>>,
    /// Accept debug-mode documents (PCR0, PCR1 and PCR2 all zero). Never in production.
    pub allow_debug: bool,
    /// The nonce the document must carry.
    pub nonce: Option<Vec<u8>>,
    /// Maximum age of the document's timestamp at the validation time.
    pub max_age: Option<Duration>,
    /// Identity keys the document must bind in `user_data`.
    pub identity: Option<IdentityKeys>,
    /// Require an identity binding (from `identity`, or keys carried in `public_key`).
    pub require_identity: bool,
    /// The node key and KMS key the document must bind (a version-2 binding); implies
    /// `require_node`.
    pub node: Option<NodeBinding>,
    /// Require a version-2 binding: an enrolled enclave with a node key (ADR 0013).
    pub require_node: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            roots: vec![crate::aws_nitro_root_der()],
            pcrs: BTreeMap::new(),
            allow_debug: false,
            nonce: None,
            max_age: None,
            identity: None,
            require_identity: false,
            node: None,
            require_node: false,
        }
    }
}

impl Policy {
    /// Allows `value` for PCR `index` (in addition to values already allowed).
    pub fn allow_pcr(mut self, index: usize, value: Vec<u8>) -> Self {
        self.pcrs.entry(index).or_default().push(value);
        self
    }

    /// Also allows the enclave image a measurements file describes: its PCR0, PCR1, PCR2 and,
    /// for a signed image, PCR8 (see [`read_measurements`]). Repeat for an image rotation.
    pub fn allow_measurements(mut self, path: &std::path::Path) -> Result<Self, String> {
        for (index, value) in read_measurements(path)? {
            self = self.allow_pcr(index, value);
        }
        Ok(self)
    }

    /// Pins one root (replacing the default AWS root).
    pub fn with_root(mut self, root_der: Vec<u8>) -> Self {
        self.roots = vec![root_der];
        self
    }

    /// The policy a service configures from its flags: the root in the PEM file `root` (the AWS
    /// Nitro root when `None`), the allowed values per PCR index (indices with no value are not
    /// checked), debug mode, a maximum age, and an identity binding required.
    pub fn configured(
        root: Option<&std::path::Path>,
        pcrs: &[(usize, &Vec<Vec<u8>>)],
        measurements: &[std::path::PathBuf],
        allow_debug: bool,
        max_age: Duration,
    ) -> Result<Self, String> {
        let mut policy = Policy::default();
        if let Some(path) = root {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read root {}: {e}", path.display()))?;
            let der = crate::pem_to_der(&pem)
                .map_err(|e| format!("root {} is not a PEM certificate: {e}", path.display()))?;
            policy = policy.with_root(der);
        }
        policy.pcrs = pcrs
            .iter()
            .filter(|(_, values)| !values.is_empty())
            .map(|(i, values)| (*i, (*values).clone()))
            .collect();
        for file in measurements {
            policy = policy.allow_measurements(file)?;
        }
        policy.allow_debug = allow_debug;
        policy.max_age = Some(max_age);
        policy.require_identity = true;
        Ok(policy)
    }
}

/// The PCRs of one enclave image from a measurements file: the JSON eif-build writes
/// (`cohort.eif`'s `measurements.json`) or `nitro-cli describe-eif` prints, that is `PCR0`,
/// `PCR1`, `PCR2` and optionally `PCR8` as hex strings, under `Measurements` or at the top level.
/// PCR0 (the whole image) is required; other keys are ignored.
pub fn read_measurements(path: &std::path::Path) -> Result<BTreeMap<usize, Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read measurements {}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("measurements {} are not JSON: {e}", path.display()))?;
    let m = doc.get("Measurements").unwrap_or(&doc);
    let mut out = BTreeMap::new();
    for index in [0usize, 1, 2, 8] {
        let Some(value) = m.get(format!("PCR{index}")) else {
            continue;
        };
        let value = value
            .as_str()
            .ok_or_else(|| format!("PCR{index} in {} is not a string", path.display()))
            .and_then(|v| {
                parse_pcr_hex(v).map_err(|e| format!("PCR{index} in {}: {e}", path.display()))
            })?;
        out.insert(index, value);
    }
    if !out.contains_key(&0) {
        return Err(format!(
            "measurements {} carry no PCR0 (expected eif-build's or nitro-cli's JSON)",
            path.display()
        ));
    }
    Ok(out)
}

/// Parses a PCR value given in hex (32, 48 or 64 bytes), as command-line flags carry them.
pub fn parse_pcr_hex(s: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    if ![32, 48, 64].contains(&bytes.len()) {
        return Err(format!("a PCR is 32, 48 or 64 bytes, not {}", bytes.len()));
    }
    Ok(bytes)
}

/// A document that passed verification, with what a verifier wants to print or use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedDocument {
    /// The NSM's module id (enclave id).
    pub module_id: String,
    /// Document timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// PCRs, by index.
    #[serde(serialize_with = "hex_map")]
    pub pcrs: BTreeMap<usize, Vec<u8>>,
    /// The nonce, if any.
    #[serde(serialize_with = "hex_opt")]
    pub nonce: Option<Vec<u8>>,
    /// The `user_data`, if any.
    #[serde(serialize_with = "hex_opt")]
    pub user_data: Option<Vec<u8>>,
    /// The `public_key`, if any.
    #[serde(serialize_with = "hex_opt")]
    pub public_key: Option<Vec<u8>>,
    /// The identity keys bound by `user_data`, when known.
    #[serde(serialize_with = "identity_opt")]
    pub identity: Option<IdentityKeys>,
    /// The node key and KMS key bound by `user_data` (a version-2 binding), when known.
    #[serde(serialize_with = "node_opt")]
    pub node: Option<NodeBinding>,
    /// DER of the leaf certificate that signed the document.
    #[serde(skip)]
    pub leaf_der: Vec<u8>,
}

/// Why a document was rejected. Every failure mode has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a COSE_Sign1 document, or a payload that is not an attestation document.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// A field exceeds its size limit.
    #[error("field `{field}` is {len} bytes, more than the allowed {max}")]
    FieldTooLarge {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document breaks a structural rule (empty module id, wrong digest, bad PCR sizes, ...).
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// The COSE protected header names an algorithm other than ES384.
    #[error("unsupported signature algorithm (only ES384 is accepted)")]
    UnsupportedAlgorithm,
    /// A certificate does not parse, or uses a key or algorithm other than P-384/SHA-384.
    #[error("certificate at depth {depth} is malformed: {reason}")]
    CertificateMalformed {
        /// 0 is the root, the leaf is last.
        depth: usize,
        /// What is wrong.
        reason: String,
    },
    /// `cabundle[0]` is not one of the pinned roots.
    #[error("certificate chain does not start at a pinned root")]
    UnknownRoot,
    /// A certificate is not signed by its issuer, or names another issuer.
    #[error(
        "certificate at depth {depth} is not validly issued by the certificate before it: {reason}"
    )]
    ChainBroken {
        /// Depth of the child certificate.
        depth: usize,
        /// What is wrong.
        reason: String,
    },
    /// A certificate's validity ended before the validation time.
    #[error("certificate at depth {depth} expired at {not_after} (validation time {at})")]
    CertificateExpired {
        /// Depth of the certificate.
        depth: usize,
        /// End of validity, seconds since the epoch.
        not_after: u64,
        /// Validation time, seconds since the epoch.
        at: u64,
    },
    /// A certificate's validity starts after the validation time.
    #[error("certificate at depth {depth} is not valid before {not_before} (validation time {at})")]
    CertificateNotYetValid {
        /// Depth of the certificate.
        depth: usize,
        /// Start of validity, seconds since the epoch.
        not_before: u64,
        /// Validation time, seconds since the epoch.
        at: u64,
    },
    /// The COSE signature is not a well-formed P-384 signature.
    #[error("document signature is malformed")]
    SignatureMalformed,
    /// The COSE signature does not verify under the leaf's key (the payload or the signature
    /// was altered).
    #[error("document signature does not verify")]
    SignatureMismatch,
    /// PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode.
    #[error("debug-mode document (PCR0, PCR1 and PCR2 are all zero)")]
    DebugMode,
    /// A PCR the policy constrains is absent.
    #[error("PCR{index} is absent from the document")]
    PcrMissing {
        /// The index.
        index: usize,
    },
    /// A PCR has a value the policy does not allow.
    #[error("PCR{index} is {actual}, not an allowed value")]
    PcrMismatch {
        /// The index.
        index: usize,
        /// The document's value, hex.
        actual: String,
    },
    /// The nonce is absent or differs from the expected one.
    #[error("nonce does not match the expected nonce")]
    NonceMismatch,
    /// The timestamp is older than the policy's maximum age.
    #[error("document is {age_secs} s old, more than the allowed {max_secs} s")]
    Stale {
        /// Age at validation time.
        age_secs: u64,
        /// Allowed age.
        max_secs: u64,
    },
    /// The timestamp lies further in the future than [`MAX_CLOCK_SKEW`].
    #[error("document timestamp lies {ahead_secs} s after the validation time")]
    TimestampInFuture {
        /// How far ahead.
        ahead_secs: u64,
    },
    /// `user_data` does not bind the expected identity keys.
    #[error("user_data does not bind the {0}")]
    UserDataMismatch(&'static str),
    /// The document binds no node key (a version-1 binding) where one is required.
    #[error(
        "document binds no node key: an enclave not enrolled yet, or an image older than node keys"
    )]
    NoNodeBinding,
    /// The document binds another node key or KMS key than the expected one.
    #[error("document binds another node key or KMS key than the expected one")]
    NodeBindingMismatch,
    /// The document's `public_key` is an identity binding of a version this build does not know.
    #[error(
        "identity binding version {version} is not supported by this verifier (it knows 1 and 2)"
    )]
    UnsupportedBinding {
        /// The version byte found.
        version: u8,
    },
    /// The `attestation-doc-validation` cross-check rejected a production document
    /// ([`crate::aws::cross_check`]).
    #[error("cross-check with attestation-doc-validation failed: {0}")]
    CrossCheck(String),
}

impl VerifyError {
    /// A short stable name of the failure kind (used by `cohort attest verify --json` and the
    /// test vectors).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::FieldTooLarge { .. } => "field_too_large",
            Self::InvalidDocument(_) => "invalid_document",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::CertificateMalformed { .. } => "certificate_malformed",
            Self::UnknownRoot => "unknown_root",
            Self::ChainBroken { .. } => "chain_broken",
            Self::CertificateExpired { .. } => "certificate_expired",
            Self::CertificateNotYetValid { .. } => "certificate_not_yet_valid",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::DebugMode => "debug_mode",
            Self::PcrMissing { .. } => "pcr_missing",
            Self::PcrMismatch { .. } => "pcr_mismatch",
            Self::NonceMismatch => "nonce_mismatch",
            Self::Stale { .. } => "stale",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::UserDataMismatch(_) => "user_data_mismatch",
            Self::NoNodeBinding => "no_node_binding",
            Self::NodeBindingMismatch => "node_binding_mismatch",
            Self::UnsupportedBinding { .. } => "unsupported_binding",
            Self::CrossCheck(_) => "cross_check",
        }
    }
}

/// Decodes a document without verifying anything: for display of a document that failed.
/// Never base a decision on the result.
pub fn decode_unverified(document: &[u8]) -> Result<AttestationDoc, VerifyError> {
    parse(document).map(|(_, doc)| doc)
}

fn parse(document: &[u8]) -> Result<(CoseSign1, AttestationDoc), VerifyError> {
    if document.len() > MAX_DOCUMENT_LEN {
        return Err(VerifyError::FieldTooLarge {
            field: "document",
            len: document.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    let cose = CoseSign1::from_bytes(document)
        .map_err(|e| VerifyError::Malformed(format!("not a COSE_Sign1 structure: {e}")))?;
    let (protected, payload) = cose
        .get_protected_and_payload::<Sha2>(None)
        .map_err(|e| VerifyError::Malformed(format!("unreadable COSE headers: {e}")))?;
    match protected.get(&CborValue::Integer(1.into())) {
        Some(CborValue::Integer(alg)) if i128::from(*alg) == ES384 => {}
        _ => return Err(VerifyError::UnsupportedAlgorithm),
    }
    let doc = AttestationDoc::from_binary(&payload).map_err(|e| {
        VerifyError::Malformed(format!("payload is not an attestation document: {e:?}"))
    })?;
    Ok((cose, doc))
}

/// Verifies `document` against `policy` at the validation time `at` (since the Unix epoch).
pub fn verify(
    document: &[u8],
    policy: &Policy,
    at: Duration,
) -> Result<VerifiedDocument, VerifyError> {
    let (cose, doc) = parse(document)?;
    check_structure(&doc)?;
    let leaf_key = verify_chain(&doc, &policy.roots, at)?;
    match cose.verify_signature::<Sha2>(&P384Public(leaf_key)) {
        Ok(true) => {}
        Ok(false) => return Err(VerifyError::SignatureMismatch),
        Err(CoseError::SignatureError(_)) => return Err(VerifyError::SignatureMalformed),
        Err(e) => return Err(VerifyError::Malformed(format!("cose: {e}"))),
    }
    let pcrs: BTreeMap<usize, Vec<u8>> = doc.pcrs.iter().map(|(i, v)| (*i, v.to_vec())).collect();
    check_pcrs(&pcrs, policy)?;
    if let Some(expected) = &policy.nonce
        && doc.nonce.as_deref().map(|n| n.as_slice()) != Some(expected.as_slice())
    {
        return Err(VerifyError::NonceMismatch);
    }
    check_time(doc.timestamp, policy.max_age, at)?;
    let binding = check_binding(&doc, policy)?;
    let (identity, node) = match binding {
        Some(b) => (Some(b.identity), b.node),
        None => (None, None),
    };
    let verified = VerifiedDocument {
        module_id: doc.module_id,
        timestamp_ms: doc.timestamp,
        pcrs,
        nonce: doc.nonce.map(|b| b.into_vec()),
        user_data: doc.user_data.map(|b| b.into_vec()),
        public_key: doc.public_key.map(|b| b.into_vec()),
        identity,
        node,
        leaf_der: doc.certificate.into_vec(),
    };
    Ok(verified)
}

fn too_large(field: &'static str, len: usize, max: usize) -> Result<(), VerifyError> {
    if len > max {
        Err(VerifyError::FieldTooLarge { field, len, max })
    } else {
        Ok(())
    }
}

fn check_structure(doc: &AttestationDoc) -> Result<(), VerifyError> {
    let invalid = |m: &str| Err(VerifyError::InvalidDocument(m.to_string()));
    if doc.module_id.is_empty() {
        return invalid("empty module_id");
    }
    if doc.digest != NsmDigest::SHA384 {
        return invalid("digest is not SHA384");
    }
    if doc.pcrs.is_empty() || doc.pcrs.len() > 32 {
        return invalid("a document must carry 1 to 32 PCRs");
    }
    if doc.pcrs.keys().any(|i| *i >= 32) {
        return invalid("PCR index out of range");
    }
    if doc.pcrs.values().any(|v| ![32, 48, 64].contains(&v.len())) {
        return invalid("PCR value of a length other than 32, 48 or 64 bytes");
    }
    if doc.cabundle.is_empty() {
        return invalid("empty cabundle");
    }
    too_large("module_id", doc.module_id.len(), 256)?;
    for cert in doc.cabundle.iter().chain(std::iter::once(&doc.certificate)) {
        if cert.is_empty() {
            return invalid("empty certificate");
        }
        too_large("certificate", cert.len(), MAX_CERT_LEN)?;
    }
    if let Some(k) = &doc.public_key {
        too_large("public_key", k.len(), MAX_PUBLIC_KEY_LEN)?;
    }
    if let Some(u) = &doc.user_data {
        too_large("user_data", u.len(), MAX_USER_DATA_LEN)?;
    }
    if let Some(n) = &doc.nonce {
        too_large("nonce", n.len(), MAX_NONCE_LEN)?;
    }
    Ok(())
}

/// The outer structure of a certificate, keeping the exact bytes of the signed part.
#[derive(Sequence)]
struct RawCertificate<'a> {
    tbs: AnyRef<'a>,
    algorithm: AnyRef<'a>,
    signature: BitStringRef<'a>,
}

struct ParsedCert {
    cert: Certificate,
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
}

fn parse_cert(der_bytes: &[u8], depth: usize) -> Result<ParsedCert, VerifyError> {
    let malformed = |reason: String| VerifyError::CertificateMalformed { depth, reason };
    let raw = RawCertificate::from_der(der_bytes).map_err(|e| malformed(e.to_string()))?;
    let cert = Certificate::from_der(der_bytes).map_err(|e| malformed(e.to_string()))?;
    if cert.signature_algorithm.oid != ECDSA_WITH_SHA384 {
        return Err(malformed(
            "signature algorithm is not ecdsa-with-SHA384".into(),
        ));
    }
    let tbs_der = raw.tbs.to_der().map_err(|e| malformed(e.to_string()))?;
    let signature = raw
        .signature
        .as_bytes()
        .ok_or_else(|| malformed("signature bit string is not byte aligned".into()))?
        .to_vec();
    Ok(ParsedCert {
        cert,
        tbs_der,
        signature,
    })
}

fn p384_key(cert: &Certificate, depth: usize) -> Result<VerifyingKey, VerifyError> {
    let malformed = |reason: &str| VerifyError::CertificateMalformed {
        depth,
        reason: reason.to_string(),
    };
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(malformed("public key is not an EC key"));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(SECP384R1) {
        return Err(malformed("public key is not on P-384"));
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed("public key bit string is not byte aligned"))?;
    VerifyingKey::from_sec1_bytes(point).map_err(|_| malformed("invalid P-384 point"))
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|bc| bc.ca)
}

fn check_validity(cert: &Certificate, depth: usize, at: Duration) -> Result<(), VerifyError> {
    let v = &cert.tbs_certificate.validity;
    let not_before = v.not_before.to_unix_duration();
    let not_after = v.not_after.to_unix_duration();
    if at < not_before {
        return Err(VerifyError::CertificateNotYetValid {
            depth,
            not_before: not_before.as_secs(),
            at: at.as_secs(),
        });
    }
    if at > not_after {
        return Err(VerifyError::CertificateExpired {
            depth,
            not_after: not_after.as_secs(),
            at: at.as_secs(),
        });
    }
    Ok(())
}

/// Verifies the chain and returns the leaf's key.
fn verify_chain(
    doc: &AttestationDoc,
    roots: &[Vec<u8>],
    at: Duration,
) -> Result<VerifyingKey, VerifyError> {
    let root = doc.cabundle[0].as_slice();
    if !roots.iter().any(|r| r.as_slice() == root) {
        return Err(VerifyError::UnknownRoot);
    }
    let chain: Vec<&[u8]> = doc
        .cabundle
        .iter()
        .map(|c| c.as_slice())
        .chain(std::iter::once(doc.certificate.as_slice()))
        .collect();
    let parsed: Vec<ParsedCert> = chain
        .iter()
        .enumerate()
        .map(|(depth, der)| parse_cert(der, depth))
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::with_capacity(parsed.len());
    for (depth, p) in parsed.iter().enumerate() {
        keys.push(p384_key(&p.cert, depth)?);
    }
    for depth in 1..parsed.len() {
        let (issuer, child) = (&parsed[depth - 1], &parsed[depth]);
        let broken = |reason: &str| VerifyError::ChainBroken {
            depth,
            reason: reason.to_string(),
        };
        if child.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(broken("issuer name differs from the parent's subject"));
        }
        if !is_ca(&issuer.cert) {
            return Err(broken("issuer is not a CA"));
        }
        let sig = DerSignature::from_bytes(&child.signature)
            .map_err(|_| broken("signature is not a DER ECDSA signature"))?;
        keys[depth - 1]
            .verify(&child.tbs_der, &sig)
            .map_err(|_| broken("signature does not verify"))?;
    }
    for (depth, p) in parsed.iter().enumerate() {
        check_validity(&p.cert, depth, at)?;
    }
    Ok(keys
        .pop()
        .expect("chain has at least the root and the leaf"))
}

fn check_pcrs(pcrs: &BTreeMap<usize, Vec<u8>>, policy: &Policy) -> Result<(), VerifyError> {
    let zero = |i: usize| pcrs.get(&i).is_some_and(|v| v.iter().all(|b| *b == 0));
    if !policy.allow_debug && zero(0) && zero(1) && zero(2) {
        return Err(VerifyError::DebugMode);
    }
    for (index, allowed) in &policy.pcrs {
        let actual = pcrs
            .get(index)
            .ok_or(VerifyError::PcrMissing { index: *index })?;
        if !allowed.iter().any(|a| a == actual) {
            return Err(VerifyError::PcrMismatch {
                index: *index,
                actual: hex::encode(actual),
            });
        }
    }
    Ok(())
}

fn check_time(
    timestamp_ms: u64,
    max_age: Option<Duration>,
    at: Duration,
) -> Result<(), VerifyError> {
    let ts = Duration::from_millis(timestamp_ms);
    if ts > at + MAX_CLOCK_SKEW {
        return Err(VerifyError::TimestampInFuture {
            ahead_secs: (ts - at).as_secs(),
        });
    }
    if let Some(max) = max_age {
        let age = at.saturating_sub(ts);
        if age > max {
            return Err(VerifyError::Stale {
                age_secs: age.as_secs(),
                max_secs: max.as_secs(),
            });
        }
    }
    Ok(())
}

/// Whether a `public_key`'s first byte can be a (future) identity-binding version: small
/// numbers only. Anything else (a KMS Recipient document's DER key starts with 0x30) is not an
/// identity binding at all.
fn is_binding_version(version: u8) -> bool {
    (1..0x20).contains(&version)
}

/// The binding `user_data` commits to: the expected identity keys (with the expected node
/// binding, or a node binding carried in `public_key`), else what `public_key` carries; then the
/// node-binding requirements.
fn check_binding(doc: &AttestationDoc, policy: &Policy) -> Result<Option<Binding>, VerifyError> {
    let user_data = doc.user_data.as_deref().map(|u| u.as_slice());
    let carried = doc.public_key.as_deref().map(|k| Binding::parse(k));
    let binds = |b: &Binding| user_data == Some(b.user_data().as_slice());
    let required = policy.require_identity || policy.require_node || policy.node.is_some();
    let binding = if let Some(expected) = policy.identity {
        let mut candidates = vec![Binding {
            identity: expected,
            node: policy.node.clone(),
        }];
        if let Some(Ok(b)) = &carried
            && b.identity == expected
        {
            candidates.push(b.clone());
        }
        if policy.node.is_some() {
            candidates.push(Binding {
                identity: expected,
                node: None,
            });
        }
        match candidates.into_iter().find(|b| binds(b)) {
            Some(found) => Some(found),
            None => {
                return Err(match carried {
                    Some(Err(BindingError::Unsupported { version }))
                        if is_binding_version(version) =>
                    {
                        VerifyError::UnsupportedBinding { version }
                    }
                    _ => VerifyError::UserDataMismatch("expected identity keys"),
                });
            }
        }
    } else {
        match carried {
            Some(Ok(b)) if binds(&b) => Some(b),
            Some(Ok(_)) => {
                return Err(VerifyError::UserDataMismatch(
                    "identity keys carried in public_key",
                ));
            }
            // A binding of a version this verifier does not know is never passed over as
            // "no binding": what it binds cannot be said.
            Some(Err(BindingError::Unsupported { version })) if is_binding_version(version) => {
                return Err(VerifyError::UnsupportedBinding { version });
            }
            Some(Err(BindingError::Unsupported { .. })) if required => {
                return Err(VerifyError::UserDataMismatch(
                    "identity keys (public_key is not an identity binding)",
                ));
            }
            Some(Err(_)) if required => {
                return Err(VerifyError::UserDataMismatch(
                    "identity keys (public_key is a malformed binding)",
                ));
            }
            _ if required => {
                return Err(VerifyError::UserDataMismatch(
                    "identity keys (none were given or carried)",
                ));
            }
            _ => None,
        }
    };
    let node = binding.as_ref().and_then(|b| b.node.as_ref());
    if (policy.require_node || policy.node.is_some()) && node.is_none() {
        return Err(VerifyError::NoNodeBinding);
    }
    if let Some(expected) = &policy.node
        && node != Some(expected)
    {
        return Err(VerifyError::NodeBindingMismatch);
    }
    Ok(binding)
}

fn hex_map<S: serde::Serializer>(m: &BTreeMap<usize, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k.to_string(), hex::encode(v))))
}

fn hex_opt<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_some(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

fn identity_opt<S: serde::Serializer>(v: &Option<IdentityKeys>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Keys {
        signing: String,
        encryption: String,
    }
    match v {
        Some(k) => s.serialize_some(&Keys {
            signing: hex::encode(k.signing),
            encryption: hex::encode(k.encryption),
        }),
        None => s.serialize_none(),
    }
}

fn node_opt<S: serde::Serializer>(v: &Option<NodeBinding>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Node<'a> {
        node_key: String,
        kms_key_arn: &'a str,
    }
    match v {
        Some(n) => s.serialize_some(&Node {
            node_key: hex::encode(n.node_key),
            kms_key_arn: n.kms_key_arn(),
        }),
        None => s.serialize_none(),
    }
}
