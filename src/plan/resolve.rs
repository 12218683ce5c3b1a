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

    pub(super) fn resolve(&self, r: &ValueRef, grants: &mut Grants) -> Resolution {
        let scope = &self.o.scope;
        match r {
            ValueRef::Parameter { name } => {
                let key = ObjectKey::new(Kind::Parameter, name);
                if let Some(msg) = self.troubled.get(&key) {
                    return Resolution::Problem(ProblemKind::Blocked, Reason::Blocked, key.to_string(), msg.clone());
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

pub(super) enum Resolution {
    Ready(String),
    /// Resolves once this repo object is created (`apply` plans services again then).
    Pending(String, ObjectKey),
    Problem(ProblemKind, Reason, String, String),
}
