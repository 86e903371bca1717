//! The simulated NSM: attestation documents in exactly the production format
//! (`aws-nitro-enclaves-nsm-api`'s `AttestationDoc` inside an `aws-nitro-enclaves-cose`
//! COSE_Sign1, ES384), signed through a simulated CA chain root -> intermediate -> leaf (P-384).
//!
//! * The root key signs the intermediate once and is then dropped: only the root certificate and
//!   the intermediate's certificate and key are stored (`root.pem`, `intermediate.pem`,
//!   `intermediate.key.pem`). Verifiers accept the simulated root only when it is passed to them
//!   explicitly.
//! * Leaf certificates live [`LEAF_LIFETIME`] (like the real ones, a few hours) and are renewed
//!   half an hour before they expire.
//! * PCR0 is the SHA-384 of the enclave executable, so another binary has another measurement;
//!   PCR1 and PCR2 are derived from fixed labels and PCR0; PCR3..15 are zero as on a parent
//!   with no IAM role measurement. See [`simulated_pcrs`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_nitro_enclaves_cose::CoseSign1;
use aws_nitro_enclaves_cose::header_map::HeaderMap;
use aws_nitro_enclaves_nsm_api::api::{AttestationDoc, Digest as NsmDigest};
use der::asn1::{GeneralizedTime, UtcTime};
use der::pem::LineEnding;
use der::{Decode, Encode};
use p384::ecdsa::{DerSignature, SigningKey};
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha384};
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use aws_nitro_enclaves_cose::crypto::{
    MessageDigest, SignatureAlgorithm, SigningPrivateKey, SigningPublicKey,
};
use aws_nitro_enclaves_cose::error::CoseError;
use p384::ecdsa::Signature;
use p384::ecdsa::signature::hazmat::PrehashSigner;

use crate::cose::Sha2;
use crate::nsm::{AttestationRequest, Nsm, NsmError, check_request};

/// Lifetime of a simulated leaf certificate.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// Lifetime of the simulated root.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(30 * 365 * 86400);
/// Lifetime of the simulated intermediate.
pub const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);
/// Number of PCRs in a document (as on real Nitro Enclaves).
pub const PCR_COUNT: usize = 16;
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 60);

/// Errors of the simulated CA.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing the CA directory failed.
    #[error("simulated CA storage: {0}")]
    Io(#[from] io::Error),
    /// A stored certificate or key does not parse.
    #[error("simulated CA material is invalid: {0}")]
    Invalid(String),
}

fn invalid(e: impl std::fmt::Display) -> SimError {
    SimError::Invalid(e.to_string())
}

impl From<crate::pem::PemError> for SimError {
    fn from(e: crate::pem::PemError) -> Self {
        invalid(e)
    }
}

/// The simulated CA: a root certificate and an intermediate that issues leaf certificates.
pub struct SimulatedCa {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate_key: SigningKey,
}

impl std::fmt::Debug for SimulatedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedCa")
            .field(
                "root_sha256",
                &hex::encode(sha2::Sha256::digest(&self.root_der)),
            )
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn validity(not_before: Duration, lifetime: Duration) -> Result<Validity, SimError> {
    let t = |d: Duration| -> Result<Time, SimError> {
        // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050 on.
        match UtcTime::from_unix_duration(d) {
            Ok(t) => Ok(Time::UtcTime(t)),
            Err(_) => Ok(Time::GeneralTime(
                GeneralizedTime::from_unix_duration(d).map_err(invalid)?,
            )),
        }
    };
    Ok(Validity {
        not_before: t(not_before)?,
        not_after: t(not_before + lifetime)?,
    })
}

fn serial(rng: &mut (impl RngCore + CryptoRng)) -> Result<SerialNumber, SimError> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).map_err(invalid)
}

fn spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, SimError> {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).map_err(invalid)
}

#[allow(clippy::too_many_arguments)]
fn issue_with(
    profile: Profile,
    subject: &str,
    subject_key: &SigningKey,
    issuer_key: &SigningKey,
    not_before: Duration,
    lifetime: Duration,
    rng: &mut (impl RngCore + CryptoRng),
    dns_name: Option<&str>,
) -> Result<Vec<u8>, SimError> {
    let mut builder = CertificateBuilder::new(
        profile,
        serial(rng)?,
        validity(not_before, lifetime)?,
        Name::from_str(subject).map_err(invalid)?,
        spki(subject_key)?,
        issuer_key,
    )
    .map_err(invalid)?;
    if let Some(name) = dns_name {
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
        let name = der::asn1::Ia5String::new(name).map_err(invalid)?;
        builder
            .add_extension(&SubjectAltName(vec![GeneralName::DnsName(name)]))
            .map_err(invalid)?;
        builder
            .add_extension(&ExtendedKeyUsage(vec![
                der::oid::db::rfc5280::ID_KP_SERVER_AUTH,
            ]))
            .map_err(invalid)?;
    }
    let cert = builder.build::<DerSignature>().map_err(invalid)?;
    cert.to_der().map_err(invalid)
}

fn issue(
    profile: Profile,
    subject: &str,
    subject_key: &SigningKey,
    issuer_key: &SigningKey,
    not_before: Duration,
    lifetime: Duration,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, SimError> {
    issue_with(
        profile,
        subject,
        subject_key,
        issuer_key,
        not_before,
        lifetime,
        rng,
        None,
    )
}

fn subject_of(der_bytes: &[u8]) -> Result<Name, SimError> {
    Ok(Certificate::from_der(der_bytes)
        .map_err(invalid)?
        .tbs_certificate
        .subject)
}

/// A TLS server's key (PKCS#8 DER) and certificate chain (leaf first).
pub type TlsServerCredentials = (zeroize::Zeroizing<Vec<u8>>, Vec<Vec<u8>>);

const ROOT_SUBJECT: &str = "CN=cohort-simulated-nitro-root,OU=simulation,O=Cohort";
const INTERMEDIATE_SUBJECT: &str = "CN=cohort-simulated-nitro-intermediate,OU=simulation,O=Cohort";

impl SimulatedCa {
    /// A fresh CA whose validity starts at `not_before` (seconds since the epoch).
    pub fn generate_at(
        rng: &mut (impl RngCore + CryptoRng),
        not_before: Duration,
    ) -> Result<Self, SimError> {
        let root_key = SigningKey::random(rng);
        let root_der = issue(
            Profile::Root,
            ROOT_SUBJECT,
            &root_key,
            &root_key,
            not_before,
            ROOT_LIFETIME,
            rng,
        )?;
        let intermediate_key = SigningKey::random(rng);
        let intermediate_der = issue(
            Profile::SubCA {
                issuer: subject_of(&root_der)?,
                path_len_constraint: Some(0),
            },
            INTERMEDIATE_SUBJECT,
            &intermediate_key,
            &root_key,
            not_before,
            INTERMEDIATE_LIFETIME,
            rng,
        )?;
        // The root key is dropped here: nothing can issue another intermediate.
        Ok(Self {
            root_der,
            intermediate_der,
            intermediate_key,
        })
    }

    /// A fresh CA valid from an hour ago.
    pub fn generate() -> Result<Self, SimError> {
        Self::generate_at(
            &mut rand::rngs::OsRng,
            unix_now().saturating_sub(Duration::from_secs(3600)),
        )
    }

    /// DER of the root certificate: what a verifier pins.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// PEM of the root certificate.
    pub fn root_pem(&self) -> String {
        der_to_pem(&self.root_der)
            .expect("the root certificate was parsed when it was made or loaded")
    }

    /// Issues a leaf certificate for a new key, valid from `not_before` for `lifetime`.
    pub fn issue_leaf(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        module_id: &str,
        not_before: Duration,
        lifetime: Duration,
    ) -> Result<(SigningKey, Vec<u8>), SimError> {
        let key = SigningKey::random(rng);
        let der_bytes = issue(
            Profile::Leaf {
                issuer: subject_of(&self.intermediate_der)?,
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            &format!("CN={module_id}.simulated.cohort,OU=simulation,O=Cohort"),
            &key,
            &self.intermediate_key,
            not_before,
            lifetime,
            rng,
        )?;
        Ok((key, der_bytes))
    }

    /// Issues a TLS server certificate for `dns_name` (subject alternative name, server
    /// authentication), valid from an hour ago for `lifetime`: the local KMS stand-in's, which
    /// simulated enclaves check against this CA's root as production enclaves check KMS's
    /// against Amazon's. Returns the key (PKCS#8 DER) and the chain, leaf first.
    pub fn issue_tls_server(
        &self,
        dns_name: &str,
        lifetime: Duration,
    ) -> Result<TlsServerCredentials, SimError> {
        let rng = &mut rand::rngs::OsRng;
        let key = SigningKey::random(rng);
        let leaf = issue_with(
            Profile::Leaf {
                issuer: subject_of(&self.intermediate_der)?,
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            &format!("CN={dns_name},OU=simulation,O=Cohort"),
            &key,
            &self.intermediate_key,
            unix_now().saturating_sub(Duration::from_secs(3600)),
            lifetime,
            rng,
            Some(dns_name),
        )?;
        let pkcs8 = key.to_pkcs8_der().map_err(invalid)?;
        Ok((
            zeroize::Zeroizing::new(pkcs8.as_bytes().to_vec()),
            vec![leaf, self.intermediate_der.clone()],
        ))
    }

    /// The `cabundle` of documents issued under this CA: root first.
    pub fn cabundle(&self) -> Vec<Vec<u8>> {
        vec![self.root_der.clone(), self.intermediate_der.clone()]
    }

    /// Writes `root.pem`, `intermediate.pem` and `intermediate.key.pem` (mode 0600) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), SimError> {
        fs::create_dir_all(dir)?;
        write_atomic(dir, "root.pem", self.root_pem().as_bytes(), 0o644)?;
        write_atomic(
            dir,
            "intermediate.pem",
            der_to_pem(&self.intermediate_der)?.as_bytes(),
            0o644,
        )?;
        let key = self
            .intermediate_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(invalid)?;
        write_atomic(dir, "intermediate.key.pem", key.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Reads a CA written by [`SimulatedCa::save`].
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        let root_der = pem_to_der(&fs::read_to_string(dir.join("root.pem"))?)?;
        let intermediate_der = pem_to_der(&fs::read_to_string(dir.join("intermediate.pem"))?)?;
        let key_pem =
            zeroize::Zeroizing::new(fs::read_to_string(dir.join("intermediate.key.pem"))?);
        let intermediate_key = SigningKey::from_pkcs8_pem(&key_pem).map_err(invalid)?;
        let cert = Certificate::from_der(&intermediate_der).map_err(invalid)?;
        let stored = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .map(|b| b.to_vec());
        let actual = intermediate_key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        if stored.as_deref() != Some(actual.as_slice()) {
            return Err(SimError::Invalid(
                "intermediate key does not match its certificate".into(),
            ));
        }
        Ok(Self {
            root_der,
            intermediate_der,
            intermediate_key,
        })
    }

    /// Loads the CA in `dir`, or creates and saves one if `dir` holds none.
    pub fn load_or_generate(dir: &Path) -> Result<Self, SimError> {
        if dir.join("root.pem").exists() {
            Self::load(dir)
        } else {
            let ca = Self::generate()?;
            ca.save(dir)?;
            Ok(ca)
        }
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(tmp, dir.join(name))
}

pub use crate::pem::{der_to_pem, pem_to_der};

/// SHA-384 of a file: the simulated measurement of an enclave executable.
pub fn measure_file(path: &Path) -> io::Result<[u8; 48]> {
    let mut file = fs::File::open(path)?;
    let mut h = Sha384::new();
    io::copy(&mut file, &mut h)?;
    Ok(h.finalize().into())
}

/// The simulated PCRs of an enclave whose executable hashes to `image_digest`.
pub fn simulated_pcrs(image_digest: &[u8; 48]) -> BTreeMap<usize, Vec<u8>> {
    let mut pcrs: BTreeMap<usize, Vec<u8>> = (0..PCR_COUNT).map(|i| (i, vec![0u8; 48])).collect();
    pcrs.insert(0, image_digest.to_vec());
    pcrs.insert(
        1,
        Sha384::digest(b"cohort-simulated-kernel-and-boot-ramfs/v1").to_vec(),
    );
    let mut h = Sha384::new();
    h.update(b"cohort-simulated-application/v1");
    h.update(image_digest);
    pcrs.insert(2, h.finalize().to_vec());
    pcrs
}

/// All-zero PCRs, as a debug-mode enclave reports them.
pub fn debug_pcrs() -> BTreeMap<usize, Vec<u8>> {
    (0..PCR_COUNT).map(|i| (i, vec![0u8; 48])).collect()
}

/// Everything that goes into one document; [`build_document`] signs it.
pub struct DocumentParts<'a> {
    /// The NSM module id.
    pub module_id: &'a str,
    /// Milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// PCRs by index.
    pub pcrs: BTreeMap<usize, Vec<u8>>,
    /// DER of the leaf certificate.
    pub leaf_der: Vec<u8>,
    /// Root first, then intermediates.
    pub cabundle: Vec<Vec<u8>>,
    /// user_data, nonce and public_key.
    pub request: AttestationRequest,
}

/// Builds and signs a COSE_Sign1 attestation document with `leaf_key` (no limit checks: the
/// test vectors use this to build documents that break them).
pub fn build_document(
    leaf_key: &SigningKey,
    parts: DocumentParts<'_>,
) -> Result<Vec<u8>, NsmError> {
    let doc = AttestationDoc::new(
        parts.module_id.to_string(),
        NsmDigest::SHA384,
        parts.timestamp_ms,
        parts.pcrs,
        parts.leaf_der,
        parts.cabundle,
        parts.request.user_data,
        parts.request.nonce,
        parts.request.public_key,
    );
    sign_payload(leaf_key, &doc.to_binary())
}

/// Signs `payload` as a COSE_Sign1 (ES384, untagged, empty unprotected header) like the NSM.
pub fn sign_payload(leaf_key: &SigningKey, payload: &[u8]) -> Result<Vec<u8>, NsmError> {
    let cose = CoseSign1::new::<Sha2>(payload, &HeaderMap::new(), &P384Private(leaf_key.clone()))
        .map_err(|e| NsmError::Device(format!("cose signing failed: {e}")))?;
    cose.as_bytes(false)
        .map_err(|e| NsmError::Device(format!("cose encoding failed: {e}")))
}

struct Leaf {
    key: SigningKey,
    der: Vec<u8>,
    not_after: Duration,
}

/// A software NSM for simulated mode.
pub struct SimulatedNsm {
    ca: SimulatedCa,
    module_id: String,
    pcrs: BTreeMap<usize, Vec<u8>>,
    leaf: Mutex<Option<Leaf>>,
}

impl std::fmt::Debug for SimulatedNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNsm")
            .field("module_id", &self.module_id)
            .finish_non_exhaustive()
    }
}

impl SimulatedNsm {
    /// A simulated NSM reporting `pcrs`, issuing documents under `ca`.
    pub fn new(ca: SimulatedCa, module_id: String, pcrs: BTreeMap<usize, Vec<u8>>) -> Self {
        Self {
            ca,
            module_id,
            pcrs,
            leaf: Mutex::new(None),
        }
    }

    /// The PCRs this NSM reports.
    pub fn pcrs(&self) -> &BTreeMap<usize, Vec<u8>> {
        &self.pcrs
    }
}

impl Nsm for SimulatedNsm {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        check_request(request)?;
        let now = unix_now();
        let mut guard = self
            .leaf
            .lock()
            .map_err(|_| NsmError::Device("leaf lock poisoned".into()))?;
        let renew = match guard.as_ref() {
            Some(leaf) => leaf.not_after.saturating_sub(now) < RENEW_BEFORE,
            None => true,
        };
        if renew {
            // Backdated by a minute so verifiers with a slightly slow clock accept it.
            let not_before = now.saturating_sub(Duration::from_secs(60));
            let (key, der) = self
                .ca
                .issue_leaf(
                    &mut rand::rngs::OsRng,
                    &self.module_id,
                    not_before,
                    LEAF_LIFETIME,
                )
                .map_err(|e| NsmError::Device(e.to_string()))?;
            *guard = Some(Leaf {
                key,
                der,
                not_after: not_before + LEAF_LIFETIME,
            });
        }
        let leaf = guard.as_ref().expect("leaf was set just above");
        build_document(
            &leaf.key,
            DocumentParts {
                module_id: &self.module_id,
                timestamp_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
                pcrs: self.pcrs.clone(),
                leaf_der: leaf.der.clone(),
                cabundle: self.ca.cabundle(),
                request: request.clone(),
            },
        )
    }

    fn kind(&self) -> &'static str {
        "simulated"
    }
}

/// A P-384 signing key (the simulated NSM's leaf key).
struct P384Private(pub SigningKey);

impl SigningPublicKey for P384Private {
    fn get_parameters(&self) -> Result<(SignatureAlgorithm, MessageDigest), CoseError> {
        Ok((SignatureAlgorithm::ES384, MessageDigest::Sha384))
    }

    fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CoseError> {
        crate::cose::P384Public(*self.0.verifying_key()).verify(digest, signature)
    }
}

impl SigningPrivateKey for P384Private {
    fn sign(&self, digest: &[u8]) -> Result<Vec<u8>, CoseError> {
        let sig: Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|e| CoseError::SignatureError(Box::new(e)))?;
        Ok(sig.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdentityKeys, Policy, verify};

    #[test]
    fn live_document_verifies_and_ca_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = SimulatedCa::load_or_generate(dir.path()).unwrap();
        let root = ca.root_der().to_vec();
        // A second load gives the same root: `cohort sim up` reuses its directory.
        let ca = SimulatedCa::load_or_generate(dir.path()).unwrap();
        assert_eq!(ca.root_der(), root.as_slice());

        let image = [7u8; 48];
        let nsm = SimulatedNsm::new(ca, "sim-1".into(), simulated_pcrs(&image));
        let keys = IdentityKeys {
            signing: [1; 32],
            encryption: [2; 32],
        };
        let nonce = vec![9u8; 16];
        let doc = nsm
            .attest(&AttestationRequest {
                user_data: Some(keys.binding().to_vec()),
                nonce: Some(nonce.clone()),
                public_key: Some(keys.to_bytes().to_vec()),
            })
            .unwrap();
        let mut policy = Policy::default()
            .with_root(root)
            .allow_pcr(0, image.to_vec());
        policy.nonce = Some(nonce);
        policy.max_age = Some(Duration::from_secs(60));
        policy.identity = Some(keys);
        let verified = verify(&doc, &policy, unix_now()).unwrap();
        assert_eq!(verified.module_id, "sim-1");
        assert_eq!(verified.pcrs.len(), PCR_COUNT);
        assert_eq!(verified.identity, Some(keys));
    }

    /// Review finding: what `public_key` holds when it is not a binding this verifier knows is
    /// said plainly — a KMS Recipient document's DER key is "not an identity binding", a small
    /// unknown version is `unsupported_binding` (also when the verifier expects given keys).
    #[test]
    fn documents_without_a_known_binding_are_named() {
        let ca = SimulatedCa::generate().unwrap();
        let root = ca.root_der().to_vec();
        let nsm = SimulatedNsm::new(ca, "sim-1".into(), simulated_pcrs(&[7u8; 48]));
        let doc = |public_key: Vec<u8>| {
            nsm.attest(&AttestationRequest {
                user_data: Some(b"cohort/kms-recipient/v1".to_vec()),
                nonce: None,
                public_key: Some(public_key),
            })
            .unwrap()
        };
        let mut policy = Policy::default().with_root(root);
        policy.require_identity = true;
        let recipient = doc(vec![0x30, 0x82, 0x01, 0x22, 0x30]);
        let e = verify(&recipient, &policy, unix_now()).unwrap_err();
        assert_eq!(e.kind(), "user_data_mismatch");
        assert!(e.to_string().contains("not an identity binding"), "{e}");
        let future = doc(vec![3; 98]);
        let e = verify(&future, &policy, unix_now()).unwrap_err();
        assert_eq!(e, crate::VerifyError::UnsupportedBinding { version: 3 });
        policy.identity = Some(IdentityKeys {
            signing: [1; 32],
            encryption: [2; 32],
        });
        let e = verify(&future, &policy, unix_now()).unwrap_err();
        assert_eq!(e, crate::VerifyError::UnsupportedBinding { version: 3 });
        let e = verify(&recipient, &policy, unix_now()).unwrap_err();
        assert_eq!(e.kind(), "user_data_mismatch");
    }

    #[test]
    fn oversized_requests_are_refused() {
        let ca = SimulatedCa::generate().unwrap();
        let nsm = SimulatedNsm::new(ca, "sim-1".into(), debug_pcrs());
        let err = nsm
            .attest(&AttestationRequest {
                nonce: Some(vec![0; 513]),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(err, NsmError::InvalidRequest(_)));
    }

    #[test]
    fn tampered_key_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        SimulatedCa::generate().unwrap().save(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        SimulatedCa::generate().unwrap().save(other.path()).unwrap();
        fs::copy(
            other.path().join("intermediate.key.pem"),
            dir.path().join("intermediate.key.pem"),
        )
        .unwrap();
        assert!(matches!(
            SimulatedCa::load(dir.path()),
            Err(SimError::Invalid(_))
        ));
    }
}
