//! Balance, status and slashing records.

use std::collections::HashMap;

use super::{BalanceRecord, SlashingRecord};
use crate::chain::{Block, ChainSpec, Epoch, Gwei, ValidatorIndex, ValidatorInfo};

pub fn balance_records(
    _epoch: Epoch,
    _current: &[ValidatorInfo],
    _previous: &HashMap<ValidatorIndex, Gwei>,
) -> Vec<BalanceRecord> {
    Vec::new()
}

pub fn find_slashings(
    _spec: &ChainSpec,
    _blocks: &[Block],
    _watched: &[ValidatorIndex],
) -> Vec<SlashingRecord> {
    Vec::new()
}
