//! Planning the stores: SSM parameters and Secrets Manager secrets the repo
//! owns (create from `initialValue`, tags, description and key; drift).

use super::*;

impl Planner<'_> {
    pub(super) fn parameter(&self, def: &ParameterDef) -> ObjectPlan {
        let key = ObjectKey::new(Kind::Parameter, &def.name);
        let resource = format!("ssm parameter {}", def.name);
        let mut tags = owned_tags(self.id, &key, &def.origin, &def.tags);
        tags.insert(TAG_DELETION_POLICY.into(), def.deletion_policy.as_str().into());
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
                    diff: Vec::new(),
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
                reason: Reason::Drift,
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
                    reason: Reason::Drift,
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
                reason: Reason::Drift,
                resource: resource.clone(),
                message: "description differs; SSM changes it only with a new value".into(),
            });
        }
        let add = missing_tags(&tags, &obs.tags);
        if add.is_empty() {
            plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Unchanged,
                resource,
                detail: kind_name.into(),
                ops: vec![],
            });
        } else {
            let detail =
                if adopting { "adopt: add ownership tags".to_string() } else { format!("tags: {}", keys_of(&add)) };
            plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Update,
                resource,
                detail,
                ops: vec![Op::TagParameter { name: def.name.clone(), tags: add }],
            });
        }
        plan
    }

    pub(super) fn secret(&self, def: &SecretDef) -> ObjectPlan {
        let key = ObjectKey::new(Kind::Secret, &def.name);
        let resource = format!("secret {}", def.name);
        let mut tags = owned_tags(self.id, &key, &def.origin, &def.tags);
        tags.insert(TAG_DELETION_POLICY.into(), def.deletion_policy.as_str().into());
        if def.deletion_policy == DeletionPolicy::Delete {
            tags.insert(TAG_RECOVERY_WINDOW.into(), def.recovery_window_days.to_string());
        }
        let mut plan = ObjectPlan::new(key.clone());
        if self.missing_key(&mut plan, &resource, def.kms_key_id.as_deref()) {
            return plan;
        }
        let Some(obs) = self.o.secrets.get(&def.name) else {
            match &def.initial_value {
                Some(iv) => {
                    let mut detail = format!(
                        "value {}{}",
                        iv.describe(),
                        def.kms_key_id.as_ref().map(|k| format!(", key {k}")).unwrap_or_default()
                    );
                    let mut ops = vec![Op::CreateSecret {
                        name: def.name.clone(),
                        key_id: def.kms_key_id.clone(),
                        description: def.description.clone(),
                        initial: iv.clone(),
                        tags,
                    }];
                    if let Some((what, op)) = def.rotation.as_ref().and_then(|r| rotation::on_create(r, &def.name)) {
                        detail = format!("{detail}, {what}");
                        ops.push(op);
                    }
                    plan.changes.push(Change { diff: Vec::new(), action: Action::Create, resource, detail, ops });
                }
                None => plan.problems.push(uncreatable(resource)),
            }
            return plan;
        };
        let Some(adopting) = self.may_manage(&mut plan, &resource, &obs.tags, def.adopt) else { return plan };
        let mut ops = Vec::new();
        let mut what = Vec::new();
        if obs.deleted {
            // Declared again within its recovery window: the same secret (and
            // ARN, which its readers name) comes back; CreateSecret would fail.
            what.push("restore: scheduled for deletion, declared again".to_string());
            ops.push(Op::RestoreSecret { id: obs.arn.clone() });
        }
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
        if let Some((detail, op)) = def.rotation.as_ref().and_then(|r| rotation::change(r, &obs.rotation, &obs.arn)) {
            what.push(detail);
            ops.push(op);
        }
        let add = missing_tags(&tags, &obs.tags);
        if !add.is_empty() {
            what.push(if adopting { "adopt: add ownership tags".into() } else { format!("tags: {}", keys_of(&add)) });
            // First: the other writes are allowed on secrets that carry our tag
            // (`policy`: `aws:ResourceTag/secretwire.dev/managed-by`), which an adopted one gains here.
            ops.insert(usize::from(obs.deleted), Op::TagSecret { id: obs.arn.clone(), tags: add });
        }
        let action = if ops.is_empty() { Action::Unchanged } else { Action::Update };
        plan.changes.push(Change { diff: Vec::new(), action, resource, detail: what.join(", "), ops });
        plan
    }
}
