//! ARNs of the things secretwire wires: SSM parameters, Secrets Manager
//! secrets (with the optional `:json-key:version-stage:version-id` tail that
//! ECS accepts), KMS keys and IAM roles. Pure string work, no I/O.

use std::fmt;

/// Where an API call runs: partition, region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn new(region: &str, account: &str) -> Self {
        Self { partition: partition_of(region).to_string(), region: region.to_string(), account: account.to_string() }
    }

    /// Whether `arn` is of this partition, region and account.
    pub fn holds(&self, arn: &str) -> bool {
        Arn::parse(arn)
            .is_some_and(|a| a.partition == self.partition && a.region == self.region && a.account == self.account)
    }

    /// `arn:aws:ssm:R:A:parameter/NAME` with no doubled slash for `/`-rooted names.
    pub fn parameter_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:ssm:{}:{}:parameter/{}",
            self.partition,
            self.region,
            self.account,
            name.strip_prefix('/').unwrap_or(name)
        )
    }

    pub fn role_arn(&self, role_name: &str) -> String {
        format!("arn:{}:iam::{}:role/{}", self.partition, self.account, role_name)
    }

    /// A role's ARN under an IAM path (`/` or `/a/b/`): `…:role/a/b/NAME`.
    pub fn role_arn_in(&self, path: &str, role_name: &str) -> String {
        format!("arn:{}:iam::{}:role{}{}", self.partition, self.account, path, role_name)
    }
}

/// The IAM path of a role ARN: `/` for `…:role/NAME`, `/a/b/` for `…:role/a/b/NAME`.
pub fn role_path_of(role_arn: &str) -> &str {
    let Some((_, rest)) = role_arn.split_once(":role/") else { return "/" };
    match rest.rfind('/') {
        // `rest` is `a/b/NAME`: the path is `/a/b/`, which starts one byte before `rest`.
        Some(i) => &role_arn[role_arn.len() - rest.len() - 1..role_arn.len() - rest.len() + i + 1],
        None => "/",
    }
}

/// `(partition, account)` of an IAM role ARN `arn:P:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn role_arn_parts(role_arn: &str) -> Option<(&str, &str)> {
    let a = Arn::parse(role_arn)?;
    let name = a.resource.strip_prefix("role/")?.rsplit('/').next()?;
    (a.service == "iam" && a.region.is_empty() && is_account(a.account) && !name.is_empty())
        .then_some((a.partition, a.account))
}

/// The principal a trust policy names for an STS caller ARN:
/// `arn:P:sts::A:assumed-role/NAME/SESSION` -> `arn:P:iam::A:role/NAME` (the
/// role's path is not in an assumed-role ARN); another STS identity (a
/// federated user) -> the account, `arn:P:iam::A:root`; an IAM user or role
/// ARN as it is.
pub fn caller_principal(caller_arn: &str) -> String {
    match Arn::parse(caller_arn) {
        Some(a) if a.service == "sts" => match a.resource.strip_prefix("assumed-role/").and_then(|r| r.split_once('/'))
        {
            Some((role, _)) => format!("arn:{}:iam::{}:role/{role}", a.partition, a.account),
            None => format!("arn:{}:iam::{}:root", a.partition, a.account),
        },
        _ => caller_arn.to_string(),
    }
}

pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// A parsed ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut it = s.splitn(6, ':');
        let (arn, partition, service, region, account, resource) =
            (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
        if arn != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Self { partition, service, region, account, resource })
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A Secrets Manager reference as ECS understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValueArn {
    /// `arn:...:secret:NAME-AbCdEf` (or a partial ARN, exactly as given).
    pub secret_arn: String,
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

/// What a raw `valueFrom` ARN points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawTarget {
    Parameter { arn: String, name: String },
    Secret(SecretValueArn),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnError(pub String);

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a `valueFrom` ARN of an SSM parameter or a Secrets Manager secret.
pub fn parse_value_from(s: &str) -> Result<RawTarget, ArnError> {
    let arn = Arn::parse(s)
        .ok_or_else(|| ArnError(format!("`{s}` is not an ARN (arn:partition:service:region:account:resource)")))?;
    if arn.region.is_empty() || !is_account(arn.account) {
        return Err(ArnError(format!("`{s}` must name a region and a 12-digit account")));
    }
    match arn.service {
        "ssm" => {
            let rest = arn
                .resource
                .strip_prefix("parameter/")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ArnError(format!("`{s}` is not an SSM parameter ARN (…:parameter/NAME)")))?;
            if rest.starts_with('/') {
                return Err(ArnError(format!("`{s}` has a doubled slash after `parameter`")));
            }
            let name = if rest.contains('/') { format!("/{rest}") } else { rest.to_string() };
            Ok(RawTarget::Parameter { arn: s.to_string(), name })
        }
        "secretsmanager" => {
            let rest = arn
                .resource
                .strip_prefix("secret:")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ArnError(format!("`{s}` is not a Secrets Manager secret ARN (…:secret:NAME)")))?;
            let mut parts = rest.split(':');
            let name = parts.next().unwrap_or_default();
            let tail: Vec<&str> = parts.collect();
            if name.is_empty() {
                return Err(ArnError(format!("`{s}` has no secret name")));
            }
            if !tail.is_empty() && tail.len() != 3 {
                return Err(ArnError(format!(
                    "`{s}`: after the secret name ECS expects exactly `:json-key:version-stage:version-id` (each may be empty)"
                )));
            }
            let opt = |i: usize| tail.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
            let (stage, id) = (opt(1), opt(2));
            if stage.is_some() && id.is_some() {
                return Err(ArnError(format!("`{s}` pins both a version stage and a version id")));
            }
            let prefix_len = s.len() - rest.len();
            Ok(RawTarget::Secret(SecretValueArn {
                secret_arn: format!("{}{}", &s[..prefix_len], name),
                json_key: opt(0),
                version_stage: stage,
                version_id: id,
            }))
        }
        other => Err(ArnError(format!(
            "`{s}` is a `{other}` ARN; valueFrom takes an SSM parameter or a Secrets Manager secret"
        ))),
    }
}

impl SecretValueArn {
    /// The `valueFrom` string ECS expects.
    pub fn value_from(&self) -> String {
        if self.json_key.is_none() && self.version_stage.is_none() && self.version_id.is_none() {
            return self.secret_arn.clone();
        }
        format!(
            "{}:{}:{}:{}",
            self.secret_arn,
            self.json_key.as_deref().unwrap_or(""),
            self.version_stage.as_deref().unwrap_or(""),
            self.version_id.as_deref().unwrap_or("")
        )
    }
}

/// Whether `live`, a `valueFrom` (or `credentialsParameter`) as a task
/// definition holds it, names the same value as `rendered`, the full ARN
/// secretwire resolved. ECS takes a parameter's name for one in the task's
/// account and region, and a secret's name for repository credentials there
/// ([ContainerDefinition] `secrets.valueFrom`, `repositoryCredentials`), and
/// Secrets Manager takes a partial ARN (no `-AbCdEf`); a definition wired by
/// hand in one of those forms is kept as it is, not re-registered.
///
/// [ContainerDefinition]: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html
pub fn same_value_from(live: &str, rendered: &str, scope: &Scope, credentials: bool) -> bool {
    if live == rendered {
        return true;
    }
    let Ok(want) = parse_value_from(rendered) else { return false };
    // `NAME` for `…:secret:NAME-AbCdEf`: the name and Secrets Manager's 7-character suffix.
    let suffixed = |short: &str, full: &str| {
        full.len() == short.len() + 7 && full.starts_with(short) && full.as_bytes()[short.len()] == b'-'
    };
    match want {
        RawTarget::Parameter { arn, .. } => {
            !credentials && !live.starts_with("arn:") && scope.holds(&arn) && scope.parameter_arn(live) == arn
        }
        RawTarget::Secret(want) => {
            let want_name = want.secret_arn.rsplit_once(":secret:").map_or("", |(_, n)| n);
            if !live.starts_with("arn:") {
                let whole = want.json_key.is_none() && want.version_stage.is_none() && want.version_id.is_none();
                return credentials && whole && scope.holds(&want.secret_arn) && suffixed(live, want_name);
            }
            let Ok(RawTarget::Secret(have)) = parse_value_from(live) else { return false };
            let (Some((have_prefix, have_name)), Some((want_prefix, _))) =
                (have.secret_arn.rsplit_once(":secret:"), want.secret_arn.rsplit_once(":secret:"))
            else {
                return false;
            };
            have_prefix == want_prefix
                && (have_name == want_name || suffixed(have_name, want_name))
                && (have.json_key, have.version_stage, have.version_id)
                    == (want.json_key, want.version_stage, want.version_id)
        }
    }
}

/// Normalises `arn:...:task-definition/web:2`, `web:2` to `web:2`.
pub fn task_definition_short(s: &str) -> &str {
    s.rsplit_once(":task-definition/").map_or(s, |(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_or_partial_arn_in_a_task_definition_is_the_same_value_as_its_full_arn() {
        let scope = Scope::new("eu-west-1", "123456789012");
        let p = "arn:aws:ssm:eu-west-1:123456789012:parameter/web/db";
        let s = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web/api-AbCdEf";
        assert!(same_value_from(p, p, &scope, false));
        assert!(same_value_from("/web/db", p, &scope, false));
        assert!(same_value_from("db", "arn:aws:ssm:eu-west-1:123456789012:parameter/db", &scope, false));
        assert!(!same_value_from("/web/other", p, &scope, false));
        assert!(!same_value_from("/web/db", p, &Scope::new("us-east-1", "123456789012"), false));
        assert!(!same_value_from("/web/db", p, &scope, true), "credentials name a secret");
        let partial = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web/api";
        assert!(same_value_from(partial, s, &scope, false));
        assert!(same_value_from(&format!("{partial}:username::"), &format!("{s}:username::"), &scope, false));
        assert!(!same_value_from(&format!("{partial}:password::"), &format!("{s}:username::"), &scope, false));
        assert!(!same_value_from(partial, &format!("{s}:username::"), &scope, false));
        assert!(!same_value_from("arn:aws:secretsmanager:eu-west-1:123456789012:secret:web/ap", s, &scope, false));
        assert!(same_value_from("web/api", s, &scope, true));
        assert!(!same_value_from("web/api", s, &scope, false), "a bare name in `secrets` is a parameter's");
        assert!(!same_value_from("web/api", s, &Scope::new("eu-west-1", "210987654321"), true));
    }

    #[test]
    fn parameter_arns_have_no_doubled_slash() {
        let scope = Scope::new("eu-west-1", "123456789012");
        assert_eq!(scope.parameter_arn("/web/db"), "arn:aws:ssm:eu-west-1:123456789012:parameter/web/db");
        assert_eq!(scope.parameter_arn("plain"), "arn:aws:ssm:eu-west-1:123456789012:parameter/plain");
        assert_eq!(Scope::new("cn-north-1", "123456789012").partition, "aws-cn");
        assert_eq!(
            Scope::new("us-gov-west-1", "123456789012").role_arn("r"),
            "arn:aws-us-gov:iam::123456789012:role/r"
        );
    }

    #[test]
    fn role_paths() {
        let scope = Scope::new("us-east-1", "123456789012");
        assert_eq!(scope.role_arn_in("/", "r"), "arn:aws:iam::123456789012:role/r");
        let arn = scope.role_arn_in("/secretwire/web/", "r");
        assert_eq!(arn, "arn:aws:iam::123456789012:role/secretwire/web/r");
        assert_eq!(role_path_of(&arn), "/secretwire/web/");
        assert_eq!(role_path_of("arn:aws:iam::123456789012:role/r"), "/");
    }

    #[test]
    fn value_from_arns() {
        let cases: &[(&str, Result<RawTarget, ()>)] = &[
            (
                "arn:aws:ssm:us-east-1:123456789012:parameter/web/db",
                Ok(RawTarget::Parameter {
                    arn: "arn:aws:ssm:us-east-1:123456789012:parameter/web/db".into(),
                    name: "/web/db".into(),
                }),
            ),
            (
                "arn:aws:ssm:us-east-1:123456789012:parameter/plain",
                Ok(RawTarget::Parameter {
                    arn: "arn:aws:ssm:us-east-1:123456789012:parameter/plain".into(),
                    name: "plain".into(),
                }),
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-AbCdEf",
                Ok(RawTarget::Secret(SecretValueArn {
                    secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-AbCdEf".into(),
                    json_key: None,
                    version_stage: None,
                    version_id: None,
                })),
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf:username:AWSPREVIOUS:",
                Ok(RawTarget::Secret(SecretValueArn {
                    secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf".into(),
                    json_key: Some("username".into()),
                    version_stage: Some("AWSPREVIOUS".into()),
                    version_id: None,
                })),
            ),
            ("arn:aws:ssm:us-east-1:123456789012:parameter//web/db", Err(())),
            ("arn:aws:ssm:us-east-1:1234:parameter/x", Err(())),
            ("arn:aws:s3:::bucket", Err(())),
            ("arn:aws:secretsmanager:us-east-1:123456789012:secret:a:b", Err(())),
            ("arn:aws:secretsmanager:us-east-1:123456789012:secret:a::AWSCURRENT:v1", Err(())),
            ("/web/db", Err(())),
        ];
        for (input, want) in cases {
            let got = parse_value_from(input).map_err(|_| ());
            assert_eq!(&got, want, "{input}");
        }
    }

    #[test]
    fn secret_value_from_round_trips_and_pins() {
        let RawTarget::Secret(s) =
            parse_value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf:password::").unwrap()
        else {
            panic!("secret")
        };
        assert_eq!(s.value_from(), "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf:password::");
        assert_eq!((s.version_stage, s.version_id), (None, None));
        let RawTarget::Secret(p) =
            parse_value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf:password:AWSPREVIOUS:")
                .unwrap()
        else {
            panic!("secret")
        };
        assert_eq!(p.version_stage.as_deref(), Some("AWSPREVIOUS"));
    }

    #[test]
    fn task_definition_short_names() {
        assert_eq!(task_definition_short("arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"), "web:2");
        assert_eq!(task_definition_short("web:2"), "web:2");
    }
}

#[cfg(test)]
mod role_tests {
    use super::*;

    #[test]
    fn role_arns_and_caller_principals() {
        assert_eq!(role_arn_parts("arn:aws:iam::111111111111:role/ops/secretwire"), Some(("aws", "111111111111")));
        assert_eq!(role_arn_parts("arn:aws-cn:iam::111111111111:role/x"), Some(("aws-cn", "111111111111")));
        for bad in ["arn:aws:iam::111111111111:user/x", "arn:aws:iam::1111:role/x", "arn:aws:iam::111111111111:role/"] {
            assert_eq!(role_arn_parts(bad), None, "{bad}");
        }
        assert_eq!(
            caller_principal("arn:aws:sts::123456789012:assumed-role/secretwire/i-0abc"),
            "arn:aws:iam::123456789012:role/secretwire"
        );
        assert_eq!(caller_principal("arn:aws:iam::123456789012:user/ci"), "arn:aws:iam::123456789012:user/ci");
        assert_eq!(caller_principal("arn:aws:sts::123456789012:federated-user/bob"), "arn:aws:iam::123456789012:root");
    }
}
