//! `GET /validator/{index}`: one watched validator's page (issue 14): its
//! state now (from the board, the same as `/status`), its strip over the
//! last `VALIDATOR_EPOCHS` and a table of those epochs from the store
//! (attestation, delay, correctness, proposals, sync, balance, rewards).
//!
//! Answers 404 with a clear message for an index that is not watched and
//! 400 for one that is not a validator index: the path is network input,
//! it is parsed here and never trusted. Rows come from the store as
//! stored; nothing is recomputed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::page::{balance_line, escape, eth, STYLE};
use super::status::{current_view, ValidatorView};
use super::svg::{self, classify, worse_proposal, Cell};
use super::HttpState;
use crate::analysis::rewards::RewardRecord;
use crate::analysis::{AttestationVerdict, BalanceRecord, ProposalVerdict, SyncVerdict};
use crate::chain::{Epoch, ValidatorIndex};
use crate::store::{EpochMark, ValidatorHistory};

/// Epochs per drawn strip line on this page: the status page's width.
const LINE_EPOCHS: usize = 64;

pub fn router() -> Router<HttpState> {
    Router::new().route("/validator/{index}", get(validator_page))
}

/// A short error page: what was asked, why it cannot be shown.
fn error_page(code: StatusCode, message: &str) -> Response {
    (
        code,
        Html(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>valwatch — {}</title>\
             <style>{STYLE}</style></head><body><h1>{}</h1><p>{}</p><p><a href=\"/\">back to the status page</a></p></body></html>\n",
            code.as_u16(),
            code.canonical_reason().unwrap_or("error"),
            escape(message)
        )),
    )
        .into_response()
}

/// PURE: the index of a path segment, or why it is none. Digits only (no
/// sign, no spaces), at most 20 of them, as the Beacon API writes indices.
pub fn parse_index(text: &str) -> Result<ValidatorIndex, String> {
    let shown: String = text.chars().take(32).collect();
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{shown:?} is not a validator index (expected digits, e.g. /validator/12345)"
        ));
    }
    text.parse::<u64>()
        .map(ValidatorIndex)
        .map_err(|_| format!("{shown:?} is too large for a validator index"))
}

async fn validator_page(State(s): State<HttpState>, Path(raw): Path<String>) -> Response {
    let index = match parse_index(&raw) {
        Ok(i) => i,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, &why),
    };
    let view = match current_view(&s, None) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(val) = view.validators.iter().find(|x| x.validator.index == index) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("validator {} is not watched by this valwatch (see the validators on the status page)", index.0),
        );
    };
    let newest = [view.last_final_epoch, view.last_provisional_epoch]
        .into_iter()
        .flatten()
        .map(|p| p.epoch)
        .max();
    let history = match (&s.history, newest) {
        (None, _) => Err("no history yet: the chain is not known".to_string()),
        (_, None) => Err("no epoch processed yet".to_string()),
        (Some(h), Some(to)) => match h.validator(index, to).await {
            Ok((from, rows)) => Ok((from, to, h.slots_per_epoch(), rows)),
            Err(e) => Err(format!("history unavailable: {e}")),
        },
    };
    Html(render_validator(
        val,
        history.as_ref().map(|(f, t, spe, r)| (*f, *t, *spe, r)),
    ))
    .into_response()
}

/// One epoch's stored rows of one validator.
#[derive(Default)]
struct EpochRows<'a> {
    attestation: Option<&'a AttestationVerdict>,
    proposals: Vec<&'a ProposalVerdict>,
    sync: Option<&'a SyncVerdict>,
    balance: Option<&'a BalanceRecord>,
    reward: Option<&'a RewardRecord>,
}

fn by_epoch(h: &ValidatorHistory, slots_per_epoch: u64) -> BTreeMap<Epoch, EpochRows<'_>> {
    let mut m: BTreeMap<Epoch, EpochRows<'_>> = BTreeMap::new();
    for a in &h.attestations {
        m.entry(a.epoch).or_default().attestation = Some(a);
    }
    for p in &h.proposals {
        m.entry(Epoch(p.slot.0 / slots_per_epoch.max(1)))
            .or_default()
            .proposals
            .push(p);
    }
    for s in &h.sync {
        m.entry(s.epoch).or_default().sync = Some(s);
    }
    for b in &h.balances {
        m.entry(b.epoch).or_default().balance = Some(b);
    }
    for r in &h.rewards {
        m.entry(r.epoch).or_default().reward = Some(r);
    }
    m
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "<b>no</b>",
        None => "—",
    }
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "—".to_string(), |v| v.to_string())
}

/// PURE: the page of one validator: its view now and, when the store
/// answered, its history over `from..=to`.
pub fn render_validator(
    val: &ValidatorView,
    history: Result<(Epoch, Epoch, u64, &ValidatorHistory), &String>,
) -> String {
    let x = &val.validator;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>valwatch — validator {}</title><style>{STYLE}{}</style></head><body>\n",
        super::page::REFRESH_SECONDS,
        x.index.0,
        svg::STYLE
    );
    let _ = writeln!(
        h,
        "<p><a href=\"/\">← status page</a></p><h1>Validator {} <span class=\"badge {1}\">{1}</span></h1>",
        x.index.0,
        val.state.as_str()
    );
    let labels = if x.labels.is_empty() {
        String::new()
    } else {
        format!(" · labels {}", escape(&x.labels.join(", ")))
    };
    let _ = writeln!(
        h,
        "<table id=\"now\"><tr><th>Group</th><td>{}{labels}</td></tr>\
         <tr><th>Health (why)</th><td>{} ({})</td></tr>\
         <tr><th>Registry status</th><td>{}{}</td></tr>\
         <tr><th>Balance</th><td>{} ETH (effective {} ETH) at epoch {}</td></tr>\
         <tr><th>Missed in a row</th><td>{}</td></tr>\
         <tr><th>Last attestation</th><td>{}</td></tr>\
         <tr><th>Last proposal</th><td>{}</td></tr>\
         <tr><th>Next proposal</th><td>{}</td></tr>\
         <tr><th>Sync committee</th><td>{}</td></tr></table>",
        escape(&x.group),
        escape(x.health.as_str()),
        escape(&x.evidence),
        num(x.status.map(|s| s.as_str())),
        if x.slashed { " · <b>slashed</b>" } else { "" },
        x.balance.map_or_else(|| "—".into(), |b| eth(b.0 as i128)),
        x.effective_balance
            .map_or_else(|| "—".into(), |b| eth(b.0 as i128)),
        num(x.balance_epoch),
        x.consecutive_missed,
        x.attestation.as_ref().map_or_else(
            || "—".to_string(),
            |a| format!(
                "{} (epoch {}{})",
                a.status.as_str(),
                a.epoch,
                if a.is_final { "" } else { ", provisional" }
            )
        ),
        x.last_proposal.as_ref().map_or_else(
            || "—".to_string(),
            |p| format!("{} at slot {}", p.status.as_str(), p.slot)
        ),
        num(x.next_proposal_slot),
        if x.in_sync_committee {
            "member now"
        } else {
            "no"
        },
    );

    let (from, to, spe, hist) = match history {
        Ok(v) => v,
        Err(why) => {
            let _ = writeln!(
                h,
                "<p class=\"muted\" id=\"history-missing\">{}</p></body></html>",
                escape(why)
            );
            return h;
        }
    };
    let rows = by_epoch(hist, spe);
    // Whole lines of LINE_EPOCHS: a younger history leaves the end of its
    // last line empty, as the status page's strips do.
    let span = (to.0 - from.0 + 1).div_ceil(LINE_EPOCHS as u64) * LINE_EPOCHS as u64;
    let cells: Vec<Cell> = (from.0..from.0 + span)
        .map(|e| {
            let epoch = Epoch(e);
            let mut c = Cell::empty(epoch);
            if let Some(r) = rows.get(&epoch) {
                if let Some(a) = r.attestation {
                    let m = EpochMark {
                        validator_index: a.validator_index,
                        epoch,
                        status: a.status,
                        inclusion_delay: a.inclusion_delay,
                        late: a.late,
                        source_correct: a.source_correct,
                        target_correct: a.target_correct,
                        head_correct: a.head_correct,
                        balance: None,
                    };
                    c.class = classify(Some(&m));
                    c.inclusion_delay = a.inclusion_delay;
                }
                c.balance = r.balance.map(|b| b.balance);
                for p in &r.proposals {
                    c.proposal = Some(worse_proposal(c.proposal, p.status));
                }
            }
            c
        })
        .collect();
    let _ = writeln!(h, "<h2>Epochs {}–{}</h2>", from.0, to.0);
    svg::legend(&mut h);
    h.push_str("<div id=\"strips\">");
    for line in cells.chunks(LINE_EPOCHS) {
        if let (Some(a), Some(b)) = (line.first(), line.last()) {
            let _ = write!(
                h,
                "<div class=\"hist\"><code>{:>8}–{:<8}</code> ",
                a.epoch.0, b.epoch.0
            );
            svg::strip(&mut h, line, true);
            h.push_str("</div>");
        }
    }
    h.push_str("</div>\n<p class=\"hist\">Balance ");
    balance_line(
        &mut h,
        &cells,
        (cells.len() as u32 * svg::CELL_PITCH).max(96),
    );
    h.push_str("</p>\n");

    // What the range earned and missed, from the rewards the nodes
    // served; an epoch they did not serve is unknown, never counted as 0.
    let _ = writeln!(h, "<p id=\"income\">{}</p>", escape(&income(&hist.rewards)));

    h.push_str("<h2>Epochs, newest first</h2><table id=\"epochs\"><tr><th>Epoch</th><th>Attestation</th><th>Duty slot</th><th>Inclusion slot</th><th>Delay</th><th>Late</th><th>Source</th><th>Target</th><th>Head</th><th>Proposals</th><th>Sync (ok/missed)</th><th>Balance (Gwei)</th><th>Change</th><th>Attestation reward</th><th>Ideal</th><th>Sync reward</th><th>Proposer reward</th><th>Missed (Gwei)</th><th>Note</th></tr>\n");
    for (epoch, r) in rows.iter().rev() {
        let a = r.attestation;
        let class = a.map_or("none", |a| {
            classify(Some(&EpochMark {
                validator_index: a.validator_index,
                epoch: *epoch,
                status: a.status,
                inclusion_delay: a.inclusion_delay,
                late: a.late,
                source_correct: a.source_correct,
                target_correct: a.target_correct,
                head_correct: a.head_correct,
                balance: None,
            }))
            .css()
        });
        let proposals = r
            .proposals
            .iter()
            .map(|p| format!("{} at slot {}", p.status.as_str(), p.slot))
            .collect::<Vec<_>>()
            .join("; ");
        let rw = r.reward;
        let _ = writeln!(
            h,
            "<tr id=\"e{}\" class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            epoch.0,
            epoch.0,
            a.map_or("—", |a| a.status.as_str()),
            num(a.and_then(|a| a.duty_slot)),
            num(a.and_then(|a| a.inclusion_slot)),
            num(a.and_then(|a| a.inclusion_delay)),
            yes_no_plain(a.and_then(|a| a.late)),
            yes_no(a.and_then(|a| a.source_correct)),
            yes_no(a.and_then(|a| a.target_correct)),
            yes_no(a.and_then(|a| a.head_correct)),
            if proposals.is_empty() { "—".to_string() } else { escape(&proposals) },
            r.sync.map_or_else(|| "—".to_string(), |s| format!("{}/{}", s.participated, s.missed)),
            num(r.balance.map(|b| b.balance.0)),
            num(r.balance.and_then(|b| b.balance_change)),
            num(rw.and_then(|w| w.attestation_reward_gwei)),
            num(rw.and_then(|w| w.attestation_ideal_gwei)),
            num(rw.and_then(|w| w.sync_reward_gwei)),
            num(rw.and_then(|w| w.proposer_reward_gwei)),
            rw.and_then(|w| w.missed_gwei)
                .map_or_else(|| "—".to_string(), |m| format!("{m}{}", if rw.is_some_and(|w| w.estimated) { " (est.)" } else { "" })),
            escape(a.and_then(|a| a.reason.as_deref()).unwrap_or("")),
        );
    }
    if rows.is_empty() {
        h.push_str("<tr><td colspan=\"19\" class=\"muted\">nothing stored for this validator in these epochs</td></tr>\n");
    }
    h.push_str(
        "</table>\n<p class=\"muted\">Machine-readable: <code>valwatch report --validators ",
    );
    let _ = write!(
        h,
        "{} --format json</code></p>\n</body></html>\n",
        x.index.0
    );
    h
}

/// PURE: the income sentence of the rewards rows: sums over the epochs
/// whose rewards a node served, how many those are, and "unknown" when
/// none.
pub fn income(rows: &[RewardRecord]) -> String {
    let known: Vec<&RewardRecord> = rows
        .iter()
        .filter(|r| r.attestation_reward_gwei.is_some() || r.missed_gwei.is_some())
        .collect();
    if known.is_empty() {
        return "Rewards: unknown (no node served the rewards routes for these epochs).".into();
    }
    let earned: i128 = known
        .iter()
        .flat_map(|r| {
            [
                r.attestation_reward_gwei,
                r.sync_reward_gwei,
                r.proposer_reward_gwei,
            ]
        })
        .flatten()
        .map(i128::from)
        .sum();
    let missed: i128 = known
        .iter()
        .filter_map(|r| r.missed_gwei)
        .map(|v| i128::from(v.max(0)))
        .sum();
    format!(
        "Rewards over the {} epoch(s) whose rewards a node served: earned {} ETH, missed {} ETH{}.",
        known.len(),
        eth(earned),
        eth(missed),
        if known.iter().any(|r| r.estimated) {
            " (with an estimate for a missed proposal)"
        } else {
            ""
        }
    )
}

/// Late is a fact, not a fault to shout: plain yes/no.
fn yes_no_plain(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn income_counts_only_what_a_node_served() {
        let row = |att: Option<i64>, missed: Option<i64>, estimated| RewardRecord {
            epoch: Epoch(1),
            validator_index: ValidatorIndex(1),
            attestation_reward_gwei: att,
            attestation_ideal_gwei: None,
            sync_reward_gwei: None,
            proposer_reward_gwei: None,
            missed_gwei: missed,
            estimated,
        };
        assert_eq!(
            income(&[row(None, None, false), row(None, None, false)]),
            "Rewards: unknown (no node served the rewards routes for these epochs)."
        );
        assert_eq!(
            income(&[row(Some(12_000), Some(2_000), false), row(None, None, false), row(Some(-3_000), Some(15_000), true)]),
            "Rewards over the 2 epoch(s) whose rewards a node served: earned 0.000009 ETH, missed 0.000017 ETH (with an estimate for a missed proposal)."
        );
    }

    #[test]
    fn only_plain_digits_are_an_index() {
        assert_eq!(parse_index("12345"), Ok(ValidatorIndex(12345)));
        assert_eq!(parse_index("0"), Ok(ValidatorIndex(0)));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1e3",
            "0x10",
            "abc",
            "１",
            "99999999999999999999999",
        ] {
            assert!(parse_index(bad).is_err(), "{bad:?}");
        }
        assert!(parse_index("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        // What is echoed is cut short.
        assert!(parse_index(&"x".repeat(10_000)).unwrap_err().len() < 120);
    }
}
