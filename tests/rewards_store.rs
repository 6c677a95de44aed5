//! The rewards tables (migration 0004) on both backends: an epoch's rows
//! are rewritten (idempotent re-judging) without an unknown erasing a known
//! value, unknown stays NULL (not 0), the network baseline round-trips, the report carries both, the cost
//! of a stretch sums what is known, and retention prunes them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use sqlx::Connection;
use valwatch::analysis::network::NetworkRecord;
use valwatch::analysis::rewards::RewardRecord;
use valwatch::chain::{Epoch, ValidatorIndex};
use valwatch::store::{ReportQuery, Store};

fn row(
    v: u64,
    epoch: u64,
    attestation: Option<i64>,
    missed: Option<i64>,
    estimated: bool,
) -> RewardRecord {
    RewardRecord {
        validator_index: ValidatorIndex(v),
        epoch: Epoch(epoch),
        attestation_reward_gwei: attestation,
        attestation_ideal_gwei: attestation.map(|_| 100),
        sync_reward_gwei: None,
        proposer_reward_gwei: (v == 2).then_some(5_000),
        missed_gwei: missed,
        estimated,
    }
}

async fn contract(store: &Store) {
    let net = |epoch: u64, included: u64| NetworkRecord {
        epoch: Epoch(epoch),
        duties: 64,
        included,
        empty_slots: 1,
        slots: 8,
    };
    // A first write, then a second one with other values: the last counts.
    store
        .write_rewards(
            Epoch(3),
            &[row(1, 3, Some(1), Some(99), false)],
            Some(&net(3, 10)),
        )
        .await
        .unwrap();
    let final_rows = vec![
        row(1, 3, Some(-85), Some(185), false),
        row(2, 3, None, None, false),
    ];
    store
        .write_rewards(Epoch(3), &final_rows, Some(&net(3, 48)))
        .await
        .unwrap();
    store
        .write_rewards(Epoch(4), &[row(1, 4, Some(100), Some(40), true)], None)
        .await
        .unwrap();

    // The epoch judged again when the node no longer serves its rewards:
    // unknown does not erase what was known, and no baseline keeps it.
    store
        .write_rewards(Epoch(3), &[row(1, 3, None, None, false)], None)
        .await
        .unwrap();
    let all = store.rewards(&ReportQuery::default()).await.unwrap();
    let mut want = final_rows.clone();
    want.push(row(1, 4, Some(100), Some(40), true));
    assert_eq!(
        all, want,
        "rewritten per epoch, NULL kept as unknown, known kept"
    );

    let report = store.report(&ReportQuery::default()).await.unwrap();
    assert_eq!(report.rewards, want);
    assert_eq!(report.network, vec![net(3, 48)]);
    assert_eq!(report.network[0].participation(), Some(0.75));

    let only_2 = store
        .rewards(&ReportQuery {
            validators: Some(vec![ValidatorIndex(2)]),
            ..ReportQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only_2, vec![row(2, 3, None, None, false)]);

    let cost = store
        .downtime_cost(&[ValidatorIndex(1), ValidatorIndex(2)], Epoch(3), Epoch(4))
        .await
        .unwrap();
    assert_eq!(cost, Some((225, true)));
    let nothing = store
        .downtime_cost(&[ValidatorIndex(2)], Epoch(3), Epoch(4))
        .await
        .unwrap();
    assert_eq!(nothing, None, "unknown is not a cost of 0");

    store.prune(Epoch(4)).await.unwrap();
    assert_eq!(
        store.rewards(&ReportQuery::default()).await.unwrap(),
        vec![row(1, 4, Some(100), Some(40), true)]
    );
    assert!(store
        .network(&ReportQuery::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn rewards_tables_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    contract(&store).await;
}

#[tokio::test]
async fn rewards_tables_on_postgres() {
    let name = format!(
        "valwatch_rewards_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let url = valwatch::store::create_postgres_database(&common::pg_admin_url(), &name)
        .await
        .unwrap();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(contract(&store))).await;
    store.close().await;
    let mut admin = sqlx::PgConnection::connect(&common::pg_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
