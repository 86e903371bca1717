//! The coordinator's RabbitMQ path (issue 21), against the machine's RabbitMQ and a simulated
//! cluster of real processes: bad messages dead-lettered with their reason and nothing signed;
//! one request published three times signed once and answered three times alike; the
//! coordinator SIGKILLed between signing and acknowledging, the redelivered message answered
//! from its record; the broker unreachable for 30 s while HTTP signing goes on, and afterwards
//! every audit record's event published, in order.
//!
//! The coordinator reaches RabbitMQ through a TCP relay ([`FaultRelay`]) that holds traffic
//! (a partition) or holds back the coordinator's acknowledgement, so each fault demonstrably
//! hits before it is injected. RabbitMQ is `COHORT_TEST_AMQP` (default the machine's,
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); `scripts/setup.sh` installs and starts it where it
//! is absent, and the test fails without it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli::ops;
use cohort_tests::relay::{FaultRelay, Link};
use coordinator::api::{ApiKey, ApprovedJson, CreateKeyJson, KeyInfo, SignResult};
use coordinator::broker::intake::{
    AUTHORIZATION_HEADER, Kind, METHOD, REASON_HEADER, STATUS_HEADER, signed_path,
};
use coordinator::client::ApiClient;
use coordinator::events::Event;
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use protocol::policy::{Payload, Scheme};

const CLUSTER: &str = "broker-test";

fn amqp_url() -> String {
    std::env::var("COHORT_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The broker's host and port in `url`.
fn broker_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap();
    use std::net::ToSocketAddrs;
    host.to_socket_addrs().unwrap().next().unwrap()
}

/// The same URL with the relay's address in place of the broker's.
fn through(url: &str, relay: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host_path) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let path = host_path.split_once('/').map_or("", |(_, p)| p);
    format!("{scheme}://{user}{relay}/{path}")
}

/// Messages read from a queue as they arrive: (properties, body).
type Inbox = Arc<Mutex<Vec<(BasicProperties, Vec<u8>)>>>;

async fn collect(ch: &Channel, queue: &str) -> Inbox {
    let inbox: Inbox = Arc::default();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let into = inbox.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            into.lock()
                .unwrap()
                .push((d.properties.clone(), d.data.clone()));
            let _ = d.ack(BasicAckOptions::default()).await;
        }
    });
    inbox
}

/// Waits until `inbox` holds `n` messages (or fails after `within`).
async fn wait_for(inbox: &Inbox, n: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while inbox.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} messages within {within:?}",
            inbox.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header(p: &BasicProperties, name: &str) -> Option<String> {
    match p.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// The test's names on the broker (unique per run) and its channel.
struct Broker {
    _conn: Connection,
    ch: Channel,
    queue: String,
    dead: String,
    exchange: String,
}

impl Broker {
    async fn publish(
        &self,
        kind: Option<&str>,
        idem: Option<&str>,
        auth: Option<String>,
        body: &[u8],
        reply_to: Option<&str>,
    ) {
        self.publish_with(kind, idem, auth, body, reply_to, FieldTable::default())
            .await;
    }

    async fn publish_with(
        &self,
        kind: Option<&str>,
        idem: Option<&str>,
        auth: Option<String>,
        body: &[u8],
        reply_to: Option<&str>,
        mut headers: FieldTable,
    ) {
        if let Some(a) = auth {
            headers.insert(AUTHORIZATION_HEADER.into(), AMQPValue::LongString(a.into()));
        }
        let mut props = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2);
        if let Some(k) = kind {
            props = props.with_type(k.into());
        }
        if let Some(i) = idem {
            props = props.with_message_id(i.into());
        }
        if let Some(r) = reply_to {
            props = props.with_reply_to(r.into());
        }
        self.ch
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The next `n` dead letters: (reason, message id, properties).
    async fn dead_letters(&self, n: usize) -> Vec<(String, Option<String>, BasicProperties)> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} dead letters: {:?}",
                out.len(),
                out.iter().map(|(r, id, _)| (r, id)).collect::<Vec<_>>()
            );
            match self
                .ch
                .basic_get(self.dead.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => out.push((
                    header(&m.delivery.properties, REASON_HEADER).unwrap_or_default(),
                    m.delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string()),
                    m.delivery.properties.clone(),
                )),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        out
    }
}

async fn broker(tag: &str) -> (Broker, Inbox, String) {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is needed at {} (scripts/setup.sh starts it): {e}",
                amqp_url()
            )
        });
    let ch = conn.create_channel().await.unwrap();
    let run = format!("{tag}-{}-{}", std::process::id(), rand::random::<u32>());
    let exchange = format!("{run}.events");
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Bound before the coordinator starts: every event it ever publishes reaches the test.
    let events = coordinator::broker::private_queue(&ch).await.unwrap();
    ch.queue_bind(
        events.name().clone(),
        exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let inbox = collect(&ch, events.name().as_str()).await;
    let replies = coordinator::broker::private_queue(&ch).await.unwrap();
    let b = Broker {
        _conn: conn,
        ch,
        queue: format!("{run}.requests"),
        dead: format!("{run}.requests.dead"),
        exchange,
    };
    (b, inbox, replies.name().to_string())
}

/// A message's `authorization`: signed as the call, with the method `AMQP` and the queue its
/// answer goes to.
fn signed(key: &ApiKey, kind: Kind, idem: &str, body: &[u8], reply_to: Option<&str>) -> String {
    let path = signed_path(kind, reply_to);
    key.authorize(
        METHOD,
        &path,
        Some(idem),
        body,
        cohort_tests::now().as_secs(),
    )
}

/// The request id (hex) of a signing request's body.
fn request_id_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body).unwrap()["request"]["request_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The audit records of signing requests with `request_id`.
async fn sign_records(api: &ApiClient, request_id: &str) -> usize {
    cohort_tests::audit_log(api)
        .await
        .iter()
        .filter(|r| r.entry.action == "sign" && r.entry.request_id.as_deref() == Some(request_id))
        .count()
}

/// The outbox's unsent events, as the coordinator's metrics show them.
async fn outbox_unsent(api: &ApiClient) -> u64 {
    let (_, bytes) = coordinator::client::HttpClient::new()
        .get(&format!("{}/metrics", api.base()))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("cohort_outbox_unsent "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cohort_outbox_unsent in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_through_the_broker_are_signed_once_and_every_audit_record_is_published() {
    let (b, events, replies_queue) = broker("e2e").await;
    let replies = collect(&b.ch, &replies_queue).await;
    let relay = FaultRelay::start(broker_addr(&amqp_url())).await.unwrap();
    let (_dir, mut options) = cohort_tests::sim_options("cohort-broker-");
    options.coordinator_args = vec![
        "--amqp".into(),
        through(&amqp_url(), relay.addr()),
        "--amqp-queue".into(),
        b.queue.clone(),
        "--amqp-exchange".into(),
        b.exchange.clone(),
    ];
    // `cohort events tail` as an operator runs it: its first three events.
    let tail = tokio::process::Command::new(cohort_tests::bin("cohort"))
        .args([
            "events",
            "tail",
            "--amqp",
            &amqp_url(),
            "--exchange",
            &b.exchange,
        ])
        .args(["--count", "3"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut cluster = cli::sim::SimCluster::start(&options).await.unwrap();
    let api = cluster.info.api().unwrap();
    let key = ApiKey::load(&cluster.info.api_key).unwrap();
    let expect = cohort_tests::expectations(&cluster);
    let admins: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[40 + i; 32]))
        .collect();
    let approvers: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[50 + i; 32]))
        .collect();
    let trust = ops::genesis(&api, &expect, CLUSTER, &admins[1..], 2)
        .await
        .unwrap();
    let cluster_id = trust.cluster_id();
    let approver_keys: Vec<[u8; 32]> = approvers
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    let eddsa: KeyInfo = ops::create_key(
        &api,
        cluster_id,
        "eddsa",
        Scheme::EddsaEd25519,
        2,
        &admins[1..],
        &approver_keys,
        2,
    )
    .await
    .unwrap();
    let sign_body = |msg: &str, by: &[SigningKey]| {
        serde_json::to_vec(&ops::sign_body(
            cluster_id,
            ops::KeyRef::of(&eddsa),
            &[],
            vec![Payload::raw(msg.as_bytes().to_vec())],
            by,
            None,
        ))
        .unwrap()
    };

    // 1. Bad messages: each dead-lettered with its reason, nothing signed.
    let audit_before = cohort_tests::audit_log(&api).await.len();
    let good = sign_body("bad-messages", &approvers[1..]);
    let sign = Kind::Sign;
    let auth = |idem: &str, body: &[u8]| Some(signed(&key, sign, idem, body, None));
    b.publish(
        Some("sign"),
        Some("bad-1"),
        auth("bad-1", b"not json"),
        b"not json",
        None,
    )
    .await;
    b.publish(
        Some("burn"),
        Some("bad-2"),
        auth("bad-2", &good),
        &good,
        None,
    )
    .await;
    b.publish(Some("sign"), None, auth("", &good), &good, None)
        .await;
    let big = vec![b'{'; coordinator::http::DEFAULT_MAX_BODY + 1];
    b.publish(Some("sign"), Some("bad-4"), auth("bad-4", &big), &big, None)
        .await;
    let unapproved = sign_body("unapproved", &admins[..2]);
    b.publish(
        Some("sign"),
        Some("bad-5"),
        auth("bad-5", &unapproved),
        &unapproved,
        None,
    )
    .await;
    // Signed over another body; for HTTP rather than the broker; for no reply queue but
    // naming one (a replay sending the answer elsewhere).
    b.publish(
        Some("sign"),
        Some("bad-6"),
        auth("bad-6", b"{}"),
        &good,
        None,
    )
    .await;
    let route = Kind::Sign.route();
    let for_http = key.authorize(
        "POST",
        route,
        Some("bad-7"),
        &good,
        cohort_tests::now().as_secs(),
    );
    b.publish(Some("sign"), Some("bad-7"), Some(for_http), &good, None)
        .await;
    b.publish(
        Some("sign"),
        Some("bad-9"),
        auth("bad-9", &good),
        &good,
        Some(&replies_queue),
    )
    .await;
    // No credential, and a `CC` header naming the intake queue: were the dead letter to carry
    // it, the broker would route it back to the intake, round and round.
    let mut cc = FieldTable::default();
    cc.insert(
        "CC".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString(b.queue.as_str().into())].into()),
    );
    b.publish_with(Some("sign"), Some("bad-8"), None, &good, None, cc)
        .await;
    let letters = b.dead_letters(9).await;
    let dead: BTreeMap<Option<String>, String> = letters
        .iter()
        .map(|(reason, id, _)| (id.clone(), reason.clone()))
        .collect();
    let expected: BTreeMap<Option<String>, String> = [
        (Some("bad-1"), "malformed_request"),
        (Some("bad-2"), "unknown_kind"),
        (None, "missing_idempotency_key"),
        (Some("bad-4"), "too_large"),
        (Some("bad-5"), "unapproved"),
        (Some("bad-6"), "bad_credential"),
        (Some("bad-7"), "bad_credential"),
        (Some("bad-8"), "unauthenticated"),
        (Some("bad-9"), "bad_credential"),
    ]
    .into_iter()
    .map(|(id, r)| (id.map(str::to_string), r.to_string()))
    .collect();
    assert_eq!(dead, expected);
    for (_, id, props) in &letters {
        let headers = props.headers().clone().unwrap_or_default();
        assert!(
            !headers.contains_key("CC") && !headers.contains_key(AUTHORIZATION_HEADER),
            "{id:?}: a dead letter carries only its reason: {headers:?}"
        );
        assert_eq!(
            *props.delivery_mode(),
            Some(2),
            "dead letters are persistent"
        );
    }
    assert_eq!(
        cohort_tests::audit_log(&api).await.len(),
        audit_before,
        "a refused message changed nothing"
    );
    assert!(
        replies.lock().unwrap().is_empty(),
        "no answer went anywhere"
    );

    // 2. One request published three times: one signature, one record, three alike answers.
    let body = sign_body("three times", &approvers[1..]);
    let request_id = request_id_of(&body);
    for _ in 0..3 {
        b.publish(
            Some("sign"),
            Some("thrice"),
            Some(signed(&key, sign, "thrice", &body, Some(&replies_queue))),
            &body,
            Some(&replies_queue),
        )
        .await;
    }
    wait_for(&replies, 3, Duration::from_secs(60), "answers").await;
    {
        let got = replies.lock().unwrap();
        let ids: BTreeSet<_> = got.iter().map(|(p, _)| p.message_id().clone()).collect();
        assert_eq!(ids.len(), 1, "three answers, one id");
        let bodies: BTreeSet<_> = got.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(bodies.len(), 1, "three identical answers");
        assert!(
            got.iter()
                .all(|(p, _)| header(p, STATUS_HEADER).as_deref() == Some("200"))
        );
        let r: SignResult = serde_json::from_slice(&got[0].1).unwrap();
        assert_eq!(r.status, "completed");
        cohort_tests::verify_eddsa(
            &eddsa.public_key.0,
            b"three times",
            &r.signatures[0].signature.0,
        );
    }
    assert_eq!(sign_records(&api, &request_id).await, 1);

    // 2b. A key created through the broker, the message published again after its answer:
    // the key is made once and the second answer is the first (from the reservation's record).
    let approver_bufs: Vec<serde_bytes::ByteBuf> = approver_keys
        .iter()
        .map(|k| serde_bytes::ByteBuf::from(k.to_vec()))
        .collect();
    let mut request = cli::requests::create_key(
        cluster_id,
        "via-broker",
        Scheme::EddsaEd25519,
        2,
        &approver_bufs,
        2,
    );
    request.admins = cli::admins::admin_version(&api).await.unwrap();
    request.roster = cli::roster::roster_version(&api).await.unwrap();
    let request = cli::requests::approve(&request, &admins[1..]);
    let create = serde_json::to_vec(&ApprovedJson::<CreateKeyJson>::from_wire(&request)).unwrap();
    let answered = replies.lock().unwrap().len();
    for i in 1..=2 {
        b.publish(
            Some("create_key"),
            Some("create-via-broker"),
            Some(signed(
                &key,
                Kind::CreateKey,
                "create-via-broker",
                &create,
                Some(&replies_queue),
            )),
            &create,
            Some(&replies_queue),
        )
        .await;
        wait_for(
            &replies,
            answered + i,
            Duration::from_secs(120),
            "key answers",
        )
        .await;
    }
    {
        let got = replies.lock().unwrap();
        let (first, second) = (&got[answered], &got[answered + 1]);
        assert_eq!(header(&first.0, STATUS_HEADER).as_deref(), Some("201"));
        assert_eq!(first.1, second.1, "the second answer is the first");
        assert_eq!(first.0.message_id(), second.0.message_id());
        let made: KeyInfo = serde_json::from_slice(&first.1).unwrap();
        assert_eq!(made.key_id, "via-broker");
    }
    let creations = cohort_tests::audit_log(&api)
        .await
        .iter()
        .filter(|r| {
            r.entry.action == "create_key" && r.entry.key_id.as_deref() == Some("via-broker")
        })
        .count();
    assert_eq!(creations, 1, "one key generation");

    // 3. The coordinator SIGKILLed after it signed and before its acknowledgement left: the
    // message comes back and is answered from its record. AMQP's basic.ack method (class 60,
    // method 80) is held at the relay.
    let body = sign_body("killed before ack", &approvers[1..]);
    let request_id = request_id_of(&body);
    relay.hold_on(&[0x00, 0x3c, 0x00, 0x50]);
    let answered = replies.lock().unwrap().len();
    b.publish(
        Some("sign"),
        Some("killed"),
        Some(signed(&key, sign, "killed", &body, Some(&replies_queue))),
        &body,
        Some(&replies_queue),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !relay.seen() {
        assert!(Instant::now() < deadline, "the acknowledgement never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Acknowledged only once durable: the record and the answer exist already.
    assert_eq!(sign_records(&api, &request_id).await, 1);
    wait_for(
        &replies,
        answered + 1,
        Duration::from_secs(10),
        "first answer",
    )
    .await;
    cluster.kill("coordinator").await.unwrap();
    relay.cut_held();
    cluster.restart("coordinator").await.unwrap();
    cohort_tests::wait_up(&api).await;
    wait_for(
        &replies,
        answered + 2,
        Duration::from_secs(60),
        "the redelivery's answer",
    )
    .await;
    {
        let got = replies.lock().unwrap();
        let (first, second) = (&got[answered], &got[answered + 1]);
        assert_eq!(first.0.message_id(), second.0.message_id());
        assert_eq!(first.1, second.1, "the stored answer, again");
    }
    assert_eq!(sign_records(&api, &request_id).await, 1, "signed once");

    // 4. The broker unreachable for 30 s: HTTP signs on, the events wait in the outbox, and
    // all of them are published afterwards, in order.
    relay.set(Link::Partitioned);
    let outage = Instant::now();
    let mut during = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        let msg = format!("during the outage {during}");
        let r: SignResult = api
            .post(
                route,
                &serde_json::from_slice::<serde_json::Value>(&sign_body(&msg, &approvers[1..]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, "completed");
        during += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let waiting = outbox_unsent(&api).await;
    assert!(
        waiting >= during,
        "the outage hit: {waiting} events wait for {during} signatures"
    );
    relay.set(Link::Up);
    let records = cohort_tests::audit_log(&api).await;
    let last = records.last().unwrap().seq;
    let deadline = Instant::now() + Duration::from_secs(120);
    let published = loop {
        let got: Vec<Event> = events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect();
        let mut seen = BTreeSet::new();
        let unique: Vec<Event> = got
            .into_iter()
            .filter(|e| seen.insert(e.id.clone()))
            .collect();
        if unique.iter().filter_map(|e| e.audit_seq).any(|s| s >= last) {
            break unique;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seqs: Vec<u64> = published.iter().filter_map(|e| e.audit_seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "events in the audit log's order: {seqs:?}"
    );
    let every: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs.iter()
            .copied()
            .filter(|s| *s <= last)
            .collect::<Vec<_>>(),
        every,
        "one event for each audit record"
    );
    for r in &records {
        let e = published
            .iter()
            .find(|e| e.audit_seq == Some(r.seq))
            .unwrap();
        assert_eq!(
            e.kind,
            coordinator::events::kind_of(&r.entry.action, &r.entry.outcome)
        );
    }
    let completed = published
        .iter()
        .filter(|e| {
            e.kind == "signature.completed" && e.idempotency_key.as_deref() == Some("thrice")
        })
        .count();
    assert_eq!(
        completed, 1,
        "one event for the request published three times"
    );
    // Marked sent once confirmed (the metric is read at most once a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_unsent(&api).await > 0 {
        assert!(Instant::now() < deadline, "the outbox still holds events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for q in [&b.queue, &b.dead] {
        let _ =
            b.ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
    }
    let tailed = tokio::time::timeout(Duration::from_secs(60), tail.wait_with_output())
        .await
        .expect("cohort events tail stops after three events")
        .unwrap();
    assert!(tailed.status.success());
    let lines: Vec<Event> = String::from_utf8(tailed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let _ =
        b.ch.exchange_delete(b.exchange.as_str().into(), Default::default())
            .await;
    cluster.stop().await.unwrap();
}
