//! The outbox relay: publishes the outbox's events to the exchange in order, with publisher
//! confirms, and marks them sent once the broker confirmed them.
//!
//! At least once: an event published whose confirm did not arrive (the connection broke, the
//! broker restarted) is published again after reconnecting; consumers drop the copy by its id.
//! In order: events leave in `seq` order, which is their commit order
//! ([`crate::store`]'s outbox), and a batch is marked sent only when every event of it was
//! confirmed. With several coordinators on one PostgreSQL, one relays at a time (it holds a
//! session advisory lock on its store connection, released when that connection ends): two
//! relays taking rows with `FOR UPDATE SKIP LOCKED` would interleave their batches on the
//! exchange, and consumers would see events out of order.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};
use tracing::{info, warn};

use super::{BrokerConfig, backoff, connect, declare_exchange};
use crate::service::{Coordinator, unix_now};
use crate::store::OutboxRow;

/// Events published per batch.
const BATCH: u32 = 256;
/// How long an idle relay waits for a commit's signal before it looks at the outbox anyway
/// (another coordinator sharing the database signals nothing here).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long the broker has to confirm a batch before the connection is given up and made again.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long another coordinator's relay is left alone before this one asks for the lock again.
const FOLLOWER_WAIT: Duration = Duration::from_secs(2);

/// Relays for as long as the coordinator runs.
pub(super) async fn run(c: Arc<Coordinator>, config: BrokerConfig) {
    let mut attempt = 0u32;
    loop {
        match session(&c, &config, &mut attempt).await {
            Ok(()) => {}
            Err(e) => {
                c.broker().relay_up(false);
                warn!(error = %e, "events relay: the broker connection ended; reconnecting");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// One connection's worth of relaying: connects, waits for the relay's lock, and relays until
/// the connection breaks; the lock is then handed back, so that a coordinator that can reach
/// the broker relays.
async fn session(c: &Coordinator, config: &BrokerConfig, attempt: &mut u32) -> Result<(), String> {
    let conn = connect(config, "relay").await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("confirm mode: {e}"))?;
    declare_exchange(&ch, config).await?;
    c.broker().relay_up(true);
    *attempt = 0;
    // Stand by, connected, while another coordinator relays.
    while !c
        .db_quiet(|s| s.try_lead_relay())
        .await
        .map_err(|e| format!("the relay's lock: {}", e.message))?
    {
        tokio::time::sleep(FOLLOWER_WAIT).await;
        if !conn.status().connected() {
            return Err("the connection closed".into());
        }
    }
    info!("this coordinator relays the outbox's events");
    let result = relay(c, config, &conn, &ch).await;
    if let Err(e) = c.db_quiet(|s| s.release_relay()).await {
        warn!(error = %e.message, "cannot hand back the relay's lock");
    }
    result
}

async fn relay(
    c: &Coordinator,
    config: &BrokerConfig,
    conn: &lapin::Connection,
    ch: &lapin::Channel,
) -> Result<(), String> {
    loop {
        let rows = c
            .db_quiet(|s| s.unsent_events(BATCH))
            .await
            .map_err(|e| format!("reading the outbox: {}", e.message))?;
        if rows.is_empty() {
            if !conn.status().connected() {
                return Err("the connection closed".into());
            }
            let _ = tokio::time::timeout(IDLE_POLL, c.outbox_written()).await;
            continue;
        }
        let published = tokio::time::timeout(CONFIRM_TIMEOUT, publish(ch, config, &rows))
            .await
            .unwrap_or_else(|_| (0, Some(format!("no confirm within {CONFIRM_TIMEOUT:?}"))));
        // The confirmed prefix is sent, whatever came after it.
        let (n, failure) = published;
        if n > 0 {
            let seqs: Vec<u64> = rows[..n].iter().map(|r| r.seq).collect();
            c.db_quiet(move |s| s.mark_sent(&seqs, unix_now()))
                .await
                .map_err(|e| format!("marking events sent: {}", e.message))?;
            c.broker().published(n as u64);
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

/// Publishes `rows` in order and waits for their confirms: how many from the first were
/// confirmed, and why the rest were not.
async fn publish(
    ch: &lapin::Channel,
    config: &BrokerConfig,
    rows: &[OutboxRow],
) -> (usize, Option<String>) {
    let mut confirms = Vec::with_capacity(rows.len());
    for row in rows {
        let props = BasicProperties::default()
            .with_message_id(row.event_id.as_str().into())
            .with_type(row.routing_key.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(unix_now());
        match ch
            .basic_publish(
                config.exchange.as_str().into(),
                row.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                row.body.as_bytes(),
                props,
            )
            .await
        {
            Ok(confirm) => confirms.push(confirm),
            Err(e) => {
                confirms.clear();
                return (0, Some(format!("publishing: {e}")));
            }
        }
    }
    for (i, confirm) in confirms.into_iter().enumerate() {
        let why = match confirm.await {
            Ok(Confirmation::Ack(_)) => continue,
            // A queue bound with `x-overflow: reject-publish` that is full refuses it for
            // every consumer (docs/operator-guide.md): the relay backs off and tries again.
            Ok(Confirmation::Nack(_)) => "the broker refused an event (nack)".to_string(),
            Ok(Confirmation::NotRequested) => "confirms are off on the channel".to_string(),
            Err(e) => format!("confirm: {e}"),
        };
        return (i, Some(why));
    }
    (rows.len(), None)
}
