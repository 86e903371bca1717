//! The pinned genesis (ADR 0013 §4): what this machine trusts about a cluster, and the check
//! of every key the coordinator reports against it.
//!
//! The coordinator is outside the trust boundary. It could report a public key or chain code
//! of its own, so a client that is about to show an address or approve a transaction checks
//! the key first: every node of the pinned roster must have signed the key's receipt
//! (`protocol::receipt::KeyReceipt`) with the node key the roster lists for it. The genesis is
//! pinned once, by the ceremony (`cohort genesis`) or by `cohort trust --genesis FILE`, and
//! read from this machine afterwards, never from the coordinator.

use std::path::{Path, PathBuf};

use coordinator::api::{ApprovedJson, GenesisV2Json, KeyInfo};
use coordinator::client::ApiClient;
use protocol::genesis::{ClusterId, Genesis, RosterEntry};
use protocol::policy::Approved;
use protocol::receipt::ReceiptError;

/// The file a pinned genesis lives in, inside a sim cluster's directory.
pub const SIM_TRUST_FILE: &str = "trusted-genesis.json";

/// Why a genesis cannot be pinned or read, or a key is not the pinned cluster's.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Nothing is pinned at the path.
    #[error(
        "no pinned genesis at {0}: pin the cluster's approved genesis first (cohort trust --genesis FILE, or the genesis ceremony)"
    )]
    NotPinned(PathBuf),
    /// The file cannot be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The file is not an approved genesis with a roster.
    #[error("{path}: not an approved genesis with a roster: {error}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The genesis does not carry its admin quorum's approvals.
    #[error("{path}: the genesis is not approved by its admin quorum: {error}")]
    Unapproved {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The pin is a symbolic link, or others may write it: whoever can write the file chooses
    /// what this machine trusts.
    #[error(
        "{path}: {why}; a pinned genesis must be a regular file only its owner may write (chmod go-w)"
    )]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// Another genesis is pinned at the path already.
    #[error(
        "{path} pins cluster {pinned} already; refusing to replace it with {offered} (remove the file to trust another cluster)"
    )]
    OtherPinned {
        /// The file.
        path: PathBuf,
        /// The cluster pinned.
        pinned: ClusterId,
        /// The cluster offered.
        offered: ClusterId,
    },
    /// The key as reported differs from its approved creation request.
    #[error(
        "key {key_id} is refused: its {what} is not the one its approved creation request names (creation_mismatch)"
    )]
    Creation {
        /// The key.
        key_id: String,
        /// Which field.
        what: &'static str,
    },
    /// The key's receipts do not show that the pinned cluster's nodes hold it.
    #[error(
        "key {key_id} is refused: its receipts do not verify against the pinned genesis of cluster {cluster}: {error}"
    )]
    Key {
        /// The key.
        key_id: String,
        /// The pinned cluster.
        cluster: ClusterId,
        /// Why.
        error: ReceiptError,
    },
    /// A reshared key whose current generation not every node says it signs with: it may be
    /// sealed everywhere and still not retired into (the nodes signing with the one before).
    #[error(
        "key {key_id} is refused: node {node} does not say (signed with its node key) that generation {generation} is its current one (not_retired)"
    )]
    NotRetired {
        /// The key.
        key_id: String,
        /// The generation claimed.
        generation: u32,
        /// The first node whose statement is missing or does not verify.
        node: u16,
    },
    /// The key's receipts are signed under a roster version the rosters checked here do not
    /// hold.
    #[error(
        "key {key_id} is refused: its receipts are signed under roster version {version}, which \
         the committed roster changes checked here do not make (unknown_roster)"
    )]
    UnknownRoster {
        /// The key.
        key_id: String,
        /// The roster version named.
        version: u32,
    },
}

/// An approved genesis this machine trusts.
#[derive(Debug, Clone)]
pub struct Trust {
    approved: Approved<Genesis>,
    cluster: ClusterId,
    /// The cluster's rosters by version that node statements and key receipts are checked
    /// under: the pinned genesis' alone, or with every committed change's once this machine
    /// checked them (`crate::roster::checked_trust`).
    rosters: Vec<Vec<RosterEntry>>,
}

/// A key whose receipts verified against the pinned genesis: only [`Trust::verify_key`]
/// makes one, so whatever takes it uses a public key and chain code the cluster's nodes signed.
#[derive(Debug, Clone)]
pub struct VerifiedKey(KeyInfo);

impl VerifiedKey {
    /// The key, as verified.
    pub fn info(&self) -> &KeyInfo {
        &self.0
    }
}

/// Checks that `approved` is a well-formed genesis with a roster carrying its admin quorum's
/// approvals (what every enclave checked before accepting it).
fn check(approved: &Approved<Genesis>, path: &Path) -> Result<(), TrustError> {
    approved
        .request
        .check()
        .map_err(|e| TrustError::Malformed {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
    let admins: Vec<[u8; 32]> = approved
        .request
        .admins
        .iter()
        .filter_map(|a| a.as_slice().try_into().ok())
        .collect();
    protocol::policy::check_approvals(
        &approved.request,
        &approved.approvals,
        &admins,
        approved.request.admin_quorum,
    )
    .map_err(|e| TrustError::Unapproved {
        path: path.to_path_buf(),
        error: e.to_string(),
    })?;
    Ok(())
}

fn parse(bytes: &[u8], path: &Path) -> Result<Approved<Genesis>, TrustError> {
    let json: ApprovedJson<GenesisV2Json> =
        serde_json::from_slice(bytes).map_err(|e| TrustError::Malformed {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
    Ok(json.to_wire())
}

impl Trust {
    /// Trusts `approved` (checked: structure and admin approvals).
    pub fn new(approved: Approved<Genesis>, source: &Path) -> Result<Self, TrustError> {
        check(&approved, source)?;
        let cluster = approved.request.cluster_id();
        let rosters = vec![approved.request.roster.clone()];
        Ok(Self {
            approved,
            cluster,
            rosters,
        })
    }

    /// Reads the genesis pinned at `path`, checking it again (a file edited since is refused).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(TrustError::Unsafe {
                    path: path.to_path_buf(),
                    why: "it is a symbolic link",
                });
            }
            Ok(m) if !m.is_file() => {
                return Err(TrustError::Unsafe {
                    path: path.to_path_buf(),
                    why: "it is not a regular file",
                });
            }
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                if m.permissions().mode() & 0o022 != 0 {
                    return Err(TrustError::Unsafe {
                        path: path.to_path_buf(),
                        why: "its group or others may write it",
                    });
                }
            }
            Err(_) => {}
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrustError::NotPinned(path.to_path_buf()));
            }
            Err(error) => {
                return Err(TrustError::Io {
                    path: path.to_path_buf(),
                    error,
                });
            }
        };
        Self::new(parse(&bytes, path)?, path)
    }

    /// Reads an approved genesis from `file` (as `cohort genesis --out` wrote it), checks it,
    /// and pins it at `path`. Pinning the same genesis again changes nothing; another one is
    /// refused ([`TrustError::OtherPinned`]).
    pub fn pin_file(file: &Path, path: &Path) -> Result<Self, TrustError> {
        let bytes = std::fs::read(file).map_err(|error| TrustError::Io {
            path: file.to_path_buf(),
            error,
        })?;
        let trust = Self::new(parse(&bytes, file)?, file)?;
        trust.pin(path)?;
        Ok(trust)
    }

    /// Pins this genesis at `path` (written to a new temporary file of a random name, mode 0600,
    /// synced, and renamed over: never half written, never through a planted link). The same
    /// genesis pinned again changes nothing; another one is refused.
    pub fn pin(&self, path: &Path) -> Result<(), TrustError> {
        match Self::load(path) {
            Ok(pinned) if pinned.cluster == self.cluster => return Ok(()),
            Ok(pinned) => {
                return Err(TrustError::OtherPinned {
                    path: path.to_path_buf(),
                    pinned: pinned.cluster,
                    offered: self.cluster,
                });
            }
            Err(TrustError::NotPinned(_)) => {}
            Err(e) => return Err(e),
        }
        let io = |error| TrustError::Io {
            path: path.to_path_buf(),
            error,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let json =
            serde_json::to_vec_pretty(&ApprovedJson::<GenesisV2Json>::from_wire(&self.approved))
                .map_err(|e| io(std::io::Error::other(e)))?;
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(&json).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The pinned cluster id: what every request made here names.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster
    }

    /// The pinned genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.approved.request
    }

    /// The cluster's rosters by version that node statements and key receipts are checked
    /// under (the pinned genesis' first).
    pub fn rosters(&self) -> &[Vec<RosterEntry>] {
        &self.rosters
    }

    /// This trust with the cluster's rosters by version `rosters` (the genesis' first): the
    /// committed changes' as `crate::roster` checked them, or, while it checks them, as the
    /// coordinator lists them (a check that then fails refuses everything checked under them).
    pub(crate) fn with_rosters(&self, mut rosters: Vec<Vec<RosterEntry>>) -> Self {
        if rosters.first() != Some(&self.approved.request.roster) {
            rosters.insert(0, self.approved.request.roster.clone());
        }
        Self {
            rosters,
            ..self.clone()
        }
    }

    /// The pinned genesis with its admin approvals.
    pub fn approved(&self) -> &Approved<Genesis> {
        &self.approved
    }

    /// The pinned genesis with its admin approvals, as it was submitted.
    pub fn approved_json(&self) -> ApprovedJson<GenesisV2Json> {
        ApprovedJson::from_wire(&self.approved)
    }

    /// Checks `key` against the pinned roster: every node signed its receipt with the node
    /// key the roster lists for it, over exactly these fields and the hash of the creation
    /// request served with it, whose id, scheme, threshold and approval policy are the key's.
    /// A key whose receipts a roster this trust does not hold signed (one a committed change
    /// made) is refused here as `unknown_roster`: [`Trust::check_key`] fetches the rosters.
    pub fn verify_key(&self, key: KeyInfo) -> Result<VerifiedKey, TrustError> {
        self.verify_key_in(key, &self.rosters)
    }

    /// [`Trust::verify_key`] with the cluster's rosters by version, as this machine checked
    /// them from the pinned genesis (`crate::roster::Rosters::all`).
    pub fn verify_key_in(
        &self,
        key: KeyInfo,
        rosters: &[Vec<RosterEntry>],
    ) -> Result<VerifiedKey, TrustError> {
        use coordinator::api::KeyCheckError;
        match key.check(&self.cluster, rosters) {
            Ok(()) => Ok(VerifiedKey(key)),
            Err(KeyCheckError::Receipts(error)) => Err(TrustError::Key {
                key_id: key.key_id.clone(),
                cluster: self.cluster,
                error,
            }),
            Err(KeyCheckError::Creation(what)) => Err(TrustError::Creation {
                key_id: key.key_id.clone(),
                what,
            }),
            Err(KeyCheckError::NotRetired { generation, node }) => Err(TrustError::NotRetired {
                key_id: key.key_id.clone(),
                generation,
                node,
            }),
            Err(KeyCheckError::Roster(version)) => Err(TrustError::UnknownRoster {
                key_id: key.key_id.clone(),
                version,
            }),
        }
    }

    /// Fetches `key_id` from the coordinator and verifies it ([`Trust::verify_key`]); a key
    /// whose receipts name a roster a committed change made is checked with the rosters the
    /// coordinator reports, each checked from the pinned genesis (`crate::roster::fetch`).
    pub async fn fetch_key(&self, api: &ApiClient, key_id: &str) -> anyhow::Result<VerifiedKey> {
        let key: KeyInfo = api
            .get(&format!("/v1/keys/{key_id}"))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if key.key_id != key_id {
            anyhow::bail!(
                "the coordinator answered key {} for key {key_id}",
                key.key_id
            );
        }
        self.check_key(api, key).await
    }

    /// Verifies `key` as the coordinator answered it ([`Trust::verify_key`]), with the rosters
    /// the coordinator reports where its receipts name a roster a committed change made.
    pub async fn check_key(&self, api: &ApiClient, key: KeyInfo) -> anyhow::Result<VerifiedKey> {
        let known = |v: u32| usize::try_from(v).is_ok_and(|v| v < self.rosters.len());
        let later = key.receipts.as_ref().is_some_and(|r| {
            !known(r.roster)
                || r.reshared
                    .as_ref()
                    .is_some_and(|x| !known(x.roster) || !known(x.origin_roster))
        });
        if !later {
            return Ok(self.verify_key(key)?);
        }
        let trust = crate::roster::checked_trust(api, self).await?;
        Ok(trust.verify_key(key)?)
    }
}

/// Where the pinned genesis is: `explicit` (--trust or COHORT_TRUST); else, for a sim cluster,
/// `DIR/trusted-genesis.json`; else `$XDG_CONFIG_HOME/cohort/trusted-genesis.json` (or
/// `~/.config/...`).
pub fn trust_path(explicit: Option<&Path>, sim_dir: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(dir) = sim_dir {
        return dir.join(SIM_TRUST_FILE);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("cohort").join(SIM_TRUST_FILE)
}
