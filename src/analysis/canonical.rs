//! The canonical chain over a window of slots, as the analysis sees it.

use std::collections::BTreeMap;

use crate::chain::{BlockHeader, Root, Slot};

/// Canonical blocks by slot for a contiguous window `[first, last]`.
/// A slot inside the window that has no entry is empty (skipped); a slot
/// outside it is unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanonicalChain {
    first: Slot,
    last: Slot,
    blocks: BTreeMap<Slot, BlockHeader>,
    /// The latest canonical block before `first`, so that roots "at or
    /// before" a slot are known from the window's first slot on.
    anchor: Option<BlockHeader>,
}

impl CanonicalChain {
    /// `blocks` must all lie in `[first, last]`; `anchor` is the latest
    /// canonical block before `first` (None only at genesis).
    pub fn new(
        first: Slot,
        last: Slot,
        anchor: Option<BlockHeader>,
        blocks: impl IntoIterator<Item = BlockHeader>,
    ) -> Self {
        let blocks = blocks
            .into_iter()
            .filter(|b| b.slot >= first && b.slot <= last)
            .map(|b| (b.slot, b))
            .collect();
        Self {
            first,
            last,
            blocks,
            anchor,
        }
    }

    pub fn first(&self) -> Slot {
        self.first
    }

    pub fn last(&self) -> Slot {
        self.last
    }

    pub fn covers(&self, slot: Slot) -> bool {
        slot >= self.first && slot <= self.last
    }

    /// The canonical block AT `slot`; `None` for an empty or uncovered slot.
    pub fn block_at(&self, slot: Slot) -> Option<&BlockHeader> {
        self.blocks.get(&slot)
    }

    /// Whether `slot` is known to be empty (inside the window, no block).
    pub fn is_empty_slot(&self, slot: Slot) -> bool {
        self.covers(slot) && !self.blocks.contains_key(&slot)
    }

    /// The root a correct vote names for `slot`: the latest canonical block
    /// at or before it (the spec's `get_block_root_at_slot`, which repeats the
    /// previous root for empty slots). `None` if `slot` is not covered.
    pub fn root_at_or_before(&self, slot: Slot) -> Option<Root> {
        if slot < self.first || slot > self.last {
            return None;
        }
        self.blocks
            .range(..=slot)
            .next_back()
            .map(|(_, b)| b.root)
            .or(self.anchor.map(|a| a.root))
    }

    /// The first canonical block strictly after `slot`, within the window.
    pub fn first_block_after(&self, slot: Slot) -> Option<&BlockHeader> {
        self.blocks.range(Slot(slot.0 + 1)..).next().map(|(_, b)| b)
    }

    pub fn blocks(&self) -> impl Iterator<Item = &BlockHeader> {
        self.blocks.values()
    }

    pub fn contains_root(&self, root: &Root) -> bool {
        self.blocks.values().any(|b| &b.root == root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ValidatorIndex;

    fn header(slot: u64) -> BlockHeader {
        BlockHeader {
            root: Root([slot as u8; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(slot),
            parent_root: Root::ZERO,
            state_root: Root::ZERO,
        }
    }

    #[test]
    fn empty_slots_repeat_the_previous_root() {
        let chain = CanonicalChain::new(
            Slot(10),
            Slot(20),
            Some(header(8)),
            [header(10), header(13)],
        );
        assert_eq!(chain.root_at_or_before(Slot(10)), Some(Root([10; 32])));
        assert_eq!(chain.root_at_or_before(Slot(12)), Some(Root([10; 32])));
        assert_eq!(chain.root_at_or_before(Slot(20)), Some(Root([13; 32])));
        assert_eq!(chain.root_at_or_before(Slot(21)), None);
        assert!(chain.is_empty_slot(Slot(11)));
        assert!(!chain.is_empty_slot(Slot(13)));
        assert_eq!(
            chain.first_block_after(Slot(10)).map(|b| b.slot),
            Some(Slot(13))
        );
    }

    #[test]
    fn the_anchor_answers_for_leading_empty_slots() {
        let chain = CanonicalChain::new(Slot(10), Slot(20), Some(header(8)), [header(13)]);
        assert_eq!(chain.root_at_or_before(Slot(11)), Some(Root([8; 32])));
    }
}
