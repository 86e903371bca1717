//! Importing a legacy key (issue 19, ADR 0018, `docs/resharing.md`): the admin-approved request
//! that names the key and its old committee, and each legacy holder's sealed dealing.
//!
//! An import is a verifiable secret redistribution whose dealers are the legacy holders: each
//! deals its Lagrange-weighted share to the cluster's enclaves, with Feldman commitments that
//! every enclave sees and a sub-share for each enclave encrypted to that enclave's attested
//! X25519 identity key (`reshare::sealed`). The request, approved by the admin quorum, fixes
//! everything an enclave checks a dealing against: the key, the dealers' points and public
//! shares, the new threshold and the chain code.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::policy::{Canonical, CreateKey};

/// Version of [`ImportKey`].
pub const IMPORT_VERSION: u8 = 1;

/// The most legacy dealers an import may name (each costs every enclave a commitment check per
/// new member).
pub const MAX_DEALERS: usize = 64;

/// The longest `CHAIN:NETWORK` an import may name as its master key's network.
pub const MAX_NETWORK_LEN: usize = 64;

/// The length of a sealed sub-share (`reshare::sealed::SEALED_LEN`): a 32-byte scalar and
/// ChaCha20-Poly1305's 16-byte tag.
pub const SEALED_LEN: usize = 48;

/// One dealer of an import: a legacy holder, by its evaluation point and public share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyDealer {
    /// The holder's evaluation point (a scalar of the key's curve, 32 bytes big-endian): its
    /// share id in tss-lib, its identifier in FROST, its index plus one in cggmp21.
    pub point: ByteBuf,
    /// Its public share `X_i = x_i·G` (compressed: 33 bytes secp256k1, 32 bytes Ed25519).
    pub public_share: ByteBuf,
}

/// Import a legacy key (approved by the admin quorum): the key as [`CreateKey`] would make it
/// (id, scheme, new threshold, policy, request id and validity), and what the legacy
/// deployment's public data says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    /// [`IMPORT_VERSION`].
    pub v: u8,
    /// The key as it will be held: every field means what it means for a new key. Its request
    /// id is single-use across creations and imports.
    pub key: CreateKey,
    /// The legacy key (compressed, as [`LegacyDealer::public_share`]). It does not change.
    pub public_key: ByteBuf,
    /// The key's BIP-32 chain code (ECDSA keys, 32 bytes), kept so that derived addresses stay
    /// the same; `None` gives the key an all-zero chain code (its own address is unchanged).
    pub chain_code: Option<ByteBuf>,
    /// The one Bitcoin-family network (`CHAIN:NETWORK`, e.g. `bitcoin:mainnet`) whose legacy
    /// funds are at the key's own address: there, and only there, the key's own (master) key
    /// signs; every other Bitcoin-family network signs under its own first path component, as
    /// for any key (BIP143 signatures name no chain). Enforced by the chain adapters of the
    /// coordinator and of every client, which read it from the receipts' import request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_network: Option<String>,
    /// The legacy holders that deal, in dealing order: at least the legacy threshold of them,
    /// their public shares interpolating to `public_key`.
    pub dealers: Vec<LegacyDealer>,
}

impl Canonical for ImportKey {
    const DOMAIN: &'static [u8] = b"cohort/import-key/v1\0";
}

/// One legacy holder's dealing, as it travels through the coordinator: public commitments and
/// one sealed sub-share per new member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedDealing {
    /// The Feldman commitments to the dealer's polynomial, constant term first (compressed
    /// points, exactly the new threshold of them).
    pub commitments: Vec<ByteBuf>,
    /// The dealer's ephemeral X25519 public key for this dealing (32 bytes).
    pub ephemeral: ByteBuf,
    /// Per new member, in the session's participant order: the sub-share sealed to that
    /// member's identity key (`reshare::sealed`).
    pub sub_shares: Vec<ByteBuf>,
}
