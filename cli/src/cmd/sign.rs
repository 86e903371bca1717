//! `cohort sign`: sign one payload with a key.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use coordinator::api::PresignatureUse;
use protocol::policy::{HashFunction, Payload};

use super::{ApproverFiles, Hex, JsonFlag, KeyArgs, parse_hex_arg, parse_presignature};

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    target: KeyArgs,
    /// Payload, hex: a 32-byte digest (ECDSA: signed in full, never from a presignature) or the
    /// message (EdDSA); with --hash, the preimage the enclaves hash.
    #[arg(long, value_parser = parse_hex_arg)]
    payload: Hex,
    /// ECDSA: hash the payload in the enclaves with `sha256`, `sha256d` or `keccak256` before
    /// signing it (which lets a presignature sign it).
    #[arg(long)]
    hash: Option<HashFunction>,
    /// Derivation path (ECDSA keys), e.g. m/0/1.
    #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
    path: std::vec::Vec<u32>,
    #[command(flatten)]
    approvers: ApproverFiles,
    /// Use a ready presignature if a healthy quorum holds one (`prefer`), or not (`never`).
    #[arg(long, default_value = "prefer", value_parser = parse_presignature)]
    presignature: PresignatureUse,
    #[command(flatten)]
    output: JsonFlag,
}

/// Signs and prints the signature, its public key and the nodes that made it.
pub async fn run(a: SignArgs) -> anyhow::Result<ExitCode> {
    let api = a.target.api()?;
    let trust = a.target.trust()?;
    // The key, checked against the pinned genesis: the signature must verify under it.
    let key = trust.fetch_key(&api, &a.target.key).await?;
    let expected = cli::tx::derived(&key, &a.path)?;
    let approvers = a.approvers.read()?;
    let presignature = Some(a.presignature);
    let (payload, signed_over) = match a.hash {
        Some(hash) => (
            Payload::hashed(hash, a.payload.0.clone()),
            hash.digest(&a.payload.0).to_vec(),
        ),
        None => (Payload::raw(a.payload.0.clone()), a.payload.0),
    };
    let result = cli::ops::sign(
        &api,
        trust.cluster_id(),
        cli::ops::KeyRef::of(key.info()),
        &a.path,
        payload,
        &approvers,
        presignature,
    )
    .await?;
    let s = result
        .signatures
        .first()
        .context("no signature in the answer")?;
    if s.public_key.0 != expected
        || !cli::tx::signature_verifies(key.info().scheme, &expected, &signed_over, &s.signature.0)
    {
        anyhow::bail!(
            "the coordinator's signature does not verify under key {} at this path (checked against the pinned genesis)",
            a.target.key
        );
    }
    if a.output.json {
        println!(
            "{}",
            serde_json::json!({
                "signature": hex::encode(&s.signature.0),
                "public_key": hex::encode(&s.public_key.0),
                "nodes": s.nodes,
                "presigned": s.presigned,
                "request_id": hex::encode(&result.request_id.0),
            })
        );
    } else {
        println!("signature:  {}", hex::encode(&s.signature.0));
        println!("public key: {}", hex::encode(&s.public_key.0));
        let presigned = if s.presigned { " (presigned)" } else { "" };
        println!("nodes:      {:?}{presigned}", s.nodes);
    }
    Ok(ExitCode::SUCCESS)
}
