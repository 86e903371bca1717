//! Threshold EdDSA (Ed25519) with FROST (`frost-ed25519`): distributed key generation and
//! two-round signing, driven as the state machines described in [`crate::mpc`].
//!
//! # Key generation ([`Dkg`])
//!
//! FROST's Pedersen DKG with proofs of knowledge, plus an echo round because the relay between
//! the parties is untrusted and could show different round-1 packages to different parties:
//!
//! 1. every party broadcasts its round-1 package (`dkg::part1`);
//! 2. once it holds all `n` round-1 packages, every party broadcasts an *echo*: a domain-separated
//!    SHA-256 over the session id, `n`, `t` and all round-1 packages ordered by sender;
//! 3. once all `n - 1` echoes arrived and equal its own, a party sends its round-2 packages
//!    point-to-point (`dkg::part2`);
//! 4. once it holds all round-2 packages, it computes its share (`dkg::part3`).
//!
//! No party sends a round-2 package, and so none accepts a share, before it has seen matching
//! echoes from every peer. Note that, as in FROST's DKG, an honest party can still finish while
//! another aborts (for example when one round-2 package is corrupted on its way to one party):
//! callers must treat a key as usable only once every party reported success.
//!
//! # Signing ([`Sign`])
//!
//! Two rounds among a chosen signer set of at least `t` parties: every signer broadcasts its nonce
//! commitments (the nonces stay in the machine and are consumed by value, so they are used at
//! most once and never serialized), then its signature share; every signer aggregates the shares,
//! verifies the group signature and returns the 64-byte Ed25519 signature `R || s`. Commitments
//! also carry a digest of the signing context (session, group key, signer set and message), so
//! signers that disagree about what they sign abort early instead of blaming each other later.
//!
//! # Wire format
//!
//! Every payload is CBOR of a versioned envelope (`V1 { session_id, body }`) whose body names the
//! round. A message of another round or protocol, of another session, or one that does not decode
//! is refused with [`MpcError::BadMessage`]; the machine stays usable after a refused message.
//! An [`MpcError::Aborted`] or [`MpcError::Internal`] error is terminal for the machine.

use std::collections::BTreeMap;
use std::fmt;

use frost_ed25519 as frost;
use frost_ed25519::keys::{
    KeyPackage, PublicKeyPackage, VerifiableSecretSharingCommitment, VerifyingShare, dkg,
};
use frost_ed25519::round1::{SigningCommitments, SigningNonces};
use frost_ed25519::round2::SignatureShare;
use frost_ed25519::{Identifier, SigningPackage};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature (`R || s`).
pub const SIGNATURE_LEN: usize = 64;

/// Domain separator of the DKG echo digest.
const ECHO_DOMAIN: &[u8] = b"cohort/mpc/eddsa/frost-ed25519/dkg-echo/v1";
/// Domain separator of the signing context digest.
const SIGN_CONTEXT_DOMAIN: &[u8] = b"cohort/mpc/eddsa/frost-ed25519/sign-context/v1";

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/// Every message on the wire, tagged with its format version.
#[derive(Serialize, Deserialize)]
enum Wire {
    V1(WireV1),
}

/// Version 1 of the envelope.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireV1 {
    #[serde(with = "serde_bytes")]
    session_id: Vec<u8>,
    body: Body,
}

/// The round a message belongs to, with its content.
#[derive(Serialize, Deserialize)]
enum Body {
    /// DKG round 1 (broadcast): commitment and proof of knowledge.
    DkgRound1(Box<dkg::round1::Package>),
    /// DKG echo (broadcast): digest of all round-1 packages as seen by the sender.
    DkgEcho(#[serde(with = "serde_bytes")] Vec<u8>),
    /// DKG round 2 (point-to-point): the secret share for the receiver.
    DkgRound2(Box<dkg::round2::Package>),
    /// Signing round 1 (broadcast): nonce commitments and the signing-context digest.
    SignCommit {
        #[serde(with = "serde_bytes")]
        context: Vec<u8>,
        commitments: Box<SigningCommitments>,
    },
    /// Signing round 2 (broadcast): the signature share.
    SignShare(Box<SignatureShare>),
}

impl Body {
    fn kind(&self) -> &'static str {
        match self {
            Body::DkgRound1(_) => "dkg round-1",
            Body::DkgEcho(_) => "dkg echo",
            Body::DkgRound2(_) => "dkg round-2",
            Body::SignCommit { .. } => "signing commitment",
            Body::SignShare(_) => "signature share",
        }
    }
}

fn encode(session_id: &[u8], body: Body) -> Result<Vec<u8>, MpcError> {
    let wire = Wire::V1(WireV1 {
        session_id: session_id.to_vec(),
        body,
    });
    let mut out = Vec::new();
    ciborium::ser::into_writer(&wire, &mut out)
        .map_err(|e| MpcError::Internal(format!("cannot encode eddsa message: {e}")))?;
    Ok(out)
}

fn bad(from: PartyIndex, reason: impl Into<String>) -> MpcError {
    MpcError::BadMessage {
        from,
        reason: reason.into(),
    }
}

/// Describes a CBOR decoding error without echoing any decoded content.
fn cbor_error<E>(err: &ciborium::de::Error<E>) -> String {
    match err {
        ciborium::de::Error::Io(_) => "truncated cbor".to_owned(),
        ciborium::de::Error::Syntax(offset) => format!("cbor syntax error at offset {offset}"),
        ciborium::de::Error::Semantic(Some(offset), _) => {
            format!("unexpected cbor content at offset {offset}")
        }
        ciborium::de::Error::Semantic(None, _) => "unexpected cbor content".to_owned(),
        ciborium::de::Error::RecursionLimitExceeded => "cbor nested too deeply".to_owned(),
    }
}

/// Decodes one payload from `from`, checking version, session and that nothing trails it.
fn decode(session_id: &[u8], from: PartyIndex, payload: &[u8]) -> Result<Body, MpcError> {
    let mut reader = payload;
    let wire: Wire = ciborium::de::from_reader(&mut reader).map_err(|e| {
        bad(
            from,
            format!("payload is not an eddsa v1 message: {}", cbor_error(&e)),
        )
    })?;
    if !reader.is_empty() {
        return Err(bad(from, "trailing bytes after the message"));
    }
    // Only the canonical encoding is accepted (ciborium tolerates, for example, arrays that
    // announce more elements than a fixed-size field reads), so one value has one encoding.
    let mut canonical = Zeroizing::new(Vec::with_capacity(payload.len()));
    ciborium::ser::into_writer(&wire, &mut *canonical)
        .map_err(|e| MpcError::Internal(format!("cannot re-encode eddsa message: {e}")))?;
    if canonical.as_slice() != payload {
        return Err(bad(from, "non-canonical encoding"));
    }
    let Wire::V1(v1) = wire;
    if v1.session_id != session_id {
        return Err(bad(from, "message of another session"));
    }
    Ok(v1.body)
}

fn broadcast(session_id: &[u8], body: Body) -> Result<OutgoingMessage, MpcError> {
    Ok(OutgoingMessage {
        to: None,
        payload: encode(session_id, body)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The FROST identifier of a party: its index plus one (FROST identifiers are non-zero).
fn identifier(party: PartyIndex) -> Result<Identifier, MpcError> {
    party
        .checked_add(1)
        .and_then(|v| Identifier::try_from(v).ok())
        .ok_or_else(|| MpcError::BadInput(format!("party index {party} out of range")))
}

/// The party of a FROST identifier, among parties `0..n`.
fn party_of(id: &Identifier, n: u16) -> Option<PartyIndex> {
    (0..n).find(|p| identifier(*p).is_ok_and(|candidate| candidate == *id))
}

/// A FROST error as a lowercase reason without a trailing period.
fn frost_reason(err: &frost::Error) -> String {
    let text = err.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps a FROST error to an abort blaming the parties FROST names (possibly none).
fn frost_abort(err: &frost::Error, n: u16, context: &str) -> MpcError {
    MpcError::Aborted {
        culprits: err
            .culprits()
            .iter()
            .filter_map(|id| party_of(id, n))
            .collect(),
        reason: format!("{context}: {}", frost_reason(err)),
    }
}

fn check_params(session_id: &[u8], me: PartyIndex, n: u16, t: u16) -> Result<(), MpcError> {
    if session_id.is_empty() {
        return Err(MpcError::BadInput("empty session id".into()));
    }
    if t < 2 || t > n {
        return Err(MpcError::BadInput(format!(
            "threshold {t} must be at least 2 and at most the number of parties {n}"
        )));
    }
    if me >= n {
        return Err(MpcError::BadInput(format!(
            "party index {me} out of range for {n} parties"
        )));
    }
    Ok(())
}

/// Number of coefficients of a VSS commitment (`t` for a well-formed one).
fn commitment_len(commitment: &VerifiableSecretSharingCommitment) -> Option<usize> {
    commitment.serialize().ok().map(|c| c.len())
}

fn update_len_prefixed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies an Ed25519 signature with `ed25519-dalek`'s strict verification.
///
/// Returns [`MpcError::BadInput`] if the public key does not decode or the signature is invalid.
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), MpcError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
        .map_err(|_| MpcError::BadInput("invalid ed25519 public key".into()))?;
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| MpcError::BadInput("invalid ed25519 signature".into()))
}

// ---------------------------------------------------------------------------------------------
// Key share
// ---------------------------------------------------------------------------------------------

/// A party's Ed25519 key share from the DKG: its FROST key package, the group's public key
/// package and the DKG commitments they derive from, with the party's index, `n` and `t`.
///
/// Every value of this type is validated: the verifying share matches the signing share, the
/// public key package is the one the DKG commitments define, and the group key of the key
/// package is the package's. The signing share is zeroized on drop (by FROST's `KeyPackage`).
pub struct SecretEddsaShare {
    index: PartyIndex,
    parties: u16,
    threshold: u16,
    key_package: KeyPackage,
    public_key_package: PublicKeyPackage,
    /// Every party's round-1 VSS commitment, by party index: they determine the public key
    /// package, so a stored share can be checked in full.
    dkg_commitments: Vec<VerifiableSecretSharingCommitment>,
    public_key: [u8; PUBLIC_KEY_LEN],
}

// The only secret, the key package's signing share, zeroizes itself on drop.
impl ZeroizeOnDrop for SecretEddsaShare {}

impl fmt::Debug for SecretEddsaShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretEddsaShare")
            .field("group_public_key", &hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

/// Stored form (serialization side, borrowing the share).
#[derive(Serialize)]
enum StoredShareRef<'a> {
    FrostEd25519V1(StoredShareV1Ref<'a>),
}

#[derive(Serialize)]
struct StoredShareV1Ref<'a> {
    index: PartyIndex,
    parties: u16,
    threshold: u16,
    key_package: &'a KeyPackage,
    public_key_package: &'a PublicKeyPackage,
    dkg_commitments: &'a [VerifiableSecretSharingCommitment],
}

/// Stored form (deserialization side); field and variant names match [`StoredShareRef`].
#[derive(Deserialize)]
enum StoredShare {
    FrostEd25519V1(StoredShareV1),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredShareV1 {
    index: PartyIndex,
    parties: u16,
    threshold: u16,
    key_package: KeyPackage,
    public_key_package: PublicKeyPackage,
    dkg_commitments: Vec<VerifiableSecretSharingCommitment>,
}

impl SecretEddsaShare {
    /// Builds a share after checking that all its parts agree (see the type's docs).
    fn validated(
        index: PartyIndex,
        parties: u16,
        threshold: u16,
        key_package: KeyPackage,
        public_key_package: PublicKeyPackage,
        dkg_commitments: Vec<VerifiableSecretSharingCommitment>,
    ) -> Result<Self, String> {
        if threshold < 2 || threshold > parties || index >= parties {
            return Err(format!(
                "inconsistent parameters: index {index}, {parties} parties, threshold {threshold}"
            ));
        }
        let my_id = identifier(index).map_err(|e| e.to_string())?;
        if *key_package.identifier() != my_id {
            return Err("key package identifier does not match the party index".into());
        }
        if *key_package.min_signers() != threshold {
            return Err("key package threshold does not match".into());
        }
        if VerifyingShare::from(*key_package.signing_share()) != *key_package.verifying_share() {
            return Err("verifying share does not match the signing share".into());
        }
        if dkg_commitments.len() != usize::from(parties) {
            return Err("wrong number of dkg commitments".into());
        }
        let mut by_id = BTreeMap::new();
        for (party, commitment) in (0..parties).zip(&dkg_commitments) {
            if commitment_len(commitment) != Some(usize::from(threshold)) {
                return Err(format!(
                    "dkg commitment of party {party} has a wrong length"
                ));
            }
            by_id.insert(identifier(party).map_err(|e| e.to_string())?, commitment);
        }
        let derived = PublicKeyPackage::from_dkg_commitments(&by_id)
            .map_err(|e| format!("dkg commitments: {}", frost_reason(&e)))?;
        if derived != public_key_package {
            return Err("public key package does not match the dkg commitments".into());
        }
        if key_package.verifying_key() != public_key_package.verifying_key() {
            return Err("group key does not match the public key package".into());
        }
        if public_key_package.verifying_shares().get(&my_id) != Some(key_package.verifying_share())
        {
            return Err("verifying share does not match the public key package".into());
        }
        let public_key = public_key_package
            .verifying_key()
            .serialize()
            .ok()
            .and_then(|bytes| <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).ok())
            .ok_or("group key does not serialize to 32 bytes")?;
        Ok(Self {
            index,
            parties,
            threshold,
            key_package,
            public_key_package,
            dkg_commitments,
            public_key,
        })
    }

    /// The group's Ed25519 public key (32 bytes, the standard compressed encoding).
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public_key
    }

    /// This party's index.
    pub fn index(&self) -> PartyIndex {
        self.index
    }

    /// The number of parties holding shares (`n`).
    pub fn parties(&self) -> u16 {
        self.parties
    }

    /// The number of parties needed to sign (`t`).
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// The group's public key package (group key and every party's verifying share).
    pub fn public_key_package(&self) -> &PublicKeyPackage {
        &self.public_key_package
    }

    /// Serializes the share for storage (versioned CBOR). The bytes contain the secret share:
    /// they are zeroized when dropped and must be stored encrypted.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, MpcError> {
        let stored = StoredShareRef::FrostEd25519V1(StoredShareV1Ref {
            index: self.index,
            parties: self.parties,
            threshold: self.threshold,
            key_package: &self.key_package,
            public_key_package: &self.public_key_package,
            dkg_commitments: &self.dkg_commitments,
        });
        // Reserve enough up front so no reallocation leaves a copy of the secret behind.
        let n = usize::from(self.parties);
        let t = usize::from(self.threshold);
        let mut out = Zeroizing::new(Vec::with_capacity(1024 + n * (t * 70 + 120)));
        ciborium::ser::into_writer(&stored, &mut *out)
            .map_err(|e| MpcError::Internal(format!("cannot encode eddsa share: {e}")))?;
        Ok(out)
    }

    /// Decodes and validates a share produced by [`SecretEddsaShare::to_bytes`]. Unknown
    /// versions, unknown fields, trailing bytes and inconsistent shares are rejected with
    /// [`MpcError::BadInput`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        let mut reader = bytes;
        let mut scratch = Zeroizing::new([0u8; 4096]);
        let stored: StoredShare =
            ciborium::de::from_reader_with_buffer(&mut reader, &mut scratch[..]).map_err(|e| {
                MpcError::BadInput(format!("eddsa share does not decode: {}", cbor_error(&e)))
            })?;
        if !reader.is_empty() {
            return Err(MpcError::BadInput(
                "trailing bytes after the eddsa share".into(),
            ));
        }
        let StoredShare::FrostEd25519V1(v1) = stored;
        let share = Self::validated(
            v1.index,
            v1.parties,
            v1.threshold,
            v1.key_package,
            v1.public_key_package,
            v1.dkg_commitments,
        )
        .map_err(|reason| MpcError::BadInput(format!("invalid eddsa share: {reason}")))?;
        // Only the canonical encoding is accepted, so one share has one encoding.
        if share.to_bytes()?.as_slice() != bytes {
            return Err(MpcError::BadInput(
                "non-canonical encoding of the eddsa share".into(),
            ));
        }
        Ok(share)
    }
}

// ---------------------------------------------------------------------------------------------
// DKG
// ---------------------------------------------------------------------------------------------

enum DkgPhase {
    /// Round-1 package sent; waiting for the peers' round-1 packages.
    Round1(dkg::round1::SecretPackage),
    /// Echo sent; waiting for matching echoes from all peers.
    Echo {
        secret: dkg::round1::SecretPackage,
        digest: [u8; 32],
    },
    /// Round-2 packages sent; waiting for the peers' round-2 packages.
    Round2(dkg::round2::SecretPackage),
    /// Finished or aborted: every further message is refused.
    Closed,
}

impl DkgPhase {
    fn name(&self) -> &'static str {
        match self {
            DkgPhase::Round1(_) => "round1",
            DkgPhase::Echo { .. } => "echo",
            DkgPhase::Round2(_) => "round2",
            DkgPhase::Closed => "closed",
        }
    }
}

/// FROST Ed25519 distributed key generation with an echo round (see the module docs).
///
/// The output is a [`SecretEddsaShare`].
pub struct Dkg {
    session_id: Vec<u8>,
    me: PartyIndex,
    n: u16,
    t: u16,
    phase: DkgPhase,
    own_round1: Box<dkg::round1::Package>,
    /// The peers' round-1 packages.
    round1: BTreeMap<PartyIndex, dkg::round1::Package>,
    /// The peers' echoes.
    echoes: BTreeMap<PartyIndex, [u8; 32]>,
    /// The peers' round-2 packages (secret shares; zeroized on drop by FROST).
    round2: BTreeMap<PartyIndex, dkg::round2::Package>,
}

impl fmt::Debug for Dkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dkg")
            .field("me", &self.me)
            .field("n", &self.n)
            .field("t", &self.t)
            .field("phase", &self.phase.name())
            .finish_non_exhaustive()
    }
}

impl Dkg {
    /// Starts the DKG as party `me` of `n` (indices `0..n`), for a `t`-of-`n` key, in the session
    /// `session_id` (non-empty, the same at every party). Returns the round-1 broadcast.
    pub fn start<R: RngCore + CryptoRng>(
        session_id: &[u8],
        me: PartyIndex,
        n: u16,
        t: u16,
        rng: &mut R,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        check_params(session_id, me, n, t)?;
        let (secret, package) = dkg::part1(identifier(me)?, n, t, &mut *rng)
            .map_err(|e| MpcError::BadInput(frost_reason(&e)))?;
        let first = broadcast(session_id, Body::DkgRound1(Box::new(package.clone())))?;
        let machine = Self {
            session_id: session_id.to_vec(),
            me,
            n,
            t,
            phase: DkgPhase::Round1(secret),
            own_round1: Box::new(package),
            round1: BTreeMap::new(),
            echoes: BTreeMap::new(),
            round2: BTreeMap::new(),
        };
        Ok((machine, vec![first]))
    }

    /// Feeds one message from a peer.
    ///
    /// On an echo mismatch it aborts with [`MpcError::Aborted`] naming the parties whose echo
    /// differs from ours. That list is imperfect: the echoes only show that views differ, not
    /// who caused it (the untrusted relay, the sender of the package shown inconsistently, or
    /// this party's own view) — with one tampered view, the party that saw it blames everyone
    /// and everyone else blames it.
    pub fn handle(&mut self, msg: IncomingMessage) -> Result<Step<SecretEddsaShare>, MpcError> {
        let result = self.handle_inner(msg);
        if matches!(
            result,
            Err(MpcError::Aborted { .. } | MpcError::Internal(_))
        ) {
            self.close();
        }
        result
    }

    fn close(&mut self) {
        self.phase = DkgPhase::Closed;
        self.round2.clear();
    }

    fn handle_inner(&mut self, msg: IncomingMessage) -> Result<Step<SecretEddsaShare>, MpcError> {
        let from = msg.from;
        if matches!(self.phase, DkgPhase::Closed) {
            return Err(bad(from, "eddsa dkg already finished"));
        }
        if from >= self.n || from == self.me {
            return Err(bad(from, "sender is not a peer of this dkg"));
        }
        match decode(&self.session_id, from, &msg.payload)? {
            Body::DkgRound1(package) => {
                if !msg.broadcast {
                    return Err(bad(from, "dkg round-1 package must be broadcast"));
                }
                if self.round1.contains_key(&from) {
                    return Err(bad(from, "duplicate dkg round-1 package"));
                }
                if commitment_len(package.commitment()) != Some(usize::from(self.t)) {
                    return Err(bad(from, "dkg commitment does not match the threshold"));
                }
                self.round1.insert(from, *package);
            }
            Body::DkgEcho(digest) => {
                if !msg.broadcast {
                    return Err(bad(from, "dkg echo must be broadcast"));
                }
                let digest = <[u8; 32]>::try_from(digest.as_slice())
                    .map_err(|_| bad(from, "dkg echo is not 32 bytes"))?;
                if self.echoes.contains_key(&from) {
                    return Err(bad(from, "duplicate dkg echo"));
                }
                self.echoes.insert(from, digest);
            }
            Body::DkgRound2(package) => {
                if msg.broadcast {
                    return Err(bad(from, "dkg round-2 package must be point-to-point"));
                }
                if matches!(self.phase, DkgPhase::Round1(_)) {
                    // A peer sends round 2 only after our echo, which we have not sent yet.
                    return Err(bad(from, "dkg round-2 package before the echo round"));
                }
                if self.round2.contains_key(&from) {
                    return Err(bad(from, "duplicate dkg round-2 package"));
                }
                self.round2.insert(from, *package);
            }
            other => {
                return Err(bad(
                    from,
                    format!("unexpected {} message in the eddsa dkg", other.kind()),
                ));
            }
        }
        self.advance()
    }

    /// Moves through every phase whose messages are all present.
    fn advance(&mut self) -> Result<Step<SecretEddsaShare>, MpcError> {
        let peers = usize::from(self.n) - 1;
        let mut out = Vec::new();
        loop {
            // Taking the phase leaves `Closed` behind if anything below fails.
            match std::mem::replace(&mut self.phase, DkgPhase::Closed) {
                DkgPhase::Round1(secret) if self.round1.len() == peers => {
                    let digest = self.transcript_digest()?;
                    out.push(broadcast(&self.session_id, Body::DkgEcho(digest.to_vec()))?);
                    self.phase = DkgPhase::Echo { secret, digest };
                }
                DkgPhase::Echo { secret, digest } => {
                    let differing: Vec<PartyIndex> = self
                        .echoes
                        .iter()
                        .filter(|(_, echo)| **echo != digest)
                        .map(|(party, _)| *party)
                        .collect();
                    if !differing.is_empty() {
                        return Err(MpcError::Aborted {
                            culprits: differing,
                            reason: "inconsistent dkg round-1 broadcast: echo differs".into(),
                        });
                    }
                    if self.echoes.len() < peers {
                        self.phase = DkgPhase::Echo { secret, digest };
                        break;
                    }
                    let round1 = self.peer_round1()?;
                    let (secret, packages) = dkg::part2(secret, &round1)
                        .map_err(|e| frost_abort(&e, self.n, "dkg part 2"))?;
                    for (id, package) in packages {
                        let to = party_of(&id, self.n).ok_or_else(|| {
                            MpcError::Internal("dkg part 2 produced an unknown identifier".into())
                        })?;
                        out.push(OutgoingMessage {
                            to: Some(to),
                            payload: encode(&self.session_id, Body::DkgRound2(Box::new(package)))?,
                        });
                    }
                    self.phase = DkgPhase::Round2(secret);
                }
                DkgPhase::Round2(secret) if self.round2.len() == peers => {
                    let round1 = self.peer_round1()?;
                    let mut round2 = BTreeMap::new();
                    for (party, package) in std::mem::take(&mut self.round2) {
                        round2.insert(identifier(party)?, package);
                    }
                    let (key_package, public_key_package) =
                        dkg::part3(&secret, &round1, &round2)
                            .map_err(|e| frost_abort(&e, self.n, "dkg part 3"))?;
                    let mut commitments = Vec::with_capacity(usize::from(self.n));
                    for party in 0..self.n {
                        let package = if party == self.me {
                            &*self.own_round1
                        } else {
                            self.round1.get(&party).ok_or_else(|| {
                                MpcError::Internal("round-1 package missing".into())
                            })?
                        };
                        commitments.push(package.commitment().clone());
                    }
                    let share = SecretEddsaShare::validated(
                        self.me,
                        self.n,
                        self.t,
                        key_package,
                        public_key_package,
                        commitments,
                    )
                    .map_err(|reason| MpcError::Internal(format!("dkg output: {reason}")))?;
                    return Ok(Step::Done(share, out));
                }
                other => {
                    self.phase = other;
                    break;
                }
            }
        }
        Ok(Step::Continue(out))
    }

    /// The peers' round-1 packages keyed by FROST identifier.
    fn peer_round1(&self) -> Result<BTreeMap<Identifier, dkg::round1::Package>, MpcError> {
        self.round1
            .iter()
            .map(|(party, package)| Ok((identifier(*party)?, package.clone())))
            .collect()
    }

    /// SHA-256 over the session, the parameters and all round-1 packages ordered by sender.
    fn transcript_digest(&self) -> Result<[u8; 32], MpcError> {
        let mut hasher = Sha256::new();
        update_len_prefixed(&mut hasher, ECHO_DOMAIN);
        update_len_prefixed(&mut hasher, &self.session_id);
        hasher.update(self.n.to_be_bytes());
        hasher.update(self.t.to_be_bytes());
        for party in 0..self.n {
            let package = if party == self.me {
                &*self.own_round1
            } else {
                self.round1
                    .get(&party)
                    .ok_or_else(|| MpcError::Internal("round-1 package missing".into()))?
            };
            let bytes = package.serialize().map_err(|e| {
                MpcError::Internal(format!("round-1 package: {}", frost_reason(&e)))
            })?;
            hasher.update(party.to_be_bytes());
            update_len_prefixed(&mut hasher, &bytes);
        }
        Ok(hasher.finalize().into())
    }
}

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// Two-round FROST Ed25519 signing among a signer set (see the module docs).
///
/// The output is the 64-byte signature `R || s`, verified against the group key. Broadcasts
/// (`to: None`) are meant for the other signers only.
pub struct Sign {
    session_id: Vec<u8>,
    me: PartyIndex,
    n: u16,
    /// Sorted, without duplicates, including `me`.
    signers: Vec<PartyIndex>,
    message: Vec<u8>,
    /// Digest of session, group key, signer set and message, carried by the commitments.
    context: [u8; 32],
    public_key: [u8; PUBLIC_KEY_LEN],
    // The large FROST values are boxed to keep the machine small to move.
    key_package: Box<KeyPackage>,
    public_key_package: Box<PublicKeyPackage>,
    /// This signer's nonces: taken (and so zeroized and gone) by the round-2 signing step.
    nonces: Option<Box<SigningNonces>>,
    /// Everyone's commitments, including ours.
    commitments: BTreeMap<PartyIndex, SigningCommitments>,
    signing_package: Option<SigningPackage>,
    own_share: Option<SignatureShare>,
    /// The peers' signature shares.
    shares: BTreeMap<PartyIndex, SignatureShare>,
    closed: bool,
}

impl fmt::Debug for Sign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sign")
            .field("me", &self.me)
            .field("signers", &self.signers)
            .field("commitments", &self.commitments.len())
            .field("shares", &self.shares.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Sign {
    /// Starts signing `message` with `share` among `signers` (party indices, at least `t`,
    /// including this party) in the session `session_id`. Returns the commitment broadcast.
    ///
    /// Fewer than `t` signers, duplicates, unknown parties or a signer set without this party
    /// are [`MpcError::BadInput`].
    pub fn start<R: RngCore + CryptoRng>(
        share: &SecretEddsaShare,
        session_id: &[u8],
        signers: &[PartyIndex],
        message: &[u8],
        rng: &mut R,
    ) -> Result<(Self, Vec<OutgoingMessage>), MpcError> {
        let me = share.index;
        check_params(session_id, me, share.parties, share.threshold)?;
        let mut sorted = signers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != signers.len() {
            return Err(MpcError::BadInput("duplicate signer".into()));
        }
        if sorted.len() < usize::from(share.threshold) {
            return Err(MpcError::BadInput(format!(
                "{} signers given, at least {} needed",
                sorted.len(),
                share.threshold
            )));
        }
        if let Some(unknown) = sorted.iter().find(|p| **p >= share.parties) {
            return Err(MpcError::BadInput(format!("unknown signer {unknown}")));
        }
        if sorted.binary_search(&me).is_err() {
            return Err(MpcError::BadInput(
                "this party is not among the signers".into(),
            ));
        }

        let mut hasher = Sha256::new();
        update_len_prefixed(&mut hasher, SIGN_CONTEXT_DOMAIN);
        update_len_prefixed(&mut hasher, session_id);
        hasher.update(share.public_key);
        hasher.update((sorted.len() as u64).to_be_bytes());
        for signer in &sorted {
            hasher.update(signer.to_be_bytes());
        }
        update_len_prefixed(&mut hasher, message);
        let context: [u8; 32] = hasher.finalize().into();

        let (nonces, commitments) =
            frost::round1::commit(share.key_package.signing_share(), &mut *rng);
        let first = broadcast(
            session_id,
            Body::SignCommit {
                context: context.to_vec(),
                commitments: Box::new(commitments),
            },
        )?;
        let machine = Self {
            session_id: session_id.to_vec(),
            me,
            n: share.parties,
            signers: sorted,
            message: message.to_vec(),
            context,
            public_key: share.public_key,
            key_package: Box::new(share.key_package.clone()),
            public_key_package: Box::new(share.public_key_package.clone()),
            nonces: Some(Box::new(nonces)),
            commitments: BTreeMap::from([(me, commitments)]),
            signing_package: None,
            own_share: None,
            shares: BTreeMap::new(),
            closed: false,
        };
        Ok((machine, vec![first]))
    }

    /// Feeds one message from another signer. An invalid signature share aborts with
    /// [`MpcError::Aborted`] naming the signers whose shares are invalid.
    pub fn handle(&mut self, msg: IncomingMessage) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        let result = self.handle_inner(msg);
        if matches!(
            result,
            Err(MpcError::Aborted { .. } | MpcError::Internal(_))
        ) {
            self.close();
        }
        result
    }

    fn close(&mut self) {
        self.closed = true;
        self.nonces = None;
    }

    fn handle_inner(
        &mut self,
        msg: IncomingMessage,
    ) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        let from = msg.from;
        if self.closed {
            return Err(bad(from, "eddsa signing already finished"));
        }
        if from == self.me || self.signers.binary_search(&from).is_err() {
            return Err(bad(from, "sender is not another signer"));
        }
        match decode(&self.session_id, from, &msg.payload)? {
            Body::SignCommit {
                context,
                commitments,
            } => {
                if !msg.broadcast {
                    return Err(bad(from, "signing commitment must be broadcast"));
                }
                if self.commitments.contains_key(&from) {
                    return Err(bad(from, "duplicate signing commitment"));
                }
                if context != self.context {
                    return Err(MpcError::Aborted {
                        culprits: vec![from],
                        reason: "signer disagrees on session, key, signer set or message".into(),
                    });
                }
                self.commitments.insert(from, *commitments);
            }
            Body::SignShare(share) => {
                if !msg.broadcast {
                    return Err(bad(from, "signature share must be broadcast"));
                }
                if self.shares.contains_key(&from) {
                    return Err(bad(from, "duplicate signature share"));
                }
                self.shares.insert(from, *share);
            }
            other => {
                return Err(bad(
                    from,
                    format!("unexpected {} message in eddsa signing", other.kind()),
                ));
            }
        }
        self.advance()
    }

    fn advance(&mut self) -> Result<Step<[u8; SIGNATURE_LEN]>, MpcError> {
        let mut out = Vec::new();
        if self.signing_package.is_none() && self.commitments.len() == self.signers.len() {
            let mut commitments = BTreeMap::new();
            for (party, commitment) in &self.commitments {
                commitments.insert(identifier(*party)?, *commitment);
            }
            self.signing_package = Some(SigningPackage::new(commitments, &self.message));
            let share = self.sign_round2()?;
            out.push(broadcast(
                &self.session_id,
                Body::SignShare(Box::new(share)),
            )?);
        }
        if self.own_share.is_some() && self.shares.len() + 1 == self.signers.len() {
            let signature = self.aggregate()?;
            self.close();
            return Ok(Step::Done(signature, out));
        }
        Ok(Step::Continue(out))
    }

    /// Computes this signer's share, consuming the nonces: a second call is an error.
    fn sign_round2(&mut self) -> Result<SignatureShare, MpcError> {
        let nonces = self
            .nonces
            .take()
            .ok_or_else(|| MpcError::Internal("signing nonces already used".into()))?;
        let package = self
            .signing_package
            .as_ref()
            .ok_or_else(|| MpcError::Internal("signing package missing".into()))?;
        let share = frost::round2::sign(package, &nonces, &self.key_package)
            .map_err(|e| frost_abort(&e, self.n, "signing round 2"))?;
        self.own_share = Some(share);
        Ok(share)
    }

    /// Aggregates all shares, blaming every signer whose share is invalid, and verifies the
    /// result with strict Ed25519 verification.
    fn aggregate(&self) -> Result<[u8; SIGNATURE_LEN], MpcError> {
        let package = self
            .signing_package
            .as_ref()
            .ok_or_else(|| MpcError::Internal("signing package missing".into()))?;
        let own = self
            .own_share
            .ok_or_else(|| MpcError::Internal("own signature share missing".into()))?;
        let mut shares = BTreeMap::from([(identifier(self.me)?, own)]);
        for (party, share) in &self.shares {
            shares.insert(identifier(*party)?, *share);
        }
        let signature = frost::aggregate_custom(
            package,
            &shares,
            &self.public_key_package,
            frost::CheaterDetection::AllCheaters,
        )
        .map_err(|e| frost_abort(&e, self.n, "aggregating signature shares"))?;
        let signature = signature
            .serialize()
            .ok()
            .and_then(|bytes| <[u8; SIGNATURE_LEN]>::try_from(bytes).ok())
            .ok_or_else(|| MpcError::Internal("signature does not serialize to 64 bytes".into()))?;
        verify(&self.public_key, &self.message, &signature).map_err(|_| MpcError::Aborted {
            culprits: Vec::new(),
            reason: "aggregated signature fails strict ed25519 verification".into(),
        })?;
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::{OsRng, StdRng};
    use rand::{Rng, SeedableRng};

    const SESSION: &[u8] = b"test-session";

    /// A protocol machine as the router drives it.
    trait Machine {
        type Output;
        fn feed(&mut self, msg: IncomingMessage) -> Result<Step<Self::Output>, MpcError>;
    }

    impl Machine for Dkg {
        type Output = SecretEddsaShare;
        fn feed(&mut self, msg: IncomingMessage) -> Result<Step<SecretEddsaShare>, MpcError> {
            self.handle(msg)
        }
    }

    impl Machine for Sign {
        type Output = [u8; SIGNATURE_LEN];
        fn feed(&mut self, msg: IncomingMessage) -> Result<Step<[u8; 64]>, MpcError> {
            self.handle(msg)
        }
    }

    /// One message in flight from `from` to `to`.
    struct Delivery {
        from: PartyIndex,
        to: PartyIndex,
        broadcast: bool,
        payload: Vec<u8>,
    }

    fn enqueue(
        queue: &mut Vec<Delivery>,
        parties: &[PartyIndex],
        from: PartyIndex,
        msgs: Vec<OutgoingMessage>,
    ) {
        for msg in msgs {
            match msg.to {
                None => {
                    for &to in parties.iter().filter(|p| **p != from) {
                        queue.push(Delivery {
                            from,
                            to,
                            broadcast: true,
                            payload: msg.payload.clone(),
                        });
                    }
                }
                Some(to) => queue.push(Delivery {
                    from,
                    to,
                    broadcast: false,
                    payload: msg.payload,
                }),
            }
        }
    }

    /// In-process relay: delivers messages in a seeded random order (exercising the machines'
    /// buffering of early messages), lets `hook` observe or tamper with each one, and returns
    /// each party's outcome (first error or output). Parties that stall have no entry.
    fn route<M: Machine>(
        started: Vec<(PartyIndex, M, Vec<OutgoingMessage>)>,
        seed: u64,
        mut hook: impl FnMut(&mut Delivery),
    ) -> BTreeMap<PartyIndex, Result<M::Output, MpcError>> {
        let parties: Vec<PartyIndex> = started.iter().map(|(p, _, _)| *p).collect();
        let mut machines = BTreeMap::new();
        let mut queue = Vec::new();
        for (party, machine, out) in started {
            enqueue(&mut queue, &parties, party, out);
            machines.insert(party, machine);
        }
        let mut order = StdRng::seed_from_u64(seed);
        let mut results = BTreeMap::new();
        while !queue.is_empty() {
            let mut delivery = queue.swap_remove(order.gen_range(0..queue.len()));
            hook(&mut delivery);
            if results.contains_key(&delivery.to) {
                continue;
            }
            let machine = machines.get_mut(&delivery.to).expect("known receiver");
            let step = machine.feed(IncomingMessage {
                from: delivery.from,
                broadcast: delivery.broadcast,
                payload: delivery.payload,
            });
            match step {
                Ok(Step::Continue(out)) => enqueue(&mut queue, &parties, delivery.to, out),
                Ok(Step::Done(output, out)) => {
                    results.insert(delivery.to, Ok(output));
                    enqueue(&mut queue, &parties, delivery.to, out);
                }
                Err(e) => {
                    results.insert(delivery.to, Err(e));
                }
            }
        }
        results
    }

    fn start_dkg(n: u16, t: u16) -> Vec<(PartyIndex, Dkg, Vec<OutgoingMessage>)> {
        (0..n)
            .map(|i| {
                let (m, out) = Dkg::start(SESSION, i, n, t, &mut OsRng).expect("valid parameters");
                (i, m, out)
            })
            .collect()
    }

    fn run_dkg(n: u16, t: u16) -> Vec<SecretEddsaShare> {
        let results = route(start_dkg(n, t), u64::from(n) * 100 + u64::from(t), |_| {});
        assert_eq!(results.len(), usize::from(n), "every party finishes");
        let shares: Vec<SecretEddsaShare> = results
            .into_values()
            .map(|r| r.expect("dkg succeeds"))
            .collect();
        for (i, share) in shares.iter().enumerate() {
            assert_eq!(usize::from(share.index()), i);
            assert_eq!(share.parties(), n);
            assert_eq!(share.threshold(), t);
            assert_eq!(share.public_key(), shares[0].public_key());
            assert_eq!(share.public_key_package(), shares[0].public_key_package());
        }
        shares
    }

    fn start_sign(
        shares: &[SecretEddsaShare],
        signers: &[PartyIndex],
        message: &[u8],
    ) -> Vec<(PartyIndex, Sign, Vec<OutgoingMessage>)> {
        signers
            .iter()
            .map(|&i| {
                let (m, out) = Sign::start(
                    &shares[usize::from(i)],
                    SESSION,
                    signers,
                    message,
                    &mut OsRng,
                )
                .expect("valid signer set");
                (i, m, out)
            })
            .collect()
    }

    fn sign_and_check(shares: &[SecretEddsaShare], signers: &[PartyIndex], message: &[u8]) {
        let results = route(
            start_sign(shares, signers, message),
            signers.len() as u64,
            |_| {},
        );
        assert_eq!(results.len(), signers.len());
        let public_key = shares[0].public_key();
        let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).expect("valid key");
        for (party, result) in results {
            let signature = result.expect("signing succeeds");
            dalek_key
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
                .unwrap_or_else(|_| panic!("signature of party {party} verifies"));
            verify(&public_key, message, &signature).expect("helper verifies");
            assert!(verify(&public_key, b"another message", &signature).is_err());
        }
    }

    fn decoded(delivery: &Delivery) -> Option<Body> {
        decode(SESSION, delivery.from, &delivery.payload).ok()
    }

    /// Whether `result` is a `BadMessage` blaming party 1.
    fn is_bad<T>(result: Result<T, MpcError>) -> bool {
        matches!(expect_err(result), MpcError::BadMessage { from: 1, .. })
    }

    fn expect_err<T>(result: Result<T, MpcError>) -> MpcError {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn dkg_2_of_3_then_sign_with_threshold_and_all() {
        let shares = run_dkg(3, 2);
        sign_and_check(&shares, &[0, 2], b"2-of-3 by parties 0 and 2");
        sign_and_check(&shares, &[1, 2], b"2-of-3 by parties 1 and 2");
        sign_and_check(&shares, &[0, 1, 2], b"2-of-3 by everyone");
    }

    #[test]
    fn dkg_3_of_5_then_sign_with_subsets() {
        let shares = run_dkg(5, 3);
        sign_and_check(&shares, &[1, 3, 4], b"3-of-5 by a threshold set");
        sign_and_check(&shares, &[4, 0, 2, 3], b"3-of-5 by four, unsorted");
        sign_and_check(&shares, &[0, 1, 2, 3, 4], b"");
    }

    #[test]
    fn bad_parameters_are_bad_input() {
        for (me, n, t) in [(0, 3, 1), (0, 3, 4), (3, 3, 2), (0, 1, 1)] {
            let err = expect_err(Dkg::start(SESSION, me, n, t, &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{me} {n} {t}: {err}");
        }
        assert!(matches!(
            expect_err(Dkg::start(b"", 0, 3, 2, &mut OsRng)),
            MpcError::BadInput(_)
        ));
    }

    #[test]
    fn fewer_than_t_signers_cannot_sign() {
        let shares = run_dkg(5, 3);
        for signers in [&[0, 1][..], &[2][..]] {
            let err = expect_err(Sign::start(&shares[0], SESSION, signers, b"m", &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{err}");
        }
        // Duplicates do not count twice, unknown parties and sets without us are refused.
        for signers in [&[0, 1, 1][..], &[0, 1, 5][..], &[1, 2, 3][..]] {
            let err = expect_err(Sign::start(&shares[0], SESSION, signers, b"m", &mut OsRng));
            assert!(matches!(err, MpcError::BadInput(_)), "{err}");
        }
    }

    #[test]
    fn t_minus_1_shares_do_not_aggregate() {
        let shares = run_dkg(5, 3);
        let message = b"needs three";
        let pkp = shares[0].public_key_package().clone();

        // Shares of a threshold set, minus one, do not aggregate.
        let signers = [0u16, 1, 2];
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for &i in &signers {
            let (n, c) = frost::round1::commit(
                shares[usize::from(i)].key_package.signing_share(),
                &mut OsRng,
            );
            nonces.insert(i, n);
            commitments.insert(identifier(i).expect("id"), c);
        }
        let package = SigningPackage::new(commitments.clone(), message);
        let mut sig_shares = BTreeMap::new();
        for &i in &signers {
            let share =
                frost::round2::sign(&package, &nonces[&i], &shares[usize::from(i)].key_package)
                    .expect("threshold signers sign");
            sig_shares.insert(identifier(i).expect("id"), share);
        }
        assert!(frost::aggregate(&package, &sig_shares, &pkp).is_ok());
        sig_shares.remove(&identifier(2).expect("id"));
        assert!(frost::aggregate(&package, &sig_shares, &pkp).is_err());

        // Two parties that pretend the threshold is two produce no valid signature either.
        let signers = [3u16, 4];
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for &i in &signers {
            let (n, c) = frost::round1::commit(
                shares[usize::from(i)].key_package.signing_share(),
                &mut OsRng,
            );
            nonces.insert(i, n);
            commitments.insert(identifier(i).expect("id"), c);
        }
        let package = SigningPackage::new(commitments, message);
        let mut sig_shares = BTreeMap::new();
        for &i in &signers {
            let kp = &shares[usize::from(i)].key_package;
            let lowered = KeyPackage::new(
                *kp.identifier(),
                *kp.signing_share(),
                *kp.verifying_share(),
                *kp.verifying_key(),
                2,
            );
            let share = frost::round2::sign(&package, &nonces[&i], &lowered).expect("signs");
            sig_shares.insert(identifier(i).expect("id"), share);
        }
        let lowered_pkp =
            PublicKeyPackage::new(pkp.verifying_shares().clone(), *pkp.verifying_key(), None);
        let err = frost::aggregate(&package, &sig_shares, &lowered_pkp)
            .expect_err("t-1 shares do not make a signature");
        assert_eq!(err, frost::Error::InvalidSignature);
    }

    #[test]
    fn echo_catches_inconsistent_round1_relay() {
        let (n, t) = (4, 3);
        // The relay shows party 2 another (well-formed) round-1 package for party 0.
        let (_, forged) = dkg::part1(identifier(0).expect("id"), n, t, OsRng).expect("part1");
        let forged = encode(SESSION, Body::DkgRound1(Box::new(forged))).expect("encodes");
        let mut round2_sent = false;
        let results = route(start_dkg(n, t), 7, |d| match decoded(d) {
            Some(Body::DkgRound1(_)) if d.from == 0 && d.to == 2 => d.payload = forged.clone(),
            Some(Body::DkgRound2(_)) => round2_sent = true,
            _ => {}
        });
        assert!(
            !round2_sent,
            "no secret share leaves a party before the echo check"
        );
        assert_eq!(results.len(), usize::from(n), "every party stops");
        for (party, result) in results {
            match expect_err(result) {
                MpcError::Aborted { culprits, .. } => {
                    if party == 2 {
                        assert!(
                            !culprits.is_empty() && !culprits.contains(&2),
                            "{culprits:?}"
                        );
                    } else {
                        assert_eq!(culprits, vec![2]);
                    }
                }
                other => panic!("party {party}: expected an abort, got {other}"),
            }
        }
    }

    #[test]
    fn tampered_dkg_messages_give_errors_and_no_output_to_the_victim() {
        let (n, t) = (3, 2);
        let mut round1_len = 0;
        let mut round2_len = 0;
        route(start_dkg(n, t), 1, |d| match decoded(d) {
            Some(Body::DkgRound1(_)) => round1_len = d.payload.len(),
            Some(Body::DkgRound2(_)) => round2_len = d.payload.len(),
            _ => {}
        });
        assert!(round1_len > 0 && round2_len > 0);

        for pos in (0..round1_len).step_by(5) {
            let results = route(start_dkg(n, t), pos as u64, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::DkgRound1(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            // Party 0 either refuses the package or sees another one, so nobody finishes and
            // someone notices. (A party that detects a differing echo aborts without sending
            // its own, so the others may stall until the session times out.)
            assert!(
                results.values().all(|r| r.is_err()),
                "byte {pos}: {results:?}"
            );
            assert!(!results.is_empty(), "byte {pos}");
        }
        for pos in (0..round2_len).step_by(3) {
            let results = route(start_dkg(n, t), pos as u64, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::DkgRound2(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            let err = expect_err(
                results
                    .into_iter()
                    .find(|(p, _)| *p == 0)
                    .expect("party 0 stops")
                    .1,
            );
            match err {
                MpcError::BadMessage { from, .. } => assert_eq!(from, 1),
                MpcError::Aborted { culprits, .. } => assert_eq!(culprits, vec![1]),
                other => panic!("byte {pos}: {other}"),
            }
        }
    }

    #[test]
    fn tampered_signature_share_is_an_error_not_a_panic() {
        let shares = run_dkg(3, 2);
        let signers = [0u16, 1];
        let message = b"tamper";
        let mut share_len = 0;
        route(start_sign(&shares, &signers, message), 0, |d| {
            if matches!(decoded(d), Some(Body::SignShare(_))) {
                share_len = d.payload.len();
            }
        });
        assert!(share_len > 0);
        let mut aborts = 0;
        for pos in 0..share_len {
            let results = route(start_sign(&shares, &signers, message), 0, |d| {
                if d.from == 1 && matches!(decoded(d), Some(Body::SignShare(_))) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x01;
                }
            });
            match expect_err(
                results
                    .into_iter()
                    .find(|(p, _)| *p == 0)
                    .expect("party 0 stops")
                    .1,
            ) {
                MpcError::BadMessage { from, .. } => assert_eq!(from, 1),
                MpcError::Aborted { culprits, .. } => {
                    assert_eq!(culprits, vec![1], "byte {pos}");
                    aborts += 1;
                }
                other => panic!("byte {pos}: {other}"),
            }
        }
        assert!(
            aborts > 0,
            "some flips decode to a wrong share that aggregation blames"
        );
    }

    #[test]
    fn tampered_commitment_blames_or_rejects_the_sender() {
        let shares = run_dkg(3, 2);
        let signers = [0u16, 1];
        let mut len = 0;
        route(start_sign(&shares, &signers, b"m"), 0, |d| {
            if matches!(decoded(d), Some(Body::SignCommit { .. })) {
                len = d.payload.len();
            }
        });
        for pos in (0..len).step_by(4) {
            let results = route(start_sign(&shares, &signers, b"m"), 0, |d| {
                if d.from == 1 && d.to == 0 && matches!(decoded(d), Some(Body::SignCommit { .. })) {
                    let at = pos % d.payload.len();
                    d.payload[at] ^= 0x80;
                }
            });
            assert!(
                results.get(&0).is_some_and(|r| r.is_err()) || !results.contains_key(&0),
                "byte {pos}: party 0 must not output"
            );
            // A changed commitment makes every share invalid for someone: nobody outputs a
            // signature that fails verification.
            for signature in results.values().flatten() {
                verify(&shares[0].public_key(), b"m", signature).expect("only valid output");
            }
        }
    }

    #[test]
    fn wrong_round_and_misrouted_messages_are_rejected() {
        let shares = run_dkg(3, 2);
        let (mut dkg, _) = Dkg::start(SESSION, 0, 3, 2, &mut OsRng).expect("start");
        let (mut sign, _) =
            Sign::start(&shares[0], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        let (_, sign1_out) =
            Sign::start(&shares[1], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        let (_, dkg1_out) = Dkg::start(SESSION, 1, 3, 2, &mut OsRng).expect("start");
        let commit = sign1_out[0].payload.clone();
        let round1 = dkg1_out[0].payload.clone();
        let round2 = encode(
            SESSION,
            Body::DkgRound2(Box::new(dkg::round2::Package::new(
                *shares[1].key_package.signing_share(),
            ))),
        )
        .expect("encodes");
        let msg = |from, broadcast, payload: &Vec<u8>| IncomingMessage {
            from,
            broadcast,
            payload: payload.clone(),
        };

        // Signing message to the DKG, DKG message to signing.
        assert!(is_bad(dkg.handle(msg(1, true, &commit))));
        assert!(is_bad(sign.handle(msg(1, true, &round1))));
        // A round-2 package before the echo round.
        assert!(is_bad(dkg.handle(msg(1, false, &round2))));
        // Wrong broadcast flag, wrong session, unknown version, garbage.
        assert!(is_bad(dkg.handle(msg(1, false, &round1))));
        let other_session = {
            let mut v = Vec::new();
            ciborium::ser::into_writer(
                &Wire::V1(WireV1 {
                    session_id: b"other".to_vec(),
                    body: Body::DkgEcho(vec![0; 32]),
                }),
                &mut v,
            )
            .expect("encodes");
            v
        };
        assert!(is_bad(dkg.handle(msg(1, true, &other_session))));
        let v2 = {
            let value = ciborium::Value::Map(vec![(
                ciborium::Value::Text("V2".into()),
                ciborium::Value::Map(vec![]),
            )]);
            let mut v = Vec::new();
            ciborium::ser::into_writer(&value, &mut v).expect("encodes");
            v
        };
        assert!(is_bad(dkg.handle(msg(1, true, &v2))));
        assert!(is_bad(dkg.handle(msg(1, true, &vec![0xff; 10]))));
        let mut trailing = round1.clone();
        trailing.push(0);
        assert!(is_bad(dkg.handle(msg(1, true, &trailing))));
        // Echo of the wrong length.
        let short_echo = encode(SESSION, Body::DkgEcho(vec![0; 31])).expect("encodes");
        assert!(is_bad(dkg.handle(msg(1, true, &short_echo))));
        // Unknown sender / self.
        assert!(matches!(
            expect_err(dkg.handle(msg(3, true, &round1))),
            MpcError::BadMessage { from: 3, .. }
        ));
        assert!(matches!(
            expect_err(sign.handle(msg(2, true, &commit))),
            MpcError::BadMessage { from: 2, .. }
        ));

        // The machines are still usable: the genuine messages are accepted once.
        assert!(matches!(
            dkg.handle(msg(1, true, &round1)),
            Ok(Step::Continue(_))
        ));
        assert!(is_bad(dkg.handle(msg(1, true, &round1))), "duplicate");
        assert!(matches!(
            sign.handle(msg(1, true, &commit)),
            Ok(Step::Continue(_))
        ));
        assert!(is_bad(sign.handle(msg(1, true, &commit))), "duplicate");
    }

    #[test]
    fn messages_after_the_end_are_rejected() {
        let shares = run_dkg(3, 2);
        let mut started = start_sign(&shares, &[0, 1], b"m");
        let (_, mut m1, out1) = started.pop().expect("two");
        let (_, mut m0, out0) = started.pop().expect("two");
        let Ok(Step::Continue(share0)) = m1.handle(IncomingMessage {
            from: 0,
            broadcast: true,
            payload: out0[0].payload.clone(),
        }) else {
            panic!("party 1 signs");
        };
        let Ok(Step::Continue(share1)) = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        }) else {
            panic!("party 0 signs");
        };
        let Ok(Step::Done(sig, _)) = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: share0[0].payload.clone(),
        }) else {
            panic!("party 0 aggregates");
        };
        verify(&shares[0].public_key(), b"m", &sig).expect("valid");
        let Ok(Step::Done(_, _)) = m1.handle(IncomingMessage {
            from: 0,
            broadcast: true,
            payload: share1[0].payload.clone(),
        }) else {
            panic!("party 1 aggregates");
        };
        assert!(matches!(
            expect_err(m0.handle(IncomingMessage {
                from: 1,
                broadcast: true,
                payload: share1[0].payload.clone()
            })),
            MpcError::BadMessage { .. }
        ));
    }

    #[test]
    fn nonces_are_used_at_most_once() {
        let shares = run_dkg(3, 2);
        let mut started = start_sign(&shares, &[0, 1], b"once");
        let (_, _, out1) = started.pop().expect("two");
        let (_, mut m0, _) = started.pop().expect("two");
        let step = m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        });
        assert!(
            matches!(step, Ok(Step::Continue(ref out)) if out.len() == 1),
            "share sent"
        );
        assert!(m0.nonces.is_none(), "nonces consumed");
        assert_eq!(
            expect_err(m0.sign_round2()),
            MpcError::Internal("signing nonces already used".into())
        );
    }

    #[test]
    fn signers_disagreeing_on_the_message_abort() {
        let shares = run_dkg(3, 2);
        let (mut m0, _) =
            Sign::start(&shares[0], SESSION, &[0, 1], b"pay alice", &mut OsRng).expect("start");
        let (_, out1) =
            Sign::start(&shares[1], SESSION, &[0, 1], b"pay mallory", &mut OsRng).expect("start");
        let err = expect_err(m0.handle(IncomingMessage {
            from: 1,
            broadcast: true,
            payload: out1[0].payload.clone(),
        }));
        assert!(
            matches!(err, MpcError::Aborted { ref culprits, .. } if culprits == &vec![1]),
            "{err}"
        );
        assert!(m0.nonces.is_none(), "an aborted machine drops its nonces");
    }

    #[test]
    fn share_round_trips_and_corruption_is_rejected() {
        let shares = run_dkg(3, 2);
        let bytes = shares[1].to_bytes().expect("encodes");
        let restored = SecretEddsaShare::from_bytes(&bytes).expect("decodes");
        assert_eq!(restored.public_key(), shares[1].public_key());
        assert_eq!(restored.index(), 1);
        assert_eq!(restored.key_package, shares[1].key_package);
        assert_eq!(
            restored.public_key_package(),
            shares[1].public_key_package()
        );
        assert_eq!(
            *restored.to_bytes().expect("encodes"),
            *bytes,
            "stable encoding"
        );
        let restored_all: Vec<SecretEddsaShare> = shares
            .iter()
            .map(|s| {
                SecretEddsaShare::from_bytes(&s.to_bytes().expect("encodes")).expect("decodes")
            })
            .collect();
        sign_and_check(&restored_all, &[1, 2], b"after restore");

        // Any single flipped bit is caught (decoding, parameters or consistency checks).
        for pos in 0..bytes.len() {
            let mut corrupted = bytes.to_vec();
            corrupted[pos] ^= 0x01;
            let err = expect_err(SecretEddsaShare::from_bytes(&corrupted));
            assert!(matches!(err, MpcError::BadInput(_)), "byte {pos}: {err}");
        }
        assert!(SecretEddsaShare::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(SecretEddsaShare::from_bytes(&trailing).is_err());

        // A signing share that is not the one the verifying share commits to.
        let kp = &shares[1].key_package;
        let other = *shares[2].key_package.signing_share();
        let swapped = KeyPackage::new(
            *kp.identifier(),
            other,
            *kp.verifying_share(),
            *kp.verifying_key(),
            2,
        );
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            swapped,
            shares[1].public_key_package.clone(),
            shares[1].dkg_commitments.clone(),
        );
        assert!(err.is_err_and(|e| e.contains("signing share")));

        // A public key package of another group.
        let others = run_dkg(3, 2);
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            kp.clone(),
            others[1].public_key_package.clone(),
            shares[1].dkg_commitments.clone(),
        );
        assert!(err.is_err());
        let err = SecretEddsaShare::validated(
            1,
            3,
            2,
            kp.clone(),
            others[1].public_key_package.clone(),
            others[1].dkg_commitments.clone(),
        );
        assert!(err.is_err_and(|e| e.contains("group key") || e.contains("verifying share")));
    }

    #[test]
    fn debug_output_is_redacted() {
        let shares = run_dkg(3, 2);
        let secret = hex(&shares[0].key_package.signing_share().serialize());
        let share_debug = format!("{:?}", shares[0]);
        assert!(share_debug.contains(&hex(&shares[0].public_key())));
        assert!(!share_debug.contains(&secret));
        let (dkg, _) = Dkg::start(SESSION, 0, 3, 2, &mut OsRng).expect("start");
        let (sign, _) = Sign::start(&shares[0], SESSION, &[0, 1], b"m", &mut OsRng).expect("start");
        for text in [format!("{dkg:?}"), format!("{sign:?}")] {
            assert!(!text.contains(&secret));
        }
    }

    /// A 2-of-3 DKG whose randomness comes from fixed seeds, so its output is reproducible.
    fn seeded_dkg() -> Vec<SecretEddsaShare> {
        let started = (0..3)
            .map(|i| {
                let mut rng = StdRng::seed_from_u64(1000 + u64::from(i));
                let (m, out) = Dkg::start(b"fixture", i, 3, 2, &mut rng).expect("start");
                (i, m, out)
            })
            .collect();
        route(started, 0, |_| {})
            .into_values()
            .map(|r| r.expect("dkg succeeds"))
            .collect()
    }

    #[test]
    fn wire_and_storage_snapshots() {
        let echo = encode(b"sid", Body::DkgEcho(vec![0xab; 32])).expect("encodes");
        assert_eq!(hex(&echo), ECHO_FIXTURE);

        // A stored share written by this version stays readable and keeps its encoding.
        let shares = seeded_dkg();
        let bytes = shares[0].to_bytes().expect("encodes");
        assert_eq!(hex(&bytes), SHARE_FIXTURE);
        let fixture = hex::decode(SHARE_FIXTURE).expect("hex");
        let loaded = SecretEddsaShare::from_bytes(&fixture).expect("fixture decodes");
        assert_eq!(hex(&loaded.public_key()), SHARE_FIXTURE_PUBLIC_KEY);
    }

    const ECHO_FIXTURE: &str = "a1625631a26a73657373696f6e5f69644373696464626f6479a167446b674563686f5820abababababababababababababababababababababababababababababababab";
    const SHARE_FIXTURE: &str = concat!(
        "a16e46726f7374456432353531395631a665696e64657800677061727469657303697468726573686f6c6402",
        "6b6b65795f7061636b616765a666686561646572a26776657273696f6e006b63697068657273756974658418",
        "b1186918f018da6a6964656e7469666965729820010000000000000000000000000000000000000000000000",
        "00000000000000006d7369676e696e675f736861726598201835186718a3184618191830186c1018f318f218",
        "1b187a188718d918be18381899184e186318f518cb1859182618c51828182318f5187f1886182318830f6f76",
        "6572696679696e675f7368617265982018c818cd18be10189d141318280c18a518e4188d18f618f118591855",
        "184f18e118d1185818b70f18680618991518d918dc18ad18e618e0182e6d766572696679696e675f6b657998",
        "20189b18ba04184d18c0185b18e418ae184f1888185e0918e6183718de18fe18bf18bc188118940118d118cb",
        "18e7188d18bb18ac1886185418cc1318b46b6d696e5f7369676e65727302727075626c69635f6b65795f7061",
        "636b616765a466686561646572a26776657273696f6e006b63697068657273756974658418b1186918f018da",
        "70766572696679696e675f736861726573a39820010000000000000000000000000000000000000000000000",
        "0000000000000000982018c818cd18be10189d141318280c18a518e4188d18f618f118591855184f18e118d1",
        "185818b70f18680618991518d918dc18ad18e618e0182e982002000000000000000000000000000000000000",
        "0000000000000000000000000098200a18da1853185018e41898189018fc1818181b18480f183a09188418de",
        "186e18771844183618fd1849187c18ab1869181b18181877182a189218d218bb982003000000000000000000",
        "000000000000000000000000000000000000000000009820184e182e18f5183c1867186b184f185d183e18c2",
        "184f14183118d718f6189418b2182c1898181d1829181c1218700018a918e318a2185f1866182018296d7665",
        "72696679696e675f6b65799820189b18ba04184d18c0185b18e418ae184f1888185e0918e6183718de18fe18",
        "bf18bc188118940118d118cb18e7188d18bb18ac1886185418cc1318b46b6d696e5f7369676e657273026f64",
        "6b675f636f6d6d69746d656e74738382982018f818ea1820188d18f80e182e0018fb18330418251859183d18",
        "f218d7186b189e181818460e18750f1833182f185818fe18dc1881181f187d18499820181d18d205182e18c6",
        "18fa188918e918ba184a182718590b1853183d187f18db050e11189b185d182818c618af1840183818c618d8",
        "0b18b918488298201851184218ba184c18ca18b00f18a1189f182418d918b01898182618671894182818f918",
        "7e18d5188918b318af18d118c218c21883181c18b8181f186018bd9820185a1896189a186118eb185b0818cf",
        "186b187418c7189918b00018b818f9187d18b2188205183118ed090518df187e18fe18a41218d1188b0d8298",
        "2018cb1831185b185118340a18be1859189f188818b01865187018361857184b1819184718921860187018fd",
        "188218c018c3189d18d51870185c18ec1118e89820184518e418f4182918361877187d18b3188118ae18ee18",
        "cd18231860189118de187118ff1848184d18bb184218ac1830183e186918c71892182e183d18a417",
    );
    const SHARE_FIXTURE_PUBLIC_KEY: &str =
        "9bba044dc05be4ae4f885e09e637defebfbc819401d1cbe78dbbac8654cc13b4";
}
