//! A deterministic simulated beacon chain served over real HTTP: the test
//! bench of the monitor (and of `valwatch demo` and the benchmarks).
//!
//! Owns: `scenario` (what happens), `chain` (the pure model and its ground
//! truth), `api` (the Beacon API as a pure function, JSON written here, not
//! borrowed from `beacon`), `server` (HTTP, clock, faults).
//! Must not: use `crate::beacon` — the simulator is what tests it, so it
//! must not share its understanding of the wire format.

pub mod api;
pub mod chain;
pub mod scenario;
pub mod server;

pub use api::{ErrorStyle, Windows};
pub use chain::{GroundTruth, Sim};
pub use scenario::{Behaviour, BehaviourKind, Scenario, ValidatorSet};
pub use server::{
    Fault, FaultKind, Mode, NodeOptions, ServedCount, SimError, SimNode, SERVED_PATH,
};
