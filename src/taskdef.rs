//! Task definitions as data in the ECS wire shape (`serde_json::Value`, the
//! camelCase form of RegisterTaskDefinition and DescribeTaskDefinition). The
//! base (template or live revision) is kept exactly; only the wiring of the
//! declared containers and the two role ARNs are replaced. Keeping the wire
//! form means no field is lost, even one newer than this build's SDK model.

use serde_json::{Map, Value, json};

/// Fields ECS adds on describe that are not RegisterTaskDefinition input.
const READ_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// The wiring secretwire owns, with every reference already resolved to a `valueFrom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub execution_role_arn: String,
    /// `None`: keep whatever task role the base has.
    pub task_role_arn: Option<String>,
    pub containers: Vec<ContainerWiring>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerWiring {
    pub name: String,
    pub secrets: Vec<(String, String)>,
    pub log_secrets: Vec<(String, String)>,
    pub repository_credentials: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the base task definition is not a JSON object")]
    NotAnObject,
    #[error("container `{0}` is not in the base task definition")]
    MissingContainer(String),
    #[error("container `{0}` has logSecrets but its base definition has no logConfiguration")]
    NoLogConfiguration(String),
}

/// What a rendering depends on besides the revision it starts from: this
/// build, the family, the template (if any) and the wiring. Recorded on the
/// service (tag `secretwire.dev/applied`, with the revision) when apply deploys
/// it, so a later apply that finds the service still running that revision
/// and the same digest knows, without reading the revision, that nothing
/// changed. FNV-1a 64: a change detector, not a security boundary (whoever
/// may tag the service may also update it).
pub fn digest(template: Option<&Value>, family: &str, wiring: &Wiring) -> String {
    let text = format!(
        "{}\n{family}\n{}\n{wiring:?}",
        env!("CARGO_PKG_VERSION"),
        template.map(Value::to_string).unwrap_or_default()
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The value of the service tag `secretwire.dev/applied`: the revision (as
/// `family:revision`, whichever form ECS echoed) and the digest.
pub fn applied_tag(task_definition: &str, digest: &str) -> String {
    format!("{} {digest}", crate::arn::task_definition_short(task_definition))
}

/// Applies the wiring to a base definition; every other field is kept.
pub fn render(base: &Value, family: &str, wiring: &Wiring) -> Result<Value, RenderError> {
    let Value::Object(base) = base else { return Err(RenderError::NotAnObject) };
    let mut out: Map<String, Value> = base
        .iter()
        .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()) && *k != "tags")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("family".into(), json!(family));
    out.insert("executionRoleArn".into(), json!(wiring.execution_role_arn));
    if let Some(t) = &wiring.task_role_arn {
        out.insert("taskRoleArn".into(), json!(t));
    }
    let containers = out.get_mut("containerDefinitions").and_then(Value::as_array_mut);
    let Some(containers) = containers else {
        return Err(wiring
            .containers
            .first()
            .map_or(RenderError::NotAnObject, |c| RenderError::MissingContainer(c.name.clone())));
    };
    for w in &wiring.containers {
        let c = containers
            .iter_mut()
            .find(|c| c["name"].as_str() == Some(w.name.as_str()))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| RenderError::MissingContainer(w.name.clone()))?;
        set_or_remove(c, "secrets", pairs(&w.secrets));
        match c.get_mut("logConfiguration").and_then(Value::as_object_mut) {
            Some(log) => set_or_remove(log, "secretOptions", pairs(&w.log_secrets)),
            None if !w.log_secrets.is_empty() => return Err(RenderError::NoLogConfiguration(w.name.clone())),
            None => {}
        }
        let creds = w.repository_credentials.as_ref().map(|a| json!({"credentialsParameter": a}));
        match creds {
            Some(v) => {
                c.insert("repositoryCredentials".into(), v);
            }
            None => {
                c.remove("repositoryCredentials");
            }
        }
    }
    Ok(Value::Object(out))
}

/// Puts back, in `rendered`, the form `live` (the running revision) gives a
/// reference wherever `same(live, rendered, is_credentials)` says both name
/// the same value: a definition wired by hand with names or partial ARNs is
/// not re-registered only to spell them as full ARNs.
pub fn keep_equivalent_forms(rendered: &mut Value, live: &Value, same: impl Fn(&str, &str, bool) -> bool) {
    let Some(containers) = rendered.get_mut("containerDefinitions").and_then(Value::as_array_mut) else { return };
    let live_containers = live["containerDefinitions"].as_array().map(Vec::as_slice).unwrap_or_default();
    for c in containers {
        let Some(l) = live_containers.iter().find(|l| l["name"] == c["name"]) else { continue };
        let keep = |entries: Option<&mut Value>, live_entries: &Value| {
            for e in entries.and_then(Value::as_array_mut).into_iter().flatten() {
                let had = live_entries.as_array().into_iter().flatten().find(|h| h["name"] == e["name"]);
                if let (Some(have), Some(want)) = (had.and_then(|h| h["valueFrom"].as_str()), e["valueFrom"].as_str())
                    && have != want
                    && same(have, want, false)
                {
                    e["valueFrom"] = Value::String(have.to_string());
                }
            }
        };
        keep(c.get_mut("secrets"), &l["secrets"]);
        keep(
            c.get_mut("logConfiguration").and_then(|g| g.get_mut("secretOptions")),
            &l["logConfiguration"]["secretOptions"],
        );
        let creds = c.get_mut("repositoryCredentials").and_then(|r| r.get_mut("credentialsParameter"));
        if let (Some(want), Some(have)) = (creds, l["repositoryCredentials"]["credentialsParameter"].as_str())
            && want.as_str().is_some_and(|w| w != have && same(have, w, true))
        {
            *want = Value::String(have.to_string());
        }
    }
}

fn pairs(p: &[(String, String)]) -> Value {
    Value::Array(p.iter().map(|(n, v)| json!({"name": n, "valueFrom": v})).collect())
}

fn set_or_remove(m: &mut Map<String, Value>, key: &str, v: Value) {
    if v.as_array().is_some_and(|a| a.is_empty()) {
        m.remove(key);
    } else {
        m.insert(key.into(), v);
    }
}

/// The form two definitions are compared in: read-only fields and tags gone,
/// empty values dropped, and the defaults ECS fills in made explicit-absent.
pub fn comparable(def: &Value) -> Value {
    let mut v = def.clone();
    if let Value::Object(m) = &mut v {
        for k in READ_ONLY {
            m.remove(*k);
        }
        m.remove("tags");
        // ECS stores task sizes as integer strings: a number, "1 vcpu" or "2 GB"
        // given at registration comes back as "1024" / "2048" (RegisterTaskDefinition
        // reference, `cpu` and `memory`: "converted to an integer ... when the task
        // definition is registered").
        for (k, unit) in [("cpu", "vcpu"), ("memory", "gb")] {
            if let Some(n) = m.get(k).and_then(|v| task_size(v, unit)) {
                m.insert(k.into(), json!(n.to_string()));
            }
        }
        if m.get("networkMode").and_then(Value::as_str) == Some("bridge") {
            m.remove("networkMode");
        }
        if let Some(cs) = m.get_mut("containerDefinitions").and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                if c.get("essential") == Some(&json!(true)) {
                    c.remove("essential");
                }
                if c.get("cpu") == Some(&json!(0)) {
                    c.remove("cpu");
                }
                // A health check stored without interval/timeout/retries comes back
                // with ECS's defaults, 30 s / 5 s / 3 (HealthCheck reference).
                if let Some(h) = c.get_mut("healthCheck").and_then(Value::as_object_mut) {
                    for (k, default) in [("interval", 30), ("timeout", 5), ("retries", 3)] {
                        if h.get(k) == Some(&json!(default)) {
                            h.remove(k);
                        }
                    }
                }
                if let Some(ports) = c.get_mut("portMappings").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        if p.get("protocol") == Some(&json!("tcp")) {
                            p.remove("protocol");
                        }
                        if p.get("hostPort").is_some() && p.get("hostPort") == p.get("containerPort") {
                            p.remove("hostPort");
                        }
                    }
                }
            }
        }
    }
    prune(v).unwrap_or(Value::Null)
}

/// A task size as the integer ECS stores: CPU units (`unit` "vcpu": 1 vCPU =
/// 1024) or MiB (`unit` "gb": 1 GB = 1024). `None` for what is not a size.
fn task_size(v: &Value, unit: &str) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let text = v.as_str()?.trim().to_ascii_lowercase();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let number = text.strip_suffix(unit)?.trim().parse::<f64>().ok()?;
    let n = number * 1024.0;
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0).then_some(n as u64)
}

fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(prune).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(m) => {
            let m: Map<String, Value> = m.into_iter().filter_map(|(k, v)| prune(v).map(|v| (k, v))).collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        other => Some(other),
    }
}

/// Whether registering `rendered` would give something other than `newest`.
pub fn differs(rendered: &Value, newest: &Value) -> bool {
    comparable(rendered) != comparable(newest)
}

/// The wiring a definition holds, by path: the role ARNs, and per container
/// each `secrets` and `secretOptions` entry by name and `repositoryCredentials`.
fn wiring_entries(def: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for k in ["executionRoleArn", "taskRoleArn"] {
        if let Some(v) = def[k].as_str() {
            out.insert(k.to_string(), v.to_string());
        }
    }
    for c in def["containerDefinitions"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        let named = |list: &Value, field: &str, out: &mut std::collections::BTreeMap<String, String>| {
            for e in list.as_array().into_iter().flatten() {
                if let (Some(n), Some(v)) = (e["name"].as_str(), e["valueFrom"].as_str()) {
                    out.insert(format!("containerDefinitions[{name}].{field}[{n}]"), v.to_string());
                }
            }
        };
        named(&c["secrets"], "secrets", &mut out);
        named(&c["logConfiguration"]["secretOptions"], "logConfiguration.secretOptions", &mut out);
        if let Some(v) = c["repositoryCredentials"]["credentialsParameter"].as_str() {
            out.insert(format!("containerDefinitions[{name}].repositoryCredentials"), v.to_string());
        }
    }
    out
}

/// The wiring a registration changes, one line per entry, as `terraform plan`
/// shows attribute diffs: `~ path: old -> new`, `+ path: new`, `- path: old`
/// (removed). References and ARNs only, never a value; an ARN that waits on a
/// value not created yet shows as `(known after apply)`.
pub fn wiring_diff(old: Option<&Value>, new: &Value) -> Vec<String> {
    let shown = |v: &str| if v.contains("-??????") { "(known after apply)".to_string() } else { v.to_string() };
    let (a, b) = (old.map(wiring_entries).unwrap_or_default(), wiring_entries(new));
    let mut out = Vec::new();
    for (path, new_v) in &b {
        match a.get(path) {
            Some(old_v) if old_v == new_v => {}
            Some(old_v) => out.push(format!("~ {path}: {} -> {}", shown(old_v), shown(new_v))),
            None => out.push(format!("+ {path}: {}", shown(new_v))),
        }
    }
    for (path, old_v) in a.iter().filter(|(p, _)| !b.contains_key(*p)) {
        out.push(format!("- {path}: {} (removed)", shown(old_v)));
    }
    out
}

/// Human-readable paths of what differs, for the plan (values are ARNs and
/// names only: a task definition holds no secret values).
pub fn changed_fields(rendered: &Value, newest: &Value) -> Vec<String> {
    let (a, b) = (comparable(rendered), comparable(newest));
    let mut out = Vec::new();
    diff_paths("", &a, &b, &mut out);
    out
}

fn diff_paths(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff_paths(&p, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if path.ends_with("containerDefinitions") && x.len() == y.len() => {
            for (i, (cx, cy)) in x.iter().zip(y).enumerate() {
                let name = cx["name"].as_str().map_or(i.to_string(), str::to_string);
                diff_paths(&format!("{path}[{name}]"), cx, cy, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Value {
        json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
            "family": "web", "revision": 3, "status": "ACTIVE",
            "requiresAttributes": [{"name": "ecs.capability.secrets.ssm.environment-variables"}],
            "compatibilities": ["EC2", "FARGATE"], "registeredAt": "2026-01-01T00:00:00Z",
            "networkMode": "awsvpc", "cpu": "256", "memory": "512", "requiresCompatibilities": ["FARGATE"],
            "executionRoleArn": "arn:aws:iam::123456789012:role/old", "taskRoleArn": "arn:aws:iam::123456789012:role/app",
            "volumes": [], "placementConstraints": [],
            "containerDefinitions": [
                {"name": "web", "image": "httpd:2.4", "cpu": 0, "essential": true, "environment": [{"name": "MODE", "value": "prod"}],
                 "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}], "mountPoints": [], "volumesFrom": [],
                 "secrets": [{"name": "OLD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/old"}],
                 "logConfiguration": {"logDriver": "splunk", "options": {"splunk-url": "https://splunk:8088"}}},
                {"name": "sidecar", "image": "envoy", "secrets": [{"name": "KEEP", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/keep"}]}
            ]
        })
    }

    fn wiring() -> Wiring {
        Wiring {
            execution_role_arn: "arn:aws:iam::123456789012:role/web-execution".into(),
            task_role_arn: None,
            containers: vec![ContainerWiring {
                name: "web".into(),
                secrets: vec![(
                    "DATABASE_PASSWORD".into(),
                    "arn:aws:ssm:us-east-1:123456789012:parameter/web/db".into(),
                )],
                log_secrets: vec![(
                    "splunk-token".into(),
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/splunk-AbCdEf".into(),
                )],
                repository_credentials: None,
            }],
        }
    }

    #[test]
    fn render_replaces_only_the_wiring_and_keeps_everything_else() {
        let r = render(&live(), "web", &wiring()).unwrap();
        assert_eq!(r["executionRoleArn"], "arn:aws:iam::123456789012:role/web-execution");
        assert_eq!(r["taskRoleArn"], "arn:aws:iam::123456789012:role/app", "undeclared task role kept");
        let web = &r["containerDefinitions"][0];
        assert_eq!(
            web["secrets"],
            json!([{"name": "DATABASE_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/web/db"}])
        );
        assert_eq!(web["logConfiguration"]["secretOptions"][0]["name"], "splunk-token");
        assert_eq!(web["logConfiguration"]["options"]["splunk-url"], "https://splunk:8088");
        assert_eq!(web["environment"], json!([{"name": "MODE", "value": "prod"}]));
        assert_eq!(
            r["containerDefinitions"][1],
            live()["containerDefinitions"][1],
            "undeclared container kept exactly"
        );
        for k in READ_ONLY {
            assert!(r.get(*k).is_none(), "{k} must not be sent to RegisterTaskDefinition");
        }
        assert_eq!(r["cpu"], "256");
        assert_eq!(r["requiresCompatibilities"], json!(["FARGATE"]));
    }

    #[test]
    fn a_hand_wired_form_of_the_same_reference_is_kept() {
        let live = json!({"containerDefinitions": [{"name": "web",
            "secrets": [{"name": "A", "valueFrom": "/a"}, {"name": "B", "valueFrom": "/b"}],
            "logConfiguration": {"logDriver": "splunk", "secretOptions": [{"name": "t", "valueFrom": "tok"}]},
            "repositoryCredentials": {"credentialsParameter": "reg"}}]});
        let mut rendered = json!({"containerDefinitions": [{"name": "web",
            "secrets": [{"name": "A", "valueFrom": "ARN-a"}, {"name": "B", "valueFrom": "ARN-other"}],
            "logConfiguration": {"logDriver": "splunk", "secretOptions": [{"name": "t", "valueFrom": "ARN-tok"}]},
            "repositoryCredentials": {"credentialsParameter": "ARN-reg"}}]});
        let same = |have: &str, want: &str, creds: bool| {
            want == format!("ARN-{}", have.trim_start_matches('/')) && creds == (have == "reg")
        };
        keep_equivalent_forms(&mut rendered, &live, same);
        let c = &rendered["containerDefinitions"][0];
        assert_eq!(c["secrets"][0]["valueFrom"], "/a");
        assert_eq!(c["secrets"][1]["valueFrom"], "ARN-other", "another value is not the same one");
        assert_eq!(c["logConfiguration"]["secretOptions"][0]["valueFrom"], "tok");
        assert_eq!(c["repositoryCredentials"]["credentialsParameter"], "reg");
        assert!(!differs(&rendered, &{
            let mut l = live.clone();
            l["containerDefinitions"][0]["secrets"][1]["valueFrom"] = json!("ARN-other");
            l
        }));
    }

    #[test]
    fn render_errors() {
        let mut w = wiring();
        w.containers[0].name = "nope".into();
        assert_eq!(render(&live(), "web", &w), Err(RenderError::MissingContainer("nope".into())));
        let mut base = live();
        base["containerDefinitions"][0].as_object_mut().unwrap().remove("logConfiguration");
        assert_eq!(render(&base, "web", &wiring()), Err(RenderError::NoLogConfiguration("web".into())));
    }

    #[test]
    fn rendering_twice_is_stable_and_defaults_do_not_count_as_changes() {
        let r = render(&live(), "web", &wiring()).unwrap();
        // What ECS would hand back after registering `r`: read-only fields and defaults added.
        let mut registered = r.clone();
        registered["revision"] = json!(4);
        registered["status"] = json!("ACTIVE");
        registered["containerDefinitions"][1]["essential"] = json!(true);
        registered["containerDefinitions"][1]["cpu"] = json!(0);
        registered["containerDefinitions"][1]["environment"] = json!([]);
        assert!(!differs(&r, &registered), "{:?}", changed_fields(&r, &registered));
        assert!(!differs(&render(&registered, "web", &wiring()).unwrap(), &registered));
        let mut w = wiring();
        w.containers[0].secrets.push(("EXTRA".into(), "arn:aws:ssm:us-east-1:123456789012:parameter/x".into()));
        let r2 = render(&live(), "web", &w).unwrap();
        assert!(differs(&r2, &registered));
        assert_eq!(changed_fields(&r2, &registered), vec!["containerDefinitions[web].secrets".to_string()]);
    }

    #[test]
    fn task_sizes_in_vcpu_and_gb_and_default_health_checks_equal_what_ecs_stores() {
        // As a template would say it, and as DescribeTaskDefinition answers after
        // registration (AWS documents both conversions and the three defaults).
        let template = json!({"family": "web", "cpu": "1 vCPU", "memory": "2 GB", "containerDefinitions": [
            {"name": "web", "image": "x", "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}}]});
        let stored = json!({"family": "web", "cpu": "1024", "memory": "2048", "containerDefinitions": [
            {"name": "web", "image": "x", "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
             "interval": 30, "timeout": 5, "retries": 3}}]});
        assert!(!differs(&template, &stored), "{:?}", changed_fields(&template, &stored));
        for (cpu, memory) in [("0.25 vcpu", "0.5 GB"), ("0.25vCPU", "0.5gb")] {
            let t = json!({"family": "web", "cpu": cpu, "memory": memory, "containerDefinitions": [{"name": "web", "image": "x"}]});
            let s = json!({"family": "web", "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "web", "image": "x"}]});
            assert!(!differs(&t, &s), "{cpu} {memory}");
        }
        // A real difference still counts.
        let mut longer = stored.clone();
        longer["containerDefinitions"][0]["healthCheck"]["interval"] = json!(60);
        assert!(differs(&template, &longer));
        let mut bigger = stored;
        bigger["cpu"] = json!("2048");
        assert_eq!(changed_fields(&template, &bigger), ["cpu"]);
    }

    #[test]
    fn the_wiring_diff_names_every_entry_changed_added_and_removed() {
        let old = json!({"executionRoleArn": "arn:aws:iam::1:role/old", "containerDefinitions": [
            {"name": "web", "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"},
                                        {"name": "GONE", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/gone"}],
             "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:1:secret:reg-AbCdEf"}}]});
        let new = json!({"executionRoleArn": "arn:aws:iam::1:role/web-execution", "containerDefinitions": [
            {"name": "web", "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"},
                                        {"name": "API", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:web/api-??????:user::"}],
             "logConfiguration": {"logDriver": "splunk", "secretOptions": [{"name": "splunk-token", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:s-AbCdEf"}]}}]});
        assert_eq!(
            wiring_diff(Some(&old), &new),
            [
                "+ containerDefinitions[web].logConfiguration.secretOptions[splunk-token]: arn:aws:secretsmanager:us-east-1:1:secret:s-AbCdEf",
                "+ containerDefinitions[web].secrets[API]: (known after apply)",
                "~ executionRoleArn: arn:aws:iam::1:role/old -> arn:aws:iam::1:role/web-execution",
                "- containerDefinitions[web].repositoryCredentials: arn:aws:secretsmanager:us-east-1:1:secret:reg-AbCdEf (removed)",
                "- containerDefinitions[web].secrets[GONE]: arn:aws:ssm:us-east-1:1:parameter/gone (removed)",
            ]
        );
        assert!(wiring_diff(Some(&new), &new).is_empty());
    }

    #[test]
    fn numeric_task_sizes_in_a_template_equal_the_strings_ecs_returns() {
        let template = json!({"family": "web", "cpu": 256, "memory": 512, "containerDefinitions": [{"name": "web", "image": "x"}]});
        let mut described = template.clone();
        described["cpu"] = json!("256");
        described["memory"] = json!("512");
        described["networkMode"] = json!("bridge");
        assert!(!differs(&template, &described));
    }
}
