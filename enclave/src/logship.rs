//! The enclave's log channel to its parent (issue 23): a production enclave's standard output
//! is its console, which only a debug-mode enclave shows, so its log records also go, one JSON
//! line each, to the parent proxy (`--log-to vsock:3:8002`; the proxy's
//! `--enclave-log-listen`), which writes them into its own log.
//!
//! The channel never holds the enclave up: a record is queued with `try_send` (at most
//! [`QUEUE_RECORDS`] records of at most [`MAX_RECORD`] bytes wait, bounded memory as ADR 0015
//! asks) and one thread of its own, the [`Shipper`], writes them out. A parent that is not
//! listening yet finds the oldest records waiting (those of the boot); one that stops reading
//! makes the shipper's write time out and the queue fill, after which records are dropped and
//! counted, and the count is sent as a record of its own once the parent reads again. The
//! shipper never reads from the connection: nothing the parent sends reaches the enclave.
//!
//! What a record holds is what the enclave logs: property 7 (no secret in any log) is what
//! makes the channel safe to hand to the parent, and `tests/tests/signing.rs` scans what
//! arrives over it during a signing run. The parent can drop, reorder or forge records: they
//! are an operator's aid, never evidence (the audit trail is the coordinator's, and receipts
//! are signed).

use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use protocol::Endpoint;
use tracing_subscriber::fmt::MakeWriter;

use crate::transport;

/// Records that wait for the parent before new ones are dropped.
pub const QUEUE_RECORDS: usize = 512;
/// The largest record sent; a larger one is replaced by a notice giving its size.
pub const MAX_RECORD: usize = 4096;
/// How long one write to the parent may block the shipper before it reconnects.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the shipper waits between attempts to reach the parent.
const RETRY: Duration = Duration::from_secs(1);

/// The sending side: a `tracing_subscriber` writer that queues each formatted event as one
/// record. Cheap to clone.
#[derive(Clone)]
pub struct LogChannel {
    queue: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogChannel")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogChannel {
    /// A channel and the shipper that drains it to `endpoint`: run [`Shipper::run`] on a
    /// thread of its own.
    pub fn new(endpoint: Endpoint) -> (Self, Shipper) {
        let (queue, records) = mpsc::sync_channel(QUEUE_RECORDS);
        let dropped = Arc::new(AtomicU64::new(0));
        let shipper = Shipper {
            endpoint,
            records,
            dropped: dropped.clone(),
            reported: 0,
        };
        (Self { queue, dropped }, shipper)
    }

    /// Records dropped so far: the queue was full, or a write to the parent failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `record` (one line, without its newline) if there is room; never blocks.
    pub fn send(&self, record: Vec<u8>) {
        if self.queue.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A notice replacing a record over [`MAX_RECORD`] bytes, as the JSON formatter writes records.
/// It keeps the record's `event` (what alarms count, such as `kms_failure`) when the kept
/// prefix names one.
fn oversized(len: usize, prefix: &[u8]) -> Vec<u8> {
    let event = event_of(prefix)
        .map(|e| format!(r#","event":"{e}""#))
        .unwrap_or_default();
    format!(
        r#"{{"level":"WARN","fields":{{"message":"an enclave log record was too long to send","bytes":{len}{event}}},"target":"enclave::logship"}}"#
    )
    .into_bytes()
}

/// The first `"event":"…"` value of a JSON record's prefix, when it is a plain identifier (1
/// to 64 ASCII letters, digits, `_`, `.` or `-`): a string the formatter wrote unescaped, so
/// the pattern cannot come from inside another string's value, and nothing else is copied.
fn event_of(prefix: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""event":""#;
    let start = prefix.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &prefix[start..];
    let end = rest.iter().position(|b| *b == b'"')?;
    let value = std::str::from_utf8(&rest[..end]).ok()?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    (!value.is_empty() && value.len() <= 64 && value.bytes().all(plain)).then_some(value)
}

/// A notice of records dropped since the last one.
fn dropped_notice(count: u64) -> Vec<u8> {
    format!(
        r#"{{"level":"WARN","fields":{{"message":"enclave log records were dropped","dropped":{count}}},"target":"enclave::logship"}}"#
    )
    .into_bytes()
}

/// One event being formatted: collected, then queued when the formatter drops it.
#[derive(Debug)]
pub struct Record<'a> {
    channel: &'a LogChannel,
    line: Vec<u8>,
    /// Bytes written, kept or not.
    len: usize,
    /// Whether the last byte written was the formatter's newline.
    newline: bool,
}

impl Write for Record<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(bytes.len());
        if let Some(last) = bytes.last() {
            self.newline = *last == b'\n';
        }
        // Up to one byte past the limit (the newline) is kept: the whole record when it fits,
        // else the prefix an oversized record's notice reads its event from.
        let room = (MAX_RECORD + 1).saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let size = self.len - usize::from(self.newline);
        if size == 0 {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        self.channel.send(match size > MAX_RECORD {
            true => oversized(size, &line),
            false => {
                line.truncate(size);
                line
            }
        });
    }
}

impl<'a> MakeWriter<'a> for LogChannel {
    type Writer = Record<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Record {
            channel: self,
            line: Vec::with_capacity(256),
            len: 0,
            newline: false,
        }
    }
}

/// The receiving side: writes queued records to the parent, reconnecting when it must.
pub struct Shipper {
    endpoint: Endpoint,
    records: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    reported: u64,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Shipper {
    /// Ships records until every [`LogChannel`] is gone and the queue is empty.
    pub fn run(mut self) {
        let Ok(mut next) = self.records.recv() else {
            return;
        };
        loop {
            let mut parent = match transport::connect(&self.endpoint, WRITE_TIMEOUT) {
                Ok(stream) => BufWriter::new(stream),
                Err(_) => {
                    // The record waits (and so do the queued ones, up to the queue's bound)
                    // until the parent listens.
                    std::thread::sleep(RETRY);
                    continue;
                }
            };
            match self.ship(&mut parent, next) {
                Ok(()) | Err(None) => return,
                Err(Some(record)) => next = record,
            }
        }
    }

    /// Writes `first` and every record after it to `parent`. `Ok` once the channel is gone;
    /// `Err(Some(next))` when the connection failed (the record being written is dropped,
    /// `next` is the one to start with on the next connection); `Err(None)` when it failed and
    /// the channel is gone.
    fn ship(
        &mut self,
        parent: &mut BufWriter<transport::Stream>,
        first: Vec<u8>,
    ) -> Result<(), Option<Vec<u8>>> {
        let mut record = first;
        loop {
            let dropped = self.dropped.load(Ordering::Relaxed);
            let notice = (dropped > self.reported).then(|| dropped_notice(dropped - self.reported));
            let written = notice
                .iter()
                .chain(std::iter::once(&record))
                .try_for_each(|line| {
                    parent.write_all(line)?;
                    parent.write_all(b"\n")
                });
            if written.is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(self.records.recv().ok());
            }
            self.reported = dropped;
            record = match self.records.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty) => {
                    if parent.flush().is_err() {
                        return Err(self.records.recv().ok());
                    }
                    match self.records.recv() {
                        Ok(next) => next,
                        Err(_) => return Ok(()),
                    }
                }
                Err(TryRecvError::Disconnected) => return parent.flush().map_err(|_| None),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    use super::*;

    fn record(channel: &LogChannel, text: &str) {
        let mut writer = channel.make_writer();
        writer.write_all(text.as_bytes()).unwrap();
        writer.write_all(b"\n").unwrap();
    }

    fn lines(stream: impl io::Read, n: usize) -> Vec<String> {
        BufReader::new(stream)
            .lines()
            .take(n)
            .map(|l| l.unwrap())
            .collect()
    }

    #[test]
    fn records_written_before_the_parent_listens_reach_it_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let (channel, shipper) = LogChannel::new(Endpoint::Unix(path.clone()));
        for i in 0..3 {
            record(&channel, &format!(r#"{{"n":{i}}}"#));
        }
        let thread = std::thread::spawn(move || shipper.run());
        let listener = UnixListener::bind(&path).unwrap();
        let (stream, _) = listener.accept().unwrap();
        record(&channel, r#"{"n":3}"#);
        drop(channel);
        assert_eq!(
            lines(stream, 10),
            [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]
        );
        thread.join().unwrap();
    }

    #[test]
    fn an_oversized_record_is_replaced_by_a_notice_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (channel, shipper) = LogChannel::new(Endpoint::Unix(path));
        record(&channel, &"x".repeat(MAX_RECORD + 10));
        record(&channel, &"y".repeat(MAX_RECORD));
        // A KMS failure with a long message keeps its event, which the kms-failures alarm
        // counts; a value that is not a plain identifier is not copied.
        let long = "z".repeat(MAX_RECORD);
        record(
            &channel,
            &format!(r#"{{"fields":{{"event":"kms_failure","message":"{long}"}}}}"#),
        );
        record(
            &channel,
            &format!(r#"{{"fields":{{"event":"a\"b","message":"{long}"}}}}"#),
        );
        drop(channel);
        let thread = std::thread::spawn(move || shipper.run());
        let (stream, _) = listener.accept().unwrap();
        let got = lines(stream, 10);
        assert_eq!(got.len(), 4);
        let notice: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(notice["fields"]["bytes"], MAX_RECORD + 10);
        assert_eq!(notice["fields"].get("event"), None);
        assert_eq!(got[1], "y".repeat(MAX_RECORD));
        let kms: serde_json::Value = serde_json::from_str(&got[2]).unwrap();
        assert_eq!(kms["fields"]["event"], "kms_failure");
        assert!(kms["fields"]["bytes"].as_u64().unwrap() > MAX_RECORD as u64);
        let odd: serde_json::Value = serde_json::from_str(&got[3]).unwrap();
        assert_eq!(odd["fields"].get("event"), None);
        thread.join().unwrap();
    }

    /// The attack: a parent that accepts the log connection and never reads. Logging must not
    /// block (this test would hang): what the queue, the shipper's buffer and the socket's
    /// cannot hold (far less than the 20 MB sent) is dropped and counted.
    #[test]
    fn a_parent_that_stops_reading_never_blocks_the_enclave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (channel, shipper) = LogChannel::new(Endpoint::Unix(path));
        std::thread::spawn(move || shipper.run());
        // The shipper connects once it has a record.
        record(&channel, r#"{"n":0}"#);
        let (_stalled, _) = listener.accept().unwrap();
        let line = format!(r#"{{"pad":"{}"}}"#, "z".repeat(1000));
        for _ in 0..20_000 {
            record(&channel, &line);
        }
        assert!(
            channel.dropped() > 10_000,
            "only {} of 20,000 records dropped",
            channel.dropped()
        );
    }

    /// Records that found the queue full are counted, and the count reaches the parent first
    /// when it listens again.
    #[test]
    fn dropped_records_are_counted_and_reported_when_the_parent_listens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let (channel, shipper) = LogChannel::new(Endpoint::Unix(path.clone()));
        // No shipper running yet: the queue takes QUEUE_RECORDS, the rest are dropped.
        for i in 0..QUEUE_RECORDS + 88 {
            record(&channel, &format!(r#"{{"n":{i}}}"#));
        }
        assert_eq!(channel.dropped(), 88);
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || shipper.run());
        let (stream, _) = listener.accept().unwrap();
        drop(channel);
        let got = lines(stream, QUEUE_RECORDS + 10);
        assert_eq!(got.len(), QUEUE_RECORDS + 1);
        let notice: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(notice["fields"]["dropped"], 88);
        let first: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
        assert_eq!(first["n"], 0);
        let last: serde_json::Value = serde_json::from_str(&got[QUEUE_RECORDS]).unwrap();
        assert_eq!(last["n"], QUEUE_RECORDS - 1);
        thread.join().unwrap();
    }
}
