//! Conformance with the real Lodestar recordings: valwatch, run against
//! replay.py serving a recording, must store exactly the ground truth's
//! attestation verdicts for every epoch whose inclusion window closed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use valwatch::store::{ReportQuery, Store};

async fn backfill(recording: &str, until: u64) -> (tempfile::TempDir, Store) {
    let replay = common::Replay::start(recording, &["--mode", "static"]);
    common::run_in_process(vec![replay.url()], until).await
}

async fn check(recording: &str, until: u64, never_included: &[(u64, u64)]) {
    let (_dir, store) = backfill(recording, until).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let expected = common::expected_attestations(recording, never_included);
    let wrong = common::attestation_mismatches(&report, &expected, until);
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
    // Only epochs judged for good (provisional passes also store the
    // epochs still open at the end of the recording).
    for p in report.proposals.iter().filter(|p| p.slot.0 / 8 <= 18) {
        let epoch = p.slot.0 / 8;
        // Every validator is watched and the static replay serves every
        // epoch's duties: each row names its proposer.
        let v = p.validator_index.expect("a proposer for every slot");
        let online = expected.get(&(v.0, epoch)) == Some(&"included");
        match p.status.as_str() {
            "proposed" => {
                proposed += 1;
                assert!(online, "slot {}: offline validator {v} proposed", p.slot);
            }
            "missed" => {
                missed += 1;
                assert!(!online, "slot {}: online validator {v} missed", p.slot);
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

/// isqrt(SLOTS_PER_EPOCH = 8), consensus-specs altair
/// `get_attestation_participation_flag_indices`.
const TIMELY_SOURCE_MAX_DELAY: u64 = 2;

/// The node's own rewards answer is an independent judge: a vote that was
/// not included gets source and target penalties, an included correct one
/// none. During the inactivity leak of this recording correct votes earn
/// zero, so only the signs of penalties are compared.
async fn rewards_agree(recording: &str, until: u64) {
    let replay = common::Replay::start(recording, &["--mode", "static"]);
    let (_dir, store) = common::run_in_process(vec![replay.url()], until).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let http = reqwest::Client::new();
    let mut compared = 0;
    let mut wrong = Vec::new();
    for epoch in 0..=until {
        let url = format!(
            "{}/eth/v1/beacon/rewards/attestations/{epoch}",
            replay.url()
        );
        let resp = http
            .post(&url)
            .json(&serde_json::json!([]))
            .send()
            .await
            .unwrap();
        if !resp.status().is_success() {
            continue; // not recorded for this epoch
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        for row in body["data"]["total_rewards"].as_array().unwrap() {
            let num = |k: &str| row[k].as_str().unwrap().parse::<i64>().unwrap();
            let v: u64 = row["validator_index"].as_str().unwrap().parse().unwrap();
            let Some(verdict) = report
                .attestations
                .iter()
                .find(|a| a.validator_index.0 == v && a.epoch.0 == epoch)
            else {
                continue;
            };
            let penalized = num("source") < 0 && num("target") < 0;
            // Altair+: the source flag is timely only with an inclusion
            // delay <= integer_squareroot(SLOTS_PER_EPOCH) (2 with the 8-slot
            // preset of these recordings); the target flag at any delay
            // since Deneb. So the source sign also checks the delay.
            let timely_source = verdict
                .inclusion_delay
                .is_some_and(|d| d <= TIMELY_SOURCE_MAX_DELAY);
            let ok = match verdict.status.as_str() {
                "missed" => penalized,
                "included" => {
                    (num("target") >= 0) == (verdict.target_correct == Some(true))
                        && (num("source") >= 0) == timely_source
                }
                _ => true,
            };
            compared += 1;
            if !ok {
                wrong.push(format!(
                    "validator {v} epoch {epoch}: {} (delay {:?}) but rewards source {} target {}",
                    verdict.status.as_str(),
                    verdict.inclusion_delay,
                    num("source"),
                    num("target")
                ));
            }
        }
    }
    assert!(
        compared > 64 * 10,
        "only {compared} verdicts had a rewards answer"
    );
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_verdicts_agree_with_the_nodes_rewards() {
    rewards_agree("lodestar-devnet", 18).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_to_electra_verdicts_agree_with_the_nodes_rewards() {
    rewards_agree("lodestar-devnet-deneb-electra", 14).await;
}

/// Sync-committee verdicts against the node's own sync-committee rewards
/// (`POST /eth/v1/beacon/rewards/sync_committee/{block}`, recorded for every
/// block). Altair `process_sync_aggregate`: each seat earns the participant
/// reward `r` when its bit is set in the block's aggregate and loses `r`
/// when not, and the API sums a validator's seats; so with `k` seats and a
/// reward `R`, `(R / r + k) / 2` seats signed. valwatch counts a slot once
/// per validator (participated if any seat signed). The block at B carries
/// the signatures for slot B-1, judged in epoch(B-1). Block 1 is left out:
/// valwatch gives the genesis slot no duty (nobody can have seen a block to
/// sign before it), while the protocol does penalise it.
async fn sync_rewards_agree(recording: &str, until: u64, slots_per_epoch: u64) {
    /// EPOCHS_PER_SYNC_COMMITTEE_PERIOD of the minimal preset.
    const EPOCHS_PER_SYNC_PERIOD: u64 = 8;
    use std::collections::{BTreeMap, HashMap};
    let replay = common::Replay::start(recording, &["--mode", "static"]);
    let (_dir, store) = common::run_in_process(vec![replay.url()], until).await;
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let http = reqwest::Client::new();
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse::<i64>().unwrap();

    // (validator, epoch) -> (participated, missed), from the rewards.
    let mut expected: BTreeMap<(u64, u64), (u32, u32)> = BTreeMap::new();
    let mut committees: HashMap<u64, HashMap<u64, i64>> = HashMap::new();
    let mut blocks = 0;
    for block in 2..=(until + 1) * slots_per_epoch {
        let url = format!(
            "{}/eth/v1/beacon/rewards/sync_committee/{block}",
            replay.url()
        );
        let resp = http
            .post(&url)
            .json(&serde_json::json!([]))
            .send()
            .await
            .unwrap();
        if !resp.status().is_success() {
            continue; // an empty slot: no aggregate, nobody judged
        }
        let rewards: serde_json::Value = resp.json().await.unwrap();
        // The committee the block was checked against: the current sync
        // committee of its period (8 epochs in the minimal preset), read
        // from any recorded state of that period (empty slots have none).
        let period = block / slots_per_epoch / EPOCHS_PER_SYNC_PERIOD;
        if !committees.contains_key(&period) {
            for e in period * EPOCHS_PER_SYNC_PERIOD..(period + 1) * EPOCHS_PER_SYNC_PERIOD {
                let url = format!(
                    "{}/eth/v1/beacon/states/{}/sync_committees",
                    replay.url(),
                    e * slots_per_epoch
                );
                let resp = http.get(&url).send().await.unwrap();
                if resp.status().is_success() {
                    let body: serde_json::Value = resp.json().await.unwrap();
                    let mut seats: HashMap<u64, i64> = HashMap::new();
                    for v in body["data"]["validators"].as_array().unwrap() {
                        *seats.entry(num(v) as u64).or_default() += 1;
                    }
                    committees.insert(period, seats);
                    break;
                }
            }
        }
        let seats = &committees[&period];
        let rows = rewards["data"].as_array().unwrap();
        let r = rows
            .iter()
            .map(|row| num(&row["reward"]).abs())
            .filter(|x| *x > 0)
            .min()
            .unwrap();
        let epoch = (block - 1) / slots_per_epoch;
        for row in rows {
            let v = num(&row["validator_index"]) as u64;
            let k = seats[&v];
            let reward = num(&row["reward"]);
            assert_eq!(
                reward % r,
                0,
                "block {block}: reward {reward} of {v} is not a multiple of {r}"
            );
            let signed = (reward / r + k) / 2;
            let e = expected.entry((v, epoch)).or_default();
            if signed > 0 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        blocks += 1;
    }
    let got: BTreeMap<(u64, u64), (u32, u32)> = report
        .sync
        .iter()
        .filter(|s| s.epoch.0 <= until)
        .map(|s| ((s.validator_index.0, s.epoch.0), (s.participated, s.missed)))
        .collect();
    // The last slot of `until` is signed in the first block of until+1, which
    // the rewards above include: valwatch judged it too (the window of the
    // final pass reaches into the next epoch).
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .map(|((v, e), want)| {
            format!("validator {v} epoch {e}: rewards say {want:?}, valwatch {:?}", got.get(&(*v, *e)))
        })
        .chain(
            got.keys()
                .filter(|k| !expected.contains_key(k))
                .map(|(v, e)| format!("validator {v} epoch {e}: valwatch judged a sync duty the rewards do not show")),
        )
        .collect();
    assert!(blocks > 4 * until, "only {blocks} blocks had sync rewards");
    assert!(
        wrong.is_empty(),
        "{} disagreements over {blocks} blocks:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_sync_verdicts_agree_with_the_nodes_sync_rewards() {
    sync_rewards_agree("lodestar-devnet", 18, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_to_electra_sync_verdicts_agree_with_the_nodes_sync_rewards() {
    sync_rewards_agree("lodestar-devnet-deneb-electra", 14, 8).await;
}
