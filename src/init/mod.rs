//! `secretwire init`: manifests for services that are already wired by hand,
//! written from what `init` read ([`found::Found`]). Pure: the reads are in
//! `aws::discover`.
//!
//! The round trip is exact: `plan` on the generated manifests changes no
//! task definition and no service. References keep their meaning (a name for
//! a value of this account and region, the ARN's JSON key and version pin),
//! roles and values are adopted (`adopt: true`, values with no
//! `initialValue`: they exist), and what cannot be expressed is written
//! commented out with the reason.

pub mod found;
pub mod write;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::arn::{Arn, RawTarget, Scope, parse_value_from};
use found::{Found, FoundRole, FoundService};
use yaml::Y;

const API_VERSION: &str = "secretwire.dev/v1alpha1";

/// The manifests, as files relative to the output directory, in writing order.
#[derive(Debug, Default)]
pub struct Generated {
    pub files: Vec<(String, String)>,
    /// Services written as manifests.
    pub services: usize,
    /// Services written commented out, with why.
    pub skipped: Vec<(String, String)>,
    pub parameters: usize,
    pub secrets: usize,
}

/// A reference as a manifest writes it.
enum Ref {
    Parameter(String),
    Secret { name: String, json_key: Option<String>, stage: Option<String>, id: Option<String> },
    Raw(String),
}

/// Builds every manifest.
pub fn generate(found: &Found) -> Generated {
    let scope = &found.scope;
    let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &found.services {
        *per_name.entry(s.name.as_str()).or_default() += 1;
    }
    let mut g = Generated::default();
    let mut parameters: BTreeSet<String> = BTreeSet::new();
    let mut secrets: BTreeMap<String, &found::FoundSecret> = BTreeMap::new();
    let mut service_files = Vec::new();
    // A role and a family are one Service's (secretwire's claims): the first
    // service keeps a shared one, the others get their own.
    let mut claimed = BTreeSet::new();
    for s in &found.services {
        let name = if per_name[s.name.as_str()] > 1 {
            format!("{}-{}", short_cluster(&s.cluster), s.name)
        } else {
            s.name.clone()
        };
        let mut cx = ServiceCx {
            found,
            scope,
            name: &name,
            claimed: &mut claimed,
            notes: Vec::new(),
            parameters: BTreeSet::new(),
            secrets: BTreeMap::new(),
        };
        let head = format!(
            "Imported by `secretwire init` from ecs service {}/{}, which ran {}.",
            s.cluster,
            s.name,
            crate::arn::task_definition_short(&s.task_definition)
        );
        match cx.service(s) {
            Ok(node) => {
                let mut comments = vec![head];
                comments.append(&mut cx.notes);
                service_files.push((format!("services/{name}.yaml"), yaml::document(&comments, &node)));
                parameters.extend(cx.parameters);
                secrets.extend(cx.secrets);
                g.services += 1;
            }
            Err((why, node)) => {
                let mut text = format!("# {head}\n# Not managed: {why}\n");
                if let Some(node) = node {
                    text.push_str(&yaml::commented_out(&yaml::document(&cx.notes, &node)));
                }
                service_files.push((format!("services/{name}.yaml"), text));
                g.skipped.push((name.clone(), why));
            }
        }
    }
    let mut values = Vec::new();
    for name in &parameters {
        let Some(p) = found.parameters.get(name) else { continue };
        let kind = (p.kind == "String").then(|| Y::s("String"));
        let key = p.key_id.as_deref().filter(|k| p.kind == "SecureString" && *k != "alias/aws/ssm");
        values.push(adopted("Parameter", name, kind, key, p.description.as_deref()));
        g.parameters += 1;
    }
    for (name, s) in &secrets {
        let key = s.kms_key_id.as_deref().filter(|k| *k != "alias/aws/secretsmanager");
        values.push(adopted("Secret", name, None, key, s.description.as_deref()));
        g.secrets += 1;
    }
    if !values.is_empty() {
        let head = "# Values the services read, adopted as they are: secretwire tags them and\n\
                    # never reads, prints or changes a value (no initialValue: they exist).\n";
        g.files.push(("values.yaml".into(), format!("{head}{}", values.join("---\n"))));
    }
    g.files.extend(service_files);
    g
}

/// A Parameter or Secret adopted as it is: its type (a parameter's, when not
/// the default), its customer managed key, its description; no initialValue.
fn adopted(kind: &str, name: &str, value_type: Option<Y>, key: Option<&str>, description: Option<&str>) -> String {
    let mut spec = Vec::new();
    spec.extend(value_type.map(|t| ("type", t)));
    spec.extend(key.map(|k| ("kmsKeyId", Y::s(k))));
    spec.extend(description.map(|d| ("description", Y::s(d))));
    spec.push(("adopt", Y::Bool(true)));
    yaml::document(&[], &doc(kind, name, Y::map(spec)))
}

fn doc(kind: &str, name: &str, spec: Y) -> Y {
    Y::map([
        ("apiVersion", Y::s(API_VERSION)),
        ("kind", Y::s(kind)),
        ("metadata", Y::map([("name", Y::s(name))])),
        ("spec", spec),
    ])
}

/// `prod` for `arn:aws:ecs:R:A:cluster/prod` or `prod`.
fn short_cluster(c: &str) -> &str {
    c.rsplit_once(":cluster/").map_or(c, |(_, n)| n)
}

struct ServiceCx<'a, 'b> {
    found: &'a Found,
    scope: &'b Scope,
    /// The Service's `metadata.name`.
    name: &'b str,
    /// Roles (`role/NAME`) and families (`family/NAME`) earlier Services hold.
    claimed: &'b mut BTreeSet<String>,
    notes: Vec<String>,
    parameters: BTreeSet<String>,
    secrets: BTreeMap<String, &'a found::FoundSecret>,
}

type Skip = (String, Option<Y>);

impl<'a> ServiceCx<'a, '_> {
    fn service(&mut self, s: &FoundService) -> Result<Y, Skip> {
        let name = self.name;
        if s.deployment_controller != "ECS" {
            return Err((
                format!(
                    "it uses the {} deployment controller; UpdateService cannot change its task definition",
                    s.deployment_controller
                ),
                None,
            ));
        }
        let Some(def) = &s.definition else {
            return Err((format!("its task definition {} could not be read", s.task_definition), None));
        };
        let mut family = def["family"].as_str().unwrap_or(name);
        if !self.claimed.insert(format!("family/{family}")) {
            self.notes.push(format!(
                "Family {family} is another Service's too: this one registers its own family {name} (a new revision)."
            ));
            family = name;
        }
        let mut spec = vec![("cluster", Y::s(&s.cluster))];
        if s.name != name {
            spec.push(("serviceName", Y::s(&s.name)));
        }
        spec.push(("taskDefinition", Y::map([("family", Y::s(family))])));
        let mut problem = None;
        match def["executionRoleArn"].as_str() {
            Some(arn) => match self.role(arn, false) {
                Ok(r) => spec.push(("executionRole", r)),
                Err(why) => problem = Some(why),
            },
            None => self.notes.push(format!(
                "The task definition names no execution role: apply creates {name}-execution (a new revision)."
            )),
        }
        if let Some(arn) = def["taskRoleArn"].as_str() {
            match self.role(arn, true) {
                Ok(r) => spec.push(("taskRole", r)),
                Err(why) => problem = problem.or(Some(why)),
            }
        }
        let mut containers = Vec::new();
        for c in def["containerDefinitions"].as_array().into_iter().flatten() {
            match self.container(c) {
                Ok(Some(y)) => containers.push(y),
                Ok(None) => {}
                Err(why) => problem = problem.or(Some(why)),
            }
        }
        let empty = containers.is_empty();
        spec.push(("containers", Y::List(containers)));
        let node = doc("Service", name, Y::map(spec));
        if let Some(why) = problem {
            return Err((why, Some(node)));
        }
        if empty {
            return Err((
                "no container reads a secret (secrets, logConfiguration.secretOptions, repositoryCredentials): nothing to wire"
                    .into(),
                None,
            ));
        }
        Ok(node)
    }

    fn role(&mut self, arn: &str, task: bool) -> Result<Y, String> {
        let what = if task { "task role" } else { "execution role" };
        let Some(name) = found::role_in_scope(arn, self.scope) else {
            return Err(format!("its {what} {arn} is in another account"));
        };
        let Some(role) = self.found.roles.get(name) else {
            self.notes.push(format!("The {what} {name} does not exist: apply creates it."));
            return Ok(Y::map([("roleName", Y::s(name))]));
        };
        let own;
        let mut spec = if self.claimed.insert(format!("role/{name}")) {
            vec![("roleName", Y::s(name)), ("adopt", Y::Bool(true))]
        } else {
            own = format!("{}-{}", self.name, if task { "task" } else { "execution" });
            self.notes.push(format!(
                "The {what} {name} is another Service's too: secretwire gives each Service its own, so apply \
                 creates {own} with the same managed policies{} (a new revision).",
                if task { " and statements" } else { "" }
            ));
            vec![("roleName", Y::s(&own))]
        };
        if !role.managed_policy_arns.is_empty() {
            spec.push(("managedPolicyArns", Y::List(role.managed_policy_arns.iter().map(Y::s).collect())));
        }
        if task {
            let statements = self.statements(role);
            if !statements.is_empty() {
                spec.push(("statements", Y::List(statements)));
            }
        }
        Ok(Y::map(spec))
    }

    /// The task role's inline policies as `statements` (its `secretwire`
    /// policy alone, if it has one: that is what secretwire manages).
    fn statements(&mut self, role: &FoundRole) -> Vec<Y> {
        let ours: Vec<_> =
            role.inline_policies.iter().filter(|(n, _)| n == crate::policy::INLINE_POLICY_NAME).collect();
        let policies = if ours.is_empty() { role.inline_policies.iter().collect() } else { ours };
        let mut out = Vec::new();
        for (policy, doc) in policies {
            let list = match &doc["Statement"] {
                Value::Array(a) => a.clone(),
                Value::Null => Vec::new(),
                one => vec![one.clone()],
            };
            for (i, st) in list.iter().enumerate() {
                match statement(st) {
                    Ok(y) => out.push(y),
                    Err(why) => self.notes.push(format!(
                        "Statement {} of inline policy {policy} of role {} {why}: it stays on the role, not in this manifest.",
                        i + 1,
                        role.name
                    )),
                }
            }
        }
        if !out.is_empty() && role.inline_policies.iter().all(|(n, _)| n != crate::policy::INLINE_POLICY_NAME) {
            self.notes.push(format!(
                "apply puts these statements in role {}'s inline policy `secretwire`; its own inline policies ({}) \
                 stay until you delete them.",
                role.name,
                role.inline_policies.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }

    fn container(&mut self, c: &Value) -> Result<Option<Y>, String> {
        let name = c["name"].as_str().unwrap_or_default();
        let refs = |entries: &Value| entries.as_array().cloned().unwrap_or_default();
        let mut spec = vec![("name", Y::s(name))];
        let mut any = false;
        for (key, entries) in
            [("secrets", refs(&c["secrets"])), ("logSecrets", refs(&c["logConfiguration"]["secretOptions"]))]
        {
            let mut list = Vec::new();
            for e in &entries {
                let (Some(n), Some(v)) = (e["name"].as_str(), e["valueFrom"].as_str()) else { continue };
                let mut item = vec![("name", Y::s(n))];
                item.extend(self.reference(v, false, &format!("container {name}: {n}"))?);
                list.push(Y::map(item));
            }
            if !list.is_empty() {
                any = true;
                spec.push((key, Y::List(list)));
            }
        }
        if let Some(v) = c["repositoryCredentials"]["credentialsParameter"].as_str() {
            any = true;
            let r = self.reference(v, true, &format!("container {name}: repositoryCredentials"))?;
            spec.push(("repositoryCredentials", Y::map(r)));
        }
        Ok(any.then(|| Y::map(spec)))
    }

    /// The manifest fields of one reference, and the value it adopts.
    fn reference(&mut self, v: &str, credentials: bool, at: &str) -> Result<Vec<(&'static str, Y)>, String> {
        let r = self.classify(v, credentials, at)?;
        Ok(match r {
            Ref::Parameter(n) => vec![("parameter", Y::s(n))],
            Ref::Secret { name, json_key, stage, id } => {
                let mut f = vec![("secret", Y::s(name))];
                if let Some(k) = json_key {
                    f.push(("jsonKey", Y::s(k)));
                }
                if let Some(s) = stage {
                    f.push(("versionStage", Y::s(s)));
                }
                if let Some(i) = id {
                    f.push(("versionId", Y::s(i)));
                }
                f
            }
            Ref::Raw(arn) => vec![("valueFrom", Y::s(arn))],
        })
    }

    fn classify(&mut self, v: &str, credentials: bool, at: &str) -> Result<Ref, String> {
        if !v.starts_with("arn:") {
            // ECS takes a name for a parameter (secrets) or a secret (repository
            // credentials) in the task's account and region.
            if credentials {
                return Ok(match self.found.secrets.get(v) {
                    Some(s) => {
                        self.secrets.insert(s.name.clone(), s);
                        Ref::Secret { name: s.name.clone(), json_key: None, stage: None, id: None }
                    }
                    None => {
                        self.notes.push(format!("{at}: secret {v} does not exist in this account and region."));
                        Ref::Secret { name: v.to_string(), json_key: None, stage: None, id: None }
                    }
                });
            }
            return Ok(self.parameter(&[v.to_string()], v, at));
        }
        match parse_value_from(v) {
            Err(e) => Err(format!("{at}: {e}")),
            Ok(RawTarget::Parameter { arn, name }) => {
                if credentials {
                    return Err(format!("{at}: repository credentials must be a Secrets Manager secret, not {v}"));
                }
                if !self.scope.holds(&arn) {
                    self.notes.push(other_scope(at, &arn));
                    return Ok(Ref::Raw(v.to_string()));
                }
                Ok(self.parameter(&found::parameter_names(&arn, &name), v, at))
            }
            Ok(RawTarget::Secret(s)) => {
                if !self.scope.holds(&s.secret_arn) {
                    self.notes.push(other_scope(at, &s.secret_arn));
                    return Ok(Ref::Raw(v.to_string()));
                }
                match self.found.secrets.get(&s.secret_arn) {
                    Some(f) => {
                        self.secrets.insert(f.name.clone(), f);
                        Ok(Ref::Secret {
                            name: f.name.clone(),
                            json_key: s.json_key,
                            stage: s.version_stage,
                            id: s.version_id,
                        })
                    }
                    None => {
                        self.notes.push(format!("{at}: secret {} was not found; kept as valueFrom.", s.secret_arn));
                        Ok(Ref::Raw(v.to_string()))
                    }
                }
            }
        }
    }

    fn parameter(&mut self, candidates: &[String], v: &str, at: &str) -> Ref {
        match candidates.iter().find(|n| self.found.parameters.contains_key(*n)) {
            Some(n) if self.found.parameters[n].kind == "StringList" => {
                self.notes.push(format!("{at}: parameter {n} is a StringList: referenced, not declared."));
                Ref::Parameter(n.clone())
            }
            Some(n) => {
                self.parameters.insert(n.clone());
                Ref::Parameter(n.clone())
            }
            None if v.starts_with("arn:") => {
                self.notes.push(format!("{at}: parameter {v} was not found; kept as valueFrom."));
                Ref::Raw(v.to_string())
            }
            None => {
                self.notes.push(format!("{at}: parameter {v} does not exist in this account and region."));
                Ref::Parameter(v.to_string())
            }
        }
    }
}

fn other_scope(at: &str, arn: &str) -> String {
    let a = Arn::parse(arn);
    format!(
        "{at}: the value is in account {} region {}, which secretwire reaches only through a Target; kept as valueFrom.",
        a.as_ref().map_or("?", |a| a.account),
        a.as_ref().map_or("?", |a| a.region)
    )
}

/// One IAM statement as a manifest `statements` entry.
fn statement(st: &Value) -> Result<Y, String> {
    for unsupported in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
        if st.get(unsupported).is_some() {
            return Err(format!("uses {unsupported}"));
        }
    }
    let list = |v: &Value| -> Vec<Y> {
        match v {
            Value::String(s) => vec![Y::s(s)],
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(Y::s).collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    if let Some(sid) = st["Sid"].as_str().filter(|s| !s.is_empty()) {
        out.push(("sid", Y::s(sid)));
    }
    out.push(("effect", Y::s(st["Effect"].as_str().unwrap_or("Allow"))));
    out.push(("actions", Y::List(list(&st["Action"]))));
    out.push(("resources", Y::List(list(&st["Resource"]))));
    if let Some(cond) = st["Condition"].as_object().filter(|c| !c.is_empty()) {
        let scalar = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let ops = cond
            .iter()
            .map(|(op, keys)| {
                let keys = keys.as_object().into_iter().flatten().map(|(k, v)| {
                    let v = match v {
                        Value::Array(a) => Y::List(a.iter().map(|x| Y::s(scalar(x))).collect()),
                        one => Y::s(scalar(one)),
                    };
                    (k.clone(), v)
                });
                (op.clone(), Y::Map(keys.collect()))
            })
            .collect();
        out.push(("conditions", Y::Map(ops)));
    }
    Ok(Y::map(out))
}

#[cfg(test)]
mod tests;
