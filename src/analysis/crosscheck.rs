//! Node cross-check: does each beacon node agree with the canonical chain
//! valwatch judged on, at one slot?
//!
//! Owns: the comparison of one expected root with every node's answer.
//! Must not: ask the nodes (the beacon pool does), or decide what a
//! disagreement means for alerting.

use crate::chain::Root;

/// What one node said about a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAnswer {
    /// The node's canonical block root at the slot; `None` when the slot is
    /// empty on its chain (a 404 for the header is a normal answer).
    Root(Option<Root>),
    /// The node could not be asked (timeout, HTTP error): it is neither for
    /// nor against, and is reported with the reason.
    Failed(String),
}

/// One node's place in the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeComparison {
    pub node: String,
    pub node_root: Option<Root>,
    /// True only for an answer equal to the expected one (both empty counts
    /// as agreement: the node sees the same skipped slot).
    pub agrees: bool,
    /// Set when the node could not be compared.
    pub error: Option<String>,
}

impl NodeComparison {
    /// A node that answered and sees another chain. A node that failed is
    /// not counted as disagreeing: it said nothing about the chain.
    pub fn disagrees(&self) -> bool {
        self.error.is_none() && !self.agrees
    }
}

/// Compares each node's answer with `expected`, the root valwatch's
/// canonical chain has at the slot (`None`: the slot is empty there).
/// One comparison per answer, in the order given.
pub fn compare_roots(
    expected: Option<Root>,
    answers: &[(String, NodeAnswer)],
) -> Vec<NodeComparison> {
    answers
        .iter()
        .map(|(node, answer)| match answer {
            NodeAnswer::Root(root) => NodeComparison {
                node: node.clone(),
                node_root: *root,
                agrees: *root == expected,
                error: None,
            },
            NodeAnswer::Failed(reason) => NodeComparison {
                node: node.clone(),
                node_root: None,
                agrees: false,
                error: Some(reason.clone()),
            },
        })
        .collect()
}

/// The names of the nodes that answered with another root than `expected`.
pub fn disagreeing_nodes(expected: Option<Root>, answers: &[(String, NodeAnswer)]) -> Vec<String> {
    compare_roots(expected, answers)
        .into_iter()
        .filter(NodeComparison::disagrees)
        .map(|c| c.node)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_that_see_another_root_disagree() {
        let a = Some(Root([0xa; 32]));
        let b = Some(Root([0xb; 32]));
        let ok = |r: Option<Root>| NodeAnswer::Root(r);
        let failed = || NodeAnswer::Failed("timed out".into());
        // (name, expected, answers in node order, names that disagree)
        type Case = (
            &'static str,
            Option<Root>,
            Vec<NodeAnswer>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ("all agree", a, vec![ok(a), ok(a)], vec![]),
            (
                "one node on another fork",
                a,
                vec![ok(a), ok(b), ok(a)],
                vec!["n1"],
            ),
            (
                "a node that sees the slot empty",
                a,
                vec![ok(None), ok(a)],
                vec!["n0"],
            ),
            (
                "a node that sees a block in our empty slot",
                None,
                vec![ok(None), ok(b)],
                vec!["n1"],
            ),
            (
                "a failed node neither agrees nor disagrees",
                a,
                vec![failed(), ok(b)],
                vec!["n1"],
            ),
            ("no nodes", a, vec![], vec![]),
        ];
        for (name, expected, answers, want) in cases {
            let answers: Vec<(String, NodeAnswer)> = answers
                .into_iter()
                .enumerate()
                .map(|(i, ans)| (format!("n{i}"), ans))
                .collect();
            assert_eq!(disagreeing_nodes(expected, &answers), want, "{name}");
            let compared = compare_roots(expected, &answers);
            assert_eq!(compared.len(), answers.len(), "{name}");
            for (c, (node, answer)) in compared.iter().zip(&answers) {
                assert_eq!(&c.node, node);
                let failed = matches!(answer, NodeAnswer::Failed(_));
                assert_eq!(c.error.is_some(), failed, "{name}: {node}");
                assert_eq!(
                    c.agrees,
                    !failed && !want.contains(&node.as_str()),
                    "{name}: {node}"
                );
            }
        }
    }
}
