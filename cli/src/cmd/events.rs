//! `cohort events tail`: print the coordinator's events (issue 21) as they are published.

use std::process::ExitCode;

use clap::Subcommand;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print each event (one JSON line) published from now on, until Ctrl-C; copies of an
    /// event already printed (the relay publishes at least once) are dropped by id.
    Tail {
        /// The broker.
        #[arg(long, env = "COHORT_AMQP", hide_env_values = true, value_name = "URL")]
        amqp: String,
        /// The coordinator's events exchange.
        #[arg(long, default_value = "cohort.events")]
        exchange: String,
        /// Which events: a topic pattern (`signature.*`, `node.#`, `#` for all).
        #[arg(long, default_value = "#")]
        pattern: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
}

/// Most event ids remembered for dropping copies (then it starts again).
const SEEN_MAX: usize = 100_000;

/// Runs `cohort events`.
pub async fn run(command: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::Tail {
        amqp,
        exchange,
        pattern,
        count,
    } = command;
    let conn = Connection::connect(&amqp, ConnectionProperties::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to {}: {e}",
                coordinator::broker::redact(&amqp)
            )
        })?;
    let ch = conn.create_channel().await?;
    // A queue of this command's own, gone when it stops.
    let queue = coordinator::broker::private_queue(&ch).await?;
    ch.queue_bind(
        queue.name().clone(),
        exchange.as_str().into(),
        pattern.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("binding to the exchange {exchange}: {e}"))?;
    let mut consumer = ch
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut seen = std::collections::HashSet::new();
    let mut printed = 0;
    while count.is_none_or(|n| printed < n) {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(delivery) = delivery else { break };
        let d = delivery?;
        let id = d.properties.message_id().as_ref().map(|m| m.to_string());
        if seen.len() >= SEEN_MAX {
            seen.clear();
        }
        if id.is_some_and(|id| !seen.insert(id)) {
            continue;
        }
        // Whoever may publish to the exchange may publish anything: no control characters
        // reach the terminal.
        let text: String = String::from_utf8_lossy(&d.data)
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        println!("{text}");
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}
