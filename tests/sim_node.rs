//! Simulated nodes as a monitor meets them: two nodes of one scenario form
//! one network, the live head follows the clock, range limits answer like
//! Lodestar, and every configured fault shows up over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use valwatch::chain::ManualClock;
use valwatch::sim::{Fault, FaultKind, Mode, NodeOptions, Scenario, SimNode};

const GENESIS: u64 = 1_700_000_000;

fn scenario(seed: u64) -> Scenario {
    Scenario {
        seed,
        genesis_time: GENESIS,
        missed_slots: vec![6],
        ..Scenario::default()
    }
}

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(&url).await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn roots(base: &str, head: u64) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for s in 0..=head {
        let (st, v) = get(format!("{base}/eth/v1/beacon/blocks/{s}/root")).await;
        out.push((st == 200).then(|| v["data"]["root"].as_str().unwrap().to_string()));
    }
    out
}

#[tokio::test]
async fn two_nodes_of_one_scenario_serve_the_same_chain() {
    let a = SimNode::start(scenario(3), NodeOptions::pregenerated(3))
        .await
        .unwrap();
    let b = SimNode::start(scenario(3), NodeOptions::pregenerated(3))
        .await
        .unwrap();
    let other = SimNode::start(scenario(4), NodeOptions::pregenerated(3))
        .await
        .unwrap();
    let (ra, rb, ro) = (
        roots(&a.base_url(), 23).await,
        roots(&b.base_url(), 23).await,
        roots(&other.base_url(), 23).await,
    );
    assert_eq!(ra, rb);
    assert_eq!(ra[6], None, "slot 6 is missed on both");
    assert_ne!(ra, ro, "another seed is another chain");
    let (ga, gb) = (
        get(format!("{}/eth/v1/beacon/genesis", a.base_url()))
            .await
            .1,
        get(format!("{}/eth/v1/beacon/genesis", b.base_url()))
            .await
            .1,
    );
    assert_eq!(ga, gb);
    assert_eq!(ga["data"]["genesis_time"], GENESIS.to_string());
}

#[tokio::test]
async fn live_head_follows_the_clock() {
    let clock = Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(GENESIS) + Duration::from_millis(2 * 2000 + 500),
    ));
    let opts = NodeOptions {
        mode: Mode::Live { max_epochs: 100 },
        clock: clock.clone(),
        ..NodeOptions::default()
    };
    let node = SimNode::start(scenario(3), opts).await.unwrap();
    let base = node.base_url();
    let (_, h) = get(format!("{base}/eth/v1/beacon/headers/head")).await;
    assert_eq!(h["data"]["header"]["message"]["slot"], "2");
    assert_eq!(
        get(format!("{base}/eth/v1/beacon/headers/3")).await.0,
        404,
        "slot 3 has not started"
    );
    clock.advance(Duration::from_secs(2 * 8));
    let (_, h) = get(format!("{base}/eth/v1/beacon/headers/head")).await;
    assert_eq!(h["data"]["header"]["message"]["slot"], "10");
    assert_eq!(get(format!("{base}/eth/v1/beacon/headers/3")).await.0, 200);
    let (_, s) = get(format!("{base}/eth/v1/node/syncing")).await;
    assert_eq!(s["data"]["head_slot"], "10");
    assert_eq!(s["data"]["is_syncing"], false);
    // Slot 6 is missed: while it is the current slot the head stays at 5.
    clock.set(UNIX_EPOCH + Duration::from_secs(GENESIS + 6 * 2 + 1));
    let (_, s) = get(format!("{base}/eth/v1/node/syncing")).await;
    assert_eq!(
        (
            s["data"]["head_slot"].as_str(),
            s["data"]["sync_distance"].as_str()
        ),
        (Some("5"), Some("1"))
    );
}

#[tokio::test]
async fn range_limits_answer_like_lodestar() {
    let node = SimNode::start(scenario(3), NodeOptions::pregenerated(5))
        .await
        .unwrap(); // current epoch 4
    let base = node.base_url();
    let http = reqwest::Client::new();
    for (epoch, status) in [(3, 500), (4, 200), (5, 200), (6, 500)] {
        let (st, v) = get(format!("{base}/eth/v1/validator/duties/proposer/{epoch}")).await;
        assert_eq!(st, status, "proposer duties {epoch}");
        if st == 200 {
            assert_eq!(v["data"].as_array().unwrap().len(), 8);
        }
    }
    for (epoch, status) in [(2, 400), (3, 200), (5, 200), (6, 400)] {
        let st = http
            .post(format!("{base}/eth/v1/validator/liveness/{epoch}"))
            .json(&json!(["1", "2"]))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st.as_u16(), status, "liveness {epoch}");
    }
    let r = http
        .post(format!("{base}/eth/v1/validator/duties/attester/5"))
        .json(&json!(["1", "63", "64"]))
        .send()
        .await
        .unwrap();
    let dep = r.headers()["eth-consensus-dependent-root"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        2,
        "unknown index 64 is dropped"
    );
    assert_eq!(v["dependent_root"], dep.as_str());
    let (_, root31) = get(format!("{base}/eth/v1/beacon/blocks/31/root")).await;
    assert_eq!(
        root31["data"]["root"],
        dep.as_str(),
        "attester duties of 5 depend on the last block of 3"
    );
    let st = http
        .post(format!("{base}/eth/v1/validator/duties/attester/6"))
        .json(&json!(["1"]))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 400);
}

#[tokio::test]
async fn faults_show_up_as_configured() {
    let healthy = SimNode::start(scenario(3), NodeOptions::pregenerated(4))
        .await
        .unwrap();
    let node = SimNode::start(scenario(3), NodeOptions::pregenerated(4))
        .await
        .unwrap();
    let base = node.base_url();
    let http = reqwest::Client::new();
    let genesis = format!("{base}/eth/v1/beacon/genesis");

    node.set_faults(vec![Fault::always(FaultKind::Refuse)]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = http.get(&genesis).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    node.set_faults(vec![]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        http.get(&genesis).send().await.unwrap().status(),
        200,
        "listens again on the same port"
    );

    node.set_faults(vec![Fault::always(FaultKind::Unavailable)]);
    let (st, v) = get(genesis.clone()).await;
    assert_eq!((st, v["code"].as_u64()), (503, Some(503)));

    node.set_faults(vec![Fault {
        path_contains: Some("/duties/".into()),
        ..Fault::always(FaultKind::Status { code: 500 })
    }]);
    assert_eq!(
        get(format!("{base}/eth/v1/validator/duties/proposer/3"))
            .await
            .0,
        500
    );
    assert_eq!(
        get(genesis.clone()).await.0,
        200,
        "other paths are unaffected"
    );

    node.set_faults(vec![Fault::always(FaultKind::Slow { delay_ms: 1000 })]);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(quick.get(&genesis).send().await.unwrap_err().is_timeout());

    node.set_faults(vec![Fault::always(FaultKind::Lagging { slots: 3 })]);
    let (_, h) = get(format!("{base}/eth/v1/beacon/headers/head")).await;
    assert_eq!(h["data"]["header"]["message"]["slot"], "28");
    assert_eq!(get(format!("{base}/eth/v1/beacon/headers/30")).await.0, 404);
    let (_, s) = get(format!("{base}/eth/v1/node/syncing")).await;
    assert_eq!(
        (
            s["data"]["is_syncing"].as_bool(),
            s["data"]["sync_distance"].as_str()
        ),
        (Some(true), Some("3"))
    );
    assert_eq!(get(format!("{base}/eth/v1/node/health")).await.0, 206);

    node.set_faults(vec![Fault::always(FaultKind::OtherNetwork)]);
    let (_, mine) = get(genesis.clone()).await;
    let (_, theirs) = get(format!("{}/eth/v1/beacon/genesis", healthy.base_url())).await;
    assert_ne!(
        mine["data"]["genesis_validators_root"],
        theirs["data"]["genesis_validators_root"]
    );
    assert_ne!(mine["data"]["genesis_time"], theirs["data"]["genesis_time"]);

    for kind in [FaultKind::Truncated, FaultKind::Malformed] {
        node.set_faults(vec![Fault::always(kind.clone())]);
        let text = http
            .get(format!("{base}/eth/v1/beacon/headers/head"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.is_empty());
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{kind:?}: {text}"
        );
    }

    node.set_faults(vec![Fault::always(FaultKind::WrongRoot { slot: 9 })]);
    let (mine, theirs) = (roots(&base, 31).await, roots(&healthy.base_url(), 31).await);
    let differ: Vec<usize> = (0..32).filter(|&s| mine[s] != theirs[s]).collect();
    assert_eq!(differ, vec![9]);

    node.set_faults(vec![]);
    assert_eq!(roots(&base, 31).await, theirs);
}

#[tokio::test]
async fn fault_windows_follow_the_clock() {
    let clock = Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(GENESIS + 4 * 2),
    ));
    let opts = NodeOptions {
        mode: Mode::Live { max_epochs: 100 },
        clock: clock.clone(),
        faults: vec![Fault {
            from_slot: Some(5),
            until_slot: Some(7),
            ..Fault::always(FaultKind::Unavailable)
        }],
        ..NodeOptions::default()
    };
    let node = SimNode::start(scenario(3), opts).await.unwrap();
    let url = format!("{}/eth/v1/node/syncing", node.base_url());
    let mut seen = Vec::new();
    for _ in 4..8 {
        seen.push(get(url.clone()).await.0);
        clock.advance(Duration::from_secs(2));
    }
    assert_eq!(seen, vec![200, 503, 503, 200]);
}

#[test]
fn faults_read_from_toml() {
    #[derive(serde::Deserialize)]
    struct F {
        faults: Vec<Fault>,
    }
    let f: F = toml::from_str(
        r#"
        [[faults]]
        fault = "slow"
        delay_ms = 300
        path_contains = "/states/"
        [[faults]]
        fault = "refuse"
        from_slot = 10
        until_slot = 20
        "#,
    )
    .unwrap();
    assert_eq!(f.faults[0].kind, FaultKind::Slow { delay_ms: 300 });
    assert_eq!(
        (f.faults[1].kind.clone(), f.faults[1].from_slot),
        (FaultKind::Refuse, Some(10))
    );
}
