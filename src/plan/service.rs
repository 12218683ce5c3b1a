//! Planning one ECS service, in three pure stages with the reads each
//! decision needs between them (so every service is planned once, and no
//! stage sends the caller back for more):
//!
//! 1. `Planner::service` resolves its references and plans its roles: a final
//!    plan (a problem, or the service still runs what apply deployed from the
//!    same inputs), or a [`Wired`] draft that names the revision it runs;
//! 2. [`Wired::render`] renders the task definition on its base (template or
//!    running revision): final, or a [`Rendered`] draft that says whether the
//!    family's newest revision matters (only when the running one differs);
//! 3. [`Rendered::decide`] picks the revision (reuse or register) and the
//!    UpdateService to it.

use serde_json::Value;

use super::*;

/// A service after a stage: its final plan, or a draft for the next stage.
pub enum Staged<T> {
    Done(ObjectPlan),
    Next(Box<T>),
}

/// A service planned as far as observed state allows without reading a revision.
pub type Draft<'d> = Staged<Wired<'d>>;

/// A service whose references and roles are planned; its revision is not decided.
pub struct Wired<'d> {
    def: &'d ServiceDef,
    plan: ObjectPlan,
    wiring: Wiring,
    digest: String,
    /// Some reference waits on a repo object not created yet.
    pending: bool,
    /// The revision the service runs, as ECS reports it.
    running: String,
    service_arn: String,
    controller_id: String,
    /// The family a registration goes to.
    family: String,
}

/// A service whose task definition is rendered; which revision to run is not decided.
pub struct Rendered<'d> {
    w: Wired<'d>,
    rendered: Value,
    /// The running revision, if it is of the service's family.
    running_def: Option<Value>,
    /// What a registered revision is tagged with.
    tags: Tags,
}

impl Draft<'_> {
    /// The revision this draft's next stage reads, if the cache has not got it.
    pub fn running_needed(&self, o: &Observed) -> Option<&str> {
        let Staged::Next(w) = self else { return None };
        let known = o.revisions.contains_key(&w.running) || o.revisions_missing.contains(&w.running);
        (!known).then_some(w.running.as_str())
    }
}

impl Planner<'_> {
    pub(super) fn service<'d>(&self, def: &'d ServiceDef) -> Draft<'d> {
        let key = ObjectKey::new(Kind::Service, &def.name);
        let mut plan = ObjectPlan::new(key.clone());
        let svc_resource = svc_resource(def);
        let Some(svc) = self.o.services.get(&(def.cluster.clone(), def.service_name.clone())) else {
            plan.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: Reason::ServiceNotFound,
                resource: svc_resource,
                message: "not found; secretwire wires existing services, it does not create them".into(),
            });
            return Staged::Done(plan);
        };
        if svc.deployment_controller != "ECS" {
            plan.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: Reason::UnsupportedDeploymentController,
                resource: svc_resource,
                message: format!(
                    "uses the {} deployment controller; UpdateService cannot change its task definition",
                    svc.deployment_controller
                ),
            });
            return Staged::Done(plan);
        }
        // Resolve every reference; any that cannot be resolved stops the service.
        let mut grants = Grants::default();
        let mut resolved: Vec<String> = Vec::new();
        let mut pending = false;
        for r in def.value_refs() {
            plan.problems.extend(self.cross_account(r));
            match self.resolve(r, &mut grants) {
                Resolution::Ready(v) => resolved.push(v),
                Resolution::Pending(v, waits_on) => {
                    pending = true;
                    plan.waits_on.push(waits_on);
                    resolved.push(v);
                }
                Resolution::Problem(kind, reason, resource, message) => {
                    plan.problems.push(Problem { kind, reason, resource, message })
                }
            }
        }
        if plan.problems.iter().any(|p| p.kind.blocks()) {
            return Staged::Done(plan);
        }
        let exec_policy = policy::execution_policy(&grants, &self.o.scope);
        let exec = &def.execution_role;
        let owner = RoleOwner { key: &key, def };
        let exec_arn =
            self.role(&mut plan, &owner, exec, policy::execution_trust(&self.o.scope), exec_policy, "execution role");
        let task_arn = def.task_role.as_ref().and_then(|t| {
            self.role(
                &mut plan,
                &owner,
                &t.role,
                policy::task_trust(&self.o.scope),
                policy::task_policy(&t.statements),
                "task role",
            )
        });
        let (Some(exec_arn), true) = (exec_arn, def.task_role.is_none() || task_arn.is_some()) else {
            return Staged::Done(plan);
        };
        // The task definition: base with our wiring.
        let family = family_of(def, &svc.task_definition);
        let td_resource = td_resource(&family);
        let running_short = task_definition_short(&svc.task_definition).to_string();
        let mut values = resolved.into_iter();
        let wiring = Wiring {
            execution_role_arn: exec_arn,
            task_role_arn: task_arn,
            containers: def
                .containers
                .iter()
                .map(|c| taskdef::ContainerWiring {
                    name: c.name.clone(),
                    secrets: c.secrets.iter().map(|s| (s.name.clone(), values.next().unwrap_or_default())).collect(),
                    log_secrets: c
                        .log_secrets
                        .iter()
                        .map(|s| (s.name.clone(), values.next().unwrap_or_default()))
                        .collect(),
                    repository_credentials: c
                        .repository_credentials
                        .as_ref()
                        .map(|_| values.next().unwrap_or_default()),
                })
                .collect(),
        };
        // Still running what apply deployed, rendered from the same inputs: unchanged,
        // without reading the revision.
        let digest = taskdef::digest(def.template.as_ref(), &family, &wiring);
        if !pending
            && !self.keep_rendered
            && svc.applied.as_deref() == Some(&taskdef::applied_tag(&svc.task_definition, &digest))
        {
            plan.kept_revision = Some(running_short.clone());
            plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Unchanged,
                resource: td_resource,
                detail: running_short.clone(),
                ops: vec![],
            });
            plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Unchanged,
                resource: svc_resource,
                detail: format!("runs {running_short}"),
                ops: vec![],
            });
            return Staged::Done(plan);
        }
        Staged::Next(Box::new(Wired {
            def,
            plan,
            wiring,
            digest,
            pending,
            running: svc.task_definition.clone(),
            service_arn: svc.arn.clone(),
            controller_id: self.id.to_string(),
            family,
        }))
    }
}

/// The tags a registered revision gets: ours, then the base's own (the
/// template's `tags`, or the running revision's), ours winning on a clash.
fn revision_tags(controller_id: &str, key: &ObjectKey, def: &ServiceDef, base: &Value) -> Tags {
    let policy = [(TAG_DELETION_POLICY.to_string(), def.deletion_policy.as_str().to_string())].into();
    let mut tags = owned_tags(controller_id, key, &def.origin, &policy);
    for t in base["tags"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (t["key"].as_str(), t["value"].as_str()) {
            tags.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    tags
}

/// The family a registered revision gets (`ServiceDef::family_from_running`).
fn family_of(def: &ServiceDef, running: &str) -> String {
    let running_family = task_definition_short(running).rsplit_once(':').map(|(f, _)| f).filter(|f| !f.is_empty());
    match running_family {
        Some(f) if def.family_from_running => f.to_string(),
        _ => def.family.clone(),
    }
}

fn td_resource(family: &str) -> String {
    format!("task definition {family}")
}

fn svc_resource(def: &ServiceDef) -> String {
    format!("ecs service {}/{}", def.cluster, def.service_name)
}

impl<'d> Wired<'d> {
    /// Stage 2: the task definition on its base. `o` holds the running
    /// revision if it could be read (`Draft::running_needed`).
    pub fn render(self, o: &Observed, keep_rendered: bool) -> Staged<Rendered<'d>> {
        let mut w = self;
        let def = w.def;
        // Parsed once here, dropped when this service is planned.
        let running: Option<Value> = o.revisions.get(&w.running).map(|r| r.value());
        let base = match &def.template {
            Some(t) => Some(t),
            None => running.as_ref(),
        };
        let Some(base) = base else {
            w.plan.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: Reason::RevisionUnreadable,
                resource: td_resource(&w.family),
                message: format!("the revision the service runs ({}) could not be read", w.running),
            });
            return Staged::Done(w.plan);
        };
        let mut rendered = match taskdef::render(base, &w.family, &w.wiring) {
            Ok(r) => r,
            Err(e) => {
                w.plan.problems.push(Problem {
                    kind: ProblemKind::Error,
                    reason: Reason::RenderFailed,
                    resource: td_resource(&w.family),
                    message: e.to_string(),
                });
                return Staged::Done(w.plan);
            }
        };
        if let Some(live) = &running {
            let scope = &o.scope;
            taskdef::keep_equivalent_forms(&mut rendered, live, |have, want, creds| {
                crate::arn::same_value_from(have, want, scope, creds)
            });
        }
        let tags = revision_tags(&w.controller_id, &w.plan.key, w.def, base);
        if keep_rendered {
            // What `render` prints is what would be registered, tags included.
            let mut shown = rendered.clone();
            shown["tags"] = Value::Array(tags.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect());
            w.plan.rendered = Some(shown);
        }
        let running_def = running.filter(|r| r["family"].as_str() == Some(w.family.as_str()));
        Staged::Next(Box::new(Rendered { w, rendered, running_def, tags }))
    }
}

impl Rendered<'_> {
    /// Whether the running revision already is the rendered one.
    fn running_matches(&self) -> bool {
        !self.w.pending && self.running_def.as_ref().is_some_and(|r| !taskdef::differs(&self.rendered, r))
    }

    /// The family whose newest revision stage 3 reads: only when the running
    /// revision differs (the newest may already be what we would register).
    pub fn newest_needed(&self, o: &Observed) -> Option<&str> {
        let family = self.w.family.as_str();
        (!self.running_matches() && !o.newest_revisions.contains_key(family)).then_some(family)
    }

    /// Stage 3: reuse a revision that equals the rendered one (the running
    /// revision first, then the family's newest) or register one; then the
    /// UpdateService to it.
    pub fn decide(self, o: &Observed) -> ObjectPlan {
        let running_matches = self.running_matches();
        let Rendered { w, rendered, running_def, tags } = self;
        let Wired { def, mut plan, digest, pending, running: running_arn, service_arn, family, .. } = w;
        let td_resource = td_resource(&family);
        let svc_resource = svc_resource(def);
        let running_short = task_definition_short(&running_arn).to_string();
        let newest_parsed: Option<Value>;
        let newest = if running_matches {
            running_def.as_ref()
        } else {
            newest_parsed = o.newest_revisions.get(&family).and_then(|n| n.as_ref().map(|r| r.value()));
            newest_parsed.as_ref()
        };
        let target = match newest {
            Some(n) if !pending && !taskdef::differs(&rendered, n) => {
                let arn = n["taskDefinitionArn"].as_str().unwrap_or_default().to_string();
                plan.kept_revision = Some(task_definition_short(&arn).to_string());
                plan.changes.push(Change {
                    diff: Vec::new(),
                    action: Action::Unchanged,
                    resource: td_resource,
                    detail: task_definition_short(&arn).to_string(),
                    ops: vec![],
                });
                Some(arn)
            }
            _ => {
                let detail = match (newest, pending) {
                    (_, true) => "register a new revision (references known after apply)".to_string(),
                    (Some(n), false) => {
                        format!("register a new revision: {}", taskdef::changed_fields(&rendered, n).join(", "))
                    }
                    (None, false) => match running_def.as_ref() {
                        Some(r) => {
                            format!("register a new revision: {}", taskdef::changed_fields(&rendered, r).join(", "))
                        }
                        None => "register the first revision of the family".to_string(),
                    },
                };
                // What changes for the service: its wiring now (the running revision,
                // else the family's newest) against the new one, pending or not, so a
                // removal is never hidden behind "known after apply".
                let diff = taskdef::wiring_diff(running_def.as_ref().or(newest), &rendered);
                plan.changes.push(Change {
                    diff,
                    action: if newest.is_some() || running_def.is_some() { Action::Update } else { Action::Create },
                    resource: td_resource,
                    detail,
                    ops: vec![Op::RegisterTaskDefinition { body: rendered, tags }],
                });
                None
            }
        };
        let running = running_short;
        match target {
            Some(arn) if task_definition_short(&arn) == running => plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Unchanged,
                resource: svc_resource,
                detail: format!("runs {running}"),
                ops: vec![],
            }),
            target => {
                let to = target.as_deref().map(task_definition_short).unwrap_or("the new revision").to_string();
                plan.changes.push(Change {
                    diff: Vec::new(),
                    action: Action::Update,
                    resource: svc_resource,
                    detail: format!("{running} -> {to}"),
                    ops: vec![Op::UpdateService {
                        cluster: def.cluster.clone(),
                        service: def.service_name.clone(),
                        task_definition: target,
                        service_arn,
                        digest,
                    }],
                });
            }
        }
        plan
    }
}
