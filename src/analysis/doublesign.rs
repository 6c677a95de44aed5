//! Double-signing evidence against watched validators: two different votes
//! for one target epoch, two different blocks for one slot, or a slashing
//! operation that names them.
//!
//! Owns: deciding, from blocks, committees and block headers, which watched
//! validator signed twice. Must not: do IO, read the clock, or map bits of
//! validators nobody watches (the bit mapping is `attestations`', reused, so
//! that both judge the same aggregates the same way).
//!
//! A double vote is evidence even when the chain cannot slash it yet: the
//! validator client (or a second one running the same keys) is signing
//! conflicting messages, and the next one may be slashed.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::attestations::{committee_views, watched_attesters};
use crate::chain::{
    Attestation, AttestationData, AttesterSlashing, Block, BlockHeader, ChainSpec, Committee,
    Epoch, ProposerSlashing, Root, Slot, ValidatorIndex,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoubleSignKind {
    /// Two different `AttestationData` for one target epoch.
    DoubleVote,
    /// Two different blocks for one slot by the same proposer.
    DoubleProposal,
    /// Named in both attestations of an attester slashing.
    AttesterSlashing,
    /// The proposer of a proposer slashing.
    ProposerSlashing,
}

impl DoubleSignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoubleVote => "double_vote",
            Self::DoubleProposal => "double_proposal",
            Self::AttesterSlashing => "attester_slashing",
            Self::ProposerSlashing => "proposer_slashing",
        }
    }
}

/// One piece of double-signing evidence against one validator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DoubleSignEvidence {
    pub validator_index: ValidatorIndex,
    pub kind: DoubleSignKind,
    /// The target epoch of the votes, or the epoch of the slot.
    pub epoch: Epoch,
    /// The vote's slot, the proposal's slot, or where the evidence was seen.
    pub slot: Slot,
    pub detail: String,
}

impl DoubleSignEvidence {
    /// What makes two pieces of evidence the same incident.
    pub fn key(&self) -> (ValidatorIndex, DoubleSignKind, Epoch) {
        (self.validator_index, self.kind, self.epoch)
    }
}

/// Watched validators whose votes for target `epoch` appear in `blocks`
/// with two different `AttestationData`. The same vote carried by several
/// aggregates or blocks is one vote; votes for other targets are left to
/// their own epoch. Aggregates that do not fit `committees` are skipped
/// (the attestation verdicts report them). One piece of evidence per
/// validator, from the first two different votes by block slot.
pub fn double_votes(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: &[Committee],
    blocks: &[Block],
    watched: &[ValidatorIndex],
) -> Vec<DoubleSignEvidence> {
    let blocks: Vec<&Block> = blocks.iter().collect();
    double_votes_seen(spec, epoch, committees, &blocks, &[], watched)
}

/// `double_votes` with the node's attestation pool too: votes waiting for
/// inclusion (or never included) count as much as votes in blocks, since a
/// signed vote is the evidence, not its inclusion (issue 6: "seen in
/// blocks, or in the node's event stream / pool before inclusion"). Blocks
/// are compared first, by slot, then the pool aggregates in their order.
pub fn double_votes_seen(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: &[Committee],
    blocks: &[&Block],
    pool: &[Attestation],
    watched: &[ValidatorIndex],
) -> Vec<DoubleSignEvidence> {
    let mut ordered: Vec<&Block> = blocks.to_vec();
    ordered.sort_by_key(|b| b.header.slot);
    let seen = ordered
        .into_iter()
        .flat_map(|b| {
            b.attestations
                .iter()
                .map(move |a| (Where::Block(b.header.slot), a))
        })
        .chain(pool.iter().map(|a| (Where::Pool, a)));
    conflicting_votes(spec, epoch, committees, seen, watched)
}

/// Where a vote was seen, for the evidence's detail.
#[derive(Clone, Copy)]
enum Where {
    Block(Slot),
    Pool,
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Block(s) => write!(f, "block {}", s.0),
            Self::Pool => f.write_str("pool"),
        }
    }
}

fn conflicting_votes<'a>(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: &[Committee],
    seen: impl Iterator<Item = (Where, &'a Attestation)>,
    watched: &[ValidatorIndex],
) -> Vec<DoubleSignEvidence> {
    let mut unique = HashSet::with_capacity(watched.len());
    let targets: Vec<ValidatorIndex> = watched
        .iter()
        .copied()
        .filter(|v| unique.insert(*v))
        .collect();
    let position: HashMap<ValidatorIndex, usize> =
        targets.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let (_, views) = committee_views(spec, epoch, committees, &position, targets.len());

    let mut first: Vec<Option<(Where, &AttestationData)>> = vec![None; targets.len()];
    let mut found: BTreeMap<usize, DoubleSignEvidence> = BTreeMap::new();
    for (at, att) in seen {
        let data = &att.data;
        if data.target.epoch != epoch || spec.epoch_of(data.slot) != epoch {
            continue;
        }
        let Ok(attesters) = watched_attesters(att, &views) else {
            continue;
        };
        for w in attesters {
            match first[w] {
                None => first[w] = Some((at, data)),
                // Before Electra `data.index` names the committee, from Electra
                // on it is 0: either way one validator's two copies of one vote
                // carry the same index, so all fields are compared.
                Some((seen_in, earlier)) if earlier != data && !found.contains_key(&w) => {
                    found.insert(
                        w,
                        DoubleSignEvidence {
                            validator_index: targets[w],
                            kind: DoubleSignKind::DoubleVote,
                            epoch,
                            slot: data.slot,
                            detail: format!(
                                "two votes for target epoch {}: head {} target {} ({seen_in}) \
                                 and head {} target {} ({at})",
                                epoch.0,
                                earlier.beacon_block_root,
                                earlier.target.root,
                                data.beacon_block_root,
                                data.target.root,
                            ),
                        },
                    );
                }
                Some(_) => {}
            }
        }
    }
    found.into_values().collect()
}

/// Watched proposers with two different block roots for one slot among
/// `headers` (canonical and non-canonical blocks alike). Only headers whose
/// proposer was read from the block itself may be passed: a proposer
/// inferred from duties is no evidence of signing.
pub fn double_proposals(
    spec: &ChainSpec,
    headers: &[BlockHeader],
    watched: &[ValidatorIndex],
) -> Vec<DoubleSignEvidence> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let mut roots: BTreeMap<(Slot, ValidatorIndex), Vec<Root>> = BTreeMap::new();
    for h in headers
        .iter()
        .filter(|h| watched.contains(&h.proposer_index))
    {
        let r = roots.entry((h.slot, h.proposer_index)).or_default();
        if !r.contains(&h.root) {
            r.push(h.root);
        }
    }
    roots
        .into_iter()
        .filter(|(_, r)| r.len() >= 2)
        .map(|((slot, v), r)| DoubleSignEvidence {
            validator_index: v,
            kind: DoubleSignKind::DoubleProposal,
            epoch: spec.epoch_of(slot),
            slot,
            detail: format!(
                "{} blocks for slot {}: {}",
                r.len(),
                slot.0,
                r.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect()
}

/// Slashing operations in `blocks` that name watched validators. The
/// epoch is the votes' target epoch (attester) or the epoch of the doubly
/// proposed slot (proposer), so that the same evidence seen earlier on the
/// event stream is the same incident.
pub fn slashing_operations(
    spec: &ChainSpec,
    blocks: &[Block],
    watched: &[ValidatorIndex],
) -> Vec<DoubleSignEvidence> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let mut out: Vec<DoubleSignEvidence> = Vec::new();
    for block in blocks {
        let at = format!("block {}", block.header.slot.0);
        slashings_naming(
            spec,
            &block.attester_slashings,
            &block.proposer_slashings,
            &watched,
            block.header.slot,
            &at,
            &mut out,
        );
    }
    out
}

/// Slashing operations waiting in a node's pools that name watched
/// validators: the backup of the event stream (a node that drops the
/// stream or restarts still holds them). Same keys as `slashing_operations`,
/// so the pool, the stream and a later block make one incident. `seen_at`
/// is the slot at which the pools were read.
pub fn pool_slashings(
    spec: &ChainSpec,
    attester: &[AttesterSlashing],
    proposer: &[ProposerSlashing],
    watched: &[ValidatorIndex],
    seen_at: Slot,
) -> Vec<DoubleSignEvidence> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let mut out = Vec::new();
    slashings_naming(
        spec, attester, proposer, &watched, seen_at, "pool", &mut out,
    );
    out
}

fn slashings_naming(
    spec: &ChainSpec,
    attester: &[AttesterSlashing],
    proposer: &[ProposerSlashing],
    watched: &HashSet<ValidatorIndex>,
    seen_at: Slot,
    at: &str,
    out: &mut Vec<DoubleSignEvidence>,
) {
    let mut push = |e: DoubleSignEvidence| {
        if !out.iter().any(|o| o.key() == e.key()) {
            out.push(e);
        }
    };
    for s in proposer {
        if watched.contains(&s.proposer_index) {
            push(DoubleSignEvidence {
                validator_index: s.proposer_index,
                kind: DoubleSignKind::ProposerSlashing,
                epoch: spec.epoch_of(s.slot),
                slot: s.slot,
                detail: format!("proposer slashing for slot {} in {at}", s.slot.0),
            });
        }
    }
    for s in attester {
        for v in s.slashed().into_iter().filter(|v| watched.contains(v)) {
            push(DoubleSignEvidence {
                validator_index: v,
                kind: DoubleSignKind::AttesterSlashing,
                epoch: s.target_epoch,
                slot: seen_at,
                detail: format!(
                    "attester slashing for target epoch {} in {at}",
                    s.target_epoch.0
                ),
            });
        }
    }
}

/// The most committees of one slot read one by one from a pool: beyond it
/// (a large watched set sits in most committees; mainnet has up to 64 per
/// slot) the whole slot is read in one request, which costs less than
/// many. Four keeps small sets to a few small answers.
pub const POOL_COMMITTEE_QUERIES_PER_SLOT: usize = 4;

/// PURE: which slices of a node's attestation pool to read so that every
/// watched validator with a duty at one of `slots` is covered: `(slot,
/// Some(committee index))` per committee with a watched member, or `(slot,
/// None)` for the whole slot when more than
/// `POOL_COMMITTEE_QUERIES_PER_SLOT` committees have one. Slots where no
/// watched validator has a duty are not read at all. `committees` are
/// those of the slots' epochs.
pub fn pool_queries(
    slots: &[Slot],
    committees: &[Committee],
    watched: &[ValidatorIndex],
) -> Vec<(Slot, Option<u64>)> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let wanted: HashSet<Slot> = slots.iter().copied().collect();
    let mut by_slot: BTreeMap<Slot, Vec<u64>> = BTreeMap::new();
    for c in committees {
        if wanted.contains(&c.slot) && c.validators.iter().any(|v| watched.contains(v)) {
            let ks = by_slot.entry(c.slot).or_default();
            if !ks.contains(&c.index) {
                ks.push(c.index);
            }
        }
    }
    let mut out = Vec::new();
    for (slot, mut ks) in by_slot {
        if ks.len() > POOL_COMMITTEE_QUERIES_PER_SLOT {
            out.push((slot, None));
        } else {
            ks.sort_unstable();
            out.extend(ks.into_iter().map(|k| (slot, Some(k))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{BitList, Checkpoint, Fork};

    // 8 slots per epoch; epoch 1 = slots 8..=15; one committee of four per
    // slot: validator v sits at slot 8 + v / 4, position v % 4.
    fn spec() -> ChainSpec {
        let mut spec = ChainSpec::test_spec(8, 2000, 0);
        spec.forks.retain(|(f, _)| *f <= Fork::Deneb);
        spec
    }

    fn committees() -> Vec<Committee> {
        (8..16u64)
            .map(|s| Committee {
                slot: Slot(s),
                index: 0,
                validators: (0..4).map(|j| ValidatorIndex((s - 8) * 4 + j)).collect(),
            })
            .collect()
    }

    fn vote(slot: u64, head: u8, target_epoch: u64, target: u8, bits: &[usize]) -> Attestation {
        Attestation {
            aggregation_bits: BitList::from_bits(4, bits.iter().copied()),
            committee_bits: None,
            data: AttestationData {
                slot: Slot(slot),
                index: 0,
                beacon_block_root: Root([head; 32]),
                source: Checkpoint {
                    epoch: Epoch(0),
                    root: Root([1; 32]),
                },
                target: Checkpoint {
                    epoch: Epoch(target_epoch),
                    root: Root([target; 32]),
                },
            },
        }
    }

    fn block(slot: u64, attestations: Vec<Attestation>) -> Block {
        Block {
            header: BlockHeader {
                root: Root([slot as u8; 32]),
                slot: Slot(slot),
                proposer_index: ValidatorIndex(100 + slot),
                parent_root: Root::ZERO,
                state_root: Root::ZERO,
            },
            fork: Fork::Deneb,
            attestations,
            sync_committee_bits: None,
            proposer_slashings: Vec::new(),
            attester_slashings: Vec::new(),
            voluntary_exits: Vec::new(),
        }
    }

    fn indices(e: &[DoubleSignEvidence]) -> Vec<u64> {
        e.iter().map(|x| x.validator_index.0).collect()
    }

    #[test]
    fn double_votes_table() {
        // Validator 1 sits at slot 8, position 1; validator 2 at position 2.
        let cases: Vec<(&str, Vec<Block>, Vec<u64>)> = vec![
            (
                "two different heads for one target",
                vec![
                    block(9, vec![vote(8, 7, 1, 7, &[1])]),
                    block(10, vec![vote(8, 9, 1, 7, &[1, 2])]),
                ],
                vec![1],
            ),
            (
                "two different target roots, one block",
                vec![block(
                    9,
                    vec![vote(8, 7, 1, 7, &[2]), vote(8, 7, 1, 8, &[2])],
                )],
                vec![2],
            ),
            (
                "the same vote twice is no double vote",
                vec![
                    block(9, vec![vote(8, 7, 1, 7, &[1])]),
                    block(10, vec![vote(8, 7, 1, 7, &[1, 2])]),
                ],
                vec![],
            ),
            (
                "a different target epoch is another epoch's vote",
                vec![
                    block(9, vec![vote(8, 7, 1, 7, &[1])]),
                    block(10, vec![vote(8, 9, 2, 7, &[1])]),
                ],
                vec![],
            ),
            (
                "unset bits are no vote",
                vec![
                    block(9, vec![vote(8, 7, 1, 7, &[1])]),
                    block(10, vec![vote(8, 9, 1, 7, &[2])]),
                ],
                vec![],
            ),
            (
                "an aggregate that fits no committee is skipped",
                vec![block(
                    9,
                    vec![vote(8, 7, 1, 7, &[1]), {
                        let mut a = vote(8, 9, 1, 7, &[1]);
                        a.aggregation_bits = BitList::from_bits(5, [1]);
                        a
                    }],
                )],
                vec![],
            ),
        ];
        let watched: Vec<ValidatorIndex> = [1, 2, 3].map(ValidatorIndex).to_vec();
        for (name, blocks, want) in cases {
            let got = double_votes(&spec(), Epoch(1), &committees(), &blocks, &watched);
            assert_eq!(indices(&got), want, "{name}");
            for e in &got {
                assert_eq!(e.kind, DoubleSignKind::DoubleVote, "{name}");
                assert_eq!((e.epoch, e.slot), (Epoch(1), Slot(8)), "{name}");
            }
        }
    }

    /// With the committees of the watched validators' slots only (what the
    /// collector reads for a few validators), their double votes are found
    /// just as with the whole epoch, and votes of other slots are skipped.
    #[test]
    fn double_votes_need_only_the_watched_validators_committees() {
        let blocks = vec![
            block(9, vec![vote(8, 7, 1, 7, &[1]), vote(12, 7, 1, 7, &[0])]),
            block(13, vec![vote(8, 9, 1, 7, &[1]), vote(12, 9, 1, 7, &[0])]),
        ];
        // Validator 1 sits at slot 8, validator 16 at slot 12.
        let watched = [ValidatorIndex(1), ValidatorIndex(16)];
        let all = double_votes(&spec(), Epoch(1), &committees(), &blocks, &watched);
        assert_eq!(indices(&all), vec![1, 16]);
        let only_8: Vec<Committee> = committees()
            .into_iter()
            .filter(|c| c.slot == Slot(8))
            .collect();
        let got = double_votes(&spec(), Epoch(1), &only_8, &blocks, &watched[..1]);
        assert_eq!(got, all[..1].to_vec());
        // Validator 16's slot was not read: nothing can be said of it.
        let got = double_votes(&spec(), Epoch(1), &only_8, &blocks, &watched);
        assert_eq!(indices(&got), vec![1]);
    }

    #[test]
    fn double_votes_ignore_unwatched_validators() {
        let blocks = vec![
            block(9, vec![vote(8, 7, 1, 7, &[0])]),
            block(10, vec![vote(8, 9, 1, 7, &[0])]),
        ];
        let got = double_votes(
            &spec(),
            Epoch(1),
            &committees(),
            &blocks,
            &[ValidatorIndex(1)],
        );
        assert!(got.is_empty());
        let got = double_votes(
            &spec(),
            Epoch(1),
            &committees(),
            &blocks,
            &[ValidatorIndex(0)],
        );
        assert_eq!(indices(&got), vec![0]);
    }

    fn electra(mut a: Attestation) -> Attestation {
        a.committee_bits = Some(crate::chain::BitVector::from_bits(4, [0]));
        a
    }

    #[test]
    fn pool_votes_are_compared_with_blocks_and_with_each_other() {
        // Validator 1 sits at slot 8, position 1; validator 2 at position 2.
        let in_block = || vec![block(9, vec![vote(8, 7, 1, 7, &[1])])];
        // (name, blocks, pool, validators with evidence)
        type Case = (&'static str, Vec<Block>, Vec<Attestation>, Vec<u64>);
        let cases: Vec<Case> = vec![
            (
                "a block vote and another head waiting in the pool",
                in_block(),
                vec![vote(8, 9, 1, 7, &[1])],
                vec![1],
            ),
            (
                "two different votes in the pool only",
                vec![],
                vec![vote(8, 7, 1, 7, &[2]), vote(8, 9, 1, 7, &[2])],
                vec![2],
            ),
            (
                "another target root in an Electra-form pool aggregate",
                in_block(),
                vec![electra(vote(8, 7, 1, 8, &[1]))],
                vec![1],
            ),
            (
                "the included vote still in the pool is one vote",
                in_block(),
                vec![vote(8, 7, 1, 7, &[1, 2])],
                vec![],
            ),
            (
                "a pool vote for another target epoch is another epoch's",
                in_block(),
                vec![vote(8, 9, 2, 7, &[1])],
                vec![],
            ),
            (
                "an unset bit in the pool is no vote",
                in_block(),
                vec![vote(8, 9, 1, 7, &[2])],
                vec![],
            ),
            (
                "a pool aggregate that fits no committee is skipped",
                in_block(),
                vec![{
                    let mut a = vote(8, 9, 1, 7, &[1]);
                    a.aggregation_bits = BitList::from_bits(3, [1]);
                    a
                }],
                vec![],
            ),
            ("an empty pool adds nothing", in_block(), vec![], vec![]),
        ];
        let watched: Vec<ValidatorIndex> = [1, 2, 3].map(ValidatorIndex).to_vec();
        for (name, blocks, pool, want) in cases {
            let blocks: Vec<&Block> = blocks.iter().collect();
            let got = double_votes_seen(&spec(), Epoch(1), &committees(), &blocks, &pool, &watched);
            assert_eq!(indices(&got), want, "{name}");
            for e in &got {
                assert_eq!(e.kind, DoubleSignKind::DoubleVote, "{name}");
                assert_eq!((e.epoch, e.slot), (Epoch(1), Slot(8)), "{name}");
                assert!(e.detail.contains("(pool)"), "{name}: {}", e.detail);
            }
        }
    }

    #[test]
    fn a_pool_double_vote_is_the_same_incident_as_the_block_one() {
        let blocks = vec![
            block(9, vec![vote(8, 7, 1, 7, &[1])]),
            block(10, vec![vote(8, 9, 1, 7, &[1])]),
        ];
        let from_blocks = double_votes(
            &spec(),
            Epoch(1),
            &committees(),
            &blocks,
            &[ValidatorIndex(1)],
        );
        let pool = [vote(8, 9, 1, 7, &[1])];
        let from_pool = double_votes_seen(
            &spec(),
            Epoch(1),
            &committees(),
            &[&blocks[0]],
            &pool,
            &[ValidatorIndex(1)],
        );
        assert_eq!(from_blocks.len(), 1);
        assert_eq!(from_pool.len(), 1);
        assert_eq!(from_blocks[0].key(), from_pool[0].key());
    }

    #[test]
    fn pool_queries_table() {
        // Two committees per slot at slots 8 and 9; validator v of slot s
        // sits in committee v % 2.
        let committees: Vec<Committee> = [8u64, 9]
            .iter()
            .flat_map(|&s| {
                (0..2u64).map(move |k| Committee {
                    slot: Slot(s),
                    index: k,
                    validators: (0..4)
                        .map(|j| ValidatorIndex((s - 8) * 8 + k + 2 * j))
                        .collect(),
                })
            })
            .collect();
        let many: Vec<Committee> = (0..(POOL_COMMITTEE_QUERIES_PER_SLOT as u64 + 1))
            .map(|k| Committee {
                slot: Slot(10),
                index: k,
                validators: vec![ValidatorIndex(100 + k)],
            })
            .collect();
        // (name, slots, watched, committees, reads)
        type Case = (
            &'static str,
            Vec<u64>,
            Vec<u64>,
            Vec<Committee>,
            Vec<(u64, Option<u64>)>,
        );
        let cases: Vec<Case> = vec![
            (
                "one watched member",
                vec![8],
                vec![2],
                committees.clone(),
                vec![(8, Some(0))],
            ),
            (
                "both committees of a slot",
                vec![8, 9],
                vec![2, 3],
                committees.clone(),
                vec![(8, Some(0)), (8, Some(1))],
            ),
            (
                "only the slots asked",
                vec![9],
                vec![2, 9],
                committees.clone(),
                vec![(9, Some(1))],
            ),
            (
                "no watched duty, no read",
                vec![8, 9],
                vec![50],
                committees.clone(),
                vec![],
            ),
            (
                "many committees: the whole slot at once",
                vec![10],
                (100..106).collect(),
                many,
                vec![(10, None)],
            ),
        ];
        for (name, slots, watched, committees, want) in cases {
            let slots: Vec<Slot> = slots.into_iter().map(Slot).collect();
            let watched: Vec<ValidatorIndex> = watched.into_iter().map(ValidatorIndex).collect();
            let got: Vec<(u64, Option<u64>)> = pool_queries(&slots, &committees, &watched)
                .into_iter()
                .map(|(s, k)| (s.0, k))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pool_slashings_have_the_keys_of_the_same_slashings_in_blocks() {
        let attester = vec![AttesterSlashing {
            attesting_indices_1: [1, 2, 3].map(ValidatorIndex).to_vec(),
            attesting_indices_2: [3, 2, 9].map(ValidatorIndex).to_vec(),
            target_epoch: Epoch(1),
        }];
        let proposer = vec![ProposerSlashing {
            proposer_index: ValidatorIndex(4),
            slot: Slot(3),
        }];
        let watched = [1, 3, 4, 9].map(ValidatorIndex);
        let from_pool = pool_slashings(&spec(), &attester, &proposer, &watched, Slot(20));
        let mut b = block(12, vec![]);
        b.attester_slashings = attester;
        b.proposer_slashings = proposer;
        let from_block = slashing_operations(&spec(), &[b], &watched);
        let keys = |e: &[DoubleSignEvidence]| e.iter().map(|x| x.key()).collect::<Vec<_>>();
        assert_eq!(keys(&from_pool), keys(&from_block));
        assert_eq!(from_pool.len(), 2);
        assert!(pool_slashings(&spec(), &[], &[], &watched, Slot(20)).is_empty());
    }

    fn hdr(slot: u64, proposer: u64, root: u8) -> BlockHeader {
        BlockHeader {
            root: Root([root; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(proposer),
            parent_root: Root::ZERO,
            state_root: Root::ZERO,
        }
    }

    #[test]
    fn double_proposals_table() {
        let cases: Vec<(&str, Vec<BlockHeader>, Vec<u64>)> = vec![
            (
                "two roots, one slot",
                vec![hdr(9, 5, 1), hdr(9, 5, 2)],
                vec![5],
            ),
            (
                "the same root twice",
                vec![hdr(9, 5, 1), hdr(9, 5, 1)],
                vec![],
            ),
            ("two slots", vec![hdr(9, 5, 1), hdr(10, 5, 2)], vec![]),
            ("two proposers", vec![hdr(9, 5, 1), hdr(9, 6, 2)], vec![]),
            ("unwatched", vec![hdr(9, 7, 1), hdr(9, 7, 2)], vec![]),
        ];
        let watched = [5, 6].map(ValidatorIndex);
        for (name, headers, want) in cases {
            let got = double_proposals(&spec(), &headers, &watched);
            assert_eq!(indices(&got), want, "{name}");
            for e in &got {
                assert_eq!(e.kind, DoubleSignKind::DoubleProposal);
                assert_eq!((e.epoch, e.slot), (Epoch(1), Slot(9)));
            }
        }
    }

    #[test]
    fn slashing_operations_name_the_intersection_and_the_proposer() {
        let mut b = block(12, vec![]);
        b.attester_slashings.push(AttesterSlashing {
            attesting_indices_1: [1, 2, 3].map(ValidatorIndex).to_vec(),
            attesting_indices_2: [3, 2, 9].map(ValidatorIndex).to_vec(),
            target_epoch: Epoch(1),
        });
        b.proposer_slashings.push(ProposerSlashing {
            proposer_index: ValidatorIndex(4),
            slot: Slot(3),
        });
        // The same evidence again in a later block is the same incident.
        let mut later = b.clone();
        later.header.slot = Slot(13);
        let got = slashing_operations(&spec(), &[b, later], &[1, 3, 4, 9].map(ValidatorIndex));
        let keys: Vec<_> = got
            .iter()
            .map(|e| (e.validator_index.0, e.kind, e.epoch.0))
            .collect();
        assert_eq!(
            keys,
            vec![
                (4, DoubleSignKind::ProposerSlashing, 0),
                (3, DoubleSignKind::AttesterSlashing, 1),
            ]
        );
    }
}
