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
//!
//! And, on a manual clock, slot by slot from genesis (issue 16): nothing
//! is `safe` before two complete quiet epochs with duties exist — not at
//! a young chain, not for a validator activated mid-run (whose client runs
//! from before its activation, or never), not while pending, and not for
//! an exited validator until two epochs after its exit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

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

/// The activation scenario of issue 16, on a manual clock so that every
/// slot of epochs 0..=8 is asked about in milliseconds.
mod window {
    use super::*;
    use std::collections::BTreeMap;
    use valwatch::chain::{ManualClock, FAR_FUTURE_EPOCH};

    const GENESIS: u64 = 1_700_000_000;
    const SLOT_MS: u64 = 2000;
    /// Runs from genesis: never safe.
    const RUNNING: u64 = 5;
    /// Keys that never ran, active from genesis: `unknown` while the chain
    /// is younger than the window, `safe` once epochs 0 and 1 settled.
    const NEVER_RAN: u64 = 40;
    /// Activated in epoch 3; its client runs from before the activation
    /// and signs as soon as the validator is active.
    const RUNNING_LATE: u64 = 60;
    /// Activated in epoch 3; its client never runs. Epochs 3 and 4 are its
    /// first two quiet epochs with duties: `safe` from epoch 5.
    const OFFLINE_LATE: u64 = 61;
    /// Exits in epoch 6, its client stopped from epoch 4 on: quiet with
    /// duties in epochs 4 and 5, yet `safe` only once epochs 6 and 7, after
    /// the exit, settled (epoch 8), as the rule for exits says.
    const EXITING: u64 = 62;
    const EXITING_STOPS: u64 = 4;
    const EXIT_EPOCH: u64 = 6;
    /// Pending without an activation epoch for the whole run.
    const PENDING: u64 = 63;
    const ACTIVATION_EPOCH: u64 = 3;
    const LAST_SLOT: u64 = 8 * 8 + 7;

    fn scenario() -> Scenario {
        Scenario {
            seed: 16,
            validators: 64,
            slot_duration_ms: SLOT_MS,
            genesis_time: GENESIS,
            behaviours: vec![
                Behaviour::new(ValidatorSet::one(NEVER_RAN), BehaviourKind::Offline),
                Behaviour::new(
                    ValidatorSet::range(RUNNING_LATE, OFFLINE_LATE),
                    BehaviourKind::Activation {
                        epoch: ACTIVATION_EPOCH,
                    },
                ),
                Behaviour::new(ValidatorSet::one(OFFLINE_LATE), BehaviourKind::Offline),
                Behaviour::new(
                    ValidatorSet::one(EXITING),
                    BehaviourKind::Exit { epoch: EXIT_EPOCH },
                ),
                Behaviour {
                    from_epoch: EXITING_STOPS,
                    ..Behaviour::new(ValidatorSet::one(EXITING), BehaviourKind::Offline)
                },
                Behaviour::new(
                    ValidatorSet::one(PENDING),
                    BehaviourKind::Activation {
                        epoch: FAR_FUTURE_EPOCH,
                    },
                ),
            ],
            ..Scenario::default()
        }
    }

    fn at_slot(slot: u64) -> SystemTime {
        // Half a slot in: the slot's block is there, as a third in is
        // for `--watch`.
        UNIX_EPOCH + Duration::from_millis(GENESIS * 1000 + slot * SLOT_MS + SLOT_MS / 2)
    }

    /// Per validator, the verdict and reason at every slot asked.
    type Timeline = BTreeMap<u64, Vec<(u64, Verdict, String)>>;

    fn first_safe(t: &Timeline, v: u64) -> Option<u64> {
        t[&v]
            .iter()
            .find(|(_, verdict, _)| *verdict == Verdict::Safe)
            .map(|(s, ..)| *s)
    }

    /// Every answer for `v` in `slots` is `want`, with `text` in the reason.
    fn each(t: &Timeline, v: u64, slots: std::ops::Range<u64>, want: Verdict, text: &str) {
        let mut n = 0;
        for (slot, verdict, reason) in t[&v].iter().filter(|(s, ..)| slots.contains(s)) {
            assert_eq!(*verdict, want, "validator {v} at slot {slot}: {reason}");
            assert!(
                reason.contains(text),
                "validator {v} at slot {slot}: {reason}"
            );
            n += 1;
        }
        assert_eq!(n, slots.end - slots.start, "every slot asked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_validator_activated_mid_run_is_never_safe_before_two_quiet_epochs_with_duties() {
        let clock = Arc::new(ManualClock::new(at_slot(0)));
        let chain = Arc::new(RwLock::new(Sim::new(scenario()).unwrap()));
        let mut nodes = Vec::new();
        for _ in 0..2 {
            nodes.push(
                SimNode::with_chain(
                    chain.clone(),
                    NodeOptions {
                        mode: Mode::Live { max_epochs: 20 },
                        clock: clock.clone(),
                        ..NodeOptions::default()
                    },
                )
                .await
                .unwrap(),
            );
        }
        let asked = [
            RUNNING,
            NEVER_RAN,
            RUNNING_LATE,
            OFFLINE_LATE,
            EXITING,
            PENDING,
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
        let mut timeline = Timeline::new();
        for slot in 0..=LAST_SLOT {
            clock.set(at_slot(slot));
            let r = check.check(at_slot(slot)).await;
            assert_eq!(r.clock_slot, Some(slot), "{r:#?}");
            assert_ne!(r.exit_code, 0, "slot {slot}: validator {RUNNING} runs");
            for v in &r.validators {
                timeline.entry(v.validator_index.0).or_default().push((
                    slot,
                    v.verdict,
                    v.reason.clone(),
                ));
            }
        }
        for n in nodes {
            n.shutdown().await;
        }

        // The issue: at a young chain nothing is safe, whatever runs.
        for v in asked {
            for (slot, verdict, reason) in &timeline[&v] {
                if *slot < 16 {
                    assert_ne!(
                        *verdict,
                        Verdict::Safe,
                        "validator {v}, slot {slot}: {reason}"
                    );
                }
            }
        }
        each(
            &timeline,
            NEVER_RAN,
            0..16,
            Verdict::Unknown,
            "younger than the window",
        );

        // Running clients are never safe.
        for v in [RUNNING, RUNNING_LATE] {
            assert_eq!(
                first_safe(&timeline, v),
                None,
                "validator {v}: {:#?}",
                timeline[&v]
            );
        }
        // The late one: pending, then newly active, then seen signing.
        each(
            &timeline,
            RUNNING_LATE,
            0..24,
            Verdict::Unknown,
            "becomes active in epoch 3",
        );
        each(
            &timeline,
            RUNNING_LATE,
            32..LAST_SLOT + 1,
            Verdict::NotSafe,
            "seen by node",
        );
        assert!(
            timeline[&RUNNING_LATE]
                .iter()
                .any(|(s, v, _)| (24..32).contains(s) && *v == Verdict::NotSafe),
            "it signs in its first active epoch: {:#?}",
            timeline[&RUNNING_LATE]
        );

        // Safe exactly once the window is complete and settled: the second
        // window epoch settles by liveness two slots after its end.
        for (v, first, why) in [
            (NEVER_RAN, 17, "no activity in epochs"),
            (OFFLINE_LATE, 41, "active since epoch 3"),
            (EXITING, 65, "exited in epoch 6 and has no duties since"),
        ] {
            let got = first_safe(&timeline, v);
            assert_eq!(got, Some(first), "validator {v}: {:#?}", timeline[&v]);
            each(&timeline, v, first..LAST_SLOT + 1, Verdict::Safe, why);
        }
        each(
            &timeline,
            OFFLINE_LATE,
            16..40,
            Verdict::Unknown,
            "active in epoch 3",
        );
        // Quiet with duties in epochs 4 and 5, but exited in 6: not yet.
        each(&timeline, EXITING, 16..48, Verdict::NotSafe, "seen by node");
        each(
            &timeline,
            EXITING,
            48..64,
            Verdict::Unknown,
            "exited in epoch 6",
        );
        each(
            &timeline,
            PENDING,
            0..LAST_SLOT + 1,
            Verdict::Unknown,
            "is pending",
        );
    }
}
