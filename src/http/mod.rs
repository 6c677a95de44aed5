//! The HTTP server: health, readiness, the status JSON, metrics and the
//! status page, one axum router per feature, merged.
//!
//! Owns: routes, status codes, response shapes and the server's lifecycle
//! (bind, serve, graceful shutdown). Must not: call a beacon node or the
//! store on a request path (handlers read only the `StatusBoard` and
//! `Metrics`), or show a secret: every text that came from outside (node
//! URLs, error messages) passes through `scrub_secrets` first.

pub mod health;
pub mod metrics;
pub mod page;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::chain::Clock;
use crate::metrics::Metrics;
use crate::status::StatusBoard;

/// What every handler may read.
#[derive(Clone)]
pub struct HttpState {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    /// `now` for stall and readiness; a manual clock in tests.
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("HTTP server task ended abnormally: {0}")]
    Task(String),
}

/// Errors a request can get. The body is a short JSON message chosen
/// here, never an internal error's text.
#[derive(Debug)]
pub enum ApiError {
    UnknownGroup(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ApiError::UnknownGroup(name) => (
                StatusCode::NOT_FOUND,
                format!("no group named {:?}", scrub_secrets(&name)),
            ),
        };
        (code, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Every route: `/healthz`, `/readyz`, `/status`, `/metrics`, `/`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(status::router())
        .merge(metrics::router())
        .merge(page::router())
        .with_state(state)
}

/// A running server.
pub struct Server {
    /// The address actually bound (port 0 resolves to a free port).
    pub local_addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Waits until the server has shut down (after the cancel token fired
    /// and in-flight requests finished).
    pub async fn wait(self) -> Result<(), HttpError> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::Serve(e)),
            Err(e) => Err(HttpError::Task(e.to_string())),
        }
    }
}

/// Binds `addr` and serves in a background task until `cancel` fires;
/// then stops accepting and lets in-flight requests finish.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<Server, HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        info!(addr = %local_addr, "http server stopped");
        result
    });
    info!(addr = %local_addr, "http server listening");
    Ok(Server { local_addr, task })
}

/// Removes what may be a secret from text shown to people: the user and
/// password of any URL, and its query (API keys often ride there). Error
/// messages from HTTP clients embed the URL they called, so node errors
/// go through this too, even though the pool already redacts its URLs.
pub fn scrub_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')'))
            .unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        let auth_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(auth_end);
        out.push_str(match authority.rfind('@') {
            Some(i) => &authority[i + 1..],
            None => authority,
        });
        match path.find(['?', '#']) {
            Some(q) => {
                out.push_str(&path[..q]);
                out.push_str("?…");
            }
            None => out.push_str(path),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::scrub_secrets;

    #[test]
    fn scrub_removes_credentials_and_queries_from_every_url() {
        let cases = [
            ("plain text", "plain text"),
            ("http://node:5052/eth", "http://node:5052/eth"),
            (
                "error sending request for url (https://user:pw@host.example/eth/v1?apikey=K)",
                "error sending request for url (https://host.example/eth/v1?…)",
            ),
            (
                "a https://tok@h/x b http://h2?k=v",
                "a https://h/x b http://h2?…",
            ),
            ("http://u:p@h", "http://h"),
            ("ws://h/p#frag", "ws://h/p?…"),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_secrets(input), want, "{input}");
        }
    }
}
