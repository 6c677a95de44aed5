//! `failover-check` reads each node's pools: against two simulated nodes
//! whose liveness route is switched off (so blocks and pools are the only
//! witnesses),
//!
//! - a validator whose votes reach the pool but never a block is
//!   `not_safe` (`pool_attestation` evidence);
//! - offline validators named by an attester or a proposer slashing that
//!   waits in the pool are `not_safe` (`double_sign`);
//! - a validator whose two different votes for one target epoch both wait
//!   in the pool is `not_safe` (`double_sign`), not just active;
//! - an offline validator with nothing anywhere is `safe`: the same check
//!   does say safe when nothing says otherwise.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use valwatch::analysis::SlashingKind;
use valwatch::beacon::client::ValidatorId;
use valwatch::beacon::{NodeConfig, NodeRole};
use valwatch::chain::ValidatorIndex;
use valwatch::failover::judge::{EvidenceKind, Verdict};
use valwatch::failover::FailoverCheck;
use valwatch::sim::{
    Behaviour, BehaviourKind, Fault, FaultKind, Mode, NodeOptions, Scenario, Sim, SimNode,
    ValidatorSet,
};

const SLOT_MS: u64 = 1000;
/// The clock sits at this slot when the check starts: epoch 6, slot 2.
/// Epochs 3 and 4 are settled by their inclusion windows, so two quiet
/// epochs can be confirmed without liveness (epoch 5's window is open).
const NOW_SLOT: u64 = 6 * 8 + 2;

/// Votes only in the pool, and no sync duty, from genesis on.
const POOL_ONLY: (u64, u64) = (8, 15);
const OFFLINE_QUIET: u64 = 40;
const OFFLINE_ATTESTER_SLASHED: u64 = 41;
const OFFLINE_PROPOSER_SLASHED: u64 = 42;
/// Signs two votes for target epoch 5; neither leaves the pool.
const POOL_DOUBLE_VOTER: u64 = 50;

fn scenario(genesis_time: u64) -> Scenario {
    let offline = ValidatorSet::range(OFFLINE_QUIET, OFFLINE_PROPOSER_SLASHED);
    Scenario {
        seed: 11,
        validators: 64,
        slot_duration_ms: SLOT_MS,
        genesis_time,
        behaviours: vec![
            Behaviour::new(
                ValidatorSet::range(POOL_ONLY.0, POOL_ONLY.1),
                BehaviourKind::Unincluded,
            ),
            Behaviour::new(
                ValidatorSet::range(POOL_ONLY.0, POOL_ONLY.1),
                BehaviourKind::NoSync,
            ),
            Behaviour::new(offline, BehaviourKind::Offline),
            Behaviour::new(
                ValidatorSet::one(POOL_DOUBLE_VOTER),
                BehaviourKind::Unincluded,
            ),
            Behaviour::new(
                ValidatorSet::one(POOL_DOUBLE_VOTER),
                BehaviourKind::PoolDoubleVote { epoch: 5 },
            ),
            Behaviour::new(
                ValidatorSet::one(OFFLINE_ATTESTER_SLASHED),
                BehaviourKind::PoolSlashing {
                    epoch: 1,
                    by: SlashingKind::Attester,
                },
            ),
            Behaviour::new(
                ValidatorSet::one(OFFLINE_PROPOSER_SLASHED),
                BehaviourKind::PoolSlashing {
                    epoch: 2,
                    by: SlashingKind::Proposer,
                },
            ),
        ],
        ..Scenario::default()
    }
}

fn node(name: &str, url: &str) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        url: url.parse().unwrap(),
        role: NodeRole::Private,
        headers: vec![],
        timeout: Duration::from_secs(5),
        max_requests_per_second: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_votes_and_pool_slashings_make_a_validator_not_safe() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // Genesis in the past so that the clock is at NOW_SLOT (whole seconds).
    let genesis = now.as_secs() - NOW_SLOT * SLOT_MS / 1000;
    let sim = Sim::new(scenario(genesis)).unwrap();
    // The pool-only validator must not propose in the epochs read (3..=7:
    // a slow run may cross into epoch 7), or its block would be activity.
    let pool_only = (POOL_ONLY.0..=POOL_ONLY.1)
        .find(|&v| (3 * 8..8 * 8).all(|s| sim.proposer(s) != Some(v)))
        .expect("one of 8..15 proposes nothing in epochs 3..=7");
    let chain = Arc::new(RwLock::new(sim));
    // No liveness: a 400 is a range limit, which the check tolerates.
    let no_liveness = Fault {
        kind: FaultKind::Status { code: 400 },
        from_slot: None,
        until_slot: None,
        path_contains: Some("/validator/liveness".into()),
    };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            SimNode::with_chain(
                chain.clone(),
                NodeOptions {
                    mode: Mode::Live { max_epochs: 20 },
                    faults: vec![no_liveness.clone()],
                    ..NodeOptions::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    let asked = [
        pool_only,
        OFFLINE_QUIET,
        OFFLINE_ATTESTER_SLASHED,
        OFFLINE_PROPOSER_SLASHED,
        POOL_DOUBLE_VOTER,
    ];
    let mut check = FailoverCheck::new(
        vec![
            node("a", &nodes[0].base_url()),
            node("b", &nodes[1].base_url()),
        ],
        asked
            .iter()
            .map(|&v| ValidatorId::Index(ValidatorIndex(v)))
            .collect(),
        2,
    )
    .unwrap();
    let r = check.check(SystemTime::now()).await;
    assert_eq!(r.current_epoch, Some(6), "{r:#?}");
    let of = |v: u64| {
        r.validators
            .iter()
            .find(|x| x.validator_index.0 == v)
            .unwrap()
    };

    // Control: nothing anywhere, both nodes answer everything: safe.
    assert_eq!(of(OFFLINE_QUIET).verdict, Verdict::Safe, "{r:#?}");

    let p = of(pool_only);
    assert_eq!(p.verdict, Verdict::NotSafe, "{p:#?}");
    assert!(
        p.evidence
            .iter()
            .all(|e| e.kind == EvidenceKind::PoolAttestation),
        "its only activity is in the pool: {p:#?}"
    );
    let epochs: Vec<u64> = p.evidence.iter().map(|e| e.epoch.0).collect();
    assert!(epochs.iter().all(|&e| e == 5 || e == 6), "{p:#?}");
    for name in ["a", "b"] {
        assert!(p.evidence.iter().any(|e| e.node == name), "{p:#?}");
    }
    assert!(p.reason.contains("pool_attestation"), "{}", p.reason);

    for (v, epoch) in [
        (OFFLINE_ATTESTER_SLASHED, 1),
        (OFFLINE_PROPOSER_SLASHED, 2),
        (POOL_DOUBLE_VOTER, 5),
    ] {
        let s = of(v);
        assert_eq!(s.verdict, Verdict::NotSafe, "{s:#?}");
        assert!(
            s.evidence
                .iter()
                .any(|e| e.kind == EvidenceKind::DoubleSign && e.epoch.0 == epoch),
            "{s:#?}"
        );
        assert!(s.reason.contains("double-signing"), "{}", s.reason);
    }
    assert_eq!(r.exit_code, 1);

    for n in nodes {
        n.shutdown().await;
    }
}
