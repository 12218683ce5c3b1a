//! What `init` read of a running fleet: services, the revisions they run,
//! their roles and the metadata (never the value) of every value they read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::arn::Scope;

/// Everything `init` writes manifests from.
#[derive(Debug)]
pub struct Found {
    /// The account and region the services were read in.
    pub scope: Scope,
    pub services: Vec<FoundService>,
    /// By role name.
    pub roles: BTreeMap<String, FoundRole>,
    /// By parameter name.
    pub parameters: BTreeMap<String, FoundParameter>,
    /// By the secret ARN a definition names (full or partial), and by name
    /// for repository credentials given as a name.
    pub secrets: BTreeMap<String, FoundSecret>,
}

#[derive(Debug, Clone)]
pub struct FoundService {
    /// As given to `--cluster`.
    pub cluster: String,
    pub name: String,
    pub deployment_controller: String,
    /// The revision it runs (`family:revision`).
    pub task_definition: String,
    /// That revision in the DescribeTaskDefinition shape; `None` if unreadable.
    pub definition: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct FoundRole {
    pub name: String,
    pub arn: String,
    pub managed_policy_arns: Vec<String>,
    /// `(policy name, document)` of every inline policy (task roles only).
    pub inline_policies: Vec<(String, Value)>,
}

#[derive(Debug, Clone)]
pub struct FoundParameter {
    pub name: String,
    /// `String`, `SecureString` or `StringList`.
    pub kind: String,
    pub key_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FoundSecret {
    pub arn: String,
    pub name: String,
    pub kms_key_id: Option<String>,
    pub description: Option<String>,
}

impl Found {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            services: Vec::new(),
            roles: BTreeMap::new(),
            parameters: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// The values and roles the definitions of `services` name, to be read next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub parameters: std::collections::BTreeSet<String>,
    /// Secret ARNs (full or partial) and names.
    pub secrets: std::collections::BTreeSet<String>,
    /// `(name, is the task role)`.
    pub roles: BTreeMap<String, bool>,
}

/// What the running revisions reference in `scope` (the rest is written as given).
pub fn wanted(services: &[FoundService], scope: &Scope) -> Wanted {
    let mut w = Wanted::default();
    for s in services {
        let Some(def) = &s.definition else { continue };
        for (field, task) in [("executionRoleArn", false), ("taskRoleArn", true)] {
            if let Some(name) = def[field].as_str().and_then(|a| role_in_scope(a, scope)) {
                *w.roles.entry(name.to_string()).or_default() |= task;
            }
        }
        for c in def["containerDefinitions"].as_array().into_iter().flatten() {
            let entries = c["secrets"].as_array().into_iter().flatten();
            let log = c["logConfiguration"]["secretOptions"].as_array().into_iter().flatten();
            for v in entries.chain(log).filter_map(|e| e["valueFrom"].as_str()) {
                match crate::arn::parse_value_from(v) {
                    Ok(crate::arn::RawTarget::Parameter { arn, name }) if scope.holds(&arn) => {
                        for n in parameter_names(&arn, &name) {
                            w.parameters.insert(n);
                        }
                    }
                    Ok(crate::arn::RawTarget::Secret(s)) if scope.holds(&s.secret_arn) => {
                        w.secrets.insert(s.secret_arn);
                    }
                    Ok(_) => {}
                    Err(_) if !v.starts_with("arn:") => {
                        w.parameters.insert(v.to_string());
                    }
                    Err(_) => {}
                }
            }
            if let Some(v) = c["repositoryCredentials"]["credentialsParameter"].as_str() {
                match crate::arn::parse_value_from(v) {
                    Ok(crate::arn::RawTarget::Secret(s)) if scope.holds(&s.secret_arn) => {
                        w.secrets.insert(s.secret_arn);
                    }
                    Err(_) if !v.starts_with("arn:") => {
                        w.secrets.insert(v.to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    w
}

/// The names an SSM ARN may stand for: `…:parameter/a/b` is `/a/b`, but
/// `…:parameter/db` is `db` or `/db` (the ARN of a one-level `/`-rooted
/// name has no doubled slash).
pub fn parameter_names(arn: &str, name: &str) -> Vec<String> {
    let rest = arn.split_once(":parameter/").map_or("", |(_, r)| r);
    if rest.contains('/') { vec![name.to_string()] } else { vec![rest.to_string(), format!("/{rest}")] }
}

/// The role name of an IAM role ARN in `scope`'s account.
pub fn role_in_scope<'a>(arn: &'a str, scope: &Scope) -> Option<&'a str> {
    let (_, account) = crate::arn::role_arn_parts(arn)?;
    (account == scope.account).then(|| arn.rsplit('/').next().unwrap_or_default())
}
