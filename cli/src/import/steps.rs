//! An import across machines (issue 19, `docs/operator-guide.md`): the legacy holders, the
//! admins and whoever submits each run one step on their own machine and pass files, so that no
//! machine ever holds more than one holder's share and no admin key meets a share.
//!
//! 1. `begin`, with one holder's file: the import request, naming the holders that will deal
//!    and the key as the cluster will hold it; written unsigned.
//! 2. `approve`, on each admin's machine: shows the request and signs its canonical bytes.
//! 3. `contribute`, on each dealing holder's machine: checks that the request imports this
//!    holder's own key with the public data the holder's file states (key, dealers' points and
//!    public shares, chain code), takes every node's identity key from a document verified here
//!    against the pinned genesis, and deals the holder's share sealed to those keys, bound to
//!    the request. What it writes is public: commitments and sealed sub-shares.
//! 4. `finish`: puts the dealings in the request's order, submits the approved request and
//!    checks the key the cluster answers (`submit::submit`).
//!
//! The request travels through hands that are not trusted (a relay could swap the approvers, the
//! threshold or the network and keep everything a holder's file can check). `begin` prints the
//! SHA-256 of its canonical bytes; the parties compare it over a channel of their own, and
//! `approve` and `contribute` refuse a request whose hash is not the one they were given
//! (`--expect-sha256`), after showing it in full (`describe`).
//!
//! The whole ceremony must end before the request expires (`MAX_REQUEST_VALIDITY_SECS` after
//! `begin`); a request that expired is begun again.

use std::path::Path;

use anyhow::{Context, bail};
use coordinator::api::{ApprovalJson, Hex, KeyInfo, SealedDealingJson, Wire};
use ed25519_dalek::SigningKey;
use protocol::import::{ImportKey, SealedDealing};
use protocol::policy::{Approved, Canonical};
use reshare::generic_ec::Curve;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::deal::{compressed, import_request, member_keys, seal_dealing};
use super::inspect::{Format, LegacyShares};
use super::submit::{Cluster, ImportPlan, submit};
use super::{LegacyKey, LegacyShare};
use crate::admins::AdminSet;
use crate::requests;
use crate::trust::Trust;

/// One holder's dealing, as `contribute` writes it and `finish` reads it. Public: the
/// sub-shares in it are sealed to the nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealingFile {
    /// The dealer's position in the request's dealer list.
    pub dealer: usize,
    /// SHA-256 of the request's canonical bytes, which every sub-share is bound to.
    pub request: Hex,
    /// The dealing.
    pub dealing: SealedDealingJson,
}

/// SHA-256 of the request's canonical bytes: what the admins sign, what every sub-share is
/// bound to, and what the parties compare out of band.
pub fn request_hash(request: &ImportKey) -> [u8; 32] {
    sha2::Sha256::digest(request.canonical_bytes()).into()
}

/// Whether `network` is a plausible `CHAIN:NETWORK` to show a person: `a-z 0-9 - _ :`.
fn plain_network(network: &str) -> bool {
    network.len() <= protocol::import::MAX_NETWORK_LEN
        && network.contains(':')
        && network
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_:".contains(&b))
}

/// Refuses a request that is not the one its `begin` printed (`expected`, hex), or that names
/// its key or network with characters a terminal could be made to misshow.
pub fn check_expected(request: &ImportKey, expected: &str) -> anyhow::Result<()> {
    if !coordinator::api::valid_key_id(&request.key.key_id) {
        bail!("the request's key id is not 1 to 64 of A-Z a-z 0-9 . _ -: refusing");
    }
    if let Some(n) = &request.master_key_network
        && !plain_network(n)
    {
        bail!("the request's master key network is not a plain CHAIN:NETWORK: refusing");
    }
    let actual = hex::encode(request_hash(request));
    if !actual.eq_ignore_ascii_case(expected.trim()) {
        bail!(
            "the request's SHA-256 is {actual}, not the {} you were given: it was altered on \
             its way, or it is another request; refusing",
            expected.trim()
        );
    }
    Ok(())
}

/// Step 1: the import request for the key `file` (a holder's share file of `format`, with
/// frost's public key package `public`) is a share of, dealt by the holders at positions
/// `holders` of the key's holder list (as `cohort key legacy` numbers them), for the admins of
/// version `admins` (the one in force) to approve, dealt to the nodes of roster version
/// `roster` (the one in force; each holder refuses to deal under another, and so does every
/// enclave).
pub fn begin(
    trust: &Trust,
    format: Format,
    file: &Path,
    public: Option<&Path>,
    holders: &[usize],
    plan: &ImportPlan,
    (admins, roster): (u32, u32),
) -> anyhow::Result<ImportKey> {
    fn request_of<E: Curve>(
        key: protocol::policy::CreateKey,
        shares: &[LegacyShare<E>],
        holders: &[usize],
        plan: &ImportPlan,
    ) -> Result<ImportKey, super::ImportError> {
        import_request(
            key,
            &LegacyKey::of_shares(shares)?,
            holders,
            plan.chain_code,
            plan.master_key_network.clone(),
        )
    }
    let mut key = plan.create_key(trust, format.scheme());
    key.admins = admins;
    key.roster = roster;
    Ok(match LegacyShares::read(format, &[file], public)? {
        LegacyShares::Secp256k1(s) => request_of(key, &s, holders, plan)?,
        LegacyShares::Ed25519(s) => request_of(key, &s, holders, plan)?,
    })
}

/// Step 2, on an admin's machine: `admin` (one of the admins of `admins`, the set of the
/// version the request names, checked against the pinned genesis) approves `request`, which
/// must be the one `begin` printed the hash of (`expected`) and for the pinned cluster.
pub fn approve(
    trust: &Trust,
    request: &ImportKey,
    expected: &str,
    admin: &SigningKey,
    admins: &AdminSet,
) -> anyhow::Result<ApprovalJson> {
    check_expected(request, expected)?;
    if request.key.cluster != trust.cluster_id() {
        bail!("the request is for another cluster than the pinned one: refusing to approve");
    }
    if request.key.admins != admins.version {
        bail!(
            "the request names admin version {}, not {}: refusing to approve",
            request.key.admins,
            admins.version
        );
    }
    let whose = match admins.version {
        0 => "the pinned genesis's".to_string(),
        v => format!("admin version {v}'s"),
    };
    requests::approval_by(request, &admins.admins, &whose, admin)
}

/// Step 3, on a holder's machine: checks `request` (the one `begin` printed the hash of,
/// `expected`) against the holder's own file and deals the holder's share to the nodes of the
/// pinned cluster.
pub async fn contribute(
    cluster: &Cluster<'_>,
    request: &ImportKey,
    expected: &str,
    format: Format,
    file: &Path,
    public: Option<&Path>,
) -> anyhow::Result<DealingFile> {
    check_expected(request, expected)?;
    if request.key.scheme != format.scheme() {
        bail!(
            "the request imports a {} key; the file is a {} share",
            request.key.scheme,
            format.scheme()
        );
    }
    if request.key.cluster != cluster.trust.cluster_id() {
        bail!("the request is for another cluster than the pinned one: refusing to deal");
    }
    match LegacyShares::read(format, &[file], public)? {
        LegacyShares::Secp256k1(mut s) => deal_own(cluster, request, s.remove(0)).await,
        LegacyShares::Ed25519(mut s) => deal_own(cluster, request, s.remove(0)).await,
    }
}

async fn deal_own<E: Curve>(
    cluster: &Cluster<'_>,
    request: &ImportKey,
    share: LegacyShare<E>,
) -> anyhow::Result<DealingFile> {
    // The holder's own file states the key: its public key, every holder's point and public
    // share, its chain code; and the holder's secret matches its public share.
    let legacy = LegacyKey::of_shares(std::slice::from_ref(&share))?;
    if request.public_key.as_slice() != compressed(&legacy.public_key).as_slice() {
        bail!("the request imports another key than this holder's");
    }
    let positions = request
        .dealers
        .iter()
        .enumerate()
        .map(|(i, d)| {
            legacy
                .points
                .as_slice()
                .iter()
                .position(|p| p.to_be_bytes().as_bytes() == d.point.as_slice())
                .with_context(|| format!("the request's dealer {i} is not a holder of this key"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dealer = positions
        .iter()
        .position(|p| *p == share.index)
        .context("this holder is not among the request's dealers")?;
    let chain_code = request
        .chain_code
        .as_ref()
        .map(|c| <[u8; 32]>::try_from(c.as_slice()))
        .transpose()
        .map_err(|_| anyhow::anyhow!("the request's chain code is not 32 bytes"))?;
    let expected = import_request(
        request.key.clone(),
        &legacy,
        &positions,
        chain_code,
        request.master_key_network.clone(),
    )?;
    if expected != *request {
        bail!(
            "the request does not state this key as this holder's file does (the dealers' \
             public shares, the version or the chain code differ): refusing to deal"
        );
    }
    let (roster, members) = member_keys(cluster.api, cluster.trust, cluster.root_der).await?;
    if request.key.roster != roster {
        bail!(
            "the request was made for roster version {}; the roster in force is version \
             {roster}, whose nodes every enclave would refuse it for (stale_roster): begin the \
             import again",
            request.key.roster
        );
    }
    let hash = request_hash(request);
    let dealing = seal_dealing(
        &mut rand::rngs::OsRng,
        &legacy.dealers(&positions)?,
        dealer,
        &share,
        &members,
        request.key.threshold,
        &hash,
    )?;
    Ok(DealingFile {
        dealer,
        request: Hex(hash.to_vec()),
        dealing: SealedDealingJson::from_wire(&dealing),
    })
}

/// Step 4: every dealer's dealing for `approved`, in the request's order (each exactly once,
/// each for this request), submitted; the key the cluster answers, checked.
pub async fn finish(
    cluster: &Cluster<'_>,
    approved: &Approved<ImportKey>,
    files: Vec<DealingFile>,
) -> anyhow::Result<KeyInfo> {
    let hash = request_hash(&approved.request);
    let mut dealings: Vec<Option<SealedDealing>> = vec![None; approved.request.dealers.len()];
    for (n, f) in files.into_iter().enumerate() {
        if f.request.0 != hash {
            bail!("dealing file {n} was dealt for another request");
        }
        let slot = dealings.get_mut(f.dealer).with_context(|| {
            format!(
                "dealing file {n} names dealer {}, not in the request",
                f.dealer
            )
        })?;
        if slot.is_some() {
            bail!("two dealing files for dealer {}", f.dealer);
        }
        *slot = Some(f.dealing.to_wire());
    }
    let dealings = dealings
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.with_context(|| format!("dealer {i}'s dealing is missing")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit(cluster, approved, &dealings).await
}

/// What an admin or holder sees before approving or dealing: all of it (the parties compare
/// the hash, but a person should also read what it stands for).
pub fn describe(request: &ImportKey) -> String {
    use std::fmt::Write as _;
    let k = &request.key;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "import request sha256 {}",
        hex::encode(request_hash(request))
    );
    let _ = writeln!(
        out,
        "key {:?} ({}), {} of the cluster's nodes sign; cluster {}",
        k.key_id, k.scheme, k.threshold, k.cluster
    );
    let _ = writeln!(
        out,
        "each signature needs {} approval(s) of these {} approver(s):",
        k.policy.approvals_needed,
        k.policy.approvers.len()
    );
    for a in &k.policy.approvers {
        let _ = writeln!(out, "  {}", hex::encode(a));
    }
    let _ = writeln!(
        out,
        "request id {}, valid from {} to {} (unix seconds)",
        hex::encode(&k.request_id),
        k.created,
        k.expiry
    );
    let _ = writeln!(
        out,
        "approved by the admins of version {} (0: the genesis' admins)",
        k.admins
    );
    let _ = writeln!(
        out,
        "dealt to the nodes of roster version {} (0: the genesis' roster); each holder and \
         every node refuses another than the one in force",
        k.roster
    );
    let _ = writeln!(
        out,
        "legacy public key {}",
        hex::encode(&request.public_key)
    );
    match &request.chain_code {
        Some(c) => {
            let _ = writeln!(out, "chain code {}", hex::encode(c));
        }
        None => {
            let _ = writeln!(out, "no chain code (all zeros)");
        }
    }
    if let Some(n) = &request.master_key_network {
        let _ = writeln!(out, "the key's own address holds its legacy funds on {n:?}");
    }
    let _ = writeln!(
        out,
        "{} dealer(s), point and public share:",
        request.dealers.len()
    );
    for (i, d) in request.dealers.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i}: {} {}",
            hex::encode(&d.point),
            hex::encode(&d.public_share)
        );
    }
    out
}
