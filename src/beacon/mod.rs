//! Everything that speaks HTTP to beacon nodes.
//!
//! Owns: the Beacon API wire types (`wire`), one node's typed client
//! (`client`), and the pool of nodes (`pool`): health checks, ranking,
//! failover, per-node rate limits, network-identity checks and cross-checks.
//! Must not: decide verdicts, or leak wire types: everything it returns is a
//! domain type from `crate::chain`.

pub mod client;
pub mod events;
pub mod pool;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::chain::{Root, Slot};

pub use client::BeaconClient;
pub use pool::{BeaconPool, NodeHealth, NodeReport};

/// Is a node the operator's own, or a provider's (rate-limited)?
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Private,
    Public,
}

/// How to reach one beacon node. Header values may hold credentials: they
/// are never logged, and `Debug` hides them.
#[derive(Clone)]
pub struct NodeConfig {
    pub name: String,
    pub url: url::Url,
    pub role: NodeRole,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_requests_per_second: Option<f64>,
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("role", &self.role)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .finish()
    }
}

/// A URL fit for logs: user, password and query removed.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
}

/// A block as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockId {
    Head,
    Finalized,
    Genesis,
    Slot(Slot),
    Root(Root),
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::Head => f.write_str("head"),
            BlockId::Finalized => f.write_str("finalized"),
            BlockId::Genesis => f.write_str("genesis"),
            BlockId::Slot(s) => write!(f, "{s}"),
            BlockId::Root(r) => write!(f, "{r}"),
        }
    }
}

/// A state as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateId {
    Head,
    Finalized,
    Slot(Slot),
    Root(Root),
}

impl fmt::Display for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateId::Head => f.write_str("head"),
            StateId::Finalized => f.write_str("finalized"),
            StateId::Slot(s) => write!(f, "{s}"),
            StateId::Root(r) => write!(f, "{r}"),
        }
    }
}

/// What went wrong talking to a beacon node. Each variant names the node and
/// the endpoint (a route template such as `/eth/v2/beacon/blocks/{block_id}`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum BeaconError {
    #[error("{node}: {endpoint}: timed out after {after:?}")]
    Timeout {
        node: String,
        endpoint: String,
        after: Duration,
    },
    #[error("{node}: {endpoint}: {message}")]
    Transport {
        node: String,
        endpoint: String,
        message: String,
    },
    /// The node answered with an HTTP error. 404 is a normal answer for many
    /// routes (empty slot, pruned state) and is mapped to `Ok(None)` there.
    #[error("{node}: {endpoint}: HTTP {status}: {message}")]
    Status {
        node: String,
        endpoint: String,
        status: u16,
        message: String,
    },
    /// The node answered 200 with a body that does not have the expected shape.
    #[error("{node}: {endpoint}: bad response: {message}")]
    Decode {
        node: String,
        endpoint: String,
        message: String,
    },
    /// The request was not sent: the node is over its configured rate.
    #[error("{node}: {endpoint}: rate limit reached")]
    RateLimited { node: String, endpoint: String },
    /// Every usable node failed; each error is listed.
    #[error("{endpoint}: every beacon node failed: {}", list_errors(.errors))]
    AllFailed {
        endpoint: String,
        errors: Vec<BeaconError>,
    },
    #[error("no usable beacon node")]
    NoUsableNode,
}

fn list_errors(errors: &[BeaconError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl BeaconError {
    /// A 4xx other than 404/429 is the node's considered answer ("not for
    /// this epoch"); anything else may work on another node or later.
    pub fn is_range_limit(&self) -> bool {
        match self {
            BeaconError::Status { status, .. } => *status == 400 || *status == 500,
            BeaconError::AllFailed { errors, .. } => errors.iter().all(|e| e.is_range_limit()),
            _ => false,
        }
    }
}
