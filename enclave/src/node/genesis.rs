//! The cluster this enclave belongs to: accepting its genesis, admitting peers on their
//! attestation, and checking that a session's participants are admitted members.

use std::collections::{BTreeMap, HashSet};

use attestation::{NodeBinding, Policy};
use protocol::admins::SetAdmins;
use protocol::genesis::{self as g2, ClusterId, RosterEntry};
use protocol::images::AcceptImages;
use protocol::policy::{Approved, Genesis};
use protocol::roster::ChangeRoster;
use protocol::roster::commit::CommittedRoster;
use protocol::session::PeerDocument;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::enroll::{NodeKey, bytes_hex, key_hex};
use super::membership::MembershipError;
use super::{Admission, Node, NodeError, bad};
use crate::identity::SecretIdentity;
use crate::peer::{PeerError, Roster};
use crate::policy::keys32;
use crate::seal::BlobKind;

/// The cluster as this enclave knows it from its genesis (in memory; never sealed as such).
#[derive(Debug, Clone)]
pub(super) struct GenesisState {
    /// This node's index.
    pub(super) node: u16,
    /// Number of nodes.
    pub(super) nodes: u16,
    /// The cluster's name (version 1: what requests name; version 2: the genesis' label).
    pub(super) name: String,
    /// Every admin set the cluster had, by admin version (0: the genesis'; the last is
    /// current). Kept so that an earlier resharing is resolved against the admins of the
    /// version it names (issue 20).
    pub(super) admin_sets: Vec<AdminSet>,
    /// The cluster id and roster of a version-2 genesis; `None` for version 1.
    pub(super) pinned: Option<Pinned>,
    /// Every set of accepted enclave images, by image version (0: the genesis' image alone;
    /// the last is current): peers of any image of the current set are admitted, and this
    /// node runs only on one of them (issue 20, image rotation).
    pub(super) images: Vec<Vec<g2::Image>>,
    /// What this node's genesis blob holds: the approved genesis and every admin change since.
    pub(super) sealed: SealedGenesisV2,
}

/// One admin set: Ed25519 keys and quorum.
#[derive(Debug, Clone)]
pub(super) struct AdminSet {
    /// The admins' keys (32 bytes each).
    pub(super) admins: Vec<serde_bytes::ByteBuf>,
    /// How many approve an admin request.
    pub(super) quorum: u16,
}

impl GenesisState {
    /// The cluster id requests must name (`None` only for a legacy genesis, refused anyway).
    pub(super) fn cluster_id(&self) -> Option<ClusterId> {
        self.pinned.as_ref().map(|p| p.cluster)
    }

    /// Whether this node joined a pending roster change (issue 20, the join step): `node` is
    /// then its index in the pending roster, and it takes no part in the cluster's work
    /// ([`Node::genesis`](super::Node) refuses it) until the change is committed.
    pub(super) fn joining(&self) -> bool {
        self.sealed.joined.is_some()
    }
}

/// What a version-2 genesis pins.
#[derive(Debug, Clone)]
pub(super) struct Pinned {
    /// The cluster id.
    pub(super) cluster: ClusterId,
    /// The roster, by index.
    pub(super) roster: Vec<RosterEntry>,
    /// The roster's digest (version 0), in every session's execution id.
    pub(super) roster_digest: [u8; 32],
}

/// The genesis as sealed before node keys (the approved genesis' request and the index the
/// caller gave): only recognised, to be refused by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read only to tell a legacy blob from a malformed one
struct SealedGenesisV1 {
    genesis: Genesis,
    node: u16,
}

/// The genesis as sealed from version 2 on: the approved genesis and the admin changes since
/// (issue 20), in order. The index, the cluster id and the admin sets are recomputed (and every
/// check run again) at each restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SealedGenesisV2 {
    v: u8,
    genesis: Approved<g2::Genesis>,
    /// Admin change `i` makes admin version `i + 1`. Absent before the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) admins: Vec<Approved<SetAdmins>>,
    /// Image change `i` makes image version `i + 1`, each approved by the admins of the version
    /// it names. Absent before the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) images: Vec<Approved<AcceptImages>>,
    /// Committed roster change `i` makes roster version `i + 1`, with the statements it was
    /// committed on (issue 20, the commit). Absent before the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) rosters: Vec<CommittedRoster>,
    /// A roster change proposed and not committed (issue 20, ADR 0022): the current roster
    /// stays in force. Absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) proposed_roster: Option<Approved<ChangeRoster>>,
    /// On a node that joined `proposed_roster` (and is in no roster in force): the member whose
    /// proposed statement it joined on, checked again at every restore. Absent on a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) joined: Option<JoinedOn>,
    /// Every node's statement that it holds `proposed_roster` under this chain, once this
    /// node was shown them (the prepare step's gate, `prepare.rs`). Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prepared: Option<super::prepare::PreparedOn>,
    /// The key set this node vouched for at the commit step of `proposed_roster` (the only one
    /// it ever vouches for, for that change and chain). Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) vouched: Option<super::commit::Vouched>,
    /// The change that removed this node, once it was shown the change committed: it dropped
    /// its shares, and a restore loads none ([`super::commit::leave`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) left: Option<super::commit::LeftOn>,
}

/// The member statement a joining node joined on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinedOn {
    /// The member's index in the roster in force.
    pub(super) node: u16,
    /// Its roster-proposed statement over the change, by its node key.
    pub(super) statement: serde_bytes::ByteBuf,
}

impl SealedGenesisV2 {
    /// What a joining node seals: the chain it was given, the change and the statement.
    pub(super) fn joining(join: &protocol::roster::JoinCluster) -> Self {
        Self {
            v: g2::GENESIS_VERSION,
            genesis: join.genesis.clone(),
            admins: join.admins.clone(),
            images: join.images.clone(),
            rosters: join.rosters.clone(),
            proposed_roster: Some(join.change.clone()),
            joined: Some(JoinedOn {
                node: join.proposed_by,
                statement: join.statement.clone(),
            }),
            prepared: None,
            vouched: None,
            left: None,
        }
    }

    /// The approved genesis.
    pub(super) fn genesis_request(&self) -> &Approved<g2::Genesis> {
        &self.genesis
    }
}

/// This enclave's own PCRs, from its own NSM's document at boot: a genesis names the image its
/// members run and may pin each parent's PCR3 and PCR4.
#[derive(Debug, Clone, Default)]
pub struct OwnPcrs(pub BTreeMap<usize, Vec<u8>>);

impl OwnPcrs {
    fn get(&self, index: usize) -> Option<&[u8]> {
        self.0.get(&index).map(Vec::as_slice)
    }
}

/// Every check a version-2 genesis must pass at this enclave, in order, before anything is
/// sealed or kept; at genesis and again at every restore. Returns the cluster as this node's.
pub(super) fn check_genesis(
    approved: &Approved<g2::Genesis>,
    node_key: &NodeKey,
    own: &OwnPcrs,
) -> Result<GenesisState, MembershipError> {
    let mut state = genesis_state(approved)?;
    state.locate(node_key, own)?;
    Ok(state)
}

impl GenesisState {
    /// Finds this node in the roster in force by its node key, whose entry must name the KMS
    /// key it is sealed under and, where it pins them, this parent's PCRs: its index is never
    /// an input.
    pub(super) fn locate(
        &mut self,
        node_key: &NodeKey,
        own: &OwnPcrs,
    ) -> Result<(), MembershipError> {
        let public = node_key.key.public();
        let roster = self
            .pinned
            .as_ref()
            .map(|p| p.roster.as_slice())
            .unwrap_or_default();
        let index = g2::index_in(roster, &public).ok_or_else(|| MembershipError::NotInRoster {
            node_key: key_hex(&public),
        })?;
        check_entry(&roster[usize::from(index)], node_key, own)?;
        self.node = index;
        Ok(())
    }
}

/// The cluster a version-2 genesis founds, checked (its shape, its admins' approvals), before
/// this node's place in it is known: `node` is 0 until the caller finds it.
pub(super) fn genesis_state(
    approved: &Approved<g2::Genesis>,
) -> Result<GenesisState, MembershipError> {
    let g = &approved.request;
    g.check().map_err(MembershipError::Genesis)?;
    let admins: Vec<[u8; 32]> = keys32(&g.admins).map_err(|_| {
        MembershipError::Approvals(protocol::policy::PolicyViolation::MalformedApprover)
    })?;
    protocol::policy::check_approvals(g, &approved.approvals, &admins, g.admin_quorum)
        .map_err(MembershipError::Approvals)?;
    Ok(GenesisState {
        node: 0,
        nodes: u16::try_from(g.roster.len()).unwrap_or(u16::MAX),
        name: g.name.clone(),
        admin_sets: vec![AdminSet {
            admins: g.admins.clone(),
            quorum: g.admin_quorum,
        }],
        pinned: Some(Pinned {
            cluster: g.cluster_id(),
            roster: g.roster.clone(),
            roster_digest: g.roster_digest(0),
        }),
        images: vec![vec![g.image.clone()]],
        sealed: SealedGenesisV2 {
            v: g2::GENESIS_VERSION,
            genesis: approved.clone(),
            admins: Vec::new(),
            images: Vec::new(),
            rosters: Vec::new(),
            proposed_roster: None,
            joined: None,
            prepared: None,
            vouched: None,
            left: None,
        },
    })
}

/// The roster entry listing this node's key names the KMS key it is sealed under and, where it
/// pins them, this parent's PCR3 and PCR4.
pub(super) fn check_entry(
    entry: &RosterEntry,
    node_key: &NodeKey,
    own: &OwnPcrs,
) -> Result<(), MembershipError> {
    if entry.kms_key_arn != node_key.kms_key_arn {
        return Err(MembershipError::RosterKmsKey {
            listed: entry.kms_key_arn.to_string(),
            pinned: node_key.kms_key_arn.to_string(),
        });
    }
    for (pcr, expected) in [(3u8, &entry.pcr3), (4, &entry.pcr4)] {
        if let Some(expected) = expected
            && own.get(usize::from(pcr)) != Some(expected.as_slice())
        {
            return Err(MembershipError::ParentMismatch {
                pcr,
                actual: own
                    .get(usize::from(pcr))
                    .map_or_else(|| "absent".into(), bytes_hex),
                pinned: bytes_hex(expected),
            });
        }
    }
    Ok(())
}

/// Whether this enclave's own PCR0-2 are one of the images the cluster accepts now: checked
/// at genesis, at every restore (after the changes are replayed) and before an image change
/// is applied.
pub(super) fn runs_accepted_image(state: &GenesisState, own: &OwnPcrs) -> bool {
    state
        .images
        .last()
        .is_some_and(|set| set.iter().any(|image| is_image(image, own)))
}

/// Whether `own` are `image`'s PCR0-2.
pub(super) fn is_image(image: &g2::Image, own: &OwnPcrs) -> bool {
    let pcrs = [&image.pcr0, &image.pcr1, &image.pcr2];
    (0..3).all(|i| own.get(i) == Some(pcrs[i].as_slice()))
}

/// The sealed genesis as restored: version 2 is checked again under the restored node key
/// (which it needs); version 1 (sealed before node keys) is refused as `legacy_genesis`.
pub(super) fn open_genesis(
    plain: &[u8],
    node_key: Option<&NodeKey>,
    own: &OwnPcrs,
) -> Result<GenesisState, NodeError> {
    if let Ok(v2) = ciborium::from_reader::<SealedGenesisV2, _>(plain) {
        if v2.v != g2::GENESIS_VERSION {
            return Err(bad(format!("genesis blob version {}", v2.v)));
        }
        let node_key = node_key.ok_or(MembershipError::NoNodeKey)?;
        if v2.joined.is_some() {
            return super::join::check_joining(&v2, node_key, own);
        }
        // The chain replayed first (every admin and image change, then every committed roster
        // change under the admins of the version it names), then this node found in the
        // roster in force.
        let mut state = genesis_state(&v2.genesis)?;
        for change in &v2.admins {
            state.apply_admins(change)?;
        }
        for change in &v2.images {
            state.apply_images(change, false)?;
        }
        for committed in &v2.rosters {
            state.apply_committed(committed)?;
        }
        state.locate(node_key, own)?;
        if let Some(change) = &v2.proposed_roster {
            // Checked again (its keys' thresholds were checked when it was proposed; they are
            // not loaded yet). One that no longer holds is dropped, never fatal: a proposal
            // changes nothing that signs, and a node must not be locked out by one
            // (attacker review helper-56, finding 2).
            match state.check_roster_change(change, 0) {
                Ok(_) => state.sealed.proposed_roster = Some(change.clone()),
                Err(e) => warn!(error = %e, "the sealed roster proposal no longer holds: dropped"),
            }
        }
        super::prepare::restore_prepared(&mut state, v2.prepared.as_ref());
        state.sealed.vouched = v2.vouched.clone();
        state.sealed.left = v2.left.clone();
        if !runs_accepted_image(&state, own) {
            return Err(MembershipError::OtherImage.into());
        }
        return Ok(state);
    }
    match ciborium::from_reader::<SealedGenesisV1, _>(plain) {
        Ok(_) => Err(MembershipError::LegacyGenesis.into()),
        Err(e) => Err(bad(format!("genesis blob: {e}"))),
    }
}

/// The genesis blobs a node sealed: the last one's sequence number (or the restored blob's:
/// the next is numbered above it, so its parent never stores an older one over it; helper-67,
/// finding 2), and the digest of the state sealed last with its blob (no secret: the genesis
/// state holds none), so that sealing the same state again answers the same blob.
#[derive(Debug, Default)]
pub(super) struct GenesisSeals {
    pub(super) sequence: u64,
    last: Option<([u8; 32], Vec<u8>)>,
}

impl Node {
    /// Seals `state` as this node's genesis blob (bound to `cluster`), numbered above every
    /// genesis blob sealed or restored here before it (the blob's authenticated header; its
    /// parent never stores a lower number over a higher: helper-67, finding 2). The state is
    /// always changed under the node's lock, after the seal, so a higher number is a later
    /// state. The state sealed last, sealed again, is answered with the same blob.
    pub(super) fn seal_genesis(
        &self,
        state: &SealedGenesisV2,
        cluster: &ClusterId,
    ) -> Result<Vec<u8>, NodeError> {
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(state, &mut *plain)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        // The same state sealed again (an answer given again) is the blob sealed last: no KMS
        // call, whoever repeats the question (helper-67, finding 7).
        let binding = self.sealing.current_binding();
        let mut h = Sha256::new();
        h.update(plain.as_slice());
        for part in [Some(cluster.to_string()), binding.node, binding.cluster] {
            h.update(part.unwrap_or_default().as_bytes());
            h.update([0]);
        }
        let digest: [u8; 32] = h.finalize().into();
        let mut seals = self
            .genesis_seals
            .lock()
            .map_err(|_| NodeError::Internal("the genesis seals' lock is poisoned".into()))?;
        if let Some((sealed_digest, blob)) = seals.last.as_ref()
            && *sealed_digest == digest
        {
            return Ok(blob.clone());
        }
        // Above the last one sealed or restored here, and not below the clock in microseconds:
        // an enclave started again without its genesis blob (a join after a restart) still
        // numbers above what it sealed before.
        let now = u64::try_from((self.clock)().as_micros()).unwrap_or(u64::MAX);
        let seq = seals.sequence.saturating_add(1).max(now);
        let blob =
            self.sealing
                .seal_numbered(BlobKind::Genesis, &cluster.to_string(), seq, &plain)?;
        seals.sequence = seq;
        seals.last = Some((digest, blob.clone()));
        Ok(blob)
    }

    /// Accepts a version-2 genesis: approved by its own admin quorum, listing this enclave's
    /// node key (whose position is this node's index: never an input) with the KMS key it is
    /// sealed under, for this image and, where pinned, this parent. Every check runs before the
    /// data key is fetched; a refusal seals and keeps nothing. Returns the sealed genesis, this
    /// node's index and its genesis receipt (the node key's signature).
    pub fn genesis_v2_request(
        &mut self,
        identity: &SecretIdentity,
        request: &Approved<g2::Genesis>,
    ) -> Result<(Vec<u8>, u16, Vec<u8>), NodeError> {
        if let Some(held) = &self.genesis {
            return Err(match &held.pinned {
                Some(p) => MembershipError::AlreadyMember {
                    cluster: p.cluster.to_string(),
                },
                None => MembershipError::LegacyGenesis,
            }
            .into());
        }
        let node_key = self.node_key.as_ref().ok_or(MembershipError::NotEnrolled)?;
        let state = check_genesis(request, node_key, &self.own_pcrs)?;
        if !runs_accepted_image(&state, &self.own_pcrs) {
            return Err(MembershipError::OtherImage.into());
        }
        let Some(pinned) = &state.pinned else {
            return Err(NodeError::Internal(
                "a version-2 genesis pins a cluster".into(),
            ));
        };
        let cluster = pinned.cluster;
        let receipt = node_key
            .key
            .sign(&g2::genesis_receipt_message(&cluster, state.node))
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        // This blob and every later one are bound to the cluster (the KMS encryption context).
        self.sealing.bind_cluster(&cluster.to_string());
        let sealed = self.seal_genesis(&state.sealed, &cluster)?;
        self.sealing.retire_legacy();
        self.roster.insert_self(state.node, identity.public());
        info!(%cluster, name = %state.name, node = state.node, nodes = state.nodes, "genesis accepted");
        self.primes.warm_up();
        let node = state.node;
        self.genesis = Some(state);
        Ok((sealed, node, receipt.to_vec()))
    }

    /// Verifies peers' attestation documents and admits those that pass.
    ///
    /// The batch is admitted as a whole: a document refused because its identity is held by
    /// another index that the same batch re-admits is tried again once that index has taken
    /// its new document, until a pass admits nothing more. So an identity once placed at a
    /// wrong index (one identity is never at two, `PeerError::DuplicateIdentity`) does not
    /// keep its rightful node out of the next honest round.
    pub fn admit_peers(&mut self, documents: &[PeerDocument]) -> Result<Admission, NodeError> {
        let g = self.genesis()?.clone();
        let now = (self.clock)();
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        let mut pending = Vec::new();
        for doc in documents {
            if doc.node >= g.nodes || doc.node == g.node {
                refused.push((doc.node, "not a peer node index".to_string()));
            } else {
                pending.push(doc);
            }
        }
        let offered: HashSet<u16> = pending.iter().map(|d| d.node).collect();
        loop {
            let mut again = Vec::new();
            let before = admitted.len();
            for doc in pending {
                match self.admit_any_image(&g, doc, now) {
                    Ok(_) => admitted.push(doc.node),
                    Err(e @ PeerError::DuplicateIdentity { other, .. })
                        if offered.contains(&other) =>
                    {
                        again.push((doc, e.to_string()))
                    }
                    Err(e) => {
                        warn!(node = doc.node, error = %e, "peer refused");
                        refused.push((doc.node, e.to_string()));
                    }
                }
            }
            if again.is_empty() || admitted.len() == before {
                for (doc, e) in again {
                    warn!(node = doc.node, error = %e, "peer refused");
                    refused.push((doc.node, e));
                }
                break;
            }
            pending = again.into_iter().map(|(doc, _)| doc).collect();
        }
        admitted.sort_unstable();
        admitted.dedup();
        refused.sort();
        Ok((admitted, refused))
    }

    /// Admits `doc` under the first accepted image whose measurements its document shows; an
    /// attestation refusal under every image is the last image's (issue 20: during a rotation
    /// peers run either image; each image's PCR0-2 are checked together, never mixed).
    fn admit_any_image(
        &mut self,
        g: &GenesisState,
        doc: &PeerDocument,
        now: std::time::Duration,
    ) -> Result<attestation::IdentityKeys, PeerError> {
        let entry = g
            .pinned
            .as_ref()
            .and_then(|p| p.roster.get(usize::from(doc.node)));
        let policy = self.peer_policy_for(entry);
        let images = g.images.last().map(Vec::as_slice).unwrap_or_default();
        admit_under(
            &mut self.roster,
            images,
            doc.node,
            &doc.document,
            &policy,
            now,
        )
    }

    /// What a peer's document must show to be admitted as the node `entry` lists: this
    /// enclave's root, and the node key and KMS key of the entry, with the parent PCR3 and
    /// PCR4 it pins (the image is each accepted image's, [`admit_under`]). A document of any
    /// other enclave of the image — an attacker's, a replacement that lost the node key,
    /// another index's — is refused.
    pub(super) fn peer_policy_for(&self, entry: Option<&RosterEntry>) -> Policy {
        let mut policy = self.peer_policy.clone();
        policy.require_node = true;
        let Some(entry) = entry else {
            return policy;
        };
        let key: Option<[u8; 32]> = entry.node_key.as_slice().try_into().ok();
        policy.node = key.and_then(|k| NodeBinding::new(k, entry.kms_key_arn.as_str()).ok());
        if let Some(v) = &entry.pcr3 {
            policy = policy.allow_pcr(3, v.to_vec());
        }
        if let Some(v) = &entry.pcr4 {
            policy = policy.allow_pcr(4, v.to_vec());
        }
        policy
    }

    /// Checks that `participants` are distinct admitted members; returns this node's position
    /// among them.
    pub(super) fn check_participants(&self, participants: &[u16]) -> Result<u16, NodeError> {
        let g = self.genesis()?;
        let mut seen = HashSet::new();
        for p in participants {
            if *p >= g.nodes || !seen.insert(*p) {
                return Err(bad(
                    "participants must be distinct node indices of the cluster",
                ));
            }
            if self.roster.get(*p).is_none() {
                return Err(bad(format!(
                    "node {p} has not been admitted (no verified attestation)"
                )));
            }
        }
        participants
            .iter()
            .position(|p| *p == g.node)
            .map(|p| p as u16)
            .ok_or_else(|| bad("this node is not a participant"))
    }

    /// Whether `participants` are all the cluster's nodes in index order.
    pub(super) fn all_nodes(&self, participants: &[u16]) -> Result<bool, NodeError> {
        let nodes = self.genesis()?.nodes;
        Ok(participants.iter().copied().eq(0..nodes))
    }
}

/// Admits `document` into `roster` as `node` under the first of `images` whose PCR0-2 it
/// shows, with `policy` ([`Node::peer_policy_for`]) for the rest; an attestation refusal under
/// every image is the last image's.
pub(super) fn admit_under(
    roster: &mut Roster,
    images: &[g2::Image],
    node: u16,
    document: &[u8],
    policy: &Policy,
    now: std::time::Duration,
) -> Result<attestation::IdentityKeys, PeerError> {
    let mut refused = PeerError::Attestation {
        node,
        reason: "the cluster accepts no image".into(),
    };
    for image in images {
        let mut policy = policy.clone();
        for (i, pcr) in [&image.pcr0, &image.pcr1, &image.pcr2]
            .into_iter()
            .enumerate()
        {
            policy.pcrs.insert(i, vec![pcr.to_vec()]);
        }
        match roster.admit(node, document, &policy, now) {
            Err(e @ PeerError::Attestation { .. }) => refused = e,
            other => return other,
        }
    }
    Err(refused)
}
