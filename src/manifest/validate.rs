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

pub const API_VERSION: &str = "secretwire.dev/v1alpha1";

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, loc: Location, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(self.path, self.text, loc, msg));
    }
    fn check<T>(&mut self, s: &Spanned<T>, r: Result<(), String>) {
        if let Err(m) = r {
            self.err(s.referenced, m);
        }
    }
}

/// Validates all loaded documents and builds the desired state.
pub fn build(docs: Vec<Loaded>, diags: &mut Vec<Diagnostic>) -> Desired {
    let mut desired = Desired::default();
    let mut first_seen: HashMap<ObjectKey, (std::path::PathBuf, u64, u64)> = HashMap::new();
    // (cluster, service) and family and role names must not be claimed twice.
    let mut claims: HashMap<(&'static str, String), String> = HashMap::new();

    for Loaded { path, text, doc } in docs {
        let mut cx = Ctx { path: &path, text: &text, diags: Vec::new() };
        let kind = match doc.spec {
            Spec::Parameter(_) => Kind::Parameter,
            Spec::Secret(_) => Kind::Secret,
            Spec::Service(_) => Kind::Service,
            Spec::Unknown => {
                let msg =
                    format!("unknown kind `{}`, expected one of `Parameter`, `Secret`, `Service`", doc.kind.value);
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
        let origin = Origin { path: path.clone(), line: name_loc.line() };
        let built = build_object(&mut cx, doc, origin);
        if let Some(Object::Service(s)) = &built {
            for (what, id) in claimed_ids(s) {
                if let Some(owner) = claims.get(&(what, id.clone()))
                    && owner != &s.name
                {
                    cx.err(name_loc, format!("{what} `{id}` is already managed by Service/{owner}"));
                }
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
                    for id in claimed_ids(&s) {
                        claims.insert(id, s.name.clone());
                    }
                    desired.services.insert(s.name.clone(), *s);
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

/// What a Service claims exclusively: its ECS service, its family and its roles.
fn claimed_ids(s: &ServiceDef) -> Vec<(&'static str, String)> {
    let mut ids = vec![
        ("service", format!("{}/{}", s.cluster, s.service_name)),
        ("task definition family", s.family.clone()),
        ("role", s.execution_role.name.clone()),
    ];
    ids.extend(s.task_role.iter().map(|t| ("role", t.role.name.clone())));
    ids
}

enum Object {
    Parameter(ParameterDef),
    Secret(SecretDef),
    Service(Box<ServiceDef>),
}

fn build_object(cx: &mut Ctx, doc: Document, origin: Origin) -> Option<Object> {
    let name = doc.name;
    match doc.spec {
        Spec::Parameter(p) => {
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
            }))
        }
        Spec::Secret(s) => {
            cx.check(&name, check_secret_name(&name.value));
            check_kms(cx, &s.kms_key_id);
            check_description(cx, &s.description, 2048);
            let initial = s.initial_value.and_then(|iv| initial_value(cx, iv, 65536));
            check_tags(cx, &name, &s.tags);
            Some(Object::Secret(SecretDef {
                name: name.value,
                origin,
                kms_key_id: s.kms_key_id.map(|k| k.value),
                description: s.description.map(|d| d.value),
                initial_value: initial,
                adopt: s.adopt,
                tags: s.tags,
            }))
        }
        Spec::Service(s) => build_service(cx, name, *s, origin).map(|s| Object::Service(Box::new(s))),
        Spec::Unknown => None,
    }
}

fn build_service(cx: &mut Ctx, name: Spanned<String>, s: schema::ServiceSpec, origin: Origin) -> Option<ServiceDef> {
    cx.check(&name, check_ecs_name("metadata.name", &name.value));
    cx.check(&s.cluster, check_cluster(&s.cluster.value));
    let service_name = s.service_name.map(|n| {
        cx.check(&n, check_ecs_name("serviceName", &n.value));
        n.value
    });
    let (family, template) = match s.task_definition {
        Some(td) => {
            let family = td.family.map(|f| {
                cx.check(&f, check_ecs_name("family", &f.value));
                f.value
            });
            let template = td.template.and_then(|t| load_template(cx, &t));
            (family, template)
        }
        None => (None, None),
    };
    let family = family.unwrap_or_else(|| name.value.clone());
    let execution_role = match s.execution_role {
        Some(r) => RoleDef {
            name: r.role_name.map_or_else(
                || format!("{}-execution", name.value),
                |n| {
                    cx.check(&n, check_role_name(&n.value));
                    n.value
                },
            ),
            adopt: r.adopt,
            managed_policy_arns: managed_arns(cx, r.managed_policy_arns),
        },
        None => {
            RoleDef { name: format!("{}-execution", name.value), adopt: false, managed_policy_arns: BTreeSet::new() }
        }
    };
    if execution_role.name.len() > 64 {
        cx.err(
            name.referenced,
            format!(
                "the default execution role name `{}` is longer than 64 characters; set executionRole.roleName",
                execution_role.name
            ),
        );
    }
    let task_role = s.task_role.map(|t| {
        cx.check(&t.role_name, check_role_name(&t.role_name.value));
        if t.role_name.value == execution_role.name {
            cx.err(t.role_name.referenced, "the task role must not be the execution role");
        }
        TaskRoleDef {
            role: RoleDef {
                name: t.role_name.value,
                adopt: t.adopt,
                managed_policy_arns: managed_arns(cx, t.managed_policy_arns),
            },
            statements: t.statements.into_iter().filter_map(|st| statement(cx, st)).collect(),
        }
    });
    if s.containers.is_empty() {
        cx.err(name.referenced, "a Service needs at least one container under `containers`");
    }
    let mut containers = Vec::new();
    let mut container_names = BTreeMap::new();
    for c in s.containers {
        cx.check(&c.name, check_ecs_name("container name", &c.name.value));
        if let Some(prev) = container_names.insert(c.name.value.clone(), c.name.referenced.line()) {
            cx.err(c.name.referenced, format!("container `{}` is listed twice (also at line {prev})", c.name.value));
        }
        if let Some(t) = &template {
            let exists = t["containerDefinitions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|d| d["name"].as_str() == Some(c.name.value.as_str())));
            if !exists {
                cx.err(
                    c.name.referenced,
                    format!("container `{}` is not in the task definition template", c.name.value),
                );
            }
        }
        let secrets = env_secrets(cx, c.secrets, "secrets");
        let log_secrets = env_secrets(cx, c.log_secrets, "logSecrets");
        let repository_credentials = c.repository_credentials.and_then(|rc| repository_credentials(cx, rc, &c.name));
        containers.push(ContainerWiring { name: c.name.value, secrets, log_secrets, repository_credentials });
    }
    Some(ServiceDef {
        service_name: service_name.unwrap_or_else(|| name.value.clone()),
        name: name.value,
        origin,
        cluster: s.cluster.value,
        family,
        template,
        execution_role,
        task_role,
        containers,
        redeploy_on_change: s.redeploy_on_change,
    })
}

fn env_secrets(cx: &mut Ctx, refs: Vec<schema::ValueRefSpec>, field: &str) -> Vec<EnvSecret> {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for r in refs {
        if r.name.value.is_empty() {
            cx.err(r.name.referenced, format!("{field}: name must not be empty"));
        }
        if let Some(prev) = seen.insert(r.name.value.clone(), r.name.referenced.line()) {
            cx.err(
                r.name.referenced,
                format!("{field}: `{}` is set twice in this container (also at line {prev})", r.name.value),
            );
        }
        if let Some(v) = value_ref(cx, &r) {
            out.push(EnvSecret { name: r.name.value, value: v });
        }
    }
    out
}

fn value_ref(cx: &mut Ctx, r: &schema::ValueRefSpec) -> Option<ValueRef> {
    let sources = [r.parameter.is_some(), r.secret.is_some(), r.value_from.is_some()].iter().filter(|b| **b).count();
    if sources != 1 {
        cx.err(
            r.name.referenced,
            format!("`{}` needs exactly one of `parameter`, `secret` or `valueFrom`", r.name.value),
        );
        return None;
    }
    let pins: Vec<&Spanned<String>> = [&r.json_key, &r.version_stage, &r.version_id].into_iter().flatten().collect();
    if r.secret.is_none() {
        for p in &pins {
            cx.err(p.referenced, "jsonKey, versionStage and versionId apply only to a `secret` reference (put them in the valueFrom ARN)");
        }
        if !pins.is_empty() {
            return None;
        }
    }
    if let (Some(_), Some(id)) = (&r.version_stage, &r.version_id) {
        cx.err(id.referenced, "pin either versionStage or versionId, not both");
        return None;
    }
    if let Some(p) = &r.parameter {
        let ok = check_parameter_name(&p.value);
        let bad = ok.is_err();
        cx.check(p, ok);
        return (!bad).then(|| ValueRef::Parameter { name: p.value.clone() });
    }
    if let Some(s) = &r.secret {
        if s.value.starts_with("arn:") {
            match parse_value_from(&s.value) {
                Ok(RawTarget::Secret(a))
                    if a.json_key.is_none() && a.version_stage.is_none() && a.version_id.is_none() => {}
                Ok(_) => {
                    cx.err(s.referenced, "`secret` takes a secret name or a plain secret ARN; use jsonKey/versionStage/versionId for the rest");
                    return None;
                }
                Err(e) => {
                    cx.err(s.referenced, e.0);
                    return None;
                }
            }
        } else {
            let ok = check_secret_name(&s.value);
            let bad = ok.is_err();
            cx.check(s, ok);
            if bad {
                return None;
            }
        }
        return Some(ValueRef::Secret {
            id: s.value.clone(),
            json_key: r.json_key.as_ref().map(|v| v.value.clone()),
            version_stage: r.version_stage.as_ref().map(|v| v.value.clone()),
            version_id: r.version_id.as_ref().map(|v| v.value.clone()),
        });
    }
    let vf = r.value_from.as_ref()?;
    match parse_value_from(&vf.value) {
        Ok(target) => Some(ValueRef::Raw { value_from: vf.value.clone(), target }),
        Err(e) => {
            cx.err(vf.referenced, format!("valueFrom: {e}"));
            None
        }
    }
}

fn repository_credentials(
    cx: &mut Ctx,
    rc: schema::RepositoryCredentialsSpec,
    container: &Spanned<String>,
) -> Option<ValueRef> {
    if let Some(p) = &rc.parameter {
        cx.err(p.referenced, "repositoryCredentials must be a Secrets Manager secret, not an SSM parameter");
        return None;
    }
    match (rc.secret, rc.value_from) {
        (Some(s), None) => {
            if s.value.starts_with("arn:") {
                match parse_value_from(&s.value) {
                    Ok(RawTarget::Secret(a))
                        if a.json_key.is_none() && a.version_stage.is_none() && a.version_id.is_none() => {}
                    _ => {
                        cx.err(
                            s.referenced,
                            "repositoryCredentials.secret must be a secret name or a plain Secrets Manager ARN",
                        );
                        return None;
                    }
                }
            } else if let Err(m) = check_secret_name(&s.value) {
                cx.err(s.referenced, m);
                return None;
            }
            Some(ValueRef::Secret { id: s.value, json_key: None, version_stage: None, version_id: None })
        }
        (None, Some(vf)) => match parse_value_from(&vf.value) {
            Ok(RawTarget::Secret(a)) if a.json_key.is_none() && a.version_stage.is_none() && a.version_id.is_none() => {
                Some(ValueRef::Raw { value_from: vf.value.clone(), target: RawTarget::Secret(a) })
            }
            Ok(_) => {
                cx.err(vf.referenced, "repositoryCredentials must be a whole Secrets Manager secret (no SSM parameter, JSON key or version)");
                None
            }
            Err(e) => {
                cx.err(vf.referenced, format!("valueFrom: {e}"));
                None
            }
        },
        _ => {
            cx.err(container.referenced, "repositoryCredentials needs exactly one of `secret` or `valueFrom`");
            None
        }
    }
}

fn statement(cx: &mut Ctx, st: schema::StatementSpec) -> Option<Statement> {
    let mut ok = true;
    if !matches!(st.effect.value.as_str(), "Allow" | "Deny") {
        cx.err(st.effect.referenced, "effect must be `Allow` or `Deny`");
        ok = false;
    }
    if st.actions.is_empty() || st.resources.is_empty() {
        cx.err(st.effect.referenced, "a statement needs at least one action and one resource");
        ok = false;
    }
    for a in &st.actions {
        let valid = a.value.split_once(':').is_some_and(|(svc, act)| {
            !svc.is_empty()
                && svc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !act.is_empty()
                && act.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        });
        if !valid {
            cx.err(a.referenced, format!("`{}` is not an IAM action (service:Action)", a.value));
            ok = false;
        }
    }
    for r in &st.resources {
        if r.value != "*" && !r.value.starts_with("arn:") {
            cx.err(r.referenced, format!("`{}` is not a resource ARN or `*`", r.value));
            ok = false;
        }
    }
    ok.then(|| Statement {
        sid: st.sid,
        effect: st.effect.value,
        actions: st.actions.into_iter().map(|a| a.value).collect(),
        resources: st.resources.into_iter().map(|r| r.value).collect(),
        conditions: st
            .conditions
            .into_iter()
            .map(|(op, m)| {
                let m = m
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            schema::StringOrList::One(s) => vec![s],
                            schema::StringOrList::Many(v) => v,
                        };
                        (k, v)
                    })
                    .collect();
                (op, m)
            })
            .collect(),
    })
}

fn managed_arns(cx: &mut Ctx, arns: Vec<Spanned<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in arns {
        let ok = crate::arn::Arn::parse(&a.value).is_some_and(|p| {
            p.service == "iam"
                && p.region.is_empty()
                && (p.account == "aws" || (p.account.len() == 12 && p.account.bytes().all(|b| b.is_ascii_digit())))
                && p.resource.starts_with("policy/")
        });
        if ok {
            out.insert(a.value);
        } else {
            cx.err(
                a.referenced,
                format!("`{}` is not an IAM managed policy ARN (arn:aws:iam::aws|ACCOUNT:policy/NAME)", a.value),
            );
        }
    }
    out
}

fn initial_value(cx: &mut Ctx, iv: Spanned<schema::InitialValue>, max_len: u32) -> Option<InitialValue> {
    let loc = iv.referenced;
    let gen_ok = |cx: &mut Ctx, g: &schema::GenerateSpec| {
        if g.length == 0 || g.length > max_len {
            cx.err(loc, format!("generate.length must be between 1 and {max_len}"));
            return false;
        }
        if g.exclude_lowercase && g.exclude_uppercase && g.exclude_numbers && g.exclude_punctuation {
            cx.err(loc, "generate excludes every character class");
            return false;
        }
        true
    };
    match iv.value {
        schema::InitialValue::Generate(g) => gen_ok(cx, &g).then_some(InitialValue::Generate(g)),
        schema::InitialValue::FromEnv(var) => {
            let valid = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                cx.err(loc, format!("fromEnv: `{var}` is not an environment variable name"));
                return None;
            }
            Some(InitialValue::FromEnv(var))
        }
        schema::InitialValue::Json(fields) => {
            if fields.is_empty() {
                cx.err(loc, "a JSON initialValue needs at least one key");
                return None;
            }
            let mut out = BTreeMap::new();
            for (k, f) in fields {
                let f = match f {
                    schema::JsonField::Generated { generate } => {
                        if !gen_ok(cx, &generate) {
                            return None;
                        }
                        JsonField::Generate(generate)
                    }
                    schema::JsonField::Literal(s) => JsonField::Literal(match s {
                        schema::JsonScalar::Bool(b) => b.into(),
                        schema::JsonScalar::Int(i) => i.into(),
                        schema::JsonScalar::Float(f) => f.into(),
                        schema::JsonScalar::Text(t) => t.into(),
                    }),
                };
                out.insert(k, f);
            }
            Some(InitialValue::Json(out))
        }
    }
}

fn check_kms(cx: &mut Ctx, key: &Option<Spanned<String>>) {
    let Some(k) = key else { return };
    let v = k.value.as_str();
    let uuid = |s: &str| {
        let s = s.strip_prefix("mrk-").unwrap_or(s);
        s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    };
    let ok = if let Some(alias) = v.strip_prefix("alias/") {
        !alias.is_empty()
            && !alias.starts_with("aws/")
            && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    } else if let Some(a) = crate::arn::Arn::parse(v) {
        a.service == "kms" && (a.resource.starts_with("key/") || a.resource.starts_with("alias/"))
    } else {
        uuid(v)
    };
    if !ok {
        cx.err(k.referenced, format!("kmsKeyId `{v}` is not a customer managed key id, ARN or alias (alias/aws/* are AWS managed: leave kmsKeyId out)"));
    }
}

fn check_description(cx: &mut Ctx, d: &Option<Spanned<String>>, max: usize) {
    if let Some(d) = d
        && d.value.chars().count() > max
    {
        cx.err(d.referenced, format!("description is longer than {max} characters"));
    }
}

fn check_tags(cx: &mut Ctx, name: &Spanned<String>, tags: &BTreeMap<String, String>) {
    for (k, v) in tags {
        if k.starts_with("secretwire.dev/") || k.to_ascii_lowercase().starts_with("aws:") {
            cx.err(name.referenced, format!("tag `{k}` is reserved"));
        }
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            cx.err(name.referenced, format!("tag `{k}`: keys are 1-128 characters, values at most 256"));
        }
    }
}

fn load_template(cx: &mut Ctx, t: &Spanned<String>) -> Option<serde_json::Value> {
    let base = cx.path.parent().unwrap_or(Path::new("."));
    let path = base.join(&t.value);
    let text = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            cx.err(t.referenced, format!("template `{}`: {e}", path.display()));
            return None;
        }
    };
    let parsed: Result<serde_json::Value, String> = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))
        }
        _ => serde_saphyr::from_str_with_options(&text, super::load::yaml_options())
            .map_err(|e| e.without_snippet().to_string()),
    };
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            cx.err(t.referenced, format!("template `{}` does not parse: {e}", path.display()));
            return None;
        }
    };
    // `cli-input-json` files sometimes wrap the definition; accept both shapes.
    let value = match value.get("taskDefinition") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ => value,
    };
    let has_containers = value["containerDefinitions"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["name"].is_string()));
    if !has_containers {
        cx.err(t.referenced, format!("template `{}` has no containerDefinitions with names", path.display()));
        return None;
    }
    Some(value)
}

// ---- name rules -----------------------------------------------------------

pub fn check_secret_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 512 {
        return Err(format!("secret name `{n}` must be 1 to 512 characters"));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c))) {
        return Err(format!("secret name `{n}` contains `{c}`; allowed are ASCII letters, digits and /_+=.@-"));
    }
    Ok(())
}

pub fn check_parameter_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 1011 {
        return Err(format!("parameter name `{n}` must be 1 to 1011 characters"));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c))) {
        return Err(format!("parameter name `{n}` contains `{c}`; allowed are ASCII letters, digits and _.-/"));
    }
    if n.contains('/') && !n.starts_with('/') {
        return Err(format!("parameter name `{n}` has a hierarchy, so it must start with `/`"));
    }
    if n.contains("//") || (n.len() > 1 && n.ends_with('/')) || n == "/" {
        return Err(format!("parameter name `{n}` has an empty path segment"));
    }
    let first = n.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!("parameter name `{n}` must not begin with `aws` or `ssm` (reserved)"));
    }
    if n.split('/').filter(|s| !s.is_empty()).count() > 15 {
        return Err(format!("parameter name `{n}` has more than 15 levels"));
    }
    Ok(())
}

pub fn check_ecs_name(what: &str, n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 255 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("{what} `{n}` must be 1 to 255 ASCII letters, digits, `-` or `_`"));
    }
    Ok(())
}

fn check_cluster(n: &str) -> Result<(), String> {
    if let Some(a) = crate::arn::Arn::parse(n) {
        if a.service == "ecs" && a.resource.starts_with("cluster/") {
            return Ok(());
        }
        return Err(format!("cluster `{n}` is not an ECS cluster ARN"));
    }
    check_ecs_name("cluster", n)
}

pub fn check_role_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) {
        return Err(format!("role name `{n}` must be 1 to 64 ASCII letters, digits or +=,.@_-"));
    }
    Ok(())
}
