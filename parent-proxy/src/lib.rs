#![doc = include_str!("../README.md")]

pub mod attest;
pub mod backups;
pub mod blobs;
pub mod config;
pub mod enclave_logs;
pub mod http;
pub mod kms;
pub mod link;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use attestation::Policy;
use host::Listener;

use crate::attest::{Attestor, keep_attested};
use crate::blobs::BlobStore;
use crate::http::Proxy;
use crate::link::EnclaveLink;

/// Runs a proxy for the enclave at `link` on `listener` until `shutdown` completes: keeps the
/// enclave attested under `policy` in the background, stores the sealed blobs it returns in
/// `blobs` (and restores them after an enclave restart), answers which of them the manifest at
/// `backup_manifest` confirms copied off the instance, and serves HTTP.
pub async fn run(
    listener: Listener,
    link: EnclaveLink,
    policy: Policy,
    reattest: Duration,
    (blobs, backup_manifest): (Option<BlobStore>, Option<std::path::PathBuf>),
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let attestor = Arc::new(Attestor::default());
    let link = Arc::new(link);
    let background = tokio::spawn(keep_attested(
        attestor.clone(),
        link.clone(),
        policy,
        reattest,
        blobs.clone(),
    ));
    let proxy = Arc::new(Proxy {
        attestor,
        link,
        blobs,
        backup_manifest,
    });
    let result = http::serve(&listener, proxy, shutdown).await;
    background.abort();
    result
}
