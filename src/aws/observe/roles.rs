//! IAM roles: three reads per role, or one paginated
//! GetAccountAuthorizationDetails for many; policy documents decoded.

use super::*;

/// Above this many roles, one paginated GetAccountAuthorizationDetails is
/// cheaper than three calls per role.
pub(super) const ROLES_BY_AUTHORIZATION_DETAILS: usize = 10;

pub(super) async fn roles(
    aws: &Aws,
    wanted: &BTreeSet<String>,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<BTreeMap<String, Arc<ObservedRole>>, AwsError> {
    let (mut out, stale) = slow.split(&slow.roles, wanted.iter().cloned());
    if stale.is_empty() {
        return Ok(out);
    }
    let read = if stale.len() > ROLES_BY_AUTHORIZATION_DETAILS {
        roles_by_authorization_details(aws, &stale).await?
    } else {
        let results = bounded(stale.iter().cloned().collect(), concurrency, |name| {
            let iam = aws.iam.clone();
            async move { read_role(&iam, &name).await }
        })
        .await;
        let mut read = BTreeMap::new();
        for r in results {
            if let Some(role) = r? {
                read.insert(role.name.clone(), Arc::new(role));
            }
        }
        read
    };
    // Shared with the cache, not copied: a role's documents are the bulk of it.
    let mut read = read;
    SlowCache::store(&slow.roles, &stale, &mut read);
    out.extend(read);
    Ok(out)
}

/// The declared roles and every role this controller owns: when the owned
/// ones must be listed (one paginated GetAccountAuthorizationDetails), the
/// declared ones are read by the same scan.
pub(super) async fn roles_and_owned(
    aws: &Aws,
    wanted: &BTreeSet<String>,
    controller_id: &str,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<(BTreeMap<String, Arc<ObservedRole>>, Vec<Arc<ObservedRole>>), AwsError> {
    let (mut out, stale) = slow.split(&slow.roles, wanted.iter().cloned());
    let owned_fresh = slow
        .owned_roles
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|(_, at)| at.elapsed() < slow.reverify);
    // The owned roles are listed by the scan anyway: the declared ones come
    // with it at no extra call (three calls a role would be pure overhead).
    if owned_fresh || stale.is_empty() {
        return tokio::try_join!(roles(aws, wanted, slow, concurrency), owned_roles(aws, controller_id, slow));
    }
    let (mut read, owned) = scan(aws, &stale, Some(controller_id)).await?;
    SlowCache::store(&slow.roles, &stale, &mut read);
    out.extend(read);
    *slow.owned_roles.lock().unwrap_or_else(|e| e.into_inner()) = Some((owned.clone(), std::time::Instant::now()));
    Ok((out, owned))
}

pub(super) async fn roles_by_authorization_details(
    aws: &Aws,
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, Arc<ObservedRole>>, AwsError> {
    Ok(scan(aws, wanted, None).await?.0)
}

/// One paginated GetAccountAuthorizationDetails: the `wanted` roles, and
/// (with a controller id) every role that controller owns.
async fn scan(
    aws: &Aws,
    wanted: &BTreeSet<String>,
    controller_id: Option<&str>,
) -> Result<(BTreeMap<String, Arc<ObservedRole>>, Vec<Arc<ObservedRole>>), AwsError> {
    let mut owned = Vec::new();
    let mut out = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = aws
            .iam
            .get_account_authorization_details()
            .filter(aws_sdk_iam::types::EntityType::Role)
            .max_items(1000)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| classify("GetAccountAuthorizationDetails", e))?;
        for r in page.role_detail_list() {
            let Some(name) = r.role_name() else { continue };
            let ours =
                controller_id.is_some_and(|id| r.tags().iter().any(|t| t.key() == TAG_MANAGED_BY && t.value() == id));
            if !wanted.contains(name) && !ours {
                continue;
            }
            // One allocation, shared by both lists and the cache: a role's documents are the bulk of it.
            let role = Arc::new(role_detail(r)?);
            if ours {
                owned.push(role.clone());
            }
            if wanted.contains(name) {
                out.insert(name.to_string(), role);
            }
        }
        marker = page.marker().map(str::to_string);
        if !page.is_truncated() || marker.is_none() {
            break;
        }
    }
    Ok((out, owned))
}

fn role_detail(r: &aws_sdk_iam::types::RoleDetail) -> Result<ObservedRole, AwsError> {
    let decode = |d: &str| decode_document(d).map_err(|m| AwsError::other("GetAccountAuthorizationDetails", m));
    let trust = r.assume_role_policy_document().map(decode).transpose()?.unwrap_or(Value::Null);
    let inline_policy = r
        .role_policy_list()
        .iter()
        .find(|p| p.policy_name() == Some(INLINE_POLICY_NAME))
        .and_then(|p| p.policy_document())
        .map(decode)
        .transpose()?
        .map(|d| (&d).into());
    Ok(ObservedRole {
        name: r.role_name().unwrap_or_default().to_string(),
        arn: r.arn().unwrap_or_default().to_string(),
        trust: (&trust).into(),
        inline_policy,
        managed_policy_arns: r
            .attached_managed_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect(),
        tags: tags_of(r.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
        permissions_boundary: r.permissions_boundary().and_then(|b| b.permissions_boundary_arn()).map(str::to_string),
    })
}

/// Every role this controller owns (tag `managed-by` = its id), declared or
/// not: one paginated GetAccountAuthorizationDetails, which carries each
/// role's tags (ListRoles does not). `run` reads it every `reverify`.
pub(super) async fn owned_roles(
    aws: &Aws,
    controller_id: &str,
    slow: &SlowCache,
) -> Result<Vec<Arc<ObservedRole>>, AwsError> {
    {
        let cached = slow.owned_roles.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((roles, at)) = cached.as_ref()
            && at.elapsed() < slow.reverify
        {
            return Ok(roles.clone());
        }
    }
    let (_, out) = scan(aws, &BTreeSet::new(), Some(controller_id)).await?;
    *slow.owned_roles.lock().unwrap_or_else(|e| e.into_inner()) = Some((out.clone(), std::time::Instant::now()));
    Ok(out)
}

/// GetRole, the `secretwire` inline policy, and attached managed policies.
/// One role read now (GetRole, GetRolePolicy, ListAttachedRolePolicies).
pub async fn role(aws: &Aws, name: &str) -> Result<Option<ObservedRole>, AwsError> {
    read_role(&aws.iam, name).await
}

pub async fn read_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<ObservedRole>, AwsError> {
    let role = match iam.get_role().role_name(name).send().await {
        Ok(r) => r,
        Err(e) => {
            let e = classify("GetRole", e);
            return if e.is_code(&["NoSuchEntity"]) { Ok(None) } else { Err(e) };
        }
    };
    let Some(role) = role.role() else { return Ok(None) };
    let trust = role
        .assume_role_policy_document()
        .map(decode_document)
        .transpose()
        .map_err(|m| AwsError::other("GetRole", m))?
        .unwrap_or(Value::Null);
    let trust = (&trust).into();
    let inline_policy = match iam.get_role_policy().role_name(name).policy_name(INLINE_POLICY_NAME).send().await {
        Ok(p) => Some((&decode_document(p.policy_document()).map_err(|m| AwsError::other("GetRolePolicy", m))?).into()),
        Err(e) => {
            let e = classify("GetRolePolicy", e);
            if e.is_code(&["NoSuchEntity"]) {
                None
            } else {
                return Err(e);
            }
        }
    };
    let mut managed = BTreeSet::new();
    let mut marker = None;
    loop {
        let out = iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| classify("ListAttachedRolePolicies", e))?;
        managed.extend(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
        marker = out.marker().map(str::to_string);
        if !out.is_truncated() || marker.is_none() {
            break;
        }
    }
    Ok(Some(ObservedRole {
        name: name.to_string(),
        arn: role.arn().to_string(),
        trust,
        inline_policy,
        managed_policy_arns: managed,
        tags: tags_of(role.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
        permissions_boundary: role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
    }))
}
