//! History reads for the status page and the validator page (issue 14):
//! the last epochs of many validators at once, compact, and one
//! validator's full history.
//!
//! Owns: the SQL of these reads, the same on both backends. The strips of
//! every watched validator come from TWO statements whatever the number of
//! validators (attestations joined with balances; proposals), one snapshot.
//! Must not: decide anything about what the rows mean (colours, classes:
//! `http::svg`), or read more than the validators and epochs asked for.

use super::codec::{to_i64, to_u64, Filter, ReadRow};
use super::{db, Backend, ReportQuery, Store, StoreError};
use crate::analysis::rewards::RewardRecord;
use crate::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
    SyncVerdict,
};
use crate::chain::{Epoch, Gwei, Slot, ValidatorIndex};

/// One validator-epoch as a strip cell needs it: the attestation verdict
/// without its slots and reason, and the balance of that epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochMark {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    pub status: AttestationStatus,
    pub inclusion_delay: Option<u64>,
    pub late: Option<bool>,
    pub source_correct: Option<bool>,
    pub target_correct: Option<bool>,
    pub head_correct: Option<bool>,
    /// None: no balance row for this validator-epoch.
    pub balance: Option<Gwei>,
}

/// One judged proposal duty, for the strip's proposal marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalMark {
    pub validator_index: ValidatorIndex,
    pub slot: Slot,
    pub status: ProposalStatus,
}

/// What the strips of a set of validators over an epoch range are drawn
/// from. Marks come in no particular order; proposals by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StripRows {
    pub marks: Vec<EpochMark>,
    pub proposals: Vec<ProposalMark>,
}

/// Everything stored about one validator in an epoch range, for its page.
/// Each list is ordered by epoch (proposals by slot).
#[derive(Clone, Debug, Default)]
pub struct ValidatorHistory {
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    pub balances: Vec<BalanceRecord>,
    pub rewards: Vec<RewardRecord>,
}

/// Attestations with the balance of the same validator-epoch. A balance
/// without an attestation row is left out: every watched validator gets
/// an attestation verdict each judged epoch (`inactive` when it has no
/// duty), so that loses nothing the strip could show.
///
/// The verdict travels packed in one integer (`unpack`): 64 000 rows of
/// four columns instead of nine took ~25–30 % less time on both backends
/// (tests/http_history.rs, debug build), every column of every row being
/// decoded on its own.
/// Bits 0–2 the status, then two bits each for late, source, target and
/// head (0 NULL, 1 false, 2 true), from bit 11 the inclusion delay + 1
/// (0 NULL).
const SELECT_MARKS: &str = "SELECT a.validator_index, a.epoch, \
    (CASE a.status WHEN 'included' THEN 0 WHEN 'missed' THEN 1 WHEN 'pending' THEN 2 \
     WHEN 'inactive' THEN 3 WHEN 'unknown' THEN 4 ELSE 7 END) \
    + 8 * (CASE WHEN a.late IS NULL THEN 0 WHEN a.late THEN 2 ELSE 1 END) \
    + 32 * (CASE WHEN a.source_correct IS NULL THEN 0 WHEN a.source_correct THEN 2 ELSE 1 END) \
    + 128 * (CASE WHEN a.target_correct IS NULL THEN 0 WHEN a.target_correct THEN 2 ELSE 1 END) \
    + 512 * (CASE WHEN a.head_correct IS NULL THEN 0 WHEN a.head_correct THEN 2 ELSE 1 END) \
    + 2048 * COALESCE(a.inclusion_delay + 1, 0), \
    b.balance_gwei \
    FROM attestations a LEFT JOIN balances b \
    ON b.epoch = a.epoch AND b.validator_index = a.validator_index \
    WHERE a.epoch >= $1 AND a.epoch <= $2";
/// No ORDER BY: the cells are placed by their epoch and validator, and
/// sorting 64 000 rows would be the read's largest cost.
const ORDER_MARKS: &str = "";

/// Proposals by slot range: a proposal's `epoch` column is that of the
/// record that judged it, which may be a later one.
const SELECT_PROPOSAL_MARKS: &str =
    "SELECT validator_index, slot, status FROM proposals WHERE slot >= $1 AND slot <= $2";
const ORDER_PROPOSAL_MARKS: &str = " ORDER BY slot";

const SELECT_VALIDATOR_REWARDS: &str = "SELECT epoch, validator_index, attestation_reward_gwei, \
    attestation_ideal_gwei, sync_reward_gwei, proposer_reward_gwei, missed_gwei, estimated \
    FROM rewards WHERE validator_index = $1 AND epoch >= $2 AND epoch <= $3 ORDER BY epoch";

/// The membership test of `validator_index` against the id list bound
/// as parameter `n`: an array on PostgreSQL, a JSON array on SQLite.
fn member_of(pg: bool, column: &str, n: u8) -> String {
    if pg {
        format!(" AND {column} = ANY(${n})")
    } else {
        format!(" AND {column} IN (SELECT value FROM json_each(${n}))")
    }
}

/// A verdict's fields as packed: status, inclusion delay, and late,
/// source, target, head.
type Unpacked = (AttestationStatus, Option<u64>, [Option<bool>; 4]);

/// PURE: a packed verdict (`SELECT_MARKS`) back into its fields.
fn unpack(packed: i64) -> Result<Unpacked, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "attestations",
        problem: format!("packed verdict {packed} out of range"),
    };
    let p = u64::try_from(packed).map_err(|_| corrupt())?;
    let status = match p & 7 {
        0 => AttestationStatus::Included,
        1 => AttestationStatus::Missed,
        2 => AttestationStatus::Pending,
        3 => AttestationStatus::Inactive,
        4 => AttestationStatus::Unknown,
        _ => return Err(corrupt()),
    };
    let flag = |shift: u32| match (p >> shift) & 3 {
        1 => Ok(Some(false)),
        2 => Ok(Some(true)),
        0 => Ok(None),
        _ => Err(corrupt()),
    };
    let delay = (p >> 11).checked_sub(1);
    Ok((status, delay, [flag(3)?, flag(5)?, flag(7)?, flag(9)?]))
}

fn mark(r: &impl ReadRow) -> Result<EpochMark, StoreError> {
    let (status, inclusion_delay, [late, source_correct, target_correct, head_correct]) =
        unpack(r.int(2)?)?;
    Ok(EpochMark {
        validator_index: ValidatorIndex(to_u64(r.int(0)?, "attestations.validator_index")?),
        epoch: Epoch(to_u64(r.int(1)?, "attestations.epoch")?),
        status,
        inclusion_delay,
        late,
        source_correct,
        target_correct,
        head_correct,
        balance: r
            .opt_int(3)?
            .map(|b| to_u64(b, "balances.balance_gwei").map(Gwei))
            .transpose()?,
    })
}

fn proposal_mark(r: &impl ReadRow) -> Result<ProposalMark, StoreError> {
    let status = r.text(2)?;
    Ok(ProposalMark {
        validator_index: ValidatorIndex(to_u64(r.int(0)?, "proposals.validator_index")?),
        slot: Slot(to_u64(r.int(1)?, "proposals.slot")?),
        status: ProposalStatus::from_name(&status).ok_or_else(|| StoreError::Corrupt {
            what: "proposals.status",
            problem: format!("unknown status {status:?}"),
        })?,
    })
}

fn reward(r: &impl ReadRow) -> Result<RewardRecord, StoreError> {
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

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stored ids only: an index above i64::MAX cannot be stored, so it
/// matches nothing and is dropped.
fn stored_ids(validators: &[ValidatorIndex]) -> Vec<i64> {
    validators
        .iter()
        .filter_map(|v| i64::try_from(v.0).ok())
        .collect()
}

impl Store {
    /// The strips' rows of `validators` over `from..=to` (inclusive), in
    /// one read snapshot and two statements: attestation verdicts with
    /// the balance of their epoch, and the proposals of the range's slots
    /// (`slots_per_epoch` maps the epochs to slots).
    pub async fn strip_rows(
        &self,
        validators: &[ValidatorIndex],
        from: Epoch,
        to: Epoch,
        slots_per_epoch: u64,
    ) -> Result<StripRows, StoreError> {
        // While the database is known down the page says so at once.
        self.admit()?;
        if validators.is_empty() || from > to {
            return Ok(StripRows::default());
        }
        let ids = stored_ids(validators);
        let (from_e, to_e) = (clamp(from.0), clamp(to.0));
        let spe = slots_per_epoch.max(1);
        let first_slot = clamp(from.0.saturating_mul(spe));
        let last_slot = clamp(to.0.saturating_add(1).saturating_mul(spe).saturating_sub(1));
        match &self.backend {
            Backend::Postgres(pool) => {
                let marks_sql = format!(
                    "{SELECT_MARKS}{}{ORDER_MARKS}",
                    member_of(true, "a.validator_index", 3)
                );
                let props_sql = format!(
                    "{SELECT_PROPOSAL_MARKS}{}{ORDER_PROPOSAL_MARKS}",
                    member_of(true, "validator_index", 3)
                );
                let mut tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(db("begin a history read"))?;
                let rows = sqlx::query(&marks_sql)
                    .bind(from_e)
                    .bind(to_e)
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("read the strips' verdicts"))?;
                let marks = rows.iter().map(mark).collect::<Result<Vec<_>, _>>()?;
                let rows = sqlx::query(&props_sql)
                    .bind(first_slot)
                    .bind(last_slot)
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("read the strips' proposals"))?;
                let proposals = rows
                    .iter()
                    .map(proposal_mark)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(StripRows { marks, proposals })
            }
            Backend::Sqlite(pool) => {
                let ids_json = serde_json::Value::from(ids).to_string();
                let marks_sql = format!(
                    "{SELECT_MARKS}{}{ORDER_MARKS}",
                    member_of(false, "a.validator_index", 3)
                )
                .replace('$', "?");
                let props_sql = format!(
                    "{SELECT_PROPOSAL_MARKS}{}{ORDER_PROPOSAL_MARKS}",
                    member_of(false, "validator_index", 3)
                )
                .replace('$', "?");
                let mut tx = pool
                    .begin_with("BEGIN DEFERRED")
                    .await
                    .map_err(db("begin a history read"))?;
                let rows = sqlx::query(&marks_sql)
                    .bind(from_e)
                    .bind(to_e)
                    .bind(&ids_json)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("read the strips' verdicts"))?;
                let marks = rows.iter().map(mark).collect::<Result<Vec<_>, _>>()?;
                let rows = sqlx::query(&props_sql)
                    .bind(first_slot)
                    .bind(last_slot)
                    .bind(&ids_json)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("read the strips' proposals"))?;
                let proposals = rows
                    .iter()
                    .map(proposal_mark)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(StripRows { marks, proposals })
            }
        }
    }

    /// Everything stored about `validator` in `from..=to`: its verdicts,
    /// balances and rewards, each read with the validator in the WHERE
    /// clause (never every validator's rows filtered afterwards).
    pub async fn validator_history(
        &self,
        validator: ValidatorIndex,
        from: Epoch,
        to: Epoch,
    ) -> Result<ValidatorHistory, StoreError> {
        self.admit()?;
        let query = ReportQuery {
            validators: Some(vec![validator]),
            from_epoch: Some(from),
            to_epoch: Some(to),
        };
        let filter = Filter::new(&query);
        let Ok(v) = to_i64(validator.0, "validator_index") else {
            // Never stored: nothing to read.
            return Ok(ValidatorHistory::default());
        };
        let (from_e, to_e) = (clamp(from.0), clamp(to.0));
        let (report, rewards) = match &self.backend {
            Backend::Postgres(pool) => {
                let report = super::postgres::report(pool, &filter).await?;
                let rows = sqlx::query(SELECT_VALIDATOR_REWARDS)
                    .bind(v)
                    .bind(from_e)
                    .bind(to_e)
                    .fetch_all(pool)
                    .await
                    .map_err(db("read a validator's rewards"))?;
                let rewards = rows.iter().map(reward).collect::<Result<Vec<_>, _>>()?;
                (report, rewards)
            }
            Backend::Sqlite(pool) => {
                let report = super::sqlite::report(pool, &filter).await?;
                let rows = sqlx::query(&SELECT_VALIDATOR_REWARDS.replace('$', "?"))
                    .bind(v)
                    .bind(from_e)
                    .bind(to_e)
                    .fetch_all(pool)
                    .await
                    .map_err(db("read a validator's rewards"))?;
                let rewards = rows.iter().map(reward).collect::<Result<Vec<_>, _>>()?;
                (report, rewards)
            }
        };
        Ok(ValidatorHistory {
            attestations: report.attestations,
            proposals: report.proposals,
            sync: report.sync,
            balances: report.balances,
            rewards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_membership_test_fits_each_backend() {
        assert_eq!(
            member_of(true, "a.validator_index", 3),
            " AND a.validator_index = ANY($3)"
        );
        assert_eq!(
            member_of(false, "validator_index", 3),
            " AND validator_index IN (SELECT value FROM json_each($3))"
        );
    }

    #[test]
    fn a_packed_verdict_unpacks_to_its_fields() {
        let t = Some(true);
        let f = Some(false);
        let cases: &[(i64, Unpacked)] = &[
            (1, (AttestationStatus::Missed, None, [None; 4])),
            // included, late, source right, target right, head wrong, delay 2
            (
                2 * 8 + 2 * 32 + 2 * 128 + 512 + 2048 * 3,
                (AttestationStatus::Included, Some(2), [t, t, t, f]),
            ),
            (4, (AttestationStatus::Unknown, None, [None; 4])),
        ];
        for (packed, want) in cases {
            assert_eq!(unpack(*packed).unwrap(), *want, "{packed}");
        }
        for bad in [-1, 5, 7, 3 * 8] {
            assert!(unpack(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unstorable_ids_are_dropped_not_wrapped() {
        assert_eq!(
            stored_ids(&[ValidatorIndex(7), ValidatorIndex(u64::MAX)]),
            vec![7]
        );
    }
}
