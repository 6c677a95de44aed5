//! `valwatch report`: the stored history as a table, JSON or CSV.
//!
//! Reads only: the database is opened read-only and must already hold the
//! schema this binary knows (`Store::open_read_only`), so a mistyped path
//! or a database of another valwatch version is refused, never created or
//! upgraded. Which database was read goes to stderr; stdout carries only
//! the report, for machines.

use std::fmt::Write as _;

use crate::beacon::client::ValidatorId;
use crate::chain::{Epoch, ValidatorIndex};
use crate::cli::{ReportArgs, ReportFormat, ReportKind};
use crate::config::{parse_validator_list, IdSet};
use crate::store::{Report, ReportQuery};

/// Up to this many indices travel to the database as the query's list: a
/// small filter on a long history reads only its rows. A larger filter
/// (`0-4999999`) would be millions of ids in one parameter, so the rows
/// are read without it and kept here by range (the database holds only
/// the validators that were watched).
const INDICES_IN_QUERY: u64 = 100_000;

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let url = crate::app::database_url(
        args.config.config.as_deref(),
        args.database_url.clone(),
        args.data_dir.as_ref().map(|p| p.display().to_string()),
    )?;
    if args.kind.is_some() && args.format != ReportFormat::Csv {
        anyhow::bail!(
            "--kind selects the table of --format csv; json has every kind, table sums them up"
        );
    }
    // Said before opening, so that a refusal is read next to its path.
    eprintln!("reading {}", crate::store::redact_url(&url));
    let store = crate::store::Store::open_read_only(&url).await?;
    let filter = match &args.validators {
        None => None,
        Some(list) => {
            let set =
                parse_validator_list(list).map_err(|e| anyhow::anyhow!("--validators: {e}"))?;
            if !set.pubkeys().is_empty() {
                anyhow::bail!("--validators: report takes indices, not public keys");
            }
            Some(set)
        }
    };
    let (listed, kept_here) = match filter {
        Some(set) if set.len() > INDICES_IN_QUERY => (None, Some(set)),
        small => (small, None),
    };
    let query = ReportQuery {
        validators: listed.map(|set| {
            set.ids()
                .filter_map(|id| match id {
                    ValidatorId::Index(i) => Some(i),
                    ValidatorId::Pubkey(_) => None,
                })
                .collect()
        }),
        from_epoch: args.from_epoch.map(Epoch),
        to_epoch: args.to_epoch.map(Epoch),
    };
    let report = || async {
        let mut r = store.report(&query).await?;
        if let Some(set) = &kept_here {
            keep_only(&mut r, set);
        }
        anyhow::Ok(r)
    };
    let out = match args.format {
        ReportFormat::Json => serde_json::to_string_pretty(&report().await?)?,
        ReportFormat::Csv => {
            // clap requires it with csv; this covers callers without clap.
            let kind = args.kind.ok_or_else(|| {
                anyhow::anyhow!("--format csv needs --kind attestations|proposals|sync|balances|rewards|network")
            })?;
            to_csv(&report().await?, kind)
        }
        ReportFormat::Table => {
            let mut rows = store.summary(&query).await?;
            if let Some(set) = &kept_here {
                rows.retain(|r| has(set, r.validator_index));
            }
            to_table(&rows)
        }
    };
    if out.ends_with('\n') {
        print!("{out}");
    } else {
        println!("{out}");
    }
    Ok(())
}

fn has(set: &IdSet, v: ValidatorIndex) -> bool {
    set.contains(&ValidatorId::Index(v))
}

/// PURE: keeps the records of the validators in `set` (the network
/// baseline belongs to no validator and stays).
fn keep_only(r: &mut Report, set: &IdSet) {
    r.attestations.retain(|x| has(set, x.validator_index));
    r.proposals
        .retain(|x| x.validator_index.is_some_and(|v| has(set, v)));
    r.sync.retain(|x| has(set, x.validator_index));
    r.balances.retain(|x| has(set, x.validator_index));
    r.rewards.retain(|x| has(set, x.validator_index));
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

/// One CSV table: the records of `kind`, a header row and one row each;
/// unknown values are empty cells.
pub fn to_csv(r: &Report, kind: ReportKind) -> String {
    let mut s = String::new();
    match kind {
        ReportKind::Attestations => {
            s.push_str("validator_index,epoch,status,inclusion_slot,inclusion_delay,source_correct,target_correct,head_correct\n");
            for a in &r.attestations {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{}",
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
        }
        ReportKind::Proposals => {
            s.push_str("slot,validator_index,status,block_root\n");
            for p in &r.proposals {
                let _ = writeln!(
                    s,
                    "{},{},{},{}",
                    p.slot,
                    opt(&p.validator_index),
                    p.status.as_str(),
                    opt(&p.block_root)
                );
            }
        }
        ReportKind::Sync => {
            s.push_str("validator_index,epoch,participated,missed\n");
            for y in &r.sync {
                let _ = writeln!(
                    s,
                    "{},{},{},{}",
                    y.validator_index, y.epoch, y.participated, y.missed
                );
            }
        }
        ReportKind::Rewards => {
            s.push_str("validator_index,epoch,attestation_reward_gwei,attestation_ideal_gwei,sync_reward_gwei,proposer_reward_gwei,missed_gwei,estimated\n");
            for w in &r.rewards {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{}",
                    w.validator_index,
                    w.epoch,
                    opt(&w.attestation_reward_gwei),
                    opt(&w.attestation_ideal_gwei),
                    opt(&w.sync_reward_gwei),
                    opt(&w.proposer_reward_gwei),
                    opt(&w.missed_gwei),
                    w.estimated
                );
            }
        }
        ReportKind::Network => {
            s.push_str("epoch,participation,empty_slots,slots,duties,included\n");
            for n in &r.network {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{}",
                    n.epoch,
                    n.participation()
                        .map(|p| format!("{p:.4}"))
                        .unwrap_or_default(),
                    n.empty_slots,
                    n.slots,
                    n.duties,
                    n.included
                );
            }
        }
        ReportKind::Balances => {
            s.push_str(
                "validator_index,epoch,balance_gwei,effective_balance_gwei,status,slashed\n",
            );
            for b in &r.balances {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{}",
                    b.validator_index,
                    b.epoch,
                    b.balance,
                    b.effective_balance,
                    b.status.as_str(),
                    b.slashed
                );
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{AttestationStatus, AttestationVerdict, ProposalStatus, ProposalVerdict};
    use crate::chain::{Epoch, Slot, ValidatorIndex};
    use crate::store::ValidatorSummary;

    fn summary(v: u64) -> ValidatorSummary {
        ValidatorSummary {
            validator_index: ValidatorIndex(v),
            attestations_included: 9,
            attestations_missed: 1,
            attestations_pending: 0,
            attestations_unknown: 0,
            attestations_inactive: 0,
            average_inclusion_delay: Some(1.25),
            head_correct_rate: Some(0.5),
            target_correct_rate: Some(1.0),
            source_correct_rate: None,
            proposals_proposed: 2,
            proposals_missed: 1,
            proposals_orphaned: 0,
            proposals_unknown: 0,
            sync_participated: 3,
            sync_missed: 1,
        }
    }

    #[test]
    fn the_table_shows_one_line_per_validator_with_rates() {
        let t = to_table(&[summary(7)]);
        let line = t.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            vec!["7", "9", "1", "0", "0", "1.25", "50.0%", "100.0%", "-", "2/1/0", "75.0%"]
        );
        assert!(to_table(&[]).contains("no history"));
    }

    #[test]
    fn csv_is_one_table_per_kind_with_empty_cells_for_unknowns() {
        let report = Report {
            attestations: vec![AttestationVerdict {
                validator_index: ValidatorIndex(3),
                epoch: Epoch(4),
                status: AttestationStatus::Missed,
                duty_slot: Some(Slot(130)),
                inclusion_slot: None,
                inclusion_delay: None,
                late: None,
                source_correct: None,
                target_correct: None,
                head_correct: None,
                reason: None,
            }],
            proposals: vec![ProposalVerdict {
                slot: Slot(131),
                validator_index: Some(ValidatorIndex(3)),
                status: ProposalStatus::Missed,
                block_root: None,
                reason: None,
            }],
            rewards: vec![crate::analysis::rewards::RewardRecord {
                validator_index: ValidatorIndex(3),
                epoch: Epoch(4),
                attestation_reward_gwei: Some(-85),
                attestation_ideal_gwei: Some(100),
                sync_reward_gwei: None,
                proposer_reward_gwei: None,
                missed_gwei: Some(185),
                estimated: false,
            }],
            network: vec![crate::analysis::network::NetworkRecord {
                epoch: Epoch(4),
                duties: 64,
                included: 48,
                empty_slots: 2,
                slots: 8,
            }],
            ..Report::default()
        };
        let cases = [
            (
                ReportKind::Rewards,
                "validator_index,epoch,attestation_reward_gwei,attestation_ideal_gwei,sync_reward_gwei,proposer_reward_gwei,missed_gwei,estimated\n3,4,-85,100,,,185,false\n",
            ),
            (
                ReportKind::Network,
                "epoch,participation,empty_slots,slots,duties,included\n4,0.7500,2,8,64,48\n",
            ),
            (
                ReportKind::Attestations,
                "validator_index,epoch,status,inclusion_slot,inclusion_delay,source_correct,target_correct,head_correct\n3,4,missed,,,,,\n",
            ),
            (
                ReportKind::Proposals,
                "slot,validator_index,status,block_root\n131,3,missed,\n",
            ),
            (ReportKind::Sync, "validator_index,epoch,participated,missed\n"),
            (
                ReportKind::Balances,
                "validator_index,epoch,balance_gwei,effective_balance_gwei,status,slashed\n",
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(to_csv(&report, kind), want, "{kind:?}");
        }
    }

    #[test]
    fn a_filter_kept_here_keeps_its_validators_rows_and_the_network() {
        let att = |v: u64| AttestationVerdict {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(4),
            status: AttestationStatus::Missed,
            duty_slot: None,
            inclusion_slot: None,
            inclusion_delay: None,
            late: None,
            source_correct: None,
            target_correct: None,
            head_correct: None,
            reason: None,
        };
        let prop = |v: u64| ProposalVerdict {
            slot: Slot(131),
            validator_index: Some(ValidatorIndex(v)),
            status: ProposalStatus::Missed,
            block_root: None,
            reason: None,
        };
        let mut report = Report {
            attestations: [0, 5, 6, 4_999_999, 5_000_000].map(att).to_vec(),
            proposals: [6, 7].map(prop).to_vec(),
            network: vec![crate::analysis::network::NetworkRecord {
                epoch: Epoch(4),
                duties: 64,
                included: 48,
                empty_slots: 2,
                slots: 8,
            }],
            ..Report::default()
        };
        let set = parse_validator_list("0-5,7-4999999").unwrap();
        assert!(
            set.len() > INDICES_IN_QUERY,
            "the case of a filter kept here"
        );
        keep_only(&mut report, &set);
        let kept: Vec<u64> = report
            .attestations
            .iter()
            .map(|a| a.validator_index.0)
            .collect();
        assert_eq!(kept, [0, 5, 4_999_999]);
        assert_eq!(report.proposals.len(), 1);
        assert_eq!(report.proposals[0].validator_index, Some(ValidatorIndex(7)));
        assert_eq!(report.network.len(), 1, "belongs to no validator");
    }
}
