//! A few watched validators: valwatch reads only their duty slots'
//! committees (`committees?epoch=E&slot=S`) instead of the whole epoch's,
//! and its verdicts still equal the ground truth. Proven against the real
//! Lodestar recording (replayed live) and against the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use valwatch::sim::{
    Behaviour, BehaviourKind, Fault, FaultKind, Mode, NodeOptions, Scenario, Sim, SimNode,
    ValidatorSet,
};
use valwatch::store::ReportQuery;

/// The per-slot read's metric label (`BeaconClient::slot_committees`).
const PER_SLOT: &str = "endpoint=\"/eth/v1/beacon/states/{state_id}/committees?slot\"";
/// The whole-epoch read's label.
const WHOLE: &str = "endpoint=\"/eth/v1/beacon/states/{state_id}/committees\"";

/// Kills the daemon when the test ends, passed or not.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sum of a counter over the lines holding `label`.
fn counter(metrics: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("valwatch_node_requests_total{") && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs the daemon binary on `node` for `validators` from `from` until
/// `until` is judged for good, scraping its /metrics while it runs; returns
/// the store and the last scrape.
async fn run_daemon(
    node: &str,
    validators: &str,
    from: u64,
    until: u64,
    limit: Duration,
) -> (tempfile::TempDir, valwatch::store::Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args(["run", "--beacon-node", node, "--validators", validators])
        .args(["--database-url", &db])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--from-epoch", &from.to_string()])
        .args(["--until-epoch", &until.to_string()])
        .env("VALWATCH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "valwatch did not finish {until}");
        if let Ok(r) = http.get(&url).send().await {
            if let Ok(text) = r.text().await {
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(status.success(), "valwatch exited with {status}");
    let store = valwatch::app::open_store(&db).await.unwrap();
    (dir, store, last)
}

/// Validators 5 (always online) and 40 (its client is down in epochs
/// 6..9) of the Lodestar recording, replayed live from epoch 5 at double
/// speed: every verdict equals the ground truth, and the committees came
/// by slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validators_of_the_lodestar_recording_need_only_their_slots() {
    const FROM: u64 = 5;
    const UNTIL: u64 = 11;
    // Recording second 80 = slot 40 = the start of epoch 5.
    let replay = common::Replay::start(
        "lodestar-devnet",
        &["--mode", "live", "--speed", "2", "--start-at", "80"],
    );
    let (_dir, store, metrics) =
        run_daemon(&replay.url(), "5,40", FROM, UNTIL, Duration::from_secs(150)).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let expected: std::collections::BTreeMap<_, _> =
        common::expected_attestations("lodestar-devnet", &[])
            .into_iter()
            .filter(|((v, e), _)| (*v == 5 || *v == 40) && (FROM..=UNTIL).contains(e))
            .collect();
    assert_eq!(expected.len(), 2 * (UNTIL - FROM + 1) as usize);
    assert!(
        expected.values().any(|s| *s == "missed"),
        "the run must include the offline epochs"
    );
    let got = common::attestation_mismatches(&report, &expected, UNTIL);
    assert!(got.is_empty(), "{} wrong:\n{}", got.len(), got.join("\n"));
    let per_slot = counter(&metrics, PER_SLOT);
    let whole = counter(&metrics, WHOLE);
    eprintln!("committee reads: {per_slot} by slot, {whole} whole epochs");
    assert!(per_slot > 0, "no committees read by slot:\n{metrics}");
}

/// The simulator, live: 200 validators, validator 7 offline from epoch 3.
/// Watching 3 and 7, every verdict equals the simulator's truth and the
/// committees came by slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validators_of_the_simulator_need_only_their_slots() {
    let (per_slot, whole) = simulator_run(Vec::new()).await;
    assert!(per_slot > 0, "no committees read by slot");
    // The simulator serves every duty: no epoch needed the whole set.
    assert_eq!(whole, 0);
}

/// The same run with a node that refuses attester duties: the whole
/// epoch's committees are read, and the verdicts are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_attester_duties_the_whole_epoch_is_read() {
    let refuse = Fault {
        kind: FaultKind::Status { code: 500 },
        from_slot: None,
        until_slot: None,
        path_contains: Some("/validator/duties/attester".into()),
    };
    let (per_slot, whole) = simulator_run(vec![refuse]).await;
    assert_eq!(per_slot, 0);
    assert!(whole > 0);
}

/// Runs the daemon on a live simulated node with `faults`, checks every
/// verdict of validators 3 and 7 in epochs 2..=5 against the simulator's
/// truth; returns the committee reads (by slot, whole epoch).
async fn simulator_run(faults: Vec<Fault>) -> (u64, u64) {
    const SLOT_MS: u64 = 500;
    const FROM: u64 = 2;
    const UNTIL: u64 = 5;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // Genesis 18 slots ago: the clock is in epoch 2.
    let genesis = now.as_secs() - 18 * SLOT_MS / 1000;
    let scenario = Scenario {
        seed: 11,
        validators: 200,
        slots_per_epoch: 8,
        slot_duration_ms: SLOT_MS,
        genesis_time: genesis,
        behaviours: vec![Behaviour {
            validators: ValidatorSet(vec![(7, 7)]),
            from_epoch: 3,
            to_epoch: None,
            kind: BehaviourKind::Offline,
        }],
        ..Scenario::default()
    };
    let sim = Arc::new(RwLock::new(Sim::new(scenario).unwrap()));
    let node = SimNode::with_chain(
        sim.clone(),
        NodeOptions {
            mode: Mode::Live { max_epochs: 20 },
            faults,
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    let (_dir, store, metrics) = run_daemon(
        &node.base_url(),
        "3,7",
        FROM,
        UNTIL,
        Duration::from_secs(90),
    )
    .await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let mut missed = 0;
    for v in [3u64, 7] {
        for e in FROM..=UNTIL {
            let want = sim.read().unwrap().attestation_truth(v, e);
            let have = report
                .attestations
                .iter()
                .find(|a| a.validator_index.0 == v && a.epoch.0 == e)
                .unwrap_or_else(|| panic!("no verdict for {v} in epoch {e}"));
            assert_eq!(have.status, want.status, "validator {v} epoch {e}");
            assert_eq!(have.duty_slot, want.duty_slot, "validator {v} epoch {e}");
            missed += usize::from(want.status.as_str() == "missed");
        }
    }
    assert!(missed > 0, "validator 7 must miss");
    let per_slot = counter(&metrics, PER_SLOT);
    let whole = counter(&metrics, WHOLE);
    eprintln!("committee reads: {per_slot} by slot, {whole} whole epochs");
    node.shutdown().await;
    (per_slot, whole)
}
