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

use crate::chain::{Root, Slot};

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
    url.query_pairs_mut().append_pair("topics", "block");
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
                    record_event(&seen, &event, &data);
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
