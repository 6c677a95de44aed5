//! One beacon node's typed client: one method per route.
//!
//! Owns: the HTTP connection to one node (timeout, extra headers, rate
//! limit), mapping HTTP outcomes to `BeaconError`, and per-node counters.
//! Must not: choose between nodes (that is `pool`), decide verdicts, or let
//! header values (credentials) reach a log line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT};
use reqwest::Method;

use crate::chain::{
    Attestation, AttesterDuties, AttesterSlashing, Block, BlockHeader, ChainSpec, Checkpoint,
    Committee, Epoch, Fork, ProposerDuties, ProposerSlashing, Pubkey, Root, Slot, ValidatorIndex,
    ValidatorInfo,
};

use super::wire::{self, DecodeError};
use super::{BeaconError, BlockId, NodeConfig, StateId};
use crate::analysis::rewards::{AttestationRewards, BlockReward};

/// Ids per `POST .../validators` or liveness request. A validators answer
/// is about 474 bytes per entry (measured on the Sepolia cassette), so 1000
/// ids keep one answer near 0.5 MB: quick to serve within a node's timeout,
/// and below the request-size and id-count limits public providers apply,
/// while a watched set of tens of thousands still takes only a few requests.
pub const IDS_PER_REQUEST: usize = 1000;

/// The largest answer read for a route that returns a fixed, small object:
/// genesis, spec (a few hundred keys, ~15 KB on mainnet), syncing, headers,
/// block roots, finality, proposer duties (one per slot: ~6 KB) and sync
/// committees (512 members, ~12 KB). 1 MiB is fifty times the largest.
pub const SMALL_ANSWER: usize = 1 << 20;

/// The largest block answer (`/eth/v2/beacon/blocks/…`, and its
/// attestations). A block travels within the p2p `MAX_PAYLOAD_SIZE` of
/// 10 MiB as SSZ (consensus-specs p2p-interface, Bellatrix on); JSON writes
/// every byte as two hex digits and adds field names and quoted integers,
/// so about 2.5 times that: 32 MiB.
pub const BLOCK_ANSWER: usize = 32 << 20;

/// The largest committees answer. An epoch has at most
/// `MAX_COMMITTEES_PER_SLOT` (64) × `MAX_VALIDATORS_PER_COMMITTEE` (2048) ×
/// 32 slots = 4,194,304 seats (mainnet preset), each a quoted index of up
/// to 8 digits with its comma (11 bytes): 46 MB at the spec's ceiling
/// (mainnet today: ~10 MB). The per-slot read gets the same cap, because
/// a node may ignore the `slot` filter and answer the whole epoch, which
/// valwatch accepts.
pub const COMMITTEES_ANSWER: usize = 64 << 20;

/// The largest pool answer (attestations, slashings): a mainnet node keeps
/// about two epochs of aggregates, a few per committee, ~1 KB each as JSON
/// (Electra's committee bits add little): some 20 MB at worst; 64 MiB.
pub const POOL_ANSWER: usize = 64 << 20;

/// Per id asked, for routes that answer one entry per id (validators,
/// liveness, attester duties). A validators entry is ~474 bytes (Sepolia
/// cassette), a duty ~250, liveness ~40: 2 KiB is four times the largest.
pub const ANSWER_PER_ID: usize = 2 << 10;

/// Added to the per-id cap: the envelope, and the small registries of test
/// networks that some servers answer in full when no asked id exists.
pub const ANSWER_SLACK: usize = 1 << 20;

/// PURE: the most valwatch reads of one answer of `endpoint` (a route
/// template) that asked for `ids` ids: sized from what the route can
/// legitimately return, so that a node (or something posing as one) that
/// sends more costs at most that much memory and fails over to the next
/// node. Issue 11: 200 MB bodies took the daemon from 17 to 436 MB.
pub fn answer_cap(endpoint: &str, ids: usize) -> usize {
    if endpoint.contains("/committees") {
        COMMITTEES_ANSWER
    } else if endpoint.contains("/pool/") {
        POOL_ANSWER
    } else if endpoint.contains("/blocks/") && !endpoint.ends_with("/root") {
        BLOCK_ANSWER
    } else if endpoint.ends_with("/validators")
        || endpoint.contains("/liveness/")
        || endpoint.contains("/duties/attester/")
        || endpoint.contains("/rewards/attestations/")
        || endpoint.contains("/rewards/sync_committee/")
    {
        ids.saturating_mul(ANSWER_PER_ID)
            .saturating_add(ANSWER_SLACK)
    } else {
        SMALL_ANSWER
    }
}

/// The number of ids in a request body: a JSON array, or `{"ids": [...]}`.
fn ids_in(body: Option<&serde_json::Value>) -> usize {
    match body {
        Some(serde_json::Value::Array(a)) => a.len(),
        Some(v) => v
            .get("ids")
            .and_then(|ids| ids.as_array())
            .map_or(0, Vec::len),
        None => 0,
    }
}

/// `GET /eth/v1/node/syncing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    pub head_slot: crate::chain::Slot,
    pub sync_distance: u64,
    pub is_syncing: bool,
    pub is_optimistic: bool,
    pub el_offline: bool,
}

/// `GET /eth/v1/beacon/states/{state_id}/finality_checkpoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finality {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub finalized: Checkpoint,
}

/// A validator named by index or by public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValidatorId {
    Index(ValidatorIndex),
    Pubkey(Pubkey),
}

impl ValidatorId {
    /// The form the API takes in request bodies: decimal index or 0x pubkey.
    fn to_api(self) -> String {
        match self {
            ValidatorId::Index(i) => i.0.to_string(),
            ValidatorId::Pubkey(p) => p.to_hex(),
        }
    }
}

/// Network identity from `/eth/v1/beacon/genesis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
}

/// Counters of one node, for the status page and (later) metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Requests sent (each batch counts).
    pub requests: u64,
    /// Requests that failed: transport, timeout, HTTP error other than 404,
    /// or an answer that could not be read.
    pub errors: u64,
    /// Time to the complete answer of the latest request that got one.
    pub last_latency: Option<Duration>,
    /// The slot of the latest head header the node served: the pool reads
    /// the node's head from it between `/node/syncing` checks.
    pub head_slot: Option<Slot>,
}

/// Spaces requests at least `interval` apart. A caller over the rate waits
/// for its turn instead of failing, unless the queue is longer than
/// `max_wait` (then the request is not sent: `RateLimited`).
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    max_wait: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: f64, max_wait: Duration) -> Option<Self> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        Some(Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            max_wait,
            next: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// Reserves the next free moment and waits for it; `false` when that
    /// moment is further away than `max_wait`.
    async fn wait_turn(&self) -> bool {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            if at.duration_since(now) > self.max_wait {
                return false;
            }
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
        true
    }
}

/// Why one exchange gave no answer.
enum Exchange {
    Http(reqwest::Error),
    /// The body is larger than the route's cap.
    TooLarge,
}

/// A raw answer: status, the headers valwatch reads, and the body.
struct Answer {
    status: u16,
    consensus_version: Option<String>,
    dependent_root: Option<String>,
    body: Vec<u8>,
}

/// Told of every request: node name, endpoint (route template), time to
/// the answer, and a short error kind when it failed (`timeout`,
/// `transport`, `status`). Lets metrics count requests without the beacon
/// module knowing the metrics registry.
pub type RequestObserver = Arc<dyn Fn(&str, &str, Duration, Option<&'static str>) + Send + Sync>;

#[derive(Clone)]
pub struct BeaconClient {
    pub config: NodeConfig,
    http: reqwest::Client,
    pacer: Option<Arc<Pacer>>,
    stats: Arc<Mutex<NodeStats>>,
    observer: Arc<std::sync::OnceLock<RequestObserver>>,
}

impl std::fmt::Debug for BeaconClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeaconClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BeaconClient {
    /// Builds the client; fails only on a configuration that cannot work
    /// (a header name or value HTTP does not allow). Header values are never
    /// part of the error.
    pub fn new(config: NodeConfig) -> Result<Self, BeaconError> {
        let config_error = |message: String| BeaconError::Transport {
            node: config.name.clone(),
            endpoint: "(configuration)".into(),
            message,
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &config.headers {
            let name_h = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| config_error(format!("invalid header name {name:?}")))?;
            let mut value_h = HeaderValue::from_str(value)
                .map_err(|_| config_error(format!("invalid value for header {name:?}")))?;
            // Keeps the value out of any debug output of the HTTP stack.
            value_h.set_sensitive(true);
            headers.insert(name_h, value_h);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| config_error(format!("cannot build HTTP client: {e}")))?;
        let pacer = config
            .max_requests_per_second
            .and_then(|rps| Pacer::new(rps, config.timeout))
            .map(Arc::new);
        Ok(Self {
            config,
            http,
            pacer,
            stats: Arc::new(Mutex::new(NodeStats::default())),
            observer: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Installs the request observer (once; later calls are ignored).
    pub fn set_observer(&self, observer: RequestObserver) {
        let _ = self.observer.set(observer);
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Request count, error count and latest latency of this node.
    pub fn stats(&self) -> NodeStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_stats(&self, f: impl FnOnce(&mut NodeStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The node's base URL with `path` appended to its own path, so a base
    /// such as `https://provider/v1/KEY/` keeps its prefix (and its query).
    fn url(&self, path: &str, query: &[(&str, String)]) -> url::Url {
        let mut url = self.config.url.clone();
        let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends one request and reads the whole answer. Every outcome but a
    /// complete answer is an error; the status is judged by the caller.
    async fn send(
        &self,
        endpoint: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, BeaconError> {
        if let Some(pacer) = &self.pacer {
            if !pacer.wait_turn().await {
                self.with_stats(|s| s.errors += 1);
                return Err(BeaconError::RateLimited {
                    node: self.config.name.clone(),
                    endpoint: endpoint.to_string(),
                });
            }
        }
        let url = self.url(path, query);
        let limit = answer_cap(endpoint, ids_in(body));
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        self.with_stats(|s| s.requests += 1);
        let timeout = self.config.timeout;
        let exchange = async {
            let mut resp = req.send().await.map_err(Exchange::Http)?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let consensus_version = header("eth-consensus-version");
            let dependent_root = header("eth-consensus-dependent-root");
            let status = resp.status().as_u16();
            // Refused before reading when the node says how large it is;
            // else read until the cap is passed, then dropped (closing the
            // connection), so at most `limit` bytes are ever held.
            let declared = resp.content_length();
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(Exchange::TooLarge);
            }
            let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
            while let Some(chunk) = resp.chunk().await.map_err(Exchange::Http)? {
                if body.len() + chunk.len() > limit {
                    return Err(Exchange::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Answer {
                status,
                consensus_version,
                dependent_root,
                body,
            })
        };
        // reqwest's own timeout covers the same span; the outer one makes the
        // bound hold whatever the HTTP stack does.
        let result = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(self.timeout_error(endpoint)),
            Ok(Err(Exchange::Http(e))) if e.is_timeout() => Err(self.timeout_error(endpoint)),
            Ok(Err(Exchange::Http(e))) => Err(BeaconError::Transport {
                node: self.config.name.clone(),
                endpoint: endpoint.to_string(),
                message: transport_message(&e),
            }),
            Ok(Err(Exchange::TooLarge)) => Err(BeaconError::TooLarge {
                node: self.config.name.clone(),
                endpoint: endpoint.to_string(),
                limit,
            }),
            Ok(Ok(answer)) => Ok(answer),
        };
        let elapsed = started.elapsed();
        if let Some(observe) = self.observer.get() {
            let kind = match &result {
                Ok(a) if a.status >= 400 && a.status != 404 => Some("status"),
                Ok(_) => None,
                Err(BeaconError::Timeout { .. }) => Some("timeout"),
                Err(BeaconError::TooLarge { .. }) => Some("too_large"),
                Err(_) => Some("transport"),
            };
            observe(&self.config.name, endpoint, elapsed, kind);
        }
        match &result {
            Ok(a) => {
                self.with_stats(|s| {
                    s.last_latency = Some(elapsed);
                    if a.status >= 400 && a.status != 404 {
                        s.errors += 1;
                    }
                });
                tracing::debug!(
                    node = %self.config.name,
                    endpoint,
                    status = a.status,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "beacon request"
                );
            }
            Err(e) => {
                self.with_stats(|s| s.errors += 1);
                tracing::debug!(node = %self.config.name, endpoint, error = %e, "beacon request failed");
            }
        }
        result
    }

    fn timeout_error(&self, endpoint: &str) -> BeaconError {
        BeaconError::Timeout {
            node: self.config.name.clone(),
            endpoint: endpoint.to_string(),
            after: self.config.timeout,
        }
    }

    /// `Ok(None)` for 404, the answer for 2xx, `Status` otherwise.
    fn found(&self, endpoint: &str, answer: Answer) -> Result<Option<Answer>, BeaconError> {
        match answer.status {
            200..=299 => Ok(Some(answer)),
            404 => Ok(None),
            status => Err(BeaconError::Status {
                node: self.config.name.clone(),
                endpoint: endpoint.to_string(),
                status,
                message: wire::error_message(&answer.body),
            }),
        }
    }

    /// The answer for 2xx, `Status` for anything else, 404 included.
    fn ok(&self, endpoint: &str, answer: Answer) -> Result<Answer, BeaconError> {
        match answer.status {
            200..=299 => Ok(answer),
            status => {
                if status == 404 {
                    // `send` does not count 404s: most routes take them as an answer.
                    self.with_stats(|s| s.errors += 1);
                }
                Err(BeaconError::Status {
                    node: self.config.name.clone(),
                    endpoint: endpoint.to_string(),
                    status,
                    message: wire::error_message(&answer.body),
                })
            }
        }
    }

    /// Maps a decode failure to `Decode` and counts it.
    fn decoded<T>(&self, endpoint: &str, r: Result<T, DecodeError>) -> Result<T, BeaconError> {
        r.map_err(|e| {
            self.with_stats(|s| s.errors += 1);
            BeaconError::Decode {
                node: self.config.name.clone(),
                endpoint: endpoint.to_string(),
                message: e.0,
            }
        })
    }

    async fn get(&self, endpoint: &str, path: &str) -> Result<Answer, BeaconError> {
        self.send(endpoint, Method::GET, path, &[], None).await
    }

    /// `GET /eth/v1/beacon/genesis`.
    pub async fn genesis(&self) -> Result<Genesis, BeaconError> {
        const EP: &str = "/eth/v1/beacon/genesis";
        let a = self.ok(EP, self.get(EP, EP).await?)?;
        self.decoded(EP, wire::parse_genesis(&a.body))
    }

    /// `GET /eth/v1/config/spec` combined with the genesis.
    pub async fn chain_spec(&self, genesis: &Genesis) -> Result<ChainSpec, BeaconError> {
        const EP: &str = "/eth/v1/config/spec";
        let a = self.ok(EP, self.get(EP, EP).await?)?;
        self.decoded(EP, wire::parse_spec(&a.body, genesis))
    }

    /// `GET /eth/v1/node/syncing`.
    pub async fn syncing(&self) -> Result<SyncStatus, BeaconError> {
        const EP: &str = "/eth/v1/node/syncing";
        let a = self.ok(EP, self.get(EP, EP).await?)?;
        self.decoded(EP, wire::parse_syncing(&a.body))
    }

    /// `GET /eth/v1/beacon/headers/{block_id}`; `None` on 404.
    pub async fn header(&self, id: BlockId) -> Result<Option<BlockHeader>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/headers/{block_id}";
        let path = format!("/eth/v1/beacon/headers/{id}");
        let header = match self.found(EP, self.get(EP, &path).await?)? {
            None => None,
            Some(a) => Some(self.decoded(EP, wire::parse_header(&a.body))?),
        };
        if let (BlockId::Head, Some(h)) = (&id, &header) {
            let slot = h.slot;
            self.with_stats(|s| s.head_slot = Some(slot));
        }
        Ok(header)
    }

    /// `GET /eth/v1/beacon/blocks/{block_id}/root`; `None` on 404.
    pub async fn block_root(&self, id: BlockId) -> Result<Option<Root>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/blocks/{block_id}/root";
        let path = format!("/eth/v1/beacon/blocks/{id}/root");
        match self.found(EP, self.get(EP, &path).await?)? {
            None => Ok(None),
            Some(a) => self.decoded(EP, wire::parse_root(&a.body)).map(Some),
        }
    }

    /// `GET /eth/v2/beacon/blocks/{block_id}`; `None` on 404. The block root
    /// is not in the body: the caller passes the root it knows from the
    /// header (`root`), else it is left unknown (zero); `block_with_root`
    /// fetches it.
    pub async fn block(
        &self,
        id: BlockId,
        root: Option<Root>,
    ) -> Result<Option<Block>, BeaconError> {
        const EP: &str = "/eth/v2/beacon/blocks/{block_id}";
        let path = format!("/eth/v2/beacon/blocks/{id}");
        let Some(a) = self.found(EP, self.get(EP, &path).await?)? else {
            return Ok(None);
        };
        let root = root.or(match id {
            BlockId::Root(r) => Some(r),
            _ => None,
        });
        let decoded = wire::decode_block(&a.body, a.consensus_version.as_deref(), root).map_err(
            |e| match e {
                wire::BlockDecodeError::Header(m) => DecodeError(format!("block {id}: {m}")),
                body => DecodeError(body.to_string()),
            },
        );
        let decoded = self.decoded(EP, decoded)?;
        if !decoded.degraded.is_empty() {
            tracing::warn!(
                node = %self.config.name,
                slot = decoded.block.header.slot.0,
                fork = %decoded.block.fork,
                error = %decoded.degraded.join("; "),
                "block of an unknown fork read in part"
            );
        }
        Ok(Some(decoded.block))
    }

    /// The header of `id`, then the block by that root, so the block carries
    /// its root and both answers describe the same block even if the chain
    /// moves in between. `None` when either is not found.
    pub async fn block_with_root(&self, id: BlockId) -> Result<Option<Block>, BeaconError> {
        let Some(header) = self.header(id).await? else {
            return Ok(None);
        };
        self.block(BlockId::Root(header.root), Some(header.root))
            .await
    }

    /// `GET /eth/v2/beacon/blocks/{block_id}/attestations`: the fork and the
    /// block's aggregates, without the rest of the block; `None` on 404.
    pub async fn block_attestations(
        &self,
        id: BlockId,
    ) -> Result<Option<(Fork, Vec<Attestation>)>, BeaconError> {
        const EP: &str = "/eth/v2/beacon/blocks/{block_id}/attestations";
        let path = format!("/eth/v2/beacon/blocks/{id}/attestations");
        match self.found(EP, self.get(EP, &path).await?)? {
            None => Ok(None),
            Some(a) => self
                .decoded(
                    EP,
                    wire::decode_block_attestations(&a.body, a.consensus_version.as_deref())
                        .map_err(|e| DecodeError(format!("block {id}: {e}"))),
                )
                .map(Some),
        }
    }

    /// `GET /eth/v1/beacon/states/{state_id}/committees?epoch=E`; `None` on 404.
    pub async fn committees(
        &self,
        state: StateId,
        epoch: Epoch,
    ) -> Result<Option<Vec<Committee>>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/states/{state_id}/committees";
        let path = format!("/eth/v1/beacon/states/{state}/committees");
        let query = [("epoch", epoch.0.to_string())];
        let answer = self.send(EP, Method::GET, &path, &query, None).await?;
        match self.found(EP, answer)? {
            None => Ok(None),
            Some(a) => self.decoded(EP, wire::parse_committees(&a.body)).map(Some),
        }
    }

    /// `GET /eth/v1/beacon/states/{state_id}/committees?epoch=E&slot=S`: all
    /// committees of one slot; `None` on 404.
    pub async fn slot_committees(
        &self,
        state: StateId,
        epoch: Epoch,
        slot: Slot,
    ) -> Result<Option<Vec<Committee>>, BeaconError> {
        // Its own label, so the metrics tell the per-slot reads apart.
        const EP: &str = "/eth/v1/beacon/states/{state_id}/committees?slot";
        let path = format!("/eth/v1/beacon/states/{state}/committees");
        let query = [("epoch", epoch.0.to_string()), ("slot", slot.0.to_string())];
        let answer = self.send(EP, Method::GET, &path, &query, None).await?;
        match self.found(EP, answer)? {
            None => Ok(None),
            Some(a) => self.decoded(EP, wire::parse_committees(&a.body)).map(Some),
        }
    }

    /// `POST /eth/v1/validator/duties/attester/{epoch}` with the indices, in
    /// batches of `IDS_PER_REQUEST`; every batch must name the same
    /// dependent root. No ids, no request.
    pub async fn attester_duties(
        &self,
        epoch: Epoch,
        ids: &[ValidatorIndex],
    ) -> Result<AttesterDuties, BeaconError> {
        const EP: &str = "/eth/v1/validator/duties/attester/{epoch}";
        let path = format!("/eth/v1/validator/duties/attester/{epoch}");
        let mut out: Option<AttesterDuties> = None;
        for batch in ids.chunks(IDS_PER_REQUEST) {
            let body =
                serde_json::Value::from(batch.iter().map(|i| i.0.to_string()).collect::<Vec<_>>());
            let answer = self.send(EP, Method::POST, &path, &[], Some(&body)).await?;
            let a = self.ok(EP, answer)?;
            let part = self.decoded(
                EP,
                wire::parse_attester_duties(&a.body, epoch, a.dependent_root.as_deref()),
            )?;
            match &mut out {
                None => out = Some(part),
                Some(o) if o.dependent_root == part.dependent_root => o.duties.extend(part.duties),
                Some(_) => {
                    return self.decoded(
                        EP,
                        Err(wire::DecodeError(
                            "attester duty batches name different dependent roots".into(),
                        )),
                    )
                }
            }
        }
        Ok(out.unwrap_or(AttesterDuties {
            epoch,
            dependent_root: Root::ZERO,
            duties: Vec::new(),
        }))
    }

    /// `GET /eth/v1/beacon/states/{state_id}/sync_committees?epoch=E`: members by position.
    pub async fn sync_committee(
        &self,
        state: StateId,
        epoch: Epoch,
    ) -> Result<Option<Vec<ValidatorIndex>>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/states/{state_id}/sync_committees";
        let path = format!("/eth/v1/beacon/states/{state}/sync_committees");
        let query = [("epoch", epoch.0.to_string())];
        let answer = self.send(EP, Method::GET, &path, &query, None).await?;
        match self.found(EP, answer)? {
            None => Ok(None),
            Some(a) => self
                .decoded(EP, wire::parse_sync_committee(&a.body))
                .map(Some),
        }
    }

    /// `GET /eth/v1/validator/duties/proposer/{epoch}`.
    pub async fn proposer_duties(&self, epoch: Epoch) -> Result<ProposerDuties, BeaconError> {
        const EP: &str = "/eth/v1/validator/duties/proposer/{epoch}";
        let path = format!("/eth/v1/validator/duties/proposer/{epoch}");
        let a = self.ok(EP, self.get(EP, &path).await?)?;
        self.decoded(
            EP,
            wire::parse_proposer_duties(&a.body, epoch, a.dependent_root.as_deref()),
        )
    }

    /// `POST /eth/v1/beacon/states/{state_id}/validators` with `{"ids": [...]}`,
    /// in batches of `IDS_PER_REQUEST`; `None` on 404 (state not available).
    /// No ids, no request: an empty list would ask for the whole registry.
    pub async fn validators(
        &self,
        state: StateId,
        ids: &[ValidatorId],
    ) -> Result<Option<Vec<ValidatorInfo>>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/states/{state_id}/validators";
        let path = format!("/eth/v1/beacon/states/{state}/validators");
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(IDS_PER_REQUEST) {
            let body = serde_json::json!({
                "ids": batch.iter().map(|id| id.to_api()).collect::<Vec<_>>()
            });
            let answer = self.send(EP, Method::POST, &path, &[], Some(&body)).await?;
            match self.found(EP, answer)? {
                None => return Ok(None),
                Some(a) => out.extend(self.decoded(EP, wire::parse_validators(&a.body))?),
            }
        }
        Ok(Some(out))
    }

    /// `GET /eth/v1/beacon/states/{state_id}/finality_checkpoints`.
    pub async fn finality(&self, state: StateId) -> Result<Finality, BeaconError> {
        const EP: &str = "/eth/v1/beacon/states/{state_id}/finality_checkpoints";
        let path = format!("/eth/v1/beacon/states/{state}/finality_checkpoints");
        let a = self.ok(EP, self.get(EP, &path).await?)?;
        self.decoded(EP, wire::parse_finality(&a.body))
    }

    /// `GET /eth/v2/beacon/pool/attestations` (`/eth/v1/…` when the node
    /// answers v2 with 404 or 400, as nodes from before Electra do): the
    /// aggregates the node holds, included in a block or not. `None` when
    /// neither route is served.
    pub async fn pool_attestations(&self) -> Result<Option<(Fork, Vec<Attestation>)>, BeaconError> {
        self.pool_attestations_at(None, None).await
    }

    /// `pool_attestations` filtered by the node with the Beacon API's query
    /// parameters `slot` and `committee_index` (from Electra on the node
    /// matches the index against `committee_bits`): the cheap read for a
    /// few duties out of a mainnet pool.
    pub async fn pool_attestations_at(
        &self,
        slot: Option<Slot>,
        committee_index: Option<u64>,
    ) -> Result<Option<(Fork, Vec<Attestation>)>, BeaconError> {
        const V2: &str = "/eth/v2/beacon/pool/attestations";
        const V1: &str = "/eth/v1/beacon/pool/attestations";
        let mut query = Vec::new();
        if let Some(s) = slot {
            query.push(("slot", s.0.to_string()));
        }
        if let Some(k) = committee_index {
            query.push(("committee_index", k.to_string()));
        }
        let mut ep = V2;
        let mut answer = self.send(V2, Method::GET, V2, &query, None).await?;
        if matches!(answer.status, 400 | 404) {
            ep = V1;
            answer = self.send(V1, Method::GET, V1, &query, None).await?;
        }
        match self.found(ep, answer)? {
            None => Ok(None),
            Some(a) => self
                .decoded(
                    ep,
                    wire::decode_block_attestations(&a.body, a.consensus_version.as_deref()),
                )
                .map(Some),
        }
    }

    /// `GET /eth/v2/beacon/pool/attester_slashings` (v1 on 404 or 400);
    /// `None` when neither route is served.
    pub async fn pool_attester_slashings(
        &self,
    ) -> Result<Option<Vec<AttesterSlashing>>, BeaconError> {
        const V2: &str = "/eth/v2/beacon/pool/attester_slashings";
        const V1: &str = "/eth/v1/beacon/pool/attester_slashings";
        let mut ep = V2;
        let mut answer = self.get(V2, V2).await?;
        if matches!(answer.status, 400 | 404) {
            ep = V1;
            answer = self.get(V1, V1).await?;
        }
        match self.found(ep, answer)? {
            None => Ok(None),
            Some(a) => self
                .decoded(ep, wire::parse_pool_attester_slashings(&a.body))
                .map(Some),
        }
    }

    /// `GET /eth/v1/beacon/pool/proposer_slashings`; `None` on 404.
    pub async fn pool_proposer_slashings(
        &self,
    ) -> Result<Option<Vec<ProposerSlashing>>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/pool/proposer_slashings";
        match self.found(EP, self.get(EP, EP).await?)? {
            None => Ok(None),
            Some(a) => self
                .decoded(EP, wire::parse_pool_proposer_slashings(&a.body))
                .map(Some),
        }
    }

    /// `POST /eth/v1/validator/liveness/{epoch}` with the indices as strings,
    /// in batches of `IDS_PER_REQUEST`. No ids, no request (the API requires
    /// at least one).
    pub async fn liveness(
        &self,
        epoch: Epoch,
        ids: &[ValidatorIndex],
    ) -> Result<Vec<(ValidatorIndex, bool)>, BeaconError> {
        const EP: &str = "/eth/v1/validator/liveness/{epoch}";
        let path = format!("/eth/v1/validator/liveness/{epoch}");
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(IDS_PER_REQUEST) {
            let body =
                serde_json::Value::from(batch.iter().map(|i| i.0.to_string()).collect::<Vec<_>>());
            let answer = self.send(EP, Method::POST, &path, &[], Some(&body)).await?;
            let a = self.ok(EP, answer)?;
            out.extend(self.decoded(EP, wire::parse_liveness(&a.body))?);
        }
        Ok(out)
    }

    /// `POST /eth/v1/beacon/rewards/attestations/{epoch}` for `ids` (in
    /// batches of `IDS_PER_REQUEST`; the ideal rewards come with every
    /// batch, the first is kept). `None` when the node does not serve it
    /// (404, or 400 for an epoch it has no state for): unknown, never 0.
    pub async fn attestation_rewards(
        &self,
        epoch: Epoch,
        ids: &[ValidatorIndex],
    ) -> Result<Option<AttestationRewards>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/rewards/attestations/{epoch}";
        let path = format!("/eth/v1/beacon/rewards/attestations/{epoch}");
        let mut out: Option<AttestationRewards> = None;
        for batch in ids.chunks(IDS_PER_REQUEST) {
            let body =
                serde_json::Value::from(batch.iter().map(|i| i.0.to_string()).collect::<Vec<_>>());
            let answer = self.send(EP, Method::POST, &path, &[], Some(&body)).await?;
            if matches!(answer.status, 400 | 404) {
                return Ok(None);
            }
            let a = self.ok(EP, answer)?;
            let part = self.decoded(EP, wire::parse_attestation_rewards(&a.body))?;
            match &mut out {
                None => out = Some(part),
                Some(o) => o.total.extend(part.total),
            }
        }
        Ok(out)
    }

    /// `POST /eth/v1/beacon/rewards/sync_committee/{block_id}` for `ids`;
    /// `None` when not served (404, 400).
    pub async fn sync_committee_rewards(
        &self,
        block: BlockId,
        ids: &[ValidatorIndex],
    ) -> Result<Option<Vec<(ValidatorIndex, i64)>>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/rewards/sync_committee/{block_id}";
        let path = format!("/eth/v1/beacon/rewards/sync_committee/{block}");
        let mut out = Vec::new();
        for batch in ids.chunks(IDS_PER_REQUEST) {
            let body =
                serde_json::Value::from(batch.iter().map(|i| i.0.to_string()).collect::<Vec<_>>());
            let answer = self.send(EP, Method::POST, &path, &[], Some(&body)).await?;
            if matches!(answer.status, 400 | 404) {
                return Ok(None);
            }
            let a = self.ok(EP, answer)?;
            out.extend(self.decoded(EP, wire::parse_sync_rewards(&a.body))?);
        }
        Ok(Some(out))
    }

    /// `GET /eth/v1/beacon/rewards/blocks/{block_id}` of the block at
    /// `slot`; `None` when not served (404, 400).
    pub async fn block_rewards(
        &self,
        block: BlockId,
        slot: Slot,
    ) -> Result<Option<BlockReward>, BeaconError> {
        const EP: &str = "/eth/v1/beacon/rewards/blocks/{block_id}";
        let path = format!("/eth/v1/beacon/rewards/blocks/{block}");
        let answer = self.get(EP, &path).await?;
        if matches!(answer.status, 400 | 404) {
            return Ok(None);
        }
        let a = self.ok(EP, answer)?;
        self.decoded(EP, wire::parse_block_reward(&a.body, slot))
            .map(Some)
    }
}

/// A transport error with its causes (reqwest's own text is often just
/// "error sending request"); the URL is redacted since it may hold a key.
fn transport_message(e: &reqwest::Error) -> String {
    let mut first = e.to_string();
    if let Some(url) = e.url() {
        first = first.replace(url.as_str(), &super::redact_url(url));
    }
    let mut parts = vec![first];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::NodeRole;

    fn client(url: &str, rps: Option<f64>) -> BeaconClient {
        BeaconClient::new(NodeConfig {
            name: "n".into(),
            url: url.parse().unwrap(),
            role: NodeRole::Private,
            headers: vec![("X-Api-Key".into(), "secret".into())],
            timeout: Duration::from_secs(1),
            max_requests_per_second: rps,
        })
        .unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_prefix_and_query() {
        let c = client("https://provider.example/v1/abc/?key=k", None);
        let u = c.url("/eth/v1/node/syncing", &[]);
        assert_eq!(
            u.as_str(),
            "https://provider.example/v1/abc/eth/v1/node/syncing?key=k"
        );
        let c = client("http://127.0.0.1:5052", None);
        let u = c.url(
            "/eth/v1/beacon/states/head/committees",
            &[("epoch", "4".into())],
        );
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:5052/eth/v1/beacon/states/head/committees?epoch=4"
        );
    }

    #[test]
    fn bad_header_values_are_rejected_without_echoing_them() {
        let err = BeaconClient::new(NodeConfig {
            name: "n".into(),
            url: "http://127.0.0.1:1".parse().unwrap(),
            role: NodeRole::Public,
            headers: vec![("Authorization".into(), "Bearer sec\nret".into())],
            timeout: Duration::from_secs(1),
            max_requests_per_second: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("Authorization"), "{err}");
        assert!(!err.contains("sec"), "{err}");
    }

    #[test]
    fn answer_caps_follow_the_route_and_the_ids_asked() {
        let per = |n: usize| n * ANSWER_PER_ID + ANSWER_SLACK;
        let cases = [
            ("/eth/v1/beacon/genesis", 0, SMALL_ANSWER),
            ("/eth/v1/config/spec", 0, SMALL_ANSWER),
            ("/eth/v1/beacon/headers/{block_id}", 0, SMALL_ANSWER),
            ("/eth/v1/beacon/blocks/{block_id}/root", 0, SMALL_ANSWER),
            ("/eth/v2/beacon/blocks/{block_id}", 0, BLOCK_ANSWER),
            (
                "/eth/v2/beacon/blocks/{block_id}/attestations",
                0,
                BLOCK_ANSWER,
            ),
            (
                "/eth/v1/beacon/states/{state_id}/committees",
                0,
                COMMITTEES_ANSWER,
            ),
            (
                "/eth/v1/beacon/states/{state_id}/committees?slot",
                0,
                COMMITTEES_ANSWER,
            ),
            (
                "/eth/v1/beacon/states/{state_id}/sync_committees",
                0,
                SMALL_ANSWER,
            ),
            ("/eth/v1/validator/duties/proposer/{epoch}", 0, SMALL_ANSWER),
            ("/eth/v2/beacon/pool/attestations", 0, POOL_ANSWER),
            ("/eth/v1/beacon/pool/proposer_slashings", 0, POOL_ANSWER),
            (
                "/eth/v1/beacon/states/{state_id}/validators",
                1000,
                per(1000),
            ),
            ("/eth/v1/beacon/states/{state_id}/validators", 2, per(2)),
            ("/eth/v1/validator/liveness/{epoch}", 10, per(10)),
            ("/eth/v1/validator/duties/attester/{epoch}", 7, per(7)),
        ];
        for (endpoint, ids, want) in cases {
            assert_eq!(answer_cap(endpoint, ids), want, "{endpoint} with {ids} ids");
        }
        // 1000 registry entries measured at ~474 bytes each fit.
        assert!(answer_cap("/eth/v1/beacon/states/{state_id}/validators", 1000) > 1000 * 474);
    }

    #[test]
    fn ids_are_counted_in_both_body_shapes() {
        assert_eq!(ids_in(Some(&serde_json::json!(["1", "2"]))), 2);
        assert_eq!(
            ids_in(Some(&serde_json::json!({"ids": ["1", "2", "3"]}))),
            3
        );
        assert_eq!(ids_in(Some(&serde_json::json!({"other": 1}))), 0);
        assert_eq!(ids_in(None), 0);
    }

    #[tokio::test]
    async fn pacer_spaces_requests_and_refuses_a_long_queue() {
        let p = Pacer::new(20.0, Duration::from_millis(120)).unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(p.wait_turn().await);
        }
        // Three turns at 50 ms spacing: the third starts 100 ms in.
        assert!(start.elapsed() >= Duration::from_millis(95));
        assert!(Pacer::new(0.0, Duration::ZERO).is_none());
        assert!(Pacer::new(f64::NAN, Duration::ZERO).is_none());
        let p = Pacer::new(1.0, Duration::from_millis(10)).unwrap();
        assert!(p.wait_turn().await);
        assert!(!p.wait_turn().await, "a 1 s wait is longer than 10 ms");
    }
}
