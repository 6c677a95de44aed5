//! The pool watch end to end: the real daemon (`app::run_with`, SQLite,
//! alerting with a webhook channel) follows two simulated nodes of a chain
//! in which one validator signs a second, conflicting vote for target
//! epoch 2 that only ever waits in the nodes' attestation pools (no block
//! takes it). Blocks alone show nothing wrong; the pool shows the double
//! vote, which must reach a real HTTP webhook receiver as EXACTLY ONE
//! critical `double_signing` notification naming that validator, although
//! the pool is read again every slot. With the pool routes answering 404
//! the daemon must judge on as usual and page nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use valwatch::sim::{
    Behaviour, BehaviourKind, Fault, FaultKind, Mode, NodeOptions, Scenario, Sim, SimNode,
    ValidatorSet,
};

/// Half-second slots, 8 slots an epoch: the run ends when epoch `UNTIL` is
/// judged for good, two slots after epoch `UNTIL + 1`, about 18 s.
const SLOT_MS: u64 = 500;
const UNTIL: u64 = 2;
const DOUBLE_VOTER: u64 = 9;
const DANGER_EPOCH: u64 = 2;

fn scenario(genesis_time: u64) -> Scenario {
    Scenario {
        seed: 61,
        validators: 64,
        slot_duration_ms: SLOT_MS,
        genesis_time,
        behaviours: vec![Behaviour::new(
            ValidatorSet::one(DOUBLE_VOTER),
            BehaviourKind::PoolDoubleVote {
                epoch: DANGER_EPOCH,
            },
        )],
        ..Scenario::default()
    }
}

async fn webhook() -> (Arc<Mutex<Vec<serde_json::Value>>>, SocketAddr) {
    common::json_webhook().await
}

struct Run {
    chain: Arc<RwLock<Sim>>,
    hits: Vec<serde_json::Value>,
    /// The last epoch the daemon judged for good, from its store.
    cursor: Option<u64>,
}

/// Runs the daemon until epoch `UNTIL` is final against two sim nodes,
/// each with `faults`.
async fn run(faults: Vec<Fault>) -> Run {
    let (hits, hook) = webhook().await;
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let chain = Arc::new(RwLock::new(Sim::new(scenario(genesis)).unwrap()));
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            SimNode::with_chain(
                chain.clone(),
                NodeOptions {
                    mode: Mode::Live {
                        max_epochs: UNTIL + 4,
                    },
                    faults: faults.clone(),
                    ..NodeOptions::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let raw: valwatch::config::RawConfig = toml::from_str(&format!(
        "[alerts]\nretry_min = \"100ms\"\n[[alerts.webhook]]\nname = \"hook\"\nurl = \"http://{hook}/hook\"\n"
    ))
    .unwrap();
    let over = valwatch::config::Overrides {
        beacon_nodes: nodes.iter().map(|n| n.base_url()).collect(),
        validators: Some("0-63".into()),
        database_url: Some(format!("sqlite://{}", db.display())),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = valwatch::config::validate(raw, &over, dir.path()).unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(120),
        valwatch::app::run_with(
            config,
            Some(valwatch::chain::Epoch(UNTIL)),
            CancellationToken::new(),
        ),
    )
    .await;
    for n in nodes {
        n.shutdown().await;
    }
    ran.expect("the daemon did not finish in time")
        .expect("the daemon failed");
    // Give the outbox a moment to flush what it queued last.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let store = valwatch::store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let cursor = store.cursor().await.unwrap().map(|e| e.0);
    let hits = hits.lock().unwrap().clone();
    Run {
        chain,
        hits,
        cursor,
    }
}

fn double_signing(hits: &[serde_json::Value]) -> Vec<(u64, String, u64)> {
    let mut got: Vec<(u64, String, u64)> = hits
        .iter()
        .filter(|m| m["rule"] == "double_signing")
        .map(|m| {
            // Incident ids are `double_signing/<group>/<epoch>/<kind>/<validator>`.
            let id = m["id"].as_str().unwrap_or_default();
            let parts: Vec<&str> = id.split('/').collect();
            assert_eq!(parts.len(), 5, "{m:#}");
            let validators = m["validators"].as_array().unwrap();
            assert_eq!(validators.len(), 1, "{m:#}");
            assert_eq!(m["severity"], "critical", "{m:#}");
            (
                validators[0].as_u64().unwrap(),
                parts[3].to_string(),
                m["epoch"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_vote_seen_only_in_the_pool_is_exactly_one_critical_notification() {
    let r = run(Vec::new()).await;
    // The ground truth: the scenario made exactly this double vote, and no
    // block carries it (the block-only watch would stay silent).
    let truth = r.chain.read().unwrap().truth(0, UNTIL, None).danger;
    let want: Vec<(u64, String, u64)> = truth
        .iter()
        .map(|d| (d.validator_index.0, d.kind.as_str().to_string(), d.epoch.0))
        .collect();
    assert_eq!(
        want,
        vec![(DOUBLE_VOTER, "double_vote".to_string(), DANGER_EPOCH)]
    );
    assert_eq!(double_signing(&r.hits), want, "{:#?}", r.hits);
    let other_critical: Vec<&serde_json::Value> = r
        .hits
        .iter()
        .filter(|m| m["severity"] == "critical" && m["rule"] != "double_signing")
        .collect();
    assert!(other_critical.is_empty(), "{other_critical:#?}");
    assert_eq!(r.cursor, Some(UNTIL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_pool_routes_pages_nobody_and_the_daemon_judges_on() {
    let r = run(vec![Fault {
        path_contains: Some("/beacon/pool/".into()),
        ..Fault::always(FaultKind::Status { code: 404 })
    }])
    .await;
    assert_eq!(double_signing(&r.hits), Vec::new(), "{:#?}", r.hits);
    assert_eq!(r.cursor, Some(UNTIL));
}
