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
use crate::reason::Reason;
use crate::taskdef::{self, Wiring};
use crate::value::InitialValue;

pub mod prune;
mod resolve;
mod roles;
mod rotation;
mod service;
mod stores;

use resolve::Resolution;
use roles::RoleOwner;
use service::{Draft, Rendered, Staged};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub objects: Vec<ObjectPlan>,
    /// What no manifest declares any more (`-` lines), and the guard's verdict.
    pub prune: prune::Prune,
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
    /// Services: the revision (`family:revision`) the plan keeps, when it registers none.
    #[serde(skip)]
    pub kept_revision: Option<String>,
    /// Services: repo objects that do not exist yet, whose ARNs the plan can only guess.
    #[serde(skip)]
    pub waits_on: Vec<ObjectKey>,
}

impl ObjectPlan {
    pub fn new(key: ObjectKey) -> Self {
        Self {
            key,
            changes: Vec::new(),
            problems: Vec::new(),
            rendered: None,
            kept_revision: None,
            waits_on: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Prune: deleted, deregistered or (Retain) let go of.
    Delete,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Unchanged => '=',
            Action::Delete => '-',
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub action: Action,
    pub resource: String,
    pub detail: String,
    /// Task definitions: each wiring entry the registration changes, adds or
    /// removes (`taskdef::wiring_diff`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
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
    /// Applied as declared, but will not work as the manifest expects
    /// (e.g. a cross-account value under an AWS managed key).
    Warning,
}

impl ProblemKind {
    /// Whether the object's writes are held back by it (Drift and Warning are only reported).
    pub fn blocks(self) -> bool {
        matches!(self, ProblemKind::Conflict | ProblemKind::Error | ProblemKind::Blocked)
    }

    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::Conflict => "conflict",
            ProblemKind::Error => "error",
            ProblemKind::Blocked => "blocked",
            ProblemKind::Drift => "drift",
            ProblemKind::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub reason: Reason,
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
    /// Sets the secret's rotation configuration (`RotateSecret` with
    /// `RotationRules` and `RotateImmediately` as the manifest says, false by default).
    RotateSecret {
        id: String,
        rules: RotationRules,
    },
    /// `CancelRotateSecret`.
    CancelRotation {
        id: String,
    },
    /// `RestoreSecret`: a secret scheduled for deletion is declared again.
    RestoreSecret {
        id: String,
    },
    /// Prune, `Delete`: `DeleteParameter`.
    DeleteParameter {
        name: String,
    },
    /// Prune, `Delete`: `DeleteSecret` with a recovery window (never forced).
    DeleteSecret {
        id: String,
        recovery_window_days: u32,
    },
    /// Prune, `Retain`: our `secretwire.dev/*` tags removed (it must be adopted again).
    UntagParameter {
        name: String,
        keys: Vec<String>,
    },
    UntagSecret {
        id: String,
        keys: Vec<String>,
    },
    UntagRole {
        name: String,
        keys: Vec<String>,
    },
    /// Prune, `Delete`: the role's inline policies, managed policy attachments, then the role.
    DeleteRole {
        name: String,
        inline: bool,
        managed: Vec<String>,
    },
    /// Prune: a revision secretwire registered that no deployment uses.
    DeregisterTaskDefinition {
        arn: String,
    },
    CreateRole {
        name: String,
        trust: Value,
        tags: Tags,
        /// `--permissions-boundary`, set at creation.
        boundary: Option<String>,
        /// `--role-path` (default `/`).
        path: String,
    },
    /// `PutRolePermissionsBoundary`: the boundary `--permissions-boundary` names.
    PutBoundary {
        name: String,
        arn: String,
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
            | Op::TagRole { name, .. }
            | Op::UntagRole { name, .. }
            | Op::PutBoundary { name, .. }
            | Op::DeleteRole { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl Plan {
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut c: BTreeMap<&'static str, usize> =
            ["create", "update", "unchanged", "prune", "conflict", "error", "blocked", "drift", "warning"]
                .into_iter()
                .map(|k| (k, 0))
                .collect();
        for o in &self.objects {
            for ch in &o.changes {
                *c.entry(match ch.action {
                    Action::Create => "create",
                    Action::Update => "update",
                    Action::Unchanged => "unchanged",
                    Action::Delete => "prune",
                })
                .or_default() += 1;
            }
            for p in &o.problems {
                *c.entry(p.kind.label()).or_default() += 1;
            }
        }
        c.insert("prune", self.prune.guard.prunable);
        c
    }

    /// Writes pending: changes, or objects prune would act on.
    pub fn has_changes(&self) -> bool {
        self.objects.iter().any(|o| o.changes.iter().any(|c| c.action != Action::Unchanged))
            || self.prune.guard.prunable > 0
    }

    /// Problems that make `apply` fail (drift is only reported).
    pub fn has_failures(&self) -> bool {
        self.objects.iter().any(|o| o.problems.iter().any(|p| p.kind.blocks()))
    }

    pub fn object(&self, key: &ObjectKey) -> Option<&ObjectPlan> {
        self.objects.iter().find(|o| &o.key == key)
    }
}

/// Ours (`managed-by`), where it came from (`source`), its tenant, and `extra`.
pub fn owned_tags(controller_id: &str, key: &ObjectKey, origin: &Origin, extra: &BTreeMap<String, String>) -> Tags {
    let mut t = extra.clone();
    t.insert(TAG_MANAGED_BY.into(), controller_id.into());
    t.insert(TAG_SOURCE.into(), key.to_string());
    if let Some(tenant) = &origin.tenant {
        t.insert(TAG_TENANT.into(), tenant.clone());
    }
    t
}

/// Tags in `want` that `have` lacks or holds with another value. A missing
/// `deletion-policy` reads as `Retain` (what was made before the tag existed,
/// and parameters, whose listing only tells which say `Delete`), so
/// `Retain` is written only over another value, never added by itself.
fn missing_tags(want: &Tags, have: &Tags) -> Tags {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .filter(|(k, v)| !(*k == TAG_DELETION_POLICY && *v == "Retain" && !have.contains_key(*k)))
        // The tenant is written when a resource is made (a parameter's tags are
        // not read back) and corrected when it names another; never added later.
        .filter(|(k, _)| *k != TAG_TENANT || have.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

struct Planner<'a> {
    /// Render every service (for `render`), even one the applied tag vouches for.
    keep_rendered: bool,
    d: &'a Desired,
    o: &'a Observed,
    id: &'a str,
    /// Repo objects whose problems block the services that read them.
    troubled: BTreeMap<ObjectKey, String>,
}

/// Plans every object: stores (parameters, secrets) first, then services,
/// over what `observed` holds (a revision it lacks counts as unreadable).
pub fn plan(desired: &Desired, observed: &Observed, controller_id: &str) -> Plan {
    let stores = plan_stores(desired, observed, controller_id);
    let services = draft_services(desired, observed, controller_id, &stores, false);
    let mut objects = services.render(observed).decide(observed);
    let mut all = stores.objects;
    all.append(&mut objects);
    Plan { objects: all, prune: prune::plan_prune(desired, observed, controller_id, None) }
}

/// The stores' plans (final), and which repo objects block their readers.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    pub objects: Vec<ObjectPlan>,
    troubled: BTreeMap<ObjectKey, String>,
}

impl Stores {
    /// Why a repo object's own plan keeps its readers waiting, if it does.
    pub fn trouble(&self, key: &ObjectKey) -> Option<&str> {
        self.troubled.get(key).map(String::as_str)
    }
}

/// Plans the parameters and secrets.
pub fn plan_stores(desired: &Desired, observed: &Observed, controller_id: &str) -> Stores {
    let p = Planner { keep_rendered: false, d: desired, o: observed, id: controller_id, troubled: BTreeMap::new() };
    let mut objects = Vec::new();
    for def in desired.parameters.values() {
        objects.push(p.parameter(def));
    }
    for def in desired.secrets.values() {
        objects.push(p.secret(def));
    }
    let mut troubled = BTreeMap::new();
    for o in &objects {
        if let Some(pr) = o.problems.iter().find(|pr| matches!(pr.kind, ProblemKind::Conflict | ProblemKind::Error)) {
            troubled.insert(o.key.clone(), pr.message.clone());
        }
    }
    for key in &desired.invalid {
        troubled.insert(key.clone(), "its manifest is invalid".into());
    }
    Stores { objects, troubled }
}

/// Stage 1 of the services: references resolved, roles planned. What the
/// later stages read is named by [`Services::running_needed`] and
/// [`Rendering::newest_needed`]. `keep_rendered` keeps every service's
/// rendered task definition (what `render` prints); otherwise only a
/// registration carries one, which keeps a large pass small.
pub fn draft_services<'d>(
    desired: &'d Desired,
    observed: &Observed,
    controller_id: &str,
    stores: &Stores,
    keep_rendered: bool,
) -> Services<'d> {
    let p = Planner { keep_rendered, d: desired, o: observed, id: controller_id, troubled: stores.troubled.clone() };
    let drafts = desired.services.values().map(|def| p.service(def)).collect();
    Services { drafts, keep_rendered }
}

/// Services after stage 1.
pub struct Services<'d> {
    drafts: Vec<Draft<'d>>,
    keep_rendered: bool,
}

impl<'d> Services<'d> {
    /// The revisions services run that stage 2 needs and `observed` lacks
    /// (the service's `secretwire.dev/applied` tag does not vouch for them).
    pub fn running_needed(&self, observed: &Observed) -> BTreeSet<String> {
        self.drafts.iter().filter_map(|d| d.running_needed(observed)).map(str::to_string).collect()
    }

    /// Stage 2: every drafted service rendered on its base.
    pub fn render(self, observed: &Observed) -> Rendering<'d> {
        let keep_rendered = self.keep_rendered;
        let staged = self
            .drafts
            .into_iter()
            .map(|d| match d {
                Staged::Done(p) => Staged::Done(p),
                Staged::Next(w) => w.render(observed, keep_rendered),
            })
            .collect();
        Rendering { staged }
    }
}

/// Services after stage 2.
pub struct Rendering<'d> {
    staged: Vec<Staged<Rendered<'d>>>,
}

impl Rendering<'_> {
    /// The families whose newest revision stage 3 needs and `observed` lacks
    /// (a registration is needed, and the newest may already be what it would register).
    pub fn newest_needed(&self, observed: &Observed) -> BTreeSet<String> {
        let rendered = self.staged.iter().filter_map(|r| if let Staged::Next(r) = r { Some(r) } else { None });
        rendered.filter_map(|r| r.newest_needed(observed)).map(str::to_string).collect()
    }

    /// Stage 3: every service's final plan.
    pub fn decide(self, observed: &Observed) -> Vec<ObjectPlan> {
        self.staged
            .into_iter()
            .map(|r| match r {
                Staged::Next(r) => r.decide(observed),
                Staged::Done(p) => p,
            })
            .collect()
    }
}

impl ObjectPlan {
    /// After the stores were applied, a service still waiting on one must not
    /// be executed: its revision would carry a guessed ARN. It is blocked
    /// instead, naming what it waits on.
    pub fn block_if_waiting(&mut self) {
        if self.waits_on.is_empty() {
            return;
        }
        let names: Vec<String> = self.waits_on.iter().map(ToString::to_string).collect();
        for c in &mut self.changes {
            c.ops.clear();
        }
        self.changes.retain(|c| c.action == Action::Unchanged);
        self.problems.push(Problem {
            kind: ProblemKind::Blocked,
            reason: Reason::Blocked,
            resource: names.join(", "),
            message: "does not exist yet (its create failed or was held back); this service waits for it".into(),
        });
    }
}

/// A declared value that does not exist and cannot be made.
fn uncreatable(resource: String) -> Problem {
    Problem {
        kind: ProblemKind::Error,
        reason: Reason::NoInitialValue,
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
                reason: Reason::Conflict,
                resource: resource.into(),
                message: format!(
                    "exists without the tag {TAG_MANAGED_BY}; not adopted (set adopt: true to take it over)"
                ),
            }),
            Ownership::OtherController(other) => Err(Problem {
                kind: ProblemKind::Conflict,
                reason: Reason::Conflict,
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
            reason: Reason::KmsKeyNotFound,
            resource: resource.into(),
            message: format!("KMS key `{k}` not found"),
        });
        true
    }

    /// The ARN of the key a key id names, if it is known and customer managed.
    fn key_arn(&self, key_id: &str) -> Option<&str> {
        self.o.keys.get(key_id).filter(|k| !k.arn.is_empty()).map(|k| k.arn.as_str())
    }
}

fn keys_of(t: &Tags) -> String {
    t.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The rendered task definition of one service, as `render` prints it.
pub fn rendered_task_definition<'a>(plan: &'a Plan, service: &str) -> Option<&'a Value> {
    plan.object(&ObjectKey::new(Kind::Service, service))?.rendered.as_ref()
}

#[cfg(test)]
mod prune_tests;
#[cfg(test)]
mod tests;
