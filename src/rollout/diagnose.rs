//! Why a rollout failed, in the product's own terms. ECS says why a task
//! stopped (`stoppedReason`, e.g. `ResourceInitializationError: unable to
//! pull secrets or registry auth: ...`); where that names a secret, a
//! parameter or a KMS key, this ties it to the manifest reference that reads
//! it and says what secretwire knows of it: whether the value exists, the key
//! behind it, whether the execution role's policy grants the read and the
//! decrypt, whether it lives in another account or region, and which role the
//! task really used. The checklist is AWS's for ResourceInitializationError
//! (ECS developer guide, "Troubleshoot ... ResourceInitializationError"):
//! wrong role, wrong ARN, wrong region or account, missing `kms:Decrypt`,
//! and the network. Pure: every failure string is unit tested.

use serde::Serialize;

use crate::arn::{Arn, RawTarget, Scope};
use crate::model::{ServiceDef, ValueRef};
use crate::observed::{Observed, ObservedRole, StoppedTask};
use crate::policy::allows;

/// A failed rollout, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// ECS's own words: the first stopped task's reason (or service event).
    pub ecs_reason: String,
    /// What secretwire knows of what it names, one fact a line.
    pub facts: Vec<String>,
    /// The likeliest cause, from the checklist.
    pub cause: Option<String>,
}

/// What secretwire knows when a rollout fails.
pub struct Known<'a> {
    pub service: &'a ServiceDef,
    /// The last pass's observation (metadata only: never a value).
    pub observed: Option<&'a Observed>,
    pub scope: &'a Scope,
    /// The execution role as read when the rollout failed (`None`: not read;
    /// the observation's is used).
    pub role_now: Option<&'a ObservedRole>,
}

/// The first reason ECS gave: a stopped task's (or one of its containers'),
/// else the newest service event since the deployment started that says it
/// could not start or place a task.
pub fn first_reason(tasks: &[StoppedTask], events: &[(f64, String)], since: f64) -> Option<String> {
    let task = tasks.iter().find_map(|t| {
        let own = Some(t.stopped_reason.as_str()).filter(|r| !r.is_empty() && !r.starts_with("Essential container"));
        own.or_else(|| t.containers.iter().map(|(_, r)| r.as_str()).find(|r| !r.is_empty()))
            .or(Some(t.stopped_reason.as_str()).filter(|r| !r.is_empty()))
            .map(str::to_string)
    });
    task.or_else(|| {
        events
            .iter()
            .filter(|(t, _)| *t >= since - 1.0)
            .map(|(_, m)| m)
            .find(|m| ["unable to", "Error", "failed"].iter().any(|k| m.contains(k)))
            .cloned()
    })
}

/// Explains `reason` for the service in `k`.
pub fn explain(reason: &str, k: &Known<'_>) -> Diagnosis {
    let mut facts = Vec::new();
    let mut causes: Vec<String> = Vec::new();
    let exec_role = &k.service.execution_role.name;
    let role_policy = k
        .role_now
        .or_else(|| k.observed.and_then(|o| o.roles.get(exec_role)).map(|r| r.as_ref()))
        .and_then(|r| r.inline_policy.as_ref())
        .map(|d| d.value());

    // Wrong role: the task ran with another role than the one secretwire manages.
    if let Some(used) = assumed_role(reason)
        && used != *exec_role
    {
        facts.push(format!("the task used role {used}; the manifest's execution role is {exec_role}"));
        causes.push(format!(
            "wrong role: the task ran as {used}, not {exec_role} (the service's task definition is not the one secretwire registered)"
        ));
    }
    let denied_action = denied(reason);
    let kms_denied = reason.contains("Access to KMS is not allowed")
        || denied_action.as_deref().is_some_and(|a| a.eq_ignore_ascii_case("kms:Decrypt"));
    let mut named_any = false;
    for arn in arns(reason) {
        let Some(a) = Arn::parse(&arn) else { continue };
        let Some((place, value)) = reference(k.service, &a, &arn) else {
            if a.service == "kms" {
                named_any = true;
                let granted = role_policy.as_ref().is_some_and(|p| allows(p, "kms:Decrypt", &arn));
                facts.push(format!("key {arn}: {exec_role} {} kms:Decrypt on it", grants(granted)));
                if kms_denied && !granted {
                    causes.push(format!("missing kms:Decrypt: {exec_role} does not grant it on key {arn}"));
                }
            }
            continue;
        };
        named_any = true;
        facts.push(format!("{place} reads {}", describe(value)));
        let (action, resource) = match a.service {
            "ssm" => ("ssm:GetParameters", arn.clone()),
            _ => ("secretsmanager:GetSecretValue", secret_part(&arn).to_string()),
        };
        if a.region != k.scope.region || a.account != k.scope.account {
            let mut other = Vec::new();
            if a.account != k.scope.account {
                other.push(format!("account {}", a.account));
            }
            if a.region != k.scope.region {
                other.push(format!("region {}", a.region));
            }
            facts.push(format!(
                "it lives in {}; the service runs in account {} region {}",
                other.join(" and "),
                k.scope.account,
                k.scope.region
            ));
            causes.push(format!(
                "wrong {}: the reference points outside the service's own account and region",
                if a.region != k.scope.region { "region" } else { "account" }
            ));
        }
        let exists = k.observed.map(|o| exists(o, value));
        match exists {
            Some(Some(key)) => {
                let key_fact = match &key {
                    KeyInfo::AwsManaged => "encrypted with the AWS managed key".to_string(),
                    KeyInfo::Customer(arn) => format!("encrypted with customer managed key {arn}"),
                };
                facts.push(format!("it exists, {key_fact}"));
                if let KeyInfo::Customer(key_arn) = &key {
                    let granted = role_policy.as_ref().is_some_and(|p| allows(p, "kms:Decrypt", key_arn));
                    facts.push(format!("{exec_role} {} kms:Decrypt on {key_arn}", grants(granted)));
                    if kms_denied && !granted {
                        causes.push(format!("missing kms:Decrypt: {exec_role} does not grant it on {key_arn}"));
                    }
                }
            }
            Some(None) => {
                facts.push("it does not exist (as of the last reconcile)".to_string());
                causes.push("wrong ARN: the value it names does not exist".to_string());
            }
            None => {}
        }
        match &role_policy {
            Some(p) => {
                let granted = allows(p, action, &resource);
                facts.push(format!("{exec_role} {} {action} on it", grants(granted)));
                if !granted && denied_action.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(action)) {
                    causes.push(format!(
                        "{exec_role}'s policy does not grant {action} on it: apply has not run since the reference was added, or the role is not secretwire's"
                    ));
                } else if granted && denied_action.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(action)) {
                    causes.push(format!(
                        "{exec_role}'s policy grants {action}, so something denies it: an SCP, a permissions boundary or the value's resource policy"
                    ));
                }
            }
            None => facts.push(format!("{exec_role} has no secretwire inline policy")),
        }
    }
    // SSM names the parameters it could not read, without ARNs.
    if let Some(names) = reason.split("invalid parameters:").nth(1) {
        for name in names.split([',', ' ']).map(|n| n.trim().trim_end_matches('.')).filter(|n| !n.is_empty()) {
            let arn = k.scope.parameter_arn(name);
            if let Some(a) = Arn::parse(&arn)
                && let Some((place, value)) = reference(k.service, &a, &arn)
            {
                named_any = true;
                facts.push(format!("{place} reads {}", describe(value)));
                if k.observed.is_some_and(|o| exists(o, value).is_none()) {
                    facts.push(format!("parameter {name} does not exist in region {}", k.scope.region));
                }
            }
        }
        causes.push("wrong ARN or region: SSM found no such parameter where the task looked".to_string());
    }
    if reason.contains("marked for deletion") {
        causes.push("the secret is scheduled for deletion: restore it, or reference another".to_string());
    }
    if let Some(key) = reason.split("did not contain json key ").nth(1) {
        let key = key.split_whitespace().next().unwrap_or_default();
        causes.push(format!("the secret's value has no JSON key {key}: the manifest's jsonKey names one it lacks"));
    }
    if ["context deadline exceeded", "connection issue", "i/o timeout", "RequestCanceled"]
        .iter()
        .any(|n| reason.contains(n))
    {
        causes.push(
            "the network: the task could not reach the API (no route to the internet, NAT or a VPC endpoint)".into(),
        );
    }
    if !named_any && reason.contains("ResourceInitializationError") && causes.is_empty() {
        facts.push("the reason names no value secretwire wires".to_string());
    }
    Diagnosis { ecs_reason: reason.to_string(), facts, cause: causes.into_iter().next() }
}

fn grants(yes: bool) -> &'static str {
    if yes { "grants" } else { "does not grant" }
}

/// The role name in `assumed-role/NAME/session`.
fn assumed_role(reason: &str) -> Option<String> {
    let rest = reason.split(":assumed-role/").nth(1)?;
    Some(rest.split('/').next()?.to_string())
}

/// The action of "is not authorized to perform: ACTION".
fn denied(reason: &str) -> Option<String> {
    let rest = reason.split("not authorized to perform: ").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_end_matches([',', '.']).to_string())
}

/// Every ARN in the text, trimmed of the punctuation around it.
fn arns(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',') {
        let Some(i) = word.find("arn:") else { continue };
        let arn = word[i..].trim_end_matches(['.', ')', ';', ':']);
        let service_ok = ["secretsmanager", "ssm", "kms"].iter().any(|s| arn.split(':').nth(2) == Some(s));
        if service_ok && !out.iter().any(|a| a == arn) {
            out.push(arn.to_string());
        }
    }
    out
}

/// `arn:...:secret:NAME-AbCdEf` from a secret ARN with ECS's `:key:stage:id` tail.
fn secret_part(arn: &str) -> &str {
    let parts: Vec<&str> = arn.splitn(8, ':').collect();
    if parts.len() > 7 { &arn[..parts[..7].iter().map(|p| p.len() + 1).sum::<usize>() - 1] } else { arn }
}

/// A secret name from its ARN's resource (`secret:NAME-AbCdEf`), suffix dropped.
fn secret_name(resource: &str) -> Option<&str> {
    let name = resource.strip_prefix("secret:")?.split(':').next()?;
    let (base, suffix) = name.rsplit_once('-')?;
    Some(if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) { base } else { name })
}

/// The manifest reference that reads the value `arn` names: where, and what.
fn reference<'a>(svc: &'a ServiceDef, a: &Arn<'_>, arn: &str) -> Option<(String, &'a ValueRef)> {
    let hit = |v: &ValueRef| match (v, a.service) {
        (ValueRef::Parameter { name }, "ssm") => a
            .resource
            .strip_prefix("parameter/")
            .is_some_and(|r| r.trim_start_matches('/') == name.trim_start_matches('/')),
        (ValueRef::Raw { target: RawTarget::Parameter { name, .. }, .. }, "ssm") => a
            .resource
            .strip_prefix("parameter/")
            .is_some_and(|r| r.trim_start_matches('/') == name.trim_start_matches('/')),
        (ValueRef::Secret { id, .. }, "secretsmanager") => {
            let named = secret_name(a.resource);
            Some(id.as_str()) == named || secret_part(arn).starts_with(id.as_str()) && id.starts_with("arn:")
        }
        (ValueRef::Raw { target: RawTarget::Secret(s), .. }, "secretsmanager") => {
            secret_part(arn).starts_with(&s.secret_arn) || Some(s.secret_arn.as_str()) == Some(secret_part(arn))
        }
        _ => false,
    };
    for c in &svc.containers {
        for s in &c.secrets {
            if hit(&s.value) {
                return Some((format!("containerDefinitions[{}].secrets[{}]", c.name, s.name), &s.value));
            }
        }
        for s in &c.log_secrets {
            if hit(&s.value) {
                return Some((
                    format!("containerDefinitions[{}].logConfiguration.secretOptions[{}]", c.name, s.name),
                    &s.value,
                ));
            }
        }
        if let Some(v) = c.repository_credentials.as_ref().filter(|v| hit(v)) {
            return Some((format!("containerDefinitions[{}].repositoryCredentials", c.name), v));
        }
    }
    None
}

fn describe(v: &ValueRef) -> String {
    match v {
        ValueRef::Parameter { name } => format!("parameter {name}"),
        ValueRef::Secret { id, .. } => format!("secret {id}"),
        ValueRef::Raw { value_from, .. } => format!("{value_from} (a raw valueFrom)"),
    }
}

enum KeyInfo {
    AwsManaged,
    Customer(String),
}

/// Whether the value exists as of the last observation, and its key.
fn exists(o: &Observed, v: &ValueRef) -> Option<KeyInfo> {
    let key = |id: Option<&str>| match id {
        None => KeyInfo::AwsManaged,
        Some(id) if id.starts_with("alias/aws/") => KeyInfo::AwsManaged,
        Some(id) => match o.keys.values().find(|k| k.arn == id || k.arn.ends_with(id)).or_else(|| o.keys.get(id)) {
            Some(k) if !k.customer_managed => KeyInfo::AwsManaged,
            Some(k) => KeyInfo::Customer(k.arn.clone()),
            None => KeyInfo::Customer(id.to_string()),
        },
    };
    match v {
        ValueRef::Parameter { name } | ValueRef::Raw { target: RawTarget::Parameter { name, .. }, .. } => {
            o.parameters.get(name).map(|p| key(p.key_id.as_deref()))
        }
        ValueRef::Secret { id, .. } => o.secrets.get(id).map(|s| key(s.kms_key_id.as_deref())),
        ValueRef::Raw { target: RawTarget::Secret(s), .. } => {
            o.secrets.get(&s.secret_arn).map(|s| key(s.kms_key_id.as_deref()))
        }
    }
}
