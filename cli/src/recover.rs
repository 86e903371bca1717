//! Rebuilding a lost coordinator database's key records (issue 20, disaster recovery;
//! operator guide 7b): the archive (`cohort key list` as it was) posted in turns to
//! `POST /v1/recover`, and every key restored with receipts checked here against the pinned
//! genesis, as every client checks it, with the committed roster changes recorded again.

use coordinator::api::{KeyInfo, KeyList, MAX_RECOVER_KEYS, RecoverReport, RecoverRequest};
use coordinator::client::ApiClient;

use crate::trust::Trust;

/// Posts `archive` in turns of at most [`MAX_RECOVER_KEYS`] keys; then, with
/// `without_receipts`, names the keys still refused for want of a record (`no_archive`, and
/// only those: a record refused as tampered or stale is never bypassed) to be restored
/// without receipts; merges the answers, and checks every key restored with receipts against
/// `trust`. Clients refuse keys restored without receipts until a record that checks is
/// posted.
pub async fn recover(
    api: &ApiClient,
    trust: &Trust,
    archive: &KeyList,
    without_receipts: bool,
) -> anyhow::Result<RecoverReport> {
    let mut merged: Option<RecoverReport> = None;
    let chunks: Vec<&[KeyInfo]> = if archive.keys.is_empty() {
        vec![archive.keys.as_slice()]
    } else {
        archive.keys.chunks(MAX_RECOVER_KEYS).collect()
    };
    for chunk in chunks {
        let body = RecoverRequest {
            keys: chunk.to_vec(),
            without_receipts: Vec::new(),
        };
        merged = Some(merge(merged, post(api, &body).await?));
    }
    if without_receipts {
        let missing: Vec<String> = merged
            .iter()
            .flat_map(|m| &m.not_restored)
            .filter(|n| n.reason.starts_with("no_archive"))
            .map(|n| n.key_id.clone())
            .collect();
        for ids in missing.chunks(MAX_RECOVER_KEYS) {
            let body = RecoverRequest {
                keys: Vec::new(),
                without_receipts: ids.to_vec(),
            };
            merged = Some(merge(merged, post(api, &body).await?));
        }
    }
    let report = merged.ok_or_else(|| anyhow::anyhow!("no answer from the coordinator"))?;
    // The committed roster changes it recorded again, checked as every client checks them from
    // the pinned genesis (issue 20): the roster it follows is the one the admins approved.
    let (_, status, _) = crate::roster::fetch(api, trust).await.map_err(|e| {
        anyhow::anyhow!("the roster the coordinator follows after the recovery: {e:#}")
    })?;
    if status.version != report.roster {
        anyhow::bail!(
            "the coordinator follows roster version {}, the nodes reported version {}",
            status.version,
            report.roster
        );
    }
    for key_id in &report.restored {
        trust.fetch_key(api, key_id).await?;
    }
    Ok(report)
}

async fn post(api: &ApiClient, body: &RecoverRequest) -> anyhow::Result<RecoverReport> {
    api.post("/v1/recover", body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The answers so far with the next one: each turn sees every key the nodes hold, so a key
/// restored by an earlier turn is `already_stored` in a later one, and a key refused for want
/// of its record (`no_archive`) may be restored by a later turn; any other refusal stands.
fn merge(merged: Option<RecoverReport>, report: RecoverReport) -> RecoverReport {
    let Some(mut m) = merged else {
        return report;
    };
    m.restored.extend(report.restored);
    m.restored_without_receipts
        .extend(report.restored_without_receipts);
    m.not_restored.retain(|n| {
        !n.reason.starts_with("no_archive")
            || report.not_restored.iter().any(|r| r.key_id == n.key_id)
    });
    for n in report.not_restored {
        if !m.not_restored.iter().any(|x| x.key_id == n.key_id) {
            m.not_restored.push(n);
        }
    }
    m
}
