//! `cohort-coordinator`: the API custody backends talk to.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use coordinator::config::Config;
use coordinator::nodes::Nodes;
use coordinator::service::Coordinator;
use tokio::net::TcpListener;
use tracing::info;

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("cohort-coordinator: {message}");
    ExitCode::from(1)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if config.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init();
    }
    let policy = match config.policy() {
        Ok(p) => p,
        Err(e) => return fail(format!("invalid configuration: {e}")),
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
    let listener = match TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", config.listen)),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => return fail(e.to_string()),
    };
    let nodes = Arc::new(Nodes::new(config.proxies.clone(), policy));
    let settings = match config.settings() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let coordinator = Coordinator::new(settings, nodes, store);
    coordinator.spawn_background();
    if let Some(path) = &config.addr_file {
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, &addr).and_then(|()| std::fs::rename(&tmp, path)) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    info!(%addr, nodes = config.proxies.len(), "coordinator listening");
    coordinator::http::serve(
        coordinator.clone(),
        listener,
        config.max_body_bytes,
        shutdown_signal(),
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
