//! ECS services (DescribeServices by 10, tags included) and task definition
//! revisions (cached by ARN: a revision never changes).

use super::*;

/// Service events kept per service: enough to explain a failed rollout.
const SERVICE_EVENTS_KEPT: usize = 10;

/// DescribeServices for `(cluster, service)` pairs, ten per call.
pub async fn describe_services<'a>(
    aws: &Aws,
    services: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<(String, String), ObservedService>, AwsError> {
    describe(aws, services, false).await
}

/// The same, with each service's newest events (to explain a failed rollout).
pub async fn describe_services_with_events<'a>(
    aws: &Aws,
    services: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<(String, String), ObservedService>, AwsError> {
    describe(aws, services, true).await
}

async fn describe<'a>(
    aws: &Aws,
    services: impl IntoIterator<Item = (&'a str, &'a str)>,
    with_events: bool,
) -> Result<BTreeMap<(String, String), ObservedService>, AwsError> {
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (cluster, service) in services {
        by_cluster.entry(cluster).or_default().push(service.to_string());
    }
    let mut out = BTreeMap::new();
    for (cluster, names) in by_cluster {
        for chunk in names.chunks(10) {
            let res = aws
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await;
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    let e = classify("DescribeServices", e);
                    // A missing cluster means missing services, which the plan reports.
                    if e.is_code(&["ClusterNotFoundException"]) {
                        continue;
                    }
                    return Err(e);
                }
            };
            for s in res.services() {
                let (Some(name), Some(status)) = (s.service_name(), s.status()) else { continue };
                if status == "INACTIVE" {
                    continue;
                }
                let deployments = s
                    .deployments()
                    .iter()
                    .map(|d| Deployment {
                        id: d.id().unwrap_or_default().to_string(),
                        status: d.status().unwrap_or_default().to_string(),
                        task_definition: d.task_definition().unwrap_or_default().to_string(),
                        created_at: d.created_at().map(|t| t.as_secs_f64()),
                        rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                        rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                        desired_count: d.desired_count(),
                        running_count: d.running_count(),
                        pending_count: d.pending_count(),
                        failed_tasks: d.failed_tasks(),
                    })
                    .collect();
                out.insert(
                    (cluster.to_string(), name.to_string()),
                    ObservedService {
                        arn: s.service_arn().unwrap_or_default().to_string(),
                        status: status.to_string(),
                        task_definition: s.task_definition().unwrap_or_default().to_string(),
                        deployment_controller: s
                            .deployment_controller()
                            .map(|c| c.r#type().as_str().to_string())
                            .unwrap_or_else(|| "ECS".into()),
                        deployments,
                        applied: s
                            .tags()
                            .iter()
                            .find(|t| t.key() == Some(TAG_APPLIED))
                            .and_then(|t| t.value().map(str::to_string)),
                        rollout: s
                            .tags()
                            .iter()
                            .find(|t| t.key() == Some(TAG_ROLLOUT))
                            .and_then(|t| t.value().map(str::to_string)),
                        events: s
                            .events()
                            .iter()
                            .take(if with_events { SERVICE_EVENTS_KEPT } else { 0 })
                            .map(|e| {
                                (
                                    e.created_at().map(|t| t.as_secs_f64()).unwrap_or_default(),
                                    e.message().unwrap_or_default().to_string(),
                                )
                            })
                            .collect(),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Revisions services run, read only when a plan needs them (cached by ARN:
/// a revision never changes).
pub async fn running_revisions(
    aws: &Aws,
    ids: &BTreeSet<String>,
    o: &mut Observed,
    cache: &RevisionCache,
    concurrency: usize,
) -> Result<(), AwsError> {
    let mut missing = Vec::new();
    for id in ids {
        match find_cached(cache, id) {
            Some(v) => {
                o.revisions.insert(id.clone(), v);
            }
            None => missing.push(id.clone()),
        }
    }
    let fetched = bounded(missing, concurrency, |id| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&id).await.map(|td| (id, td)) }
    })
    .await;
    for r in fetched {
        let (id, td) = r?;
        match td {
            Some(td) => {
                o.revisions.insert(id, remember(cache, td));
            }
            None => {
                o.revisions_missing.insert(id);
            }
        }
    }
    Ok(())
}

/// The newest ACTIVE revision of each family, read only when a plan needs it.
pub async fn newest_revisions(
    aws: &Aws,
    families: &BTreeSet<String>,
    o: &mut Observed,
    cache: &RevisionCache,
    concurrency: usize,
) -> Result<(), AwsError> {
    let newest = bounded(families.iter().cloned().collect(), concurrency, |family| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&family).await.map(|td| (family, td)) }
    })
    .await;
    for r in newest {
        let (family, td) = r?;
        o.newest_revisions.insert(family, td.map(|td| remember(cache, td)));
    }
    Ok(())
}

pub(super) fn remember(cache: &RevisionCache, td: Value) -> Arc<Revision> {
    let rev = Arc::new(Revision::from(&td));
    if let Some(arn) = td["taskDefinitionArn"].as_str() {
        cache.lock().unwrap_or_else(|e| e.into_inner()).insert(arn.to_string(), rev.clone());
    }
    rev
}

/// Looks a revision up by ARN or by `family:revision` (emulators echo the short form).
pub(super) fn find_cached(cache: &RevisionCache, id: &str) -> Option<Arc<Revision>> {
    let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(id) {
        return Some(v.clone());
    }
    let short = crate::arn::task_definition_short(id);
    cache.iter().find(|(arn, _)| crate::arn::task_definition_short(arn) == short).map(|(_, v)| v.clone())
}
