//! The heartbeat (dead-man's switch) and the processing-lag gauge, through
//! a real outage: valwatch runs against a live simulated node, a real HTTP
//! server plays the switch, the node stops answering for several epochs and
//! comes back.
//!
//! What must hold: one POST per epoch judged for good while keeping up,
//! carrying that epoch, in order, never twice; no beat while nothing is judged (so the switch
//! notices); `valwatch_processing_lag_epochs` keeps growing during the
//! outage (so `ValwatchFallingBehind` can fire while every node is down)
//! and falls back once the node returns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::Method;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use valwatch::config::{validate, Overrides, RawConfig, RawHeartbeat};
use valwatch::sim::{Fault, FaultKind, NodeOptions, Scenario, SimNode};

/// Short slots keep the test near half a minute; 8 slots per epoch.
const SLOT_MS: u64 = 300;

#[derive(Clone, Default)]
struct Switch {
    beats: Arc<Mutex<Vec<(Method, serde_json::Value, Instant)>>>,
}

impl Switch {
    fn epochs(&self) -> Vec<u64> {
        self.beats
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b, _)| b["epoch"].as_u64().expect("epoch in the body"))
            .collect()
    }
}

async fn start_switch() -> (Switch, SocketAddr) {
    let s = Switch::default();
    let state = s.clone();
    let app = axum::Router::new().route(
        "/ping/{token}",
        axum::routing::any(move |method: Method, body: Bytes| {
            let state = state.clone();
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                state
                    .beats
                    .lock()
                    .unwrap()
                    .push((method, json, Instant::now()));
                "OK"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (s, addr)
}

async fn wait_for<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_follow_final_epochs_and_stop_while_blind() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let scenario = Scenario {
        seed: 5,
        validators: 64,
        slots_per_epoch: 8,
        slot_duration_ms: SLOT_MS,
        genesis_time: now.as_secs(),
        ..Scenario::default()
    };
    let node = SimNode::start(scenario, NodeOptions::default())
        .await
        .unwrap();
    let (switch, switch_addr) = start_switch().await;
    let listen = common::free_addr();

    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        heartbeat: Some(RawHeartbeat {
            url: Some(format!("http://{switch_addr}/ping/token-123")),
            method: Some("post".into()),
            timeout: Some("2s".into()),
        }),
        ..RawConfig::default()
    };
    let over = Overrides {
        beacon_nodes: vec![node.base_url()],
        validators: Some("0-63".into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some(listen.to_string()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = validate(raw, &over, dir.path()).unwrap();
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(valwatch::app::run_with(config, None, cancel.clone()));
    let http = reqwest::Client::new();
    let metrics = || {
        let http = http.clone();
        async move {
            http.get(format!("http://{listen}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()
        }
    };

    // Running: beats arrive, one per final epoch.
    let epoch = Duration::from_millis(SLOT_MS * 8);
    wait_for("three heartbeats", epoch * 8, async || {
        (switch.epochs().len() >= 3).then_some(())
    })
    .await;
    let text = metrics().await.expect("metrics while running");
    let lag_running = common::gauge(&text, "valwatch_processing_lag_epochs").unwrap();
    assert!(lag_running <= 3, "lag while healthy: {lag_running}");

    // The node goes away: no epoch can be judged.
    node.set_faults(vec![Fault::always(FaultKind::Refuse)]);
    let outage_start = Instant::now();
    // Let a beat already in flight or an epoch mid-judgement land.
    tokio::time::sleep(epoch).await;
    let before = switch.epochs().len();
    let lag_during = wait_for("the lag to grow past 4 epochs", epoch * 10, async || {
        let text = metrics().await?;
        common::gauge(&text, "valwatch_processing_lag_epochs").filter(|l| *l > 4)
    })
    .await;
    assert_eq!(
        switch.epochs().len(),
        before,
        "heartbeats went on while no node answered: {:?}",
        switch.epochs()
    );
    let outage = outage_start.elapsed();

    // Back: beats resume and the lag falls.
    node.set_faults(Vec::new());
    wait_for("heartbeats after the outage", epoch * 10, async || {
        (switch.epochs().len() > before + 2).then_some(())
    })
    .await;
    let lag_after = wait_for("the lag to fall back", epoch * 10, async || {
        let text = metrics().await?;
        common::gauge(&text, "valwatch_processing_lag_epochs").filter(|l| *l <= 3)
    })
    .await;
    let text = metrics().await.unwrap();
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    let epochs = switch.epochs();
    // In order and never twice. While catching up after the outage several
    // epochs are judged within one call's round trip: those beats may be
    // skipped (counted as such), never queued up.
    for w in epochs.windows(2) {
        assert!(w[1] > w[0], "beats repeat or go back: {epochs:?}");
    }
    let before_outage = &epochs[..before];
    for w in before_outage.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a beat was lost while healthy: {epochs:?}");
    }
    assert!(switch
        .beats
        .lock()
        .unwrap()
        .iter()
        .all(|(m, _, _)| *m == Method::POST));
    let sent = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"valwatch_heartbeats_total{outcome="sent"} "#))
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert!(
        sent >= epochs.len() - 1 && sent <= epochs.len(),
        "sent {sent} of {epochs:?}"
    );
    eprintln!(
        "outage {:.1}s: lag {lag_running} -> {lag_during} -> {lag_after} epochs; {} beats for epochs {:?}",
        outage.as_secs_f64(),
        epochs.len(),
        epochs
    );
}
