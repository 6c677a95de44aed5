//! The SQLite backend: the embedded default, one file next to the daemon.
//!
//! Owns: the connection settings and every SQLite statement. Bulk writes
//! send all rows of a table as ONE JSON text parameter (an array of rows,
//! each an array of column values) and insert `SELECT value ->> 0, … FROM
//! json_each(?1)`. Chosen over multi-row VALUES because it keeps one
//! statement per table whatever the row count: VALUES would need chunks
//! under SQLITE_MAX_VARIABLE_NUMBER (32 766 since 3.32), i.e. ~35
//! statements for 100 000 attestation rows, and a statement text that
//! changes with the row count defeats the statement cache. JSON parsing
//! costs little next to the b-tree writes, and integers within i64 survive
//! JSON exactly (`codec` never lets larger ones through).
//! Must not: hold domain rules; those are in `codec` and shared with
//! PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::codec::{self, impl_read_row, read_error, EpochRows, Filter, UpsertSpec};
use super::{db, Report, StoreError, ValidatorSummary, WriteStats};

/// WAL lets readers (reports, HTTP) run while the epoch task writes; more
/// connections than this only queue on the single writer lock.
const MAX_CONNECTIONS: u32 = 4;

/// How long a writer waits for the write lock before SQLITE_BUSY. The lock
/// is held for one epoch transaction (about a second for 100 000 rows) or
/// one retention run; 30 s covers a slow disk without hiding a stuck one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Writers take the lock up front: a deferred transaction that reads first
/// and writes later fails with SQLITE_BUSY instead of waiting when another
/// writer got in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

impl_read_row!(SqliteRow);

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

pub(super) async fn connect(url: &str, target: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            target: target.to_owned(),
            source,
        })?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL never corrupts the file; a power cut may lose
        // the last commits, which are then redone (the cursor is written in
        // the same transaction as the epoch).
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT);

    let memory = is_in_memory(url);
    if !memory {
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
    }

    let pool = if memory {
        // An in-memory database lives as long as one connection to it: keep
        // exactly one, forever.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
    };
    pool.connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            target: target.to_owned(),
            source,
        })
}

/// Opens an existing database file for reading only (`report`,
/// `check-config`): nothing is created, migrated or written. `None` when
/// the file does not exist.
pub(super) async fn connect_read_only(
    url: &str,
    target: &str,
) -> Result<Option<SqlitePool>, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            target: target.to_owned(),
            source,
        })?
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    if is_in_memory(url) {
        // A fresh in-memory database is empty; nothing to read.
        return Ok(None);
    }
    if !options.get_filename().is_file() {
        return Ok(None);
    }
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map(Some)
        .map_err(|source| StoreError::Connect {
            target: target.to_owned(),
            source,
        })
}

/// Versions recorded in sqlx's migration table (none if it is absent),
/// read without creating the table as the migrator would.
pub(super) async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(db("look for the migration table"))?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(db("read the applied migrations"))
}

/// Versions of the migrations built into this binary.
pub(super) fn known_migrations() -> Vec<i64> {
    sqlx::migrate!("./migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .collect()
}

pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/sqlite")
        .run(pool)
        .await
        .map_err(|source| StoreError::Migrate {
            backend: "sqlite",
            source,
        })
}

pub(super) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db("ping"))
}

/// `INSERT INTO t (cols) SELECT value ->> 0, … FROM json_each(?1) WHERE true
/// ON CONFLICT …`. The `WHERE true` is required: without it SQLite would
/// parse `ON CONFLICT` as a join constraint of the SELECT.
fn upsert_sql(spec: &UpsertSpec) -> String {
    let values = (0..spec.columns().count())
        .map(|i| format!("value ->> {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({}) SELECT {values} FROM json_each(?1) WHERE true{}",
        spec.table,
        spec.column_list(),
        spec.conflict_clause()
    )
}

async fn upsert<R: Serialize>(
    tx: &mut Transaction<'_, Sqlite>,
    spec: &UpsertSpec,
    rows: &[R],
    op: &'static str,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_string(rows).map_err(|e| StoreError::Database {
        op,
        source: sqlx::Error::Encode(Box::new(e)),
    })?;
    let done = sqlx::query(&upsert_sql(spec))
        .bind(json)
        .execute(&mut **tx)
        .await
        .map_err(db(op))?;
    Ok(done.rows_affected())
}

pub(super) async fn write_epoch(
    pool: &SqlitePool,
    rows: &EpochRows<'_>,
) -> Result<WriteStats, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db("begin the epoch write"))?;
    let stored_final: Option<bool> =
        sqlx::query_scalar("SELECT is_final FROM epochs WHERE epoch = ?1")
            .bind(rows.epoch)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read the epoch state"))?;
    if stored_final == Some(true) && !rows.is_final {
        tx.rollback()
            .await
            .map_err(db("end the refused epoch write"))?;
        return Ok(WriteStats {
            kept_final: true,
            ..WriteStats::default()
        });
    }

    // Each row as a JSON array in the column order of its UpsertSpec.
    let attestations: Vec<_> = rows
        .attestations
        .iter()
        .map(|r| {
            (
                r.epoch,
                r.validator_index,
                r.status,
                r.duty_slot,
                r.inclusion_slot,
                r.inclusion_delay,
                r.late,
                r.source_correct,
                r.target_correct,
                r.head_correct,
                r.reason,
            )
        })
        .collect();
    let proposals: Vec<_> = rows
        .proposals
        .iter()
        .map(|r| {
            (
                r.slot,
                r.epoch,
                r.validator_index,
                r.status,
                r.block_root.as_deref(),
                r.reason,
            )
        })
        .collect();
    let sync: Vec<_> = rows
        .sync
        .iter()
        .map(|r| (r.epoch, r.validator_index, r.participated, r.missed))
        .collect();
    let balances: Vec<_> = rows
        .balances
        .iter()
        .map(|r| {
            (
                r.epoch,
                r.validator_index,
                r.balance,
                r.effective_balance,
                r.status,
                r.slashed,
                r.balance_change,
            )
        })
        .collect();
    let slashings: Vec<_> = rows
        .slashings
        .iter()
        .map(|r| (r.epoch, r.validator_index, r.kind, r.included_in_slot))
        .collect();
    let cross_checks: Vec<_> = rows
        .cross_checks
        .iter()
        .map(|r| {
            (
                r.epoch,
                r.node,
                r.slot,
                r.node_root.as_deref(),
                r.expected_root.as_deref(),
                r.agrees,
                r.error,
            )
        })
        .collect();

    let stats = WriteStats {
        attestations: upsert(
            &mut tx,
            &codec::ATTESTATIONS,
            &attestations,
            "write attestations",
        )
        .await?,
        proposals: upsert(&mut tx, &codec::PROPOSALS, &proposals, "write proposals").await?,
        sync: upsert(&mut tx, &codec::SYNC, &sync, "write sync participation").await?,
        balances: upsert(&mut tx, &codec::BALANCES, &balances, "write balances").await?,
        slashings: upsert(&mut tx, &codec::SLASHINGS, &slashings, "write slashings").await?,
        cross_checks: upsert(
            &mut tx,
            &codec::CROSS_CHECKS,
            &cross_checks,
            "write cross-checks",
        )
        .await?,
        ..WriteStats::default()
    };

    sqlx::query(
        "INSERT INTO epochs (epoch, is_final) VALUES (?1, ?2) \
         ON CONFLICT (epoch) DO UPDATE SET is_final = excluded.is_final \
         WHERE epochs.is_final IS DISTINCT FROM excluded.is_final",
    )
    .bind(rows.epoch)
    .bind(rows.is_final)
    .execute(&mut *tx)
    .await
    .map_err(db("mark the epoch written"))?;

    if rows.is_final {
        sqlx::query(
            "INSERT INTO cursors (name, epoch) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch \
             WHERE cursors.epoch < excluded.epoch",
        )
        .bind(codec::PROCESSED_CURSOR)
        .bind(rows.epoch)
        .execute(&mut *tx)
        .await
        .map_err(db("advance the cursor"))?;
    }

    tx.commit().await.map_err(db("commit the epoch write"))?;
    Ok(stats)
}

pub(super) async fn cursor(pool: &SqlitePool, name: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT epoch FROM cursors WHERE name = ?1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db("read the cursor"))
}

pub(super) async fn meta(pool: &SqlitePool, key: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db("read meta"))
}

pub(super) async fn set_meta(pool: &SqlitePool, key: &str, value: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(db("write meta"))
}

/// Stores `value` under `key` unless a value is there; returns the stored one.
pub(super) async fn meta_insert_or_get(
    pool: &SqlitePool,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db("begin the meta check"))?;
    sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db("write meta"))?;
    let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("read meta"))?;
    tx.commit().await.map_err(db("commit the meta check"))?;
    Ok(stored)
}

pub(super) async fn save_proposer_duties(
    pool: &SqlitePool,
    epoch: i64,
    dependent_root: &str,
    slots: Vec<i64>,
    validators: Vec<i64>,
) -> Result<(), StoreError> {
    let pairs: Vec<(i64, i64)> = slots.into_iter().zip(validators).collect();
    let json = serde_json::to_string(&pairs).map_err(|e| StoreError::Database {
        op: "save proposer duties",
        source: sqlx::Error::Encode(Box::new(e)),
    })?;
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db("begin saving duties"))?;
    sqlx::query("DELETE FROM proposer_duties WHERE epoch = ?1")
        .bind(epoch)
        .execute(&mut *tx)
        .await
        .map_err(db("replace proposer duties"))?;
    sqlx::query(
        "INSERT INTO proposer_duty_sets (epoch, dependent_root) VALUES (?1, ?2) \
         ON CONFLICT (epoch) DO UPDATE SET dependent_root = excluded.dependent_root",
    )
    .bind(epoch)
    .bind(dependent_root)
    .execute(&mut *tx)
    .await
    .map_err(db("save the proposer duty set"))?;
    sqlx::query(
        "INSERT INTO proposer_duties (epoch, slot, validator_index) \
         SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2)",
    )
    .bind(epoch)
    .bind(json)
    .execute(&mut *tx)
    .await
    .map_err(db("save proposer duties"))?;
    tx.commit().await.map_err(db("commit proposer duties"))
}

pub(super) async fn proposer_duties(
    pool: &SqlitePool,
    epoch: i64,
) -> Result<Option<(String, Vec<(i64, i64)>)>, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin reading duties"))?;
    let root: Option<String> =
        sqlx::query_scalar("SELECT dependent_root FROM proposer_duty_sets WHERE epoch = ?1")
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read the proposer duty set"))?;
    let Some(root) = root else {
        return Ok(None);
    };
    let duties: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT slot, validator_index FROM proposer_duties WHERE epoch = ?1 ORDER BY slot",
    )
    .bind(epoch)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("read proposer duties"))?;
    tx.commit().await.map_err(db("end reading duties"))?;
    Ok(Some((root, duties)))
}

pub(super) async fn save_perishable(
    pool: &SqlitePool,
    kind: &str,
    epoch: i64,
    body: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO perishable (kind, epoch, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT (kind, epoch) DO UPDATE SET body = excluded.body",
    )
    .bind(kind)
    .bind(epoch)
    .bind(sqlx::types::Json(body))
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(db("save a perishable answer"))
}

pub(super) async fn load_perishable(
    pool: &SqlitePool,
    kind: &str,
    epoch: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let body: Option<sqlx::types::Json<serde_json::Value>> =
        sqlx::query_scalar("SELECT body FROM perishable WHERE kind = ?1 AND epoch = ?2")
            .bind(kind)
            .bind(epoch)
            .fetch_optional(pool)
            .await
            .map_err(db("load a perishable answer"))?;
    Ok(body.map(|b| b.0))
}

fn ids_json(ids: &[i64]) -> String {
    // Serialising integers to JSON cannot fail; the fallback is never used.
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

/// One index probe per validator (a correlated `ORDER BY epoch DESC
/// LIMIT 1` on `balances_validator_epoch`), however long the history is.
pub(super) async fn latest_balances(
    pool: &SqlitePool,
    validators: Vec<i64>,
    before: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT id, balance FROM (SELECT j.value AS id, \
             (SELECT balance_gwei FROM balances \
              WHERE validator_index = j.value AND epoch < ?2 \
              ORDER BY epoch DESC LIMIT 1) AS balance \
           FROM json_each(?1) AS j) \
         WHERE balance IS NOT NULL",
    )
    .bind(ids_json(&validators))
    .bind(before)
    .fetch_all(pool)
    .await
    .map_err(db("read latest balances"))
}

/// `WHERE` for a report query; the validator list travels as one JSON
/// parameter so its length is not limited by the bind-variable limit.
fn push_filter(qb: &mut QueryBuilder<'_, Sqlite>, f: &Filter) {
    qb.push(" WHERE TRUE");
    if let Some(v) = &f.validators {
        qb.push(" AND validator_index IN (SELECT value FROM json_each(")
            .push_bind(ids_json(v))
            .push("))");
    }
    if let Some(from) = f.from {
        qb.push(" AND epoch >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        qb.push(" AND epoch <= ").push_bind(to);
    }
}

/// Reads of one report share one snapshot, so its parts agree even while
/// the epoch task writes.
async fn read_snapshot(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN DEFERRED")
        .await
        .map_err(db("begin a report read"))
}

async fn fetch(
    conn: &mut SqliteConnection,
    f: &Filter,
    select: &str,
    tail: &str,
    op: &'static str,
) -> Result<Vec<SqliteRow>, StoreError> {
    let mut qb = QueryBuilder::new(select);
    push_filter(&mut qb, f);
    qb.push(tail);
    qb.build().fetch_all(&mut *conn).await.map_err(db(op))
}

async fn select<T>(
    conn: &mut SqliteConnection,
    f: &Filter,
    select: &str,
    tail: &str,
    op: &'static str,
    decode: impl Fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = fetch(conn, f, select, tail, op).await?;
    rows.iter().map(decode).collect()
}

pub(super) async fn report(pool: &SqlitePool, f: &Filter) -> Result<Report, StoreError> {
    let mut tx = read_snapshot(pool).await?;
    Ok(Report {
        attestations: select(
            &mut tx,
            f,
            codec::SELECT_ATTESTATIONS,
            codec::ORDER_ATTESTATIONS,
            "report attestations",
            codec::attestation,
        )
        .await?,
        proposals: select(
            &mut tx,
            f,
            codec::SELECT_PROPOSALS,
            codec::ORDER_PROPOSALS,
            "report proposals",
            codec::proposal,
        )
        .await?,
        sync: select(
            &mut tx,
            f,
            codec::SELECT_SYNC,
            codec::ORDER_BY_EPOCH,
            "report sync participation",
            codec::sync,
        )
        .await?,
        balances: select(
            &mut tx,
            f,
            codec::SELECT_BALANCES,
            codec::ORDER_BY_EPOCH,
            "report balances",
            codec::balance,
        )
        .await?,
        // Filled by `Store::report` (`store::rewards`).
        ..Report::default()
    })
}

pub(super) async fn slashings(
    pool: &SqlitePool,
    f: &Filter,
) -> Result<Vec<crate::analysis::SlashingRecord>, StoreError> {
    let mut tx = read_snapshot(pool).await?;
    select(
        &mut tx,
        f,
        codec::SELECT_SLASHINGS,
        codec::ORDER_SLASHINGS,
        "report slashings",
        codec::slashing,
    )
    .await
}

pub(super) async fn cross_checks(
    pool: &SqlitePool,
    f: &Filter,
) -> Result<Vec<super::CrossCheckRecord>, StoreError> {
    let mut tx = read_snapshot(pool).await?;
    select(
        &mut tx,
        f,
        codec::SELECT_CROSS_CHECKS,
        codec::ORDER_CROSS_CHECKS,
        "report cross-checks",
        codec::cross_check,
    )
    .await
}

pub(super) async fn summary(
    pool: &SqlitePool,
    f: &Filter,
) -> Result<Vec<ValidatorSummary>, StoreError> {
    let mut tx = read_snapshot(pool).await?;
    let mut builder = codec::SummaryBuilder::default();
    let group = codec::GROUP_BY_VALIDATOR;
    let rows = fetch(
        &mut tx,
        f,
        codec::SUMMARY_ATTESTATIONS,
        group,
        "summarise attestations",
    )
    .await?;
    for row in &rows {
        builder.attestations(row)?;
    }
    let rows = fetch(
        &mut tx,
        f,
        codec::SUMMARY_PROPOSALS,
        group,
        "summarise proposals",
    )
    .await?;
    for row in &rows {
        builder.proposals(row)?;
    }
    let rows = fetch(
        &mut tx,
        f,
        codec::SUMMARY_SYNC,
        group,
        "summarise sync participation",
    )
    .await?;
    for row in &rows {
        builder.sync(row)?;
    }
    Ok(builder.finish())
}

pub(super) async fn prune(pool: &SqlitePool, keep_from: i64) -> Result<u64, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db("begin pruning"))?;
    let mut deleted = 0;
    for table in codec::PRUNED_TABLES {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE epoch < ?1"))
            .bind(keep_from)
            .execute(&mut *tx)
            .await
            .map_err(db("prune"))?;
        deleted += done.rows_affected();
    }
    tx.commit().await.map_err(db("commit pruning"))?;
    Ok(deleted)
}

/// Bytes of the main database file (pages × page size; the WAL is not
/// counted until it is checkpointed).
pub(super) async fn size_bytes(pool: &SqlitePool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        .fetch_one(pool)
        .await
        .map_err(db("read the database size"))
}
