//! Prometheus metrics in the text exposition format: latency histograms per operation, failures
//! by operation and code, HTTP answers by route and status. Pool levels and node health are
//! gauges read at scrape time. Labels carry key ids, node indices and codes — never secrets.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram buckets, seconds: from 0.5 ms to a minute.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    60.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The coordinator's counters and histograms.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    durations: BTreeMap<String, Histogram>,
    failures: BTreeMap<(String, String), u64>,
    http: BTreeMap<(String, u16), u64>,
    failovers: u64,
}

/// Gauges read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (key, path, quorum, ready).
    pub pools: Vec<(String, String, String, u32)>,
    /// Each node as the health check last saw it.
    pub nodes: Vec<NodeGauge>,
    /// Signing requests in flight.
    pub live_requests: usize,
}

/// A 0/1 gauge per node: its name, help text and what it reads.
type NodeFlag = (&'static str, &'static str, fn(&NodeGauge) -> bool);

/// One node's gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeGauge {
    /// Node index.
    pub node: u16,
    /// Answered its last status call.
    pub up: bool,
    /// Its last attestation verified.
    pub attested: bool,
    /// Eligible for quorums.
    pub healthy: bool,
    /// Its enclave's clock minus the coordinator's, seconds, at its last health check.
    pub clock_skew_secs: Option<i64>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how long one `operation` took.
    pub fn observe(&self, operation: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut inner = self.lock();
        let h = inner.durations.entry(operation.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts a failure of `operation` with `code`.
    pub fn failure(&self, operation: &str, code: &str) {
        *self
            .lock()
            .failures
            .entry((operation.to_string(), code.to_string()))
            .or_default() += 1;
    }

    /// Counts an HTTP answer.
    pub fn http(&self, route: &str, status: u16) {
        *self
            .lock()
            .http
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// Counts a retry with another quorum.
    pub fn failover(&self) {
        self.lock().failovers += 1;
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP cohort_operation_duration_seconds Time to complete an operation.\n");
        out.push_str("# TYPE cohort_operation_duration_seconds histogram\n");
        for (op, h) in &inner.durations {
            let op = escape(op);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "cohort_operation_duration_seconds_bucket{{operation=\"{op}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "cohort_operation_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "cohort_operation_duration_seconds_sum{{operation=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "cohort_operation_duration_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP cohort_operation_failures_total Failed operations by code.\n");
        out.push_str("# TYPE cohort_operation_failures_total counter\n");
        for ((op, code), n) in &inner.failures {
            let _ = writeln!(
                out,
                "cohort_operation_failures_total{{operation=\"{}\",code=\"{}\"}} {n}",
                escape(op),
                escape(code)
            );
        }
        out.push_str("# HELP cohort_http_responses_total HTTP answers by route and status.\n");
        out.push_str("# TYPE cohort_http_responses_total counter\n");
        for ((route, status), n) in &inner.http {
            let _ = writeln!(
                out,
                "cohort_http_responses_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP cohort_failovers_total Sessions retried with another quorum.\n");
        out.push_str("# TYPE cohort_failovers_total counter\n");
        let _ = writeln!(out, "cohort_failovers_total {}", inner.failovers);
        out.push_str(
            "# HELP cohort_presignatures_ready Ready presignatures per key, path and quorum.\n",
        );
        out.push_str("# TYPE cohort_presignatures_ready gauge\n");
        for (key, path, quorum, n) in &gauges.pools {
            let _ = writeln!(
                out,
                "cohort_presignatures_ready{{key=\"{}\",path=\"{}\",quorum=\"{}\"}} {n}",
                escape(key),
                escape(path),
                escape(quorum)
            );
        }
        let flags: [NodeFlag; 3] = [
            (
                "cohort_node_up",
                "Whether the node answered its last status call.",
                |g| g.up,
            ),
            (
                "cohort_node_attested",
                "Whether the node's last attestation verified.",
                |g| g.attested,
            ),
            (
                "cohort_node_healthy",
                "Whether the node is eligible for quorums.",
                |g| g.healthy,
            ),
        ];
        for (name, help, flag) in flags {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for g in &gauges.nodes {
                let _ = writeln!(out, "{name}{{node=\"{}\"}} {}", g.node, u8::from(flag(g)));
            }
        }
        out.push_str(
            "# HELP cohort_node_clock_skew_seconds How far the node's enclave clock is from the \
             coordinator's, either way (its documents, requests and receipts are checked against \
             it).\n",
        );
        out.push_str("# TYPE cohort_node_clock_skew_seconds gauge\n");
        for g in &gauges.nodes {
            if let Some(skew) = g.clock_skew_secs {
                let _ = writeln!(
                    out,
                    "cohort_node_clock_skew_seconds{{node=\"{}\"}} {}",
                    g.node,
                    skew.unsigned_abs()
                );
            }
        }
        out.push_str("# HELP cohort_live_requests Signing requests in flight.\n");
        out.push_str("# TYPE cohort_live_requests gauge\n");
        let _ = writeln!(out, "cohort_live_requests {}", gauges.live_requests);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe("sign", Duration::from_micros(700));
        m.observe("sign", Duration::from_millis(9));
        m.failure("sign", "no_quorum");
        let text = m.render(&Gauges::default());
        assert!(text.contains(
            "cohort_operation_duration_seconds_bucket{operation=\"sign\",le=\"0.001\"} 1"
        ));
        assert!(!text.contains("cohort_node_clock_skew_seconds{"));
        assert!(text.contains(
            "cohort_operation_duration_seconds_bucket{operation=\"sign\",le=\"0.01\"} 2"
        ));
        assert!(text.contains("cohort_operation_duration_seconds_count{operation=\"sign\"} 2"));
        assert!(
            text.contains(
                "cohort_operation_failures_total{operation=\"sign\",code=\"no_quorum\"} 1"
            )
        );
    }

    #[test]
    fn node_gauges_by_node_and_clock_skew_either_way() {
        let text = Metrics::default().render(&Gauges {
            nodes: vec![
                NodeGauge {
                    node: 0,
                    up: true,
                    attested: true,
                    healthy: true,
                    clock_skew_secs: Some(-400),
                },
                NodeGauge {
                    node: 1,
                    up: false,
                    ..NodeGauge::default()
                },
            ],
            ..Gauges::default()
        });
        for needle in [
            "cohort_node_up{node=\"0\"} 1",
            "cohort_node_healthy{node=\"1\"} 0",
            "cohort_node_clock_skew_seconds{node=\"0\"} 400",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        // A node whose clock was never read has no skew, not a zero one.
        assert!(!text.contains("cohort_node_clock_skew_seconds{node=\"1\"}"));
    }
}
