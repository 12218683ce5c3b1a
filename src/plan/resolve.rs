//! Resolving one reference to the ARN a task definition names, and the
//! grants (ARNs and customer managed keys) the execution role needs for it.

use super::*;

impl Planner<'_> {
    /// The ARN of the key behind a value when it is customer managed: the only
    /// keys a `kms:Decrypt` grant is written for (AWS managed keys need none).
    fn customer_key(&self, key_id: Option<&str>) -> Option<String> {
        let k = self.o.keys.get(key_id?)?;
        (k.customer_managed && !k.arn.is_empty()).then(|| k.arn.clone())
    }

    /// What stops a task in this account from reading a repo value another
    /// account holds, when something does: ECS reads parameters from the
    /// task's own account only ("The parameter that you reference can be
    /// from a different Region than the container using it, but must be from
    /// within the same account", ECS Developer Guide, Specifying sensitive
    /// data), and another account's principals cannot use an AWS managed
    /// key (Secrets Manager User Guide, "Access AWS Secrets Manager secrets
    /// from a different account": the secret must be encrypted with a
    /// customer managed key whose key policy allows them). Reported, not
    /// refused: the account holding the value may be set up outside secretwire.
    pub(super) fn cross_account(&self, r: &ValueRef) -> Option<Problem> {
        let key = match r {
            ValueRef::Parameter { name } => ObjectKey::new(Kind::Parameter, name),
            ValueRef::Secret { id, .. } => ObjectKey::new(Kind::Secret, id),
            ValueRef::Raw { .. } => return None,
        };
        let f = self.o.foreign.get(&key).filter(|f| f.scope.account != self.o.scope.account)?;
        let message = match key.kind {
            Kind::Parameter => format!(
                "is in account {}; ECS reads a parameter only from the task's own account (use a Secret, or \
                 a copy of the parameter in account {})",
                f.scope.account, self.o.scope.account
            ),
            _ if f.customer_key.is_none() => format!(
                "is in account {} under the AWS managed key aws/secretsmanager, which no other account can use: \
                 tasks in account {} cannot read it (give it a customer managed kmsKeyId whose key policy \
                 allows this account)",
                f.scope.account, self.o.scope.account
            ),
            _ => return None,
        };
        Some(Problem { kind: ProblemKind::Warning, reason: Reason::CrossAccount, resource: key.to_string(), message })
    }

    pub(super) fn resolve(&self, r: &ValueRef, grants: &mut Grants) -> Resolution {
        let scope = &self.o.scope;
        match r {
            ValueRef::Parameter { name } => {
                let key = ObjectKey::new(Kind::Parameter, name);
                if let Some(msg) = self.troubled.get(&key) {
                    return Resolution::Problem(ProblemKind::Blocked, Reason::Blocked, key.to_string(), msg.clone());
                }
                if let Some(f) = self.o.foreign.get(&key) {
                    let predicted = f.scope.parameter_arn(name);
                    return foreign(f, &key, predicted, |arn| arn.to_string(), grants);
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
                        Reason::ValueNotFound,
                        format!("ssm parameter {name}"),
                        "not found (an external reference must exist)".into(),
                    );
                }
                grants.parameter_keys.extend(self.customer_key(key_id.as_deref()));
                if self.o.parameters.contains_key(name) {
                    Resolution::Ready(arn)
                } else {
                    Resolution::Pending(arn, key)
                }
            }
            ValueRef::Secret { id, json_key, version_stage, version_id } => {
                let key = ObjectKey::new(Kind::Secret, id);
                if let Some(msg) = self.troubled.get(&key) {
                    return Resolution::Problem(ProblemKind::Blocked, Reason::Blocked, key.to_string(), msg.clone());
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
                if let Some(f) = self.o.foreign.get(&key) {
                    let s = &f.scope;
                    let predicted =
                        format!("arn:{}:secretsmanager:{}:{}:secret:{id}-??????", s.partition, s.region, s.account);
                    return foreign(f, &key, predicted, value_from, grants);
                }
                match (self.o.secrets.get(id), self.d.secrets.get(id)) {
                    (Some(obs), None) if obs.deleted => Resolution::Problem(
                        ProblemKind::Error,
                        Reason::ValueNotFound,
                        format!("secret {id}"),
                        "is scheduled for deletion (an external reference must exist)".into(),
                    ),
                    (Some(obs), _) => {
                        grants.secrets.insert(obs.arn.clone());
                        grants.secret_keys.extend(self.customer_key(obs.kms_key_id.as_deref()));
                        Resolution::Ready(value_from(&obs.arn))
                    }
                    (None, Some(_)) => Resolution::Pending(
                        value_from(&format!(
                            "arn:{}:secretsmanager:{}:{}:secret:{id}-??????",
                            scope.partition, scope.region, scope.account
                        )),
                        key,
                    ),
                    (None, None) => Resolution::Problem(
                        ProblemKind::Error,
                        Reason::ValueNotFound,
                        format!("secret {id}"),
                        "not found (an external reference must exist)".into(),
                    ),
                }
            }
            ValueRef::Raw { value_from, target } => {
                match target {
                    RawTarget::Parameter { arn, name } => {
                        grants.parameters.insert(arn.clone());
                        let key = self.o.parameters.get(name).and_then(|p| p.key_id.as_deref());
                        grants.parameter_keys.extend(self.customer_key(key));
                    }
                    RawTarget::Secret(s) => {
                        grants.secrets.insert(s.secret_arn.clone());
                        let key = self.o.secrets.get(&s.secret_arn).and_then(|o| o.kms_key_id.as_deref());
                        grants.secret_keys.extend(self.customer_key(key));
                    }
                }
                Resolution::Ready(value_from.clone())
            }
        }
    }
}

/// A repo value another Target holds: its ARN as that target read it (or
/// the one it will get), granted like a local one.
fn foreign(
    f: &ForeignValue,
    key: &ObjectKey,
    predicted: String,
    value_from: impl Fn(&str) -> String,
    grants: &mut Grants,
) -> Resolution {
    let place = f.target.as_deref().map_or("the controller's own account".into(), |t| format!("Target {t}"));
    if let Some(msg) = &f.trouble {
        return Resolution::Problem(ProblemKind::Blocked, Reason::Blocked, format!("{key} (in {place})"), msg.clone());
    }
    let arn = f.arn.clone().unwrap_or(predicted);
    let (values, keys) = match key.kind {
        Kind::Parameter => (&mut grants.parameters, &mut grants.parameter_keys),
        _ => (&mut grants.secrets, &mut grants.secret_keys),
    };
    values.insert(arn.clone());
    keys.extend(f.customer_key.clone());
    match &f.arn {
        Some(_) => Resolution::Ready(value_from(&arn)),
        None => Resolution::Pending(value_from(&arn), key.clone()),
    }
}

pub(super) enum Resolution {
    Ready(String),
    /// Resolves once this repo object is created (`apply` plans services again then).
    Pending(String, ObjectKey),
    Problem(ProblemKind, Reason, String, String),
}
