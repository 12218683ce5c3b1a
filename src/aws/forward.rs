//! Forwarding a Target's value and deployment events to the controller's
//! queue. EventBridge sends to an SQS queue of another account in the same
//! region directly, with an execution role in the sending account that the
//! queue's policy allows (EventBridge User Guide, "Sending events to an AWS
//! service in another account": "EventBridge supports sending events to
//! cross-account targets in the same Region"); another region is reached
//! through an event bus there (EventBridge User Guide, "Sending and
//! receiving events between AWS Regions"), here the controller's default
//! bus, whose own rules then send to the queue. Idempotent: read first,
//! write only what differs.

use serde_json::{Value, json};
use tracing::info;

use super::plumbing::{ensure_rule, rule_patterns};
use super::{Aws, AwsError, classify};
use crate::arn::Scope;
use crate::observed::TAG_MANAGED_BY;

/// Where a Target's rules send, and as which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    pub target: String,
    /// The role EventBridge sends as, in the Target's account.
    pub role_arn: String,
    /// The Target is in the controller's region: its rules send to the queue
    /// itself; else to the controller's default bus.
    pub to_queue: bool,
    pub account: String,
}

/// `secretwire-<id>-fwd-<target>`, cut to IAM's 64 characters.
pub fn role_name(controller_id: &str, target: &str) -> String {
    let mut n = format!("secretwire-{controller_id}-fwd-{target}");
    n.truncate(64);
    n
}

/// The controller's default bus.
pub fn home_bus_arn(home: &Scope) -> String {
    format!("arn:{}:events:{}:{}:event-bus/default", home.partition, home.region, home.account)
}

/// What the forwarding role may do: send to the queue, or put events on the
/// controller's bus, and nothing else.
pub fn role_policy(home: &Scope, queue_arn: &str, to_queue: bool) -> Value {
    let statement = if to_queue {
        json!({"Sid": "SendToController", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn})
    } else {
        json!({"Sid": "PutOnControllerBus", "Effect": "Allow", "Action": "events:PutEvents", "Resource": home_bus_arn(home)})
    };
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// Only EventBridge, on behalf of this account's rules, may assume it.
pub fn role_trust(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// The role and the rules in the Target's account (`target`'s clients) that
/// send its events to the controller (`home`, queue `queue_arn`).
pub async fn ensure(target: &Aws, home: &Scope, queue_arn: &str, owner: &str) -> Result<Forwarding, AwsError> {
    let name = target.target.clone().unwrap_or_default();
    let controller_id = owner.split('/').next().unwrap_or(owner);
    let role = role_name(controller_id, &name);
    let to_queue = target.scope.region == home.region;
    let role_arn = ensure_role(target, &role, owner, &role_policy(home, queue_arn, to_queue)).await?;
    let dest = if to_queue { queue_arn.to_string() } else { home_bus_arn(home) };
    let tags = [(TAG_MANAGED_BY.to_string(), owner.to_string())].into();
    for (suffix, pattern) in rule_patterns() {
        let rule = format!("secretwire-{controller_id}-{suffix}");
        ensure_rule(target, &rule, &pattern, &tags).await?;
        let have = target
            .events
            .list_targets_by_rule()
            .rule(&rule)
            .send()
            .await
            .map_err(|e| classify("ListTargetsByRule", e))?;
        if have.targets().iter().any(|t| t.arn() == dest && t.role_arn() == Some(role_arn.as_str())) {
            continue;
        }
        let t = aws_sdk_eventbridge::types::Target::builder()
            .id("secretwire-controller")
            .arn(&dest)
            .role_arn(&role_arn)
            .build()
            .map_err(|e| AwsError::other("PutTargets", e.to_string()))?;
        let out =
            target.events.put_targets().rule(&rule).targets(t).send().await.map_err(|e| classify("PutTargets", e))?;
        if out.failed_entry_count() > 0 {
            let why = out.failed_entries().first().and_then(|f| f.error_message()).unwrap_or("no reason given");
            return Err(AwsError::other("PutTargets", format!("target of {rule} not put: {why}")));
        }
        info!(target = %name, rule = %rule, to = %dest, "Forwarding the Target's events to the controller");
    }
    Ok(Forwarding { target: name, role_arn, to_queue, account: target.scope.account.clone() })
}

async fn ensure_role(aws: &Aws, role: &str, owner: &str, policy: &Value) -> Result<String, AwsError> {
    let arn = match aws.iam.get_role().role_name(role).send().await {
        Ok(out) => {
            let r = out.role().ok_or_else(|| AwsError::other("GetRole", "no role in the answer"))?;
            let ours = r.tags().iter().any(|t| t.key() == TAG_MANAGED_BY && t.value() == owner);
            if !ours {
                return Err(AwsError::other(
                    "GetRole",
                    format!("role {role} exists without {TAG_MANAGED_BY}={owner}; not adopted for event forwarding"),
                ));
            }
            r.arn().to_string()
        }
        Err(e) => {
            let e = classify("GetRole", e);
            if !e.is_code(&["NoSuchEntity"]) {
                return Err(e);
            }
            let tag = aws_sdk_iam::types::Tag::builder()
                .key(TAG_MANAGED_BY)
                .value(owner)
                .build()
                .map_err(|e| AwsError::other("CreateRole", e.to_string()))?;
            let out = aws
                .iam
                .create_role()
                .role_name(role)
                .assume_role_policy_document(role_trust(&aws.scope.account).to_string())
                .description("secretwire: EventBridge forwards this account's value events to the controller")
                .tags(tag)
                .send()
                .await
                .map_err(|e| classify("CreateRole", e))?;
            info!(role = %role, "Created event forwarding role");
            out.role().map(|r| r.arn().to_string()).unwrap_or_default()
        }
    };
    let have = aws.iam.get_role_policy().role_name(role).policy_name(crate::policy::INLINE_POLICY_NAME).send().await;
    let same = have
        .ok()
        .and_then(|p| crate::policy::decode_document(p.policy_document()).ok())
        .is_some_and(|doc| crate::policy::same_document(&doc, policy));
    if !same {
        aws.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(crate::policy::INLINE_POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|e| classify("PutRolePolicy", e))?;
    }
    Ok(arn)
}

/// On the controller's default bus: each forwarding account from another
/// region may put events (one statement per Target, `PutPermission`; the
/// rest of the bus policy is left as it is).
pub async fn allow_on_bus(home: &Aws, forwards: &[Forwarding], controller_id: &str) -> Result<(), AwsError> {
    let bus =
        home.events.describe_event_bus().name("default").send().await.map_err(|e| classify("DescribeEventBus", e))?;
    let policy: Value = bus.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
    let sids: Vec<&str> =
        policy["Statement"].as_array().into_iter().flatten().filter_map(|s| s["Sid"].as_str()).collect();
    for f in forwards.iter().filter(|f| !f.to_queue && f.account != home.scope.account) {
        let sid = bus_statement_id(controller_id, &f.target);
        if sids.contains(&sid.as_str()) {
            continue;
        }
        home.events
            .put_permission()
            .event_bus_name("default")
            .action("events:PutEvents")
            .principal(&f.account)
            .statement_id(&sid)
            .send()
            .await
            .map_err(|e| classify("PutPermission", e))?;
        info!(target = %f.target, account = %f.account, "Allowed the Target's account on the controller's bus");
    }
    Ok(())
}

/// `secretwire-<id>-<target>`, within PutPermission's 64 characters.
pub fn bus_statement_id(controller_id: &str, target: &str) -> String {
    let mut s = format!("secretwire-{controller_id}-{target}");
    s.truncate(64);
    s
}
