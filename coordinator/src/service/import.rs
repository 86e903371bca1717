//! Importing a legacy key (issue 19): the approved import request and the legacy holders'
//! sealed dealings are checked for shape here and relayed to every node, which checks them
//! for what they are (`enclave::node::import`); the key is stored like a new key, once every
//! node's receipt verifies.

use std::sync::Arc;

use protocol::import::{IMPORT_VERSION, MAX_DEALERS, MAX_NETWORK_LEN, SEALED_LEN};
use protocol::policy::{Canonical, Scheme};
use protocol::session::SessionKind;
use sha2::{Digest, Sha256};

use super::admins::AdminSet;
use super::checks::check_admin_approvals;
use super::keys::{NewKeyJob, check_new_key};
use super::{Coordinator, err};
use crate::api::{ApiError, ErrorCode, GenesisBody, ImportBody, KeyInfo, Wire};

/// Checks an import's shape against the cluster: the key's fields as for a new key, the
/// request version, the dealers (1 to [`MAX_DEALERS`]), one dealing per dealer with one sealed
/// sub-share per node, the chain code, and the approvals of the import request by the admin set
/// in force (`admins`), whose version its key names.
fn validate_import(
    body: &ImportBody,
    genesis: &GenesisBody,
    admins: &AdminSet,
    nodes: u16,
    registry: &adapters::Registry,
) -> Result<NewKeyJob, ApiError> {
    let invalid = |m: String| err(ErrorCode::InvalidRequest, m);
    let request = &body.import.request;
    let r = check_new_key(&request.key, genesis, nodes)?;
    if request.v != IMPORT_VERSION {
        return Err(invalid(format!(
            "import request version {} (this coordinator takes {IMPORT_VERSION})",
            request.v
        )));
    }
    if request.dealers.is_empty() || request.dealers.len() > MAX_DEALERS {
        return Err(invalid(format!(
            "an import names 1 to {MAX_DEALERS} dealers, not {}",
            request.dealers.len()
        )));
    }
    if body.dealings.len() != request.dealers.len() {
        return Err(invalid(format!(
            "{} dealing(s) for {} dealer(s)",
            body.dealings.len(),
            request.dealers.len()
        )));
    }
    if let Some((i, d)) = body
        .dealings
        .iter()
        .enumerate()
        .find(|(_, d)| d.sub_shares.len() != usize::from(nodes))
    {
        return Err(invalid(format!(
            "dealer {i}'s dealing seals {} sub-share(s); the cluster has {nodes} nodes",
            d.sub_shares.len()
        )));
    }
    // Lengths only (the nodes check what the bytes are): a dealing of the wrong shape does not
    // reach them.
    let point_len = match r.scheme {
        Scheme::EcdsaSecp256k1 => 33,
        Scheme::EddsaEd25519 => 32,
    };
    if request.public_key.0.len() != point_len {
        return Err(invalid(format!(
            "the legacy public key has {} bytes; a {} key has {point_len}",
            request.public_key.0.len(),
            r.scheme
        )));
    }
    if let Some((i, _)) = request
        .dealers
        .iter()
        .enumerate()
        .find(|(_, d)| d.point.0.len() != 32 || d.public_share.0.len() != point_len)
    {
        return Err(invalid(format!(
            "dealer {i}: an evaluation point has 32 bytes and a public share {point_len}"
        )));
    }
    if let Some((i, d)) = body.dealings.iter().enumerate().find(|(_, d)| {
        d.commitments.len() != usize::from(r.threshold)
            || d.commitments.iter().any(|c| c.0.len() != point_len)
            || d.ephemeral.0.len() != 32
            || d.sub_shares.iter().any(|s| s.0.len() != SEALED_LEN)
    }) {
        return Err(invalid(format!(
            "dealer {i}'s dealing is malformed: {} commitment(s) for threshold {} (each \
             {point_len} bytes), a 32-byte ephemeral key, sealed sub-shares of {SEALED_LEN} \
             bytes",
            d.commitments.len(),
            r.threshold
        )));
    }
    match (&request.chain_code, r.scheme) {
        (Some(c), Scheme::EcdsaSecp256k1) if c.0.len() != 32 => {
            return Err(invalid("a chain code has 32 bytes".into()));
        }
        (Some(_), Scheme::EddsaEd25519) => {
            return Err(invalid("an EdDSA key has no chain code".into()));
        }
        _ => {}
    }
    if let Some(network) = &request.master_key_network
        && (r.scheme != Scheme::EcdsaSecp256k1
            || network.len() > MAX_NETWORK_LEN
            || !registry.is_bitcoin_family(network))
    {
        return Err(invalid(format!(
            "the master key's network `{network}` is not a Bitcoin-family CHAIN:NETWORK \
             (an ECDSA key's legacy funds)"
        )));
    }
    let wire = body.import.to_wire();
    let actors = check_admin_approvals(&wire.request, r.admins, &wire.approvals, admins)?;
    Ok(NewKeyJob {
        request_hash: Sha256::digest(wire.request.canonical_bytes()).to_vec(),
        r,
        import: Some(request.clone()),
        kind: SessionKind::ImportKey {
            request: wire,
            dealings: body.dealings.iter().map(Wire::to_wire).collect(),
        },
        actors,
        action: "import_key",
    })
}

impl Coordinator {
    /// Imports a legacy key into every node.
    pub async fn import_key(
        self: &Arc<Self>,
        body: ImportBody,
        credential: String,
    ) -> Result<KeyInfo, ApiError> {
        self.measured("import_key", async {
            let genesis = self.cluster().await?;
            let admins = self.current_admins(&genesis).await?;
            let job = validate_import(
                &body,
                &genesis,
                &admins,
                self.nodes.count(),
                &self.settings().chains.registry,
            )?;
            self.new_key(job, credential).await
        })
        .await
    }
}
