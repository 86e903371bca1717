#![doc = include_str!("../README.md")]

pub mod attest;
pub mod config;
pub mod http;
pub mod link;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use attestation::Policy;
use tokio::net::TcpListener;

use crate::attest::{Attestor, keep_attested};
use crate::http::Proxy;
use crate::link::EnclaveLink;

/// Runs a proxy for the enclave at `link` on `listener` until `shutdown` completes: keeps the
/// enclave attested under `policy` in the background and serves HTTP.
pub async fn run(
    listener: TcpListener,
    link: EnclaveLink,
    policy: Policy,
    reattest: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let attestor = Arc::new(Attestor::default());
    let link = Arc::new(link);
    let background = tokio::spawn(keep_attested(
        attestor.clone(),
        link.clone(),
        policy,
        reattest,
    ));
    let result = http::serve(listener, Arc::new(Proxy { attestor, link }), shutdown).await;
    background.abort();
    result
}
