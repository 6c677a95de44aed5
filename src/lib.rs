//! valwatch: an independent liveness monitor for Ethereum validators.
//!
//! Data flows one way: `beacon` reads the chain from several nodes,
//! `collect` gathers what one epoch needs, `analysis` (pure) judges it,
//! `store` keeps it, and `report` / `http` show it. See ARCHITECTURE.md.

pub mod alerting;
pub mod analysis;
pub mod app;
pub mod beacon;
pub mod bench;
pub mod chain;
pub mod cli;
pub mod collect;
pub mod config;
pub mod demo;
pub mod failover;
pub mod health;
pub mod http;
pub mod metrics;
pub mod monitor;
pub mod report;
pub mod sim;
pub mod sources;
pub mod status;
pub mod store;
pub mod watchlist;

/// An error with its whole chain of causes on one line, for logs: the
/// outermost message alone ("store: write failed", "alerting store") hides
/// the database's or the node's reason (issue 15). For an `anyhow::Error`
/// pass `e.as_ref()`.
pub fn causes(e: &(dyn std::error::Error + '_)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Some errors repeat their source in their own message.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_are_joined_in_order() {
        let io = std::io::Error::other("connection refused");
        let e = crate::store::StoreError::Database {
            op: "write",
            source: sqlx::Error::Io(io),
        };
        let text = super::causes(&e);
        assert!(text.starts_with("store: write failed: "), "{text}");
        assert!(text.ends_with("connection refused"), "{text}");
    }
}
