//! What the coordinator knows of its broker: for `/readyz`'s detail and the metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::OutboxLevel;

/// The broker as this coordinator last saw it.
#[derive(Debug, Default)]
pub struct BrokerStatus {
    /// The broker's address (no credentials), once `--amqp` configured one.
    endpoint: Mutex<Option<String>>,
    /// The relay's connection is up.
    relay_up: AtomicBool,
    /// The intake consumes.
    intake_up: AtomicBool,
    /// Events the broker confirmed.
    published: AtomicU64,
    /// Intake messages by kind and what became of them (`answered`, `dead`, `requeued`).
    intake: Mutex<BTreeMap<(String, String), u64>>,
    /// Dead letters by reason.
    dead: Mutex<BTreeMap<String, u64>>,
    /// The outbox's backlog as last read, and when.
    level: Mutex<Option<(Instant, OutboxLevel)>>,
}

/// How long a reading of the outbox's backlog is shown.
const LEVEL_TTL: Duration = Duration::from_secs(1);

/// The broker's part of `/readyz` (detail only: the broker never makes the coordinator unready).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerReadiness {
    /// The broker's address.
    pub endpoint: String,
    /// The events relay is connected.
    pub relay_connected: bool,
    /// The intake consumes.
    pub intake_connected: bool,
    /// Events waiting in the outbox.
    pub outbox_unsent: u64,
    /// Age of the oldest of them, seconds.
    pub outbox_oldest_secs: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BrokerStatus {
    pub(super) fn configure(&self, endpoint: &str) {
        *lock(&self.endpoint) = Some(endpoint.to_string());
    }

    /// Whether a broker is configured.
    pub fn configured(&self) -> bool {
        lock(&self.endpoint).is_some()
    }

    /// The backlog read less than a second ago, if any.
    pub fn cached_level(&self) -> Option<OutboxLevel> {
        match *lock(&self.level) {
            Some((at, level)) if at.elapsed() < LEVEL_TTL => Some(level),
            _ => None,
        }
    }

    /// Keeps a reading of the backlog.
    pub fn cache_level(&self, level: OutboxLevel) {
        *lock(&self.level) = Some((Instant::now(), level));
    }

    pub(super) fn relay_up(&self, up: bool) {
        self.relay_up.store(up, Ordering::SeqCst);
    }

    pub(super) fn intake_up(&self, up: bool) {
        self.intake_up.store(up, Ordering::SeqCst);
    }

    pub(super) fn published(&self, n: u64) {
        self.published.fetch_add(n, Ordering::SeqCst);
    }

    pub(super) fn intake(&self, kind: &str, fate: &str) {
        *lock(&self.intake)
            .entry((kind.to_string(), fate.to_string()))
            .or_default() += 1;
    }

    pub(super) fn dead(&self, reason: &str) {
        *lock(&self.dead).entry(reason.to_string()).or_default() += 1;
    }

    /// The readiness detail, `None` without a broker.
    pub fn readiness(&self, outbox: OutboxLevel, now: u64) -> Option<BrokerReadiness> {
        let endpoint = lock(&self.endpoint).clone()?;
        Some(BrokerReadiness {
            endpoint,
            relay_connected: self.relay_up.load(Ordering::SeqCst),
            intake_connected: self.intake_up.load(Ordering::SeqCst),
            outbox_unsent: outbox.unsent,
            outbox_oldest_secs: match outbox.unsent {
                0 => 0,
                _ => now.saturating_sub(outbox.oldest),
            },
        })
    }

    /// The metrics text (nothing without a broker).
    pub fn render(&self, outbox: OutboxLevel, now: u64) -> String {
        let Some(r) = self.readiness(outbox, now) else {
            return String::new();
        };
        let mut out = String::new();
        let gauges = [
            (
                "cohort_broker_relay_connected",
                "Whether the events relay is connected to the broker.",
                u64::from(r.relay_connected),
            ),
            (
                "cohort_broker_intake_connected",
                "Whether the intake consumes from the broker.",
                u64::from(r.intake_connected),
            ),
            (
                "cohort_outbox_unsent",
                "Events in the outbox the broker has not confirmed.",
                r.outbox_unsent,
            ),
            (
                "cohort_outbox_oldest_unsent_seconds",
                "Age of the oldest event the broker has not confirmed.",
                r.outbox_oldest_secs,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP cohort_events_published_total Events the broker confirmed.\n\
             # TYPE cohort_events_published_total counter\n\
             cohort_events_published_total {}",
            self.published.load(Ordering::SeqCst)
        );
        out.push_str(
            "# HELP cohort_intake_messages_total Intake messages by kind and fate.\n\
             # TYPE cohort_intake_messages_total counter\n",
        );
        for ((kind, fate), n) in lock(&self.intake).iter() {
            let _ = writeln!(
                out,
                "cohort_intake_messages_total{{kind=\"{kind}\",fate=\"{fate}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP cohort_intake_dead_letters_total Intake messages dead-lettered, by reason.\n\
             # TYPE cohort_intake_dead_letters_total counter\n",
        );
        for (reason, n) in lock(&self.dead).iter() {
            let _ = writeln!(
                out,
                "cohort_intake_dead_letters_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_shown_without_a_broker_and_counts_are_shown_with_one() {
        let s = BrokerStatus::default();
        assert!(s.render(OutboxLevel::default(), 10).is_empty());
        assert!(s.readiness(OutboxLevel::default(), 10).is_none());
        s.configure("amqp://h:5672");
        s.dead("unknown_kind");
        s.intake("sign", "dead");
        s.published(3);
        let level = OutboxLevel {
            unsent: 2,
            oldest: 4,
        };
        let text = s.render(level, 10);
        for needle in [
            "cohort_outbox_unsent 2",
            "cohort_outbox_oldest_unsent_seconds 6",
            "cohort_events_published_total 3",
            "cohort_broker_relay_connected 0",
            "cohort_intake_dead_letters_total{reason=\"unknown_kind\"} 1",
            "cohort_intake_messages_total{kind=\"sign\",fate=\"dead\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
