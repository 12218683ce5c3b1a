//! Planning is a pure function: `plan(&Desired, &Observed) -> Plan`. Each
//! object gets its changes (`+` create, `~` update, `=` unchanged) with the
//! operation that makes it, and its problems (`!` conflict, error, blocked,
//! drift). An empty plan makes no write.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::arn::{RawTarget, task_definition_short};
use crate::model::*;
use crate::observed::*;
use crate::policy::{self, Grants};
use crate::taskdef::{self, Wiring};
use crate::value::InitialValue;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub objects: Vec<ObjectPlan>,
    /// Families whose newest revision must be read before the plan is final
    /// (a registration is needed and it may already exist).
    #[serde(skip)]
    pub needs_newest: BTreeSet<String>,
    /// Revisions services run that must be read before the plan is final
    /// (the service's `secretwire.dev/applied` tag does not vouch for them).
    #[serde(skip)]
    pub needs_running: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectPlan {
    #[serde(flatten)]
    pub key: ObjectKey,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    /// Services: the task definition apply would register (wire shape).
    #[serde(skip)]
    pub rendered: Option<Value>,
}

impl ObjectPlan {
    fn new(key: ObjectKey) -> Self {
        Self { key, changes: Vec::new(), problems: Vec::new(), rendered: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Unchanged => '=',
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub action: Action,
    pub resource: String,
    pub detail: String,
    #[serde(skip)]
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// Exists without our ownership tag: reported, never adopted or overwritten.
    Conflict,
    /// Cannot be applied as declared.
    Error,
    /// Waits on another object's problem.
    Blocked,
    /// Differs in a way secretwire must not fix (it would need a new value).
    Drift,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub resource: String,
    pub message: String,
}

/// One write to AWS. Values are made only when the op runs.
#[derive(Debug, Clone)]
pub enum Op {
    CreateParameter {
        name: String,
        kind: ParameterType,
        key_id: Option<String>,
        description: Option<String>,
        initial: InitialValue,
        tags: Tags,
    },
    TagParameter {
        name: String,
        tags: Tags,
    },
    CreateSecret {
        name: String,
        key_id: Option<String>,
        description: Option<String>,
        initial: InitialValue,
        tags: Tags,
    },
    UpdateSecret {
        id: String,
        description: Option<String>,
        key_id: Option<String>,
    },
    TagSecret {
        id: String,
        tags: Tags,
    },
    CreateRole {
        name: String,
        trust: Value,
        tags: Tags,
    },
    UpdateTrust {
        name: String,
        trust: Value,
    },
    PutRolePolicy {
        name: String,
        document: Value,
    },
    DeleteRolePolicy {
        name: String,
    },
    AttachPolicy {
        name: String,
        arn: String,
    },
    DetachPolicy {
        name: String,
        arn: String,
    },
    TagRole {
        name: String,
        tags: Tags,
    },
    RegisterTaskDefinition {
        body: Value,
        tags: Tags,
    },
    /// `task_definition: None` means "the revision registered just before".
    /// `digest` is recorded on the service with the revision (`secretwire.dev/applied`).
    UpdateService {
        cluster: String,
        service: String,
        task_definition: Option<String>,
        service_arn: String,
        digest: String,
    },
}

impl Op {
    /// The IAM role this op writes, if any.
    pub fn role_name(&self) -> Option<&str> {
        match self {
            Op::CreateRole { name, .. }
            | Op::UpdateTrust { name, .. }
            | Op::PutRolePolicy { name, .. }
            | Op::DeleteRolePolicy { name }
            | Op::AttachPolicy { name, .. }
            | Op::DetachPolicy { name, .. }
            | Op::TagRole { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl Plan {
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut c: BTreeMap<&'static str, usize> =
            ["create", "update", "unchanged", "conflict", "error", "blocked", "drift"]
                .into_iter()
                .map(|k| (k, 0))
                .collect();
        for o in &self.objects {
            for ch in &o.changes {
                *c.entry(match ch.action {
                    Action::Create => "create",
                    Action::Update => "update",
                    Action::Unchanged => "unchanged",
                })
                .or_default() += 1;
            }
            for p in &o.problems {
                *c.entry(match p.kind {
                    ProblemKind::Conflict => "conflict",
                    ProblemKind::Error => "error",
                    ProblemKind::Blocked => "blocked",
                    ProblemKind::Drift => "drift",
                })
                .or_default() += 1;
            }
        }
        c
    }

    pub fn has_changes(&self) -> bool {
        self.objects.iter().any(|o| o.changes.iter().any(|c| c.action != Action::Unchanged))
    }

    /// Problems that make `apply` fail (drift is only reported).
    pub fn has_failures(&self) -> bool {
        self.objects.iter().any(|o| o.problems.iter().any(|p| p.kind != ProblemKind::Drift))
    }

    pub fn object(&self, key: &ObjectKey) -> Option<&ObjectPlan> {
        self.objects.iter().find(|o| &o.key == key)
    }
}

pub fn owned_tags(controller_id: &str, key: &ObjectKey, extra: &BTreeMap<String, String>) -> Tags {
    let mut t = extra.clone();
    t.insert(TAG_MANAGED_BY.into(), controller_id.into());
    t.insert(TAG_SOURCE.into(), key.to_string());
    t
}

/// Tags in `want` that `have` lacks or holds with another value.
fn missing_tags(want: &Tags, have: &Tags) -> Tags {
    want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

struct Planner<'a> {
    /// Keep every service's rendered task definition (for `render`); otherwise
    /// only a registration carries one, which keeps a large pass small.
    keep_rendered: bool,
    d: &'a Desired,
    o: &'a Observed,
    id: &'a str,
    /// Repo objects whose problems block the services that read them.
    troubled: BTreeMap<ObjectKey, String>,
}

/// Plans every object: stores (parameters, secrets) first, then services.
pub fn plan(desired: &Desired, observed: &Observed, controller_id: &str) -> Plan {
    plan_with_options(desired, observed, controller_id, false)
}

/// [`plan`], keeping each service's rendered task definition (what `render` prints).
pub fn plan_with_options(desired: &Desired, observed: &Observed, controller_id: &str, keep_rendered: bool) -> Plan {
    let mut p = Planner { keep_rendered, d: desired, o: observed, id: controller_id, troubled: BTreeMap::new() };
    let mut objects = Vec::new();
    for def in desired.parameters.values() {
        objects.push(p.parameter(def));
    }
    for def in desired.secrets.values() {
        objects.push(p.secret(def));
    }
    for o in &objects {
        if let Some(pr) = o.problems.iter().find(|pr| matches!(pr.kind, ProblemKind::Conflict | ProblemKind::Error)) {
            p.troubled.insert(o.key.clone(), pr.message.clone());
        }
    }
    for key in &desired.invalid {
        p.troubled.insert(key.clone(), "its manifest is invalid".into());
    }
    let (mut needs_newest, mut needs_running) = (BTreeSet::new(), BTreeSet::new());
    for def in desired.services.values() {
        objects.push(p.service(def, &mut needs_newest, &mut needs_running));
    }
    Plan { objects, needs_newest, needs_running }
}

/// A declared value that does not exist and cannot be made.
fn uncreatable(resource: String) -> Problem {
    Problem {
        kind: ProblemKind::Error,
        resource,
        message: "does not exist and has no initialValue to create it from".into(),
    }
}

impl Planner<'_> {
    /// `Some(adopting)` when secretwire may manage the resource; otherwise the
    /// conflict is recorded on the object and `None` returned.
    fn may_manage(&self, plan: &mut ObjectPlan, resource: &str, tags: &Tags, adopt: bool) -> Option<bool> {
        match self.ownership_problem(resource, tags, adopt) {
            Ok(adopting) => Some(adopting),
            Err(p) => {
                plan.problems.push(p);
                None
            }
        }
    }

    fn ownership_problem(&self, resource: &str, tags: &Tags, adopt: bool) -> Result<bool, Problem> {
        match ownership(tags, self.id) {
            Ownership::Ours => Ok(false),
            Ownership::Unmanaged if adopt => Ok(true),
            Ownership::Unmanaged => Err(Problem {
                kind: ProblemKind::Conflict,
                resource: resource.into(),
                message: format!(
                    "exists without the tag {TAG_MANAGED_BY}; not adopted (set adopt: true to take it over)"
                ),
            }),
            Ownership::OtherController(other) => Err(Problem {
                kind: ProblemKind::Conflict,
                resource: resource.into(),
                message: format!("managed by another secretwire controller (id `{other}`)"),
            }),
        }
    }

    /// Records an error when a declared KMS key does not exist; true if so.
    fn missing_key(&self, plan: &mut ObjectPlan, resource: &str, key_id: Option<&str>) -> bool {
        let Some(k) = key_id.filter(|k| !self.o.keys.contains_key(*k)) else { return false };
        plan.problems.push(Problem {
            kind: ProblemKind::Error,
            resource: resource.into(),
            message: format!("KMS key `{k}` not found"),
        });
        true
    }

    /// The ARN of the key a key id names, if it is known and customer managed.
    fn key_arn(&self, key_id: &str) -> Option<&str> {
        self.o.keys.get(key_id).filter(|k| !k.arn.is_empty()).map(|k| k.arn.as_str())
    }

    fn parameter(&self, def: &ParameterDef) -> ObjectPlan {
        let key = ObjectKey::new(Kind::Parameter, &def.name);
        let resource = format!("ssm parameter {}", def.name);
        let tags = owned_tags(self.id, &key, &def.tags);
        let mut plan = ObjectPlan::new(key.clone());
        let kind_name = match def.kind {
            ParameterType::SecureString => "SecureString",
            ParameterType::String => "String",
        };
        if self.missing_key(&mut plan, &resource, def.kms_key_id.as_deref()) {
            return plan;
        }
        let Some(obs) = self.o.parameters.get(&def.name) else {
            match &def.initial_value {
                Some(iv) => plan.changes.push(Change {
                    action: Action::Create,
                    resource,
                    detail: format!(
                        "{kind_name}{}, value {}",
                        def.kms_key_id.as_ref().map(|k| format!(", key {k}")).unwrap_or_default(),
                        iv.describe()
                    ),
                    ops: vec![Op::CreateParameter {
                        name: def.name.clone(),
                        kind: def.kind,
                        key_id: def.kms_key_id.clone(),
                        description: def.description.clone(),
                        initial: iv.clone(),
                        tags,
                    }],
                }),
                None => plan.problems.push(uncreatable(resource)),
            }
            return plan;
        };
        let Some(adopting) = self.may_manage(&mut plan, &resource, &obs.tags, def.adopt) else { return plan };
        if obs.kind != kind_name {
            plan.problems.push(Problem {
                kind: ProblemKind::Drift,
                resource: resource.clone(),
                message: format!("type is {}, manifest says {kind_name}; SSM changes a type only with a new value, which secretwire never writes", obs.kind),
            });
        }
        if def.kind == ParameterType::SecureString {
            let want = def.kms_key_id.as_deref().and_then(|k| self.key_arn(k));
            let have = obs.key_id.as_deref().and_then(|k| self.key_arn(k));
            if want != have {
                plan.problems.push(Problem {
                    kind: ProblemKind::Drift,
                    resource: resource.clone(),
                    message: format!(
                        "encrypted with {}, manifest says {}; SSM changes the key only with a new value",
                        obs.key_id.as_deref().unwrap_or("the default key"),
                        def.kms_key_id.as_deref().unwrap_or("the default key")
                    ),
                });
            }
        }
        if def.description.is_some() && obs.description != def.description {
            plan.problems.push(Problem {
                kind: ProblemKind::Drift,
                resource: resource.clone(),
                message: "description differs; SSM changes it only with a new value".into(),
            });
        }
        let add = missing_tags(&tags, &obs.tags);
        if add.is_empty() {
            plan.changes.push(Change { action: Action::Unchanged, resource, detail: kind_name.into(), ops: vec![] });
        } else {
            let detail =
                if adopting { "adopt: add ownership tags".to_string() } else { format!("tags: {}", keys_of(&add)) };
            plan.changes.push(Change {
                action: Action::Update,
                resource,
                detail,
                ops: vec![Op::TagParameter { name: def.name.clone(), tags: add }],
            });
        }
        plan
    }

    fn secret(&self, def: &SecretDef) -> ObjectPlan {
        let key = ObjectKey::new(Kind::Secret, &def.name);
        let resource = format!("secret {}", def.name);
        let tags = owned_tags(self.id, &key, &def.tags);
        let mut plan = ObjectPlan::new(key.clone());
        if self.missing_key(&mut plan, &resource, def.kms_key_id.as_deref()) {
            return plan;
        }
        let Some(obs) = self.o.secrets.get(&def.name) else {
            match &def.initial_value {
                Some(iv) => plan.changes.push(Change {
                    action: Action::Create,
                    resource,
                    detail: format!(
                        "value {}{}",
                        iv.describe(),
                        def.kms_key_id.as_ref().map(|k| format!(", key {k}")).unwrap_or_default()
                    ),
                    ops: vec![Op::CreateSecret {
                        name: def.name.clone(),
                        key_id: def.kms_key_id.clone(),
                        description: def.description.clone(),
                        initial: iv.clone(),
                        tags,
                    }],
                }),
                None => plan.problems.push(uncreatable(resource)),
            }
            return plan;
        };
        let Some(adopting) = self.may_manage(&mut plan, &resource, &obs.tags, def.adopt) else { return plan };
        let mut ops = Vec::new();
        let mut what = Vec::new();
        let want_key = def.kms_key_id.as_deref().and_then(|k| self.key_arn(k));
        let have_key = obs.kms_key_id.as_deref().and_then(|k| self.key_arn(k));
        let key_change =
            (want_key != have_key).then(|| def.kms_key_id.clone().unwrap_or_else(|| "alias/aws/secretsmanager".into()));
        let desc_change = def.description.as_ref().filter(|d| obs.description.as_ref() != Some(*d)).cloned();
        if key_change.is_some() || desc_change.is_some() {
            if key_change.is_some() {
                what.push("kms key".to_string());
            }
            if desc_change.is_some() {
                what.push("description".to_string());
            }
            ops.push(Op::UpdateSecret { id: obs.arn.clone(), description: desc_change, key_id: key_change });
        }
        let add = missing_tags(&tags, &obs.tags);
        if !add.is_empty() {
            what.push(if adopting { "adopt: add ownership tags".into() } else { format!("tags: {}", keys_of(&add)) });
            ops.push(Op::TagSecret { id: obs.arn.clone(), tags: add });
        }
        let action = if ops.is_empty() { Action::Unchanged } else { Action::Update };
        plan.changes.push(Change { action, resource, detail: what.join(", "), ops });
        plan
    }

    fn service(
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
                resource: svc_resource,
                message: "not found; secretwire wires existing services, it does not create them".into(),
            });
            return plan;
        };
        if svc.deployment_controller != "ECS" {
            plan.problems.push(Problem {
                kind: ProblemKind::Error,
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
                Resolution::Pending(v) => {
                    pending = true;
                    resolved.push(v);
                }
                Resolution::Problem(kind, resource, message) => plan.problems.push(Problem { kind, resource, message }),
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
                resource: td_resource,
                message: format!("the revision the service runs ({}) could not be read", svc.task_definition),
            });
            return plan;
        };
        let rendered = match taskdef::render(base, &def.family, &wiring) {
            Ok(r) => r,
            Err(e) => {
                plan.problems.push(Problem { kind: ProblemKind::Error, resource: td_resource, message: e.to_string() });
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

    /// Plans one role; returns its ARN when the service may use it.
    fn role(
        &self,
        plan: &mut ObjectPlan,
        owner: &ObjectKey,
        role: &RoleDef,
        trust: Value,
        inline: Option<Value>,
        what: &str,
    ) -> Option<String> {
        let resource = format!("iam role {} ({what})", role.name);
        let tags = owned_tags(self.id, owner, &BTreeMap::new());
        let policy_summary =
            |p: &Option<Value>| p.as_ref().map_or(0, |p| p["Statement"].as_array().map_or(0, Vec::len));
        let Some(obs) = self.o.roles.get(&role.name) else {
            let mut ops = vec![Op::CreateRole { name: role.name.clone(), trust, tags }];
            if let Some(doc) = &inline {
                ops.push(Op::PutRolePolicy { name: role.name.clone(), document: doc.clone() });
            }
            ops.extend(
                role.managed_policy_arns.iter().map(|a| Op::AttachPolicy { name: role.name.clone(), arn: a.clone() }),
            );
            plan.changes.push(Change {
                action: Action::Create,
                resource,
                detail: format!(
                    "trusted by {}, inline policy with {} statements, {} managed policies",
                    policy::ECS_TASKS,
                    policy_summary(&inline),
                    role.managed_policy_arns.len()
                ),
                ops,
            });
            return Some(self.o.scope.role_arn(&role.name));
        };
        let adopting = self.may_manage(plan, &resource, &obs.tags, role.adopt)?;
        let mut ops = Vec::new();
        let mut what = Vec::new();
        let add = missing_tags(&tags, &obs.tags);
        if !add.is_empty() {
            what.push(if adopting { "adopt: add ownership tags".to_string() } else { "tags".to_string() });
            ops.push(Op::TagRole { name: role.name.clone(), tags: add });
        }
        if !obs.trust.matches(&trust) {
            what.push("trust policy".into());
            ops.push(Op::UpdateTrust { name: role.name.clone(), trust });
        }
        match (&inline, &obs.inline_policy) {
            (Some(want), Some(have)) if have.matches(want) => {}
            (Some(want), _) => {
                what.push(format!("inline policy {}", policy::INLINE_POLICY_NAME));
                ops.push(Op::PutRolePolicy { name: role.name.clone(), document: want.clone() });
            }
            (None, Some(_)) => {
                what.push(format!("remove inline policy {}", policy::INLINE_POLICY_NAME));
                ops.push(Op::DeleteRolePolicy { name: role.name.clone() });
            }
            (None, None) => {}
        }
        for a in role.managed_policy_arns.difference(&obs.managed_policy_arns) {
            what.push(format!("attach {a}"));
            ops.push(Op::AttachPolicy { name: role.name.clone(), arn: a.clone() });
        }
        for a in obs.managed_policy_arns.difference(&role.managed_policy_arns) {
            what.push(format!("detach {a}"));
            ops.push(Op::DetachPolicy { name: role.name.clone(), arn: a.clone() });
        }
        let action = if ops.is_empty() { Action::Unchanged } else { Action::Update };
        plan.changes.push(Change { action, resource, detail: what.join(", "), ops });
        Some(obs.arn.clone())
    }

    fn resolve(&self, r: &ValueRef, grants: &mut Grants) -> Resolution {
        let scope = &self.o.scope;
        match r {
            ValueRef::Parameter { name } => {
                let key = ObjectKey::new(Kind::Parameter, name);
                if let Some(msg) = self.troubled.get(&key) {
                    return Resolution::Problem(ProblemKind::Blocked, key.to_string(), msg.clone());
                }
                let arn = scope.parameter_arn(name);
                grants.parameters.insert(arn.clone());
                let (key_id, declared) = match (self.o.parameters.get(name), self.d.parameters.get(name)) {
                    (Some(obs), _) => (obs.key_id.clone(), true),
                    (None, Some(def)) => (def.kms_key_id.clone(), true),
                    (None, None) => (None, false),
                };
                if !declared {
                    return Resolution::Problem(
                        ProblemKind::Error,
                        format!("ssm parameter {name}"),
                        "not found (an external reference must exist)".into(),
                    );
                }
                if let Some(k) = key_id.as_deref().and_then(|k| self.o.keys.get(k))
                    && k.customer_managed
                    && !k.arn.is_empty()
                {
                    grants.parameter_keys.insert(k.arn.clone());
                }
                if self.o.parameters.contains_key(name) { Resolution::Ready(arn) } else { Resolution::Pending(arn) }
            }
            ValueRef::Secret { id, json_key, version_stage, version_id } => {
                let key = ObjectKey::new(Kind::Secret, id);
                if let Some(msg) = self.troubled.get(&key) {
                    return Resolution::Problem(ProblemKind::Blocked, key.to_string(), msg.clone());
                }
                let value_from = |arn: &str| {
                    crate::arn::SecretValueArn {
                        secret_arn: arn.to_string(),
                        json_key: json_key.clone(),
                        version_stage: version_stage.clone(),
                        version_id: version_id.clone(),
                    }
                    .value_from()
                };
                match (self.o.secrets.get(id), self.d.secrets.get(id)) {
                    (Some(obs), _) => {
                        grants.secrets.insert(obs.arn.clone());
                        if let Some(k) = obs.kms_key_id.as_deref().and_then(|k| self.o.keys.get(k))
                            && k.customer_managed
                            && !k.arn.is_empty()
                        {
                            grants.secret_keys.insert(k.arn.clone());
                        }
                        Resolution::Ready(value_from(&obs.arn))
                    }
                    (None, Some(_)) => Resolution::Pending(value_from(&format!(
                        "arn:{}:secretsmanager:{}:{}:secret:{id}-??????",
                        scope.partition, scope.region, scope.account
                    ))),
                    (None, None) => Resolution::Problem(
                        ProblemKind::Error,
                        format!("secret {id}"),
                        "not found (an external reference must exist)".into(),
                    ),
                }
            }
            ValueRef::Raw { value_from, target } => {
                match target {
                    RawTarget::Parameter { arn, name } => {
                        grants.parameters.insert(arn.clone());
                        if let Some(k) = self
                            .o
                            .parameters
                            .get(name)
                            .and_then(|p| p.key_id.as_deref())
                            .and_then(|k| self.o.keys.get(k))
                            && k.customer_managed
                            && !k.arn.is_empty()
                        {
                            grants.parameter_keys.insert(k.arn.clone());
                        }
                    }
                    RawTarget::Secret(s) => {
                        grants.secrets.insert(s.secret_arn.clone());
                        if let Some(k) = self
                            .o
                            .secrets
                            .get(&s.secret_arn)
                            .and_then(|o| o.kms_key_id.as_deref())
                            .and_then(|k| self.o.keys.get(k))
                            && k.customer_managed
                            && !k.arn.is_empty()
                        {
                            grants.secret_keys.insert(k.arn.clone());
                        }
                    }
                }
                Resolution::Ready(value_from.clone())
            }
        }
    }
}

enum Resolution {
    Ready(String),
    /// Resolves once a repo object is created (`apply` plans services again then).
    Pending(String),
    Problem(ProblemKind, String, String),
}

fn keys_of(t: &Tags) -> String {
    t.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The rendered task definition of one service, as `render` prints it.
pub fn rendered_task_definition<'a>(plan: &'a Plan, service: &str) -> Option<&'a Value> {
    plan.object(&ObjectKey::new(Kind::Service, service))?.rendered.as_ref()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
