//! The heartbeat: after every epoch judged for good, one call to a
//! dead-man's-switch URL (healthchecks.io, Uptime Kuma push monitors,
//! Cronitor, …). The other side alerts when the calls stop, which is the
//! one failure valwatch cannot report itself: valwatch being dead, stuck,
//! or blind.
//!
//! Transport only: the monitor decides when to beat. A beat never waits
//! for the previous one and never holds up the monitor; while one call is
//! still in flight, the next beat is skipped (and counted as such).
//! The URL may carry the switch's token, so logs show only its origin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{debug, warn};

use crate::chain::Epoch;
use crate::config::{HeartbeatConfig, HeartbeatMethod};
use crate::metrics::Metrics;

pub struct Heartbeat {
    cfg: HeartbeatConfig,
    client: reqwest::Client,
    in_flight: Arc<AtomicBool>,
    metrics: Option<Arc<Metrics>>,
}

impl Heartbeat {
    pub fn new(cfg: HeartbeatConfig, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Heartbeat> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("valwatch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        if let Some(m) = &metrics {
            m.declare_heartbeats();
        }
        Ok(Heartbeat {
            cfg,
            client,
            in_flight: Arc::new(AtomicBool::new(false)),
            metrics,
        })
    }

    /// Says "alive, `epoch` done" in the background.
    pub fn beat(&self, epoch: Epoch) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            debug!(
                epoch = epoch.0,
                "heartbeat still in flight: this one skipped"
            );
            self.count("skipped");
            return;
        }
        let request = match self.cfg.method {
            HeartbeatMethod::Get => self.client.get(self.cfg.url.clone()),
            HeartbeatMethod::Post => self
                .client
                .post(self.cfg.url.clone())
                .json(&serde_json::json!({ "source": "valwatch", "epoch": epoch.0 })),
        };
        let in_flight = self.in_flight.clone();
        let metrics = self.metrics.clone();
        let target = self.cfg.shown_url();
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => "sent",
                Ok(r) => {
                    warn!(target = %target, status = r.status().as_u16(), "heartbeat refused");
                    "failed"
                }
                Err(e) => {
                    // reqwest's error names the URL: print only its kind.
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else {
                        "request failed"
                    };
                    warn!(target = %target, error = kind, "heartbeat not delivered");
                    "failed"
                }
            };
            if let Some(m) = metrics {
                m.record_heartbeat(outcome);
            }
            in_flight.store(false, Ordering::Release);
        });
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.record_heartbeat(outcome);
        }
    }
}
