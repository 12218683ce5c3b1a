//! Real-AWS behaviour that the emulator does not show, forced with
//! aws-smithy-mocks: URL-encoded policy documents and throttling errors.

use aws_sdk_iam::operation::get_role::GetRoleOutput;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyOutput;
use aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput;
use aws_sdk_iam::types::{AttachedPolicy, Role, Tag};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;

use super::observe::read_role;
use crate::arn::Scope;
use crate::policy;

/// A client of one SDK crate answered by the mock rules (any order), with
/// whatever else the config builder is given.
macro_rules! mocked {
    ($sdk:ident, $rules:expr $(, $extra:ident($arg:expr))*) => {{
        let mut m = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in $rules {
            m = m.with_rule(r);
        }
        let conf = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider($sdk::config::Credentials::new("a", "b", None, None, "test"))
            $(.$extra($arg))*
            .http_client(create_mock_http_client())
            .interceptor(m)
            .build();
        $sdk::Client::from_conf(conf)
    }};
}

fn iam(rules: &[&Rule]) -> aws_sdk_iam::Client {
    mocked!(aws_sdk_iam, rules, retry_config(aws_config::retry::RetryConfig::disabled()))
}

/// What IAM really sends: RFC 3986 percent-encoding of the JSON text.
fn url_encode(doc: &serde_json::Value) -> String {
    percent_encoding::utf8_percent_encode(&doc.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn url_encoded_role_documents_from_real_iam_compare_equal() {
    let scope = Scope::new("us-east-1", "123456789012");
    let trust = policy::execution_trust(&scope);
    let mut grants = policy::Grants::default();
    grants.parameters.insert(scope.parameter_arn("/web/db"));
    let inline = policy::execution_policy(&grants, &scope).unwrap();
    let (t, i) = (url_encode(&trust), url_encode(&inline));
    assert!(t.starts_with("%7B%22"), "really encoded: {t}");
    let get_role = mock!(aws_sdk_iam::Client::get_role).then_output(move || {
        GetRoleOutput::builder()
            .role(
                Role::builder()
                    .path("/")
                    .role_name("web-execution")
                    .role_id("AROAEXAMPLE")
                    .arn("arn:aws:iam::123456789012:role/web-execution")
                    .create_date(aws_smithy_types::DateTime::from_secs(0))
                    .assume_role_policy_document(t.clone())
                    .tags(Tag::builder().key("secretwire.dev/managed-by").value("default").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let get_policy = mock!(aws_sdk_iam::Client::get_role_policy).then_output(move || {
        GetRolePolicyOutput::builder()
            .role_name("web-execution")
            .policy_name("secretwire")
            .policy_document(i.clone())
            .build()
            .unwrap()
    });
    let attached = mock!(aws_sdk_iam::Client::list_attached_role_policies).then_output(|| {
        ListAttachedRolePoliciesOutput::builder()
            .attached_policies(AttachedPolicy::builder().policy_arn("arn:aws:iam::aws:policy/x").build())
            .is_truncated(false)
            .build()
    });
    let client = iam(&[&get_role, &get_policy, &attached]);
    let role = read_role(&client, "web-execution").await.unwrap().unwrap();
    assert!(role.trust.matches(&trust), "{}", role.trust);
    assert!(role.inline_policy.as_ref().unwrap().matches(&inline));
    assert_eq!(role.tags["secretwire.dev/managed-by"], "default");
    assert!(role.managed_policy_arns.contains("arn:aws:iam::aws:policy/x"));
}

#[tokio::test]
async fn a_missing_role_is_none_and_throttling_is_transient() {
    let missing = mock!(aws_sdk_iam::Client::get_role).then_http_response(|| {
        Response::new(
            StatusCode::try_from(404).unwrap(),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role with name x cannot be found.</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            ),
        )
    });
    assert!(read_role(&iam(&[&missing]), "x").await.unwrap().is_none());

    let throttled = mock!(aws_sdk_iam::Client::get_role).then_http_response(|| {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            ),
        )
    });
    let err = read_role(&iam(&[&throttled]), "x").await.unwrap_err();
    assert!(err.transient, "{err}");
    assert_eq!(err.code.as_deref(), Some("Throttling"));
}

#[tokio::test]
async fn many_roles_are_read_in_one_authorization_details_call() {
    use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
    use aws_sdk_iam::types::{PolicyDetail, RoleDetail};
    let scope = Scope::new("us-east-1", "123456789012");
    let trust = url_encode(&policy::execution_trust(&scope));
    let inline = url_encode(&serde_json::json!({"Version": "2012-10-17", "Statement": []}));
    let gaad = mock!(aws_sdk_iam::Client::get_account_authorization_details).then_output(move || {
        let roles = (0..12).map(|i| {
            RoleDetail::builder()
                .role_name(format!("svc-{i}-execution"))
                .arn(format!("arn:aws:iam::123456789012:role/svc-{i}-execution"))
                .assume_role_policy_document(trust.clone())
                .role_policy_list(
                    PolicyDetail::builder().policy_name("secretwire").policy_document(inline.clone()).build(),
                )
                .tags(Tag::builder().key("secretwire.dev/managed-by").value("default").build().unwrap())
                .build()
        });
        GetAccountAuthorizationDetailsOutput::builder()
            .set_role_detail_list(Some(roles.collect()))
            .is_truncated(false)
            .build()
    });
    let gone = mock!(aws_sdk_iam::Client::get_role).then_http_response(|| {
        Response::new(
            StatusCode::try_from(404).unwrap(),
            SdkBody::from("<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role with name svc-3-execution cannot be found.</Message></Error><RequestId>1</RequestId></ErrorResponse>"),
        )
    });
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let aws = super::Aws::for_tests(iam(&[&gaad, &gone]), scope.clone(), metrics);
    let w = super::observe::Wanted::roles_only((0..11).map(|i| format!("svc-{i}-execution")).collect());
    let slow = super::observe::SlowCache::new(std::time::Duration::from_secs(600));
    let roles = super::observe::roles_for_tests(&aws, &w, &slow).await.unwrap();
    assert_eq!(roles.len(), 11, "only the wanted roles");
    assert_eq!(gaad.num_calls(), 1);
    // Within the re-verify period the roles come from the cache ...
    let again = super::observe::roles_for_tests(&aws, &w, &slow).await.unwrap();
    assert_eq!(again, roles);
    assert_eq!(gaad.num_calls(), 1);
    // ... except one secretwire wrote, which is read again on its own (GetRole, not
    // GetAccountAuthorizationDetails); here someone deleted it meanwhile.
    slow.forget_role("svc-3-execution");
    let third = super::observe::roles_for_tests(&aws, &w, &slow).await.unwrap();
    assert_eq!((gaad.num_calls(), gone.num_calls()), (1, 1));
    assert_eq!(third.len(), 10);
    assert!(!third.contains_key("svc-3-execution"));
    let r = &roles["svc-3-execution"];
    assert!(r.trust.matches(&policy::execution_trust(&scope)));
    assert!(r.inline_policy.as_ref().unwrap().to_string().contains(r#""Version":"2012-10-17""#));
    assert_eq!(r.tags["secretwire.dev/managed-by"], "default");

    // The declared roles and every role the controller owns (prune's scan) come from one read.
    let fresh = super::observe::SlowCache::new(std::time::Duration::from_secs(600));
    let (declared, owned) = super::observe::roles_and_owned_for_tests(&aws, &w, &fresh).await.unwrap();
    assert_eq!((declared.len(), owned.len(), gaad.num_calls()), (11, 12, 2));
    let (_, again) = super::observe::roles_and_owned_for_tests(&aws, &w, &fresh).await.unwrap();
    assert_eq!((again.len(), gaad.num_calls()), (12, 2), "both cached until re-verified");
}

#[tokio::test]
async fn bounded_keeps_order_and_never_exceeds_its_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = std::sync::Arc::new(AtomicUsize::new(0));
    let peak = std::sync::Arc::new(AtomicUsize::new(0));
    let out = super::observe::bounded((0..50).collect::<Vec<u32>>(), 3, |i| {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            i * 2
        }
    })
    .await;
    assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    assert!(peak.load(Ordering::SeqCst) <= 3, "{}", peak.load(Ordering::SeqCst));
}

fn ecs(rules: &[&Rule]) -> aws_sdk_ecs::Client {
    mocked!(aws_sdk_ecs, rules)
}

fn service_with_primary(id: &str) -> aws_sdk_ecs::types::Service {
    aws_sdk_ecs::types::Service::builder()
        .service_name("web")
        .deployments(aws_sdk_ecs::types::Deployment::builder().id(id).status("PRIMARY").build())
        .build()
}

fn aws_with_ecs(ecs: aws_sdk_ecs::Client) -> super::Aws {
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let mut aws = super::Aws::for_tests(iam(&[]), Scope::new("us-east-1", "123456789012"), metrics);
    aws.ecs = ecs;
    aws
}

/// A 500 after ECS started the deployment: seen in DescribeServices, not sent again.
#[tokio::test]
async fn a_forced_deployment_whose_answer_was_lost_is_not_sent_twice() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, Some(r#"{"__type":"ServerException","message":"internal"}"#.into()))
        .build();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().services(service_with_primary("ecs-svc/new")).build());
    let aws = aws_with_ecs(ecs(&[&update, &describe]));
    let id = crate::aws::write::force_new_deployment(&aws, "prod", "web", Some("ecs-svc/old")).await.unwrap();
    assert_eq!(id.as_deref(), Some("ecs-svc/new"));
    assert_eq!(update.num_calls(), 1, "one UpdateService: the first one took effect");
}

/// A 500 that did not take effect (PRIMARY unchanged), and a throttling
/// error: both sent again, until ECS answers.
#[tokio::test]
async fn a_forced_deployment_that_did_not_happen_is_sent_again() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, Some(r#"{"__type":"ServerException","message":"internal"}"#.into()))
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .output(|| UpdateServiceOutput::builder().service(service_with_primary("ecs-svc/new")).build())
        .build();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().services(service_with_primary("ecs-svc/old")).build());
    let aws = aws_with_ecs(ecs(&[&update, &describe]));
    let id = crate::aws::write::force_new_deployment(&aws, "prod", "web", Some("ecs-svc/old")).await.unwrap();
    assert_eq!(id.as_deref(), Some("ecs-svc/new"));
    assert_eq!(update.num_calls(), 3);
    assert_eq!(describe.num_calls(), 1, "only the ambiguous failure is checked");
}

/// Real AWS reports change times to the millisecond (moto's Secrets Manager
/// to the second): both are read as they are; a value that cannot be read is
/// left out, so its readers are redeployed rather than guessed fresh.
#[tokio::test]
async fn change_times_are_read_to_the_millisecond_and_an_unreadable_value_is_left_out() {
    use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
    use aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput;
    use aws_sdk_ssm::types::ParameterMetadata;
    use aws_smithy_types::DateTime;

    use crate::events::ChangedValue;
    let describe_parameters = mock!(aws_sdk_ssm::Client::describe_parameters).then_output(|| {
        DescribeParametersOutput::builder()
            .parameters(
                ParameterMetadata::builder()
                    .name("/web/db")
                    .last_modified_date(DateTime::from_millis(1_707_237_828_250))
                    .build(),
            )
            .build()
    });
    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf";
    let describe_secret = mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .match_requests(|r| r.secret_id() == Some(ARN))
        .then_output(|| {
            DescribeSecretOutput::builder().last_changed_date(DateTime::from_millis(1_707_237_828_731)).build()
        });
    let denied = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_http_response(|| {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"AccessDeniedException","message":"not allowed"}"#),
        )
    });
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let mut aws = super::Aws::for_tests(iam(&[]), Scope::new("us-east-1", "123456789012"), metrics);
    aws.ssm = mocked!(aws_sdk_ssm, [&describe_parameters]);
    aws.secrets = mocked!(aws_sdk_secretsmanager, [&describe_secret, &denied]);
    let values = [
        ChangedValue::Parameter("/web/db".into()),
        ChangedValue::Secret(ARN.into()),
        ChangedValue::Secret("web/other".into()),
        ChangedValue::Parameter("/web/missing".into()),
    ];
    let times = super::observe::last_change_times(&aws, &values.iter().cloned().collect(), 2).await;
    assert_eq!(times.get(&values[0]), Some(&1_707_237_828.25));
    assert_eq!(times.get(&values[1]), Some(&1_707_237_828.731));
    assert_eq!(times.len(), 2, "denied and missing values are left out: {times:?}");
    assert_eq!(describe_parameters.num_calls(), 1, "two names, one call");
}
