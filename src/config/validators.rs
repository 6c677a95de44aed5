//! The validator LIST syntax: comma-separated indices, inclusive ranges
//! `a-b`, and `0x` public keys.

use crate::beacon::client::ValidatorId;
use crate::chain::{Pubkey, ValidatorIndex};

/// Largest range accepted in one `a-b` item: a typo such as `1-10000000000`
/// must not allocate billions of entries. The whole mainnet registry is
/// about 2.2 million validators.
pub const MAX_RANGE_LEN: u64 = 5_000_000;

/// Parses a LIST; the error names the offending item.
pub fn parse_validator_list(list: &str) -> Result<Vec<ValidatorId>, String> {
    let mut out = Vec::new();
    for raw in list.split([',', '\n']) {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        out.extend(parse_item(item)?);
    }
    Ok(out)
}

/// Parses a validators file: one index, range or pubkey per line; `#` starts
/// a comment.
pub fn parse_validator_file(text: &str) -> Result<Vec<ValidatorId>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let item = line.split('#').next().unwrap_or("").trim();
        if item.is_empty() {
            continue;
        }
        out.extend(parse_validator_list(item).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(out)
}

fn parse_item(item: &str) -> Result<Vec<ValidatorId>, String> {
    if item.starts_with("0x") || item.starts_with("0X") {
        let pk: Pubkey = item
            .parse()
            .map_err(|e| format!("`{item}` is not a validator public key: {e}"))?;
        return Ok(vec![ValidatorId::Pubkey(pk)]);
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
        return Ok((a..=b)
            .map(|i| ValidatorId::Index(ValidatorIndex(i)))
            .collect());
    }
    Ok(vec![ValidatorId::Index(ValidatorIndex(parse_index(
        item, item,
    )?))])
}

/// The LIST that `parse_validator_list` reads back as `ids` (as a set):
/// indices sorted with consecutive runs as ranges `a-b`, then public keys
/// in full (they are public, and a shortened one cannot be searched for).
pub fn format_validator_list(ids: &[ValidatorId]) -> String {
    let mut indices: Vec<u64> = ids
        .iter()
        .filter_map(|id| match id {
            ValidatorId::Index(i) => Some(i.0),
            ValidatorId::Pubkey(_) => None,
        })
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let mut items: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let show = |(a, b): (u64, u64)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    for i in indices {
        run = match run {
            Some((a, b)) if b.checked_add(1) == Some(i) => Some((a, i)),
            Some(done) => {
                items.push(show(done));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(done) = run {
        items.push(show(done));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if let ValidatorId::Pubkey(p) = id {
            if seen.insert(*p) {
                items.push(p.to_hex());
            }
        }
    }
    items.join(",")
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

    #[test]
    fn lists_mix_indices_ranges_and_pubkeys() {
        let pk = format!("0x{}", "ab".repeat(48));
        let got = parse_validator_list(&format!("1, 3-5,{pk},")).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(&got[..4], &[idx(1), idx(3), idx(4), idx(5)]);
        assert!(matches!(got[4], ValidatorId::Pubkey(_)));
    }

    #[test]
    fn bad_items_are_named_in_the_error() {
        for (input, needle) in [
            ("1,x", "`x`"),
            ("5-3", "`5-3` ends before"),
            ("0x1234", "`0x1234` is not a validator public key"),
            ("0-99999999999", "longer than"),
        ] {
            let err = parse_validator_list(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn a_formatted_list_reads_back_as_the_same_set() {
        let pk = format!("0x{}", "cd".repeat(48));
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("7", "7"),
            ("3,1,2,2", "1-3"),
            ("1,3-5,9,10", "1,3-5,9-10"),
            (&format!("{pk},4"), &format!("4,{pk}")),
        ];
        for (input, want) in cases {
            let ids = parse_validator_list(input).unwrap();
            let shown = format_validator_list(&ids);
            assert_eq!(&shown, want, "{input}");
            let mut back = parse_validator_list(&shown).unwrap();
            let mut ids = ids;
            ids.sort();
            ids.dedup();
            back.sort();
            assert_eq!(back, ids, "{input}");
        }
    }

    #[test]
    fn files_allow_comments_and_report_line_numbers() {
        let got = parse_validator_file("# mine\n7\n\n8-9 # backup\n").unwrap();
        assert_eq!(got, vec![idx(7), idx(8), idx(9)]);
        let err = parse_validator_file("7\nseven\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
