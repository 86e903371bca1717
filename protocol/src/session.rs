//! Cluster operations on the enclave <-> proxy link: genesis, restore, peer admission, and
//! threshold-protocol sessions whose messages the coordinator (or a test driver) relays.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

pub use crate::codes::FailureCode;
use crate::genesis::ClusterId;
use crate::import::{ImportKey, SealedDealing};
use crate::peer::PeerEnvelope;
use crate::policy::{Approved, Canonical, CreateKey, Scheme, SignRequest};
use crate::reshare::ReshareKey;

/// Domain tag of [`SessionKind::execution_id`].
pub const EXECUTION_ID_DOMAIN: &[u8] = b"cohort/execution-id/v1\0";

/// The longest a session id may stay startable: an enclave refuses an id whose expiry is more
/// than this after its clock (issue 18).
pub const MAX_SESSION_ID_LIFETIME_SECS: u64 = 3600;

/// Bytes of a session id that carry its expiry.
pub const SESSION_ID_EXPIRY_LEN: usize = 8;

/// The expiry (Unix seconds) a session id carries: its first eight bytes, big-endian.
///
/// Session ids carry their own expiry (issue 18, audit finding 4): no enclave starts a session
/// whose id expired, nor one whose id expires more than [`MAX_SESSION_ID_LIFETIME_SECS`] after
/// its clock, so an enclave may forget the ids it used once they expire (an expired id is
/// refused by its time, remembered or not) and its memory of used ids follows the sessions of
/// the last hour, not every session ever started. The other 24 bytes are random (or derived,
/// for the coordinator's signing attempts).
pub fn session_id_expiry(id: &[u8; crate::peer::SESSION_ID_LEN]) -> u64 {
    let mut t = [0u8; SESSION_ID_EXPIRY_LEN];
    t.copy_from_slice(&id[..SESSION_ID_EXPIRY_LEN]);
    u64::from_be_bytes(t)
}

/// The session id expiring at `expiry` (Unix seconds) whose other bytes are `rest`. Ids sort
/// by expiry first, as byte strings.
pub fn session_id_expiring(
    expiry: u64,
    rest: &[u8; crate::peer::SESSION_ID_LEN - SESSION_ID_EXPIRY_LEN],
) -> [u8; crate::peer::SESSION_ID_LEN] {
    let mut id = [0u8; crate::peer::SESSION_ID_LEN];
    id[..SESSION_ID_EXPIRY_LEN].copy_from_slice(&expiry.to_be_bytes());
    id[SESSION_ID_EXPIRY_LEN..].copy_from_slice(rest);
    id
}

/// A peer's attestation document, for admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerDocument {
    /// The peer's node index.
    pub node: u16,
    /// Its attestation document (COSE bytes), binding its identity keys.
    pub document: ByteBuf,
}

/// What a session computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionKind {
    /// CGGMP21 auxiliary info (Paillier keys) for the whole cluster; needed once before ECDSA keys.
    AuxInfo,
    /// Distributed key generation of a new key, approved by the admins. All nodes take part.
    CreateKey {
        /// The approved request.
        request: Approved<CreateKey>,
    },
    /// An ECDSA presignature for `key_id`, bound to derivation path `path`, among the session's
    /// participants (exactly the key's threshold).
    Presign {
        /// The key.
        key_id: String,
        /// The derivation path the presignature may be used for.
        path: Vec<u32>,
    },
    /// Sign payload `payload` of an approved request. With `presignature` (the id of a ready
    /// presignature among the same participants), one round; without, full signing.
    Sign {
        /// The approved request.
        request: Approved<SignRequest>,
        /// Index into the request's payloads.
        payload: u16,
        /// A presignature id, for one-round ECDSA signing.
        presignature: Option<ByteBuf>,
    },
    /// Import a legacy key (issue 19): every node receives the legacy holders' dealings and
    /// keeps the share they make, once every node confirmed the same commitments. All nodes
    /// take part, in index order.
    ImportKey {
        /// The approved request.
        request: Approved<ImportKey>,
        /// One dealing per dealer the request names, in its order.
        dealings: Vec<SealedDealing>,
    },
    /// Reshare or refresh a key (issue 19): the dealers the request names deal their shares of
    /// the current generation to every node, and every node seals its share of the next
    /// generation as pending. All nodes take part, in index order.
    ReshareKey {
        /// The approved request.
        request: Approved<ReshareKey>,
    },
    /// Make a pending generation the key's current one and drop the old one, on the proof that
    /// every node sealed the pending one: each node's receipt of it (its node-key signature,
    /// in node order). Answered at once by each node; no envelopes.
    RetireGeneration {
        /// The key.
        key_id: String,
        /// The pending generation that becomes current.
        generation: u32,
        /// Every node's receipt signature over the new generation, by node index.
        receipts: Vec<ByteBuf>,
        /// For a node that froze the generation (it disowned it): another node's signed word
        /// that it is current there (node index, [`crate::reshare::retired_message`]
        /// signature), which retires it here too. Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thaw: Option<(u16, ByteBuf)>,
    },
    /// Ask where a resharing that did not finish everywhere stands, changing nothing: a node
    /// that sealed the generation `request` makes answers [`Outcome::Sealed`] with its receipt
    /// (and whether it is current there), any other [`Outcome::NotSealed`]. Every node sealed
    /// it: retire. None has it current: disown it everywhere, then abandon. Answered at once.
    ResolveGeneration {
        /// The approved resharing request.
        request: Approved<ReshareKey>,
    },
    /// Make sure the generation `request` makes never becomes current here: a node holding it
    /// pending freezes it (it is never retired into; sealed so), any other consumes the request
    /// (it can never start it); either signs [`crate::reshare::disowned_message`] and answers
    /// [`Outcome::Disowned`]. Refused where the generation is current. Answered at once.
    DisownGeneration {
        /// The approved resharing request.
        request: Approved<ReshareKey>,
    },
    /// Drop a pending generation on every node's statement that it is not current there and
    /// never will be (`statements`: every node's signature over
    /// [`crate::reshare::disowned_message`], by node index). Answered at once.
    AbandonGeneration {
        /// The key.
        key_id: String,
        /// The pending generation.
        generation: u32,
        /// SHA-256 of the resharing request that made it.
        request: ByteBuf,
        /// Every node's statement, by node index.
        statements: Vec<ByteBuf>,
    },
    /// Replace the cluster's admins (issue 20): each node checks the change against its current
    /// admin set and version, seals its genesis again with the change appended, and signs
    /// [`crate::admins::admins_set_message`]. Answered at once; no envelopes.
    SetAdmins {
        /// The approved change.
        request: Approved<crate::admins::SetAdmins>,
        /// For a node that missed the change while it was valid: another roster node's signed
        /// statement that it applied it (node index, signature), which lets this node apply it
        /// after its expiry. A change that landed nowhere cannot be applied late.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_up: Option<(u16, ByteBuf)>,
    },
    /// Replace the set of enclave images the cluster accepts (issue 20, image rotation): each
    /// node checks the change against its current image version and the admins in force,
    /// refuses a set without its own image, seals its genesis again with the change appended,
    /// and signs [`crate::images::images_set_message`]. Answered at once; no envelopes.
    AcceptImages {
        /// The approved change.
        request: Approved<crate::images::AcceptImages>,
        /// As for [`SessionKind::SetAdmins`]: another roster node's statement that it applied
        /// the change, for a node that missed it while it was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_up: Option<(u16, ByteBuf)>,
    },
    /// Propose a roster change (issue 20, ADR 0022): each node of the current roster checks the
    /// change (the admins in force, its roster version, [`crate::roster::ChangeRoster::diff`]
    /// against every roster version and its keys' thresholds, no pending generation), seals
    /// its genesis again with the change pending and signs
    /// [`crate::roster::roster_proposed_message`]. The current roster stays in force.
    /// Answered at once; no envelopes.
    ProposeRoster {
        /// The approved change.
        request: Approved<crate::roster::ChangeRoster>,
        /// As for [`SessionKind::SetAdmins`]: another current roster node's proposed
        /// statement, for a node that missed the change while it was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_up: Option<(u16, ByteBuf)>,
    },
    /// Move a key's shares to the pending roster change (issue 20, membership step 3 of
    /// `docs/lifecycle.md`): the dealers (nodes of the roster in force) deal their shares of
    /// the key's current generation to every node of the new roster, and each of those seals
    /// its share of the key's *incoming* generation once every party confirmed the same
    /// digest; the current generation keeps signing. No request of its own: the change the
    /// admins approved, sealed pending and prepared at each party, is the authority. The
    /// participants are party indices ([`crate::roster::RosterDiff::parties`]: the new
    /// roster's nodes at their new index, then the nodes leaving), which every party computes
    /// from its own sealed change: exactly the new roster's nodes and the dealers, in party
    /// order (a node that leaves without dealing takes no part, so a node lost for good is
    /// replaced without it).
    MoveKey {
        /// The key.
        key_id: String,
        /// The generation the holders deal from (the key's current one).
        generation: u32,
        /// The dealers, by index in the roster in force, increasing; at least the key's
        /// threshold.
        dealers: Vec<u16>,
        /// The key's facts as the relay states them: every holder compares them with its own
        /// record, and a joining node, which holds nothing of the key, takes them; the
        /// confirmed digest covers their digest.
        key: Box<crate::roster::transfer::KeyInfo>,
        /// Every participant's attestation document, in session order (a party's own is not
        /// read): each is verified against the node key, KMS key and parent PCRs the rosters
        /// list for that party and the images the cluster accepts, and binds the identity keys
        /// its envelopes are checked under for this session only.
        documents: Vec<ByteBuf>,
    },
    /// Make the auxiliary information of the pending roster change's party set (issue 20,
    /// before an ECDSA key moves to it): the nodes of the new roster, at their index in it, run
    /// CGGMP21's auxiliary-information generation, and each seals its output as *incoming*,
    /// for that change and chain alone; the roster in force keeps its own. Prepared at each
    /// party, as for [`SessionKind::MoveKey`]. The participants are the new roster's indices,
    /// all of them, in order.
    MoveAux {
        /// Every party's attestation document, by its index in the new roster (a party's own
        /// is not read), verified as for [`SessionKind::MoveKey`].
        documents: Vec<ByteBuf>,
    },
}

/// The digest of an import's dealings that its execution id carries: SHA-256 over each
/// dealing's commitments, ephemeral key and sealed sub-shares, length-prefixed. Members whose
/// relay showed them different dealings derive different execution ids, so their first
/// envelope fails.
pub fn dealings_digest(dealings: &[SealedDealing]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cohort/import-dealings/v1\0");
    h.update(
        u32::try_from(dealings.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for d in dealings {
        h.update(
            u32::try_from(d.commitments.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for c in &d.commitments {
            lp(&mut h, c);
        }
        lp(&mut h, &d.ephemeral);
        h.update(
            u32::try_from(d.sub_shares.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for s in &d.sub_shares {
            lp(&mut h, s);
        }
    }
    h.finalize().into()
}

/// One participant of a session as the execution id names it: its node index and the identity
/// keys (Ed25519, X25519) this enclave holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participant {
    /// Node index.
    pub node: u16,
    /// Its Ed25519 identity (signing) key.
    pub signing: [u8; 32],
    /// Its X25519 identity (encryption) key.
    pub encryption: [u8; 32],
}

/// `u32` big-endian length, then the bytes.
fn lp(h: &mut Sha256, bytes: &[u8]) {
    h.update(u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(bytes);
}

impl SessionKind {
    /// The kind's code in the execution id.
    pub fn code(&self) -> u8 {
        match self {
            Self::AuxInfo => 1,
            Self::CreateKey { .. } => 2,
            Self::Presign { .. } => 3,
            Self::Sign {
                presignature: None, ..
            } => 4,
            Self::Sign { .. } => 5,
            Self::ImportKey { .. } => 6,
            Self::ReshareKey { .. } => 7,
            Self::RetireGeneration { .. } => 8,
            Self::ResolveGeneration { .. } => 9,
            Self::AbandonGeneration { .. } => 10,
            Self::DisownGeneration { .. } => 11,
            Self::SetAdmins { .. } => 12,
            Self::AcceptImages { .. } => 13,
            Self::ProposeRoster { .. } => 14,
            Self::MoveKey { .. } => 15,
            Self::MoveAux { .. } => 16,
        }
    }

    /// The execution id of session `session` of this kind among `participants` (in session
    /// order), in cluster `cluster` whose roster has digest `roster_digest` (ADR 0013, section
    /// 3):
    ///
    /// ```text
    /// SHA-256("cohort/execution-id/v1\0" || cluster id || roster digest || session id
    ///   || u8 kind || lp(key id) || u32 n || path (u32 BE each)
    ///   || u16 n || participants (u16 BE) || for each participant: Ed25519 || X25519
    ///   || request hash (SHA-256 of the approved request's canonical bytes; zeros for
    ///      auxiliary info and presignatures)
    ///   || u16 payload index (signing, else 0) || lp(presignature id) (presigned signing;
    ///      for an import, the dealings' digest, [`dealings_digest`]))
    /// ```
    ///
    /// `lp` is a `u32` big-endian length, then the bytes. For a key's move to a new roster
    /// ([`SessionKind::MoveKey`]) the roster digest is the move's context
    /// ([`crate::roster::transfer::transfer_context`]), which names both rosters, the change,
    /// the chain, the party space, the dealers and the key's facts; for the new party set's
    /// auxiliary information ([`SessionKind::MoveAux`]), its context
    /// ([`crate::roster::transfer::aux_move_context`]). Every enclave of a session derives
    /// it from what it was asked to run; it is the protocol's execution id and it is signed in
    /// every peer envelope, so a relay that starts one session id as different sessions at
    /// different nodes (another kind, key, path, request, participant list or peer identity)
    /// is caught at the first envelope, before any protocol machine sees a message.
    pub fn execution_id(
        &self,
        cluster: &ClusterId,
        roster_digest: &[u8; 32],
        session: &[u8; 32],
        participants: &[Participant],
    ) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(EXECUTION_ID_DOMAIN);
        h.update(cluster.0);
        h.update(roster_digest);
        h.update(session);
        h.update([self.code()]);
        let none: &[u32] = &[];
        let dealings = match self {
            Self::ImportKey { dealings, .. } => dealings_digest(dealings),
            _ => [0; 32],
        };
        let (key_id, path, request, payload, presignature): (&str, &[u32], _, u16, &[u8]) =
            match self {
                Self::AuxInfo => ("", none, None, 0, &[]),
                Self::CreateKey { request } => (
                    &request.request.key_id,
                    none,
                    Some(request.request.canonical_bytes()),
                    0,
                    &[],
                ),
                Self::Presign { key_id, path } => (key_id, path, None, 0, &[]),
                Self::Sign {
                    request,
                    payload,
                    presignature,
                } => (
                    &request.request.key_id,
                    &request.request.path,
                    Some(request.request.canonical_bytes()),
                    *payload,
                    presignature.as_deref().map_or(&[][..], |p| p.as_slice()),
                ),
                Self::ImportKey { request, .. } => (
                    &request.request.key.key_id,
                    none,
                    Some(request.request.canonical_bytes()),
                    0,
                    &dealings[..],
                ),
                Self::ReshareKey { request } => (
                    &request.request.key_id,
                    none,
                    Some(request.request.canonical_bytes()),
                    0,
                    &[],
                ),
                // Answered at once: no envelope carries its execution id.
                Self::RetireGeneration { key_id, .. } | Self::AbandonGeneration { key_id, .. } => {
                    (key_id, none, None, 0, &[])
                }
                Self::ResolveGeneration { request } | Self::DisownGeneration { request } => (
                    &request.request.key_id,
                    none,
                    Some(request.request.canonical_bytes()),
                    0,
                    &[],
                ),
                Self::SetAdmins { request, .. } => {
                    ("", none, Some(request.request.canonical_bytes()), 0, &[])
                }
                Self::AcceptImages { request, .. } => {
                    ("", none, Some(request.request.canonical_bytes()), 0, &[])
                }
                Self::ProposeRoster { request, .. } => {
                    ("", none, Some(request.request.canonical_bytes()), 0, &[])
                }
                Self::MoveKey { key_id, .. } => (key_id, none, None, 0, &[]),
                Self::MoveAux { .. } => ("", none, None, 0, &[]),
            };
        lp(&mut h, key_id.as_bytes());
        h.update(u32::try_from(path.len()).unwrap_or(u32::MAX).to_be_bytes());
        for step in path {
            h.update(step.to_be_bytes());
        }
        h.update(
            u16::try_from(participants.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for p in participants {
            h.update(p.node.to_be_bytes());
        }
        for p in participants {
            h.update(p.signing);
            h.update(p.encryption);
        }
        let request_hash: [u8; 32] = request.map_or([0; 32], |b| Sha256::digest(b).into());
        h.update(request_hash);
        h.update(payload.to_be_bytes());
        lp(&mut h, presignature);
        h.finalize().into()
    }

    /// The kind's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AuxInfo => "aux_info",
            Self::CreateKey { .. } => "create_key",
            Self::Presign { .. } => "presign",
            Self::Sign {
                presignature: Some(_),
                ..
            } => "sign_presigned",
            Self::Sign { .. } => "sign",
            Self::ImportKey { .. } => "import_key",
            Self::ReshareKey { .. } => "reshare_key",
            Self::RetireGeneration { .. } => "retire_generation",
            Self::ResolveGeneration { .. } => "resolve_generation",
            Self::AbandonGeneration { .. } => "abandon_generation",
            Self::DisownGeneration { .. } => "disown_generation",
            Self::SetAdmins { .. } => "set_admins",
            Self::AcceptImages { .. } => "accept_images",
            Self::ProposeRoster { .. } => "propose_roster",
            Self::MoveKey { .. } => "move_key",
            Self::MoveAux { .. } => "move_aux",
        }
    }
}

/// How a session ended at one enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Auxiliary info is ready; the sealed blob is for the proxy to store.
    AuxReady {
        /// Sealed auxiliary info.
        sealed: ByteBuf,
    },
    /// The key exists; the sealed share is for the proxy to store.
    KeyCreated {
        /// The key.
        key_id: String,
        /// Its scheme.
        scheme: Scheme,
        /// Public key: 33-byte compressed secp256k1, or 32-byte Ed25519.
        public_key: ByteBuf,
        /// BIP32 chain code of an ECDSA key (32 bytes), for deriving child public keys.
        chain_code: Option<ByteBuf>,
        /// Sealed share.
        sealed: ByteBuf,
        /// The enclave's node-key signature over its [`crate::receipt::KeyReceipt`] for this
        /// key (ADR 0013): cluster id, its node index, key id, scheme, threshold, participants,
        /// public key, chain code, generation 0 and the creation request's hash.
        receipt: ByteBuf,
    },
    /// A new generation of a key is sealed, pending until it is retired into
    /// ([`SessionKind::RetireGeneration`]); the sealed share is for the proxy to store beside
    /// the current one.
    KeyReshared {
        /// The key.
        key_id: String,
        /// The new generation.
        generation: u32,
        /// Public key (unchanged).
        public_key: ByteBuf,
        /// Chain code (unchanged), for an ECDSA key.
        chain_code: Option<ByteBuf>,
        /// The sealed pending share.
        sealed: ByteBuf,
        /// The node-key signature over its [`crate::receipt::KeyReceipt`] of the new generation
        /// (its threshold, every node as participant, the generation, the reshare request's
        /// hash).
        receipt: ByteBuf,
    },
    /// The key's pending generation is now its current one and the old one is gone: `sealed`
    /// replaces the key's stored share, and the pending copy can go.
    GenerationRetired {
        /// The key.
        key_id: String,
        /// The generation now current.
        generation: u32,
        /// The current share, sealed as confirmed.
        sealed: ByteBuf,
        /// The node-key signature over [`crate::reshare::retired_message`] for it.
        statement: ByteBuf,
    },
    /// This node sealed the generation a resharing request makes: its receipt of it, again.
    Sealed {
        /// The key.
        key_id: String,
        /// The generation.
        generation: u32,
        /// Whether it is this node's current generation (else it is pending).
        current: bool,
        /// Whether it is pending and frozen (disowned: never to be retired into).
        frozen: bool,
        /// The node-key signature over its receipt of it.
        receipt: ByteBuf,
    },
    /// This node did not seal the generation a resharing request makes (changing nothing).
    NotSealed {
        /// The key.
        key_id: String,
        /// The generation.
        generation: u32,
    },
    /// The generation a resharing request makes is not current at this node and never will be:
    /// its node-key signature over [`crate::reshare::disowned_message`].
    Disowned {
        /// The key.
        key_id: String,
        /// The generation.
        generation: u32,
        /// The signature.
        statement: ByteBuf,
        /// The pending share sealed again as frozen, for the proxy to store in place of the
        /// pending blob (when this node held it).
        sealed: Option<ByteBuf>,
        /// The current share sealed again with its policy void, for the proxy to store in place
        /// of the key's blob: the disowned resharing would have replaced the key's policy
        /// (issue 20; attacker review helper-42, finding 2). Left out otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<ByteBuf>,
    },
    /// A pending generation that can never become current is dropped: its blob can go.
    GenerationAbandoned {
        /// The key.
        key_id: String,
        /// The generation dropped.
        generation: u32,
    },
    /// An admin change is applied here (issue 20): `sealed` replaces the node's genesis blob
    /// (the genesis and every admin change since, in order).
    AdminsSet {
        /// The admin version now current.
        version: u32,
        /// The genesis sealed again with the change.
        sealed: ByteBuf,
        /// The node-key signature over [`crate::admins::admins_set_message`].
        statement: ByteBuf,
        /// Every pending generation held here, sealed again frozen (key id, blob), for the proxy
        /// to store in place of each key's pending blob: each was made under a replaced admin
        /// set (or is a scheduled refresh), and is retired into only on another node's word that
        /// it is current there, else abandoned (attacker review helper-45, finding 1). Left out
        /// when there is none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        frozen: Vec<(String, ByteBuf)>,
    },
    /// An image change is applied here (issue 20): `sealed` replaces the node's genesis blob.
    ImagesAccepted {
        /// The image version now current.
        version: u32,
        /// The genesis sealed again with the change.
        sealed: ByteBuf,
        /// The node-key signature over [`crate::images::images_set_message`].
        statement: ByteBuf,
    },
    /// A roster change is proposed here (issue 20): `sealed` replaces the node's genesis blob
    /// (the genesis, its chains of changes and the pending roster change).
    RosterProposed {
        /// The roster version the change makes (pending; the current one stays in force).
        version: u32,
        /// The genesis sealed again with the change pending.
        sealed: ByteBuf,
        /// The node-key signature over [`crate::roster::roster_proposed_message`].
        statement: ByteBuf,
    },
    /// This node's part in a key's move to the pending roster ended well (issue 20): every
    /// party confirmed the same digest. A node of the new roster sealed its share of the key's
    /// incoming generation (`sealed`, for the proxy to keep beside the current one until the
    /// change is committed); a node leaving only dealt.
    KeyMoved {
        /// The key.
        key_id: String,
        /// The generation dealt from (the key's current one).
        generation: u32,
        /// The roster version the incoming generation is for.
        version: u32,
        /// This node's index in that roster, if it received.
        index: Option<u16>,
        /// The digest every party confirmed (what the commit compares).
        confirmed: ByteBuf,
        /// The digest of the key's facts ([`crate::roster::transfer::KeyInfo::digest`]).
        key: ByteBuf,
        /// The sealed incoming share, if it received.
        sealed: Option<ByteBuf>,
        /// If it received: its node key's signature over
        /// [`crate::roster::transfer::key_moved_message`].
        statement: Option<ByteBuf>,
    },
    /// The auxiliary information of the pending roster change's party set is made here (issue
    /// 20, [`SessionKind::MoveAux`]): sealed as incoming (`sealed`, for the proxy to keep as
    /// [`crate::backups::incoming_aux_blob_name`] until the change is committed). A later run
    /// for the same change replaces it; the commit compares every node's digest.
    AuxMoved {
        /// The roster version it is for.
        version: u32,
        /// This node's index in that roster.
        index: u16,
        /// The digest of every party's public parameters (32 bytes): one run, one digest.
        aux: ByteBuf,
        /// The sealed auxiliary information.
        sealed: ByteBuf,
    },
    /// A presignature is ready (its id is the session id).
    PresignatureReady,
    /// The signature, verified against the (derived) public key by the enclave.
    Signed {
        /// 64 bytes: r || s (low s) for ECDSA, R || s for EdDSA.
        signature: ByteBuf,
        /// The public key it verifies under (derived for an ECDSA path).
        public_key: ByteBuf,
    },
    /// The session failed at this enclave.
    Failed {
        /// Stable code (encoded as its snake_case name, as before it was typed).
        code: FailureCode,
        /// What happened (no secrets).
        message: String,
        /// Nodes to blame, when known.
        culprits: Vec<u16>,
    },
}

/// What an enclave answers to a session request: envelopes to relay and, once done, the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// The session.
    pub session: ByteBuf,
    /// Envelopes to deliver (to their `to`, or to every other participant for a broadcast).
    pub outgoing: Vec<PeerEnvelope>,
    /// Set once the session ended at this enclave.
    pub outcome: Option<Outcome>,
}

/// The genesis-receipt message an enclave signs when it accepts a genesis.
pub fn genesis_receipt_message(genesis_canonical: &[u8], node: u16) -> Vec<u8> {
    let mut m = b"cohort/genesis-receipt/v1\0".to_vec();
    m.extend_from_slice(&node.to_be_bytes());
    m.extend_from_slice(genesis_canonical);
    m
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
