//! The intake: requests taken from a durable queue, answered once each however often they
//! are delivered.
//!
//! A message carries the JSON body of the HTTP call it stands for, its kind in the `type`
//! property (`sign`: `POST /v1/signatures`; `create_key`: `POST /v1/keys`), its idempotency
//! key in `message_id`, and in the `authorization` header a credential's signature made as
//! for the call, with the method `AMQP` and the call's path, followed by `?reply_to=QUEUE` when
//! the message names a queue for its answer ([`signed_path`]): whoever replays a message cannot
//! send its answer elsewhere. A call signed for HTTP is not a message, nor the other way round.
//!
//! Each message ends one of three ways, and is acknowledged only once its end is durable:
//!
//! - **answered**: the request ran, or had run (a redelivery, or the same request published
//!   again, is answered from its idempotency record and never signed twice); its answer goes
//!   to `reply_to` when the message names one, and its audit record's event to the exchange;
//! - **dead**: the message cannot be a request (too large, no kind or an unknown one, no
//!   idempotency key, not JSON), its signature or credential does not hold, or the
//!   coordinator refused it before recording it (not approved, invalid, expired): it is
//!   published to the dead-letter queue with the reason in `x-cohort-reason`, nothing run;
//! - **requeued**: the coordinator could not decide now (its store failed): the message goes
//!   back to the queue after a pause, for this or another coordinator, at most
//!   [`MAX_REQUEUES`] times by this coordinator (then it is dead, `unavailable`).
//!
//! Answers and dead letters are published persistent and `mandatory`, with confirms. An answer
//! whose `reply_to` queue does not take it is dead-lettered as `reply_undeliverable` (the
//! request ran; its record holds the answer). A dead letter is a new message: the refused
//! message's body (none when it was too large), its id, type and correlation id, and the
//! reason; never its other properties or headers (a `CC` header would route it on, a `user_id`
//! would have the broker refuse it). If the channel answers and dead letters go out on fails,
//! the connection is made again, and the messages it held are redelivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{BrokerConfig, backoff, connect, declare_queues};
use crate::api::{
    ApiError, ApprovedJson, AuthHeader, CreateKeyJson, ErrorCode, Role, valid_idempotency_key,
};
use crate::auth::{Signed, verify_message};
use crate::service::{Coordinator, StoredResponse};

/// The header of a dead letter that says why.
pub const REASON_HEADER: &str = "x-cohort-reason";
/// The header of a dead letter with the reason in words.
pub const ERROR_HEADER: &str = "x-cohort-error";
/// The header of an answer with its HTTP status.
pub const STATUS_HEADER: &str = "x-cohort-status";
/// The header of an answer with the idempotency key of the request it answers.
pub const IDEMPOTENCY_HEADER: &str = "x-cohort-idempotency-key";
/// The header carrying the credential's signature.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// The method a message is signed with.
pub const METHOD: &str = "AMQP";

/// How long a message the coordinator could not decide waits before it is requeued.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// How often this coordinator requeues one message before it dead-letters it.
pub const MAX_REQUEUES: u32 = 30;

/// Most messages whose requeues are counted (past that the count starts again).
const REQUEUES_TRACKED: usize = 4096;

/// The path a message's signature covers: its kind's route, and the queue its answer goes to.
pub fn signed_path(kind: Kind, reply_to: Option<&str>) -> String {
    match reply_to {
        Some(q) => format!("{}?reply_to={q}", kind.route()),
        None => kind.route().to_string(),
    }
}

/// What a message asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sign an approved request (`POST /v1/signatures`).
    Sign,
    /// Create a key (`POST /v1/keys`).
    CreateKey,
}

impl Kind {
    /// The kind named by a message's `type`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sign" => Some(Self::Sign),
            "create_key" => Some(Self::CreateKey),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::CreateKey => "create_key",
        }
    }

    /// The path of the HTTP call it stands for, which its signature covers.
    pub fn route(self) -> &'static str {
        match self {
            Self::Sign => "/v1/signatures",
            Self::CreateKey => "/v1/keys",
        }
    }
}

/// Why a message is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    /// The reason: `too_large`, `unknown_kind`, `missing_idempotency_key`, or an API error
    /// code (`malformed_request`, `unauthenticated`, `bad_credential`, `unapproved`, ...).
    pub reason: String,
    /// In words.
    pub error: String,
}

impl Dead {
    fn new(reason: &str, error: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            error: error.into(),
        }
    }

    fn of(e: &ApiError) -> Self {
        Self::new(e.code.as_str(), e.message.clone())
    }
}

/// A message's envelope, checked: what it asks, under which idempotency key, signed how.
#[derive(Debug)]
pub struct Checked {
    /// What it asks.
    pub kind: Kind,
    /// Its idempotency key.
    pub idem: String,
    /// The signature.
    pub auth: AuthHeader,
}

/// Checks what needs neither the store nor the body's meaning: the size, the kind, the
/// idempotency key and the shape of the signature header.
pub fn check(
    kind: Option<&str>,
    message_id: Option<&str>,
    authorization: Option<&str>,
    body_len: usize,
    max_body: usize,
) -> Result<Checked, Dead> {
    if body_len > max_body {
        return Err(Dead::new(
            "too_large",
            format!("the body has {body_len} bytes; at most {max_body}"),
        ));
    }
    let kind = kind.and_then(Kind::parse).ok_or_else(|| {
        Dead::new(
            "unknown_kind",
            "the message's type is not `sign` or `create_key`",
        )
    })?;
    let idem = match message_id {
        None | Some("") => {
            return Err(Dead::new(
                "missing_idempotency_key",
                "a request message carries its idempotency key in message_id",
            ));
        }
        Some(k) if !valid_idempotency_key(k) => {
            return Err(Dead::new(
                ErrorCode::InvalidRequest.as_str(),
                "an idempotency key has 1 to 128 characters from A-Z a-z 0-9 . _ : -",
            ));
        }
        Some(k) => k.to_string(),
    };
    let auth = authorization.and_then(AuthHeader::parse).ok_or_else(|| {
        Dead::new(
            ErrorCode::Unauthenticated.as_str(),
            "a request message carries `authorization: Cohort-Ed25519 credential=…, timestamp=…, nonce=…, signature=…`",
        )
    })?;
    Ok(Checked { kind, idem, auth })
}

/// How a message ended.
enum Fate {
    Answered(StoredResponse),
    Dead(Dead),
    Requeue(String),
}

/// Why an answer or a dead letter did not reach the broker.
enum PublishError {
    /// The broker took it but no queue does (`mandatory`).
    Unroutable,
    /// The broker refused it (a full queue with `x-overflow: reject-publish`).
    Refused,
    /// The channel or connection failed: make them again.
    Channel(String),
}

/// The id of an answer: the same answer to the same idempotency key has the same id.
pub fn answer_id(idem: &str, answer: &StoredResponse) -> String {
    let mut h = Sha256::new();
    h.update(b"cohort/answer/v1\0");
    h.update((idem.len() as u32).to_be_bytes());
    h.update(idem.as_bytes());
    h.update(answer.status.to_be_bytes());
    h.update(answer.body.to_string().as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Consumes for as long as the coordinator runs.
pub(super) async fn run(c: Arc<Coordinator>, config: BrokerConfig) {
    let mut attempt = 0u32;
    let requeues = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let e = consume(&c, &config, &mut attempt, &requeues).await;
        c.broker().intake_up(false);
        warn!(error = %e, "intake: the broker connection ended; reconnecting");
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// Requeues per message id, by this coordinator.
type Requeues = Arc<Mutex<HashMap<String, u32>>>;

/// One connection's worth of consuming; returns why it ended.
async fn consume(
    c: &Arc<Coordinator>,
    config: &BrokerConfig,
    attempt: &mut u32,
    requeues: &Requeues,
) -> String {
    let result: Result<(), String> = async {
        let conn = connect(config, "intake").await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| format!("channel: {e}"))?;
        declare_queues(&ch, config).await?;
        ch.basic_qos(config.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("prefetch: {e}"))?;
        // Answers and dead letters go out on their own channel, with confirms: a message is
        // acknowledged only after what it became is with the broker.
        let out = conn
            .create_channel()
            .await
            .map_err(|e| format!("channel: {e}"))?;
        out.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm mode: {e}"))?;
        let mut consumer = ch
            .basic_consume(
                config.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("consuming {}: {e}", config.queue))?;
        c.broker().intake_up(true);
        *attempt = 0;
        // Set by a task whose answer or dead letter could not be published.
        let broken = Arc::new(tokio::sync::Notify::new());
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                () = broken.notified() => {
                    return Err("publishing an answer or a dead letter failed".into());
                }
            };
            let Some(delivery) = delivery else { break };
            let delivery = delivery.map_err(|e| format!("delivery: {e}"))?;
            let (c, config, out) = (c.clone(), config.clone(), out.clone());
            let (broken, requeues) = (broken.clone(), requeues.clone());
            tokio::spawn(async move {
                if let Err(e) = handle(&c, &config, &out, delivery, &requeues).await {
                    warn!(error = %e, "intake: the channel for answers failed; reconnecting");
                    broken.notify_one();
                }
            });
        }
        Err("the consumer was cancelled".into())
    }
    .await;
    result.err().unwrap_or_default()
}

fn header(d: &Delivery, name: &str) -> Option<String> {
    match d.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Decides one delivery, publishes what it became and acknowledges it; `Err` when the channel
/// for answers failed (the delivery is left unacknowledged, for the broker to redeliver).
async fn handle(
    c: &Arc<Coordinator>,
    config: &BrokerConfig,
    out: &Channel,
    d: Delivery,
    requeues: &Requeues,
) -> Result<(), String> {
    let kind = d.properties.kind().as_ref().map(|k| k.as_str().to_string());
    let label = kind
        .as_deref()
        .and_then(Kind::parse)
        .map_or("unknown", Kind::as_str);
    let (mut fate, idem) = decide(c, config, &d, kind.as_deref()).await;
    let key = idem.clone().unwrap_or_default();
    if let Fate::Requeue(why) = &fate {
        if count_requeue(requeues, &key) > MAX_REQUEUES {
            fate = Fate::Dead(Dead::new(
                "unavailable",
                format!("the coordinator could not decide it {MAX_REQUEUES} times: {why}"),
            ));
        } else {
            warn!(error = %why, "intake: requeueing a message the coordinator could not decide");
            return requeue(c, label, &d).await;
        }
    }
    if let (Fate::Answered(answer), Some(reply_to), Some(idem)) =
        (&fate, d.properties.reply_to(), idem.as_deref())
    {
        match reply(out, &d, reply_to.as_str(), idem, answer).await {
            Ok(()) => {}
            Err(PublishError::Unroutable | PublishError::Refused) => {
                fate = Fate::Dead(Dead::new(
                    "reply_undeliverable",
                    format!(
                        "the request ran (its answer is recorded under its idempotency key) \
                         but the queue {} did not take the answer",
                        reply_to.as_str()
                    ),
                ));
            }
            Err(PublishError::Channel(e)) => return Err(e),
        }
    }
    if let Fate::Dead(dead) = &fate {
        match dead_letter(out, config, &d, dead).await {
            Ok(()) => c.broker().dead(&dead.reason),
            Err(PublishError::Unroutable) => {
                return Err(format!(
                    "the dead-letter queue {} is gone",
                    config.dead_letter
                ));
            }
            // The dead-letter queue is full and refuses (an operator's `reject-publish`
            // limit): paced requeues, then the message is dropped (nothing ran for it).
            Err(PublishError::Refused) if count_requeue(requeues, &key) <= MAX_REQUEUES => {
                warn!(reason = %dead.reason, "intake: the dead-letter queue refuses; requeueing");
                return requeue(c, label, &d).await;
            }
            Err(PublishError::Refused) => {
                warn!(reason = %dead.reason, "intake: the dead-letter queue refuses; message dropped");
                fate = Fate::Requeue("dropped".into());
            }
            Err(PublishError::Channel(e)) => return Err(e),
        }
    }
    requeues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    c.broker().intake(
        label,
        match fate {
            Fate::Dead(_) => "dead",
            Fate::Requeue(_) => "dropped",
            Fate::Answered(_) => "answered",
        },
    );
    settled(d.ack(BasicAckOptions::default()).await)
}

/// Counts one more requeue of the message under `key` by this coordinator; returns the count.
fn count_requeue(requeues: &Requeues, key: &str) -> u32 {
    let mut counts = requeues.lock().unwrap_or_else(|p| p.into_inner());
    if counts.len() >= REQUEUES_TRACKED {
        counts.clear();
    }
    let n = counts.entry(key.to_string()).or_default();
    *n += 1;
    *n
}

/// Puts a message back in the queue after a pause.
async fn requeue(c: &Coordinator, label: &str, d: &Delivery) -> Result<(), String> {
    c.broker().intake(label, "requeued");
    tokio::time::sleep(REQUEUE_PAUSE).await;
    settled(
        d.nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await,
    )
}

/// A failed acknowledgement: the channel broke, and the broker redelivers the message (it is
/// answered from its record).
fn settled(r: lapin::Result<bool>) -> Result<(), String> {
    r.map(|_| ())
        .map_err(|e| format!("settling a message: {e}"))
}

/// What becomes of a delivery, and its idempotency key when it has a valid one.
async fn decide(
    c: &Arc<Coordinator>,
    config: &BrokerConfig,
    d: &Delivery,
    kind: Option<&str>,
) -> (Fate, Option<String>) {
    let message_id = d.properties.message_id().as_ref().map(|m| m.as_str());
    let authorization = header(d, AUTHORIZATION_HEADER);
    let checked = match check(
        kind,
        message_id,
        authorization.as_deref(),
        d.data.len(),
        config.max_body,
    ) {
        Ok(checked) => checked,
        Err(dead) => return (Fate::Dead(dead), None),
    };
    let idem = checked.idem.clone();
    let fate = async {
        let reply_to = d.properties.reply_to().as_ref().map(|q| q.as_str());
        let path = signed_path(checked.kind, reply_to);
        let call = Signed {
            method: METHOD,
            path_and_query: &path,
            idempotency_key: Some(&checked.idem),
            body: &d.data,
        };
        let caller = verify_message(c, &checked.auth, call, Role::Request, config.max_age)
            .await
            .map_err(fate_of)?;
        let malformed = |e: serde_json::Error| {
            Fate::Dead(Dead::new(
                ErrorCode::MalformedRequest.as_str(),
                format!("bad JSON: {e}"),
            ))
        };
        match checked.kind {
            Kind::Sign => {
                let body = serde_json::from_slice(&d.data).map_err(malformed)?;
                c.sign(body, Some(checked.idem.clone()), caller.credential)
                    .await
                    .map_err(fate_of)
            }
            Kind::CreateKey => {
                let body: ApprovedJson<CreateKeyJson> =
                    serde_json::from_slice(&d.data).map_err(malformed)?;
                match c.create_key(body.clone(), caller.credential).await {
                    Ok(info) => Ok(StoredResponse {
                        status: 201,
                        body: serde_json::to_value(&info)
                            .map_err(|e| Fate::Requeue(format!("answer: {e}")))?,
                    }),
                    // The key was made by this request before (a redelivery): its answer.
                    Err(e) if e.code == ErrorCode::KeyExists => {
                        match c.create_key_record(&body).await.map_err(fate_of)? {
                            Some(stored) => Ok(stored),
                            // Made by another request: refused.
                            None if c.key(&body.request.key_id).await.is_ok() => Err(fate_of(e)),
                            // Being made (this request's generation, or another's): decided
                            // once it ends.
                            None => Err(Fate::Requeue(e.message)),
                        }
                    }
                    // The generation ran and failed: recorded (audit, event), so answered.
                    Err(e) if e.code == ErrorCode::KeygenFailed => {
                        StoredResponse::of_error(&e).map_err(fate_of)
                    }
                    Err(e) => Err(fate_of(e)),
                }
            }
        }
    }
    .await;
    (fate.map_or_else(|f| f, Fate::Answered), Some(idem))
}

/// A refusal before anything was recorded is a dead letter; a store that failed is for later.
fn fate_of(e: ApiError) -> Fate {
    match e.code {
        ErrorCode::Storage | ErrorCode::Internal => Fate::Requeue(e.message),
        _ => Fate::Dead(Dead::of(&e)),
    }
}

async fn confirmed(confirm: lapin::Result<lapin::PublisherConfirm>) -> Result<(), PublishError> {
    let channel = |e: lapin::Error| PublishError::Channel(e.to_string());
    match confirm.map_err(channel)?.await.map_err(channel)? {
        Confirmation::Ack(None) => Ok(()),
        // Returned: `mandatory` and no queue took it.
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Err(PublishError::Unroutable),
        Confirmation::Nack(None) => Err(PublishError::Refused),
        Confirmation::NotRequested => Err(PublishError::Channel(
            "confirms are off on the channel".into(),
        )),
    }
}

/// Publishes a message to a queue through the default exchange: persistent, `mandatory`,
/// confirmed.
async fn to_queue(
    out: &Channel,
    queue: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), PublishError> {
    confirmed(
        out.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props.with_delivery_mode(2),
        )
        .await,
    )
    .await
}

/// Publishes a request's answer to its `reply_to`.
async fn reply(
    out: &Channel,
    d: &Delivery,
    reply_to: &str,
    idem: &str,
    answer: &StoredResponse,
) -> Result<(), PublishError> {
    let mut headers = FieldTable::default();
    headers.insert(
        STATUS_HEADER.into(),
        AMQPValue::LongString(answer.status.to_string().into()),
    );
    // What the answer is for, from the signed message: the correlation id is the sender's
    // label, which a replay may set to anything.
    headers.insert(
        IDEMPOTENCY_HEADER.into(),
        AMQPValue::LongString(idem.into()),
    );
    let correlation = d
        .properties
        .correlation_id()
        .clone()
        .unwrap_or_else(|| idem.into());
    let props = BasicProperties::default()
        .with_message_id(answer_id(idem, answer).into())
        .with_correlation_id(correlation)
        .with_content_type("application/json".into())
        .with_headers(headers);
    to_queue(out, reply_to, answer.body.to_string().as_bytes(), props).await
}

/// Publishes a refused message to the dead-letter queue with why: a new message with its
/// body (none if it was too large), id, type and correlation id, and nothing else of it.
async fn dead_letter(
    out: &Channel,
    config: &BrokerConfig,
    d: &Delivery,
    dead: &Dead,
) -> Result<(), PublishError> {
    let mut headers = FieldTable::default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(dead.reason.as_str().into()),
    );
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(dead.error.as_str().into()),
    );
    let mut props = BasicProperties::default()
        .with_headers(headers)
        .with_timestamp(crate::service::unix_now());
    let p = &d.properties;
    if let Some(id) = p.message_id() {
        props = props.with_message_id(id.clone());
    }
    if let Some(kind) = p.kind() {
        props = props.with_type(kind.clone());
    }
    if let Some(c) = p.correlation_id() {
        props = props.with_correlation_id(c.clone());
    }
    let body: &[u8] = match dead.reason.as_str() {
        "too_large" => &[],
        _ => &d.data,
    };
    to_queue(out, &config.dead_letter, body, props).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "Cohort-Ed25519 credential=ops, timestamp=1700000000, nonce=000102030405060708090a0b0c0d0e0f, signature=00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn envelopes_that_cannot_be_requests_are_refused_with_their_reason() {
        let reason = |r: Result<Checked, Dead>| r.unwrap_err().reason;
        assert_eq!(
            reason(check(Some("sign"), Some("k"), Some(AUTH), 11, 10)),
            "too_large"
        );
        assert_eq!(
            reason(check(Some("burn"), Some("k"), Some(AUTH), 1, 10)),
            "unknown_kind"
        );
        assert_eq!(
            reason(check(None, Some("k"), Some(AUTH), 1, 10)),
            "unknown_kind"
        );
        assert_eq!(
            reason(check(Some("sign"), None, Some(AUTH), 1, 10)),
            "missing_idempotency_key"
        );
        assert_eq!(
            reason(check(Some("sign"), Some("a b"), Some(AUTH), 1, 10)),
            "invalid_request"
        );
        assert_eq!(
            reason(check(Some("sign"), Some("k"), None, 1, 10)),
            "unauthenticated"
        );
        assert_eq!(
            reason(check(Some("sign"), Some("k"), Some("Bearer x"), 1, 10)),
            "unauthenticated"
        );
        let ok = check(Some("create_key"), Some("k-1"), Some(AUTH), 10, 10).unwrap();
        assert_eq!((ok.kind, ok.idem.as_str()), (Kind::CreateKey, "k-1"));
        assert_eq!(ok.auth.credential, "ops");
    }

    #[test]
    fn answers_have_stable_ids() {
        let a = StoredResponse {
            status: 200,
            body: serde_json::json!({"s": 1}),
        };
        let b = StoredResponse {
            status: 200,
            body: serde_json::json!({"s": 2}),
        };
        assert_eq!(answer_id("k", &a), answer_id("k", &a.clone()));
        assert_ne!(answer_id("k", &a), answer_id("k", &b));
        assert_ne!(answer_id("k", &a), answer_id("j", &a));
        assert_eq!(answer_id("k", &a).len(), 32);
    }

    #[test]
    fn refusals_are_dead_and_a_failing_store_is_for_later() {
        assert!(matches!(
            fate_of(ApiError::new(ErrorCode::Unapproved, "no")),
            Fate::Dead(d) if d.reason == "unapproved"
        ));
        assert!(matches!(
            fate_of(ApiError::new(ErrorCode::Storage, "down")),
            Fate::Requeue(_)
        ));
    }
}
