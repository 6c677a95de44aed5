//! Proposal verdicts: did each watched proposer's duty end in a canonical
//! block, an orphaned one, or none.
//!
//! Owns: the proposed / orphaned / missed / stale-duty rules.
//! Must not: do IO or decide when a missed proposal is reported: the caller
//! picks `head_slot` (Lighthouse's validator monitor waits a few slots,
//! `MISSED_BLOCK_LAG_SLOTS = 4`, before calling a proposal missed).

use std::collections::HashSet;

use super::{CanonicalChain, ProposalStatus, ProposalVerdict};
use crate::chain::{BlockHeader, ProposerDuties, Slot, ValidatorIndex};

/// Judges the proposer duties of watched validators in one epoch.
/// `seen_non_canonical` are blocks some node served or announced that are
/// not on the canonical chain (orphans); `head_slot` bounds what is known.
///
/// Duties whose slot the chain does not cover yet, or that lie after
/// `head_slot`, get no verdict (they are judged on a later call).
pub fn judge_proposals(
    duties: &ProposerDuties,
    watched: &[ValidatorIndex],
    chain: &CanonicalChain,
    seen_non_canonical: &[BlockHeader],
    head_slot: Slot,
) -> Vec<ProposalVerdict> {
    let watched: HashSet<ValidatorIndex> = watched.iter().copied().collect();
    let mut out = Vec::new();
    for duty in &duties.duties {
        if !watched.contains(&duty.validator_index) {
            continue;
        }
        let verdict = |status, block_root, reason: Option<&str>| ProposalVerdict {
            slot: duty.slot,
            validator_index: Some(duty.validator_index),
            status,
            block_root,
            reason: reason.map(str::to_owned),
        };
        if let Some(block) = chain.block_at(duty.slot) {
            out.push(if block.proposer_index == duty.validator_index {
                verdict(ProposalStatus::Proposed, Some(block.root), None)
            } else {
                // process_block_header asserts the proposer is the one the
                // shuffling picked: another proposer at this slot means the
                // duties came from a fork the chain left (their dependent
                // root changed). The caller refetches; this is no miss.
                verdict(
                    ProposalStatus::Unknown,
                    None,
                    Some("duties stale: dependent root changed"),
                )
            });
            continue;
        }
        if !chain.covers(duty.slot) || duty.slot > head_slot {
            continue;
        }
        // The slot is known empty on the canonical chain. A block the
        // proposer did publish but the chain dropped is an orphan: the
        // proposer did its part, the network (or a late publish) lost it.
        let orphan = seen_non_canonical.iter().find(|b| {
            b.slot == duty.slot
                && b.proposer_index == duty.validator_index
                && !chain.contains_root(&b.root)
        });
        out.push(match orphan {
            Some(b) => verdict(ProposalStatus::Orphaned, Some(b.root), None),
            None => verdict(ProposalStatus::Missed, None, None),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Epoch, ProposerDuty, Root};

    fn header(slot: u64, proposer: u64, tag: u8) -> BlockHeader {
        BlockHeader {
            root: Root([tag; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(proposer),
            parent_root: Root::ZERO,
            state_root: Root::ZERO,
        }
    }

    /// Canonical window 8..=15 with blocks at 8 (by 100), 9 (by 201 while
    /// the duty says 101), 11 (by 103); 10, 12 and 13 empty.
    fn chain() -> CanonicalChain {
        CanonicalChain::new(
            Slot(8),
            Slot(15),
            None,
            [header(8, 100, 8), header(9, 201, 9), header(11, 103, 11)],
        )
    }

    #[test]
    fn proposal_verdicts_follow_the_canonical_chain() {
        use ProposalStatus::*;
        let orphans = [header(10, 102, 0xa0), header(12, 999, 0xc0)];
        // (name, duty slot, proposer, head slot, expected verdict)
        type Case = (
            &'static str,
            u64,
            u64,
            u64,
            Option<(ProposalStatus, Option<u8>)>,
        );
        let cases: Vec<Case> = vec![
            (
                "canonical block by the duty's proposer",
                8,
                100,
                15,
                Some((Proposed, Some(8))),
            ),
            (
                "canonical block by another proposer: stale duties",
                9,
                101,
                15,
                Some((Unknown, None)),
            ),
            (
                "empty slot, own block seen off the chain: orphaned",
                10,
                102,
                15,
                Some((Orphaned, Some(0xa0))),
            ),
            (
                "empty slot, someone else's orphan: missed",
                12,
                104,
                15,
                Some((Missed, None)),
            ),
            (
                "empty slot, nothing seen: missed",
                13,
                105,
                13,
                Some((Missed, None)),
            ),
            ("slot after the head: not judged yet", 14, 106, 13, None),
            ("slot beyond the chain: not judged yet", 16, 107, 20, None),
            (
                "slot before the chain: unknown emptiness, not judged",
                7,
                108,
                15,
                None,
            ),
            ("proposer not watched: no verdict", 11, 555, 15, None),
        ];
        for (name, slot, proposer, head, want) in cases {
            let duties = ProposerDuties {
                epoch: Epoch(1),
                dependent_root: Root::ZERO,
                duties: vec![ProposerDuty {
                    slot: Slot(slot),
                    validator_index: ValidatorIndex(proposer),
                }],
            };
            let watched: Vec<_> = (100..200).map(ValidatorIndex).collect();
            let got = judge_proposals(&duties, &watched, &chain(), &orphans, Slot(head));
            let got: Vec<_> = got
                .iter()
                .map(|v| {
                    assert_eq!(
                        (v.slot, v.validator_index),
                        (Slot(slot), Some(ValidatorIndex(proposer)))
                    );
                    assert_eq!(v.reason.is_some(), v.status == Unknown, "{name}: reason");
                    (v.status, v.block_root.map(|r| r.0[0]))
                })
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{name}");
        }
    }

    #[test]
    fn only_watched_duties_are_judged_in_duty_order() {
        let duties = ProposerDuties {
            epoch: Epoch(1),
            dependent_root: Root::ZERO,
            duties: [(8, 100), (10, 300), (11, 103), (12, 104)]
                .into_iter()
                .map(|(s, v)| ProposerDuty {
                    slot: Slot(s),
                    validator_index: ValidatorIndex(v),
                })
                .collect(),
        };
        let watched = [
            ValidatorIndex(104),
            ValidatorIndex(100),
            ValidatorIndex(103),
        ];
        let got = judge_proposals(&duties, &watched, &chain(), &[], Slot(15));
        let got: Vec<_> = got.iter().map(|v| (v.slot.0, v.status)).collect();
        assert_eq!(
            got,
            vec![
                (8, ProposalStatus::Proposed),
                (11, ProposalStatus::Proposed),
                (12, ProposalStatus::Missed)
            ]
        );
    }
}
