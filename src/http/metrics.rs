//! `GET /metrics`: the Prometheus text format of valwatch's own registry.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::HttpState;

/// The content type of the text exposition format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router() -> Router<HttpState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    // The derived states are computed at scrape time, so a stall shows up
    // even when nothing else updates the registry.
    let assessment = s.board.assess(s.clock.now());
    s.metrics.observe_status(&assessment, &s.board);
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], s.metrics.render())
}
