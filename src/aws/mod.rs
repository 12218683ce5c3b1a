//! The AWS edge: SDK clients with explicit retry and timeout settings, an
//! interceptor that counts every call, error classification, and the two ECS
//! calls that carry task definitions as raw JSON.

pub mod discover;
pub mod forward;
pub mod lease;
pub mod limit;
pub mod notify;
pub mod observe;
pub mod plumbing;
pub mod prune;
pub mod queue;
pub mod retry;
pub mod target;
pub mod write;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

use crate::arn::Scope;
use crate::metrics::Metrics;
use crate::reason::{Failure, Reason, Retry};

/// Every client secretwire uses, and where they point.
#[derive(Clone)]
pub struct Aws {
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The run lease only.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub scope: Scope,
    pub metrics: Arc<Metrics>,
    /// The `Target` these clients reach (`None`: the controller's own account).
    pub target: Option<String>,
    /// What the clients were built from (a Target's clients are built on it).
    pub(crate) sdk: aws_config::SdkConfig,
}

/// What went wrong in one AWS call, classified for retrying.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub transient: bool,
    /// The request may have been carried out although no answer says so
    /// (timeout, lost connection, 5xx): a retry of a non-idempotent write must
    /// first look whether the first attempt took effect.
    pub ambiguous: bool,
}

impl AwsError {
    pub fn is_code(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    pub fn other(operation: &'static str, message: impl Into<String>) -> Self {
        Self { operation, code: None, message: message.into(), transient: false, ambiguous: false }
    }

    pub fn access_denied(&self) -> bool {
        self.is_code(ACCESS_DENIED)
    }

    /// What an object's status says about this error, and whether retrying can
    /// help: transient errors are retried with backoff; AccessDenied and every
    /// other refusal get the same answer until something changes.
    pub fn failure(&self) -> Failure {
        let (reason, retry) = if self.transient {
            let throttled = self.code.as_deref().is_some_and(|c| THROTTLING.contains(&c));
            (if throttled { Reason::Throttled } else { Reason::AwsUnavailable }, Retry::Transient)
        } else if self.access_denied() {
            (Reason::AccessDenied, Retry::Terminal)
        } else {
            (Reason::AwsRejected, Retry::Terminal)
        };
        let message = match (reason, crate::reason::denied_action(&self.message)) {
            (Reason::AccessDenied, Some((action, resource))) => format!(
                "{}: AccessDenied: not authorized to perform {action}{}",
                self.operation,
                resource.map(|r| format!(" on {r}")).unwrap_or_default()
            ),
            _ => self.to_string(),
        };
        Failure { reason, retry, message }
    }
}

/// Codes AWS services answer when the caller's policy does not allow a call.
const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "AuthorizationErrorException",
];

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    // DynamoDB (the run lease).
    "ProvisionedThroughputExceededException",
];

/// Codes of a service that is briefly unable to answer (retried like throttling).
const UNAVAILABLE: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServerException",
    "InternalError",
];

/// Classifies any SDK error. Transient: throttling, 5xx, timeouts, I/O.
/// Ambiguous (maybe carried out): 5xx, timeouts, and failures after sending.
pub fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let fail =
        |message: String, transient: bool| AwsError { operation, code: None, message, transient, ambiguous: transient };
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().map(str::to_string);
            let server = se.raw().status().is_server_error();
            let transient =
                server || code.as_deref().is_some_and(|c| THROTTLING.contains(&c) || UNAVAILABLE.contains(&c));
            let message = e.message().unwrap_or("no message").to_string();
            AwsError { operation, code, message, transient, ambiguous: server }
        }
        SdkError::TimeoutError(_) => fail("timed out".into(), true),
        SdkError::DispatchFailure(d) => fail(format!("could not send the request: {d:?}"), !d.is_user()),
        SdkError::ResponseError(_) => fail("the response could not be read".into(), true),
        _ => fail(format!("{err}"), false),
    }
}

/// For one ECS call, no SDK-level retries: the caller retries itself, after
/// checking whether an attempt whose answer was lost took effect.
pub fn ecs_single_attempt() -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// Counts every attempt of every AWS call by service and operation.
#[derive(Debug, Clone)]
struct CallCounter(Arc<Metrics>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "secretwire-call-counter"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            self.0.record_aws_call(m.service(), m.name());
            // The rate limiter in the HTTP connector reads this (it is never sent).
            ctx.request_mut().add_extension(limit::OperationName(format!("{}:{}", m.service(), m.name()).into()));
        }
        Ok(())
    }
}

/// Captures the raw JSON response body of one call.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<bytes_shim::Bytes>>>);

mod bytes_shim {
    pub type Bytes = Vec<u8>;
}

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "secretwire-capture-body"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(b) = ctx.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(b.to_vec());
        }
        Ok(())
    }
}

/// Client settings: the SDK's standard retry mode with more attempts (the
/// executor adds its own bounded retries with jitter on top), and timeouts so
/// a hung connection cannot stall a reconcile.
pub fn sdk_settings() -> (RetryConfig, TimeoutConfig) {
    let retry = RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(20))
        .operation_attempt_timeout(Duration::from_secs(25))
        .operation_timeout(Duration::from_secs(90))
        .build();
    (retry, timeout)
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxy from the
/// environment), built here so the rate limiter can wrap it.
pub(crate) fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    Builder::new().build_with_connector_fn(move |settings, runtime_components| {
        let mut conn =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

impl Aws {
    /// Builds clients from the standard credential and region chain
    /// (`AWS_REGION`, `AWS_PROFILE`, roles, `AWS_ENDPOINT_URL`).
    pub async fn connect(metrics: Arc<Metrics>, limits: limit::RateLimits) -> Result<Self, AwsError> {
        let (retry, timeout) = sdk_settings();
        let inner = https_client();
        let limiter = Arc::new(limit::Limiter::new(limits, metrics.clone()));
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeout)
            .http_client(limit::LimitedClient { inner, limiter })
            .load()
            .await;
        let region = shared
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| AwsError::other("config", "no AWS region configured (set AWS_REGION)"))?;
        let sts = Self::sts_client(&shared, &metrics);
        let ident = sts.get_caller_identity().send().await.map_err(|e| classify("GetCallerIdentity", e))?;
        let account =
            ident.account().ok_or_else(|| AwsError::other("GetCallerIdentity", "no account in the answer"))?;
        Ok(Self::from_config(shared, Scope::new(&region, account), metrics, None))
    }

    /// The STS client of a configuration, counting its calls.
    pub(crate) fn sts_client(conf: &aws_config::SdkConfig, metrics: &Arc<Metrics>) -> aws_sdk_sts::Client {
        let b = aws_sdk_sts::config::Builder::from(conf).interceptor(CallCounter(metrics.clone()));
        aws_sdk_sts::Client::from_conf(b.build())
    }

    /// Every client of one configuration, each counting its calls.
    pub(crate) fn from_config(
        shared: aws_config::SdkConfig,
        scope: Scope,
        metrics: Arc<Metrics>,
        target: Option<String>,
    ) -> Self {
        let counter = CallCounter(metrics.clone());
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf($krate::config::Builder::from(&shared).interceptor(counter.clone()).build())
            };
        }
        Self {
            ecs: client!(aws_sdk_ecs),
            iam: client!(aws_sdk_iam),
            ssm: client!(aws_sdk_ssm),
            secrets: client!(aws_sdk_secretsmanager),
            kms: client!(aws_sdk_kms),
            events: client!(aws_sdk_eventbridge),
            sqs: client!(aws_sdk_sqs),
            dynamodb: client!(aws_sdk_dynamodb),
            sts: client!(aws_sdk_sts),
            scope,
            metrics,
            target,
            sdk: shared,
        }
    }

    /// Clients for unit tests: the given IAM client, the rest pointing nowhere.
    #[cfg(test)]
    pub(crate) fn for_tests(iam: aws_sdk_iam::Client, scope: Scope, metrics: Arc<Metrics>) -> Self {
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        Self {
            ecs: aws_sdk_ecs::Client::new(&conf),
            iam,
            ssm: aws_sdk_ssm::Client::new(&conf),
            secrets: aws_sdk_secretsmanager::Client::new(&conf),
            kms: aws_sdk_kms::Client::new(&conf),
            sts: aws_sdk_sts::Client::new(&conf),
            events: aws_sdk_eventbridge::Client::new(&conf),
            sqs: aws_sdk_sqs::Client::new(&conf),
            dynamodb: aws_sdk_dynamodb::Client::new(&conf),
            scope,
            metrics,
            target: None,
            sdk: conf,
        }
    }

    /// DescribeTaskDefinition, returning the definition in its wire shape with
    /// its own tags (asked for with `include: TAGS`; ECS returns them beside the
    /// definition) as the `tags` RegisterTaskDefinition takes, so a revision
    /// built on it keeps them. `None` when ECS does not know it.
    pub async fn describe_task_definition(&self, id: &str) -> Result<Option<Value>, AwsError> {
        let capture = CaptureBody::default();
        let res = self
            .ecs
            .describe_task_definition()
            .task_definition(id)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await;
        match res {
            Ok(_) => {
                let body = capture.0.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
                let mut v: Value = serde_json::from_slice(&body)
                    .map_err(|e| AwsError::other("DescribeTaskDefinition", format!("response is not JSON: {e}")))?;
                let tags = v.get_mut("tags").map(Value::take).filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
                Ok(v.get_mut("taskDefinition").map(Value::take).map(|mut td| {
                    if let Some(tags) = tags {
                        td["tags"] = tags;
                    }
                    td
                }))
            }
            Err(e) => {
                let e = classify("DescribeTaskDefinition", e);
                // ECS answers ClientException for an unknown family or revision.
                if e.is_code(&["ClientException"]) && !e.transient { Ok(None) } else { Err(e) }
            }
        }
    }

    /// RegisterTaskDefinition with a wire-shape body sent as is, one attempt
    /// (see `execute` for the retries). Returns the new ARN.
    pub async fn register_task_definition(&self, body: &Value) -> Result<String, AwsError> {
        let bytes = serde_json::to_vec(body).map_err(|e| AwsError::other("RegisterTaskDefinition", e.to_string()))?;
        let family = body["family"].as_str().unwrap_or_default().to_string();
        // The typed input is a placeholder: the request body is replaced before signing.
        let out = self
            .ecs
            .register_task_definition()
            .family(family)
            .customize()
            .config_override(ecs_single_attempt())
            .map_request(move |mut req| {
                let len = bytes.len();
                *req.body_mut() = SdkBody::from(bytes.clone());
                req.headers_mut().insert("content-length", len.to_string());
                Ok::<_, std::convert::Infallible>(req)
            })
            .send()
            .await
            .map_err(|e| classify("RegisterTaskDefinition", e))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string)
            .ok_or_else(|| AwsError::other("RegisterTaskDefinition", "no task definition ARN in the answer"))
    }
}

#[cfg(test)]
mod tests;
