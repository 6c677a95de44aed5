//! The watched validators: configured groups resolved to indices, with
//! `validators_file`s re-read when they change (so an operator adds keys
//! without a restart).
//!
//! Owns: the id → index resolution, which configured validators exist on
//! the chain, file change detection, the groups that `[[sources]]` fill
//! (their keys replace the group's members at every reading, see
//! `crate::sources`) and the validators' labels. Must not: judge anything.
//!
//! The configured ids are compact (`IdSet`: index ranges and public keys,
//! as the configuration reads them), and only validators the chain has are
//! watched: the registry is a prefix `0..n` of indices (validators are
//! appended and never removed), so `n` found by a binary search of a few
//! single-id requests tells which configured indices exist. Issue 11: `--validators 0-4999999` on a
//! 64-validator chain was watched literally, ~5 M `unknown` rows an epoch.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::SystemTime;

use tracing::{info, warn};

use crate::beacon::client::ValidatorId;
use crate::beacon::{BeaconError, BeaconPool, StateId};
use crate::chain::{Pubkey, ValidatorIndex};
use crate::config::{parse_labels_file, parse_validator_file, Group, IdSet, Labels};
use crate::sources::{SourceStatus, Sources};
use crate::status::GroupSpec;

/// Ranges or keys named in the "not on chain" log line; the count says
/// how many more there are.
const NAMED_IN_LOG: usize = 10;

/// PURE: how the configured validators the chain does not have read in a
/// log line: `64-4999999, 0xab…` with at most `NAMED_IN_LOG` items.
pub fn describe_absent(ranges: &[(u64, u64)], pubkeys: &[Pubkey]) -> String {
    let mut items: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .chain(pubkeys.iter().map(|k| k.to_hex()))
        .collect();
    let total = items.len();
    if total > NAMED_IN_LOG {
        items.truncate(NAMED_IN_LOG);
        items.push(format!("and {} more", total - NAMED_IN_LOG));
    }
    items.join(", ")
}

/// The number of validators on chain, as far as it matters for indices up
/// to `max`: the first index in `known..=max` that `exists` denies, or
/// `max + 1` when `max` exists. `known` is a count already confirmed (every
/// index below it exists). The registry only grows, so existence is a
/// prefix and a binary search needs about log2(max - known) probes.
pub async fn registry_len<F, Fut>(known: u64, max: u64, mut exists: F) -> Result<u64, BeaconError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<bool, BeaconError>>,
{
    if known > max {
        return Ok(known);
    }
    if exists(max).await? {
        return Ok(max + 1);
    }
    // Every index below `lo` exists; `hi` does not.
    let (mut lo, mut hi) = (known, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if exists(mid).await? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Whether validator `index` is in the head state's registry; None when
/// the head state is not served (404). Index 0 is asked along: an id list
/// that matches nothing is, for some servers (the simulator), no filter at
/// all and answers the whole registry.
pub async fn validator_exists(pool: &BeaconPool, index: u64) -> Result<Option<bool>, BeaconError> {
    let mut ids = vec![ValidatorId::Index(ValidatorIndex(0))];
    if index != 0 {
        ids.push(ValidatorId::Index(ValidatorIndex(index)));
    }
    let ids = &ids;
    let found = pool
        .call(
            "/eth/v1/beacon/states/{state_id}/validators",
            |c| async move { c.validators(StateId::Head, ids).await },
        )
        .await?;
    Ok(found.map(|found| found.iter().any(|v| v.index.0 == index)))
}

/// PURE: a hash of the groups' names and members, to tell a change.
fn fingerprint(specs: &[GroupSpec]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for g in specs {
        g.name.hash(&mut h);
        g.validators.len().hash(&mut h);
        for v in &g.validators {
            v.0.hash(&mut h);
        }
    }
    h.finish()
}

/// One configured group, compact.
struct Entry {
    name: String,
    members: IdSet,
    /// The inline part (from `validators`), kept to rebuild the group when
    /// its file changes.
    inline: IdSet,
    file: Option<PathBuf>,
    modified: Option<SystemTime>,
}

pub struct Watchlist {
    groups: Vec<Entry>,
    expected_offline: IdSet,
    /// Public keys found on chain.
    resolved: HashMap<Pubkey, ValidatorIndex>,
    /// Validators on chain, as far as the configured indices go (see
    /// `registry_len`); None until the first successful `resolve`.
    registry: Option<u64>,
    /// The last "not on chain" line logged, so that it is said once.
    reported: Option<String>,
    /// Services listing keys; each fills the group of its name.
    sources: Option<Sources>,
    labels: Labels,
    labels_file: Option<PathBuf>,
    labels_modified: Option<SystemTime>,
    /// A fingerprint of the groups last handed out (`poll` says when they
    /// change); not a copy, which would double a large list's memory.
    published: Option<u64>,
}

fn mtime(path: &Option<PathBuf>) -> Option<SystemTime> {
    path.as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
}

impl Watchlist {
    /// Takes the configured groups (compact already: a range of millions
    /// of indices is one entry).
    pub fn new(groups: Vec<Group>, expected_offline: IdSet) -> Self {
        let groups = groups
            .into_iter()
            .map(|g| Entry {
                members: g.validators,
                inline: g.inline,
                modified: mtime(&g.validators_file),
                file: g.validators_file,
                name: g.name,
            })
            .collect();
        Self {
            groups,
            expected_offline,
            resolved: HashMap::new(),
            registry: None,
            reported: None,
            sources: None,
            labels: Labels::default(),
            labels_file: None,
            labels_modified: None,
            published: None,
        }
    }

    /// Adds the groups that `sources` fill (empty until they first answer).
    pub fn with_sources(mut self, sources: Sources) -> Self {
        for name in sources.groups() {
            self.groups.push(Entry {
                name,
                members: IdSet::default(),
                inline: IdSet::default(),
                file: None,
                modified: None,
            });
        }
        self.sources = (!sources.is_empty()).then_some(sources);
        self
    }

    /// Labels per validator, and the file they come from (re-read when it
    /// changes).
    pub fn with_labels(mut self, labels: Labels, file: Option<PathBuf>) -> Self {
        self.labels_modified = mtime(&file);
        self.labels = labels;
        self.labels_file = file;
        self
    }

    /// Reads the sources now at the next `poll` (SIGHUP): the flag to set.
    pub fn sources_waker(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        self.sources.as_ref().map(Sources::waker)
    }

    /// Reads the sources every `every` (the chain's epoch).
    pub fn set_source_interval(&mut self, every: std::time::Duration) {
        if let Some(s) = self.sources.as_mut() {
            s.set_interval(every);
        }
    }

    /// Whether a source has never answered: its keys are not known yet, so
    /// an empty watch list is not (yet) a configuration mistake.
    pub fn sources_pending(&self) -> bool {
        self.sources.as_ref().is_some_and(Sources::any_unanswered)
    }

    pub fn source_statuses(&self) -> Vec<SourceStatus> {
        self.sources
            .as_ref()
            .map(Sources::statuses)
            .unwrap_or_default()
    }

    /// Reads the sources now, due or not (at start, and at every retry
    /// while no node answers: a source down at the first try is asked again).
    pub async fn read_sources_now(&mut self) -> bool {
        if let Some(s) = &self.sources {
            s.waker().store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.read_sources().await
    }

    /// Reads the sources when due and puts their keys into their groups.
    /// Returns true when a group's keys changed.
    pub async fn read_sources(&mut self) -> bool {
        let Some(sources) = self.sources.as_mut() else {
            return false;
        };
        if !sources.due() {
            return false;
        }
        let lists = sources.read().await;
        let changed = !lists.is_empty();
        for (group, keys) in lists {
            if let Some(g) = self.groups.iter_mut().find(|g| g.name == group) {
                g.members = IdSet::new(Vec::new(), keys);
            }
        }
        // Keys not on chain yet (pending deposits) are looked for again
        // once per reading, i.e. once an epoch.
        changed || self.has_unresolved_keys()
    }

    fn has_unresolved_keys(&self) -> bool {
        self.groups.iter().any(|g| {
            g.members
                .pubkeys()
                .iter()
                .any(|k| !self.resolved.contains_key(k))
        })
    }

    /// Re-reads the labels file when it changed. A file that no longer
    /// parses is reported and the previous labels stay.
    fn reload_labels(&mut self) -> bool {
        let now = mtime(&self.labels_file);
        if now == self.labels_modified {
            return false;
        }
        self.labels_modified = now;
        let Some(path) = self.labels_file.clone() else {
            return false;
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_labels_file(&t));
        match parsed {
            Ok(labels) if labels != self.labels => {
                info!(file = %path.display(), "labels file changed");
                self.labels = labels;
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(file = %path.display(), error = %e,
                      "labels file unreadable; keeping the previous labels");
                false
            }
        }
    }

    /// Labels of the watched validators, by index.
    pub fn labels(&self) -> BTreeMap<ValidatorIndex, Vec<String>> {
        let watched = self.watched();
        let mut out: BTreeMap<ValidatorIndex, Vec<String>> = BTreeMap::new();
        for (id, labels) in self.labels.iter() {
            let index = match id {
                ValidatorId::Index(i) => Some(*i),
                ValidatorId::Pubkey(k) => self.resolved.get(k).copied(),
            };
            let Some(index) = index else { continue };
            if watched.binary_search(&index).is_err() {
                continue;
            }
            let entry = out.entry(index).or_default();
            for l in labels {
                if !entry.contains(l) {
                    entry.push(l.clone());
                }
            }
            entry.sort();
        }
        out
    }

    /// Everything that can change the watch list, once per monitor round:
    /// validators files, the sources (once an epoch or on SIGHUP), the
    /// labels file; new keys are then resolved. Returns true when the
    /// groups or the labels differ from what was last handed out.
    pub async fn poll(&mut self, pool: &BeaconPool) -> bool {
        let mut touched = self.reload_files();
        touched |= self.read_sources().await;
        let labels_changed = self.reload_labels();
        if !touched {
            // Nothing re-read: the groups are as handed out, and a large
            // list is not expanded every round (issue 11).
            return labels_changed;
        }
        if let Err(e) = self.resolve(pool).await {
            warn!(error = %crate::causes(&e), "cannot resolve the new validators yet");
        }
        let now = fingerprint(&self.group_specs());
        let changed = self.published != Some(now);
        self.published = Some(now);
        changed || labels_changed
    }

    /// Every configured id, in one set.
    fn all_ids(&self) -> IdSet {
        self.groups
            .iter()
            .fold(self.expected_offline.clone(), |acc, g| {
                acc.union(&g.members)
            })
    }

    /// Finds which configured validators the chain has: public keys through
    /// the pool (unknown keys are retried on the next call), indices by the
    /// registry's length. Validators not on chain are logged once, not
    /// watched, and looked for again on the next call (a restart, or a
    /// changed validators file).
    pub async fn resolve(&mut self, pool: &BeaconPool) -> Result<(), BeaconError> {
        let all = self.all_ids();
        let missing: Vec<ValidatorId> = all
            .pubkeys()
            .iter()
            .filter(|k| !self.resolved.contains_key(k))
            .map(|k| ValidatorId::Pubkey(*k))
            .collect();
        if !missing.is_empty() {
            let (found, _) = crate::collect::resolve_validators(pool, &missing).await?;
            for (id, index) in found {
                if let ValidatorId::Pubkey(k) = id {
                    self.resolved.insert(k, index);
                }
            }
        }
        if let Some(max) = all.max_index() {
            let known = self.registry.unwrap_or(0);
            if known <= max {
                // A head state not served counts as an empty registry:
                // nothing is watched until a node serves it.
                let len = registry_len(known, max, |i| async move {
                    Ok(validator_exists(pool, i).await?.unwrap_or(false))
                })
                .await?;
                self.registry = Some(len);
            }
        } else if self.registry.is_none() {
            self.registry = Some(0);
        }
        self.report_absent(&all);
        if self.published.is_none() {
            self.published = Some(fingerprint(&self.group_specs()));
        }
        Ok(())
    }

    /// Logs the configured validators the chain does not have, once per
    /// change of that list.
    fn report_absent(&mut self, all: &IdSet) {
        let Some(len) = self.registry else { return };
        let ranges = all.ranges_from(len);
        let keys: Vec<Pubkey> = all
            .pubkeys()
            .iter()
            .filter(|k| !self.resolved.contains_key(k))
            .copied()
            .collect();
        if ranges.is_empty() && keys.is_empty() {
            self.reported = None;
            return;
        }
        let text = describe_absent(&ranges, &keys);
        if self.reported.as_deref() == Some(text.as_str()) {
            return;
        }
        let count: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum::<u64>() + keys.len() as u64;
        warn!(count, registry_len = len, validators = %text,
              "configured validators not on chain: not watched until they appear (looked for again at restart, when a validators file changes, or at every reading of a key source)");
        self.reported = Some(text);
    }

    /// The members of `ids` known to be on chain.
    fn on_chain<'a>(&'a self, ids: &'a IdSet) -> impl Iterator<Item = ValidatorIndex> + 'a {
        // Before any node was asked, no index is known to exist.
        let end = self.registry.unwrap_or(0);
        ids.indices_below(end).chain(
            ids.pubkeys()
                .iter()
                .filter_map(|k| self.resolved.get(k).copied()),
        )
    }

    /// The watched indices, sorted, without duplicates.
    pub fn watched(&self) -> Vec<ValidatorIndex> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .flat_map(|g| self.on_chain(&g.members))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn group_specs(&self) -> Vec<GroupSpec> {
        self.groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                validators: self.on_chain(&g.members).collect(),
            })
            .collect()
    }

    pub fn expected_offline(&self) -> Vec<ValidatorIndex> {
        self.on_chain(&self.expected_offline).collect()
    }

    /// Re-reads the validators files that changed since last time. Returns
    /// true when a group changed. A file that no longer parses is reported
    /// and the group keeps its previous members.
    pub fn reload_files(&mut self) -> bool {
        let mut changed = false;
        for g in &mut self.groups {
            let now = mtime(&g.file);
            if now == g.modified {
                continue;
            }
            g.modified = now;
            let Some(path) = g.file.clone() else {
                continue;
            };
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_validator_file(&t));
            match parsed {
                Ok(ids) => {
                    let members = g.inline.union(&ids);
                    if members != g.members {
                        info!(group = %g.name, file = %path.display(),
                              "validators file changed");
                        g.members = members;
                        changed = true;
                    }
                }
                Err(e) => warn!(group = %g.name, file = %path.display(), error = %e,
                                "validators file unreadable; keeping the previous list"),
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_validator_list;

    fn set(list: &str) -> IdSet {
        parse_validator_list(list).unwrap()
    }

    fn idx(v: &[u64]) -> Vec<ValidatorIndex> {
        v.iter().copied().map(ValidatorIndex).collect()
    }

    #[test]
    fn the_absent_are_named_briefly() {
        assert_eq!(describe_absent(&[(64, 4_999_999)], &[]), "64-4999999");
        assert_eq!(describe_absent(&[(7, 7), (9, 10)], &[]), "7, 9-10");
        let many: Vec<(u64, u64)> = (0..13).map(|i| (i * 2, i * 2)).collect();
        let text = describe_absent(&many, &[]);
        assert!(text.ends_with("18, and 3 more"), "{text}");
    }

    #[tokio::test]
    async fn the_registry_length_takes_a_binary_search() {
        // (validators on chain, confirmed before, highest configured, want)
        let cases = [
            (64, 0, 4_999_999, 64),
            (64, 0, 63, 64),
            (64, 0, 10, 11),
            (0, 0, 5, 0),
            (1, 0, 0, 1),
            (100, 64, 200, 100),
            (100, 101, 50, 101),
        ];
        for (chain, known, max, want) in cases {
            let mut asked = 0u32;
            let got = registry_len(known, max, |i| {
                asked += 1;
                async move { Ok(i < chain) }
            })
            .await
            .unwrap();
            assert_eq!(got, want, "chain {chain}, known {known}, max {max}");
            assert!(asked <= 25, "{asked} probes for max {max}");
        }
    }

    #[test]
    fn a_changed_file_updates_its_group_and_a_broken_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.txt");
        std::fs::write(&file, "5\n6\n").unwrap();
        let group = Group {
            name: "g".into(),
            validators: parse_validator_list("1,5,6").unwrap(),
            inline: parse_validator_list("1").unwrap(),
            validators_file: Some(file.clone()),
        };
        let mut w = Watchlist::new(vec![group], IdSet::default());
        w.registry = Some(100);
        assert!(!w.reload_files());
        // mtime granularity: make the change visible.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, "5\n7-8\n").unwrap();
        let t = SystemTime::now() + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert!(w.reload_files());
        assert_eq!(w.groups[0].members, set("1,5,7,8"));
        assert_eq!(w.watched(), idx(&[1, 5, 7, 8]));
        std::fs::write(&file, "not a key\n").unwrap();
        let t = t + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert!(!w.reload_files());
        assert_eq!(w.groups[0].members, set("1,5,7,8"));
    }

    #[test]
    fn only_validators_on_chain_are_watched() {
        let group = Group {
            name: "g".into(),
            validators: parse_validator_list("0-4999999").unwrap(),
            inline: IdSet::default(),
            validators_file: None,
        };
        let mut w = Watchlist::new(vec![group], parse_validator_list("3,100").unwrap());
        w.registry = Some(64);
        assert_eq!(w.watched(), (0..64).map(ValidatorIndex).collect::<Vec<_>>());
        assert_eq!(w.group_specs()[0].validators.len(), 64);
        assert_eq!(w.expected_offline(), idx(&[3]));
    }

    #[test]
    fn labels_reach_watched_validators_by_index_or_resolved_key() {
        let key = |v: u8| format!("0x{}", hex::encode([v; 48]));
        let group = Group {
            name: "g".into(),
            validators: parse_validator_list(&format!("1,2,{}", key(0xaa))).unwrap(),
            inline: IdSet::default(),
            validators_file: None,
        };
        let labels = crate::config::parse_labels_file(&format!(
            "1,eu\n1,rack:1\n7,not-watched\n{},by-key\n{},unresolved\n",
            key(0xaa),
            key(0xbb)
        ))
        .unwrap();
        let mut w = Watchlist::new(vec![group], IdSet::default()).with_labels(labels, None);
        w.registry = Some(64);
        let aa: Pubkey = key(0xaa).parse().unwrap();
        w.resolved.insert(aa, ValidatorIndex(40));
        let got = w.labels();
        let want: BTreeMap<ValidatorIndex, Vec<String>> = [
            (
                ValidatorIndex(1),
                vec!["eu".to_string(), "rack:1".to_string()],
            ),
            (ValidatorIndex(40), vec!["by-key".to_string()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn source_groups_start_empty_and_stay_apart_from_configured_groups() {
        let group = Group {
            name: "g".into(),
            validators: parse_validator_list("1").unwrap(),
            inline: IdSet::default(),
            validators_file: None,
        };
        let sources = crate::sources::Sources::new(vec![crate::config::SourceConfig {
            name: "vc".into(),
            kind: crate::config::SourceKind::Web3Signer,
            url: "http://127.0.0.1:1/".parse().unwrap(),
            token_file: None,
            group: "vc".into(),
            timeout: std::time::Duration::from_secs(1),
        }])
        .unwrap();
        let mut w = Watchlist::new(vec![group], IdSet::default()).with_sources(sources);
        w.registry = Some(64);
        assert!(w.sources_pending(), "never answered");
        let specs = w.group_specs();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].name, "vc");
        assert!(specs[1].validators.is_empty());
        assert_eq!(w.watched(), idx(&[1]));
        assert!(!w.source_statuses()[0].up);
    }

    #[test]
    fn a_changed_labels_file_is_read_again_and_a_broken_one_keeps_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.csv");
        std::fs::write(&file, "1,eu\n").unwrap();
        let labels = crate::config::parse_labels_file("1,eu\n").unwrap();
        let group = Group {
            name: "g".into(),
            validators: parse_validator_list("1-2").unwrap(),
            inline: IdSet::default(),
            validators_file: None,
        };
        let mut w =
            Watchlist::new(vec![group], IdSet::default()).with_labels(labels, Some(file.clone()));
        w.registry = Some(64);
        assert!(!w.reload_labels(), "unchanged");
        let touch = |text: &str, secs: u64| {
            std::fs::write(&file, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(SystemTime::now() + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        touch("1,eu\n2,us\n", 1);
        assert!(w.reload_labels());
        assert_eq!(
            w.labels().get(&ValidatorIndex(2)),
            Some(&vec!["us".to_string()])
        );
        touch("2\n", 2);
        assert!(!w.reload_labels(), "broken: kept");
        assert_eq!(w.labels().len(), 2);
    }
}
