//! The network's baseline for one epoch, from the canonical blocks valwatch
//! reads anyway (no extra request): the share of ALL attestation duties of
//! the epoch that were included, and the empty slots. So that "everyone
//! missed this epoch" is told apart from "we missed it".
//!
//! Owns: counting every committee seat of the epoch once, at its first
//! inclusion, from aggregation bits. Must not: do IO, or map bits to
//! validator indices (committee sizes are enough; on mainnet that keeps the
//! work linear in the bits, without the ~10 MB committee answer).
//!
//! Committee sizes come from the committees the collector read (exact) and
//! else from the aggregates themselves: `process_attestation` asserts that
//! the bitlist length equals the committee's size (Phase0) or the summed
//! sizes of the committees named by `committee_bits` (Electra, EIP-7549).
//! A seat of a committee that no aggregate names was never included; its
//! size is taken as the mean of the known ones (`compute_committee` splits
//! the epoch's active set evenly, sizes differ by at most one).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::attestations::Coverage;
use super::CanonicalChain;
use crate::chain::{Attestation, Block, ChainSpec, Committee, Epoch, Slot};

/// The network's participation in one epoch. Reports show it with the
/// shares computed (`NetworkRow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "NetworkRow")]
pub struct NetworkRecord {
    pub epoch: Epoch,
    /// Committee seats (attestation duties) of the epoch, all validators.
    pub duties: u64,
    /// Seats whose vote a canonical block included (first inclusion).
    pub included: u64,
    /// Slots of the epoch without a canonical block (the genesis slot,
    /// which nobody proposes, is not counted as a slot).
    pub empty_slots: u64,
    pub slots: u64,
}

/// A `NetworkRecord` as reports print it: the counts and their shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkRow {
    pub epoch: Epoch,
    /// Included duties / duties (0..1); absent without duties.
    pub participation: Option<f64>,
    pub empty_slots: u64,
    pub slots: u64,
    pub duties: u64,
    pub included: u64,
}

impl From<NetworkRecord> for NetworkRow {
    fn from(n: NetworkRecord) -> Self {
        NetworkRow {
            epoch: n.epoch,
            participation: n.participation(),
            empty_slots: n.empty_slots,
            slots: n.slots,
            duties: n.duties,
            included: n.included,
        }
    }
}

impl NetworkRecord {
    /// Included duties / duties; `None` without duties.
    pub fn participation(&self) -> Option<f64> {
        (self.duties > 0).then(|| self.included as f64 / self.duties as f64)
    }

    /// Empty slots / slots; `None` without slots.
    pub fn empty_share(&self) -> Option<f64> {
        (self.slots > 0).then(|| self.empty_slots as f64 / self.slots as f64)
    }
}

/// PURE: the baseline of `epoch` from the canonical `blocks` of its
/// inclusion window and, where read, its `committees`. `None` when the
/// chain does not cover the epoch yet or nothing tells the committee count.
pub fn network_baseline(
    spec: &ChainSpec,
    epoch: Epoch,
    committees: Option<(&[Committee], &Coverage)>,
    blocks: &[Block],
    chain: &CanonicalChain,
) -> Option<NetworkRecord> {
    let start = spec.start_slot(epoch);
    let end = spec.end_slot(epoch);
    if !chain.covers(start) || !chain.covers(end) {
        return None;
    }
    // Canonical blocks only, lowest slot first (first inclusion counts).
    let mut canonical: Vec<&Block> = blocks
        .iter()
        .filter(|b| {
            chain
                .block_at(b.header.slot)
                .is_some_and(|h| h.root == b.header.root)
        })
        .collect();
    canonical.sort_by_key(|b| b.header.slot);
    let votes: Vec<&Attestation> = canonical
        .iter()
        .flat_map(|b| {
            b.attestations.iter().filter(move |a| {
                // `process_attestation`: the target is the vote's own
                // epoch, and a block never carries a vote of its slot.
                spec.epoch_of(a.data.slot) == epoch
                    && a.data.target.epoch == epoch
                    && b.header.slot > a.data.slot
            })
        })
        .collect();

    // (slot, committee index) -> size, exact where known.
    let mut size: BTreeMap<(Slot, u64), usize> = BTreeMap::new();
    let mut per_slot: Option<u64> = None;
    if let Some((cs, coverage)) = committees {
        for c in cs.iter().filter(|c| spec.epoch_of(c.slot) == epoch) {
            size.entry((c.slot, c.index)).or_insert(c.validators.len());
        }
        if *coverage == Coverage::Epoch {
            per_slot = cs
                .iter()
                .filter(|c| spec.epoch_of(c.slot) == epoch)
                .map(|c| c.index + 1)
                .max();
        }
    }
    for a in &votes {
        let parts = parts_of(a);
        if let [k] = parts[..] {
            size.entry((a.data.slot, k))
                .or_insert(a.aggregation_bits.len());
        }
    }
    // Several committees in one aggregate: the unknown ones share what the
    // known ones leave, evenly.
    for a in &votes {
        let parts = parts_of(a);
        let known: usize = parts
            .iter()
            .filter_map(|k| size.get(&(a.data.slot, *k)))
            .sum();
        let unknown: Vec<u64> = parts
            .iter()
            .copied()
            .filter(|k| !size.contains_key(&(a.data.slot, *k)))
            .collect();
        if unknown.is_empty() {
            continue;
        }
        let left = a.aggregation_bits.len().saturating_sub(known);
        let n = unknown.len();
        for (i, k) in unknown.into_iter().enumerate() {
            size.insert((a.data.slot, k), left / n + usize::from(i < left % n));
        }
    }
    let per_slot = per_slot.or_else(|| size.keys().map(|(_, k)| k + 1).max())?;
    let mean = {
        let total: usize = size.values().sum();
        (total as f64 / size.len().max(1) as f64).round() as u64
    };
    let mut duties = 0u64;
    for s in start.0..=end.0 {
        for k in 0..per_slot {
            duties += size.get(&(Slot(s), k)).map_or(mean, |n| *n as u64);
        }
    }

    // Every seat once, at its first inclusion; an aggregate whose length
    // contradicts the sizes above is not evidence and is skipped.
    let mut seen: HashSet<(Slot, u64, usize)> = HashSet::new();
    for a in &votes {
        let parts = parts_of(a);
        let sizes: Option<Vec<usize>> = parts
            .iter()
            .map(|k| size.get(&(a.data.slot, *k)).copied())
            .collect();
        let Some(sizes) = sizes else { continue };
        if sizes.iter().sum::<usize>() != a.aggregation_bits.len() {
            continue;
        }
        let mut offset = 0;
        for (k, n) in parts.iter().zip(sizes) {
            for j in 0..n {
                if a.aggregation_bits.get(offset + j) {
                    seen.insert((a.data.slot, *k, j));
                }
            }
            offset += n;
        }
    }

    // The genesis slot has no proposer: not a slot anyone could fill.
    let first_slot = start.0.max(1);
    let slots = (end.0 + 1).saturating_sub(first_slot);
    let empty_slots = (first_slot..=end.0)
        .filter(|s| chain.is_empty_slot(Slot(*s)))
        .count() as u64;
    Some(NetworkRecord {
        epoch,
        duties,
        included: (seen.len() as u64).min(duties),
        empty_slots,
        slots,
    })
}

/// The committees of `a.data.slot` an aggregate spans, ascending.
fn parts_of(a: &Attestation) -> Vec<u64> {
    match &a.committee_bits {
        None => vec![a.data.index],
        Some(bits) => bits.ones().map(|k| k as u64).collect(),
    }
}

/// PURE: whether a group stayed `margin` (a fraction, 0.05 = 5 points) or
/// more below the network's participation in each of its last `epochs`
/// epochs (`history`: (group participation, network participation) per
/// epoch, oldest first, consecutive). Fewer epochs than `epochs`, or an
/// epoch where either is unknown, is not enough evidence: false. When the
/// whole network is down the group is not blamed for following it.
pub fn underperforming(history: &[(Option<f64>, Option<f64>)], margin: f64, epochs: usize) -> bool {
    if epochs == 0 || history.len() < epochs {
        return false;
    }
    history[history.len() - epochs..]
        .iter()
        .all(|(group, network)| match (group, network) {
            (Some(g), Some(n)) => n - g >= margin,
            _ => false,
        })
}

/// PURE: whether a group's low participation is the network's, not the
/// operator's: the network itself is below `healthy` (a fraction: 0.9 =
/// 90 %) and the group is no more than `margin` below it. Then alerts and
/// the status page say "network participation 61 %" rather than blaming
/// the operator. `None` participation (unknown) is never network-wide.
pub fn is_network_wide(
    group: Option<f64>,
    network: Option<f64>,
    healthy: f64,
    margin: f64,
) -> bool {
    match (group, network) {
        (Some(g), Some(n)) => n < healthy && n - g < margin,
        _ => false,
    }
}

/// PURE: the baseline as people read it: "network participation 61 %,
/// 2 of 8 slots empty".
pub fn describe(n: &NetworkRecord) -> String {
    let participation = n
        .participation()
        .map_or_else(|| "unknown".to_string(), |p| format!("{:.0} %", p * 100.0));
    format!(
        "network participation {participation}, {} of {} slots empty",
        n.empty_slots, n.slots
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{
        AttestationData, BitList, BitVector, BlockHeader, Checkpoint, Fork, Root, ValidatorIndex,
    };

    fn spec() -> ChainSpec {
        ChainSpec::test_spec(4, 1000, 0)
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

    fn vote(
        slot: u64,
        committees: Option<&[usize]>,
        index: u64,
        len: usize,
        set: &[usize],
    ) -> Attestation {
        Attestation {
            aggregation_bits: BitList::from_bits(len, set.iter().copied()),
            committee_bits: committees.map(|ks| BitVector::from_bits(4, ks.iter().copied())),
            data: AttestationData {
                slot: Slot(slot),
                index,
                beacon_block_root: Root::ZERO,
                source: Checkpoint {
                    epoch: Epoch(0),
                    root: Root::ZERO,
                },
                target: Checkpoint {
                    epoch: Epoch(1),
                    root: Root::ZERO,
                },
            },
        }
    }

    fn block(slot: u64, attestations: Vec<Attestation>) -> Block {
        Block {
            header: header(slot),
            fork: Fork::Electra,
            attestations,
            sync_committee_bits: None,
            proposer_slashings: vec![],
            attester_slashings: vec![],
            voluntary_exits: vec![],
        }
    }

    fn chain(slots: &[u64]) -> CanonicalChain {
        CanonicalChain::new(
            Slot(4),
            Slot(11),
            Some(header(3)),
            slots.iter().map(|s| header(*s)),
        )
    }

    fn committees(size: usize) -> Vec<Committee> {
        (4..8)
            .flat_map(|s| {
                (0..2).map(move |k| Committee {
                    slot: Slot(s),
                    index: k,
                    validators: (0..size).map(|i| ValidatorIndex(i as u64)).collect(),
                })
            })
            .collect()
    }

    #[test]
    fn every_seat_counts_once_at_its_first_inclusion() {
        // Epoch 1 = slots 4..7; 2 committees of 3 per slot = 24 duties.
        let blocks = vec![
            block(5, vec![vote(4, None, 0, 3, &[0, 1])]),
            // The same seats again, and one more: only seat 2 is new.
            block(
                6,
                vec![vote(4, None, 0, 3, &[0, 1, 2]), vote(5, None, 1, 3, &[0])],
            ),
        ];
        let cs = committees(3);
        let got = network_baseline(
            &spec(),
            Epoch(1),
            Some((&cs, &Coverage::Epoch)),
            &blocks,
            &chain(&[5, 6]),
        )
        .unwrap();
        assert_eq!((got.duties, got.included), (24, 4));
        assert_eq!((got.empty_slots, got.slots), (2, 4));
    }

    #[test]
    fn electra_aggregates_give_the_sizes_without_committees() {
        // Slot 4: one aggregate over committees 0 and 1 (3 + 3 bits);
        // slot 5: committee 1 alone, 3 bits; slots 6, 7 never included,
        // counted at the mean size 3: 8 committees x 3 = 24 duties.
        let blocks = vec![block(
            6,
            vec![
                vote(4, Some(&[0, 1]), 0, 6, &[0, 1, 2, 3, 4, 5]),
                vote(5, Some(&[1]), 0, 3, &[2]),
            ],
        )];
        let got =
            network_baseline(&spec(), Epoch(1), None, &blocks, &chain(&[4, 5, 6, 7])).unwrap();
        assert_eq!((got.duties, got.included), (24, 7));
        assert_eq!(got.empty_slots, 0);
    }

    #[test]
    fn votes_of_orphaned_blocks_and_other_epochs_do_not_count() {
        let mut orphan = block(5, vec![vote(4, None, 0, 3, &[0, 1, 2])]);
        orphan.header.root = Root([0xee; 32]);
        let mut other_epoch = vote(4, None, 1, 3, &[0]);
        other_epoch.data.target.epoch = Epoch(0);
        let blocks = vec![orphan, block(6, vec![other_epoch])];
        let cs = committees(3);
        let got = network_baseline(
            &spec(),
            Epoch(1),
            Some((&cs, &Coverage::Epoch)),
            &blocks,
            &chain(&[5, 6]),
        )
        .unwrap();
        assert_eq!(got.included, 0);
        assert_eq!(got.participation(), Some(0.0));
    }

    #[test]
    fn a_bitlist_of_the_wrong_length_is_no_evidence() {
        let blocks = vec![block(5, vec![vote(4, None, 0, 5, &[0])])];
        let cs = committees(3);
        let got = network_baseline(
            &spec(),
            Epoch(1),
            Some((&cs, &Coverage::Epoch)),
            &blocks,
            &chain(&[5]),
        )
        .unwrap();
        assert_eq!(got.included, 0);
    }

    #[test]
    fn an_epoch_the_chain_does_not_cover_has_no_baseline() {
        let got = network_baseline(&spec(), Epoch(2), None, &[], &chain(&[5]));
        assert_eq!(got, None);
    }

    #[test]
    fn a_group_underperforms_only_when_it_stays_below_the_network() {
        let s = |g: f64, n: f64| (Some(g), Some(n));
        type History = Vec<(Option<f64>, Option<f64>)>;
        let cases: Vec<(&str, History, bool)> = vec![
            (
                "three epochs 10 points below",
                vec![s(0.8, 0.95), s(0.85, 0.96), s(0.8, 0.99)],
                true,
            ),
            (
                "one epoch back within the margin",
                vec![s(0.8, 0.95), s(0.94, 0.96), s(0.8, 0.99)],
                false,
            ),
            (
                "everyone down: the network is the problem",
                vec![s(0.6, 0.61); 3],
                false,
            ),
            ("too short a history", vec![s(0.5, 0.99); 2], false),
            (
                "an unknown epoch is no evidence",
                vec![s(0.5, 0.99), (None, Some(0.99)), s(0.5, 0.99)],
                false,
            ),
            (
                "only the last epochs count",
                vec![s(0.99, 0.99), s(0.5, 0.99), s(0.5, 0.99), s(0.5, 0.99)],
                true,
            ),
        ];
        for (name, history, want) in cases {
            assert_eq!(underperforming(&history, 0.05, 3), want, "{name}");
        }
    }

    #[test]
    fn a_low_network_takes_the_blame_only_when_the_group_follows_it() {
        let cases = [
            (
                "everyone low, group with them",
                Some(0.60),
                Some(0.61),
                true,
            ),
            (
                "network low, group far below",
                Some(0.30),
                Some(0.61),
                false,
            ),
            (
                "network healthy: the group's own problem",
                Some(0.50),
                Some(0.99),
                false,
            ),
            ("group above a low network", Some(0.95), Some(0.61), true),
            ("unknown network", Some(0.50), None, false),
            ("unknown group", None, Some(0.5), false),
        ];
        for (name, group, network, want) in cases {
            assert_eq!(is_network_wide(group, network, 0.9, 0.05), want, "{name}");
        }
        let n = NetworkRecord {
            epoch: Epoch(3),
            duties: 100,
            included: 61,
            empty_slots: 2,
            slots: 8,
        };
        assert_eq!(
            describe(&n),
            "network participation 61 %, 2 of 8 slots empty"
        );
    }
}
