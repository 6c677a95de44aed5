//! One contract, two backends: every case below runs against SQLite (a temp
//! file) and a real PostgreSQL (127.0.0.1:5432, a fresh database per test,
//! dropped at the end). The `contract!` list at the bottom names the cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use sqlx::Connection;
use valwatch::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
    SlashingKind, SlashingRecord, SyncVerdict,
};
use valwatch::chain::{
    Epoch, Gwei, ProposerDuties, ProposerDuty, Root, Slot, ValidatorIndex, ValidatorStatus,
};
use valwatch::store::{
    CrossCheckRecord, EpochRecord, ReportQuery, Store, StoreError, ValidatorSummary,
};

// ------------------------------------------------------------- harness --

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store on a database of its own, and its URL for reopening.
struct TestDb {
    url: String,
    store: Store,
}

impl TestDb {
    /// A second, independent pool on the same database, migrated again (as
    /// a restarted daemon would).
    async fn reopen(&self) -> Store {
        let store = Store::connect(&self.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(String),
}

fn random_suffix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

async fn create(backend: Backend) -> (TestDb, Cleanup) {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            // A directory that does not exist yet: connect must create it.
            let path = dir.path().join("not/yet/there/valwatch.db");
            (format!("sqlite://{}", path.display()), Cleanup::Sqlite(dir))
        }
        Backend::Postgres => {
            let name = format!("valwatch_test_{}", random_suffix());
            let mut admin = sqlx::PgConnection::connect(&common::pg_admin_url())
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
            (common::pg_url(&name), Cleanup::Postgres(name))
        }
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (TestDb { url, store }, cleanup)
}

async fn drop_db(cleanup: Cleanup) {
    if let Cleanup::Postgres(name) = cleanup {
        let mut admin = sqlx::PgConnection::connect(&common::pg_admin_url())
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// Runs one case on a fresh database and removes the database afterwards,
/// also when the case fails.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let (db, cleanup) = create(backend).await;
    let outcome = AssertUnwindSafe(case(db)).catch_unwind().await;
    drop_db(cleanup).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::run(super::Backend::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::run(super::Backend::Postgres, super::$case).await;
                }
            )*
        }
    };
}

// ------------------------------------------------------------ builders --

fn v(i: u64) -> ValidatorIndex {
    ValidatorIndex(i)
}

fn root(byte: u8) -> Root {
    Root([byte; 32])
}

fn attestation(validator: u64, epoch: u64, status: AttestationStatus) -> AttestationVerdict {
    AttestationVerdict {
        validator_index: v(validator),
        epoch: Epoch(epoch),
        status,
        duty_slot: Some(Slot(epoch * 32 + validator % 32)),
        inclusion_slot: None,
        inclusion_delay: None,
        late: None,
        source_correct: None,
        target_correct: None,
        head_correct: None,
        reason: None,
    }
}

fn included(
    validator: u64,
    epoch: u64,
    delay: u64,
    head: Option<bool>,
    target: Option<bool>,
    source: Option<bool>,
) -> AttestationVerdict {
    let duty = epoch * 32 + validator % 32;
    AttestationVerdict {
        inclusion_slot: Some(Slot(duty + delay)),
        inclusion_delay: Some(delay),
        late: Some(delay > 1),
        head_correct: head,
        target_correct: target,
        source_correct: source,
        ..attestation(validator, epoch, AttestationStatus::Included)
    }
}

fn unknown(validator: u64, epoch: u64, reason: &str) -> AttestationVerdict {
    AttestationVerdict {
        duty_slot: None,
        reason: Some(reason.to_owned()),
        ..attestation(validator, epoch, AttestationStatus::Unknown)
    }
}

fn proposal(slot: u64, validator: u64, status: ProposalStatus) -> ProposalVerdict {
    ProposalVerdict {
        slot: Slot(slot),
        validator_index: Some(v(validator)),
        status,
        block_root: (status != ProposalStatus::Missed).then(|| root(slot as u8)),
        reason: (status == ProposalStatus::Orphaned).then(|| "reorged out".to_owned()),
    }
}

fn sync(validator: u64, epoch: u64, participated: u32, missed: u32) -> SyncVerdict {
    SyncVerdict {
        validator_index: v(validator),
        epoch: Epoch(epoch),
        participated,
        missed,
    }
}

fn balance(validator: u64, epoch: u64, gwei: u64, change: Option<i64>) -> BalanceRecord {
    BalanceRecord {
        validator_index: v(validator),
        epoch: Epoch(epoch),
        balance: Gwei(gwei),
        effective_balance: Gwei(32_000_000_000),
        status: ValidatorStatus::ActiveOngoing,
        slashed: false,
        balance_change: change,
    }
}

/// A record of one epoch with a bit of everything, every optional field
/// used somewhere, so a round trip proves every column.
fn full_record(epoch: u64, is_final: bool) -> EpochRecord {
    let s = epoch * 32;
    EpochRecord {
        epoch: Epoch(epoch),
        is_final,
        attestations: vec![
            included(1, epoch, 1, Some(true), Some(true), Some(true)),
            included(2, epoch, 3, Some(false), Some(true), None),
            attestation(3, epoch, AttestationStatus::Missed),
            attestation(4, epoch, AttestationStatus::Inactive),
            unknown(5, epoch, "block 12345 no longer served"),
        ],
        proposals: vec![
            proposal(s + 1, 1, ProposalStatus::Proposed),
            proposal(s + 2, 2, ProposalStatus::Missed),
            proposal(s + 3, 3, ProposalStatus::Orphaned),
        ],
        sync: vec![sync(1, epoch, 31, 1), sync(2, epoch, 0, 32)],
        balances: vec![
            balance(1, epoch, 32_000_012_345, Some(12_345)),
            BalanceRecord {
                status: ValidatorStatus::ExitedSlashed,
                slashed: true,
                ..balance(2, epoch, 31_000_000_000, Some(-1_000_000_000))
            },
            balance(3, epoch, 32_000_000_000, None),
        ],
        slashings: vec![SlashingRecord {
            validator_index: v(2),
            epoch: Epoch(epoch),
            included_in_slot: Slot(s + 5),
            kind: SlashingKind::Attester,
        }],
        cross_checks: vec![
            CrossCheckRecord {
                epoch: Epoch(epoch),
                slot: Slot(s + 31),
                node: "lighthouse".to_owned(),
                node_root: Some(root(7)),
                expected_root: Some(root(7)),
                agrees: true,
                error: None,
            },
            CrossCheckRecord {
                epoch: Epoch(epoch),
                slot: Slot(s + 31),
                node: "teku".to_owned(),
                node_root: None,
                expected_root: Some(root(7)),
                agrees: false,
                error: Some("timeout after 10s".to_owned()),
            },
        ],
    }
}

fn everything() -> ReportQuery {
    ReportQuery::default()
}

fn epochs(from: u64, to: u64) -> ReportQuery {
    ReportQuery {
        validators: None,
        from_epoch: Some(Epoch(from)),
        to_epoch: Some(Epoch(to)),
    }
}

// --------------------------------------------------------------- cases --

async fn writing_the_same_epoch_twice_changes_nothing(db: TestDb) {
    let record = full_record(7, true);
    let first = db.store.write_epoch(&record).await.unwrap();
    assert_eq!(
        (
            first.attestations,
            first.proposals,
            first.sync,
            first.balances,
            first.slashings,
            first.cross_checks
        ),
        (5, 3, 2, 3, 1, 2)
    );
    assert!(first.approx_bytes > 0);
    assert!(!first.kept_final);

    // Everything written comes back exactly, in order.
    let report = db.store.report(&everything()).await.unwrap();
    assert_eq!(report.attestations, record.attestations);
    assert_eq!(report.proposals, record.proposals);
    assert_eq!(report.sync, record.sync);
    assert_eq!(report.balances, record.balances);
    assert_eq!(
        db.store.slashings(&everything()).await.unwrap(),
        record.slashings
    );
    assert_eq!(
        db.store.cross_checks(&everything()).await.unwrap(),
        record.cross_checks
    );

    let second = db.store.write_epoch(&record).await.unwrap();
    assert_eq!(second.rows(), 0, "nothing changed, nothing rewritten");
    assert_eq!(second.approx_bytes, first.approx_bytes);
    let again = db.store.report(&everything()).await.unwrap();
    assert_eq!(again.attestations, report.attestations);
    assert_eq!(again.proposals, report.proposals);
    assert_eq!(again.sync, report.sync);
    assert_eq!(again.balances, report.balances);
    assert_eq!(
        db.store.cross_checks(&everything()).await.unwrap(),
        record.cross_checks
    );
}

async fn a_final_verdict_replaces_a_pending_one(db: TestDb) {
    let mut pending = EpochRecord {
        epoch: Epoch(3),
        is_final: false,
        attestations: vec![
            attestation(1, 3, AttestationStatus::Pending),
            attestation(2, 3, AttestationStatus::Pending),
        ],
        sync: vec![sync(1, 3, 10, 0)],
        ..Default::default()
    };
    db.store.write_epoch(&pending).await.unwrap();
    assert_eq!(db.store.cursor().await.unwrap(), None);

    let fin = EpochRecord {
        epoch: Epoch(3),
        is_final: true,
        attestations: vec![
            included(1, 3, 2, Some(true), Some(true), Some(true)),
            attestation(2, 3, AttestationStatus::Missed),
        ],
        sync: vec![sync(1, 3, 31, 1)],
        ..Default::default()
    };
    let stats = db.store.write_epoch(&fin).await.unwrap();
    assert_eq!((stats.attestations, stats.sync), (2, 1));
    let report = db.store.report(&everything()).await.unwrap();
    assert_eq!(report.attestations, fin.attestations);
    assert_eq!(report.sync, fin.sync);
    assert_eq!(db.store.cursor().await.unwrap(), Some(Epoch(3)));

    // A late pending write of a final epoch is refused as a whole.
    pending.attestations[0].reason = Some("late writer".to_owned());
    let refused = db.store.write_epoch(&pending).await.unwrap();
    assert!(refused.kept_final);
    assert_eq!((refused.rows(), refused.approx_bytes), (0, 0));
    let report = db.store.report(&everything()).await.unwrap();
    assert_eq!(report.attestations, fin.attestations);
    assert_eq!(report.sync, fin.sync);
}

async fn an_unknown_verdict_does_not_erase_a_known_one(db: TestDb) {
    let known = EpochRecord {
        epoch: Epoch(9),
        is_final: true,
        attestations: vec![
            included(1, 9, 1, Some(true), Some(true), Some(true)),
            attestation(2, 9, AttestationStatus::Pending),
        ],
        proposals: vec![proposal(290, 1, ProposalStatus::Proposed)],
        ..Default::default()
    };
    db.store.write_epoch(&known).await.unwrap();

    let rejudged = EpochRecord {
        epoch: Epoch(9),
        is_final: true,
        attestations: vec![unknown(1, 9, "pruned"), unknown(2, 9, "pruned")],
        proposals: vec![ProposalVerdict {
            block_root: None,
            reason: Some("pruned".to_owned()),
            ..proposal(290, 1, ProposalStatus::Unknown)
        }],
        ..Default::default()
    };
    let stats = db.store.write_epoch(&rejudged).await.unwrap();
    assert_eq!((stats.attestations, stats.proposals), (1, 0));

    let report = db.store.report(&everything()).await.unwrap();
    // The included vote stays; the pending one (not a verdict) gives way.
    assert_eq!(
        report.attestations,
        vec![
            known.attestations[0].clone(),
            rejudged.attestations[1].clone()
        ]
    );
    assert_eq!(report.proposals, known.proposals);
}

async fn the_cursor_only_moves_forward(db: TestDb) {
    assert_eq!(db.store.cursor().await.unwrap(), None);
    let write = |epoch: u64, is_final: bool| {
        let store = db.store.clone();
        async move {
            store
                .write_epoch(&EpochRecord {
                    epoch: Epoch(epoch),
                    is_final,
                    ..Default::default()
                })
                .await
                .unwrap();
            store.cursor().await.unwrap()
        }
    };
    assert_eq!(write(10, true).await, Some(Epoch(10)));
    assert_eq!(write(7, true).await, Some(Epoch(10)), "never backwards");
    assert_eq!(write(12, false).await, Some(Epoch(10)), "only final epochs");
    assert_eq!(write(11, true).await, Some(Epoch(11)));
}

async fn the_cursor_and_history_survive_reopening_the_database(db: TestDb) {
    db.store.write_epoch(&full_record(41, true)).await.unwrap();
    db.store.write_epoch(&full_record(42, true)).await.unwrap();
    db.store.write_epoch(&full_record(43, false)).await.unwrap();
    db.store.close().await;

    let reopened = db.reopen().await;
    reopened.ping().await.unwrap();
    assert_eq!(reopened.cursor().await.unwrap(), Some(Epoch(42)));
    let report = reopened.report(&everything()).await.unwrap();
    assert_eq!(report.attestations.len(), 15);
    assert_eq!(report.attestations[0].epoch, Epoch(41));
    reopened.close().await;
}

async fn proposer_duties_round_trip_and_a_new_answer_replaces_the_old(db: TestDb) {
    assert_eq!(db.store.proposer_duties(Epoch(3)).await.unwrap(), None);
    let duty = |slot, validator| ProposerDuty {
        slot: Slot(slot),
        validator_index: v(validator),
    };
    let first = ProposerDuties {
        epoch: Epoch(3),
        dependent_root: root(0xab),
        duties: vec![duty(96, 5), duty(97, 9), duty(98, 5), duty(99, 1)],
    };
    db.store.save_proposer_duties(&first).await.unwrap();
    assert_eq!(
        db.store.proposer_duties(Epoch(3)).await.unwrap(),
        Some(first.clone())
    );

    let after_reorg = ProposerDuties {
        epoch: Epoch(3),
        dependent_root: root(0xcd),
        duties: vec![duty(96, 2), duty(97, 9)],
    };
    db.store.save_proposer_duties(&after_reorg).await.unwrap();
    assert_eq!(
        db.store.proposer_duties(Epoch(3)).await.unwrap(),
        Some(after_reorg)
    );
    assert_eq!(db.store.proposer_duties(Epoch(4)).await.unwrap(), None);
}

async fn perishable_answers_round_trip_by_kind_and_epoch(db: TestDb) {
    let liveness =
        serde_json::json!([{"index": "1", "is_live": true}, {"index": "2", "is_live": false}]);
    let rewards = serde_json::json!({"total_rewards": [{"validator_index": "1", "head": "2856"}]});
    db.store
        .save_perishable("liveness", Epoch(5), &liveness)
        .await
        .unwrap();
    db.store
        .save_perishable("rewards", Epoch(5), &rewards)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .load_perishable("liveness", Epoch(5))
            .await
            .unwrap(),
        Some(liveness)
    );
    assert_eq!(
        db.store.load_perishable("rewards", Epoch(5)).await.unwrap(),
        Some(rewards)
    );
    assert_eq!(
        db.store
            .load_perishable("liveness", Epoch(6))
            .await
            .unwrap(),
        None
    );

    let newer = serde_json::json!([]);
    db.store
        .save_perishable("liveness", Epoch(5), &newer)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .load_perishable("liveness", Epoch(5))
            .await
            .unwrap(),
        Some(newer)
    );
}

async fn latest_balances_come_from_the_newest_epoch_before_the_asked_one(db: TestDb) {
    for (epoch, balances) in [
        (1, vec![balance(1, 1, 100, None)]),
        (2, vec![balance(1, 2, 200, Some(100))]),
        (4, vec![balance(1, 4, 400, Some(200))]),
        (5, vec![balance(2, 5, 5000, None)]),
    ] {
        db.store
            .write_epoch(&EpochRecord {
                epoch: Epoch(epoch),
                is_final: true,
                balances,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let ids = [v(1), v(2), v(3)];
    let latest = |before| {
        let store = db.store.clone();
        async move { store.latest_balances(&ids, Epoch(before)).await.unwrap() }
    };
    assert_eq!(latest(1).await, HashMap::new());
    assert_eq!(latest(4).await, HashMap::from([(v(1), Gwei(200))]));
    assert_eq!(latest(5).await, HashMap::from([(v(1), Gwei(400))]));
    assert_eq!(
        latest(100).await,
        HashMap::from([(v(1), Gwei(400)), (v(2), Gwei(5000))])
    );
    assert_eq!(
        db.store.latest_balances(&[], Epoch(100)).await.unwrap(),
        HashMap::new()
    );
    // Right after the last final epoch (kept in memory by the store): the
    // same answers as from the tables, also for validators it lacks.
    let after_last = |ids: Vec<ValidatorIndex>| {
        let store = db.store.clone();
        async move { store.latest_balances(&ids, Epoch(6)).await.unwrap() }
    };
    assert_eq!(
        after_last(vec![v(2)]).await,
        HashMap::from([(v(2), Gwei(5000))])
    );
    assert_eq!(
        after_last(vec![v(1), v(2), v(3)]).await,
        HashMap::from([(v(1), Gwei(400)), (v(2), Gwei(5000))])
    );
}

async fn reports_filter_by_validators_and_inclusive_epoch_bounds(db: TestDb) {
    for epoch in 1..=5 {
        db.store
            .write_epoch(&full_record(epoch, true))
            .await
            .unwrap();
    }
    let query = ReportQuery {
        validators: Some(vec![v(3), v(1)]),
        from_epoch: Some(Epoch(2)),
        to_epoch: Some(Epoch(4)),
    };
    let report = db.store.report(&query).await.unwrap();

    let att: Vec<(u64, u64)> = report
        .attestations
        .iter()
        .map(|a| (a.epoch.0, a.validator_index.0))
        .collect();
    assert_eq!(att, vec![(2, 1), (2, 3), (3, 1), (3, 3), (4, 1), (4, 3)]);
    let props: Vec<(u64, u64)> = report
        .proposals
        .iter()
        .map(|p| (p.slot.0, p.validator_index.unwrap().0))
        .collect();
    assert_eq!(
        props,
        vec![(65, 1), (67, 3), (97, 1), (99, 3), (129, 1), (131, 3)]
    );
    let sync: Vec<(u64, u64)> = report
        .sync
        .iter()
        .map(|s| (s.epoch.0, s.validator_index.0))
        .collect();
    assert_eq!(sync, vec![(2, 1), (3, 1), (4, 1)]);
    let bal: Vec<(u64, u64)> = report
        .balances
        .iter()
        .map(|b| (b.epoch.0, b.validator_index.0))
        .collect();
    assert_eq!(bal, vec![(2, 1), (2, 3), (3, 1), (3, 3), (4, 1), (4, 3)]);

    // Open bounds.
    let from_4 = ReportQuery {
        from_epoch: Some(Epoch(4)),
        ..Default::default()
    };
    assert_eq!(
        db.store.report(&from_4).await.unwrap().attestations.len(),
        10
    );
    let to_1 = ReportQuery {
        to_epoch: Some(Epoch(1)),
        ..Default::default()
    };
    assert_eq!(db.store.report(&to_1).await.unwrap().attestations.len(), 5);
    // An empty validator list selects nothing, not everything.
    let none = ReportQuery {
        validators: Some(vec![]),
        ..Default::default()
    };
    assert!(db
        .store
        .report(&none)
        .await
        .unwrap()
        .attestations
        .is_empty());
    // Cross-checks follow the epoch bounds only.
    let checks = db.store.cross_checks(&query).await.unwrap();
    assert_eq!(checks.len(), 6);
    assert_eq!(
        (checks[0].epoch, checks[0].node.as_str()),
        (Epoch(2), "lighthouse")
    );
}

async fn the_summary_counts_each_validators_duties(db: TestDb) {
    let records = [
        EpochRecord {
            epoch: Epoch(1),
            is_final: true,
            attestations: vec![
                included(1, 1, 1, Some(true), Some(true), Some(true)),
                unknown(2, 1, "pruned"),
            ],
            proposals: vec![proposal(40, 1, ProposalStatus::Proposed)],
            sync: vec![sync(1, 1, 30, 2)],
            ..Default::default()
        },
        EpochRecord {
            epoch: Epoch(2),
            is_final: true,
            attestations: vec![
                included(1, 2, 3, Some(false), Some(true), Some(true)),
                included(2, 2, 2, None, None, None),
            ],
            proposals: vec![
                proposal(70, 1, ProposalStatus::Missed),
                proposal(71, 2, ProposalStatus::Orphaned),
            ],
            sync: vec![sync(1, 2, 31, 1)],
            ..Default::default()
        },
        EpochRecord {
            epoch: Epoch(3),
            is_final: true,
            attestations: vec![
                attestation(1, 3, AttestationStatus::Missed),
                attestation(2, 3, AttestationStatus::Inactive),
            ],
            ..Default::default()
        },
        EpochRecord {
            epoch: Epoch(4),
            is_final: false,
            attestations: vec![attestation(1, 4, AttestationStatus::Pending)],
            ..Default::default()
        },
    ];
    for r in &records {
        db.store.write_epoch(r).await.unwrap();
    }

    let summary = db.store.summary(&everything()).await.unwrap();
    let expected_v1 = ValidatorSummary {
        validator_index: v(1),
        attestations_included: 2,
        attestations_missed: 1,
        attestations_pending: 1,
        attestations_unknown: 0,
        attestations_inactive: 0,
        average_inclusion_delay: Some(2.0),
        head_correct_rate: Some(0.5),
        target_correct_rate: Some(1.0),
        source_correct_rate: Some(1.0),
        proposals_proposed: 1,
        proposals_missed: 1,
        proposals_orphaned: 0,
        proposals_unknown: 0,
        sync_participated: 61,
        sync_missed: 3,
    };
    let expected_v2 = ValidatorSummary {
        validator_index: v(2),
        attestations_included: 1,
        attestations_missed: 0,
        attestations_pending: 0,
        attestations_unknown: 1,
        attestations_inactive: 1,
        average_inclusion_delay: Some(2.0),
        // Included, but correctness unknown: no rate rather than 0 %.
        head_correct_rate: None,
        target_correct_rate: None,
        source_correct_rate: None,
        proposals_proposed: 0,
        proposals_missed: 0,
        proposals_orphaned: 1,
        proposals_unknown: 0,
        sync_participated: 0,
        sync_missed: 0,
    };
    assert_eq!(summary, vec![expected_v1.clone(), expected_v2]);

    // Filters apply to the summary too.
    let only_v1_epoch_2 = ReportQuery {
        validators: Some(vec![v(1)]),
        ..epochs(2, 2)
    };
    assert_eq!(
        db.store.summary(&only_v1_epoch_2).await.unwrap(),
        vec![ValidatorSummary {
            attestations_included: 1,
            attestations_missed: 0,
            attestations_pending: 0,
            average_inclusion_delay: Some(3.0),
            head_correct_rate: Some(0.0),
            proposals_proposed: 0,
            sync_participated: 31,
            sync_missed: 1,
            ..expected_v1
        }]
    );
}

async fn pruning_deletes_old_epochs_but_keeps_the_cursor_and_meta(db: TestDb) {
    db.store.check_network(root(1)).await.unwrap();
    for epoch in 1..=5 {
        db.store
            .write_epoch(&full_record(epoch, true))
            .await
            .unwrap();
        db.store
            .save_proposer_duties(&ProposerDuties {
                epoch: Epoch(epoch),
                dependent_root: root(2),
                duties: vec![ProposerDuty {
                    slot: Slot(epoch * 32),
                    validator_index: v(1),
                }],
            })
            .await
            .unwrap();
        db.store
            .save_perishable("liveness", Epoch(epoch), &serde_json::json!([]))
            .await
            .unwrap();
    }

    let deleted = db.store.prune(Epoch(3)).await.unwrap();
    // Per epoch: 5 attestations, 3 proposals, 2 sync, 3 balances,
    // 1 slashing, 2 cross-checks, 1 duty, 1 duty set, 1 perishable, 1 epoch.
    assert_eq!(deleted, 2 * (5 + 3 + 2 + 3 + 1 + 2 + 1 + 1 + 1 + 1));

    let report = db.store.report(&everything()).await.unwrap();
    assert_eq!(report.attestations.len(), 15);
    assert!(report.attestations.iter().all(|a| a.epoch >= Epoch(3)));
    assert!(report.proposals.iter().all(|p| p.slot >= Slot(96)));
    assert_eq!(db.store.proposer_duties(Epoch(2)).await.unwrap(), None);
    assert!(db.store.proposer_duties(Epoch(3)).await.unwrap().is_some());
    assert_eq!(
        db.store
            .load_perishable("liveness", Epoch(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(db.store.cursor().await.unwrap(), Some(Epoch(5)));
    db.store.check_network(root(1)).await.unwrap();

    // Pruning everything still keeps the cursor and the network.
    db.store.prune(Epoch(1_000)).await.unwrap();
    assert!(db
        .store
        .report(&everything())
        .await
        .unwrap()
        .attestations
        .is_empty());
    assert_eq!(db.store.cursor().await.unwrap(), Some(Epoch(5)));
    assert!(db.store.check_network(root(9)).await.is_err());
    assert_eq!(db.store.prune(Epoch(1_000)).await.unwrap(), 0);
}

async fn a_database_of_another_network_is_refused(db: TestDb) {
    let mainnet = root(0x4b);
    let sepolia = root(0xd8);
    db.store.check_network(mainnet).await.unwrap();
    db.store.check_network(mainnet).await.unwrap();
    match db.store.check_network(sepolia).await {
        Err(StoreError::NetworkMismatch { stored, expected }) => {
            assert_eq!(stored, mainnet.to_hex());
            assert_eq!(expected, sepolia);
        }
        other => panic!("expected a network mismatch, got {other:?}"),
    }
    // The error names both networks for the operator.
    let text = db
        .store
        .check_network(sepolia)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&mainnet.to_hex()) && text.contains(&sepolia.to_hex()),
        "{text}"
    );
    assert_eq!(
        db.store.meta("genesis_validators_root").await.unwrap(),
        Some(mainnet.to_hex())
    );
}

async fn a_record_that_mixes_epochs_is_refused_and_writes_nothing(db: TestDb) {
    let mut record = full_record(6, true);
    record
        .attestations
        .push(attestation(9, 5, AttestationStatus::Missed));
    match db.store.write_epoch(&record).await {
        Err(StoreError::InvalidRecord { epoch, problem }) => {
            assert_eq!(epoch, Epoch(6));
            assert!(problem.contains("validator 9"), "{problem}");
        }
        other => panic!("expected an invalid record, got {other:?}"),
    }
    assert!(db
        .store
        .report(&everything())
        .await
        .unwrap()
        .attestations
        .is_empty());
    assert_eq!(db.store.cursor().await.unwrap(), None);
}

async fn one_epoch_of_100000_attestations_is_written_in_one_go(db: TestDb) {
    const N: u64 = 100_000;
    let epoch = 300_000;
    let attestations: Vec<_> = (0..N)
        .map(|i| match i % 10 {
            0 => attestation(i, epoch, AttestationStatus::Missed),
            _ => included(
                i,
                epoch,
                1 + i % 3,
                Some(i % 7 != 0),
                Some(true),
                Some(true),
            ),
        })
        .collect();
    let record = EpochRecord {
        epoch: Epoch(epoch),
        is_final: true,
        attestations,
        ..Default::default()
    };

    let started = Instant::now();
    let stats = db.store.write_epoch(&record).await.unwrap();
    let first = started.elapsed();
    assert_eq!(stats.attestations, N);

    let started = Instant::now();
    let again = db.store.write_epoch(&record).await.unwrap();
    let second = started.elapsed();
    assert_eq!(again.attestations, 0);

    println!(
        "{}: wrote {N} attestation rows (~{} KiB) in {first:?}; rewrote them unchanged in {second:?}",
        db.store.backend_name(),
        stats.approx_bytes / 1024,
    );

    let report = db.store.report(&epochs(epoch, epoch)).await.unwrap();
    assert_eq!(report.attestations.len() as u64, N);
    assert_eq!(report.attestations[12_345], record.attestations[12_345]);
    let summary = db
        .store
        .summary(&ReportQuery {
            validators: Some(vec![v(10), v(11)]),
            ..everything()
        })
        .await
        .unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|s| (s.attestations_included, s.attestations_missed))
            .collect::<Vec<_>>(),
        vec![(0, 1), (1, 0)]
    );
}

async fn a_migrated_store_migrates_again_harmlessly_and_answers_ping(db: TestDb) {
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    db.store.set_meta("schema_note", "a").await.unwrap();
    db.store.set_meta("schema_note", "b").await.unwrap();
    assert_eq!(
        db.store.meta("schema_note").await.unwrap(),
        Some("b".to_owned())
    );
    assert_eq!(db.store.meta("absent").await.unwrap(), None);
}

/// Issue 11: a slot without a block whose proposer nobody serves any more
/// is stored `unknown` without a validator, read back as such, and counts
/// for no validator in the summary.
async fn an_empty_slot_of_unknown_proposer_is_stored_and_blames_nobody(db: TestDb) {
    let record = EpochRecord {
        epoch: Epoch(3),
        is_final: true,
        proposals: vec![
            proposal(24, 5, ProposalStatus::Proposed),
            ProposalVerdict {
                slot: Slot(25),
                validator_index: None,
                status: ProposalStatus::Unknown,
                block_root: None,
                reason: Some("proposer duties no longer served".into()),
            },
        ],
        ..Default::default()
    };
    db.store.write_epoch(&record).await.unwrap();
    // Written again: nothing changes.
    assert_eq!(db.store.write_epoch(&record).await.unwrap().proposals, 0);
    let report = db.store.report(&everything()).await.unwrap();
    assert_eq!(report.proposals, record.proposals);
    let summary = db.store.summary(&everything()).await.unwrap();
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0].validator_index, v(5));
    assert_eq!(summary[0].proposals_unknown, 0);
}

contract!(
    an_empty_slot_of_unknown_proposer_is_stored_and_blames_nobody,
    writing_the_same_epoch_twice_changes_nothing,
    a_final_verdict_replaces_a_pending_one,
    an_unknown_verdict_does_not_erase_a_known_one,
    the_cursor_only_moves_forward,
    the_cursor_and_history_survive_reopening_the_database,
    proposer_duties_round_trip_and_a_new_answer_replaces_the_old,
    perishable_answers_round_trip_by_kind_and_epoch,
    latest_balances_come_from_the_newest_epoch_before_the_asked_one,
    reports_filter_by_validators_and_inclusive_epoch_bounds,
    the_summary_counts_each_validators_duties,
    pruning_deletes_old_epochs_but_keeps_the_cursor_and_meta,
    a_database_of_another_network_is_refused,
    a_record_that_mixes_epochs_is_refused_and_writes_nothing,
    one_epoch_of_100000_attestations_is_written_in_one_go,
    a_migrated_store_migrates_again_harmlessly_and_answers_ping,
);

// ------------------------------------------------- backend-specific cases --

#[tokio::test]
async fn connection_errors_never_show_the_database_password() {
    // Port 1 on loopback: refused at once, nothing leaves the machine.
    let err = Store::connect("postgres://valwatch:s3cr3t-pw@127.0.0.1:1/valwatch")
        .await
        .unwrap_err();
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(matches!(err, StoreError::Connect { .. }), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("valwatch:***@127.0.0.1:1"), "{text}");
    assert!(err.is_transient(), "a refused connection is worth retrying");
}

#[tokio::test]
async fn an_unsupported_url_is_refused_by_name() {
    let err = Store::connect("mysql://root:pw@127.0.0.1/x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
    assert!(!err.to_string().contains("pw"));
}

#[tokio::test]
async fn sqlite_creates_the_file_and_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/valwatch.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(path.is_file());
    store.close().await;
}

#[tokio::test]
async fn an_in_memory_sqlite_store_keeps_its_data_while_open() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store.write_epoch(&full_record(2, true)).await.unwrap();
    assert_eq!(store.cursor().await.unwrap(), Some(Epoch(2)));
    assert_eq!(
        store
            .report(&everything())
            .await
            .unwrap()
            .attestations
            .len(),
        5
    );
}
