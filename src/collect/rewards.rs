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
//! Served once the epoch's rewards exist: the attestation rewards of N are
//! computed in the transition out of N+1, which the final pass of N (one
//! slot after the last slot of N+1) follows.

use std::collections::HashSet;

use tracing::debug;

use super::EpochData;
use crate::analysis::rewards::{BlockReward, RewardInputs};
use crate::analysis::{ProposalStatus, ProposalVerdict};
use crate::beacon::{BeaconPool, BlockId};
use crate::chain::{ChainSpec, Slot, ValidatorIndex};

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
    for b in data
        .chain
        .blocks()
        .filter(|b| b.slot > start && b.slot <= next)
    {
        let ids = members_of(b.slot);
        if ids.is_empty() {
            continue;
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
