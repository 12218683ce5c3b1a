//! What a tenant's task role statements may grant. By default no `*` or
//! `service:*` action, nothing of `iam:`, `sts:` or `organizations:`, of
//! `kms:` only `kms:Decrypt`, and `Resource: "*"` only with actions whose
//! access level in the Service Authorization Reference ([`crate::sar`]) is
//! Read or List. An `allowStatements` entry whose action and resource
//! patterns cover an (action, resource) pair opens exactly that pair. A
//! `Deny` only narrows, so it is never refused.

use super::*;
use crate::manifest::tenant::Tenant;

pub(super) fn check(cx: &mut Ctx, tenant: &Tenant, st: &schema::StatementSpec) {
    if st.effect.value != "Allow" {
        return;
    }
    for a in &st.actions {
        let refused = st.resources.iter().find_map(|r| {
            let opened = tenant.allow_statements.iter().any(|al| {
                al.actions.iter().any(|g| g.covers(&a.value, true))
                    && al.resources.iter().any(|g| g.covers(&r.value, false))
            });
            if opened { None } else { default_rule(&a.value, &r.value).err() }
        });
        if let Some(why) = refused {
            cx.refuse(
                a.referenced,
                &tenant.name,
                "statements",
                format!("{why} (a platform opens it with allowStatements)"),
            );
        }
    }
}

/// Read-level actions that read secret values: on `*` they read every
/// secret or parameter of the account, which `values` exists to prevent.
const VALUE_READS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:BatchGetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
];

/// The default rules for one (action, resource) pair.
fn default_rule(action: &str, resource: &str) -> Result<(), String> {
    let Some((service, name)) = action.split_once(':') else { return Ok(()) };
    let service = service.to_ascii_lowercase();
    if name.bytes().all(|b| b == b'*') {
        return Err(format!("`{action}` grants every action of `{service}`; name the actions"));
    }
    if matches!(service.as_str(), "iam" | "sts" | "organizations") {
        return Err(format!("`{action}` is an `{service}:` action, which a tenant's task role never gets"));
    }
    if service == "kms" && !action.eq_ignore_ascii_case("kms:Decrypt") {
        return Err(format!("`{action}`: of `kms:` a tenant's task role may get only `kms:Decrypt`"));
    }
    if resource == "*" {
        let known = crate::sar::expand(action);
        if known.is_empty() {
            return Err(format!(
                "`{action}` with Resource `*`: not in the Service Authorization Reference, so it may write; name its resources"
            ));
        }
        if let Some((r, _)) = known.iter().find(|(a, _)| VALUE_READS.iter().any(|v| v.eq_ignore_ascii_case(a))) {
            return Err(format!(
                "`{action}` with Resource `*`: `{r}` reads every value of the account; reference values \
                 under `containers` (the execution role reads them) or name the resources"
            ));
        }
        if let Some((w, level)) = known.iter().find(|(_, l)| l.writes()) {
            return Err(format!(
                "`{action}` with Resource `*`: `{w}` is a {} action; name the resources it may change",
                level.as_str()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_rule;

    #[test]
    fn the_default_rules_refuse_wildcards_identity_and_writes_on_everything() {
        for (action, resource) in [
            ("s3:*", "arn:aws:s3:::web-assets/*"),
            ("iam:PassRole", "arn:aws:iam::123456789012:role/x"),
            ("sts:AssumeRole", "*"),
            ("organizations:ListAccounts", "*"),
            ("kms:Encrypt", "arn:aws:kms:us-east-1:123456789012:key/k"),
            ("secretsmanager:GetSecretValue", "*"),
            ("s3:PutObject", "*"),
            ("sqs:TagQueue", "*"),
            ("made:Up", "*"),
            ("kms:Decrypt", "*"),
            ("ssm:GetParam*", "*"),
            ("secretsmanager:BatchGetSecretValue", "*"),
        ] {
            let e = default_rule(action, resource);
            assert!(e.is_err(), "{action} on {resource} must be refused");
        }
        for (action, resource) in [
            ("s3:GetObject", "arn:aws:s3:::web-assets/*"),
            ("s3:PutObject", "arn:aws:s3:::web-assets/*"),
            ("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k"),
            ("kms:decrypt", "arn:aws:kms:us-east-1:123456789012:key/k"),
            ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/*"),
            ("dynamodb:Query", "*"),
            ("s3:ListAllMyBuckets", "*"),
            ("cloudwatch:Describe*", "*"),
            // Every s3:Get* action is Read in the reference.
            ("s3:Get*", "*"),
        ] {
            assert_eq!(default_rule(action, resource), Ok(()), "{action} on {resource}");
        }
    }
}
