//! Conformance with the real Lodestar recordings: valwatch, run against
//! replay.py serving a recording, must store exactly the ground truth's
//! attestation verdicts for every epoch whose inclusion window closed.

mod common;

use std::collections::BTreeMap;

use valwatch::analysis::AttestationStatus;
use valwatch::chain::Epoch;
use valwatch::config::{validate, Overrides, RawConfig};
use valwatch::store::{ReportQuery, Store};

async fn backfill(recording: &str, until: u64) -> (tempfile::TempDir, Store) {
    let replay = common::Replay::start(recording, &["--mode", "static"]);
    let dir = tempfile::tempdir().unwrap();
    let over = Overrides {
        beacon_nodes: vec![replay.url()],
        validators: Some("0-63".into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = validate(RawConfig::default(), &over, dir.path()).unwrap();
    let url = config.effective_database_url();
    valwatch::app::run_with(
        config,
        Some(Epoch(until)),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    drop(replay);
    let store = valwatch::app::open_store(&url).await.unwrap();
    (dir, store)
}

async fn check(recording: &str, until: u64, never_included: &[(u64, u64)]) {
    let (_dir, store) = backfill(recording, until).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let got: BTreeMap<(u64, u64), AttestationStatus> = report
        .attestations
        .iter()
        .map(|a| ((a.validator_index.0, a.epoch.0), a.status))
        .collect();
    let expected = common::expected_attestations(recording, never_included);
    let mut wrong = Vec::new();
    for (&(v, e), &want) in expected.iter().filter(|((_, e), _)| *e <= until) {
        let have = got.get(&(v, e)).map(|s| s.as_str()).unwrap_or("absent");
        if have != want {
            wrong.push(format!(
                "validator {v} epoch {e}: expected {want}, got {have}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        report
            .attestations
            .iter()
            .filter(|a| a.epoch.0 <= until)
            .count(),
        64 * (until as usize + 1),
        "one verdict per validator and epoch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_verdicts_match_the_ground_truth() {
    check("lodestar-devnet", 18, &[]).await;
}

/// In lodestar-devnet blocks are missing exactly at the proposer slots of
/// offline validators (README): every missed proposal must belong to a
/// validator offline in that epoch, every proposed one to an online one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_proposals_follow_who_was_online() {
    let recording = "lodestar-devnet";
    let (_dir, store) = backfill(recording, 18).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let expected = common::expected_attestations(recording, &[]);
    let (mut proposed, mut missed) = (0, 0);
    for p in &report.proposals {
        let epoch = p.slot.0 / 8;
        let online = expected.get(&(p.validator_index.0, epoch)) == Some(&"included");
        match p.status.as_str() {
            "proposed" => {
                proposed += 1;
                assert!(
                    online,
                    "slot {}: offline validator {} proposed",
                    p.slot, p.validator_index
                );
            }
            "missed" => {
                missed += 1;
                assert!(
                    !online,
                    "slot {}: online validator {} missed",
                    p.slot, p.validator_index
                );
            }
            other => panic!("slot {}: unexpected {other}", p.slot),
        }
    }
    // 112 blocks in slots 1..160 (README); slots 1..151 are judged here.
    assert!(
        proposed > 90 && missed > 20,
        "proposed {proposed}, missed {missed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_to_electra_verdicts_match_the_ground_truth() {
    // The node never included the last two Deneb slots' votes (README):
    // these online validators have no on-chain vote for epoch 4.
    let dropped: Vec<(u64, u64)> = [1, 7, 10, 12, 14, 15, 25, 26, 32, 33, 35]
        .iter()
        .map(|v| (*v, 4))
        .collect();
    check("lodestar-devnet-deneb-electra", 14, &dropped).await;
}
