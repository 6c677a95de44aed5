//! PURE: the history strips and balance lines of the status page and the
//! validator page, drawn as inline SVG (issue 14). No IO, no scripts, no
//! external assets: the page must work on a host without internet access.
//!
//! A strip is one cell per epoch, oldest on the left, coloured by the
//! attestation verdict (`CellClass`), with a dot above the cell when the
//! validator had a proposal duty in that epoch. A group's strip stacks, per
//! epoch, the shares of its validators in each class. Colours are CSS
//! classes (`STYLE`), so the legend and the cells cannot disagree.

use std::fmt::Write as _;

use crate::analysis::{AttestationStatus, ProposalStatus};
use crate::chain::{Epoch, Gwei};
use crate::store::EpochMark;

/// Pixels per cell and between cells: 64 epochs make a 320 px strip, wide
/// enough to see one missed epoch, narrow enough for a table column.
pub const CELL_WIDTH: u32 = 4;
pub const CELL_PITCH: u32 = 5;
/// Height of the proposal-dot row above the cells, and of the cells.
const MARK_HEIGHT: u32 = 5;
const CELL_HEIGHT: u32 = 12;
pub const STRIP_HEIGHT: u32 = MARK_HEIGHT + CELL_HEIGHT;

/// What one validator-epoch cell shows, worst first among included votes:
/// a wrong target or source costs rewards and a penalty, a wrong head
/// only a reward, a late vote (a canonical block could have carried it
/// earlier) the least.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CellClass {
    /// Included on time with source, target and head right.
    Included,
    Late,
    WrongHead,
    /// Wrong target or (never, once included) wrong source.
    WrongTarget,
    Missed,
    /// The inclusion window is still open.
    Pending,
    /// No node serves the data any more.
    Unknown,
    /// Not active: no duty.
    Inactive,
    /// Nothing stored for this epoch.
    NoData,
}

impl CellClass {
    /// Every class, in the legend's order.
    pub const ALL: [CellClass; 9] = [
        CellClass::Included,
        CellClass::Late,
        CellClass::WrongHead,
        CellClass::WrongTarget,
        CellClass::Missed,
        CellClass::Pending,
        CellClass::Unknown,
        CellClass::Inactive,
        CellClass::NoData,
    ];

    /// The CSS class of the cell.
    pub fn css(self) -> &'static str {
        match self {
            CellClass::Included => "inc",
            CellClass::Late => "late",
            CellClass::WrongHead => "head",
            CellClass::WrongTarget => "tgt",
            CellClass::Missed => "miss",
            CellClass::Pending => "pend",
            CellClass::Unknown => "unk",
            CellClass::Inactive => "off",
            CellClass::NoData => "none",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CellClass::Included => "included",
            CellClass::Late => "included late",
            CellClass::WrongHead => "wrong head",
            CellClass::WrongTarget => "wrong target/source",
            CellClass::Missed => "missed",
            CellClass::Pending => "pending",
            CellClass::Unknown => "unknown",
            CellClass::Inactive => "inactive",
            CellClass::NoData => "no data",
        }
    }

    /// Counts against the validator: shown with a tooltip on the status
    /// page, where tooltips of healthy cells would only weigh the page.
    fn noteworthy(self) -> bool {
        !matches!(self, CellClass::Included | CellClass::NoData)
    }
}

/// The class of one stored verdict (`None`: no row for that epoch).
pub fn classify(mark: Option<&EpochMark>) -> CellClass {
    let Some(m) = mark else {
        return CellClass::NoData;
    };
    match m.status {
        AttestationStatus::Missed => CellClass::Missed,
        AttestationStatus::Pending => CellClass::Pending,
        AttestationStatus::Unknown => CellClass::Unknown,
        AttestationStatus::Inactive => CellClass::Inactive,
        AttestationStatus::Included => {
            if m.target_correct == Some(false) || m.source_correct == Some(false) {
                CellClass::WrongTarget
            } else if m.head_correct == Some(false) {
                CellClass::WrongHead
            } else if m.late == Some(true) {
                CellClass::Late
            } else {
                CellClass::Included
            }
        }
    }
}

/// CSS class of a proposal dot.
pub fn proposal_css(s: ProposalStatus) -> &'static str {
    match s {
        ProposalStatus::Proposed => "pp",
        ProposalStatus::Missed => "pm",
        ProposalStatus::Orphaned => "po",
        ProposalStatus::Unknown => "pu",
    }
}

/// One epoch of one validator's strip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub epoch: Epoch,
    pub class: CellClass,
    /// The worst proposal of the epoch, if it had a proposal duty.
    pub proposal: Option<ProposalStatus>,
    pub inclusion_delay: Option<u64>,
    pub balance: Option<Gwei>,
}

impl Cell {
    pub fn empty(epoch: Epoch) -> Cell {
        Cell {
            epoch,
            class: CellClass::NoData,
            proposal: None,
            inclusion_delay: None,
            balance: None,
        }
    }
}

/// Worst first: a missed proposal outweighs a proposed one in the same
/// epoch (two duties in one epoch happen on small networks).
pub fn worse_proposal(a: Option<ProposalStatus>, b: ProposalStatus) -> ProposalStatus {
    let rank = |s: ProposalStatus| match s {
        ProposalStatus::Proposed => 0,
        ProposalStatus::Unknown => 1,
        ProposalStatus::Orphaned => 2,
        ProposalStatus::Missed => 3,
    };
    match a {
        Some(a) if rank(a) >= rank(b) => a,
        _ => b,
    }
}

fn cell_title(c: &Cell) -> String {
    let mut t = format!("epoch {}: {}", c.epoch.0, c.class.label());
    if let Some(d) = c.inclusion_delay {
        let _ = write!(t, ", delay {d}");
    }
    if let Some(p) = c.proposal {
        let _ = write!(t, "; proposal {}", p.as_str());
    }
    t
}

/// A validator's strip: one `<rect>` per cell (so a strip of N epochs has
/// N rects), a `<circle>` per proposal. `all_titles`: a tooltip on every
/// cell (the validator page) or only on noteworthy ones (the status page,
/// a thousand rows of them).
pub fn strip(out: &mut String, cells: &[Cell], all_titles: bool) {
    let width = (cells.len() as u32 * CELL_PITCH).max(1);
    let _ = write!(
        out,
        "<svg class=\"strip\" width=\"{width}\" height=\"{STRIP_HEIGHT}\" role=\"img\">"
    );
    for (i, c) in cells.iter().enumerate() {
        let x = i as u32 * CELL_PITCH;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{MARK_HEIGHT}\" width=\"{CELL_WIDTH}\" height=\"{CELL_HEIGHT}\" class=\"{}\"",
            c.class.css()
        );
        if all_titles || c.class.noteworthy() || c.proposal.is_some() {
            let _ = write!(out, "><title>{}</title></rect>", cell_title(c));
        } else {
            out.push_str("/>");
        }
        if let Some(p) = c.proposal {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"2\" r=\"2\" class=\"{}\"><title>epoch {}: proposal {}</title></circle>",
                x + CELL_WIDTH / 2,
                proposal_css(p),
                c.epoch.0,
                p.as_str()
            );
        }
    }
    out.push_str("</svg>");
}

/// One epoch of a group's strip: how many of its validators fell in each
/// class, and its proposals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCell {
    pub epoch: Epoch,
    /// Indexed like `CellClass::ALL`.
    pub counts: [u32; 9],
    pub proposals: [u32; 4],
}

impl GroupCell {
    pub fn new(epoch: Epoch) -> GroupCell {
        GroupCell {
            epoch,
            ..GroupCell::default()
        }
    }

    pub fn add(&mut self, c: &Cell) {
        if let Some(i) = CellClass::ALL.iter().position(|k| *k == c.class) {
            self.counts[i] += 1;
        }
        if let Some(p) = c.proposal {
            let i = match p {
                ProposalStatus::Proposed => 0,
                ProposalStatus::Missed => 1,
                ProposalStatus::Orphaned => 2,
                ProposalStatus::Unknown => 3,
            };
            self.proposals[i] += 1;
        }
    }

    /// The worst proposal outcome of the epoch, for the dot.
    fn proposal(&self) -> Option<ProposalStatus> {
        [
            (1, ProposalStatus::Missed),
            (2, ProposalStatus::Orphaned),
            (3, ProposalStatus::Unknown),
            (0, ProposalStatus::Proposed),
        ]
        .into_iter()
        .find(|(i, _)| self.proposals[*i] > 0)
        .map(|(_, s)| s)
    }

    fn title(&self) -> String {
        let mut t = format!("epoch {}:", self.epoch.0);
        let mut first = true;
        for (k, n) in CellClass::ALL.iter().zip(self.counts) {
            if n > 0 {
                let _ = write!(t, "{} {n} {}", if first { "" } else { "," }, k.label());
                first = false;
            }
        }
        for (name, n) in ["proposed", "missed", "orphaned", "unknown"]
            .iter()
            .zip(self.proposals)
        {
            if n > 0 {
                let _ = write!(t, "; {n} proposal(s) {name}");
            }
        }
        t
    }
}

/// A group's strip: per epoch a `<g>` whose stacked rects are the shares
/// of the classes (worst at the top), with a tooltip that counts them.
pub fn group_strip(out: &mut String, cells: &[GroupCell]) {
    let width = (cells.len() as u32 * CELL_PITCH).max(1);
    let _ = write!(
        out,
        "<svg class=\"strip\" width=\"{width}\" height=\"{STRIP_HEIGHT}\" role=\"img\">"
    );
    for (i, c) in cells.iter().enumerate() {
        let x = i as u32 * CELL_PITCH;
        let total: u32 = c.counts.iter().sum();
        let _ = write!(out, "<g><title>{}</title>", c.title());
        if total == 0 {
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"{MARK_HEIGHT}\" width=\"{CELL_WIDTH}\" height=\"{CELL_HEIGHT}\" class=\"none\"/>"
            );
        } else {
            // Worst class on top; each share at least one pixel, so one
            // missed vote among a thousand still shows; the best class
            // (at the bottom) takes what is left.
            let mut shown: Vec<CellClass> = CellClass::ALL
                .iter()
                .zip(c.counts)
                .filter(|(_, n)| *n > 0)
                .map(|(k, _)| *k)
                .collect();
            shown.sort_by_key(|k| std::cmp::Reverse(severity(*k)));
            let bottom = MARK_HEIGHT + CELL_HEIGHT;
            let mut y = MARK_HEIGHT;
            for (j, k) in shown.iter().enumerate() {
                let left = bottom.saturating_sub(y);
                if left == 0 {
                    break;
                }
                let after = (shown.len() - j - 1) as u32;
                let h = if after == 0 {
                    left
                } else {
                    let n = c.counts[*k as usize] as u64;
                    let share = (n * CELL_HEIGHT as u64).div_ceil(total as u64) as u32;
                    share.clamp(1, left.saturating_sub(after).max(1))
                };
                let _ = write!(
                    out,
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL_WIDTH}\" height=\"{h}\" class=\"{}\"/>",
                    k.css()
                );
                y += h;
            }
        }
        if let Some(p) = c.proposal() {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"2\" r=\"2\" class=\"{}\"/>",
                x + CELL_WIDTH / 2,
                proposal_css(p)
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
}

/// How bad a class is, for stacking the worst on top.
fn severity(k: CellClass) -> u8 {
    match k {
        CellClass::Missed => 8,
        CellClass::WrongTarget => 7,
        CellClass::Unknown => 6,
        CellClass::WrongHead => 5,
        CellClass::Late => 4,
        CellClass::Pending => 3,
        CellClass::Inactive => 2,
        CellClass::NoData => 1,
        CellClass::Included => 0,
    }
}

/// A line through `values` (one per epoch, left to right; `None` is a gap
/// the line skips), scaled between their minimum and maximum. `title`
/// says what the line is; a flat or empty series draws a flat line.
pub fn sparkline(out: &mut String, values: &[Option<i128>], width: u32, title: &str) {
    let height = STRIP_HEIGHT;
    let _ = write!(
        out,
        "<svg class=\"spark\" width=\"{width}\" height=\"{height}\" role=\"img\"><title>{}</title>",
        super::page::escape(title)
    );
    let known: Vec<(usize, i128)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if let (Some(min), Some(max)) = (
        known.iter().map(|(_, v)| *v).min(),
        known.iter().map(|(_, v)| *v).max(),
    ) {
        let n = values.len().max(2) - 1;
        let span = (max - min).max(1) as f64;
        let inner = (height - 2) as f64;
        out.push_str("<polyline points=\"");
        for (k, (i, v)) in known.iter().enumerate() {
            let x = *i as f64 * (width - 1) as f64 / n as f64;
            let y = if max == min {
                inner / 2.0 + 1.0
            } else {
                1.0 + inner - (*v - min) as f64 / span * inner
            };
            let _ = write!(out, "{}{x:.1},{y:.1}", if k == 0 { "" } else { " " });
        }
        out.push_str("\"/>");
    }
    out.push_str("</svg>");
}

/// Fill colours of the classes and dots; part of the page's style.
pub const STYLE: &str = ".strip .inc{fill:#2e7d32}.strip .late{fill:#9ccc65}\
.strip .head{fill:#fbc02d}.strip .tgt{fill:#ef6c00}.strip .miss{fill:#c62828}\
.strip .pend{fill:#90a4ae}.strip .unk{fill:#9e9e9e}.strip .off{fill:#d7ccc8}\
.strip .none{fill:#eeeeee}.strip .pp{fill:#1565c0}.strip .pm{fill:#c62828}\
.strip .po{fill:#6a1b9a}.strip .pu{fill:#9e9e9e}\
.spark polyline{fill:none;stroke:#1565c0;stroke-width:1.2}\
svg.strip,svg.spark{vertical-align:middle}";

/// The legend: one swatch per class and per proposal outcome.
pub fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for k in CellClass::ALL {
        let _ = write!(
            out,
            "<svg class=\"strip\" width=\"{CELL_WIDTH}\" height=\"{CELL_HEIGHT}\"><rect width=\"{CELL_WIDTH}\" height=\"{CELL_HEIGHT}\" class=\"{}\"/></svg> {} &nbsp;",
            k.css(),
            k.label()
        );
    }
    for p in [
        ProposalStatus::Proposed,
        ProposalStatus::Missed,
        ProposalStatus::Orphaned,
    ] {
        let _ = write!(
            out,
            "<svg class=\"strip\" width=\"6\" height=\"6\"><circle cx=\"3\" cy=\"3\" r=\"3\" class=\"{}\"/></svg> proposal {} &nbsp;",
            proposal_css(p),
            p.as_str()
        );
    }
    out.push_str("</p>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ValidatorIndex;

    fn mark(status: AttestationStatus) -> EpochMark {
        EpochMark {
            validator_index: ValidatorIndex(1),
            epoch: Epoch(10),
            status,
            inclusion_delay: None,
            late: Some(false),
            source_correct: Some(true),
            target_correct: Some(true),
            head_correct: Some(true),
            balance: None,
        }
    }

    #[test]
    fn each_verdict_gets_its_class_worst_defect_first() {
        use AttestationStatus::*;
        let with = |f: fn(&mut EpochMark)| {
            let mut m = mark(Included);
            f(&mut m);
            m
        };
        let cases: Vec<(&str, Option<EpochMark>, CellClass)> = vec![
            ("no row", None, CellClass::NoData),
            (
                "on time and right",
                Some(mark(Included)),
                CellClass::Included,
            ),
            ("late", Some(with(|m| m.late = Some(true))), CellClass::Late),
            (
                "wrong head outweighs late",
                Some(with(|m| {
                    m.late = Some(true);
                    m.head_correct = Some(false)
                })),
                CellClass::WrongHead,
            ),
            (
                "wrong target outweighs wrong head",
                Some(with(|m| {
                    m.head_correct = Some(false);
                    m.target_correct = Some(false)
                })),
                CellClass::WrongTarget,
            ),
            (
                "wrong source counts as wrong target",
                Some(with(|m| m.source_correct = Some(false))),
                CellClass::WrongTarget,
            ),
            (
                "unknown correctness is not a defect",
                Some(with(|m| {
                    m.head_correct = None;
                    m.late = None
                })),
                CellClass::Included,
            ),
            ("missed", Some(mark(Missed)), CellClass::Missed),
            ("pending", Some(mark(Pending)), CellClass::Pending),
            ("unknown", Some(mark(Unknown)), CellClass::Unknown),
            ("inactive", Some(mark(Inactive)), CellClass::Inactive),
        ];
        for (name, m, want) in cases {
            assert_eq!(classify(m.as_ref()), want, "{name}");
        }
    }

    #[test]
    fn a_strip_has_one_rect_per_epoch_and_a_dot_per_proposal() {
        let mut cells: Vec<Cell> = (0..64).map(|e| Cell::empty(Epoch(e))).collect();
        cells[3].class = CellClass::Missed;
        cells[5].proposal = Some(ProposalStatus::Missed);
        let mut out = String::new();
        strip(&mut out, &cells, false);
        assert_eq!(out.matches("<rect").count(), 64);
        assert_eq!(out.matches("<circle").count(), 1);
        assert!(
            out.contains("class=\"miss\"><title>epoch 3: missed</title>"),
            "{out}"
        );
        assert!(out.contains("class=\"pm\""));
        // Healthy cells carry no tooltip on the status page.
        assert_eq!(out.matches("<title>").count(), 3);
    }

    #[test]
    fn a_group_strip_shows_one_miss_among_a_thousand() {
        let mut g = GroupCell::new(Epoch(7));
        for _ in 0..999 {
            g.add(&Cell {
                class: CellClass::Included,
                ..Cell::empty(Epoch(7))
            });
        }
        g.add(&Cell {
            class: CellClass::Missed,
            ..Cell::empty(Epoch(7))
        });
        let mut out = String::new();
        group_strip(&mut out, &[g]);
        assert!(out.contains("class=\"miss\""), "{out}");
        assert!(out.contains("class=\"inc\""));
        assert!(out.contains("epoch 7: 999 included, 1 missed"), "{out}");
        assert_eq!(out.matches("<g>").count(), 1);
    }

    #[test]
    fn a_sparkline_skips_gaps_and_survives_flat_and_empty_series() {
        let mut out = String::new();
        sparkline(&mut out, &[Some(5), None, Some(7)], 100, "b");
        assert!(out.contains("points=\"0.0,16.0 99.0,1.0\""), "{out}");
        out.clear();
        sparkline(&mut out, &[Some(5), Some(5)], 100, "b");
        assert!(out.contains("<polyline"));
        out.clear();
        sparkline(&mut out, &[None, None], 100, "<b>");
        assert!(!out.contains("<polyline"));
        assert!(out.contains("&lt;b&gt;"));
        out.clear();
        sparkline(&mut out, &[], 100, "b");
        assert!(!out.contains("<polyline"));
    }
}
