//! Planning one IAM role (execution or task role): trust, the inline policy
//! `secretwire`, managed policies and tags, on a role secretwire may manage.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

/// The Service a role belongs to.
pub(super) struct RoleOwner<'a> {
    pub key: &'a ObjectKey,
    pub def: &'a ServiceDef,
}

impl RoleOwner<'_> {
    /// Ours, the Service's deletion policy, and the ECS service whose
    /// deployments prune waits on (`cluster/service`).
    fn tags(&self, controller_id: &str) -> Tags {
        let extra = BTreeMap::from([
            (TAG_DELETION_POLICY.to_string(), self.def.deletion_policy.as_str().to_string()),
            (TAG_SERVICE.to_string(), format!("{}/{}", self.def.cluster, self.def.service_name)),
        ]);
        owned_tags(controller_id, self.key, &self.def.origin, &extra)
    }
}

impl Planner<'_> {
    /// Plans one role; returns its ARN when the service may use it.
    pub(super) fn role(
        &self,
        plan: &mut ObjectPlan,
        owner: &RoleOwner,
        role: &RoleDef,
        trust: Value,
        inline: Option<Value>,
        what: &str,
    ) -> Option<String> {
        let resource = format!("iam role {} ({what})", role.name);
        let tags = owner.tags(self.id);
        let policy_summary =
            |p: &Option<Value>| p.as_ref().map_or(0, |p| p["Statement"].as_array().map_or(0, Vec::len));
        let Some(obs) = self.o.roles.get(&role.name) else {
            let boundary = self.d.platform.permissions_boundary.clone();
            let path = self.d.platform.role_path().to_string();
            let arn = self.o.scope.role_arn_in(&path, &role.name);
            let mut ops = vec![Op::CreateRole { name: role.name.clone(), trust, tags, boundary, path }];
            if let Some(doc) = &inline {
                ops.push(Op::PutRolePolicy { name: role.name.clone(), document: doc.clone() });
            }
            ops.extend(
                role.managed_policy_arns.iter().map(|a| Op::AttachPolicy { name: role.name.clone(), arn: a.clone() }),
            );
            plan.changes.push(Change {
                diff: Vec::new(),
                action: Action::Create,
                resource,
                detail: format!(
                    "trusted by {}, inline policy with {} statements, {} managed policies",
                    policy::ECS_TASKS,
                    policy_summary(&inline),
                    role.managed_policy_arns.len()
                ),
                ops,
            });
            return Some(arn);
        };
        // IAM cannot move a role to another path, and `secretwire policy` scopes
        // role writes to `--role-path`: a role elsewhere is not taken over.
        let path = crate::arn::role_path_of(&obs.arn);
        if let Some(want) = &self.d.platform.role_path
            && !path.starts_with(want.as_str())
        {
            let origin = &owner.def.origin;
            plan.problems.push(Problem {
                kind: ProblemKind::Conflict,
                reason: Reason::Conflict,
                resource,
                message: format!(
                    "{}:{}: the role is at path `{path}`, outside --role-path `{want}`; IAM cannot move a role, \
                     so it is not {} (name another role)",
                    origin.path.display(),
                    origin.line,
                    if role.adopt { "adopted" } else { "managed" }
                ),
            });
            return None;
        }
        let adopting = self.may_manage(plan, &resource, &obs.tags, role.adopt)?;
        let mut ops = Vec::new();
        let mut what = Vec::new();
        let add = missing_tags(&tags, &obs.tags);
        if !add.is_empty() {
            what.push(if adopting { "adopt: add ownership tags".to_string() } else { "tags".to_string() });
            ops.push(Op::TagRole { name: role.name.clone(), tags: add });
        }
        // Before any policy write: with a boundary, `secretwire policy` allows
        // those only on roles that carry it.
        if let Some(b) = &self.d.platform.permissions_boundary
            && obs.permissions_boundary.as_ref() != Some(b)
        {
            what.push(format!("permissions boundary {b}"));
            ops.push(Op::PutBoundary { name: role.name.clone(), arn: b.clone() });
        }
        if !obs.trust.matches(&trust) {
            what.push("trust policy".into());
            ops.push(Op::UpdateTrust { name: role.name.clone(), trust });
        }
        match (&inline, &obs.inline_policy) {
            (Some(want), Some(have)) if have.matches(want) => {}
            (Some(want), _) => {
                what.push(format!("inline policy {}", policy::INLINE_POLICY_NAME));
                ops.push(Op::PutRolePolicy { name: role.name.clone(), document: want.clone() });
            }
            (None, Some(_)) => {
                what.push(format!("remove inline policy {}", policy::INLINE_POLICY_NAME));
                ops.push(Op::DeleteRolePolicy { name: role.name.clone() });
            }
            (None, None) => {}
        }
        for a in role.managed_policy_arns.difference(&obs.managed_policy_arns) {
            what.push(format!("attach {a}"));
            ops.push(Op::AttachPolicy { name: role.name.clone(), arn: a.clone() });
        }
        for a in obs.managed_policy_arns.difference(&role.managed_policy_arns) {
            what.push(format!("detach {a}"));
            ops.push(Op::DetachPolicy { name: role.name.clone(), arn: a.clone() });
        }
        let action = if ops.is_empty() { Action::Unchanged } else { Action::Update };
        plan.changes.push(Change { diff: Vec::new(), action, resource, detail: what.join(", "), ops });
        Some(obs.arn.clone())
    }
}
