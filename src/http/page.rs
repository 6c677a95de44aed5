//! `GET /`: the status page for people. Server-rendered HTML with inline
//! style, no scripts and no external assets (it must work on a host
//! without internet access), refreshed by a meta tag.
//!
//! Same data and status code as `/status`; it only adds presentation.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::status::{current_view, http_code, StatusQuery, StatusView};
use super::HttpState;
use crate::status::{health_str, State as BoardState};

/// Seconds between reloads: about two and a half mainnet slots, so a new
/// verdict shows within half a minute without hammering the server.
pub const REFRESH_SECONDS: u32 = 30;

/// Validators listed on the page; the rest are counted and left to
/// `/status` (a page of 100k rows helps nobody). Failing ones come first,
/// so they are never the ones cut.
pub const PAGE_VALIDATOR_ROWS: usize = 500;

pub fn router() -> Router<HttpState> {
    Router::new().route("/", get(page))
}

async fn page(State(s): State<HttpState>, Query(q): Query<StatusQuery>) -> Response {
    match current_view(&s, q.group.as_deref()) {
        Ok(view) => (http_code(view.state), Html(render_page(&view))).into_response(),
        Err(e) => e.into_response(),
    }
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;font-size:.9rem}\
th{background:#f3f3f3}.badge{padding:.1rem .5rem;border-radius:.3rem;color:#fff;font-weight:600}\
.ok{background:#2e7d32}.degraded{background:#ef6c00}.failing{background:#c62828}\
.muted{color:#777}code{font-size:.85rem}";

/// PURE: the page for one view.
pub fn render_page(v: &StatusView) -> String {
    let mut h = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>valwatch — {}</title><style>{STYLE}</style></head><body>\n",
        v.state.as_str()
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
    if !v.reasons.is_empty() {
        h.push_str("<h2>Why</h2><ul>\n");
        for f in &v.reasons {
            let _ = writeln!(h, "<li>{} {}</li>", badge(f.state), escape(&f.message));
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2>Groups</h2><table><tr><th>Group</th><th>State</th><th>Validators</th><th>Failing</th><th>Degraded</th><th>Expected offline</th></tr>\n");
    for g in &v.groups {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"/?group={0}\">{1}</a></td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td></tr>",
            escape(&url_component(&g.name)),
            escape(&g.name),
            badge(g.state),
            g.validators,
            g.failing,
            g.degraded,
            g.expected_offline
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Validators</h2><table><tr><th>Index</th><th>Group</th><th>State</th><th>Health (why)</th><th>Attestation</th><th>Missed in a row</th><th>Balance (Gwei)</th><th>Status</th><th>Slashed</th><th>Last proposal</th><th>Next proposal</th><th>Sync committee</th></tr>\n");
    for val in v.validators.iter().take(PAGE_VALIDATOR_ROWS) {
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
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            x.index,
            escape(&x.group),
            state,
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
    if v.validators.len() > PAGE_VALIDATOR_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"muted\">{} more validators not listed; see <a href=\"/status\">/status</a>.</p>",
            v.validators.len() - PAGE_VALIDATOR_ROWS
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
}
