//! Balance, status and slashing records.
//!
//! Owns: the per-epoch balance record (with its change since the last
//! stored one) and finding slashing evidence against watched validators in
//! canonical blocks.
//! Must not: do IO, or decide whether a balance change is alarming (that is
//! alert policy).

use std::collections::{HashMap, HashSet};

use super::{BalanceRecord, SlashingKind, SlashingRecord};
use crate::chain::{Block, ChainSpec, Epoch, Gwei, ValidatorIndex, ValidatorInfo};

/// One record per registry entry in `current` (the caller passes only
/// watched validators). `previous` holds the last stored balance of each;
/// a validator without one gets no change (its first record).
pub fn balance_records(
    epoch: Epoch,
    current: &[ValidatorInfo],
    previous: &HashMap<ValidatorIndex, Gwei>,
) -> Vec<BalanceRecord> {
    current
        .iter()
        .map(|info| BalanceRecord {
            validator_index: info.index,
            epoch,
            balance: info.balance,
            effective_balance: info.effective_balance,
            status: info.status,
            slashed: info.slashed,
            balance_change: previous
                .get(&info.index)
                .map(|prev| signed_change(*prev, info.balance)),
        })
        .collect()
}

/// `to − from` as a signed number. Both are below 2^64 Gwei, so the exact
/// difference fits an i128; saturating to i64 only matters for values no
/// real balance reaches (2^63 Gwei ≈ 9.2e9 ETH), and keeps garbage from the
/// network from panicking.
fn signed_change(from: Gwei, to: Gwei) -> i64 {
    let diff = i128::from(to.0) - i128::from(from.0);
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// Slashing evidence against watched validators in canonical `blocks`.
///
/// Consensus specs: `process_proposer_slashing` slashes
/// `header_1.proposer_index`; `process_attester_slashing` slashes the
/// validators in BOTH attestations' `attesting_indices` (their sorted
/// intersection). The record's epoch is that of the block carrying the
/// evidence. A validator is slashed at most once (`is_slashable_validator`
/// requires `not slashed`), so only its first evidence, by block slot, is
/// reported; later copies in other blocks or other operations are no new
/// slashing.
pub fn find_slashings(
    spec: &ChainSpec,
    blocks: &[Block],
    watched: &[ValidatorIndex],
) -> Vec<SlashingRecord> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let mut ordered: Vec<&Block> = blocks.iter().collect();
    ordered.sort_by_key(|b| b.header.slot);

    let mut reported = HashSet::new();
    let mut out = Vec::new();
    for block in ordered {
        let slot = block.header.slot;
        let proposers = block
            .proposer_slashings
            .iter()
            .map(|s| (s.proposer_index, SlashingKind::Proposer));
        let attesters = block
            .attester_slashings
            .iter()
            .flat_map(|s| s.slashed())
            .map(|v| (v, SlashingKind::Attester));
        for (validator_index, kind) in proposers.chain(attesters) {
            if watched.contains(&validator_index) && reported.insert(validator_index) {
                out.push(SlashingRecord {
                    validator_index,
                    epoch: spec.epoch_of(slot),
                    included_in_slot: slot,
                    kind,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{
        AttesterSlashing, BlockHeader, Fork, ProposerSlashing, Pubkey, Root, Slot, ValidatorStatus,
    };

    fn info(v: u64, balance: u64) -> ValidatorInfo {
        ValidatorInfo {
            index: ValidatorIndex(v),
            pubkey: Pubkey([v as u8; 48]),
            balance: Gwei(balance),
            effective_balance: Gwei(32_000_000_000),
            status: ValidatorStatus::ActiveOngoing,
            slashed: v == 4,
            activation_epoch: Epoch(0),
            exit_epoch: Epoch(u64::MAX),
        }
    }

    #[test]
    fn balance_changes_are_signed_and_absent_for_a_first_record() {
        let previous: HashMap<_, _> = [
            (ValidatorIndex(1), Gwei(32_000_000_000)),
            (ValidatorIndex(2), Gwei(32_000_010_000)),
            (ValidatorIndex(4), Gwei(0)),
            (ValidatorIndex(5), Gwei(u64::MAX)),
        ]
        .into();
        // (validator, balance now, expected change)
        let cases: [(u64, u64, Option<i64>); 5] = [
            (1, 32_000_012_345, Some(12_345)),
            (2, 32_000_000_000, Some(-10_000)),
            (3, 32_000_000_000, None),
            (4, u64::MAX, Some(i64::MAX)),
            (5, 0, Some(i64::MIN)),
        ];
        let current: Vec<_> = cases.iter().map(|(v, b, _)| info(*v, *b)).collect();
        let records = balance_records(Epoch(7), &current, &previous);
        assert_eq!(records.len(), cases.len());
        for (record, (v, balance, change)) in records.iter().zip(cases) {
            assert_eq!(record.validator_index, ValidatorIndex(v));
            assert_eq!(record.epoch, Epoch(7));
            assert_eq!(record.balance, Gwei(balance));
            assert_eq!(record.effective_balance, Gwei(32_000_000_000));
            assert_eq!(record.slashed, v == 4);
            assert_eq!(record.balance_change, change, "validator {v}");
        }
    }

    fn block(slot: u64, proposers: &[u64], attesters: &[(&[u64], &[u64])]) -> Block {
        let ids = |xs: &[u64]| xs.iter().map(|v| ValidatorIndex(*v)).collect::<Vec<_>>();
        Block {
            header: BlockHeader {
                root: Root([slot as u8; 32]),
                slot: Slot(slot),
                proposer_index: ValidatorIndex(0),
                parent_root: Root::ZERO,
                state_root: Root::ZERO,
            },
            fork: Fork::Electra,
            attestations: vec![],
            sync_committee_bits: None,
            proposer_slashings: proposers
                .iter()
                .map(|v| ProposerSlashing {
                    proposer_index: ValidatorIndex(*v),
                    slot: Slot(slot - 1),
                })
                .collect(),
            attester_slashings: attesters
                .iter()
                .map(|(a, b)| AttesterSlashing {
                    attesting_indices_1: ids(a),
                    attesting_indices_2: ids(b),
                    target_epoch: Epoch(0),
                })
                .collect(),
            voluntary_exits: vec![],
        }
    }

    #[test]
    fn slashings_of_watched_validators_are_found_once() {
        use SlashingKind::*;
        let spec = ChainSpec::test_spec(8, 2000, 0);
        let watched: Vec<_> = [2, 3, 4, 5, 9].map(ValidatorIndex).to_vec();
        // (name, blocks, expected (validator, epoch, slot, kind))
        type Case = (&'static str, Vec<Block>, Vec<(u64, u64, u64, SlashingKind)>);
        let cases: Vec<Case> = vec![
            (
                "proposer slashing of a watched validator",
                vec![block(17, &[9, 10], &[])],
                vec![(9, 2, 17, Proposer)],
            ),
            (
                "attester slashing: only the intersection, only the watched",
                vec![block(8, &[], &[(&[1, 2, 3, 6], &[3, 4, 6])])],
                vec![(3, 1, 8, Attester)],
            ),
            (
                "disjoint attesting lists slash nobody",
                vec![block(8, &[], &[(&[2, 3], &[4, 5])])],
                vec![],
            ),
            (
                "the same validator in later evidence is not slashed again",
                vec![
                    block(20, &[5], &[(&[4], &[4])]),
                    block(12, &[], &[(&[5], &[5]), (&[5, 4], &[4, 5])]),
                ],
                vec![(5, 1, 12, Attester), (4, 1, 12, Attester)],
            ),
        ];
        for (name, blocks, want) in cases {
            let got: Vec<_> = find_slashings(&spec, &blocks, &watched)
                .into_iter()
                .map(|r| (r.validator_index.0, r.epoch.0, r.included_in_slot.0, r.kind))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
