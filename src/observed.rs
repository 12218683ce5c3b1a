//! What AWS holds now, as plain data (translated from SDK types at the edge).
//! Only metadata: no value of a parameter or secret is ever read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::arn::Scope;

pub use crate::model::{TAG_APPLIED, TAG_DELETION_POLICY, TAG_MANAGED_BY, TAG_ROLLOUT, TAG_SOURCE, Tags};

#[derive(Debug, Clone)]
pub struct Observed {
    pub scope: Scope,
    /// By parameter name. Absent: the parameter does not exist.
    pub parameters: BTreeMap<String, ObservedParameter>,
    /// By secret name, and by full ARN for secrets referenced by ARN.
    pub secrets: BTreeMap<String, ObservedSecret>,
    /// By the key id as written (alias, key id or ARN).
    pub keys: BTreeMap<String, KmsKey>,
    /// By role name. Absent: the role does not exist.
    pub roles: BTreeMap<String, std::sync::Arc<ObservedRole>>,
    /// By `(cluster, service name)`. Absent: not found.
    pub services: BTreeMap<(String, String), ObservedService>,
    /// Newest ACTIVE revision by family, in wire shape: absent = not read
    /// (only read when a registration is needed), `None` = the family has none.
    pub newest_revisions: BTreeMap<String, Option<Arc<Revision>>>,
    /// Revisions by ARN (immutable, so safe to cache for ever; shared with the cache).
    /// Read only when a plan needs one.
    pub revisions: BTreeMap<String, Arc<Revision>>,
    /// Revisions read and not found.
    pub revisions_missing: BTreeSet<String>,
    /// What this controller owns that no manifest declares, for prune.
    pub undeclared: Undeclared,
    /// Repo values another Target holds (`Desired::foreign`), as that
    /// target's own observation saw them.
    pub foreign: BTreeMap<crate::model::ObjectKey, ForeignValue>,
}

/// A repo value in another account or region, as its own target read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignValue {
    /// The Target it lives in (`None`: the controller's own account).
    pub target: Option<String>,
    pub scope: Scope,
    /// Its ARN; `None`: it does not exist yet.
    pub arn: Option<String>,
    /// The ARN of the customer managed key that encrypts it, if one does.
    pub customer_key: Option<String>,
    /// Why its own plan failed, if it did (its readers wait).
    pub trouble: Option<String>,
}

/// Owned objects (our `managed-by` tag) whose manifest is gone, and what prune
/// reads to decide on them. Filled by observe (stores, roles) and, after the
/// services are applied, by the prune reads (ECS services, revision lists).
#[derive(Debug, Clone, Default)]
pub struct Undeclared {
    pub parameters: Vec<ObservedParameter>,
    pub secrets: Vec<ObservedSecret>,
    /// Owned roles no declared Service names.
    pub roles: Vec<Arc<ObservedRole>>,
    /// Every role this controller owns was listed (the scan ran).
    pub roles_read: bool,
    /// The ECS services undeclared roles name (`secretwire.dev/service`), by
    /// `(cluster, service)`; absent: not found (deleted).
    pub services: BTreeMap<(String, String), ObservedService>,
    /// ACTIVE revision ARNs of the families listed this pass, oldest first.
    pub families: BTreeMap<String, Vec<String>>,
    /// Of the revisions prune may deregister, those this controller
    /// registered (its tags), with the deletion policy and source they record.
    pub registered: BTreeMap<String, RegisteredRevision>,
}

/// What a revision's tags say of who registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRevision {
    pub policy: crate::model::DeletionPolicy,
    /// `Service/<name>`, the object that registered it.
    pub source: Option<String>,
}

impl Observed {
    /// What a diagnosis of a failed rollout reads (values, keys, roles),
    /// kept between passes: the services and revisions are dropped, they are
    /// the bulk of an observation and a diagnosis reads them afresh.
    pub fn for_diagnosis(self) -> Self {
        Self {
            services: BTreeMap::new(),
            newest_revisions: BTreeMap::new(),
            revisions: BTreeMap::new(),
            revisions_missing: BTreeSet::new(),
            undeclared: Undeclared::default(),
            ..self
        }
    }

    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            parameters: BTreeMap::new(),
            secrets: BTreeMap::new(),
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            services: BTreeMap::new(),
            newest_revisions: BTreeMap::new(),
            revisions: BTreeMap::new(),
            revisions_missing: BTreeSet::new(),
            undeclared: Undeclared::default(),
            foreign: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedParameter {
    pub name: String,
    pub kind: String,
    /// As SSM reports it (often `alias/aws/ssm` for the default key).
    pub key_id: Option<String>,
    pub description: Option<String>,
    pub tags: Tags,
    /// Seconds since the epoch.
    pub last_modified: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSecret {
    pub name: String,
    pub arn: String,
    /// `None`: the AWS managed `aws/secretsmanager` key.
    pub kms_key_id: Option<String>,
    pub description: Option<String>,
    pub tags: Tags,
    pub last_changed: Option<f64>,
    pub rotation: ObservedRotation,
    /// Scheduled for deletion (`DeletedDate` set): restorable until its window ends.
    pub deleted: bool,
}

/// A secret's rotation configuration as DescribeSecret and ListSecrets report it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedRotation {
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    /// `RotationRules.ScheduleExpression`.
    pub schedule: Option<String>,
    /// `RotationRules.AutomaticallyAfterDays` (AWS also reports it, computed,
    /// next to a schedule expression).
    pub after_days: Option<i64>,
    pub duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KmsKey {
    pub arn: String,
    /// Only customer managed keys need `kms:Decrypt` in the execution role.
    pub customer_managed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRole {
    pub name: String,
    pub arn: String,
    pub trust: crate::policy::CanonicalDocument,
    /// The `secretwire` inline policy, if any.
    pub inline_policy: Option<crate::policy::CanonicalDocument>,
    pub managed_policy_arns: BTreeSet<String>,
    pub tags: Tags,
    /// The permissions boundary's policy ARN, if any.
    pub permissions_boundary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedService {
    pub arn: String,
    pub status: String,
    /// As ECS reports it: a full ARN on AWS, sometimes `family:rev` on emulators.
    pub task_definition: String,
    pub deployment_controller: String,
    pub deployments: Vec<Deployment>,
    /// Tag `secretwire.dev/applied`: `family:revision digest` as apply last deployed it.
    pub applied: Option<String>,
    /// Tag `secretwire.dev/rollout`: the last deployment secretwire started.
    pub rollout: Option<String>,
    /// The service's newest events (ECS keeps the last 100), newest first:
    /// `(seconds since the epoch, message)`.
    pub events: Vec<(f64, String)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deployment {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    /// Seconds since the epoch.
    pub created_at: Option<f64>,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED` (absent for external controllers).
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    pub failed_tasks: i32,
}

/// A task that stopped, as DescribeTasks tells it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoppedTask {
    pub arn: String,
    pub stopped_at: Option<f64>,
    /// e.g. `TaskFailedToStart`, `EssentialContainerExited`.
    pub stop_code: Option<String>,
    pub stopped_reason: String,
    /// `(container name, reason)` for containers that carry one.
    pub containers: Vec<(String, String)>,
}

impl ObservedService {
    /// The id of the PRIMARY deployment, if any.
    pub fn primary_deployment(&self) -> Option<&str> {
        self.deployments.iter().find(|d| d.status == "PRIMARY").map(|d| d.id.as_str())
    }

    /// When the newest deployment started.
    pub fn newest_deployment_start(&self) -> Option<f64> {
        self.deployments.iter().filter_map(|d| d.created_at).fold(None, |acc, t| Some(acc.map_or(t, |a: f64| a.max(t))))
    }
}

/// A task definition revision, kept as its JSON text: a revision never
/// changes, and parsed it costs several times its text (a thousand services
/// keep a thousand in the cache). Parsed when a plan needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision(Box<str>);

impl Revision {
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl From<&Value> for Revision {
    fn from(v: &Value) -> Self {
        Self(v.to_string().into_boxed_str())
    }
}

/// Who owns a resource, judged from its tags.
#[derive(Debug, Clone, PartialEq)]
pub enum Ownership {
    Ours,
    Unmanaged,
    OtherController(String),
}

pub fn ownership(tags: &Tags, controller_id: &str) -> Ownership {
    match tags.get(TAG_MANAGED_BY) {
        Some(id) if id == controller_id => Ownership::Ours,
        Some(id) => Ownership::OtherController(id.clone()),
        None => Ownership::Unmanaged,
    }
}
