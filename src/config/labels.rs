//! The labels file: free-form labels per validator (issue 13), one
//! validator a line, `index_or_pubkey,label,label`. Owns the syntax; the
//! watch list resolves the keys to indices.

use std::collections::BTreeMap;

use crate::beacon::client::ValidatorId;

/// Labels of one validator at most. They are carried into every status
/// entry and alert text: a long list there is noise, and a line with more
/// is more likely a pasted CSV with a wrong column than intent.
pub const MAX_LABELS_PER_VALIDATOR: usize = 16;

/// Longest label, in bytes: enough for `rack:eu-west-1b/host-17`, short
/// enough to fit a metric label and an alert line.
pub const MAX_LABEL_LEN: usize = 64;

/// Labels per validator id, each list sorted and without repetition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<ValidatorId, Vec<String>>);

impl Labels {
    pub fn iter(&self) -> impl Iterator<Item = (&ValidatorId, &Vec<String>)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, id: &ValidatorId) -> Option<&Vec<String>> {
        self.0.get(id)
    }
}

/// Labels may go into metric label values, URLs and alert texts: letters,
/// digits and `-_.:/=` keep them readable and safe in all three.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("an empty label (two commas in a row?)".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label `{label}` is longer than {MAX_LABEL_LEN} characters"
        ));
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/=".contains(c))
    {
        return Err(format!(
            "label `{label}`: use letters, digits and - _ . : / ="
        ));
    }
    Ok(())
}

/// PURE: parses a labels file. `#` starts a comment; a validator named on
/// several lines gets the labels of all of them. Errors name the line.
pub fn parse_labels_file(text: &str) -> Result<Labels, String> {
    let mut out: BTreeMap<ValidatorId, Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut fields = content.split(',').map(str::trim);
        let who = fields.next().unwrap_or("");
        let ids = super::parse_validator_list(who).map_err(|e| format!("line {line_no}: {e}"))?;
        let id = match ids.single() {
            Some(one) => one,
            None => {
                return Err(format!(
                    "line {line_no}: `{who}` must be one validator index or 0x public key"
                ))
            }
        };
        let labels: Vec<&str> = fields.collect();
        if labels.is_empty() {
            return Err(format!("line {line_no}: `{who}` has no label"));
        }
        let entry = out.entry(id).or_default();
        for label in labels {
            check_label(label).map_err(|e| format!("line {line_no}: {e}"))?;
            if !entry.iter().any(|l| l == label) {
                entry.push(label.to_owned());
            }
        }
        entry.sort();
        if entry.len() > MAX_LABELS_PER_VALIDATOR {
            return Err(format!(
                "line {line_no}: `{who}` has more than {MAX_LABELS_PER_VALIDATOR} labels"
            ));
        }
    }
    Ok(Labels(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ValidatorIndex;

    fn idx(i: u64) -> ValidatorId {
        ValidatorId::Index(ValidatorIndex(i))
    }

    #[test]
    fn good_files_give_sorted_labels_per_validator() {
        let pk = format!("0x{}", "ab".repeat(48));
        let pk_id = crate::config::parse_validator_list(&pk)
            .unwrap()
            .single()
            .unwrap();
        // (case, file, expected (id, labels))
        let cases: Vec<(&str, String, Vec<(ValidatorId, Vec<&str>)>)> = vec![
            ("empty", String::new(), vec![]),
            (
                "comments and blanks",
                "# header\n\n  # indented\n".into(),
                vec![],
            ),
            (
                "one line",
                "7,eu,lighthouse".into(),
                vec![(idx(7), vec!["eu", "lighthouse"])],
            ),
            (
                "spaces and a trailing comment",
                " 7 , eu , rack:3 # moved\n".into(),
                vec![(idx(7), vec!["eu", "rack:3"])],
            ),
            (
                "a pubkey",
                format!("{pk},client=teku"),
                vec![(pk_id, vec!["client=teku"])],
            ),
            (
                "lines merge without repeats",
                "7,b,a\n7,a,c\n8,x".into(),
                vec![(idx(7), vec!["a", "b", "c"]), (idx(8), vec!["x"])],
            ),
        ];
        for (case, text, want) in cases {
            let got = parse_labels_file(&text).unwrap_or_else(|e| panic!("{case}: {e}"));
            let got: Vec<(ValidatorId, Vec<&str>)> = got
                .iter()
                .map(|(id, l)| (*id, l.iter().map(String::as_str).collect()))
                .collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let many = (0..=MAX_LABELS_PER_VALIDATOR)
            .map(|i| format!("l{i}"))
            .collect::<Vec<_>>()
            .join(",");
        // (case, file, expected error part)
        let cases: Vec<(&str, String, &str)> = vec![
            ("no label", "1,a\n2\n".into(), "line 2: `2` has no label"),
            ("empty label", "1,a,,b".into(), "line 1: an empty label"),
            ("not a validator", "x,a".into(), "line 1: `x` is not"),
            (
                "a range",
                "3-5,a".into(),
                "line 1: `3-5` must be one validator",
            ),
            (
                "a range of millions, refused unexpanded",
                "0-4999999,a".into(),
                "line 1: `0-4999999` must be one validator",
            ),
            ("bad characters", "# c\n1,a b".into(), "line 2: label `a b`"),
            ("quotes", "1,\"a\"".into(), "line 1: label `\"a\"`"),
            (
                "too long",
                format!("1,{}", "x".repeat(MAX_LABEL_LEN + 1)),
                "longer than",
            ),
            ("too many", format!("1,{many}"), "more than 16 labels"),
            (
                "a short key",
                "0x1234,a".into(),
                "line 1: `0x1234` is not a validator public key",
            ),
        ];
        for (case, text, want) in cases {
            let err = parse_labels_file(&text).expect_err(case);
            assert!(err.contains(want), "{case}: {err}");
        }
    }
}
