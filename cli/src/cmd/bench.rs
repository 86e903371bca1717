//! `cohort bench`: drive signing through the coordinator and report latency and throughput.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cli::ops::BenchLength;
use coordinator::api::PresignatureUse;
use coordinator::broker::client::IntakeClient;

use super::{ApproverFiles, JsonFlag, KeyArgs, parse_presignature};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    target: KeyArgs,
    /// Derivation path (ECDSA keys).
    #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
    path: std::vec::Vec<u32>,
    #[command(flatten)]
    approvers: ApproverFiles,
    /// Signing requests to measure.
    #[arg(long, default_value_t = 100, conflicts_with = "duration")]
    count: usize,
    /// Instead of a count: send new requests for this many seconds (a sustained load).
    #[arg(long)]
    duration: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// `prefer` (sign from presignatures when the pools hold some) or `never`.
    #[arg(long, default_value = "prefer", value_parser = parse_presignature)]
    presignature: PresignatureUse,
    /// Before measuring, wait until every quorum's pool holds this many presignatures.
    #[arg(long, default_value_t = 0)]
    wait_pool: u32,
    /// `http` (the API) or `amqp` (the coordinator's intake queue, answers on a private reply
    /// queue; needs --amqp).
    #[arg(long, default_value = "http", value_parser = ["http", "amqp"])]
    via: String,
    /// With `--via amqp`: the broker's URL.
    #[arg(
        long,
        env = "COHORT_AMQP",
        hide_env_values = true,
        value_name = "URL",
        required_if_eq("via", "amqp")
    )]
    amqp: Option<String>,
    /// With `--via amqp`: the coordinator's intake queue.
    #[arg(long, default_value = "cohort.requests")]
    amqp_queue: String,
    #[command(flatten)]
    output: JsonFlag,
}

/// Runs the benchmark; exit 1 if any request failed.
pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let api = a.target.api()?;
    let approvers = a.approvers.read()?;
    if a.wait_pool > 0 {
        let patience = Duration::from_secs(1800);
        cli::ops::wait_for_pool(&api, &a.target.key, &a.path, a.wait_pool, patience).await?;
    }
    let length = match a.duration {
        Some(secs) => BenchLength::Duration(Duration::from_secs(secs)),
        None => BenchLength::Count(a.count),
    };
    let trust = a.target.trust()?;
    let via = match (a.via.as_str(), &a.amqp) {
        ("amqp", Some(url)) => {
            let key = api
                .key()
                .context("--via amqp signs its messages with an API key (--api-key)")?
                .clone();
            let client = IntakeClient::connect(url, &a.amqp_queue, key)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            Some(std::sync::Arc::new(client))
        }
        _ => None,
    };
    let r = cli::ops::bench(
        &api,
        trust.cluster_id(),
        &a.target.key,
        &a.path,
        &approvers,
        length,
        a.concurrency,
        a.warmup,
        a.presignature,
        via,
    )
    .await?;
    a.output.print(&r, |r| {
        println!(
            "{} {} ({:?}, via {}): {} requests at concurrency {}: {} ok ({} presigned), failures {:?}",
            r.key_id,
            r.scheme,
            r.presignature,
            r.via,
            r.requests,
            r.concurrency,
            r.ok,
            r.presigned,
            r.failures
        );
        println!(
            "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}; throughput {:.1}/s over {:.1} s",
            r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms, r.throughput_per_s, r.wall_s
        );
        println!(
            "p50 of the first tenth {:.2} ms, of the last tenth {:.2} ms",
            r.p50_first_tenth_ms, r.p50_last_tenth_ms
        );
    })?;
    Ok(if r.ok == r.requests {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
