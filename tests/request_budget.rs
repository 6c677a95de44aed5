//! What valwatch asks a beacon node for, per epoch, while following a live
//! chain: the network-sized answers (beacon committees, ~10 MB of JSON per
//! epoch on mainnet) are read at most twice per epoch (once for all the
//! provisional passes, once for the final one), every block once, however
//! many provisional passes run. Counted from valwatch's own
//! `valwatch_node_requests_total`, against a live simulated node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use valwatch::config::{validate, Overrides, RawConfig};
use valwatch::sim::{NodeOptions, Scenario, SimNode};

const SLOT_MS: u64 = 300;
const SLOTS_PER_EPOCH: u64 = 8;

/// `valwatch_node_requests_total` by endpoint, summed over nodes.
fn requests(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("valwatch_node_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        let endpoint = labels
            .split("endpoint=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        *out.entry(endpoint).or_default() += value.trim().parse::<u64>().unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_sized_answers_are_read_at_most_twice_per_epoch() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let scenario = Scenario {
        seed: 11,
        validators: 64,
        slots_per_epoch: SLOTS_PER_EPOCH,
        slot_duration_ms: SLOT_MS,
        genesis_time: now.as_secs(),
        ..Scenario::default()
    };
    let node = SimNode::start(scenario, NodeOptions::default())
        .await
        .unwrap();
    let listen = common::free_addr();
    let dir = tempfile::tempdir().unwrap();
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
    let config = validate(RawConfig::default(), &over, dir.path()).unwrap();
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(valwatch::app::run_with(config, None, cancel.clone()));

    // Until five epochs (0..=4) are judged for good.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_millis(SLOT_MS * SLOTS_PER_EPOCH * 20);
    let text = loop {
        assert!(Instant::now() < deadline, "five final epochs never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(r) = http.get(format!("http://{listen}/metrics")).send().await else {
            continue;
        };
        let text = r.text().await.unwrap();
        if common::gauge(&text, "valwatch_last_processed_epoch").is_some_and(|e| e >= 4) {
            break text;
        }
    };
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    let wall_slot = common::gauge(&text, "valwatch_wall_slot").unwrap() as u64;
    let provisional: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"valwatch_epochs_processed_total{pass="provisional"} "#))
        .unwrap()
        .parse()
        .unwrap();
    let counts = requests(&text);
    let count = |e: &str| counts.get(e).copied().unwrap_or(0);
    // Epochs looked at: 0 ..= the wall clock's epoch.
    let epochs_seen = wall_slot / SLOTS_PER_EPOCH + 1;
    eprintln!(
        "wall slot {wall_slot}, {provisional} provisional passes over {epochs_seen} epochs: {counts:#?}"
    );
    assert!(
        provisional >= 2 * epochs_seen,
        "the test needs several provisional passes per epoch: {provisional}"
    );
    let committees = count("/eth/v1/beacon/states/{state_id}/committees");
    assert!(
        committees <= 2 * epochs_seen,
        "{committees} committee reads for {epochs_seen} epochs"
    );
    let sync = count("/eth/v1/beacon/states/{state_id}/sync_committees");
    assert!(
        sync <= 2 * epochs_seen,
        "{sync} sync committee reads for {epochs_seen} epochs"
    );
    // Every block once (a slot may be read again only if a node failed).
    let blocks = count("/eth/v2/beacon/blocks/{block_id}");
    assert!(
        blocks <= wall_slot + 1,
        "{blocks} block reads for {wall_slot} slots"
    );
}
