//! Keys found by themselves (issue 13), end to end: valwatch runs in
//! process against a simulated beacon node, with no validator named in its
//! configuration, only a `[[sources]]` keymanager and a Web3Signer, both
//! played by a real HTTP stub serving the two standard routes in the
//! specifications' shapes (the keymanager one checks the bearer token).
//!
//! What must hold: the stub's keys get verdicts stored and nobody else's;
//! a key removed from the stub stops being judged within a couple of
//! epochs; a key not on chain is no error; labels reach `/status`; the
//! token never does; a stub that stops answering keeps its keys watched
//! and `/status` says it is down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use valwatch::config::sources::RawSource;
use valwatch::config::{validate, Overrides, RawConfig};
use valwatch::sim::chain::pubkey_of;
use valwatch::sim::{NodeOptions, Scenario, SimNode};
use valwatch::store::{ReportQuery, Store};

/// Short slots keep the test near half a minute; 8 slots per epoch.
const SLOT_MS: u64 = 300;
const TOKEN: &str = "api-token-0x5ecret5ecret";

#[derive(Clone, Default)]
struct Stub {
    /// Validator indices whose (simulated) keys the keymanager lists.
    keymanager: Arc<Mutex<Vec<u64>>>,
    /// Extra keys the keymanager lists (not on chain).
    pending: Arc<Mutex<Vec<String>>>,
    signer: Arc<Mutex<Vec<u64>>>,
    down: Arc<AtomicBool>,
    authorized: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn start_stub(stub: Stub) -> std::net::SocketAddr {
    let km = stub.clone();
    let ws = stub.clone();
    let app = axum::Router::new()
        .route(
            "/eth/v1/keystores",
            get(move |headers: HeaderMap| {
                let s = km.clone();
                async move {
                    if s.down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if auth != format!("Bearer {TOKEN}") {
                        s.refused.fetch_add(1, Ordering::SeqCst);
                        return (StatusCode::UNAUTHORIZED, r#"{"message":"bad token"}"#)
                            .into_response();
                    }
                    s.authorized.fetch_add(1, Ordering::SeqCst);
                    // keymanager-APIs ListKeys: {"data":[{validating_pubkey,
                    // derivation_path, readonly}]}
                    let mut data: Vec<serde_json::Value> = s
                        .keymanager
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|&v| {
                            serde_json::json!({
                                "validating_pubkey": pubkey_of(v).to_hex(),
                                "derivation_path": format!("m/12381/3600/{v}/0/0"),
                                "readonly": false,
                            })
                        })
                        .collect();
                    for k in s.pending.lock().unwrap().iter() {
                        data.push(serde_json::json!({ "validating_pubkey": k }));
                    }
                    axum::Json(serde_json::json!({ "data": data })).into_response()
                }
            }),
        )
        .route(
            "/api/v1/eth2/publicKeys",
            get(move || {
                let s = ws.clone();
                async move {
                    // Web3Signer: a plain array of 0x keys.
                    let keys: Vec<String> = s
                        .signer
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|&v| pubkey_of(v).to_hex())
                        .collect();
                    axum::Json(keys)
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn wait_for<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Epochs with a stored attestation verdict, per validator.
async fn judged(url: &str) -> BTreeMap<u64, Vec<u64>> {
    let Ok(store) = Store::open_read_only(url).await else {
        return BTreeMap::new();
    };
    let report = store.report(&ReportQuery::default()).await.unwrap();
    store.close().await;
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for a in report.attestations {
        out.entry(a.validator_index.0).or_default().push(a.epoch.0);
    }
    for epochs in out.values_mut() {
        epochs.sort_unstable();
    }
    out
}

async fn cursor(url: &str) -> Option<u64> {
    let store = Store::open_read_only(url).await.ok()?;
    let c = store.cursor().await.ok().flatten().map(|e| e.0);
    store.close().await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_listed_by_a_keymanager_are_watched_and_dropped_when_removed() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let scenario = Scenario {
        seed: 13,
        validators: 64,
        slots_per_epoch: 8,
        slot_duration_ms: SLOT_MS,
        genesis_time: now.as_secs(),
        ..Scenario::default()
    };
    let node = SimNode::start(scenario, NodeOptions::default())
        .await
        .unwrap();
    let stub = Stub::default();
    *stub.keymanager.lock().unwrap() = vec![3, 5];
    // A deposit not yet on chain: logged, not an error, not watched.
    *stub.pending.lock().unwrap() = vec![pubkey_of(1000).to_hex()];
    *stub.signer.lock().unwrap() = vec![9];
    let stub_addr = start_stub(stub.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("api-token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let labels_file = dir.path().join("labels.csv");
    std::fs::write(
        &labels_file,
        format!(
            "# who, labels\n3,eu,lighthouse\n{},signer\n",
            pubkey_of(9).to_hex()
        ),
    )
    .unwrap();
    let listen = common::free_addr();
    let raw = RawConfig {
        sources: vec![
            RawSource {
                name: Some("vc1".into()),
                kind: Some("keymanager".into()),
                url: Some(format!("http://{stub_addr}")),
                token_file: Some("api-token.txt".into()),
                timeout: Some("2s".into()),
                ..RawSource::default()
            },
            RawSource {
                name: Some("signer".into()),
                kind: Some("web3signer".into()),
                url: Some(format!("http://{stub_addr}/")),
                group: Some("remote".into()),
                ..RawSource::default()
            },
        ],
        labels_file: Some("labels.csv".into()),
        ..RawConfig::default()
    };
    let db_url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let over = Overrides {
        beacon_nodes: vec![node.base_url()],
        validators: None,
        database_url: Some(db_url.clone()),
        listen: Some(listen.to_string()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = validate(raw, &over, dir.path()).unwrap();
    assert!(config.groups.is_empty(), "no validator is named by hand");
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(valwatch::app::run_with(config, None, cancel.clone()));
    let epoch = Duration::from_millis(SLOT_MS * 8);

    // The stub's keys are judged.
    wait_for("final verdicts for 3, 5 and 9", epoch * 12, async || {
        let c = cursor(&db_url).await?;
        let j = judged(&db_url).await;
        [3, 5, 9]
            .iter()
            .all(|v| j.get(v).is_some_and(|e| e[0] <= c))
            .then_some(())
    })
    .await;

    let status: serde_json::Value = reqwest::get(format!("http://{listen}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = status.to_string();
    assert!(
        !text.contains("5ecret"),
        "the token reached /status: {text}"
    );
    let shown: BTreeMap<u64, (String, serde_json::Value)> = status["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["index"].as_u64().unwrap(),
                (
                    v["group"].as_str().unwrap().to_string(),
                    v["labels"].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(
        shown.keys().copied().collect::<Vec<_>>(),
        vec![3, 5, 9],
        "{text}"
    );
    assert_eq!(shown[&3].0, "vc1");
    assert_eq!(shown[&3].1, serde_json::json!(["eu", "lighthouse"]));
    assert_eq!(shown[&5].1, serde_json::Value::Null, "no labels: no key");
    assert_eq!(shown[&9].0, "remote");
    assert_eq!(shown[&9].1, serde_json::json!(["signer"]));
    let sources = status["sources"].as_array().expect("sources in /status");
    assert_eq!(sources.len(), 2, "{text}");
    assert_eq!(sources[0]["name"], "vc1");
    assert_eq!(sources[0]["keys"], 3, "the pending key is listed: {text}");
    assert_eq!(sources[0]["up"], true);
    assert_eq!(sources[1]["keys"], 1);

    // Remove 5 from the keymanager: judged no more within a few epochs.
    let removed_after = cursor(&db_url).await.expect("a cursor once verdicts exist");
    stub.keymanager.lock().unwrap().retain(|&v| v != 5);
    // The wall clock's epoch at the removal (genesis is on a whole second).
    let wall_at_removal = (SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - now.as_secs() * 1000)
        / (SLOT_MS * 8);
    wait_for("six more epochs judged", epoch * 14, async || {
        cursor(&db_url)
            .await
            .filter(|c| *c >= removed_after + 6)
            .map(|_| ())
    })
    .await;

    // The keymanager stops answering: its keys stay watched, /status says so.
    let before_outage = cursor(&db_url).await.unwrap();
    stub.down.store(true, Ordering::SeqCst);
    let status = wait_for("the source shown down", epoch * 4, async || {
        let s: serde_json::Value = reqwest::get(format!("http://{listen}/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (s["sources"][0]["up"] == false).then_some(s)
    })
    .await;
    // 3 and the pending key, as last listed (5 was removed before).
    assert_eq!(
        status["sources"][0]["keys"], 2,
        "last known keys kept: {status}"
    );
    assert!(
        status["sources"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{status}"
    );
    wait_for(
        "three epochs judged while the source is down",
        epoch * 8,
        async || {
            cursor(&db_url)
                .await
                .filter(|c| *c >= before_outage + 3)
                .map(|_| ())
        },
    )
    .await;
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    let j = judged(&db_url).await;
    let last = cursor(&db_url).await.unwrap();
    assert_eq!(
        j.keys().copied().collect::<Vec<_>>(),
        vec![3, 5, 9],
        "only the sources' keys are judged"
    );
    // The change is read at the next epoch at the latest; no pass after
    // that judges 5 (a provisional pass judges the wall clock's epoch).
    let last_of_5 = *j[&5].last().unwrap();
    assert!(
        last_of_5 <= wall_at_removal + 1,
        "5 removed in wall epoch {wall_at_removal} but judged until {last_of_5}: {:?}",
        j[&5]
    );
    assert!(
        last >= removed_after + 6 && last > wall_at_removal + 2,
        "the test judged too little after the removal"
    );
    // The others go on, through the source's outage too.
    for v in [3, 9] {
        let finals: Vec<u64> = j[&v].iter().copied().filter(|e| *e <= last).collect();
        let epochs: Vec<u64> = (finals[0]..=last).collect();
        assert_eq!(finals, epochs, "{v} has gaps");
    }
    assert_eq!(
        stub.refused.load(Ordering::SeqCst),
        0,
        "the bearer token was wrong"
    );
    let asked = stub.authorized.load(Ordering::SeqCst);
    assert!(
        asked >= 6,
        "the keymanager was read {asked} times: not once an epoch"
    );
    assert!(
        (asked as u64) <= last + 6,
        "the keymanager was read {asked} times in {last} epochs: more than once an epoch"
    );
}
