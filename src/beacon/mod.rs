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
    /// The answer is larger than the most this route can legitimately
    /// return (`client::answer_cap`); it was abandoned unread.
    #[error("{node}: {endpoint}: answer larger than {limit} bytes, the most this route can return; not read")]
    TooLarge {
        node: String,
        endpoint: String,
        limit: usize,
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
    /// A 4xx other than 404 (handled as "not found" by the routes), 408
    /// and 429 (the node is busy) is the node's considered answer ("not
    /// for this epoch"); anything else may work on another node or later.
    ///
    /// A 5xx is never a range limit, even though Lodestar answers 500 for
    /// proposer duties and committees outside its range: a 500 is also what
    /// a node with a failing database or a crashed handler answers, and
    /// taking that for "gone" stored epochs as `unknown` for good instead
    /// of failing over and retrying (issue 11). Data a node truly no longer
    /// serves then stays un-judged while the node answers 500 (the monitor
    /// retries, the lag and stall alerts show it) rather than being
    /// written off on one node's error.
    pub fn is_range_limit(&self) -> bool {
        match self {
            BeaconError::Status { status, .. } => is_range_limit_status(*status),
            BeaconError::AllFailed { errors, .. } => {
                !errors.is_empty() && errors.iter().all(|e| e.is_range_limit())
            }
            _ => false,
        }
    }
}

/// PURE: an HTTP status that means "not for this request, on this node":
/// a 4xx other than 404, 408 (request timeout) and 429 (too many requests).
pub fn is_range_limit_status(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 404 | 408 | 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> BeaconError {
        BeaconError::Status {
            node: "n".into(),
            endpoint: "/e".into(),
            status: code,
            message: String::new(),
        }
    }

    #[test]
    fn only_a_considered_4xx_is_a_range_limit_never_a_5xx() {
        let cases = [
            (
                400,
                true,
                "bad request: Lighthouse's and Lodestar's out of range",
            ),
            (403, true, "a provider's plan does not include it"),
            (404, false, "not found is an answer of its own"),
            (408, false, "the node was too slow"),
            (429, false, "the node is busy"),
            (500, false, "a failing database"),
            (502, false, "a proxy without its backend"),
            (503, false, "syncing or overloaded"),
            (200, false, "not an error"),
        ];
        for (code, want, why) in cases {
            assert_eq!(status(code).is_range_limit(), want, "{code}: {why}");
        }
    }

    #[test]
    fn every_node_must_decline_for_the_data_to_be_gone() {
        let all = |errors| BeaconError::AllFailed {
            endpoint: "/e".into(),
            errors,
        };
        assert!(all(vec![status(400), status(400)]).is_range_limit());
        assert!(!all(vec![status(400), status(500)]).is_range_limit());
        assert!(!all(vec![status(500), status(500)]).is_range_limit());
        let timeout = BeaconError::Timeout {
            node: "n".into(),
            endpoint: "/e".into(),
            after: Duration::from_secs(1),
        };
        assert!(!all(vec![status(400), timeout]).is_range_limit());
        assert!(!all(Vec::new()).is_range_limit(), "nobody answered");
        let too_large = BeaconError::TooLarge {
            node: "n".into(),
            endpoint: "/e".into(),
            limit: 1,
        };
        assert!(!too_large.is_range_limit());
    }
}
