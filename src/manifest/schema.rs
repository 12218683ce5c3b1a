//! The on-disk manifest schema: exactly what a user writes, with source
//! locations kept on the fields that semantic validation points at. Unknown
//! fields are errors everywhere (`deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

pub use crate::model::{DeletionPolicy, ParameterType};
pub use crate::value::GenerateSpec;

pub type S<T> = Spanned<T>;

/// One YAML document: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Debug)]
pub struct Document {
    pub api_version: S<String>,
    pub kind: S<String>,
    pub name: S<String>,
    pub spec: Spec,
}

#[derive(Debug)]
pub enum Spec {
    Parameter(Box<ParameterSpec>),
    Secret(Box<SecretSpec>),
    Service(Box<ServiceSpec>),
    Target(Box<TargetSpec>),
    /// A kind this version does not know; reported at the `kind` field.
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: S<String>,
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = Document;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a manifest with apiVersion, kind, metadata and spec")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
                let mut api_version = None;
                let mut kind: Option<S<String>> = None;
                let mut name = None;
                let mut spec = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "apiVersion" => api_version = Some(map.next_value()?),
                        "kind" => kind = Some(map.next_value()?),
                        "metadata" => name = Some(map.next_value::<Metadata>()?.name),
                        // The spec's shape depends on the kind, so the kind must be known first
                        // (it always is in the conventional key order).
                        "spec" => {
                            let k = kind.as_ref().ok_or_else(|| de::Error::custom("`kind` must come before `spec`"))?;
                            spec = Some(match k.value.as_str() {
                                "Parameter" => Spec::Parameter(Box::new(map.next_value()?)),
                                "Secret" => Spec::Secret(Box::new(map.next_value()?)),
                                "Service" => Spec::Service(Box::new(map.next_value()?)),
                                "Target" => Spec::Target(Box::new(map.next_value()?)),
                                _ => {
                                    map.next_value::<de::IgnoredAny>()?;
                                    Spec::Unknown
                                }
                            });
                        }
                        other => {
                            return Err(de::Error::unknown_field(other, &["apiVersion", "kind", "metadata", "spec"]));
                        }
                    }
                }
                Ok(Document {
                    api_version: api_version.ok_or_else(|| de::Error::missing_field("apiVersion"))?,
                    kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
                    name: name.ok_or_else(|| de::Error::missing_field("metadata"))?,
                    spec: spec.ok_or_else(|| de::Error::missing_field("spec"))?,
                })
            }
        }
        deserializer.deserialize_map(DocVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterSpec {
    #[serde(rename = "type", default)]
    pub kind: Option<S<ParameterType>>,
    #[serde(default)]
    pub kms_key_id: Option<S<String>>,
    #[serde(default)]
    pub description: Option<S<String>>,
    #[serde(default)]
    pub initial_value: Option<S<InitialValue>>,
    #[serde(default)]
    pub adopt: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub deletion_policy: Option<S<DeletionPolicy>>,
    /// Tenants (of `--tenants`) whose Services may reference this value too.
    #[serde(default)]
    pub shared_with: Vec<S<String>>,
    /// The `Target` (account and region) the value lives in; default the controller's own.
    #[serde(default)]
    pub target: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretSpec {
    #[serde(default)]
    pub kms_key_id: Option<S<String>>,
    #[serde(default)]
    pub description: Option<S<String>>,
    #[serde(default)]
    pub initial_value: Option<S<InitialValue>>,
    #[serde(default)]
    pub adopt: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub rotation: Option<S<RotationSpec>>,
    #[serde(default)]
    pub deletion_policy: Option<S<DeletionPolicy>>,
    #[serde(default)]
    pub recovery_window_days: Option<S<u32>>,
    /// Tenants (of `--tenants`) whose Services may reference this value too.
    #[serde(default)]
    pub shared_with: Vec<S<String>>,
    /// The `Target` (account and region) the value lives in; default the controller's own.
    #[serde(default)]
    pub target: Option<S<String>>,
}

/// `spec.rotation` of a Secret: `{ lambdaArn, schedule, duration,
/// rotateImmediately }`, or `{ enabled: false }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotationSpec {
    #[serde(default)]
    pub enabled: Option<S<bool>>,
    #[serde(default)]
    pub lambda_arn: Option<S<String>>,
    #[serde(default)]
    pub schedule: Option<S<String>>,
    #[serde(default)]
    pub duration: Option<S<String>>,
    #[serde(default)]
    pub rotate_immediately: Option<S<bool>>,
}

/// How a missing value is made. Never a literal: values do not live in the repo
/// (a JSON secret's non-secret fields, such as a user name, may be literal).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum InitialValue {
    Generate(GenerateSpec),
    FromEnv(String),
    Json(BTreeMap<String, JsonField>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum JsonField {
    Generated { generate: GenerateSpec },
    Literal(JsonScalar),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum JsonScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub cluster: S<String>,
    #[serde(default)]
    pub service_name: Option<S<String>>,
    #[serde(default)]
    pub task_definition: Option<TaskDefinitionSpec>,
    #[serde(default)]
    pub execution_role: Option<RoleSpec>,
    #[serde(default)]
    pub task_role: Option<TaskRoleSpec>,
    pub containers: Vec<ContainerSpec>,
    #[serde(default = "yes")]
    pub redeploy_on_change: bool,
    #[serde(default)]
    pub deletion_policy: Option<S<DeletionPolicy>>,
    #[serde(default)]
    pub revision_history_limit: Option<S<u32>>,
    /// The `Target` (account and region) the ECS service runs in; default the controller's own.
    #[serde(default)]
    pub target: Option<S<String>>,
}

/// `kind: Target`: an account and region secretwire manages through a role it assumes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetSpec {
    pub account: S<String>,
    pub region: S<String>,
    pub role_arn: S<String>,
    /// Sent as `sts:ExternalId` when the role's trust policy asks for one.
    #[serde(default)]
    pub external_id: Option<S<String>>,
    /// `RoleSessionName` (default `secretwire-<controller id>`), seen in the target's CloudTrail.
    #[serde(default)]
    pub session_name: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskDefinitionSpec {
    #[serde(default)]
    pub family: Option<S<String>>,
    #[serde(default)]
    pub template: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleSpec {
    #[serde(default)]
    pub role_name: Option<S<String>>,
    #[serde(default)]
    pub adopt: bool,
    #[serde(default)]
    pub managed_policy_arns: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskRoleSpec {
    pub role_name: S<String>,
    #[serde(default)]
    pub adopt: bool,
    #[serde(default)]
    pub managed_policy_arns: Vec<S<String>>,
    #[serde(default)]
    pub statements: Vec<StatementSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatementSpec {
    #[serde(default)]
    pub sid: Option<String>,
    pub effect: S<String>,
    pub actions: Vec<S<String>>,
    pub resources: Vec<S<String>>,
    /// IAM condition block, as in a policy document: operator -> key -> value(s).
    #[serde(default)]
    pub conditions: BTreeMap<String, BTreeMap<String, StringOrList>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: S<String>,
    #[serde(default)]
    pub secrets: Vec<ValueRefSpec>,
    #[serde(default)]
    pub log_secrets: Vec<ValueRefSpec>,
    #[serde(default)]
    pub repository_credentials: Option<RepositoryCredentialsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValueRefSpec {
    pub name: S<String>,
    #[serde(default)]
    pub parameter: Option<S<String>>,
    #[serde(default)]
    pub secret: Option<S<String>>,
    #[serde(default)]
    pub value_from: Option<S<String>>,
    #[serde(default)]
    pub json_key: Option<S<String>>,
    #[serde(default)]
    pub version_stage: Option<S<String>>,
    #[serde(default)]
    pub version_id: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositoryCredentialsSpec {
    #[serde(default)]
    pub secret: Option<S<String>>,
    #[serde(default)]
    pub parameter: Option<S<String>>,
    #[serde(default)]
    pub value_from: Option<S<String>>,
}
