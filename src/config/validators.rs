//! The validator LIST syntax (comma-separated indices, inclusive ranges
//! `a-b`, and `0x` public keys) and `IdSet`, the compact set a LIST reads
//! into.
//!
//! A LIST is kept as it is written, ranges as ranges and keys as keys, from
//! parsing on: `0-4999999` costs one entry, not five million (issue 11: the
//! expanded list peaked at ~550 MB before the daemon started). Every
//! operation on sets (union, intersection, difference, counting) works on
//! the ranges, so no caller has to expand one.

use std::collections::HashSet;

use crate::beacon::client::ValidatorId;
use crate::chain::{Pubkey, ValidatorIndex};

/// Largest range accepted in one `a-b` item: a typo such as `1-10000000000`
/// is more likely than a wish to watch ten billion validators. The whole
/// mainnet registry is about 2.2 million validators.
pub const MAX_RANGE_LEN: u64 = 5_000_000;

/// A set of validator ids, compact: sorted, disjoint, non-adjacent inclusive
/// index ranges, and public keys without repeats in the order first named.
/// An index and a public key of the same validator are two ids here: which
/// key has which index only the chain knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet {
    ranges: Vec<(u64, u64)>,
    pubkeys: Vec<Pubkey>,
}

impl IdSet {
    /// PURE: the set of these ranges (inclusive, `a <= b`; in any order,
    /// overlapping or not) and keys (repeats dropped, first order kept).
    pub fn new(ranges: Vec<(u64, u64)>, pubkeys: Vec<Pubkey>) -> IdSet {
        debug_assert!(ranges.iter().all(|(a, b)| a <= b), "{ranges:?}");
        let mut seen = HashSet::with_capacity(pubkeys.len());
        let pubkeys = pubkeys.into_iter().filter(|k| seen.insert(*k)).collect();
        IdSet {
            ranges: merge(ranges),
            pubkeys,
        }
    }

    /// PURE: the set of `ids`, whatever their order and repetitions. Runs of
    /// consecutive indices cost one entry.
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a ValidatorId>) -> IdSet {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut pubkeys = Vec::new();
        for id in ids {
            match id {
                ValidatorId::Index(i) => match ranges.last_mut() {
                    // Ascending runs extend in place, so a long sorted list
                    // does not cost an entry per index before the merge.
                    Some(last) if last.1.checked_add(1) == Some(i.0) => last.1 = i.0,
                    Some(last) if (last.0..=last.1).contains(&i.0) => {}
                    _ => ranges.push((i.0, i.0)),
                },
                ValidatorId::Pubkey(k) => pubkeys.push(*k),
            }
        }
        IdSet::new(ranges, pubkeys)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.pubkeys.is_empty()
    }

    /// How many ids: indices counted by range (saturating at `u64::MAX`,
    /// which only the whole index space reaches), plus the keys.
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(a, b)| (b - a).saturating_add(1))
            .fold(self.pubkeys.len() as u64, u64::saturating_add)
    }

    /// The one id of a set of one.
    pub fn single(&self) -> Option<ValidatorId> {
        match (self.ranges.as_slice(), self.pubkeys.as_slice()) {
            ([(a, b)], []) if a == b => Some(ValidatorId::Index(ValidatorIndex(*a))),
            ([], [k]) => Some(ValidatorId::Pubkey(*k)),
            _ => None,
        }
    }

    pub fn contains(&self, id: &ValidatorId) -> bool {
        match id {
            ValidatorId::Index(i) => {
                // The first range ending at or after `i` is the only one
                // that can hold it.
                let at = self.ranges.partition_point(|r| r.1 < i.0);
                self.ranges.get(at).is_some_and(|r| r.0 <= i.0)
            }
            ValidatorId::Pubkey(k) => self.pubkeys.contains(k),
        }
    }

    /// PURE: the ids in either set; keys in `self`'s order, then `other`'s.
    pub fn union(&self, other: &IdSet) -> IdSet {
        let mut ranges = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        ranges.extend_from_slice(&self.ranges);
        ranges.extend_from_slice(&other.ranges);
        let mut pubkeys = Vec::with_capacity(self.pubkeys.len() + other.pubkeys.len());
        pubkeys.extend_from_slice(&self.pubkeys);
        pubkeys.extend_from_slice(&other.pubkeys);
        IdSet::new(ranges, pubkeys)
    }

    /// PURE: the ids in both sets; keys in `self`'s order.
    pub fn intersection(&self, other: &IdSet) -> IdSet {
        let mut ranges = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a, b)), Some(&(c, d))) = (self.ranges.get(i), other.ranges.get(j)) {
            let (lo, hi) = (a.max(c), b.min(d));
            if lo <= hi {
                ranges.push((lo, hi));
            }
            // The range that ends first cannot meet anything further on.
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        let theirs: HashSet<&Pubkey> = other.pubkeys.iter().collect();
        IdSet {
            ranges,
            pubkeys: self
                .pubkeys
                .iter()
                .filter(|k| theirs.contains(k))
                .copied()
                .collect(),
        }
    }

    /// PURE: the ids of `self` that are not in `other`; keys in `self`'s
    /// order.
    pub fn difference(&self, other: &IdSet) -> IdSet {
        let mut ranges = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.ranges {
            // What is left of (a, b), from `from` on; None once all is cut.
            let mut from = Some(a);
            while let (Some(f), Some(&(c, d))) = (from, other.ranges.get(j)) {
                if d < f {
                    j += 1;
                    continue;
                }
                if c > b {
                    break;
                }
                if c > f {
                    ranges.push((f, c - 1));
                }
                // `other`'s range may reach into the next of `self`'s:
                // it is kept (no `j += 1`) unless it ends inside this one.
                from = d.checked_add(1).filter(|&n| n <= b);
                if from.is_some() {
                    j += 1;
                }
            }
            if let Some(f) = from {
                ranges.push((f, b));
            }
        }
        let theirs: HashSet<&Pubkey> = other.pubkeys.iter().collect();
        IdSet {
            ranges,
            pubkeys: self
                .pubkeys
                .iter()
                .filter(|k| !theirs.contains(k))
                .copied()
                .collect(),
        }
    }

    /// The index ranges, inclusive, sorted, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn pubkeys(&self) -> &[Pubkey] {
        &self.pubkeys
    }

    /// The highest index named, if any.
    pub fn max_index(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// Indices named, below `end`, ascending.
    pub fn indices_below(&self, end: u64) -> impl Iterator<Item = ValidatorIndex> + '_ {
        self.ranges
            .iter()
            .take_while(move |r| r.0 < end)
            .flat_map(move |&(a, b)| (a..=b.min(end.saturating_sub(1))).map(ValidatorIndex))
    }

    /// The ranges of indices named at or above `end`.
    pub fn ranges_from(&self, end: u64) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .filter(|r| r.1 >= end)
            .map(|&(a, b)| (a.max(end), b))
            .collect()
    }

    /// Every id, indices ascending then keys. EXPANDS the ranges: only for
    /// callers that need each id and have bounded the set first.
    pub fn ids(&self) -> impl Iterator<Item = ValidatorId> + '_ {
        self.ranges
            .iter()
            .flat_map(|&(a, b)| (a..=b).map(|i| ValidatorId::Index(ValidatorIndex(i))))
            .chain(self.pubkeys.iter().map(|k| ValidatorId::Pubkey(*k)))
    }
}

/// The LIST that `parse_validator_list` reads back as the same set: ranges
/// `a-b` (single indices alone), then public keys in full (they are public,
/// and a shortened one cannot be searched for).
impl std::fmt::Display for IdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut std::fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for &(a, b) in &self.ranges {
            sep(f)?;
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        for k in &self.pubkeys {
            sep(f)?;
            f.write_str(&k.to_hex())?;
        }
        Ok(())
    }
}

/// Sorts ranges and merges the overlapping and adjacent ones.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The items of a LIST or file as read, before they become a set.
#[derive(Default)]
struct Items {
    ranges: Vec<(u64, u64)>,
    pubkeys: Vec<Pubkey>,
}

impl Items {
    fn read_list(&mut self, list: &str) -> Result<(), String> {
        for raw in list.split([',', '\n']) {
            let item = raw.trim();
            if !item.is_empty() {
                self.read_item(item)?;
            }
        }
        Ok(())
    }

    fn read_item(&mut self, item: &str) -> Result<(), String> {
        if item.starts_with("0x") || item.starts_with("0X") {
            let pk: Pubkey = item
                .parse()
                .map_err(|e| format!("`{item}` is not a validator public key: {e}"))?;
            self.pubkeys.push(pk);
            return Ok(());
        }
        if let Some((a, b)) = item.split_once('-') {
            let a = parse_index(a.trim(), item)?;
            let b = parse_index(b.trim(), item)?;
            if b < a {
                return Err(format!("range `{item}` ends before it starts"));
            }
            if b - a >= MAX_RANGE_LEN {
                return Err(format!(
                    "range `{item}` is longer than {MAX_RANGE_LEN} validators"
                ));
            }
            self.ranges.push((a, b));
            return Ok(());
        }
        let i = parse_index(item, item)?;
        self.ranges.push((i, i));
        Ok(())
    }

    fn into_set(self) -> IdSet {
        IdSet::new(self.ranges, self.pubkeys)
    }
}

/// Parses a LIST; the error names the offending item.
pub fn parse_validator_list(list: &str) -> Result<IdSet, String> {
    let mut items = Items::default();
    items.read_list(list)?;
    Ok(items.into_set())
}

/// Parses a validators file: one index, range or pubkey per line; `#` starts
/// a comment.
pub fn parse_validator_file(text: &str) -> Result<IdSet, String> {
    let mut items = Items::default();
    for (n, line) in text.lines().enumerate() {
        let item = line.split('#').next().unwrap_or("").trim();
        if item.is_empty() {
            continue;
        }
        items
            .read_list(item)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    Ok(items.into_set())
}

fn parse_index(s: &str, item: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("`{item}` is not a validator index, range or 0x public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(i: u64) -> ValidatorId {
        ValidatorId::Index(ValidatorIndex(i))
    }

    fn set(list: &str) -> IdSet {
        parse_validator_list(list).unwrap()
    }

    fn key(byte: u8) -> String {
        format!("0x{}", hex::encode([byte; 48]))
    }

    #[test]
    fn lists_mix_indices_ranges_and_pubkeys() {
        let pk = key(0xab);
        let got = set(&format!("1, 3-5,{pk},"));
        assert_eq!(got.len(), 5);
        assert_eq!(got.ranges(), &[(1, 1), (3, 5)]);
        assert_eq!(got.pubkeys(), &[pk.parse::<Pubkey>().unwrap()]);
        assert_eq!(
            got.ids().collect::<Vec<_>>()[..4],
            [idx(1), idx(3), idx(4), idx(5)]
        );
    }

    #[test]
    fn bad_items_are_named_in_the_error() {
        for (input, needle) in [
            ("1,x", "`x`"),
            ("5-3", "`5-3` ends before"),
            ("0x1234", "`0x1234` is not a validator public key"),
            ("0-99999999999", "longer than"),
            ("0-5000000", "longer than 5000000"),
        ] {
            let err = parse_validator_list(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn sets_keep_runs_as_ranges_whatever_the_order() {
        let cases: &[(&str, &[(u64, u64)])] = &[
            ("", &[]),
            ("0-4999999", &[(0, 4_999_999)]),
            ("5,1,2,3,9", &[(1, 3), (5, 5), (9, 9)]),
            ("1-3,2-6,7,7,20-21", &[(1, 7), (20, 21)]),
            ("10-12,0-9", &[(0, 12)]),
            ("0-4999999,5000000-9999999", &[(0, 9_999_999)]),
            ("18446744073709551615,0", &[(0, 0), (u64::MAX, u64::MAX)]),
        ];
        for (list, want) in cases {
            assert_eq!(set(list).ranges(), *want, "{list}");
        }
        let pk = key(0xab);
        let s = set(&format!("{pk},1,{pk}"));
        assert_eq!(s.pubkeys().len(), 1);
        assert_eq!(s.ranges(), &[(1, 1)]);
        // From single ids, as the sources give them.
        let ids = [idx(4), idx(2), idx(3), idx(3), idx(9)];
        assert_eq!(IdSet::from_ids(&ids), set("2-4,9"));
    }

    #[test]
    fn counts_go_by_range() {
        let cases: &[(&str, u64)] = &[
            ("", 0),
            ("7", 1),
            ("0-4999999", 5_000_000),
            ("1-3,2-6", 6),
            (&format!("0-9,{},{}", key(1), key(1)), 11),
            (&format!("{},{}", key(1), key(2)), 2),
        ];
        for (list, want) in cases {
            assert_eq!(set(list).len(), *want, "{list}");
            assert_eq!(set(list).is_empty(), *want == 0, "{list}");
        }
        assert_eq!(IdSet::new(vec![(0, u64::MAX)], vec![]).len(), u64::MAX);
    }

    #[test]
    fn membership_and_the_single_id() {
        let s = set(&format!("3-5,9,{}", key(1)));
        let k = |b: u8| ValidatorId::Pubkey(key(b).parse().unwrap());
        for (id, want) in [
            (idx(2), false),
            (idx(3), true),
            (idx(5), true),
            (idx(6), false),
            (idx(9), true),
            (idx(10), false),
            (k(1), true),
            (k(2), false),
        ] {
            assert_eq!(s.contains(&id), want, "{id:?}");
        }
        assert_eq!(set("7").single(), Some(idx(7)));
        assert_eq!(set(&key(1)).single(), Some(k(1)));
        for list in ["", "7-8", "7,9"] {
            assert_eq!(set(list).single(), None, "{list}");
        }
    }

    /// (a, b, a ∪ b, a ∩ b, a \ b), as LISTs.
    const ARITHMETIC: &[(&str, &str, &str, &str, &str)] = &[
        ("", "", "", "", ""),
        ("1-3", "", "1-3", "", "1-3"),
        ("", "1-3", "1-3", "", ""),
        ("1-3", "4-6", "1-6", "", "1-3"),
        ("1-3", "5-6", "1-3,5-6", "", "1-3"),
        ("1-3", "3-6", "1-6", "3", "1-2"),
        ("0-9", "3-4", "0-9", "3-4", "0-2,5-9"),
        ("3-4", "0-9", "0-9", "3-4", ""),
        ("0-9", "0,9", "0-9", "0,9", "1-8"),
        ("0-9,20-29", "5-24", "0-29", "5-9,20-24", "0-4,25-29"),
        (
            "0-9,20-29,40-49",
            "5-44",
            "0-49",
            "5-9,20-29,40-44",
            "0-4,45-49",
        ),
        (
            "0-99",
            "10-19,30-39,50",
            "0-99",
            "10-19,30-39,50",
            "0-9,20-29,40-49,51-99",
        ),
        ("5", "0-4,6-9", "0-9", "", "5"),
        (
            "0-999999,1000000-1999999",
            "1500000-2499999",
            "0-2499999",
            "1500000-1999999",
            "0-1499999",
        ),
        (
            "18446744073709551610-18446744073709551615",
            "18446744073709551615",
            "18446744073709551610-18446744073709551615",
            "18446744073709551615",
            "18446744073709551610-18446744073709551614",
        ),
    ];

    #[test]
    fn union_intersection_and_difference_work_on_ranges() {
        for (a, b, union, inter, diff) in ARITHMETIC {
            let (sa, sb) = (set(a), set(b));
            assert_eq!(sa.union(&sb).to_string(), *union, "{a} ∪ {b}");
            assert_eq!(sa.intersection(&sb).to_string(), *inter, "{a} ∩ {b}");
            assert_eq!(sa.difference(&sb).to_string(), *diff, "{a} \\ {b}");
            // The results are normal forms: reading them back changes
            // nothing, and they agree with counting.
            assert_eq!(sa.intersection(&sb), set(inter), "{a} ∩ {b}");
            assert_eq!(sa.difference(&sb), set(diff), "{a} \\ {b}");
            assert_eq!(
                sa.len(),
                sa.intersection(&sb).len() + sa.difference(&sb).len(),
                "{a}, {b}"
            );
        }
    }

    #[test]
    fn the_arithmetic_agrees_with_sets_of_single_indices() {
        // Small sets expanded, against std's sets: every pair of a few
        // shapes, so a cut at every kind of boundary is compared.
        use std::collections::BTreeSet;
        let shapes = [
            "", "0", "0-3", "2-5", "4", "1,3,5", "0-1,4-5", "3-9", "6-7,9",
        ];
        let expand =
            |s: &IdSet| -> BTreeSet<u64> { s.indices_below(u64::MAX).map(|i| i.0).collect() };
        for a in shapes {
            for b in shapes {
                let (sa, sb) = (set(a), set(b));
                let (ea, eb) = (expand(&sa), expand(&sb));
                let e_inter: BTreeSet<u64> = ea.intersection(&eb).copied().collect();
                let e_diff: BTreeSet<u64> = ea.difference(&eb).copied().collect();
                let e_union: BTreeSet<u64> = ea.union(&eb).copied().collect();
                assert_eq!(expand(&sa.intersection(&sb)), e_inter, "{a} ∩ {b}");
                assert_eq!(expand(&sa.difference(&sb)), e_diff, "{a} \\ {b}");
                assert_eq!(expand(&sa.union(&sb)), e_union, "{a} ∪ {b}");
                assert_eq!(sa.intersection(&sb).len(), e_inter.len() as u64);
            }
        }
    }

    #[test]
    fn keys_take_part_in_the_arithmetic_in_first_order() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let a = set(&format!("1-5,{k2},{k1}"));
        let b = set(&format!("{k3},4-9,{k1}"));
        assert_eq!(a.union(&b).to_string(), format!("1-9,{k2},{k1},{k3}"));
        assert_eq!(a.intersection(&b).to_string(), format!("4-5,{k1}"));
        assert_eq!(a.difference(&b).to_string(), format!("1-3,{k2}"));
        assert_eq!(b.difference(&a).to_string(), format!("6-9,{k3}"));
    }

    #[test]
    fn the_huge_range_is_cut_without_expanding() {
        // Millions of indices in a few operations: expanding would take
        // seconds and hundreds of megabytes, and this runs in microseconds.
        let all = set("0-4999999");
        let chain = IdSet::new(vec![(0, 63)], vec![]);
        assert_eq!(all.difference(&chain).to_string(), "64-4999999");
        assert_eq!(all.difference(&chain).len(), 4_999_936);
        let groups: Vec<IdSet> = (0..10)
            .map(|g| IdSet::new(vec![(g * 1_000_000, g * 1_000_000 + 999_999)], vec![]))
            .collect();
        let union = groups.iter().fold(IdSet::default(), |u, g| u.union(g));
        assert_eq!(union.to_string(), "0-9999999");
        assert_eq!(union.len(), 10_000_000);
        assert!(groups[0].intersection(&groups[1]).is_empty());
        assert_eq!(union.intersection(&all), all);
    }

    #[test]
    fn indices_are_cut_at_the_registry_end() {
        let s = set("0-4999999");
        let first: Vec<ValidatorId> = s.indices_below(4).map(ValidatorId::Index).collect();
        assert_eq!(first, [idx(0), idx(1), idx(2), idx(3)]);
        assert_eq!(s.ranges_from(64), vec![(64, 4_999_999)]);
        let s = set("3,70-80,100");
        let below: Vec<u64> = s.indices_below(75).map(|i| i.0).collect();
        assert_eq!(below, [3, 70, 71, 72, 73, 74]);
        assert_eq!(s.ranges_from(75), vec![(75, 80), (100, 100)]);
        assert_eq!(s.indices_below(0).count(), 0);
        assert!(s.ranges_from(101).is_empty());
    }

    #[test]
    fn a_formatted_list_reads_back_as_the_same_set() {
        let pk = key(0xcd);
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("7", "7"),
            ("3,1,2,2", "1-3"),
            ("1,3-5,9,10", "1,3-5,9-10"),
            (&format!("{pk},4"), &format!("4,{pk}")),
        ];
        for (input, want) in cases {
            let ids = set(input);
            let shown = ids.to_string();
            assert_eq!(&shown, want, "{input}");
            assert_eq!(set(&shown), ids, "{input}");
        }
    }

    #[test]
    fn files_allow_comments_and_report_line_numbers() {
        let got = parse_validator_file("# mine\n7\n\n8-9 # backup\n").unwrap();
        assert_eq!(got, set("7-9"));
        let err = parse_validator_file("7\nseven\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
