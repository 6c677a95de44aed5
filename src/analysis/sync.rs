//! Sync-committee verdicts.

use std::collections::HashMap;

use super::{CanonicalChain, SyncVerdict};
use crate::chain::{Block, ChainSpec, Epoch, ValidatorIndex};

/// Judges sync-committee participation for the slots of `epoch`.
/// `committees` maps a sync period to its members by position.
pub fn judge_sync(
    _spec: &ChainSpec,
    _epoch: Epoch,
    _committees: &HashMap<u64, Vec<ValidatorIndex>>,
    _watched: &[ValidatorIndex],
    _blocks: &[Block],
    _chain: &CanonicalChain,
) -> Vec<SyncVerdict> {
    Vec::new()
}
