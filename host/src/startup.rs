//! Start-up of the host binaries: logging, the shutdown signal, the bound address, exit codes.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use tracing::error;
use tracing_subscriber::EnvFilter;

use crate::endpoint::Listener;

/// Exit code of every host binary (and of the enclave) for a bad configuration: flags that do
/// not parse or do not fit together, or a file they name that cannot be read. The same code
/// clap uses for a command line it cannot parse.
pub const BAD_CONFIG: u8 = 2;

/// Exit code for any other failure to start or to keep serving.
pub const FAILED: u8 = 1;

/// Parses the command line into `C` and sets up logging, as JSON lines when `json(&config)`
/// says so (see [`init_tracing`]). A command line that does not parse ends the program with
/// clap's message and [`BAD_CONFIG`].
fn start<C: clap::Parser>(json: impl FnOnce(&C) -> bool) -> C {
    let config = C::parse();
    init_tracing(json(&config));
    config
}

/// [`start`], then derives the run's policy from the configuration: a configuration it does
/// not derive from exits with [`bad_config`] (the `Err` to return from `main`).
fn start_with_policy<C: clap::Parser, P, E: std::fmt::Display>(
    program: &str,
    json: impl FnOnce(&C) -> bool,
    policy: impl FnOnce(&C) -> Result<P, E>,
) -> Result<(C, P), ExitCode> {
    let config = start(json);
    match policy(&config) {
        Ok(p) => Ok((config, p)),
        Err(e) => Err(bad_config(program, e)),
    }
}

/// The whole life of a host binary: parses the command line into `C`, sets up logging (JSON
/// lines when `json(&config)` says so), derives the run's policy (a command line or policy
/// that does not parse or derive exits with [`BAD_CONFIG`]), then `run` with the configuration
/// and the policy; an `Err` from `run` is printed and exits with [`FAILED`].
pub async fn run_with_policy<C, P, E, F, Fut>(
    program: &str,
    json: impl FnOnce(&C) -> bool,
    policy: impl FnOnce(&C) -> Result<P, E>,
    run: F,
) -> ExitCode
where
    C: clap::Parser,
    E: std::fmt::Display,
    F: FnOnce(C, P) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (config, policy) = match start_with_policy(program, json, policy) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match run(config, policy).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit(program, FAILED, e),
    }
}

/// Logs to standard output through `tracing`: JSON lines with `json`, otherwise text (coloured
/// only on a terminal, so that log files stay plain). `RUST_LOG` filters; the default is `info`.
fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stdout().is_terminal()).init();
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            error!(error = %e, "cannot install a SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Prints `program: message` to standard error and returns the exit code `code`.
fn exit(program: &str, code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::from(code)
}

/// Prints `program: invalid configuration: message` and returns [`BAD_CONFIG`].
fn bad_config(program: &str, message: impl std::fmt::Display) -> ExitCode {
    exit(
        program,
        BAD_CONFIG,
        format!("invalid configuration: {message}"),
    )
}

/// Binds the TCP address `listen` (port 0 picks a free port) and returns the listener with
/// the address it is bound to.
pub async fn listen_tcp(listen: &str) -> Result<(Listener, String), String> {
    let listener = Listener::bind(&protocol::Endpoint::Tcp(listen.to_string()))
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    match listener.local_endpoint().map_err(|e| e.to_string())? {
        protocol::Endpoint::Tcp(addr) => Ok((listener, addr)),
        other => Err(format!("bound {other}, not a TCP address")),
    }
}

/// [`listen_tcp`], then [`write_addr_file`]: bound and announced.
pub async fn listen_and_announce(
    listen: &str,
    addr_file: Option<&Path>,
) -> Result<(Listener, String), String> {
    let (listener, addr) = listen_tcp(listen).await?;
    write_addr_file(addr_file, &addr)?;
    Ok((listener, addr))
}

/// Writes the bound address into `path` (when given), atomically: whoever waits for the file
/// never reads half an address.
pub fn write_addr_file(path: Option<&Path>, addr: &str) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_bound_address_goes_into_the_address_file() {
        let (_listener, addr) = listen_tcp("127.0.0.1:0").await.unwrap();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addr");
        write_addr_file(Some(&path), &addr).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), addr);
        write_addr_file(None, &addr).unwrap();
        assert!(
            write_addr_file(Some(&dir.path().join("no/such/dir")), &addr)
                .unwrap_err()
                .starts_with("cannot write")
        );
    }
}
