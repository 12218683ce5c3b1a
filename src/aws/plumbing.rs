//! The event plumbing `run` owns: an SQS queue `secretwire-<id>-events` with a
//! dead-letter queue, a queue policy that lets only its own EventBridge rules
//! send, and the two rules on the default bus. Idempotent: read first, write
//! only what differs.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tracing::info;

use super::{Aws, AwsError, classify};
use crate::observed::{TAG_MANAGED_BY, TAG_SOURCE};

pub fn rule_patterns() -> [(&'static str, Value); 3] {
    [
        (
            "secretsmanager",
            json!({"source": ["aws.secretsmanager"],
                   "detail-type": ["Secret Label Updated", "AWS Service Event via CloudTrail", "AWS API Call via CloudTrail"]}),
        ),
        ("ssm", json!({"source": ["aws.ssm"], "detail-type": ["Parameter Store Change"]})),
        // Where the deployments secretwire starts stand (rollouts follow them).
        ("deployments", json!({"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change"]})),
    ]
}

pub fn queue_name(controller_id: &str) -> String {
    format!("secretwire-{controller_id}-events")
}

/// Ensures the queue, dead-letter queue, policy and rules; returns the queue
/// URL and ARN. `forwarders`: the roles Targets in this region send their
/// events as (`forward`), which the queue policy allows besides the rules.
pub async fn ensure(
    aws: &Aws,
    controller_id: &str,
    max_receives: u32,
    forwarders: &[String],
) -> Result<(String, String), AwsError> {
    let name = queue_name(controller_id);
    let tags: HashMap<String, String> = [
        (TAG_MANAGED_BY.to_string(), controller_id.to_string()),
        (TAG_SOURCE.to_string(), "Controller/events".to_string()),
    ]
    .into();
    let dlq_url =
        queue(aws, &format!("{name}-dlq"), &tags, &[(QueueAttributeName::MessageRetentionPeriod, "1209600")]).await?;
    let dlq_arn = queue_arn(aws, &dlq_url).await?;
    let url = queue(
        aws,
        &name,
        &tags,
        &[
            (QueueAttributeName::MessageRetentionPeriod, "345600"),
            (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20"),
        ],
    )
    .await?;
    let arn = queue_arn(aws, &url).await?;

    // The rules first (their ARNs go into the queue policies), then the queue
    // policies, and only then the targets: an event delivered to a queue whose
    // policy does not yet allow it is dropped by EventBridge.
    let mut rule_arns = Vec::new();
    for (suffix, pattern) in rule_patterns() {
        let rule = format!("secretwire-{controller_id}-{suffix}");
        rule_arns.push((rule.clone(), ensure_rule(aws, &rule, &pattern, &tags).await?));
    }
    let sources: Vec<&str> = rule_arns.iter().map(|(_, a)| a.as_str()).collect();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
    ensure_queue_policy(aws, &url, &arn, &sources, forwarders, Some((&redrive, max_receives))).await?;
    // Events EventBridge could not deliver (after its retries) go to the DLQ, so
    // none is dropped without trace; the DLQ lets the same rules send.
    ensure_queue_policy(aws, &dlq_url, &dlq_arn, &sources, &[], None).await?;
    for (rule, _) in &rule_arns {
        let targets =
            aws.events.list_targets_by_rule().rule(rule).send().await.map_err(|e| classify("ListTargetsByRule", e))?;
        let current = targets
            .targets()
            .iter()
            .any(|t| t.arn() == arn && t.dead_letter_config().and_then(|d| d.arn()) == Some(dlq_arn.as_str()));
        if !current {
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id("secretwire-queue")
                .arn(&arn)
                .dead_letter_config(aws_sdk_eventbridge::types::DeadLetterConfig::builder().arn(&dlq_arn).build())
                .build()
                .map_err(|e| AwsError::other("PutTargets", e.to_string()))?;
            let out = aws
                .events
                .put_targets()
                .rule(rule)
                .targets(target)
                .send()
                .await
                .map_err(|e| classify("PutTargets", e))?;
            if out.failed_entry_count() > 0 {
                let why = out.failed_entries().first().and_then(|f| f.error_message()).unwrap_or("no reason given");
                return Err(AwsError::other("PutTargets", format!("target of {rule} not put: {why}")));
            }
            info!(rule = %rule, queue = %arn, dead_letter_queue = %dlq_arn, "Pointed rule at the queue");
        }
    }
    Ok((url, arn))
}

async fn queue(
    aws: &Aws,
    name: &str,
    tags: &HashMap<String, String>,
    attrs: &[(QueueAttributeName, &str)],
) -> Result<String, AwsError> {
    match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => return Ok(out.queue_url().unwrap_or_default().to_string()),
        Err(e) => {
            let e = classify("GetQueueUrl", e);
            if !e.is_code(&["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"]) {
                return Err(e);
            }
        }
    }
    let mut req = aws.sqs.create_queue().queue_name(name).set_tags(Some(tags.clone()));
    for (k, v) in attrs {
        req = req.attributes(k.clone(), *v);
    }
    let out = req.send().await.map_err(|e| classify("CreateQueue", e))?;
    info!(queue = %name, "Created queue");
    Ok(out.queue_url().unwrap_or_default().to_string())
}

async fn queue_arn(aws: &Aws, url: &str) -> Result<String, AwsError> {
    let out = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| classify("GetQueueAttributes", e))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| AwsError::other("GetQueueAttributes", "no QueueArn in the answer"))
}

/// The rule with this pattern; returns its ARN.
pub(super) async fn ensure_rule(
    aws: &Aws,
    rule: &str,
    pattern: &Value,
    tags: &HashMap<String, String>,
) -> Result<String, AwsError> {
    match aws.events.describe_rule().name(rule).send().await {
        Ok(r) if r.event_pattern().and_then(|p| serde_json::from_str::<Value>(p).ok()).as_ref() == Some(pattern) => {
            return Ok(r.arn().unwrap_or_default().to_string());
        }
        Ok(_) => {}
        Err(e) => {
            let e = classify("DescribeRule", e);
            if !e.is_code(&["ResourceNotFoundException"]) {
                return Err(e);
            }
        }
    }
    let out = aws
        .events
        .put_rule()
        .name(rule)
        .event_pattern(pattern.to_string())
        .description("secretwire: value changes that need an ECS redeploy")
        .set_tags(Some(
            tags.iter()
                .filter_map(|(k, v)| aws_sdk_eventbridge::types::Tag::builder().key(k).value(v).build().ok())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| classify("PutRule", e))?;
    info!(rule = %rule, "Put EventBridge rule");
    Ok(out.rule_arn().unwrap_or_default().to_string())
}

/// A queue policy that lets only these rules send (`aws:SourceArn`), and the
/// redrive policy when given; written only when what AWS has differs.
async fn ensure_queue_policy(
    aws: &Aws,
    url: &str,
    arn: &str,
    sources: &[&str],
    forwarders: &[String],
    redrive: Option<(&Value, u32)>,
) -> Result<(), AwsError> {
    let mut policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlySecretwireRules",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": sources}}
        }]
    });
    if !forwarders.is_empty() {
        // A Target's rules send as their execution role (cross-account delivery).
        policy["Statement"].as_array_mut().into_iter().for_each(|st| {
            st.push(json!({
                "Sid": "SecretwireTargets",
                "Effect": "Allow",
                "Principal": {"AWS": forwarders},
                "Action": "sqs:SendMessage",
                "Resource": arn
            }))
        });
    }
    let have = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::Policy)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| classify("GetQueueAttributes", e))?;
    let attrs = have.attributes();
    let parsed =
        |k: QueueAttributeName| attrs.and_then(|a| a.get(&k)).and_then(|s| serde_json::from_str::<Value>(s).ok());
    let same_policy = parsed(QueueAttributeName::Policy).is_some_and(|p| crate::policy::same_document(&p, &policy));
    let same_redrive = redrive.is_none_or(|(want, max)| {
        parsed(QueueAttributeName::RedrivePolicy).is_some_and(|r| {
            r["deadLetterTargetArn"] == want["deadLetterTargetArn"]
                && r["maxReceiveCount"].to_string().trim_matches('"') == max.to_string()
        })
    });
    if same_policy && same_redrive {
        return Ok(());
    }
    let mut req =
        aws.sqs.set_queue_attributes().queue_url(url).attributes(QueueAttributeName::Policy, policy.to_string());
    if let Some((r, _)) = redrive {
        req = req.attributes(QueueAttributeName::RedrivePolicy, r.to_string());
    }
    req.send().await.map_err(|e| classify("SetQueueAttributes", e))?;
    info!(queue = %url, "Set queue policy");
    Ok(())
}
