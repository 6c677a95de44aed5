//! Follows the canonical chain by walking parent roots back from the head.
//!
//! Reorg events are unreliable (beacon-api.md §1.9), so valwatch detects
//! reorgs itself: each new head is linked to the chain it already holds
//! through `parent_root`; blocks it held as canonical and that are no longer
//! on the path are recorded as orphans (they decide "orphaned" proposals).
//!
//! The head is asked for when a node's event stream announced a block the
//! follower does not hold, and otherwise once per slot as a fallback (the
//! stream can stay silent when it breaks); without a stream, every update.
//!
//! Owns: the canonical headers of the window still being judged. Decides
//! nothing about validators.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::beacon::events::SeenBlocks;
use crate::beacon::{BeaconError, BeaconPool, BlockId};
use crate::chain::{BlockHeader, Root, Slot};

/// How far back one update may walk before giving up: a reorg deeper than
/// this is an incident (finality bounds reorgs; mainnet finalizes ~2 epochs
/// behind), and a first start far in the past walks once per block.
pub const MAX_WALK: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Beacon(#[from] BeaconError),
    #[error("block {root} (parent of slot {child_slot}) is unknown to every node")]
    MissingParent { root: Root, child_slot: Slot },
    #[error("the node has no head block")]
    NoHead,
    #[error("walked {MAX_WALK} blocks back from the head without joining the known chain")]
    TooDeep,
}

#[derive(Debug, Default)]
pub struct ChainFollower {
    /// Canonical blocks with slot >= `floor`, plus the anchor below it.
    canonical: BTreeMap<Slot, BlockHeader>,
    /// Blocks that were canonical and were reorged away.
    orphans: Vec<BlockHeader>,
    floor: Slot,
    head: Option<BlockHeader>,
    /// Stands in for the block below the window when no node serves it
    /// (e.g. a replayed genesis block): only its root is known, taken from
    /// the parent_root of the lowest block held.
    anchor: Option<BlockHeader>,
    /// The event streams' announced blocks, when they are followed.
    events: Option<HeadEvents>,
}

/// Following the head from the event streams (`ChainFollower::follow_events`).
#[derive(Debug)]
struct HeadEvents {
    seen: Arc<SeenBlocks>,
    /// The longest the head goes unasked: one slot.
    fallback: Duration,
    last_poll: Option<Instant>,
    /// Announced roots already answered by a poll.
    handled: HashSet<Root>,
}

impl ChainFollower {
    /// Follows from `floor` on; the block at or just below it is the anchor.
    pub fn new(floor: Slot) -> Self {
        Self {
            floor,
            ..Self::default()
        }
    }

    /// Asks for the head only when `seen` announces a block not yet
    /// handled, or when `fallback` passed since the last ask.
    pub fn follow_events(&mut self, seen: Arc<SeenBlocks>, fallback: Duration) {
        self.events = Some(HeadEvents {
            seen,
            fallback,
            last_poll: None,
            handled: HashSet::new(),
        });
    }

    /// Whether the head must be asked for now (see `follow_events`).
    fn head_may_have_moved(&mut self) -> bool {
        let Some(ev) = self.events.as_mut() else {
            return true;
        };
        let announced = ev.seen.in_range(self.floor, Slot(u64::MAX));
        let news = announced.iter().any(|(_, r)| !ev.handled.contains(r));
        let due = ev.last_poll.is_none_or(|t| t.elapsed() >= ev.fallback);
        if !(news || due) {
            return false;
        }
        ev.last_poll = Some(Instant::now());
        ev.handled = announced.into_iter().map(|(_, r)| r).collect();
        true
    }

    pub fn head(&self) -> Option<&BlockHeader> {
        self.head.as_ref()
    }

    pub fn floor(&self) -> Slot {
        self.floor
    }

    pub fn orphans(&self) -> &[BlockHeader] {
        &self.orphans
    }

    /// Canonical headers with slots in `[from, to]`.
    pub fn range(&self, from: Slot, to: Slot) -> Vec<BlockHeader> {
        if from > to {
            return Vec::new();
        }
        self.canonical.range(from..=to).map(|(_, h)| *h).collect()
    }

    /// The latest canonical block strictly before `slot`, if held.
    pub fn before(&self, slot: Slot) -> Option<BlockHeader> {
        self.canonical
            .range(..slot)
            .next_back()
            .map(|(_, h)| *h)
            .or(self.anchor)
    }

    /// Forgets what lies below `floor` (already judged for good), keeping the
    /// latest block below it as the anchor.
    pub fn raise_floor(&mut self, floor: Slot) {
        if floor <= self.floor {
            return;
        }
        let anchor = self.canonical.range(..floor).next_back().map(|(_, h)| *h);
        self.canonical = self.canonical.split_off(&floor);
        if let Some(a) = anchor {
            // A real block now anchors the window: the stand-in is obsolete.
            self.canonical.insert(a.slot, a);
            self.anchor = None;
        }
        self.orphans.retain(|o| o.slot >= floor);
        self.floor = floor;
    }

    /// Brings the canonical chain up to the pool's head. Returns the head.
    pub async fn update(&mut self, pool: &BeaconPool) -> Result<BlockHeader, FollowError> {
        if let Some(head) = self.head.filter(|_| !self.head_may_have_moved()) {
            return Ok(head);
        }
        let head = pool
            .call("/eth/v1/beacon/headers/{block_id}", |c| async move {
                c.header(BlockId::Head).await
            })
            .await?
            .ok_or(FollowError::NoHead)?;
        if self.head.map(|h| h.root) == Some(head.root) {
            return Ok(head);
        }
        let mut path = vec![head];
        let mut cache: HashMap<Root, BlockHeader> = HashMap::new();
        loop {
            let cur = path[path.len() - 1]; // never empty: it starts with the head
            if self.canonical.get(&cur.slot).map(|h| h.root) == Some(cur.root) {
                break; // joined the chain we hold
            }
            if cur.slot < self.floor || cur.slot == Slot(0) {
                break; // below the window: this is the anchor
            }
            if path.len() > MAX_WALK {
                return Err(FollowError::TooDeep);
            }
            let parent_root = cur.parent_root;
            // The parent is usually the previous head, held already.
            let held = self
                .canonical
                .range(..cur.slot)
                .rev()
                .map(|(_, h)| *h)
                .find(|h| h.root == parent_root);
            let parent = match held.or_else(|| cache.get(&parent_root).copied()) {
                Some(p) => Some(p),
                None => {
                    pool.call("/eth/v1/beacon/headers/{block_id}", |c| async move {
                        c.header(BlockId::Root(parent_root)).await
                    })
                    .await?
                }
            };
            let Some(parent) = parent else {
                if self.canonical.is_empty() {
                    // First fill and the block below is not served: keep its
                    // root (all a correct vote needs) as a stand-in anchor.
                    self.anchor = Some(BlockHeader {
                        root: parent_root,
                        slot: Slot(self.floor.0.min(cur.slot.0.saturating_sub(1))),
                        proposer_index: crate::chain::ValidatorIndex(u64::MAX),
                        parent_root: Root::ZERO,
                        state_root: Root::ZERO,
                    });
                    break;
                }
                return Err(FollowError::MissingParent {
                    root: parent_root,
                    child_slot: cur.slot,
                });
            };
            cache.insert(parent.root, parent);
            path.push(parent);
        }
        self.apply(path);
        Ok(head)
    }

    /// Installs `path` (head first, ending at a block already held or at the
    /// anchor) as the canonical chain above its last element.
    fn apply(&mut self, path: Vec<BlockHeader>) {
        let Some(join) = path.last().copied() else {
            return;
        };
        let head = path[0];
        // Everything held above the join point that is not on the new path
        // was reorged away.
        let stale: Vec<Slot> = self
            .canonical
            .range(Slot(join.slot.0 + 1)..)
            .map(|(s, _)| *s)
            .collect();
        let on_path: std::collections::HashSet<Root> = path.iter().map(|h| h.root).collect();
        for s in stale {
            if let Some(old) = self.canonical.remove(&s) {
                if !on_path.contains(&old.root) && !self.orphans.iter().any(|o| o.root == old.root)
                {
                    self.orphans.push(old);
                }
            }
        }
        for h in path {
            self.canonical.insert(h.slot, h);
        }
        // A block re-adopted after a reorg back is canonical again.
        let canonical = &self.canonical;
        self.orphans
            .retain(|o| canonical.get(&o.slot).map(|h| h.root) != Some(o.root));
        self.head = Some(head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ValidatorIndex;

    fn h(slot: u64, tag: u8, parent: Option<&BlockHeader>) -> BlockHeader {
        BlockHeader {
            root: Root([tag; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(slot),
            parent_root: parent.map(|p| p.root).unwrap_or(Root::ZERO),
            state_root: Root::ZERO,
        }
    }

    #[test]
    fn a_reorg_moves_the_old_branch_to_the_orphans() {
        let mut f = ChainFollower::new(Slot(0));
        let b1 = h(1, 1, None);
        let b2 = h(2, 2, Some(&b1));
        let b3 = h(3, 3, Some(&b2));
        f.apply(vec![b3, b2, b1]);
        assert_eq!(f.range(Slot(0), Slot(9)).len(), 3);
        // New head at 4 built on 2: block 3 is orphaned.
        let b4 = h(4, 4, Some(&b2));
        f.apply(vec![b4, b2]);
        let slots: Vec<u64> = f.range(Slot(0), Slot(9)).iter().map(|b| b.slot.0).collect();
        assert_eq!(slots, vec![1, 2, 4]);
        assert_eq!(f.orphans(), &[b3]);
        assert_eq!(f.head().map(|h| h.root), Some(b4.root));
    }

    #[test]
    fn with_events_the_head_is_asked_only_when_a_block_is_announced_or_a_slot_passed() {
        let seen = Arc::new(SeenBlocks::default());
        let mut f = ChainFollower::new(Slot(0));
        f.follow_events(seen.clone(), Duration::from_secs(3600));
        assert!(f.head_may_have_moved(), "the first ask");
        assert!(!f.head_may_have_moved(), "nothing announced");
        seen.insert(Slot(5), Root([5; 32]));
        assert!(f.head_may_have_moved(), "a block announced");
        assert!(!f.head_may_have_moved(), "the same block again");
        let mut due = ChainFollower::new(Slot(0));
        due.follow_events(seen, Duration::ZERO);
        assert!(due.head_may_have_moved() && due.head_may_have_moved());
        let mut plain = ChainFollower::new(Slot(0));
        assert!(plain.head_may_have_moved() && plain.head_may_have_moved());
    }

    #[test]
    fn raising_the_floor_keeps_an_anchor() {
        let mut f = ChainFollower::new(Slot(0));
        let b1 = h(1, 1, None);
        let b5 = h(5, 5, Some(&b1));
        f.apply(vec![b5, b1]);
        f.raise_floor(Slot(3));
        assert_eq!(f.before(Slot(4)).map(|b| b.slot), Some(Slot(1)));
        assert_eq!(f.range(Slot(3), Slot(9)).len(), 1);
    }
}
