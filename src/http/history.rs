//! The stored history the pages draw (issue 14): the strips of every
//! watched validator over the last `STRIP_EPOCHS`, read from the store in
//! two statements and kept until the board processes another epoch, and
//! one validator's longer history for its own page.
//!
//! Rows of a final epoch do not change (writes are idempotent), so once
//! read they are kept: when the board has processed another epoch, only
//! the epochs after the last final one already read are asked for (the
//! new final epoch and the provisional ones, a few thousand rows at 1 000
//! validators instead of 64 000). A change of the watched set reads all.
//!
//! The only part of the HTTP server that reads the store, and only
//! through `Store::strip_rows` / `Store::validator_history` (bounded by
//! the watched set and an epoch range); a page waits `READ_TIMEOUT` at
//! most: a slow or failing database costs the page its strips, never its
//! state. The strips' read is not dropped when a page stops waiting: it
//! runs on as its own task (one at a time) and fills the cache, so a first
//! read longer than the timeout (a large watched set) still ends, and the
//! next refresh draws it.
//! Must not: write, or read per validator for the status page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::svg::{classify, worse_proposal, Cell};
use crate::chain::{Epoch, ValidatorIndex};
use crate::status::ProcessedEpoch;
use crate::store::{Store, StoreError, StripRows, ValidatorHistory};

/// Epochs in a status-page strip: 64 epochs are ~6.8 hours on mainnet,
/// enough to see an outage of the night and its recovery.
pub const STRIP_EPOCHS: u64 = 64;

/// Epochs on a validator's own page: 256 (~27 hours on mainnet), a day
/// and its evening, drawn as four strips of 64.
pub const VALIDATOR_EPOCHS: u64 = 256;

/// Longest a page waits for the store. A page is asked by a person or a
/// probe; after 2 s it is better shown without its history (and says so)
/// than not at all.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a page has no history to draw.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the store did not answer within {} ms", READ_TIMEOUT.as_millis())]
    Timeout,
    #[error("the history is still being read from the store; it shows on a later refresh")]
    Loading,
    #[error("the history read ended abnormally: {0}")]
    Task(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// What the cached strips were read for: the range, the validators, and
/// the board's processed epochs (a new epoch processed means new rows).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    from: Epoch,
    to: Epoch,
    validators: Vec<ValidatorIndex>,
    last_final: Option<ProcessedEpoch>,
    last_provisional: Option<ProcessedEpoch>,
}

/// The cells of every validator asked for, over `from..=to`.
#[derive(Debug)]
pub struct Strips {
    pub from: Epoch,
    pub to: Epoch,
    /// The newest epoch with rows (`to` may lie beyond it: a chain younger
    /// than a strip still gets a strip of full width, filled from the left).
    pub newest: Epoch,
    pub cells: HashMap<ValidatorIndex, Vec<Cell>>,
}

impl Strips {
    /// PURE: the cells of `validators` over `from..=to` from the rows the
    /// store returned; a validator-epoch without a row is `NoData`.
    pub fn build(
        validators: &[ValidatorIndex],
        from: Epoch,
        to: Epoch,
        rows: &StripRows,
        slots_per_epoch: u64,
    ) -> Strips {
        let n = (to.0 - from.0 + 1) as usize;
        let blank: Vec<Cell> = (from.0..=to.0).map(|e| Cell::empty(Epoch(e))).collect();
        let mut cells: HashMap<ValidatorIndex, Vec<Cell>> =
            validators.iter().map(|v| (*v, blank.clone())).collect();
        let index = |e: Epoch| (e >= from && e <= to).then(|| (e.0 - from.0) as usize);
        for m in &rows.marks {
            if let (Some(row), Some(i)) = (cells.get_mut(&m.validator_index), index(m.epoch)) {
                if let Some(c) = row.get_mut(i) {
                    c.class = classify(Some(m));
                    c.inclusion_delay = m.inclusion_delay;
                    c.balance = m.balance;
                }
            }
        }
        let spe = slots_per_epoch.max(1);
        for p in &rows.proposals {
            let epoch = Epoch(p.slot.0 / spe);
            if let (Some(row), Some(i)) = (cells.get_mut(&p.validator_index), index(epoch)) {
                if let Some(c) = row.get_mut(i) {
                    c.proposal = Some(worse_proposal(c.proposal, p.status));
                }
            }
        }
        debug_assert!(cells.values().all(|r| r.len() == n));
        Strips {
            from,
            to,
            newest: to,
            cells,
        }
    }

    /// Takes the cells of the epochs before `until` from `old` (an earlier
    /// read of the same validators), where `old` has them.
    pub fn keep(&mut self, old: &Strips, until: Epoch) {
        for (v, row) in self.cells.iter_mut() {
            let Some(old_row) = old.cells.get(v) else {
                continue;
            };
            for c in row.iter_mut().filter(|c| c.epoch < until) {
                if c.epoch >= old.from && c.epoch <= old.to {
                    if let Some(o) = old_row.get((c.epoch.0 - old.from.0) as usize) {
                        *c = *o;
                    }
                }
            }
        }
    }
}

/// The strips last read, what for, and through which epoch their rows
/// were final (those are reused for the next window).
struct Cached {
    key: Key,
    final_through: Option<Epoch>,
    strips: Arc<Strips>,
}

/// The store behind the pages, with the status page's strips cached.
pub struct History {
    store: Store,
    slots_per_epoch: u64,
    cache: Arc<Mutex<Option<Cached>>>,
    /// Held by the strips' read in flight: one at a time.
    reading: Arc<tokio::sync::Mutex<()>>,
}

impl History {
    pub fn new(store: Store, slots_per_epoch: u64) -> History {
        History {
            store,
            slots_per_epoch,
            cache: Arc::new(Mutex::new(None)),
            reading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn slots_per_epoch(&self) -> u64 {
        self.slots_per_epoch
    }

    /// The strips of `validators` (sorted, deduplicated by the caller or
    /// not: the key sorts them) over the `STRIP_EPOCHS` ending at `to`,
    /// read once per processed epoch of the board.
    pub async fn strips(
        &self,
        mut validators: Vec<ValidatorIndex>,
        to: Epoch,
        last_final: Option<ProcessedEpoch>,
        last_provisional: Option<ProcessedEpoch>,
    ) -> Result<Arc<Strips>, HistoryError> {
        validators.sort_unstable();
        validators.dedup();
        let from = Epoch(to.0.saturating_sub(STRIP_EPOCHS - 1));
        let key = Key {
            from,
            to,
            validators,
            last_final,
            last_provisional,
        };
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        // One read at a time; a page that cannot get its turn in time is
        // drawn without strips while the read in flight goes on.
        let turn = tokio::time::timeout_at(deadline, self.reading.clone().lock_owned())
            .await
            .map_err(|_| HistoryError::Loading)?;
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        // What the last read can give: every epoch of the window up to the
        // last final one it read, when it was read for the same validators.
        let reuse = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.as_ref().and_then(|c| {
                (c.key.validators == key.validators)
                    .then_some(c.final_through)
                    .flatten()
                    .filter(|f| *f >= from && *f <= to)
                    .map(|f| (f, c.strips.clone()))
            })
        };
        let read_from = reuse.as_ref().map_or(from, |(f, _)| Epoch(f.0 + 1));
        let store = self.store.clone();
        let cache = self.cache.clone();
        let spe = self.slots_per_epoch;
        let read = tokio::spawn(async move {
            let _turn = turn;
            let rows = if read_from <= to {
                store
                    .strip_rows(&key.validators, read_from, to, spe)
                    .await?
            } else {
                StripRows::default()
            };
            // Always STRIP_EPOCHS wide: before epoch 63 the window starts at
            // genesis and its cells after `to` stay empty.
            let end = Epoch(from.0 + STRIP_EPOCHS - 1);
            let mut strips = Strips::build(&key.validators, from, end, &rows, spe);
            strips.newest = to;
            if let Some((_, old)) = &reuse {
                strips.keep(old, read_from);
            }
            let strips = Arc::new(strips);
            let final_through = key.last_final.map(|p| p.epoch.min(to));
            *cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
                key,
                final_through,
                strips: strips.clone(),
            });
            Ok::<_, StoreError>(strips)
        });
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(e)) => Err(HistoryError::Task(e.to_string())),
            // Dropping the handle leaves the read running: it fills the cache.
            Err(_) => Err(HistoryError::Loading),
        }
    }

    /// The cached strips if they were read for exactly `key`.
    fn cached(&self, key: &Key) -> Option<Arc<Strips>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .as_ref()
            .filter(|c| c.key == *key)
            .map(|c| c.strips.clone())
    }

    /// One validator's history over the `VALIDATOR_EPOCHS` ending at `to`.
    pub async fn validator(
        &self,
        validator: ValidatorIndex,
        to: Epoch,
    ) -> Result<(Epoch, ValidatorHistory), HistoryError> {
        let from = Epoch(to.0.saturating_sub(VALIDATOR_EPOCHS - 1));
        let h = tokio::time::timeout(
            READ_TIMEOUT,
            self.store.validator_history(validator, from, to),
        )
        .await
        .map_err(|_| HistoryError::Timeout)??;
        Ok((from, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{AttestationStatus, ProposalStatus};
    use crate::chain::{Gwei, Slot};
    use crate::store::{EpochMark, ProposalMark};

    use super::super::svg::CellClass;

    #[test]
    fn cells_are_placed_by_epoch_and_proposals_by_their_slots_epoch() {
        let v = ValidatorIndex(9);
        let rows = StripRows {
            marks: vec![
                EpochMark {
                    validator_index: v,
                    epoch: Epoch(12),
                    status: AttestationStatus::Missed,
                    inclusion_delay: None,
                    late: None,
                    source_correct: None,
                    target_correct: None,
                    head_correct: None,
                    balance: Some(Gwei(5)),
                },
                // Outside the range and of another validator: ignored.
                EpochMark {
                    validator_index: v,
                    epoch: Epoch(99),
                    status: AttestationStatus::Missed,
                    inclusion_delay: None,
                    late: None,
                    source_correct: None,
                    target_correct: None,
                    head_correct: None,
                    balance: None,
                },
            ],
            proposals: vec![ProposalMark {
                validator_index: v,
                slot: Slot(13 * 32 + 31),
                status: ProposalStatus::Orphaned,
            }],
        };
        let s = Strips::build(&[v, ValidatorIndex(10)], Epoch(10), Epoch(14), &rows, 32);
        let row = &s.cells[&v];
        assert_eq!(row.len(), 5);
        assert_eq!(row[2].class, CellClass::Missed);
        assert_eq!(row[2].balance, Some(Gwei(5)));
        assert_eq!(row[3].proposal, Some(ProposalStatus::Orphaned));
        assert!(s.cells[&ValidatorIndex(10)]
            .iter()
            .all(|c| c.class == CellClass::NoData));

        // The next window keeps the old cells before the epoch it re-read.
        let mut next = Strips::build(&[v], Epoch(11), Epoch(15), &StripRows::default(), 32);
        next.keep(&s, Epoch(14));
        let row = &next.cells[&v];
        assert_eq!(row[0].epoch, Epoch(11));
        assert_eq!(row[1].class, CellClass::Missed, "epoch 12 kept");
        assert_eq!(
            row[2].proposal,
            Some(ProposalStatus::Orphaned),
            "epoch 13 kept"
        );
        assert_eq!(
            row[3].class,
            CellClass::NoData,
            "epoch 14 is re-read, not kept"
        );
    }
}
