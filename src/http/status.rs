//! `GET /status`: the operator's view as JSON.
//!
//! Answers 503 while the (narrowed) state is `failing` — a watched validator
//! missed `fail_after_missed` attestations in a row or is slashed, no beacon
//! node is usable ("blind"), or no epoch was processed within the stall
//! limit — and 200 otherwise (`ok` or `degraded`). `?group=NAME` narrows
//! the answer to one group (404 for an unknown name); the group's state
//! includes the global failures (blind, stalled) that affect every group.
//!
//! The body (times are RFC 3339 UTC, balances in Gwei, `null` = not known):
//!
//! ```json
//! {
//!   "state": "failing",                 // ok | degraded | failing
//!   "group": null,                      // the ?group= asked for, if any
//!   "reasons": [                        // why the state is not ok
//!     { "state": "failing", "kind": "down", "group": "main",
//!       "count": 1, "sample": [12345],
//!       "evidence": "validator 12345: no vote included for epochs 329999–330000",
//!       "message": "group main: 1 validator(s) down: 12345 (validator 12345: …)" }
//!   ],
//!   "generated_at": "2025-01-01T12:00:00Z",
//!   "started_at": "2025-01-01T10:00:00Z",
//!   "last_final_epoch": { "epoch": 330000, "at": "2025-01-01T11:58:40Z" },
//!   "last_provisional_epoch": { "epoch": 330001, "at": "2025-01-01T11:58:41Z" },
//!   "head_slot": 10560070, "wall_slot": 10560070,
//!   "store_ok": true,
//!   "readiness": { "ready": true, "reasons": [] },
//!   "groups": [
//!     { "name": "main", "state": "failing", "reasons": [ ... ],
//!       "validators": 2, "expected_offline": 0, "failing": 1, "degraded": 0 }
//!   ],
//!   "validators": [                     // failing first, then degraded, then by index
//!     { "index": 12345, "group": "main", "state": "failing",
//!       "expected_offline": false,
//!       "attestation": { "epoch": 330000, "status": "missed", "final": true,
//!                        "duty_slot": 10560005, "inclusion_delay": null, "late": null,
//!                        "source_correct": null, "target_correct": null, "head_correct": null },
//!       "last_final_attestation": { ... },  // newest FINAL verdict, same shape; differs
//!                                            // from "attestation" while that is provisional
//!       "consecutive_missed": 2,
//!       "health": "down",               // ok | late | recovering | down: the one
//!                                       // rule the alerts use too (src/health.rs)
//!       "evidence": "no vote included for epochs 329999–330000",
//!       "balance_epoch": 330000, "balance_gwei": 32001000000,
//!       "effective_balance_gwei": 32000000000, "status": "active_ongoing", "slashed": false,
//!       "last_proposal": { "slot": 10559000, "status": "proposed" },
//!       "last_sync": { "epoch": 330000, "participated": 32, "missed": 0 },
//!       "next_proposal_slot": null,     // only while still ahead of the wall clock
//!       "in_sync_committee": false,
//!       "labels": ["eu", "rack:3"] }    // from labels_file; absent when none
//!   ],
//!   "nodes": [                          // credentials and queries removed from url and error
//!     { "name": "local", "url": "http://127.0.0.1:5052/", "health": "healthy",
//!       "usable": true, "head_slot": 10560070, "last_error": null, "disagrees": false }
//!   ],
//!   "sources": [                        // only with [[sources]]; never the token
//!     { "name": "vc1", "kind": "keymanager", "url": "http://127.0.0.1:5062/",
//!       "group": "vc1", "keys": 12, "up": false,
//!       "error": "/eth/v1/keystores: HTTP 401 Unauthorized …" }  // keys kept while down
//!   ]
//! }
//! ```
//!
//! Reason kinds: `down` (with `evidence`), `late`, `recovering`, `slashed`,
//! `unknown_verdicts` (with `group`, `count`, `sample`),
//! `blind`, `nodes_unknown`, `node_unhealthy` (`node`, `health`),
//! `node_disagrees` (`node`), `stalled` (`seconds_since_progress`,
//! `last_final_epoch`), `store_failing`, `store_unchecked`.

use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{scrub_secrets, ApiError, HttpState};
use crate::beacon::NodeHealth;
use crate::chain::Slot;
use crate::status::{
    format_time, node_usable, Assessment, Finding, GroupAssessment, Policy, ProcessedEpoch,
    Readiness, Snapshot, State as BoardState, ValidatorState,
};

pub fn router() -> Router<HttpState> {
    Router::new().route("/status", get(status))
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    pub group: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidatorView {
    pub state: BoardState,
    #[serde(flatten)]
    pub validator: ValidatorState,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub name: String,
    pub url: String,
    pub health: NodeHealth,
    pub usable: bool,
    pub head_slot: Option<u64>,
    pub last_error: Option<String>,
    pub disagrees: bool,
}

/// The `/status` body (see the module documentation).
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    pub state: BoardState,
    pub group: Option<String>,
    pub reasons: Vec<Finding>,
    pub generated_at: String,
    pub started_at: String,
    pub last_final_epoch: Option<ProcessedEpoch>,
    pub last_provisional_epoch: Option<ProcessedEpoch>,
    pub head_slot: Option<Slot>,
    pub wall_slot: Option<Slot>,
    pub store_ok: Option<bool>,
    pub readiness: Readiness,
    pub groups: Vec<GroupAssessment>,
    pub validators: Vec<ValidatorView>,
    pub nodes: Vec<NodeView>,
    /// The key sources, when configured: credentials removed from the URL,
    /// never the token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::sources::SourceStatus>,
    /// The whole network in the newest final epoch: its participation and
    /// empty slots, counted from the canonical blocks (issue 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetworkView {
    pub epoch: u64,
    /// Included attestation duties / duties (0..1).
    pub participation: Option<f64>,
    pub empty_slots: u64,
    pub slots: u64,
    /// Below `alerting::policy::NETWORK_HEALTHY`: missed duties may be
    /// everybody's, not the operator's alone.
    pub low: bool,
    /// "network participation 61 %, 2 of 32 slots empty".
    pub text: String,
}

/// PURE: the view of `snap`, narrowed to `group` when given (`None` when
/// that group does not exist).
pub fn status_view(
    snap: &Snapshot,
    assessment: &Assessment,
    policy: &Policy,
    group: Option<&str>,
    now: SystemTime,
) -> Option<StatusView> {
    let (state, reasons, groups) = match group {
        None => (
            assessment.state,
            assessment.reasons.clone(),
            assessment.groups.clone(),
        ),
        Some(name) => {
            let g = assessment.group(name)?;
            (g.state, g.reasons.clone(), vec![g.clone()])
        }
    };
    let mut validators: Vec<ValidatorView> = snap
        .validators
        .values()
        .filter(|v| group.is_none_or(|g| v.group == g))
        .map(|v| {
            let mut validator = v.clone();
            // A proposal slot already behind the wall clock is history,
            // not an upcoming duty.
            if let (Some(slot), Some(wall)) = (validator.next_proposal_slot, snap.wall_slot) {
                if slot < wall {
                    validator.next_proposal_slot = None;
                }
            }
            ValidatorView {
                state: v.state(policy),
                validator,
            }
        })
        .collect();
    validators.sort_by(|a, b| {
        b.state
            .cmp(&a.state)
            .then(a.validator.index.cmp(&b.validator.index))
    });
    let nodes = snap
        .nodes
        .iter()
        .flatten()
        .map(|n| NodeView {
            name: n.name.clone(),
            url: scrub_secrets(&n.url),
            health: n.health.clone(),
            usable: node_usable(&n.health),
            head_slot: n.head_slot,
            last_error: n.last_error.as_deref().map(scrub_secrets),
            disagrees: snap.disagreeing_nodes.contains(&n.name),
        })
        .collect();
    Some(StatusView {
        state,
        group: group.map(str::to_string),
        reasons,
        generated_at: format_time(now),
        started_at: format_time(snap.started_at),
        last_final_epoch: snap.last_final,
        last_provisional_epoch: snap.last_provisional,
        head_slot: snap.head_slot,
        wall_slot: snap.wall_slot,
        store_ok: snap.store_ok,
        readiness: assessment.readiness.clone(),
        groups,
        validators,
        nodes,
        sources: snap.sources.clone(),
        network: snap.network.as_ref().map(|n| NetworkView {
            epoch: n.epoch.0,
            participation: n.participation(),
            empty_slots: n.empty_slots,
            slots: n.slots,
            low: n
                .participation()
                .is_some_and(|p| p < crate::alerting::policy::NETWORK_HEALTHY),
            text: crate::analysis::network::describe(n),
        }),
    })
}

/// Builds the view from the shared board at the clock's `now`.
pub fn current_view(s: &HttpState, group: Option<&str>) -> Result<StatusView, ApiError> {
    let now = s.clock.now();
    let policy = s.board.policy().clone();
    s.board
        .read(|snap| {
            let a = crate::status::assess(snap, &policy, now);
            status_view(snap, &a, &policy, group, now)
        })
        .ok_or_else(|| ApiError::UnknownGroup(group.unwrap_or_default().to_string()))
}

pub fn http_code(state: BoardState) -> StatusCode {
    match state {
        BoardState::Failing => StatusCode::SERVICE_UNAVAILABLE,
        BoardState::Ok | BoardState::Degraded => StatusCode::OK,
    }
}

async fn status(State(s): State<HttpState>, Query(q): Query<StatusQuery>) -> Response {
    match current_view(&s, q.group.as_deref()) {
        Ok(view) => (http_code(view.state), Json(view)).into_response(),
        Err(e) => e.into_response(),
    }
}
