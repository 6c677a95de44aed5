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
