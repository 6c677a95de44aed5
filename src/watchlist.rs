//! The watched validators: configured groups resolved to indices, with
//! `validators_file`s re-read when they change (so an operator adds keys
//! without a restart).
//!
//! Owns: the id → index resolution and file change detection. Must not:
//! judge anything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use tracing::{info, warn};

use crate::beacon::client::ValidatorId;
use crate::beacon::BeaconPool;
use crate::chain::ValidatorIndex;
use crate::config::{parse_validator_file, Group};
use crate::status::GroupSpec;

pub struct Watchlist {
    groups: Vec<Group>,
    /// The inline part of each group (from `validators`), kept to rebuild
    /// the group when its file changes.
    inline: Vec<Vec<ValidatorId>>,
    modified: Vec<Option<SystemTime>>,
    resolved: HashMap<ValidatorId, ValidatorIndex>,
    expected_offline: Vec<ValidatorId>,
}

fn mtime(path: &Option<PathBuf>) -> Option<SystemTime> {
    path.as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
}

impl Watchlist {
    pub fn new(groups: Vec<Group>, expected_offline: Vec<ValidatorId>) -> Self {
        let inline = groups.iter().map(|g| g.inline.clone()).collect();
        let modified = groups.iter().map(|g| mtime(&g.validators_file)).collect();
        Self {
            groups,
            inline,
            modified,
            resolved: HashMap::new(),
            expected_offline,
        }
    }

    /// Every configured id, without duplicates.
    fn all_ids(&self) -> Vec<ValidatorId> {
        let mut seen = std::collections::HashSet::new();
        self.groups
            .iter()
            .flat_map(|g| g.validators.iter().copied())
            .chain(self.expected_offline.iter().copied())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// Resolves public keys through the pool; unknown keys are retried on
    /// the next call.
    pub async fn resolve(&mut self, pool: &BeaconPool) -> Result<(), crate::beacon::BeaconError> {
        let missing: Vec<ValidatorId> = self
            .all_ids()
            .into_iter()
            .filter(|id| !self.resolved.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (found, unresolved) = crate::collect::resolve_validators(pool, &missing).await?;
        for id in &unresolved {
            warn!(validator = ?id, "public key not found on chain; not watched until it is");
        }
        self.resolved.extend(found);
        Ok(())
    }

    /// The watched indices, sorted, without duplicates.
    pub fn watched(&self) -> Vec<ValidatorIndex> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .flat_map(|g| g.validators.iter())
            .filter_map(|id| self.resolved.get(id).copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn group_specs(&self) -> Vec<GroupSpec> {
        self.groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                validators: g
                    .validators
                    .iter()
                    .filter_map(|id| self.resolved.get(id).copied())
                    .collect(),
            })
            .collect()
    }

    pub fn expected_offline(&self) -> Vec<ValidatorIndex> {
        self.expected_offline
            .iter()
            .filter_map(|id| self.resolved.get(id).copied())
            .collect()
    }

    /// Re-reads the validators files that changed since last time. Returns
    /// true when a group changed. A file that no longer parses is reported
    /// and the group keeps its previous members.
    pub fn reload_files(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.groups.len() {
            let now = mtime(&self.groups[i].validators_file);
            if now == self.modified[i] {
                continue;
            }
            self.modified[i] = now;
            let Some(path) = self.groups[i].validators_file.clone() else {
                continue;
            };
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_validator_file(&t));
            match parsed {
                Ok(ids) => {
                    let mut members = self.inline[i].clone();
                    members.extend(ids);
                    if members != self.groups[i].validators {
                        info!(group = %self.groups[i].name, file = %path.display(), validators = members.len(),
                              "validators file changed");
                        self.groups[i].validators = members;
                        changed = true;
                    }
                }
                Err(e) => warn!(group = %self.groups[i].name, file = %path.display(), error = %e,
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
        let mut w = Watchlist::new(vec![group], vec![]);
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
        let ids = |l: &str| parse_validator_list(l).unwrap();
        assert_eq!(w.groups[0].validators, ids("1,5,7,8"));
        std::fs::write(&file, "not a key\n").unwrap();
        let t = t + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert!(!w.reload_files());
        assert_eq!(w.groups[0].validators, ids("1,5,7,8"));
    }
}
