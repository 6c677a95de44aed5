//! Nothing from the network may panic valwatch. Every decoder of the beacon
//! layer is fed the real answers of the Lodestar recordings and thousands of
//! damaged copies of them — cut short, bytes flipped, integers replaced by
//! out-of-range or ill-typed values, hex strings emptied, made odd or huge,
//! values swapped for `null`/`[]`/`{}` — and must answer with a value or an
//! error, never a panic. Events of the SSE stream get the same treatment.
//!
//! Deterministic (a fixed seed); a failure prints the decoder, the mutation
//! and the start of the input that broke it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use valwatch::beacon::events::{parse_slashing, record_event, take_frames, SeenBlocks};
use valwatch::beacon::wire;
use valwatch::chain::{Epoch, Slot};

/// Answers kept per route template: enough variety, bounded time.
const PER_ROUTE: usize = 12;
/// Damaged copies per kept answer.
const MUTATIONS: usize = 24;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A route's template: path segments that are numbers or hex become `{}`.
fn template(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() || s.starts_with("0x") {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The successful JSON answers of a recording, a few per route.
fn answers(recording: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(common::fixture(recording).join("recording.jsonl")).unwrap();
    let mut by_route: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["status"].as_u64() != Some(200) || !v["response"].is_object() {
            continue;
        }
        let path = v["path"].as_str().unwrap_or_default().to_string();
        let kept = by_route.entry(template(&path)).or_default();
        if kept.len() < PER_ROUTE {
            kept.push((path, v["response"].to_string()));
        }
    }
    by_route.into_values().flatten().collect()
}

/// Byte ranges of JSON string contents (between quotes) in `s`.
fn strings(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push((start, j.min(b.len())));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

const ODD_VALUES: &[&str] = &[
    "\"18446744073709551615\"",
    "\"18446744073709551616\"",
    "\"-1\"",
    "\"1e9\"",
    "\"\"",
    "\"0x\"",
    "\"0xzz\"",
    "\"0x123\"",
    "18446744073709551615",
    "-5",
    "1.5",
    "null",
    "true",
    "[]",
    "{}",
    "[\"1\",[]]",
];

/// One damaged copy of `body` and what was done to it.
fn mutate(body: &str, rng: &mut Rng) -> (String, String) {
    let strs = strings(body);
    match rng.below(6) {
        0 => {
            let mut at = rng.below(body.len());
            while !body.is_char_boundary(at) {
                at -= 1;
            }
            (body[..at].to_string(), format!("cut at byte {at}"))
        }
        1 => {
            let mut bytes = body.as_bytes().to_vec();
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                format!("bit flipped at byte {at}"),
            )
        }
        2 | 3 if !strs.is_empty() => {
            // A whole quoted value (with its quotes) becomes something odd.
            let (a, b) = strs[rng.below(strs.len())];
            let odd = ODD_VALUES[rng.below(ODD_VALUES.len())];
            let out = format!(
                "{}{}{}",
                &body[..a - 1],
                odd,
                &body[(b + 1).min(body.len())..]
            );
            (out, format!("{:?} -> {odd}", &body[a..b.min(a + 40)]))
        }
        4 if !strs.is_empty() => {
            // A hex or number string grows huge or odd.
            let (a, b) = strs[rng.below(strs.len())];
            let inner = &body[a..b];
            let new = if inner.starts_with("0x") {
                if rng.below(2) == 0 {
                    format!("0x{}", "ff".repeat(20_000))
                } else {
                    format!("{inner}f")
                }
            } else {
                "9".repeat(40)
            };
            (
                format!("{}{}{}", &body[..a], new, &body[b..]),
                format!("{:?} grown", &inner[..inner.len().min(40)]),
            )
        }
        _ => {
            // Structure: an array or object emptied.
            let opens: Vec<usize> = body
                .char_indices()
                .filter(|(_, c)| *c == '[' || *c == '{')
                .map(|(i, _)| i)
                .collect();
            if opens.is_empty() {
                return (String::new(), "emptied".into());
            }
            let at = opens[rng.below(opens.len())];
            let (open, close) = if body.as_bytes()[at] == b'[' {
                ('[', ']')
            } else {
                ('{', '}')
            };
            let mut depth = 0;
            let mut end = body.len();
            for (i, c) in body[at..].char_indices() {
                if c == open {
                    depth += 1;
                } else if c == close {
                    depth -= 1;
                    if depth == 0 {
                        end = at + i + 1;
                        break;
                    }
                }
            }
            (
                format!("{}{open}{close}{}", &body[..at], &body[end..]),
                format!("{open}{close} emptied at byte {at}"),
            )
        }
    }
}

/// Every decoder, on one input; the names of those that panicked.
fn decode_all(body: &str) -> Vec<&'static str> {
    let genesis = wire::parse_genesis(
        br#"{"data":{"genesis_time":"1700000000","genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000001","genesis_fork_version":"0x10000038"}}"#,
    )
    .unwrap();
    let b = body.as_bytes();
    let mut panicked = Vec::new();
    let mut run = |name: &'static str, f: &dyn Fn()| {
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            panicked.push(name);
        }
    };
    run("parse_genesis", &|| drop(wire::parse_genesis(b)));
    run("parse_syncing", &|| drop(wire::parse_syncing(b)));
    run("parse_spec", &|| drop(wire::parse_spec(b, &genesis)));
    run("parse_header", &|| drop(wire::parse_header(b)));
    run("parse_root", &|| drop(wire::parse_root(b)));
    run("parse_finality", &|| drop(wire::parse_finality(b)));
    run("parse_committees", &|| drop(wire::parse_committees(b)));
    run("parse_sync_committee", &|| {
        drop(wire::parse_sync_committee(b))
    });
    run("parse_proposer_duties", &|| {
        drop(wire::parse_proposer_duties(b, Epoch(3), Some("0x00")))
    });
    run("parse_attester_duties", &|| {
        drop(wire::parse_attester_duties(b, Epoch(3), None))
    });
    run("parse_validators", &|| drop(wire::parse_validators(b)));
    run("parse_liveness", &|| drop(wire::parse_liveness(b)));
    run("decode_block", &|| {
        drop(wire::decode_block(b, None, None));
        drop(wire::decode_block(b, Some("electra"), None));
        drop(wire::decode_block(b, Some("fulu"), None));
        drop(wire::decode_block(b, Some("phase0"), None));
    });
    run("decode_block_attestations", &|| {
        drop(wire::decode_block_attestations(b, Some("deneb")))
    });
    run("parse_pool_attester_slashings", &|| {
        drop(wire::parse_pool_attester_slashings(b))
    });
    run("parse_pool_proposer_slashings", &|| {
        drop(wire::parse_pool_proposer_slashings(b))
    });
    run("error_message", &|| drop(wire::error_message(b)));
    run("event parsers", &|| {
        let epoch_of = |s: Slot| Epoch(s.0 / 8);
        for event in ["attester_slashing", "proposer_slashing", "block", "head"] {
            drop(parse_slashing(epoch_of, event, body));
            let _ = record_event(&SeenBlocks::default(), event, body);
        }
        let mut frames = format!("event: block\ndata: {body}\n\n");
        drop(take_frames(&mut frames));
    });
    panicked
}

#[test]
fn damaged_answers_of_real_nodes_are_errors_never_panics() {
    // Keep the default hook quiet: panics are collected, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut failures = Vec::new();
    let mut inputs = 0;
    let mut events = Vec::new();
    for recording in ["lodestar-devnet", "lodestar-devnet-deneb-electra"] {
        let text =
            std::fs::read_to_string(common::fixture(recording).join("events.jsonl")).unwrap();
        let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let kind = v["event"].as_str().unwrap_or_default().to_string();
            let n = per_kind.entry(kind.clone()).or_default();
            if *n < PER_ROUTE {
                *n += 1;
                events.push((format!("event {kind}"), v["data"].to_string()));
            }
        }
        for (path, body) in answers(recording).into_iter().chain(events.drain(..)) {
            let mut cases = vec![(body.clone(), "as recorded".to_string())];
            for _ in 0..MUTATIONS {
                cases.push(mutate(&body, &mut rng));
            }
            for (input, what) in cases {
                inputs += 1;
                for name in decode_all(&input) {
                    failures.push(format!(
                        "{name} panicked on {path} ({what}): {:?}",
                        &input[..input.len().min(160)]
                    ));
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    eprintln!("{inputs} inputs through every decoder");
    assert!(inputs > 1_000, "only {inputs} inputs");
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} panics:\n{}",
        failures.len(),
        failures.into_iter().take(30).collect::<Vec<_>>().join("\n")
    );
}
