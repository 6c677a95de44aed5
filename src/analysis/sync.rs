//! Sync-committee verdicts: per watched member, over the slots of one
//! epoch, how many of its signatures the next canonical block carried.
//!
//! Owns: the rule "the signatures for slot S sit in the block at S+1,
//! checked against the committee of epoch(S+1)'s period".
//! Must not: do IO; it never guesses a committee it was not given.

use std::collections::{HashMap, HashSet};

use super::{CanonicalChain, SyncVerdict};
use crate::chain::{Block, ChainSpec, Epoch, Slot, ValidatorIndex};

/// Judges sync-committee participation for the slots of `epoch`.
/// `committees` maps a sync period to its members by position.
///
/// Rules (consensus specs, Altair `process_sync_aggregate`):
/// - The block at slot S+1 carries the signatures for slot S (its parent's
///   slot root), checked against `state.current_sync_committee`, i.e. the
///   committee of the period of epoch(S+1). Members of period P therefore
///   sign the slot before their period starts, and not the last slot of it.
/// - A sync message can only be included in the very next block: if S+1 is
///   an empty slot, the signatures for S are lost with no penalty, so there
///   is no duty for S. The genesis slot has no duty either (no block before
///   it to sign).
/// - If S+1 lies beyond the chain, the slot is not judged yet. A slot whose
///   block body, sync bits or committee is missing, or whose bits do not
///   match the committee's size, is skipped too: no evidence either way.
/// - A validator may hold several positions in one committee. Each slot
///   counts once for it: participated if ANY of its positions is set,
///   missed if none is. Counting per position would inflate both numbers
///   for such validators and make them incomparable with the attestation
///   counts (one duty per slot); the reward the protocol pays per position
///   is the business of the balance records, not of this liveness count.
///
/// One verdict per watched validator that had at least one duty, in the
/// order of `watched`.
pub fn judge_sync(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: &HashMap<u64, Vec<ValidatorIndex>>,
    watched: &[ValidatorIndex],
    blocks: &[Block],
    chain: &CanonicalChain,
) -> Vec<SyncVerdict> {
    let mut seen = HashSet::with_capacity(watched.len());
    let targets: Vec<ValidatorIndex> = watched
        .iter()
        .copied()
        .filter(|v| seen.insert(*v))
        .collect();
    let position: HashMap<ValidatorIndex, usize> =
        targets.iter().enumerate().map(|(i, v)| (*v, i)).collect();

    // Only bodies of canonical blocks are evidence.
    let bodies: HashMap<Slot, &Block> = blocks
        .iter()
        .filter(|b| {
            chain
                .block_at(b.header.slot)
                .is_some_and(|h| h.root == b.header.root)
        })
        .map(|b| (b.header.slot, b))
        .collect();

    // Per period: each watched member's positions (index into `targets`).
    let mut seats: HashMap<u64, Vec<(usize, Vec<usize>)>> = HashMap::new();
    let mut counts = vec![(0u32, 0u32); targets.len()];

    let start = spec.start_slot(epoch).0;
    let end = spec.end_slot(epoch).0;
    for slot in start.max(1)..=end {
        let next = Slot(slot + 1);
        if !chain.covers(next) || chain.block_at(next).is_none() {
            continue;
        }
        let Some(bits) = bodies
            .get(&next)
            .and_then(|b| b.sync_committee_bits.as_ref())
        else {
            continue;
        };
        let period = spec.sync_period_of(spec.epoch_of(next));
        let Some(committee) = committees.get(&period) else {
            continue;
        };
        if bits.len() != committee.len() {
            continue;
        }
        let members = seats.entry(period).or_insert_with(|| {
            let mut by_member: HashMap<usize, Vec<usize>> = HashMap::new();
            for (pos, v) in committee.iter().enumerate() {
                if let Some(&w) = position.get(v) {
                    by_member.entry(w).or_default().push(pos);
                }
            }
            by_member.into_iter().collect()
        });
        for (w, positions) in members.iter() {
            if positions.iter().any(|&p| bits.get(p)) {
                counts[*w].0 += 1;
            } else {
                counts[*w].1 += 1;
            }
        }
    }

    targets
        .iter()
        .zip(counts)
        .filter(|(_, (p, m))| p + m > 0)
        .map(|(v, (participated, missed))| SyncVerdict {
            validator_index: *v,
            epoch,
            participated,
            missed,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{BitVector, BlockHeader, Fork, Root};

    // 8 slots per epoch, 2 epochs per sync period, committees of 4.
    // Period 0 = epochs 0-1 = slots 0..=15; period 1 starts at slot 16.
    fn spec() -> ChainSpec {
        let mut spec = ChainSpec::test_spec(8, 2000, 0);
        spec.epochs_per_sync_committee_period = 2;
        spec
    }

    fn header(slot: u64) -> BlockHeader {
        BlockHeader {
            root: Root([slot as u8 + 1; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(0),
            parent_root: Root::ZERO,
            state_root: Root::ZERO,
        }
    }

    fn committees() -> HashMap<u64, Vec<ValidatorIndex>> {
        let v = |xs: [u64; 4]| xs.map(ValidatorIndex).to_vec();
        // Validator 5 holds two seats in period 0; 1 is in both periods.
        [(0, v([1, 5, 3, 5])), (1, v([7, 1, 8, 9]))].into()
    }

    /// A chain over `[first, last]` where every slot but `empty` has a block
    /// whose sync bits are `bits(slot)`.
    fn judge(
        epoch: u64,
        first: u64,
        last: u64,
        empty: &[u64],
        bits: &dyn Fn(u64) -> Vec<usize>,
        watched: &[u64],
    ) -> Vec<(u64, u32, u32)> {
        let slots: Vec<u64> = (first..=last).filter(|s| !empty.contains(s)).collect();
        let chain = CanonicalChain::new(
            Slot(first),
            Slot(last),
            None,
            slots.iter().map(|s| header(*s)),
        );
        let blocks: Vec<Block> = slots
            .iter()
            .map(|s| Block {
                header: header(*s),
                fork: Fork::Electra,
                attestations: vec![],
                sync_committee_bits: Some(BitVector::from_bits(4, bits(*s))),
                proposer_slashings: vec![],
                attester_slashings: vec![],
                voluntary_exits: vec![],
            })
            .collect();
        let watched: Vec<_> = watched.iter().map(|v| ValidatorIndex(*v)).collect();
        judge_sync(
            &spec(),
            Epoch(epoch),
            &committees(),
            &watched,
            &blocks,
            &chain,
        )
        .into_iter()
        .map(|v| {
            assert_eq!(v.epoch, Epoch(epoch));
            (v.validator_index.0, v.participated, v.missed)
        })
        .collect()
    }

    #[test]
    fn sync_verdicts_follow_the_next_block() {
        let all = |_: u64| vec![0, 1, 2, 3];
        let none = |_: u64| vec![];
        let seat0_only = |_: u64| vec![0];
        let seat3_only = |_: u64| vec![3];
        // Block at 4 lacks seat 0 (validator 1): slot 3's signature missed.
        let no_seat0_at_4 = |s: u64| {
            if s == 4 {
                vec![1, 2, 3]
            } else {
                vec![0, 1, 2, 3]
            }
        };
        type Case<'a> = (
            &'a str,
            u64,
            u64,
            u64,
            &'a [u64],
            &'a dyn Fn(u64) -> Vec<usize>,
            &'a [u64],
            Vec<(u64, u32, u32)>,
        );
        // (name, epoch, chain first..=last, empty slots, bits per block,
        //  watched, (validator, participated, missed))
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // Validator 3 sits in period 0 only: slot 15 is judged against period 1.
            ("epoch 1, all signed", 1, 8, 17, &[], &all, &[1, 3], vec![(1, 8, 0), (3, 7, 0)]),
            ("epoch 1, nothing signed", 1, 8, 17, &[], &none, &[3], vec![(3, 0, 7)]),
            ("empty slot S+1: no duty for S", 1, 8, 17, &[10, 12], &all, &[3], vec![(3, 5, 0)]),
            ("S+1 beyond the chain: not judged yet", 1, 8, 13, &[], &all, &[3], vec![(3, 5, 0)]),
            ("genesis slot has no duty", 0, 0, 9, &[], &no_seat0_at_4, &[1], vec![(1, 6, 1)]),
            // Slot 15's signatures sit in block 16, checked against period 1:
            // validator 3 (period 0 only) has 7 duties, validator 7 (period 1
            // only) one, validator 1 (both, seat 0 then seat 1) 8.
            ("period boundary", 1, 8, 17, &[], &seat0_only, &[3, 7, 1], vec![(3, 0, 7), (7, 1, 0), (1, 7, 1)]),
            ("two seats: any set seat counts the slot once", 1, 8, 17, &[], &seat3_only, &[5], vec![(5, 7, 0)]),
            ("two seats: none set is one miss per slot", 1, 8, 17, &[], &none, &[5], vec![(5, 0, 7)]),
            ("watched but in no committee: no verdict", 1, 8, 17, &[], &all, &[42], vec![]),
        ];
        for (name, epoch, first, last, empty, bits, watched, want) in cases {
            assert_eq!(
                judge(epoch, first, last, empty, bits, watched),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn bits_that_do_not_fit_the_committee_are_no_evidence() {
        let spec = spec();
        let chain = CanonicalChain::new(Slot(8), Slot(9), None, [header(8), header(9)]);
        let block = Block {
            header: header(9),
            fork: Fork::Electra,
            attestations: vec![],
            sync_committee_bits: Some(BitVector::from_bits(512, [])),
            proposer_slashings: vec![],
            attester_slashings: vec![],
            voluntary_exits: vec![],
        };
        let got = judge_sync(
            &spec,
            Epoch(1),
            &committees(),
            &[ValidatorIndex(3)],
            &[block],
            &chain,
        );
        assert_eq!(got, vec![]);
    }
}
