//! IAM policy documents, built and compared as data. Generated roles get a
//! confused-deputy-safe trust policy and one least-privilege inline policy.
//! Comparison is on a canonical form, because IAM hands documents back
//! URL-encoded, with single strings where we wrote lists, in any order.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::arn::Scope;
use crate::model::{Desired, Statement, ValueRef};

pub const INLINE_POLICY_NAME: &str = "secretwire";
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";

/// What a task execution role must be able to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub parameters: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    /// Customer managed keys (ARNs) that encrypt a referenced parameter.
    pub parameter_keys: BTreeSet<String>,
    /// Customer managed keys (ARNs) that encrypt a referenced secret.
    pub secret_keys: BTreeSet<String>,
}

pub fn execution_trust(scope: &Scope) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": scope.account}}
        }]
    })
}

pub fn task_trust(scope: &Scope) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": scope.account},
                "ArnLike": {"aws:SourceArn": format!("arn:{}:ecs:{}:{}:*", scope.partition, scope.region, scope.account)}
            }
        }]
    })
}

/// The execution role's inline policy; `None` when it would grant nothing.
pub fn execution_policy(g: &Grants, scope: &Scope) -> Option<Value> {
    let mut statements = Vec::new();
    let list = |s: &BTreeSet<String>| Value::Array(s.iter().cloned().map(Value::String).collect());
    if !g.parameters.is_empty() {
        statements.push(json!({"Sid": "ReadParameters", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": list(&g.parameters)}));
    }
    if !g.secrets.is_empty() {
        statements.push(json!({"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": list(&g.secrets)}));
    }
    // A key decrypts through the service of its own region (a value in
    // another region is read through that region's endpoint).
    let via = |service: &str, keys: &BTreeSet<String>| {
        let regions: BTreeSet<&str> = keys
            .iter()
            .map(|k| crate::arn::Arn::parse(k).map_or(scope.region.as_str(), |a| a.region))
            .map(|r| if r.is_empty() { scope.region.as_str() } else { r })
            .collect();
        let mut names: Vec<Value> =
            regions.iter().map(|r| Value::String(format!("{service}.{r}.amazonaws.com"))).collect();
        if names.len() == 1 { names.remove(0) } else { Value::Array(names) }
    };
    if !g.parameter_keys.is_empty() {
        statements.push(json!({
            "Sid": "DecryptParameters", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": list(&g.parameter_keys),
            "Condition": {"StringEquals": {"kms:ViaService": via("ssm", &g.parameter_keys)}}
        }));
    }
    if !g.secret_keys.is_empty() {
        statements.push(json!({
            "Sid": "DecryptSecrets", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": list(&g.secret_keys),
            "Condition": {"StringEquals": {"kms:ViaService": via("secretsmanager", &g.secret_keys)}}
        }));
    }
    (!statements.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The task role's inline policy, from the manifest's statements.
pub fn task_policy(statements: &[Statement]) -> Option<Value> {
    if statements.is_empty() {
        return None;
    }
    let st: Vec<Value> = statements
        .iter()
        .map(|s| {
            let mut v = json!({"Effect": s.effect, "Action": s.actions, "Resource": s.resources});
            if let Some(sid) = &s.sid {
                v["Sid"] = json!(sid);
            }
            if !s.conditions.is_empty() {
                v["Condition"] = json!(s.conditions);
            }
            v
        })
        .collect();
    Some(json!({"Version": "2012-10-17", "Statement": st}))
}

/// Parses a policy document as IAM returns it: URL-encoded on real AWS
/// (RFC 3986), plain JSON on some emulators. Both are accepted.
pub fn decode_document(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|e| format!("policy document is not UTF-8 after URL-decoding: {e}"))?;
    serde_json::from_str(&decoded).map_err(|e| format!("policy document is not JSON: {e}"))
}

/// A canonical form for comparison: single values become sorted lists,
/// statements are sorted, `Sid`s kept, `Version` defaulted.
pub fn canonical(doc: &Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("Version".into(), doc.get("Version").cloned().unwrap_or_else(|| json!("2008-10-17")));
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    let mut st: Vec<Value> = statements.iter().map(canonical_statement).collect();
    st.sort_by_key(|s| s.to_string());
    out.insert("Statement".into(), Value::Array(st));
    Value::Object(out)
}

fn canonical_statement(s: &Value) -> Value {
    let Value::Object(m) = s else { return s.clone() };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        let v = match k.as_str() {
            "Action" | "NotAction" | "Resource" | "NotResource" => sorted_list(v),
            "Principal" | "NotPrincipal" => match v {
                Value::Object(p) => Value::Object(p.iter().map(|(k, v)| (k.clone(), sorted_list(v))).collect()),
                other => other.clone(),
            },
            "Condition" => match v {
                Value::Object(ops) => Value::Object(
                    ops.iter()
                        .map(|(op, kv)| {
                            let kv = match kv {
                                Value::Object(kv) => {
                                    Value::Object(kv.iter().map(|(k, v)| (k.clone(), sorted_list(v))).collect())
                                }
                                other => other.clone(),
                            };
                            (op.clone(), kv)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    // serde_json's preserve_order keeps insertion order; sort keys for a stable form.
    let mut keys: Vec<_> = out.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(keys.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut kv: Vec<_> = m.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(kv.into_iter().collect())
        }
        other => other,
    }
}

fn sorted_list(v: &Value) -> Value {
    let mut items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    items.sort_by_key(|x| x.to_string());
    items.dedup();
    Value::Array(items)
}

/// Whether two documents grant the same thing, however they are spelled.
pub fn same_document(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// An observed policy document, kept as the text of its canonical form: all
/// a plan does with it is compare, and parsed it costs several times more
/// (a thousand services keep a thousand roles).
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalDocument(Box<str>);

impl CanonicalDocument {
    /// Whether `doc` means the same policy.
    pub fn matches(&self, doc: &Value) -> bool {
        *self.0 == *canonical(doc).to_string()
    }
}

impl CanonicalDocument {
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// Whether an Allow statement of `policy` grants `action` on `resource`
/// (IAM's `*` and `?` wildcards in both; conditions are not evaluated, and a
/// Deny is not looked for: this answers "does the policy we wrote cover it").
pub fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    };
    policy["Statement"].as_array().into_iter().flatten().any(|st| {
        st["Effect"] == "Allow"
            && list(&st["Action"]).iter().any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && list(&st["Resource"]).iter().any(|r| glob(r, resource))
    })
}

/// IAM wildcard matching: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl From<&Value> for CanonicalDocument {
    fn from(doc: &Value) -> Self {
        Self(canonical(doc).to_string().into_boxed_str())
    }
}

impl std::fmt::Display for CanonicalDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The IAM policy secretwire itself needs for these manifests.
/// The `Sid` of the first statement of `policy` that allows `action`.
pub fn granting_statement(policy: &Value, action: &str) -> Option<String> {
    let allows = |a: &Value| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(action));
    policy["Statement"].as_array()?.iter().find_map(|st| {
        let actions = &st["Action"];
        let hit = allows(actions) || actions.as_array().is_some_and(|l| l.iter().any(allows));
        (hit && st["Effect"] == "Allow").then(|| st["Sid"].as_str().unwrap_or("(no Sid)").to_string())
    })
}

/// The policy secretwire itself needs for `desired`. `running_families` names
/// the family each service runs now, for services whose manifest and template
/// name none (`ServiceDef::family_from_running`); without an entry, the
/// manifest's name is assumed.
/// What the printed policy covers besides apply.
#[derive(Debug, Clone, Copy)]
pub struct Wants<'a> {
    /// `run`'s queue and rules.
    pub run: bool,
    /// `run --notify-eventbridge`.
    pub notify_eventbridge: bool,
    /// `--prune`: deleting and untagging what this controller owns.
    pub prune: bool,
    /// The controller id the ownership conditions of `prune` name.
    pub controller_id: &'a str,
    /// `run --lease dynamodb:TABLE`: the lease table.
    pub lease: Option<&'a str>,
}

/// The controller's policy with `sts:AssumeRole` on exactly the Targets'
/// roles and, for `run` with a Target in another region, letting that
/// Target's account put events on the controller's default bus.
pub fn with_target_roles(mut policy: Value, role_arns: &BTreeSet<String>, bus: Option<String>) -> Value {
    if let Some(st) = policy["Statement"].as_array_mut() {
        if !role_arns.is_empty() {
            st.push(json!({"Sid": "AssumeTargetRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arns}));
        }
        if let Some(bus) = bus {
            st.push(json!({"Sid": "ReadControllerBus", "Effect": "Allow", "Action": "events:DescribeEventBus", "Resource": bus}));
            // PutPermission has no resource type to scope it by (Service Authorization Reference).
            st.push(json!({"Sid": "LetTargetsPutEvents", "Effect": "Allow", "Action": "events:PutPermission", "Resource": "*"}));
        }
    }
    policy
}

/// What a Target's role needs besides its part of the repo for `run` to
/// forward the Target's events: its forwarding role (created, tagged, its
/// one inline policy), passed to EventBridge only, and the rules.
pub fn forwarding_statements(scope: &Scope, controller_id: &str, target: &str) -> Vec<Value> {
    let Scope { partition: p, region: r, account: a } = scope;
    let role = format!("arn:{p}:iam::{a}:role/{}", crate::aws::forward::role_name(controller_id, target));
    vec![
        json!({"Sid": "ForwardingRole", "Effect": "Allow",
               "Action": ["iam:GetRole", "iam:CreateRole", "iam:TagRole", "iam:GetRolePolicy", "iam:PutRolePolicy"],
               "Resource": role}),
        json!({"Sid": "PassForwardingRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
               "Condition": {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}}),
        json!({"Sid": "ForwardingRules", "Effect": "Allow",
               "Action": ["events:DescribeRule", "events:PutRule", "events:TagResource", "events:ListTargetsByRule", "events:PutTargets"],
               "Resource": format!("arn:{p}:events:{r}:{a}:rule/secretwire-{controller_id}-*")}),
    ]
}

/// The trust policy a Target's role needs: the controller's principal may
/// assume it, with the Target's external id when it has one (IAM User
/// Guide, "Access to AWS accounts owned by third parties": the
/// `sts:ExternalId` condition key).
pub fn target_trust(controller_principal: &str, external_id: Option<&str>) -> Value {
    let mut statement = json!({
        "Sid": "TrustSecretwireController",
        "Effect": "Allow",
        "Principal": {"AWS": controller_principal},
        "Action": "sts:AssumeRole"
    });
    if let Some(id) = external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": id}});
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

pub fn controller_policy(
    desired: &Desired,
    scope: &Scope,
    wants: Wants,
    running_families: &std::collections::BTreeMap<String, String>,
) -> Value {
    let Wants { run, notify_eventbridge, prune, controller_id, lease } = wants;
    let Scope { partition: p, region: r, account: a } = scope;
    let managed_by = "aws:ResourceTag/secretwire.dev/managed-by";
    let request_tag = "aws:RequestTag/secretwire.dev/managed-by";
    let param_arns: BTreeSet<String> = desired.parameters.keys().map(|n| scope.parameter_arn(n)).collect();
    let secret_arn = |name: &str| format!("arn:{p}:secretsmanager:{r}:{a}:secret:{name}-??????");
    let owned_secrets: BTreeSet<String> = desired.secrets.keys().map(|n| secret_arn(n)).collect();
    let mut read_secrets = owned_secrets.clone();
    for svc in desired.services.values() {
        for v in svc.value_refs() {
            if let ValueRef::Secret { id, .. } = v {
                // Another target's secret is described by that target's role.
                if desired.foreign.contains_key(&crate::model::ObjectKey::new(crate::model::Kind::Secret, id.as_str()))
                {
                    continue;
                }
                if id.starts_with("arn:") {
                    read_secrets.insert(id.clone());
                } else {
                    read_secrets.insert(secret_arn(id));
                }
            }
        }
    }
    let mut roles = BTreeSet::new();
    let mut managed_policies = BTreeSet::new();
    for svc in desired.services.values() {
        roles.insert(scope.role_arn_in(desired.platform.role_path(), &svc.execution_role.name));
        managed_policies.extend(svc.execution_role.managed_policy_arns.iter().cloned());
        if let Some(t) = &svc.task_role {
            roles.insert(scope.role_arn_in(desired.platform.role_path(), &t.role.name));
            managed_policies.extend(t.role.managed_policy_arns.iter().cloned());
        }
    }
    let services: BTreeSet<String> = desired
        .services
        .values()
        .map(|s| {
            let cluster = s.cluster.rsplit('/').next().unwrap_or(&s.cluster);
            format!("arn:{p}:ecs:{r}:{a}:service/{cluster}/{}", s.service_name)
        })
        .collect();
    let mut st = vec![
        json!({"Sid": "DiscoverWithoutResourceScope", "Effect": "Allow",
               "Action": ["ssm:DescribeParameters", "secretsmanager:ListSecrets",
                          "ecs:DescribeTaskDefinition", "iam:GetAccountAuthorizationDetails"],
               "Resource": "*"}),
        json!({"Sid": "DescribeKeys", "Effect": "Allow", "Action": "kms:DescribeKey", "Resource": format!("arn:{p}:kms:{r}:{a}:key/*")}),
    ];
    if !param_arns.is_empty() {
        st.push(json!({"Sid": "CreateParameters", "Effect": "Allow", "Action": ["ssm:PutParameter", "ssm:AddTagsToResource", "ssm:ListTagsForResource"], "Resource": param_arns}));
    }
    if !read_secrets.is_empty() {
        st.push(json!({"Sid": "DescribeSecrets", "Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": read_secrets}));
    }
    if !owned_secrets.is_empty() {
        st.push(json!({"Sid": "CreateSecrets", "Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                       "Resource": owned_secrets.clone(), "Condition": {"StringLike": {request_tag: "*"}}}));
        st.push(json!({"Sid": "UpdateOwnedSecrets", "Effect": "Allow", "Action": ["secretsmanager:UpdateSecret", "secretsmanager:TagResource", "secretsmanager:RestoreSecret"],
                       "Resource": owned_secrets, "Condition": {"StringLike": {managed_by: "*"}}}));
    }
    // Rotation as the manifests declare it: RotateSecret on our secrets, only
    // with the declared functions (Service Authorization Reference: condition
    // key `secretsmanager:RotationLambdaARN`), and `lambda:InvokeFunction` on
    // them (RotateSecret reference: "You also need lambda:InvokeFunction
    // permissions on the rotation function").
    let rotating: BTreeSet<&str> = desired
        .secrets
        .values()
        .filter_map(|s| match &s.rotation {
            Some(crate::model::RotationDef::Enabled(r)) => Some(r.lambda_arn.as_str()),
            _ => None,
        })
        .collect();
    let with = |want: fn(&crate::model::RotationDef) -> bool| -> BTreeSet<String> {
        desired
            .secrets
            .values()
            .filter(|s| s.rotation.as_ref().is_some_and(want))
            .map(|s| secret_arn(&s.name))
            .collect()
    };
    let rotated = with(|r| matches!(r, crate::model::RotationDef::Enabled(_)));
    let cancelled = with(|r| *r == crate::model::RotationDef::Disabled);
    if !rotating.is_empty() {
        st.push(json!({"Sid": "ConfigureRotation", "Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": rotated,
                       "Condition": {"StringLike": {managed_by: "*"}, "ArnEquals": {"secretsmanager:RotationLambdaARN": rotating}}}));
        st.push(json!({"Sid": "InvokeRotationFunctions", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": rotating}));
    }
    if !cancelled.is_empty() {
        st.push(json!({"Sid": "CancelRotation", "Effect": "Allow", "Action": "secretsmanager:CancelRotateSecret", "Resource": cancelled,
                       "Condition": {"StringLike": {managed_by: "*"}}}));
    }
    if desired.parameters.values().any(|d| d.kms_key_id.is_some())
        || desired.secrets.values().any(|d| d.kms_key_id.is_some())
    {
        st.push(json!({"Sid": "EncryptNewValuesWithCustomerKeys", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"],
                       "Resource": format!("arn:{p}:kms:{r}:{a}:key/*"),
                       "Condition": {"StringEquals": {"kms:ViaService": [format!("ssm.{r}.amazonaws.com"), format!("secretsmanager.{r}.amazonaws.com")]}}}));
    }
    if !roles.is_empty() {
        st.push(json!({"Sid": "ReadRoles", "Effect": "Allow",
                       "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"], "Resource": roles.clone()}));
        match &desired.platform.permissions_boundary {
            None => {
                st.push(json!({"Sid": "CreateRoles", "Effect": "Allow", "Action": ["iam:CreateRole", "iam:TagRole"], "Resource": roles.clone(),
                               "Condition": {"StringLike": {request_tag: "*"}}}));
                st.push(json!({"Sid": "ManageOwnedRoles", "Effect": "Allow",
                               "Action": ["iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:TagRole"],
                               "Resource": roles.clone()}));
                if !managed_policies.is_empty() {
                    st.push(json!({"Sid": "AttachDeclaredManagedPolicies", "Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": roles.clone(),
                                   "Condition": {"ArnEquals": {"iam:PolicyARN": managed_policies}}}));
                }
            }
            // AWS's pattern for delegated role creation (IAM User Guide,
            // "Permissions boundaries for IAM entities"): a role is created, and
            // given permissions, only with this boundary, which is never removed
            // (no DeleteRolePermissionsBoundary), so even this controller cannot
            // make a role that exceeds it.
            Some(boundary) => {
                let bounded = json!({"ArnEquals": {"iam:PermissionsBoundary": boundary}});
                st.push(json!({"Sid": "CreateRolesWithinTheBoundary", "Effect": "Allow", "Action": "iam:CreateRole", "Resource": roles.clone(),
                               "Condition": {"StringLike": {request_tag: "*"}, "ArnEquals": {"iam:PermissionsBoundary": boundary}}}));
                st.push(json!({"Sid": "ManageOwnedRoles", "Effect": "Allow",
                               "Action": ["iam:UpdateAssumeRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:TagRole"],
                               "Resource": roles.clone()}));
                st.push(json!({"Sid": "GrantWithinTheBoundary", "Effect": "Allow",
                               "Action": ["iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"], "Resource": roles.clone(), "Condition": bounded}));
                if !managed_policies.is_empty() {
                    st.push(json!({"Sid": "AttachDeclaredManagedPolicies", "Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": roles.clone(),
                                   "Condition": {"ArnEquals": {"iam:PolicyARN": managed_policies, "iam:PermissionsBoundary": boundary}}}));
                }
            }
        }
        st.push(json!({"Sid": "PassRolesToEcsTasks", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
                       "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}}}));
    }
    if !services.is_empty() {
        // The Service Authorization Reference lists the task-definition resource
        // type for RegisterTaskDefinition: scoped to the managed families.
        let families: BTreeSet<String> = desired
            .services
            .values()
            .map(|s| {
                let family = running_families.get(&s.name).filter(|_| s.family_from_running).unwrap_or(&s.family);
                format!("arn:{p}:ecs:{r}:{a}:task-definition/{family}:*")
            })
            .collect();
        st.push(json!({"Sid": "RegisterTaskDefinitions", "Effect": "Allow", "Action": "ecs:RegisterTaskDefinition", "Resource": families.clone()}));
        st.push(json!({"Sid": "TagNewTaskDefinitions", "Effect": "Allow", "Action": "ecs:TagResource",
                       "Resource": families,
                       "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}}));
        st.push(json!({"Sid": "DeployServices", "Effect": "Allow", "Action": ["ecs:DescribeServices", "ecs:UpdateService"], "Resource": services.clone()}));
        st.push(
            json!({"Sid": "RecordAppliedRevision", "Effect": "Allow", "Action": "ecs:TagResource", "Resource": services,
                       "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [crate::model::TAG_APPLIED, crate::model::TAG_ROLLOUT]}}}),
        );
        // A failed rollout is explained from its stopped tasks. The Service
        // Authorization Reference gives ListTasks the container-instance
        // resource type (with the `ecs:cluster` condition key) and DescribeTasks the task.
        let clusters: BTreeSet<&str> = desired.services.values().map(|s| s.cluster.as_str()).collect();
        let cluster_arns: Vec<String> = clusters.iter().map(|c| format!("arn:{p}:ecs:{r}:{a}:cluster/{c}")).collect();
        let instances: Vec<String> =
            clusters.iter().map(|c| format!("arn:{p}:ecs:{r}:{a}:container-instance/{c}/*")).collect();
        let task_arns: Vec<String> = clusters.iter().map(|c| format!("arn:{p}:ecs:{r}:{a}:task/{c}/*")).collect();
        st.push(json!({"Sid": "ListStoppedTasks", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": instances,
                       "Condition": {"ArnEquals": {"ecs:cluster": cluster_arns}}}));
        st.push(json!({"Sid": "ExplainStoppedTasks", "Effect": "Allow", "Action": "ecs:DescribeTasks", "Resource": task_arns}));
    }
    if prune {
        // What no manifest names any more cannot be listed by ARN: scoped by
        // our ownership tag instead (each action's resource type takes
        // `aws:ResourceTag`, Service Authorization Reference), never forced.
        let ours = json!({"StringEquals": {managed_by: controller_id}});
        st.push(json!({"Sid": "PruneOwnedParameters", "Effect": "Allow", "Action": ["ssm:DeleteParameter", "ssm:RemoveTagsFromResource"],
                       "Resource": format!("arn:{p}:ssm:{r}:{a}:parameter/*"), "Condition": ours.clone()}));
        st.push(json!({"Sid": "PruneOwnedSecrets", "Effect": "Allow", "Action": "secretsmanager:DeleteSecret",
                       "Resource": format!("arn:{p}:secretsmanager:{r}:{a}:secret:*"),
                       "Condition": {"StringEquals": {managed_by: controller_id}, "Bool": {"secretsmanager:ForceDeleteWithoutRecovery": "false"}}}));
        st.push(json!({"Sid": "ReleaseOwnedSecrets", "Effect": "Allow", "Action": "secretsmanager:UntagResource",
                       "Resource": format!("arn:{p}:secretsmanager:{r}:{a}:secret:*"), "Condition": ours.clone()}));
        st.push(json!({"Sid": "PruneOwnedRoles", "Effect": "Allow",
                       "Action": ["iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:UntagRole"],
                       "Resource": format!("arn:{p}:iam::{a}:role{}*", desired.platform.role_path()), "Condition": ours}));
        // The Service Authorization Reference gives neither action a resource
        // type: `*` is the only form IAM takes. secretwire deregisters only
        // revisions whose tags say it registered them.
        st.push(json!({"Sid": "DeregisterOldRevisions", "Effect": "Allow",
                       "Action": ["ecs:ListTaskDefinitions", "ecs:DeregisterTaskDefinition"], "Resource": "*"}));
        st.push(json!({"Sid": "ReadRemovedServices", "Effect": "Allow", "Action": "ecs:DescribeServices",
                       "Resource": format!("arn:{p}:ecs:{r}:{a}:service/*")}));
    }
    if run {
        let queue = format!("arn:{p}:sqs:{r}:{a}:secretwire-*");
        let rules = format!("arn:{p}:events:{r}:{a}:rule/secretwire-*");
        st.push(json!({"Sid": "EventQueue", "Effect": "Allow",
                       "Action": ["sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:TagQueue",
                                  "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"], "Resource": queue}));
        st.push(json!({"Sid": "EventRules", "Effect": "Allow",
                       "Action": ["events:PutRule", "events:PutTargets", "events:DescribeRule", "events:ListTargetsByRule", "events:TagResource"],
                       "Resource": rules}));
        if notify_eventbridge {
            st.push(json!({"Sid": "NotifyOnTheDefaultBus", "Effect": "Allow", "Action": "events:PutEvents",
                           "Resource": format!("arn:{p}:events:{r}:{a}:event-bus/default")}));
        }
        if let Some(table) = lease {
            st.push(json!({"Sid": "RunLease", "Effect": "Allow",
                           "Action": ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource",
                                      "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                           "Resource": format!("arn:{p}:dynamodb:{r}:{a}:table/{table}")}));
        }
    }
    json!({"Version": "2012-10-17", "Statement": st})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("us-east-1", "123456789012")
    }

    #[test]
    fn allows_matches_actions_and_resources_with_iam_wildcards() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-??????"},
            {"Effect": "Allow", "Action": "ssm:Get*", "Resource": ["arn:aws:ssm:us-east-1:1:parameter/web/*"]},
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]});
        assert!(allows(
            &doc,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf"
        ));
        assert!(!allows(
            &doc,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:1:secret:prod/db2-AbCdEf"
        ));
        assert!(allows(&doc, "SSM:GetParameters", "arn:aws:ssm:us-east-1:1:parameter/web/a/b"));
        assert!(!allows(&doc, "ssm:GetParameters", "arn:aws:ssm:us-west-2:1:parameter/web/a"));
        assert!(!allows(&doc, "kms:Decrypt", "arn:aws:kms:us-east-1:1:key/k"));
    }

    #[test]
    fn execution_policy_is_least_privilege_sorted_and_omits_empty_statements() {
        let mut g = Grants::default();
        g.parameters.insert("arn:aws:ssm:us-east-1:123456789012:parameter/web/b".into());
        g.parameters.insert("arn:aws:ssm:us-east-1:123456789012:parameter/web/a".into());
        g.parameters.insert("arn:aws:ssm:us-east-1:123456789012:parameter/web/a".into());
        g.secret_keys.insert("arn:aws:kms:us-east-1:123456789012:key/k1".into());
        let p = execution_policy(&g, &scope()).unwrap();
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2, "no secrets statement, no parameter key statement: {p}");
        assert_eq!(st[0]["Action"], "ssm:GetParameters");
        assert_eq!(
            st[0]["Resource"],
            json!([
                "arn:aws:ssm:us-east-1:123456789012:parameter/web/a",
                "arn:aws:ssm:us-east-1:123456789012:parameter/web/b"
            ])
        );
        assert_eq!(st[1]["Condition"]["StringEquals"]["kms:ViaService"], "secretsmanager.us-east-1.amazonaws.com");
        assert!(!p.to_string().contains('*'), "no wildcards: {p}");
        assert_eq!(execution_policy(&Grants::default(), &scope()), None);
    }

    #[test]
    fn trust_policies_are_confused_deputy_safe() {
        let e = execution_trust(&scope());
        assert_eq!(e["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
        assert!(e["Statement"][0]["Condition"].get("ArnLike").is_none());
        let t = task_trust(&scope());
        assert_eq!(t["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws:ecs:us-east-1:123456789012:*");
        assert_eq!(t["Statement"][0]["Principal"]["Service"], ECS_TASKS);
    }

    #[test]
    fn url_encoded_documents_compare_equal_to_what_we_wrote() {
        let ours = execution_trust(&scope());
        // What real IAM returns from GetRole: RFC 3986 encoded, lists collapsed, keys reordered.
        let returned = r#"{"Statement":[{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":["123456789012"]}},"Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com"]}}],"Version":"2012-10-17"}"#;
        let encoded: String =
            percent_encoding::utf8_percent_encode(returned, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert!(encoded.starts_with("%7B%22Statement"));
        let decoded = decode_document(&encoded).unwrap();
        assert!(same_document(&ours, &decoded));
        assert!(same_document(&ours, &decode_document(returned).unwrap()), "plain JSON (moto) too");
        let other = task_trust(&scope());
        assert!(!same_document(&ours, &other));
        assert!(decode_document("%7Bnot json").is_err());
    }

    #[test]
    fn task_policy_carries_statements_and_conditions() {
        let st = Statement {
            sid: Some("Assets".into()),
            effect: "Allow".into(),
            actions: vec!["s3:GetObject".into()],
            resources: vec!["arn:aws:s3:::web-assets/*".into()],
            conditions: [("Bool".to_string(), [("aws:SecureTransport".to_string(), vec!["true".to_string()])].into())]
                .into(),
        };
        let p = task_policy(&[st]).unwrap();
        assert_eq!(p["Statement"][0]["Sid"], "Assets");
        assert_eq!(p["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"], json!(["true"]));
        assert_eq!(task_policy(&[]), None);
    }
}
