//! `GET /healthz` (the process answers) and `GET /readyz` (valwatch is
//! doing its job: store ok, a usable node, an epoch processed recently).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// 200 while the process runs: liveness says nothing about the chain, so a
/// restart (what orchestrators do on failure) never "fixes" a dead node.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 `{"ready": true, "reasons": []}` or 503 with every reason, e.g.
/// `{"ready": false, "reasons": [{"state": "failing", "kind": "blind",
/// "message": "no usable beacon node: valwatch cannot see the chain"}]}`.
async fn readyz(State(s): State<HttpState>) -> Response {
    let r = s.board.assess(s.clock.now()).readiness;
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r)).into_response()
}
