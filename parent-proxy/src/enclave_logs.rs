//! The enclave's log records (issue 23; the sending side is `enclave::logship`): the enclave
//! connects to `--enclave-log-listen` (vsock:any:8002 in production) and writes one JSON
//! object per line. Each becomes one line of the proxy's standard output,
//! `{"source":"enclave","record":{...}}`, which the deployment ships with the proxy's own log
//! and counts from (for example `record.fields.event = "kms_failure"`).
//!
//! A line is checked before it is written: at most [`MAX_LINE`] bytes and a JSON object, so a
//! record can never split or forge a line of the proxy's log; anything else is dropped and
//! counted. The records are as trustworthy as the parent: an operator's aid, not evidence.

use std::io::Write;

use host::{Listener, Stream};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tracing::{debug, info, warn};

/// The longest line accepted: the enclave sends records of at most 4 KiB.
pub const MAX_LINE: usize = 8192;

/// What became of one connection's lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Records written out.
    pub records: u64,
    /// Lines dropped: too long, or not a JSON object.
    pub refused: u64,
}

/// Accepts the enclave's log connections for ever, writing their records to standard output.
pub async fn serve(listener: Listener) {
    host::serve::accept_loop(
        &listener,
        std::future::pending(),
        |stream: Stream| async move {
            let relayed = relay(BufReader::new(stream), |line| {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line).and_then(|()| out.flush());
            })
            .await;
            match relayed {
                Ok(r) if r.refused > 0 => {
                    warn!(
                        records = r.records,
                        refused = r.refused,
                        "enclave log connection closed; malformed lines were dropped"
                    )
                }
                Ok(r) => info!(records = r.records, "enclave log connection closed"),
                Err(e) => debug!(error = %e, "enclave log connection failed"),
            }
        },
    )
    .await;
}

/// Reads lines from `stream` until it ends, handing each accepted record to `out` as one line
/// of the proxy's log (newline included).
pub async fn relay(
    mut stream: impl AsyncBufRead + Unpin,
    mut out: impl FnMut(&[u8]),
) -> std::io::Result<Relayed> {
    let mut relayed = Relayed::default();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
        let n = (&mut stream)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(relayed);
        }
        if line.last() != Some(&b'\n') {
            if line.len() <= MAX_LINE {
                // The stream ended inside a line: a record cut off, dropped.
                relayed.refused += 1;
                return Ok(relayed);
            }
            // Too long: skip to the end of this line.
            relayed.refused += 1;
            skip_line(&mut stream).await?;
            continue;
        }
        match serde_json::from_slice::<Map<String, Value>>(&line) {
            Ok(record) => {
                // `source` first, so a reader of the file can tell the enclave's lines at a
                // glance (a JSON object's keys would be sorted).
                let text = format!(
                    "{{\"source\":\"enclave\",\"record\":{}}}\n",
                    Value::Object(record)
                );
                out(text.as_bytes());
                relayed.records += 1;
            }
            Err(_) => relayed.refused += 1,
        }
    }
}

/// Reads up to and including the next newline, keeping nothing.
async fn skip_line(stream: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<()> {
    loop {
        let buffer = stream.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(i) => {
                stream.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = buffer.len();
                stream.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn relayed(input: &[u8]) -> (Relayed, Vec<Value>, Vec<String>) {
        let mut lines = Vec::new();
        let mut raw = Vec::new();
        let r = relay(input, |l| {
            assert_eq!(l.last(), Some(&b'\n'));
            assert_eq!(l.iter().filter(|b| **b == b'\n').count(), 1);
            lines.push(serde_json::from_slice(l).unwrap());
            raw.push(String::from_utf8(l.to_vec()).unwrap());
        })
        .await
        .unwrap();
        (r, lines, raw)
    }

    #[tokio::test]
    async fn records_are_written_as_one_line_each_under_source_enclave() {
        let (r, lines, raw) =
            relayed(b"{\"level\":\"INFO\",\"fields\":{\"message\":\"a\\nb\"}}\n{\"n\":2}\n").await;
        assert_eq!(
            r,
            Relayed {
                records: 2,
                refused: 0
            }
        );
        assert_eq!(lines[0]["source"], "enclave");
        assert!(
            raw[0].starts_with(r#"{"source":"enclave","record":{"#),
            "{}",
            raw[0]
        );
        assert_eq!(lines[0]["record"]["fields"]["message"], "a\nb");
        assert_eq!(lines[1]["record"]["n"], 2);
    }

    /// What a parent or a broken enclave could send to split or forge the proxy's log lines:
    /// text that is not a JSON object, an over-long line, a record cut off at the end.
    #[tokio::test]
    async fn anything_but_a_bounded_json_object_per_line_is_dropped() {
        let mut input = Vec::new();
        input.extend_from_slice(b"not json\n[1,2]\n\"s\"\n");
        input.extend_from_slice(b"{\"n\":1}\n");
        input.extend_from_slice(format!("{{\"pad\":\"{}\"}}\n", "x".repeat(MAX_LINE)).as_bytes());
        input.extend_from_slice(b"{\"n\":2}\n{\"cut\":");
        let (r, lines, _) = relayed(&input).await;
        assert_eq!(
            r,
            Relayed {
                records: 2,
                refused: 5
            }
        );
        assert_eq!(lines[0]["record"]["n"], 1);
        assert_eq!(lines[1]["record"]["n"], 2);
    }
}
