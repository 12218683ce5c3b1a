//! Splitting the repo by `spec.target`: one desired state per account and
//! region, each reconciled by its own clients. Pure.
//!
//! Each part owns what it creates under its own owner id (the controller id,
//! and `<id>/<target>` in a Target), so two parts that share an account (IAM
//! is global; two regions of one account) never prune each other's objects.
//! A Service may read a value another part holds: the reference is marked
//! foreign in its part ([`Desired::foreign`]) and resolved from the owner's
//! observation ([`foreign_value`]).

use std::collections::BTreeMap;

use crate::arn::Scope;
use crate::model::{Desired, Kind, ObjectKey, ValueRef};
use crate::observed::{ForeignValue, Observed};
use crate::plan::Stores;

/// One account and region's share of the repo.
#[derive(Debug, Clone)]
pub struct Part {
    /// `None`: the controller's own account and region.
    pub target: Option<String>,
    pub desired: Desired,
}

/// The owner id (the `managed-by` tag value) of a part.
pub fn owner_id(controller_id: &str, target: Option<&str>) -> String {
    match target {
        None => controller_id.to_string(),
        Some(t) => format!("{controller_id}/{t}"),
    }
}

/// The controller's own part first, then one per declared Target, by name.
/// Every part carries the repo's invalid and refused objects (a reference to
/// one is blocked wherever it is, and prune leaves them alone everywhere).
pub fn split(d: &Desired) -> Vec<Part> {
    let targets = std::iter::once(None).chain(d.targets.keys().map(|t| Some(t.clone())));
    targets
        .map(|target| {
            let here = |t: &Option<String>| t == &target;
            let mut part = Desired {
                parameters: d.parameters.iter().filter(|(_, p)| here(&p.target)).map(clone).collect(),
                secrets: d.secrets.iter().filter(|(_, s)| here(&s.target)).map(clone).collect(),
                services: d.services.iter().filter(|(_, s)| here(&s.target)).map(clone).collect(),
                targets: BTreeMap::new(),
                foreign: BTreeMap::new(),
                invalid: d.invalid.clone(),
                refused: d.refused.clone(),
                load_errors: d.load_errors,
                platform: d.platform.clone(),
            };
            for svc in part.services.values() {
                for r in svc.value_refs() {
                    let key = match r {
                        ValueRef::Parameter { name } if d.parameters.contains_key(name) => {
                            ObjectKey::new(Kind::Parameter, name)
                        }
                        ValueRef::Secret { id, .. } if d.secrets.contains_key(id) => ObjectKey::new(Kind::Secret, id),
                        _ => continue,
                    };
                    let owner = d.target_of(&key).map(str::to_string);
                    if owner != target {
                        part.foreign.insert(key, owner);
                    }
                }
            }
            Part { target, desired: part }
        })
        .collect()
}

fn clone<V: Clone>((k, v): (&String, &V)) -> (String, V) {
    (k.clone(), v.clone())
}

/// A value as the part that holds it read (and, in apply, wrote) it.
pub fn foreign_value(
    target: Option<&str>,
    key: &ObjectKey,
    owner: &Desired,
    observed: &Observed,
    stores: &Stores,
) -> ForeignValue {
    let customer_key = |key_id: Option<&str>| {
        let k = observed.keys.get(key_id?)?;
        (k.customer_managed && !k.arn.is_empty()).then(|| k.arn.clone())
    };
    let (arn, key_arn) = match key.kind {
        Kind::Parameter => match observed.parameters.get(&key.name) {
            Some(p) => (Some(observed.scope.parameter_arn(&key.name)), customer_key(p.key_id.as_deref())),
            None => (None, customer_key(owner.parameters.get(&key.name).and_then(|p| p.kms_key_id.as_deref()))),
        },
        _ => match observed.secrets.get(&key.name) {
            Some(s) => (Some(s.arn.clone()), customer_key(s.kms_key_id.as_deref())),
            None => (None, customer_key(owner.secrets.get(&key.name).and_then(|s| s.kms_key_id.as_deref()))),
        },
    };
    ForeignValue {
        target: target.map(str::to_string),
        scope: observed.scope.clone(),
        arn,
        customer_key: key_arn,
        trouble: stores.trouble(key).map(str::to_string),
    }
}

/// What `validate` can tell without AWS: a Service in one Target reading a
/// repo value another Target holds in another account, which no task there
/// can read (a parameter: ECS reads only the task's own account's; a secret
/// under the AWS managed key). The controller's own account is known only to
/// `plan`, which warns about the rest. `file:line: warning: ...` lines.
pub fn static_warnings(d: &Desired) -> Vec<String> {
    let account = |t: Option<&str>| t.and_then(|t| d.targets.get(t)).map(|t| t.account.as_str());
    let mut out = Vec::new();
    for svc in d.services.values() {
        let Some(here) = account(svc.target.as_deref()) else { continue };
        for r in svc.value_refs() {
            let (key, why) = match r {
                ValueRef::Parameter { name } => match d.parameters.get(name) {
                    Some(p) => (
                        ObjectKey::new(Kind::Parameter, name),
                        account(p.target.as_deref()).filter(|a| *a != here).map(|a| {
                            format!(
                                "is in account {a}; ECS reads a parameter only from the task's own account ({here})"
                            )
                        }),
                    ),
                    None => continue,
                },
                ValueRef::Secret { id, .. } => match d.secrets.get(id) {
                    Some(s) => {
                        let aws_managed = s.kms_key_id.as_deref().is_none_or(|k| k.starts_with("alias/aws/"));
                        (
                            ObjectKey::new(Kind::Secret, id),
                            account(s.target.as_deref()).filter(|a| *a != here && aws_managed).map(|a| {
                                format!(
                                    "is in account {a} under the AWS managed key, which tasks in account {here} \
                                     cannot use (give it a customer managed kmsKeyId)"
                                )
                            }),
                        )
                    }
                    None => continue,
                },
                ValueRef::Raw { .. } => continue,
            };
            if let Some(why) = why {
                let o = &svc.origin;
                out.push(format!(
                    "{}:{}: warning: Service/{} reads {key}, which {why}",
                    o.path.display(),
                    o.line,
                    svc.name
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A value whose part could not be read at all.
pub fn unreachable_value(target: Option<&str>, scope: Scope, why: &str) -> ForeignValue {
    ForeignValue {
        target: target.map(str::to_string),
        scope,
        arn: None,
        customer_key: None,
        trouble: Some(format!("its account could not be read: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_keep_parts_apart() {
        assert_eq!(owner_id("prod", None), "prod");
        assert_eq!(owner_id("prod", Some("apps-east")), "prod/apps-east");
    }
}
