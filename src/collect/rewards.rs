//! IO for issue 14: reads the nodes' rewards answers of one epoch, asking
//! only what the watched set needs.
//!
//! Owns: which rewards requests to send. One attestation-rewards request
//! for the watched ids; a sync-committee-rewards request only for blocks
//! whose sync committee holds a watched validator (and only for those
//! members); block rewards only for the watched proposers' blocks, and for
//! every canonical block of the epoch only when a watched proposer missed
//! a slot (the estimate is their median). Must not: judge, or write an
//! unserved answer as 0 (it stays `None`, shown as unknown).
//!
//! Sync-committee rewards are read from the node for one block per epoch
//! and derived for the others (issue 12: one request per block was ~6 per
//! epoch on an 8-slot devnet, 32 on mainnet). The rule, from the consensus
//! specs (Altair `process_sync_aggregate`) and what the clients answer for
//! `getSyncCommitteeRewards` (Lodestar `computeSyncCommitteeRewards`,
//! Lighthouse `compute_sync_committee_rewards`: balances before and after
//! the aggregate, the proposer's share left out): each seat of the block's
//! current sync committee earns the participant reward when its bit is
//! set, and loses it when not; a validator's answer is the sum over its
//! seats. The participant reward is
//! `total_base_rewards * SYNC_REWARD_WEIGHT / WEIGHT_DENOMINATOR /
//! SLOTS_PER_EPOCH / SYNC_COMMITTEE_SIZE`, a function of the total active
//! balance only, which changes only in the epoch transition: one value for
//! every block of an epoch. So an answer whose seats do not cancel out
//! (set ≠ unset) gives the epoch's unit, and the other blocks of that
//! epoch are `unit × (set − unset)` from their `sync_committee_bits`,
//! exactly the node's answer (the penalty is floored at a zero balance, out
//! of reach for an active validator: it holds ≥ 16 ETH, while the unit
//! grows with the square root of the total stake and is ~22 000 Gwei on
//! mainnet, 512 seats of it ~0.012 ETH). An answer that does not fit the rule (a
//! remainder, two units, a reward on cancelled seats) teaches nothing, and
//! every block of that epoch is read as before.
//!
//! Served once the epoch's rewards exist: the attestation rewards of N are
//! computed in the transition out of N+1, which the final pass of N (one
//! slot after the last slot of N+1) follows.

use std::collections::{HashMap, HashSet};

use tracing::debug;

use super::EpochData;
use crate::analysis::rewards::{BlockReward, RewardInputs, SyncRewards};
use crate::analysis::{ProposalStatus, ProposalVerdict};
use crate::beacon::{BeaconPool, BlockId};
use crate::chain::{BitVector, ChainSpec, Epoch, Slot, ValidatorIndex};

/// PURE: the seats of `v` in `committee` whose bit is set, minus those
/// whose bit is not.
fn net_seats(committee: &[ValidatorIndex], bits: &BitVector, v: ValidatorIndex) -> i64 {
    committee
        .iter()
        .enumerate()
        .filter(|(_, m)| **m == v)
        .map(|(i, _)| if bits.get(i) { 1 } else { -1 })
        .sum()
}

/// PURE: the participant reward (Gwei per seat) one block's answer shows,
/// if the answer fits the rule above for every validator in it and at
/// least one of them has seats that do not cancel out. `committee` is the
/// block's sync committee by seat, `bits` its aggregate's bits.
pub fn sync_unit(
    committee: &[ValidatorIndex],
    bits: &BitVector,
    answer: &[(ValidatorIndex, i64)],
) -> Option<i64> {
    if committee.is_empty() || bits.len() != committee.len() {
        return None;
    }
    let mut unit = None;
    for (v, reward) in answer {
        let net = net_seats(committee, bits, *v);
        if net == 0 {
            if *reward != 0 {
                return None;
            }
            continue;
        }
        if reward % net != 0 {
            return None;
        }
        let u = reward / net;
        if u < 0 || unit.is_some_and(|x| x != u) {
            return None;
        }
        unit = Some(u);
    }
    unit
}

/// PURE: the answer the node would give for `ids` on a block of an epoch
/// whose participant reward is `unit` (see `sync_unit`).
pub fn derived_sync_rewards(
    committee: &[ValidatorIndex],
    bits: &BitVector,
    ids: &[ValidatorIndex],
    unit: i64,
) -> Option<SyncRewards> {
    if committee.is_empty() || bits.len() != committee.len() {
        return None;
    }
    Some(
        ids.iter()
            .map(|v| (*v, net_seats(committee, bits, *v).saturating_mul(unit)))
            .collect(),
    )
}

/// The rewards answers of `data.epoch` for `watched`, and the watched
/// validators with a sync-committee seat in that epoch. Errors are logged
/// and leave their part unknown: rewards never stop a verdict.
pub async fn fetch_rewards(
    pool: &BeaconPool,
    spec: &ChainSpec,
    data: &EpochData,
    watched: &[ValidatorIndex],
    proposals: &[ProposalVerdict],
) -> (RewardInputs, Vec<ValidatorIndex>) {
    let epoch = data.epoch;
    let mut inputs = RewardInputs::default();
    if watched.is_empty() {
        return (inputs, Vec::new());
    }
    let watched_set: HashSet<ValidatorIndex> = watched.iter().copied().collect();

    inputs.attestations = match pool
        .call(
            "/eth/v1/beacon/rewards/attestations/{epoch}",
            |c| async move { c.attestation_rewards(epoch, watched).await },
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            debug!(epoch = epoch.0, error = %e, "attestation rewards not read");
            None
        }
    };

    // Sync: the block at B pays for the signatures of slot B-1, so the
    // epoch's blocks are those at start+1 ..= start of the next epoch.
    let members_of = |slot: Slot| -> Vec<ValidatorIndex> {
        let period = spec.sync_period_of(spec.epoch_of(slot));
        let mut m: Vec<ValidatorIndex> = data
            .sync_committees
            .get(&period)
            .map(|c| {
                c.iter()
                    .filter(|v| watched_set.contains(v))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m.dedup();
        m
    };
    let start = spec.start_slot(epoch);
    let next = spec.start_slot(crate::chain::Epoch(epoch.0 + 1));
    let epoch_members = members_of(start);
    // The participant reward per epoch of the block, once an answer showed
    // it (the last block, at the first slot of the next epoch, has its own).
    let mut units: HashMap<Epoch, i64> = HashMap::new();
    for b in data
        .chain
        .blocks()
        .filter(|b| b.slot > start && b.slot <= next)
    {
        let ids = members_of(b.slot);
        if ids.is_empty() {
            continue;
        }
        let block_epoch = spec.epoch_of(b.slot);
        let committee = data
            .sync_committees
            .get(&spec.sync_period_of(block_epoch))
            .map(Vec::as_slice);
        let bits = data
            .blocks
            .iter()
            .find(|x| x.header.root == b.root)
            .and_then(|x| x.sync_committee_bits.as_ref());
        if let (Some(&unit), Some(committee), Some(bits)) =
            (units.get(&block_epoch), committee, bits)
        {
            if let Some(derived) = derived_sync_rewards(committee, bits, &ids, unit) {
                inputs.sync.push((Slot(b.slot.0 - 1), Some(derived)));
                continue;
            }
        }
        let root = b.root;
        let ids = &ids;
        let answer = pool
            .call(
                "/eth/v1/beacon/rewards/sync_committee/{block_id}",
                |c| async move { c.sync_committee_rewards(BlockId::Root(root), ids).await },
            )
            .await
            .unwrap_or_else(|e| {
                debug!(epoch = epoch.0, slot = b.slot.0, error = %e, "sync committee rewards not read");
                None
            });
        if let (Some(answer), Some(committee), Some(bits)) = (&answer, committee, bits) {
            if let Some(unit) = sync_unit(committee, bits, answer) {
                units.insert(block_epoch, unit);
            }
        }
        inputs.sync.push((Slot(b.slot.0 - 1), answer));
    }

    // Blocks: the watched proposers' own, or all of the epoch's when a
    // watched proposer missed (the estimate needs their median).
    let any_missed = proposals
        .iter()
        .any(|p| p.status == ProposalStatus::Missed && spec.epoch_of(p.slot) == epoch);
    let end = spec.end_slot(epoch);
    let wanted: Vec<_> = data
        .chain
        .blocks()
        .filter(|b| b.slot >= start && b.slot <= end && b.slot.0 > 0)
        .filter(|b| any_missed || watched_set.contains(&b.proposer_index))
        .copied()
        .collect();
    for b in wanted {
        let root = b.root;
        let slot = b.slot;
        let answer: Option<BlockReward> = pool
            .call("/eth/v1/beacon/rewards/blocks/{block_id}", |c| async move {
                c.block_rewards(BlockId::Root(root), slot).await
            })
            .await
            .unwrap_or_else(|e| {
                debug!(epoch = epoch.0, slot = slot.0, error = %e, "block rewards not read");
                None
            });
        match answer {
            Some(r) => inputs.blocks.push(r),
            None => inputs.blocks_unserved += 1,
        }
    }
    (inputs, epoch_members)
}

/// The rewards rows and the network baseline of a final epoch: the reads
/// above, then the pure rules (`analysis::rewards`, `analysis::network`).
pub async fn epoch_rewards(
    pool: &BeaconPool,
    spec: &ChainSpec,
    data: &EpochData,
    watched: &[ValidatorIndex],
    record: &crate::store::EpochRecord,
) -> (
    Vec<crate::analysis::rewards::RewardRecord>,
    Option<crate::analysis::network::NetworkRecord>,
) {
    use crate::analysis::rewards::{reward_records, RewardContext};
    let (inputs, sync_members) = fetch_rewards(pool, spec, data, watched, &record.proposals).await;
    let effective_balance = data
        .registry
        .iter()
        .map(|(v, info)| (*v, info.effective_balance))
        .collect();
    let of = |status: ProposalStatus| -> Vec<(ValidatorIndex, Slot)> {
        record
            .proposals
            .iter()
            .filter(|p| p.status == status && spec.epoch_of(p.slot) == data.epoch)
            .filter_map(|p| Some((p.validator_index?, p.slot)))
            .collect()
    };
    let proposed = of(ProposalStatus::Proposed);
    let missed = of(ProposalStatus::Missed);
    let ctx = RewardContext {
        epoch: data.epoch,
        watched,
        effective_balance: &effective_balance,
        proposed: &proposed,
        missed_proposals: &missed,
        sync_members: &sync_members,
    };
    let rows = reward_records(&ctx, &inputs);
    let committees = data
        .committees
        .as_ref()
        .ok()
        .map(|c| (c.as_slice(), &data.coverage));
    let network = crate::analysis::network::network_baseline(
        spec,
        data.epoch,
        committees,
        &data.blocks,
        &data.chain,
    );
    (rows, network)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ValidatorIndex = ValidatorIndex(1);
    const B: ValidatorIndex = ValidatorIndex(2);
    const C: ValidatorIndex = ValidatorIndex(3);

    /// Seats: A A B C (A holds two), bits set on `set`.
    fn case(set: &[usize]) -> (Vec<ValidatorIndex>, BitVector) {
        (
            vec![A, A, B, C],
            BitVector::from_bits(4, set.iter().copied()),
        )
    }

    #[test]
    fn the_unit_is_read_from_seats_that_do_not_cancel_out() {
        // (set bits, answer, unit): A 2 seats, B and C one each.
        let cases: Vec<(&[usize], Vec<(ValidatorIndex, i64)>, Option<i64>)> = vec![
            (&[0, 1, 2], vec![(A, 1400), (B, 700)], Some(700)),
            (&[2], vec![(A, -1400), (B, 700)], Some(700)),
            // A's seats cancel out: only B tells the unit.
            (&[0, 3], vec![(A, 0), (C, 700)], Some(700)),
            (&[0], vec![(A, 0)], None),
            // Answers that do not fit the rule teach nothing.
            (&[0], vec![(A, 5)], None),
            (&[0, 1, 2], vec![(A, 1401)], None),
            (&[0, 1, 2], vec![(A, 1400), (B, 699)], None),
            (&[], vec![(A, 1400)], None),
            (&[0, 1], vec![], None),
        ];
        for (set, answer, want) in cases {
            let (committee, bits) = case(set);
            assert_eq!(
                sync_unit(&committee, &bits, &answer),
                want,
                "{set:?} {answer:?}"
            );
        }
    }

    #[test]
    fn derived_rewards_are_the_seats_sum_and_need_matching_bits() {
        let (committee, bits) = case(&[0, 2]);
        assert_eq!(
            derived_sync_rewards(&committee, &bits, &[A, B, C], 700),
            Some(vec![(A, 0), (B, 700), (C, -700)])
        );
        let short = BitVector::from_bits(3, [0]);
        assert_eq!(derived_sync_rewards(&committee, &short, &[A], 700), None);
        // What was read back from a node's answer derives that answer.
        let answer = vec![(A, 0), (B, 700), (C, -700)];
        let unit = sync_unit(&committee, &bits, &answer).unwrap();
        assert_eq!(
            derived_sync_rewards(&committee, &bits, &[A, B, C], unit),
            Some(answer)
        );
    }
}
