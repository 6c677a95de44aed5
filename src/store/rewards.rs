//! Rewards and network-baseline storage (`migrations/*/0004_rewards.sql`),
//! the same on both backends.
//!
//! Owns: every statement on `rewards` and `network_epochs`. One epoch's
//! rows are upserted in ONE transaction (one bulk statement per table), so
//! re-judging an epoch rewrites the same rows and a crash leaves the old
//! ones or the new ones; a value the node no longer serves (NULL) keeps
//! the one stored before. The monitor writes them before the epoch's
//! verdicts advance the cursor, so a crash in between redoes both.
//! Must not: compute anything (that is `analysis::rewards` / `network`).
//!
//! The rows travel as ONE JSON array parameter per table, read back by
//! `json_array_elements` (PostgreSQL) or `json_each` (SQLite): one
//! statement per table whatever the watched set's size.

use super::codec::{to_i64, to_u64, ReadRow};
use super::{db, Backend, ReportQuery, Store, StoreError};
use crate::analysis::network::NetworkRecord;
use crate::analysis::rewards::RewardRecord;
use crate::chain::{Epoch, ValidatorIndex};

const REWARD_COLUMNS: &str = "epoch, validator_index, attestation_reward_gwei, \
    attestation_ideal_gwei, sync_reward_gwei, proposer_reward_gwei, missed_gwei, estimated";
const NETWORK_COLUMNS: &str = "epoch, duties, included, empty_slots, slots";

/// The bulk insert of `table` from a JSON array of row arrays in `$1`.
/// `kinds`: the PostgreSQL type of each column (SQLite takes the JSON
/// values as they are: integers, null, and true/false as 1/0).
fn insert(postgres: bool, table: &str, columns: &str, kinds: &[&str], conflict: &str) -> String {
    let values: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if postgres {
                format!("(r ->> {i})::{k}")
            } else {
                format!("value ->> {i}")
            }
        })
        .collect();
    let values = values.join(", ");
    if postgres {
        format!("INSERT INTO {table} ({columns}) SELECT {values} FROM json_array_elements($1::json) AS r WHERE true {conflict}")
    } else {
        // `WHERE true`: SQLite's parser needs it before an upsert's
        // ON CONFLICT when the rows come from a SELECT.
        format!("INSERT INTO {table} ({columns}) SELECT {values} FROM json_each(?1) WHERE true {conflict}")
    }
}

/// A re-judged epoch rewrites its rows, but an answer no longer served
/// (NULL) never erases one that was known: unknown is not news.
const REWARD_CONFLICT: &str = "ON CONFLICT (epoch, validator_index) DO UPDATE SET \
    attestation_reward_gwei = COALESCE(excluded.attestation_reward_gwei, rewards.attestation_reward_gwei), \
    attestation_ideal_gwei = COALESCE(excluded.attestation_ideal_gwei, rewards.attestation_ideal_gwei), \
    sync_reward_gwei = COALESCE(excluded.sync_reward_gwei, rewards.sync_reward_gwei), \
    proposer_reward_gwei = COALESCE(excluded.proposer_reward_gwei, rewards.proposer_reward_gwei), \
    missed_gwei = COALESCE(excluded.missed_gwei, rewards.missed_gwei), \
    estimated = CASE WHEN excluded.missed_gwei IS NULL THEN rewards.estimated ELSE excluded.estimated END";

const NETWORK_CONFLICT: &str = "ON CONFLICT (epoch) DO UPDATE SET duties = excluded.duties, \
    included = excluded.included, empty_slots = excluded.empty_slots, slots = excluded.slots";

const REWARD_KINDS: &[&str] = &[
    "bigint", "bigint", "bigint", "bigint", "bigint", "bigint", "bigint", "boolean",
];
const NETWORK_KINDS: &[&str] = &["bigint", "bigint", "bigint", "bigint", "bigint"];

fn reward_rows(epoch: Epoch, rows: &[RewardRecord]) -> Result<String, StoreError> {
    let e = to_i64(epoch.0, "rewards.epoch")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(serde_json::json!([
            e,
            to_i64(r.validator_index.0, "rewards.validator_index")?,
            r.attestation_reward_gwei,
            r.attestation_ideal_gwei,
            r.sync_reward_gwei,
            r.proposer_reward_gwei,
            r.missed_gwei,
            r.estimated,
        ]));
    }
    Ok(serde_json::Value::Array(out).to_string())
}

fn network_row(n: &NetworkRecord) -> Result<String, StoreError> {
    Ok(serde_json::json!([[
        to_i64(n.epoch.0, "network_epochs.epoch")?,
        to_i64(n.duties, "network_epochs.duties")?,
        to_i64(n.included, "network_epochs.included")?,
        to_i64(n.empty_slots, "network_epochs.empty_slots")?,
        to_i64(n.slots, "network_epochs.slots")?,
    ]])
    .to_string())
}

fn reward_from_row(r: &impl ReadRow) -> Result<RewardRecord, StoreError> {
    Ok(RewardRecord {
        epoch: Epoch(to_u64(r.int(0)?, "rewards.epoch")?),
        validator_index: ValidatorIndex(to_u64(r.int(1)?, "rewards.validator_index")?),
        attestation_reward_gwei: r.opt_int(2)?,
        attestation_ideal_gwei: r.opt_int(3)?,
        sync_reward_gwei: r.opt_int(4)?,
        proposer_reward_gwei: r.opt_int(5)?,
        missed_gwei: r.opt_int(6)?,
        estimated: r.boolean(7)?,
    })
}

fn network_from_row(r: &impl ReadRow) -> Result<NetworkRecord, StoreError> {
    Ok(NetworkRecord {
        epoch: Epoch(to_u64(r.int(0)?, "network_epochs.epoch")?),
        duties: to_u64(r.int(1)?, "network_epochs.duties")?,
        included: to_u64(r.int(2)?, "network_epochs.included")?,
        empty_slots: to_u64(r.int(3)?, "network_epochs.empty_slots")?,
        slots: to_u64(r.int(4)?, "network_epochs.slots")?,
    })
}

/// Inclusive epoch bounds of a report query, as stored integers.
fn bounds(q: &ReportQuery) -> (i64, i64) {
    let clamp = |e: u64| i64::try_from(e).unwrap_or(i64::MAX);
    (
        q.from_epoch.map_or(0, |e| clamp(e.0)),
        q.to_epoch.map_or(i64::MAX, |e| clamp(e.0)),
    )
}

/// Runs `$body` once per backend with `$pool`, `$pg` (is PostgreSQL) and
/// `$sql` turning a `$n` statement into that backend's placeholder form.
macro_rules! per_backend {
    ($store:expr, |$pool:ident, $pg:ident, $sql:ident| $body:expr) => {
        match &$store.backend {
            Backend::Postgres($pool) => {
                let $pg = true;
                let $sql = |s: &str| s.to_owned();
                $body
            }
            Backend::Sqlite($pool) => {
                let $pg = false;
                let $sql = |s: &str| s.replace('$', "?");
                $body
            }
        }
    };
}

impl Store {
    /// Writes the rewards rows and the network baseline of `epoch` (one
    /// transaction): known values replace stored ones, unknown (None) ones
    /// keep them; `network: None` keeps a stored baseline.
    pub async fn write_rewards(
        &self,
        epoch: Epoch,
        rows: &[RewardRecord],
        network: Option<&NetworkRecord>,
    ) -> Result<(), StoreError> {
        self.admit()?;
        let rewards_json = reward_rows(epoch, rows)?;
        let network_json = network.map(network_row).transpose()?;
        per_backend!(self, |pool, pg, _sql| {
            let mut tx = if pg {
                pool.begin().await.map_err(db("begin a rewards write"))?
            } else {
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db("begin a rewards write"))?
            };
            if !rows.is_empty() {
                sqlx::query(&insert(
                    pg,
                    "rewards",
                    REWARD_COLUMNS,
                    REWARD_KINDS,
                    REWARD_CONFLICT,
                ))
                .bind(&rewards_json)
                .execute(&mut *tx)
                .await
                .map_err(db("write rewards"))?;
            }
            if let Some(n) = &network_json {
                sqlx::query(&insert(
                    pg,
                    "network_epochs",
                    NETWORK_COLUMNS,
                    NETWORK_KINDS,
                    NETWORK_CONFLICT,
                ))
                .bind(n)
                .execute(&mut *tx)
                .await
                .map_err(db("write the network baseline"))?;
            }
            tx.commit().await.map_err(db("commit rewards"))
        })
    }

    /// Stored rewards matching `query`, ordered by epoch, validator.
    pub async fn rewards(&self, query: &ReportQuery) -> Result<Vec<RewardRecord>, StoreError> {
        self.admit()?;
        let (from, to) = bounds(query);
        let q = format!(
            "SELECT {REWARD_COLUMNS} FROM rewards WHERE epoch >= $1 AND epoch <= $2 \
             ORDER BY epoch, validator_index"
        );
        let rows: Vec<RewardRecord> = per_backend!(self, |pool, _pg, sql| {
            let rows = sqlx::query(&sql(&q))
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(db("read rewards"))?;
            rows.iter()
                .map(reward_from_row)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(match &query.validators {
            None => rows,
            Some(vs) => {
                let vs: std::collections::HashSet<&ValidatorIndex> = vs.iter().collect();
                rows.into_iter()
                    .filter(|r| vs.contains(&r.validator_index))
                    .collect()
            }
        })
    }

    /// The stored network baseline in the epochs of `query` (its
    /// validators do not apply), ordered by epoch.
    pub async fn network(&self, query: &ReportQuery) -> Result<Vec<NetworkRecord>, StoreError> {
        self.admit()?;
        let (from, to) = bounds(query);
        let q = format!(
            "SELECT {NETWORK_COLUMNS} FROM network_epochs WHERE epoch >= $1 AND epoch <= $2 \
             ORDER BY epoch"
        );
        per_backend!(self, |pool, _pg, sql| {
            let rows = sqlx::query(&sql(&q))
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(db("read the network baseline"))?;
            rows.iter().map(network_from_row).collect()
        })
    }

    /// What a stretch of epochs cost `validators` (the recovery message's
    /// "the downtime cost 0.004 ETH"): the sum of their stored
    /// `missed_gwei` over `from..=to`, and whether an estimate is in it.
    /// `None` when nothing of the stretch is known yet: rewards are stored
    /// with the final pass of an epoch (two epochs after it), so the last
    /// epochs of an outage that just ended may still be missing; say "at
    /// least" then. `alerting::render::eth` prints it.
    pub async fn downtime_cost(
        &self,
        validators: &[ValidatorIndex],
        from: Epoch,
        to: Epoch,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        self.admit()?;
        let rows = self
            .rewards(&ReportQuery {
                validators: Some(validators.to_vec()),
                from_epoch: Some(from),
                to_epoch: Some(to),
            })
            .await?;
        Ok(crate::analysis::rewards::missed_total(&rows))
    }
}
