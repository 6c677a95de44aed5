//! PURE verdicts: given what the chain says (blocks, committees, duties,
//! registry entries) decide, per watched validator and epoch, what happened.
//!
//! Owns: every rule that turns chain data into a verdict, with the spec
//! reference next to it. Must not: do IO, read the clock (time comes in as
//! arguments), or know wire formats.

pub mod attestations;
pub mod balances;
pub mod canonical;
pub mod crosscheck;
pub mod doublesign;
pub mod network;
pub mod proposals;
pub mod rewards;
pub mod sync;

use serde::{Deserialize, Serialize};

use crate::chain::{Epoch, Gwei, Root, Slot, ValidatorIndex, ValidatorStatus};

pub use canonical::CanonicalChain;

/// The verdict on one validator's attestation duty in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationStatus {
    /// A canonical block carries the vote.
    Included,
    /// The inclusion window closed and no canonical block carries the vote.
    Missed,
    /// Not (yet) included, and the window is still open.
    Pending,
    /// Not active in this epoch: no duty, never a miss.
    Inactive,
    /// The data needed is no longer served; `reason` says what is missing.
    Unknown,
}

impl AttestationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Included => "included",
            Self::Missed => "missed",
            Self::Pending => "pending",
            Self::Inactive => "inactive",
            Self::Unknown => "unknown",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "included" => Self::Included,
            "missed" => Self::Missed,
            "pending" => Self::Pending,
            "inactive" => Self::Inactive,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationVerdict {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    pub status: AttestationStatus,
    /// The slot the validator had to attest at (from its committee).
    pub duty_slot: Option<Slot>,
    /// Slot of the FIRST canonical block that carries the vote.
    pub inclusion_slot: Option<Slot>,
    /// Raw delay: inclusion slot − duty slot (≥ 1), what the spec rewards use.
    pub inclusion_delay: Option<u64>,
    /// Included later than the first canonical block after the duty slot
    /// (empty slots in between do not make a vote late).
    pub late: Option<bool>,
    pub source_correct: Option<bool>,
    pub target_correct: Option<bool>,
    pub head_correct: Option<bool>,
    /// Why the verdict is `unknown`, or other caveats.
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Proposed,
    Missed,
    Orphaned,
    Unknown,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Missed => "missed",
            Self::Orphaned => "orphaned",
            Self::Unknown => "unknown",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "proposed" => Self::Proposed,
            "missed" => Self::Missed,
            "orphaned" => Self::Orphaned,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalVerdict {
    pub slot: Slot,
    /// Who was to propose. None only for an `unknown` empty slot whose
    /// proposer duties no node serves any more: nobody can be blamed, and
    /// the slot is still stored (no slot is absent from the history).
    pub validator_index: Option<ValidatorIndex>,
    pub status: ProposalStatus,
    /// The canonical block (proposed) or the orphaned one.
    pub block_root: Option<Root>,
    pub reason: Option<String>,
}

/// Sync-committee participation of one member over one epoch's slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncVerdict {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    /// Slots whose signature made it into the next canonical block.
    pub participated: u32,
    /// Slots with a canonical block at S+1 that lacks the signature.
    pub missed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRecord {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    #[serde(rename = "balance_gwei")]
    pub balance: Gwei,
    #[serde(rename = "effective_balance_gwei")]
    pub effective_balance: Gwei,
    pub status: ValidatorStatus,
    pub slashed: bool,
    /// Balance change since the previous stored epoch (None for the first).
    #[serde(rename = "balance_change_gwei")]
    pub balance_change: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashingKind {
    Proposer,
    Attester,
}

impl SlashingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposer => "proposer",
            Self::Attester => "attester",
        }
    }
}

/// A watched validator found slashed by evidence in a canonical block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashingRecord {
    pub validator_index: ValidatorIndex,
    pub epoch: Epoch,
    /// The canonical block that carried the evidence.
    pub included_in_slot: Slot,
    pub kind: SlashingKind,
}

/// Errors that mean the inputs contradict each other (wrong committees for
/// the epoch, a bitlist of the wrong length): the epoch must be refetched,
/// not judged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnalysisError {
    #[error("attestation at slot {slot} in block {block_slot}: {problem}")]
    AttestationShape {
        slot: Slot,
        block_slot: Slot,
        problem: String,
    },
}
