//! The HTTP server: health, readiness, the status JSON, metrics and the
//! status page, one axum router per feature, merged.
//!
//! Owns: routes, status codes, response shapes and the server's lifecycle
//! (bind, serve, graceful shutdown). Must not: call a beacon node on a
//! request path (handlers read the `StatusBoard` and `Metrics`; only the
//! pages' history reads the store, through `history`: bounded reads with a
//! timeout, cached per processed epoch), or show a secret: every text that
//! came from outside (node URLs, error messages) passes through
//! `scrub_secrets` first.
//!
//! The accept loop is valwatch's own (hyper's HTTP/1 connection under it)
//! rather than `axum::serve`, because the server must survive its clients:
//! a client gets `HEAD_TIMEOUT` to send a request head, at most
//! `MAX_CONNECTIONS` are served at once, and shutdown ends within
//! `SHUTDOWN_GRACE` whatever the clients do (issue 11: one half-sent request
//! held SIGTERM for 87 s). The state the handlers read can be replaced
//! while serving (`Server::set_state`): started blind, valwatch serves a
//! provisional board until a beacon node tells it what chain it watches.

pub mod health;
pub mod history;
pub mod metrics;
pub mod page;
pub mod status;
pub mod svg;
pub mod validator;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

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
    /// The store's history for the pages' strips and validator pages;
    /// `None` until the chain (its slots per epoch) is known.
    pub history: Option<Arc<history::History>>,
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

/// Every route: `/healthz`, `/readyz`, `/status`, `/metrics`, `/`,
/// `/validator/{index}`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(status::router())
        .merge(metrics::router())
        .merge(page::router())
        .merge(validator::router())
        .with_state(state)
}

/// Longest a client may take to send a request head (request line and
/// headers), and to start the next one on a kept-alive connection. The
/// readers of these routes (Prometheus, a load balancer's probe, curl, a
/// browser) send a head of a few hundred bytes at once; 10 s is ample on
/// a slow link, and bounds how long a client that stops mid-head, or never
/// starts, holds a connection. (hyper's own default, 30 s, applies only
/// with a timer, which `axum::serve` does not give it: no limit at all.)
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. The readers are a Prometheus or two, a
/// health probe and the odd browser tab (a browser opens up to 6); 128
/// leaves room for all of them many times over while bounding the sockets
/// and memory a runaway or hostile client can take. A connection over the
/// bound is closed at once rather than queued.
pub const MAX_CONNECTIONS: usize = 128;

/// After shutdown begins, how long requests in flight get to finish before
/// the remaining connections are dropped. Every handler answers from memory
/// within milliseconds, so a connection still open after this is a client
/// that does not send or does not read. Well inside systemd's 90 s stop
/// timeout and the 10 s issue 11 asks for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// After a failed `accept` (out of file descriptors, say), the pause before
/// the next: the error would repeat at once and spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The router the next request is served by (replaced by `set_state`).
type CurrentRouter = Arc<RwLock<Router>>;

/// A running server.
pub struct Server {
    /// The address actually bound (port 0 resolves to a free port).
    pub local_addr: SocketAddr,
    router: CurrentRouter,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// From the next request on, the handlers read `state` (connections
    /// kept alive included).
    pub fn set_state(&self, state: HttpState) {
        *self.router.write().unwrap_or_else(|e| e.into_inner()) = router(state);
    }

    /// Waits until the server has shut down: after the cancel token fired,
    /// requests in flight finished or `SHUTDOWN_GRACE` passed.
    pub async fn wait(self) -> Result<(), HttpError> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::Serve(e)),
            Err(e) => Err(HttpError::Task(e.to_string())),
        }
    }
}

/// Binds `addr` and serves in a background task until `cancel` fires;
/// then stops accepting, lets requests in flight finish within
/// `SHUTDOWN_GRACE` and drops what is left.
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
    let current: CurrentRouter = Arc::new(RwLock::new(router(state)));
    let task = tokio::spawn(accept_loop(listener, current.clone(), cancel));
    info!(addr = %local_addr, "http server listening");
    Ok(Server {
        local_addr,
        router: current,
        task,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    current: CurrentRouter,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(addr = %local_addr, error = %crate::causes(&e), "http server cannot accept a connection");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, limit = MAX_CONNECTIONS, "too many http connections; closing this one");
            drop(stream);
            continue;
        };
        let current = current.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            let _slot = slot;
            serve_connection(stream, current, cancel).await;
        });
    }
    // Not accepting any more: the listener closes here.
    drop(listener);
    let open = connections.len();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(addr = %local_addr, open, left = connections.len(),
              grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
              "http connections still open after the shutdown grace; closing them");
        connections.shutdown().await;
    }
    info!(addr = %local_addr, "http server stopped");
    Ok(())
}

/// Serves one connection (HTTP/1.1, keep-alive) with the head timeout;
/// when `cancel` fires, finishes the request in flight and closes.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    current: CurrentRouter,
    cancel: CancellationToken,
) {
    let service =
        hyper::service::service_fn(move |req: axum::extract::Request<hyper::body::Incoming>| {
            let router = current.read().unwrap_or_else(|e| e.into_inner()).clone();
            router.oneshot(req.map(axum::body::Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients that hang up or time out are routine, not news.
        debug!(error = %crate::causes(&e), "http connection ended with an error");
    }
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
