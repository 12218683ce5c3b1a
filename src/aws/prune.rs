//! Prune's writes, and RestoreSecret. Each is safe to send again after a lost
//! answer: a delete whose target is already gone (or already scheduled for
//! deletion) has done its work, and removing tags is idempotent.

use aws_sdk_ssm::types::ResourceTypeForTagging;
use tracing::info;

use super::write::{send, transient};
use super::{Aws, AwsError, classify};
use crate::plan::Op;

/// One SDK request, its error classified, sent again while transient.
macro_rules! call {
    ($op:literal, $req:expr) => {
        send(|| async { $req.send().await.map_err(|e| classify($op, e)) }, transient)
    };
}

/// Already done: the answer to a resend after the first one took effect.
fn gone(r: Result<(), AwsError>, codes: &[&str], text: &str) -> Result<(), AwsError> {
    match r {
        Err(e) if e.is_code(codes) && (text.is_empty() || e.message.to_lowercase().contains(text)) => Ok(()),
        other => other,
    }
}

pub async fn run(aws: &Aws, op: &Op) -> Result<(), AwsError> {
    match op {
        Op::RestoreSecret { id } => {
            call!("RestoreSecret", aws.secrets.restore_secret().secret_id(id)).await?;
            info!(secret = %id, "Restored secret scheduled for deletion");
        }
        Op::DeleteParameter { name } => {
            let r = call!("DeleteParameter", aws.ssm.delete_parameter().name(name)).await.map(|_| ());
            gone(r, &["ParameterNotFound"], "")?;
            info!(parameter = %name, "Pruned: deleted parameter");
        }
        Op::DeleteSecret { id, recovery_window_days } => {
            let r = call!(
                "DeleteSecret",
                aws.secrets
                    .delete_secret()
                    .secret_id(id)
                    .recovery_window_in_days(i64::from(*recovery_window_days))
                    .force_delete_without_recovery(false)
            )
            .await
            .map(|_| ());
            let r = gone(r, &["InvalidRequestException"], "marked");
            gone(r, &["ResourceNotFoundException"], "")?;
            info!(secret = %id, recovery_window_days, "Pruned: secret scheduled for deletion");
        }
        Op::UntagParameter { name, keys } => {
            call!(
                "RemoveTagsFromResource",
                aws.ssm
                    .remove_tags_from_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tag_keys(Some(keys.clone()))
            )
            .await?;
            info!(parameter = %name, "Pruned (retained): ownership tags removed");
        }
        Op::UntagSecret { id, keys } => {
            call!("UntagResource", aws.secrets.untag_resource().secret_id(id).set_tag_keys(Some(keys.clone()))).await?;
            info!(secret = %id, "Pruned (retained): ownership tags removed");
        }
        Op::UntagRole { name, keys } => {
            let r = call!("UntagRole", aws.iam.untag_role().role_name(name).set_tag_keys(Some(keys.clone())))
                .await
                .map(|_| ());
            gone(r, &["NoSuchEntity"], "")?;
            info!(role = %name, "Pruned (retained): ownership tags removed");
        }
        Op::DeleteRole { name, inline, managed } => {
            if *inline {
                let r = call!(
                    "DeleteRolePolicy",
                    aws.iam.delete_role_policy().role_name(name).policy_name(crate::policy::INLINE_POLICY_NAME)
                )
                .await
                .map(|_| ());
                gone(r, &["NoSuchEntity"], "")?;
            }
            for arn in managed {
                let r = call!("DetachRolePolicy", aws.iam.detach_role_policy().role_name(name).policy_arn(arn))
                    .await
                    .map(|_| ());
                gone(r, &["NoSuchEntity"], "")?;
            }
            let r = call!("DeleteRole", aws.iam.delete_role().role_name(name)).await.map(|_| ());
            gone(r, &["NoSuchEntity"], "")?;
            info!(role = %name, "Pruned: deleted role");
        }
        Op::DeregisterTaskDefinition { arn } => {
            call!("DeregisterTaskDefinition", aws.ecs.deregister_task_definition().task_definition(arn)).await?;
            info!(task_definition = %arn, "Pruned: deregistered revision");
        }
        _ => unreachable!("not a prune op"),
    }
    Ok(())
}
