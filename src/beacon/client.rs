//! One beacon node's typed client: one method per route.

use crate::chain::{
    Block, BlockHeader, ChainSpec, Checkpoint, Committee, Epoch, ProposerDuties, Pubkey, Root,
    ValidatorIndex, ValidatorInfo,
};

use super::{BeaconError, BlockId, NodeConfig, StateId};

/// `GET /eth/v1/node/syncing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    pub head_slot: crate::chain::Slot,
    pub sync_distance: u64,
    pub is_syncing: bool,
    pub is_optimistic: bool,
    pub el_offline: bool,
}

/// `GET /eth/v1/beacon/states/{state_id}/finality_checkpoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finality {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub finalized: Checkpoint,
}

/// A validator named by index or by public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValidatorId {
    Index(ValidatorIndex),
    Pubkey(Pubkey),
}

/// Network identity from `/eth/v1/beacon/genesis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
}

#[derive(Clone, Debug)]
pub struct BeaconClient {
    pub config: NodeConfig,
}

impl BeaconClient {
    pub fn new(config: NodeConfig) -> Result<Self, BeaconError> {
        Ok(Self { config })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `GET /eth/v1/beacon/genesis`.
    pub async fn genesis(&self) -> Result<Genesis, BeaconError> {
        unimplemented_route(self, "/eth/v1/beacon/genesis")
    }

    /// `GET /eth/v1/config/spec` combined with the genesis.
    pub async fn chain_spec(&self, _genesis: &Genesis) -> Result<ChainSpec, BeaconError> {
        unimplemented_route(self, "/eth/v1/config/spec")
    }

    /// `GET /eth/v1/node/syncing`.
    pub async fn syncing(&self) -> Result<SyncStatus, BeaconError> {
        unimplemented_route(self, "/eth/v1/node/syncing")
    }

    /// `GET /eth/v1/beacon/headers/{block_id}`; `None` on 404.
    pub async fn header(&self, _id: BlockId) -> Result<Option<BlockHeader>, BeaconError> {
        unimplemented_route(self, "/eth/v1/beacon/headers/{block_id}")
    }

    /// `GET /eth/v2/beacon/blocks/{block_id}`; `None` on 404. The block root
    /// is not in the body: the caller passes the root it knows from the
    /// header (`root`), else it is computed as unknown (zero).
    pub async fn block(
        &self,
        _id: BlockId,
        _root: Option<Root>,
    ) -> Result<Option<Block>, BeaconError> {
        unimplemented_route(self, "/eth/v2/beacon/blocks/{block_id}")
    }

    /// `GET /eth/v1/beacon/states/{state_id}/committees?epoch=E`; `None` on 404.
    pub async fn committees(
        &self,
        _state: StateId,
        _epoch: Epoch,
    ) -> Result<Option<Vec<Committee>>, BeaconError> {
        unimplemented_route(self, "/eth/v1/beacon/states/{state_id}/committees")
    }

    /// `GET /eth/v1/beacon/states/{state_id}/sync_committees?epoch=E`: members by position.
    pub async fn sync_committee(
        &self,
        _state: StateId,
        _epoch: Epoch,
    ) -> Result<Option<Vec<ValidatorIndex>>, BeaconError> {
        unimplemented_route(self, "/eth/v1/beacon/states/{state_id}/sync_committees")
    }

    /// `GET /eth/v1/validator/duties/proposer/{epoch}`.
    pub async fn proposer_duties(&self, _epoch: Epoch) -> Result<ProposerDuties, BeaconError> {
        unimplemented_route(self, "/eth/v1/validator/duties/proposer/{epoch}")
    }

    /// `POST /eth/v1/beacon/states/{state_id}/validators` with `{"ids": [...]}`,
    /// in batches; `None` on 404 (state not available).
    pub async fn validators(
        &self,
        _state: StateId,
        _ids: &[ValidatorId],
    ) -> Result<Option<Vec<ValidatorInfo>>, BeaconError> {
        unimplemented_route(self, "/eth/v1/beacon/states/{state_id}/validators")
    }

    /// `GET /eth/v1/beacon/states/{state_id}/finality_checkpoints`.
    pub async fn finality(&self, _state: StateId) -> Result<Finality, BeaconError> {
        unimplemented_route(
            self,
            "/eth/v1/beacon/states/{state_id}/finality_checkpoints",
        )
    }

    /// `POST /eth/v1/validator/liveness/{epoch}`.
    pub async fn liveness(
        &self,
        _epoch: Epoch,
        _ids: &[ValidatorIndex],
    ) -> Result<Vec<(ValidatorIndex, bool)>, BeaconError> {
        unimplemented_route(self, "/eth/v1/validator/liveness/{epoch}")
    }
}

fn unimplemented_route<T>(client: &BeaconClient, endpoint: &str) -> Result<T, BeaconError> {
    Err(BeaconError::Transport {
        node: client.config.name.clone(),
        endpoint: endpoint.to_string(),
        message: "not implemented yet".into(),
    })
}
