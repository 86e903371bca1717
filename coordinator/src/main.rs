//! `cohort-coordinator`: the API custody backends talk to.

use std::process::ExitCode;
use std::sync::Arc;

use coordinator::config::Config;
use coordinator::nodes::Nodes;
use coordinator::service::Coordinator;
use host::startup::{self, FAILED};
use tracing::info;

const NAME: &str = "cohort-coordinator";

fn fail(message: impl std::fmt::Display) -> ExitCode {
    startup::exit(NAME, FAILED, message)
}

#[tokio::main]
async fn main() -> ExitCode {
    let (config, policy) =
        match startup::start_with_policy(NAME, |c: &Config| c.log_json, Config::policy) {
            Ok(started) => started,
            Err(code) => return code,
        };
    let url = config.store_url();
    if url.starts_with("sqlite:")
        && let Err(e) = std::fs::create_dir_all(&config.data_dir)
    {
        return fail(format!("cannot create {}: {e}", config.data_dir.display()));
    }
    let store = match tokio::task::spawn_blocking(move || coordinator::store::open(&url)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(format!("cannot open the store: {e}")),
        Err(e) => return fail(format!("cannot open the store: {e}")),
    };
    let (listener, addr) = match startup::listen_tcp(&config.listen).await {
        Ok(bound) => bound,
        Err(e) => return fail(e),
    };
    let nodes = Arc::new(Nodes::new(config.proxies.clone(), policy));
    let settings = match config.settings() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let coordinator = Coordinator::new(settings, nodes, store);
    coordinator.spawn_background();
    if let Err(e) = startup::write_addr_file(config.addr_file.as_deref(), &addr) {
        return fail(e);
    }
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
    ExitCode::SUCCESS
}
