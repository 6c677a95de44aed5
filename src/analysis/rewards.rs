//! Rewards and penalties per watched validator and epoch, in Gwei, from the
//! nodes' own rewards answers (`/eth/v1/beacon/rewards/*`), and what the
//! validator missed against an ideal one.
//!
//! Owns: combining the three rewards answers of one epoch into one compact
//! row per validator, `missed_gwei`, and the estimate for a missed proposal.
//! Must not: do IO, or turn "the node did not answer" into 0: a part that
//! no node served stays `None` (shown as unknown).
//!
//! Spec facts the rows rest on (consensus-specs, Altair and later):
//! - attestation rewards are the flag deltas of `get_flag_index_deltas`
//!   (TIMELY_SOURCE weight 14, TIMELY_TARGET 26, TIMELY_HEAD 14 out of
//!   WEIGHT_DENOMINATOR 64) plus `get_inactivity_penalty_deltas`; a missing
//!   source or target flag is penalised by its weight, a missing head flag
//!   is not; during an inactivity leak no flag earns anything.
//!   Beacon-APIs `getAttestationsRewards` answers per validator `head`,
//!   `target`, `source`, `inactivity` (and the Phase0 `inclusion_delay`,
//!   absent or 0 since Altair), and `ideal_rewards` per effective balance:
//!   what a validator of that effective balance earns with every flag set.
//! - sync-committee rewards (`process_sync_aggregate`): each seat earns the
//!   participant reward when its bit is set in the block's aggregate and
//!   loses it when not; `getSyncCommitteeRewards` sums a validator's seats
//!   per block. The block at slot B carries the signatures of slot B-1.
//! - block rewards (`getBlockRewards`): what the proposer earned for the
//!   attestations, sync aggregate and slashings it included (`total`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::chain::{Epoch, Gwei, Slot, ValidatorIndex};

/// One validator's attestation reward components for an epoch, as the node
/// answered them (negative: a penalty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttestationReward {
    pub validator_index: ValidatorIndex,
    pub head: i64,
    pub target: i64,
    pub source: i64,
    /// Phase0 only; absent from Altair answers of some nodes.
    pub inclusion_delay: Option<i64>,
    pub inactivity: i64,
}

impl AttestationReward {
    /// The sum of every component: the change of the balance the epoch's
    /// attestation duty caused.
    pub fn total(&self) -> i64 {
        self.head
            .saturating_add(self.target)
            .saturating_add(self.source)
            .saturating_add(self.inclusion_delay.unwrap_or(0))
            .saturating_add(self.inactivity)
    }
}

/// The ideal attestation reward for one effective balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdealReward {
    pub effective_balance: Gwei,
    pub total: i64,
}

/// The node's answer to `POST /eth/v1/beacon/rewards/attestations/{epoch}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationRewards {
    pub ideal: Vec<IdealReward>,
    pub total: Vec<AttestationReward>,
}

/// The node's answer to `GET /eth/v1/beacon/rewards/blocks/{block_id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockReward {
    pub slot: Slot,
    pub proposer_index: ValidatorIndex,
    /// Everything the proposer earned for the block's contents (Gwei).
    pub total: u64,
}

/// One block's sync-committee rewards: per validator, its seats' sum.
pub type SyncRewards = Vec<(ValidatorIndex, i64)>;

/// Everything read for one epoch's rewards. `None` parts were not served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewardInputs {
    pub attestations: Option<AttestationRewards>,
    /// Per block whose sync rewards were asked (signing slot = block slot −
    /// 1 inside the epoch): the watched validators' summed seat rewards;
    /// `None` when the node did not serve that block's answer.
    pub sync: Vec<(Slot, Option<SyncRewards>)>,
    /// Block rewards that were read (watched proposers' blocks, and every
    /// canonical block of the epoch when a watched proposal was missed).
    pub blocks: Vec<BlockReward>,
    /// Canonical blocks of the epoch whose rewards were asked and not
    /// served: the median would then be a guess over a part, so no estimate.
    pub blocks_unserved: usize,
}

/// What one watched validator earned and missed in one epoch. Every
/// amount is Gwei; `None` is "unknown" (not served), never 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRecord {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    pub attestation_reward_gwei: Option<i64>,
    pub attestation_ideal_gwei: Option<i64>,
    pub sync_reward_gwei: Option<i64>,
    pub proposer_reward_gwei: Option<i64>,
    /// Ideal − actual attestation reward, plus the estimated reward of a
    /// missed proposal.
    pub missed_gwei: Option<i64>,
    /// `missed_gwei` holds an estimate (a missed proposal valued at the
    /// median proposer reward of the epoch's canonical blocks).
    pub estimated: bool,
}

/// PURE: the median proposer reward of `blocks` (the lower middle of an
/// even count, so the estimate never exceeds a reward that was paid);
/// `None` without blocks.
pub fn median_block_reward(blocks: &[BlockReward]) -> Option<u64> {
    let mut totals: Vec<u64> = blocks.iter().map(|b| b.total).collect();
    if totals.is_empty() {
        return None;
    }
    totals.sort_unstable();
    Some(totals[(totals.len() - 1) / 2])
}

/// What the watched validators did in the epoch that matters here: who
/// proposed which slot and who missed one (from the proposal verdicts),
/// their effective balance (from the registry), and whether each is in the
/// sync committee of the epoch.
pub struct RewardContext<'a> {
    pub epoch: Epoch,
    pub watched: &'a [ValidatorIndex],
    pub effective_balance: &'a HashMap<ValidatorIndex, Gwei>,
    /// Canonical blocks proposed by watched validators in the epoch.
    pub proposed: &'a [(ValidatorIndex, Slot)],
    /// Slots in the epoch whose watched proposer missed them.
    pub missed_proposals: &'a [(ValidatorIndex, Slot)],
    /// Watched validators with a seat in the epoch's sync committee.
    pub sync_members: &'a [ValidatorIndex],
}

/// PURE: one row per watched validator that has anything known or owed;
/// a validator the rewards say nothing about (no answer at all) gets a row
/// of unknowns only if it had a duty the rows would hide (a proposal or a
/// sync seat), so an unserved route reads `unknown`, never 0.
pub fn reward_records(ctx: &RewardContext<'_>, inputs: &RewardInputs) -> Vec<RewardRecord> {
    let att: HashMap<ValidatorIndex, &AttestationReward> = inputs
        .attestations
        .iter()
        .flat_map(|a| a.total.iter())
        .map(|r| (r.validator_index, r))
        .collect();
    let ideal: HashMap<Gwei, i64> = inputs
        .attestations
        .iter()
        .flat_map(|a| a.ideal.iter())
        .map(|i| (i.effective_balance, i.total))
        .collect();

    // Sync: summed over the blocks of the epoch; unknown as soon as one
    // asked block was not served (a partial sum would read as a loss).
    let sync_all_served = inputs.sync.iter().all(|(_, r)| r.is_some());
    let mut sync: HashMap<ValidatorIndex, i64> = HashMap::new();
    for (_, rows) in &inputs.sync {
        for (v, r) in rows.iter().flatten() {
            let e = sync.entry(*v).or_default();
            *e = e.saturating_add(*r);
        }
    }
    let block_by_slot: HashMap<Slot, &BlockReward> =
        inputs.blocks.iter().map(|b| (b.slot, b)).collect();
    let median = if inputs.blocks_unserved == 0 {
        median_block_reward(&inputs.blocks)
    } else {
        None
    };

    // Sets, so that the rows stay linear in the watched set (100 000 on a
    // large operator) rather than watched × sync seats.
    let sync_members: HashSet<ValidatorIndex> = ctx.sync_members.iter().copied().collect();
    let mut proposed: HashMap<ValidatorIndex, Vec<Slot>> = HashMap::new();
    for (p, slot) in ctx.proposed {
        proposed.entry(*p).or_default().push(*slot);
    }
    let mut missed_count: HashMap<ValidatorIndex, i64> = HashMap::new();
    for (p, _) in ctx.missed_proposals {
        *missed_count.entry(*p).or_default() += 1;
    }
    let mut out = Vec::with_capacity(ctx.watched.len());
    for &v in ctx.watched {
        let attestation = att.get(&v).map(|r| r.total());
        let attestation_ideal = ctx
            .effective_balance
            .get(&v)
            .and_then(|eb| ideal.get(eb))
            .copied()
            .filter(|_| attestation.is_some());
        let in_sync = sync_members.contains(&v);
        let sync_reward = if in_sync && sync_all_served && !inputs.sync.is_empty() {
            Some(sync.get(&v).copied().unwrap_or(0))
        } else {
            None
        };
        // A block whose reward was not served leaves the proposer reward
        // unknown, not 0.
        let mut proposer: Option<i64> = None;
        let mut proposer_unknown = false;
        for slot in proposed.get(&v).into_iter().flatten() {
            match block_by_slot.get(slot) {
                Some(b) => {
                    let r = i64::try_from(b.total).unwrap_or(i64::MAX);
                    proposer = Some(proposer.unwrap_or(0).saturating_add(r));
                }
                None => proposer_unknown = true,
            }
        }
        if proposer_unknown {
            proposer = None;
        }
        let missed_slots = missed_count.get(&v).copied().unwrap_or(0);
        let attestation_missed = match (attestation_ideal, attestation) {
            (Some(i), Some(a)) => Some(i.saturating_sub(a)),
            _ => None,
        };
        let proposal_missed = if missed_slots == 0 {
            Some(0)
        } else {
            median.map(|m| {
                i64::try_from(m)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(missed_slots)
            })
        };
        let missed_gwei = match (attestation_missed, proposal_missed) {
            (Some(a), Some(p)) => Some(a.saturating_add(p)),
            _ => None,
        };
        let has_proposal = proposed.contains_key(&v) || missed_slots > 0;
        if attestation.is_none()
            && sync_reward.is_none()
            && proposer.is_none()
            && !in_sync
            && !has_proposal
        {
            continue; // nothing known and nothing owed: no row
        }
        out.push(RewardRecord {
            validator_index: v,
            epoch: ctx.epoch,
            attestation_reward_gwei: attestation,
            attestation_ideal_gwei: attestation_ideal,
            sync_reward_gwei: sync_reward,
            proposer_reward_gwei: proposer,
            missed_gwei,
            estimated: missed_slots > 0 && missed_gwei.is_some(),
        });
    }
    out
}

/// PURE: what a stretch of epochs cost `validators`, in Gwei: the sum of
/// their known `missed_gwei` (the recovery notification's "the downtime
/// cost 0.004 ETH"), and whether any part of it is an estimate. `None`
/// when no row of the stretch is known.
pub fn missed_total(rows: &[RewardRecord]) -> Option<(i64, bool)> {
    let known: Vec<&RewardRecord> = rows.iter().filter(|r| r.missed_gwei.is_some()).collect();
    if known.is_empty() {
        return None;
    }
    let sum = known
        .iter()
        .filter_map(|r| r.missed_gwei)
        .fold(0i64, |a, b| a.saturating_add(b));
    Some((sum, known.iter().any(|r| r.estimated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: ValidatorIndex = ValidatorIndex(1);
    const V2: ValidatorIndex = ValidatorIndex(2);
    const EB: Gwei = Gwei(32_000_000_000);

    fn att(
        v: ValidatorIndex,
        head: i64,
        target: i64,
        source: i64,
        inactivity: i64,
    ) -> AttestationReward {
        AttestationReward {
            validator_index: v,
            head,
            target,
            source,
            inclusion_delay: None,
            inactivity,
        }
    }

    fn block(slot: u64, proposer: u64, total: u64) -> BlockReward {
        BlockReward {
            slot: Slot(slot),
            proposer_index: ValidatorIndex(proposer),
            total,
        }
    }

    /// (validator, attestation, ideal, sync, proposer, missed, estimated)
    type Row = (
        u64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        bool,
    );

    struct Case {
        name: &'static str,
        inputs: RewardInputs,
        proposed: Vec<(ValidatorIndex, Slot)>,
        missed: Vec<(ValidatorIndex, Slot)>,
        sync_members: Vec<ValidatorIndex>,
        /// (validator, attestation, ideal, sync, proposer, missed, estimated)
        want: Vec<Row>,
    }

    fn ideal() -> Vec<IdealReward> {
        vec![IdealReward {
            effective_balance: EB,
            total: 100,
        }]
    }

    #[test]
    fn reward_rows_follow_the_nodes_answers() {
        let cases = vec![
            Case {
                name: "a perfect attester misses nothing",
                inputs: RewardInputs {
                    attestations: Some(AttestationRewards {
                        ideal: ideal(),
                        total: vec![att(V1, 20, 50, 30, 0)],
                    }),
                    ..Default::default()
                },
                proposed: vec![],
                missed: vec![],
                sync_members: vec![],
                want: vec![(1, Some(100), Some(100), None, None, Some(0), false)],
            },
            Case {
                name: "a missed vote misses the ideal and pays the penalties",
                inputs: RewardInputs {
                    attestations: Some(AttestationRewards {
                        ideal: ideal(),
                        total: vec![att(V1, 0, -50, -30, -5)],
                    }),
                    ..Default::default()
                },
                proposed: vec![],
                missed: vec![],
                sync_members: vec![],
                want: vec![(1, Some(-85), Some(100), None, None, Some(185), false)],
            },
            Case {
                name: "an unserved attestation route is unknown, not zero",
                inputs: RewardInputs::default(),
                proposed: vec![],
                missed: vec![],
                sync_members: vec![V1],
                want: vec![(1, None, None, None, None, None, false)],
            },
            Case {
                name: "a missed proposal is valued at the epoch's median block reward",
                inputs: RewardInputs {
                    attestations: Some(AttestationRewards {
                        ideal: ideal(),
                        total: vec![att(V1, 20, 50, 30, 0), att(V2, 20, 50, 30, 0)],
                    }),
                    blocks: vec![block(9, 2, 40), block(10, 7, 10), block(11, 8, 1000)],
                    ..Default::default()
                },
                proposed: vec![(V2, Slot(9))],
                missed: vec![(V1, Slot(12))],
                sync_members: vec![],
                want: vec![
                    (1, Some(100), Some(100), None, None, Some(40), true),
                    (2, Some(100), Some(100), None, Some(40), Some(0), false),
                ],
            },
            Case {
                name: "no estimate when some block rewards were not served",
                inputs: RewardInputs {
                    attestations: Some(AttestationRewards {
                        ideal: ideal(),
                        total: vec![att(V1, 20, 50, 30, 0)],
                    }),
                    blocks: vec![block(9, 2, 40)],
                    blocks_unserved: 1,
                    ..Default::default()
                },
                proposed: vec![],
                missed: vec![(V1, Slot(12))],
                sync_members: vec![],
                want: vec![(1, Some(100), Some(100), None, None, None, false)],
            },
            Case {
                name: "sync rewards sum over the epoch's blocks",
                inputs: RewardInputs {
                    sync: vec![
                        (Slot(9), Some(vec![(V1, 7), (V2, -7)])),
                        (Slot(10), Some(vec![(V1, 7)])),
                    ],
                    ..Default::default()
                },
                proposed: vec![],
                missed: vec![],
                sync_members: vec![V1, V2],
                want: vec![
                    (1, None, None, Some(14), None, None, false),
                    (2, None, None, Some(-7), None, None, false),
                ],
            },
            Case {
                name: "one unserved sync answer makes the epoch's sync reward unknown",
                inputs: RewardInputs {
                    sync: vec![(Slot(9), Some(vec![(V1, 7)])), (Slot(10), None)],
                    ..Default::default()
                },
                proposed: vec![],
                missed: vec![],
                sync_members: vec![V1],
                want: vec![(1, None, None, None, None, None, false)],
            },
            Case {
                name: "a proposed block whose reward was not served is unknown",
                inputs: RewardInputs::default(),
                proposed: vec![(V1, Slot(9))],
                missed: vec![],
                sync_members: vec![],
                want: vec![(1, None, None, None, None, None, false)],
            },
        ];
        for c in cases {
            let eb: HashMap<ValidatorIndex, Gwei> = [(V1, EB), (V2, EB)].into_iter().collect();
            let ctx = RewardContext {
                epoch: Epoch(1),
                watched: &[V1, V2],
                effective_balance: &eb,
                proposed: &c.proposed,
                missed_proposals: &c.missed,
                sync_members: &c.sync_members,
            };
            let got: Vec<_> = reward_records(&ctx, &c.inputs)
                .into_iter()
                .map(|r| {
                    (
                        r.validator_index.0,
                        r.attestation_reward_gwei,
                        r.attestation_ideal_gwei,
                        r.sync_reward_gwei,
                        r.proposer_reward_gwei,
                        r.missed_gwei,
                        r.estimated,
                    )
                })
                .collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn the_median_of_an_even_count_is_the_lower_middle() {
        let b = |t| block(1, 1, t);
        assert_eq!(median_block_reward(&[]), None);
        assert_eq!(median_block_reward(&[b(5)]), Some(5));
        assert_eq!(median_block_reward(&[b(9), b(1), b(5), b(7)]), Some(5));
    }

    #[test]
    fn the_cost_of_a_stretch_sums_what_is_known() {
        let row = |missed, estimated| RewardRecord {
            validator_index: V1,
            epoch: Epoch(1),
            attestation_reward_gwei: None,
            attestation_ideal_gwei: None,
            sync_reward_gwei: None,
            proposer_reward_gwei: None,
            missed_gwei: missed,
            estimated,
        };
        assert_eq!(missed_total(&[row(None, false)]), None);
        assert_eq!(
            missed_total(&[row(Some(3), false), row(None, false), row(Some(4), true)]),
            Some((7, true))
        );
    }
}
