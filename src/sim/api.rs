//! The Beacon API of a simulated node as a pure function: a request and a
//! view of the chain (which slot is the head, which is "now") in, status,
//! headers and a JSON body out, in the shapes real nodes send (quoted
//! integers, 0x hex, `data` envelopes, `Eth-Consensus-Version`).
//!
//! Must not: do IO, sleep, or decide faults (the server applies those).
//! Large lists (validators, balances, committees) are written straight into
//! a string: a mainnet-size registry is a million entries.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::chain::{
    credentials_of, fake_root, index_of_pubkey, pubkey_of, PoolSlashing, Sim, SimBlock,
};
use crate::analysis::SlashingKind;
use crate::chain::{Attestation, AttestationData, Fork, Pubkey, Root, FAR_FUTURE_EPOCH};

/// 96 zero-ish bytes stand in for every BLS signature.
const SIGNATURE_BYTE: &str = "a5";
/// `SYNC_COMMITTEE_SUBNET_COUNT` (altair/validator.md).
const SYNC_SUBNETS: usize = 4;

/// How error bodies look: the Beacon API's `{code, message}` or Lodestar's
/// `{statusCode, error, message}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStyle {
    #[default]
    BeaconApi,
    Lodestar,
}

/// Which epochs a node answers for, relative to its current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    /// Proposer duties: epochs `current - past ..= current + future`
    /// (Lodestar: only current and next).
    pub proposer_past: u64,
    pub proposer_future: u64,
    /// Liveness: current ± this (Lighthouse and Lodestar: 1).
    pub liveness: u64,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            proposer_past: 0,
            proposer_future: 1,
            liveness: 1,
        }
    }
}

/// What one node shows of the chain at one moment.
pub struct View<'a> {
    pub sim: &'a Sim,
    /// Latest slot whose block the node has (its head may be earlier).
    pub head: u64,
    /// The wall-clock slot (for duties and liveness windows).
    pub current: u64,
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    /// Serve a different root for the block at this slot.
    pub wrong_root: Option<u64>,
    /// Say synced at distance 0 whatever the head (a stuck node).
    pub claims_synced: bool,
    pub errors: ErrorStyle,
    pub windows: Windows,
    pub version: &'a str,
}

/// A response before it becomes HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

fn q(x: u64) -> Value {
    Value::String(x.to_string())
}

fn hexs(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn sig() -> String {
    format!("0x{}", SIGNATURE_BYTE.repeat(96))
}

fn zeros(n: usize) -> String {
    format!("0x{}", "00".repeat(n))
}

pub fn error_reply(style: ErrorStyle, status: u16, message: &str) -> Reply {
    let body = match style {
        ErrorStyle::BeaconApi => json!({ "code": status, "message": message }),
        ErrorStyle::Lodestar => {
            let reason = match status {
                400 => "Bad Request",
                404 => "Not Found",
                503 => "Service Unavailable",
                _ => "Internal Server Error",
            };
            json!({ "statusCode": status, "error": reason, "message": message })
        }
    };
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

type Answer = Result<Reply, (u16, String)>;

fn ok(v: Value) -> Answer {
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: v.to_string(),
    })
}

fn bad(msg: impl Into<String>) -> (u16, String) {
    (400, msg.into())
}

fn with_headers(mut r: Reply, h: &[(&'static str, String)]) -> Reply {
    r.headers.extend_from_slice(h);
    r
}

fn version_of(fork: Fork, genesis: [u8; 4]) -> [u8; 4] {
    let major = match fork {
        Fork::Phase0 => 0,
        Fork::Altair => 1,
        Fork::Bellatrix => 2,
        Fork::Capella => 3,
        Fork::Deneb => 4,
        _ => 5,
    };
    [major, genesis[1], genesis[2], genesis[3]]
}

impl View<'_> {
    fn spe(&self) -> u64 {
        self.sim.slots_per_epoch()
    }

    fn current_epoch(&self) -> u64 {
        self.current / self.spe()
    }

    /// The head block: the latest block up to `head`; a block orphaned at
    /// exactly `head` is still the head (nobody has built around it yet).
    fn head_block(&self) -> (&SimBlock, bool) {
        match self.sim.orphan_at(self.head) {
            Some(b) => (b, true),
            None => (self.sim.block_at_or_before(self.head), true),
        }
    }

    fn head_epoch(&self) -> u64 {
        self.head_block().0.slot / self.spe()
    }

    fn finalized_epoch(&self) -> u64 {
        self.sim.finality(self.head_epoch()).finalized.epoch.0
    }

    fn is_finalized(&self, b: &SimBlock, canonical: bool) -> bool {
        let f = self.finalized_epoch();
        canonical && f > 0 && b.slot <= f * self.spe()
    }

    fn root_of(&self, b: &SimBlock) -> Root {
        if self.wrong_root == Some(b.slot) {
            fake_root(&[b.root.0[0] as u64, b.slot, 0xbad])
        } else {
            b.root
        }
    }

    fn canonical(&self, b: &SimBlock) -> bool {
        b.canonical || (b.slot == self.head && !b.equivocation)
    }

    /// Resolves a block id among the blocks this node has.
    fn block(&self, id: &str) -> Result<(&SimBlock, bool), (u16, String)> {
        let missing = || (404, format!("No block found for id '{id}'"));
        let b = match id {
            "head" => Some(self.head_block().0),
            "genesis" => self.sim.canonical_block(0),
            "finalized" | "justified" => {
                let f = self.sim.finality(self.head_epoch());
                let cp = if id == "finalized" {
                    f.finalized
                } else {
                    f.current_justified
                };
                if cp.epoch.0 == 0 {
                    self.sim.canonical_block(0)
                } else {
                    self.sim.block_by_root(&cp.root)
                }
            }
            _ if id.starts_with("0x") => {
                let root: Root = id
                    .parse()
                    .map_err(|_| bad(format!("Invalid block id '{id}'")))?;
                self.sim.block_by_root(&root)
            }
            _ => {
                let slot: u64 = id
                    .parse()
                    .map_err(|_| bad(format!("Invalid block id '{id}'")))?;
                if slot > self.head {
                    None
                } else {
                    self.sim
                        .canonical_block(slot)
                        .or_else(|| self.sim.orphan_at(slot).filter(|b| b.slot == self.head))
                }
            }
        };
        let b = b.filter(|b| b.slot <= self.head).ok_or_else(missing)?;
        Ok((b, self.canonical(b)))
    }

    /// Resolves a state id to the slot of its state. Like Lodestar, a slot
    /// without a block has no state.
    fn state(&self, id: &str) -> Result<u64, (u16, String)> {
        let missing = || (404, format!("No state found for id '{id}'"));
        match id {
            "head" | "genesis" | "finalized" | "justified" => {
                let bid = if id == "head" { "head" } else { id };
                self.block(bid).map(|(b, _)| b.slot).map_err(|_| missing())
            }
            _ if id.starts_with("0x") => {
                let root: Root = id
                    .parse()
                    .map_err(|_| bad(format!("Invalid state id '{id}'")))?;
                self.sim
                    .slot_of_state_root(&root)
                    .filter(|&s| s <= self.head)
                    .ok_or_else(missing)
            }
            _ => {
                let slot: u64 = id
                    .parse()
                    .map_err(|_| bad(format!("Invalid state id '{id}'")))?;
                self.block(&slot.to_string())
                    .map(|(b, _)| b.slot)
                    .map_err(|_| missing())
            }
        }
    }

    fn meta_headers(&self, finalized: bool) -> Vec<(&'static str, String)> {
        vec![
            ("Eth-Execution-Optimistic", "false".into()),
            ("Eth-Consensus-Finalized", finalized.to_string()),
        ]
    }

    fn header_json(&self, b: &SimBlock, canonical: bool) -> Value {
        json!({
            "root": self.root_of(b).to_hex(),
            "canonical": canonical,
            "header": {
                "message": {
                    "slot": q(b.slot),
                    "proposer_index": q(b.proposer as u64),
                    "parent_root": b.parent_root.to_hex(),
                    "state_root": b.state_root.to_hex(),
                    "body_root": b.body_root.to_hex(),
                },
                "signature": sig(),
            }
        })
    }
}

fn data_json(d: &AttestationData) -> Value {
    json!({
        "slot": q(d.slot.0),
        "index": q(d.index),
        "beacon_block_root": d.beacon_block_root.to_hex(),
        "source": { "epoch": q(d.source.epoch.0), "root": d.source.root.to_hex() },
        "target": { "epoch": q(d.target.epoch.0), "root": d.target.root.to_hex() },
    })
}

fn attestation_json(a: &Attestation) -> Value {
    let mut v = json!({
        "aggregation_bits": hexs(a.aggregation_bits.as_bytes()),
        "data": data_json(&a.data),
        "signature": sig(),
    });
    if let (Some(bits), Some(obj)) = (&a.committee_bits, v.as_object_mut()) {
        obj.insert(
            "committee_bits".into(),
            Value::String(hexs(bits.as_bytes())),
        );
    }
    v
}

/// A `ProposerSlashing`: two different signed headers of validator `v`
/// for `slot`.
fn proposer_slashing_json(v: u32, slot: u64) -> Value {
    let signed_header = |n: u64| {
        json!({
            "message": {
                "slot": q(slot),
                "proposer_index": q(v as u64),
                "parent_root": fake_root(&[v as u64, n, 1]).to_hex(),
                "state_root": fake_root(&[v as u64, n, 2]).to_hex(),
                "body_root": fake_root(&[v as u64, n, 3]).to_hex(),
            },
            "signature": sig(),
        })
    };
    json!({ "signed_header_1": signed_header(1), "signed_header_2": signed_header(2) })
}

/// An `AttesterSlashing`: the same validators in two indexed attestations
/// of `slot` for target epoch `target`, with different head and target
/// roots (a double vote).
fn attester_slashing_json(vs: &[u32], slot: u64, target: u64) -> Value {
    let indexed = |n: u64| {
        json!({
            "attesting_indices": vs.iter().map(|&v| q(v as u64)).collect::<Vec<_>>(),
            "data": {
                "slot": q(slot),
                "index": "0",
                "beacon_block_root": fake_root(&[target, n, 4]).to_hex(),
                "source": { "epoch": "0", "root": zeros(32) },
                "target": { "epoch": q(target), "root": fake_root(&[target, n, 5]).to_hex() },
            },
            "signature": sig(),
        })
    };
    json!({ "attestation_1": indexed(1), "attestation_2": indexed(2) })
}

fn pool_slashing_json(p: &PoolSlashing) -> Value {
    match p.kind {
        SlashingKind::Attester => attester_slashing_json(&p.validators, p.slot, p.epoch),
        SlashingKind::Proposer => {
            proposer_slashing_json(p.validators.first().copied().unwrap_or(0), p.slot)
        }
    }
}

fn block_json(sim: &Sim, b: &SimBlock, genesis_time: u64) -> Value {
    let spe = sim.slots_per_epoch();
    let electra = b.fork.has_committee_bits();
    // Slashings in blocks are for votes of the previous epoch's first slot
    // and headers of the previous slot.
    let target = (b.slot / spe).saturating_sub(1);
    let mut payload = json!({
        "parent_hash": fake_root(&[b.slot, 6]).to_hex(),
        "fee_recipient": zeros(20),
        "state_root": zeros(32),
        "receipts_root": zeros(32),
        "logs_bloom": zeros(256),
        "prev_randao": fake_root(&[b.slot, 7]).to_hex(),
        "block_number": q(b.slot),
        "gas_limit": "30000000",
        "gas_used": "0",
        "timestamp": q(genesis_time + b.slot * sim.scenario().slot_duration_ms / 1000),
        "extra_data": "0x",
        "base_fee_per_gas": "0",
        "block_hash": fake_root(&[b.slot, 8]).to_hex(),
        // One opaque stand-in transaction: real blocks are rarely empty.
        "transactions": [format!("0x02{}", hex::encode(fake_root(&[b.slot, 9]).0))],
        "withdrawals": [],
        "blob_gas_used": "0",
        "excess_blob_gas": "0",
    });
    if let (true, Some(p)) = (electra, payload.as_object_mut()) {
        // Pre-final Electra (consensus-specs v1.5.0-alpha.5, what the
        // Lodestar recording shows): the requests sit in the payload.
        for k in [
            "deposit_requests",
            "withdrawal_requests",
            "consolidation_requests",
        ] {
            p.insert(k.into(), json!([]));
        }
    }
    json!({
        "message": {
            "slot": q(b.slot),
            "proposer_index": q(b.proposer as u64),
            "parent_root": b.parent_root.to_hex(),
            "state_root": b.state_root.to_hex(),
            "body": {
                "randao_reveal": sig(),
                "eth1_data": {
                    "deposit_root": zeros(32),
                    "deposit_count": q(sim.validator_count()),
                    "block_hash": zeros(32),
                },
                "graffiti": zeros(32),
                "proposer_slashings": b.proposer_slashings.iter()
                    .map(|&v| proposer_slashing_json(v, b.slot.saturating_sub(1)))
                    .collect::<Vec<_>>(),
                "attester_slashings": b.attester_slashings.iter()
                    .map(|vs| attester_slashing_json(vs, target * spe, target))
                    .collect::<Vec<_>>(),
                "attestations": b.attestations.iter().map(attestation_json).collect::<Vec<_>>(),
                "deposits": [],
                "voluntary_exits": b.exits.iter()
                    .map(|&(v, e)| json!({ "message": { "epoch": q(e), "validator_index": q(v as u64) }, "signature": sig() }))
                    .collect::<Vec<_>>(),
                "sync_aggregate": {
                    "sync_committee_bits": hexs(b.sync_bits.as_bytes()),
                    "sync_committee_signature": sig(),
                },
                "execution_payload": payload,
                "bls_to_execution_changes": [],
                "blob_kzg_commitments": [],
            }
        },
        "signature": sig(),
    })
}

/// A validator id from a request: an index or a 0x pubkey. Unknown ids are
/// `None` (dropped, as nodes do); malformed ones are errors.
fn parse_id(sim: &Sim, id: &str) -> Result<Option<u64>, (u16, String)> {
    let v = if id.starts_with("0x") {
        let pk: Pubkey = id
            .parse()
            .map_err(|_| bad(format!("Invalid validator id '{id}'")))?;
        index_of_pubkey(&pk)
    } else {
        Some(
            id.parse::<u64>()
                .map_err(|_| bad(format!("Invalid validator id '{id}'")))?,
        )
    };
    Ok(v.filter(|&v| v < sim.validator_count()))
}

/// Ids from a JSON body: an array of strings (or numbers).
fn ids_from(sim: &Sim, v: Option<&Value>) -> Result<Option<Vec<u64>>, (u16, String)> {
    let Some(Value::Array(items)) = v else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let s = match item {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(bad("validator ids must be strings")),
        };
        out.extend(parse_id(sim, &s)?);
    }
    Ok(Some(out))
}

fn body_json(body: &[u8]) -> Result<Option<Value>, (u16, String)> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| bad(format!("Invalid JSON body: {e}")))
}

fn epoch_param(s: &str) -> Result<u64, (u16, String)> {
    s.parse().map_err(|_| bad(format!("Invalid epoch '{s}'")))
}

/// Answers one request.
pub fn respond(view: &View, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let answer = route(view, method, &segs, &params, body);
    let mut reply = answer.unwrap_or_else(|(status, msg)| error_reply(view.errors, status, &msg));
    reply
        .headers
        .push(("Content-Type", "application/json; charset=utf-8".into()));
    reply
}

fn route(
    view: &View,
    method: &str,
    segs: &[&str],
    params: &[(String, String)],
    body: &[u8],
) -> Answer {
    let param = |k: &str| get(params, k);
    let sim = view.sim;
    let spe = view.spe();
    match (method, segs) {
        ("GET", ["eth", "v1", "beacon", "genesis"]) => ok(json!({ "data": {
            "genesis_time": q(view.genesis_time),
            "genesis_validators_root": view.genesis_validators_root.to_hex(),
            "genesis_fork_version": hexs(&sim.preset().genesis_fork_version),
        }})),
        ("GET", ["eth", "v1", "config", "spec"]) => ok(json!({ "data": spec(view) })),
        ("GET", ["eth", "v1", "config", "fork_schedule"]) => {
            let g = sim.preset().genesis_fork_version;
            let mut prev = g;
            let mut out = Vec::new();
            for f in [
                Fork::Phase0,
                Fork::Altair,
                Fork::Bellatrix,
                Fork::Capella,
                Fork::Deneb,
                Fork::Electra,
            ] {
                let cur = version_of(f, g);
                let epoch = if f == Fork::Electra {
                    sim.scenario().electra_fork_epoch
                } else {
                    0
                };
                out.push(json!({ "previous_version": hexs(&prev), "current_version": hexs(&cur), "epoch": q(epoch) }));
                prev = cur;
            }
            ok(json!({ "data": out }))
        }
        ("GET", ["eth", "v1", "node", "version"]) => {
            ok(json!({ "data": { "version": view.version } }))
        }
        ("GET", ["eth", "v1", "node", "health"]) => {
            let status = if view.current > view.head + 1 {
                206
            } else {
                200
            };
            Ok(Reply {
                status,
                headers: Vec::new(),
                body: String::new(),
            })
        }
        ("GET", ["eth", "v1", "node", "syncing"]) => {
            let head = view.head_block().0.slot;
            ok(json!({ "data": {
                "head_slot": q(head),
                "sync_distance": q(if view.claims_synced { 0 } else { view.current.saturating_sub(head) }),
                "is_syncing": !view.claims_synced && view.current > view.head + 1,
                "is_optimistic": false,
                "el_offline": false,
            }}))
        }
        ("GET", ["eth", "v1", "beacon", "headers"]) => {
            let mut found: Vec<(&SimBlock, bool)> = Vec::new();
            if let Some(s) = param("slot") {
                let slot: u64 = s.parse().map_err(|_| bad("Invalid slot"))?;
                if slot <= view.head {
                    found.extend(sim.canonical_block(slot).map(|b| (b, true)));
                    found.extend(sim.orphan_at(slot).map(|b| (b, view.canonical(b))));
                }
            }
            if let Some(p) = param("parent_root") {
                let parent: Root = p.parse().map_err(|_| bad("Invalid parent_root"))?;
                if param("slot").is_some() {
                    found.retain(|(b, _)| b.parent_root == parent);
                } else if let Some(pb) = sim.block_by_root(&parent) {
                    for s in pb.slot + 1..=view.head {
                        for b in sim.canonical_block(s).into_iter().chain(sim.orphan_at(s)) {
                            if b.parent_root == parent {
                                found.push((b, view.canonical(b)));
                            }
                        }
                    }
                }
            }
            if param("slot").is_none() && param("parent_root").is_none() {
                found.push(view.head_block());
            }
            let fin = found.iter().all(|(b, c)| view.is_finalized(b, *c)) && !found.is_empty();
            let data: Vec<Value> = found.iter().map(|(b, c)| view.header_json(b, *c)).collect();
            ok(json!({ "execution_optimistic": false, "finalized": fin, "data": data }))
        }
        ("GET", ["eth", "v1", "beacon", "headers", id]) => {
            let (b, c) = view.block(id)?;
            let fin = view.is_finalized(b, c);
            ok(json!({ "execution_optimistic": false, "finalized": fin, "data": view.header_json(b, c) }))
                .map(|r| with_headers(r, &view.meta_headers(fin)))
        }
        ("GET", ["eth", "v1", "beacon", "blocks", id, "root"]) => {
            let (b, c) = view.block(id)?;
            let fin = view.is_finalized(b, c);
            ok(json!({ "execution_optimistic": false, "finalized": fin, "data": { "root": view.root_of(b).to_hex() } }))
                .map(|r| with_headers(r, &view.meta_headers(fin)))
        }
        ("GET", ["eth", "v2", "beacon", "blocks", id]) => {
            let (b, c) = view.block(id)?;
            let fin = view.is_finalized(b, c);
            let mut h = view.meta_headers(fin);
            h.push(("Eth-Consensus-Version", b.fork.to_string()));
            ok(json!({
                "version": b.fork.to_string(),
                "execution_optimistic": false,
                "finalized": fin,
                "data": block_json(sim, b, view.genesis_time),
            }))
            .map(|r| with_headers(r, &h))
        }
        ("GET", ["eth", "v2", "beacon", "blocks", id, "attestations"]) => {
            let (b, c) = view.block(id)?;
            let fin = view.is_finalized(b, c);
            let mut h = view.meta_headers(fin);
            h.push(("Eth-Consensus-Version", b.fork.to_string()));
            ok(json!({
                "version": b.fork.to_string(),
                "execution_optimistic": false,
                "finalized": fin,
                "data": b.attestations.iter().map(attestation_json).collect::<Vec<_>>(),
            }))
            .map(|r| with_headers(r, &h))
        }
        ("GET", ["eth", version @ ("v1" | "v2"), "beacon", "pool", "attestations"]) => {
            let slot_f = param("slot")
                .map(|s| s.parse::<u64>().map_err(|_| bad("Invalid slot")))
                .transpose()?;
            let index_f = param("committee_index")
                .map(|s| s.parse::<u64>().map_err(|_| bad("Invalid committee_index")))
                .transpose()?;
            let fork = sim.fork_at(view.head / spe);
            let atts: Vec<Value> = sim
                .pool_attestations(view.head)
                .iter()
                // v1 knows only the one-committee format of before Electra.
                .filter(|a| *version == "v2" || a.committee_bits.is_none())
                .filter(|a| slot_f.is_none_or(|s| a.data.slot.0 == s))
                .filter(|a| {
                    index_f.is_none_or(|k| match &a.committee_bits {
                        Some(bits) => bits.ones().any(|i| i as u64 == k),
                        None => a.data.index == k,
                    })
                })
                .map(attestation_json)
                .collect();
            pool_reply(version, fork, atts)
        }
        ("GET", ["eth", version @ ("v1" | "v2"), "beacon", "pool", "attester_slashings"]) => {
            let fork = sim.fork_at(view.head / spe);
            let data: Vec<Value> = sim
                .pool_slashings(view.head)
                .filter(|p| p.kind == SlashingKind::Attester)
                .map(pool_slashing_json)
                .collect();
            pool_reply(version, fork, data)
        }
        ("GET", ["eth", "v1", "beacon", "pool", "proposer_slashings"]) => {
            let data: Vec<Value> = sim
                .pool_slashings(view.head)
                .filter(|p| p.kind == SlashingKind::Proposer)
                .map(pool_slashing_json)
                .collect();
            ok(json!({ "data": data }))
        }
        (_, ["eth", "v1", "beacon", "states", id, what]) => {
            let slot = view.state(id)?;
            let se = slot / spe;
            let (b, c) = view
                .block(&slot.to_string())
                .unwrap_or((view.head_block().0, true));
            let fin = view.is_finalized(b, c);
            let envelope = |data: String| -> Answer {
                Ok(Reply {
                    status: 200,
                    headers: view.meta_headers(fin),
                    body: format!(
                        "{{\"execution_optimistic\":false,\"finalized\":{fin},\"data\":{data}}}"
                    ),
                })
            };
            match (method, *what) {
                ("GET", "finality_checkpoints") => {
                    let f = sim.finality(se);
                    let cp = |c: crate::chain::Checkpoint| json!({ "epoch": q(c.epoch.0), "root": c.root.to_hex() });
                    envelope(
                        json!({
                            "previous_justified": cp(f.previous_justified),
                            "current_justified": cp(f.current_justified),
                            "finalized": cp(f.finalized),
                        })
                        .to_string(),
                    )
                }
                ("GET", "fork") => {
                    let g = sim.preset().genesis_fork_version;
                    let cur = sim.fork_at(se);
                    let fe = sim.scenario().electra_fork_epoch;
                    let (prev, epoch) = if cur == Fork::Electra && fe > 0 {
                        (Fork::Deneb, fe)
                    } else {
                        (cur, 0)
                    };
                    envelope(
                        json!({
                            "previous_version": hexs(&version_of(prev, g)),
                            "current_version": hexs(&version_of(cur, g)),
                            "epoch": q(epoch),
                        })
                        .to_string(),
                    )
                }
                ("GET", "committees") => {
                    let epoch = param("epoch").map(epoch_param).transpose()?.unwrap_or(se);
                    if epoch > se + 1 || epoch + 1 < se {
                        return Err(bad(format!(
                            "EPOCH_CONTEXT_ERROR_COMMITTEE_EPOCH_OUT_OF_RANGE: epoch {epoch}, state epoch {se}"
                        )));
                    }
                    let slot_f = param("slot")
                        .map(|s| s.parse::<u64>().map_err(|_| bad("Invalid slot")))
                        .transpose()?;
                    let index_f = param("index")
                        .map(|s| s.parse::<u64>().map_err(|_| bad("Invalid index")))
                        .transpose()?;
                    if slot_f.is_some_and(|s| s / spe != epoch) {
                        return Err(bad("slot is not in the requested epoch"));
                    }
                    let sh = sim.shuffle(epoch);
                    let mut out = String::from("[");
                    for sie in 0..spe {
                        let s = epoch * spe + sie;
                        if slot_f.is_some_and(|f| f != s) {
                            continue;
                        }
                        for k in 0..sh.committees_per_slot {
                            if index_f.is_some_and(|f| f != k) {
                                continue;
                            }
                            if out.len() > 1 {
                                out.push(',');
                            }
                            let _ = write!(
                                out,
                                "{{\"index\":\"{k}\",\"slot\":\"{s}\",\"validators\":["
                            );
                            for (j, v) in sh.committee(sie, k).iter().enumerate() {
                                let _ = write!(out, "{}\"{v}\"", if j > 0 { "," } else { "" });
                            }
                            out.push_str("]}");
                        }
                    }
                    out.push(']');
                    envelope(out)
                }
                ("GET", "sync_committees") => {
                    let epoch = param("epoch").map(epoch_param).transpose()?.unwrap_or(se);
                    let (p, sp) = (sim.sync_period(epoch), sim.sync_period(se));
                    if p < sp || p > sp + 1 {
                        return Err(bad(format!("Epoch {epoch} is outside the sync committee periods of state epoch {se}")));
                    }
                    let seats = sim.sync_committee(epoch);
                    let all: Vec<Value> = seats.iter().map(|&v| q(v as u64)).collect();
                    let per = (seats.len() / SYNC_SUBNETS).max(1);
                    let aggregates: Vec<Value> =
                        all.chunks(per).map(|c| Value::Array(c.to_vec())).collect();
                    envelope(
                        json!({ "validators": all, "validator_aggregates": aggregates })
                            .to_string(),
                    )
                }
                ("GET" | "POST", "validators") => {
                    let (ids, statuses) = if method == "POST" {
                        let b = body_json(body)?;
                        let statuses = match b.as_ref().and_then(|b| b.get("statuses")) {
                            Some(Value::Array(a)) => a
                                .iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect(),
                            _ => Vec::new(),
                        };
                        (
                            ids_from(sim, b.as_ref().and_then(|b| b.get("ids")))?,
                            statuses,
                        )
                    } else {
                        let ids = query_list(params, "id");
                        let ids = if ids.is_empty() {
                            None
                        } else {
                            Some(
                                ids.iter()
                                    .map(|s| parse_id(sim, s))
                                    .collect::<Result<Vec<_>, _>>()?
                                    .into_iter()
                                    .flatten()
                                    .collect(),
                            )
                        };
                        (ids, query_list(params, "status"))
                    };
                    envelope(validators_json(sim, se, ids, &statuses))
                }
                ("GET" | "POST", "validator_balances") => {
                    let ids = if method == "POST" {
                        ids_from(sim, body_json(body)?.as_ref())?
                    } else {
                        let ids = query_list(params, "id");
                        (!ids.is_empty()).then(|| {
                            ids.iter()
                                .filter_map(|s| parse_id(sim, s).ok().flatten())
                                .collect()
                        })
                    };
                    let ids: Vec<u64> = match ids {
                        Some(ids) if !ids.is_empty() => ids,
                        _ => (0..sim.validator_count()).collect(),
                    };
                    let mut out = String::with_capacity(ids.len() * 40 + 2);
                    out.push('[');
                    for (i, v) in ids.iter().enumerate() {
                        let _ = write!(
                            out,
                            "{}{{\"index\":\"{v}\",\"balance\":\"{}\"}}",
                            if i > 0 { "," } else { "" },
                            sim.balance(*v, se)
                        );
                    }
                    out.push(']');
                    envelope(out)
                }
                _ => Err((404, format!("Unknown route {method} {}", segs.join("/")))),
            }
        }
        ("GET", ["eth", "v1", "validator", "duties", "proposer", e]) => {
            let epoch = epoch_param(e)?;
            let cur = view.current_epoch();
            if epoch + view.windows.proposer_past < cur
                || epoch > cur + view.windows.proposer_future
            {
                return Err((
                    500,
                    format!("Proposer duties for epoch {epoch} not supported, current epoch {cur}"),
                ));
            }
            let dep = dependent_root(view, epoch);
            let data: Vec<Value> = (epoch * spe..(epoch + 1) * spe)
                .filter_map(|s| sim.proposer(s).map(|v| json!({ "pubkey": pubkey_of(v).to_hex(), "validator_index": q(v), "slot": q(s) })))
                .collect();
            ok(json!({ "dependent_root": dep.to_hex(), "execution_optimistic": false, "data": data }))
                .map(|r| with_headers(r, &[("Eth-Execution-Optimistic", "false".into()), ("Eth-Consensus-Dependent-Root", dep.to_hex())]))
        }
        ("POST", ["eth", "v1", "validator", "duties", "attester", e]) => {
            let epoch = epoch_param(e)?;
            let cur = view.current_epoch();
            if epoch > cur + 1 {
                return Err(bad(format!("Cannot get duties for epoch {epoch} that is more than one epoch in the future, current epoch {cur}")));
            }
            let ids = ids_from(sim, body_json(body)?.as_ref())?.unwrap_or_default();
            let sh = sim.shuffle(epoch);
            let data: Vec<Value> = ids
                .iter()
                .filter_map(|&v| {
                    let (sie, k, pos, len) = sh.duty_of(v)?;
                    Some(json!({
                        "pubkey": pubkey_of(v).to_hex(),
                        "validator_index": q(v),
                        "committee_index": q(k),
                        "committee_length": q(len),
                        "committees_at_slot": q(sh.committees_per_slot),
                        "validator_committee_index": q(pos),
                        "slot": q(epoch * spe + sie),
                    }))
                })
                .collect();
            let dep = dependent_root(view, epoch.saturating_sub(1));
            ok(json!({ "dependent_root": dep.to_hex(), "execution_optimistic": false, "data": data }))
                .map(|r| with_headers(r, &[("Eth-Execution-Optimistic", "false".into()), ("Eth-Consensus-Dependent-Root", dep.to_hex())]))
        }
        ("POST", ["eth", "v1", "validator", "duties", "sync", e]) => {
            let epoch = epoch_param(e)?;
            let cur = view.current_epoch();
            if sim.sync_period(epoch) > sim.sync_period(cur) + 1 {
                return Err(bad(format!(
                    "Epoch {epoch} is too far in the future, current epoch {cur}"
                )));
            }
            let ids = ids_from(sim, body_json(body)?.as_ref())?.unwrap_or_default();
            let seats = sim.sync_committee(epoch);
            let data: Vec<Value> = ids.iter().filter_map(|&v| {
                let pos: Vec<Value> = seats.iter().enumerate().filter(|(_, &s)| s as u64 == v).map(|(i, _)| q(i as u64)).collect();
                (!pos.is_empty()).then(|| json!({ "pubkey": pubkey_of(v).to_hex(), "validator_index": q(v), "validator_sync_committee_indices": pos }))
            }).collect();
            ok(json!({ "execution_optimistic": false, "data": data }))
        }
        ("POST", ["eth", "v1", "validator", "liveness", e]) => {
            let epoch = epoch_param(e)?;
            let cur = view.current_epoch();
            if epoch.abs_diff(cur) > view.windows.liveness {
                return Err(bad(format!("Request epoch {epoch} is more than one epoch before or after the current epoch {cur}")));
            }
            let ids = ids_from(sim, body_json(body)?.as_ref())?.unwrap_or_default();
            let sh = sim.shuffle(epoch);
            let data: Vec<Value> = ids
                .iter()
                .map(|&v| {
                    let live = epoch <= cur
                        && !sim.conduct(v, epoch).offline
                        && sh
                            .duty_of(v)
                            .is_some_and(|(sie, ..)| epoch * spe + sie <= view.current);
                    json!({ "index": q(v), "is_live": live })
                })
                .collect();
            ok(json!({ "data": data }))
        }
        _ => Err((404, format!("Unknown route {method} /{}", segs.join("/")))),
    }
}

/// A pool list: v1 as `{data}`, v2 with the fork's `version` (body and
/// `Eth-Consensus-Version` header).
fn pool_reply(version: &str, fork: Fork, data: Vec<Value>) -> Answer {
    if version == "v1" {
        return ok(json!({ "data": data }));
    }
    ok(json!({ "version": fork.to_string(), "data": data }))
        .map(|r| with_headers(r, &[("Eth-Consensus-Version", fork.to_string())]))
}

/// Topics the event stream serves; others are accepted and stay silent,
/// as a node would for events that never happen.
pub const EVENT_TOPICS: [&str; 4] = ["head", "block", "attester_slashing", "proposer_slashing"];

/// The event-stream frames of slots `from..=to` as a node whose head
/// reached `to` sends them: `block` for every block imported at the slot
/// (canonical, later orphaned, second of a double proposal), `head` for
/// the head block, and the pool slashings that arrive at the slot.
pub fn events(view: &View, from: u64, to: u64, topics: &[String]) -> String {
    let want = |t: &str| topics.iter().any(|x| x == t);
    let sim = view.sim;
    let spe = view.spe();
    let mut out = String::new();
    let mut frame = |event: &str, data: Value| {
        let _ = write!(out, "event: {event}\ndata: {data}\n\n");
    };
    for s in from..=to.min(view.head) {
        let imported: Vec<&SimBlock> = sim
            .canonical_block(s)
            .into_iter()
            .chain(sim.orphan_at(s))
            .chain(sim.seconds_at(s))
            .collect();
        for b in &imported {
            if want("block") {
                frame(
                    "block",
                    json!({ "slot": q(s), "block": view.root_of(b).to_hex(), "execution_optimistic": false }),
                );
            }
        }
        if want("head") {
            if let Some(b) = imported.iter().find(|b| !b.equivocation) {
                let e = s / spe;
                let dep = |epoch: u64| {
                    let slot = (epoch * spe).saturating_sub(1);
                    view.root_of(sim.block_at_or_before(slot)).to_hex()
                };
                frame(
                    "head",
                    json!({
                        "slot": q(s),
                        "block": view.root_of(b).to_hex(),
                        "state": b.state_root.to_hex(),
                        "epoch_transition": s % spe == 0,
                        "previous_duty_dependent_root": dep(e.saturating_sub(1)),
                        "current_duty_dependent_root": dep(e),
                        "execution_optimistic": false,
                    }),
                );
            }
        }
        for p in sim.slashings_announced_at(s) {
            let topic = match p.kind {
                SlashingKind::Attester => "attester_slashing",
                SlashingKind::Proposer => "proposer_slashing",
            };
            if want(topic) {
                frame(topic, pool_slashing_json(p));
            }
        }
    }
    out
}

/// `dependent_root` of duties decided by the end of `epoch - 1`: the block
/// root at the last slot before `epoch` (genesis for epoch 0).
fn dependent_root(view: &View, epoch: u64) -> Root {
    let slot = (epoch * view.spe()).saturating_sub(1).min(view.head);
    view.root_of(view.sim.block_at_or_before(slot))
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Values of a repeated or comma-separated query parameter.
fn query_list(params: &[(String, String)], key: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

fn status_matches(status: &str, filters: &[String]) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|f| f == status || status.split('_').next() == Some(f.as_str()))
}

fn validators_json(sim: &Sim, epoch: u64, ids: Option<Vec<u64>>, statuses: &[String]) -> String {
    let ids: Box<dyn Iterator<Item = u64>> = match ids {
        Some(ids) if !ids.is_empty() => Box::new(ids.into_iter()),
        _ => Box::new(0..sim.validator_count()),
    };
    let far = |e: u64| {
        if e == FAR_FUTURE_EPOCH {
            FAR_FUTURE_EPOCH
        } else {
            e
        }
    };
    let mut out = String::from("[");
    for v in ids {
        let life = sim.life(v);
        let bal = sim.balance(v, epoch);
        let status = life.status(epoch, bal).as_str();
        if !status_matches(status, statuses) {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"index\":\"{v}\",\"balance\":\"{bal}\",\"status\":\"{status}\",\"validator\":{{\"pubkey\":\"{}\",\"withdrawal_credentials\":\"{}\",\"effective_balance\":\"{}\",\"slashed\":{},\"activation_eligibility_epoch\":\"{}\",\"activation_epoch\":\"{}\",\"exit_epoch\":\"{}\",\"withdrawable_epoch\":\"{}\"}}}}",
            pubkey_of(v).to_hex(),
            credentials_of(v).to_hex(),
            sim.effective_balance(v, epoch),
            life.slashed(epoch),
            life.activation.saturating_sub(1),
            life.activation,
            far(life.exit_at(epoch)),
            far(life.withdrawable_at(epoch)),
        );
    }
    out.push(']');
    out
}

fn spec(view: &View) -> Value {
    let sim = view.sim;
    let p = sim.preset();
    let g = p.genesis_fork_version;
    let ms = sim.scenario().slot_duration_ms;
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put("PRESET_BASE", p.name.into());
    put("CONFIG_NAME", p.name.into());
    put("SLOTS_PER_EPOCH", sim.slots_per_epoch().to_string());
    put("SECONDS_PER_SLOT", (ms / 1000).to_string());
    put("SLOT_DURATION_MS", ms.to_string());
    put(
        "EPOCHS_PER_SYNC_COMMITTEE_PERIOD",
        p.epochs_per_sync_committee_period.to_string(),
    );
    put("SYNC_COMMITTEE_SIZE", sim.sync_committee_size().to_string());
    put(
        "MAX_COMMITTEES_PER_SLOT",
        p.max_committees_per_slot.to_string(),
    );
    put("TARGET_COMMITTEE_SIZE", p.target_committee_size.to_string());
    put("MIN_ATTESTATION_INCLUSION_DELAY", "1".into());
    put("MAX_EFFECTIVE_BALANCE", "32000000000".into());
    put("MAX_EFFECTIVE_BALANCE_ELECTRA", "2048000000000".into());
    put("EFFECTIVE_BALANCE_INCREMENT", "1000000000".into());
    put(
        "SLOTS_PER_HISTORICAL_ROOT",
        (if p.slots_per_epoch == 8 { 64 } else { 8192 }).to_string(),
    );
    put("MAX_ATTESTATIONS", "128".into());
    put("MAX_ATTESTATIONS_ELECTRA", "8".into());
    put("MIN_GENESIS_TIME", view.genesis_time.to_string());
    put("GENESIS_FORK_VERSION", hexs(&g));
    for (name, fork, epoch) in [
        ("ALTAIR", Fork::Altair, 0),
        ("BELLATRIX", Fork::Bellatrix, 0),
        ("CAPELLA", Fork::Capella, 0),
        ("DENEB", Fork::Deneb, 0),
        ("ELECTRA", Fork::Electra, sim.scenario().electra_fork_epoch),
    ] {
        put(&format!("{name}_FORK_VERSION"), hexs(&version_of(fork, g)));
        put(&format!("{name}_FORK_EPOCH"), epoch.to_string());
    }
    put("FULU_FORK_VERSION", hexs(&[6, g[1], g[2], g[3]]));
    put("FULU_FORK_EPOCH", FAR_FUTURE_EPOCH.to_string());
    Value::Object(m)
}
