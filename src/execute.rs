//! Carrying out a plan. Each op is retried on transient errors (exponential
//! backoff with jitter, bounded), and creates are idempotent: when a create's
//! answer was lost and the retry finds the resource, it is accepted only if it
//! carries our ownership tag. IAM is eventually consistent, so calls that
//! depend on a role just created are retried on "not found"/"invalid role".

use std::time::Duration;

use aws_sdk_secretsmanager::types::Tag as SmTag;
use aws_sdk_ssm::types::{ParameterType as SsmType, ResourceTypeForTagging, Tag as SsmTag};
use backon::{ExponentialBuilder, Retryable};
use tracing::{debug, info, warn};

use crate::aws::{Aws, AwsError, classify};
use crate::model::ParameterType;
use crate::observed::{TAG_MANAGED_BY, Tags};
use crate::plan::{ObjectPlan, Op};
use crate::value::ValueError;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("{0} exists but is not tagged {TAG_MANAGED_BY}; someone else created it in the meantime")]
    Raced(String),
}

impl ExecError {
    pub fn transient(&self) -> bool {
        matches!(self, ExecError::Aws(e) if e.transient)
    }
}

/// Retry policy for one op (and for reads that must not fail a whole pass):
/// the SDK already retried each call; this outer loop rides out longer
/// throttling and IAM propagation.
pub(crate) fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(6)
        .with_jitter()
}

/// A read on the way to a write (is the thing that exists ours?), retried on
/// transient errors like the write itself.
async fn read_retrying<T, F, Fut>(read: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    read.retry(backoff()).when(|e: &AwsError| e.transient).await
}

/// What an object's execution produced: the resources created, by name.
#[derive(Debug, Default)]
pub struct Executed {
    pub ops: usize,
    pub registered: Option<String>,
}

/// Runs an object's ops in order; stops at the first failure.
pub async fn execute(aws: &Aws, obj: &ObjectPlan) -> Result<Executed, ExecError> {
    let mut done = Executed::default();
    for op in obj.changes.iter().flat_map(|c| &c.ops) {
        run_op(aws, op, &mut done).await?;
        done.ops += 1;
    }
    Ok(done)
}

fn eventual(e: &ExecError, codes: &[&str], text: &str) -> bool {
    match e {
        ExecError::Aws(a) => {
            a.transient || (a.is_code(codes) && (text.is_empty() || a.message.to_lowercase().contains(text)))
        }
        _ => false,
    }
}

async fn run_op(aws: &Aws, op: &Op, done: &mut Executed) -> Result<(), ExecError> {
    let transient = |e: &ExecError| e.transient();
    match op {
        Op::CreateParameter { name, kind, key_id, description, initial, tags } => {
            let value = initial.make(&|k| std::env::var(k).ok())?;
            let ssm_type = match kind {
                ParameterType::SecureString => SsmType::SecureString,
                ParameterType::String => SsmType::String,
            };
            let res = (|| async {
                aws.ssm
                    .put_parameter()
                    .name(name)
                    .r#type(ssm_type.clone())
                    .value(value.expose())
                    .set_key_id(key_id.clone())
                    .set_description(description.clone())
                    .set_tags(Some(ssm_tags(tags)))
                    .overwrite(false)
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("PutParameter", e)))
            })
            .retry(backoff())
            .when(transient)
            .await;
            match res {
                Ok(_) => info!(parameter = %name, "Created parameter"),
                Err(ExecError::Aws(e)) if e.is_code(&["ParameterAlreadyExists"]) => {
                    // A lost answer to our own create, or someone else's parameter?
                    let have = read_retrying(|| parameter_tags(aws, name)).await?;
                    if !ours(&have, tags) {
                        return Err(ExecError::Raced(format!("ssm parameter {name}")));
                    }
                    debug!(parameter = %name, "Parameter already created by an earlier attempt");
                }
                Err(e) => return Err(e),
            }
        }
        Op::TagParameter { name, tags } => {
            (|| async {
                aws.ssm
                    .add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tags(Some(ssm_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("AddTagsToResource", e)))
            })
            .retry(backoff())
            .when(transient)
            .await?;
            info!(parameter = %name, "Tagged parameter");
        }
        Op::CreateSecret { name, key_id, description, initial, tags } => {
            let value = initial.make(&|k| std::env::var(k).ok())?;
            let res = (|| async {
                aws.secrets
                    .create_secret()
                    .name(name)
                    .secret_string(value.expose())
                    .set_kms_key_id(key_id.clone())
                    .set_description(description.clone())
                    .set_tags(Some(sm_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("CreateSecret", e)))
            })
            .retry(backoff())
            .when(transient)
            .await;
            let arn = match res {
                Ok(out) => out.arn().unwrap_or_default().to_string(),
                Err(ExecError::Aws(e)) if e.is_code(&["ResourceExistsException"]) => {
                    let d = read_retrying(|| async {
                        aws.secrets
                            .describe_secret()
                            .secret_id(name)
                            .send()
                            .await
                            .map_err(|e| classify("DescribeSecret", e))
                    })
                    .await?;
                    let have: Tags =
                        d.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                    if !ours(&have, tags) {
                        return Err(ExecError::Raced(format!("secret {name}")));
                    }
                    d.arn().unwrap_or_default().to_string()
                }
                Err(e) => return Err(e),
            };
            info!(secret = %name, arn = %arn, "Created secret");
        }
        Op::UpdateSecret { id, description, key_id } => {
            (|| async {
                aws.secrets
                    .update_secret()
                    .secret_id(id)
                    .set_description(description.clone())
                    .set_kms_key_id(key_id.clone())
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("UpdateSecret", e)))
            })
            .retry(backoff())
            .when(transient)
            .await?;
            info!(secret = %id, "Updated secret metadata");
        }
        Op::TagSecret { id, tags } => {
            (|| async {
                aws.secrets
                    .tag_resource()
                    .secret_id(id)
                    .set_tags(Some(sm_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("TagResource", e)))
            })
            .retry(backoff())
            .when(transient)
            .await?;
            info!(secret = %id, "Tagged secret");
        }
        Op::CreateRole { name, trust, tags } => {
            let res = (|| async {
                aws.iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(trust.to_string())
                    .description("ECS role managed by secretwire")
                    .set_tags(Some(iam_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("CreateRole", e)))
            })
            .retry(backoff())
            .when(transient)
            .await;
            match res {
                Ok(_) => info!(role = %name, "Created role"),
                Err(ExecError::Aws(e)) if e.is_code(&["EntityAlreadyExists"]) => {
                    let have = read_retrying(|| crate::aws::observe::read_role(&aws.iam, name))
                        .await?
                        .map(|r| r.tags)
                        .unwrap_or_default();
                    if !ours(&have, tags) {
                        return Err(ExecError::Raced(format!("iam role {name}")));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Op::UpdateTrust { name, trust } => {
            (|| async {
                aws.iam
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(trust.to_string())
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("UpdateAssumeRolePolicy", e)))
            })
            .retry(backoff())
            .when(|e| eventual(e, &["NoSuchEntity"], ""))
            .await?;
            info!(role = %name, "Updated trust policy");
        }
        Op::PutRolePolicy { name, document } => {
            (|| async {
                aws.iam
                    .put_role_policy()
                    .role_name(name)
                    .policy_name(crate::policy::INLINE_POLICY_NAME)
                    .policy_document(document.to_string())
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("PutRolePolicy", e)))
            })
            .retry(backoff())
            .when(|e| eventual(e, &["NoSuchEntity"], ""))
            .await?;
            info!(role = %name, "Put inline policy");
        }
        Op::DeleteRolePolicy { name } => {
            let res = aws
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(crate::policy::INLINE_POLICY_NAME)
                .send()
                .await
                .map_err(|e| classify("DeleteRolePolicy", e));
            match res {
                Ok(_) => info!(role = %name, "Deleted inline policy"),
                Err(e) if e.is_code(&["NoSuchEntity"]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Op::AttachPolicy { name, arn } => {
            (|| async {
                aws.iam
                    .attach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("AttachRolePolicy", e)))
            })
            .retry(backoff())
            // Only a role that is not visible yet is worth waiting for; a missing policy is final.
            .when(|e| eventual(e, &["NoSuchEntity"], "role with name"))
            .await?;
            info!(role = %name, policy = %arn, "Attached managed policy");
        }
        Op::DetachPolicy { name, arn } => {
            let res = aws
                .iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| classify("DetachRolePolicy", e));
            match res {
                Ok(_) => info!(role = %name, policy = %arn, "Detached managed policy"),
                Err(e) if e.is_code(&["NoSuchEntity"]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Op::TagRole { name, tags } => {
            (|| async {
                aws.iam
                    .tag_role()
                    .role_name(name)
                    .set_tags(Some(iam_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("TagRole", e)))
            })
            .retry(backoff())
            .when(transient)
            .await?;
            info!(role = %name, "Tagged role");
        }
        Op::RegisterTaskDefinition { body, tags } => {
            let mut body = body.clone();
            body["tags"] =
                serde_json::Value::Array(tags.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect());
            let family = body["family"].as_str().unwrap_or_default().to_string();
            let arn = (|| async {
                match aws.register_task_definition(&body).await {
                    Err(e) if e.ambiguous => match registered_anyway(aws, &family, &body).await? {
                        Some(arn) => Ok(arn),
                        None => Err(ExecError::from(e)),
                    },
                    res => res.map_err(ExecError::from),
                }
            })
            .retry(backoff())
            // A role created moments ago may not be usable yet.
            .when(|e| eventual(e, &["ClientException", "InvalidParameterException"], "role"))
            .await?;
            info!(task_definition = %arn, "Registered task definition");
            done.registered = Some(arn);
        }
        Op::UpdateService { cluster, service, task_definition, service_arn, digest } => {
            let td = task_definition.clone().or_else(|| done.registered.clone()).ok_or_else(|| {
                ExecError::Aws(AwsError::other(
                    "UpdateService",
                    "no task definition was registered before the service update",
                ))
            })?;
            (|| async {
                aws.ecs
                    .update_service()
                    .cluster(cluster)
                    .service(service)
                    .task_definition(&td)
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("UpdateService", e)))
            })
            .retry(backoff())
            .when(|e| eventual(e, &["InvalidParameterException", "ClientException"], "role"))
            .await?;
            info!(cluster = %cluster, service = %service, task_definition = %td, "Updated service");
            // Lets the next apply see "unchanged" without reading the revision. Not
            // fatal: without it, the next apply reads the revision instead.
            let applied = crate::taskdef::applied_tag(&td, digest);
            let tag = aws_sdk_ecs::types::Tag::builder().key(crate::observed::TAG_APPLIED).value(applied).build();
            let tagged = (|| async {
                aws.ecs
                    .tag_resource()
                    .resource_arn(service_arn)
                    .tags(tag.clone())
                    .send()
                    .await
                    .map_err(|e| ExecError::from(classify("TagResource", e)))
            })
            .retry(backoff())
            .when(transient)
            .await;
            if let Err(e) = tagged {
                warn!(service = %service, error = %e, "Could not record the applied revision on the service");
            }
        }
    }
    Ok(())
}

/// After a RegisterTaskDefinition whose answer was lost: the family's newest
/// revision if it is what we sent (so a retry registers no spare revision).
async fn registered_anyway(aws: &Aws, family: &str, body: &serde_json::Value) -> Result<Option<String>, AwsError> {
    let newest = aws.describe_task_definition(family).await?;
    Ok(newest.filter(|td| !crate::taskdef::differs(body, td)).and_then(|td| {
        let arn = td["taskDefinitionArn"].as_str().map(str::to_string);
        debug!(task_definition = ?arn, "Registered by an attempt whose answer was lost");
        arn
    }))
}

/// UpdateService(forceNewDeployment) that takes effect once: after an attempt
/// whose answer was lost, a PRIMARY deployment other than `before` means it
/// did, and it is not sent again (a second send would be a second deployment).
/// Returns the new PRIMARY deployment's id.
pub async fn force_new_deployment(
    aws: &Aws,
    cluster: &str,
    service: &str,
    before: Option<&str>,
) -> Result<Option<String>, AwsError> {
    (|| async {
        let res = aws
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .customize()
            .config_override(crate::aws::ecs_single_attempt())
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.service().and_then(primary_deployment)),
            Err(e) => {
                let e = classify("UpdateService", e);
                if !e.ambiguous {
                    return Err(e);
                }
                let out = aws
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeServices", e))?;
                match out.services().first().and_then(primary_deployment) {
                    Some(id) if Some(id.as_str()) != before => {
                        debug!(service = %service, deployment = %id, "Deployment started by an attempt whose answer was lost");
                        Ok(Some(id))
                    }
                    _ => Err(e),
                }
            }
        }
    })
    .retry(backoff())
    .when(|e: &AwsError| e.transient)
    .await
}

fn primary_deployment(s: &aws_sdk_ecs::types::Service) -> Option<String> {
    s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id().map(str::to_string))
}

/// Whether `have` carries our ownership tag as `want` has it.
fn ours(have: &Tags, want: &Tags) -> bool {
    have.get(TAG_MANAGED_BY).is_some() && have.get(TAG_MANAGED_BY) == want.get(TAG_MANAGED_BY)
}

async fn parameter_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    let out = aws
        .ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .map_err(|e| classify("ListTagsForResource", e))?;
    Ok(out.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

fn ssm_tags(t: &Tags) -> Vec<SsmTag> {
    t.iter().filter_map(|(k, v)| SsmTag::builder().key(k).value(v).build().ok()).collect()
}

fn sm_tags(t: &Tags) -> Vec<SmTag> {
    t.iter().map(|(k, v)| SmTag::builder().key(k).value(v).build()).collect()
}

fn iam_tags(t: &Tags) -> Vec<aws_sdk_iam::types::Tag> {
    t.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect()
}
