//! The desired state: what the manifests ask for, validated and with defaults
//! filled in. No AWS SDK types and no I/O live here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::arn::RawTarget;
pub use crate::value::GenerateSpec;
use crate::value::InitialValue;

pub const TAG_MANAGED_BY: &str = "secretwire.dev/managed-by";
pub const TAG_SOURCE: &str = "secretwire.dev/source";
/// On an ECS service: the revision apply deployed and the digest of what it was rendered from.
pub const TAG_APPLIED: &str = "secretwire.dev/applied";
/// On an ECS service: the last deployment secretwire started, `ID TRIGGER
/// EPOCH-SECONDS`, so a restarted controller goes on following it.
pub const TAG_ROLLOUT: &str = "secretwire.dev/rollout";
/// What prune does with the resource once its manifest is gone: `Retain` or
/// `Delete` (a resource without it is retained). Recorded by apply, because
/// the manifest is gone when it is read.
pub const TAG_DELETION_POLICY: &str = "secretwire.dev/deletion-policy";
/// On a secret with `Delete`: the recovery window DeleteSecret is sent, in days.
pub const TAG_RECOVERY_WINDOW: &str = "secretwire.dev/recovery-window-days";
/// On a Service's roles: the ECS service (`cluster/service`) whose deployments
/// must no longer use the role before prune deletes it.
pub const TAG_SERVICE: &str = "secretwire.dev/service";
/// The tenant (of `--tenants`) whose manifest made the resource.
pub const TAG_TENANT: &str = "secretwire.dev/tenant";
/// Every tag key secretwire writes starts with this; Retain removes them all.
pub const TAG_PREFIX: &str = "secretwire.dev/";

/// `spec.deletionPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum DeletionPolicy {
    Retain,
    Delete,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::Delete => "Delete",
        }
    }

    /// From a resource's tags: `Delete` only when the tag says so.
    pub fn of(tags: &Tags) -> Self {
        if tags.get(TAG_DELETION_POLICY).map(String::as_str) == Some("Delete") {
            DeletionPolicy::Delete
        } else {
            DeletionPolicy::Retain
        }
    }
}

/// The recovery window of a secret deleted by prune when the manifest names none.
pub const DEFAULT_RECOVERY_WINDOW_DAYS: u32 = 30;
/// Older revisions a Service keeps besides the ones in use, when the manifest names no number.
pub const DEFAULT_REVISION_HISTORY_LIMIT: u32 = 10;

/// Tags of an AWS resource, sorted by key.
pub type Tags = BTreeMap<String, String>;

/// An SSM parameter type secretwire manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
pub enum ParameterType {
    #[default]
    SecureString,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    Parameter,
    Secret,
    Service,
    Target,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Parameter => "Parameter",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
            Kind::Target => "Target",
        })
    }
}

/// `(kind, metadata.name)`: unique across the manifest directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self { kind, name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Where an object was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: u64,
    /// The tenant the file belongs to (`--tenants`); `None` without tenants.
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub parameters: BTreeMap<String, ParameterDef>,
    pub secrets: BTreeMap<String, SecretDef>,
    pub services: BTreeMap<String, ServiceDef>,
    /// The accounts and regions besides the controller's own, by `metadata.name`.
    pub targets: BTreeMap<String, TargetDef>,
    /// Repo values this part of the repo references but another target holds
    /// (set by [`crate::fleet`] when it splits the repo by target): never
    /// observed or written here, resolved from their own target's observation.
    pub foreign: BTreeMap<ObjectKey, Option<String>>,
    /// Objects that are declared but invalid: never applied, but references to
    /// them still count as references to the repo, not to external values.
    pub invalid: BTreeSet<ObjectKey>,
    /// The part of `invalid` that is well-formed but breaks a tenant rule:
    /// refused alone, while the rest of the repo is still applied.
    pub refused: BTreeSet<ObjectKey>,
    /// Problems the last load reported (`run` goes on with what is valid):
    /// while there are any, nothing is pruned.
    pub load_errors: usize,
    /// What the platform imposes on every object, whatever the manifests say.
    pub platform: Platform,
}

/// Set by whoever runs secretwire, not by the manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// `--permissions-boundary`: the managed policy every role secretwire
    /// creates or manages gets as its permissions boundary.
    pub permissions_boundary: Option<String>,
    /// `--role-path`: where every role secretwire creates lives (`/` by
    /// default); a role elsewhere is not adopted.
    pub role_path: Option<String>,
}

impl Platform {
    /// The IAM path roles are created under: `/` or `/a/b/`.
    pub fn role_path(&self) -> &str {
        self.role_path.as_deref().unwrap_or("/")
    }
}

impl Desired {
    /// Where an object was declared.
    pub fn origin(&self, key: &ObjectKey) -> Option<&Origin> {
        match key.kind {
            Kind::Parameter => self.parameters.get(&key.name).map(|d| &d.origin),
            Kind::Secret => self.secrets.get(&key.name).map(|d| &d.origin),
            Kind::Service => self.services.get(&key.name).map(|d| &d.origin),
            Kind::Target => self.targets.get(&key.name).map(|d| &d.origin),
        }
    }

    /// Every declared, valid object.
    pub fn keys(&self) -> BTreeSet<ObjectKey> {
        self.parameters
            .keys()
            .map(|n| ObjectKey::new(Kind::Parameter, n))
            .chain(self.secrets.keys().map(|n| ObjectKey::new(Kind::Secret, n)))
            .chain(self.services.keys().map(|n| ObjectKey::new(Kind::Service, n)))
            .chain(self.targets.keys().map(|n| ObjectKey::new(Kind::Target, n)))
            .collect()
    }

    /// The target an object names in `spec.target` (`None`: the controller's own account).
    pub fn target_of(&self, key: &ObjectKey) -> Option<&str> {
        match key.kind {
            Kind::Parameter => self.parameters.get(&key.name)?.target.as_deref(),
            Kind::Secret => self.secrets.get(&key.name)?.target.as_deref(),
            Kind::Service => self.services.get(&key.name)?.target.as_deref(),
            Kind::Target => None,
        }
    }

    /// Declares nothing at all, valid or not (an empty checkout).
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty()
            && self.secrets.is_empty()
            && self.services.is_empty()
            && self.targets.is_empty()
            && self.invalid.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct ParameterDef {
    pub name: String,
    pub origin: Origin,
    pub kind: ParameterType,
    pub kms_key_id: Option<String>,
    pub description: Option<String>,
    pub initial_value: Option<InitialValue>,
    pub adopt: bool,
    pub tags: BTreeMap<String, String>,
    /// Default `Retain`.
    pub deletion_policy: DeletionPolicy,
    /// `spec.target`; `None`: the controller's own account and region.
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecretDef {
    pub name: String,
    pub origin: Origin,
    pub kms_key_id: Option<String>,
    pub description: Option<String>,
    pub initial_value: Option<InitialValue>,
    pub adopt: bool,
    pub tags: BTreeMap<String, String>,
    /// `spec.rotation`; `None` leaves whatever rotation AWS has alone.
    pub rotation: Option<RotationDef>,
    /// Default `Retain`.
    pub deletion_policy: DeletionPolicy,
    /// 7 to 30 (default 30): DeleteSecret's `RecoveryWindowInDays` when pruned with `Delete`.
    pub recovery_window_days: u32,
    /// `spec.target`; `None`: the controller's own account and region.
    pub target: Option<String>,
}

/// A Secret's declared rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationDef {
    /// `rotation: { enabled: false }`: rotation is cancelled (`CancelRotateSecret`).
    Disabled,
    Enabled(RotationRules),
}

/// What RotateSecret is sent: the function, the schedule (`rate(...)` or
/// `cron(...)`, sent as `RotationRules.ScheduleExpression`), the window
/// (`RotationRules.Duration`, e.g. `3h`), and `RotateImmediately`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRules {
    pub lambda_arn: String,
    pub schedule: String,
    /// `None`: AWS's default window (one hour for a schedule in hours, the rest
    /// of the UTC day for one in days); not compared.
    pub duration: Option<String>,
    /// Whether configuring rotation also rotates now. AWS defaults to true;
    /// secretwire sends false unless the manifest says true.
    pub rotate_immediately: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub name: String,
    pub origin: Origin,
    pub cluster: String,
    pub service_name: String,
    /// `taskDefinition.family`, else the template's `family`, else `metadata.name`.
    pub family: String,
    /// Neither the manifest nor a template names the family: the family of the
    /// revision the service runs is kept (a service is never moved to a family
    /// named after its manifest by accident); `family` is used only when the
    /// service runs none.
    pub family_from_running: bool,
    /// A RegisterTaskDefinition input, in the wire (camelCase) shape.
    pub template: Option<serde_json::Value>,
    pub execution_role: RoleDef,
    pub task_role: Option<TaskRoleDef>,
    pub containers: Vec<ContainerWiring>,
    pub redeploy_on_change: bool,
    /// Default `Delete`: what the Service owns (its roles, its old revisions) goes once unused.
    pub deletion_policy: DeletionPolicy,
    /// Revisions kept besides those in use (default 10), like a Kubernetes Deployment's.
    pub revision_history_limit: u32,
    /// `spec.target`; `None`: the controller's own account and region.
    pub target: Option<String>,
}

/// `kind: Target`: another account and region, reached through a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDef {
    pub name: String,
    pub origin: Origin,
    pub account: String,
    pub region: String,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    pub name: String,
    pub adopt: bool,
    pub managed_policy_arns: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct TaskRoleDef {
    pub role: RoleDef,
    pub statements: Vec<Statement>,
}

/// An IAM statement for the application's own role.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct ContainerWiring {
    pub name: String,
    /// -> containerDefinitions[].secrets
    pub secrets: Vec<EnvSecret>,
    /// -> containerDefinitions[].logConfiguration.secretOptions
    pub log_secrets: Vec<EnvSecret>,
    /// -> containerDefinitions[].repositoryCredentials.credentialsParameter
    pub repository_credentials: Option<ValueRef>,
}

#[derive(Debug, Clone)]
pub struct EnvSecret {
    pub name: String,
    pub value: ValueRef,
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueRef {
    /// An SSM parameter by name (declared in the repo or external).
    Parameter { name: String },
    /// A Secrets Manager secret by name or ARN (declared in the repo or external).
    Secret { id: String, json_key: Option<String>, version_stage: Option<String>, version_id: Option<String> },
    /// A raw `valueFrom` ARN, used as given.
    Raw { value_from: String, target: RawTarget },
}

/// Which version of a secret a reference reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pin {
    /// Whatever a staging label points at: `AWSCURRENT` for an unpinned
    /// reference. It moves when the label moves (AWSPREVIOUS at every rotation).
    Label(String),
    /// One version id: fixed, a rotation never changes what it reads.
    Version,
}

/// The label every unpinned reference follows.
pub const AWSCURRENT: &str = "AWSCURRENT";

impl ValueRef {
    /// What a new task would read for this reference, as rotations see it.
    /// Parameters have no staging labels: they follow the latest version.
    pub fn pin(&self) -> Pin {
        let secret = |stage: &Option<String>, id: &Option<String>| match (stage, id) {
            (_, Some(_)) => Pin::Version,
            (Some(l), None) => Pin::Label(l.clone()),
            (None, None) => Pin::Label(AWSCURRENT.into()),
        };
        match self {
            ValueRef::Secret { version_stage, version_id, .. } => secret(version_stage, version_id),
            ValueRef::Raw { target: RawTarget::Secret(s), .. } => secret(&s.version_stage, &s.version_id),
            ValueRef::Parameter { .. } | ValueRef::Raw { target: RawTarget::Parameter { .. }, .. } => {
                Pin::Label(AWSCURRENT.into())
            }
        }
    }

    /// A reference fixed to one version never changes with a rotation.
    pub fn is_fixed(&self) -> bool {
        self.pin() == Pin::Version
    }
}

impl ServiceDef {
    /// Where an observation merged across Targets holds this service: its
    /// `(cluster, service)`, the cluster prefixed with `<target>/` in a Target
    /// (ECS cluster names have no `/`), so equal names in two accounts stay apart.
    pub fn observed_key(&self) -> (String, String) {
        let cluster = match &self.target {
            None => self.cluster.clone(),
            Some(t) => format!("{t}/{}", self.cluster),
        };
        (cluster, self.service_name.clone())
    }

    /// Every value reference of the service, in manifest order.
    pub fn value_refs(&self) -> impl Iterator<Item = &ValueRef> {
        self.containers.iter().flat_map(|c| {
            c.secrets.iter().chain(c.log_secrets.iter()).map(|s| &s.value).chain(c.repository_credentials.iter())
        })
    }
}

/// A value that changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangedValue {
    /// A secret name or ARN, as the event gave it.
    Secret(String),
    /// A parameter name (as in `detail.name`, e.g. `/web/db`).
    Parameter(String),
}

impl std::fmt::Display for ChangedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangedValue::Secret(s) => write!(f, "secret {s}"),
            ChangedValue::Parameter(p) => write!(f, "parameter {p}"),
        }
    }
}
