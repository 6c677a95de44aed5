//! Domain types of the beacon chain that the rest of valwatch works with.
//!
//! Owns: slots, epochs, validator indices, roots, pubkeys, forks, the chain
//! spec (the few constants a monitor needs) and the slot clock.
//! Must not: know any wire format (quoted integers, hex strings live in
//! `beacon::wire`) or do IO.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod block;
pub use block::*;

use serde::{Deserialize, Serialize};

macro_rules! number_newtype {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Clone,
            Copy,
            Debug,
            Default,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

number_newtype!(Slot, "A slot number (12 s on mainnet).");
number_newtype!(Epoch, "An epoch number (`SLOTS_PER_EPOCH` slots).");
number_newtype!(ValidatorIndex, "A validator's index in the registry.");
number_newtype!(Gwei, "An amount in Gwei (10^-9 ETH).");

/// `FAR_FUTURE_EPOCH` of the consensus specs: "not scheduled".
pub const FAR_FUTURE_EPOCH: u64 = u64::MAX;

/// A 32-byte root (block root, state root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Root(pub [u8; 32]);

impl Root {
    pub const ZERO: Root = Root([0; 32]);

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a hex value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HexError {
    #[error("missing 0x prefix")]
    NoPrefix,
    #[error("not hexadecimal")]
    NotHex,
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
}

/// Decodes a `0x`-prefixed hex string into bytes.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let body = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or(HexError::NoPrefix)?;
    hex::decode(body).map_err(|_| HexError::NotHex)
}

fn decode_fixed<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let bytes = decode_hex(s)?;
    let got = bytes.len();
    bytes
        .try_into()
        .map_err(|_| HexError::Length { expected: N, got })
}

impl FromStr for Root {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_fixed::<32>(s).map(Root)
    }
}

impl Serialize for Root {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Root {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validator's BLS public key (48 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pubkey(pub [u8; 48]);

impl Pubkey {
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Pubkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Pubkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Pubkey {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_fixed::<48>(s).map(Pubkey)
    }
}

impl Serialize for Pubkey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Pubkey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The consensus forks valwatch knows. `Unknown` is a fork newer than this
/// build: blocks of it are read for what every fork has in common (slot,
/// proposer, parent) and their attestations are read in the newest known
/// format only if they parse, never guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fork {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
    Gloas,
    Unknown,
}

impl Fork {
    pub fn from_name(name: &str) -> Fork {
        match name.to_ascii_lowercase().as_str() {
            "phase0" => Fork::Phase0,
            "altair" => Fork::Altair,
            "bellatrix" => Fork::Bellatrix,
            "capella" => Fork::Capella,
            "deneb" => Fork::Deneb,
            "electra" => Fork::Electra,
            "fulu" => Fork::Fulu,
            "gloas" => Fork::Gloas,
            _ => Fork::Unknown,
        }
    }

    /// EIP-7549 (Electra): one aggregate may span several committees,
    /// named by `committee_bits`; `data.index` is no committee index any more.
    pub fn has_committee_bits(self) -> bool {
        self >= Fork::Electra
    }

    /// EIP-7045 (Deneb): a vote for epoch N can be included until the end of
    /// epoch N+1, instead of within 32 slots of its own slot.
    pub fn has_extended_inclusion(self) -> bool {
        self >= Fork::Deneb
    }

    /// Altair introduced sync committees.
    pub fn has_sync_committee(self) -> bool {
        self >= Fork::Altair
    }
}

impl fmt::Display for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Fork::Phase0 => "phase0",
            Fork::Altair => "altair",
            Fork::Bellatrix => "bellatrix",
            Fork::Capella => "capella",
            Fork::Deneb => "deneb",
            Fork::Electra => "electra",
            Fork::Fulu => "fulu",
            Fork::Gloas => "gloas",
            Fork::Unknown => "unknown",
        };
        f.write_str(s)
    }
}

/// The constants of one network that valwatch needs, read from
/// `/eth/v1/config/spec` and `/eth/v1/beacon/genesis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    pub slots_per_epoch: u64,
    /// `SLOT_DURATION_MS`, or `SECONDS_PER_SLOT` × 1000 on nodes that predate
    /// consensus-specs #4926.
    pub slot_duration_ms: u64,
    pub epochs_per_sync_committee_period: u64,
    /// Fork activation epochs in order; a fork that is not scheduled is absent.
    pub forks: Vec<(Fork, Epoch)>,
}

impl ChainSpec {
    /// Mainnet-like constants with every fork up to Electra at genesis, for tests.
    pub fn test_spec(slots_per_epoch: u64, slot_duration_ms: u64, genesis_time: u64) -> ChainSpec {
        ChainSpec {
            genesis_time,
            genesis_validators_root: Root([0x11; 32]),
            slots_per_epoch,
            slot_duration_ms,
            epochs_per_sync_committee_period: 256,
            forks: vec![
                (Fork::Phase0, Epoch(0)),
                (Fork::Altair, Epoch(0)),
                (Fork::Bellatrix, Epoch(0)),
                (Fork::Capella, Epoch(0)),
                (Fork::Deneb, Epoch(0)),
                (Fork::Electra, Epoch(0)),
            ],
        }
    }

    pub fn epoch_of(&self, slot: Slot) -> Epoch {
        Epoch(slot.0 / self.slots_per_epoch)
    }

    pub fn start_slot(&self, epoch: Epoch) -> Slot {
        Slot(epoch.0.saturating_mul(self.slots_per_epoch))
    }

    pub fn end_slot(&self, epoch: Epoch) -> Slot {
        Slot(self.start_slot(epoch).0 + self.slots_per_epoch - 1)
    }

    pub fn sync_period_of(&self, epoch: Epoch) -> u64 {
        epoch.0 / self.epochs_per_sync_committee_period.max(1)
    }

    /// The fork in force at `epoch`.
    pub fn fork_at(&self, epoch: Epoch) -> Fork {
        self.forks
            .iter()
            .filter(|(_, e)| *e <= epoch)
            .map(|(f, _)| *f)
            .max()
            .unwrap_or(Fork::Phase0)
    }

    /// Start time of `slot`, as seconds since the Unix epoch (fractional).
    pub fn slot_start_ms(&self, slot: Slot) -> u128 {
        self.genesis_time as u128 * 1000 + slot.0 as u128 * self.slot_duration_ms as u128
    }

    /// When `slot` starts.
    pub fn time_of(&self, slot: Slot) -> SystemTime {
        let ms = u64::try_from(self.slot_start_ms(slot)).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// The slot at `now`; `None` before genesis.
    pub fn slot_at(&self, now: SystemTime) -> Option<Slot> {
        let ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis();
        let genesis_ms = self.genesis_time as u128 * 1000;
        if ms < genesis_ms || self.slot_duration_ms == 0 {
            return None;
        }
        Some(Slot(
            ((ms - genesis_ms) / self.slot_duration_ms as u128) as u64,
        ))
    }

    pub fn slot_duration(&self) -> Duration {
        Duration::from_millis(self.slot_duration_ms)
    }

    /// Last slot at which a vote for `epoch` can be included (end of the
    /// next epoch since Deneb, EIP-7045). Before Deneb the limit is 32 slots
    /// after the vote's own slot, which ends no later than this.
    pub fn inclusion_window_end(&self, epoch: Epoch) -> Slot {
        self.end_slot(Epoch(epoch.0 + 1))
    }
}

/// Where valwatch reads the time; manual in tests so nothing sleeps.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<SystemTime>);

impl ManualClock {
    pub fn new(at: SystemTime) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A validator's status as the Beacon API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorStatus {
    PendingInitialized,
    PendingQueued,
    ActiveOngoing,
    ActiveExiting,
    ActiveSlashed,
    ExitedUnslashed,
    ExitedSlashed,
    WithdrawalPossible,
    WithdrawalDone,
    Unknown,
}

impl ValidatorStatus {
    pub fn from_name(s: &str) -> Self {
        match s {
            "pending_initialized" => Self::PendingInitialized,
            "pending_queued" => Self::PendingQueued,
            "active_ongoing" => Self::ActiveOngoing,
            "active_exiting" => Self::ActiveExiting,
            "active_slashed" => Self::ActiveSlashed,
            "exited_unslashed" => Self::ExitedUnslashed,
            "exited_slashed" => Self::ExitedSlashed,
            "withdrawal_possible" => Self::WithdrawalPossible,
            "withdrawal_done" => Self::WithdrawalDone,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingInitialized => "pending_initialized",
            Self::PendingQueued => "pending_queued",
            Self::ActiveOngoing => "active_ongoing",
            Self::ActiveExiting => "active_exiting",
            Self::ActiveSlashed => "active_slashed",
            Self::ExitedUnslashed => "exited_unslashed",
            Self::ExitedSlashed => "exited_slashed",
            Self::WithdrawalPossible => "withdrawal_possible",
            Self::WithdrawalDone => "withdrawal_done",
            Self::Unknown => "unknown",
        }
    }
}

/// What the registry says of one validator at one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    pub index: ValidatorIndex,
    pub pubkey: Pubkey,
    pub balance: Gwei,
    pub effective_balance: Gwei,
    pub status: ValidatorStatus,
    pub slashed: bool,
    pub activation_epoch: Epoch,
    pub exit_epoch: Epoch,
}

impl ValidatorInfo {
    /// Active at `epoch` in the spec's sense (`is_active_validator`): only
    /// active validators have attester duties.
    pub fn is_active_at(&self, epoch: Epoch) -> bool {
        self.activation_epoch <= epoch && epoch < self.exit_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_epoch_arithmetic_follow_the_spec() {
        let spec = ChainSpec::test_spec(32, 12_000, 1_606_824_023);
        assert_eq!(spec.epoch_of(Slot(63)), Epoch(1));
        assert_eq!(spec.start_slot(Epoch(2)), Slot(64));
        assert_eq!(spec.end_slot(Epoch(2)), Slot(95));
        assert_eq!(spec.inclusion_window_end(Epoch(2)), Slot(127));
        let at = UNIX_EPOCH + Duration::from_secs(1_606_824_023 + 12 * 100 + 11);
        assert_eq!(spec.slot_at(at), Some(Slot(100)));
        assert_eq!(spec.slot_at(UNIX_EPOCH), None);
    }

    #[test]
    fn fork_at_picks_the_newest_scheduled_fork() {
        let mut spec = ChainSpec::test_spec(8, 2000, 0);
        spec.forks.retain(|(f, _)| *f != Fork::Electra);
        spec.forks.push((Fork::Electra, Epoch(5)));
        assert_eq!(spec.fork_at(Epoch(4)), Fork::Deneb);
        assert_eq!(spec.fork_at(Epoch(5)), Fork::Electra);
    }

    #[test]
    fn roots_and_pubkeys_round_trip_through_hex() {
        let r: Root = format!("0x{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(r.to_hex(), format!("0x{}", "ab".repeat(32)));
        assert_eq!(
            "0xabcd".parse::<Root>(),
            Err(HexError::Length {
                expected: 32,
                got: 2
            })
        );
        assert_eq!("abcd".parse::<Root>(), Err(HexError::NoPrefix));
        assert!(format!("0x{}", "zz".repeat(48)).parse::<Pubkey>().is_err());
    }
}
