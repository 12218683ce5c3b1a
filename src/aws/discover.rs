//! The reads of `secretwire init`: the services of some clusters, the
//! revisions they run, their roles (with managed and inline policies) and
//! the metadata of the values those revisions name. DescribeServices by 10,
//! DescribeParameters by 50 names, one DescribeSecret per distinct secret;
//! never GetParameter(s) or GetSecretValue: a value is never read.

use std::collections::{BTreeMap, BTreeSet};

use super::observe::{bounded, describe_parameters, describe_services, names_filter, read_role};
use super::{Aws, AwsError, classify};
use crate::init::found::{Found, FoundParameter, FoundRole, FoundSecret, FoundService, wanted};
use crate::policy::decode_document;

/// Reads the services of `clusters` (all of them, or those named in `only`).
pub async fn discover(aws: &Aws, clusters: &[String], only: &[String], concurrency: usize) -> Result<Found, AwsError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in clusters {
        let names = if only.is_empty() { list_services(aws, c).await? } else { only.to_vec() };
        pairs.extend(names.into_iter().map(|n| (c.clone(), n)));
    }
    let described = describe_services(aws, pairs.iter().map(|(c, s)| (c.as_str(), s.as_str()))).await?;
    let revisions: BTreeSet<String> = described.values().map(|s| s.task_definition.clone()).collect();
    let read = bounded(revisions.into_iter().collect(), concurrency, |id| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&id).await.map(|td| (id, td)) }
    })
    .await;
    let mut defs = BTreeMap::new();
    for r in read {
        let (id, td) = r?;
        defs.insert(id, td);
    }
    let mut found = Found::new(aws.scope.clone());
    // In the order asked (a named service that does not exist is left out).
    for (cluster, name) in &pairs {
        let Some(s) = described.get(&(cluster.clone(), name.clone())) else { continue };
        found.services.push(FoundService {
            cluster: cluster.clone(),
            name: name.clone(),
            deployment_controller: s.deployment_controller.clone(),
            task_definition: s.task_definition.clone(),
            definition: defs.get(&s.task_definition).cloned().flatten(),
        });
    }
    let w = wanted(&found.services, &aws.scope);
    let roles = bounded(w.roles.into_iter().collect(), concurrency, |(name, task)| {
        let iam = aws.iam.clone();
        async move { found_role(&iam, &name, task).await }
    })
    .await;
    for r in roles {
        if let Some(role) = r? {
            found.roles.insert(role.name.clone(), role);
        }
    }
    let names: Vec<String> = w.parameters.into_iter().collect();
    for chunk in names.chunks(50) {
        for p in describe_parameters(aws, names_filter(chunk)?).await? {
            let f = FoundParameter { name: p.name.clone(), kind: p.kind, key_id: p.key_id, description: p.description };
            found.parameters.insert(p.name, f);
        }
    }
    let secrets = bounded(w.secrets.into_iter().collect(), concurrency, |id| {
        let sm = aws.secrets.clone();
        async move {
            match sm.describe_secret().secret_id(&id).send().await {
                Ok(d) => Ok(Some((
                    id,
                    FoundSecret {
                        arn: d.arn().unwrap_or_default().to_string(),
                        name: d.name().unwrap_or_default().to_string(),
                        kms_key_id: d.kms_key_id().map(str::to_string),
                        description: d.description().map(str::to_string),
                    },
                ))),
                Err(e) => {
                    let e = classify("DescribeSecret", e);
                    if e.is_code(&["ResourceNotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    for s in secrets {
        if let Some((id, f)) = s? {
            found.secrets.insert(id, f);
        }
    }
    Ok(found)
}

async fn list_services(aws: &Aws, cluster: &str) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .ecs
            .list_services()
            .cluster(cluster)
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("ListServices", e))?;
        names.extend(out.service_arns().iter().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// A role, its managed policies, and (task roles) every inline policy.
async fn found_role(iam: &aws_sdk_iam::Client, name: &str, task: bool) -> Result<Option<FoundRole>, AwsError> {
    let Some(role) = read_role(iam, name).await? else { return Ok(None) };
    let mut inline = Vec::new();
    if task {
        let mut marker = None;
        let mut policy_names = Vec::new();
        loop {
            let out = iam
                .list_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("ListRolePolicies", e))?;
            policy_names.extend(out.policy_names().iter().cloned());
            marker = out.marker().map(str::to_string);
            if !out.is_truncated() || marker.is_none() {
                break;
            }
        }
        for p in policy_names {
            let out = iam
                .get_role_policy()
                .role_name(name)
                .policy_name(&p)
                .send()
                .await
                .map_err(|e| classify("GetRolePolicy", e))?;
            let doc = decode_document(out.policy_document()).map_err(|m| AwsError::other("GetRolePolicy", m))?;
            inline.push((p, doc));
        }
    }
    Ok(Some(FoundRole {
        name: role.name,
        arn: role.arn,
        managed_policy_arns: role.managed_policy_arns.into_iter().collect(),
        inline_policies: inline,
    }))
}
