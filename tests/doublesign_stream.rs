//! Double signing end to end: a fake beacon node on 127.0.0.1 serves an
//! event stream with one `attester_slashing` naming a watched validator
//! (and, on every reconnect, the same event again); the follower records
//! it, the engine turns it into exactly one critical `double_signing`
//! notification, delivered to a real webhook receiver.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::Uri;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use valwatch::alerting::Engine;
use valwatch::beacon::events::{follow_events, SeenBlocks, SeenSlashings};
use valwatch::beacon::{NodeConfig, NodeRole};
use valwatch::chain::ValidatorIndex;
use valwatch::config::alerts::{validate, RawAlerts};
use valwatch::status::GroupSpec;
use valwatch::store::Store;

/// One attester slashing: validators 3 and 5 are in both attestations, 7 in
/// only one; the target epoch is 2.
const SLASHING: &str = r#"{"attestation_1":{"attesting_indices":["3","5","7"],"data":{"slot":"17","index":"0","beacon_block_root":"0x01","source":{"epoch":"1","root":"0x02"},"target":{"epoch":"2","root":"0x03"}},"signature":"0x"},"attestation_2":{"attesting_indices":["3","5"],"data":{"slot":"17","index":"0","beacon_block_root":"0x04","source":{"epoch":"1","root":"0x02"},"target":{"epoch":"2","root":"0x05"}},"signature":"0x"}}"#;

async fn fake_node(topics: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/eth/v1/events",
        axum::routing::get(move |uri: Uri| {
            let topics = topics.clone();
            async move {
                topics
                    .lock()
                    .unwrap()
                    .push(uri.query().unwrap_or_default().to_string());
                (
                    [("content-type", "text/event-stream")],
                    format!(": hello\n\nevent: attester_slashing\ndata: {SLASHING}\n\n"),
                )
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn webhook() -> (Arc<Mutex<Vec<serde_json::Value>>>, std::net::SocketAddr) {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let h = h.clone();
        async move {
            h.lock()
                .unwrap()
                .push(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
            "ok"
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hits, addr)
}

#[tokio::test]
async fn a_streamed_attester_slashing_is_one_critical_double_signing_alert() {
    let topics = Arc::new(Mutex::new(Vec::new()));
    let node = fake_node(topics.clone()).await;
    let (hits, hook) = webhook().await;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("v.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let raw: RawAlerts = toml::from_str(&format!(
        "retry_min = \"100ms\"\n[[webhook]]\nname = \"json\"\nurl = \"http://{hook}/hook\"\n"
    ))
    .unwrap();
    let mut problems = Vec::new();
    let cfg = validate(raw, &|_| None, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    // Validator 5 is watched; 3 is slashed too but nobody watches it.
    let groups = vec![GroupSpec {
        name: "ops".into(),
        validators: vec![ValidatorIndex(5), ValidatorIndex(6)],
    }];
    let engine = Arc::new(
        Engine::start(
            store,
            cfg,
            &groups,
            Duration::from_secs(384),
            SystemTime::now(),
        )
        .await
        .unwrap(),
    );
    let cancel = CancellationToken::new();
    let outbox = tokio::spawn(engine.clone().run_outbox(cancel.clone()));

    let seen = Arc::new(SeenBlocks::default());
    let slashings = Arc::new(SeenSlashings::default());
    let config = NodeConfig {
        name: "fake".into(),
        url: format!("http://{node}").parse().unwrap(),
        role: NodeRole::Private,
        headers: Vec::new(),
        timeout: Duration::from_secs(2),
        max_requests_per_second: None,
    };
    let follower = tokio::spawn(follow_events(
        config,
        seen,
        Some((slashings.clone(), 8)),
        cancel.clone(),
    ));

    // Play the monitor's rounds: take what the stream found, pass it on.
    // The node closes the stream after the event, so the follower
    // reconnects and receives the same slashing again: still one alert.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut found = Vec::new();
    while topics.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the follower did not reconnect");
        let batch = slashings.take();
        engine
            .on_double_sign(&batch, SystemTime::now())
            .await
            .unwrap();
        found.extend(batch);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batch = slashings.take();
    engine
        .on_double_sign(&batch, SystemTime::now())
        .await
        .unwrap();
    found.extend(batch);
    assert!(
        found.iter().any(|e| e.validator_index == ValidatorIndex(5)),
        "{found:?}"
    );
    assert_eq!(
        topics.lock().unwrap()[0],
        "topics=block%2Cattester_slashing%2Cproposer_slashing"
    );

    while hits.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no notification arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let m = &hits[0];
    assert_eq!(m["rule"], "double_signing");
    assert_eq!(m["severity"], "critical");
    assert_eq!(m["kind"], "event");
    assert_eq!(m["validators"], serde_json::json!([5]));
    assert_eq!(m["epoch"], 2);
    assert!(
        m["summary"].as_str().unwrap().contains("attester slashing"),
        "{m}"
    );

    cancel.cancel();
    follower.await.unwrap();
    outbox.await.unwrap().unwrap();
}
