//! Key material: auxiliary info and key shares, from the sessions that create them (checks,
//! sealing, receipts) and back from their sealed blobs on restore.

use protocol::KmsKeyArn;
use protocol::policy::{Approved, CreateKey, KeyPolicy, REQUEST_VERSION, Scheme};
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt};
use protocol::session::Outcome;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::info;
use zeroize::Zeroizing;

use super::background::Launch;
use super::enroll::NodeKey;
use super::genesis::open_genesis;
use super::machine::Machine;
use super::membership::MembershipError;
use super::session::{Purpose, Start};
use super::single_use::{create_key_use, key_id_use};
use super::{Node, NodeError, Restored, bad, internal};
use crate::identity::SecretIdentity;
use crate::mpc::ecdsa::{self, SecretAuxInfo, SecretKeyShare};
use crate::mpc::eddsa::{self, SecretEddsaShare};
use crate::mpc::{MpcError, PartyIndex};
use crate::policy::{PolicyError, keys32};
use crate::seal::{self, BlobKind, DataKey};

/// A key record as sealed: metadata and the share.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyRecord {
    pub(super) key_id: String,
    pub(super) scheme: Scheme,
    pub(super) threshold: u16,
    pub(super) policy: KeyPolicy,
    pub(super) share: ByteBuf,
    /// The key generation this share belongs to (0 at creation or import; absent in records
    /// sealed before resharing existed).
    #[serde(default)]
    pub(super) generation: u32,
    /// Whether this generation is the key's current one; `false` for a resharing's pending
    /// generation, which signs nothing until every node's receipt of it is shown.
    #[serde(default = "current_by_default")]
    pub(super) current: bool,
    /// SHA-256 of the approved request that made this generation (its receipts name it).
    #[serde(default)]
    pub(super) request: Option<ByteBuf>,
    /// A pending generation disowned: never to be retired into, only abandoned.
    #[serde(default)]
    pub(super) frozen: bool,
    /// The key's refresh schedule with this generation, seconds (0: off; set only by an
    /// admin-approved resharing, `protocol::reshare::scheduled_refresh`). Left out when 0, as
    /// `since` is: a key without a schedule has the record an earlier image reads.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) refresh_every: u64,
    /// When this node sealed this generation, if it has a schedule (Unix seconds, this
    /// enclave's clock; else 0): a scheduled refresh is due `refresh_every` after it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) since: u64,
    /// The version of `policy` (issue 20): 0 until the admins first replace the key's
    /// approvers, one more at each replacement. Left out when 0, for the same reason.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub(super) policy_version: u32,
    /// `policy` approves nothing: a resharing that would have replaced it was disowned here
    /// (helper-42, finding 2), until the admins set a policy again. Left out when `false`.
    #[serde(default, skip_serializing_if = "protocol::skip::is_false")]
    pub(super) policy_void: bool,
    /// A key's incoming generation (issue 20): its share dealt to the pending roster change
    /// this names, at this node's index in that roster; it signs nothing until the change is
    /// committed. Left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) incoming: Option<super::move_key::IncomingOn>,
    /// The roster version this generation's share is a share in (issue 20): the one in force
    /// when it was sealed, or, for an incoming generation, the one its change makes. A restore
    /// loads only the roster in force's; a copy of an earlier roster's is stale. Left out
    /// when 0 (the genesis' roster), as before commits existed.
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub(super) roster: u32,
}

fn current_by_default() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Drop for KeyRecord {
    fn drop(&mut self) {
        // The plaintext share bytes are not left behind in freed memory.
        zeroize::Zeroize::zeroize(&mut *self.share);
    }
}

/// This enclave's share of a key, per scheme.
pub(super) enum Share {
    Ecdsa(SecretKeyShare),
    Eddsa(Box<SecretEddsaShare>),
}

impl From<SecretKeyShare> for Share {
    fn from(share: SecretKeyShare) -> Self {
        Self::Ecdsa(share)
    }
}

impl From<Box<SecretEddsaShare>> for Share {
    fn from(share: Box<SecretEddsaShare>) -> Self {
        Self::Eddsa(share)
    }
}

impl Share {
    /// The share's scheme.
    pub(super) fn scheme(&self) -> Scheme {
        match self {
            Share::Ecdsa(_) => Scheme::EcdsaSecp256k1,
            Share::Eddsa(_) => Scheme::EddsaEd25519,
        }
    }

    pub(super) fn kind(&self) -> BlobKind {
        match self {
            Share::Ecdsa(_) => BlobKind::EcdsaShare,
            Share::Eddsa(_) => BlobKind::EddsaShare,
        }
    }

    pub(super) fn index(&self) -> PartyIndex {
        match self {
            Share::Ecdsa(s) => s.index(),
            Share::Eddsa(s) => s.index(),
        }
    }

    /// The key's public key and, for an HD-capable ECDSA key, its chain code.
    pub(super) fn public_key(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            Share::Ecdsa(s) => (
                s.master_public_key().to_vec(),
                Some(s.extended_public_key().chain_code.to_vec()),
            ),
            Share::Eddsa(s) => (s.public_key().to_vec(), None),
        }
    }

    pub(super) fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        match self {
            Share::Ecdsa(s) => s.to_bytes(),
            Share::Eddsa(s) => s.to_bytes(),
        }
    }
}

/// A key held: its share of the current generation, the policy its signing requests must
/// meet, and a resharing's pending generation, if any.
pub(super) struct Key {
    pub(super) threshold: u16,
    pub(super) approvers: Vec<[u8; 32]>,
    pub(super) approvals_needed: u16,
    pub(super) share: Share,
    pub(super) policy: KeyPolicy,
    /// The version of `policy` a signing request must name ([`SignRequest::policy`]).
    ///
    /// [`SignRequest::policy`]: protocol::policy::SignRequest::policy
    pub(super) policy_version: u32,
    /// Whether `policy` approves nothing (a change of it was disowned here).
    pub(super) policy_void: bool,
    /// The current generation.
    pub(super) generation: u32,
    /// The request that made the current generation.
    pub(super) request: Option<[u8; 32]>,
    /// The next generation, sealed by a resharing and not retired into yet: it signs nothing.
    pub(super) pending: Option<super::generations::Pending>,
    /// The current generation's refresh schedule, as sealed with it.
    pub(super) schedule: protocol::reshare::Schedule,
}

impl Key {
    pub(super) fn new(
        threshold: u16,
        policy: &KeyPolicy,
        share: Share,
    ) -> Result<Self, PolicyError> {
        Ok(Key {
            threshold,
            approvers: keys32(&policy.approvers)?,
            approvals_needed: policy.approvals_needed,
            share,
            policy: policy.clone(),
            policy_version: 0,
            policy_void: false,
            generation: 0,
            request: None,
            pending: None,
            schedule: protocol::reshare::Schedule::default(),
        })
    }
}

/// A key share as loaded from its blob, before it is checked against the genesis.
pub(super) fn load_share(kind: BlobKind, record: &KeyRecord) -> Result<Share, NodeError> {
    Ok(match (kind, record.scheme) {
        (BlobKind::EcdsaShare, Scheme::EcdsaSecp256k1) => {
            Share::Ecdsa(SecretKeyShare::from_bytes(&record.share).map_err(internal)?)
        }
        (BlobKind::EddsaShare, Scheme::EddsaEd25519) => Share::Eddsa(Box::new(
            SecretEddsaShare::from_bytes(&record.share).map_err(internal)?,
        )),
        _ => {
            return Err(bad(format!(
                "key {} has a blob of the wrong kind",
                record.key_id
            )));
        }
    })
}

/// The sealed state as opened: node key, genesis, auxiliary info, key records, migrated blobs.
#[derive(Default)]
struct Opened {
    node_key: Option<NodeKey>,
    /// The genesis blob's plaintext: read once the node key is known (a version-2 genesis is
    /// checked again under it), whatever order the blobs came in.
    genesis: Option<Zeroizing<Vec<u8>>>,
    /// Auxiliary-information blobs, by the key id each was sealed under, opened: which is the
    /// roster in force's is known once the genesis is ([`super::move_aux::aux_of`]).
    aux: Vec<(String, Zeroizing<Vec<u8>>)>,
    records: Vec<(BlobKind, KeyRecord)>,
    /// Per blob, what to seal again in the current format once the binding is known.
    to_reseal: Vec<Option<Reseal>>,
}

/// A blob to seal again: its kind, key id and plaintext.
type Reseal = (BlobKind, String, Zeroizing<Vec<u8>>);

impl Node {
    /// Reloads sealed state: the node key, the genesis blob, auxiliary info and key shares.
    /// Returns the keys loaded, whether auxiliary info was, and blobs sealed again in the current
    /// format (entry `i` replaces `blobs[i]`). Nothing changes unless every blob opens. A node
    /// key alone (a node enrolled, no genesis yet) restores the node key only.
    pub fn restore(
        &mut self,
        identity: &SecretIdentity,
        blobs: &[ByteBuf],
    ) -> Result<Restored, NodeError> {
        if self.genesis.is_some() || self.node_key.is_some() {
            return Err(NodeError::Refused("state already loaded".into()));
        }
        let restored = self.restore_opened(identity, blobs);
        if restored.is_err() {
            // Whatever KMS key the node-key blob named, nothing was loaded under it.
            self.sealing.forget_kms_key();
            self.sealing.unbind();
        }
        restored
    }

    fn restore_opened(
        &mut self,
        identity: &SecretIdentity,
        blobs: &[ByteBuf],
    ) -> Result<Restored, NodeError> {
        let opened = self.open_blobs(blobs)?;
        let genesis = opened
            .genesis
            .as_ref()
            .map(|plain| open_genesis(plain, opened.node_key.as_ref(), &self.own_pcrs))
            .transpose()?;
        // Every blob must belong to this node and cluster (its encryption context, authentic
        // now that it opened): a blob of another cluster sealed under the same KMS key is not
        // this node's state.
        let binding = seal::Binding {
            node: opened
                .node_key
                .as_ref()
                .map(|k| super::enroll::key_hex(&k.key.public())),
            cluster: genesis
                .as_ref()
                .and_then(|g| g.cluster_id())
                .map(|c| c.to_string()),
        };
        for blob in blobs {
            seal::check_restored(blob, &binding)?;
        }
        if let Some(node) = &binding.node {
            self.sealing.bind_node(node);
        }
        if let Some(cluster) = &binding.cluster {
            self.sealing.bind_cluster(cluster);
        }
        // Blobs of another authority or an older format, sealed again now that the binding is
        // known (so the new ones carry the node and cluster).
        let mut resealed = Vec::with_capacity(blobs.len());
        for entry in &opened.to_reseal {
            resealed.push(match entry {
                Some((kind, id, plain)) => {
                    Some(ByteBuf::from(self.sealing.seal(*kind, id, plain)?))
                }
                None => None,
            });
        }
        let Some(state) = genesis else {
            if !opened.records.is_empty() || !opened.aux.is_empty() {
                return Err(bad("restore needs the genesis blob"));
            }
            let node_key = opened
                .node_key
                .ok_or_else(|| bad("nothing to restore: no node key and no genesis blob"))?;
            info!(node_key = %super::enroll::key_hex(&node_key.key.public()), "node key restored (enrolled)");
            self.node_key = Some(node_key);
            return Ok((Vec::new(), false, resealed));
        };
        // The records of the roster in force only (a committed change's incoming generations
        // are current), then the incoming ones set apart.
        // A node that left, removed by a committed change, loads no share (`commit/leave.rs`).
        let left = state.sealed.left.is_some();
        let records = if left {
            Vec::new()
        } else {
            super::commit::for_roster(opened.records, &state)
        };
        let (records, incoming) = super::move_key::incoming_of(records)?;
        // The roster in force's auxiliary information, and the pending change's party set's.
        let (aux, incoming_aux) = if left {
            (None, None)
        } else {
            super::move_aux::aux_of(opened.aux, &state)?
        };
        if state.joining() && (!records.is_empty() || aux.is_some()) {
            return Err(bad(
                "a joining node holds no key share and no auxiliary information of the roster \
                 in force, only what was made for the roster it joins",
            ));
        }
        let keys = super::generations::generations(records, state.node)?;
        // A joining node's index is in the pending roster, not the one peers are admitted by.
        if !state.joining() {
            self.roster.insert_self(state.node, identity.public());
        }
        let names: Vec<String> = keys.keys().cloned().collect();
        let has_aux = aux.is_some();
        info!(
            node = state.node,
            keys = names.len(),
            aux = has_aux,
            node_key = opened.node_key.is_some(),
            "sealed state restored"
        );
        // The genesis blob's number (authentic: it opened): the next is sealed above it.
        let sequence = blobs
            .iter()
            .filter(|b| seal::peek(b).is_ok_and(|(k, _)| k == BlobKind::Genesis))
            .find_map(|b| seal::sequence_of(b).ok().flatten())
            .unwrap_or(0);
        let seals = self
            .genesis_seals
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seals.sequence = seals.sequence.max(sequence);
        self.node_key = opened.node_key;
        self.genesis = Some(state);
        self.keys = keys;
        self.incoming = incoming;
        self.incoming_aux = incoming_aux;
        self.prune_incoming();
        if aux.is_none() {
            self.primes.warm_up();
        }
        self.aux = aux;
        Ok((names, has_aux, resealed))
    }

    /// Names the KMS key the node-key blob's header carries, before anything is opened: every
    /// blob of an enrolled node is opened (and any migrated blob sealed again) under that key.
    fn name_kms_key_of(&self, blobs: &[ByteBuf]) -> Result<Option<KmsKeyArn>, NodeError> {
        let mut headers = Vec::new();
        for blob in blobs {
            if let Ok((BlobKind::NodeKey, header)) = seal::peek(blob) {
                headers.push(header);
            }
        }
        if headers.len() > 1 {
            return Err(MembershipError::TwoNodeKeys {
                count: headers.len(),
            }
            .into());
        }
        let Some(header) = headers.pop() else {
            return Ok(None);
        };
        let arn = KmsKeyArn::parse(&header).map_err(|e| {
            MembershipError::MalformedNodeKey(format!("the blob names no KMS key ARN: {e}"))
        })?;
        self.sealing.name_kms_key(&arn)?;
        Ok(Some(arn))
    }

    fn open_blobs(&mut self, blobs: &[ByteBuf]) -> Result<Opened, NodeError> {
        let mut opened = Opened {
            to_reseal: Vec::with_capacity(blobs.len()),
            ..Opened::default()
        };
        let arn = self.name_kms_key_of(blobs)?;
        // Migration reads local blobs only while the genesis itself is still one.
        let genesis_authority = blobs
            .iter()
            .find(|b| seal::peek(b).is_ok_and(|(k, _)| k == BlobKind::Genesis))
            .map(|b| seal::authority_of(b))
            .transpose()?;
        if genesis_authority.is_some_and(|a| a != seal::AuthorityKind::Local) {
            self.sealing.retire_legacy();
        }
        for blob in blobs {
            let (kind, _) = seal::peek(blob)?;
            let (id, plain) = self.sealing.open_only(blob, kind, None)?;
            let again = self.sealing.needs_reseal(blob)?;
            opened
                .to_reseal
                .push(again.then(|| (kind, id.clone(), Zeroizing::new(plain.to_vec()))));
            let current = blob.to_vec();
            match kind {
                BlobKind::NodeKey => {
                    let arn = arn.as_ref().ok_or_else(|| {
                        NodeError::Internal("a node-key blob without its KMS key".into())
                    })?;
                    opened.node_key = Some(NodeKey::from_record(&plain, arn, &current)?);
                }
                BlobKind::Genesis => {
                    if opened.genesis.replace(plain).is_some() {
                        return Err(bad("two genesis blobs"));
                    }
                }
                BlobKind::AuxInfo => {
                    opened.aux.push((id, plain));
                }
                BlobKind::EcdsaShare | BlobKind::EddsaShare => {
                    let record: KeyRecord = ciborium::from_reader(plain.as_slice())
                        .map_err(|e| bad(format!("key blob: {e}")))?;
                    opened.records.push((kind, record));
                }
            }
        }
        Ok(opened)
    }

    pub(super) fn cluster(&self) -> Result<protocol::genesis::ClusterId, MpcError> {
        self.genesis
            .as_ref()
            .and_then(|g| g.cluster_id())
            .ok_or_else(|| MpcError::Internal("no cluster id".into()))
    }

    /// Signs `receipt` with the node key, as this node (its `node` field is set here).
    pub(super) fn sign_receipt(&self, mut receipt: KeyReceipt) -> Result<Vec<u8>, MpcError> {
        receipt.node = self
            .genesis
            .as_ref()
            .ok_or_else(|| MpcError::Internal("no genesis".into()))?
            .node;
        let signature = self
            .node_key
            .as_ref()
            .ok_or_else(|| MpcError::Internal("no node key".into()))?
            .key
            .sign(&receipt.message())
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        Ok(signature.to_vec())
    }

    /// Starts the auxiliary-info run of all nodes, under execution id `eid`.
    pub(super) fn start_aux(
        &mut self,
        eid: &[u8; 32],
        participants: &[u16],
    ) -> Result<Start, NodeError> {
        if !self.all_nodes(participants)? {
            return Err(bad(
                "auxiliary info is generated by all nodes, in index order",
            ));
        }
        // Not for a party set a prepared roster change replaces (helper-66, finding M3).
        self.refuse_while_prepared()?;
        if self.aux.is_some() {
            return Err(NodeError::Refused("auxiliary info already exists".into()));
        }
        if !self.primes_ready() {
            return Err(NodeError::Refused(
                "safe primes are still being generated".into(),
            ));
        }
        // The data key first: with KMS unreachable the session fails now, not after every node
        // has done the work. After a roster change, sealed as that roster version's
        // (`move_aux::aux_label`), so a restore knows it for the roster in force's.
        let data_key = match self.roster_now() {
            0 => self.sealing.data_key(BlobKind::AuxInfo, "aux")?,
            v => self
                .sealing
                .data_key(BlobKind::AuxInfo, &super::move_aux::after_label(v))?,
        };
        let primes = self
            .primes
            .take()
            .ok_or_else(|| NodeError::Refused("safe primes are still being generated".into()))?;
        let g = self.genesis()?;
        let (eid, me, n) = (*eid, g.node, g.nodes);
        // Built and stepped on a worker thread: tens of CPU seconds.
        let launch: Launch = Box::new(move || {
            let (m, first) = ecdsa::AuxInfoGen::start(&eid, me, n, primes)?;
            Ok((Box::new(m) as Box<dyn Machine>, first))
        });
        Ok(Start::background(launch, false, Purpose::AuxInfo).sealed_under(data_key))
    }

    /// Seals auxiliary info just generated and keeps it: at roster version 0 as the genesis'
    /// (`aux`), after a roster change as a record naming the change that made the roster in
    /// force (helper-73, finding 3: a restore would otherwise not take it for that roster's).
    /// Refused, keeping nothing, if a roster change was prepared or vouched for meanwhile: it
    /// is made for a party set that change replaces (helper-73, finding 4).
    pub(super) fn keep_aux(
        &mut self,
        aux: SecretAuxInfo,
        data_key: DataKey,
        plain: &[u8],
    ) -> Result<Outcome, MpcError> {
        let g = self
            .genesis
            .as_ref()
            .ok_or_else(|| MpcError::Internal("no genesis".into()))?;
        if g.prepared() || g.vouched_frame().is_some() {
            return Err(MpcError::Aborted {
                culprits: vec![],
                reason: "a roster change was prepared while the auxiliary information was made: \
                         it keeps nothing"
                    .into(),
            });
        }
        let sealed = match (g.roster_version(), g.made_by(g.roster_version())) {
            (0, _) => self
                .sealing
                .seal_with(data_key, BlobKind::AuxInfo, "aux", plain)
                .map_err(|e| MpcError::Internal(e.to_string()))?,
            (v, Some(change)) => {
                let chain = g.chain_digest().unwrap_or_default();
                let label = super::move_aux::after_label(v);
                self.seal_aux_record((data_key, &label), &aux, (change, v, chain, g.node))?
                    .0
            }
            (v, None) => {
                return Err(MpcError::Internal(format!(
                    "roster version {v} names no change that made it"
                )));
            }
        };
        self.aux = Some(aux);
        Ok(Outcome::AuxReady {
            sealed: ByteBuf::from(sealed),
        })
    }

    /// Starts generating the key an approved request creates, with all nodes, under execution
    /// id `eid`.
    pub(super) fn start_keygen(
        &mut self,
        eid: &[u8; 32],
        participants: &[u16],
        request: &Approved<CreateKey>,
    ) -> Result<Start, NodeError> {
        if !self.all_nodes(participants)? {
            return Err(bad("key generation involves all nodes, in index order"));
        }
        let r = &request.request;
        self.check_create_key(request)?;
        self.refuse_while_prepared()?;
        let kind = match r.scheme {
            Scheme::EcdsaSecp256k1 => BlobKind::EcdsaShare,
            Scheme::EddsaEd25519 => BlobKind::EddsaShare,
        };
        let data_key = self.sealing.data_key(kind, &r.key_id)?;
        // Held for the whole generation: no second generation of this key id (under this
        // request or another) runs at the same time.
        let key = key_id_use(&r.key_id);
        self.claim(&key)?;
        let g = self.genesis()?;
        let (eid, me, nodes, t, scheme) = (*eid, g.node, g.nodes, r.threshold, r.scheme);
        // Built and stepped on a worker thread, like every key generation.
        let launch: Launch = Box::new(move || {
            Ok(match scheme {
                Scheme::EcdsaSecp256k1 => {
                    let (m, out) = ecdsa::Keygen::start(&eid, me, nodes, t)?;
                    (Box::new(m) as Box<dyn Machine>, out)
                }
                Scheme::EddsaEd25519 => {
                    let (m, out) = eddsa::Dkg::start(&eid, me, nodes, t, &mut rand::rngs::OsRng)?;
                    (Box::new(m) as Box<dyn Machine>, out)
                }
            })
        });
        Ok(
            Start::background(launch, false, Purpose::CreateKey(r.clone()))
                .holding(key)
                .sealed_under(data_key),
        )
    }

    fn check_create_key(&self, request: &Approved<CreateKey>) -> Result<(), NodeError> {
        let r = &request.request;
        self.check_new_key(r)?;
        self.genesis()?
            .check_admins(r, &request.approvals, r.admins)?;
        self.check_single_use(r)
    }

    /// Checks a new key's fields (creation or import): version, cluster, id free, threshold,
    /// policy, auxiliary info for ECDSA. Approvals are checked over the request that carries
    /// them.
    pub(super) fn check_new_key(&self, r: &CreateKey) -> Result<(), NodeError> {
        let g = self.check_request((r.v, REQUEST_VERSION), &r.cluster, &r.request_id)?;
        if r.key_id.is_empty()
            || r.key_id.len() > protocol::roster::transfer::MAX_KEY_ID_LEN
            || self.keys.contains_key(&r.key_id)
        {
            return Err(NodeError::Refused(format!(
                "key id {} is empty, too long or taken",
                r.key_id
            )));
        }
        if r.threshold < 2 || r.threshold > g.nodes {
            return Err(bad("threshold must be between 2 and the number of nodes"));
        }
        // The roster it was made for: an import's holders dealt to that roster's nodes, so a
        // dealing made before a committed change is refused (attacker review helper-79).
        let current = g.roster_version();
        if r.roster != current {
            return Err(MembershipError::KeyRoster {
                named: r.roster,
                current,
            }
            .into());
        }
        // The rules a policy change meets too (helper-42, finding 9): distinct Ed25519 keys, at
        // most 32, and 1 to that many approvals needed.
        r.policy
            .check()
            .map_err(|e| bad(format!("the key's policy: {e}")))?;
        if r.scheme == Scheme::EcdsaSecp256k1 && self.aux.is_none() {
            return Err(NodeError::Refused(
                "ECDSA keys need auxiliary info first".into(),
            ));
        }
        Ok(())
    }

    /// Checks that a new key's request id was never used and its window is open.
    pub(super) fn check_single_use(&self, r: &CreateKey) -> Result<(), NodeError> {
        self.guard
            .check(&create_key_use(r), r.created, r.expiry, self.now())?;
        Ok(())
    }

    /// Seals a new key's share under `data_key`, signs its receipt with the node key and keeps
    /// the key.
    pub(super) fn store_key(
        &mut self,
        data_key: DataKey,
        request: CreateKey,
        request_hash: [u8; 32],
        participants: &[u16],
        share: Share,
    ) -> Result<Outcome, MpcError> {
        let (public_key, chain_code) = share.public_key();
        let share_bytes = share.to_bytes()?;
        if self.keys.contains_key(&request.key_id) {
            // Never replace a key: its shares may already guard funds.
            return Err(MpcError::Internal(format!(
                "key {} exists; refusing to replace it",
                request.key_id
            )));
        }
        // Signed only once every check passed: a receipt is never made for a key not kept.
        let receipt = self.sign_receipt(KeyReceipt {
            v: KEY_RECEIPT_VERSION,
            cluster: self.cluster()?,
            node: 0,
            key_id: request.key_id.clone(),
            scheme: request.scheme,
            threshold: request.threshold,
            participants: participants.to_vec(),
            public_key: ByteBuf::from(public_key.clone()),
            chain_code: chain_code.clone().map(ByteBuf::from),
            generation: 0,
            request: ByteBuf::from(request_hash.to_vec()),
            policy_version: 0,
            policy: None,
        })?;
        let record = KeyRecord {
            key_id: request.key_id.clone(),
            scheme: request.scheme,
            threshold: request.threshold,
            policy: request.policy.clone(),
            share: ByteBuf::from(share_bytes.to_vec()),
            generation: 0,
            current: true,
            request: Some(ByteBuf::from(request_hash.to_vec())),
            frozen: false,
            refresh_every: 0,
            since: 0,
            policy_version: 0,
            policy_void: false,
            incoming: None,
            roster: self.roster_now(),
        };
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&record, &mut *plain)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        drop(record);
        let kind = match request.scheme {
            Scheme::EcdsaSecp256k1 => BlobKind::EcdsaShare,
            Scheme::EddsaEd25519 => BlobKind::EddsaShare,
        };
        let sealed = self
            .sealing
            .seal_with(data_key, kind, &request.key_id, &plain)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        let mut key = Key::new(request.threshold, &request.policy, share)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        key.request = Some(request_hash);
        self.keys.insert(request.key_id.clone(), key);
        Ok(Outcome::KeyCreated {
            key_id: request.key_id,
            scheme: request.scheme,
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            sealed: ByteBuf::from(sealed),
            receipt: ByteBuf::from(receipt),
        })
    }
}
