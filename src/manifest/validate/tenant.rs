//! Tenant rules (`--tenants`): a manifest file belongs to the one tenant
//! whose `paths` match it; its objects may declare and reference only that
//! tenant's `values` (or values another tenant shares with it), name roles
//! with its `rolePrefix`, attach its `managedPolicyArns`, and grant task role
//! statements within the default rules and its `allowStatements`
//! ([`super::grants`]). A breach refuses the object alone.

use std::collections::HashMap;

use super::*;
use crate::manifest::tenant::{Tenant, Tenants};

/// The tenants, where the manifests live, and who shares which repo value.
pub struct Tenancy<'a> {
    pub tenants: &'a Tenants,
    root: &'a Path,
    /// (kind, name) of a repo Parameter/Secret -> (its tenant, `sharedWith`).
    shares: HashMap<(Kind, String), (String, Vec<String>)>,
    /// Each manifest file's tenant (or why it has none), matched once.
    files: HashMap<std::path::PathBuf, Result<&'a Tenant, String>>,
}

impl<'a> Tenancy<'a> {
    pub fn new(tenants: &'a Tenants, root: &'a Path, docs: &[Loaded]) -> Self {
        let mut t = Tenancy { tenants, root, shares: HashMap::new(), files: HashMap::new() };
        for l in docs {
            if !t.files.contains_key(&l.path) {
                let tenant = t.match_file(&l.path);
                t.files.insert(l.path.clone(), tenant);
            }
        }
        for l in docs {
            let (kind, with) = match &l.doc.spec {
                Spec::Parameter(p) => (Kind::Parameter, &p.shared_with),
                Spec::Secret(s) => (Kind::Secret, &s.shared_with),
                _ => continue,
            };
            if let Ok(owner) = t.tenant_of(&l.path) {
                let with = with.iter().map(|w| w.value.clone()).collect();
                t.shares.entry((kind, l.doc.name.value.clone())).or_insert((owner.name.clone(), with));
            }
        }
        t
    }

    /// The tenant of a manifest file, or why it has none.
    pub fn tenant_of(&self, path: &Path) -> Result<&'a Tenant, String> {
        self.files.get(path).cloned().unwrap_or_else(|| self.match_file(path))
    }

    fn match_file(&self, path: &Path) -> Result<&'a Tenant, String> {
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        self.tenants.of_file(&rel.join("/"))
    }
}

/// Checks one document against its tenant's rules; breaches go to `cx.refusals`.
pub(super) fn check(cx: &mut Ctx, t: &Tenancy, tenant: &Tenant, doc: &Document) {
    let named = match &doc.spec {
        Spec::Parameter(p) => {
            check_store(cx, t, tenant, doc, Kind::Parameter, &p.shared_with);
            p.target.as_ref()
        }
        Spec::Secret(s) => {
            check_store(cx, t, tenant, doc, Kind::Secret, &s.shared_with);
            s.target.as_ref()
        }
        Spec::Service(s) => {
            check_service(cx, t, tenant, &doc.name, s);
            s.target.as_ref()
        }
        Spec::Target(_) => Some(&doc.name),
        Spec::Unknown => None,
    };
    // An account is the platform's to hand out: declaring a Target or naming
    // one needs it in the tenant's `targets`.
    if let Some(target) = named
        && !tenant.allows_target(&target.value)
    {
        let what = if matches!(doc.spec, Spec::Target(_)) { "declares" } else { "names" };
        cx.refuse(
            target.referenced,
            &tenant.name,
            "targets",
            format!(
                "{}/{} {what} Target `{}`, outside the tenant's targets ({})",
                doc.kind.value,
                doc.name.value,
                target.value,
                if tenant.targets.is_empty() {
                    "none: only the controller's own account".into()
                } else {
                    list(&tenant.targets)
                }
            ),
        );
    }
}

fn check_store(cx: &mut Ctx, t: &Tenancy, tenant: &Tenant, doc: &Document, kind: Kind, with: &[Spanned<String>]) {
    let name = &doc.name;
    if !tenant.allows_value(&name.value) {
        let what = if kind == Kind::Parameter { "parameter" } else { "secret" };
        cx.refuse(
            name.referenced,
            &tenant.name,
            "values",
            format!(
                "{kind}/{} declares {what} `{}`, outside the tenant's values ({})",
                name.value,
                name.value,
                list(&tenant.values)
            ),
        );
    }
    for w in with {
        if t.tenants.get(&w.value).is_none() {
            cx.refuse(
                w.referenced,
                &tenant.name,
                "sharedWith",
                format!("no tenant `{}` in {}", w.value, t.tenants.file.display()),
            );
        }
    }
}

fn check_service(cx: &mut Ctx, t: &Tenancy, tenant: &Tenant, name: &Spanned<String>, s: &schema::ServiceSpec) {
    let me = format!("Service/{}", name.value);
    // Roles: the prefix, and what they attach.
    let exec = s.execution_role.as_ref();
    let (exec_name, exec_loc) = match exec.and_then(|r| r.role_name.as_ref()) {
        Some(n) => (n.value.clone(), n.referenced),
        None => (default_execution_role(&name.value), name.referenced),
    };
    let mut roles = vec![(exec_name, exec_loc, exec.map(|r| r.managed_policy_arns.as_slice()).unwrap_or_default())];
    if let Some(tr) = &s.task_role {
        roles.push((tr.role_name.value.clone(), tr.role_name.referenced, tr.managed_policy_arns.as_slice()));
    }
    for (role, loc, arns) in roles {
        if !role.starts_with(&tenant.role_prefix) {
            cx.refuse(
                loc,
                &tenant.name,
                "rolePrefix",
                format!("{me} names role `{role}`, which does not start with `{}`", tenant.role_prefix),
            );
        }
        for a in arns {
            if !tenant.managed_policy_arns.iter().any(|g| g.matches(&a.value)) {
                cx.refuse(
                    a.referenced,
                    &tenant.name,
                    "managedPolicyArns",
                    format!(
                        "role `{role}` attaches `{}`; the tenant's roles may attach only {}",
                        a.value,
                        list(&tenant.managed_policy_arns)
                    ),
                );
            }
        }
    }
    if let Some(tr) = &s.task_role {
        for st in &tr.statements {
            super::grants::check(cx, tenant, st);
        }
    }
    // Values it reads.
    for c in &s.containers {
        for r in c.secrets.iter().chain(&c.log_secrets) {
            let refs =
                [(Written::Parameter, &r.parameter), (Written::Secret, &r.secret), (Written::Arn, &r.value_from)];
            for (written, v) in refs {
                if let Some(v) = v {
                    check_ref(cx, t, tenant, &me, written, v);
                }
            }
        }
        if let Some(rc) = &c.repository_credentials {
            if let Some(s) = &rc.secret {
                check_ref(cx, t, tenant, &me, Written::Secret, s);
            }
            if let Some(vf) = &rc.value_from {
                check_ref(cx, t, tenant, &me, Written::Arn, vf);
            }
        }
    }
}

/// How a reference was written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// `parameter: NAME`.
    Parameter,
    /// `secret: NAME` or `secret: ARN`.
    Secret,
    /// `valueFrom: ARN` (its kind is in the ARN).
    Arn,
}

fn check_ref(cx: &mut Ctx, t: &Tenancy, tenant: &Tenant, me: &str, written: Written, v: &Spanned<String>) {
    let (kind, names) = if written == Written::Parameter {
        (Kind::Parameter, vec![v.value.clone()])
    } else if written == Written::Secret && !v.value.starts_with("arn:") {
        (Kind::Secret, vec![v.value.clone()])
    } else {
        match parse_value_from(&v.value) {
            Ok(RawTarget::Parameter { name, .. }) => (Kind::Parameter, vec![name]),
            Ok(RawTarget::Secret(a)) => (Kind::Secret, secret_names(&a.secret_arn)),
            // Reported by the schema checks.
            Err(_) => return,
        }
    };
    let what = if kind == Kind::Parameter { "parameter" } else { "secret" };
    for n in names {
        if tenant.allows_value(&n) {
            continue;
        }
        let why = match t.shares.get(&(kind, n.clone())) {
            Some((owner, with)) if owner != &tenant.name && with.contains(&tenant.name) => continue,
            Some((owner, _)) if owner != &tenant.name => format!(
                "declared by tenant `{owner}`, which does not share it with `{}` (spec.sharedWith)",
                tenant.name
            ),
            Some(_) => "its own declaration is outside them too".to_string(),
            None => "not shared with it".to_string(),
        };
        cx.refuse(
            v.referenced,
            &tenant.name,
            "values",
            format!("{me} reads {what} `{n}`, outside the tenant's values ({}) and {why}", list(&tenant.values)),
        );
        return;
    }
}

/// The secret names a secret ARN may stand for: as written, and without the
/// six-character suffix Secrets Manager appends (`web/db-AbCdEf` is the full
/// ARN of `web/db`, or the partial ARN of a secret named `web/db-AbCdEf`).
/// Both must be allowed.
fn secret_names(secret_arn: &str) -> Vec<String> {
    let name = secret_arn.split_once(":secret:").map_or(secret_arn, |(_, n)| n).to_string();
    let stripped = name
        .rsplit_once('-')
        .filter(|(head, tail)| !head.is_empty() && tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|(head, _)| head.to_string());
    stripped.into_iter().chain(std::iter::once(name)).collect()
}

fn list(globs: &[crate::glob::Glob]) -> String {
    if globs.is_empty() {
        return "none".into();
    }
    globs.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_secret_arn_stands_for_two_names() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/db-AbCdEf";
        assert_eq!(super::secret_names(arn), vec!["web/db".to_string(), "web/db-AbCdEf".to_string()]);
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/db";
        assert_eq!(super::secret_names(partial), vec!["web/db".to_string()]);
    }
}
