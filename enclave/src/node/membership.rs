//! Membership refusals (ADR 0013): typed, each message starting with its stable kind, answered
//! as `membership`. A refusal changes nothing: no node key, genesis or KMS key is kept.

use protocol::admins::AdminsError;
use protocol::genesis::GenesisError;
use protocol::images::ImagesError;
use protocol::policy::PolicyViolation;
use protocol::roster::RosterError;

/// Why a membership request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The genesis breaks a structural rule (sizes, ranges, a node key or KMS key listed twice).
    #[error("{kind}: {error}", kind = genesis_kind(.0), error = .0)]
    Genesis(GenesisError),
    /// Too few distinct, or foreign, or bad admin approvals of the genesis.
    #[error("approvals: {0}")]
    Approvals(PolicyViolation),
    /// This enclave's node key is not in the roster.
    #[error("not_in_roster: this enclave's node key {node_key} is not in the genesis roster")]
    NotInRoster {
        /// This enclave's node key (hex).
        node_key: String,
    },
    /// The roster lists this enclave's node key with another KMS key than the one it enrolled
    /// with.
    #[error(
        "kms_key_mismatch: the roster lists this node with KMS key {listed}; its node key is sealed under {pinned}"
    )]
    RosterKmsKey {
        /// The ARN the roster lists.
        listed: String,
        /// The ARN this enclave enrolled with.
        pinned: String,
    },
    /// The genesis names another image than this enclave's own PCR0-2.
    #[error("other_image: the genesis names another enclave image than this one's PCR0-2")]
    OtherImage,
    /// This enclave's parent's PCR3 or PCR4 differs from the roster's expectation.
    #[error(
        "parent_mismatch: this enclave's PCR{pcr} is {actual}, the roster pins {pinned} (PCR3 is \
         the parent instance's IAM role: its name, path and account are fixed once a genesis \
         pins it)"
    )]
    ParentMismatch {
        /// 3 or 4.
        pcr: u8,
        /// This enclave's value (hex; measurements, not secrets).
        actual: String,
        /// The roster's (hex).
        pinned: String,
    },
    /// A genesis is held already.
    #[error("already_member: this enclave is a member of cluster {cluster}")]
    AlreadyMember {
        /// The cluster id held (hex).
        cluster: String,
    },
    /// A version-2 genesis needs a node key (enroll first).
    #[error("not_enrolled: a genesis with a roster needs this enclave's node key (enroll first)")]
    NotEnrolled,
    /// A sealed version-2 genesis restored without its node key.
    #[error(
        "no_node_key: the sealed genesis has a roster but no node key was restored with it (node-key.blob missing)"
    )]
    NoNodeKey,
    /// An `Enroll` naming another KMS key than the node key is sealed under (asked again with
    /// the same key, the enclave answers the same node key).
    #[error(
        "already_enrolled: this enclave holds node key {node_key}, sealed under {kms_key_arn}; a node key is made once"
    )]
    AlreadyEnrolled {
        /// The node key held (hex).
        node_key: String,
        /// Its KMS key.
        kms_key_arn: String,
    },
    /// A genesis without a roster (version 1): refused, as a request and as sealed state.
    #[error(
        "legacy_genesis: a genesis without a roster (version 1, before node keys) is refused: run the genesis ceremony (cohort genesis); a node whose sealed state predates node keys cannot rejoin: start a new cluster (docs/operator-guide.md)"
    )]
    LegacyGenesis,
    /// The sealed state offered at restore holds more than one node key.
    #[error("two_node_keys: the sealed state holds {count} node keys; a node has one")]
    TwoNodeKeys {
        /// How many.
        count: usize,
    },
    /// The node-key record names another KMS key than its blob's header.
    #[error("kms_key_mismatch: the node-key record names {record}, its blob {header}")]
    KmsKeyMismatch {
        /// The ARN in the record.
        record: String,
        /// The ARN in the blob header.
        header: String,
    },
    /// The node-key blob is not a node-key record.
    #[error("malformed_node_key: {0}")]
    MalformedNodeKey(String),
    /// A key-creation or signing request names another cluster id than this node's genesis
    /// hashes to (an approval made for another cluster, replayed here).
    #[error("other_cluster: the request names cluster {named}; this node is a member of {ours}")]
    OtherCluster {
        /// The cluster id the request names (hex).
        named: String,
        /// This node's cluster id (hex).
        ours: String,
    },
    /// An admin request (or admin change) names another admin version than the one it must:
    /// approved under a replaced admin set, or under one that has not landed at this node.
    #[error(
        "stale_admins: the request names admin version {named}; this node's current admin version is {current}"
    )]
    StaleAdmins {
        /// The version the request names.
        named: u32,
        /// This node's current version.
        current: u32,
    },
    /// A change caught up (or replayed) under an admin version replaced since, created later
    /// than that version could land changes (attacker review helper-48, finding 1).
    #[error(
        "stale_admins: the change names admin version {named}, replaced by a change created at {replaced_at}; it was created at {created}, after that version could land changes"
    )]
    AdminsReplacedBefore {
        /// The admin version the change names.
        named: u32,
        /// When the change replacing it was created (Unix seconds).
        replaced_at: u64,
        /// When this change was created.
        created: u64,
    },
    /// An admin change of a version this node replaced with another change: named, so that two
    /// changes of one version (a fork) are seen as such (attacker review helper-45, finding 2).
    #[error(
        "stale_admins: this node applied another change of admin version {version} (request sha256 {applied})"
    )]
    OtherAdminChange {
        /// The version both changes replace.
        version: u32,
        /// The SHA-256 of the change this node applied (hex).
        applied: String,
    },
    /// Another change of the same image version was applied here (a fork of the chain).
    #[error(
        "stale_images: this node applied another change of image version {version} (request sha256 {applied})"
    )]
    OtherImageChange {
        /// The version both changes replace.
        version: u32,
        /// The SHA-256 of the change this node applied (hex).
        applied: String,
    },
    /// An image change names another image version than this node's current one.
    #[error(
        "stale_images: the change replaces image version {named}; this node's current image version is {current}"
    )]
    StaleImages {
        /// The version the change names.
        named: u32,
        /// This node's current version.
        current: u32,
    },
    /// An image change that does not accept the image this enclave runs.
    #[error(
        "own_image_dropped: the change does not accept the image this node runs: restart it on an accepted image first"
    )]
    OwnImageDropped,
    /// A malformed image change.
    #[error("malformed_image_change: {0}")]
    ImageChange(ImagesError),
    /// A malformed admin change.
    #[error("malformed_admin_change: {0}")]
    AdminChange(AdminsError),
    /// A roster change names another roster version than this node's current one.
    #[error(
        "stale_roster: the change replaces roster version {named}; this node's current roster version is {current}"
    )]
    StaleRoster {
        /// The version the change names.
        named: u32,
        /// This node's current version.
        current: u32,
    },
    /// A key creation or import names another roster version than this node's current one.
    #[error(
        "stale_roster: the request names roster version {named}; this node's current roster version is {current}"
    )]
    KeyRoster {
        /// The version the request names.
        named: u32,
        /// This node's current version.
        current: u32,
    },
    /// A roster change a roster may not undergo, or a malformed one (the kind is the rule's).
    #[error("{0}")]
    RosterChange(RosterError),
    /// Another change of the roster is pending here, created no earlier than this one: a
    /// pending change is replaced only by a change of the same version the admins approved
    /// later.
    #[error(
        "roster_change_pending: this node holds another change of roster version {version} as proposed (request sha256 {pending}), created at {created}; only a change created later replaces it"
    )]
    RosterChangePending {
        /// The version both changes replace.
        version: u32,
        /// The SHA-256 of the pending change (hex).
        pending: String,
        /// When the pending change was created (Unix seconds).
        created: u64,
    },
    /// A key has a pending generation (a resharing not finished): a roster change waits for
    /// it to be retired or abandoned, so that every key is reshared from one generation.
    #[error(
        "pending_generation: key {key_id} has a pending generation; retire or abandon it before the roster changes"
    )]
    PendingGeneration {
        /// The key.
        key_id: String,
    },
    /// A key whose policy is void here (a resharing that would have replaced it was
    /// disowned): a roster change waits for the admins to set its policy, since a node joining
    /// would be told a policy that approves nothing here (attacker review helper-62, finding
    /// 3).
    #[error(
        "void_policy: key {key_id}'s policy is void here; the admins set its policy before the roster changes"
    )]
    VoidPolicy {
        /// The key.
        key_id: String,
    },
    /// This node is prepared for a roster change: no key is created, imported or reshared
    /// within the roster until the change is committed or withdrawn, so the keys moved to
    /// the new roster are the keys the cluster holds (helper-62, finding 4).
    #[error(
        "roster_change_prepared: this node is prepared for roster version {version}; no key is created, imported or reshared until it is committed or withdrawn"
    )]
    RosterChangePrepared {
        /// The roster version the change makes.
        version: u32,
    },
    /// A key's move to the pending roster at a node not prepared for it (issue 20): every
    /// node of the new roster holds one change under one chain before anything is moved.
    #[error(
        "not_prepared: this node is not prepared for roster version {version}; no key moves to it until it is"
    )]
    NotPrepared {
        /// The roster version the change makes.
        version: u32,
    },
    /// A key's move whose stated facts are not the key's as this node holds it (another
    /// policy, threshold, public share...): a relay telling a joining node a lie is refused by
    /// the holders told the same.
    #[error(
        "key_info_differs: the facts the move states of key {key_id} are not the ones this node holds"
    )]
    KeyInfoDiffers {
        /// The key.
        key_id: String,
    },
    /// A key's move whose document for a party does not verify as the node the rosters list
    /// for it (its node key, KMS key, parent PCRs, an accepted image).
    #[error("party_refused: party {party}'s document: {reason}")]
    PartyRefused {
        /// The party, by index in the change's party space.
        party: u16,
        /// Why.
        reason: String,
    },
    /// A join whose node key the roster the change makes does not list.
    #[error(
        "not_in_roster: this enclave's node key {node_key} is not in the roster the change makes"
    )]
    NotInChange {
        /// This enclave's node key (hex).
        node_key: String,
    },
    /// A join at a node whose key the roster in force lists: it is a member (its genesis blob
    /// restores it), not a node to add.
    #[error(
        "listed_in_force: this enclave's node key {node_key} is in the roster in force: a member restores its genesis blob, it does not join"
    )]
    ListedInForce {
        /// This enclave's node key (hex).
        node_key: String,
    },
    /// A join at a change back to the roster in force (a withdrawal or a fence): nothing to
    /// join.
    #[error(
        "nothing_to_join: the change is the roster in force proposed again (a withdrawal or a fence)"
    )]
    NothingToJoin,
    /// A join whose member statement is not the named member's proposed statement over the
    /// change, under the node key the roster in force lists at its index.
    #[error(
        "unproven_change: the statement is not node {node}'s proposed statement over this change under the node key the roster in force lists"
    )]
    UnprovenChange {
        /// The member the join names.
        node: u16,
    },
    /// This node joined a roster change not committed yet: it takes no part in the cluster's
    /// work until then.
    #[error(
        "joining: this node joined roster version {version}, not committed yet: it takes no part in the cluster's work until then"
    )]
    Joining {
        /// The roster version it joined.
        version: u32,
    },
    /// A prepare step with no change pending here (none proposed, or the roster in force
    /// proposed again).
    #[error("no_pending_change: this node holds no pending roster change")]
    NoPendingChange,
    /// A prepare step for another change than the one pending here.
    #[error(
        "other_change: this node holds roster change {pending} as pending, not {named} (it may have missed a replacement, or be walked back to an earlier one)"
    )]
    OtherChange {
        /// The SHA-256 of the change pending here (hex).
        pending: String,
        /// The SHA-256 the request names (hex).
        named: String,
    },
    /// A node of the new roster whose statement is missing from a prepare step.
    #[error(
        "missing_statement: no statement of node key {node_key} (in the roster the change makes)"
    )]
    MissingStatement {
        /// Its node key (hex).
        node_key: String,
    },
    /// A statement of a node key neither roster lists, or a node's second statement.
    #[error("stranger_statement: node key {node_key} is in neither roster, or has two statements")]
    StrangerStatement {
        /// Its node key (hex).
        node_key: String,
    },
    /// A node holds the change under another chain than this node's: the nodes would not
    /// apply the same admins or admit the same images.
    #[error(
        "chain_differs: node key {node_key} holds the change under chain {theirs}; this node's is {ours}"
    )]
    ChainDiffers {
        /// Its node key (hex).
        node_key: String,
        /// Its chain's digest (hex).
        theirs: String,
        /// This node's (hex).
        ours: String,
    },
    /// A statement that is not its node key's signature over the change and the chain.
    #[error(
        "unproven_statement: the statement named for node key {node_key} is not its signature over this change and chain"
    )]
    UnprovenStatement {
        /// Its node key (hex).
        node_key: String,
    },
    /// The commit of a roster change at a node that holds a key with no incoming generation
    /// for the change (never moved, or its move dropped since: the key changed, the change was
    /// replaced): the key moves first.
    #[error("key_not_moved: key {key_id} has no incoming generation for the pending change here")]
    KeyNotMoved {
        /// The key.
        key_id: String,
    },
    /// The commit of a roster change shown a node's statement over another key set than this
    /// node's: some key moved twice and the nodes kept different moves, or a node misses a key.
    #[error(
        "keys_differ: node key {node_key} holds the key set {theirs} incoming; this node holds {ours}"
    )]
    KeysDiffer {
        /// Its node key (hex).
        node_key: String,
        /// Its key set's digest (hex).
        theirs: String,
        /// This node's (hex).
        ours: String,
    },
    /// The commit of a roster change at a node holding auxiliary information for the roster in
    /// force: an ECDSA party set's auxiliary information is made for the new roster first.
    #[error(
        "aux_not_moved: this node holds auxiliary information for the roster in force; the new \
         roster's is made before the commit"
    )]
    AuxNotMoved,
    /// A key's move at a node that already vouched for its key set for the pending change:
    /// the set it vouched for is the only one it ever vouches for (attacker review helper-66,
    /// finding H1), so no key moves to it again. Once no node committed, the admins may
    /// withdraw the change to start again (a withdrawal after some node committed strands it:
    /// helper-67, finding 1).
    #[error(
        "vouched: this node vouched for its key set for roster version {version}; no key moves \
         to it again (once no node committed, the admins may withdraw the change to start \
         again)"
    )]
    Vouched {
        /// The roster version the change makes.
        version: u32,
    },
    /// A catch-up commit at a node that did not vouch for the change it names (or vouched for
    /// it and was prepared for another change since, on every current node's word): only a
    /// node that vouched for a change, and still holds the key set it vouched for, commits it
    /// late.
    #[error(
        "not_vouched: this node holds no vouched key set for roster change {change}; it cannot \
         commit it late"
    )]
    NotVouched {
        /// The SHA-256 of the change named (hex).
        change: String,
    },
    /// A commit shown too few words of nodes that stay that they committed the change: a
    /// joining node needs as many as the highest threshold of its keys (attacker review
    /// helper-70, finding 3); a catch-up one at least, and that threshold at a node that gave
    /// its word on another change since it vouched (helper-70, finding 1).
    #[error(
        "too_few_committed: {have} node(s) that stay said they committed the change; this node \
         needs {need}"
    )]
    TooFewCommitted {
        /// Distinct words shown.
        have: usize,
        /// Words needed.
        need: usize,
    },
    /// Key work (creating, importing, resharing, auxiliary information) at a node that vouched
    /// for a roster change it has not committed (a withdrawal, an admin or an image change
    /// came first): its keys stay the set a catch-up commits (helper-68, finding 2). Signing
    /// and presigning at a node that vouched, pending change or not: the nodes that committed
    /// sign on the new sharing (helper-71, finding 1). It ends with the commit or catch-up, or
    /// with the node prepared for another change on the word of every node the change keeps.
    #[error(
        "vouched_not_committed: this node vouched for its key set for roster version {version} \
         and has not committed it; it signs nothing and no key is created, imported or reshared \
         until it commits (a catch-up) or is prepared for another change on the word of every \
         node the change keeps"
    )]
    VouchedNotCommitted {
        /// The roster version the change makes.
        version: u32,
    },
    /// A node asked to vouch for, or commit on, another key set than the one it vouched for
    /// (its parent gave it another run's incoming blob since).
    #[error("vouched_other: this node vouched for key set {vouched}; it now holds {holds}")]
    VouchedOther {
        /// The set it vouched for (hex).
        vouched: String,
        /// The set it holds now (hex).
        holds: String,
    },
}

impl MembershipError {
    /// The stable kind (the message's first word).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Genesis(g) => genesis_kind(g),
            Self::Approvals(_) => "approvals",
            Self::NotInRoster { .. } => "not_in_roster",
            Self::RosterKmsKey { .. } => "kms_key_mismatch",
            Self::OtherImage => "other_image",
            Self::ParentMismatch { .. } => "parent_mismatch",
            Self::AlreadyMember { .. } => "already_member",
            Self::NotEnrolled => "not_enrolled",
            Self::NoNodeKey => "no_node_key",
            Self::AlreadyEnrolled { .. } => "already_enrolled",
            Self::LegacyGenesis => "legacy_genesis",
            Self::TwoNodeKeys { .. } => "two_node_keys",
            Self::KmsKeyMismatch { .. } => "kms_key_mismatch",
            Self::MalformedNodeKey(_) => "malformed_node_key",
            Self::OtherCluster { .. } => "other_cluster",
            Self::StaleAdmins { .. }
            | Self::OtherAdminChange { .. }
            | Self::AdminsReplacedBefore { .. } => "stale_admins",
            Self::AdminChange(_) => "malformed_admin_change",
            Self::StaleImages { .. } | Self::OtherImageChange { .. } => "stale_images",
            Self::OwnImageDropped => "own_image_dropped",
            Self::ImageChange(_) => "malformed_image_change",
            Self::StaleRoster { .. } | Self::KeyRoster { .. } => "stale_roster",
            Self::RosterChange(e) => e.kind(),
            Self::RosterChangePending { .. } => "roster_change_pending",
            Self::PendingGeneration { .. } => "pending_generation",
            Self::VoidPolicy { .. } => "void_policy",
            Self::RosterChangePrepared { .. } => "roster_change_prepared",
            Self::NotPrepared { .. } => "not_prepared",
            Self::KeyInfoDiffers { .. } => "key_info_differs",
            Self::PartyRefused { .. } => "party_refused",
            Self::NotInChange { .. } => "not_in_roster",
            Self::ListedInForce { .. } => "listed_in_force",
            Self::NothingToJoin => "nothing_to_join",
            Self::UnprovenChange { .. } => "unproven_change",
            Self::Joining { .. } => "joining",
            Self::NoPendingChange => "no_pending_change",
            Self::OtherChange { .. } => "other_change",
            Self::MissingStatement { .. } => "missing_statement",
            Self::StrangerStatement { .. } => "stranger_statement",
            Self::ChainDiffers { .. } => "chain_differs",
            Self::UnprovenStatement { .. } => "unproven_statement",
            Self::KeyNotMoved { .. } => "key_not_moved",
            Self::KeysDiffer { .. } => "keys_differ",
            Self::AuxNotMoved => "aux_not_moved",
            Self::Vouched { .. } => "vouched",
            Self::VouchedOther { .. } => "vouched_other",
            Self::NotVouched { .. } => "not_vouched",
            Self::TooFewCommitted { .. } => "too_few_committed",
            Self::VouchedNotCommitted { .. } => "vouched_not_committed",
        }
    }
}

/// The stable kind of a malformed genesis: duplicates are named apart (ADR 0013 §2).
fn genesis_kind(e: &GenesisError) -> &'static str {
    match e {
        GenesisError::Version(_) => "unsupported_genesis",
        GenesisError::DuplicateNodeKey { .. } => "duplicate_node_key",
        GenesisError::DuplicateKmsKey { .. } => "duplicate_kms_key",
        _ => "malformed_genesis",
    }
}
