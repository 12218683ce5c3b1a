//! SSM parameters and Secrets Manager secrets: owned ones by tag filter,
//! the rest by name (DescribeParameters by 50, ListSecrets by 10 name
//! filters), and the last-change times the rotation path reads.

use super::*;

pub(super) fn observed_parameter(p: &aws_sdk_ssm::types::ParameterMetadata) -> Option<ObservedParameter> {
    Some(ObservedParameter {
        name: p.name()?.to_string(),
        kind: p.r#type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        key_id: p.key_id().map(str::to_string),
        description: p.description().map(str::to_string),
        tags: Tags::new(),
        last_modified: p.last_modified_date().map(|d| d.as_secs_f64()),
    })
}

/// The last-change time AWS reports now for each changed value (one
/// DescribeParameters per 50 names, one DescribeSecret per secret). Read only
/// when an event's whole-second time cannot tell whether a deployment came
/// after it; a value that cannot be read is left out, and its reader redeployed.
pub async fn last_change_times(
    aws: &Aws,
    values: &BTreeSet<ChangedValue>,
    concurrency: usize,
) -> BTreeMap<ChangedValue, f64> {
    let mut times = BTreeMap::new();
    let (mut names, mut ids) = (Vec::new(), Vec::new());
    // A parameter of another account's event is named by its ARN: read by
    // its name there (`/a/b` is `parameter/a/b`, a name without a slash
    // `parameter/n`), and answered under the ARN.
    let mut asked: BTreeMap<String, String> = BTreeMap::new();
    for v in values {
        match v {
            ChangedValue::Parameter(n) => match n.split_once(":parameter/") {
                Some((_, rest)) if n.starts_with("arn:") => {
                    let name = if rest.contains('/') { format!("/{rest}") } else { rest.to_string() };
                    asked.insert(name.clone(), n.clone());
                    names.push(name);
                }
                _ => names.push(n.clone()),
            },
            ChangedValue::Secret(id) => ids.push(id.clone()),
        }
    }
    for chunk in names.chunks(50) {
        match async { describe_parameters(aws, names_filter(chunk)?).await }.await {
            Ok(found) => times.extend(found.into_iter().filter_map(|p| {
                let name = asked.get(&p.name).cloned().unwrap_or(p.name);
                Some((ChangedValue::Parameter(name), p.last_modified?))
            })),
            Err(e) => tracing::debug!(error = %e, "Could not read parameter change times"),
        }
    }
    let described = bounded(ids, concurrency, |id| {
        let sm = aws.secrets.clone();
        async move {
            let out = sm.describe_secret().secret_id(&id).send().await.map_err(|e| classify("DescribeSecret", e));
            (id, out.map(|d| d.last_changed_date().map(|t| t.as_secs_f64())))
        }
    })
    .await;
    for (id, read) in described {
        match read {
            Ok(Some(t)) => {
                times.insert(ChangedValue::Secret(id), t);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "Could not read a secret's change time"),
        }
    }
    times
}

/// DescribeParameters' filter for these exact names (at most 50).
pub(crate) fn names_filter(names: &[String]) -> Result<ParameterStringFilter, AwsError> {
    ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .set_values(Some(names.to_vec()))
        .build()
        .map_err(|e| AwsError::other("DescribeParameters", e.to_string()))
}

/// Every page of DescribeParameters for one filter.
pub(crate) async fn describe_parameters(
    aws: &Aws,
    filter: ParameterStringFilter,
) -> Result<Vec<ObservedParameter>, AwsError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .ssm
            .describe_parameters()
            .parameter_filters(filter.clone())
            .max_results(50)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("DescribeParameters", e))?;
        all.extend(out.parameters().iter().filter_map(observed_parameter));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Every page of ListSecrets for these filters (ANDed).
pub(super) async fn list_secrets(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<ObservedSecret>, AwsError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .secrets
            .list_secrets()
            .set_filters(Some(filters.clone()))
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("ListSecrets", e))?;
        all.extend(out.secret_list().iter().filter_map(secret_from_list));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Parameters: first everything this controller owns (one tag-filtered query,
/// 50 a page), then by name only what is not owned (external references,
/// missing or unowned declarations).
pub(super) async fn parameters(
    aws: &Aws,
    desired: &Desired,
    w: &Wanted,
    controller_id: &str,
    concurrency: usize,
) -> Result<(BTreeMap<String, ObservedParameter>, Vec<ObservedParameter>), AwsError> {
    let mut found = BTreeMap::new();
    let owned_filter = ParameterStringFilter::builder()
        .key(format!("tag:{TAG_MANAGED_BY}"))
        .option("Equals")
        .values(controller_id)
        .build()
        .map_err(|e| AwsError::other("DescribeParameters", e.to_string()))?;
    let owned_listed = describe_parameters(aws, owned_filter).await?;
    // Which of ours say `Delete`, by one more tag-filtered listing (its pages
    // grow with the parameters tagged Delete, not with all; instead of one
    // ListTagsForResource per parameter). The rest are retained, tag or not.
    let mut deletable = BTreeSet::new();
    if !owned_listed.is_empty() {
        let filter = ParameterStringFilter::builder()
            .key(format!("tag:{TAG_DELETION_POLICY}"))
            .option("Equals")
            .values("Delete")
            .build()
            .map_err(|e| AwsError::other("DescribeParameters", e.to_string()))?;
        deletable.extend(describe_parameters(aws, filter).await?.into_iter().map(|p| p.name));
    }
    let mut undeclared = Vec::new();
    for mut p in owned_listed {
        // Ownership is what the filter proved; the source tag is ours by construction.
        p.tags.insert(TAG_MANAGED_BY.into(), controller_id.into());
        p.tags.insert(TAG_SOURCE.into(), format!("Parameter/{}", p.name));
        if deletable.contains(&p.name) {
            p.tags.insert(TAG_DELETION_POLICY.into(), "Delete".into());
        }
        if !desired.parameters.contains_key(&p.name)
            && !desired.invalid.contains(&ObjectKey::new(Kind::Parameter, &p.name))
        {
            undeclared.push(p.clone());
        }
        if w.parameters.contains(&p.name) {
            found.insert(p.name.clone(), p);
        }
    }
    let owned_found: BTreeSet<String> = found.keys().cloned().collect();
    let names: Vec<String> = w.parameters.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    for chunk in names.chunks(50) {
        for p in describe_parameters(aws, names_filter(chunk)?).await? {
            if chunk.contains(&p.name) {
                found.insert(p.name.clone(), p);
            }
        }
    }
    // Full tags only where they decide something: declared parameters that are
    // not ours (conflict or adoption), and ours whose manifest adds tags.
    let owned: Vec<String> = found
        .keys()
        .filter(|n| w.owned_parameters.contains(*n))
        .filter(|n| !owned_found.contains(*n) || desired.parameters.get(*n).is_some_and(|d| !d.tags.is_empty()))
        .cloned()
        .collect();
    let tag_results = bounded(owned, concurrency, |name| {
        let ssm = aws.ssm.clone();
        async move {
            let out = ssm
                .list_tags_for_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .send()
                .await
                .map_err(|e| classify("ListTagsForResource", e))?;
            let tags = tags_of(out.tag_list().iter().map(|t| (Some(t.key()), Some(t.value()))));
            Ok::<_, AwsError>((name, tags))
        }
    })
    .await;
    for r in tag_results {
        let (name, tags) = r?;
        if let Some(p) = found.get_mut(&name) {
            p.tags = tags;
        }
    }
    Ok((found, undeclared))
}

pub(super) fn secret_from_list(s: &aws_sdk_secretsmanager::types::SecretListEntry) -> Option<ObservedSecret> {
    Some(ObservedSecret {
        name: s.name()?.to_string(),
        arn: s.arn()?.to_string(),
        kms_key_id: s.kms_key_id().map(str::to_string),
        description: s.description().map(str::to_string),
        tags: tags_of(s.tags().iter().map(|t| (t.key(), t.value()))),
        last_changed: s.last_changed_date().map(|d| d.as_secs_f64()),
        rotation: rotation_of(s.rotation_enabled(), s.rotation_lambda_arn(), s.rotation_rules()),
        deleted: s.deleted_date().is_some(),
    })
}

fn rotation_of(
    enabled: Option<bool>,
    lambda: Option<&str>,
    rules: Option<&aws_sdk_secretsmanager::types::RotationRulesType>,
) -> ObservedRotation {
    ObservedRotation {
        enabled: enabled.unwrap_or(false),
        lambda_arn: lambda.map(str::to_string),
        schedule: rules.and_then(|r| r.schedule_expression()).map(str::to_string),
        after_days: rules.and_then(|r| r.automatically_after_days()),
        duration: rules.and_then(|r| r.duration()).map(str::to_string),
    }
}

/// Secrets: everything this controller owns in one tag-filtered listing (100 a
/// page, tags included), then by name what is not owned, then by ARN.
pub(super) async fn secrets(
    aws: &Aws,
    desired: &Desired,
    w: &Wanted,
    controller_id: &str,
    concurrency: usize,
) -> Result<(BTreeMap<String, ObservedSecret>, Vec<ObservedSecret>), AwsError> {
    let mut found = BTreeMap::new();
    let mut undeclared = Vec::new();
    let owned = vec![
        Filter::builder().key(FilterNameStringType::TagKey).values(TAG_MANAGED_BY).build(),
        Filter::builder().key(FilterNameStringType::TagValue).values(controller_id).build(),
    ];
    for s in list_secrets(aws, owned).await? {
        // The two filters match independently: check the pair.
        if s.tags.get(TAG_MANAGED_BY).map(String::as_str) != Some(controller_id) {
            continue;
        }
        if !desired.secrets.contains_key(&s.name) && !desired.invalid.contains(&ObjectKey::new(Kind::Secret, &s.name)) {
            undeclared.push(s.clone());
        }
        if w.secret_names.contains(&s.name) {
            found.insert(s.name.clone(), s);
        }
    }
    let names: Vec<String> = w.secret_names.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    for chunk in names.chunks(10) {
        // The name filter is a prefix match: keep exact names only.
        let filter = Filter::builder().key(FilterNameStringType::Name).set_values(Some(chunk.to_vec())).build();
        for s in list_secrets(aws, vec![filter]).await? {
            if chunk.contains(&s.name) {
                found.insert(s.name.clone(), s);
            }
        }
    }
    // "ListSecrets might not reflect changes from the last five minutes" (Secrets
    // Manager, ListSecrets reference): a secret created moments ago, by us or
    // anyone, is confirmed by name before a create is planned for it. Only names
    // the listings missed cost a call, so a settled account pays nothing.
    let unlisted: Vec<String> = w.secret_names.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    let confirmed = bounded(unlisted, concurrency, |name| {
        let sm = aws.secrets.clone();
        async move {
            match sm.describe_secret().secret_id(&name).send().await {
                // A name that ends like a suffix can resolve to another secret: keep exact names only.
                // One scheduled for deletion is kept as such (`deleted`): it can be restored.
                Ok(d) if d.name() == Some(name.as_str()) => Ok(Some(described(&d))),
                Ok(_) => Ok(None),
                Err(e) => {
                    let e = classify("DescribeSecret", e);
                    if e.is_code(&["ResourceNotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    for r in confirmed {
        if let Some(s) = r? {
            found.insert(s.name.clone(), s);
        }
    }
    let arns: Vec<String> = w.secret_arns.iter().cloned().collect();
    let described_arns = bounded(arns, concurrency, |arn| {
        let sm = aws.secrets.clone();
        async move {
            match sm.describe_secret().secret_id(&arn).send().await {
                Ok(d) => Ok(Some((arn, described(&d)))),
                Err(e) => {
                    let e = classify("DescribeSecret", e);
                    if e.is_code(&["ResourceNotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    for r in described_arns {
        if let Some((arn, s)) = r? {
            found.insert(arn, s);
        }
    }
    Ok((found, undeclared))
}

fn described(d: &aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput) -> ObservedSecret {
    ObservedSecret {
        name: d.name().unwrap_or_default().to_string(),
        arn: d.arn().unwrap_or_default().to_string(),
        kms_key_id: d.kms_key_id().map(str::to_string),
        description: d.description().map(str::to_string),
        tags: tags_of(d.tags().iter().map(|t| (t.key(), t.value()))),
        last_changed: d.last_changed_date().map(|d| d.as_secs_f64()),
        rotation: rotation_of(d.rotation_enabled(), d.rotation_lambda_arn(), d.rotation_rules()),
        deleted: d.deleted_date().is_some(),
    }
}
