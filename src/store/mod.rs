//! All SQL lives here: PostgreSQL (production, what Grafana reads) and
//! SQLite (the embedded default), behind one interface with one behaviour.
//!
//! Owns: the schema (`migrations/postgres`, `migrations/sqlite`), idempotent
//! bulk writes (one statement per table per epoch, one transaction), the
//! processed-epoch cursor, report queries and retention.
//! Must not: decide verdicts or talk to the network.
//!
//! Storage rules, the same for both backends (tests/store_contract.rs runs
//! one suite against both):
//! - Redoing an epoch changes nothing: rows are upserted by their natural
//!   key, and a row whose values are unchanged is not rewritten.
//! - A final write replaces what a pending write stored; a pending write of
//!   an epoch already stored as final is refused as a whole (`kept_final`).
//! - An `unknown` verdict never replaces a known one (the data is gone, the
//!   earlier verdict is still the best knowledge).
//! - The processed-epoch cursor only moves forward; retention never touches
//!   the cursor or the meta table.

mod codec;
mod health;
mod history;
mod incidents;

/// `meta` keys of the chain constants, in the order genesis time (unix
/// seconds), slot duration (ms), slots per epoch: the values of
/// `/eth/v1/beacon/genesis` and `/eth/v1/config/spec` the daemon runs with.
pub const META_CHAIN_CONSTANTS: [&str; 3] = ["genesis_time", "slot_duration_ms", "slots_per_epoch"];
mod postgres;
mod rewards;
mod sqlite;

pub use health::{is_outage, StoreOutage, PING_TIMEOUT};
pub use history::{EpochMark, ProposalMark, StripRows, ValidatorHistory};
pub use incidents::{
    AttemptOutcome, DeliveryRecord, DueDelivery, FinishedDelivery, IncidentRecord, NewNotification,
    NotificationRecord,
};

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::chain::{ChainSpec, Gwei, ProposerDuties};

use serde::Serialize;

use crate::analysis::{
    AttestationVerdict, BalanceRecord, ProposalVerdict, SlashingRecord, SyncVerdict,
};
use crate::chain::{Epoch, Root, Slot, ValidatorIndex};

/// One node's answer in the cross-check of one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrossCheckRecord {
    pub epoch: Epoch,
    /// The slot whose canonical block root was compared.
    pub slot: Slot,
    pub node: String,
    /// What the node reported (None: no block at that slot on its chain).
    pub node_root: Option<Root>,
    /// What valwatch's canonical chain has there.
    pub expected_root: Option<Root>,
    pub agrees: bool,
    /// Why the node could not be compared (error text), if so.
    pub error: Option<String>,
}

/// Everything judged for one epoch, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct EpochRecord {
    pub epoch: Epoch,
    /// Final: the inclusion window has closed; the cursor advances past it.
    pub is_final: bool,
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    pub balances: Vec<BalanceRecord>,
    pub slashings: Vec<SlashingRecord>,
    pub cross_checks: Vec<CrossCheckRecord>,
}

/// What `valwatch report` asks for. Bounds are inclusive.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    pub validators: Option<Vec<ValidatorIndex>>,
    pub from_epoch: Option<Epoch>,
    pub to_epoch: Option<Epoch>,
}

/// The stored history, as `valwatch report --format json` prints it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    pub balances: Vec<BalanceRecord>,
    /// Issue 14: rewards per validator and epoch (`store::rewards`).
    pub rewards: Vec<crate::analysis::rewards::RewardRecord>,
    /// Issue 14: the network baseline per epoch (validators do not apply).
    pub network: Vec<crate::analysis::network::NetworkRecord>,
}

/// Rows inserted or changed per table by one `write_epoch` (unchanged rows
/// are not rewritten and not counted), and the approximate payload size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    pub attestations: u64,
    pub proposals: u64,
    pub sync: u64,
    pub balances: u64,
    pub slashings: u64,
    pub cross_checks: u64,
    /// Approximate bytes of the values sent (8 per integer, 1 per boolean,
    /// the length of each text), comparable across backends.
    pub approx_bytes: u64,
    /// The epoch is already stored as final and this record is not: nothing
    /// was written.
    pub kept_final: bool,
}

impl WriteStats {
    pub fn rows(&self) -> u64 {
        self.attestations
            + self.proposals
            + self.sync
            + self.balances
            + self.slashings
            + self.cross_checks
    }
}

/// One validator's history over a `ReportQuery`, for the table format.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidatorSummary {
    pub validator_index: ValidatorIndex,
    pub attestations_included: u64,
    pub attestations_missed: u64,
    pub attestations_pending: u64,
    pub attestations_unknown: u64,
    pub attestations_inactive: u64,
    /// Mean raw inclusion delay (slots) over included attestations.
    pub average_inclusion_delay: Option<f64>,
    /// Shares of correct votes among included attestations whose
    /// correctness is known; None when there is none.
    pub head_correct_rate: Option<f64>,
    pub target_correct_rate: Option<f64>,
    pub source_correct_rate: Option<f64>,
    pub proposals_proposed: u64,
    pub proposals_missed: u64,
    pub proposals_orphaned: u64,
    pub proposals_unknown: u64,
    /// Slots (summed over epochs) whose sync signature was / was not included.
    pub sync_participated: u64,
    pub sync_missed: u64,
}

impl ValidatorSummary {
    fn empty(validator_index: ValidatorIndex) -> Self {
        ValidatorSummary {
            validator_index,
            attestations_included: 0,
            attestations_missed: 0,
            attestations_pending: 0,
            attestations_unknown: 0,
            attestations_inactive: 0,
            average_inclusion_delay: None,
            head_correct_rate: None,
            target_correct_rate: None,
            source_correct_rate: None,
            proposals_proposed: 0,
            proposals_missed: 0,
            proposals_orphaned: 0,
            proposals_unknown: 0,
            sync_participated: 0,
            sync_missed: 0,
        }
    }
}

/// Why a store operation failed. Database URLs appear only with their
/// password replaced (`redact_url`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported database URL scheme {scheme:?}: expected postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl { scheme: String },
    #[error("invalid database URL {target}")]
    InvalidUrl {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory {} for the SQLite database", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the {backend} schema")]
    Migrate {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("store: {op} failed")]
    Database {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} = {value} does not fit a BIGINT column")]
    OutOfRange { what: &'static str, value: u64 },
    #[error("the record of epoch {epoch} is inconsistent: {problem}")]
    InvalidRecord { epoch: Epoch, problem: String },
    #[error("stored {what} is invalid: {problem}")]
    Corrupt { what: &'static str, problem: String },
    #[error(
        "this database belongs to the network with genesis_validators_root {stored}, \
         not {expected}: use another database"
    )]
    NetworkMismatch { stored: String, expected: Root },
    #[error(
        "no database at {target}: check the path (--data-dir, --database-url, \
         data_dir, database.url); `valwatch run` or `valwatch migrate` creates it"
    )]
    NoDatabase { target: String },
    #[error("no valwatch data in {target}: run `valwatch migrate` or `valwatch run` first")]
    NotMigrated { target: String },
    #[error(
        "this database was written by an older valwatch (schema {version}, this binary \
         knows {known}): upgrade it with `valwatch migrate` or by starting `valwatch run`"
    )]
    OlderSchema { version: i64, known: i64 },
    #[error("this database was written by a newer valwatch (schema {version}, this binary knows {known})")]
    NewerSchema { version: i64, known: i64 },
    #[error("the database {target} is failing ({error}); statements fail at once until it answers again")]
    Unavailable { target: String, error: String },
}

/// What a database's schema is, judged without changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// No valwatch migration applied (a new or foreign database).
    Empty,
    /// Only known migrations, not all: `migrate` or `run` brings it to `known`.
    Older {
        version: i64,
        known: i64,
    },
    Current {
        version: i64,
    },
    /// A migration this binary does not know: written by a newer valwatch.
    /// Nothing may write to it, nothing may read it as if it were ours.
    Newer {
        version: i64,
        known: i64,
    },
}

/// PURE: the state of a schema with `applied` migration versions, for a
/// binary that embeds `known` ones. A version is a migration's number
/// (`migrations/*/0002_….sql` is 2); the highest one names the schema.
pub fn judge_schema(applied: &[i64], known: &[i64]) -> SchemaState {
    let known_max = known.iter().copied().max().unwrap_or(0);
    let Some(version) = applied.iter().copied().max() else {
        return SchemaState::Empty;
    };
    if applied.iter().any(|v| !known.contains(v)) {
        SchemaState::Newer {
            version,
            known: known_max,
        }
    } else if known.iter().all(|v| applied.contains(v)) {
        SchemaState::Current { version }
    } else {
        SchemaState::Older {
            version,
            known: known_max,
        }
    }
}

impl StoreError {
    /// Worth retrying as is: the database was unreachable, busy or chose
    /// this transaction as a victim. Everything else needs a change first.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            StoreError::Database { source, .. } | StoreError::Connect { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(e) => matches!(
                e.code().as_deref(),
                // PostgreSQL: serialization_failure, deadlock_detected,
                // admin/crash shutdown, cannot_connect_now.
                Some("40001" | "40P01" | "57P01" | "57P02" | "57P03")
                // SQLite: SQLITE_BUSY, SQLITE_LOCKED (primary result codes).
                | Some("5" | "6")
            ),
            _ => false,
        }
    }
}

/// `op` as the error of a failed query.
fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

/// The URL with any password replaced by `***`, for logs and errors. A URL
/// that does not parse is not shown at all: where its secret sits is unknown.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparseable database URL>".to_owned();
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have a password; then there is none.
        let _ = parsed.set_password(Some("***"));
    }
    // libpq also accepts the password as a query parameter.
    if parsed.query_pairs().any(|(k, _)| k.contains("password")) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.contains("password") {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    Sqlite,
}

fn kind_of(url: &str) -> Result<Kind, StoreError> {
    let lower = url.get(..14).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Kind::Postgres)
    } else if lower.starts_with("sqlite:") {
        Ok(Kind::Sqlite)
    } else {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        // A scheme is short and never holds a secret; anything else is cut.
        let scheme = if scheme.len() <= 16
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            scheme.to_owned()
        } else {
            String::new()
        };
        Err(StoreError::UnsupportedUrl { scheme })
    }
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The store: a connection pool to PostgreSQL or SQLite. Cloning is cheap
/// (the pool is shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The URL with the password redacted, for logs.
    target: Arc<str>,
    /// The balances of the last final epoch this store wrote: the next
    /// epoch's "previous balances" without reading them back (at a million
    /// validators the read costs ~1.5 s per epoch, issue 12).
    last_final_balances: Arc<std::sync::Mutex<Option<FinalBalances>>>,
    /// The breaker: whether the database answers (`health`).
    health: Arc<health::Health>,
}

/// One final epoch and the balances written for it.
type FinalBalances = (Epoch, HashMap<ValidatorIndex, Gwei>);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .field("target", &self.target)
            .finish()
    }
}

/// Calls the same function of whichever backend the store uses.
/// Fails at once while the database is known down, and notes an outage
/// (`health`).
macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* )) => {{
        $self.admit()?;
        let r = match &$self.backend {
            Backend::Postgres(pool) => postgres::$f(pool, $($arg),*).await,
            Backend::Sqlite(pool) => sqlite::$f(pool, $($arg),*).await,
        };
        $self.observe(&r);
        r
    }};
}

impl Store {
    /// Opens a pool to `postgres://…` / `postgresql://…` or `sqlite://path`
    /// (`sqlite::memory:` for a throw-away database). A SQLite file and its
    /// directory are created if missing. Does not migrate.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let target: Arc<str> = redact_url(url).into();
        let backend = match kind_of(url)? {
            Kind::Postgres => Backend::Postgres(postgres::connect(url, &target).await?),
            Kind::Sqlite => Backend::Sqlite(sqlite::connect(url, &target).await?),
        };
        Ok(Store {
            backend,
            target,
            last_final_balances: Arc::default(),
            health: Arc::default(),
        })
    }

    /// Opens an existing valwatch database for reading only: creates no
    /// file, applies no migration, writes nothing. Refuses a missing file,
    /// a database without valwatch's schema, and a schema older or newer
    /// than this binary's (each with the reason and what to do).
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        let target: Arc<str> = redact_url(url).into();
        let Some(store) = Self::connect_read_only(url, target.clone()).await? else {
            return Err(StoreError::NoDatabase {
                target: target.to_string(),
            });
        };
        let refusal = match store.schema().await {
            Ok(SchemaState::Current { .. }) => return Ok(store),
            Ok(SchemaState::Empty) => StoreError::NotMigrated {
                target: target.to_string(),
            },
            Ok(SchemaState::Older { version, known }) => StoreError::OlderSchema { version, known },
            Ok(SchemaState::Newer { version, known }) => StoreError::NewerSchema { version, known },
            Err(e) => e,
        };
        store.close().await;
        Err(refusal)
    }

    /// The schema state of the database at `url`, seen read-only; `None`
    /// when there is no SQLite file there yet.
    pub async fn inspect(url: &str) -> Result<Option<SchemaState>, StoreError> {
        let target: Arc<str> = redact_url(url).into();
        let Some(store) = Self::connect_read_only(url, target).await? else {
            return Ok(None);
        };
        let state = store.schema().await;
        store.close().await;
        state.map(Some)
    }

    async fn connect_read_only(url: &str, target: Arc<str>) -> Result<Option<Store>, StoreError> {
        let backend = match kind_of(url)? {
            Kind::Postgres => Backend::Postgres(postgres::connect_read_only(url, &target).await?),
            Kind::Sqlite => match sqlite::connect_read_only(url, &target).await? {
                Some(pool) => Backend::Sqlite(pool),
                None => return Ok(None),
            },
        };
        Ok(Some(Store {
            backend,
            target,
            last_final_balances: Arc::default(),
            health: Arc::default(),
        }))
    }

    /// The schema's state against the migrations built into this binary.
    pub async fn schema(&self) -> Result<SchemaState, StoreError> {
        let (applied, known) = match &self.backend {
            Backend::Postgres(pool) => (
                postgres::applied_migrations(pool).await?,
                postgres::known_migrations(),
            ),
            Backend::Sqlite(pool) => (
                sqlite::applied_migrations(pool).await?,
                sqlite::known_migrations(),
            ),
        };
        Ok(judge_schema(&applied, &known))
    }

    /// "postgres" or "sqlite".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The database URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Applies the embedded migrations that are not applied yet. Refuses a
    /// schema from a newer valwatch before touching anything: an older
    /// binary must not write tables whose meaning has moved on.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if let SchemaState::Newer { version, known } = self.schema().await? {
            return Err(StoreError::NewerSchema { version, known });
        }
        dispatch!(self, migrate())
    }

    /// One round trip, past the breaker (see `health::ping`).
    async fn ping_once(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::ping(pool).await,
            Backend::Sqlite(pool) => sqlite::ping(pool).await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }

    /// Stores everything judged for one epoch in one transaction, one bulk
    /// statement per table, and advances the cursor if the record is final.
    pub async fn write_epoch(&self, record: &EpochRecord) -> Result<WriteStats, StoreError> {
        let rows = codec::epoch_rows(record)?;
        let written = dispatch!(self, write_epoch(&rows));
        let mut memory = self
            .last_final_balances
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut stats = match written {
            Ok(s) => s,
            Err(e) => {
                // What is stored is no longer known for sure.
                *memory = None;
                return Err(e);
            }
        };
        if !stats.kept_final {
            stats.approx_bytes = rows.approx_bytes();
        }
        if record.is_final {
            let newer = memory.as_ref().is_none_or(|(e, _)| *e <= record.epoch);
            if newer {
                *memory = Some((
                    record.epoch,
                    record
                        .balances
                        .iter()
                        .map(|b| (b.validator_index, b.balance))
                        .collect(),
                ));
            }
        }
        Ok(stats)
    }

    /// The last epoch stored as final, if any: processing resumes after it.
    pub async fn cursor(&self) -> Result<Option<Epoch>, StoreError> {
        let epoch = dispatch!(self, cursor(codec::PROCESSED_CURSOR))?;
        epoch
            .map(|e| codec::to_u64(e, "cursors.epoch").map(Epoch))
            .transpose()
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, meta(key))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        dispatch!(self, set_meta(key, value))
    }

    /// Keeps the network's time constants in `meta` (keys
    /// [`META_CHAIN_CONSTANTS`]) for readers of the database that map
    /// epochs to time: the Grafana history dashboard reads them instead of
    /// hard-coding mainnet's. Rewritten on every start, so a database made
    /// before these keys existed gets them on its next start.
    pub async fn record_chain_constants(&self, spec: &ChainSpec) -> Result<(), StoreError> {
        let values = [
            spec.genesis_time,
            spec.slot_duration_ms,
            spec.slots_per_epoch,
        ];
        for (key, value) in META_CHAIN_CONSTANTS.iter().zip(values) {
            self.set_meta(key, &value.to_string()).await?;
        }
        Ok(())
    }

    /// Binds an empty database to the network `root` (its
    /// `genesis_validators_root`); errors if it already belongs to another.
    pub async fn check_network(&self, root: Root) -> Result<(), StoreError> {
        let hex = root.to_hex();
        let stored = dispatch!(self, meta_insert_or_get(codec::NETWORK_KEY, &hex))?;
        if stored == hex {
            Ok(())
        } else {
            Err(StoreError::NetworkMismatch {
                stored,
                expected: root,
            })
        }
    }

    /// Keeps the proposer duties of one epoch, replacing any earlier answer
    /// (a reorg may change the dependent root and the duties).
    pub async fn save_proposer_duties(&self, duties: &ProposerDuties) -> Result<(), StoreError> {
        let epoch = codec::to_i64(duties.epoch.0, "epoch")?;
        let mut slots = Vec::with_capacity(duties.duties.len());
        let mut validators = Vec::with_capacity(duties.duties.len());
        for d in &duties.duties {
            slots.push(codec::to_i64(d.slot.0, "slot")?);
            validators.push(codec::to_i64(d.validator_index.0, "validator_index")?);
        }
        let root = duties.dependent_root.to_hex();
        dispatch!(self, save_proposer_duties(epoch, &root, slots, validators))
    }

    pub async fn proposer_duties(
        &self,
        epoch: Epoch,
    ) -> Result<Option<ProposerDuties>, StoreError> {
        let e = codec::to_i64(epoch.0, "epoch")?;
        let Some((root, rows)) = dispatch!(self, proposer_duties(e))? else {
            return Ok(None);
        };
        let duties = rows
            .into_iter()
            .map(|(slot, v)| {
                Ok(crate::chain::ProposerDuty {
                    slot: Slot(codec::to_u64(slot, "proposer_duties.slot")?),
                    validator_index: ValidatorIndex(codec::to_u64(
                        v,
                        "proposer_duties.validator_index",
                    )?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(ProposerDuties {
            epoch,
            dependent_root: codec::root(root, "proposer_duty_sets.dependent_root")?,
            duties,
        }))
    }

    /// Keeps another perishable node answer (e.g. `"liveness"`,
    /// `"attestation_rewards"`) for `epoch`, replacing an earlier one.
    pub async fn save_perishable(
        &self,
        kind: &str,
        epoch: Epoch,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let e = codec::to_i64(epoch.0, "epoch")?;
        dispatch!(self, save_perishable(kind, e, body))
    }

    pub async fn load_perishable(
        &self,
        kind: &str,
        epoch: Epoch,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let e = codec::to_i64(epoch.0, "epoch")?;
        dispatch!(self, load_perishable(kind, e))
    }

    /// For each validator, its balance at the newest stored epoch before
    /// `before_epoch`; validators without one are absent.
    pub async fn latest_balances(
        &self,
        validators: &[ValidatorIndex],
        before_epoch: Epoch,
    ) -> Result<HashMap<ValidatorIndex, Gwei>, StoreError> {
        // The epoch just before, written final by this store, holds the
        // newest balance of every validator it has a row for.
        {
            let memory = self
                .last_final_balances
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((epoch, balances)) = memory.as_ref() {
                if epoch.0 + 1 == before_epoch.0
                    && validators.iter().all(|v| balances.contains_key(v))
                {
                    return Ok(validators
                        .iter()
                        .filter_map(|v| balances.get(v).map(|b| (*v, *b)))
                        .collect());
                }
            }
        }
        let ids: Vec<i64> = validators
            .iter()
            .filter_map(|v| i64::try_from(v.0).ok())
            .collect();
        let before = i64::try_from(before_epoch.0).unwrap_or(i64::MAX);
        let rows = dispatch!(self, latest_balances(ids, before))?;
        rows.into_iter()
            .map(|(v, b)| {
                Ok((
                    ValidatorIndex(codec::to_u64(v, "balances.validator_index")?),
                    Gwei(codec::to_u64(b, "balances.balance_gwei")?),
                ))
            })
            .collect()
    }

    /// The stored verdicts matching `query`, ordered by epoch (slot for
    /// proposals), then validator.
    pub async fn report(&self, query: &ReportQuery) -> Result<Report, StoreError> {
        let filter = codec::Filter::new(query);
        let mut report: Report = dispatch!(self, report(&filter))?;
        report.rewards = self.rewards(query).await?;
        report.network = self.network(query).await?;
        Ok(report)
    }

    /// Slashings matching `query`, ordered by epoch, validator.
    pub async fn slashings(&self, query: &ReportQuery) -> Result<Vec<SlashingRecord>, StoreError> {
        let filter = codec::Filter::new(query);
        dispatch!(self, slashings(&filter))
    }

    /// Cross-checks in the epochs of `query` (its validators do not apply),
    /// ordered by epoch, node.
    pub async fn cross_checks(
        &self,
        query: &ReportQuery,
    ) -> Result<Vec<CrossCheckRecord>, StoreError> {
        let filter = codec::Filter {
            validators: None,
            ..codec::Filter::new(query)
        };
        dispatch!(self, cross_checks(&filter))
    }

    /// Per-validator totals over `query`, ordered by validator.
    pub async fn summary(&self, query: &ReportQuery) -> Result<Vec<ValidatorSummary>, StoreError> {
        let filter = codec::Filter::new(query);
        dispatch!(self, summary(&filter))
    }

    /// Bytes the database takes (PostgreSQL: `pg_database_size`; SQLite:
    /// the main file's pages), to measure what writes cost on disk.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let size = dispatch!(self, size_bytes())?;
        codec::to_u64(size, "database size")
    }

    /// Deletes everything of epochs before `keep_from_epoch` (verdicts,
    /// balances, cross-checks, perishable answers) in one transaction;
    /// returns the number of rows deleted. Never deletes cursors or meta.
    pub async fn prune(&self, keep_from_epoch: Epoch) -> Result<u64, StoreError> {
        let keep_from = i64::try_from(keep_from_epoch.0).unwrap_or(i64::MAX);
        dispatch!(self, prune(keep_from))
    }
}

/// Whether `name` may be spliced into `CREATE DATABASE` unquoted: a
/// lower-case identifier (PostgreSQL folds unquoted names to lower case).
fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Creates the PostgreSQL database `name` on the server of `admin_url`
/// (benchmarks, throw-away runs); returns the URL of the new database.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    let target = redact_url(admin_url);
    if !is_plain_identifier(name) {
        return Err(StoreError::Corrupt {
            what: "database name",
            problem: format!("{name:?} is not a lower-case identifier"),
        });
    }
    postgres::admin(admin_url, &target, &format!("CREATE DATABASE {name}")).await?;
    let mut url = url::Url::parse(admin_url).map_err(|e| StoreError::Corrupt {
        what: "database URL",
        problem: e.to_string(),
    })?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Drops the PostgreSQL database `name`, closing its sessions.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let target = redact_url(admin_url);
    if !is_plain_identifier(name) {
        return Err(StoreError::Corrupt {
            what: "database name",
            problem: format!("{name:?} is not a lower-case identifier"),
        });
    }
    postgres::admin(
        admin_url,
        &target,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_become_database_names() {
        assert!(is_plain_identifier("valwatch_bench_12_1000"));
        for bad in ["", "Bench", "1db", "a;drop", "a b", &"x".repeat(64)] {
            assert!(!is_plain_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn redacted_urls_never_show_the_password() {
        let cases = [
            (
                "postgres://valwatch:hunter2@db:5432/valwatch",
                "postgres://valwatch:***@db:5432/valwatch",
            ),
            (
                "postgres://db/valwatch?user=v&password=hunter2",
                "postgres://db/valwatch?user=v&password=***",
            ),
            ("postgres://db/valwatch", "postgres://db/valwatch"),
            ("sqlite://data/valwatch.db", "sqlite://data/valwatch.db"),
            ("not a url hunter2", "<unparseable database URL>"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn the_url_scheme_chooses_the_backend() {
        assert_eq!(kind_of("postgres://x/y").unwrap(), Kind::Postgres);
        assert_eq!(kind_of("PostgreSQL://x/y").unwrap(), Kind::Postgres);
        assert_eq!(kind_of("sqlite://a.db").unwrap(), Kind::Sqlite);
        assert_eq!(kind_of("sqlite::memory:").unwrap(), Kind::Sqlite);
        match kind_of("mysql://root:pw@h/db") {
            Err(StoreError::UnsupportedUrl { scheme }) => assert_eq!(scheme, "mysql"),
            other => panic!("{other:?}"),
        }
        match kind_of("user:secret@host") {
            Err(StoreError::UnsupportedUrl { scheme }) => assert_eq!(scheme, "user"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_schema_is_judged_by_the_versions_applied_and_known() {
        use SchemaState::*;
        let known = [1, 2];
        let cases: &[(&str, &[i64], SchemaState)] = &[
            ("nothing applied", &[], Empty),
            ("all applied", &[1, 2], Current { version: 2 }),
            (
                "an older binary's schema",
                &[1],
                Older {
                    version: 1,
                    known: 2,
                },
            ),
            (
                "a newer binary's schema",
                &[1, 2, 3],
                Newer {
                    version: 3,
                    known: 2,
                },
            ),
            (
                "an unknown version among known ones is newer",
                &[1, 7],
                Newer {
                    version: 7,
                    known: 2,
                },
            ),
        ];
        for (name, applied, want) in cases {
            assert_eq!(judge_schema(applied, &known), *want, "{name}");
        }
        assert_eq!(
            StoreError::NewerSchema {
                version: 3,
                known: 2
            }
            .to_string(),
            "this database was written by a newer valwatch (schema 3, this binary knows 2)"
        );
    }
}
