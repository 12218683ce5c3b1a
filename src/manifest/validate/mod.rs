//! Stage two of loading: semantic checks that serde cannot express, and the
//! translation of documents into the desired model with defaults filled in.
//! Every problem is reported (not just the first); an object with any problem
//! is left out of [`Desired`] and recorded in `Desired::invalid`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::diag::Diagnostic;
use super::load::Loaded;
use super::schema::{self, Document, Spec};
use crate::arn::{RawTarget, parse_value_from};
use crate::model::*;
use crate::value::{InitialValue, JsonField};

mod grants;
mod names;
mod rotation;
mod service;
mod target;
mod tenant;
mod values;

use names::check_cluster;
pub use names::{check_ecs_name, check_parameter_name, check_role_name, check_secret_name};
use service::*;
pub use tenant::Tenancy;
use values::*;

pub const API_VERSION: &str = "secretwire.dev/v1alpha1";

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
    /// Breaches of a tenant rule: the object is refused, the repo still applies.
    refusals: Vec<Diagnostic>,
    /// Every `Target` the repo declares (a `spec.target` must name one).
    targets: &'a BTreeSet<String>,
}

impl Ctx<'_> {
    fn err(&mut self, loc: Location, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(self.path, self.text, loc, msg));
    }
    fn refuse(&mut self, loc: Location, tenant: &str, rule: &str, msg: impl std::fmt::Display) {
        let message = if tenant.is_empty() {
            format!("rule `{rule}`: {msg}")
        } else {
            format!("tenant `{tenant}`: rule `{rule}`: {msg}")
        };
        self.refusals.push(Diagnostic::at(self.path, self.text, loc, message));
    }
    fn check<T>(&mut self, s: &Spanned<T>, r: Result<(), String>) {
        if let Err(m) = r {
            self.err(s.referenced, m);
        }
    }
    /// `spec.target`: the name of a `Target` in the repo.
    fn target(&mut self, t: Option<Spanned<String>>) -> Option<String> {
        let t = t?;
        if !self.targets.contains(&t.value) {
            let known = self.targets.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            self.err(
                t.referenced,
                format!(
                    "no Target `{}` in the manifests ({})",
                    t.value,
                    if known.is_empty() { "none is declared".into() } else { format!("declared: {known}") }
                ),
            );
        }
        Some(t.value)
    }
}

/// Validates all loaded documents and builds the desired state. With
/// `tenancy`, every object is also held to its tenant's rules: a breach goes
/// to `refusals` and refuses that object alone (`Desired::refused`).
pub fn build(
    docs: Vec<Loaded>,
    tenancy: Option<&Tenancy>,
    diags: &mut Vec<Diagnostic>,
    refusals: &mut Vec<Diagnostic>,
) -> Desired {
    let mut desired = Desired::default();
    let mut first_seen: HashMap<ObjectKey, (std::path::PathBuf, u64, u64)> = HashMap::new();
    // (cluster, service) and family and role names must not be claimed twice.
    let mut claims: HashMap<(&'static str, String), String> = HashMap::new();
    // Targets may be declared after the objects that name them.
    let targets: BTreeSet<String> =
        docs.iter().filter(|l| matches!(l.doc.spec, Spec::Target(_))).map(|l| l.doc.name.value.clone()).collect();
    // Each Target's account: role names are claimed per account (IAM is global).
    let accounts: HashMap<String, String> = docs
        .iter()
        .filter_map(|l| match &l.doc.spec {
            Spec::Target(t) => Some((l.doc.name.value.clone(), t.account.value.clone())),
            _ => None,
        })
        .collect();
    // (account, region) -> the Target that claims it: one account and region is one target.
    let mut places: HashMap<(String, String), String> = HashMap::new();

    for Loaded { path, text, doc } in docs {
        let mut cx = Ctx { path: &path, text: &text, diags: Vec::new(), refusals: Vec::new(), targets: &targets };
        let kind = match doc.spec {
            Spec::Parameter(_) => Kind::Parameter,
            Spec::Secret(_) => Kind::Secret,
            Spec::Service(_) => Kind::Service,
            Spec::Target(_) => Kind::Target,
            Spec::Unknown if doc.kind.value == "Tenant" => {
                cx.err(
                    doc.kind.referenced,
                    "a `Tenant` in the manifest tree widens nothing: tenants are defined in the --tenants file, \
                     outside the tree",
                );
                diags.append(&mut cx.diags);
                continue;
            }
            Spec::Unknown => {
                let msg = format!(
                    "unknown kind `{}`, expected one of `Parameter`, `Secret`, `Service`, `Target`",
                    doc.kind.value
                );
                cx.err(doc.kind.referenced, msg);
                diags.append(&mut cx.diags);
                continue;
            }
        };
        let key = ObjectKey::new(kind, doc.name.value.clone());
        let name_loc = doc.name.referenced;
        if let Some((p, l, c)) = first_seen.get(&key) {
            cx.err(name_loc, format!("duplicate {key}: already declared at {}:{l}:{c}", p.display()));
            diags.append(&mut cx.diags);
            continue;
        }
        first_seen.insert(key.clone(), (path.clone(), name_loc.line(), name_loc.column()));
        if doc.api_version.value != API_VERSION {
            cx.err(
                doc.api_version.referenced,
                format!("unsupported apiVersion `{}`, expected `{API_VERSION}`", doc.api_version.value),
            );
        }
        let mut tenant_name = None;
        if let Some(t) = tenancy {
            match t.tenant_of(&path) {
                Ok(tenant) => {
                    tenant::check(&mut cx, t, tenant, &doc);
                    tenant_name = Some(tenant.name.clone());
                }
                Err(why) => cx.refuse(name_loc, "", "paths", format!("{key}: {why}")),
            }
        }
        let origin = Origin { path: path.clone(), line: name_loc.line(), tenant: tenant_name };
        let built = build_object(&mut cx, doc, origin);
        if let Some(Object::Target(t)) = &built {
            // The first to claim a place keeps it, valid or not.
            let place = (t.account.clone(), t.region.clone());
            match places.get(&place) {
                Some(other) if other != &t.name => {
                    cx.err(name_loc, format!("account {} in {} is already Target/{other}", t.account, t.region));
                }
                _ => {
                    places.insert(place, t.name.clone());
                }
            }
        }
        if let Some(Object::Service(s)) = &built {
            for (what, id) in claimed_ids(s, &accounts) {
                if let Some(owner) = claims.get(&(what, id.clone()))
                    && owner != &s.name
                {
                    cx.err(name_loc, format!("{what} `{id}` is already managed by Service/{owner}"));
                }
            }
        }
        if !cx.refusals.is_empty() {
            refusals.append(&mut cx.refusals);
            if cx.diags.is_empty() {
                desired.invalid.insert(key.clone());
                desired.refused.insert(key);
                continue;
            }
        }
        match built {
            Some(obj) if cx.diags.is_empty() => match obj {
                Object::Parameter(p) => {
                    desired.parameters.insert(p.name.clone(), p);
                }
                Object::Secret(s) => {
                    desired.secrets.insert(s.name.clone(), s);
                }
                Object::Service(s) => {
                    for id in claimed_ids(&s, &accounts) {
                        claims.insert(id, s.name.clone());
                    }
                    desired.services.insert(s.name.clone(), *s);
                }
                Object::Target(t) => {
                    desired.targets.insert(t.name.clone(), t);
                }
            },
            _ => {
                desired.invalid.insert(key);
            }
        }
        diags.append(&mut cx.diags);
    }
    desired
}

/// What a Service claims exclusively: its ECS service and its family (in
/// its account and region), and its roles (in its account). Equal names in
/// two Targets of other accounts are two things.
fn claimed_ids(s: &ServiceDef, accounts: &HashMap<String, String>) -> Vec<(&'static str, String)> {
    let place = |id: &str| match &s.target {
        None => id.to_string(),
        Some(t) => format!("{id} (Target {t})"),
    };
    let account = |role: &str| match s.target.as_ref() {
        None => role.to_string(),
        Some(t) => format!("{role} (account {})", accounts.get(t).map_or(t.as_str(), String::as_str)),
    };
    let mut ids = vec![
        ("service", place(&format!("{}/{}", s.cluster, s.service_name))),
        ("task definition family", place(&s.family)),
        ("role", account(&s.execution_role.name)),
    ];
    ids.extend(s.task_role.iter().map(|t| ("role", account(&t.role.name))));
    ids
}

enum Object {
    Parameter(ParameterDef),
    Secret(SecretDef),
    Service(Box<ServiceDef>),
    Target(TargetDef),
}

fn build_object(cx: &mut Ctx, doc: Document, origin: Origin) -> Option<Object> {
    let name = doc.name;
    match doc.spec {
        Spec::Parameter(p) => {
            let p = *p;
            cx.check(&name, check_parameter_name(&name.value));
            let kind = p.kind.as_ref().map(|k| k.value).unwrap_or_default();
            if let (Some(k), ParameterType::String) = (&p.kms_key_id, kind) {
                cx.err(k.referenced, "kmsKeyId applies only to a SecureString parameter");
            }
            check_kms(cx, &p.kms_key_id);
            check_description(cx, &p.description, 1024);
            let initial = p.initial_value.and_then(|iv| {
                if matches!(iv.value, schema::InitialValue::Json(_)) {
                    cx.err(iv.referenced, "a JSON initialValue is for a Secret; a Parameter holds one string");
                    return None;
                }
                initial_value(cx, iv, 4096)
            });
            check_tags(cx, &name, &p.tags);
            Some(Object::Parameter(ParameterDef {
                name: name.value,
                origin,
                kind,
                kms_key_id: p.kms_key_id.map(|k| k.value),
                description: p.description.map(|d| d.value),
                initial_value: initial,
                adopt: p.adopt,
                tags: p.tags,
                deletion_policy: p.deletion_policy.map_or(DeletionPolicy::Retain, |d| d.value),
                target: cx.target(p.target),
            }))
        }
        Spec::Secret(s) => {
            let s = *s;
            cx.check(&name, check_secret_name(&name.value));
            check_kms(cx, &s.kms_key_id);
            check_description(cx, &s.description, 2048);
            let initial = s.initial_value.and_then(|iv| initial_value(cx, iv, 65536));
            check_tags(cx, &name, &s.tags);
            let rotation = s.rotation.and_then(|r| rotation::rotation(cx, r));
            let deletion_policy = s.deletion_policy.map_or(DeletionPolicy::Retain, |d| d.value);
            if let Some(w) = &s.recovery_window_days {
                if !(7..=30).contains(&w.value) {
                    cx.err(
                        w.referenced,
                        "recoveryWindowDays must be from 7 to 30 (DeleteSecret's RecoveryWindowInDays)",
                    );
                } else if deletion_policy != DeletionPolicy::Delete {
                    cx.err(w.referenced, "recoveryWindowDays applies only with deletionPolicy: Delete");
                }
            }
            Some(Object::Secret(SecretDef {
                name: name.value,
                origin,
                kms_key_id: s.kms_key_id.map(|k| k.value),
                description: s.description.map(|d| d.value),
                initial_value: initial,
                adopt: s.adopt,
                tags: s.tags,
                rotation,
                deletion_policy,
                recovery_window_days: s.recovery_window_days.map_or(DEFAULT_RECOVERY_WINDOW_DAYS, |w| w.value),
                target: cx.target(s.target),
            }))
        }
        Spec::Service(s) => build_service(cx, name, *s, origin).map(|s| Object::Service(Box::new(s))),
        Spec::Target(t) => target::build_target(cx, name, *t, origin).map(Object::Target),
        Spec::Unknown => None,
    }
}
