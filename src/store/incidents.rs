//! Alerting storage: incidents, their notifications and the delivery outbox
//! (`migrations/*/0002_alerting.sql`), the same on both backends.
//!
//! Owns: every alerting statement. An incident change, its notification and
//! one pending delivery per channel are written in ONE transaction, so a
//! crash leaves either all of them or none: nothing is sent twice, nothing
//! is forgotten. Must not: decide when an incident opens or what a message
//! says (that is `alerting`).
//!
//! The statements are written once with `$n` placeholders; SQLite gets them
//! as `?n` (its positional form), everything else is standard SQL both
//! engines run (partial indexes, `RETURNING`, `ON CONFLICT`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::codec::{to_u64, ReadRow};
use super::{db, Backend, Store, StoreError};

/// One incident as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRecord {
    /// Chosen by the engine; events use a key that replays reproduce.
    pub id: String,
    pub rule: String,
    /// A group name, a node name, `network` or `monitor`.
    pub subject: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub is_event: bool,
    /// Ascending validator indices.
    pub validators: Vec<u64>,
    pub epoch: Option<u64>,
    pub summary: String,
    pub opened_at: SystemTime,
    /// When the last notification (firing, update, reminder) was created.
    pub last_notified_at: SystemTime,
    pub resolved_at: Option<SystemTime>,
    pub resolution: Option<String>,
    /// What the incident has told and has still to tell (JSON, owned by
    /// the alert engine; `{}` when nothing).
    pub progress: String,
}

/// A notification to create with an incident change.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotification {
    /// `firing`, `update`, `reminder`, `resolved` or `event`.
    pub kind: String,
    pub created_at: SystemTime,
    pub payload: serde_json::Value,
}

/// A stored notification (for inspection and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRecord {
    pub id: i64,
    pub incident_id: String,
    pub kind: String,
    pub created_at: SystemTime,
    pub payload: serde_json::Value,
}

/// A pending delivery, with what it delivers.
#[derive(Clone, Debug, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub notification_id: i64,
    pub incident_id: String,
    pub channel: String,
    pub attempts: u64,
    pub next_attempt_at: SystemTime,
    pub payload: serde_json::Value,
    /// When the incident was resolved (None: still open).
    pub incident_resolved_at: Option<SystemTime>,
}

/// A delivery as stored (for inspection and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub notification_id: i64,
    pub channel: String,
    /// `pending`, `delivered` or `abandoned`.
    pub status: String,
    pub attempts: u64,
    pub last_error: Option<String>,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at `next_at`.
    Retry {
        error: String,
        next_at: SystemTime,
    },
    /// Failed and never tried again (`error` says why).
    Abandoned {
        error: String,
    },
}

pub(super) fn to_ms(t: SystemTime) -> i64 {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(super) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        problem: e.to_string(),
    }
}

fn validators_json(v: &[u64]) -> Result<String, StoreError> {
    for x in v {
        super::codec::to_i64(*x, "incidents.validators")?;
    }
    serde_json::to_string(v).map_err(|e| corrupt("incidents.validators", e))
}

/// Runs `$body` with `$pool` bound to whichever pool the store has and
/// `$sql` turning a `$n` statement into that backend's form. The body is
/// expanded once per backend, so each copy is checked with its own types.
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {{
        $store.admit()?;
        let r: Result<_, StoreError> = async {
        match &$store.backend {
            Backend::Postgres($pool) => {
                let $sql = |s: &str| s.to_owned();
                $body
            }
            Backend::Sqlite($pool) => {
                let $sql = |s: &str| s.replace('$', "?");
                $body
            }
        }
        }.await;
        $store.observe(&r);
        r
    }};
}

/// How a write transaction starts on each backend.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, StoreError>;
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, StoreError> {
        self.begin().await.map_err(db("begin an alerting write"))
    }
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, StoreError> {
        // Take the write lock up front, as `sqlite::BEGIN_WRITE` explains.
        self.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin an alerting write"))
    }
}

const INCIDENT_COLUMNS: &str =
    "id, rule, subject, severity, is_event, validators, epoch, summary, \
     opened_at_ms, last_notified_at_ms, resolved_at_ms, resolution, progress";

fn incident_from_row(row: &impl ReadRow) -> Result<IncidentRecord, StoreError> {
    let validators: Vec<u64> =
        serde_json::from_str(&row.text(5)?).map_err(|e| corrupt("incidents.validators", e))?;
    Ok(IncidentRecord {
        id: row.text(0)?,
        rule: row.text(1)?,
        subject: row.text(2)?,
        severity: row.text(3)?,
        is_event: row.boolean(4)?,
        validators,
        epoch: row
            .opt_int(6)?
            .map(|e| to_u64(e, "incidents.epoch"))
            .transpose()?,
        summary: row.text(7)?,
        opened_at: from_ms(row.int(8)?),
        last_notified_at: from_ms(row.int(9)?),
        resolved_at: row.opt_int(10)?.map(from_ms),
        resolution: row.opt_text(11)?,
        progress: row.text(12)?,
    })
}

fn notification_from_row(r: &impl ReadRow) -> Result<NotificationRecord, StoreError> {
    Ok(NotificationRecord {
        id: r.int(0)?,
        incident_id: r.text(1)?,
        kind: r.text(2)?,
        created_at: from_ms(r.int(3)?),
        payload: serde_json::from_str(&r.text(4)?)
            .map_err(|e| corrupt("notifications.payload", e))?,
    })
}

fn delivery_from_row(r: &impl ReadRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: r.int(0)?,
        notification_id: r.int(1)?,
        channel: r.text(2)?,
        status: r.text(3)?,
        attempts: to_u64(r.int(4)?, "deliveries.attempts")?,
        last_error: r.opt_text(5)?,
    })
}

fn due_from_row(r: &impl ReadRow) -> Result<DueDelivery, StoreError> {
    Ok(DueDelivery {
        id: r.int(0)?,
        notification_id: r.int(1)?,
        incident_id: r.text(2)?,
        channel: r.text(3)?,
        attempts: to_u64(r.int(4)?, "deliveries.attempts")?,
        next_attempt_at: from_ms(r.int(5)?),
        payload: serde_json::from_str(&r.text(6)?)
            .map_err(|e| corrupt("notifications.payload", e))?,
        incident_resolved_at: r.opt_int(7)?.map(from_ms),
    })
}

fn attempt_from_row(r: &impl ReadRow) -> Result<(u64, bool, Option<String>), StoreError> {
    Ok((
        to_u64(r.int(0)?, "delivery_attempts.attempt")?,
        r.boolean(1)?,
        r.opt_text(2)?,
    ))
}

/// A delivery that ended before it was stored: the alert engine sent it
/// from memory while the store was failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedDelivery {
    pub channel: String,
    /// `delivered` or `abandoned`.
    pub status: &'static str,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub finished_at: SystemTime,
}

impl Store {
    /// Creates (`create`) or updates an incident and, with it, `notification`
    /// and one pending delivery of it per channel, in one transaction.
    /// Returns false, writing nothing, when the incident to create exists
    /// already (same id, or another open one for the same rule and subject)
    /// or the incident to update does not.
    pub async fn save_incident(
        &self,
        incident: &IncidentRecord,
        create: bool,
        notification: Option<&NewNotification>,
        channels: &[String],
    ) -> Result<bool, StoreError> {
        self.save_incident_sent(incident, create, notification, channels, &[])
            .await
    }

    /// `save_incident` for a change kept in memory while the store failed:
    /// the deliveries in `finished` are stored as they ended (so the outbox
    /// never sends them again), those in `channels` as pending.
    pub async fn save_incident_sent(
        &self,
        incident: &IncidentRecord,
        create: bool,
        notification: Option<&NewNotification>,
        channels: &[String],
        finished: &[FinishedDelivery],
    ) -> Result<bool, StoreError> {
        let validators = validators_json(&incident.validators)?;
        let epoch = incident
            .epoch
            .map(|e| super::codec::to_i64(e, "incidents.epoch"))
            .transpose()?;
        let payload = notification
            .map(|n| serde_json::to_string(&n.payload))
            .transpose()
            .map_err(|e| corrupt("notifications.payload", e))?;
        on_pool!(self, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let applied = if create {
                // ON CONFLICT without a target covers both the primary key
                // and the one-open-incident index.
                let q = sql(
                    "INSERT INTO incidents (id, rule, subject, severity, is_event, validators, \
                     epoch, summary, opened_at_ms, last_notified_at_ms, resolved_at_ms, resolution, \
                     progress) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT DO NOTHING",
                );
                sqlx::query(&q)
                    .bind(&incident.id)
                    .bind(&incident.rule)
                    .bind(&incident.subject)
                    .bind(&incident.severity)
                    .bind(incident.is_event)
                    .bind(&validators)
                    .bind(epoch)
                    .bind(&incident.summary)
                    .bind(to_ms(incident.opened_at))
                    .bind(to_ms(incident.last_notified_at))
                    .bind(incident.resolved_at.map(to_ms))
                    .bind(&incident.resolution)
                    .bind(&incident.progress)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("create an incident"))?
                    .rows_affected()
                    == 1
            } else {
                let q = sql(
                    "UPDATE incidents SET severity = $2, validators = $3, epoch = $4, \
                     summary = $5, last_notified_at_ms = $6, resolved_at_ms = $7, \
                     resolution = $8, progress = $9 WHERE id = $1",
                );
                sqlx::query(&q)
                    .bind(&incident.id)
                    .bind(&incident.severity)
                    .bind(&validators)
                    .bind(epoch)
                    .bind(&incident.summary)
                    .bind(to_ms(incident.last_notified_at))
                    .bind(incident.resolved_at.map(to_ms))
                    .bind(&incident.resolution)
                    .bind(&incident.progress)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("update an incident"))?
                    .rows_affected()
                    == 1
            };
            if !applied {
                tx.rollback()
                    .await
                    .map_err(db("end a refused incident write"))?;
                return Ok(false);
            }
            if let (Some(n), Some(payload)) = (notification, payload) {
                let q = sql(
                    "INSERT INTO notifications (incident_id, kind, created_at_ms, payload) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                );
                let id: i64 = sqlx::query_scalar(&q)
                    .bind(&incident.id)
                    .bind(&n.kind)
                    .bind(to_ms(n.created_at))
                    .bind(&payload)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("create a notification"))?;
                let q = sql(
                    "INSERT INTO deliveries (notification_id, channel, status, attempts, \
                     next_attempt_at_ms) VALUES ($1, $2, 'pending', 0, $3)",
                );
                for channel in channels {
                    sqlx::query(&q)
                        .bind(id)
                        .bind(channel)
                        .bind(to_ms(n.created_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("queue a delivery"))?;
                }
                let q = sql(
                    "INSERT INTO deliveries (notification_id, channel, status, attempts, \
                     next_attempt_at_ms, last_error, finished_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                );
                for f in finished {
                    sqlx::query(&q)
                        .bind(id)
                        .bind(&f.channel)
                        .bind(f.status)
                        .bind(super::codec::to_i64(f.attempts, "deliveries.attempts")?)
                        .bind(to_ms(f.finished_at))
                        .bind(&f.last_error)
                        .bind(to_ms(f.finished_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("record a delivery sent from memory"))?;
                }
            }
            tx.commit().await.map_err(db("commit an incident write"))?;
            Ok(true)
        })
    }

    /// Incidents not resolved yet, oldest first.
    pub async fn open_incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        let q = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_at_ms IS NULL \
             ORDER BY opened_at_ms, id"
        );
        on_pool!(self, |pool, _sql| {
            let rows = sqlx::query(&q)
                .fetch_all(pool)
                .await
                .map_err(db("read open incidents"))?;
            rows.iter().map(incident_from_row).collect()
        })
    }

    /// Incidents opened at or after `since`, oldest first.
    pub async fn incidents_since(
        &self,
        since: SystemTime,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let q = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE opened_at_ms >= $1 \
             ORDER BY opened_at_ms, id"
        );
        on_pool!(self, |pool, sql| {
            let rows = sqlx::query(&sql(&q))
                .bind(to_ms(since))
                .fetch_all(pool)
                .await
                .map_err(db("read incidents"))?;
            rows.iter().map(incident_from_row).collect()
        })
    }

    /// The notifications of one incident, in creation order.
    pub async fn notifications(
        &self,
        incident_id: &str,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        on_pool!(self, |pool, sql| {
            let rows = sqlx::query(&sql(
                "SELECT id, incident_id, kind, created_at_ms, payload FROM notifications \
                 WHERE incident_id = $1 ORDER BY id",
            ))
            .bind(incident_id)
            .fetch_all(pool)
            .await
            .map_err(db("read notifications"))?;
            rows.iter()
                .map(notification_from_row)
                .collect::<Result<Vec<_>, _>>()
        })
    }

    /// Every delivery of one notification, by channel.
    pub async fn deliveries(
        &self,
        notification_id: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        on_pool!(self, |pool, sql| {
            let rows = sqlx::query(&sql(
                "SELECT id, notification_id, channel, status, attempts, last_error \
                 FROM deliveries WHERE notification_id = $1 ORDER BY channel",
            ))
            .bind(notification_id)
            .fetch_all(pool)
            .await
            .map_err(db("read deliveries"))?;
            rows.iter()
                .map(delivery_from_row)
                .collect::<Result<Vec<_>, _>>()
        })
    }

    /// The oldest pending deliveries of `channel` (at most `limit`), due or
    /// not: a channel delivers in order, so the caller waits for the first.
    pub async fn pending_deliveries(
        &self,
        channel: &str,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        on_pool!(self, |pool, sql| {
            let rows = sqlx::query(&sql(
                "SELECT d.id, d.notification_id, n.incident_id, d.channel, d.attempts, \
                 d.next_attempt_at_ms, n.payload, i.resolved_at_ms \
                 FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
                 JOIN incidents i ON i.id = n.incident_id \
                 WHERE d.channel = $1 AND d.status = 'pending' ORDER BY d.id LIMIT $2",
            ))
            .bind(channel)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("read pending deliveries"))?;
            rows.iter().map(due_from_row).collect::<Result<Vec<_>, _>>()
        })
    }

    /// Records one attempt at a pending delivery and its outcome. An
    /// attempt at a delivery that is no longer pending changes nothing.
    pub async fn record_attempt(
        &self,
        delivery_id: i64,
        at: SystemTime,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let (status, error, next_at) = match outcome {
            AttemptOutcome::Delivered => ("delivered", None, at),
            AttemptOutcome::Retry { error, next_at } => ("pending", Some(error.as_str()), *next_at),
            AttemptOutcome::Abandoned { error } => ("abandoned", Some(error.as_str()), at),
        };
        let finished = (status != "pending").then(|| to_ms(at));
        on_pool!(self, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let attempt: Option<i64> = sqlx::query_scalar(&sql(
                "UPDATE deliveries SET attempts = attempts + 1, status = $2, \
                 last_error = COALESCE($3, last_error), next_attempt_at_ms = $4, \
                 finished_at_ms = $5 WHERE id = $1 AND status = 'pending' RETURNING attempts",
            ))
            .bind(delivery_id)
            .bind(status)
            .bind(error)
            .bind(to_ms(next_at))
            .bind(finished)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("update a delivery"))?;
            if let Some(attempt) = attempt {
                sqlx::query(&sql(
                    "INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, ok, error) \
                     VALUES ($1, $2, $3, $4, $5)",
                ))
                .bind(delivery_id)
                .bind(attempt)
                .bind(to_ms(at))
                .bind(matches!(outcome, AttemptOutcome::Delivered))
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(db("record a delivery attempt"))?;
            }
            tx.commit().await.map_err(db("commit a delivery attempt"))?;
            Ok(())
        })
    }

    /// Attempts recorded for one delivery: (attempt, ok, error).
    pub async fn delivery_attempts(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<(u64, bool, Option<String>)>, StoreError> {
        on_pool!(self, |pool, sql| {
            let rows = sqlx::query(&sql(
                "SELECT attempt, ok, error FROM delivery_attempts WHERE delivery_id = $1 \
                 ORDER BY attempt",
            ))
            .bind(delivery_id)
            .fetch_all(pool)
            .await
            .map_err(db("read delivery attempts"))?;
            rows.iter()
                .map(attempt_from_row)
                .collect::<Result<Vec<_>, _>>()
        })
    }
}
