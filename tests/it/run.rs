//! `secretwire run` against moto with real EventBridge -> SQS delivery.

use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use crate::faultproxy::{FaultProxy, Faults};
use crate::harness::*;

const QUEUE: &str = "secretwire-default-events";
const DLQ: &str = "secretwire-default-events-dlq";

/// Adds to the worker a reference to web/api with this pin (`versionStage: X` or `versionId: X`).
fn pin_worker(repo: &tempfile::TempDir, pin: &str) {
    let p = repo.path().join("services/worker.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let pinned = format!("      secrets:\n        - name: API_PINNED\n          secret: web/api\n          {pin}\n");
    std::fs::write(&p, text.replace("      secrets:\n", &pinned)).unwrap();
}

/// A version id pin never moves.
const FIXED: &str = "versionId: 01234567-89ab-cdef-0123-456789abcdef";

#[tokio::test]
async fn a_rotation_redeploys_exactly_the_services_that_read_the_value() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    pin_worker(&repo, FIXED);
    applied_and_rolled_out(&moto, &repo).await;
    let sdk = moto.sdk().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    assert_eq!(run.redeploys("web") + run.redeploys("worker"), 0, "nothing stale after a roll-out:\n{}", run.log());
    let (web0, worker0) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await);

    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("web's redeploy", 30, run, deployment_id(&sdk, "web").await != web0);
    eventually!("the message to be deleted", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    assert_eq!(deployment_id(&sdk, "worker").await, worker0, "worker reads web/api only fixed to a version id");
    assert_eq!(run.redeploys("web"), 1);
    assert_eq!(run.redeploys("worker"), 0);

    let status = run.status();
    let web = &status["objects"]["Service/web"];
    assert_eq!(web["lastRedeploy"]["reason"], "rotation");
    assert!(web["lastRedeploy"]["trigger"].as_str().unwrap().contains("web/api"), "{web}");
    assert_eq!(web["lastRedeploy"]["deploymentId"], deployment_id(&sdk, "web").await);
    assert_eq!(web["conditions"][0]["type"], "Ready");
    assert_eq!(web["conditions"][0]["status"], "True");
    assert!(web["lastAppliedRevision"].as_str().unwrap().contains("web:2"), "{web}");
    assert_eq!(run.metric("secretwire_redeploys_total{reason=\"rotation\"}"), 1.0);
    assert_eq!(run.metric("secretwire_events_total{outcome=\"matched\"}"), 1.0);
    assert!(run.metric("secretwire_aws_calls_total{service=\"ECS\",operation=\"UpdateService\"}") >= 1.0);
    assert_eq!(run.get("/healthz").0, 200);

    // A parameter change reaches both readers.
    let (web1, worker1) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await);
    publish_parameter_update(&sdk, "/web/database-password").await;
    eventually!("both readers of the parameter", 30, run, {
        deployment_id(&sdk, "web").await != web1 && deployment_id(&sdk, "worker").await != worker1
    });
    let (code, _) = run.stop();
    assert_eq!(code, 0);
}

/// A reader pinned to a staging label follows that label: a rotation (which
/// moves AWSCURRENT and AWSPREVIOUS) leaves a `PROD` reader alone; moving
/// `PROD` redeploys exactly it.
#[tokio::test]
async fn a_label_pin_is_redeployed_when_its_label_moves_and_only_then() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    pin_worker(&repo, "versionStage: PROD");
    applied_and_rolled_out(&moto, &repo).await;
    let sdk = moto.sdk().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    let (web0, worker0) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await);
    let api = secret_arn(&sdk, "web/api").await;
    publish_rotation(&sdk, &api).await;
    eventually!("web's redeploy", 30, run, deployment_id(&sdk, "web").await != web0);
    eventually!("the rotation handled", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    assert_eq!(deployment_id(&sdk, "worker").await, worker0, "PROD did not move");
    let web1 = deployment_id(&sdk, "web").await;
    put_event(
        &sdk,
        "aws.secretsmanager",
        "Secret Label Updated",
        serde_json::json!({"name": "web/api", "labelUpdated": "PROD", "versionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}),
    )
    .await;
    eventually!("worker's redeploy", 30, run, deployment_id(&sdk, "worker").await != worker0);
    eventually!("the label event handled", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    assert_eq!(deployment_id(&sdk, "web").await, web1, "web reads AWSCURRENT, which did not move");
    assert_eq!((run.redeploys("web"), run.redeploys("worker")), (1, 1), "{}", run.log());
}

#[tokio::test]
async fn five_events_for_two_values_within_the_debounce_window_make_one_deployment() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "4s"]);
    run.wait_ready();
    let api = secret_arn(&sdk, "web/api").await;
    let splunk = secret_arn(&sdk, "web/splunk-token").await;
    for arn in [&api, &splunk, &api, &splunk, &api] {
        publish_rotation(&sdk, arn).await;
    }
    eventually!("all five messages handled", 40, run, {
        run.metric("secretwire_events_total{outcome=\"matched\"}") == 5.0 && queue_depth(&sdk, QUEUE).await == 0
    });
    assert_eq!(run.redeploys("web"), 1, "{}", run.log());
    assert_eq!(run.metric("secretwire_aws_calls_total{service=\"ECS\",operation=\"UpdateService\"}"), 1.0);
    assert_eq!(run.redeploys("worker"), 0);
    let trigger = run.status()["objects"]["Service/web"]["lastRedeploy"]["trigger"].as_str().unwrap().to_string();
    assert!(trigger.contains("web/api") && trigger.contains("web/splunk-token"), "{trigger}");
    assert_eq!(run.stop().0, 0);
}

#[tokio::test]
async fn a_duplicate_delivery_makes_no_second_deployment() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    // EventBridge delivers at least once: the same event body, twice.
    let body = serde_json::json!({
        "version": "0", "id": "0f4f6e6e-dup-dup-dup-000000000001", "detail-type": "Secret Label Updated",
        "source": "aws.secretsmanager", "account": "123456789012", "region": "us-east-1",
        "time": crate::harness::rfc3339_now(), "resources": [secret_arn(&sdk, "web/api").await],
        "detail": {"name": "web/api", "labelUpdated": "AWSCURRENT", "versionId": "v2"}
    })
    .to_string();
    send_to_queue(&sdk, QUEUE, &body).await;
    eventually!("the first delivery's redeploy", 30, run, run.redeploys("web") == 1);
    send_to_queue(&sdk, QUEUE, &body).await;
    eventually!("the duplicate to be handled", 30, run, {
        run.metric("secretwire_events_total{outcome=\"duplicate\"}") == 1.0 && queue_depth(&sdk, QUEUE).await == 0
    });
    assert_eq!(run.redeploys("web"), 1, "{}", run.log());
    assert_eq!(run.stop().0, 0);
}

#[tokio::test]
async fn a_redeploy_that_keeps_failing_leaves_the_message_until_the_dead_letter_queue() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s", "--max-receives", "2", "--failure-backoff", "1s"]);
    run.wait_ready();
    // The service disappears behind the controller's back: every redeploy fails.
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    ecs.delete_service().cluster("prod").service("web").force(true).send().await.unwrap();
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("a failed redeploy", 30, run, run.metric("secretwire_errors_total{result=\"redeploy\"}") >= 1.0);
    assert!(queue_depth(&sdk, QUEUE).await + queue_depth(&sdk, DLQ).await == 1, "the message is kept");
    eventually!("the message in the DLQ", 60, run, queue_depth(&sdk, DLQ).await == 1);
    assert_eq!(queue_depth(&sdk, QUEUE).await, 0);
    let web = &run.status()["objects"]["Service/web"];
    assert_eq!(web["conditions"][1]["status"], "False", "{web}");
    assert_eq!(run.stop().0, 0);
}

#[tokio::test]
async fn a_value_changed_while_stopped_is_redeployed_once_by_the_backstop() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let first = moto.start_run(repo.path(), &[]);
    first.wait_ready();
    assert_eq!(first.redeploys("web"), 0);
    assert_eq!(first.stop().0, 0);

    // Rotated while nobody listened (and no event will ever arrive).
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.put_secret_value()
        .secret_id("web/splunk-token")
        .secret_string("rotated-while-down-0123456789")
        .send()
        .await
        .unwrap();
    let (web0, worker0) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await);

    let second = moto.start_run(repo.path(), &["--resync-interval", "1s", "--no-events"]);
    second.wait_ready();
    assert_ne!(deployment_id(&sdk, "web").await, web0, "redeployed at startup");
    assert_eq!(deployment_id(&sdk, "worker").await, worker0, "worker does not read web/splunk-token");
    let web = &second.status()["objects"]["Service/web"];
    assert_eq!(web["lastRedeploy"]["reason"], "stale");
    assert!(web["lastRedeploy"]["trigger"].as_str().unwrap().contains("web/splunk-token"));
    // Three more passes: no redeploy loop, and roles are not re-read every pass.
    let get_role = |r: &Running| {
        r.metric("secretwire_aws_calls_total{service=\"IAM\",operation=\"GetRole\"}")
            + r.metric("secretwire_aws_calls_total{service=\"IAM\",operation=\"GetAccountAuthorizationDetails\"}")
    };
    let roles_read = get_role(&second);
    assert!(roles_read > 0.0);
    second.wait_passes(3);
    assert_eq!(second.redeploys("web"), 1);
    assert_eq!(second.metric("secretwire_redeploys_total{reason=\"stale\"}"), 1.0);
    assert_eq!(get_role(&second), roles_read, "roles are re-verified on --reverify-interval, not every pass");
    assert_eq!(second.stop().0, 0);
}

#[tokio::test]
async fn a_manifest_edit_is_picked_up_without_restart_and_a_bad_edit_keeps_the_last_good_state() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--no-events", "--resync-interval", "1s"]);
    run.wait_ready();
    let worker = repo.path().join("services/worker.yaml");
    let text = std::fs::read_to_string(&worker).unwrap();
    std::fs::write(
        &worker,
        text.replace(
            "      secrets:\n",
            "      secrets:\n        - name: SPLUNK\n          secret: web/splunk-token\n",
        ),
    )
    .unwrap();
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let running = |ecs: aws_sdk_ecs::Client| async move {
        let out = ecs.describe_services().cluster("prod").services("worker").send().await.unwrap();
        secretwire::arn::task_definition_short(out.services()[0].task_definition().unwrap()).to_string()
    };
    eventually!("worker:3 from the edited manifest", 30, run, running(ecs.clone()).await == "worker:3");
    // The role's new grant was written once: the cached role was forgotten when
    // secretwire wrote it, so later passes compare against what it wrote.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let doc = iam.get_role_policy().role_name("worker-execution").policy_name("secretwire").send().await.unwrap();
    assert!(doc.policy_document().contains("web/splunk-token"), "{}", doc.policy_document());
    let puts = run.metric("secretwire_aws_calls_total{service=\"IAM\",operation=\"PutRolePolicy\"}");
    run.wait_passes(3);
    assert_eq!(
        run.metric("secretwire_aws_calls_total{service=\"IAM\",operation=\"PutRolePolicy\"}"),
        puts,
        "no rewrite per pass"
    );

    // A broken edit: reported, the last good state kept, nothing deleted.
    std::fs::write(
        &worker,
        "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata:\n  name: worker\nspec:\n  clustr: prod\n",
    )
    .unwrap();
    eventually!(
        "the manifest error on /status",
        30,
        run,
        !run.status()["manifestErrors"].as_array().unwrap().is_empty()
    );
    let status = run.status();
    assert!(status["manifestErrors"][0].as_str().unwrap().contains("unknown field `clustr`"));
    assert_eq!(status["objects"]["Service/worker"]["conditions"][0]["reason"], "InvalidManifest");
    assert_eq!(running(ecs.clone()).await, "worker:3");
    // Still so after further passes on the last good version.
    run.wait_passes(1);
    assert_eq!(run.status()["objects"]["Service/worker"]["conditions"][0]["reason"], "InvalidManifest");
    assert_eq!(run.stop().0, 0);
}

#[tokio::test]
async fn sigterm_exits_0_and_a_held_message_is_not_lost() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "60s"]);
    run.wait_ready();
    let web0 = deployment_id(&sdk, "web").await;
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the event to be held for its debounce window", 30, run, {
        run.metric("secretwire_events_total{outcome=\"matched\"}") == 1.0
    });
    let started = Instant::now();
    let (code, log) = run.stop();
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(15), "stops promptly");
    assert!(log.contains("messages_returned_to_queue=1"), "{log}");
    assert_eq!(deployment_id(&sdk, "web").await, web0, "not redeployed before the window closed");
    assert_eq!(queue_depth(&sdk, QUEUE).await, 1, "the message is still on the queue");

    // The next controller acts on it.
    let next = moto.start_run(repo.path(), &["--debounce", "0s"]);
    next.wait_ready();
    eventually!("the redeploy after restart", 30, next, deployment_id(&sdk, "web").await != web0);
    eventually!("the message deleted", 30, next, queue_depth(&sdk, QUEUE).await == 0);
    assert_eq!(next.stop().0, 0);
}

/// `Service:Operation` of the call tally -> the IAM action that allows it.
/// `Service:Operation` as the product's metrics name it, as an IAM action.
fn iam_action(op: &str) -> Option<String> {
    let (service, name) = op.split_once(':')?;
    let prefix = match service {
        "ECS" => "ecs",
        "IAM" => "iam",
        "SSM" => "ssm",
        "Secrets Manager" => "secretsmanager",
        "KMS" => "kms",
        "SQS" => "sqs",
        "EventBridge" => "events",
        // sts:GetCallerIdentity needs no permission.
        "STS" if name == "GetCallerIdentity" => return None,
        other => panic!("unknown service {other}"),
    };
    // Batch forms are authorised by their single action.
    let name = name.strip_suffix("Batch").unwrap_or(name);
    Some(format!("{prefix}:{name}"))
}

/// IAM actions in `policy` that this scenario does not send, and why.
const NOT_EXERCISED: &[(&str, &str)] = &[
    // Authorised, never sent as such: tag-on-create, passing roles, KMS on our behalf.
    ("ssm:AddTagsToResource", "PutParameter with Tags is also authorised as AddTagsToResource"),
    ("secretsmanager:TagResource", "CreateSecret with Tags is also authorised as TagResource"),
    ("sqs:TagQueue", "CreateQueue with tags is also authorised as TagQueue"),
    ("events:TagResource", "PutRule with Tags is also authorised as TagResource"),
    ("iam:PassRole", "RegisterTaskDefinition with execution and task roles passes them to ECS"),
    ("kms:Encrypt", "SSM encrypts a new SecureString with the customer key on our behalf"),
    ("kms:GenerateDataKey", "Secrets Manager encrypts a new secret with the customer key on our behalf"),
    ("kms:Decrypt", "Secrets Manager needs it with GenerateDataKey for a customer key"),
    // Sent on paths this scenario does not take; each has its own test.
    // Roles are read by the owned-role scan (GetAccountAuthorizationDetails); one at a time only
    // when the scan is fresh (run's --reverify-interval), to diagnose a failed rollout, or after
    // a CreateRole answered EntityAlreadyExists.
    (
        "iam:GetRole",
        "one role read: run between scans, a failed rollout's diagnosis (rollouts::a_failed_rotation_rollout_…)",
    ),
    ("iam:GetRolePolicy", "one role read (as iam:GetRole)"),
    ("iam:ListAttachedRolePolicies", "one role read (as iam:GetRole)"),
    ("ssm:ListTagsForResource", "ownership check after a lost PutParameter answer (faults::apply_…)"),
    ("secretsmanager:DescribeSecret", "referenced secrets not declared here; a lost CreateSecret answer (faults)"),
    ("secretsmanager:UpdateSecret", "a declared description or key changed (apply::…)"),
    ("secretsmanager:RestoreSecret", "a secret scheduled for deletion declared again (lifecycle::…)"),
    ("sqs:ChangeMessageVisibility", "held messages returned on SIGTERM (run::sigterm_…)"),
    ("ecs:ListTasks", "a failed rollout's stopped tasks (rollouts::a_failed_rotation_rollout_…)"),
    ("ecs:DescribeTasks", "a failed rollout's stopped tasks (rollouts::a_failed_rotation_rollout_…)"),
];

/// Drift that the next apply repairs, so the repair calls are sent too.
async fn drift_for_every_repair(sdk: &aws_config::SdkConfig, repo: &tempfile::TempDir) {
    let iam = aws_sdk_iam::Client::new(sdk);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.update_assume_role_policy().role_name("web-execution").policy_document(trust).send().await.unwrap();
    let extra = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    iam.attach_role_policy().role_name("web-execution").policy_arn(extra).send().await.unwrap();
    iam.untag_role().role_name("web-execution").tag_keys("secretwire.dev/source").send().await.unwrap();
    // The task role's statements removed from the manifest: its inline policy goes.
    let web = repo.path().join("services/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    let start = text.find("    statements:").unwrap();
    let end = text[start..].find("  containers:").unwrap() + start;
    std::fs::write(&web, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

#[tokio::test]
async fn the_policy_allows_exactly_the_calls_the_product_makes_and_no_value_is_ever_read() {
    let moto = Moto::start();
    moto.bootstrap();
    // Every call goes through the proxy (no faults), which records what was really sent.
    let proxy = FaultProxy::start(moto.endpoint(), Faults::default(), 0);
    let through_proxy = |args: &[&str]| {
        let mut cmd = moto.command();
        cmd.env("AWS_ENDPOINT_URL", &proxy.url).env("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS).args(args);
        Run::from(cmd.output().unwrap())
    };
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    let mut reported: BTreeSet<String> = Default::default();
    let sdk = moto.sdk().await;
    for pass in 0..2 {
        let apply = through_proxy(&["apply", "-m", &dir, "--output", "json"]);
        apply.assert_code(0);
        reported.extend(apply.json()["awsCalls"].as_object().unwrap().keys().filter_map(|op| iam_action(op)));
        if pass == 0 {
            drift_for_every_repair(&sdk, &repo).await;
        }
    }
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let run = start_run_with(cmd, repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    // On AWS (and in AWS-shape mode) apply's update started a deployment just
    // now: the rotation comes a second later, so that one does not serve it.
    tick_past_a_second();
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the rotation", 30, run, run.redeploys("web") >= 1 && queue_depth(&sdk, QUEUE).await == 0);
    for line in run.get("/metrics").1.lines().filter(|l| l.starts_with("secretwire_aws_calls_total{")) {
        let service = line.split("service=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
        let operation = line.split("operation=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
        reported.extend(iam_action(&format!("{service}:{operation}")));
    }
    assert_eq!(run.stop().0, 0);

    // What the proxy saw, as IAM actions (the service is the SigV4 signing name).
    let sent = sent_actions(&proxy);
    assert!(sent.len() > 20, "the scenario exercised the product: {sent:?}");
    for repair in ["iam:UpdateAssumeRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRolePolicy", "iam:TagRole"] {
        assert!(sent.contains(repair), "the drift was repaired with {repair}: {sent:?}");
    }
    assert_eq!(sent, reported, "the product's call metrics count every call it sends");
    for forbidden in
        ["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "ssm:GetParameter", "ssm:GetParameters"]
    {
        assert!(!sent.contains(forbidden), "the product read a value with {forbidden}");
    }

    let policy = through_proxy(&["policy", "-m", &dir]);
    policy.assert_code(0);
    let doc = policy.json();
    let allowed = policy_actions(&doc);
    let missing: Vec<&String> = sent.difference(&allowed).collect();
    assert!(missing.is_empty(), "`secretwire policy` does not allow actions the product uses: {missing:?}");
    let unused: Vec<&String> =
        allowed.difference(&sent).filter(|a| !NOT_EXERCISED.iter().any(|(n, _)| n == a)).collect();
    assert!(unused.is_empty(), "`secretwire policy` allows actions the product never used here: {unused:?}");
    assert!(!doc.to_string().contains("GetSecretValue"), "the controller itself never needs GetSecretValue");
}

#[tokio::test]
async fn a_rotation_redeploys_once_and_later_resyncs_do_not_deploy_again() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s", "--resync-interval", "1s"]);
    run.wait_ready();
    // A real value change, then its event, as Secrets Manager would send it.
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.put_secret_value()
        .secret_id("web/api")
        .secret_string(r#"{"username":"web-app","password":"rotated-0123456789"}"#)
        .send()
        .await
        .unwrap();
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the rotation redeploy", 30, run, run.redeploys("web") == 1);
    run.wait_passes(3);
    assert_eq!(run.redeploys("web"), 1, "the backstop must not deploy again for the same change:\n{}", run.log());
    assert_eq!(run.metric("secretwire_redeploys_total{reason=\"stale\"}"), 0.0);
    assert_eq!(run.stop().0, 0);
}

const PARAM: &str = "/web/database-password";

/// A `Parameter Store Change` for PARAM, stamped with the whole second `at`.
fn parameter_update(id: &str, at: f64) -> String {
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "region": "us-east-1", "time": secretwire::events::format_rfc3339(at),
        "resources": ["arn:aws:ssm:us-east-1:123456789012:parameter/web/database-password"],
        "detail": {"operation": "Update", "name": PARAM, "type": "SecureString"}
    })
    .to_string()
}

/// A new value for PARAM, written as a human or a rotation would.
async fn change_parameter(sdk: &aws_config::SdkConfig, n: u32) {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let put = ssm.put_parameter().name(PARAM).value(format!("changed-by-a-human-{n}"));
    put.r#type(aws_sdk_ssm::types::ParameterType::SecureString).overwrite(true).send().await.unwrap();
}

/// Changes PARAM, then deploys its two readers (a pipeline, say), all within
/// one wall-clock second, tried again when the calls straddle one. Returns that second.
async fn change_then_deploy_within_a_second(sdk: &aws_config::SdkConfig) -> f64 {
    for n in 0..5 {
        at_the_start_of_a_second();
        change_parameter(sdk, n).await;
        force_deployment(sdk, "web").await;
        force_deployment(sdk, "worker").await;
        let changed = parameter_changed_at(sdk, PARAM).await;
        let starts = [deployment_start(sdk, "web").await, deployment_start(sdk, "worker").await];
        if changed.fract() != 0.0 && starts.iter().all(|s| s.floor() == changed.floor() && *s > changed) {
            return changed.floor();
        }
    }
    panic!("the change and both deployments within one second, in five tries");
}

#[tokio::test]
async fn an_event_in_the_same_second_as_a_deployment_is_told_apart_by_the_precise_change_time() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    let reads = |r: &Running| r.metric("secretwire_aws_calls_total{service=\"SSM\",operation=\"DescribeParameters\"}");

    // The event, stamped with the whole second of the change, is already served.
    let at = change_then_deploy_within_a_second(&sdk).await;
    let (web0, worker0, reads0) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await, reads(&run));
    send_to_queue(&sdk, QUEUE, &parameter_update("same-second-change-then-deploy", at)).await;
    eventually!("the event handled", 30, run, {
        run.metric("secretwire_events_total{outcome=\"fresh\"}") == 2.0 && queue_depth(&sdk, QUEUE).await == 0
    });
    assert_eq!((run.redeploys("web"), run.redeploys("worker")), (0, 0), "{}", run.log());
    assert_eq!(deployment_id(&sdk, "web").await, web0);
    assert_eq!(deployment_id(&sdk, "worker").await, worker0);
    // One listing of the change time serves both readers (behind the AWS-shape
    // proxy a listing is two pages: an empty one with a NextToken, then moto's).
    let per_listing = if aws_shape_mode() { 2.0 } else { 1.0 };
    assert_eq!(reads(&run), reads0 + per_listing, "one read of the change time serves both readers");

    // A deployment, then the value, within one second: the deployment is
    // older than the change, and the event redeploys.
    tick_past_a_second();
    let mut second = None;
    for n in 10..15 {
        at_the_start_of_a_second();
        force_deployment(&sdk, "web").await;
        change_parameter(&sdk, n).await;
        let changed = parameter_changed_at(&sdk, PARAM).await;
        let start = deployment_start(&sdk, "web").await;
        if changed.fract() != 0.0 && start.floor() == changed.floor() && start < changed {
            second = Some(changed.floor());
            break;
        }
    }
    let at = second.expect("a deployment and then the change within one second, in five tries");
    let reads0 = reads(&run);
    send_to_queue(&sdk, QUEUE, &parameter_update("same-second-deploy-then-change", at)).await;
    eventually!("both readers redeployed", 30, run, run.redeploys("web") == 1 && run.redeploys("worker") == 1);
    eventually!("the message deleted", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    assert_eq!(reads(&run), reads0 + per_listing, "only web started within the event's second");
    assert_eq!(run.metric("secretwire_events_total{outcome=\"fresh\"}"), 2.0);
    assert_eq!(run.stop().0, 0);

    // The backstop compares precise change times as they are: a deployment
    // that started after the change, within its second, is not stale.
    change_then_deploy_within_a_second(&sdk).await;
    let backstop = moto.start_run(repo.path(), &["--no-events", "--resync-interval", "1s"]);
    backstop.wait_ready();
    backstop.wait_passes(2);
    assert_eq!((backstop.redeploys("web"), backstop.redeploys("worker")), (0, 0), "{}", backstop.log());
    assert_eq!(backstop.stop().0, 0);
}

/// An event found already served answers only the changes made before that
/// deployment started: a later change within the same second, whose event is
/// lost, is still redeployed by the backstop.
#[tokio::test]
async fn a_change_after_an_already_served_event_in_the_same_second_is_still_caught_by_the_backstop() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    let fresh = |r: &Running| r.metric("secretwire_events_total{outcome=\"fresh\"}");
    let mut within_one_second = false;
    for n in 0..5 {
        let at = change_then_deploy_within_a_second(&sdk).await;
        let before = fresh(&run);
        send_to_queue(&sdk, QUEUE, &parameter_update(&format!("served-{n}"), at)).await;
        eventually!("the event found served", 30, run, fresh(&run) == before + 2.0);
        // Changed again; this change's event is lost.
        change_parameter(&sdk, 100 + n).await;
        if parameter_changed_at(&sdk, PARAM).await.floor() == at {
            within_one_second = true;
            break;
        }
    }
    assert!(within_one_second, "change, deployments, event and change again within one second, in five tries");
    assert_eq!((run.redeploys("web"), run.redeploys("worker")), (0, 0), "{}", run.log());
    // A manifest edit starts a pass at once.
    let web = repo.path().join("services/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    std::fs::write(&web, text + "# touched\n").unwrap();
    eventually!("the backstop's redeploys", 30, run, run.redeploys("web") == 1 && run.redeploys("worker") == 1);
    assert_eq!(run.metric("secretwire_redeploys_total{reason=\"stale\"}"), 2.0);
    assert_eq!(run.stop().0, 0);
}

/// What a new user meets with the example manifests and `REGISTRY_CREDENTIALS`
/// unset: the secret that cannot be created says so with a specific reason on
/// both conditions, the service that needs it is blocked (no revision with a
/// guessed ARN), readiness is one answer everywhere, and the failed write is
/// not tried again at every pass.
#[tokio::test]
async fn a_terminal_failure_is_reported_with_its_reason_and_not_retried_at_every_pass() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let mut cmd = moto.command();
    cmd.env_remove("REGISTRY_CREDENTIALS");
    let run = start_run_with(cmd, repo.path(), &["--no-events", "--resync-interval", "1s"]);
    run.wait_ready();
    let status = run.status();
    assert_eq!(status["ready"], true, "/readyz, /status and the log agree");
    assert!(run.log().contains("Ready"));
    let secret = &status["objects"]["Secret/registry/dockerhub"];
    for c in secret["conditions"].as_array().unwrap() {
        assert_eq!(c["status"], "False", "{secret}");
        assert_eq!(c["reason"], "MissingEnvironmentVariable", "{secret}");
        assert!(c["message"].as_str().unwrap().contains("REGISTRY_CREDENTIALS"), "{secret}");
    }
    let worker = &status["objects"]["Service/worker"];
    assert_eq!(worker["conditions"][0]["status"], "False", "{worker}");
    assert_eq!(worker["conditions"][0]["reason"], "Blocked", "{worker}");
    assert!(worker["conditions"][0]["message"].as_str().unwrap().contains("Secret/registry/dockerhub"), "{worker}");
    // web does not read the registry secret: it is applied all the same.
    assert_eq!(status["objects"]["Service/web"]["conditions"][0]["status"], "True", "{status}");

    // Three more passes: the same failing write is held, not sent again.
    const PASSES: &str = "secretwire_reconcile_duration_seconds_count";
    let (passes, errors) = (run.metric(PASSES), run.metric("secretwire_errors_total{result=\"apply\"}"));
    assert_eq!(errors, 1.0, "{}", run.log());
    run.wait_for("three more passes", Duration::from_secs(30), |r| r.metric(PASSES) >= passes + 3.0);
    assert_eq!(run.metric("secretwire_errors_total{result=\"apply\"}"), 1.0, "{}", run.log());
    assert_eq!(run.log().matches("Apply failed").count(), 1, "{}", run.log());
    let secret = &run.status()["objects"]["Secret/registry/dockerhub"];
    assert!(secret["conditions"][0]["message"].as_str().unwrap().contains("not sent again"), "{secret}");

    // No revision of the worker's family was registered with a guessed ARN.
    let sdk = moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let revs = ecs.list_task_definitions().family_prefix("worker").send().await.unwrap();
    for arn in revs.task_definition_arns() {
        let td = ecs.describe_task_definition().task_definition(arn).send().await.unwrap();
        let text = format!("{:?}", td.task_definition());
        assert!(!text.contains("??????"), "{arn} holds a guessed ARN");
    }
}

/// EventBridge drops an event it may not deliver. So the queue policies exist
/// before any rule points at the queue, and every target carries a
/// DeadLetterConfig to the DLQ, whose policy lets the same rules send: an
/// event refused later is kept, not lost without trace.
#[tokio::test]
async fn the_event_plumbing_allows_delivery_before_targets_exist_and_keeps_undeliverable_events() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.endpoint(), Faults::default(), 0);
    let repo = example_repo();
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let run = start_run_with(cmd, repo.path(), &[]);
    run.wait_ready();
    let (code, log) = run.stop();
    assert_eq!(code, 0, "{log}");
    let calls: Vec<String> = proxy.calls().iter().map(|c| c.operation.clone()).collect();
    let last_policy = calls.iter().rposition(|o| o == "SetQueueAttributes").expect("queue policies set");
    let first_target = calls.iter().position(|o| o == "PutTargets").expect("targets put");
    assert!(last_policy < first_target, "targets before policies: {calls:?}");

    let sdk = moto.sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attr = |url: String, name: aws_sdk_sqs::types::QueueAttributeName| {
        let sqs = sqs.clone();
        async move {
            let out = sqs.get_queue_attributes().queue_url(url).attribute_names(name.clone()).send().await.unwrap();
            out.attributes().unwrap().get(&name).cloned().unwrap()
        }
    };
    let dlq_url = sqs.get_queue_url().queue_name(DLQ).send().await.unwrap().queue_url().unwrap().to_string();
    let dlq_arn = attr(dlq_url.clone(), aws_sdk_sqs::types::QueueAttributeName::QueueArn).await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let mut rule_arns = Vec::new();
    for suffix in ["secretsmanager", "ssm", "deployments"] {
        let rule = format!("secretwire-default-{suffix}");
        let targets = events.list_targets_by_rule().rule(&rule).send().await.unwrap();
        let t = &targets.targets()[0];
        assert_eq!(t.dead_letter_config().and_then(|d| d.arn()), Some(dlq_arn.as_str()), "{rule}");
        rule_arns.push(events.describe_rule().name(&rule).send().await.unwrap().arn().unwrap().to_string());
    }
    let policy: serde_json::Value =
        serde_json::from_str(&attr(dlq_url, aws_sdk_sqs::types::QueueAttributeName::Policy).await).unwrap();
    let st = &policy["Statement"][0];
    assert_eq!(st["Principal"]["Service"], "events.amazonaws.com");
    let mut allowed: Vec<String> =
        serde_json::from_value(st["Condition"]["ArnEquals"]["aws:SourceArn"].clone()).unwrap();
    allowed.sort();
    rule_arns.sort();
    assert_eq!(allowed, rule_arns, "only our rules may send to the DLQ");
}
