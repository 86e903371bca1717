//! API credentials (ADR 0017): how a call is signed, the roles, and the credential bodies.
//!
//! Every route but `/healthz`, `/readyz` and `/metrics` needs a credential: an Ed25519 key whose
//! public half an admin registered with a role. A call carries
//!
//! ```text
//! Authorization: Cohort-Ed25519 credential=NAME, timestamp=UNIX_SECONDS, nonce=32 HEX, signature=128 HEX
//! ```
//!
//! where the signature is over [`signing_bytes`]: `"cohort/api-request/v1\0" || CBOR([credential,
//! method, path and query, Idempotency-Key or "", SHA-256(body), timestamp, nonce])`, the way
//! approvals are signed (a domain, then CBOR). The coordinator accepts a timestamp within
//! [`MAX_SKEW_SECS`] of its clock and each nonce once.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::Hex;

/// The `Authorization` scheme.
pub const AUTH_SCHEME: &str = "Cohort-Ed25519";

/// The domain of a signed call.
pub const DOMAIN: &[u8] = b"cohort/api-request/v1\0";

/// How far a call's timestamp may be from the coordinator's clock, either way, in seconds.
pub const MAX_SKEW_SECS: u64 = 60;

/// Longest credential name.
pub const MAX_NAME_LEN: usize = 64;

/// What a credential may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read the cluster, keys, signatures, the audit log and the API document.
    Read,
    /// Also submit approved requests: create keys, sign, prepare and assemble transactions.
    Request,
    /// Also run genesis, enroll and attest nodes, and register and revoke credentials.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Request => "request",
            Self::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "request" => Ok(Self::Request),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role `{other}` (read, request or admin)")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` is a valid credential name: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The bytes a call's signature covers.
pub fn signing_bytes(
    credential: &str,
    method: &str,
    path_and_query: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
    timestamp: u64,
    nonce: &[u8; 16],
) -> Vec<u8> {
    let mut out = DOMAIN.to_vec();
    let digest = ByteBuf::from(Sha256::digest(body).to_vec());
    ciborium::into_writer(
        &(
            credential,
            method,
            path_and_query,
            idempotency_key.unwrap_or(""),
            digest,
            timestamp,
            ByteBuf::from(nonce.to_vec()),
        ),
        &mut out,
    )
    .expect("serializing into a Vec cannot fail");
    out
}

/// The parts of an `Authorization: Cohort-Ed25519 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// The credential's name.
    pub credential: String,
    /// Unix seconds when the call was signed.
    pub timestamp: u64,
    /// 16 random bytes, used once.
    pub nonce: [u8; 16],
    /// The Ed25519 signature over [`signing_bytes`].
    pub signature: [u8; 64],
}

impl AuthHeader {
    /// Parses a header value; `None` for anything but exactly the four parameters, each once.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix(AUTH_SCHEME)?.strip_prefix(' ')?;
        let (mut credential, mut timestamp, mut nonce, mut signature) = (None, None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            let slot = match k {
                "credential" => &mut credential,
                "timestamp" => &mut timestamp,
                "nonce" => &mut nonce,
                "signature" => &mut signature,
                _ => return None,
            };
            if slot.replace(v).is_some() {
                return None;
            }
        }
        let credential = credential?;
        if !valid_name(credential) {
            return None;
        }
        let timestamp = timestamp?;
        if timestamp.is_empty()
            || timestamp.len() > 20
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Self {
            credential: credential.to_string(),
            timestamp: timestamp.parse().ok()?,
            nonce: hex_array(nonce?)?,
            signature: hex_array(signature?)?,
        })
    }

    /// The header value.
    pub fn render(&self) -> String {
        format!(
            "{AUTH_SCHEME} credential={}, timestamp={}, nonce={}, signature={}",
            self.credential,
            self.timestamp,
            hex::encode(self.nonce),
            hex::encode(self.signature)
        )
    }
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

/// An API key: a credential's name and its Ed25519 signing key. `Debug` shows the name and
/// the public key only; the secret is zeroized when dropped.
#[derive(Clone)]
pub struct ApiKey {
    credential: String,
    key: SigningKey,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("credential", &self.credential)
            .field(
                "public_key",
                &hex::encode(self.key.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

/// The file an API key lives in (mode 0600): `{"credential", "secret_key"}`; zeroized when
/// dropped.
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct ApiKeyFile {
    credential: String,
    secret_key: String,
}

/// A credential's public half, as an admin registers it (`--admin-key` files hold one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicCredential {
    /// The credential's name.
    pub credential: String,
    /// Its Ed25519 public key (32 bytes).
    pub public_key: Hex,
}

/// Why an API key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The file is not an API key.
    #[error("{path} is not a Cohort API key file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why (never the file's contents).
        reason: String,
    },
}

impl ApiKey {
    /// A new key for credential `name`.
    pub fn generate(credential: &str) -> Result<Self, String> {
        if !valid_name(credential) {
            return Err(format!(
                "`{credential}` is not a credential name (1 to {MAX_NAME_LEN} of a-z 0-9 . _ -)"
            ));
        }
        Ok(Self {
            credential: credential.into(),
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        })
    }

    /// The credential's name.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The public half.
    pub fn public(&self) -> PublicCredential {
        PublicCredential {
            credential: self.credential.clone(),
            public_key: Hex(self.key.verifying_key().to_bytes().to_vec()),
        }
    }

    /// Reads a key file written by [`ApiKey::save`]; refuses one that others may read.
    pub fn load(path: &std::path::Path) -> Result<Self, KeyFileError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let mode = std::fs::metadata(path)
            .map_err(|error| KeyFileError::Io {
                path: shown.clone(),
                error,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Invalid {
                path: shown,
                reason: format!(
                    "its mode {:o} lets others read it: chmod 600 it (and make a new key if \
                     others may have read it)",
                    mode & 0o777
                ),
            });
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            KeyFileError::Io {
                path: shown.clone(),
                error,
            }
        })?);
        let invalid = |reason: &str| KeyFileError::Invalid {
            path: shown.clone(),
            reason: reason.into(),
        };
        let file: ApiKeyFile = serde_json::from_str(&text)
            .map_err(|_| invalid("not {\"credential\", \"secret_key\"} JSON"))?;
        if !valid_name(&file.credential) {
            return Err(invalid("the credential name is not valid"));
        }
        let seed = zeroize::Zeroizing::new(
            hex::decode(&file.secret_key).map_err(|_| invalid("secret_key is not hex"))?,
        );
        let seed: &[u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| invalid("secret_key is not 32 bytes"))?;
        Ok(Self {
            credential: file.credential.clone(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// Writes the key to a new file `path`, readable by its owner only.
    pub fn save(&self, path: &std::path::Path) -> Result<(), KeyFileError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = ApiKeyFile {
            credential: self.credential.clone(),
            secret_key: hex::encode(self.key.to_bytes()),
        };
        let text = zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&file).expect("a key file serializes") + "\n",
        );
        let io = |error| KeyFileError::Io {
            path: path.display().to_string(),
            error,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The `Authorization` header value of a call signed now with a fresh nonce.
    pub fn authorize(
        &self,
        method: &str,
        path_and_query: &str,
        idempotency_key: Option<&str>,
        body: &[u8],
        timestamp: u64,
    ) -> String {
        let nonce: [u8; 16] = rand::random();
        let bytes = signing_bytes(
            &self.credential,
            method,
            path_and_query,
            idempotency_key,
            body,
            timestamp,
            &nonce,
        );
        AuthHeader {
            credential: self.credential.clone(),
            timestamp,
            nonce,
            signature: self.key.sign(&bytes).to_bytes(),
        }
        .render()
    }
}

/// `POST /v1/credentials`: registers a credential (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterCredential {
    /// Its name: 1 to 64 of `a-z 0-9 . _ -`.
    pub credential: String,
    /// Its Ed25519 public key (32 bytes).
    pub public_key: Hex,
    /// Its role.
    pub role: Role,
    /// Unix seconds after which it is refused (`null`: until revoked).
    #[serde(default)]
    pub expires: Option<u64>,
}

/// A registered credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInfo {
    /// Its name.
    pub credential: String,
    /// Its Ed25519 public key.
    pub public_key: Hex,
    /// Its role.
    pub role: Role,
    /// Unix seconds when it was registered.
    pub created: u64,
    /// Unix seconds after which it is refused, if ever.
    pub expires: Option<u64>,
    /// Unix seconds when it was revoked, if it was.
    pub revoked: Option<u64>,
    /// The credential that registered it (`bootstrap` for one from `--admin-key`).
    pub registered_by: String,
}

/// `GET /v1/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialList {
    /// Every credential, by name, revoked ones included.
    pub credentials: Vec<CredentialInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_malformed_ones_are_refused() {
        let key = ApiKey::generate("ops-1").unwrap();
        let value = key.authorize("GET", "/v1/keys", None, b"", 1_700_000_000);
        let h = AuthHeader::parse(&value).unwrap();
        assert_eq!(h.credential, "ops-1");
        assert_eq!(h.timestamp, 1_700_000_000);
        assert_eq!(AuthHeader::parse(&h.render()).unwrap(), h);
        let sig = hex::encode(h.signature);
        let nonce = hex::encode(h.nonce);
        for bad in [
            String::new(),
            "Bearer x".into(),
            format!("Cohort-Ed25519 credential=ops-1, timestamp=1, nonce={nonce}"),
            format!(
                "Cohort-Ed25519 credential=ops-1, timestamp=1, nonce={nonce}, signature={sig}, x=1"
            ),
            format!(
                "Cohort-Ed25519 credential=ops-1, credential=ops-1, timestamp=1, nonce={nonce}, signature={sig}"
            ),
            format!("Cohort-Ed25519 credential=Ops, timestamp=1, nonce={nonce}, signature={sig}"),
            format!(
                "Cohort-Ed25519 credential=ops-1, timestamp=-1, nonce={nonce}, signature={sig}"
            ),
            format!(
                "Cohort-Ed25519 credential=ops-1, timestamp=99999999999999999999, nonce={nonce}, signature={sig}"
            ),
            format!("Cohort-Ed25519 credential=ops-1, timestamp=1, nonce=00, signature={sig}"),
            format!(
                "Cohort-Ed25519 credential=ops-1, timestamp=1, nonce={nonce}, signature={}",
                sig.to_uppercase()
            ),
        ] {
            assert_eq!(AuthHeader::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn every_signed_field_changes_the_bytes() {
        let n = [7u8; 16];
        let base = signing_bytes("a", "POST", "/v1/signatures", Some("k"), b"{}", 5, &n);
        assert!(base.starts_with(DOMAIN));
        for other in [
            signing_bytes("b", "POST", "/v1/signatures", Some("k"), b"{}", 5, &n),
            signing_bytes("a", "GET", "/v1/signatures", Some("k"), b"{}", 5, &n),
            signing_bytes("a", "POST", "/v1/signatures?x", Some("k"), b"{}", 5, &n),
            signing_bytes("a", "POST", "/v1/signatures", None, b"{}", 5, &n),
            signing_bytes("a", "POST", "/v1/signatures", Some("k"), b"{ }", 5, &n),
            signing_bytes("a", "POST", "/v1/signatures", Some("k"), b"{}", 6, &n),
            signing_bytes("a", "POST", "/v1/signatures", Some("k"), b"{}", 5, &[8; 16]),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn names_and_roles() {
        assert!(valid_name("admin") && valid_name("ops.team_1-x") && valid_name(&"a".repeat(64)));
        for bad in ["", "-a", "A", "a b", "a/b", &"a".repeat(65), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(Role::Admin.allows(Role::Read) && Role::Request.allows(Role::Request));
        assert!(!Role::Read.allows(Role::Request) && !Role::Request.allows(Role::Admin));
        assert_eq!("request".parse::<Role>(), Ok(Role::Request));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn key_files_round_trip_owner_only_and_debug_hides_the_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let key = ApiKey::generate("admin").unwrap();
        key.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = ApiKey::load(&path).unwrap();
        assert_eq!(back.public(), key.public());
        assert!(
            key.save(&path).is_err(),
            "an existing file is not overwritten"
        );
        let secret = hex::encode(key.key.to_bytes());
        assert!(!format!("{key:?}").contains(&secret));
        std::fs::write(&path, "{\"credential\":\"admin\",\"secret_key\":\"00\"}").unwrap();
        let e = ApiKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("32 bytes"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ApiKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
