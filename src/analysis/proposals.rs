//! Proposal verdicts.

use super::{CanonicalChain, ProposalVerdict};
use crate::chain::{BlockHeader, ProposerDuties, Slot, ValidatorIndex};

/// Judges the proposer duties of watched validators in one epoch.
/// `seen_non_canonical` are blocks some node served or announced that are
/// not on the canonical chain (orphans); `head_slot` bounds what is known.
pub fn judge_proposals(
    _duties: &ProposerDuties,
    _watched: &[ValidatorIndex],
    _chain: &CanonicalChain,
    _seen_non_canonical: &[BlockHeader],
    _head_slot: Slot,
) -> Vec<ProposalVerdict> {
    Vec::new()
}
