//! The PostgreSQL backend: production storage that Grafana reads.
//!
//! Owns: the pool settings and every PostgreSQL statement. Bulk writes bind
//! one typed array per column and insert `SELECT * FROM UNNEST(…)`: one
//! statement per table whatever the row count, with a fixed number of bind
//! parameters (PostgreSQL allows 65 535 per statement, which multi-row
//! VALUES would exhaust at ~6 000 attestation rows).
//! Must not: hold domain rules; those are in `codec` and shared with SQLite.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::codec::{self, impl_read_row, read_error, EpochRows, Filter, UpsertSpec};
use super::{db, Report, StoreError, ValidatorSummary, WriteStats};

/// Writers: the epoch task, retention and the report/HTTP readers. More
/// connections only add contention on a monitor's modest load.
const MAX_CONNECTIONS: u32 = 8;

/// Waiting for a connection: long enough for the monitor's modest load on
/// a busy server, short enough that a stopped database is known within a
/// few seconds. sqlx retries a refused connection until this timeout, so
/// the first statement after the database stops waits this long; the
/// store's breaker (`health`) then makes the next ones fail at once.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl_read_row!(PgRow);

pub(super) async fn connect(url: &str, target: &str) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(|source| StoreError::InvalidUrl {
        target: target.to_owned(),
        source,
    })?;
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            target: target.to_owned(),
            source,
        })
}

/// A pool whose sessions cannot write (`default_transaction_read_only`):
/// `report` and `check-config` read, even by mistake they change nothing.
pub(super) async fn connect_read_only(url: &str, target: &str) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(|source| StoreError::InvalidUrl {
        target: target.to_owned(),
        source,
    })?;
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.options([("default_transaction_read_only", "on")]))
        .await
        .map_err(|source| StoreError::Connect {
            target: target.to_owned(),
            source,
        })
}

/// Versions recorded in sqlx's migration table (none if it is absent),
/// read without creating the table as the migrator would.
pub(super) async fn applied_migrations(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(db("look for the migration table"))?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(db("read the applied migrations"))
}

/// Versions of the migrations built into this binary.
pub(super) fn known_migrations() -> Vec<i64> {
    sqlx::migrate!("./migrations/postgres")
        .iter()
        .map(|m| m.version)
        .collect()
}

pub(super) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .map_err(|source| StoreError::Migrate {
            backend: "postgres",
            source,
        })
}

pub(super) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db("ping"))
}

/// `INSERT INTO t (cols) SELECT * FROM UNNEST($1::type[], …) ON CONFLICT …`.
fn upsert_sql(spec: &UpsertSpec, types: &[&str]) -> String {
    debug_assert_eq!(types.len(), spec.columns().count());
    let arrays = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({arrays}){}",
        spec.table,
        spec.column_list(),
        spec.conflict_clause()
    )
}

pub(super) async fn write_epoch(
    pool: &PgPool,
    rows: &EpochRows<'_>,
) -> Result<WriteStats, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin the epoch write"))?;
    // The row lock serialises concurrent writers of the same epoch around
    // the final/pending decision.
    let stored_final: Option<bool> =
        sqlx::query_scalar("SELECT is_final FROM epochs WHERE epoch = $1 FOR UPDATE")
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

    // A final epoch stored for the first time (backfill, catch-up, a large
    // watched set) has nothing to upsert against: its two big tables go in
    // with binary COPY, about twice as fast as UNNEST + ON CONFLICT at a
    // million rows (issue 12). Anything already stored for the epoch
    // (provisional rows) keeps the upsert and its keep rules.
    let fresh = rows.is_final && stored_final.is_none();
    let stats = WriteStats {
        attestations: if fresh {
            copy_attestations(&mut tx, rows).await?
        } else {
            write_attestations(&mut tx, rows).await?
        },
        proposals: write_proposals(&mut tx, rows).await?,
        sync: write_sync(&mut tx, rows).await?,
        balances: if fresh {
            copy_balances(&mut tx, rows).await?
        } else {
            write_balances(&mut tx, rows).await?
        },
        slashings: write_slashings(&mut tx, rows).await?,
        cross_checks: write_cross_checks(&mut tx, rows).await?,
        ..WriteStats::default()
    };

    sqlx::query(
        "INSERT INTO epochs (epoch, is_final) VALUES ($1, $2) \
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
            "INSERT INTO cursors (name, epoch) VALUES ($1, $2) \
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

/// PostgreSQL's binary COPY format (the `COPY` page of its manual, "Binary
/// Format"): a signature, flags and header-extension length, then per row
/// a field count and each field as a length (-1 for NULL) and its bytes in
/// network order; a -1 field count ends the data.
struct CopyBinary(Vec<u8>);

impl CopyBinary {
    const SIGNATURE: &'static [u8] = b"PGCOPY\n\xff\r\n\0";

    fn with_header() -> Self {
        let mut buf = Vec::with_capacity(COPY_CHUNK_ROWS * 128);
        buf.extend_from_slice(Self::SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        Self(buf)
    }

    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.0.extend_from_slice(&8i32.to_be_bytes());
                self.0.extend_from_slice(&v.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn boolean(&mut self, v: Option<bool>) {
        match v {
            Some(v) => {
                self.0.extend_from_slice(&1i32.to_be_bytes());
                self.0.push(u8::from(v));
            }
            None => self.null(),
        }
    }

    fn text(&mut self, v: Option<&str>) -> Result<(), StoreError> {
        match v {
            Some(t) => {
                let len = i32::try_from(t.len()).map_err(|_| StoreError::OutOfRange {
                    what: "text length",
                    value: t.len() as u64,
                })?;
                self.0.extend_from_slice(&len.to_be_bytes());
                self.0.extend_from_slice(t.as_bytes());
            }
            None => self.null(),
        }
        Ok(())
    }

    fn trailer(&mut self) {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// Rows encoded per message of a COPY: about 1 MB, so that a million-row
/// table streams through a small buffer instead of a 100 MB one.
const COPY_CHUNK_ROWS: usize = 10_000;

/// Streams `rows` into `spec.table (columns)` with binary COPY, each row
/// encoded by `encode` (which writes the field count and the fields).
async fn copy_rows<T>(
    tx: &mut Transaction<'_, Postgres>,
    spec: &UpsertSpec,
    rows: &[T],
    what: &'static str,
    encode: impl Fn(&mut CopyBinary, &T) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "COPY {} ({}) FROM STDIN WITH (FORMAT binary)",
        spec.table,
        spec.column_list()
    );
    let mut copy = (**tx).copy_in_raw(&sql).await.map_err(db(what))?;
    let mut buf = CopyBinary::with_header();
    let chunks = rows.chunks(COPY_CHUNK_ROWS);
    let last = chunks.len();
    for (i, chunk) in chunks.enumerate() {
        let mut encoded = Ok(());
        for r in chunk {
            encoded = encode(&mut buf, r);
            if encoded.is_err() {
                break;
            }
        }
        if let Err(e) = encoded {
            // Ends the COPY so the connection stays usable for the rollback.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
        if i + 1 == last {
            buf.trailer();
        }
        if let Err(e) = copy.send(std::mem::take(&mut buf.0)).await {
            let _ = copy.abort(e.to_string()).await;
            return Err(db(what)(e));
        }
    }
    copy.finish().await.map_err(db(what))
}

async fn copy_attestations(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    copy_rows(
        tx,
        &codec::ATTESTATIONS,
        &rows.attestations,
        "copy attestations",
        |buf, x| {
            buf.row(11);
            buf.int8(Some(x.epoch));
            buf.int8(Some(x.validator_index));
            buf.text(Some(x.status))?;
            buf.int8(x.duty_slot);
            buf.int8(x.inclusion_slot);
            buf.int8(x.inclusion_delay);
            buf.boolean(x.late);
            buf.boolean(x.source_correct);
            buf.boolean(x.target_correct);
            buf.boolean(x.head_correct);
            buf.text(x.reason)
        },
    )
    .await
}

async fn copy_balances(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    copy_rows(
        tx,
        &codec::BALANCES,
        &rows.balances,
        "copy balances",
        |buf, x| {
            buf.row(7);
            buf.int8(Some(x.epoch));
            buf.int8(Some(x.validator_index));
            buf.int8(Some(x.balance));
            buf.int8(Some(x.effective_balance));
            buf.text(Some(x.status))?;
            buf.boolean(Some(x.slashed));
            buf.int8(x.balance_change);
            Ok(())
        },
    )
    .await
}

async fn write_attestations(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.attestations;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(
        &codec::ATTESTATIONS,
        &[
            "bigint", "bigint", "text", "bigint", "bigint", "bigint", "boolean", "boolean",
            "boolean", "boolean", "text",
        ],
    );
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.validator_index).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.status).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.duty_slot).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.inclusion_slot).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.inclusion_delay).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.late).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.source_correct).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.target_correct).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.head_correct).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.reason).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write attestations"))?;
    Ok(done.rows_affected())
}

async fn write_proposals(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.proposals;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(
        &codec::PROPOSALS,
        &["bigint", "bigint", "bigint", "text", "text", "text"],
    );
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.slot).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.validator_index).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.status).collect::<Vec<_>>())
        .bind(
            r.iter()
                .map(|x| x.block_root.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(r.iter().map(|x| x.reason).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write proposals"))?;
    Ok(done.rows_affected())
}

async fn write_sync(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.sync;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(&codec::SYNC, &["bigint", "bigint", "bigint", "bigint"]);
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.validator_index).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.participated).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.missed).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write sync participation"))?;
    Ok(done.rows_affected())
}

async fn write_balances(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.balances;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(
        &codec::BALANCES,
        &[
            "bigint", "bigint", "bigint", "bigint", "text", "boolean", "bigint",
        ],
    );
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.validator_index).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.balance).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.effective_balance).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.status).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.slashed).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.balance_change).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write balances"))?;
    Ok(done.rows_affected())
}

async fn write_slashings(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.slashings;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(&codec::SLASHINGS, &["bigint", "bigint", "text", "bigint"]);
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.validator_index).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.kind).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.included_in_slot).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write slashings"))?;
    Ok(done.rows_affected())
}

async fn write_cross_checks(
    tx: &mut Transaction<'_, Postgres>,
    rows: &EpochRows<'_>,
) -> Result<u64, StoreError> {
    let r = &rows.cross_checks;
    if r.is_empty() {
        return Ok(0);
    }
    let sql = upsert_sql(
        &codec::CROSS_CHECKS,
        &[
            "bigint", "text", "bigint", "text", "text", "boolean", "text",
        ],
    );
    let done = sqlx::query(&sql)
        .bind(r.iter().map(|x| x.epoch).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.node).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.slot).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.node_root.as_deref()).collect::<Vec<_>>())
        .bind(
            r.iter()
                .map(|x| x.expected_root.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(r.iter().map(|x| x.agrees).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.error).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db("write cross-checks"))?;
    Ok(done.rows_affected())
}

pub(super) async fn cursor(pool: &PgPool, name: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT epoch FROM cursors WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db("read the cursor"))
}

pub(super) async fn meta(pool: &PgPool, key: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db("read meta"))
}

pub(super) async fn set_meta(pool: &PgPool, key: &str, value: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
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
    pool: &PgPool,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin the meta check"))?;
    sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db("write meta"))?;
    let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("read meta"))?;
    tx.commit().await.map_err(db("commit the meta check"))?;
    Ok(stored)
}

pub(super) async fn save_proposer_duties(
    pool: &PgPool,
    epoch: i64,
    dependent_root: &str,
    slots: Vec<i64>,
    validators: Vec<i64>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin saving duties"))?;
    sqlx::query("DELETE FROM proposer_duties WHERE epoch = $1")
        .bind(epoch)
        .execute(&mut *tx)
        .await
        .map_err(db("replace proposer duties"))?;
    sqlx::query(
        "INSERT INTO proposer_duty_sets (epoch, dependent_root) VALUES ($1, $2) \
         ON CONFLICT (epoch) DO UPDATE SET dependent_root = excluded.dependent_root",
    )
    .bind(epoch)
    .bind(dependent_root)
    .execute(&mut *tx)
    .await
    .map_err(db("save the proposer duty set"))?;
    sqlx::query(
        "INSERT INTO proposer_duties (epoch, slot, validator_index) \
         SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[])",
    )
    .bind(epoch)
    .bind(slots)
    .bind(validators)
    .execute(&mut *tx)
    .await
    .map_err(db("save proposer duties"))?;
    tx.commit().await.map_err(db("commit proposer duties"))
}

pub(super) async fn proposer_duties(
    pool: &PgPool,
    epoch: i64,
) -> Result<Option<(String, Vec<(i64, i64)>)>, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin reading duties"))?;
    let root: Option<String> =
        sqlx::query_scalar("SELECT dependent_root FROM proposer_duty_sets WHERE epoch = $1")
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read the proposer duty set"))?;
    let Some(root) = root else {
        return Ok(None);
    };
    let duties: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT slot, validator_index FROM proposer_duties WHERE epoch = $1 ORDER BY slot",
    )
    .bind(epoch)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("read proposer duties"))?;
    tx.commit().await.map_err(db("end reading duties"))?;
    Ok(Some((root, duties)))
}

pub(super) async fn save_perishable(
    pool: &PgPool,
    kind: &str,
    epoch: i64,
    body: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO perishable (kind, epoch, body) VALUES ($1, $2, $3) \
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
    pool: &PgPool,
    kind: &str,
    epoch: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let body: Option<sqlx::types::Json<serde_json::Value>> =
        sqlx::query_scalar("SELECT body FROM perishable WHERE kind = $1 AND epoch = $2")
            .bind(kind)
            .bind(epoch)
            .fetch_optional(pool)
            .await
            .map_err(db("load a perishable answer"))?;
    Ok(body.map(|b| b.0))
}

/// One index probe per validator (LATERAL … LIMIT 1 on
/// `balances_validator_epoch`), however long the history is.
pub(super) async fn latest_balances(
    pool: &PgPool,
    validators: Vec<i64>,
    before: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT v.id, b.balance_gwei FROM UNNEST($1::bigint[]) AS v(id) \
         CROSS JOIN LATERAL (SELECT balance_gwei FROM balances \
             WHERE validator_index = v.id AND epoch < $2 \
             ORDER BY epoch DESC LIMIT 1) AS b",
    )
    .bind(validators)
    .bind(before)
    .fetch_all(pool)
    .await
    .map_err(db("read latest balances"))
}

/// `WHERE` for a report query. Only the bounds present are added, so the
/// planner sees a plain range instead of `$n IS NULL OR …`.
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Postgres>, f: &'a Filter) {
    qb.push(" WHERE TRUE");
    if let Some(v) = &f.validators {
        qb.push(" AND validator_index = ANY(")
            .push_bind(v.as_slice())
            .push(")");
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
async fn read_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(db("begin a report read"))
}

async fn fetch(
    conn: &mut PgConnection,
    f: &Filter,
    select: &str,
    tail: &str,
    op: &'static str,
) -> Result<Vec<PgRow>, StoreError> {
    let mut qb = QueryBuilder::new(select);
    push_filter(&mut qb, f);
    qb.push(tail);
    qb.build().fetch_all(&mut *conn).await.map_err(db(op))
}

async fn select<T>(
    conn: &mut PgConnection,
    f: &Filter,
    select: &str,
    tail: &str,
    op: &'static str,
    decode: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = fetch(conn, f, select, tail, op).await?;
    rows.iter().map(decode).collect()
}

pub(super) async fn report(pool: &PgPool, f: &Filter) -> Result<Report, StoreError> {
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
    pool: &PgPool,
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
    pool: &PgPool,
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
    pool: &PgPool,
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

pub(super) async fn prune(pool: &PgPool, keep_from: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin pruning"))?;
    let mut deleted = 0;
    for table in codec::PRUNED_TABLES {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE epoch < $1"))
            .bind(keep_from)
            .execute(&mut *tx)
            .await
            .map_err(db("prune"))?;
        deleted += done.rows_affected();
    }
    tx.commit().await.map_err(db("commit pruning"))?;
    Ok(deleted)
}

/// Bytes the current database takes on disk (tables, indexes, TOAST).
pub(super) async fn size_bytes(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await
        .map_err(db("read the database size"))
}

/// `CREATE DATABASE` / `DROP DATABASE … WITH (FORCE)` on the server of
/// `admin_url`; `name` is checked by the caller (identifiers cannot be
/// bound as parameters).
pub(super) async fn admin(admin_url: &str, target: &str, sql: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let options: PgConnectOptions = admin_url.parse().map_err(|source| StoreError::InvalidUrl {
        target: target.to_owned(),
        source,
    })?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::Connect {
            target: target.to_owned(),
            source,
        })?;
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .map_err(db("create or drop a database"))?;
    let _ = conn.close().await;
    Ok(())
}
