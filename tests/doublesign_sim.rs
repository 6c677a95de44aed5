//! The double-signing watch end to end on made-up danger: the real daemon
//! (`app::run_with`, SQLite, alerting with a webhook channel) follows two
//! simulated nodes of one chain in which
//!
//! - validator 5 signs two votes for target epoch 2 (both reach blocks),
//! - the proposer of one slot of epoch 3 signs a second block for it (the
//!   nodes import it and announce it on their event streams; it never
//!   becomes canonical),
//! - an attester slashing naming 20 and 21 reaches the nodes' pools in
//!   epoch 2 (pool routes and event streams, never in a block),
//! - a proposer slashing of 30 reaches them in epoch 3.
//!
//! Each must reach a real HTTP webhook receiver as EXACTLY ONE critical
//! `double_signing` notification naming the right validator, although the
//! evidence is re-judged every slot, seen again in later epochs and
//! announced by both nodes; nobody else gets one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use valwatch::analysis::SlashingKind;
use valwatch::sim::{
    Behaviour, BehaviourKind, Mode, NodeOptions, Scenario, Sim, SimNode, ValidatorSet,
};

/// Half-second slots: 4 s epochs keep the run near 30 s and leave the
/// monitor's quarter-slot poll (250 ms floor) time to follow every block.
const SLOT_MS: u64 = 500;
/// The last epoch judged for good: two epochs after the last danger, so the
/// evidence is re-seen by later passes before the run ends.
const UNTIL: u64 = 5;

const DOUBLE_VOTER: u64 = 5;
const POOL_ATTESTER_SLASHED: [u64; 2] = [20, 21];
const POOL_PROPOSER_SLASHED: u64 = 30;

fn scenario(genesis_time: u64, double_proposal_slot: u64) -> Scenario {
    Scenario {
        seed: 6,
        validators: 64,
        slot_duration_ms: SLOT_MS,
        genesis_time,
        double_proposal_slots: vec![double_proposal_slot],
        behaviours: vec![
            Behaviour::new(
                ValidatorSet::one(DOUBLE_VOTER),
                BehaviourKind::DoubleVote { epoch: 2 },
            ),
            Behaviour::new(
                ValidatorSet::range(POOL_ATTESTER_SLASHED[0], POOL_ATTESTER_SLASHED[1]),
                BehaviourKind::PoolSlashing {
                    epoch: 2,
                    by: SlashingKind::Attester,
                },
            ),
            Behaviour::new(
                ValidatorSet::one(POOL_PROPOSER_SLASHED),
                BehaviourKind::PoolSlashing {
                    epoch: 3,
                    by: SlashingKind::Proposer,
                },
            ),
        ],
        ..Scenario::default()
    }
}

/// A slot of epoch 3 whose proposer is none of the other culprits (the
/// proposer depends on the whole scenario, so each candidate is tried).
fn scenario_with_distinct_culprits(genesis_time: u64) -> Scenario {
    let others = [
        DOUBLE_VOTER,
        POOL_ATTESTER_SLASHED[0],
        POOL_ATTESTER_SLASHED[1],
        POOL_PROPOSER_SLASHED,
    ];
    for slot in 25..32 {
        let sc = scenario(genesis_time, slot);
        let sim = Sim::new(sc.clone()).unwrap();
        if sim.proposer(slot).is_some_and(|p| !others.contains(&p)) {
            return sc;
        }
    }
    panic!("no slot of epoch 3 has a proposer distinct from the other culprits");
}

async fn webhook() -> (Arc<Mutex<Vec<serde_json::Value>>>, SocketAddr) {
    common::json_webhook().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_made_up_danger_is_exactly_one_critical_notification_for_the_right_validator() {
    let (hits, hook) = webhook().await;
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let chain = Arc::new(RwLock::new(
        Sim::new(scenario_with_distinct_culprits(genesis)).unwrap(),
    ));
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            SimNode::with_chain(
                chain.clone(),
                NodeOptions {
                    mode: Mode::Live {
                        max_epochs: UNTIL + 4,
                    },
                    ..NodeOptions::default()
                },
            )
            .await
            .unwrap(),
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let raw: valwatch::config::RawConfig = toml::from_str(&format!(
        "[alerts]\nretry_min = \"100ms\"\n[[alerts.webhook]]\nname = \"hook\"\nurl = \"http://{hook}/hook\"\n"
    ))
    .unwrap();
    let over = valwatch::config::Overrides {
        beacon_nodes: nodes.iter().map(|n| n.base_url()).collect(),
        validators: Some("0-63".into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = valwatch::config::validate(raw, &over, dir.path()).unwrap();
    valwatch::app::run_with(
        config,
        Some(valwatch::chain::Epoch(UNTIL)),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // The ground truth: what the scenario made, per (validator, kind, epoch).
    let truth = chain.read().unwrap().truth(0, UNTIL, None).danger;
    let mut want: Vec<(u64, String, u64)> = truth
        .iter()
        .map(|d| (d.validator_index.0, d.kind.as_str().to_string(), d.epoch.0))
        .collect();
    want.sort();
    let kinds: Vec<&str> = want.iter().map(|w| w.1.as_str()).collect();
    for k in [
        "double_vote",
        "double_proposal",
        "attester_slashing",
        "proposer_slashing",
    ] {
        assert!(kinds.contains(&k), "the scenario made no {k}: {want:?}");
    }
    assert_eq!(want.len(), 5, "{want:?}");

    let hits = hits.lock().unwrap().clone();
    let double: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|m| m["rule"] == "double_signing")
        .collect();
    // Incident ids are `double_signing/<group>/<epoch>/<kind>/<validator>`.
    let mut got: Vec<(u64, String, u64)> = double
        .iter()
        .map(|m| {
            let id = m["id"].as_str().unwrap_or_default();
            let parts: Vec<&str> = id.split('/').collect();
            assert_eq!(parts.len(), 5, "{m:#}");
            let validators = m["validators"].as_array().unwrap();
            assert_eq!(validators.len(), 1, "{m:#}");
            let v = validators[0].as_u64().unwrap();
            assert_eq!(parts[4], v.to_string(), "{m:#}");
            assert_eq!(m["epoch"].as_u64(), parts[2].parse().ok(), "{m:#}");
            assert_eq!(m["severity"], "critical", "{m:#}");
            assert_eq!(m["kind"], "event", "{m:#}");
            (v, parts[3].to_string(), m["epoch"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "notifications:\n{double:#?}");

    // Nothing else critical: no other rule fired a critical page on this
    // otherwise healthy chain (a slashing never on chain is no `slashed`).
    let other_critical: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|m| m["severity"] == "critical" && m["rule"] != "double_signing")
        .collect();
    assert!(other_critical.is_empty(), "{other_critical:#?}");

    for n in nodes {
        n.shutdown().await;
    }
}
