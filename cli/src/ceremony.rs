//! The genesis ceremony (ADR 0013), in three steps (`prepare` on the ceremony machine,
//! `approve` on each admin's own machine, `submit`) or in one command: enroll every node under its own KMS
//! key, take each node key from a document the node attests with a fresh nonce and that this
//! machine verifies itself (root, image, nonce, age, the node binding and its KMS key), build a
//! genesis whose roster lists them, have the admins given here approve it, submit it, and wait
//! until the cluster is ready. It prints what an operator would check: each node's key and KMS
//! key (account, region) and the cluster id.
//!
//! The coordinator only relays: every node key comes from a verified document, never from an
//! answer it could have made up, and the enclaves check the genesis again themselves.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use attestation::{NodeBinding, Policy, VerifiedDocument};
use coordinator::api::{
    ApprovalJson, ApprovedJson, AttestRequest, EnrollRequest, EnrolledNode, GenesisStatus,
    GenesisV2Json, Hex, NodeDocument, Wire,
};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use protocol::KmsKeyArn;
use protocol::genesis::{ClusterId, GENESIS_VERSION, Genesis, Image, RosterEntry};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::{ops, requests};

/// Maximum age of a node's document when the ceremony verifies it.
pub const MAX_DOCUMENT_AGE: Duration = Duration::from_secs(300);

/// What the operator expects of the nodes: the attestation root, the image, each node's KMS key.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// DER of the root documents must chain to.
    pub root_der: Vec<u8>,
    /// PCR0, PCR1 and PCR2 of the image.
    pub image: [Vec<u8>; 3],
    /// Each node's KMS key, by index.
    pub kms_keys: Vec<KmsKeyArn>,
    /// The PCR3 (parent IAM role, `cohort kms pcr3`) each node's document must show, by index.
    /// The roster pins it, so that its peers admit that node only on a parent with that role.
    /// A node without one is not pinned (the ceremony says so).
    pub pcr3: std::collections::BTreeMap<u16, Vec<u8>>,
    /// Accept debug-mode documents (never in production).
    pub allow_debug: bool,
}

#[derive(Deserialize)]
struct SimFile {
    root_pem_path: std::path::PathBuf,
    pcrs: [String; 3],
    nodes: Vec<SimNode>,
}

#[derive(Deserialize)]
struct SimNode {
    kms_key_arn: String,
    #[serde(default)]
    pcr3: Option<String>,
}

impl Expectations {
    /// The expectations of the simulated cluster in `dir` (its `cluster.json`).
    pub fn of_sim_dir(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is `cohort sim up` running?)",
                path.display()
            )
        })?;
        let file: SimFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a simulated cluster's description",
                path.display()
            )
        })?;
        let pem = std::fs::read_to_string(&file.root_pem_path)
            .with_context(|| format!("cannot read {}", file.root_pem_path.display()))?;
        let root_der = attestation::pem_to_der(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.root_pem_path.display()))?;
        let image = [0, 1, 2].map(|i| hex::decode(&file.pcrs[i]).unwrap_or_default());
        let kms_keys = file
            .nodes
            .iter()
            .map(|n| KmsKeyArn::parse(&n.kms_key_arn))
            .collect::<Result<_, _>>()
            .context("a node's KMS key in cluster.json")?;
        let mut pcr3 = std::collections::BTreeMap::new();
        for (i, n) in file.nodes.iter().enumerate() {
            if let Some(hex) = &n.pcr3 {
                let value = attestation::parse_pcr_hex(hex)
                    .map_err(|e| anyhow::anyhow!("node {i}'s pcr3 in cluster.json: {e}"))?;
                pcr3.insert(u16::try_from(i)?, value);
            }
        }
        Ok(Self {
            root_der,
            image,
            kms_keys,
            pcr3,
            allow_debug: false,
        })
    }

    /// The policy a node's document must pass (besides its node binding).
    fn policy(&self, nonce: &[u8]) -> Policy {
        let [pcr0, pcr1, pcr2] = &self.image;
        let mut policy = image_policy(&self.root_der, [pcr0, pcr1, pcr2], nonce);
        policy.allow_debug = self.allow_debug;
        policy
    }
}

/// What a node's document must show to be one of `image`'s enclaves (its PCR0-2 together),
/// now: signed under `root_der`, with `nonce`, at most [`MAX_DOCUMENT_AGE`] old, binding an
/// identity. Callers add what they pin besides (a node binding, the parent's PCRs).
pub fn image_policy(root_der: &[u8], image: [&[u8]; 3], nonce: &[u8]) -> Policy {
    let mut policy = Policy::default().with_root(root_der.to_vec());
    for (i, pcr) in image.into_iter().enumerate() {
        policy = policy.allow_pcr(i, pcr.to_vec());
    }
    policy.nonce = Some(nonce.to_vec());
    policy.max_age = Some(MAX_DOCUMENT_AGE);
    policy.require_identity = true;
    policy
}

/// A node as the ceremony verified it.
#[derive(Debug, Clone)]
pub struct VerifiedNode {
    /// Its index.
    pub node: u16,
    /// Its node key and KMS key, from its verified document.
    pub binding: NodeBinding,
    /// Its parent's PCR3 and PCR4, from the same document.
    pub pcr3: Option<Vec<u8>>,
    /// See `pcr3`.
    pub pcr4: Option<Vec<u8>>,
    /// Whether the operator gave its PCR3 (checked equal): the roster pins it.
    pub pcr3_pinned: bool,
}

fn now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Node `node`'s current document, with a fresh nonce, verified here.
async fn verified_document(
    api: &ApiClient,
    node: u16,
    expect: &Expectations,
) -> anyhow::Result<VerifiedDocument> {
    let nonce: [u8; 32] = rand::random();
    let answer: NodeDocument = api
        .post(
            &format!("/v1/nodes/{node}/attest"),
            &AttestRequest {
                nonce: Hex(nonce.to_vec()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("node {node}: {e}"))?;
    attestation::verify(&answer.document.0, &expect.policy(&nonce), now())
        .map_err(|e| anyhow::anyhow!("node {node}'s document does not verify: {e}"))
}

/// Enrolls node `node` under its KMS key unless its document already binds a node key, and
/// returns the node as its verified document shows it. A node enrolled under another KMS key is
/// an error: its node key is never replaced.
pub async fn enroll(
    api: &ApiClient,
    node: u16,
    expect: &Expectations,
) -> anyhow::Result<VerifiedNode> {
    let arn = expect
        .kms_keys
        .get(usize::from(node))
        .with_context(|| format!("no KMS key given for node {node}"))?;
    let mut doc = verified_document(api, node, expect).await?;
    // Before enrolling: a node on another parent role is named as such, not as a KMS key
    // policy's refusal to seal its node key.
    check_pcr3(node, &doc, expect)?;
    if doc.node.is_none() {
        let _: EnrolledNode = api
            .post(
                &format!("/v1/nodes/{node}/enroll"),
                &EnrollRequest {
                    kms_key_arn: arn.clone(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("enrolling node {node}: {e}"))?;
        doc = verified_document(api, node, expect).await?;
    }
    let binding = doc
        .node
        .clone()
        .with_context(|| format!("node {node} attests no node key after enrolling"))?;
    if binding.kms_key_arn() != arn.as_str() {
        bail!(
            "node {node} is enrolled under KMS key {}, not {arn}: a node key is never replaced \
             (a node enrolled by mistake needs a new enclave host and an empty blob store)",
            binding.kms_key_arn()
        );
    }
    check_pcr3(node, &doc, expect)?;
    let pcr3 = doc.pcrs.get(&3).cloned();
    Ok(VerifiedNode {
        node,
        binding,
        pcr3_pinned: expect.pcr3.contains_key(&node),
        pcr3,
        pcr4: doc.pcrs.get(&4).cloned(),
    })
}

/// Node `node`'s document shows the PCR3 the operator expects of it, if any.
fn check_pcr3(node: u16, doc: &VerifiedDocument, expect: &Expectations) -> anyhow::Result<()> {
    let pcr3 = doc.pcrs.get(&3);
    if let Some(expected) = expect.pcr3.get(&node)
        && pcr3 != Some(expected)
    {
        bail!(
            "node {node}'s enclave runs on a parent whose PCR3 is {}, not {} (the role \
             `cohort kms pcr3` was given): not the instance role the deployment gave this node",
            pcr3.map(hex::encode).unwrap_or_else(|| "absent".into()),
            hex::encode(expected)
        );
    }
    Ok(())
}

/// The genesis listing `nodes` (in index order) for `expect`'s image.
pub fn genesis(
    name: &str,
    admins: Vec<ByteBuf>,
    quorum: u16,
    expect: &Expectations,
    nodes: &[VerifiedNode],
) -> Genesis {
    let [pcr0, pcr1, pcr2] = expect.image.clone().map(ByteBuf::from);
    Genesis {
        v: GENESIS_VERSION,
        name: name.into(),
        admins,
        admin_quorum: quorum,
        image: Image { pcr0, pcr1, pcr2 },
        roster: nodes
            .iter()
            .map(|n| RosterEntry {
                node_key: ByteBuf::from(n.binding.node_key.to_vec()),
                kms_key_arn: KmsKeyArn::parse(n.binding.kms_key_arn())
                    .expect("enroll compared it with a parsed ARN"),
                // The parent role as the operator expected it; PCR4 (the instance id) is not
                // pinned: the node's instance is replaced by its Auto Scaling group.
                pcr3: n
                    .pcr3_pinned
                    .then(|| n.pcr3.clone().map(ByteBuf::from))
                    .flatten(),
                pcr4: None,
            })
            .collect(),
    }
}

/// Prints what an operator checks before approving: each node's key, KMS key (account and
/// region, to compare with the deployment's outputs) and parent PCRs, and the cluster id.
pub fn print_summary(nodes: &[VerifiedNode], cluster: &ClusterId) {
    for n in nodes {
        let arn = KmsKeyArn::parse(n.binding.kms_key_arn());
        let (account, region) = arn
            .as_ref()
            .map(|a| (a.account().to_string(), a.region().to_string()))
            .unwrap_or_default();
        println!(
            "      node {}: node key {}, KMS key {} (account {account}, region {region}), pcr3 {} ({})",
            n.node,
            hex::encode(n.binding.node_key),
            n.binding.kms_key_arn(),
            n.pcr3
                .as_deref()
                .map(hex::encode)
                .unwrap_or_else(|| "-".into()),
            if n.pcr3_pinned {
                "as expected; pinned"
            } else {
                "not pinned: no --pcr3 given"
            },
        );
    }
    println!("      cluster id {cluster}");
}

/// Step 1, `prepare`: enroll and verify every node, and the genesis (the proposal) listing them
/// with `admins` and `quorum`. Prints what an operator checks.
pub async fn prepare(
    api: &ApiClient,
    name: &str,
    admins: Vec<ByteBuf>,
    quorum: u16,
    expect: &Expectations,
) -> anyhow::Result<Genesis> {
    let mut nodes = Vec::new();
    for node in 0..expect.kms_keys.len() {
        let node = u16::try_from(node).context("too many nodes")?;
        nodes.push(enroll(api, node, expect).await?);
    }
    let g = genesis(name, admins, quorum, expect, &nodes);
    g.check().map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    print_summary(&nodes, &g.cluster_id());
    Ok(g)
}

/// Prints a proposal as an admin reads it before approving: name, admins, image, roster.
pub fn print_proposal(g: &Genesis) {
    println!("cluster {} (id {})", g.name, g.cluster_id());
    println!(
        "  admins ({} of them must approve admin requests):",
        g.admin_quorum
    );
    for a in &g.admins {
        println!("    {}", hex::encode(a));
    }
    println!(
        "  image: pcr0 {} pcr1 {} pcr2 {}",
        hex::encode(&g.image.pcr0),
        hex::encode(&g.image.pcr1),
        hex::encode(&g.image.pcr2)
    );
    for (i, e) in g.roster.iter().enumerate() {
        println!(
            "  node {i}: node key {}, KMS key {} (account {}, region {}), pcr3 {}, pcr4 {}",
            hex::encode(&e.node_key),
            e.kms_key_arn,
            e.kms_key_arn.account(),
            e.kms_key_arn.region(),
            e.pcr3
                .as_deref()
                .map(hex::encode)
                .unwrap_or_else(|| "-".into()),
            e.pcr4
                .as_deref()
                .map(hex::encode)
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// Step 2, `approve`, on an admin's own machine: checks the proposal's structure and that
/// `admin` is one of its admins, and signs its canonical bytes.
pub fn approve(proposal: &Genesis, admin: &SigningKey) -> anyhow::Result<ApprovalJson> {
    proposal
        .check()
        .map_err(|e| anyhow::anyhow!("the proposal is malformed: {e}"))?;
    requests::approval_by(proposal, &proposal.admins, "the proposal's", admin)
}

/// Step 3, `submit`: checks here that the approvals are the proposal's admin quorum's (an
/// approval of another proposal, or too few, is refused before anything is sent), submits it
/// and waits until the cluster is ready.
pub async fn submit(
    api: &ApiClient,
    proposal: Genesis,
    approvals: Vec<ApprovalJson>,
) -> anyhow::Result<(ApprovedJson<GenesisV2Json>, GenesisStatus)> {
    let approved = ApprovedJson::<GenesisV2Json> {
        request: GenesisV2Json::from_wire(&proposal),
        approvals,
        presignature: None,
    };
    crate::trust::Trust::new(approved.to_wire(), Path::new("the proposal"))?;
    let _: GenesisStatus = api
        .post("/v1/genesis", &approved)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let status = ops::wait_ready(api).await?;
    Ok((approved, status))
}

/// Gives a coordinator whose database was lost the pinned genesis again (`cohort genesis
/// restore`, the operator guide's "the coordinator's database is gone"). Every node already
/// holds it and answers so with its status; the coordinator admits the peers again, finds the
/// auxiliary info held everywhere and is ready, with no approval asked again: the admins'
/// approvals travel in the pinned file. Waits until the cluster is ready.
pub async fn restore(
    api: &ApiClient,
    trust: &crate::trust::Trust,
) -> anyhow::Result<GenesisStatus> {
    let _: GenesisStatus = api
        .post("/v1/genesis", &trust.approved_json())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let status = ops::wait_ready(api).await?;
    let cluster = ops::cluster_id(api).await?;
    if cluster != trust.cluster_id() {
        bail!(
            "the coordinator serves cluster {cluster}, not the pinned {}",
            trust.cluster_id()
        );
    }
    Ok(status)
}

/// The one-command ceremony: [`prepare`], [`approve`] by each of `signers` (admins are
/// `signers` and `others`), [`submit`]. Returns the approved genesis and the final status.
pub async fn run(
    api: &ApiClient,
    name: &str,
    signers: &[SigningKey],
    others: &[[u8; 32]],
    quorum: u16,
    expect: &Expectations,
) -> anyhow::Result<(ApprovedJson<GenesisV2Json>, GenesisStatus)> {
    let q = usize::from(quorum);
    if q == 0 || q > signers.len() {
        bail!(
            "the quorum ({quorum}) must be at least 1 and at most the admins signing here ({})",
            signers.len()
        );
    }
    let mut admins: Vec<ByteBuf> = signers.iter().map(requests::public).collect();
    admins.extend(others.iter().map(|k| ByteBuf::from(k.to_vec())));
    let g = prepare(api, name, admins, quorum, expect).await?;
    let approvals = signers
        .iter()
        .map(|s| approve(&g, s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit(api, g, approvals).await
}

/// Pins the genesis the ceremony approved at `path` (see [`crate::trust`]).
pub fn pin(
    approved: &ApprovedJson<GenesisV2Json>,
    path: &std::path::Path,
) -> anyhow::Result<crate::trust::Trust> {
    let trust = crate::trust::Trust::new(approved.to_wire(), std::path::Path::new("the ceremony"))?;
    trust.pin(path)?;
    Ok(trust)
}
