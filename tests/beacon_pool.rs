//! The pool against real HTTP servers on loopback that misbehave on
//! purpose: failing, hanging, garbage answers, another network, a node that
//! lags behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use valwatch::beacon::{BeaconError, BeaconPool, BlockId, NodeConfig, NodeHealth, NodeRole};
use valwatch::chain::{Root, Slot};

/// How a fake node answers everything but `genesis`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Normal,
    Error500,
    Hang,
    Garbage,
}

/// A fake beacon node with a chain of one block per slot up to `head`.
struct Fake {
    mode: Mutex<Mode>,
    genesis_root: u8,
    head: AtomicU64,
    /// Distinguishes the block roots of nodes that disagree.
    chain_byte: u8,
    requests: AtomicU64,
    api_keys: Mutex<Vec<String>>,
}

impl Fake {
    fn new(genesis_root: u8, head: u64) -> Arc<Fake> {
        Self::on_chain(genesis_root, head, 0xaa)
    }

    fn on_chain(genesis_root: u8, head: u64, chain_byte: u8) -> Arc<Fake> {
        Arc::new(Fake {
            mode: Mutex::new(Mode::Normal),
            genesis_root,
            head: AtomicU64::new(head),
            chain_byte,
            requests: AtomicU64::new(0),
            api_keys: Mutex::default(),
        })
    }

    fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn root_hex(b: u8) -> String {
    format!("0x{}", hex::encode([b; 32]))
}

fn slot_root(chain_byte: u8, slot: u64) -> Root {
    let mut r = [chain_byte; 32];
    r[..8].copy_from_slice(&slot.to_be_bytes());
    Root(r)
}

async fn answer(fake: Arc<Fake>, uri: Uri, headers: HeaderMap) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        fake.api_keys.lock().unwrap().push(k.to_string());
    }
    let path = uri.path();
    let json = |status: StatusCode, v: serde_json::Value| (status, axum::Json(v)).into_response();
    if path == "/eth/v1/beacon/genesis" {
        return json(
            StatusCode::OK,
            serde_json::json!({"data": {
                "genesis_time": "1600000000",
                "genesis_validators_root": root_hex(fake.genesis_root),
                "genesis_fork_version": "0x00000000"
            }}),
        );
    }
    let mode = *fake.mode.lock().unwrap();
    match mode {
        Mode::Normal => {}
        Mode::Error500 => {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"code": 500, "message": "database locked"}),
            )
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Mode::Garbage => return (StatusCode::OK, "{\"data\": [1, 2").into_response(),
    }
    let head = fake.head.load(Ordering::SeqCst);
    if path == "/eth/v1/node/syncing" {
        return json(
            StatusCode::OK,
            serde_json::json!({"data": {
                "head_slot": head.to_string(), "sync_distance": "0",
                "is_syncing": false, "is_optimistic": false, "el_offline": false
            }}),
        );
    }
    if path == "/eth/v1/config/spec" {
        return json(
            StatusCode::OK,
            serde_json::json!({"data": {
                "SECONDS_PER_SLOT": "12", "SLOTS_PER_EPOCH": "32",
                "EPOCHS_PER_SYNC_COMMITTEE_PERIOD": "256", "ALTAIR_FORK_EPOCH": "0",
                "BLOB_SCHEDULE": []
            }}),
        );
    }
    if let Some(slot) = path
        .strip_prefix("/eth/v1/beacon/headers/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        if slot > head {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"statusCode": 404, "error": "Not Found",
                    "message": format!("No block found for id '{slot}'")}),
            );
        }
        let parent = slot_root(fake.chain_byte, slot.saturating_sub(1));
        return json(
            StatusCode::OK,
            serde_json::json!({"execution_optimistic": false, "data": {
                "root": slot_root(fake.chain_byte, slot).to_hex(), "canonical": true,
                "header": {"message": {
                    "slot": slot.to_string(), "proposer_index": "7",
                    "parent_root": parent.to_hex(), "state_root": root_hex(3),
                    "body_root": root_hex(4)
                }, "signature": "0x00"}
            }}),
        );
    }
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"code": 404, "message": "unknown route"}),
    )
}

async fn start(fake: Arc<Fake>) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(move |uri: Uri, headers: HeaderMap| answer(fake.clone(), uri, headers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn config(name: &str, addr: SocketAddr, role: NodeRole) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        url: format!("http://user:hunter2@{addr}/").parse().unwrap(),
        role,
        headers: vec![("X-Api-Key".into(), format!("key-of-{name}"))],
        timeout: Duration::from_millis(300),
        max_requests_per_second: None,
    }
}

async fn two_nodes(a: &Arc<Fake>, b: &Arc<Fake>) -> BeaconPool {
    let a_addr = start(a.clone()).await;
    let b_addr = start(b.clone()).await;
    BeaconPool::new(vec![
        config("a", a_addr, NodeRole::Private),
        config("b", b_addr, NodeRole::Public),
    ])
    .unwrap()
}

/// Asks the pool for the header of `slot` and says which node answered.
async fn who_answers(pool: &BeaconPool, slot: u64) -> Result<String, BeaconError> {
    pool.call("/eth/v1/beacon/headers/{block_id}", |c| async move {
        let h = c.header(BlockId::Slot(Slot(slot))).await?;
        assert!(h.is_some());
        Ok(c.name().to_string())
    })
    .await
}

#[tokio::test]
async fn a_failing_node_fails_over_to_the_next_one() {
    for mode in [Mode::Error500, Mode::Hang, Mode::Garbage] {
        let a = Fake::new(1, 100);
        let b = Fake::new(1, 100);
        let pool = two_nodes(&a, &b).await;
        assert_eq!(
            who_answers(&pool, 50).await.unwrap(),
            "a",
            "private node first"
        );
        a.set_mode(mode);
        let started = Instant::now();
        assert_eq!(who_answers(&pool, 50).await.unwrap(), "b", "{mode:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode:?}: the timeout bounds a hang"
        );
        let report = &pool.reports()[0];
        let err = report.last_error.as_deref().unwrap();
        let want = match mode {
            Mode::Error500 => "database locked",
            Mode::Hang => "timed out",
            Mode::Garbage => "bad response",
            Mode::Normal => unreachable!(),
        };
        assert!(err.contains(want), "{mode:?}: {err}");
        assert!(err.starts_with("a: "), "{err}");
    }
}

#[tokio::test]
async fn when_every_node_fails_the_error_names_each_of_them() {
    let a = Fake::new(1, 100);
    let b = Fake::new(1, 100);
    let pool = two_nodes(&a, &b).await;
    a.set_mode(Mode::Error500);
    b.set_mode(Mode::Garbage);
    let err = who_answers(&pool, 50).await.unwrap_err();
    match &err {
        BeaconError::AllFailed { errors, .. } => {
            assert_eq!(errors.len(), 2);
            assert!(
                matches!(&errors[0], BeaconError::Status { node, status: 500, .. } if node == "a")
            );
            assert!(matches!(&errors[1], BeaconError::Decode { node, .. } if node == "b"));
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains("a: ") && text.contains("b: "), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("key-of"),
        "{text}"
    );
}

#[tokio::test]
async fn a_node_on_another_network_is_marked_and_never_asked() {
    let a = Fake::new(1, 100);
    let b = Fake::new(2, 100);
    let pool = two_nodes(&a, &b).await;
    let spec = pool.identify().await.unwrap();
    assert_eq!(spec.genesis_validators_root, Root([1; 32]));
    assert_eq!(spec.slot_duration_ms, 12_000);
    assert_eq!(pool.health(1), Some(NodeHealth::WrongNetwork));
    let report = &pool.reports()[1];
    assert!(report
        .last_error
        .as_deref()
        .unwrap()
        .contains("genesis_validators_root"));
    assert_eq!(pool.usable_count(), 1);

    // Even with the good node failing, the other network is not asked.
    pool.check_health().await;
    assert_eq!(pool.health(1), Some(NodeHealth::WrongNetwork));
    let asked_before = b.requests();
    a.set_mode(Mode::Error500);
    let err = who_answers(&pool, 50).await.unwrap_err();
    assert!(
        matches!(err, BeaconError::AllFailed { ref errors, .. } if errors.len() == 1),
        "{err}"
    );
    assert_eq!(b.requests(), asked_before);
    assert!(pool
        .roots_at(Slot(50))
        .await
        .iter()
        .all(|(name, _)| name == "a"));
}

#[tokio::test]
async fn the_reference_network_is_the_private_nodes_even_if_listed_second() {
    let public = Fake::new(2, 100);
    let private = Fake::new(1, 100);
    let p_addr = start(public.clone()).await;
    let q_addr = start(private.clone()).await;
    let pool = BeaconPool::new(vec![
        config("public", p_addr, NodeRole::Public),
        config("private", q_addr, NodeRole::Private),
    ])
    .unwrap();
    let spec = pool.identify().await.unwrap();
    assert_eq!(spec.genesis_validators_root, Root([1; 32]));
    assert_eq!(pool.health(0), Some(NodeHealth::WrongNetwork));
    assert_eq!(pool.health(1), Some(NodeHealth::Unknown));
}

#[tokio::test]
async fn identify_fails_with_every_nodes_error_when_none_answers() {
    let a = Fake::new(1, 100);
    let pool = BeaconPool::new(vec![
        config("a", start(a.clone()).await, NodeRole::Private),
        // Nothing listens on port 9 of loopback (discard service, not run).
        config("b", "127.0.0.1:9".parse().unwrap(), NodeRole::Public),
    ])
    .unwrap();
    let spec = pool.identify().await;
    assert!(spec.is_ok(), "one node answering is enough");
    assert_eq!(pool.health(1), Some(NodeHealth::Unreachable));

    let pool = BeaconPool::new(vec![config(
        "b",
        "127.0.0.1:9".parse().unwrap(),
        NodeRole::Public,
    )])
    .unwrap();
    let err = pool.identify().await.unwrap_err();
    assert!(
        matches!(&err, BeaconError::AllFailed { errors, .. } if errors.len() == 1),
        "{err}"
    );
    // Transport errors quote the URL: without the password.
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:9") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_lagging_node_is_ranked_last() {
    let a = Fake::new(1, 100); // private, but 10 slots behind
    let b = Fake::new(1, 110);
    let pool = two_nodes(&a, &b).await;
    let reports = pool.check_health().await;
    assert_eq!(reports[0].health, NodeHealth::Lagging);
    assert_eq!(reports[0].head_slot, Some(100));
    assert_eq!(reports[1].health, NodeHealth::Healthy);
    assert_eq!(pool.ranked(), vec![1, 0]);
    assert_eq!(who_answers(&pool, 50).await.unwrap(), "b");

    // Two slots behind is propagation delay, not lag.
    a.head.store(108, Ordering::SeqCst);
    pool.check_health().await;
    assert_eq!(pool.health(0), Some(NodeHealth::Healthy));
    assert_eq!(who_answers(&pool, 50).await.unwrap(), "a");

    // An unreachable node is asked only when nothing else is left.
    a.set_mode(Mode::Error500);
    pool.check_health().await;
    assert_eq!(pool.health(0), Some(NodeHealth::Unreachable));
    assert_eq!(pool.usable_count(), 1);
    assert_eq!(who_answers(&pool, 50).await.unwrap(), "b");
}

#[tokio::test]
async fn not_found_from_a_node_behind_the_slot_falls_through_to_one_ahead() {
    let a = Fake::new(1, 106); // private, healthy, one slot behind b
    let b = Fake::new(1, 107);
    let pool = two_nodes(&a, &b).await;
    pool.check_health().await;
    assert_eq!(pool.ranked(), vec![0, 1]);

    let header_at = |slot: u64| {
        pool.call_at_slot(
            Slot(slot),
            "/eth/v1/beacon/headers/{block_id}",
            move |c| async move {
                Ok(c.header(BlockId::Slot(Slot(slot)))
                    .await?
                    .map(|h| (c.name().to_string(), h)))
            },
        )
    };
    let (who, header) = header_at(107).await.unwrap().unwrap();
    assert_eq!((who.as_str(), header.slot), ("b", Slot(107)));

    // A node at or past the slot is believed: b is not asked.
    let before = b.requests();
    let a_requests = a.requests();
    assert_eq!(header_at(106).await.unwrap().unwrap().0, "a");
    assert_eq!(b.requests(), before);
    assert_eq!(a.requests(), a_requests + 1);

    // Nobody has it: None, not an error.
    assert_eq!(header_at(200).await.unwrap(), None);
}

#[tokio::test]
async fn roots_at_asks_every_usable_node() {
    let a = Fake::new(1, 100);
    let b = Fake::on_chain(1, 100, 0xbb);
    let pool = two_nodes(&a, &b).await;
    let roots = pool.roots_at(Slot(42)).await;
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0].0, "a");
    assert_eq!(*roots[0].1.as_ref().unwrap(), Some(slot_root(0xaa, 42)));
    assert_eq!(*roots[1].1.as_ref().unwrap(), Some(slot_root(0xbb, 42)));
    let roots = pool.roots_at(Slot(101)).await;
    assert!(roots.iter().all(|(_, r)| matches!(r, Ok(None))));
}

#[tokio::test]
async fn credentials_reach_the_node_but_not_the_reports() {
    let a = Fake::new(1, 100);
    let b = Fake::new(1, 100);
    let pool = two_nodes(&a, &b).await;
    a.set_mode(Mode::Error500);
    let _ = who_answers(&pool, 1).await;
    pool.check_health().await;
    assert!(a.api_keys.lock().unwrap().iter().all(|k| k == "key-of-a"));
    assert!(!a.api_keys.lock().unwrap().is_empty());
    let shown = serde_json::to_string(&pool.reports()).unwrap();
    assert!(
        !shown.contains("hunter2") && !shown.contains("key-of"),
        "{shown}"
    );
    assert!(shown.contains("database locked"), "{shown}");
    let debug = format!("{:?}", pool.nodes[0].config);
    assert!(
        !debug.contains("hunter2") && !debug.contains("key-of"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_rate_limited_node_waits_instead_of_failing() {
    let a = Fake::new(1, 100);
    let addr = start(a.clone()).await;
    let mut cfg = config("a", addr, NodeRole::Public);
    cfg.max_requests_per_second = Some(20.0);
    cfg.timeout = Duration::from_secs(2);
    let pool = BeaconPool::new(vec![cfg]).unwrap();
    let started = Instant::now();
    for slot in 0..5 {
        who_answers(&pool, slot).await.unwrap();
    }
    // Five requests at 20/s: the fifth goes out 200 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    let stats = pool.nodes[0].stats();
    assert_eq!((stats.requests, stats.errors), (5, 0));
}
