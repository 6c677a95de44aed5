//! `valwatch report`: the stored history as a table, JSON or CSV.

use std::fmt::Write as _;

use crate::beacon::client::ValidatorId;
use crate::chain::Epoch;
use crate::cli::{ReportArgs, ReportFormat};
use crate::config::parse_validator_list;
use crate::store::{Report, ReportQuery};

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let url = crate::app::database_url(
        args.config.config.as_deref(),
        args.database_url.clone(),
        args.data_dir.as_ref().map(|p| p.display().to_string()),
    )?;
    let store = crate::app::open_store(&url).await?;
    let validators = match &args.validators {
        None => None,
        Some(list) => Some(
            parse_validator_list(list)
                .map_err(|e| anyhow::anyhow!("--validators: {e}"))?
                .into_iter()
                .map(|id| match id {
                    ValidatorId::Index(i) => Ok(i),
                    ValidatorId::Pubkey(_) => Err(anyhow::anyhow!(
                        "--validators: report takes indices, not public keys"
                    )),
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
    };
    let query = ReportQuery {
        validators,
        from_epoch: args.from_epoch.map(Epoch),
        to_epoch: args.to_epoch.map(Epoch),
    };
    let out = match args.format {
        ReportFormat::Json => serde_json::to_string_pretty(&store.report(&query).await?)?,
        ReportFormat::Csv => to_csv(&store.report(&query).await?),
        ReportFormat::Table => to_table(&store.summary(&query).await?),
    };
    println!("{out}");
    Ok(())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

/// One CSV section per kind of record, each with its header row.
pub fn to_csv(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("kind,validator_index,epoch,status,inclusion_slot,inclusion_delay,source_correct,target_correct,head_correct\n");
    for a in &r.attestations {
        let _ = writeln!(
            s,
            "attestation,{},{},{},{},{},{},{},{}",
            a.validator_index,
            a.epoch,
            a.status.as_str(),
            opt(&a.inclusion_slot),
            opt(&a.inclusion_delay),
            opt(&a.source_correct),
            opt(&a.target_correct),
            opt(&a.head_correct)
        );
    }
    s.push_str("\nkind,slot,validator_index,status,block_root\n");
    for p in &r.proposals {
        let _ = writeln!(
            s,
            "proposal,{},{},{},{}",
            p.slot,
            p.validator_index,
            p.status.as_str(),
            opt(&p.block_root)
        );
    }
    s.push_str("\nkind,validator_index,epoch,participated,missed\n");
    for y in &r.sync {
        let _ = writeln!(
            s,
            "sync,{},{},{},{}",
            y.validator_index, y.epoch, y.participated, y.missed
        );
    }
    s.push_str("\nkind,validator_index,epoch,balance_gwei,effective_balance_gwei,status,slashed\n");
    for b in &r.balances {
        let _ = writeln!(
            s,
            "balance,{},{},{},{},{},{}",
            b.validator_index,
            b.epoch,
            b.balance,
            b.effective_balance,
            b.status.as_str(),
            b.slashed
        );
    }
    s
}

fn rate(r: Option<f64>) -> String {
    r.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// One line per validator: what an operator reads first.
pub fn to_table(rows: &[crate::store::ValidatorSummary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>9} {:>8} {:>6} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>15} {:>9}",
        "validator",
        "included",
        "missed",
        "pending",
        "unknown",
        "avg_delay",
        "head",
        "target",
        "source",
        "proposals p/m/o",
        "sync"
    );
    for r in rows {
        let sync_total = r.sync_participated + r.sync_missed;
        let sync = if sync_total == 0 {
            "-".to_string()
        } else {
            format!(
                "{:.1}%",
                r.sync_participated as f64 * 100.0 / sync_total as f64
            )
        };
        let _ = writeln!(
            s,
            "{:>9} {:>8} {:>6} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>15} {:>9}",
            r.validator_index,
            r.attestations_included,
            r.attestations_missed,
            r.attestations_pending,
            r.attestations_unknown,
            r.average_inclusion_delay
                .map(|d| format!("{d:.2}"))
                .unwrap_or_else(|| "-".into()),
            rate(r.head_correct_rate),
            rate(r.target_correct_rate),
            rate(r.source_correct_rate),
            format!(
                "{}/{}/{}",
                r.proposals_proposed, r.proposals_missed, r.proposals_orphaned
            ),
            sync
        );
    }
    if rows.is_empty() {
        s.push_str("(no history stored for this selection)\n");
    }
    s
}
