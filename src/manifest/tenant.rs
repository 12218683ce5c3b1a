//! The tenant file (`--tenants FILE`): which manifest files belong to which
//! team, and what that team's objects may name, reference and grant. It lives
//! outside the manifest tree, where tenants cannot write; a problem in it is
//! fatal (a platform that cannot be read confines nobody).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diag::Diagnostic;
use super::validate::API_VERSION;
use crate::glob::Glob;

/// What a tenant's roles may attach when its entry names nothing.
pub const DEFAULT_MANAGED_POLICY: &str = "arn:*:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    /// Manifest files of this tenant, relative to the manifest directory.
    pub paths: Vec<Glob>,
    /// SSM parameter names and secret names it may declare and reference.
    pub values: Vec<Glob>,
    /// Every role its Services name starts with this.
    pub role_prefix: String,
    /// What its roles may attach.
    pub managed_policy_arns: Vec<Glob>,
    /// Task role grants beyond the default rules.
    pub allow_statements: Vec<AllowStatement>,
    /// The `Target`s it may declare and name in `spec.target`; none: only
    /// the controller's own account and region.
    pub targets: Vec<Glob>,
}

/// `allowStatements[]`: an action and resource pair it opens.
#[derive(Debug, Clone)]
pub struct AllowStatement {
    pub actions: Vec<Glob>,
    pub resources: Vec<Glob>,
}

#[derive(Debug, Clone)]
pub struct Tenants {
    pub file: PathBuf,
    pub tenants: Vec<Tenant>,
}

impl Tenant {
    pub fn allows_value(&self, name: &str) -> bool {
        self.values.iter().any(|g| g.matches(name))
    }

    pub fn allows_target(&self, name: &str) -> bool {
        self.targets.iter().any(|g| g.matches(name))
    }
}

impl Tenants {
    /// The tenant a manifest file (relative to the manifest directory, `/`
    /// separated) belongs to, or why it belongs to none.
    pub fn of_file(&self, rel: &str) -> Result<&Tenant, String> {
        let hits: Vec<&Tenant> = self.tenants.iter().filter(|t| t.paths.iter().any(|g| g.matches(rel))).collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("`{rel}` matches no tenant's paths in {}", self.file.display())),
            many => Err(format!(
                "`{rel}` matches the paths of tenants {}; a file belongs to one tenant",
                many.iter().map(|t| format!("`{}`", t.name)).collect::<Vec<_>>().join(" and ")
            )),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// Reads and checks the tenant file; every problem is returned, located.
    pub fn load(path: &Path) -> Result<Tenants, Vec<Diagnostic>> {
        let text = super::load::read_text(path).map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        let mut tenants: Vec<Tenant> = Vec::new();
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut reader = text.as_bytes();
        for result in serde_saphyr::read_with_options::<_, TenantDoc>(&mut reader, super::load::yaml_options()) {
            let doc = match result {
                Ok(doc) => doc,
                Err(e) => {
                    diags.push(super::load::yaml_diagnostic(path, &text, &e));
                    continue;
                }
            };
            let mut err = |s: &Spanned<String>, m: String| diags.push(Diagnostic::at(path, &text, s.referenced, m));
            if doc.api_version.value != API_VERSION {
                err(
                    &doc.api_version,
                    format!("unsupported apiVersion `{}`, expected `{API_VERSION}`", doc.api_version.value),
                );
            }
            if doc.kind.value != "Tenant" {
                err(&doc.kind, format!("kind `{}` in a tenant file; expected `Tenant`", doc.kind.value));
                continue;
            }
            let name = doc.metadata.name;
            let valid_name = !name.value.is_empty()
                && name.value.len() <= 64
                && name.value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                err(&name, format!("tenant name `{}` must be 1 to 64 ASCII letters, digits, `-` or `_`", name.value));
            }
            if let Some(line) = seen.insert(name.value.clone(), name.referenced.line()) {
                err(&name, format!("tenant `{}` is defined twice (also at line {line})", name.value));
            }
            let s = doc.spec;
            if s.paths.is_empty() {
                err(&name, format!("tenant `{}` needs at least one entry under `paths`", name.value));
            }
            for p in &s.paths {
                if p.value.starts_with('/') || p.value.split('/').any(|seg| seg == "..") {
                    err(p, format!("path pattern `{}` must be relative to the manifest directory", p.value));
                }
            }
            let prefix = &s.role_prefix;
            if let Err(m) = super::validate::check_role_name(&prefix.value) {
                err(prefix, format!("rolePrefix: {m}"));
            }
            let arns = match s.managed_policy_arns {
                Some(list) => {
                    for a in &list {
                        if !a.value.starts_with("arn:") || !a.value.contains(":policy/") {
                            err(a, format!("`{}` is not a managed policy ARN (pattern)", a.value));
                        }
                    }
                    list.iter().map(|a| Glob::new(&a.value)).collect()
                }
                None => vec![Glob::new(DEFAULT_MANAGED_POLICY)],
            };
            let mut allow = Vec::new();
            for st in s.allow_statements {
                if st.actions.is_empty() || st.resources.is_empty() {
                    err(&name, "an allowStatements entry needs at least one action and one resource".into());
                }
                for a in &st.actions {
                    if !a.value.contains(':') {
                        err(a, format!("`{}` is not an IAM action pattern (service:Action)", a.value));
                    }
                }
                for r in &st.resources {
                    if r.value != "*" && !r.value.starts_with("arn:") {
                        err(r, format!("`{}` is not a resource ARN pattern or `*`", r.value));
                    }
                }
                allow.push(AllowStatement {
                    actions: st.actions.iter().map(|a| Glob::new(&a.value)).collect(),
                    resources: st.resources.iter().map(|r| Glob::new(&r.value)).collect(),
                });
            }
            tenants.push(Tenant {
                name: name.value,
                paths: s.paths.iter().map(|p| Glob::new(&p.value)).collect(),
                values: s.values.iter().map(|v| Glob::new(&v.value)).collect(),
                role_prefix: prefix.value.clone(),
                managed_policy_arns: arns,
                allow_statements: allow,
                targets: s.targets.iter().map(|t| Glob::new(&t.value)).collect(),
            });
        }
        if tenants.is_empty() && diags.is_empty() {
            diags.push(Diagnostic::file(path, "the tenant file defines no Tenant"));
        }
        if diags.is_empty() { Ok(Tenants { file: path.to_path_buf(), tenants }) } else { Err(diags) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TenantDoc {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    metadata: TenantMeta,
    spec: TenantSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantMeta {
    name: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TenantSpec {
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    values: Vec<Spanned<String>>,
    role_prefix: Spanned<String>,
    #[serde(default)]
    managed_policy_arns: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow_statements: Vec<AllowSpec>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSpec {
    actions: Vec<Spanned<String>>,
    resources: Vec<Spanned<String>>,
}
