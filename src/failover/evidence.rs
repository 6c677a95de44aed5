//! Evidence of activity in canonical blocks: which of the watched
//! validators attested (by the vote's epoch), proposed, or signed for the
//! sync committee, as one block shows it.
//!
//! Owns: the mapping of aggregation bits to validators through the
//! committees (consensus specs `get_attesting_indices`, Phase0 and
//! Electra/EIP-7549 forms) and of sync bits through the sync committee.
//! Must not: do IO, or judge whether anything is safe (that is `judge`).
//! Work stays linear in the block: only watched validators are looked up.

use std::collections::{HashMap, HashSet};

use super::judge::EvidenceKind;
use crate::chain::{
    Attestation, AttestationData, AttesterSlashing, Block, ChainSpec, Committee, Epoch,
    ProposerSlashing, Slot, ValidatorIndex,
};

/// One activity found in a block, before a node name is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seen {
    pub validator_index: ValidatorIndex,
    /// The epoch the validator signed in (the vote's epoch, the proposal's
    /// epoch, the epoch of the slot the sync signature is for).
    pub epoch: Epoch,
    pub kind: EvidenceKind,
    /// The block that carries it.
    pub slot: Slot,
}

/// The committees of the epochs a check reads, keyed by `(slot, index)`.
#[derive(Debug, Default)]
pub struct CommitteeIndex {
    by_slot: HashMap<(Slot, u64), Vec<ValidatorIndex>>,
    epochs: HashSet<Epoch>,
}

impl CommitteeIndex {
    /// Adds the committees of `epoch`; members outside it are ignored.
    pub fn add_epoch(&mut self, spec: &ChainSpec, epoch: Epoch, committees: Vec<Committee>) {
        for c in committees {
            if spec.epoch_of(c.slot) == epoch {
                self.by_slot
                    .entry((c.slot, c.index))
                    .or_insert(c.validators);
            }
        }
        self.epochs.insert(epoch);
    }

    pub fn has_epoch(&self, epoch: Epoch) -> bool {
        self.epochs.contains(&epoch)
    }
}

/// Sync committee members by position, per sync period.
pub type SyncCommittees = HashMap<u64, Vec<ValidatorIndex>>;

/// What one block shows of the watched validators. Attestations of an
/// epoch whose committees are not in `committees`, and sync bits of a
/// period not in `sync`, are skipped (the caller knows which epochs it
/// covered); an aggregate that does not fit its committees is an error,
/// since then the committees are not those the chain used.
pub fn block_evidence(
    spec: &ChainSpec,
    block: &Block,
    committees: &CommitteeIndex,
    sync: &SyncCommittees,
    watched: &HashSet<ValidatorIndex>,
) -> Result<Vec<Seen>, String> {
    let slot = block.header.slot;
    let mut out = Vec::new();
    if watched.contains(&block.header.proposer_index) {
        out.push(Seen {
            validator_index: block.header.proposer_index,
            epoch: spec.epoch_of(slot),
            kind: EvidenceKind::Proposal,
            slot,
        });
    }
    for att in &block.attestations {
        let epoch = spec.epoch_of(att.data.slot);
        // `process_attestation` requires target.epoch == epoch of the vote's
        // slot; a canonical block never carries anything else.
        if att.data.target.epoch != epoch || !committees.has_epoch(epoch) {
            continue;
        }
        for v in attesters(att, committees, watched).map_err(|e| {
            format!(
                "block at slot {slot}: aggregate of slot {}: {e}",
                att.data.slot
            )
        })? {
            out.push(Seen {
                validator_index: v,
                epoch,
                kind: EvidenceKind::Attestation,
                slot,
            });
        }
    }
    // Slashing operations: `process_proposer_slashing` slashes the header's
    // proposer, `process_attester_slashing` those in both attestations.
    for s in &block.proposer_slashings {
        if watched.contains(&s.proposer_index) {
            out.push(Seen {
                validator_index: s.proposer_index,
                epoch: spec.epoch_of(s.slot),
                kind: EvidenceKind::DoubleSign,
                slot,
            });
        }
    }
    for s in &block.attester_slashings {
        for v in s.slashed().into_iter().filter(|v| watched.contains(v)) {
            out.push(Seen {
                validator_index: v,
                epoch: s.target_epoch,
                kind: EvidenceKind::DoubleSign,
                slot,
            });
        }
    }
    // The sync aggregate of the block at slot S holds signatures for S−1,
    // checked against the sync committee of the period of epoch(S).
    if let (Some(bits), Some(signed_slot)) = (&block.sync_committee_bits, slot.0.checked_sub(1)) {
        let period = spec.sync_period_of(spec.epoch_of(slot));
        if let Some(members) = sync.get(&period) {
            if bits.len() != members.len() {
                return Err(format!(
                    "block at slot {slot}: sync bits hold {} bits, the committee {}",
                    bits.len(),
                    members.len()
                ));
            }
            for i in bits.ones() {
                if let Some(v) = members.get(i).filter(|v| watched.contains(v)) {
                    out.push(Seen {
                        validator_index: *v,
                        epoch: spec.epoch_of(Slot(signed_slot)),
                        kind: EvidenceKind::SyncSignature,
                        slot,
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a node's pools show of the watched validators: an aggregate in the
/// attestation pool is a vote for its slot's epoch (it was signed, whether
/// or not a block ever carries it); a pool slashing is double-signing
/// evidence, for its votes' target epoch or its headers' epoch. Aggregates
/// of epochs whose committees are not in `committees` are skipped, and one
/// that does not fit its committees is an error (like in blocks). Two
/// different votes of one validator for one target epoch in the pool are
/// double-signing evidence too. `slot` of each `Seen` is the vote's or
/// header's slot.
pub fn pool_evidence(
    spec: &ChainSpec,
    attestations: &[Attestation],
    attester_slashings: &[AttesterSlashing],
    proposer_slashings: &[ProposerSlashing],
    committees: &CommitteeIndex,
    watched: &HashSet<ValidatorIndex>,
) -> Result<Vec<Seen>, String> {
    let mut out = Vec::new();
    // The first vote seen per validator and target epoch: a second,
    // different one is a double vote (slashable: two `AttestationData`
    // for one target epoch), before any block carries either.
    let mut votes: HashMap<(ValidatorIndex, Epoch), &AttestationData> = HashMap::new();
    for att in attestations {
        let epoch = spec.epoch_of(att.data.slot);
        if att.data.target.epoch != epoch || !committees.has_epoch(epoch) {
            continue;
        }
        for v in attesters(att, committees, watched)
            .map_err(|e| format!("pool aggregate of slot {}: {e}", att.data.slot))?
        {
            out.push(Seen {
                validator_index: v,
                epoch,
                kind: EvidenceKind::PoolAttestation,
                slot: att.data.slot,
            });
            let first = *votes.entry((v, epoch)).or_insert(&att.data);
            if first != &att.data {
                out.push(Seen {
                    validator_index: v,
                    epoch,
                    kind: EvidenceKind::DoubleSign,
                    slot: att.data.slot,
                });
            }
        }
    }
    for s in proposer_slashings {
        if watched.contains(&s.proposer_index) {
            out.push(Seen {
                validator_index: s.proposer_index,
                epoch: spec.epoch_of(s.slot),
                kind: EvidenceKind::DoubleSign,
                slot: s.slot,
            });
        }
    }
    for s in attester_slashings {
        for v in s.slashed().into_iter().filter(|v| watched.contains(v)) {
            out.push(Seen {
                validator_index: v,
                epoch: s.target_epoch,
                kind: EvidenceKind::DoubleSign,
                slot: spec.start_slot(s.target_epoch),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The watched validators with a set bit in `att`. Before Electra the
/// aggregate covers committee `(data.slot, data.index)`; from Electra on the
/// committees named by `committee_bits`, ascending, concatenated. The bit
/// count must equal the committees' total size (`process_attestation`
/// asserts it).
fn attesters<'a>(
    att: &'a Attestation,
    committees: &'a CommitteeIndex,
    watched: &'a HashSet<ValidatorIndex>,
) -> Result<impl Iterator<Item = ValidatorIndex> + 'a, String> {
    let slot = att.data.slot;
    let indices: Vec<u64> = match &att.committee_bits {
        None => vec![att.data.index],
        Some(bits) => bits.ones().map(|k| k as u64).collect(),
    };
    let mut parts = Vec::with_capacity(indices.len());
    for k in indices {
        let members = committees
            .by_slot
            .get(&(slot, k))
            .ok_or_else(|| format!("no committee {k} at slot {slot}"))?;
        parts.push(members);
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total != att.aggregation_bits.len() {
        return Err(format!(
            "aggregation bits hold {} bits, the committees {total}",
            att.aggregation_bits.len()
        ));
    }
    let mut offset = 0;
    let mut flat = Vec::new();
    for members in parts {
        for (j, v) in members.iter().enumerate() {
            if watched.contains(v) && att.aggregation_bits.get(offset + j) {
                flat.push(*v);
            }
        }
        offset += members.len();
    }
    Ok(flat.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{AttestationData, BitList, BitVector, BlockHeader, Checkpoint, Fork, Root};

    // 8 slots per epoch, sync period of 2 epochs (16 slots). Two committees
    // of four per slot: validator v of epoch 1 sits at slot 8 + v / 8,
    // committee (v / 4) % 2, position v % 4.
    fn spec() -> ChainSpec {
        let mut s = ChainSpec::test_spec(8, 1000, 0);
        s.epochs_per_sync_committee_period = 2;
        s
    }

    fn committees(epoch: u64) -> Vec<Committee> {
        let mut out = Vec::new();
        for s in 0..8u64 {
            for k in 0..2u64 {
                let base = (s * 2 + k) * 4;
                out.push(Committee {
                    slot: Slot(epoch * 8 + s),
                    index: k,
                    validators: (base..base + 4).map(ValidatorIndex).collect(),
                });
            }
        }
        out
    }

    fn data(slot: u64, index: u64) -> AttestationData {
        let cp = Checkpoint {
            epoch: Epoch(slot / 8),
            root: Root::ZERO,
        };
        AttestationData {
            slot: Slot(slot),
            index,
            beacon_block_root: Root::ZERO,
            source: cp,
            target: cp,
        }
    }

    fn electra(slot: u64, committees: &[usize], bits: &[usize]) -> Attestation {
        Attestation {
            aggregation_bits: BitList::from_bits(4 * committees.len(), bits.iter().copied()),
            committee_bits: Some(BitVector::from_bits(64, committees.iter().copied())),
            data: data(slot, 0),
        }
    }

    fn block(slot: u64, proposer: u64, atts: Vec<Attestation>, sync: Option<Vec<usize>>) -> Block {
        Block {
            header: BlockHeader {
                root: Root([slot as u8; 32]),
                slot: Slot(slot),
                proposer_index: ValidatorIndex(proposer),
                parent_root: Root::ZERO,
                state_root: Root::ZERO,
            },
            fork: Fork::Electra,
            attestations: atts,
            sync_committee_bits: sync.map(|b| BitVector::from_bits(8, b)),
            proposer_slashings: vec![],
            attester_slashings: vec![],
            voluntary_exits: vec![],
        }
    }

    fn index(epochs: &[u64]) -> CommitteeIndex {
        let mut ix = CommitteeIndex::default();
        for &e in epochs {
            ix.add_epoch(&spec(), Epoch(e), committees(e));
        }
        ix
    }

    fn watched(vs: &[u64]) -> HashSet<ValidatorIndex> {
        vs.iter().copied().map(ValidatorIndex).collect()
    }

    fn found(
        b: &Block,
        ix: &CommitteeIndex,
        sync: &SyncCommittees,
        w: &[u64],
    ) -> Vec<(u64, u64, EvidenceKind)> {
        block_evidence(&spec(), b, ix, sync, &watched(w))
            .unwrap()
            .into_iter()
            .map(|s| (s.validator_index.0, s.epoch.0, s.kind))
            .collect()
    }

    #[test]
    fn electra_aggregates_map_bits_across_concatenated_committees() {
        use EvidenceKind::Attestation as A;
        let ix = index(&[1]);
        // Slot 9: committee 0 = 8..11, committee 1 = 12..15. Bits 1 and 6
        // are validators 9 and 14.
        let b = block(10, 99, vec![electra(9, &[0, 1], &[1, 6])], None);
        assert_eq!(
            found(&b, &ix, &HashMap::new(), &[9, 14, 10]),
            vec![(9, 1, A), (14, 1, A)]
        );
        // Only committee 1 named: bit 1 is validator 13.
        let b = block(10, 99, vec![electra(9, &[1], &[1])], None);
        assert_eq!(found(&b, &ix, &HashMap::new(), &[9, 13]), vec![(13, 1, A)]);
        // A vote of epoch 1 included in epoch 2 keeps epoch 1.
        let b = block(17, 99, vec![electra(15, &[1], &[0, 3])], None);
        assert_eq!(
            found(&b, &ix, &HashMap::new(), &[60, 63]),
            vec![(60, 1, A), (63, 1, A)]
        );
    }

    #[test]
    fn slashing_operations_are_double_sign_evidence() {
        use crate::chain::{AttesterSlashing, ProposerSlashing};
        use EvidenceKind::DoubleSign as D;
        let mut b = block(20, 99, vec![], None);
        b.attester_slashings.push(AttesterSlashing {
            attesting_indices_1: [3, 5, 7].map(ValidatorIndex).to_vec(),
            attesting_indices_2: [5, 3].map(ValidatorIndex).to_vec(),
            target_epoch: Epoch(1),
        });
        b.proposer_slashings.push(ProposerSlashing {
            proposer_index: ValidatorIndex(4),
            slot: Slot(3),
        });
        // 7 is in one attestation only; 3 is not watched.
        assert_eq!(
            found(&b, &index(&[1]), &HashMap::new(), &[4, 5, 7]),
            vec![(4, 0, D), (5, 1, D)]
        );
    }

    #[test]
    fn pool_votes_and_pool_slashings_are_evidence_by_their_own_epochs() {
        use crate::chain::{AttesterSlashing, ProposerSlashing};
        use EvidenceKind::{DoubleSign as D, PoolAttestation as P};
        let ix = index(&[1]);
        let slashings = [AttesterSlashing {
            attesting_indices_1: [3, 5].map(ValidatorIndex).to_vec(),
            attesting_indices_2: [5].map(ValidatorIndex).to_vec(),
            target_epoch: Epoch(2),
        }];
        let proposers = [ProposerSlashing {
            proposer_index: ValidatorIndex(4),
            slot: Slot(25),
        }];
        let got: Vec<(u64, u64, EvidenceKind)> = pool_evidence(
            &spec(),
            // Slot 9: committee 1 = 12..15, bit 2 is 14; slot 7 has no
            // committees here and is skipped.
            &[electra(9, &[1], &[2]), electra(7, &[0], &[0])],
            &slashings,
            &proposers,
            &ix,
            &watched(&[14, 5, 4, 3, 56]),
        )
        .unwrap()
        .into_iter()
        .map(|s| (s.validator_index.0, s.epoch.0, s.kind))
        .collect();
        // 3 is in one attestation of the slashing only.
        assert_eq!(got, vec![(4, 3, D), (5, 2, D), (14, 1, P)]);
        // An aggregate that does not fit its committee is an error.
        let bad = Attestation {
            aggregation_bits: BitList::from_bits(7, [0]),
            ..electra(9, &[1], &[])
        };
        assert!(pool_evidence(&spec(), &[bad], &[], &[], &ix, &watched(&[12])).is_err());
    }

    #[test]
    fn two_different_pool_votes_for_one_target_are_double_signing() {
        use EvidenceKind::{DoubleSign as D, PoolAttestation as P};
        let ix = index(&[1, 2]);
        let other_head = |mut a: Attestation| {
            a.data.beacon_block_root = Root([9; 32]);
            a
        };
        // Slot 9: committee 1 = 12..15 (bit 2 is 14, bit 3 is 15).
        // (name, pool, evidence as (validator, epoch, kind))
        type Case = (
            &'static str,
            Vec<Attestation>,
            Vec<(u64, u64, EvidenceKind)>,
        );
        let cases: Vec<Case> = vec![
            (
                "another head for the same target",
                vec![
                    electra(9, &[1], &[2]),
                    other_head(electra(9, &[1], &[2, 3])),
                ],
                vec![(14, 1, P), (14, 1, D), (15, 1, P)],
            ),
            (
                "the same vote in two aggregates",
                vec![electra(9, &[1], &[2]), electra(9, &[1], &[2, 3])],
                vec![(14, 1, P), (15, 1, P)],
            ),
            (
                "different validators' different votes",
                vec![electra(9, &[1], &[2]), other_head(electra(9, &[1], &[3]))],
                vec![(14, 1, P), (15, 1, P)],
            ),
            (
                "another target epoch is no conflict",
                vec![electra(9, &[1], &[2]), {
                    let mut a = electra(17, &[1], &[2]);
                    a.data.beacon_block_root = Root([9; 32]);
                    a
                }],
                vec![(14, 1, P), (14, 2, P)],
            ),
        ];
        for (name, pool, want) in cases {
            let got: Vec<(u64, u64, EvidenceKind)> =
                pool_evidence(&spec(), &pool, &[], &[], &ix, &watched(&[14, 15]))
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.validator_index.0, s.epoch.0, s.kind))
                    .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn phase0_aggregates_use_the_data_index() {
        let ix = index(&[1]);
        let att = Attestation {
            aggregation_bits: BitList::from_bits(4, [2]),
            committee_bits: None,
            data: data(8, 1),
        };
        let b = block(9, 99, vec![att], None);
        assert_eq!(
            found(&b, &ix, &HashMap::new(), &[6, 5]),
            vec![(6, 1, EvidenceKind::Attestation)]
        );
    }

    #[test]
    fn votes_of_epochs_without_committees_are_skipped() {
        let ix = index(&[1]);
        let b = block(9, 99, vec![electra(7, &[0], &[0, 1, 2, 3])], None);
        assert!(found(&b, &ix, &HashMap::new(), &[56, 57]).is_empty());
    }

    #[test]
    fn proposals_and_sync_signatures_take_their_own_epochs() {
        let sync: SyncCommittees = [(0, (20..28).map(ValidatorIndex).collect())]
            .into_iter()
            .collect();
        let ix = index(&[]);
        // Block at slot 8 (epoch 1, period 0) signs for slot 7 (epoch 0).
        let b = block(8, 21, vec![], Some(vec![0, 3]));
        assert_eq!(
            found(&b, &ix, &sync, &[20, 21, 23]),
            vec![
                (20, 0, EvidenceKind::SyncSignature),
                (21, 1, EvidenceKind::Proposal),
                (23, 0, EvidenceKind::SyncSignature),
            ]
        );
        // Period 1 (slots 16..) is not known: its sync bits are skipped.
        let b = block(16, 5, vec![], Some(vec![0]));
        assert!(found(&b, &ix, &sync, &[20]).is_empty());
    }

    #[test]
    fn aggregates_that_do_not_fit_their_committees_are_errors() {
        let ix = index(&[1]);
        let short = Attestation {
            aggregation_bits: BitList::from_bits(3, [0]),
            ..electra(9, &[0], &[])
        };
        let err = block_evidence(
            &spec(),
            &block(10, 1, vec![short], None),
            &ix,
            &HashMap::new(),
            &watched(&[8]),
        )
        .unwrap_err();
        assert!(
            err.contains("aggregation bits hold 3 bits, the committees 4"),
            "{err}"
        );
        let missing = electra(9, &[5], &[0]);
        let err = block_evidence(
            &spec(),
            &block(10, 1, vec![missing], None),
            &ix,
            &HashMap::new(),
            &watched(&[8]),
        )
        .unwrap_err();
        assert!(err.contains("no committee 5 at slot 9"), "{err}");
        let sync: SyncCommittees = [(0, vec![ValidatorIndex(1); 4])].into_iter().collect();
        let err = block_evidence(
            &spec(),
            &block(3, 1, vec![], Some(vec![0])),
            &ix,
            &sync,
            &watched(&[1]),
        )
        .unwrap_err();
        assert!(
            err.contains("sync bits hold 8 bits, the committee 4"),
            "{err}"
        );
    }
}
