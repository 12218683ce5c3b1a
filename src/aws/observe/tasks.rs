//! The stopped tasks of one deployment, to explain a failed rollout: ListTasks
//! by the deployment's id (ECS sets a service task's `startedBy` to the id of
//! the deployment that started it), then DescribeTasks in batches of 100
//! (its limit).

use super::*;
use crate::observed::StoppedTask;

/// At most this many task ARNs are read: the first reasons are the ones that matter.
const TASKS_READ: usize = 100;

pub async fn stopped_tasks(aws: &Aws, cluster: &str, deployment_id: &str) -> Result<Vec<StoppedTask>, AwsError> {
    let listed = aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .started_by(deployment_id)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .max_results(TASKS_READ as i32)
        .send()
        .await
        .map_err(|e| classify("ListTasks", e))?;
    let arns: Vec<String> = listed.task_arns().iter().take(TASKS_READ).cloned().collect();
    let mut out = Vec::new();
    for chunk in arns.chunks(100) {
        let res = aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", e))?;
        for t in res.tasks() {
            out.push(StoppedTask {
                arn: t.task_arn().unwrap_or_default().to_string(),
                stopped_at: t.stopped_at().map(|d| d.as_secs_f64()),
                stop_code: t.stop_code().map(|c| c.as_str().to_string()),
                stopped_reason: t.stopped_reason().unwrap_or_default().to_string(),
                containers: t
                    .containers()
                    .iter()
                    .filter_map(|c| Some((c.name()?.to_string(), c.reason()?.to_string())))
                    .collect(),
            });
        }
    }
    // Oldest first: the first failure is the cause, later ones often repeat it.
    out.sort_by(|a, b| a.stopped_at.unwrap_or(f64::MAX).total_cmp(&b.stopped_at.unwrap_or(f64::MAX)));
    Ok(out)
}
