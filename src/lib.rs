//! valwatch: an independent liveness monitor for Ethereum validators.
//!
//! Data flows one way: `beacon` reads the chain from several nodes,
//! `collect` gathers what one epoch needs, `analysis` (pure) judges it,
//! `store` keeps it, and `report` / `http` show it. See ARCHITECTURE.md.

pub mod analysis;
pub mod beacon;
pub mod chain;
pub mod sim;
pub mod store;
