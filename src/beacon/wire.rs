//! Beacon API JSON shapes (quoted integers, hex strings, fork-versioned
//! blocks). Nothing outside `beacon` sees these types.
//!
//! Owns: the serde types of every response the client reads and the pure
//! functions that turn a response body into domain types. Must not: do IO or
//! decide anything beyond "is this a well-formed answer".
//!
//! Parsing is lenient where the API allows it to vary (unknown fields are
//! ignored, `finalized` / `execution_optimistic` may be absent, integers may
//! come quoted or bare) and strict where a wrong guess would corrupt a
//! verdict (roots, bitfields, the attestation format of a fork).

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use crate::chain::{
    decode_hex, Attestation, AttestationData, AttesterDuties, AttesterDuty, AttesterSlashing,
    BitList, BitVector, Block, BlockHeader, ChainSpec, Checkpoint, Committee, Epoch, Fork, Gwei,
    ProposerDuties, ProposerDuty, ProposerSlashing, Pubkey, Root, Slot, ValidatorIndex,
    ValidatorInfo, ValidatorStatus, VoluntaryExit, FAR_FUTURE_EPOCH,
};

use super::client::{Finality, Genesis, SyncStatus};
use crate::analysis::rewards::{AttestationReward, AttestationRewards, BlockReward, IdealReward};

/// Why a response body could not be read; the client adds node and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Parses a JSON body; the serde message names line and column.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))
}

// ---------------------------------------------------------------------------
// Primitive shapes
// ---------------------------------------------------------------------------

/// A `Uint64` as the API sends it: a decimal string. Bare JSON numbers are
/// accepted too, because some clients emit them in a few places (and a
/// number is unambiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted(pub u64);

impl<'de> Deserialize<'de> for Quoted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quoted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer as a decimal string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Quoted, E> {
                s.parse::<u64>()
                    .map(Quoted)
                    .map_err(|_| E::custom(format!("not a u64: {s:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quoted, E> {
                Ok(Quoted(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `0x` hex byte string of any length (bitfields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        decode_hex(&s)
            .map(HexBytes)
            .map_err(|e| de::Error::custom(format!("{e}: {}", abbreviate(&s))))
    }
}

fn abbreviate(s: &str) -> String {
    const SHOWN: usize = 24;
    if s.len() <= SHOWN {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(SHOWN).collect::<String>())
    }
}

/// The `data` of a response with its optional metadata. Only what the
/// client uses is declared; other siblings are ignored.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
    #[serde(default)]
    pub execution_optimistic: Option<bool>,
    #[serde(default)]
    pub finalized: Option<bool>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub dependent_root: Option<Root>,
}

/// An error body in either shape nodes use: the Beacon API's
/// `{"code", "message"}` or Lodestar's `{"statusCode", "error", "message"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The message of an error answer, whatever its shape; the start of the raw
/// text when it is not JSON (proxies answer with HTML), so the operator sees
/// something useful.
pub fn error_message(body: &[u8]) -> String {
    /// Enough to recognise a proxy's error page without flooding a log line.
    const MAX_RAW: usize = 200;
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(m) = e.message.as_ref().map(text).filter(|m| !m.is_empty()) {
            return m;
        }
        if let Some(m) = e.error.as_ref().map(text).filter(|m| !m.is_empty()) {
            return m;
        }
    }
    let raw = String::from_utf8_lossy(body);
    let raw = raw.trim();
    if raw.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = raw.chars().take(MAX_RAW).collect();
    if raw.chars().count() > MAX_RAW {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// Node, genesis, spec
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WireGenesis {
    genesis_time: Quoted,
    genesis_validators_root: Root,
}

pub fn parse_genesis(body: &[u8]) -> Result<Genesis, DecodeError> {
    let e: Envelope<WireGenesis> = parse(body)?;
    Ok(Genesis {
        genesis_time: e.data.genesis_time.0,
        genesis_validators_root: e.data.genesis_validators_root,
    })
}

#[derive(Debug, Deserialize)]
struct WireSyncing {
    head_slot: Quoted,
    sync_distance: Quoted,
    is_syncing: bool,
    /// Added to the API later than the others; absent means "not optimistic".
    #[serde(default)]
    is_optimistic: bool,
    #[serde(default)]
    el_offline: bool,
}

pub fn parse_syncing(body: &[u8]) -> Result<SyncStatus, DecodeError> {
    let e: Envelope<WireSyncing> = parse(body)?;
    Ok(SyncStatus {
        head_slot: Slot(e.data.head_slot.0),
        sync_distance: e.data.sync_distance.0,
        is_syncing: e.data.is_syncing,
        is_optimistic: e.data.is_optimistic,
        el_offline: e.data.el_offline,
    })
}

/// Reads `/eth/v1/config/spec`. Values are strings except arrays such as
/// `BLOB_SCHEDULE`, so the map is read as JSON values and only the keys
/// valwatch needs are converted.
pub fn parse_spec(body: &[u8], genesis: &Genesis) -> Result<ChainSpec, DecodeError> {
    let e: Envelope<serde_json::Map<String, serde_json::Value>> = parse(body)?;
    spec_from_map(&e.data, genesis)
}

fn spec_value(
    map: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<u64>, DecodeError> {
    match map.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| DecodeError(format!("{key}: not a u64: {s:?}"))),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| DecodeError(format!("{key}: not a u64: {n}"))),
        Some(other) => Err(DecodeError(format!("{key}: not a number: {other}"))),
    }
}

fn spec_required(
    map: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<u64, DecodeError> {
    spec_value(map, key)?.ok_or_else(|| DecodeError(format!("{key} missing")))
}

pub fn spec_from_map(
    map: &serde_json::Map<String, serde_json::Value>,
    genesis: &Genesis,
) -> Result<ChainSpec, DecodeError> {
    // consensus-specs #4926 replaced SECONDS_PER_SLOT by SLOT_DURATION_MS;
    // nodes of either age must work.
    let slot_duration_ms = match spec_value(map, "SLOT_DURATION_MS")? {
        Some(ms) => ms,
        None => spec_required(map, "SECONDS_PER_SLOT")?
            .checked_mul(1000)
            .ok_or_else(|| DecodeError::new("SECONDS_PER_SLOT out of range"))?,
    };
    if slot_duration_ms == 0 {
        return Err(DecodeError::new("slot duration is zero"));
    }
    let slots_per_epoch = spec_required(map, "SLOTS_PER_EPOCH")?;
    if slots_per_epoch == 0 {
        return Err(DecodeError::new("SLOTS_PER_EPOCH is zero"));
    }
    let epochs_per_sync_committee_period = spec_required(map, "EPOCHS_PER_SYNC_COMMITTEE_PERIOD")?;

    let mut forks = vec![(Fork::Phase0, Epoch(0))];
    for (fork, key) in [
        (Fork::Altair, "ALTAIR_FORK_EPOCH"),
        (Fork::Bellatrix, "BELLATRIX_FORK_EPOCH"),
        (Fork::Capella, "CAPELLA_FORK_EPOCH"),
        (Fork::Deneb, "DENEB_FORK_EPOCH"),
        (Fork::Electra, "ELECTRA_FORK_EPOCH"),
        (Fork::Fulu, "FULU_FORK_EPOCH"),
        (Fork::Gloas, "GLOAS_FORK_EPOCH"),
    ] {
        match spec_value(map, key)? {
            // FAR_FUTURE_EPOCH is how a config says "not scheduled".
            Some(epoch) if epoch != FAR_FUTURE_EPOCH => forks.push((fork, Epoch(epoch))),
            _ => {}
        }
    }
    Ok(ChainSpec {
        genesis_time: genesis.genesis_time,
        genesis_validators_root: genesis.genesis_validators_root,
        slots_per_epoch,
        slot_duration_ms,
        epochs_per_sync_committee_period,
        forks,
    })
}

// ---------------------------------------------------------------------------
// Headers, roots, finality
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WireHeaderMessage {
    slot: Quoted,
    proposer_index: Quoted,
    parent_root: Root,
    state_root: Root,
}

#[derive(Debug, Deserialize)]
struct WireSignedHeader {
    message: WireHeaderMessage,
}

#[derive(Debug, Deserialize)]
struct WireHeader {
    root: Root,
    header: WireSignedHeader,
}

pub fn parse_header(body: &[u8]) -> Result<BlockHeader, DecodeError> {
    let e: Envelope<WireHeader> = parse(body)?;
    let m = e.data.header.message;
    Ok(BlockHeader {
        root: e.data.root,
        slot: Slot(m.slot.0),
        proposer_index: ValidatorIndex(m.proposer_index.0),
        parent_root: m.parent_root,
        state_root: m.state_root,
    })
}

#[derive(Debug, Deserialize)]
struct WireRoot {
    root: Root,
}

pub fn parse_root(body: &[u8]) -> Result<Root, DecodeError> {
    let e: Envelope<WireRoot> = parse(body)?;
    Ok(e.data.root)
}

#[derive(Debug, Deserialize)]
struct WireCheckpoint {
    epoch: Quoted,
    root: Root,
}

impl From<WireCheckpoint> for Checkpoint {
    fn from(c: WireCheckpoint) -> Self {
        Checkpoint {
            epoch: Epoch(c.epoch.0),
            root: c.root,
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireFinality {
    previous_justified: WireCheckpoint,
    current_justified: WireCheckpoint,
    finalized: WireCheckpoint,
}

pub fn parse_finality(body: &[u8]) -> Result<Finality, DecodeError> {
    let e: Envelope<WireFinality> = parse(body)?;
    Ok(Finality {
        previous_justified: e.data.previous_justified.into(),
        current_justified: e.data.current_justified.into(),
        finalized: e.data.finalized.into(),
    })
}

// ---------------------------------------------------------------------------
// Committees, duties, validators, liveness
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WireCommittee {
    index: Quoted,
    slot: Quoted,
    validators: Vec<Quoted>,
}

pub fn parse_committees(body: &[u8]) -> Result<Vec<Committee>, DecodeError> {
    let e: Envelope<Vec<WireCommittee>> = parse(body)?;
    Ok(e.data
        .into_iter()
        .map(|c| Committee {
            slot: Slot(c.slot.0),
            index: c.index.0,
            validators: c
                .validators
                .into_iter()
                .map(|v| ValidatorIndex(v.0))
                .collect(),
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct WireSyncCommittee {
    validators: Vec<Quoted>,
}

pub fn parse_sync_committee(body: &[u8]) -> Result<Vec<ValidatorIndex>, DecodeError> {
    let e: Envelope<WireSyncCommittee> = parse(body)?;
    Ok(e.data
        .validators
        .into_iter()
        .map(|v| ValidatorIndex(v.0))
        .collect())
}

#[derive(Debug, Deserialize)]
struct WireProposerDuty {
    validator_index: Quoted,
    slot: Quoted,
}

/// A duties answer's `dependent_root`: the body's, else the
/// `Eth-Consensus-Dependent-Root` header's.
fn dependent_root(body: Option<Root>, header: Option<&str>) -> Result<Root, DecodeError> {
    match (body, header) {
        (Some(r), _) => Ok(r),
        (None, Some(h)) => h
            .parse()
            .map_err(|err| DecodeError(format!("dependent root header: {err}"))),
        (None, None) => Err(DecodeError::new("dependent_root missing")),
    }
}

/// Proposer duties. `dependent_root` is in the body per the spec; Lodestar
/// also sends it as the `Eth-Consensus-Dependent-Root` header, used when the
/// body lacks it.
pub fn parse_proposer_duties(
    body: &[u8],
    epoch: Epoch,
    header_dependent_root: Option<&str>,
) -> Result<ProposerDuties, DecodeError> {
    let e: Envelope<Vec<WireProposerDuty>> = parse(body)?;
    let dependent_root = dependent_root(e.dependent_root, header_dependent_root)?;
    Ok(ProposerDuties {
        epoch,
        dependent_root,
        duties: e
            .data
            .into_iter()
            .map(|d| ProposerDuty {
                slot: Slot(d.slot.0),
                validator_index: ValidatorIndex(d.validator_index.0),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
struct WireAttesterDuty {
    validator_index: Quoted,
    slot: Quoted,
    committee_index: Quoted,
    committee_length: Quoted,
    validator_committee_index: Quoted,
}

/// Attester duties (`dependent_root` from the body, else the header, as
/// for proposer duties).
pub fn parse_attester_duties(
    body: &[u8],
    epoch: Epoch,
    header_dependent_root: Option<&str>,
) -> Result<AttesterDuties, DecodeError> {
    let e: Envelope<Vec<WireAttesterDuty>> = parse(body)?;
    let dependent_root = dependent_root(e.dependent_root, header_dependent_root)?;
    Ok(AttesterDuties {
        epoch,
        dependent_root,
        duties: e
            .data
            .into_iter()
            .map(|d| AttesterDuty {
                validator_index: ValidatorIndex(d.validator_index.0),
                slot: Slot(d.slot.0),
                committee_index: d.committee_index.0,
                committee_length: d.committee_length.0,
                position: d.validator_committee_index.0,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
struct WireValidatorRecord {
    pubkey: Pubkey,
    effective_balance: Quoted,
    slashed: bool,
    activation_epoch: Quoted,
    exit_epoch: Quoted,
}

#[derive(Debug, Deserialize)]
struct WireValidator {
    index: Quoted,
    balance: Quoted,
    status: String,
    validator: WireValidatorRecord,
}

pub fn parse_validators(body: &[u8]) -> Result<Vec<ValidatorInfo>, DecodeError> {
    let e: Envelope<Vec<WireValidator>> = parse(body)?;
    Ok(e.data
        .into_iter()
        .map(|v| ValidatorInfo {
            index: ValidatorIndex(v.index.0),
            pubkey: v.validator.pubkey,
            balance: Gwei(v.balance.0),
            effective_balance: Gwei(v.validator.effective_balance.0),
            status: ValidatorStatus::from_name(&v.status),
            slashed: v.validator.slashed,
            activation_epoch: Epoch(v.validator.activation_epoch.0),
            exit_epoch: Epoch(v.validator.exit_epoch.0),
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct WireLiveness {
    index: Quoted,
    is_live: bool,
}

pub fn parse_liveness(body: &[u8]) -> Result<Vec<(ValidatorIndex, bool)>, DecodeError> {
    let e: Envelope<Vec<WireLiveness>> = parse(body)?;
    Ok(e.data
        .into_iter()
        .map(|l| (ValidatorIndex(l.index.0), l.is_live))
        .collect())
}

// ---------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WireAttestationData {
    slot: Quoted,
    index: Quoted,
    beacon_block_root: Root,
    source: WireCheckpoint,
    target: WireCheckpoint,
}

impl From<WireAttestationData> for AttestationData {
    fn from(d: WireAttestationData) -> Self {
        AttestationData {
            slot: Slot(d.slot.0),
            index: d.index.0,
            beacon_block_root: d.beacon_block_root,
            source: d.source.into(),
            target: d.target.into(),
        }
    }
}

/// One aggregate as it sits in a block. `committee_bits` exists from
/// Electra on (EIP-7549); whether it must be there is decided by the fork.
#[derive(Debug, Deserialize)]
struct WireAttestation {
    aggregation_bits: HexBytes,
    #[serde(default)]
    committee_bits: Option<HexBytes>,
    data: WireAttestationData,
}

/// How to read the attestations of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttestationFormat {
    /// Phase0..Deneb: one committee per aggregate, named by `data.index`.
    SingleCommittee,
    /// Electra on: `committee_bits` required.
    CommitteeBits,
    /// No version at all: trust the shape of each aggregate.
    ByShape,
}

fn attestation_format(fork: Fork, version_known: bool) -> AttestationFormat {
    if !version_known {
        AttestationFormat::ByShape
    } else if fork.has_committee_bits() || fork == Fork::Unknown {
        // An unknown fork is newer than this build: the newest format is the
        // best guess, and a body that does not fit it is reported, not guessed.
        AttestationFormat::CommitteeBits
    } else {
        AttestationFormat::SingleCommittee
    }
}

fn convert_attestation(
    a: WireAttestation,
    format: AttestationFormat,
) -> Result<Attestation, DecodeError> {
    let aggregation_bits = BitList::from_bytes(a.aggregation_bits.0)
        .map_err(|e| DecodeError(format!("aggregation_bits: {e}")))?;
    let committee_bits = match (format, a.committee_bits) {
        (AttestationFormat::SingleCommittee, _) => None,
        (AttestationFormat::CommitteeBits, None) => {
            return Err(DecodeError::new("committee_bits missing"))
        }
        (_, Some(bits)) => Some(committee_bitvector(bits.0)?),
        (AttestationFormat::ByShape, None) => None,
    };
    Ok(Attestation {
        aggregation_bits,
        committee_bits,
        data: a.data.into(),
    })
}

/// `committee_bits` is a Bitvector[MAX_COMMITTEES_PER_SLOT]: 64 on mainnet
/// (8 bytes), 4 on the minimal preset (1 byte). The length is taken from
/// the bytes so both presets read; SSZ keeps the padding bits zero.
fn committee_bitvector(bytes: Vec<u8>) -> Result<BitVector, DecodeError> {
    /// Bytes of Bitvector[64], the largest MAX_COMMITTEES_PER_SLOT of any preset.
    const MAX_BYTES: usize = 8;
    if bytes.is_empty() || bytes.len() > MAX_BYTES {
        return Err(DecodeError(format!(
            "committee_bits: {} bytes, expected 1..={MAX_BYTES}",
            bytes.len()
        )));
    }
    let bits = bytes.len() * 8;
    BitVector::from_bytes(bytes, bits).map_err(|e| DecodeError(format!("committee_bits: {e}")))
}

fn convert_attestations(
    raw: serde_json::Value,
    format: AttestationFormat,
) -> Result<Vec<Attestation>, DecodeError> {
    let list: Vec<serde_json::Value> = match raw {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(list) => list,
        other => {
            return Err(DecodeError(format!(
                "attestations: expected an array, got {}",
                json_kind(&other)
            )))
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let wire: WireAttestation = serde_json::from_value(v)
                .map_err(|e| DecodeError(format!("attestation {i}: {e}")))?;
            convert_attestation(wire, format)
                .map_err(|e| DecodeError(format!("attestation {i}: {e}")))
        })
        .collect()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[derive(Debug, Deserialize)]
struct WireProposerSlashing {
    signed_header_1: WireSignedHeader,
}

#[derive(Debug, Deserialize)]
struct WireIndexedAttestation {
    attesting_indices: Vec<Quoted>,
    data: WireAttestationData,
}

#[derive(Debug, Deserialize)]
struct WireAttesterSlashing {
    attestation_1: WireIndexedAttestation,
    attestation_2: WireIndexedAttestation,
}

#[derive(Debug, Deserialize)]
struct WireExitMessage {
    epoch: Quoted,
    validator_index: Quoted,
}

#[derive(Debug, Deserialize)]
struct WireSignedExit {
    message: WireExitMessage,
}

#[derive(Debug, Deserialize)]
struct WireSyncAggregate {
    sync_committee_bits: HexBytes,
}

/// The parts of a block body valwatch reads, kept as JSON values until the
/// fork is known. Everything else (the execution payload above all, which
/// holds the transactions) is not declared and so skipped unread.
#[derive(Debug, Default, Deserialize)]
struct WireBody {
    #[serde(default)]
    attestations: serde_json::Value,
    #[serde(default)]
    proposer_slashings: serde_json::Value,
    #[serde(default)]
    attester_slashings: serde_json::Value,
    #[serde(default)]
    voluntary_exits: serde_json::Value,
    #[serde(default)]
    sync_aggregate: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct WireBlockMessage {
    slot: Quoted,
    proposer_index: Quoted,
    parent_root: Root,
    state_root: Root,
    #[serde(default)]
    body: WireBody,
}

#[derive(Debug, Deserialize)]
struct WireSignedBlock {
    message: WireBlockMessage,
}

/// Why a block could not be read, with the slot when it was readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockDecodeError {
    #[error("block header unreadable: {0}")]
    Header(String),
    #[error("block of slot {slot} ({fork}): {message}")]
    Body {
        slot: Slot,
        fork: Fork,
        message: String,
    },
}

/// The fork a versioned response is in: the body's `version`, else the
/// `Eth-Consensus-Version` header. `None` when neither says.
fn resolve_version(body_version: Option<&str>, header_version: Option<&str>) -> Option<Fork> {
    body_version
        .or(header_version)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(Fork::from_name)
}

fn from_list<T: DeserializeOwned>(
    raw: serde_json::Value,
    what: &str,
) -> Result<Vec<T>, DecodeError> {
    if raw.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(raw).map_err(|e| DecodeError(format!("{what}: {e}")))
}

/// Decodes `GET /eth/v2/beacon/blocks/{id}` into the domain block.
///
/// `root` is the block root the caller knows (the body does not carry it);
/// `Root::ZERO` when unknown. For a fork newer than this build the header
/// fields and the attestations (in the newest known format) must read; the
/// other operations are read if they still have the known shape and are
/// otherwise left empty, with the reason returned in `DecodedBlock::degraded`.
pub fn decode_block(
    body: &[u8],
    header_version: Option<&str>,
    root: Option<Root>,
) -> Result<DecodedBlock, BlockDecodeError> {
    let env: Envelope<WireSignedBlock> = parse(body).map_err(|e| BlockDecodeError::Header(e.0))?;
    let fork_known = resolve_version(env.version.as_deref(), header_version);
    let fork = fork_known.unwrap_or(Fork::Unknown);
    let m = env.data.message;
    let slot = Slot(m.slot.0);
    let header = BlockHeader {
        root: root.unwrap_or(Root::ZERO),
        slot,
        proposer_index: ValidatorIndex(m.proposer_index.0),
        parent_root: m.parent_root,
        state_root: m.state_root,
    };
    let body_err = |e: DecodeError| BlockDecodeError::Body {
        slot,
        fork,
        message: e.0,
    };

    let format = attestation_format(fork, fork_known.is_some());
    let attestations = convert_attestations(m.body.attestations, format).map_err(body_err)?;

    let mut degraded = Vec::new();
    let strict = fork != Fork::Unknown;
    let mut soft = |r: Result<(), DecodeError>| -> Result<(), BlockDecodeError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if !strict => {
                degraded.push(e.0);
                Ok(())
            }
            Err(e) => Err(body_err(e)),
        }
    };

    let mut proposer_slashings = Vec::new();
    soft(
        from_list::<WireProposerSlashing>(m.body.proposer_slashings, "proposer_slashings").map(
            |l| {
                proposer_slashings = l
                    .into_iter()
                    .map(|s| ProposerSlashing {
                        proposer_index: ValidatorIndex(s.signed_header_1.message.proposer_index.0),
                        slot: Slot(s.signed_header_1.message.slot.0),
                    })
                    .collect()
            },
        ),
    )?;

    let mut attester_slashings = Vec::new();
    soft(
        from_list::<WireAttesterSlashing>(m.body.attester_slashings, "attester_slashings").map(
            |l| {
                attester_slashings = l
                    .into_iter()
                    .map(|s| AttesterSlashing {
                        target_epoch: Epoch(s.attestation_1.data.target.epoch.0),
                        attesting_indices_1: indices(s.attestation_1.attesting_indices),
                        attesting_indices_2: indices(s.attestation_2.attesting_indices),
                    })
                    .collect()
            },
        ),
    )?;

    let mut voluntary_exits = Vec::new();
    soft(
        from_list::<WireSignedExit>(m.body.voluntary_exits, "voluntary_exits").map(|l| {
            voluntary_exits = l
                .into_iter()
                .map(|e| VoluntaryExit {
                    validator_index: ValidatorIndex(e.message.validator_index.0),
                    epoch: Epoch(e.message.epoch.0),
                })
                .collect()
        }),
    )?;

    let mut sync_committee_bits = None;
    soft(sync_bits(m.body.sync_aggregate, fork).map(|b| sync_committee_bits = b))?;

    Ok(DecodedBlock {
        block: Block {
            header,
            fork,
            attestations,
            sync_committee_bits,
            proposer_slashings,
            attester_slashings,
            voluntary_exits,
        },
        degraded,
    })
}

/// A decoded block and what could not be read of it (only ever non-empty
/// for a fork this build does not know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBlock {
    pub block: Block,
    pub degraded: Vec<String>,
}

fn indices(list: Vec<Quoted>) -> Vec<ValidatorIndex> {
    list.into_iter().map(|q| ValidatorIndex(q.0)).collect()
}

/// `sync_aggregate.sync_committee_bits`: Bitvector[SYNC_COMMITTEE_SIZE],
/// 512 on mainnet and 32 on the minimal preset. The size is the byte length
/// × 8, so neither preset has to be configured.
fn sync_bits(raw: serde_json::Value, fork: Fork) -> Result<Option<BitVector>, DecodeError> {
    if raw.is_null() {
        // Phase0 blocks have no sync aggregate; from Altair on it is required.
        return if fork.has_sync_committee() && fork != Fork::Unknown {
            Err(DecodeError::new("sync_aggregate missing"))
        } else {
            Ok(None)
        };
    }
    let agg: WireSyncAggregate =
        serde_json::from_value(raw).map_err(|e| DecodeError(format!("sync_aggregate: {e}")))?;
    let bytes = agg.sync_committee_bits.0;
    if bytes.is_empty() {
        return Err(DecodeError::new("sync_committee_bits: empty"));
    }
    let bits = bytes.len() * 8;
    BitVector::from_bytes(bytes, bits)
        .map(Some)
        .map_err(|e| DecodeError(format!("sync_committee_bits: {e}")))
}

/// Decodes `GET /eth/v2/beacon/blocks/{id}/attestations` (fork-versioned like
/// blocks): the fork and the block's aggregates.
pub fn decode_block_attestations(
    body: &[u8],
    header_version: Option<&str>,
) -> Result<(Fork, Vec<Attestation>), DecodeError> {
    let env: Envelope<serde_json::Value> = parse(body)?;
    let fork_known = resolve_version(env.version.as_deref(), header_version);
    let fork = fork_known.unwrap_or(Fork::Unknown);
    let format = attestation_format(fork, fork_known.is_some());
    let list =
        convert_attestations(env.data, format).map_err(|e| DecodeError(format!("{fork}: {e}")))?;
    Ok((fork, list))
}

/// Decodes a pool's attester slashings (`GET /eth/v1|v2/beacon/pool/attester_slashings`):
/// `data` is a list of `AttesterSlashing` (the v2 `version` is not needed:
/// the JSON shape is the same in every fork).
pub fn parse_pool_attester_slashings(body: &[u8]) -> Result<Vec<AttesterSlashing>, DecodeError> {
    let env: Envelope<serde_json::Value> = parse(body)?;
    Ok(
        from_list::<WireAttesterSlashing>(env.data, "attester_slashings")?
            .into_iter()
            .map(|s| AttesterSlashing {
                target_epoch: Epoch(s.attestation_1.data.target.epoch.0),
                attesting_indices_1: indices(s.attestation_1.attesting_indices),
                attesting_indices_2: indices(s.attestation_2.attesting_indices),
            })
            .collect(),
    )
}

/// Decodes `GET /eth/v1/beacon/pool/proposer_slashings`.
pub fn parse_pool_proposer_slashings(body: &[u8]) -> Result<Vec<ProposerSlashing>, DecodeError> {
    let env: Envelope<serde_json::Value> = parse(body)?;
    Ok(
        from_list::<WireProposerSlashing>(env.data, "proposer_slashings")?
            .into_iter()
            .map(|s| ProposerSlashing {
                proposer_index: ValidatorIndex(s.signed_header_1.message.proposer_index.0),
                slot: Slot(s.signed_header_1.message.slot.0),
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// Rewards (issue 14)
// ---------------------------------------------------------------------------

/// A signed `Int64` as the rewards routes send it: a decimal string (a
/// penalty is negative). Bare JSON numbers are accepted, as for `Quoted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedI64(pub i64);

impl<'de> Deserialize<'de> for QuotedI64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = QuotedI64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a signed integer as a decimal string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<QuotedI64, E> {
                s.parse::<i64>()
                    .map(QuotedI64)
                    .map_err(|_| E::custom(format!("not an i64: {s:?}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<QuotedI64, E> {
                Ok(QuotedI64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QuotedI64, E> {
                i64::try_from(v)
                    .map(QuotedI64)
                    .map_err(|_| E::custom(format!("out of range: {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
struct WireIdealReward {
    effective_balance: Quoted,
    head: QuotedI64,
    target: QuotedI64,
    source: QuotedI64,
    #[serde(default)]
    inclusion_delay: Option<QuotedI64>,
    #[serde(default)]
    inactivity: Option<QuotedI64>,
}

#[derive(Debug, Deserialize)]
struct WireTotalReward {
    validator_index: Quoted,
    head: QuotedI64,
    target: QuotedI64,
    source: QuotedI64,
    #[serde(default)]
    inclusion_delay: Option<QuotedI64>,
    #[serde(default)]
    inactivity: Option<QuotedI64>,
}

#[derive(Debug, Deserialize)]
struct WireAttestationRewards {
    ideal_rewards: Vec<WireIdealReward>,
    total_rewards: Vec<WireTotalReward>,
}

/// `POST /eth/v1/beacon/rewards/attestations/{epoch}`.
pub fn parse_attestation_rewards(body: &[u8]) -> Result<AttestationRewards, DecodeError> {
    let e: Envelope<WireAttestationRewards> = parse(body)?;
    let sum = |parts: &[i64]| parts.iter().fold(0i64, |a, b| a.saturating_add(*b));
    Ok(AttestationRewards {
        ideal: e
            .data
            .ideal_rewards
            .into_iter()
            .map(|i| IdealReward {
                effective_balance: Gwei(i.effective_balance.0),
                total: sum(&[
                    i.head.0,
                    i.target.0,
                    i.source.0,
                    i.inclusion_delay.map_or(0, |x| x.0),
                    i.inactivity.map_or(0, |x| x.0),
                ]),
            })
            .collect(),
        total: e
            .data
            .total_rewards
            .into_iter()
            .map(|t| AttestationReward {
                validator_index: ValidatorIndex(t.validator_index.0),
                head: t.head.0,
                target: t.target.0,
                source: t.source.0,
                inclusion_delay: t.inclusion_delay.map(|x| x.0),
                inactivity: t.inactivity.map_or(0, |x| x.0),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
struct WireSyncReward {
    validator_index: Quoted,
    reward: QuotedI64,
}

/// `POST /eth/v1/beacon/rewards/sync_committee/{block_id}`: per validator,
/// its seats' summed reward in that block.
pub fn parse_sync_rewards(body: &[u8]) -> Result<Vec<(ValidatorIndex, i64)>, DecodeError> {
    let e: Envelope<Vec<WireSyncReward>> = parse(body)?;
    Ok(e.data
        .into_iter()
        .map(|r| (ValidatorIndex(r.validator_index.0), r.reward.0))
        .collect())
}

#[derive(Debug, Deserialize)]
struct WireBlockReward {
    proposer_index: Quoted,
    total: Quoted,
}

/// `GET /eth/v1/beacon/rewards/blocks/{block_id}`; the slot is the
/// caller's (the answer does not carry it).
pub fn parse_block_reward(body: &[u8], slot: Slot) -> Result<BlockReward, DecodeError> {
    let e: Envelope<WireBlockReward> = parse(body)?;
    Ok(BlockReward {
        slot,
        proposer_index: ValidatorIndex(e.data.proposer_index.0),
        total: e.data.total.0,
    })
}

#[cfg(test)]
mod reward_tests {
    use super::*;

    #[test]
    fn attestation_rewards_keep_signs_and_sum_ideal_components() {
        let body = br#"{"data":{"ideal_rewards":[{"head":"3","target":"5","source":"4","inclusion_delay":"0","inactivity":"0","effective_balance":"32000000000"}],
            "total_rewards":[{"validator_index":"7","head":"0","target":"-5","source":"-4","inactivity":"-1"}]},"finalized":true}"#;
        let r = parse_attestation_rewards(body).unwrap();
        assert_eq!(r.ideal[0].total, 12);
        assert_eq!(r.ideal[0].effective_balance, Gwei(32_000_000_000));
        assert_eq!(r.total[0].total(), -10);
        assert_eq!(r.total[0].inclusion_delay, None);
    }

    #[test]
    fn rewards_reject_garbage_without_panicking() {
        assert!(parse_attestation_rewards(
            br#"{"data":{"ideal_rewards":[],"total_rewards":[{"validator_index":"x"}]}}"#
        )
        .is_err());
        assert!(
            parse_sync_rewards(br#"{"data":[{"validator_index":"1","reward":"1e9"}]}"#).is_err()
        );
        assert!(
            parse_block_reward(br#"{"data":{"proposer_index":"1","total":"-3"}}"#, Slot(1))
                .is_err()
        );
        let s =
            parse_sync_rewards(br#"{"data":[{"validator_index":"1","reward":"-11180"}]}"#).unwrap();
        assert_eq!(s, vec![(ValidatorIndex(1), -11180)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> String {
        format!("0x{}", hex::encode([b; 32]))
    }

    fn block_json(version: Option<&str>, attestation: &str, extra_body: &str) -> String {
        let version = version
            .map(|v| format!(r#""version":"{v}","#))
            .unwrap_or_default();
        format!(
            r#"{{{version}"execution_optimistic":false,"data":{{"message":{{"slot":"77","proposer_index":"5",
            "parent_root":"{p}","state_root":"{s}","body":{{"attestations":[{attestation}],
            "sync_aggregate":{{"sync_committee_bits":"0xff00ff01","sync_committee_signature":"0x00"}},
            "execution_payload":{{"transactions":["0xdead"]}}{extra_body}}}}},"signature":"0x00"}}}}"#,
            p = root(1),
            s = root(2),
        )
    }

    fn attestation(committee_bits: Option<&str>) -> String {
        let cb = committee_bits
            .map(|c| format!(r#""committee_bits":"{c}","#))
            .unwrap_or_default();
        format!(
            r#"{{"aggregation_bits":"0x0f",{cb}"data":{{"slot":"76","index":"1","beacon_block_root":"{r}",
            "source":{{"epoch":"8","root":"{r}"}},"target":{{"epoch":"9","root":"{r}"}}}},"signature":"0x00"}}"#,
            r = root(3)
        )
    }

    #[test]
    fn quoted_integers_accept_strings_and_numbers_but_not_garbage() {
        assert_eq!(
            serde_json::from_str::<Quoted>(r#""42""#).unwrap(),
            Quoted(42)
        );
        assert_eq!(serde_json::from_str::<Quoted>("42").unwrap(), Quoted(42));
        assert_eq!(
            serde_json::from_str::<Quoted>(r#""18446744073709551615""#).unwrap(),
            Quoted(u64::MAX)
        );
        assert!(serde_json::from_str::<Quoted>(r#""-1""#).is_err());
        assert!(serde_json::from_str::<Quoted>(r#""0x10""#).is_err());
        assert!(serde_json::from_str::<Quoted>("true").is_err());
    }

    #[test]
    fn error_messages_are_read_from_both_shapes_and_raw_text() {
        assert_eq!(
            error_message(br#"{"code":400,"message":"Invalid epoch"}"#),
            "Invalid epoch"
        );
        assert_eq!(
            error_message(
                br#"{"statusCode":404,"error":"Not Found","message":"No block found for id '14'"}"#
            ),
            "No block found for id '14'"
        );
        assert_eq!(
            error_message(br#"{"statusCode":500,"error":"Boom"}"#),
            "Boom"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert!(error_message(&[b'x'; 1000]).chars().count() <= 201);
    }

    #[test]
    fn deneb_block_reads_data_index_and_no_committee_bits() {
        let json = block_json(Some("deneb"), &attestation(None), "");
        let d = decode_block(json.as_bytes(), None, Some(Root([9; 32]))).unwrap();
        let b = d.block;
        assert_eq!(b.fork, Fork::Deneb);
        assert_eq!(b.header.slot, Slot(77));
        assert_eq!(b.header.root, Root([9; 32]));
        assert_eq!(b.header.proposer_index, ValidatorIndex(5));
        assert_eq!(b.attestations.len(), 1);
        assert_eq!(b.attestations[0].committee_bits, None);
        assert_eq!(b.attestations[0].data.index, 1);
        assert_eq!(b.attestations[0].aggregation_bits.len(), 3);
        let sync = b.sync_committee_bits.unwrap();
        assert_eq!(sync.len(), 32);
        assert_eq!(sync.ones().count(), 8 + 8 + 1);
        assert!(d.degraded.is_empty());
    }

    #[test]
    fn electra_block_requires_committee_bits() {
        let ok = block_json(
            Some("electra"),
            &attestation(Some("0x0300000000000000")),
            "",
        );
        let b = decode_block(ok.as_bytes(), None, None).unwrap().block;
        let cb = b.attestations[0].committee_bits.as_ref().unwrap();
        assert_eq!(cb.len(), 64);
        assert_eq!(cb.ones().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(b.header.root, Root::ZERO);

        let missing = block_json(Some("electra"), &attestation(None), "");
        let err = decode_block(missing.as_bytes(), None, None).unwrap_err();
        assert!(
            matches!(&err, BlockDecodeError::Body { slot: Slot(77), fork: Fork::Electra, message } if message.contains("committee_bits missing")),
            "{err}"
        );
        assert!(err.to_string().contains("slot 77"));
    }

    #[test]
    fn version_header_is_the_fallback_and_body_version_wins() {
        let no_version = block_json(None, &attestation(Some("0x01")), "");
        let b = decode_block(no_version.as_bytes(), Some("fulu"), None)
            .unwrap()
            .block;
        assert_eq!(b.fork, Fork::Fulu);
        assert_eq!(b.attestations[0].committee_bits.as_ref().unwrap().len(), 8);

        let deneb = block_json(Some("deneb"), &attestation(None), "");
        let b = decode_block(deneb.as_bytes(), Some("electra"), None)
            .unwrap()
            .block;
        assert_eq!(b.fork, Fork::Deneb);
    }

    #[test]
    fn unknown_fork_degrades_to_header_and_newest_attestations() {
        let extra = r#","voluntary_exits":[{"new_shape":true}]"#;
        let json = block_json(Some("heze"), &attestation(Some("0x01")), extra);
        let d = decode_block(json.as_bytes(), None, None).unwrap();
        assert_eq!(d.block.fork, Fork::Unknown);
        assert_eq!(d.block.header.slot, Slot(77));
        assert_eq!(d.block.attestations.len(), 1);
        assert!(d.block.voluntary_exits.is_empty());
        assert_eq!(d.degraded.len(), 1, "{:?}", d.degraded);

        // Attestations that do not fit the newest format are an error with the slot.
        let json = block_json(Some("heze"), &attestation(None), "");
        let err = decode_block(json.as_bytes(), None, None).unwrap_err();
        assert!(err.to_string().contains("slot 77"), "{err}");
    }

    #[test]
    fn known_fork_with_bad_operations_is_an_error() {
        let extra = r#","voluntary_exits":[{"new_shape":true}]"#;
        let json = block_json(Some("electra"), &attestation(Some("0x01")), extra);
        let err = decode_block(json.as_bytes(), None, None).unwrap_err();
        assert!(err.to_string().contains("voluntary_exits"), "{err}");
    }

    #[test]
    fn garbage_blocks_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"data\":{}}",
            b"{\"data\":{\"message\":{\"slot\":\"x\"}}}",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                decode_block(body, Some("electra"), None),
                Err(BlockDecodeError::Header(_))
            ));
        }
        let bad_bits = block_json(Some("deneb"), &attestation(None), "").replace("0x0f", "0x00");
        assert!(decode_block(bad_bits.as_bytes(), None, None).is_err());
        let bad_hex = block_json(Some("deneb"), &attestation(None), "").replace("0x0f", "0xzz");
        assert!(decode_block(bad_hex.as_bytes(), None, None).is_err());
    }

    #[test]
    fn operations_are_read() {
        let extra = format!(
            r#","proposer_slashings":[{{"signed_header_1":{{"message":{{"slot":"70","proposer_index":"12","parent_root":"{r}","state_root":"{r}","body_root":"{r}"}},"signature":"0x00"}},
                "signed_header_2":{{"message":{{"slot":"70","proposer_index":"12","parent_root":"{r}","state_root":"{r}","body_root":"{r}"}},"signature":"0x00"}}}}],
            "attester_slashings":[{{"attestation_1":{{"attesting_indices":["1","2","3"],"data":{{"slot":"60","index":"0","beacon_block_root":"{r}","source":{{"epoch":"6","root":"{r}"}},"target":{{"epoch":"7","root":"{r}"}}}},"signature":"0x00"}},
                "attestation_2":{{"attesting_indices":["2","3"],"data":{{"slot":"61","index":"0","beacon_block_root":"{r}","source":{{"epoch":"6","root":"{r}"}},"target":{{"epoch":"7","root":"{r}"}}}},"signature":"0x00"}}}}],
            "voluntary_exits":[{{"message":{{"epoch":"9","validator_index":"33"}},"signature":"0x00"}}]"#,
            r = root(4)
        );
        let json = block_json(Some("deneb"), &attestation(None), &extra);
        let b = decode_block(json.as_bytes(), None, None).unwrap().block;
        assert_eq!(
            b.proposer_slashings,
            vec![ProposerSlashing {
                proposer_index: ValidatorIndex(12),
                slot: Slot(70)
            }]
        );
        assert_eq!(b.attester_slashings.len(), 1);
        assert_eq!(b.attester_slashings[0].target_epoch, Epoch(7));
        assert_eq!(
            b.attester_slashings[0].slashed(),
            vec![ValidatorIndex(2), ValidatorIndex(3)]
        );
        assert_eq!(
            b.voluntary_exits,
            vec![VoluntaryExit {
                validator_index: ValidatorIndex(33),
                epoch: Epoch(9)
            }]
        );
    }

    #[test]
    fn spec_reads_strings_skips_arrays_and_unscheduled_forks() {
        let genesis = Genesis {
            genesis_time: 100,
            genesis_validators_root: Root([7; 32]),
        };
        let body = br#"{"data":{"SECONDS_PER_SLOT":"12","SLOTS_PER_EPOCH":"32",
            "EPOCHS_PER_SYNC_COMMITTEE_PERIOD":"256","ALTAIR_FORK_EPOCH":"50","DENEB_FORK_EPOCH":"132608",
            "ELECTRA_FORK_EPOCH":"222464","FULU_FORK_EPOCH":"18446744073709551615",
            "BLOB_SCHEDULE":[{"EPOCH":"1","MAX_BLOBS_PER_BLOCK":"9"}]}}"#;
        let spec = parse_spec(body, &genesis).unwrap();
        assert_eq!(spec.slot_duration_ms, 12_000);
        assert_eq!(spec.slots_per_epoch, 32);
        assert_eq!(spec.genesis_time, 100);
        assert_eq!(
            spec.forks,
            vec![
                (Fork::Phase0, Epoch(0)),
                (Fork::Altair, Epoch(50)),
                (Fork::Deneb, Epoch(132608)),
                (Fork::Electra, Epoch(222464)),
            ]
        );
        // SLOT_DURATION_MS wins over SECONDS_PER_SLOT.
        let body =
            br#"{"data":{"SLOT_DURATION_MS":"6000","SECONDS_PER_SLOT":"12","SLOTS_PER_EPOCH":"8",
            "EPOCHS_PER_SYNC_COMMITTEE_PERIOD":"8"}}"#;
        assert_eq!(parse_spec(body, &genesis).unwrap().slot_duration_ms, 6000);
        let body = br#"{"data":{"SLOTS_PER_EPOCH":"8","EPOCHS_PER_SYNC_COMMITTEE_PERIOD":"8"}}"#;
        let err = parse_spec(body, &genesis).unwrap_err();
        assert!(err.0.contains("SECONDS_PER_SLOT"), "{err}");
    }

    #[test]
    fn proposer_duties_take_the_dependent_root_from_the_header_when_the_body_lacks_it() {
        let body = br#"{"data":[{"pubkey":"0x00","validator_index":"3","slot":"8"}]}"#;
        let d = parse_proposer_duties(body, Epoch(1), Some(&root(5))).unwrap();
        assert_eq!(d.dependent_root, Root([5; 32]));
        assert_eq!(d.duties[0].validator_index, ValidatorIndex(3));
        assert!(parse_proposer_duties(body, Epoch(1), None).is_err());
    }

    #[test]
    fn syncing_defaults_missing_optional_flags() {
        let s =
            parse_syncing(br#"{"data":{"head_slot":"10","sync_distance":"0","is_syncing":false}}"#)
                .unwrap();
        assert_eq!(s.head_slot, Slot(10));
        assert!(!s.is_optimistic && !s.el_offline);
    }
}
