//! The manifest directory as `run` sees it: cheap change detection (every
//! file's path, mtime and size, polled), waiting out an editor's burst of
//! writes, and reloading so that an object whose manifest became invalid
//! keeps its last good version instead of looking removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::model::{Desired, Kind, ObjectKey};

type Fingerprint = Vec<(PathBuf, u128, u64)>;

/// What one reload found, for the status board and the log.
#[derive(Debug, Default)]
pub struct Reloaded {
    pub diagnostics: Vec<String>,
    /// Invalid objects, and whether a last good version is kept for each.
    pub invalid: Vec<(ObjectKey, bool)>,
    /// The part of `invalid` a tenant rule refused (the manifest itself is well-formed).
    pub refused: BTreeSet<ObjectKey>,
    /// Objects no longer declared (their AWS resources stay).
    pub removed: Vec<ObjectKey>,
}

pub struct Manifests {
    dir: PathBuf,
    fingerprint: Fingerprint,
    pub desired: Desired,
    /// Objects whose manifest is invalid now: reconciled from their last good version.
    pub kept_invalid: BTreeSet<ObjectKey>,
    /// Given to every load.
    pub platform: crate::model::Platform,
    /// Every load holds the manifests to these tenants' rules.
    tenants: Option<std::sync::Arc<crate::manifest::tenant::Tenants>>,
}

impl Manifests {
    pub fn new(
        dir: PathBuf,
        platform: crate::model::Platform,
        tenants: Option<std::sync::Arc<crate::manifest::tenant::Tenants>>,
    ) -> Self {
        let fingerprint = fingerprint(&dir);
        Self { dir, fingerprint, desired: Desired::default(), kept_invalid: BTreeSet::new(), platform, tenants }
    }

    /// Whether the directory changed since the last look; waits until it is quiet.
    pub async fn changed(&mut self) -> bool {
        let read = |dir: PathBuf| async move {
            tokio::task::spawn_blocking(move || fingerprint(&dir)).await.unwrap_or_default()
        };
        let now = read(self.dir.clone()).await;
        if now == self.fingerprint {
            return false;
        }
        let mut last = now;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let fp = read(self.dir.clone()).await;
            if fp == last {
                break;
            }
            last = fp;
        }
        self.fingerprint = last;
        true
    }

    /// Loads the directory. An object that became invalid keeps its last good
    /// version; one that disappeared is dropped.
    pub fn reload(&mut self) -> Reloaded {
        let load = crate::manifest::load(&self.dir, self.tenants.as_deref());
        let (mut fresh, mut diags) = (load.desired, load.errors);
        // A refused object is treated as an invalid one: its last good version
        // (which passed the same rules) is kept, and nothing is pruned meanwhile.
        diags.extend(load.refusals);
        fresh.load_errors = diags.len();
        fresh.platform = self.platform.clone();
        let mut out = Reloaded {
            diagnostics: diags.iter().map(ToString::to_string).collect(),
            refused: fresh.refused.clone(),
            ..Default::default()
        };
        self.kept_invalid.clear();
        for key in fresh.invalid.clone() {
            let kept = carry_over(&mut self.desired, &mut fresh, &key);
            if kept {
                fresh.invalid.remove(&key);
                self.kept_invalid.insert(key.clone());
            }
            out.invalid.push((key, kept));
        }
        // A file that no longer parses yields no document at all: its objects
        // keep their last good version too, instead of looking removed.
        let broken: BTreeSet<&Path> = diags.iter().map(|d| d.path.as_path()).collect();
        for gone in keys(&self.desired).difference(&keys(&fresh)) {
            let origin = match gone.kind {
                Kind::Parameter => self.desired.parameters.get(&gone.name).map(|d| d.origin.path.clone()),
                Kind::Secret => self.desired.secrets.get(&gone.name).map(|d| d.origin.path.clone()),
                Kind::Service => self.desired.services.get(&gone.name).map(|d| d.origin.path.clone()),
                Kind::Target => self.desired.targets.get(&gone.name).map(|d| d.origin.path.clone()),
            };
            if fresh.invalid.contains(gone) || origin.as_deref().is_some_and(|p| broken.contains(p)) {
                carry_over(&mut self.desired, &mut fresh, gone);
                self.kept_invalid.insert(gone.clone());
                out.invalid.push((gone.clone(), true));
            } else {
                out.removed.push(gone.clone());
            }
        }
        self.desired = fresh;
        out
    }
}

/// Every manifest file's path, mtime and size.
fn fingerprint(dir: &Path) -> Fingerprint {
    let mut diags = Vec::new();
    crate::manifest::load::manifest_files(dir, &mut diags)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let mtime = m
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (p, mtime, m.map_or(0, |m| m.len()))
        })
        .collect()
}

/// Moves an object's last good version from `old` into `new`; false if `old` has none.
fn carry_over(old: &mut Desired, new: &mut Desired, key: &ObjectKey) -> bool {
    match key.kind {
        Kind::Parameter => old.parameters.remove_entry(&key.name).map(|(k, v)| new.parameters.insert(k, v)).is_some(),
        Kind::Secret => old.secrets.remove_entry(&key.name).map(|(k, v)| new.secrets.insert(k, v)).is_some(),
        Kind::Service => old.services.remove_entry(&key.name).map(|(k, v)| new.services.insert(k, v)).is_some(),
        Kind::Target => old.targets.remove_entry(&key.name).map(|(k, v)| new.targets.insert(k, v)).is_some(),
    }
}

pub fn keys(d: &Desired) -> BTreeSet<ObjectKey> {
    d.keys()
}
