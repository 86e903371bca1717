//! The optional RabbitMQ integration (issue 21), off unless `--amqp URL` is given: an intake
//! queue of requests ([`intake`]) and a topic exchange of events fed from the transactional
//! outbox ([`relay`]). HTTP stays the coordinator's front door: a broker that is absent, down
//! or slow stops neither the API nor signing; it shows in `/readyz`'s detail and the metrics.
//!
//! Topology, declared (durable) by every coordinator that connects:
//!
//! - the intake queue `--amqp-queue` (`cohort.requests`): requests as JSON, one per message;
//! - its dead-letter queue `--amqp-dead-letter-queue` (`<queue>.dead`): messages refused, each
//!   with its reason in the `x-cohort-reason` header (and `x-cohort-error`);
//! - the topic exchange `--amqp-exchange` (`cohort.events`): one event per audit record and
//!   lifecycle change (`docs/events.md`).
//!
//! The broker is outside the trust boundary, as the coordinator is: a message is a request
//! signed by an API credential like an HTTP call, and what it asks is approved by approvers
//! the enclaves check themselves.

pub mod client;
pub mod intake;
mod relay;
mod status;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::service::Coordinator;

pub use status::{BrokerReadiness, BrokerStatus};

/// How the coordinator reaches its broker.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `amqp://` or `amqps://` URL (may hold a password: never logged; see [`redact`]).
    pub url: String,
    /// The intake queue.
    pub queue: String,
    /// The dead-letter queue of the intake.
    pub dead_letter: String,
    /// The events exchange.
    pub exchange: String,
    /// Messages each coordinator takes from the intake at once.
    pub prefetch: u16,
    /// Oldest message timestamp accepted, seconds before now.
    pub max_age: u64,
    /// Largest message body, bytes (the HTTP API's limit).
    pub max_body: usize,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact(&self.url))
            .field("queue", &self.queue)
            .field("dead_letter", &self.dead_letter)
            .field("exchange", &self.exchange)
            .field("prefetch", &self.prefetch)
            .field("max_age", &self.max_age)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// The URL as it may be shown: scheme, host and port, no user or password.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("?", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Starts the intake consumer and the outbox relay; each reconnects on its own.
pub fn spawn(c: &Arc<Coordinator>, config: BrokerConfig) {
    c.broker().configure(&redact(&config.url));
    tokio::spawn(relay::run(c.clone(), config.clone()));
    tokio::spawn(intake::run(c.clone(), config));
}

/// Waits between attempts to reach the broker: 0.5 s, doubling to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(4)).min(Duration::from_secs(5))
}

async fn connect(config: &BrokerConfig, role: &str) -> Result<Connection, String> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("cohort-coordinator {role}").into());
    Connection::connect(&config.url, props)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", redact(&config.url)))
}

/// Declares a queue of the caller's own: named by the broker, exclusive (gone with its
/// connection). Answers (`IntakeClient`) and `cohort events tail` use one.
pub async fn private_queue(ch: &Channel) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Declares the events exchange (idempotent; the same arguments every time).
async fn declare_exchange(ch: &Channel, config: &BrokerConfig) -> Result<(), String> {
    ch.exchange_declare(
        config.exchange.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("declaring exchange {}: {e}", config.exchange))
}

/// Declares the intake queue and its dead-letter queue (idempotent).
async fn declare_queues(ch: &Channel, config: &BrokerConfig) -> Result<(), String> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(
        config.dead_letter.as_str().into(),
        durable,
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("declaring queue {}: {e}", config.dead_letter))?;
    // What the broker itself dead-letters (a message rejected by hand, one whose TTL an
    // operator set ran out) goes to the same queue.
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(config.dead_letter.as_str().into()),
    );
    ch.queue_declare(config.queue.as_str().into(), durable, args)
        .await
        .map_err(|e| format!("declaring queue {}: {e}", config.queue))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_credentials() {
        assert_eq!(
            redact("amqps://user:secret@mq.example:5671/%2f"),
            "amqps://mq.example:5671"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert!(!redact("amqp://a:p@ss@h/v").contains("p@ss"));
    }

    #[test]
    fn reconnects_back_off_to_five_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(9), Duration::from_secs(5));
    }
}
