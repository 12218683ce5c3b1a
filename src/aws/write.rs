//! Carrying out a plan's writes. Each write is retried on transient errors
//! by the one policy (`retry::Backoff::CALL`), and creates are idempotent:
//! when a create's answer was lost and the retry finds the resource, it is
//! accepted only if it carries our ownership tag. IAM is eventually
//! consistent, so calls that depend on a role just created are retried on
//! "not found"/"invalid role". The two writes that are not idempotent
//! (RegisterTaskDefinition, a forced UpdateService) check before resending.

use std::future::Future;

use aws_sdk_secretsmanager::types::Tag as SmTag;
use aws_sdk_ssm::types::{ParameterType as SsmType, ResourceTypeForTagging, Tag as SsmTag};
use backon::Retryable;
use serde_json::Value;
use tracing::{debug, info, warn};

use super::retry::Backoff;
use super::{Aws, AwsError, classify};
use crate::model::{ParameterType, TAG_APPLIED, TAG_MANAGED_BY, TAG_ROLLOUT, Tags};
use crate::plan::{ObjectPlan, Op};
use crate::reason::{Failure, Reason, Retry};
use crate::value::{InitialValue, ValueError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("{0} exists but is not tagged {TAG_MANAGED_BY}; someone else created it in the meantime")]
    Raced(String),
}

impl WriteError {
    /// What the object's status says, and whether retrying can help.
    pub fn failure(&self) -> Failure {
        match self {
            WriteError::Aws(e) => e.failure(),
            WriteError::Value(v) => Failure {
                reason: match v {
                    ValueError::MissingEnv(_) | ValueError::EmptyEnv(_) => Reason::MissingEnvironmentVariable,
                    _ => Reason::ValueGenerationFailed,
                },
                retry: Retry::Terminal,
                message: v.to_string(),
            },
            WriteError::Raced(_) => {
                Failure { reason: Reason::CreateRaced, retry: Retry::Terminal, message: self.to_string() }
            }
        }
    }
}

/// What an object's execution produced.
#[derive(Debug, Default)]
pub struct Executed {
    pub ops: usize,
    pub registered: Option<String>,
    /// The deployment an UpdateService started: `(cluster, service, deployment id)`.
    pub deployment: Option<(String, String, String)>,
}

/// Runs an object's ops in order; stops at the first failure.
pub async fn execute(aws: &Aws, obj: &ObjectPlan) -> Result<Executed, WriteError> {
    let mut done = Executed::default();
    for op in obj.changes.iter().flat_map(|c| &c.ops) {
        run_op(aws, op, &mut done).await?;
        done.ops += 1;
    }
    Ok(done)
}

/// One SDK request, its error classified, sent again while `$again` holds.
macro_rules! call {
    ($op:literal, $again:expr, $req:expr) => {
        send(|| async { $req.send().await.map_err(|e| classify($op, e)) }, $again)
    };
}

/// One call, sent again after the delays of the one policy while `again` holds.
pub(super) async fn send<T, F, Fut>(call: F, again: impl Fn(&AwsError) -> bool) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    call.retry(Backoff::CALL).when(again).await
}

pub(super) fn transient(e: &AwsError) -> bool {
    e.transient
}

/// Transient, or an error that IAM's eventual consistency explains (a role
/// created moments ago that is not visible or usable yet).
fn eventual<'a>(codes: &'a [&'a str], text: &'a str) -> impl Fn(&AwsError) -> bool + 'a {
    move |e| e.transient || (e.is_code(codes) && (text.is_empty() || e.message.to_lowercase().contains(text)))
}

async fn run_op(aws: &Aws, op: &Op, done: &mut Executed) -> Result<(), WriteError> {
    match op {
        Op::CreateParameter { name, kind, key_id, description, initial, tags } => {
            create_parameter(aws, name, *kind, key_id, description, initial, tags).await
        }
        Op::TagParameter { name, tags } => {
            send(|| tag_parameter(aws, name, tags), transient).await?;
            info!(parameter = %name, "Tagged parameter");
            Ok(())
        }
        Op::CreateSecret { name, key_id, description, initial, tags } => {
            create_secret(aws, name, key_id, description, initial, tags).await
        }
        Op::UpdateSecret { id, description, key_id } => {
            call!(
                "UpdateSecret",
                transient,
                aws.secrets
                    .update_secret()
                    .secret_id(id)
                    .set_description(description.clone())
                    .set_kms_key_id(key_id.clone())
            )
            .await?;
            info!(secret = %id, "Updated secret metadata");
            Ok(())
        }
        Op::TagSecret { id, tags } => {
            call!("TagResource", transient, aws.secrets.tag_resource().secret_id(id).set_tags(Some(sm_tags(tags))))
                .await?;
            info!(secret = %id, "Tagged secret");
            Ok(())
        }
        Op::RotateSecret { id, rules } => rotate_secret(aws, id, rules).await,
        Op::RestoreSecret { .. }
        | Op::DeleteParameter { .. }
        | Op::DeleteSecret { .. }
        | Op::UntagParameter { .. }
        | Op::UntagSecret { .. }
        | Op::UntagRole { .. }
        | Op::DeleteRole { .. }
        | Op::DeregisterTaskDefinition { .. } => Ok(super::prune::run(aws, op).await?),
        Op::CancelRotation { id } => {
            call!("CancelRotateSecret", transient, aws.secrets.cancel_rotate_secret().secret_id(id)).await?;
            info!(secret = %id, "Cancelled rotation");
            Ok(())
        }
        Op::CreateRole { name, trust, tags, boundary, path } => {
            create_role(aws, name, trust, tags, boundary, path).await
        }
        Op::PutBoundary { name, arn } => {
            call!(
                "PutRolePermissionsBoundary",
                transient,
                aws.iam.put_role_permissions_boundary().role_name(name).permissions_boundary(arn)
            )
            .await?;
            info!(role = %name, boundary = %arn, "Put permissions boundary");
            Ok(())
        }
        Op::UpdateTrust { name, trust } => {
            call!(
                "UpdateAssumeRolePolicy",
                eventual(&["NoSuchEntity"], ""),
                aws.iam.update_assume_role_policy().role_name(name).policy_document(trust.to_string())
            )
            .await?;
            info!(role = %name, "Updated trust policy");
            Ok(())
        }
        Op::PutRolePolicy { name, document } => {
            call!(
                "PutRolePolicy",
                eventual(&["NoSuchEntity"], ""),
                aws.iam
                    .put_role_policy()
                    .role_name(name)
                    .policy_name(crate::policy::INLINE_POLICY_NAME)
                    .policy_document(document.to_string())
            )
            .await?;
            info!(role = %name, "Put inline policy");
            Ok(())
        }
        Op::DeleteRolePolicy { name } => {
            let res = call!(
                "DeleteRolePolicy",
                transient,
                aws.iam.delete_role_policy().role_name(name).policy_name(crate::policy::INLINE_POLICY_NAME)
            )
            .await;
            match res {
                Ok(_) => info!(role = %name, "Deleted inline policy"),
                Err(e) if e.is_code(&["NoSuchEntity"]) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Op::AttachPolicy { name, arn } => {
            call!(
                "AttachRolePolicy", // Only a role that is not visible yet is worth waiting for; a missing policy is final.
                eventual(&["NoSuchEntity"], "role with name"),
                aws.iam.attach_role_policy().role_name(name).policy_arn(arn)
            )
            .await?;
            info!(role = %name, policy = %arn, "Attached managed policy");
            Ok(())
        }
        Op::DetachPolicy { name, arn } => {
            let res =
                call!("DetachRolePolicy", transient, aws.iam.detach_role_policy().role_name(name).policy_arn(arn))
                    .await;
            match res {
                Ok(_) => info!(role = %name, policy = %arn, "Detached managed policy"),
                Err(e) if e.is_code(&["NoSuchEntity"]) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Op::TagRole { name, tags } => {
            call!("TagRole", transient, aws.iam.tag_role().role_name(name).set_tags(Some(iam_tags(tags)))).await?;
            info!(role = %name, "Tagged role");
            Ok(())
        }
        Op::RegisterTaskDefinition { body, tags } => {
            let arn = register_task_definition(aws, body, tags).await?;
            info!(task_definition = %arn, "Registered task definition");
            done.registered = Some(arn);
            Ok(())
        }
        Op::UpdateService { cluster, service, task_definition, service_arn, digest } => {
            let td = task_definition.clone().or_else(|| done.registered.clone()).ok_or_else(|| {
                AwsError::other("UpdateService", "no task definition was registered before the service update")
            })?;
            let id = update_service(aws, cluster, service, &td, service_arn, digest).await?;
            done.deployment = id.map(|id| (cluster.clone(), service.clone(), id));
            Ok(())
        }
    }
}

async fn create_parameter(
    aws: &Aws,
    name: &str,
    kind: ParameterType,
    key_id: &Option<String>,
    description: &Option<String>,
    initial: &InitialValue,
    tags: &Tags,
) -> Result<(), WriteError> {
    let value = initial.make(&|k| std::env::var(k).ok())?;
    let ssm_type = match kind {
        ParameterType::SecureString => SsmType::SecureString,
        ParameterType::String => SsmType::String,
    };
    let res = call!(
        "PutParameter",
        transient,
        aws.ssm
            .put_parameter()
            .name(name)
            .r#type(ssm_type.clone())
            .value(value.expose())
            .set_key_id(key_id.clone())
            .set_description(description.clone())
            .set_tags(Some(ssm_tags(tags)))
            .overwrite(false)
    )
    .await;
    match res {
        Ok(_) => info!(parameter = %name, "Created parameter"),
        Err(e) if e.is_code(&["ParameterAlreadyExists"]) => {
            // A lost answer to our own create, or someone else's parameter?
            let have = send(|| parameter_tags(aws, name), transient).await?;
            if !ours(&have, tags) {
                return Err(WriteError::Raced(format!("ssm parameter {name}")));
            }
            debug!(parameter = %name, "Parameter already created by an earlier attempt");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn tag_parameter(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.ssm
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .set_tags(Some(ssm_tags(tags)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify("AddTagsToResource", e))
}

async fn create_secret(
    aws: &Aws,
    name: &str,
    key_id: &Option<String>,
    description: &Option<String>,
    initial: &InitialValue,
    tags: &Tags,
) -> Result<(), WriteError> {
    let value = initial.make(&|k| std::env::var(k).ok())?;
    let res = call!(
        "CreateSecret",
        transient,
        aws.secrets
            .create_secret()
            .name(name)
            .secret_string(value.expose())
            .set_kms_key_id(key_id.clone())
            .set_description(description.clone())
            .set_tags(Some(sm_tags(tags)))
    )
    .await;
    let arn = match res {
        Ok(out) => out.arn().unwrap_or_default().to_string(),
        Err(e) if e.is_code(&["ResourceExistsException"]) => {
            let d = call!("DescribeSecret", transient, aws.secrets.describe_secret().secret_id(name)).await?;
            let have: Tags =
                d.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
            if !ours(&have, tags) {
                return Err(WriteError::Raced(format!("secret {name}")));
            }
            d.arn().unwrap_or_default().to_string()
        }
        Err(e) => return Err(e.into()),
    };
    info!(secret = %name, arn = %arn, "Created secret");
    Ok(())
}

async fn create_role(
    aws: &Aws,
    name: &str,
    trust: &Value,
    tags: &Tags,
    boundary: &Option<String>,
    path: &str,
) -> Result<(), WriteError> {
    let res = call!(
        "CreateRole",
        transient,
        aws.iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust.to_string())
            .description("ECS role managed by secretwire")
            .set_tags(Some(iam_tags(tags)))
            .set_permissions_boundary(boundary.clone())
    )
    .await;
    match res {
        Ok(_) => info!(role = %name, "Created role"),
        Err(e) if e.is_code(&["EntityAlreadyExists"]) => {
            let have = send(|| super::observe::read_role(&aws.iam, name), transient)
                .await?
                .map(|r| r.tags)
                .unwrap_or_default();
            if !ours(&have, tags) {
                return Err(WriteError::Raced(format!("iam role {name}")));
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn register_task_definition(aws: &Aws, body: &Value, tags: &Tags) -> Result<String, AwsError> {
    let mut body = body.clone();
    body["tags"] = Value::Array(tags.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect());
    let family = body["family"].as_str().unwrap_or_default().to_string();
    send(
        || async {
            match aws.register_task_definition(&body).await {
                Err(e) if e.ambiguous => match registered_anyway(aws, &family, &body).await? {
                    Some(arn) => Ok(arn),
                    None => Err(e),
                },
                res => res,
            }
        },
        // A role created moments ago may not be usable yet.
        eventual(&["ClientException", "InvalidParameterException"], "role"),
    )
    .await
}

async fn update_service(
    aws: &Aws,
    cluster: &str,
    service: &str,
    td: &str,
    service_arn: &str,
    digest: &str,
) -> Result<Option<String>, WriteError> {
    let out = call!(
        "UpdateService",
        eventual(&["InvalidParameterException", "ClientException"], "role"),
        aws.ecs.update_service().cluster(cluster).service(service).task_definition(td)
    )
    .await?;
    // A new task definition starts a new PRIMARY deployment; its id is followed to its end.
    let deployment = out.service().and_then(primary_deployment);
    info!(cluster = %cluster, service = %service, task_definition = %td, deployment = deployment.as_deref().unwrap_or("?"), "Updated service");
    // Lets the next apply see "unchanged" without reading the revision. Not
    // fatal: without it, the next apply reads the revision instead.
    let tag =
        aws_sdk_ecs::types::Tag::builder().key(TAG_APPLIED).value(crate::taskdef::applied_tag(td, digest)).build();
    // The deployment it started, so a restarted `run` goes on following it (same call).
    let rollout = deployment.as_ref().map(|id| {
        let value = crate::rollout::tag_value(id, crate::rollout::Trigger::Apply, crate::follow::now());
        aws_sdk_ecs::types::Tag::builder().key(TAG_ROLLOUT).value(value).build()
    });
    let tags: Vec<_> = std::iter::once(tag).chain(rollout).collect();
    let tagged =
        call!("TagResource", transient, aws.ecs.tag_resource().resource_arn(service_arn).set_tags(Some(tags.clone())))
            .await;
    if let Err(e) = tagged {
        warn!(service = %service, error = %e, "Could not record the applied revision on the service");
    }
    Ok(deployment)
}

/// After a RegisterTaskDefinition whose answer was lost: the family's newest
/// revision if it is what we sent (so a retry registers no spare revision).
async fn registered_anyway(aws: &Aws, family: &str, body: &Value) -> Result<Option<String>, AwsError> {
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
    send(
        || async {
            let res = aws
                .ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .force_new_deployment(true)
                .customize()
                .config_override(super::ecs_single_attempt())
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
        },
        transient,
    )
    .await
}

/// Records on the service the deployment secretwire started (tag
/// `secretwire.dev/rollout`), so a restarted `run` goes on following it.
/// Not fatal: without it, a restart only loses sight of this rollout.
pub async fn record_rollout(aws: &Aws, cluster: &str, service: &str, value: &str) {
    let arn = format!(
        "arn:{}:ecs:{}:{}:service/{cluster}/{service}",
        aws.scope.partition, aws.scope.region, aws.scope.account
    );
    let tag = aws_sdk_ecs::types::Tag::builder().key(TAG_ROLLOUT).value(value).build();
    let res = call!("TagResource", transient, aws.ecs.tag_resource().resource_arn(&arn).tags(tag.clone())).await;
    if let Err(e) = res {
        warn!(service = %service, error = %e, "Could not record the rollout on the service");
    }
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

/// RotateSecret with the manifest's rules. Sent again after a lost answer it
/// sets the same configuration; a request that also rotates now carries one
/// ClientRequestToken across its retries, so it starts one rotation.
async fn rotate_secret(aws: &Aws, id: &str, r: &crate::model::RotationRules) -> Result<(), WriteError> {
    let rules = aws_sdk_secretsmanager::types::RotationRulesType::builder()
        .schedule_expression(&r.schedule)
        .set_duration(r.duration.clone())
        .build();
    let token = if r.rotate_immediately { Some(crate::value::random_token()?) } else { None };
    call!(
        "RotateSecret",
        transient,
        aws.secrets
            .rotate_secret()
            .secret_id(id)
            .rotation_lambda_arn(&r.lambda_arn)
            .rotation_rules(rules.clone())
            .rotate_immediately(r.rotate_immediately)
            .set_client_request_token(token.clone())
    )
    .await?;
    info!(secret = %id, schedule = %r.schedule, "Configured rotation");
    Ok(())
}

fn sm_tags(t: &Tags) -> Vec<SmTag> {
    t.iter().map(|(k, v)| SmTag::builder().key(k).value(v).build()).collect()
}

fn iam_tags(t: &Tags) -> Vec<aws_sdk_iam::types::Tag> {
    t.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect()
}
