//! Prune: what this controller owns (its `managed-by` tag) that no manifest
//! declares any more. Pure: each object becomes `-` lines in the plan, with
//! what will happen (`Delete`, or for `Retain` our tags removed), or why it
//! waits (still referenced, still run by a deployment). The guard refuses the
//! whole pass when it would prune more than `--max-prune`, when the manifests
//! have errors, or when they declare nothing.

use super::*;
use crate::observed::Undeclared;

/// Why a pass prunes nothing, or how much it may prune.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Guard {
    /// Objects prune would act on this pass (waiting ones are not counted).
    pub prunable: usize,
    /// Objects found carrying this controller's ownership tag.
    pub owned: usize,
    /// `--max-prune`, or 25% of `owned` (at least 1).
    pub max: usize,
    /// Why nothing is pruned this pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Prune {
    pub objects: Vec<ObjectPlan>,
    pub guard: Guard,
}

impl Prune {
    /// The ops prune would send, if the guard lets it.
    pub fn allowed(&self) -> bool {
        self.guard.refused.is_none() && self.guard.prunable > 0
    }
}

/// `cluster/service` from a role's `secretwire.dev/service` tag.
pub fn service_of(role: &ObservedRole) -> Option<(String, String)> {
    let (c, s) = role.tags.get(TAG_SERVICE)?.split_once('/')?;
    Some((c.to_string(), s.to_string()))
}

/// The revision number at the end of `family:N` or a task definition ARN.
pub fn revision_number(id: &str) -> Option<u64> {
    id.rsplit_once(':')?.1.parse().ok()
}

/// The family of `family:N` or a task definition ARN.
pub fn family_of(id: &str) -> Option<&str> {
    let short = crate::arn::task_definition_short(id);
    short.rsplit_once(':').map(|(f, _)| f).filter(|f| !f.is_empty())
}

/// The family a declared service registers into, and its history limit,
/// for services whose owned revisions may be deregistered (policy `Delete`).
pub fn managed_families(desired: &Desired, o: &Observed) -> Vec<(String, u32, (String, String))> {
    desired
        .services
        .values()
        .filter(|s| s.deletion_policy == DeletionPolicy::Delete)
        .map(|s| {
            let key = (s.cluster.clone(), s.service_name.clone());
            let running = o.services.get(&key).map(|svc| svc.task_definition.as_str());
            let family = match (s.family_from_running, running.and_then(family_of)) {
                (true, Some(f)) => f.to_string(),
                _ => s.family.clone(),
            };
            (family, s.revision_history_limit, key)
        })
        .collect()
}

/// Every revision a deployment of a known service runs, as `family:N`.
pub fn in_use_revisions(o: &Observed) -> BTreeSet<String> {
    o.services
        .values()
        .chain(o.undeclared.services.values())
        .flat_map(|s| s.deployments.iter().map(|d| d.task_definition.as_str()).chain([s.task_definition.as_str()]))
        .map(|td| crate::arn::task_definition_short(td).to_string())
        .collect()
}

/// The ACTIVE revisions not in use beyond the newest `limit` of them, oldest first.
pub fn candidates<'a>(arns: &'a [String], in_use: &BTreeSet<String>, limit: u32) -> Vec<&'a str> {
    let unused: Vec<&str> =
        arns.iter().map(String::as_str).filter(|a| !in_use.contains(crate::arn::task_definition_short(a))).collect();
    let keep = (limit as usize).min(unused.len());
    unused[..unused.len() - keep].to_vec()
}

/// A revision as observed, by the id a service reports or its ARN.
fn revision(o: &Observed, id: &str) -> Option<Value> {
    if let Some(r) = o.revisions.get(id) {
        return Some(r.value());
    }
    let short = crate::arn::task_definition_short(id);
    o.revisions.iter().find(|(k, _)| crate::arn::task_definition_short(k) == short).map(|(_, r)| r.value())
}

/// Every `valueFrom` and `credentialsParameter` a revision names.
fn value_refs_of(td: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in td["containerDefinitions"].as_array().into_iter().flatten() {
        let lists = [&c["secrets"], &c["logConfiguration"]["secretOptions"]];
        for s in lists.into_iter().filter_map(Value::as_array).flatten() {
            out.extend(s["valueFrom"].as_str().map(str::to_string));
        }
        out.extend(c["repositoryCredentials"]["credentialsParameter"].as_str().map(str::to_string));
    }
    out
}

fn our_tag_keys(tags: &Tags) -> Vec<String> {
    tags.keys().filter(|k| k.starts_with(TAG_PREFIX)).cloned().collect()
}

/// A parameter's listing shows only the tags it proves (ownership, `Delete`):
/// every key secretwire writes on one is removed (absent keys are no error).
fn parameter_tag_keys(tags: &Tags) -> Vec<String> {
    let mut keys: BTreeSet<String> = our_tag_keys(tags).into_iter().collect();
    keys.insert(TAG_DELETION_POLICY.to_string());
    keys.into_iter().collect()
}

/// What references values: the declared services, and the revisions their
/// (and removed services') deployments run.
struct Uses {
    declared: Vec<(String, String)>,
    deployed: Vec<(String, String)>,
}

impl Uses {
    fn new(desired: &Desired, o: &Observed) -> Self {
        let mut declared = Vec::new();
        for s in desired.services.values() {
            for v in s.value_refs() {
                let id = match v {
                    ValueRef::Parameter { name } => name.clone(),
                    ValueRef::Secret { id, .. } => id.clone(),
                    ValueRef::Raw { value_from, .. } => value_from.clone(),
                };
                declared.push((id, format!("Service/{}", s.name)));
            }
        }
        let mut deployed = Vec::new();
        for ((cluster, name), svc) in o.services.iter().chain(o.undeclared.services.iter()) {
            let ids = svc.deployments.iter().map(|d| d.task_definition.as_str()).chain([svc.task_definition.as_str()]);
            for id in ids.collect::<BTreeSet<_>>() {
                let Some(td) = revision(o, id) else { continue };
                let who = format!("ECS service {cluster}/{name} ({})", crate::arn::task_definition_short(id));
                deployed.extend(value_refs_of(&td).into_iter().map(|v| (v, who.clone())));
            }
        }
        Self { declared, deployed }
    }

    /// Who still uses a value known by `name` and `arn`, if anyone.
    fn user(&self, name: &str, arn: &str) -> Option<String> {
        let names =
            |v: &str| v == name || v == arn || v.starts_with(&format!("{arn}:")) || v.starts_with(&format!("{name}:"));
        if let Some((_, who)) = self.declared.iter().find(|(v, _)| names(v)) {
            return Some(format!("still referenced by {who}"));
        }
        self.deployed.iter().find(|(v, _)| names(v)).map(|(_, who)| format!("still used by {who}"))
    }
}

fn waiting(resource: String, why: String) -> Change {
    Change { action: Action::Delete, resource, detail: format!("waits: {why}"), diff: Vec::new(), ops: Vec::new() }
}

fn deleting(resource: String, detail: String, op: Op) -> Change {
    Change { action: Action::Delete, resource, detail, diff: Vec::new(), ops: vec![op] }
}

const RETAINED: &str = "retain: secretwire.dev/* tags removed; declaring it again needs adopt: true";

/// Plans prune over what `observed` holds (see the module doc). `max_prune`
/// is `--max-prune`; `None` is 25% of the owned objects, at least 1.
pub fn plan_prune(desired: &Desired, o: &Observed, controller_id: &str, max_prune: Option<usize>) -> Prune {
    let u: &Undeclared = &o.undeclared;
    let uses = Uses::new(desired, o);
    let mut objects: BTreeMap<ObjectKey, ObjectPlan> = BTreeMap::new();
    let mut add = |key: ObjectKey, change: Change| {
        objects.entry(key.clone()).or_insert_with(|| ObjectPlan::new(key)).changes.push(change);
    };
    for p in &u.parameters {
        let resource = format!("ssm parameter {}", p.name);
        let key = ObjectKey::new(Kind::Parameter, &p.name);
        let change = match (DeletionPolicy::of(&p.tags), uses.user(&p.name, &o.scope.parameter_arn(&p.name))) {
            (DeletionPolicy::Delete, Some(why)) => waiting(resource, why),
            (DeletionPolicy::Delete, None) => {
                deleting(resource, "delete".into(), Op::DeleteParameter { name: p.name.clone() })
            }
            (DeletionPolicy::Retain, _) => deleting(
                resource,
                RETAINED.into(),
                Op::UntagParameter { name: p.name.clone(), keys: parameter_tag_keys(&p.tags) },
            ),
        };
        add(key, change);
    }
    for s in u.secrets.iter().filter(|s| !s.deleted) {
        let resource = format!("secret {}", s.name);
        let key = ObjectKey::new(Kind::Secret, &s.name);
        let window = s
            .tags
            .get(TAG_RECOVERY_WINDOW)
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|w| (7..=30).contains(w))
            .unwrap_or(DEFAULT_RECOVERY_WINDOW_DAYS);
        let change = match (DeletionPolicy::of(&s.tags), uses.user(&s.name, &s.arn)) {
            (DeletionPolicy::Delete, Some(why)) => waiting(resource, why),
            (DeletionPolicy::Delete, None) => deleting(
                resource,
                format!("delete, recoverable for {window} days (declare it again to restore it)"),
                Op::DeleteSecret { id: s.arn.clone(), recovery_window_days: window },
            ),
            (DeletionPolicy::Retain, _) => {
                deleting(resource, RETAINED.into(), Op::UntagSecret { id: s.arn.clone(), keys: our_tag_keys(&s.tags) })
            }
        };
        add(key, change);
    }
    for r in &u.roles {
        let owner = r.tags.get(TAG_SOURCE).and_then(|s| s.strip_prefix("Service/")).unwrap_or(&r.name);
        let key = ObjectKey::new(Kind::Service, owner);
        let resource = format!("iam role {}", r.name);
        let change = match DeletionPolicy::of(&r.tags) {
            DeletionPolicy::Retain => {
                deleting(resource, RETAINED.into(), Op::UntagRole { name: r.name.clone(), keys: our_tag_keys(&r.tags) })
            }
            DeletionPolicy::Delete => match role_user(o, r) {
                Some(why) => waiting(resource, why),
                None => deleting(
                    resource,
                    format!(
                        "delete: {}{} managed policy attachments, then the role",
                        if r.inline_policy.is_some() { "inline policy secretwire, " } else { "" },
                        r.managed_policy_arns.len()
                    ),
                    Op::DeleteRole {
                        name: r.name.clone(),
                        inline: r.inline_policy.is_some(),
                        managed: r.managed_policy_arns.iter().cloned().collect(),
                    },
                ),
            },
        };
        add(key, change);
    }
    let in_use = in_use_revisions(o);
    let mut families: Vec<(String, u32, Option<String>)> =
        managed_families(desired, o).into_iter().map(|(f, l, key)| (f, l, desired_service(desired, &key))).collect();
    for svc in u.services.values() {
        if let Some(f) = family_of(&svc.task_definition)
            && !families.iter().any(|(have, _, _)| have == f)
        {
            families.push((f.to_string(), 0, None));
        }
    }
    for (family, limit, declared) in families {
        let Some(arns) = u.families.get(&family) else { continue };
        for arn in candidates(arns, &in_use, limit) {
            // Only what this controller registered (its tags); a removed
            // Service's revisions only if they were registered under `Delete`.
            let Some(reg) = u.registered.get(arn) else { continue };
            if declared.is_none() && reg.policy != DeletionPolicy::Delete {
                continue;
            }
            let owner = declared
                .clone()
                .or_else(|| reg.source.as_deref().and_then(|s| s.strip_prefix("Service/")).map(str::to_string))
                .unwrap_or_else(|| family.clone());
            let detail = if declared.is_some() {
                format!("deregister: no deployment uses it, older than the {limit} kept (revisionHistoryLimit)")
            } else {
                "deregister: no deployment uses it, its Service is gone".to_string()
            };
            add(
                ObjectKey::new(Kind::Service, owner),
                deleting(
                    format!("task definition {}", crate::arn::task_definition_short(arn)),
                    detail,
                    Op::DeregisterTaskDefinition { arn: arn.to_string() },
                ),
            );
        }
    }
    // A removed Service's revisions go before its roles: its families are
    // found through its roles' `secretwire.dev/service` tag, so a prune cut
    // off between the two (kill -9) must leave the roles, never orphaned revisions.
    let deregisters = |c: &Change| c.ops.iter().any(|op| matches!(op, Op::DeregisterTaskDefinition { .. }));
    let objects: Vec<ObjectPlan> = objects
        .into_values()
        .map(|mut o| {
            o.changes.sort_by_key(|c| !deregisters(c));
            o
        })
        .collect();
    let guard = guard(desired, o, controller_id, &objects, max_prune);
    Prune { objects, guard }
}

fn desired_service(desired: &Desired, key: &(String, String)) -> Option<String> {
    desired.services.values().find(|s| (&s.cluster, &s.service_name) == (&key.0, &key.1)).map(|s| s.name.clone())
}

/// Why a role still may not be deleted: a deployment of its ECS service runs
/// a revision that names it (or that could not be read).
fn role_user(o: &Observed, r: &ObservedRole) -> Option<String> {
    let Some(key) = service_of(r) else {
        return Some(format!(
            "no {TAG_SERVICE} tag says which ECS service used it (tagged by an older secretwire); \
             declare it again, or delete it by hand"
        ));
    };
    // Not found: the ECS service is gone, nothing runs the role.
    let svc = o.services.get(&key).or_else(|| o.undeclared.services.get(&key))?;
    let ids: BTreeSet<&str> =
        svc.deployments.iter().map(|d| d.task_definition.as_str()).chain([svc.task_definition.as_str()]).collect();
    for id in ids {
        let short = crate::arn::task_definition_short(id);
        let Some(td) = revision(o, id) else {
            if o.revisions_missing.contains(id) {
                continue;
            }
            return Some(format!("revision {short} of ECS service {}/{} could not be read", key.0, key.1));
        };
        let names = |field: &str| {
            td[field].as_str().is_some_and(|a| a == r.arn || a.ends_with(&format!("/{}", r.name)) || a == r.name)
        };
        if names("executionRoleArn") || names("taskRoleArn") {
            return Some(format!("ECS service {}/{} still runs {short}, which names it", key.0, key.1));
        }
    }
    None
}

fn guard(
    desired: &Desired,
    o: &Observed,
    controller_id: &str,
    objects: &[ObjectPlan],
    max_prune: Option<usize>,
) -> Guard {
    let ours = |t: &Tags| ownership(t, controller_id) == Ownership::Ours;
    let u = &o.undeclared;
    let mut owned: BTreeSet<(Kind, &str)> = BTreeSet::new();
    owned.extend(o.parameters.values().filter(|p| ours(&p.tags)).map(|p| (Kind::Parameter, p.name.as_str())));
    owned.extend(u.parameters.iter().map(|p| (Kind::Parameter, p.name.as_str())));
    owned.extend(o.secrets.values().filter(|s| ours(&s.tags)).map(|s| (Kind::Secret, s.name.as_str())));
    owned.extend(u.secrets.iter().map(|s| (Kind::Secret, s.name.as_str())));
    owned.extend(o.roles.values().filter(|r| ours(&r.tags)).map(|r| (Kind::Service, r.name.as_str())));
    owned.extend(u.roles.iter().map(|r| (Kind::Service, r.name.as_str())));
    let owned = owned.len() + u.families.values().map(Vec::len).sum::<usize>();
    let prunable = objects.iter().flat_map(|o| &o.changes).filter(|c| !c.ops.is_empty()).count();
    let max = max_prune.unwrap_or((owned / 4).max(1));
    let refused = if desired.load_errors > 0 {
        Some(format!("the manifests have {} error(s): nothing is pruned until they load cleanly", desired.load_errors))
    } else if desired.is_empty() {
        Some("the manifests declare nothing (an empty or unreadable directory?): nothing is pruned".to_string())
    } else if prunable > max {
        Some(format!(
            "{prunable} objects would be pruned, more than --max-prune {max}{}: nothing is pruned this pass",
            if max_prune.is_none() { format!(" (25% of the {owned} owned objects)") } else { String::new() }
        ))
    } else {
        None
    };
    Guard { prunable, owned, max, refused }
}
