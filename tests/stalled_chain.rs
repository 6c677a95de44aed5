//! Proof before verdict, end to end: the real daemon (`app::run_with`,
//! SQLite, a webhook channel) follows two simulated nodes whose heads stop
//! at slot 32 (epoch 4) while both still say they are synced, and runs on
//! for 40 s after that. Group `gone` (60-63) is offline from epoch 1.
//!
//! What a person must receive: ONE `chain_stalled` notification (not a
//! lagging, not-synced, blind, stalled-monitor or no-finality page on top),
//! ONE `validator_down` for `gone` (its missed proposals are part of it),
//! nothing naming a validator that performed; and the store holds no
//! `missed` verdict for a slot the chain never reached.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use valwatch::analysis::{AttestationStatus, ProposalStatus};
use valwatch::sim::{
    Behaviour, BehaviourKind, Fault, FaultKind, Mode, NodeOptions, Scenario, Sim, SimNode,
    ValidatorSet,
};

const SLOT_MS: u64 = 400;
const SLOTS_PER_EPOCH: u64 = 8;
/// The last slot any node has a block for.
const FREEZE: u64 = 32;
/// How long the daemon runs on after the heads stopped.
const AFTER: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_chain_is_one_page_and_no_missed_verdict_after_the_head() {
    let (hits, hook) = common::json_webhook().await;
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let scenario = Scenario {
        seed: 31,
        validators: 64,
        slots_per_epoch: SLOTS_PER_EPOCH,
        slot_duration_ms: SLOT_MS,
        genesis_time: genesis,
        behaviours: vec![Behaviour {
            from_epoch: 1,
            ..Behaviour::new(ValidatorSet::range(60, 63), BehaviourKind::Offline)
        }],
        ..Scenario::default()
    };
    let chain = Arc::new(RwLock::new(Sim::new(scenario).unwrap()));
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            SimNode::with_chain(
                chain.clone(),
                NodeOptions {
                    mode: Mode::Live { max_epochs: 1000 },
                    faults: vec![Fault {
                        kind: FaultKind::Stuck { slot: FREEZE },
                        from_slot: Some(FREEZE),
                        until_slot: None,
                        path_contains: None,
                    }],
                    ..NodeOptions::default()
                },
            )
            .await
            .unwrap(),
        );
    }

    let dir = tempfile::tempdir().unwrap();
    // node_grace: the chain stall is told after 5 s of stale heads (the
    // default two minutes would outlast the run).
    let raw: valwatch::config::RawConfig = toml::from_str(&format!(
        "[[groups]]\nname = \"steady\"\nvalidators = \"0-59\"\n\
         [[groups]]\nname = \"gone\"\nvalidators = \"60-63\"\n\
         [alerts]\nnode_grace = \"5s\"\nreminder_interval = \"off\"\nretry_min = \"100ms\"\n\
         [[alerts.webhook]]\nname = \"hook\"\nurl = \"http://{hook}/hook\"\n"
    ))
    .unwrap();
    let over = valwatch::config::Overrides {
        beacon_nodes: nodes.iter().map(|n| n.base_url()).collect(),
        validators: None,
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = valwatch::config::validate(raw, &over, dir.path()).unwrap();
    let url = config.effective_database_url();
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(valwatch::app::run_with(config, None, cancel.clone()));

    // Run until 40 s after the freeze (plus a slot for the last block).
    let frozen_at =
        UNIX_EPOCH + Duration::from_secs(genesis) + Duration::from_millis((FREEZE + 1) * SLOT_MS);
    let stop_at = frozen_at + AFTER;
    if let Ok(wait) = stop_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    // ---- what the store says.
    let store = valwatch::app::open_store(&url).await.unwrap();
    let report = store
        .report(&valwatch::store::ReportQuery {
            validators: None,
            from_epoch: None,
            to_epoch: None,
        })
        .await
        .unwrap();
    let late_missed: Vec<String> = report
        .proposals
        .iter()
        .filter(|p| p.status == ProposalStatus::Missed && p.slot.0 > FREEZE)
        .map(|p| format!("slot {} by {:?}", p.slot.0, p.validator_index))
        .collect();
    assert!(
        late_missed.is_empty(),
        "missed proposals after the head: {late_missed:?}"
    );
    let wrongly_missed: Vec<String> = report
        .attestations
        .iter()
        .filter(|a| a.status == AttestationStatus::Missed && a.validator_index.0 < 60)
        .map(|a| format!("{} in epoch {}", a.validator_index.0, a.epoch.0))
        .collect();
    assert!(
        wrongly_missed.is_empty(),
        "a healthy validator judged missed: {wrongly_missed:?}"
    );
    // Final verdicts stop where the chain does: the inclusion window of
    // epoch N ends with the last slot of N+1, so with the head at 32 the
    // last final epoch is 2, and it equals the ground truth.
    let cursor = store.cursor().await.unwrap().map(|c| c.0);
    assert_eq!(cursor, Some(2), "the last epoch judged for good");
    let truth = chain.read().unwrap().truth(0, 2, None);
    let want: BTreeMap<(u64, u64), AttestationStatus> = truth
        .attestations
        .iter()
        .map(|a| ((a.validator_index.0, a.epoch.0), a.status))
        .collect();
    for a in report.attestations.iter().filter(|a| a.epoch.0 <= 2) {
        assert_eq!(
            Some(&a.status),
            want.get(&(a.validator_index.0, a.epoch.0)),
            "validator {} epoch {}",
            a.validator_index.0,
            a.epoch.0
        );
    }
    store.close().await;

    // ---- what the person received.
    let hits = hits.lock().unwrap().clone();
    let summary: Vec<String> = hits
        .iter()
        .map(|m| format!("{} {} {}", m["kind"], m["rule"], m["subject"]))
        .collect();
    let count = |rule: &str, kind: &str| {
        hits.iter()
            .filter(|m| m["rule"] == rule && m["kind"] == kind)
            .count()
    };
    assert_eq!(count("chain_stalled", "firing"), 1, "{summary:#?}");
    assert_eq!(count("validator_down", "firing"), 1, "{summary:#?}");
    let others: Vec<&String> = summary
        .iter()
        .filter(|s| !s.contains("chain_stalled") && !s.contains("validator_down"))
        .collect();
    assert!(
        others.is_empty(),
        "only the stall and the down group: {others:#?}"
    );
    for m in &hits {
        let named: Vec<u64> = serde_json::from_value(m["validators"].clone()).unwrap();
        assert!(
            named.iter().all(|v| *v >= 60),
            "a validator that performed was named: {m:#}"
        );
        let text = m["summary"].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "{m:#}");
    }
    let stall = hits.iter().find(|m| m["rule"] == "chain_stalled").unwrap();
    assert_eq!(stall["subject"], "network");
    eprintln!("received: {summary:#?}\nstall: {}", stall["summary"]);
    for n in nodes {
        n.shutdown().await;
    }
}
