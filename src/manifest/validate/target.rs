//! `kind: Target`: an account and region, and the role secretwire assumes
//! there. The constraints are STS AssumeRole's (RoleSessionName: 2 to 64 of
//! `[\w+=,.@-]`; ExternalId: 2 to 1224 of `[\w+=,.@:/-]`, AWS STS API
//! Reference, AssumeRole) and the IAM role ARN's shape.

use super::*;

pub(super) fn build_target(
    cx: &mut Ctx,
    name: Spanned<String>,
    t: schema::TargetSpec,
    origin: Origin,
) -> Option<TargetDef> {
    let n = &name.value;
    if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        cx.err(name.referenced, format!("Target name `{n}` must be 1 to 64 ASCII letters, digits, - or _"));
    }
    if t.account.value.len() != 12 || !t.account.value.bytes().all(|b| b.is_ascii_digit()) {
        cx.err(t.account.referenced, format!("account `{}` must be 12 digits (quote it in YAML)", t.account.value));
    }
    if !is_region(&t.region.value) {
        cx.err(t.region.referenced, format!("region `{}` is not an AWS region name such as us-east-1", t.region.value));
    }
    match crate::arn::role_arn_parts(&t.role_arn.value) {
        Some((partition, account)) => {
            if account != t.account.value {
                cx.err(
                    t.role_arn.referenced,
                    format!("roleArn is in account {account}, not in the Target's account {}", t.account.value),
                );
            }
            let want = crate::arn::partition_of(&t.region.value);
            if partition != want {
                cx.err(t.role_arn.referenced, format!("roleArn is in partition `{partition}`, the region in `{want}`"));
            }
        }
        None => cx.err(
            t.role_arn.referenced,
            format!("roleArn `{}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", t.role_arn.value),
        ),
    }
    let allowed = |s: &str, extra: &[u8]| s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
    if let Some(e) = &t.external_id
        && !((2..=1224).contains(&e.value.len()) && allowed(&e.value, b"_+=,.@:/-"))
    {
        cx.err(e.referenced, "externalId must be 2 to 1224 letters, digits or _+=,.@:/- (sts:ExternalId)");
    }
    if let Some(s) = &t.session_name
        && !((2..=64).contains(&s.value.len()) && allowed(&s.value, b"_+=,.@-"))
    {
        cx.err(s.referenced, "sessionName must be 2 to 64 letters, digits or _+=,.@- (RoleSessionName)");
    }
    Some(TargetDef {
        name: name.value,
        origin,
        account: t.account.value,
        region: t.region.value,
        role_arn: t.role_arn.value,
        external_id: t.external_id.map(|e| e.value),
        session_name: t.session_name.map(|s| s.value),
    })
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`.
fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}
