//! `cohort key import` for a process that holds every dealing share (a holder of several, a
//! simulated cluster's import): check the files, take every node's identity key from a document
//! verified against the pinned genesis, have the admins approve the import, deal each share,
//! submit, and check the key the cluster answers (its receipts, the legacy public key).

use anyhow::bail;
use coordinator::api::{ApprovedJson, ImportBody, ImportKeyJson, KeyInfo, SealedDealingJson, Wire};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use protocol::import::{ImportKey, SealedDealing};
use protocol::policy::{Approved, Canonical, CreateKey, MAX_REQUEST_VALIDITY_SECS, Scheme};
use reshare::generic_ec::Curve;
use serde_bytes::ByteBuf;
use sha2::Digest;

use super::deal::{import_request, member_keys, seal_dealing};
use super::inspect::{Format, LegacyShares};
use super::{Holders, LegacyKey, LegacyShare};
use crate::requests;
use crate::trust::Trust;

/// The key an import makes: what `cohort key create` takes, and the chain code to keep.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// The key's id in the cluster.
    pub key_id: String,
    /// Nodes needed to sign (the new threshold).
    pub threshold: u16,
    /// Approvers' public keys.
    pub approvers: Vec<[u8; 32]>,
    /// Approvals a signature needs.
    pub approvals_needed: u16,
    /// The chain code to keep, if not the one the files carry.
    pub chain_code: Option<[u8; 32]>,
    /// The Bitcoin-family network (`CHAIN:NETWORK`) whose legacy funds are at the key's own
    /// address (there the empty path signs), if any.
    pub master_key_network: Option<String>,
}

impl ImportPlan {
    /// The key as the cluster will hold it, for the pinned cluster, valid for as long as a
    /// request may be (an import across machines needs the time), under the genesis' admins
    /// and roster (the caller names the admin version in force,
    /// `crate::admins::admin_version`, and the roster version whose nodes it deals to,
    /// `super::deal::member_keys`).
    pub fn create_key(&self, trust: &Trust, scheme: Scheme) -> CreateKey {
        let approvers: Vec<ByteBuf> = self
            .approvers
            .iter()
            .map(|k| ByteBuf::from(k.to_vec()))
            .collect();
        let mut key = requests::create_key(
            trust.cluster_id(),
            &self.key_id,
            scheme,
            self.threshold,
            &approvers,
            self.approvals_needed,
        );
        key.expiry = key.created + MAX_REQUEST_VALIDITY_SECS;
        key
    }
}

/// Where the cluster is and whom it answers to.
pub struct Cluster<'a> {
    /// The coordinator.
    pub api: &'a ApiClient,
    /// The pinned genesis.
    pub trust: &'a Trust,
    /// The attestation root the nodes' documents chain to (DER).
    pub root_der: &'a [u8],
}

async fn import_holders<E: Curve>(
    cluster: &Cluster<'_>,
    scheme: Scheme,
    shares: Vec<LegacyShare<E>>,
    plan: &ImportPlan,
    admins: &[SigningKey],
) -> anyhow::Result<KeyInfo> {
    let holders = Holders::check(shares)?;
    let legacy = LegacyKey::of_shares(&holders.shares)?;
    let positions: Vec<usize> = holders.shares.iter().map(|s| s.index).collect();
    let (roster, members) = member_keys(cluster.api, cluster.trust, cluster.root_der).await?;
    let mut key = plan.create_key(cluster.trust, scheme);
    key.admins = crate::admins::admin_version(cluster.api).await?;
    key.roster = roster;
    let request = import_request(
        key,
        &legacy,
        &positions,
        plan.chain_code,
        plan.master_key_network.clone(),
    )?;
    let approved = requests::approve(&request, admins);
    let hash: [u8; 32] = sha2::Sha256::digest(request.canonical_bytes()).into();
    let mut rng = rand::rngs::OsRng;
    let dealings = holders
        .shares
        .iter()
        .enumerate()
        .map(|(i, s)| {
            seal_dealing(
                &mut rng,
                &holders.dealers,
                i,
                s,
                &members,
                plan.threshold,
                &hash,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    submit(cluster, &approved, &dealings).await
}

/// Submits an approved import with one dealing per dealer (in the request's order), and checks
/// the key the cluster answers: every node's receipt against the pinned genesis, naming this
/// import request, and the legacy public key.
pub async fn submit(
    cluster: &Cluster<'_>,
    approved: &Approved<ImportKey>,
    dealings: &[SealedDealing],
) -> anyhow::Result<KeyInfo> {
    let request = &approved.request;
    let body = ImportBody {
        import: ApprovedJson::<ImportKeyJson>::from_wire(approved),
        dealings: dealings.iter().map(SealedDealingJson::from_wire).collect(),
    };
    let info: KeyInfo = cluster
        .api
        .post("/v1/keys/import", &body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let verified = cluster.trust.check_key(cluster.api, info).await?;
    let info = verified.info();
    let named = info.receipts.as_ref().and_then(|r| r.import.as_ref());
    if named.map(Wire::to_wire).as_ref() != Some(request)
        || info.public_key.0 != request.public_key.as_slice()
    {
        bail!("the coordinator answered another key than the one imported");
    }
    Ok(info.clone())
}

/// Imports the key the holders' files (`shares`, with frost's public key package `public`)
/// share, every file's holder dealing.
pub async fn import_files(
    cluster: &Cluster<'_>,
    format: Format,
    shares: &[impl AsRef<std::path::Path>],
    public: Option<&std::path::Path>,
    plan: &ImportPlan,
    admins: &[SigningKey],
) -> anyhow::Result<KeyInfo> {
    let scheme = format.scheme();
    match LegacyShares::read(format, shares, public)? {
        LegacyShares::Secp256k1(s) => import_holders(cluster, scheme, s, plan, admins).await,
        LegacyShares::Ed25519(s) => import_holders(cluster, scheme, s, plan, admins).await,
    }
}
