//! Attestation verdicts: for each watched validator and one epoch, was its
//! vote included in a canonical block, when, and were its votes correct.
//!
//! Owns: mapping on-chain aggregates to the watched validators (consensus
//! specs `get_attesting_indices`, Phase0 and Electra/EIP-7549 forms), the
//! first-inclusion rule, and the inclusion-window rule (EIP-7045).
//! Must not: do IO, read the clock, or map bits of validators nobody watches
//! (mainnet has ~1M validators; the work must stay linear in the input).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{AnalysisError, AttestationStatus, AttestationVerdict, CanonicalChain};
use crate::chain::{
    Attestation, AttestationData, Block, ChainSpec, Committee, Epoch, Slot, ValidatorIndex,
    ValidatorInfo,
};

/// Everything needed to judge the attestation duties of `epoch`.
pub struct AttestationInputs<'a> {
    pub spec: &'a ChainSpec,
    pub epoch: Epoch,
    /// Beacon committees of `epoch`: every committee of the slots `coverage`
    /// names.
    pub committees: &'a [Committee],
    pub coverage: &'a Coverage,
    /// The watched validators with their registry entry (for activity);
    /// a watched index without an entry is judged `unknown`.
    pub watched: &'a [ValidatorIndex],
    pub registry: &'a HashMap<ValidatorIndex, ValidatorInfo>,
    /// Canonical blocks (full bodies) with slots in
    /// `(start_slot(epoch), inclusion_window_end(epoch)]`, as far as the
    /// chain has them.
    pub blocks: &'a [Block],
    /// Canonical chain covering at least `[start_slot(epoch) , head]`.
    pub chain: &'a CanonicalChain,
    /// Highest slot for which the canonical chain is known (the head).
    pub head_slot: Slot,
}

/// Which slots of the epoch the committees passed to the analysis cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every committee of the epoch: a vote whose committee is missing or
    /// does not fit is a contradiction (`AttestationShape`).
    Epoch,
    /// Every committee of these slots only (the collector read just the
    /// watched validators' duty slots and checked each one's seat). Votes of
    /// other slots cannot be the watched validators' and are skipped unread;
    /// votes of a covered slot are checked as strictly as with `Epoch`.
    Slots(BTreeSet<Slot>),
}

impl Coverage {
    pub fn covers(&self, slot: Slot) -> bool {
        match self {
            Coverage::Epoch => true,
            Coverage::Slots(slots) => slots.contains(&slot),
        }
    }
}

/// The last slot at which a vote of `epoch` cast at `duty_slot` can still be
/// included in a block.
///
/// Deneb+ (EIP-7045): `process_attestation` only asks that the target epoch
/// be the previous or current epoch of the including block, so the window
/// runs to the end of epoch N+1. Before Deneb it also asserted
/// `state.slot <= data.slot + SLOTS_PER_EPOCH`.
///
/// The rule that applies is the one of the blocks that could still include
/// the vote, i.e. of epoch N+1: a vote of the last Capella epoch may be
/// included by Deneb blocks until the end of the first Deneb epoch. So this
/// asks `fork_at(epoch + 1)`, not `fork_at(epoch)`; both agree everywhere
/// except the epoch before the Deneb fork.
pub fn inclusion_window_end(spec: &ChainSpec, epoch: Epoch, duty_slot: Slot) -> Slot {
    if spec
        .fork_at(Epoch(epoch.0.saturating_add(1)))
        .has_extended_inclusion()
    {
        spec.inclusion_window_end(epoch)
    } else {
        Slot(duty_slot.0.saturating_add(spec.slots_per_epoch))
    }
}

/// One committee of the epoch, as far as the watched validators care: its
/// length (needed to find the offsets in an Electra aggregate) and the
/// watched members with their bit position.
pub(crate) struct CommitteeView {
    len: usize,
    /// `(position in the committee, index into the watched list)`.
    watched: Vec<(usize, usize)>,
}

/// The first canonical inclusion of one watched validator's vote.
#[derive(Clone, Copy)]
struct Inclusion<'a> {
    block_slot: Slot,
    data: &'a AttestationData,
}

pub fn judge_attestations(
    inputs: &AttestationInputs<'_>,
) -> Result<Vec<AttestationVerdict>, AnalysisError> {
    let spec = inputs.spec;
    let epoch = inputs.epoch;

    // A validator listed twice is judged once; order follows `watched`.
    let mut seen = HashSet::with_capacity(inputs.watched.len());
    let targets: Vec<ValidatorIndex> = inputs
        .watched
        .iter()
        .copied()
        .filter(|v| seen.insert(*v))
        .collect();
    let position: HashMap<ValidatorIndex, usize> =
        targets.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    drop(seen);

    let (duty, views) = committee_views(spec, epoch, inputs.committees, &position, targets.len());

    // Canonical blocks only, lowest slot first: the first block that carries
    // a vote is its inclusion, every later copy is ignored.
    let mut blocks: Vec<&Block> = inputs
        .blocks
        .iter()
        .filter(|b| {
            inputs
                .chain
                .block_at(b.header.slot)
                .is_some_and(|h| h.root == b.header.root)
        })
        .collect();
    blocks.sort_by_key(|b| b.header.slot);

    let mut first: Vec<Option<Inclusion<'_>>> = vec![None; targets.len()];
    for block in &blocks {
        for att in &block.attestations {
            record_votes(
                spec,
                epoch,
                inputs.coverage,
                block.header.slot,
                att,
                &views,
                &mut first,
            )?;
        }
    }

    // Canonical slots in the window whose body the caller did not pass: a
    // vote might sit there, so "missed" cannot be said across them.
    let have: HashSet<_> = blocks.iter().map(|b| b.header.root).collect();
    let missing_bodies: Vec<Slot> = inputs
        .chain
        .blocks()
        .filter(|h| h.slot > spec.start_slot(epoch) && h.slot <= inputs.head_slot)
        .filter(|h| !have.contains(&h.root))
        .map(|h| h.slot)
        .collect();

    let verdicts = targets
        .iter()
        .enumerate()
        .map(|(w, &v)| {
            judge_one(
                inputs,
                v,
                inputs.registry.get(&v),
                duty[w],
                first[w],
                &missing_bodies,
            )
        })
        .collect();
    Ok(verdicts)
}

/// One pass over every committee member of the epoch (linear in the
/// network size) finds each watched validator's duty (its slot) and, per
/// committee, the bits to look at. `position` maps a watched validator to
/// its place in a list of `n`.
pub(crate) fn committee_views(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: &[Committee],
    position: &HashMap<ValidatorIndex, usize>,
    n: usize,
) -> (Vec<Option<Slot>>, HashMap<(Slot, u64), CommitteeView>) {
    let mut duty: Vec<Option<Slot>> = vec![None; n];
    let mut views: HashMap<(Slot, u64), CommitteeView> = HashMap::new();
    for committee in committees {
        if spec.epoch_of(committee.slot) != epoch {
            continue;
        }
        let key = (committee.slot, committee.index);
        if views.contains_key(&key) {
            // A repeated committee adds nothing; the first one counts.
            continue;
        }
        let mut watched = Vec::new();
        for (j, v) in committee.validators.iter().enumerate() {
            if let Some(&w) = position.get(v) {
                // The spec puts each active validator in exactly one
                // committee per epoch; should the input repeat one, its
                // first seat is its duty.
                if duty[w].is_none() {
                    duty[w] = Some(committee.slot);
                    watched.push((j, w));
                }
            }
        }
        views.insert(
            key,
            CommitteeView {
                len: committee.validators.len(),
                watched,
            },
        );
    }
    (duty, views)
}

/// The watched validators (their place in the watched list) whose bit is
/// set in `att`. Consensus specs `get_attesting_indices`: before Electra the
/// aggregate covers the committee `(data.slot, data.index)`; from Electra on
/// (EIP-7549) it covers the committees named by `committee_bits`, ascending,
/// concatenated. Either way the bitlist length must equal the committees'
/// total length (`process_attestation` asserts it), else the committees are
/// not the ones the chain used: the error says why.
pub(crate) fn watched_attesters(
    att: &Attestation,
    views: &HashMap<(Slot, u64), CommitteeView>,
) -> Result<Vec<usize>, String> {
    let data = &att.data;
    let mut parts: Vec<&CommitteeView> = Vec::new();
    match &att.committee_bits {
        None => {
            let view = views
                .get(&(data.slot, data.index))
                .ok_or_else(|| format!("no committee {} at its slot", data.index))?;
            parts.push(view);
        }
        Some(bits) => {
            for k in bits.ones() {
                let view = views
                    .get(&(data.slot, k as u64))
                    .ok_or_else(|| format!("no committee {k} at its slot"))?;
                parts.push(view);
            }
        }
    }
    let total: usize = parts.iter().map(|p| p.len).sum();
    if total != att.aggregation_bits.len() {
        return Err(format!(
            "aggregation bits hold {} bits, the committees {total}",
            att.aggregation_bits.len()
        ));
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for part in parts {
        for &(j, w) in &part.watched {
            // Only a set bit is evidence: an unset bit may be covered by
            // another aggregate.
            if att.aggregation_bits.get(offset + j) {
                out.push(w);
            }
        }
        offset += part.len;
    }
    Ok(out)
}

/// Marks the first inclusion of every watched validator whose bit is set in
/// `att` (the mapping is `watched_attesters`).
fn record_votes<'a>(
    spec: &ChainSpec,
    epoch: Epoch,
    coverage: &Coverage,
    block_slot: Slot,
    att: &'a Attestation,
    views: &HashMap<(Slot, u64), CommitteeView>,
    first: &mut [Option<Inclusion<'a>>],
) -> Result<(), AnalysisError> {
    let data = &att.data;
    // `process_attestation` asserts target.epoch == epoch of data.slot; a
    // vote of another epoch belongs to another judgement.
    if spec.epoch_of(data.slot) != epoch || data.target.epoch != epoch {
        return Ok(());
    }
    let shape = |problem: String| AnalysisError::AttestationShape {
        slot: data.slot,
        block_slot,
        problem,
    };
    // MIN_ATTESTATION_INCLUSION_DELAY = 1: a canonical block never carries a
    // vote of its own slot or a later one.
    if block_slot <= data.slot {
        return Err(shape("included no later than its own slot".into()));
    }
    // A slot whose committees were not read holds no watched seat.
    if !coverage.covers(data.slot) {
        return Ok(());
    }

    for w in watched_attesters(att, views).map_err(shape)? {
        if first[w].is_none() {
            first[w] = Some(Inclusion { block_slot, data });
        }
    }
    Ok(())
}

fn judge_one(
    inputs: &AttestationInputs<'_>,
    validator_index: ValidatorIndex,
    info: Option<&ValidatorInfo>,
    duty_slot: Option<Slot>,
    first: Option<Inclusion<'_>>,
    missing_bodies: &[Slot],
) -> AttestationVerdict {
    let spec = inputs.spec;
    let chain = inputs.chain;
    let epoch = inputs.epoch;
    let mut verdict = AttestationVerdict {
        validator_index,
        epoch,
        status: AttestationStatus::Unknown,
        duty_slot,
        inclusion_slot: None,
        inclusion_delay: None,
        late: None,
        source_correct: None,
        target_correct: None,
        head_correct: None,
        reason: None,
    };

    let Some(info) = info else {
        verdict.reason = Some("no registry entry for the validator".into());
        return verdict;
    };
    // `is_active_validator`: only active validators sit in committees, so an
    // inactive one has no duty and can never miss one.
    if !info.is_active_at(epoch) {
        verdict.status = AttestationStatus::Inactive;
        verdict.duty_slot = None;
        return verdict;
    }
    let Some(duty_slot) = duty_slot else {
        verdict.reason =
            Some("active but in no committee of the epoch: committees incomplete".into());
        return verdict;
    };

    if let Some(inc) = first {
        verdict.status = AttestationStatus::Included;
        verdict.inclusion_slot = Some(inc.block_slot);
        // Raw delay, as the spec's rewards count it (≥ 1).
        verdict.inclusion_delay = inc.block_slot.0.checked_sub(duty_slot.0);
        // Late only if a canonical block earlier than the including one
        // could have carried the vote: empty slots are nobody's fault.
        verdict.late = chain
            .first_block_after(duty_slot)
            .map(|b| inc.block_slot > b.slot);
        // process_attestation asserts the source equals the justified
        // checkpoint of the including state: an included vote has it right.
        verdict.source_correct = Some(true);
        // Target: the canonical root at the epoch's first slot (the latest
        // block at or before it if that slot is empty).
        verdict.target_correct = chain
            .root_at_or_before(spec.start_slot(inc.data.target.epoch))
            .map(|r| r == inc.data.target.root);
        // Head: the canonical root at the vote's own slot.
        verdict.head_correct = chain
            .root_at_or_before(inc.data.slot)
            .map(|r| r == inc.data.beacon_block_root);
        // A body we lack between the duty and the inclusion might hold an
        // earlier copy of the vote.
        let from = missing_bodies.partition_point(|s| *s <= duty_slot);
        let to = missing_bodies.partition_point(|s| *s < inc.block_slot);
        if from < to {
            verdict.reason = Some(format!(
                "may have been included earlier: {}",
                missing_list(&missing_bodies[from..to])
            ));
        }
        return verdict;
    }

    let window_end = inclusion_window_end(spec, epoch, duty_slot);
    if inputs.head_slot < window_end {
        verdict.status = AttestationStatus::Pending;
        return verdict;
    }
    // The window has closed; a miss needs every canonical block that could
    // have carried the vote.
    let from = missing_bodies.partition_point(|s| *s <= duty_slot);
    let to = missing_bodies.partition_point(|s| *s <= window_end);
    if from < to {
        verdict.reason = Some(missing_list(&missing_bodies[from..to]));
        return verdict;
    }
    verdict.status = AttestationStatus::Missed;
    verdict
}

fn missing_list(slots: &[Slot]) -> String {
    let list: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
    format!("block bodies missing at slots {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{
        BitList, BitVector, BlockHeader, Checkpoint, Fork, Pubkey, ValidatorStatus,
    };

    // The test world: 8 slots per epoch, epoch 1 = slots 8..=15, four
    // committees of four per slot. Validator v sits at slot 8 + v / 16,
    // committee (v / 4) % 4, position v % 4. Block at slot s has root
    // [s + 1; 32]; the anchor before the window is the block at slot 7.
    const EPOCH: Epoch = Epoch(1);
    const PER_SLOT: u64 = 4;
    const SIZE: usize = 4;

    fn root(slot: u64) -> Root {
        Root([slot as u8 + 1; 32])
    }

    use crate::chain::Root;

    fn header(slot: u64) -> BlockHeader {
        BlockHeader {
            root: root(slot),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(slot),
            parent_root: Root::ZERO,
            state_root: Root::ZERO,
        }
    }

    fn spec(newest: Fork) -> ChainSpec {
        let mut spec = ChainSpec::test_spec(8, 2000, 0);
        spec.forks.retain(|(f, _)| *f <= newest);
        spec
    }

    fn committees() -> Vec<Committee> {
        let mut out = Vec::new();
        for s in 8..16u64 {
            for k in 0..PER_SLOT {
                let base = ((s - 8) * PER_SLOT + k) * SIZE as u64;
                out.push(Committee {
                    slot: Slot(s),
                    index: k,
                    validators: (0..SIZE as u64).map(|j| ValidatorIndex(base + j)).collect(),
                });
            }
        }
        out
    }

    fn info(v: u64, activation: u64, exit: u64) -> ValidatorInfo {
        ValidatorInfo {
            index: ValidatorIndex(v),
            pubkey: Pubkey([0; 48]),
            balance: crate::chain::Gwei(32_000_000_000),
            effective_balance: crate::chain::Gwei(32_000_000_000),
            status: ValidatorStatus::ActiveOngoing,
            slashed: false,
            activation_epoch: Epoch(activation),
            exit_epoch: Epoch(exit),
        }
    }

    /// An aggregate as the table writes it: which block carries it, the
    /// vote's slot, the committees it spans (`electra`: committee_bits; else
    /// the single committee in `data.index`), the set bits over the
    /// concatenation, and the slots of the blocks its head and target name.
    #[derive(Clone)]
    struct Agg {
        block: u64,
        slot: u64,
        electra: bool,
        committees: &'static [u64],
        bits: &'static [usize],
        head: u64,
        target: u64,
        /// Overrides the bitlist length (shape errors).
        len: Option<usize>,
    }

    fn agg(block: u64, slot: u64, committees: &'static [u64], bits: &'static [usize]) -> Agg {
        Agg {
            block,
            slot,
            electra: true,
            committees,
            bits,
            head: slot,
            target: 8,
            len: None,
        }
    }

    impl Agg {
        fn phase0(mut self) -> Self {
            self.electra = false;
            self
        }
        fn head(mut self, slot: u64) -> Self {
            self.head = slot;
            self
        }
        fn target(mut self, slot: u64) -> Self {
            self.target = slot;
            self
        }
        fn len(mut self, len: usize) -> Self {
            self.len = Some(len);
            self
        }

        fn build(&self, spec: &ChainSpec) -> Attestation {
            let len = self.len.unwrap_or(SIZE * self.committees.len());
            let data = AttestationData {
                slot: Slot(self.slot),
                index: if self.electra { 0 } else { self.committees[0] },
                beacon_block_root: root(self.head),
                source: Checkpoint {
                    epoch: Epoch(0),
                    root: root(0),
                },
                target: Checkpoint {
                    epoch: spec.epoch_of(Slot(self.slot)),
                    root: root(self.target),
                },
            };
            Attestation {
                aggregation_bits: BitList::from_bits(len, self.bits.iter().copied()),
                committee_bits: self
                    .electra
                    .then(|| BitVector::from_bits(64, self.committees.iter().map(|k| *k as usize))),
                data,
            }
        }
    }

    struct World {
        fork: Fork,
        empty: Vec<u64>,
        /// Canonical blocks whose body the caller does not pass.
        no_body: Vec<u64>,
        head: u64,
        aggs: Vec<Agg>,
        /// Committees of these slots only (`Coverage::Slots`); `None`: all.
        covered: Option<Vec<u64>>,
    }

    impl World {
        fn new(head: u64, aggs: Vec<Agg>) -> Self {
            Self {
                fork: Fork::Electra,
                empty: vec![],
                no_body: vec![],
                head,
                aggs,
                covered: None,
            }
        }

        fn covering(mut self, slots: &[u64]) -> Self {
            self.covered = Some(slots.to_vec());
            self
        }

        fn judge(&self, watched: &[u64]) -> Result<Vec<AttestationVerdict>, AnalysisError> {
            let spec = spec(self.fork);
            let slots = || (8..=self.head).filter(|s| !self.empty.contains(s));
            let chain = CanonicalChain::new(
                Slot(8),
                Slot(self.head),
                Some(header(7)),
                slots().map(header),
            );
            let blocks: Vec<Block> = slots()
                .filter(|s| *s > 8 && !self.no_body.contains(s))
                .map(|s| Block {
                    header: header(s),
                    fork: self.fork,
                    attestations: self
                        .aggs
                        .iter()
                        .filter(|a| a.block == s)
                        .map(|a| a.build(&spec))
                        .collect(),
                    sync_committee_bits: None,
                    proposer_slashings: vec![],
                    attester_slashings: vec![],
                    voluntary_exits: vec![],
                })
                .collect();
            // Newest first: the caller owes no order, the first inclusion
            // must still be the lowest slot.
            let mut blocks = blocks;
            blocks.reverse();
            for a in &self.aggs {
                assert!(
                    blocks.iter().any(|b| b.header.slot.0 == a.block),
                    "no block {}",
                    a.block
                );
            }
            let (committees, coverage) = match &self.covered {
                None => (committees(), Coverage::Epoch),
                Some(slots) => (
                    committees()
                        .into_iter()
                        .filter(|c| slots.contains(&c.slot.0))
                        .collect(),
                    Coverage::Slots(slots.iter().map(|s| Slot(*s)).collect()),
                ),
            };
            let mut registry: HashMap<_, _> = (0..2000)
                .map(|v| (ValidatorIndex(v), info(v, 0, u64::MAX)))
                .collect();
            registry.insert(ValidatorIndex(20), info(20, 2, u64::MAX)); // activates later
            registry.insert(ValidatorIndex(21), info(21, 0, 1)); // exited at epoch 1
            registry.remove(&ValidatorIndex(22));
            let watched: Vec<_> = watched.iter().map(|v| ValidatorIndex(*v)).collect();
            judge_attestations(&AttestationInputs {
                spec: &spec,
                epoch: EPOCH,
                committees: &committees,
                coverage: &coverage,
                watched: &watched,
                registry: &registry,
                blocks: &blocks,
                chain: &chain,
                head_slot: Slot(self.head),
            })
        }
    }

    /// What a row expects: the status and, when included, the first
    /// inclusion slot, raw delay, lateness and head/target correctness.
    #[derive(Debug, PartialEq)]
    struct Want {
        status: AttestationStatus,
        duty: Option<u64>,
        included: Option<(u64, u64, bool, bool, bool)>,
    }

    fn included(duty: u64, slot: u64, delay: u64, late: bool, head: bool, target: bool) -> Want {
        Want {
            status: AttestationStatus::Included,
            duty: Some(duty),
            included: Some((slot, delay, late, head, target)),
        }
    }

    fn not_included(status: AttestationStatus, duty: Option<u64>) -> Want {
        Want {
            status,
            duty,
            included: None,
        }
    }

    fn seen(v: &AttestationVerdict) -> Want {
        Want {
            status: v.status,
            duty: v.duty_slot.map(|s| s.0),
            included: v.inclusion_slot.map(|s| {
                assert_eq!(v.source_correct, Some(true));
                (
                    s.0,
                    v.inclusion_delay.unwrap(),
                    v.late.unwrap(),
                    v.head_correct.unwrap(),
                    v.target_correct.unwrap(),
                )
            }),
        }
    }

    use AttestationStatus::*;

    #[test]
    fn attestation_verdicts_follow_the_spec_rules() {
        let with = |mut w: World, f: &dyn Fn(&mut World)| {
            f(&mut w);
            w
        };
        let cases: Vec<(&str, World, u64, Want)> = vec![
            (
                "electra aggregate, first member, next slot",
                World::new(12, vec![agg(9, 8, &[0, 1, 2, 3], &[0])]),
                0,
                included(8, 9, 1, false, true, true),
            ),
            (
                "pre-electra attestation maps data.index to the committee",
                with(World::new(12, vec![agg(9, 8, &[1], &[1]).phase0()]), &|w| {
                    w.fork = Fork::Deneb
                }),
                5,
                included(8, 9, 1, false, true, true),
            ),
            (
                "pre-electra attestation of another committee is not this validator's",
                with(World::new(12, vec![agg(9, 8, &[0], &[1]).phase0()]), &|w| {
                    w.fork = Fork::Deneb
                }),
                5,
                not_included(Pending, Some(8)),
            ),
            (
                "electra aggregate over committees 0 and 2: bit 5 is committee 2 position 1",
                World::new(12, vec![agg(9, 8, &[0, 2], &[5])]),
                9,
                included(8, 9, 1, false, true, true),
            ),
            (
                "electra aggregate over committees 0 and 2 says nothing of committee 1",
                World::new(12, vec![agg(9, 8, &[0, 2], &[5])]),
                5,
                not_included(Pending, Some(8)),
            ),
            (
                "last bit of committee 0 is its last member",
                World::new(12, vec![agg(9, 8, &[0, 1], &[3])]),
                3,
                included(8, 9, 1, false, true, true),
            ),
            (
                "last bit of committee 0 is not committee 1's first member",
                World::new(12, vec![agg(9, 8, &[0, 1], &[3])]),
                4,
                not_included(Pending, Some(8)),
            ),
            (
                "first bit after committee 0 is committee 1's first member",
                World::new(12, vec![agg(9, 8, &[0, 1], &[4])]),
                4,
                included(8, 9, 1, false, true, true),
            ),
            (
                "the same vote in two blocks counts at the first",
                World::new(
                    14,
                    vec![
                        agg(12, 10, &[0], &[0]),
                        agg(11, 10, &[0, 1], &[0]),
                        agg(11, 10, &[0], &[0]),
                    ],
                ),
                32,
                included(10, 11, 1, false, true, true),
            ),
            (
                "empty slots before the inclusion do not make it late",
                with(World::new(14, vec![agg(11, 8, &[0], &[0])]), &|w| {
                    w.empty = vec![9, 10]
                }),
                0,
                included(8, 11, 3, false, true, true),
            ),
            (
                "inclusion after a canonical block that left the vote out is late",
                World::new(14, vec![agg(11, 8, &[0], &[0])]),
                0,
                included(8, 11, 3, true, true, true),
            ),
            (
                "head naming an older block than the canonical one is wrong",
                World::new(14, vec![agg(10, 9, &[0], &[0]).head(8)]),
                16,
                included(9, 10, 1, false, false, true),
            ),
            (
                "head naming the last block before an empty duty slot is right",
                with(World::new(14, vec![agg(10, 9, &[0], &[0]).head(8)]), &|w| {
                    w.empty = vec![9]
                }),
                16,
                included(9, 10, 1, false, true, true),
            ),
            (
                "target naming another block than the epoch's first is wrong",
                World::new(14, vec![agg(10, 9, &[0], &[0]).target(7)]),
                16,
                included(9, 10, 1, false, true, false),
            ),
            (
                "empty first slot: the target is the block before the epoch",
                with(
                    World::new(14, vec![agg(10, 9, &[0], &[0]).target(7)]),
                    &|w| w.empty = vec![8],
                ),
                16,
                included(9, 10, 1, false, true, true),
            ),
            (
                "deneb window still open one slot before the end of the next epoch",
                World::new(22, vec![]),
                0,
                not_included(Pending, Some(8)),
            ),
            (
                "deneb window closed at the end of the next epoch",
                World::new(23, vec![]),
                0,
                not_included(Missed, Some(8)),
            ),
            (
                "deneb window is the same for the epoch's last slot",
                World::new(22, vec![]),
                127,
                not_included(Pending, Some(15)),
            ),
            (
                "a vote included in the last slot of the window counts",
                World::new(23, vec![agg(23, 15, &[3], &[3])]),
                127,
                included(15, 23, 8, true, true, true),
            ),
            (
                "capella window: 8 slots (SLOTS_PER_EPOCH) after the vote, still open",
                with(World::new(15, vec![]), &|w| w.fork = Fork::Capella),
                0,
                not_included(Pending, Some(8)),
            ),
            (
                "capella window: closed 8 slots after the vote",
                with(World::new(16, vec![]), &|w| w.fork = Fork::Capella),
                0,
                not_included(Missed, Some(8)),
            ),
            (
                "unset bits are never a miss while the window is open",
                World::new(12, vec![agg(9, 8, &[0], &[1, 2, 3])]),
                0,
                not_included(Pending, Some(8)),
            ),
            (
                "votes of another epoch are ignored, even without their committees",
                World::new(20, vec![agg(17, 16, &[0], &[0])]),
                0,
                not_included(Pending, Some(8)),
            ),
            (
                "not yet active: inactive, never missed",
                World::new(30, vec![]),
                20,
                not_included(Inactive, None),
            ),
            (
                "exited at the epoch: inactive",
                World::new(30, vec![]),
                21,
                not_included(Inactive, None),
            ),
            (
                "no registry entry: unknown",
                World::new(30, vec![]),
                22,
                not_included(Unknown, Some(9)),
            ),
            (
                "active but in no committee: unknown",
                World::new(30, vec![]),
                1000,
                not_included(Unknown, None),
            ),
            (
                "window closed but a canonical body is missing: unknown, not missed",
                with(World::new(30, vec![]), &|w| w.no_body = vec![12]),
                0,
                not_included(Unknown, Some(8)),
            ),
        ];
        for (name, world, v, want) in cases {
            let verdicts = world.judge(&[v]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(verdicts.len(), 1, "{name}");
            assert_eq!(verdicts[0].validator_index, ValidatorIndex(v), "{name}");
            assert_eq!(verdicts[0].epoch, EPOCH, "{name}");
            assert_eq!(seen(&verdicts[0]), want, "{name}");
            let has_reason = verdicts[0].reason.is_some();
            assert_eq!(has_reason, want.status == Unknown, "{name}: reason");
        }
    }

    /// Committees of some slots only: votes of the other slots are skipped
    /// (even ones that would not fit), votes of a covered slot are checked
    /// as strictly as with the whole epoch, and a watched validator whose
    /// slot was not read is never judged missed.
    #[test]
    fn coverage_of_some_slots_skips_only_the_others() {
        // Validator 0 sits at slot 8, validator 32 at slot 10.
        let misfit_at_10 = || agg(11, 10, &[0, 9], &[0]);
        let vote_of_0 = || agg(9, 8, &[0], &[0]);
        let late = 30; // every window of epoch 1 closed
        type Row = (&'static str, World, u64, Result<Want, ()>);
        let cases: Vec<Row> = vec![
            (
                "whole epoch: a misfit at any slot is an error",
                World::new(late, vec![vote_of_0(), misfit_at_10()]),
                0,
                Err(()),
            ),
            (
                "slot 8 only: the misfit at slot 10 is skipped",
                World::new(late, vec![vote_of_0(), misfit_at_10()]).covering(&[8]),
                0,
                Ok(included(8, 9, 1, false, true, true)),
            ),
            (
                "slot 8 only: a misfit at slot 8 is still an error",
                World::new(late, vec![agg(9, 8, &[0], &[0]).len(3)]).covering(&[8]),
                0,
                Err(()),
            ),
            (
                "slot 8 only: a validator of slot 10 is unknown, not missed",
                World::new(late, vec![vote_of_0()]).covering(&[8]),
                32,
                Ok(not_included(Unknown, None)),
            ),
            (
                "slot 10 covered: its validator's absence is a miss",
                World::new(late, vec![vote_of_0()]).covering(&[10]),
                32,
                Ok(not_included(Missed, Some(10))),
            ),
            (
                "slot 10 covered: its validator's vote counts",
                World::new(late, vec![agg(12, 10, &[0], &[0])]).covering(&[10]),
                32,
                Ok(included(10, 12, 2, true, true, true)),
            ),
        ];
        for (name, world, v, want) in cases {
            let got = world.judge(&[v]);
            match want {
                Err(()) => assert!(
                    matches!(got, Err(AnalysisError::AttestationShape { .. })),
                    "{name}: {got:?}"
                ),
                Ok(want) => {
                    let verdicts = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(seen(&verdicts[0]), want, "{name}");
                }
            }
        }
    }

    #[test]
    fn shape_contradictions_are_errors() {
        let cases: Vec<(&str, Agg)> = vec![
            (
                "pre-electra bitlist longer than the committee",
                agg(9, 8, &[0], &[0]).phase0().len(5),
            ),
            (
                "pre-electra bitlist shorter than the committee",
                agg(9, 8, &[0], &[0]).phase0().len(3),
            ),
            (
                "pre-electra committee index that does not exist",
                agg(9, 8, &[4], &[0]).phase0(),
            ),
            (
                "electra bitlist not the sum of committees 0 and 2",
                agg(9, 8, &[0, 2], &[0]).len(4),
            ),
            (
                "electra committee bit that names no committee",
                agg(9, 8, &[0, 9], &[0]),
            ),
            ("vote included at its own slot", agg(9, 9, &[0], &[0])),
        ];
        for (name, a) in cases {
            let got = World::new(12, vec![a]).judge(&[0]);
            assert!(
                matches!(
                    got,
                    Err(AnalysisError::AttestationShape {
                        block_slot: Slot(9),
                        ..
                    })
                ),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn a_vote_of_the_last_capella_epoch_gets_the_deneb_window() {
        // Deneb at epoch 2: blocks of epoch 2 may still include votes of
        // epoch 1 until slot 23 (EIP-7045 drops the 32-slot limit).
        let mut spec = spec(Fork::Capella);
        spec.forks.push((Fork::Deneb, Epoch(2)));
        assert_eq!(inclusion_window_end(&spec, Epoch(1), Slot(8)), Slot(23));
        assert_eq!(inclusion_window_end(&spec, Epoch(0), Slot(3)), Slot(11));
    }

    #[test]
    fn blocks_off_the_canonical_chain_are_no_evidence() {
        let spec = spec(Fork::Electra);
        let chain = CanonicalChain::new(Slot(8), Slot(12), Some(header(7)), (8..=12).map(header));
        let mut orphan = header(9);
        orphan.root = Root([0xee; 32]);
        let blocks = vec![Block {
            header: orphan,
            fork: Fork::Electra,
            attestations: vec![agg(9, 8, &[0], &[0]).build(&spec)],
            sync_committee_bits: None,
            proposer_slashings: vec![],
            attester_slashings: vec![],
            voluntary_exits: vec![],
        }];
        let registry: HashMap<_, _> = [(ValidatorIndex(0), info(0, 0, u64::MAX))].into();
        let verdicts = judge_attestations(&AttestationInputs {
            spec: &spec,
            epoch: EPOCH,
            committees: &committees(),
            coverage: &Coverage::Epoch,
            watched: &[ValidatorIndex(0)],
            registry: &registry,
            blocks: &blocks,
            chain: &chain,
            head_slot: Slot(12),
        })
        .unwrap();
        assert_eq!(verdicts[0].status, Pending);
        assert_eq!(verdicts[0].inclusion_slot, None);
    }

    #[test]
    fn each_watched_validator_gets_one_verdict_in_order() {
        let world = World::new(12, vec![agg(9, 8, &[0, 1], &[0, 4])]);
        let got = world.judge(&[4, 1000, 0, 4, 20]).unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|v| (v.validator_index.0, v.status))
            .collect();
        assert_eq!(
            summary,
            vec![
                (4, Included),
                (1000, Unknown),
                (0, Included),
                (20, Inactive)
            ]
        );
    }

    /// Mainnet scale: 2^20 validators in 64 committees × 32 slots, 100k
    /// watched, 64 blocks of 8 full-slot aggregates. Prints the time; run
    /// with `cargo test --release --lib mainnet_scale -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: prints timings, asserts only the counts"]
    fn mainnet_scale_judgement_timing() {
        use std::time::Instant;
        const N: u64 = 1 << 20;
        const SLOTS: u64 = 32;
        const COMMITTEES: u64 = 64;
        const SIZE: u64 = N / (SLOTS * COMMITTEES);
        let spec = ChainSpec::test_spec(SLOTS, 12_000, 0);
        let epoch = Epoch(10);
        let start = spec.start_slot(epoch).0;
        let end = spec.inclusion_window_end(epoch).0;
        // An odd multiplier permutes 0..2^20: committees look shuffled.
        let seat = |i: u64| ValidatorIndex(i.wrapping_mul(2_654_435_761) % N);

        let t = Instant::now();
        let mut committees = Vec::new();
        for s in 0..SLOTS {
            for k in 0..COMMITTEES {
                let base = (s * COMMITTEES + k) * SIZE;
                committees.push(Committee {
                    slot: Slot(start + s),
                    index: k,
                    validators: (base..base + SIZE).map(seat).collect(),
                });
            }
        }
        let watched: Vec<_> = (0..N).step_by(10).map(ValidatorIndex).collect();
        let registry: HashMap<_, _> = watched
            .iter()
            .map(|v| (*v, info(v.0, 0, u64::MAX)))
            .collect();
        let headers: Vec<_> = (start..=end + 1)
            .map(|s| BlockHeader {
                root: Root([(s % 251) as u8; 32]),
                slot: Slot(s),
                proposer_index: ValidatorIndex(s),
                parent_root: Root::ZERO,
                state_root: Root::ZERO,
            })
            .collect();
        let chain = CanonicalChain::new(Slot(start), Slot(end + 1), None, headers.iter().copied());
        let all = BitVector::from_bits(64, 0..64);
        let len = (COMMITTEES * SIZE) as usize;
        let blocks: Vec<Block> = headers[1..]
            .iter()
            .map(|h| {
                // Each block carries 8 aggregates of a slot of the epoch:
                // the previous slot during the epoch, a late copy after it.
                let vote_slot = start + (h.slot.0 - start - 1) % SLOTS;
                let attestations = (0..8)
                    .map(|a| Attestation {
                        aggregation_bits: BitList::from_bits(len, (0..len).filter(|i| i % 8 != a)),
                        committee_bits: Some(all.clone()),
                        data: AttestationData {
                            slot: Slot(vote_slot),
                            index: 0,
                            beacon_block_root: Root::ZERO,
                            source: Checkpoint {
                                epoch: Epoch(9),
                                root: Root::ZERO,
                            },
                            target: Checkpoint {
                                epoch,
                                root: Root::ZERO,
                            },
                        },
                    })
                    .collect();
                Block {
                    header: *h,
                    fork: Fork::Electra,
                    attestations,
                    sync_committee_bits: None,
                    proposer_slashings: vec![],
                    attester_slashings: vec![],
                    voluntary_exits: vec![],
                }
            })
            .collect();
        println!("built inputs in {:?}", t.elapsed());

        let t = Instant::now();
        let verdicts = judge_attestations(&AttestationInputs {
            spec: &spec,
            epoch,
            committees: &committees,
            coverage: &Coverage::Epoch,
            watched: &watched,
            registry: &registry,
            blocks: &blocks,
            chain: &chain,
            head_slot: Slot(end + 1),
        })
        .unwrap();
        println!(
            "judged {} watched of {N} validators over {} blocks in {:?}",
            watched.len(),
            blocks.len(),
            t.elapsed()
        );
        assert_eq!(verdicts.len(), watched.len());
        assert!(verdicts.iter().all(|v| v.status == Included));
    }
}

/// Real data: a Lighthouse node on Sepolia after Electra (see the fixture's
/// README). The node computed the committees, the blocks and the liveness
/// answer independently, so a wrong mapping cannot agree with itself.
#[cfg(test)]
mod sepolia_fixture {
    use super::*;
    use crate::chain::{BitList, BitVector, BlockHeader, Checkpoint, Fork, Pubkey, Root};
    use serde_json::Value;

    /// `../shared` beside the project's root, as in CI; `../../shared`
    /// from a worktree one level deeper.
    fn cassette() -> std::path::PathBuf {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rel = "shared/fixtures/lighthouse-sepolia-electra/cassette.yaml";
        let near = root.join("..").join(rel);
        if near.exists() {
            near
        } else {
            root.join("../..").join(rel)
        }
    }

    fn num(v: &Value) -> u64 {
        v.as_str().unwrap().parse().unwrap()
    }

    fn root(v: &Value) -> Root {
        v.as_str().unwrap().parse().unwrap()
    }

    fn bytes(v: &Value) -> Vec<u8> {
        crate::chain::decode_hex(v.as_str().unwrap()).unwrap()
    }

    /// `(uri path, request body, response JSON)` of every 200 answer.
    fn exchanges() -> Vec<(String, String, Value)> {
        let text = std::fs::read_to_string(cassette()).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        doc["interactions"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|i| i["response"]["status"]["code"].as_u64() == Some(200))
            .filter_map(|i| {
                let uri = i["request"]["uri"].as_str()?;
                let path = uri.split_once("5052").map(|(_, p)| p)?.to_owned();
                let body = i["request"]["body"].as_str().unwrap_or("").to_owned();
                let json = serde_json::from_str(i["response"]["body"]["string"].as_str()?).ok()?;
                Some((path, body, json))
            })
            .collect()
    }

    fn attestation(a: &Value) -> Attestation {
        let d = &a["data"];
        let checkpoint = |c: &Value| Checkpoint {
            epoch: Epoch(num(&c["epoch"])),
            root: root(&c["root"]),
        };
        Attestation {
            aggregation_bits: BitList::from_bytes(bytes(&a["aggregation_bits"])).unwrap(),
            committee_bits: Some(BitVector::from_bytes(bytes(&a["committee_bits"]), 64).unwrap()),
            data: AttestationData {
                slot: Slot(num(&d["slot"])),
                index: num(&d["index"]),
                beacon_block_root: root(&d["beacon_block_root"]),
                source: checkpoint(&d["source"]),
                target: checkpoint(&d["target"]),
            },
        }
    }

    #[test]
    fn included_votes_are_live_on_sepolia() {
        let spec = ChainSpec::test_spec(32, 12_000, 1_655_733_600);
        let epoch = Epoch(240_249);
        let mut committees = Vec::new();
        let mut headers = Vec::new();
        let mut atts: HashMap<u64, Vec<Attestation>> = HashMap::new();
        let mut live = HashSet::new();
        for (path, _, json) in exchanges() {
            let parts: Vec<&str> = path.split(['/', '?']).collect();
            if path.contains("/committees") {
                for c in json["data"].as_array().unwrap() {
                    committees.push(Committee {
                        slot: Slot(num(&c["slot"])),
                        index: num(&c["index"]),
                        validators: c["validators"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| ValidatorIndex(num(v)))
                            .collect(),
                    });
                }
            } else if path.starts_with("/eth/v2/beacon/blocks/") {
                let slot: u64 = parts[5].parse().unwrap();
                let list = json["data"].as_array().unwrap();
                atts.insert(slot, list.iter().map(attestation).collect());
            } else if path.starts_with("/eth/v1/beacon/headers/") && parts[5] != "finalized" {
                let m = &json["data"]["header"]["message"];
                headers.push(BlockHeader {
                    root: root(&json["data"]["root"]),
                    slot: Slot(num(&m["slot"])),
                    proposer_index: ValidatorIndex(num(&m["proposer_index"])),
                    parent_root: root(&m["parent_root"]),
                    state_root: root(&m["state_root"]),
                });
            } else if path == "/eth/v1/validator/liveness/240249" {
                for l in json["data"].as_array().unwrap() {
                    if l["is_live"].as_bool().unwrap() {
                        live.insert(ValidatorIndex(num(&l["index"])));
                    }
                }
            }
        }
        // Committees were recorded from slot 7687982 on; votes of earlier
        // slots cannot be mapped with this recording and are left out.
        let first = committees.iter().map(|c| c.slot).min().unwrap();
        let last = Slot(*atts.keys().max().unwrap());
        headers.retain(|h| h.slot >= first);
        // The chain starts at the first recorded header: an unrecorded slot
        // must read as unknown, not as empty.
        let chain_first = headers.iter().map(|h| h.slot).min().unwrap();
        let chain = CanonicalChain::new(chain_first, last, None, headers.iter().copied());
        let blocks: Vec<Block> = headers
            .iter()
            .map(|h| Block {
                header: *h,
                fork: Fork::Electra,
                attestations: atts
                    .get(&h.slot.0)
                    .into_iter()
                    .flatten()
                    .filter(|a| a.data.slot >= first)
                    .cloned()
                    .collect(),
                sync_committee_bits: None,
                proposer_slashings: vec![],
                attester_slashings: vec![],
                voluntary_exits: vec![],
            })
            .collect();
        let watched: Vec<ValidatorIndex> = committees
            .iter()
            .filter(|c| spec.epoch_of(c.slot) == epoch)
            .flat_map(|c| c.validators.iter().copied())
            .collect();
        let registry: HashMap<_, _> = watched
            .iter()
            .map(|v| {
                let info = ValidatorInfo {
                    index: *v,
                    pubkey: Pubkey([0; 48]),
                    balance: crate::chain::Gwei(0),
                    effective_balance: crate::chain::Gwei(0),
                    status: crate::chain::ValidatorStatus::ActiveOngoing,
                    slashed: false,
                    activation_epoch: Epoch(0),
                    exit_epoch: Epoch(u64::MAX),
                };
                (*v, info)
            })
            .collect();
        let verdicts = judge_attestations(&AttestationInputs {
            spec: &spec,
            epoch,
            committees: &committees,
            coverage: &Coverage::Epoch,
            watched: &watched,
            registry: &registry,
            blocks: &blocks,
            chain: &chain,
            head_slot: last,
        })
        .unwrap();

        let included: Vec<_> = verdicts
            .iter()
            .filter(|v| v.status == AttestationStatus::Included)
            .collect();
        println!(
            "{} watched, {} included, {} live",
            watched.len(),
            included.len(),
            live.len()
        );
        assert!(included.len() > watched.len() / 2, "too few inclusions");
        for v in &included {
            assert!(
                live.contains(&v.validator_index),
                "{} included but not live",
                v.validator_index
            );
            assert!(v.inclusion_delay.unwrap() >= 1);
            // The recording starts inside the epoch: its first slot, and
            // so the target root, is not covered.
            assert_eq!(v.target_correct, None);
            assert_eq!(v.head_correct.is_some(), v.duty_slot >= Some(chain_first));
        }
        // Nothing can be missed: the window ends at slot 7688031.
        assert!(verdicts.iter().all(|v| matches!(
            v.status,
            AttestationStatus::Included | AttestationStatus::Pending
        )));
    }
}
