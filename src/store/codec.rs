//! Pure conversions between the domain types and column values, shared by
//! both backends so they store and read exactly the same thing.
//!
//! Owns: the u64 → BIGINT rule, record validation, the row shapes written
//! per table, the statement text that both dialects share, and decoding of
//! read rows back into domain types. Must not: run a query.

use std::collections::{BTreeMap, HashSet};

use crate::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
    SlashingKind, SlashingRecord, SyncVerdict,
};
use crate::chain::{Epoch, Gwei, Root, Slot, ValidatorIndex, ValidatorStatus};

use super::{CrossCheckRecord, EpochRecord, ReportQuery, StoreError, ValidatorSummary};

/// Name of the cursor that `write_epoch` advances.
pub(super) const PROCESSED_CURSOR: &str = "processed";

/// Meta key holding the network's `genesis_validators_root`.
pub(super) const NETWORK_KEY: &str = "genesis_validators_root";

/// A u64 from the program as a BIGINT. PostgreSQL has no unsigned type;
/// wrapping a value above i64::MAX would store a negative number, so such a
/// value is refused. No stored column ever legitimately holds one.
pub(super) fn to_i64(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

fn opt_i64(value: Option<u64>, what: &'static str) -> Result<Option<i64>, StoreError> {
    value.map(|v| to_i64(v, what)).transpose()
}

/// A BIGINT read back; the schema's `CHECK (x >= 0)` makes a negative value
/// a corrupt database, not an input to tolerate.
pub(super) fn to_u64(value: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what,
        problem: format!("negative value {value}"),
    })
}

/// A query bound above i64::MAX selects the same rows as i64::MAX (nothing
/// stored can be larger), so bounds are clamped rather than refused.
fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn parse_root(text: Option<String>, what: &'static str) -> Result<Option<Root>, StoreError> {
    text.map(|t| {
        t.parse::<Root>().map_err(|e| StoreError::Corrupt {
            what,
            problem: format!("{t:?}: {e}"),
        })
    })
    .transpose()
}

// ---------------------------------------------------------------- rows --

pub(super) struct AttestationRow<'a> {
    pub epoch: i64,
    pub validator_index: i64,
    pub status: &'static str,
    pub duty_slot: Option<i64>,
    pub inclusion_slot: Option<i64>,
    pub inclusion_delay: Option<i64>,
    pub late: Option<bool>,
    pub source_correct: Option<bool>,
    pub target_correct: Option<bool>,
    pub head_correct: Option<bool>,
    pub reason: Option<&'a str>,
}

pub(super) struct ProposalRow<'a> {
    pub slot: i64,
    pub epoch: i64,
    /// NULL: an unknown empty slot whose proposer nobody serves any more.
    pub validator_index: Option<i64>,
    pub status: &'static str,
    pub block_root: Option<String>,
    pub reason: Option<&'a str>,
}

pub(super) struct SyncRow {
    pub epoch: i64,
    pub validator_index: i64,
    pub participated: i64,
    pub missed: i64,
}

pub(super) struct BalanceRow {
    pub epoch: i64,
    pub validator_index: i64,
    pub balance: i64,
    pub effective_balance: i64,
    pub status: &'static str,
    pub slashed: bool,
    pub balance_change: Option<i64>,
}

pub(super) struct SlashingRow {
    pub epoch: i64,
    pub validator_index: i64,
    pub kind: &'static str,
    pub included_in_slot: i64,
}

pub(super) struct CrossCheckRow<'a> {
    pub epoch: i64,
    pub node: &'a str,
    pub slot: i64,
    pub node_root: Option<String>,
    pub expected_root: Option<String>,
    pub agrees: bool,
    pub error: Option<&'a str>,
}

/// An `EpochRecord` checked and converted to column values.
pub(super) struct EpochRows<'a> {
    pub epoch: i64,
    pub is_final: bool,
    pub attestations: Vec<AttestationRow<'a>>,
    pub proposals: Vec<ProposalRow<'a>>,
    pub sync: Vec<SyncRow>,
    pub balances: Vec<BalanceRow>,
    pub slashings: Vec<SlashingRow>,
    pub cross_checks: Vec<CrossCheckRow<'a>>,
}

/// Size of a value as the payload carries it, for `WriteStats::approx_bytes`.
const INT_BYTES: u64 = 8;
const BOOL_BYTES: u64 = 1;

fn text_bytes(s: Option<&str>) -> u64 {
    s.map_or(0, |s| s.len() as u64)
}

impl EpochRows<'_> {
    /// Approximate payload size: 8 bytes per integer, 1 per boolean, the
    /// length of each text. The same estimate for both backends, so the
    /// number is comparable across them.
    pub fn approx_bytes(&self) -> u64 {
        let a: u64 = self
            .attestations
            .iter()
            .map(|r| 6 * INT_BYTES + 4 * BOOL_BYTES + r.status.len() as u64 + text_bytes(r.reason))
            .sum();
        let p: u64 = self
            .proposals
            .iter()
            .map(|r| {
                3 * INT_BYTES
                    + r.status.len() as u64
                    + text_bytes(r.block_root.as_deref())
                    + text_bytes(r.reason)
            })
            .sum();
        let s = self.sync.len() as u64 * 4 * INT_BYTES;
        let b: u64 = self
            .balances
            .iter()
            .map(|r| 5 * INT_BYTES + BOOL_BYTES + r.status.len() as u64)
            .sum();
        let sl: u64 = self
            .slashings
            .iter()
            .map(|r| 3 * INT_BYTES + r.kind.len() as u64)
            .sum();
        let c: u64 = self
            .cross_checks
            .iter()
            .map(|r| {
                2 * INT_BYTES
                    + BOOL_BYTES
                    + r.node.len() as u64
                    + text_bytes(r.node_root.as_deref())
                    + text_bytes(r.expected_root.as_deref())
                    + text_bytes(r.error)
            })
            .sum();
        a + p + s + b + sl + c
    }
}

/// Checks that every row of the record belongs to its epoch and that no key
/// appears twice (PostgreSQL refuses an upsert that touches a row twice;
/// SQLite would silently keep the last: refusing keeps one behaviour), then
/// converts it to column values.
pub(super) fn epoch_rows(record: &EpochRecord) -> Result<EpochRows<'_>, StoreError> {
    let epoch = record.epoch;
    let invalid = |problem: String| StoreError::InvalidRecord { epoch, problem };
    let e = to_i64(epoch.0, "epoch")?;

    let mut seen = HashSet::new();
    let mut attestations = Vec::with_capacity(record.attestations.len());
    for v in &record.attestations {
        if v.epoch != epoch {
            return Err(invalid(format!(
                "attestation verdict of validator {} is for epoch {}",
                v.validator_index, v.epoch
            )));
        }
        if !seen.insert(v.validator_index) {
            return Err(invalid(format!(
                "two attestation verdicts for validator {}",
                v.validator_index
            )));
        }
        attestations.push(AttestationRow {
            epoch: e,
            validator_index: to_i64(v.validator_index.0, "validator_index")?,
            status: v.status.as_str(),
            duty_slot: opt_i64(v.duty_slot.map(|s| s.0), "duty_slot")?,
            inclusion_slot: opt_i64(v.inclusion_slot.map(|s| s.0), "inclusion_slot")?,
            inclusion_delay: opt_i64(v.inclusion_delay, "inclusion_delay")?,
            late: v.late,
            source_correct: v.source_correct,
            target_correct: v.target_correct,
            head_correct: v.head_correct,
            reason: v.reason.as_deref(),
        });
    }

    let mut slots = HashSet::new();
    let mut proposals = Vec::with_capacity(record.proposals.len());
    for v in &record.proposals {
        if !slots.insert(v.slot) {
            return Err(invalid(format!(
                "two proposal verdicts for slot {}",
                v.slot
            )));
        }
        proposals.push(ProposalRow {
            slot: to_i64(v.slot.0, "slot")?,
            epoch: e,
            validator_index: opt_i64(v.validator_index.map(|x| x.0), "validator_index")?,
            status: v.status.as_str(),
            block_root: v.block_root.map(|r| r.to_hex()),
            reason: v.reason.as_deref(),
        });
    }

    seen.clear();
    let mut sync = Vec::with_capacity(record.sync.len());
    for v in &record.sync {
        if v.epoch != epoch {
            return Err(invalid(format!(
                "sync verdict of validator {} is for epoch {}",
                v.validator_index, v.epoch
            )));
        }
        if !seen.insert(v.validator_index) {
            return Err(invalid(format!(
                "two sync verdicts for validator {}",
                v.validator_index
            )));
        }
        sync.push(SyncRow {
            epoch: e,
            validator_index: to_i64(v.validator_index.0, "validator_index")?,
            participated: i64::from(v.participated),
            missed: i64::from(v.missed),
        });
    }

    seen.clear();
    let mut balances = Vec::with_capacity(record.balances.len());
    for v in &record.balances {
        if v.epoch != epoch {
            return Err(invalid(format!(
                "balance of validator {} is for epoch {}",
                v.validator_index, v.epoch
            )));
        }
        if !seen.insert(v.validator_index) {
            return Err(invalid(format!(
                "two balances for validator {}",
                v.validator_index
            )));
        }
        balances.push(BalanceRow {
            epoch: e,
            validator_index: to_i64(v.validator_index.0, "validator_index")?,
            balance: to_i64(v.balance.0, "balance_gwei")?,
            effective_balance: to_i64(v.effective_balance.0, "effective_balance_gwei")?,
            status: v.status.as_str(),
            slashed: v.slashed,
            balance_change: v.balance_change,
        });
    }

    let mut slashing_keys = HashSet::new();
    let mut slashings = Vec::with_capacity(record.slashings.len());
    for v in &record.slashings {
        if v.epoch != epoch {
            return Err(invalid(format!(
                "slashing of validator {} is for epoch {}",
                v.validator_index, v.epoch
            )));
        }
        if !slashing_keys.insert((v.validator_index, v.kind)) {
            return Err(invalid(format!(
                "two {} slashings of validator {}",
                v.kind.as_str(),
                v.validator_index
            )));
        }
        slashings.push(SlashingRow {
            epoch: e,
            validator_index: to_i64(v.validator_index.0, "validator_index")?,
            kind: v.kind.as_str(),
            included_in_slot: to_i64(v.included_in_slot.0, "included_in_slot")?,
        });
    }

    let mut nodes = HashSet::new();
    let mut cross_checks = Vec::with_capacity(record.cross_checks.len());
    for v in &record.cross_checks {
        if v.epoch != epoch {
            return Err(invalid(format!(
                "cross-check of node {} is for epoch {}",
                v.node, v.epoch
            )));
        }
        if !nodes.insert(v.node.as_str()) {
            return Err(invalid(format!("two cross-checks of node {}", v.node)));
        }
        cross_checks.push(CrossCheckRow {
            epoch: e,
            node: &v.node,
            slot: to_i64(v.slot.0, "slot")?,
            node_root: v.node_root.map(|r| r.to_hex()),
            expected_root: v.expected_root.map(|r| r.to_hex()),
            agrees: v.agrees,
            error: v.error.as_deref(),
        });
    }

    Ok(EpochRows {
        epoch: e,
        is_final: record.is_final,
        attestations,
        proposals,
        sync,
        balances,
        slashings,
        cross_checks,
    })
}

// ------------------------------------------------------------ statements --

/// How one verdict table is upserted; both dialects build their statement
/// from this, so the column lists and the replacement rule cannot drift.
pub(super) struct UpsertSpec {
    pub table: &'static str,
    pub key: &'static [&'static str],
    /// Non-key columns, in the order after the key columns.
    pub values: &'static [&'static str],
    /// Extra condition under which an existing row may be replaced.
    pub keep_rule: Option<&'static str>,
}

impl UpsertSpec {
    pub fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.key.iter().chain(self.values.iter()).copied()
    }

    pub fn column_list(&self) -> String {
        self.columns().collect::<Vec<_>>().join(", ")
    }

    /// `ON CONFLICT … DO UPDATE … WHERE …`, the same text for both dialects
    /// (SQLite ≥ 3.39 knows `IS DISTINCT FROM`). Rows whose values are all
    /// unchanged are not rewritten: redoing an epoch then writes nothing
    /// (no dead tuples in PostgreSQL, no WAL growth in SQLite) and the
    /// write counts report only real changes.
    pub fn conflict_clause(&self) -> String {
        let sets = self
            .values
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let old = self
            .values
            .iter()
            .map(|c| format!("{}.{c}", self.table))
            .collect::<Vec<_>>()
            .join(", ");
        let new = self
            .values
            .iter()
            .map(|c| format!("excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let keep = self
            .keep_rule
            .map(|r| format!(" AND {r}"))
            .unwrap_or_default();
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new}){keep}",
            self.key.join(", ")
        )
    }
}

/// An `unknown` verdict says the data is no longer served; it must not
/// erase a verdict that was reached while it was (e.g. an epoch judged
/// again after the node pruned its history).
pub(super) const ATTESTATIONS: UpsertSpec = UpsertSpec {
    table: "attestations",
    key: &["epoch", "validator_index"],
    values: &[
        "status",
        "duty_slot",
        "inclusion_slot",
        "inclusion_delay",
        "late",
        "source_correct",
        "target_correct",
        "head_correct",
        "reason",
    ],
    keep_rule: Some(
        "NOT (excluded.status = 'unknown' \
         AND attestations.status IN ('included', 'missed', 'inactive'))",
    ),
};

pub(super) const PROPOSALS: UpsertSpec = UpsertSpec {
    table: "proposals",
    key: &["slot"],
    values: &["epoch", "validator_index", "status", "block_root", "reason"],
    keep_rule: Some(
        "NOT (excluded.status = 'unknown' \
         AND proposals.status IN ('proposed', 'missed', 'orphaned'))",
    ),
};

pub(super) const SYNC: UpsertSpec = UpsertSpec {
    table: "sync_participation",
    key: &["epoch", "validator_index"],
    values: &["participated", "missed"],
    keep_rule: None,
};

pub(super) const BALANCES: UpsertSpec = UpsertSpec {
    table: "balances",
    key: &["epoch", "validator_index"],
    values: &[
        "balance_gwei",
        "effective_balance_gwei",
        "status",
        "slashed",
        "balance_change_gwei",
    ],
    keep_rule: None,
};

pub(super) const SLASHINGS: UpsertSpec = UpsertSpec {
    table: "slashings",
    key: &["epoch", "validator_index", "kind"],
    values: &["included_in_slot"],
    keep_rule: None,
};

pub(super) const CROSS_CHECKS: UpsertSpec = UpsertSpec {
    table: "cross_checks",
    key: &["epoch", "node"],
    values: &["slot", "node_root", "expected_root", "agrees", "error"],
    keep_rule: None,
};

/// Tables cleared by retention, children before parents. Cursors and meta
/// are deliberately absent: retention never forgets where processing stands
/// or which network the database belongs to.
pub(super) const PRUNED_TABLES: &[&str] = &[
    "rewards",
    "network_epochs",
    "attestations",
    "proposals",
    "sync_participation",
    "balances",
    "slashings",
    "cross_checks",
    "proposer_duties",
    "proposer_duty_sets",
    "perishable",
    "epochs",
];

pub(super) const SELECT_ATTESTATIONS: &str = "SELECT validator_index, epoch, status, duty_slot, \
    inclusion_slot, inclusion_delay, late, source_correct, target_correct, head_correct, reason \
    FROM attestations";
pub(super) const ORDER_ATTESTATIONS: &str = " ORDER BY epoch, validator_index";

pub(super) const SELECT_PROPOSALS: &str =
    "SELECT slot, validator_index, status, block_root, reason FROM proposals";
pub(super) const ORDER_PROPOSALS: &str = " ORDER BY slot, validator_index";

pub(super) const SELECT_SYNC: &str =
    "SELECT validator_index, epoch, participated, missed FROM sync_participation";
pub(super) const SELECT_BALANCES: &str = "SELECT validator_index, epoch, balance_gwei, \
    effective_balance_gwei, status, slashed, balance_change_gwei FROM balances";
pub(super) const ORDER_BY_EPOCH: &str = " ORDER BY epoch, validator_index";

pub(super) const SELECT_SLASHINGS: &str =
    "SELECT validator_index, epoch, included_in_slot, kind FROM slashings";
pub(super) const ORDER_SLASHINGS: &str = " ORDER BY epoch, validator_index, kind";

pub(super) const SELECT_CROSS_CHECKS: &str = "SELECT epoch, slot, node, node_root, \
    expected_root, agrees, error FROM cross_checks";
pub(super) const ORDER_CROSS_CHECKS: &str = " ORDER BY epoch, node";

/// Per-validator attestation counts. Aggregate FILTER works in PostgreSQL
/// and SQLite (≥ 3.30); the AVG cast makes PostgreSQL return float8
/// instead of numeric. Correctness counts are over included votes whose
/// correctness is known.
pub(super) const SUMMARY_ATTESTATIONS: &str = "SELECT validator_index, \
    COUNT(*) FILTER (WHERE status = 'included'), \
    COUNT(*) FILTER (WHERE status = 'missed'), \
    COUNT(*) FILTER (WHERE status = 'pending'), \
    COUNT(*) FILTER (WHERE status = 'unknown'), \
    COUNT(*) FILTER (WHERE status = 'inactive'), \
    CAST(AVG(inclusion_delay) FILTER (WHERE status = 'included') AS DOUBLE PRECISION), \
    COUNT(*) FILTER (WHERE status = 'included' AND head_correct IS NOT NULL), \
    COUNT(*) FILTER (WHERE status = 'included' AND head_correct), \
    COUNT(*) FILTER (WHERE status = 'included' AND target_correct IS NOT NULL), \
    COUNT(*) FILTER (WHERE status = 'included' AND target_correct), \
    COUNT(*) FILTER (WHERE status = 'included' AND source_correct IS NOT NULL), \
    COUNT(*) FILTER (WHERE status = 'included' AND source_correct) \
    FROM attestations";

pub(super) const SUMMARY_PROPOSALS: &str = "SELECT validator_index, \
    COUNT(*) FILTER (WHERE status = 'proposed'), \
    COUNT(*) FILTER (WHERE status = 'missed'), \
    COUNT(*) FILTER (WHERE status = 'orphaned'), \
    COUNT(*) FILTER (WHERE status = 'unknown') \
    FROM proposals";

/// SUM(bigint) is numeric in PostgreSQL; the cast brings it back to i64.
pub(super) const SUMMARY_SYNC: &str = "SELECT validator_index, \
    CAST(SUM(participated) AS BIGINT), CAST(SUM(missed) AS BIGINT) \
    FROM sync_participation";

pub(super) const GROUP_BY_VALIDATOR: &str = " GROUP BY validator_index";

/// A `ReportQuery` in column values.
pub(super) struct Filter {
    pub validators: Option<Vec<i64>>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Filter {
    pub fn new(q: &ReportQuery) -> Filter {
        Filter {
            // Indices above i64::MAX cannot be stored, so they match nothing;
            // dropping them keeps that meaning.
            validators: q
                .validators
                .as_ref()
                .map(|vs| vs.iter().filter_map(|v| i64::try_from(v.0).ok()).collect()),
            from: q.from_epoch.map(|e| clamp_i64(e.0)),
            to: q.to_epoch.map(|e| clamp_i64(e.0)),
        }
    }
}

// -------------------------------------------------------------- decoding --

/// Typed column access, implemented for both backends' rows, so each
/// domain type is decoded by one function.
pub(super) trait ReadRow {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, i: usize) -> Result<bool, StoreError>;
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError>;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError>;
}

macro_rules! impl_read_row {
    ($row:ty) => {
        impl $crate::store::codec::ReadRow for $row {
            fn int(&self, i: usize) -> Result<i64, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn boolean(&self, i: usize) -> Result<bool, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn text(&self, i: usize) -> Result<String, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
            fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
                sqlx::Row::try_get(self, i).map_err(read_error)
            }
        }
    };
}
pub(super) use impl_read_row;

pub(super) fn read_error(source: sqlx::Error) -> StoreError {
    StoreError::Database {
        op: "decode a row",
        source,
    }
}

fn uint(row: &impl ReadRow, i: usize, what: &'static str) -> Result<u64, StoreError> {
    to_u64(row.int(i)?, what)
}

fn opt_uint(row: &impl ReadRow, i: usize, what: &'static str) -> Result<Option<u64>, StoreError> {
    row.opt_int(i)?.map(|v| to_u64(v, what)).transpose()
}

/// Columns as in `SELECT_ATTESTATIONS`.
pub(super) fn attestation(row: &impl ReadRow) -> Result<AttestationVerdict, StoreError> {
    let status = row.text(2)?;
    Ok(AttestationVerdict {
        validator_index: ValidatorIndex(uint(row, 0, "attestations.validator_index")?),
        epoch: Epoch(uint(row, 1, "attestations.epoch")?),
        status: AttestationStatus::from_name(&status).ok_or_else(|| StoreError::Corrupt {
            what: "attestations.status",
            problem: format!("unknown status {status:?}"),
        })?,
        duty_slot: opt_uint(row, 3, "attestations.duty_slot")?.map(Slot),
        inclusion_slot: opt_uint(row, 4, "attestations.inclusion_slot")?.map(Slot),
        inclusion_delay: opt_uint(row, 5, "attestations.inclusion_delay")?,
        late: row.opt_bool(6)?,
        source_correct: row.opt_bool(7)?,
        target_correct: row.opt_bool(8)?,
        head_correct: row.opt_bool(9)?,
        reason: row.opt_text(10)?,
    })
}

/// Columns as in `SELECT_PROPOSALS`.
pub(super) fn proposal(row: &impl ReadRow) -> Result<ProposalVerdict, StoreError> {
    let status = row.text(2)?;
    Ok(ProposalVerdict {
        slot: Slot(uint(row, 0, "proposals.slot")?),
        validator_index: opt_uint(row, 1, "proposals.validator_index")?.map(ValidatorIndex),
        status: ProposalStatus::from_name(&status).ok_or_else(|| StoreError::Corrupt {
            what: "proposals.status",
            problem: format!("unknown status {status:?}"),
        })?,
        block_root: parse_root(row.opt_text(3)?, "proposals.block_root")?,
        reason: row.opt_text(4)?,
    })
}

/// Columns as in `SELECT_SYNC`.
pub(super) fn sync(row: &impl ReadRow) -> Result<SyncVerdict, StoreError> {
    let count = |i, what| {
        let v = row.int(i)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            what,
            problem: format!("{v} is not a slot count"),
        })
    };
    Ok(SyncVerdict {
        validator_index: ValidatorIndex(uint(row, 0, "sync_participation.validator_index")?),
        epoch: Epoch(uint(row, 1, "sync_participation.epoch")?),
        participated: count(2, "sync_participation.participated")?,
        missed: count(3, "sync_participation.missed")?,
    })
}

/// Columns as in `SELECT_BALANCES`.
pub(super) fn balance(row: &impl ReadRow) -> Result<BalanceRecord, StoreError> {
    Ok(BalanceRecord {
        validator_index: ValidatorIndex(uint(row, 0, "balances.validator_index")?),
        epoch: Epoch(uint(row, 1, "balances.epoch")?),
        balance: Gwei(uint(row, 2, "balances.balance_gwei")?),
        effective_balance: Gwei(uint(row, 3, "balances.effective_balance_gwei")?),
        status: ValidatorStatus::from_name(&row.text(4)?),
        slashed: row.boolean(5)?,
        balance_change: row.opt_int(6)?,
    })
}

/// Columns as in `SELECT_SLASHINGS`.
pub(super) fn slashing(row: &impl ReadRow) -> Result<SlashingRecord, StoreError> {
    let kind = row.text(3)?;
    Ok(SlashingRecord {
        validator_index: ValidatorIndex(uint(row, 0, "slashings.validator_index")?),
        epoch: Epoch(uint(row, 1, "slashings.epoch")?),
        included_in_slot: Slot(uint(row, 2, "slashings.included_in_slot")?),
        kind: match kind.as_str() {
            "proposer" => SlashingKind::Proposer,
            "attester" => SlashingKind::Attester,
            _ => {
                return Err(StoreError::Corrupt {
                    what: "slashings.kind",
                    problem: format!("unknown kind {kind:?}"),
                })
            }
        },
    })
}

/// Columns as in `SELECT_CROSS_CHECKS`.
pub(super) fn cross_check(row: &impl ReadRow) -> Result<CrossCheckRecord, StoreError> {
    Ok(CrossCheckRecord {
        epoch: Epoch(uint(row, 0, "cross_checks.epoch")?),
        slot: Slot(uint(row, 1, "cross_checks.slot")?),
        node: row.text(2)?,
        node_root: parse_root(row.opt_text(3)?, "cross_checks.node_root")?,
        expected_root: parse_root(row.opt_text(4)?, "cross_checks.expected_root")?,
        agrees: row.boolean(5)?,
        error: row.opt_text(6)?,
    })
}

pub(super) fn root(text: String, what: &'static str) -> Result<Root, StoreError> {
    parse_root(Some(text), what)?.ok_or(StoreError::Corrupt {
        what,
        problem: "missing".to_owned(),
    })
}

// --------------------------------------------------------------- summary --

/// Folds the three per-validator aggregate queries into one summary per
/// validator, ordered by index.
#[derive(Default)]
pub(super) struct SummaryBuilder {
    by_validator: BTreeMap<u64, ValidatorSummary>,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl SummaryBuilder {
    fn entry(&mut self, row: &impl ReadRow) -> Result<&mut ValidatorSummary, StoreError> {
        let index = uint(row, 0, "validator_index")?;
        Ok(self
            .by_validator
            .entry(index)
            .or_insert_with(|| ValidatorSummary::empty(ValidatorIndex(index))))
    }

    /// Columns as in `SUMMARY_ATTESTATIONS`.
    pub fn attestations(&mut self, row: &impl ReadRow) -> Result<(), StoreError> {
        let n = |i| uint(row, i, "attestation count");
        let (head_known, head_ok) = (n(7)?, n(8)?);
        let (target_known, target_ok) = (n(9)?, n(10)?);
        let (source_known, source_ok) = (n(11)?, n(12)?);
        let average = row.opt_float(6)?;
        let s = self.entry(row)?;
        s.attestations_included = n(1)?;
        s.attestations_missed = n(2)?;
        s.attestations_pending = n(3)?;
        s.attestations_unknown = n(4)?;
        s.attestations_inactive = n(5)?;
        s.average_inclusion_delay = average;
        s.head_correct_rate = ratio(head_ok, head_known);
        s.target_correct_rate = ratio(target_ok, target_known);
        s.source_correct_rate = ratio(source_ok, source_known);
        Ok(())
    }

    /// Columns as in `SUMMARY_PROPOSALS`.
    pub fn proposals(&mut self, row: &impl ReadRow) -> Result<(), StoreError> {
        if row.opt_int(0)?.is_none() {
            // Unattributed empty slots belong to no validator.
            return Ok(());
        }
        let n = |i| uint(row, i, "proposal count");
        let counts = (n(1)?, n(2)?, n(3)?, n(4)?);
        let s = self.entry(row)?;
        s.proposals_proposed = counts.0;
        s.proposals_missed = counts.1;
        s.proposals_orphaned = counts.2;
        s.proposals_unknown = counts.3;
        Ok(())
    }

    /// Columns as in `SUMMARY_SYNC`.
    pub fn sync(&mut self, row: &impl ReadRow) -> Result<(), StoreError> {
        let participated = uint(row, 1, "sync participation")?;
        let missed = uint(row, 2, "sync misses")?;
        let s = self.entry(row)?;
        s.sync_participated = participated;
        s.sync_missed = missed;
        Ok(())
    }

    pub fn finish(self) -> Vec<ValidatorSummary> {
        self.by_validator.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_i64_max_are_refused_not_wrapped() {
        assert_eq!(to_i64(i64::MAX as u64, "x").unwrap(), i64::MAX);
        assert!(matches!(
            to_i64(crate::chain::FAR_FUTURE_EPOCH, "exit_epoch"),
            Err(StoreError::OutOfRange {
                what: "exit_epoch",
                ..
            })
        ));
        assert!(to_u64(-1, "x").is_err());
    }

    #[test]
    fn a_record_with_a_verdict_of_another_epoch_is_refused() {
        let record = EpochRecord {
            epoch: Epoch(5),
            sync: vec![SyncVerdict {
                validator_index: ValidatorIndex(1),
                epoch: Epoch(4),
                participated: 1,
                missed: 0,
            }],
            ..Default::default()
        };
        assert!(matches!(
            epoch_rows(&record),
            Err(StoreError::InvalidRecord {
                epoch: Epoch(5),
                ..
            })
        ));
    }

    #[test]
    fn a_record_with_a_validator_twice_is_refused() {
        let b = BalanceRecord {
            validator_index: ValidatorIndex(1),
            epoch: Epoch(5),
            balance: Gwei(1),
            effective_balance: Gwei(1),
            status: ValidatorStatus::ActiveOngoing,
            slashed: false,
            balance_change: None,
        };
        let record = EpochRecord {
            epoch: Epoch(5),
            balances: vec![b.clone(), b],
            ..Default::default()
        };
        assert!(epoch_rows(&record).is_err());
    }

    #[test]
    fn the_conflict_clause_skips_unchanged_rows_and_keeps_known_verdicts() {
        let clause = ATTESTATIONS.conflict_clause();
        assert!(clause.starts_with(
            " ON CONFLICT (epoch, validator_index) DO UPDATE SET status = excluded.status,"
        ));
        assert!(clause.contains("WHERE (attestations.status, attestations.duty_slot"));
        assert!(clause.contains("IS DISTINCT FROM (excluded.status, excluded.duty_slot"));
        assert!(clause.ends_with("IN ('included', 'missed', 'inactive'))"));
        assert!(SYNC.conflict_clause().ends_with(
            "WHERE (sync_participation.participated, sync_participation.missed) \
             IS DISTINCT FROM (excluded.participated, excluded.missed)"
        ));
    }

    #[test]
    fn query_bounds_above_i64_max_are_clamped() {
        let f = Filter::new(&ReportQuery {
            validators: Some(vec![ValidatorIndex(3), ValidatorIndex(u64::MAX)]),
            from_epoch: Some(Epoch(2)),
            to_epoch: Some(Epoch(u64::MAX)),
        });
        assert_eq!(f.validators, Some(vec![3]));
        assert_eq!((f.from, f.to), (Some(2), Some(i64::MAX)));
    }

    #[test]
    fn ratios_are_absent_without_a_denominator() {
        assert_eq!(ratio(0, 0), None);
        assert_eq!(ratio(3, 4), Some(0.75));
    }
}
