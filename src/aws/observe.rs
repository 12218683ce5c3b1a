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
use crate::model::{Desired, ValueRef};
use crate::observed::*;
use crate::policy::{INLINE_POLICY_NAME, decode_document};

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
}

/// By name: what was found (or that nothing was), and when it was read.
type Remembered<T> = Mutex<HashMap<String, (Option<T>, std::time::Instant)>>;

impl SlowCache {
    pub fn new(reverify: std::time::Duration) -> Self {
        Self { reverify, ..Self::default() }
    }

    pub fn forget_role(&self, name: &str) {
        self.roles.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
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
pub(crate) async fn roles_for_tests(
    aws: &Aws,
    w: &Wanted,
    slow: &SlowCache,
) -> Result<BTreeMap<String, Arc<ObservedRole>>, AwsError> {
    roles(aws, &w.roles, slow, 4).await
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
            match v {
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
    let (params, secrets, roles, services) = tokio::try_join!(
        parameters(aws, desired, &w, controller_id, concurrency),
        secrets(aws, &w, controller_id, concurrency),
        roles(aws, &w.roles, slow, concurrency),
        describe_services(aws, desired.services.values().map(|s| (s.cluster.as_str(), s.service_name.as_str()))),
    )?;
    o.parameters = params;
    o.secrets = secrets;
    o.roles = roles;
    o.services = services;
    o.keys = keys(aws, desired, &o, slow, concurrency).await?;
    Ok(o)
}

fn observed_parameter(p: &aws_sdk_ssm::types::ParameterMetadata) -> Option<ObservedParameter> {
    Some(ObservedParameter {
        name: p.name()?.to_string(),
        kind: p.r#type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        key_id: p.key_id().map(str::to_string),
        description: p.description().map(str::to_string),
        tags: Tags::new(),
        last_modified: p.last_modified_date().map(|d| d.as_secs_f64()),
    })
}

/// The last-change time AWS reports now for each changed value (one
/// DescribeParameters per 50 names, one DescribeSecret per secret). Read only
/// when an event's whole-second time cannot tell whether a deployment came
/// after it; a value that cannot be read is left out, and its reader redeployed.
pub async fn last_change_times(
    aws: &Aws,
    values: &BTreeSet<ChangedValue>,
    concurrency: usize,
) -> BTreeMap<ChangedValue, f64> {
    let mut times = BTreeMap::new();
    let (mut names, mut ids) = (Vec::new(), Vec::new());
    for v in values {
        match v {
            ChangedValue::Parameter(n) => names.push(n.clone()),
            ChangedValue::Secret(id) => ids.push(id.clone()),
        }
    }
    for chunk in names.chunks(50) {
        match async { describe_parameters(aws, names_filter(chunk)?).await }.await {
            Ok(found) => times
                .extend(found.into_iter().filter_map(|p| Some((ChangedValue::Parameter(p.name), p.last_modified?)))),
            Err(e) => tracing::debug!(error = %e, "Could not read parameter change times"),
        }
    }
    let described = bounded(ids, concurrency, |id| {
        let sm = aws.secrets.clone();
        async move {
            let out = sm.describe_secret().secret_id(&id).send().await.map_err(|e| classify("DescribeSecret", e));
            (id, out.map(|d| d.last_changed_date().map(|t| t.as_secs_f64())))
        }
    })
    .await;
    for (id, read) in described {
        match read {
            Ok(Some(t)) => {
                times.insert(ChangedValue::Secret(id), t);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "Could not read a secret's change time"),
        }
    }
    times
}

/// DescribeParameters' filter for these exact names (at most 50).
fn names_filter(names: &[String]) -> Result<ParameterStringFilter, AwsError> {
    ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .set_values(Some(names.to_vec()))
        .build()
        .map_err(|e| AwsError::other("DescribeParameters", e.to_string()))
}

/// Every page of DescribeParameters for one filter.
async fn describe_parameters(aws: &Aws, filter: ParameterStringFilter) -> Result<Vec<ObservedParameter>, AwsError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .ssm
            .describe_parameters()
            .parameter_filters(filter.clone())
            .max_results(50)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("DescribeParameters", e))?;
        all.extend(out.parameters().iter().filter_map(observed_parameter));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Every page of ListSecrets for these filters (ANDed).
async fn list_secrets(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<ObservedSecret>, AwsError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .secrets
            .list_secrets()
            .set_filters(Some(filters.clone()))
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("ListSecrets", e))?;
        all.extend(out.secret_list().iter().filter_map(secret_from_list));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Parameters: first everything this controller owns (one tag-filtered query,
/// 50 a page), then by name only what is not owned (external references,
/// missing or unowned declarations).
async fn parameters(
    aws: &Aws,
    desired: &Desired,
    w: &Wanted,
    controller_id: &str,
    concurrency: usize,
) -> Result<BTreeMap<String, ObservedParameter>, AwsError> {
    let mut found = BTreeMap::new();
    let owned_filter = ParameterStringFilter::builder()
        .key(format!("tag:{TAG_MANAGED_BY}"))
        .option("Equals")
        .values(controller_id)
        .build()
        .map_err(|e| AwsError::other("DescribeParameters", e.to_string()))?;
    for mut p in describe_parameters(aws, owned_filter).await? {
        if w.parameters.contains(&p.name) {
            // Ownership is what the filter proved; the source tag is ours by construction.
            p.tags.insert(TAG_MANAGED_BY.into(), controller_id.into());
            p.tags.insert(TAG_SOURCE.into(), format!("Parameter/{}", p.name));
            found.insert(p.name.clone(), p);
        }
    }
    let owned_found: BTreeSet<String> = found.keys().cloned().collect();
    let names: Vec<String> = w.parameters.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    for chunk in names.chunks(50) {
        for p in describe_parameters(aws, names_filter(chunk)?).await? {
            if chunk.contains(&p.name) {
                found.insert(p.name.clone(), p);
            }
        }
    }
    // Full tags only where they decide something: declared parameters that are
    // not ours (conflict or adoption), and ours whose manifest adds tags.
    let owned: Vec<String> = found
        .keys()
        .filter(|n| w.owned_parameters.contains(*n))
        .filter(|n| !owned_found.contains(*n) || desired.parameters.get(*n).is_some_and(|d| !d.tags.is_empty()))
        .cloned()
        .collect();
    let tag_results = bounded(owned, concurrency, |name| {
        let ssm = aws.ssm.clone();
        async move {
            let out = ssm
                .list_tags_for_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .send()
                .await
                .map_err(|e| classify("ListTagsForResource", e))?;
            let tags = tags_of(out.tag_list().iter().map(|t| (Some(t.key()), Some(t.value()))));
            Ok::<_, AwsError>((name, tags))
        }
    })
    .await;
    for r in tag_results {
        let (name, tags) = r?;
        if let Some(p) = found.get_mut(&name) {
            p.tags = tags;
        }
    }
    Ok(found)
}

fn secret_from_list(s: &aws_sdk_secretsmanager::types::SecretListEntry) -> Option<ObservedSecret> {
    Some(ObservedSecret {
        name: s.name()?.to_string(),
        arn: s.arn()?.to_string(),
        kms_key_id: s.kms_key_id().map(str::to_string),
        description: s.description().map(str::to_string),
        tags: tags_of(s.tags().iter().map(|t| (t.key(), t.value()))),
        last_changed: s.last_changed_date().map(|d| d.as_secs_f64()),
    })
}

/// Secrets: everything this controller owns in one tag-filtered listing (100 a
/// page, tags included), then by name what is not owned, then by ARN.
async fn secrets(
    aws: &Aws,
    w: &Wanted,
    controller_id: &str,
    concurrency: usize,
) -> Result<BTreeMap<String, ObservedSecret>, AwsError> {
    let mut found = BTreeMap::new();
    let owned = vec![
        Filter::builder().key(FilterNameStringType::TagKey).values(TAG_MANAGED_BY).build(),
        Filter::builder().key(FilterNameStringType::TagValue).values(controller_id).build(),
    ];
    for s in list_secrets(aws, owned).await? {
        // The two filters match independently: check the pair.
        if w.secret_names.contains(&s.name) && s.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(controller_id) {
            found.insert(s.name.clone(), s);
        }
    }
    let names: Vec<String> = w.secret_names.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    for chunk in names.chunks(10) {
        // The name filter is a prefix match: keep exact names only.
        let filter = Filter::builder().key(FilterNameStringType::Name).set_values(Some(chunk.to_vec())).build();
        for s in list_secrets(aws, vec![filter]).await? {
            if chunk.contains(&s.name) {
                found.insert(s.name.clone(), s);
            }
        }
    }
    let arns: Vec<String> = w.secret_arns.iter().cloned().collect();
    let described = bounded(arns, concurrency, |arn| {
        let sm = aws.secrets.clone();
        async move {
            match sm.describe_secret().secret_id(&arn).send().await {
                Ok(d) => Ok(Some((
                    arn,
                    ObservedSecret {
                        name: d.name().unwrap_or_default().to_string(),
                        arn: d.arn().unwrap_or_default().to_string(),
                        kms_key_id: d.kms_key_id().map(str::to_string),
                        description: d.description().map(str::to_string),
                        tags: tags_of(d.tags().iter().map(|t| (t.key(), t.value()))),
                        last_changed: d.last_changed_date().map(|d| d.as_secs_f64()),
                    },
                ))),
                Err(e) => {
                    let e = classify("DescribeSecret", e);
                    if e.is_code(&["ResourceNotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    for r in described {
        if let Some((arn, s)) = r? {
            found.insert(arn, s);
        }
    }
    Ok(found)
}

async fn keys(
    aws: &Aws,
    desired: &Desired,
    o: &Observed,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<BTreeMap<String, KmsKey>, AwsError> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    ids.extend(desired.parameters.values().filter_map(|p| p.kms_key_id.clone()));
    ids.extend(desired.secrets.values().filter_map(|s| s.kms_key_id.clone()));
    ids.extend(o.parameters.values().filter_map(|p| p.key_id.clone()));
    ids.extend(o.secrets.values().filter_map(|s| s.kms_key_id.clone()));
    let mut keys = BTreeMap::new();
    let mut lookups = Vec::new();
    for id in ids {
        // `alias/aws/*` names are reserved for AWS managed keys.
        if id.starts_with("alias/aws/") {
            keys.insert(id, KmsKey { arn: String::new(), customer_managed: false });
        } else {
            lookups.push(id);
        }
    }
    let (fresh, stale) = slow.split(&slow.keys, lookups);
    keys.extend(fresh);
    let lookups: Vec<String> = stale.iter().cloned().collect();

    let described = bounded(lookups, concurrency, |id| {
        let kms = aws.kms.clone();
        async move {
            match kms.describe_key().key_id(&id).send().await {
                Ok(out) => {
                    let Some(meta) = out.key_metadata() else { return Ok(None) };
                    let customer = meta.key_manager().is_none_or(|m| m.as_str() == "CUSTOMER");
                    Ok(Some((
                        id,
                        KmsKey { arn: meta.arn().unwrap_or_default().to_string(), customer_managed: customer },
                    )))
                }
                Err(e) => {
                    let e = classify("DescribeKey", e);
                    if e.is_code(&["NotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    let mut found = BTreeMap::new();
    for r in described {
        if let Some((id, k)) = r? {
            found.insert(id, k);
        }
    }
    SlowCache::store(&slow.keys, &stale, &mut found);
    keys.extend(found);
    Ok(keys)
}

/// Above this many roles, one paginated GetAccountAuthorizationDetails is
/// cheaper than three calls per role.
const ROLES_BY_AUTHORIZATION_DETAILS: usize = 10;

async fn roles(
    aws: &Aws,
    wanted: &BTreeSet<String>,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<BTreeMap<String, Arc<ObservedRole>>, AwsError> {
    let (mut out, stale) = slow.split(&slow.roles, wanted.iter().cloned());
    if stale.is_empty() {
        return Ok(out);
    }
    let read = if stale.len() > ROLES_BY_AUTHORIZATION_DETAILS {
        roles_by_authorization_details(aws, &stale).await?
    } else {
        let results = bounded(stale.iter().cloned().collect(), concurrency, |name| {
            let iam = aws.iam.clone();
            async move { read_role(&iam, &name).await }
        })
        .await;
        let mut read = BTreeMap::new();
        for r in results {
            if let Some(role) = r? {
                read.insert(role.name.clone(), role);
            }
        }
        read
    };
    // Shared with the cache, not copied: a role's documents are the bulk of it.
    let mut read: BTreeMap<String, Arc<ObservedRole>> = read.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
    SlowCache::store(&slow.roles, &stale, &mut read);
    out.extend(read);
    Ok(out)
}

async fn roles_by_authorization_details(
    aws: &Aws,
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, ObservedRole>, AwsError> {
    let mut out = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = aws
            .iam
            .get_account_authorization_details()
            .filter(aws_sdk_iam::types::EntityType::Role)
            .max_items(1000)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| classify("GetAccountAuthorizationDetails", e))?;
        for r in page.role_detail_list() {
            let Some(name) = r.role_name() else { continue };
            if !wanted.contains(name) {
                continue;
            }
            let decode = |d: &str| decode_document(d).map_err(|m| AwsError::other("GetAccountAuthorizationDetails", m));
            let trust = r.assume_role_policy_document().map(decode).transpose()?.unwrap_or(Value::Null);
            let trust = (&trust).into();
            let inline_policy = r
                .role_policy_list()
                .iter()
                .find(|p| p.policy_name() == Some(INLINE_POLICY_NAME))
                .and_then(|p| p.policy_document())
                .map(decode)
                .transpose()?
                .map(|d| (&d).into());
            out.insert(
                name.to_string(),
                ObservedRole {
                    name: name.to_string(),
                    arn: r.arn().unwrap_or_default().to_string(),
                    trust,
                    inline_policy,
                    managed_policy_arns: r
                        .attached_managed_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(str::to_string))
                        .collect(),
                    tags: tags_of(r.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
                },
            );
        }
        marker = page.marker().map(str::to_string);
        if !page.is_truncated() || marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// GetRole, the `secretwire` inline policy, and attached managed policies.
pub async fn read_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<ObservedRole>, AwsError> {
    let role = match iam.get_role().role_name(name).send().await {
        Ok(r) => r,
        Err(e) => {
            let e = classify("GetRole", e);
            return if e.is_code(&["NoSuchEntity"]) { Ok(None) } else { Err(e) };
        }
    };
    let Some(role) = role.role() else { return Ok(None) };
    let trust = role
        .assume_role_policy_document()
        .map(decode_document)
        .transpose()
        .map_err(|m| AwsError::other("GetRole", m))?
        .unwrap_or(Value::Null);
    let trust = (&trust).into();
    let inline_policy = match iam.get_role_policy().role_name(name).policy_name(INLINE_POLICY_NAME).send().await {
        Ok(p) => Some((&decode_document(p.policy_document()).map_err(|m| AwsError::other("GetRolePolicy", m))?).into()),
        Err(e) => {
            let e = classify("GetRolePolicy", e);
            if e.is_code(&["NoSuchEntity"]) {
                None
            } else {
                return Err(e);
            }
        }
    };
    let mut managed = BTreeSet::new();
    let mut marker = None;
    loop {
        let out = iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| classify("ListAttachedRolePolicies", e))?;
        managed.extend(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
        marker = out.marker().map(str::to_string);
        if !out.is_truncated() || marker.is_none() {
            break;
        }
    }
    Ok(Some(ObservedRole {
        name: name.to_string(),
        arn: role.arn().to_string(),
        trust,
        inline_policy,
        managed_policy_arns: managed,
        tags: tags_of(role.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
    }))
}

/// DescribeServices for `(cluster, service)` pairs, ten per call.
pub async fn describe_services<'a>(
    aws: &Aws,
    services: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<(String, String), ObservedService>, AwsError> {
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (cluster, service) in services {
        by_cluster.entry(cluster).or_default().push(service.to_string());
    }
    let mut out = BTreeMap::new();
    for (cluster, names) in by_cluster {
        for chunk in names.chunks(10) {
            let res = aws
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await;
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    let e = classify("DescribeServices", e);
                    // A missing cluster means missing services, which the plan reports.
                    if e.is_code(&["ClusterNotFoundException"]) {
                        continue;
                    }
                    return Err(e);
                }
            };
            for s in res.services() {
                let (Some(name), Some(status)) = (s.service_name(), s.status()) else { continue };
                if status == "INACTIVE" {
                    continue;
                }
                let deployments = s
                    .deployments()
                    .iter()
                    .map(|d| Deployment {
                        id: d.id().unwrap_or_default().to_string(),
                        status: d.status().unwrap_or_default().to_string(),
                        task_definition: d.task_definition().unwrap_or_default().to_string(),
                        created_at: d.created_at().map(|t| t.as_secs_f64()),
                    })
                    .collect();
                out.insert(
                    (cluster.to_string(), name.to_string()),
                    ObservedService {
                        arn: s.service_arn().unwrap_or_default().to_string(),
                        status: status.to_string(),
                        task_definition: s.task_definition().unwrap_or_default().to_string(),
                        deployment_controller: s
                            .deployment_controller()
                            .map(|c| c.r#type().as_str().to_string())
                            .unwrap_or_else(|| "ECS".into()),
                        deployments,
                        applied: s
                            .tags()
                            .iter()
                            .find(|t| t.key() == Some(TAG_APPLIED))
                            .and_then(|t| t.value().map(str::to_string)),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Revisions services run, read only when a plan needs them (cached by ARN:
/// a revision never changes).
pub async fn running_revisions(
    aws: &Aws,
    ids: &BTreeSet<String>,
    o: &mut Observed,
    cache: &RevisionCache,
    concurrency: usize,
) -> Result<(), AwsError> {
    let mut missing = Vec::new();
    for id in ids {
        match find_cached(cache, id) {
            Some(v) => {
                o.revisions.insert(id.clone(), v);
            }
            None => missing.push(id.clone()),
        }
    }
    let fetched = bounded(missing, concurrency, |id| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&id).await.map(|td| (id, td)) }
    })
    .await;
    for r in fetched {
        let (id, td) = r?;
        match td {
            Some(td) => {
                o.revisions.insert(id, remember(cache, td));
            }
            None => {
                o.revisions_missing.insert(id);
            }
        }
    }
    Ok(())
}

/// The newest ACTIVE revision of each family, read only when a plan needs it.
pub async fn newest_revisions(
    aws: &Aws,
    families: &BTreeSet<String>,
    o: &mut Observed,
    cache: &RevisionCache,
    concurrency: usize,
) -> Result<(), AwsError> {
    let newest = bounded(families.iter().cloned().collect(), concurrency, |family| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&family).await.map(|td| (family, td)) }
    })
    .await;
    for r in newest {
        let (family, td) = r?;
        o.newest_revisions.insert(family, td.map(|td| remember(cache, td)));
    }
    Ok(())
}

fn remember(cache: &RevisionCache, td: Value) -> Arc<Revision> {
    let rev = Arc::new(Revision::from(&td));
    if let Some(arn) = td["taskDefinitionArn"].as_str() {
        cache.lock().unwrap_or_else(|e| e.into_inner()).insert(arn.to_string(), rev.clone());
    }
    rev
}

/// Looks a revision up by ARN or by `family:revision` (emulators echo the short form).
fn find_cached(cache: &RevisionCache, id: &str) -> Option<Arc<Revision>> {
    let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(id) {
        return Some(v.clone());
    }
    let short = crate::arn::task_definition_short(id);
    cache.iter().find(|(arn, _)| crate::arn::task_definition_short(arn) == short).map(|(_, v)| v.clone())
}
