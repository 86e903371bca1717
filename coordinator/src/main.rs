//! `cohort-coordinator`: the API custody backends talk to.

use std::process::ExitCode;
use std::sync::Arc;

use coordinator::config::Config;
use coordinator::nodes::Nodes;
use coordinator::service::Coordinator;
use host::startup;
use tracing::info;

const NAME: &str = "cohort-coordinator";

/// `--store-grant ROLE`: migrates the store as its owner, grants ROLE the coordinator's rights,
/// and stops.
async fn grant(config: &Config, role: String) -> Result<(), String> {
    let url = config.store_url();
    let tls = config.store_tls();
    let iam = config.store_grant_iam;
    let shown = role.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = coordinator::store::open(&url, &tls)?;
        store.grant_app_role(&role, iam)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("--store-grant: {e}"))?;
    info!(role = %shown, iam, "store migrated; the coordinator's role granted its rights");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    startup::run_with_policy(NAME, |c: &Config| c.log_json, Config::policy, run).await
}

async fn run(config: Config, policy: attestation::Policy) -> Result<(), String> {
    if let Some(role) = config.store_grant.clone() {
        return grant(&config, role).await;
    }
    let admins = config.admin_keys()?;
    let broker = config.broker()?;
    let url = config.store_url();
    let tls = config.store_tls();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    }
    let store = tokio::task::spawn_blocking(move || coordinator::store::open(&url, &tls))
        .await
        .map_err(|e| e.to_string())
        .and_then(|opened| opened.map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let (listener, addr) = startup::listen_tcp(&config.listen).await?;
    let nodes = Arc::new(Nodes::new(config.proxies.clone(), policy));
    let coordinator = Coordinator::new(config.settings()?, nodes, store);
    coordinator
        .bootstrap_admins(&admins)
        .await
        .map_err(|e| format!("--admin-key: {}", e.message))?;
    coordinator.spawn_background();
    if let Some(broker) = broker {
        info!(broker = %coordinator::broker::redact(&broker.url), queue = %broker.queue, exchange = %broker.exchange, "taking requests from and publishing events to the broker");
        coordinator::broker::spawn(&coordinator, broker);
    }
    startup::write_addr_file(config.addr_file.as_deref(), &addr)?;
    info!(%addr, nodes = config.proxies.len(), "coordinator listening");
    coordinator::http::serve(
        coordinator.clone(),
        &listener,
        config.max_body_bytes,
        startup::shutdown_signal(),
    )
    .await;
    // Let signing requests in flight finish and record their results (bounded).
    let draining = std::time::Instant::now();
    while coordinator.live_requests() > 0 && draining.elapsed() < std::time::Duration::from_secs(30)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    info!("coordinator stopped");
    Ok(())
}
