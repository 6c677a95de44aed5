//! The node's event stream (`GET /eth/v1/events`, server-sent events),
//! used for what polling cannot see: blocks that were imported and never
//! became (or stopped being) canonical. A proposal whose block lost a reorg
//! is "orphaned", not "missed"; the stream is often the only witness.
//!
//! Events can be lost silently (beacon-api.md §1.9), so nothing depends on
//! the stream alone: polling stays the source of truth, the stream only adds
//! evidence. Every disconnect is retried with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::analysis::doublesign::{DoubleSignEvidence, DoubleSignKind};
use crate::chain::{Epoch, Root, Slot, ValidatorIndex};

use super::{redact_url, NodeConfig};

/// Backoff between reconnects: from one second, doubling up to half a
/// minute, so a restarting node is picked up quickly and a dead one costs
/// two requests a minute.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Blocks announced by any node's stream, by slot.
#[derive(Debug, Default)]
pub struct SeenBlocks {
    inner: Mutex<BTreeMap<Slot, BTreeSet<Root>>>,
}

impl SeenBlocks {
    pub fn insert(&self, slot: Slot, root: Root) {
        self.lock().entry(slot).or_default().insert(root);
    }

    /// Roots announced for slots in `[from, to]`.
    pub fn in_range(&self, from: Slot, to: Slot) -> Vec<(Slot, Root)> {
        if from > to {
            return Vec::new();
        }
        self.lock()
            .range(from..=to)
            .flat_map(|(s, roots)| roots.iter().map(move |r| (*s, *r)))
            .collect()
    }

    pub fn prune_below(&self, slot: Slot) {
        let mut m = self.lock();
        *m = m.split_off(&slot);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Slot, BTreeSet<Root>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Slashing operations announced by any node's stream (gossip or pool,
/// before any block carries them), as evidence against the validators they
/// name. The monitor takes what is new each round.
#[derive(Debug, Default)]
pub struct SeenSlashings {
    inner: Mutex<Vec<DoubleSignEvidence>>,
}

impl SeenSlashings {
    /// Adds evidence unless the same (validator, kind, epoch) is held.
    pub fn insert(&self, e: DoubleSignEvidence) {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !v.iter().any(|o| o.key() == e.key()) {
            v.push(e);
        }
    }

    /// Everything held, emptying the set.
    pub fn take(&self) -> Vec<DoubleSignEvidence> {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A quoted integer at `path` in a JSON value (the Beacon API quotes u64s).
fn quoted(v: &serde_json::Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()?.parse().ok()
}

fn indices(v: &serde_json::Value) -> Option<Vec<u64>> {
    v.get("attesting_indices")?
        .as_array()?
        .iter()
        .map(|x| x.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Evidence from an `attester_slashing` or `proposer_slashing` event: the
/// validators in both attestations' `attesting_indices` (who is slashed by
/// `process_attester_slashing`), or `signed_header_1.message.proposer_index`.
/// Anything malformed gives nothing.
pub fn parse_slashing(
    spec_epoch_of: impl Fn(Slot) -> Epoch,
    event: &str,
    data: &str,
) -> Vec<DoubleSignEvidence> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
        return Vec::new();
    };
    match event {
        "attester_slashing" => {
            let (Some(a1), Some(a2)) = (v.get("attestation_1"), v.get("attestation_2")) else {
                return Vec::new();
            };
            let (Some(i1), Some(i2)) = (indices(a1), indices(a2)) else {
                return Vec::new();
            };
            let (Some(slot), Some(epoch)) = (
                quoted(a1, &["data", "slot"]),
                quoted(a1, &["data", "target", "epoch"]),
            ) else {
                return Vec::new();
            };
            let second: BTreeSet<u64> = i2.into_iter().collect();
            let both: BTreeSet<u64> = i1.into_iter().filter(|i| second.contains(i)).collect();
            both.into_iter()
                .map(|i| DoubleSignEvidence {
                    validator_index: ValidatorIndex(i),
                    kind: DoubleSignKind::AttesterSlashing,
                    epoch: Epoch(epoch),
                    slot: Slot(slot),
                    detail: format!(
                        "attester slashing for target epoch {epoch} announced by a node"
                    ),
                })
                .collect()
        }
        "proposer_slashing" => {
            let (Some(p), Some(slot)) = (
                quoted(&v, &["signed_header_1", "message", "proposer_index"]),
                quoted(&v, &["signed_header_1", "message", "slot"]),
            ) else {
                return Vec::new();
            };
            vec![DoubleSignEvidence {
                validator_index: ValidatorIndex(p),
                kind: DoubleSignKind::ProposerSlashing,
                epoch: spec_epoch_of(Slot(slot)),
                slot: Slot(slot),
                detail: format!("proposer slashing for slot {slot} announced by a node"),
            }]
        }
        _ => Vec::new(),
    }
}

#[derive(Deserialize)]
struct BlockEvent {
    slot: String,
    block: String,
}

/// Parses the frames complete in `buf` (SSE: `field: value` lines, frames
/// separated by a blank line), returns `(event, data)` pairs and leaves an
/// incomplete tail in `buf`.
pub fn take_frames(buf: &mut String) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let normalized = buf.replace("\r\n", "\n");
        let Some(end) = normalized.find("\n\n") else {
            *buf = normalized;
            return out;
        };
        let frame = &normalized[..end];
        let (mut event, mut data) = (String::from("message"), String::new());
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.trim_start());
            }
        }
        if !data.is_empty() {
            out.push((event, data));
        }
        *buf = normalized[end + 2..].to_string();
    }
}

/// Records a `block` event's slot and root; anything else is ignored.
pub fn record_event(seen: &SeenBlocks, event: &str, data: &str) -> bool {
    if event != "block" {
        return false;
    }
    let Ok(ev) = serde_json::from_str::<BlockEvent>(data) else {
        return false;
    };
    match (ev.slot.parse::<u64>(), ev.block.parse::<Root>()) {
        (Ok(slot), Ok(root)) => {
            seen.insert(Slot(slot), root);
            true
        }
        _ => false,
    }
}

/// Follows one node's `block` events until cancelled, reconnecting with
/// backoff. Never returns an error: a node without an event stream is just
/// a node that adds no evidence.
pub async fn follow_blocks(
    config: NodeConfig,
    seen: std::sync::Arc<SeenBlocks>,
    cancel: CancellationToken,
) {
    follow_events(config, seen, None, cancel).await
}

/// Like `follow_blocks`, and with `slashings` also follows the
/// `attester_slashing` and `proposer_slashing` topics into it.
/// `slots_per_epoch` turns a proposer slashing's slot into its epoch.
pub async fn follow_events(
    config: NodeConfig,
    seen: std::sync::Arc<SeenBlocks>,
    slashings: Option<(std::sync::Arc<SeenSlashings>, u64)>,
    cancel: CancellationToken,
) {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(mut v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) {
            v.set_sensitive(true);
            headers.insert(n, v);
        }
    }
    // No overall timeout: the stream is meant to stay open.
    let Ok(http) = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(config.timeout)
        .build()
    else {
        return;
    };
    let mut url = config.url.clone();
    let path = format!("{}/eth/v1/events", url.path().trim_end_matches('/'));
    url.set_path(&path);
    let topics = if slashings.is_some() {
        "block,attester_slashing,proposer_slashing"
    } else {
        "block"
    };
    url.query_pairs_mut().append_pair("topics", topics);
    let mut backoff = RECONNECT_MIN;
    loop {
        let attempt = async {
            let resp = http
                .get(url.clone())
                .header("Accept", "text/event-stream")
                .send()
                .await?;
            if !resp.status().is_success() {
                return Ok::<_, reqwest::Error>(false);
            }
            info!(node = %config.name, url = %redact_url(&config.url), "following block events");
            let mut stream = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(chunk) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk?));
                for (event, data) in take_frames(&mut buf) {
                    if !record_event(&seen, &event, &data) {
                        if let Some((set, per_epoch)) = &slashings {
                            let per_epoch = (*per_epoch).max(1);
                            for e in parse_slashing(|s| Epoch(s.0 / per_epoch), &event, &data) {
                                set.insert(e);
                            }
                        }
                    }
                }
                if buf.len() > 1 << 20 {
                    buf.clear(); // a frame this large is not a block event
                }
            }
            Ok(true)
        };
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            r = attempt => r,
        };
        match outcome {
            Ok(true) => backoff = RECONNECT_MIN, // the stream ended after working
            Ok(false) => {}
            Err(e) => debug!(node = %config.name, error = %e, "event stream interrupted"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_on_blank_lines_and_tails_are_kept() {
        let root = format!("0x{}", "ab".repeat(32));
        let mut buf = format!(
            ": keep-alive\n\nevent: block\ndata: {{\"slot\":\"56\",\"block\":\"{root}\"}}\n\nevent: head\r\ndata: {{}}\r\n\r\nevent: blo"
        );
        let frames = take_frames(&mut buf);
        assert_eq!(frames.len(), 2);
        assert_eq!(buf, "event: blo");
        let seen = SeenBlocks::default();
        assert!(record_event(&seen, &frames[0].0, &frames[0].1));
        assert!(!record_event(&seen, &frames[1].0, &frames[1].1));
        assert_eq!(
            seen.in_range(Slot(50), Slot(60)),
            vec![(Slot(56), root.parse().unwrap())]
        );
        seen.prune_below(Slot(57));
        assert!(seen.in_range(Slot(0), Slot(100)).is_empty());
    }

    #[test]
    fn slashing_events_name_the_intersection_or_the_proposer() {
        let att = |idx: &str| {
            format!(
                "{{\"attesting_indices\":[{idx}],\"data\":{{\"slot\":\"17\",\"target\":{{\"epoch\":\"2\"}}}}}}"
            )
        };
        let data = format!(
            "{{\"attestation_1\":{},\"attestation_2\":{}}}",
            att("\"1\",\"2\",\"3\""),
            att("\"3\",\"2\",\"9\"")
        );
        let per8 = |s: Slot| Epoch(s.0 / 8);
        let got = parse_slashing(per8, "attester_slashing", &data);
        let keys: Vec<_> = got
            .iter()
            .map(|e| (e.validator_index.0, e.epoch.0, e.slot.0))
            .collect();
        assert_eq!(keys, vec![(2, 2, 17), (3, 2, 17)]);
        assert!(got
            .iter()
            .all(|e| e.kind == DoubleSignKind::AttesterSlashing));

        let p = r#"{"signed_header_1":{"message":{"slot":"20","proposer_index":"7"}},"signed_header_2":{}}"#;
        let got = parse_slashing(per8, "proposer_slashing", p);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].validator_index.0, got[0].epoch.0, got[0].kind),
            (7, 2, DoubleSignKind::ProposerSlashing)
        );

        for bad in [
            "not json",
            "{}",
            r#"{"attestation_1":{"attesting_indices":[1]}}"#,
            r#"{"signed_header_1":{"message":{"slot":"x","proposer_index":"7"}}}"#,
        ] {
            assert!(
                parse_slashing(per8, "attester_slashing", bad).is_empty(),
                "{bad}"
            );
            assert!(
                parse_slashing(per8, "proposer_slashing", bad).is_empty(),
                "{bad}"
            );
        }
        assert!(parse_slashing(per8, "block", p).is_empty());

        let set = SeenSlashings::default();
        for e in parse_slashing(per8, "attester_slashing", &data)
            .into_iter()
            .chain(parse_slashing(per8, "attester_slashing", &data))
        {
            set.insert(e);
        }
        assert_eq!(set.take().len(), 2);
        assert!(set.take().is_empty());
    }

    #[test]
    fn malformed_block_events_are_ignored() {
        let seen = SeenBlocks::default();
        assert!(!record_event(
            &seen,
            "block",
            "{\"slot\":\"x\",\"block\":\"0x00\"}"
        ));
        assert!(!record_event(&seen, "block", "not json"));
        assert!(seen.in_range(Slot(0), Slot(u64::MAX)).is_empty());
    }
}
