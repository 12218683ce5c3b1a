//! Planning one ECS service: resolve its references, its roles, the task
//! definition revision it should run (registered only when the rendered one
//! differs), and the UpdateService to it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

impl Planner<'_> {
    pub(super) fn service(
        &self,
        def: &ServiceDef,
        needs_newest: &mut BTreeSet<String>,
        needs_running: &mut BTreeSet<String>,
    ) -> ObjectPlan {
        let key = ObjectKey::new(Kind::Service, &def.name);
        let mut plan = ObjectPlan::new(key.clone());
        let svc_resource = format!("ecs service {}/{}", def.cluster, def.service_name);
        let Some(svc) = self.o.services.get(&(def.cluster.clone(), def.service_name.clone())) else {
            plan.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: Reason::ServiceNotFound,
                resource: svc_resource,
                message: "not found; secretwire wires existing services, it does not create them".into(),
            });
            return plan;
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
            return plan;
        }
        // Resolve every reference; any that cannot be resolved stops the service.
        let mut grants = Grants::default();
        let mut resolved: Vec<String> = Vec::new();
        let mut pending = false;
        for r in def.value_refs() {
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
        if !plan.problems.is_empty() {
            return plan;
        }
        let exec_policy = policy::execution_policy(&grants, &self.o.scope);
        let exec = &def.execution_role;
        let exec_arn =
            self.role(&mut plan, &key, exec, policy::execution_trust(&self.o.scope), exec_policy, "execution role");
        let task_arn = def.task_role.as_ref().and_then(|t| {
            self.role(
                &mut plan,
                &key,
                &t.role,
                policy::task_trust(&self.o.scope),
                policy::task_policy(&t.statements),
                "task role",
            )
        });
        let (Some(exec_arn), true) = (exec_arn, def.task_role.is_none() || task_arn.is_some()) else {
            return plan;
        };
        // The task definition: base with our wiring.
        let td_resource = format!("task definition {}", def.family);
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
        let digest = taskdef::digest(def.template.as_ref(), &def.family, &wiring);
        if !pending
            && !self.keep_rendered
            && svc.applied.as_deref() == Some(&taskdef::applied_tag(&svc.task_definition, &digest))
        {
            plan.kept_revision = Some(running_short.clone());
            plan.changes.push(Change {
                action: Action::Unchanged,
                resource: td_resource,
                detail: running_short.clone(),
                ops: vec![],
            });
            plan.changes.push(Change {
                action: Action::Unchanged,
                resource: svc_resource,
                detail: format!("runs {running_short}"),
                ops: vec![],
            });
            return plan;
        }
        if !self.o.revisions.contains_key(&svc.task_definition)
            && !self.o.revisions_missing.contains(&svc.task_definition)
        {
            needs_running.insert(svc.task_definition.clone());
            return plan;
        }
        // Parsed once here, dropped when this service is planned.
        let running: Option<Value> = self.o.revisions.get(&svc.task_definition).map(|r| r.value());
        let base = match &def.template {
            Some(t) => Some(t),
            None => running.as_ref(),
        };
        let Some(base) = base else {
            plan.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: Reason::RevisionUnreadable,
                resource: td_resource,
                message: format!("the revision the service runs ({}) could not be read", svc.task_definition),
            });
            return plan;
        };
        let rendered = match taskdef::render(base, &def.family, &wiring) {
            Ok(r) => r,
            Err(e) => {
                plan.problems.push(Problem {
                    kind: ProblemKind::Error,
                    reason: Reason::RenderFailed,
                    resource: td_resource,
                    message: e.to_string(),
                });
                return plan;
            }
        };
        if self.keep_rendered {
            plan.rendered = Some(rendered.clone());
        }
        // The revision the service runs is the first candidate (cached, immutable);
        // the family's newest only matters when that one differs.
        let running_def = running.as_ref().filter(|r| r["family"].as_str() == Some(def.family.as_str()));
        let newest_parsed: Option<Value>;
        let newest = match running_def {
            Some(r) if !pending && !taskdef::differs(&rendered, r) => Some(r),
            _ => match self.o.newest_revisions.get(&def.family) {
                Some(n) => {
                    newest_parsed = n.as_ref().map(|r| r.value());
                    newest_parsed.as_ref()
                }
                None => {
                    needs_newest.insert(def.family.clone());
                    None
                }
            },
        };
        let target = match newest {
            Some(n) if !pending && !taskdef::differs(&rendered, n) => {
                let arn = n["taskDefinitionArn"].as_str().unwrap_or_default().to_string();
                plan.kept_revision = Some(task_definition_short(&arn).to_string());
                plan.changes.push(Change {
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
                    (None, false) => match running_def {
                        Some(r) => {
                            format!("register a new revision: {}", taskdef::changed_fields(&rendered, r).join(", "))
                        }
                        None => "register the first revision of the family".to_string(),
                    },
                };
                let mut tags = owned_tags(self.id, &key, &BTreeMap::new());
                if let Some(Value::Array(tt)) = def.template.as_ref().map(|t| &t["tags"]) {
                    for t in tt {
                        if let (Some(k), Some(v)) = (t["key"].as_str(), t["value"].as_str()) {
                            tags.entry(k.to_string()).or_insert_with(|| v.to_string());
                        }
                    }
                }
                plan.changes.push(Change {
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
                action: Action::Unchanged,
                resource: svc_resource,
                detail: format!("runs {running}"),
                ops: vec![],
            }),
            target => {
                let to = target.as_deref().map(task_definition_short).unwrap_or("the new revision").to_string();
                plan.changes.push(Change {
                    action: Action::Update,
                    resource: svc_resource,
                    detail: format!("{running} -> {to}"),
                    ops: vec![Op::UpdateService {
                        cluster: def.cluster.clone(),
                        service: def.service_name.clone(),
                        task_definition: target,
                        service_arn: svc.arn.clone(),
                        digest,
                    }],
                });
            }
        }
        plan
    }
}
