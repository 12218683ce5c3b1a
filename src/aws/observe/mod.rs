//! Reading what AWS holds, batched: DescribeParameters by 50 names,
//! ListSecrets by 10 name filters, DescribeServices by 10, one DescribeKey per
//! distinct key, and task definition revisions cached by ARN (they never
//! change). Never GetSecretValue, never a decrypted GetParameter(s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_ssm::types::{ParameterStringFilter, ResourceTypeForTagging};
use serde_json::Value;
use tokio::task::JoinSet;

use super::{Aws, AwsError, classify};
use crate::arn::RawTarget;
use crate::model::ChangedValue;
use crate::model::{Desired, Kind, ObjectKey, ValueRef};
use crate::observed::*;
use crate::policy::{INLINE_POLICY_NAME, decode_document};

mod ecs;
mod keys;
mod prune;
mod roles;
mod stores;
mod tasks;

pub use ecs::{describe_services, describe_services_with_events, newest_revisions, running_revisions};
use keys::keys;
pub use prune::prune_reads;
use roles::roles_and_owned;
pub use roles::{read_role, role};
pub use stores::last_change_times;
pub(crate) use stores::{describe_parameters, names_filter};
use stores::{parameters, secrets};
pub use tasks::stopped_tasks;

/// Task definition revisions by ARN, shared across passes.
pub type RevisionCache = Arc<Mutex<HashMap<String, Arc<Revision>>>>;

/// Roles and KMS keys change rarely: `run` re-reads them every `reverify`
/// instead of every pass (zero: every time). A role secretwire itself writes
/// is forgotten at once, so the next pass reads what it made.
#[derive(Debug, Default)]
pub struct SlowCache {
    pub reverify: std::time::Duration,
    roles: Remembered<Arc<ObservedRole>>,
    keys: Remembered<KmsKey>,
    /// Every role this controller owns (the prune scan), and when it was read.
    owned_roles: Mutex<Option<(Vec<Arc<ObservedRole>>, std::time::Instant)>>,
    /// Prune's family listings: the highest revision number known when
    /// listed, the ACTIVE ARNs, and when; listed again when the number moves,
    /// after `reverify`, or once secretwire deregistered in the family.
    families: Mutex<HashMap<String, Listing>>,
    /// Who registered each revision prune looked at (`None`: not this
    /// controller). Tags are set at registration, so this is kept for good;
    /// only this, not the revision, to keep memory flat with long histories.
    registered: Mutex<HashMap<String, Option<RegisteredRevision>>>,
}

/// A family's ACTIVE revisions: the highest revision number known when listed, the ARNs, and when.
type Listing = (u64, Vec<String>, std::time::Instant);

/// By name: what was found (or that nothing was), and when it was read.
type Remembered<T> = Mutex<HashMap<String, (Option<T>, std::time::Instant)>>;

impl SlowCache {
    pub fn new(reverify: std::time::Duration) -> Self {
        Self { reverify, ..Self::default() }
    }

    /// A family secretwire deregistered in is listed again next time.
    pub fn forget_family(&self, family: &str) {
        self.families.lock().unwrap_or_else(|e| e.into_inner()).remove(family);
    }

    pub fn forget_role(&self, name: &str) {
        self.roles.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        *self.owned_roles.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Splits names into what is fresh in `map` (found or known missing) and what must be read.
    fn split<T: Clone>(
        &self,
        map: &Mutex<HashMap<String, (Option<T>, std::time::Instant)>>,
        names: impl IntoIterator<Item = String>,
    ) -> (BTreeMap<String, T>, BTreeSet<String>) {
        let map = map.lock().unwrap_or_else(|e| e.into_inner());
        let (mut fresh, mut stale) = (BTreeMap::new(), BTreeSet::new());
        for n in names {
            match map.get(&n) {
                Some((v, at)) if at.elapsed() < self.reverify => {
                    if let Some(v) = v {
                        fresh.insert(n, v.clone());
                    }
                }
                _ => {
                    stale.insert(n);
                }
            }
        }
        (fresh, stale)
    }

    fn store<T>(
        map: &Mutex<HashMap<String, (Option<T>, std::time::Instant)>>,
        read: &BTreeSet<String>,
        found: &mut BTreeMap<String, T>,
    ) where
        T: Clone,
    {
        let now = std::time::Instant::now();
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        for n in read {
            map.insert(n.clone(), (found.get(n).cloned(), now));
        }
    }
}

/// Runs `f` on every item with at most `limit` in flight; results in input order.
/// Futures are made only when they start, so memory stays O(limit), not O(items).
pub async fn bounded<I, T, F, Fut>(items: Vec<I>, limit: usize, f: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = limit.max(1);
    let mut out: Vec<(usize, T)> = Vec::with_capacity(items.len());
    let mut set = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        if set.len() >= limit {
            out.push(join_one(&mut set).await);
        }
        let fut = f(item);
        set.spawn(async move { (i, fut.await) });
    }
    while !set.is_empty() {
        out.push(join_one(&mut set).await);
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

async fn join_one<T: 'static>(set: &mut JoinSet<(usize, T)>) -> (usize, T) {
    match set.join_next().await {
        Some(Ok(v)) => v,
        Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        None => unreachable!("join_one on an empty set"),
    }
}

fn tags_of<'a>(pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Tags {
    pairs.into_iter().filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string()))).collect()
}

/// The names and ARNs the desired state touches.
pub(crate) struct Wanted {
    parameters: BTreeSet<String>,
    owned_parameters: BTreeSet<String>,
    secret_names: BTreeSet<String>,
    secret_arns: BTreeSet<String>,
    roles: BTreeSet<String>,
}

#[cfg(test)]
impl Wanted {
    pub(crate) fn roles_only(roles: BTreeSet<String>) -> Self {
        Self {
            parameters: BTreeSet::new(),
            owned_parameters: BTreeSet::new(),
            secret_names: BTreeSet::new(),
            secret_arns: BTreeSet::new(),
            roles,
        }
    }
}

#[cfg(test)]
pub(crate) async fn roles_and_owned_for_tests(
    aws: &Aws,
    w: &Wanted,
    slow: &SlowCache,
) -> Result<(BTreeMap<String, Arc<ObservedRole>>, Vec<Arc<ObservedRole>>), AwsError> {
    roles_and_owned(aws, &w.roles, "default", slow, 4).await
}

#[cfg(test)]
pub(crate) async fn roles_for_tests(
    aws: &Aws,
    w: &Wanted,
    slow: &SlowCache,
) -> Result<BTreeMap<String, Arc<ObservedRole>>, AwsError> {
    roles::roles(aws, &w.roles, slow, 4).await
}

fn wanted(desired: &Desired, aws: &Aws) -> Wanted {
    let mut w = Wanted {
        parameters: desired.parameters.keys().cloned().collect(),
        owned_parameters: desired.parameters.keys().cloned().collect(),
        secret_names: desired.secrets.keys().cloned().collect(),
        secret_arns: BTreeSet::new(),
        roles: BTreeSet::new(),
    };
    let local = |arn: &str| {
        crate::arn::Arn::parse(arn).is_some_and(|a| a.account == aws.scope.account && a.region == aws.scope.region)
    };
    for svc in desired.services.values() {
        w.roles.insert(svc.execution_role.name.clone());
        if let Some(t) = &svc.task_role {
            w.roles.insert(t.role.name.clone());
        }
        for v in svc.value_refs() {
            // Another target's value is read by that target.
            let foreign = |kind, name: &String| desired.foreign.contains_key(&ObjectKey::new(kind, name.as_str()));
            match v {
                ValueRef::Parameter { name } if foreign(Kind::Parameter, name) => {}
                ValueRef::Secret { id, .. } if foreign(Kind::Secret, id) => {}
                ValueRef::Parameter { name } => {
                    w.parameters.insert(name.clone());
                }
                ValueRef::Secret { id, .. } if id.starts_with("arn:") => {
                    w.secret_arns.insert(id.clone());
                }
                ValueRef::Secret { id, .. } => {
                    w.secret_names.insert(id.clone());
                }
                ValueRef::Raw { target: RawTarget::Parameter { arn, name }, .. } if local(arn) => {
                    w.parameters.insert(name.clone());
                }
                ValueRef::Raw { target: RawTarget::Secret(s), .. } if local(&s.secret_arn) => {
                    w.secret_arns.insert(s.secret_arn.clone());
                }
                ValueRef::Raw { .. } => {}
            }
        }
    }
    w
}

/// Reads everything the plan needs. `concurrency` bounds parallel calls.
pub async fn observe(
    aws: &Aws,
    desired: &Desired,
    controller_id: &str,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<Observed, AwsError> {
    let w = wanted(desired, aws);
    let mut o = Observed::new(aws.scope.clone());
    let ((params, undeclared_params), (secrets, undeclared_secrets), (roles, owned_roles), services) = tokio::try_join!(
        parameters(aws, desired, &w, controller_id, concurrency),
        secrets(aws, desired, &w, controller_id, concurrency),
        roles_and_owned(aws, &w.roles, controller_id, slow, concurrency),
        describe_services(aws, desired.services.values().map(|s| (s.cluster.as_str(), s.service_name.as_str()))),
    )?;
    o.parameters = params;
    o.secrets = secrets;
    o.undeclared.parameters = undeclared_params;
    o.undeclared.secrets = undeclared_secrets;
    o.undeclared.roles = owned_roles.into_iter().filter(|r| !w.roles.contains(&r.name)).collect();
    o.undeclared.roles_read = true;
    o.roles = roles;
    o.services = services;
    o.keys = keys(aws, desired, &o, slow, concurrency).await?;
    Ok(o)
}
