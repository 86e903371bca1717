//! A client of the intake (issue 21): publishes requests as the coordinator takes them, each
//! signed with an API credential, and waits for their answers on a queue of its own.
//! `cohort bench --via amqp` measures the broker path with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::oneshot;

use super::intake::{
    AUTHORIZATION_HEADER, IDEMPOTENCY_HEADER, Kind, METHOD, STATUS_HEADER, signed_path,
};
use super::redact;
use crate::api::ApiKey;

/// An answer: the HTTP status, the idempotency key it answers, and the body.
type Answer = (u16, Option<String>, Vec<u8>);

/// Answers awaited, by correlation id.
type Pending = HashMap<String, oneshot::Sender<Answer>>;

/// Shared between the client and its reply consumer.
type Waiting = Arc<Mutex<Pending>>;

/// A connection to the broker that sends requests to the intake queue.
pub struct IntakeClient {
    _conn: Connection,
    ch: Channel,
    queue: String,
    reply_to: String,
    key: Arc<ApiKey>,
    waiting: Waiting,
}

impl std::fmt::Debug for IntakeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeClient")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

fn lock(w: &Waiting) -> std::sync::MutexGuard<'_, Pending> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

impl IntakeClient {
    /// Connects to the broker at `url`, to send to `queue` as `key`'s credential.
    pub async fn connect(url: &str, queue: &str, key: Arc<ApiKey>) -> Result<Self, String> {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", redact(url)))?;
        let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let replies = super::private_queue(&ch).await.map_err(|e| e.to_string())?;
        let mut consumer = ch
            .basic_consume(
                replies.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let waiting: Waiting = Arc::default();
        let dispatch = waiting.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let Some(id) = d.properties.correlation_id() else {
                    continue;
                };
                let text = |name: &str| match d
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(name).cloned())
                {
                    Some(AMQPValue::LongString(s)) => {
                        std::str::from_utf8(s.as_bytes()).ok().map(str::to_string)
                    }
                    _ => None,
                };
                let status = text(STATUS_HEADER).and_then(|s| s.parse().ok());
                if let Some(tx) = lock(&dispatch).remove(id.as_str()) {
                    let _ = tx.send((status.unwrap_or(0), text(IDEMPOTENCY_HEADER), d.data));
                }
            }
        });
        Ok(Self {
            _conn: conn,
            ch,
            queue: queue.to_string(),
            reply_to: replies.name().to_string(),
            key,
            waiting,
        })
    }

    /// Sends `body` as a `kind` request under the idempotency key `idem` and waits (at most
    /// `within`) for its answer: the HTTP status and body the coordinator answered with.
    pub async fn call(
        &self,
        kind: Kind,
        idem: &str,
        body: &[u8],
        within: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let correlation = format!("{idem}/{}", hex::encode(rand::random::<[u8; 8]>()));
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(correlation.clone(), tx);
        let now = crate::service::unix_now();
        let path = signed_path(kind, Some(&self.reply_to));
        let auth = self.key.authorize(METHOD, &path, Some(idem), body, now);
        let mut headers = FieldTable::default();
        headers.insert(
            AUTHORIZATION_HEADER.into(),
            AMQPValue::LongString(auth.into()),
        );
        let props = BasicProperties::default()
            .with_type(kind.as_str().into())
            .with_message_id(idem.into())
            .with_correlation_id(correlation.as_str().into())
            .with_reply_to(self.reply_to.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let sent = async {
            let confirm = self
                .ch
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    props,
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                _ => Err(format!(
                    "the broker did not take the request for {}",
                    self.queue
                )),
            }
        };
        if let Err(e) = sent.await {
            lock(&self.waiting).remove(&correlation);
            return Err(e);
        }
        match tokio::time::timeout(within, rx).await {
            // The correlation id is only a label: the answer must name this request.
            Ok(Ok((_, Some(for_key), _))) if for_key != idem => Err(format!(
                "an answer for {for_key} came under this request's correlation id"
            )),
            Ok(Ok((status, _, body))) => Ok((status, body)),
            _ => {
                lock(&self.waiting).remove(&correlation);
                Err(format!("no answer within {within:?}"))
            }
        }
    }
}
