//! The combined live run: two replay servers of one recording form two
//! nodes of one network, re-timed at double speed. valwatch follows them;
//! one node is stopped mid-run; valwatch is killed (SIGKILL) and restarted.
//! At the end the history must have no gap, no duplicate, and match the
//! ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use valwatch::store::ReportQuery;

const RECORDING: &str = "lodestar-devnet";
/// Last epoch whose inclusion window closes inside the recording (epochs
/// 0..19 are complete; N's window ends with N+1).
const LAST_EPOCH: u64 = 18;

fn valwatch(nodes: &[String], db: &str) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_valwatch"));
    cmd.arg("run");
    for n in nodes {
        cmd.args(["--beacon-node", n]);
    }
    cmd.args([
        "--validators",
        "0-63",
        "--database-url",
        db,
        "--listen",
        "off",
        "--from-epoch",
        "0",
    ])
    .args(["--until-epoch", &LAST_EPOCH.to_string()])
    .env("VALWATCH_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_stopped_and_a_restart_leave_no_gap() {
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let g = genesis.to_string();
    let args = [
        "--mode",
        "live",
        "--speed",
        "2",
        "--genesis-time",
        g.as_str(),
    ];
    let mut a = common::Replay::start(RECORDING, &args);
    let b = common::Replay::start(RECORDING, &args);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("live.sqlite").display());
    let nodes = vec![a.url(), b.url()];
    let started = Instant::now();

    // 1 s slots: epoch E starts 8E seconds after genesis.
    let mut vw = valwatch(&nodes, &db);
    tokio::time::sleep(Duration::from_secs(50)).await;
    a.stop(); // node A dies in epoch ~6
    tokio::time::sleep(Duration::from_secs(30)).await;
    vw.kill().unwrap(); // SIGKILL in epoch ~10: no clean shutdown
    vw.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut vw = valwatch(&nodes, &db);
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = vw.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "valwatch did not finish epoch {LAST_EPOCH}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(status.success(), "valwatch exited with {status}");
    eprintln!("live run took {:?}", started.elapsed());

    let store = valwatch::app::open_store(&db).await.unwrap();
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let mut seen = BTreeMap::new();
    for a in &report.attestations {
        *seen.entry((a.validator_index.0, a.epoch.0)).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "duplicate verdicts");
    let expected = common::expected_attestations(RECORDING, &[]);
    let wrong = common::attestation_mismatches(&report, &expected, LAST_EPOCH);
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(store.cursor().await.unwrap().map(|e| e.0), Some(LAST_EPOCH));
}

/// The Deneb→Electra recording has a real depth-2 reorg: validator 44's
/// block at slot 56 and validator 34's at slot 59 lost to block 57. Only
/// the event stream shows them; valwatch must call both proposals
/// orphaned (not missed), and judge epoch 7 as the ground truth says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reorged_blocks_of_the_fork_recording_are_orphaned() {
    let recording = "lodestar-devnet-deneb-electra";
    // Recording second 96 = slot 48 = the start of epoch 6.
    let replay = common::Replay::start(
        recording,
        &["--mode", "live", "--speed", "2", "--start-at", "96"],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("reorg.sqlite").display());
    let status = Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args([
            "run",
            "--beacon-node",
            &replay.url(),
            "--validators",
            "0-63",
            "--database-url",
            &db,
        ])
        .args(["--listen", "off", "--from-epoch", "6", "--until-epoch", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success());
    let store = valwatch::app::open_store(&db).await.unwrap();
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let status_at = |slot: u64| {
        report
            .proposals
            .iter()
            .find(|p| p.slot.0 == slot)
            .map(|p| (p.validator_index.unwrap().0, p.status.as_str()))
    };
    assert_eq!(status_at(56), Some((44, "orphaned")));
    assert_eq!(status_at(59), Some((34, "orphaned")));
    assert_eq!(status_at(57).map(|p| p.1), Some("proposed"));
    let expected = common::expected_attestations(recording, &[]);
    for a in report.attestations.iter().filter(|a| a.epoch.0 == 7) {
        let want = expected[&(a.validator_index.0, 7)];
        assert_eq!(
            a.status.as_str(),
            want,
            "validator {} epoch 7",
            a.validator_index
        );
    }
}
