//! Block contents in domain form: what the analysis needs from a block, and
//! nothing else. Bitfields keep their SSZ bytes; `BitList` / `BitVector`
//! decode them by the SSZ rules (little-endian bit order within each byte,
//! a bitlist's highest set bit is its length delimiter).

use serde::{Deserialize, Serialize};

use super::{Epoch, Fork, Root, Slot, ValidatorIndex};

/// An SSZ `Bitlist[N]`: data bits followed by one delimiter bit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitList {
    bytes: Vec<u8>,
    len: usize,
}

/// Why a bitfield could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitsError {
    #[error("a bitlist needs at least one byte")]
    Empty,
    #[error("the last byte of a bitlist must hold its delimiter bit")]
    NoDelimiter,
    #[error("a bitvector of {bits} bits needs {expected} bytes, got {got}")]
    VectorLength {
        bits: usize,
        expected: usize,
        got: usize,
    },
}

impl BitList {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BitsError> {
        let last = *bytes.last().ok_or(BitsError::Empty)?;
        if last == 0 {
            return Err(BitsError::NoDelimiter);
        }
        let last_bits = 8 - last.leading_zeros() as usize; // bit_length(last)
        let len = 8 * (bytes.len() - 1) + last_bits - 1;
        Ok(Self { bytes, len })
    }

    /// Builds a bitlist of `len` bits with the given bits set (tests, simulator).
    pub fn from_bits(len: usize, set: impl IntoIterator<Item = usize>) -> Self {
        let mut bytes = vec![0u8; len / 8 + 1];
        for i in set {
            if i < len {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        bytes[len / 8] |= 1 << (len % 8);
        Self { bytes, len }
    }

    /// Number of data bits (without the delimiter).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && (self.bytes[i / 8] >> (i % 8)) & 1 == 1
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// An SSZ `Bitvector[N]` (fixed length, no delimiter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitVector {
    bytes: Vec<u8>,
    len: usize,
}

impl BitVector {
    pub fn from_bytes(bytes: Vec<u8>, len: usize) -> Result<Self, BitsError> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(BitsError::VectorLength {
                bits: len,
                expected,
                got: bytes.len(),
            });
        }
        Ok(Self { bytes, len })
    }

    pub fn from_bits(len: usize, set: impl IntoIterator<Item = usize>) -> Self {
        let mut bytes = vec![0u8; len.div_ceil(8)];
        for i in set {
            if i < len {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        Self { bytes, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && (self.bytes[i / 8] >> (i % 8)) & 1 == 1
    }

    /// Indices of the set bits, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: Epoch,
    pub root: Root,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttestationData {
    pub slot: Slot,
    /// Committee index before Electra; 0 in Electra/Fulu (EIP-7549); the
    /// payload-status flag in Gloas. Never a committee index from Electra on.
    pub index: u64,
    pub beacon_block_root: Root,
    pub source: Checkpoint,
    pub target: Checkpoint,
}

/// An aggregate attestation as it sits in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub aggregation_bits: BitList,
    /// `Some` from Electra on: the committees of `data.slot` this aggregate
    /// spans, in ascending order; their members are concatenated in
    /// `aggregation_bits`.
    pub committee_bits: Option<BitVector>,
    pub data: AttestationData,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockHeader {
    pub root: Root,
    pub slot: Slot,
    pub proposer_index: ValidatorIndex,
    pub parent_root: Root,
    pub state_root: Root,
}

/// Two signed headers by one proposer for one slot (slashable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerSlashing {
    pub proposer_index: ValidatorIndex,
    pub slot: Slot,
}

/// Two conflicting indexed attestations; the validators in both are slashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttesterSlashing {
    pub attesting_indices_1: Vec<ValidatorIndex>,
    pub attesting_indices_2: Vec<ValidatorIndex>,
    pub target_epoch: Epoch,
}

impl AttesterSlashing {
    /// The validators slashed by this evidence: those in both attestations.
    pub fn slashed(&self) -> Vec<ValidatorIndex> {
        let second: std::collections::HashSet<_> = self.attesting_indices_2.iter().collect();
        let mut out: Vec<_> = self
            .attesting_indices_1
            .iter()
            .filter(|v| second.contains(v))
            .copied()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoluntaryExit {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
}

/// What valwatch reads of one block. Fields a fork does not have are empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub fork: Fork,
    pub attestations: Vec<Attestation>,
    /// The block's `sync_aggregate.sync_committee_bits` (Altair+): the
    /// signatures of the sync committee for the PREVIOUS slot.
    pub sync_committee_bits: Option<BitVector>,
    pub proposer_slashings: Vec<ProposerSlashing>,
    pub attester_slashings: Vec<AttesterSlashing>,
    pub voluntary_exits: Vec<VoluntaryExit>,
}

/// One beacon committee of one slot; `validators[j]` is aggregation bit j.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    pub slot: Slot,
    pub index: u64,
    pub validators: Vec<ValidatorIndex>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerDuty {
    pub slot: Slot,
    pub validator_index: ValidatorIndex,
}

/// Proposer duties of one epoch with the block root they depend on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerDuties {
    pub epoch: Epoch,
    pub dependent_root: Root,
    pub duties: Vec<ProposerDuty>,
}

/// One validator's attestation duty, as `POST /eth/v1/validator/duties/attester/{epoch}`
/// states it: its seat `(slot, committee_index, position)` in a committee
/// of `committee_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttesterDuty {
    pub validator_index: ValidatorIndex,
    pub slot: Slot,
    pub committee_index: u64,
    pub committee_length: u64,
    pub position: u64,
}

/// Attester duties of some validators for one epoch, with the block root
/// their shuffling depends on (the last block before the previous epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttesterDuties {
    pub epoch: Epoch,
    pub dependent_root: Root,
    pub duties: Vec<AttesterDuty>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitlist_length_comes_from_the_delimiter() {
        // Sepolia cassette: one committee of 56, all set.
        let bl = BitList::from_bytes(hex::decode("ffffffffffffff01").unwrap()).unwrap();
        assert_eq!(bl.len(), 56);
        assert!((0..56).all(|i| bl.get(i)));
        assert!(!bl.get(56));
        let bl = BitList::from_bytes(vec![0b0000_0101]).unwrap();
        assert_eq!((bl.len(), bl.get(0), bl.get(1)), (2, true, false));
        assert_eq!(BitList::from_bytes(vec![0x01]).unwrap().len(), 0);
        assert_eq!(
            BitList::from_bytes(vec![0xff, 0x00]),
            Err(BitsError::NoDelimiter)
        );
        assert_eq!(BitList::from_bytes(vec![]), Err(BitsError::Empty));
    }

    #[test]
    fn bitlist_from_bits_round_trips() {
        for len in [0usize, 1, 7, 8, 9, 56, 130] {
            let bl = BitList::from_bits(len, [0, len / 2, len.saturating_sub(1)]);
            let back = BitList::from_bytes(bl.as_bytes().to_vec()).unwrap();
            assert_eq!(back, bl, "len {len}");
        }
    }

    #[test]
    fn bitvector_reads_little_endian_bits() {
        let bv = BitVector::from_bytes(hex::decode("0300000000000000").unwrap(), 64).unwrap();
        assert_eq!(bv.ones().collect::<Vec<_>>(), vec![0, 1]);
        assert!(BitVector::from_bytes(vec![0; 7], 64).is_err());
    }

    #[test]
    fn attester_slashing_slashes_the_intersection() {
        let s = AttesterSlashing {
            attesting_indices_1: vec![ValidatorIndex(1), ValidatorIndex(2), ValidatorIndex(3)],
            attesting_indices_2: vec![ValidatorIndex(3), ValidatorIndex(2), ValidatorIndex(9)],
            target_epoch: Epoch(4),
        };
        assert_eq!(s.slashed(), vec![ValidatorIndex(2), ValidatorIndex(3)]);
    }
}
