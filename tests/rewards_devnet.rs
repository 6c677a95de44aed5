//! Issue 14 against the real Lodestar recordings (which hold the node's own
//! rewards answers): valwatch, backfilling a static replay, must store for
//! every validator and epoch the node's attestation reward (the sum of its
//! `total_rewards` components), leave unknown what the node did not serve,
//! and count a network participation within one percentage point of the
//! share of validators the node did not penalise on target (since Deneb a
//! vote with the right target included anywhere in its window keeps the
//! target flag, in or out of an inactivity leak).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::{BTreeMap, HashMap};

use valwatch::chain::{Epoch, ValidatorIndex};
use valwatch::store::ReportQuery;

/// The node's answer per epoch: validator -> (sum of components, target).
async fn node_rewards(url: &str, until: u64) -> BTreeMap<u64, HashMap<u64, (i64, i64)>> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for epoch in 0..=until {
        let resp = http
            .post(format!("{url}/eth/v1/beacon/rewards/attestations/{epoch}"))
            .json(&serde_json::json!([]))
            .send()
            .await
            .unwrap();
        if !resp.status().is_success() {
            continue; // not served for this epoch
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        let mut rows = HashMap::new();
        for row in body["data"]["total_rewards"].as_array().unwrap() {
            let num = |k: &str| {
                row.get(k)
                    .and_then(|x| x.as_str())
                    .map_or(0, |s| s.parse::<i64>().unwrap())
            };
            let v: u64 = row["validator_index"].as_str().unwrap().parse().unwrap();
            let total = num("head")
                + num("target")
                + num("source")
                + num("inclusion_delay")
                + num("inactivity");
            rows.insert(v, (total, num("target")));
        }
        out.insert(epoch, rows);
    }
    out
}

async fn check(
    recording: &str,
    until: u64,
) -> (common::Replay, tempfile::TempDir, valwatch::store::Store) {
    let replay = common::Replay::start(recording, &["--mode", "static"]);
    let (_dir, store) = common::run_in_process(vec![replay.url()], until).await;
    let query = ReportQuery {
        to_epoch: Some(Epoch(until)),
        ..ReportQuery::default()
    };
    let stored: HashMap<(u64, u64), Option<i64>> = store
        .rewards(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| ((r.validator_index.0, r.epoch.0), r.attestation_reward_gwei))
        .collect();
    let network: HashMap<u64, valwatch::analysis::network::NetworkRecord> = store
        .network(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.epoch.0, n))
        .collect();
    let node = node_rewards(&replay.url(), until).await;

    let mut wrong = Vec::new();
    let mut compared = 0;
    for (epoch, rows) in &node {
        for (v, (total, _)) in rows {
            compared += 1;
            match stored.get(&(*v, *epoch)) {
                Some(Some(x)) if x == total => {}
                other => wrong.push(format!(
                    "validator {v} epoch {epoch}: node {total}, stored {other:?}"
                )),
            }
        }
        let share = rows.values().filter(|(_, t)| *t >= 0).count() as f64 / rows.len() as f64;
        eprintln!(
            "epoch {epoch}: node's non-negative targets {share:.4}, valwatch {:?}",
            network.get(epoch)
        );
        match network.get(epoch).and_then(|n| n.participation()) {
            Some(p) if (p - share).abs() <= 0.01 => {}
            other => wrong.push(format!(
                "epoch {epoch}: network participation {other:?}, node's non-negative targets {share:.4}"
            )),
        }
    }
    // What the node did not serve is unknown, never 0.
    for ((v, epoch), x) in &stored {
        if !node.contains_key(epoch) && x.is_some() {
            wrong.push(format!(
                "validator {v} epoch {epoch}: the node served no rewards, stored {x:?}"
            ));
        }
    }
    assert!(
        compared >= 64 * (until as usize - 2),
        "only {compared} rewards compared"
    );
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    (replay, _dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_rewards_and_participation_match_the_node() {
    let (_replay, _dir, store) = check("lodestar-devnet", 18).await;
    // README: validators 32..47 were offline in epochs 6..9, 0..31 online.
    // What the outage cost, in the recovery message's terms: the offline
    // sixteen lost far more than sixteen online ones over the same epochs.
    let ids = |r: std::ops::Range<u64>| r.map(ValidatorIndex).collect::<Vec<_>>();
    let cost = |v: Vec<ValidatorIndex>| {
        let store = &store;
        async move {
            store
                .downtime_cost(&v, Epoch(6), Epoch(9))
                .await
                .unwrap()
                .expect("the rewards of epochs 6..9 are stored")
                .0
        }
    };
    let offline = cost(ids(32..48)).await;
    let online = cost(ids(16..32)).await;
    eprintln!("epochs 6..9 cost 32..47 {offline} Gwei, 16..31 {online} Gwei");
    assert!(
        offline > 2 * online.max(1) && offline > 0,
        "offline {offline} Gwei, online {online} Gwei"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_to_electra_rewards_and_participation_match_the_node() {
    check("lodestar-devnet-deneb-electra", 14).await;
}

/// The request budget (issue 14: at most 45 requests per judged epoch on
/// the lodestar-devnet replay, rewards included). Counted by the replay
/// itself (its request log), over a static backfill of epochs 0..=18 with
/// all 64 validators watched: one attestation-rewards request per epoch,
/// sync rewards only for blocks (at most one per slot), block rewards only
/// for watched proposers' blocks (at most one per slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_rewards_stay_within_the_request_budget() {
    const UNTIL: u64 = 18;
    const SLOTS_PER_EPOCH: usize = 8;
    const BUDGET_PER_EPOCH: usize = 45;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("replay.log");
    let port = common::free_port();
    let mut child = std::process::Command::new("python3")
        .arg(common::shared_dir().join("devnet").join("replay.py"))
        .arg("--recording")
        .arg(common::fixture("lodestar-devnet"))
        .arg("--port")
        .arg(port.to_string())
        .args(["--mode", "static"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "replay did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_db, _store) =
        common::run_in_process(vec![format!("http://127.0.0.1:{port}")], UNTIL).await;
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let requests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET /") || l.contains("\"POST /"))
        .collect();
    let count = |route: &str| requests.iter().filter(|l| l.contains(route)).count();
    let epochs = UNTIL as usize + 1;
    let attestations = count("/eth/v1/beacon/rewards/attestations/");
    let sync = count("/eth/v1/beacon/rewards/sync_committee/");
    let blocks = count("/eth/v1/beacon/rewards/blocks/");
    eprintln!(
        "{} requests over {epochs} epochs; rewards: attestations {attestations}, sync {sync}, blocks {blocks}",
        requests.len()
    );
    assert!(
        attestations <= epochs,
        "{attestations} attestation-rewards requests"
    );
    assert!(
        sync <= epochs * SLOTS_PER_EPOCH,
        "{sync} sync-rewards requests"
    );
    assert!(
        blocks <= epochs * SLOTS_PER_EPOCH,
        "{blocks} block-rewards requests"
    );
    assert!(
        attestations > 0 && sync > 0 && blocks > 0,
        "every rewards route is asked"
    );
    assert!(
        requests.len() <= BUDGET_PER_EPOCH * epochs,
        "{} requests for {epochs} epochs",
        requests.len()
    );
}

/// The network baseline without any committee answer (what a small
/// watched set reads: only its own duty slots' committees): committee
/// sizes come from the aggregates' bitlists alone, unseen committees at
/// the mean size. Still within one point of the node, on Electra blocks
/// (`committee_bits`, several committees per aggregate) and Deneb ones.
async fn participation_from_bitlists(recording: &str, until: u64) {
    use valwatch::analysis::network::network_baseline;
    use valwatch::analysis::CanonicalChain;
    use valwatch::beacon::{BeaconClient, BlockId, NodeConfig, NodeRole};
    use valwatch::chain::{Block, Slot};

    let replay = common::Replay::start(recording, &["--mode", "static"]);
    let client = BeaconClient::new(NodeConfig {
        name: "replay".into(),
        url: replay.url().parse().unwrap(),
        role: NodeRole::Private,
        headers: vec![],
        timeout: std::time::Duration::from_secs(10),
        max_requests_per_second: None,
    })
    .unwrap();
    let genesis = client.genesis().await.unwrap();
    let spec = client.chain_spec(&genesis).await.unwrap();
    let last = spec.end_slot(Epoch(until + 1));
    let mut blocks: Vec<Block> = Vec::new();
    for s in 1..=last.0 {
        if let Some(b) = client
            .block_with_root(BlockId::Slot(Slot(s)))
            .await
            .unwrap()
        {
            blocks.push(b);
        }
    }
    let node = node_rewards(&replay.url(), until).await;
    let mut wrong = Vec::new();
    for (epoch, rows) in &node {
        let e = Epoch(*epoch);
        let (first, end) = (spec.start_slot(e), spec.end_slot(Epoch(epoch + 1)));
        let anchor = blocks
            .iter()
            .filter(|b| b.header.slot < first)
            .map(|b| b.header)
            .next_back();
        let chain = CanonicalChain::new(first, end, anchor, blocks.iter().map(|b| b.header));
        let got = network_baseline(&spec, e, None, &blocks, &chain).and_then(|n| n.participation());
        let share = rows.values().filter(|(_, t)| *t >= 0).count() as f64 / rows.len() as f64;
        eprintln!("epoch {epoch}: from bitlists {got:?}, node {share:.4}");
        if !got.is_some_and(|p| (p - share).abs() <= 0.01) {
            wrong.push(format!(
                "epoch {epoch}: from bitlists {got:?}, node {share:.4}"
            ));
        }
    }
    assert!(
        node.len() as u64 >= until - 2,
        "only {} epochs compared",
        node.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_participation_from_bitlists_alone_matches_the_node() {
    participation_from_bitlists("lodestar-devnet", 18).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_to_electra_participation_from_bitlists_alone_matches_the_node() {
    participation_from_bitlists("lodestar-devnet-deneb-electra", 14).await;
}
