//! Validating a Service: containers, references, roles and statements,
//! managed policy ARNs, and its task definition template.

use super::*;

pub(super) fn build_service(
    cx: &mut Ctx,
    name: Spanned<String>,
    s: schema::ServiceSpec,
    origin: Origin,
) -> Option<ServiceDef> {
    cx.check(&name, check_ecs_name("metadata.name", &name.value));
    cx.check(&s.cluster, check_cluster(&s.cluster.value));
    if let Some(l) = &s.revision_history_limit
        && l.value > 1000
    {
        cx.err(l.referenced, "revisionHistoryLimit must be from 0 to 1000");
    }
    let service_name = s.service_name.map(|n| {
        cx.check(&n, check_ecs_name("serviceName", &n.value));
        n.value
    });
    let (family, template) = match s.task_definition {
        Some(td) => {
            let template = td.template.and_then(|t| load_template(cx, &t));
            let family = td.family.map(|f| {
                cx.check(&f, check_ecs_name("family", &f.value));
                // A revision registered under another family than the template's
                // would move the service to a family nobody asked for.
                if let Some(tf) = template.as_ref().and_then(|t| t["family"].as_str())
                    && tf != f.value
                {
                    cx.err(
                        f.referenced,
                        format!("family `{}` differs from the template's family `{tf}`; name one family", f.value),
                    );
                }
                f.value
            });
            (family, template)
        }
        None => (None, None),
    };
    let template_family = template.as_ref().and_then(|t| t["family"].as_str()).map(str::to_string);
    let family_from_running = family.is_none() && template_family.is_none();
    let family = family.or(template_family).unwrap_or_else(|| name.value.clone());
    let execution_role = match s.execution_role {
        Some(r) => RoleDef {
            name: r.role_name.map_or_else(
                || default_execution_role(&name.value),
                |n| {
                    cx.check(&n, check_role_name(&n.value));
                    n.value
                },
            ),
            adopt: r.adopt,
            managed_policy_arns: managed_arns(cx, r.managed_policy_arns),
        },
        None => {
            RoleDef { name: default_execution_role(&name.value), adopt: false, managed_policy_arns: BTreeSet::new() }
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
            let found = t["containerDefinitions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|d| d["name"].as_str() == Some(c.name.value.as_str())));
            match found {
                None => cx.err(
                    c.name.referenced,
                    format!("container `{}` is not in the task definition template", c.name.value),
                ),
                // secretOptions live in the log configuration: without one, no log driver reads them.
                Some(d) if !c.log_secrets.is_empty() && !d["logConfiguration"]["logDriver"].is_string() => cx.err(
                    c.name.referenced,
                    format!(
                        "container `{}` has logSecrets but its template definition has no logConfiguration.logDriver",
                        c.name.value
                    ),
                ),
                Some(_) => {}
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
        family_from_running,
        template,
        execution_role,
        task_role,
        containers,
        redeploy_on_change: s.redeploy_on_change,
        deletion_policy: s.deletion_policy.map_or(DeletionPolicy::Delete, |d| d.value),
        revision_history_limit: s.revision_history_limit.map_or(DEFAULT_REVISION_HISTORY_LIMIT, |l| l.value),
        target: cx.target(s.target),
    })
}

/// The execution role of a Service that names none.
pub(super) fn default_execution_role(service: &str) -> String {
    format!("{service}-execution")
}

pub(super) fn env_secrets(cx: &mut Ctx, refs: Vec<schema::ValueRefSpec>, field: &str) -> Vec<EnvSecret> {
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

pub(super) fn value_ref(cx: &mut Ctx, r: &schema::ValueRefSpec) -> Option<ValueRef> {
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

pub(super) fn repository_credentials(
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

pub(super) fn statement(cx: &mut Ctx, st: schema::StatementSpec) -> Option<Statement> {
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

pub(super) fn managed_arns(cx: &mut Ctx, arns: Vec<Spanned<String>>) -> BTreeSet<String> {
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

pub(super) fn load_template(cx: &mut Ctx, t: &Spanned<String>) -> Option<serde_json::Value> {
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
        _ => serde_saphyr::from_str_with_options(&text, crate::manifest::load::yaml_options())
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
