//! `GET /`: the status page for people. Server-rendered HTML with inline
//! style, no scripts and no external assets (it must work on a host
//! without internet access), refreshed by a meta tag.
//!
//! Same data and status code as `/status`; it only adds presentation, and
//! the history (issue 14): per group and per validator the last
//! `STRIP_EPOCHS` as a strip and a balance line, drawn by `svg` from the
//! store's rows (`history`, read once per processed epoch). Validators are
//! listed `PAGE_VALIDATOR_ROWS` at a time (`?page=N`), failing first, and
//! each links to its own page (`/validator/{index}`). Without a store, or
//! when it fails, the page says so and shows the rest.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::history::Strips;
use super::status::{current_view, http_code, StatusView};
use super::svg::{self, GroupCell};
use super::HttpState;
use crate::chain::{Epoch, ValidatorIndex};
use crate::status::{health_str, State as BoardState};

/// Seconds between reloads: about two and a half mainnet slots, so a new
/// verdict shows within half a minute without hammering the server.
pub const REFRESH_SECONDS: u32 = 30;

/// Validators listed per page (`?page=N`), each with its strip: a row is
/// ~3–7 kB with its strip, so 100 rows keep the page well under 1 MB
/// whatever the number of watched validators (issue 14 asks < 1 MB at
/// 1 000). Failing ones come first, so they are on the first page.
pub const PAGE_VALIDATOR_ROWS: usize = 100;

/// Groups drawn with a strip; more are listed without one. A group strip
/// is up to ~25 kB (stacked shares and a tooltip per epoch).
pub const PAGE_GROUP_STRIPS: usize = 24;

/// Watched validators above which the status page draws no strips: their
/// cells are kept in memory (~50 bytes per validator-epoch, 32 MB at this
/// bound) and a cold read is 64 rows per validator. Each validator's page
/// still shows its own history.
pub const MAX_STRIP_VALIDATORS: usize = 10_000;

/// Width of a balance line next to a 64-epoch strip.
const SPARK_WIDTH: u32 = 96;

pub fn router() -> Router<HttpState> {
    Router::new().route("/", get(page))
}

/// `?group=NAME&page=N`. The page number is read as text, so that a bad
/// one gets a clear 400 rather than the extractor's message.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub group: Option<String>,
    pub page: Option<String>,
}

/// The history a page draws, or why there is none.
pub enum PageHistory {
    Strips(Arc<Strips>),
    Missing(String),
}

/// The history of the board's watched validators ending at the newest
/// epoch the board processed (provisional included: its votes show as
/// pending), or why there is none.
pub async fn page_history(s: &HttpState, v: &StatusView) -> PageHistory {
    let Some(history) = &s.history else {
        return PageHistory::Missing("no history yet: the chain is not known".into());
    };
    let newest = [v.last_final_epoch, v.last_provisional_epoch]
        .into_iter()
        .flatten()
        .map(|p| p.epoch)
        .max();
    let Some(to) = newest else {
        return PageHistory::Missing("no epoch processed yet".into());
    };
    let watched: Vec<ValidatorIndex> = s
        .board
        .read(|snap| snap.validators.keys().copied().collect());
    if watched.len() > MAX_STRIP_VALIDATORS {
        return PageHistory::Missing(format!(
            "history strips are drawn for up to {MAX_STRIP_VALIDATORS} watched validators \
             ({} are watched): see each validator's page, Grafana or `valwatch report`",
            watched.len()
        ));
    }
    match history
        .strips(watched, to, v.last_final_epoch, v.last_provisional_epoch)
        .await
    {
        Ok(strips) => PageHistory::Strips(strips),
        Err(e) => PageHistory::Missing(format!("history unavailable: {e}")),
    }
}

async fn page(State(s): State<HttpState>, Query(q): Query<PageQuery>) -> Response {
    let page = match q.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return (
            StatusCode::BAD_REQUEST,
            Html(
                "<!doctype html><title>valwatch</title><p>page must be a number from 1 on</p>\n"
                    .to_string(),
            ),
        )
            .into_response(),
    };
    match current_view(&s, q.group.as_deref()) {
        Ok(view) => {
            let history = page_history(&s, &view).await;
            (
                http_code(view.state),
                Html(render_page(&view, &history, page)),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Reads the status page's strips ahead, in the background: each time the
/// board has processed another epoch, the read the page would make is made
/// now, so the person who opens the page gets it from the cache (reading
/// 64 epochs of 1 000 validators takes 0.3–0.6 s; from the cache 10–40 ms,
/// measured by `tests/http_history.rs`). Looks every `every` until
/// `cancel`.
pub async fn warm_history(
    s: HttpState,
    every: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut done = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Ok(view) = current_view(&s, None) else {
            continue;
        };
        let seen = (view.last_final_epoch, view.last_provisional_epoch);
        if done == Some(seen) {
            continue;
        }
        if let PageHistory::Strips(_) = page_history(&s, &view).await {
            done = Some(seen);
        }
    }
}

/// Gwei as ETH with 6 decimals (a micro-ether: ~0.1 epoch of one
/// validator's income), signed.
pub fn eth(gwei: i128) -> String {
    let sign = if gwei < 0 { "-" } else { "" };
    let micro = (gwei.unsigned_abs() + 500) / 1000;
    format!("{sign}{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// A validator's balance line over the strip's epochs.
pub fn balance_line(out: &mut String, cells: &[svg::Cell], width: u32) {
    let values: Vec<Option<i128>> = cells
        .iter()
        .map(|c| c.balance.map(|b| b.0 as i128))
        .collect();
    let known: Vec<i128> = values.iter().flatten().copied().collect();
    let title = match (known.first(), known.last()) {
        (Some(a), Some(b)) => format!("balance {} → {} ETH ({} ETH)", eth(*a), eth(*b), eth(b - a)),
        _ => "no balance stored".to_string(),
    };
    svg::sparkline(out, &values, width, &title);
}

/// A group's strip and its income line: per epoch the sum of its members'
/// balance changes (between consecutive stored balances), accumulated.
fn group_history(out: &mut String, strips: &Strips, members: &[&ValidatorIndex]) {
    let n = (strips.to.0 - strips.from.0 + 1) as usize;
    let mut cells: Vec<GroupCell> = (strips.from.0..=strips.to.0)
        .map(|e| GroupCell::new(Epoch(e)))
        .collect();
    let mut change = vec![0i128; n];
    let mut known = vec![false; n];
    for v in members {
        let Some(row) = strips.cells.get(v) else {
            continue;
        };
        for (i, c) in row.iter().enumerate() {
            if let Some(g) = cells.get_mut(i) {
                g.add(c);
            }
            if i > 0 {
                if let (Some(a), Some(b)) = (row[i - 1].balance, c.balance) {
                    change[i] += b.0 as i128 - a.0 as i128;
                    known[i] = true;
                }
            }
        }
    }
    svg::group_strip(out, &cells);
    out.push(' ');
    let mut total = 0i128;
    let line: Vec<Option<i128>> = (0..n)
        .map(|i| {
            total += change[i];
            (i == 0 || known[i]).then_some(total)
        })
        .collect();
    svg::sparkline(
        out,
        &line,
        SPARK_WIDTH,
        &format!(
            "balance change of the group over these epochs: {} ETH (withdrawals included)",
            eth(total)
        ),
    );
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge(state: BoardState) -> String {
    format!(r#"<span class="badge {0}">{0}</span>"#, state.as_str())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "—".to_string(), |v| escape(&v.to_string()))
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    }
}

pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
.network.low{color:#b00020;font-weight:600}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;font-size:.9rem}\
th{background:#f3f3f3}.badge{padding:.1rem .5rem;border-radius:.3rem;color:#fff;font-weight:600}\
.ok{background:#2e7d32}.degraded{background:#ef6c00}.failing{background:#c62828}\
.muted{color:#777}code{font-size:.85rem}.hist{white-space:nowrap}\
tr.miss td{background:#fdecea}tr.tgt td,tr.head td{background:#fff8e1}";

/// PURE: the page for one view, its history and the page of validators
/// asked for (1-based).
pub fn render_page(v: &StatusView, history: &PageHistory, page: usize) -> String {
    let mut h = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>valwatch — {}</title><style>{STYLE}{}</style></head><body>\n",
        v.state.as_str(),
        svg::STYLE
    );
    let scope = match &v.group {
        Some(g) => format!(" — group {}", escape(g)),
        None => String::new(),
    };
    let _ = writeln!(h, "<h1>valwatch{scope} {}</h1>", badge(v.state));
    let _ = writeln!(
        h,
        "<p class=\"muted\">Generated {} · started {} · last final epoch {} · head slot {} · wall slot {} · store ok: {} · ready: {}</p>",
        escape(&v.generated_at),
        escape(&v.started_at),
        v.last_final_epoch
            .map_or_else(|| "none yet".to_string(), |p| format!("{} at {}", p.epoch, crate::status::format_time(p.at))),
        opt(v.head_slot),
        opt(v.wall_slot),
        yes_no(v.store_ok),
        if v.readiness.ready { "yes" } else { "no" },
    );
    if let Some(n) = &v.network {
        // Against the network (issue 14): a low network means missed
        // duties are not the operator's alone.
        let _ = writeln!(
            h,
            "<p class=\"{}\">Network in epoch {}: {}{}</p>",
            if n.low { "network low" } else { "muted" },
            n.epoch,
            escape(&n.text),
            if n.low {
                " — network-wide: low participation affects every operator"
            } else {
                ""
            }
        );
    }
    if !v.reasons.is_empty() {
        h.push_str("<h2>Why</h2><ul>\n");
        for f in &v.reasons {
            let _ = writeln!(h, "<li>{} {}</li>", badge(f.state), escape(&f.message));
        }
        h.push_str("</ul>\n");
    }

    let strips = match history {
        PageHistory::Strips(s) => Some(s.as_ref()),
        PageHistory::Missing(why) => {
            let _ = writeln!(
                h,
                "<p class=\"muted\" id=\"history-missing\">{}</p>",
                escape(why)
            );
            None
        }
    };
    let span = strips.map(|s| format!("Epochs {}–{}", s.from.0, s.newest.0));
    if strips.is_some() {
        svg::legend(&mut h);
    }

    let _ = writeln!(
        h,
        "<h2>Groups</h2><table><tr><th>Group</th><th>State</th>{}<th>Validators</th><th>Failing</th><th>Degraded</th><th>Expected offline</th></tr>",
        span.as_ref().map_or_else(String::new, |s| format!("<th>{s} · balance change</th>"))
    );
    for (gi, g) in v.groups.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td><a href=\"/?group={0}\">{1}</a></td><td>{2}</td>",
            escape(&url_component(&g.name)),
            escape(&g.name),
            badge(g.state),
        );
        if let Some(strips) = strips {
            h.push_str("<td class=\"hist\">");
            if gi < PAGE_GROUP_STRIPS {
                let members: Vec<&ValidatorIndex> = v
                    .validators
                    .iter()
                    .filter(|x| x.validator.group == g.name)
                    .map(|x| &x.validator.index)
                    .collect();
                group_history(&mut h, strips, &members);
            } else {
                h.push_str("<span class=\"muted\">open the group</span>");
            }
            h.push_str("</td>");
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g.validators, g.failing, g.degraded, g.expected_offline
        );
    }
    h.push_str("</table>\n");

    let pages = v.validators.len().div_ceil(PAGE_VALIDATOR_ROWS).max(1);
    let page = page.min(pages);
    let first = (page - 1) * PAGE_VALIDATOR_ROWS;
    let _ = writeln!(
        h,
        "<h2>Validators</h2><table><tr><th>Index</th><th>Group</th><th>State</th>{}<th>Health (why)</th><th>Attestation</th><th>Missed in a row</th><th>Balance (Gwei)</th><th>Status</th><th>Slashed</th><th>Last proposal</th><th>Next proposal</th><th>Sync committee</th></tr>",
        span.as_ref().map_or_else(String::new, |s| format!("<th>{s} · balance</th>"))
    );
    for val in v.validators.iter().skip(first).take(PAGE_VALIDATOR_ROWS) {
        let x = &val.validator;
        // The final verdict decides the state; a newer provisional look at
        // an open epoch is shown after it, never instead of it.
        let describe = |a: &crate::status::LatestAttestation| {
            let mut s = format!(
                "{} (epoch {}{})",
                a.status.as_str(),
                a.epoch,
                if a.is_final { "" } else { ", provisional" }
            );
            if let Some(d) = a.inclusion_delay {
                let _ = write!(s, ", delay {d}");
            }
            s
        };
        let att = match (&x.last_final_attestation, &x.attestation) {
            (Some(f), Some(a)) if !a.is_final && a.epoch > f.epoch => {
                format!("{}; then {}", describe(f), describe(a))
            }
            (Some(f), _) => describe(f),
            (None, Some(a)) => describe(a),
            (None, None) => "—".to_string(),
        };
        let state = if x.expected_offline {
            "<span class=\"muted\">expected offline</span>".to_string()
        } else {
            badge(val.state)
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"/validator/{0}\">{0}</a></td><td>{1}</td><td>{2}</td>",
            x.index,
            escape(&x.group),
            state,
        );
        if let Some(strips) = strips {
            h.push_str("<td class=\"hist\">");
            match strips.cells.get(&x.index) {
                Some(cells) => {
                    svg::strip(&mut h, cells, false);
                    h.push(' ');
                    balance_line(&mut h, cells, SPARK_WIDTH);
                }
                None => h.push_str("<span class=\"muted\">—</span>"),
            }
            h.push_str("</td>");
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            // The one rule the pager uses too, with its evidence.
            escape(&format!("{} ({})", x.health.as_str(), x.evidence)),
            escape(&att),
            x.consecutive_missed,
            opt(x.balance.map(|b| b.0)),
            opt(x.status.map(|s| s.as_str())),
            if x.slashed { "<b>yes</b>" } else { "no" },
            x.last_proposal
                .as_ref()
                .map_or_else(|| "—".to_string(), |p| format!("{} at slot {}", p.status.as_str(), p.slot)),
            opt(x.next_proposal_slot),
            if x.in_sync_committee { "yes" } else { "no" },
        );
    }
    h.push_str("</table>\n");
    if pages > 1 {
        let group = v.group.as_ref().map_or_else(String::new, |g| {
            format!("group={}&amp;", escape(&url_component(g)))
        });
        let link = |n: usize, text: &str| format!("<a href=\"/?{group}page={n}\">{text}</a>");
        let _ = writeln!(
            h,
            "<p class=\"pages\">Validators {}–{} of {} · page {page} of {pages} · {} · {} · all as JSON: <a href=\"/status\">/status</a></p>",
            first + 1,
            (first + PAGE_VALIDATOR_ROWS).min(v.validators.len()),
            v.validators.len(),
            if page > 1 { link(page - 1, "« previous") } else { "« previous".into() },
            if page < pages { link(page + 1, "next »") } else { "next »".into() },
        );
    }

    h.push_str("<h2>Beacon nodes</h2><table><tr><th>Node</th><th>URL</th><th>Health</th><th>Head slot</th><th>Agrees</th><th>Last error</th></tr>\n");
    if v.nodes.is_empty() {
        h.push_str("<tr><td colspan=\"6\" class=\"muted\">no node health reported yet</td></tr>\n");
    }
    for n in &v.nodes {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&n.name),
            escape(&n.url),
            health_str(&n.health),
            opt(n.head_slot),
            if n.disagrees { "<b>no</b>" } else { "yes" },
            opt(n.last_error.as_deref()),
        );
    }
    h.push_str("</table>\n");

    // Left for the alerting work: it will list open and recent incidents.
    h.push_str("<h2>Recent incidents</h2><section id=\"incidents\"><p class=\"muted\">Incident history is not recorded yet.</p></section>\n");
    h.push_str("<p class=\"muted\">Machine-readable: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a> · <a href=\"/readyz\">/readyz</a></p>\n</body></html>\n");
    h
}

/// Percent-encodes a group name for a query string.
fn url_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_component("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn eth_rounds_gwei_to_micro_ether_with_its_sign() {
        assert_eq!(eth(32_000_000_000), "32.000000");
        assert_eq!(eth(-4_000_499), "-0.004000");
        assert_eq!(eth(1_500), "0.000002");
        assert_eq!(eth(0), "0.000000");
    }
}
