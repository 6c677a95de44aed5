//! The pool of beacon nodes: health, ranking, failover, cross-checks.

use std::sync::Arc;

use super::{BeaconClient, BeaconError};

/// What valwatch last knew of one node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeHealth {
    Unknown,
    Healthy,
    Syncing,
    Lagging,
    Unreachable,
    /// On another network than the reference node: never used again.
    WrongNetwork,
}

/// One node as the status page and metrics show it (no credentials).
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeReport {
    pub name: String,
    pub url: String,
    pub health: NodeHealth,
    pub head_slot: Option<u64>,
    pub last_error: Option<String>,
}

pub struct BeaconPool {
    pub nodes: Vec<Arc<BeaconClient>>,
}

impl BeaconPool {
    pub fn reports(&self) -> Vec<NodeReport> {
        Vec::new()
    }

    pub fn first_error(&self) -> Option<BeaconError> {
        None
    }
}
