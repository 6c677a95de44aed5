//! A simulated beacon node: serves the pure API of `api` over real HTTP on
//! loopback, advancing the head with the clock (live) or showing a whole
//! pre-generated chain, and misbehaving on demand (faults).
//!
//! Owns: the listener, the clock-to-head mapping and fault injection.
//! Must not: decide chain contents (that is `chain`) or format JSON (`api`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::api::{error_reply, respond, ErrorStyle, Reply, View, Windows};
use super::chain::{fake_root, Sim};
use super::scenario::{Scenario, ScenarioError};
use crate::chain::{Clock, SystemClock};

/// How often the listener supervisor looks at the refuse fault; faults
/// switch within this delay.
const SUPERVISE_EVERY: Duration = Duration::from_millis(20);
/// POST bodies carry id lists; a million quoted indices is ~10 MB.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Not a Beacon API route: the node's request and byte counters as JSON,
/// for `valwatch bench` in another process. Not counted itself.
pub const SERVED_PATH: &str = "/_sim/served";
/// The Beacon API's event stream.
const EVENTS_PATH: &str = "/eth/v1/events";
/// How often an open event stream looks for new slots: well inside the
/// shortest slot the demo accepts (100 ms).
const EVENTS_POLL: Duration = Duration::from_millis(25);

/// Where the head is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Mode {
    /// The head follows the clock from `genesis_time`; each block appears
    /// when its slot starts. Generation stops after `max_epochs`.
    Live { max_epochs: u64 },
    /// `epochs` whole epochs exist; the head is their last slot.
    Pregenerated { epochs: u64 },
}

/// One way a node misbehaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum FaultKind {
    /// Stop listening: connections are refused.
    Refuse,
    /// Answer everything 503.
    Unavailable,
    /// Answer with this status and an error body.
    Status { code: u16 },
    /// Sleep before answering.
    Slow { delay_ms: u64 },
    /// The head stays this many slots behind the clock.
    Lagging { slots: u64 },
    /// Another network: different genesis time and validators root.
    OtherNetwork,
    /// The body is cut in half.
    Truncated,
    /// The body is not JSON.
    Malformed,
    /// Serve a different block root for this slot.
    WrongRoot { slot: u64 },
    /// The head stops at `slot` (no later block is served or announced)
    /// while `/node/syncing` still says synced at distance 0: a node whose
    /// execution client hung, or a chain that stopped making blocks.
    Stuck { slot: u64 },
}

/// A fault over a window of wall-clock slots, optionally only on paths
/// containing a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub from_slot: Option<u64>,
    /// Exclusive.
    #[serde(default)]
    pub until_slot: Option<u64>,
    #[serde(default)]
    pub path_contains: Option<String>,
}

impl Fault {
    pub fn always(kind: FaultKind) -> Self {
        Self {
            kind,
            from_slot: None,
            until_slot: None,
            path_contains: None,
        }
    }

    fn applies(&self, slot: u64, path: Option<&str>) -> bool {
        self.from_slot.is_none_or(|f| slot >= f)
            && self.until_slot.is_none_or(|u| slot < u)
            && match (&self.path_contains, path) {
                (Some(p), Some(path)) => path.contains(p.as_str()),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// How a node is run.
#[derive(Clone)]
pub struct NodeOptions {
    pub mode: Mode,
    pub clock: Arc<dyn Clock>,
    pub faults: Vec<Fault>,
    pub errors: ErrorStyle,
    pub windows: Windows,
    pub version: String,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Live { max_epochs: 10_000 },
            clock: Arc::new(SystemClock),
            faults: Vec::new(),
            errors: ErrorStyle::BeaconApi,
            windows: Windows::default(),
            version: format!("valwatch-sim/v{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl NodeOptions {
    pub fn pregenerated(epochs: u64) -> Self {
        Self {
            mode: Mode::Pregenerated { epochs },
            ..Self::default()
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("cannot listen on loopback: {0}")]
    Bind(#[from] std::io::Error),
}

struct Node {
    sim: Arc<RwLock<Sim>>,
    opts: NodeOptions,
    faults: Mutex<Vec<Fault>>,
    served: Served,
    /// Ends open event streams when the node stops (a graceful shutdown
    /// waits for every connection, and a stream never ends by itself).
    cancel: CancellationToken,
}

/// What a node has answered: requests and response body bytes.
#[derive(Default)]
struct Served {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// A node's counters at one moment (see `SimNode::served`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCount {
    pub requests: u64,
    /// Response body bytes (headers excluded).
    pub bytes: u64,
}

impl ServedCount {
    /// What was served between `earlier` and `self`.
    pub fn since(self, earlier: ServedCount) -> ServedCount {
        ServedCount {
            requests: self.requests.saturating_sub(earlier.requests),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

impl Node {
    /// The wall-clock slot (0 before genesis).
    fn clock_slot(&self, sim: &Sim) -> u64 {
        let sc = sim.scenario();
        let ms = self
            .opts
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let genesis = sc.genesis_time as u128 * 1000;
        (ms.saturating_sub(genesis) / sc.slot_duration_ms.max(1) as u128) as u64
    }

    fn active_faults(&self, slot: u64, path: Option<&str>) -> Vec<FaultKind> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|f| f.applies(slot, path))
            .map(|f| f.kind.clone())
            .collect()
    }

    fn refusing(&self) -> bool {
        let slot = {
            let sim = self.sim.read().unwrap_or_else(|e| e.into_inner());
            self.clock_slot(&sim)
        };
        self.active_faults(slot, None).contains(&FaultKind::Refuse)
    }

    fn served_count(&self) -> ServedCount {
        ServedCount {
            requests: self.served.requests.load(Ordering::Relaxed),
            bytes: self.served.bytes.load(Ordering::Relaxed),
        }
    }

    /// (head slot the node has, current slot) before faults.
    fn slots(&self, sim: &Sim) -> (u64, u64) {
        match self.opts.mode {
            Mode::Pregenerated { epochs } => {
                let last = (epochs * sim.slots_per_epoch()).saturating_sub(1);
                (last, last)
            }
            Mode::Live { max_epochs } => {
                let now = self.clock_slot(sim);
                let cap = (max_epochs * sim.slots_per_epoch()).saturating_sub(1);
                (now.min(cap), now)
            }
        }
    }
}

/// A running simulated node.
pub struct SimNode {
    addr: SocketAddr,
    node: Arc<Node>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimNode {
    /// Generates (pre-generated mode) and starts serving on 127.0.0.1.
    pub async fn start(scenario: Scenario, opts: NodeOptions) -> Result<SimNode, SimError> {
        let sim = Sim::new(scenario)?;
        Self::with_chain(Arc::new(RwLock::new(sim)), opts).await
    }

    /// Serves a chain shared with other nodes (one generation for several
    /// nodes of one network).
    pub async fn with_chain(sim: Arc<RwLock<Sim>>, opts: NodeOptions) -> Result<SimNode, SimError> {
        let cancel = CancellationToken::new();
        let node = Arc::new(Node {
            sim,
            faults: Mutex::new(opts.faults.clone()),
            opts,
            served: Served::default(),
            cancel: cancel.clone(),
        });
        let target = {
            let sim = node.sim.read().unwrap_or_else(|e| e.into_inner());
            node.slots(&sim).0
        };
        let gen = node.sim.clone();
        tokio::task::spawn_blocking(move || {
            gen.write()
                .unwrap_or_else(|e| e.into_inner())
                .advance_to(target)
        })
        .await
        .map_err(|e| SimError::Bind(std::io::Error::other(e)))?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(supervise(node.clone(), listener, cancel.clone()));
        Ok(SimNode {
            addr,
            node,
            cancel,
            task: Some(task),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chain this node serves (ground truth, shared generation).
    pub fn chain(&self) -> Arc<RwLock<Sim>> {
        self.node.sim.clone()
    }

    /// Requests answered and body bytes sent so far (every answer counts,
    /// errors included, except `SERVED_PATH` itself).
    pub fn served(&self) -> ServedCount {
        self.node.served_count()
    }

    /// Replaces the node's faults from now on.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.node.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves until cancelled; closes the listener while a `Refuse` fault is
/// active and reopens the same port afterwards.
async fn supervise(node: Arc<Node>, first: TcpListener, cancel: CancellationToken) {
    let addr = match first.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let app = axum::Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(node.clone());
    let mut listener = Some(first);
    loop {
        while node.refusing() {
            // A listener kept open would accept into its backlog: close it.
            listener = None;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "simulated node cannot reopen its port");
                    tokio::time::sleep(SUPERVISE_EVERY).await;
                    continue;
                }
            },
        };
        let stop = cancel.child_token();
        let watcher = {
            let (node, stop, cancel) = (node.clone(), stop.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(SUPERVISE_EVERY) => if node.refusing() { break },
                    }
                }
                stop.cancel();
            })
        };
        let _ = axum::serve(l, app.clone())
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        watcher.abort();
        if cancel.is_cancelled() {
            return;
        }
    }
}

async fn handle(State(node): State<Arc<Node>>, method: Method, uri: Uri, body: Bytes) -> Response {
    if uri.path() == SERVED_PATH {
        let body = serde_json::to_string(&node.served_count()).unwrap_or_default();
        return http(Reply {
            status: 200,
            body,
            headers: Vec::new(),
        });
    }
    if uri.path() == EVENTS_PATH && method == Method::GET {
        return events(node, &uri).await;
    }
    let reply = answer(&node, method, uri, body).await;
    node.served.requests.fetch_add(1, Ordering::Relaxed);
    node.served
        .bytes
        .fetch_add(reply.body.len() as u64, Ordering::Relaxed);
    http(reply)
}

/// Generates up to the clock (live mode) and returns the node's (head,
/// current) slots after a `lag` or `stuck` fault.
fn advance(n: &Node, fx: Effects) -> (u64, u64) {
    let (head, current) = advance_lag(n, fx.lag);
    (fx.stuck.map_or(head, |s| head.min(s)), current)
}

fn advance_lag(n: &Node, lag: u64) -> (u64, u64) {
    let (head, _) = {
        let sim = n.sim.read().unwrap_or_else(|e| e.into_inner());
        n.slots(&sim)
    };
    let behind = n
        .sim
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .generated_slot()
        < head;
    if behind {
        n.sim
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .advance_to(head);
    }
    let sim = n.sim.read().unwrap_or_else(|e| e.into_inner());
    let (head, current) = n.slots(&sim);
    (head.saturating_sub(lag), current)
}

/// What the faults of this moment do to a request on `path`: an error
/// reply, or the lag, other-network and wrong-root effects (and a sleep
/// for `Slow`).
async fn apply_faults(node: &Node, path: &str) -> Result<(Vec<FaultKind>, Effects), Reply> {
    let (clock_slot, errors) = {
        let sim = node.sim.read().unwrap_or_else(|e| e.into_inner());
        (node.clock_slot(&sim), node.opts.errors)
    };
    let faults = node.active_faults(clock_slot, Some(path));
    let mut fx = Effects::default();
    for f in &faults {
        match f {
            FaultKind::Refuse | FaultKind::Unavailable => {
                return Err(error_reply(errors, 503, "Node is unavailable"))
            }
            FaultKind::Status { code } => {
                return Err(error_reply(errors, *code, "Injected failure"))
            }
            FaultKind::Slow { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(*delay_ms)).await
            }
            FaultKind::Lagging { slots } => fx.lag = fx.lag.max(*slots),
            FaultKind::OtherNetwork => fx.other = true,
            FaultKind::WrongRoot { slot } => fx.wrong_root = Some(*slot),
            FaultKind::Stuck { slot } => {
                fx.stuck = Some(fx.stuck.map_or(*slot, |s: u64| s.min(*slot)))
            }
            FaultKind::Truncated | FaultKind::Malformed => {}
        }
    }
    Ok((faults, fx))
}

#[derive(Default, Clone, Copy)]
struct Effects {
    lag: u64,
    other: bool,
    wrong_root: Option<u64>,
    /// The head stops here (see `FaultKind::Stuck`).
    stuck: Option<u64>,
}

/// Builds the node's view with `fx` applied and passes it to `f`.
fn with_view<T>(n: &Node, fx: Effects, f: impl FnOnce(&View) -> T) -> T {
    let (head, current) = advance(n, fx);
    let sim = n.sim.read().unwrap_or_else(|e| e.into_inner());
    let gvr = sim.genesis_validators_root();
    let sc = sim.scenario();
    let view = View {
        sim: &sim,
        head,
        current,
        genesis_time: if fx.other {
            sc.genesis_time + 1
        } else {
            sc.genesis_time
        },
        genesis_validators_root: if fx.other {
            fake_root(&[gvr.0[0] as u64, 0x07e1])
        } else {
            gvr
        },
        wrong_root: fx.wrong_root,
        claims_synced: fx.stuck.is_some(),
        errors: n.opts.errors,
        windows: n.opts.windows,
        version: &n.opts.version,
    };
    f(&view)
}

/// `GET /eth/v1/events`: server-sent events from the head at connection
/// time on (like a node, no history). The stream looks for new slots every
/// `EVENTS_POLL`, and ends when the node stops or a fault takes it down
/// (refuse, unavailable, error status); the client reconnects.
async fn events(node: Arc<Node>, uri: &Uri) -> Response {
    let path = uri.path().to_string();
    let topics: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "topics")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    node.served.requests.fetch_add(1, Ordering::Relaxed);
    if topics.is_empty() {
        return http(error_reply(node.opts.errors, 400, "No topics given"));
    }
    let fx = match apply_faults(&node, &path).await {
        Ok((_, fx)) => fx,
        Err(reply) => return http(reply),
    };
    let start = {
        let n = node.clone();
        tokio::task::spawn_blocking(move || advance(&n, fx).0)
            .await
            .unwrap_or(0)
    };
    struct St {
        node: Arc<Node>,
        path: String,
        topics: Vec<String>,
        last: u64,
        first: bool,
    }
    let st = St {
        node,
        path,
        topics,
        last: start,
        first: true,
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        if st.first {
            // Headers go out at once; a comment opens the body.
            st.first = false;
            return Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(": ok\n\n")),
                st,
            ));
        }
        loop {
            tokio::select! {
                _ = st.node.cancel.cancelled() => return None,
                _ = tokio::time::sleep(EVENTS_POLL) => {}
            }
            let fx = match apply_faults(&st.node, &st.path).await {
                Ok((_, fx)) => fx,
                Err(_) => return None,
            };
            let (n, topics, from) = (st.node.clone(), st.topics.clone(), st.last + 1);
            let got = tokio::task::spawn_blocking(move || {
                with_view(&n, fx, |view| {
                    (
                        view.head,
                        super::api::events(view, from, view.head, &topics),
                    )
                })
            })
            .await;
            let Ok((head, text)) = got else {
                return None;
            };
            if head < from {
                continue;
            }
            st.last = head;
            if !text.is_empty() {
                st.node
                    .served
                    .bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                return Some((Ok(Bytes::from(text)), st));
            }
        }
    });
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

async fn answer(node: &Arc<Node>, method: Method, uri: Uri, body: Bytes) -> Reply {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let errors = node.opts.errors;
    let (faults, fx) = match apply_faults(node, &path).await {
        Ok(x) => x,
        Err(reply) => return reply,
    };
    let n = Arc::clone(node);
    let answer = tokio::task::spawn_blocking(move || {
        with_view(&n, fx, |view| {
            respond(view, method.as_str(), &path, &query, &body)
        })
    })
    .await;
    let mut reply = match answer {
        Ok(r) => r,
        Err(_) => error_reply(errors, 500, "simulator task failed"),
    };
    if faults.contains(&FaultKind::Truncated) {
        let mut cut = reply.body.len() / 2;
        while !reply.body.is_char_boundary(cut) {
            cut -= 1;
        }
        reply.body.truncate(cut);
    }
    if faults.contains(&FaultKind::Malformed) {
        reply.body = format!("<html>{}", reply.body.replace(':', ";"));
    }
    reply
}

fn http(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, reply.body).into_response();
    let h = resp.headers_mut();
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(lower(k)), v);
        }
    }
    if !h.contains_key("content-type") {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    resp
}

/// Header names as `HeaderName::from_static` wants them (lowercase).
fn lower(k: &'static str) -> &'static str {
    match k {
        "Content-Type" => "content-type",
        "Eth-Execution-Optimistic" => "eth-execution-optimistic",
        "Eth-Consensus-Finalized" => "eth-consensus-finalized",
        "Eth-Consensus-Version" => "eth-consensus-version",
        "Eth-Consensus-Dependent-Root" => "eth-consensus-dependent-root",
        _ => "x-sim-unknown",
    }
}
