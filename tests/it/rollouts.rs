//! Rollouts followed to their end: moto never advances or fails a
//! deployment, so the proxy drives them (`awsshape::Script`: DescribeServices
//! answers rewritten as AWS documents a failure or a circuit-breaker
//! rollback, and the failed deployment's stopped tasks answered), and ECS
//! deployment events are put on the bus as ECS sends them.

use std::time::{Duration, Instant};

use crate::awsshape::{BREAKER_FAILED, Script, Shape};
use crate::faultproxy::FaultProxy;
use crate::harness::*;

const QUEUE: &str = "secretwire-default-events";

/// A proxy that can script rollouts (and shapes everything else as AWS does in that mode).
fn scripting_proxy(moto: &Moto) -> FaultProxy {
    let shape = if aws_shape_mode() { Shape::aws() } else { Shape::scripted_only() };
    FaultProxy::start_shaped(&moto.url, Default::default(), 0, Some(shape))
}

fn run_through(moto: &Moto, proxy: &FaultProxy, repo: &tempfile::TempDir, args: &[&str]) -> Running {
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let run = start_run_with(cmd, repo.path(), args);
    run.wait_ready();
    run
}

/// The demo rolled out, `run` started through a scripting proxy, web's
/// deployments scripted, then web/api rotated and web's redeploy started.
async fn rotate_web(
    script: Script,
    args: &[&str],
) -> (Moto, tempfile::TempDir, aws_config::SdkConfig, FaultProxy, Running) {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &[&["--debounce", "0s"], args].concat());
    proxy.script("web", script);
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("web's redeploy", 30, run, run.redeploys("web") == 1);
    (moto, repo, sdk, proxy, run)
}

/// No value of the demo in `text`.
async fn assert_no_value(text: &str, sdk: &aws_config::SdkConfig) {
    for v in generated_values(sdk).await {
        assert!(!text.contains(v.as_str()), "a value leaked");
    }
}

fn condition(status: &serde_json::Value, service: &str, kind: &str) -> (String, String, String) {
    let c = status["objects"][format!("Service/{service}")]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}

fn last_rollout(run: &Running, service: &str) -> serde_json::Value {
    run.status()["objects"][format!("Service/{service}")]["lastRollout"].clone()
}

/// An "ECS Deployment State Change" event as ECS sends it (ECS developer guide example).
async fn deployment_event(sdk: &aws_config::SdkConfig, service: &str, deployment: &str, name: &str, reason: &str) {
    let ev = aws_sdk_eventbridge::Client::new(sdk);
    let detail = serde_json::json!({"eventType": if name.ends_with("FAILED") { "ERROR" } else { "INFO" },
        "eventName": name, "deploymentId": deployment, "updatedAt": rfc3339_now(), "reason": reason});
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("aws.ecs")
        .detail_type("ECS Deployment State Change")
        .resources(format!("arn:aws:ecs:us-east-1:123456789012:service/prod/{service}"))
        .detail(detail.to_string())
        .build();
    let out = ev.put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count(), 0);
}

/// ECS's reason for a task whose execution role may not read `secret` (public reports of it, e.g.
/// the ones quoted in the diagnosis unit tests); the role named is not the service's.
fn denied(secret_arn: &str) -> String {
    DENIED.replace("arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf", secret_arn)
}

const DENIED: &str = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource \
    retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch \
    secret arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf from secrets manager: \
    AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ecsTaskExecutionRole/4b1d is not authorized \
    to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf";

#[tokio::test]
async fn a_rotation_rollout_is_followed_to_completion_by_its_ecs_event_and_without_one() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s"]);
    assert_eq!(condition(&run.status(), "web", "Progressing").1, "NoRollout");
    assert_eq!(run.metric("secretwire_rollouts_in_progress"), 0.0);

    // The ECS event ends it as soon as it arrives.
    proxy.script("web", Script::Hang);
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("web's redeploy", 30, run, run.redeploys("web") == 1);
    let id = last_rollout(&run, "web")["deploymentId"].as_str().unwrap().to_string();
    assert_eq!(id, deployment_id(&sdk, "web").await);
    let (status, reason, _) = condition(&run.status(), "web", "Progressing");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NewDeployment"));
    assert_eq!(run.metric("secretwire_rollouts_in_progress"), 1.0);
    deployment_event(&sdk, "web", &id, "SERVICE_DEPLOYMENT_COMPLETED", &format!("ECS deployment {id} completed."))
        .await;
    eventually!("the completed rollout", 30, run, last_rollout(&run, "web")["outcome"] == "Completed");
    let (status, reason, _) = condition(&run.status(), "web", "Progressing");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RolloutCompleted"));
    assert_eq!(condition(&run.status(), "web", "Degraded").0, "False");
    assert_eq!(run.metric("secretwire_rollouts_total{outcome=\"completed\"}"), 1.0);
    assert_eq!(run.metric("secretwire_rollout_duration_seconds_count"), 1.0);
    assert_eq!(run.metric("secretwire_rollouts_in_progress"), 0.0);
    assert_eq!(run.metric("secretwire_events_total{outcome=\"deployment\"}"), 1.0);

    // A lost event: the backstop read (DescribeServices, first 5 s after the start) finds the end.
    proxy.unscript("web");
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the second redeploy", 30, run, run.redeploys("web") == 2);
    let second = last_rollout(&run, "web")["deploymentId"].as_str().unwrap().to_string();
    assert_ne!(second, id);
    eventually!(
        "the second rollout, read without an event",
        60,
        run,
        last_rollout(&run, "web")["outcome"] == "Completed"
    );
    assert_eq!(run.metric("secretwire_rollouts_total{outcome=\"completed\"}"), 2.0);
    assert_eq!(queue_depth(&sdk, QUEUE).await, 0);
    // No rollout open: no more DescribeServices than the passes make.
    let reads = || run.metric("secretwire_aws_calls_total{service=\"ECS\",operation=\"DescribeServices\"}");
    let before = reads();
    tick_past_a_second();
    tick_past_a_second();
    assert_eq!(reads(), before, "nothing read while no rollout is open and no pass runs:\n{}", run.log());
}

#[tokio::test]
async fn a_failed_rotation_rollout_is_degraded_explained_and_not_retried() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s", "--resync-interval", "2s"]);
    let ecs_reason = denied(&secret_arn(&sdk, "web/api").await);
    proxy.script("web", Script::Fail(ecs_reason.clone()));
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the failed rollout", 60, run, last_rollout(&run, "web")["outcome"] == "Failed");
    let status = run.status();
    let (degraded, reason, message) = condition(&status, "web", "Degraded");
    assert_eq!((degraded.as_str(), reason.as_str()), ("True", "RolloutFailed"), "{message}");
    assert!(message.contains("ResourceInitializationError"), "{message}");
    let (progressing, reason, _) = condition(&status, "web", "Progressing");
    assert_eq!((progressing.as_str(), reason.as_str()), ("False", "RolloutFailed"));
    let r = last_rollout(&run, "web");
    assert_eq!(r["reason"], BREAKER_FAILED);
    assert_eq!(r["diagnosis"]["ecsReason"], ecs_reason);
    let facts: Vec<&str> = r["diagnosis"]["facts"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
    assert!(facts.contains(&"containerDefinitions[web].secrets[API_USER] reads secret web/api"), "{facts:?}");
    assert!(facts.contains(&"web-execution grants secretsmanager:GetSecretValue on it"), "{facts:?}");
    assert!(
        r["diagnosis"]["cause"].as_str().unwrap().starts_with("wrong role: the task ran as ecsTaskExecutionRole"),
        "{r}"
    );
    assert_eq!(run.metric("secretwire_rollouts_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(run.metric("secretwire_rollout_duration_seconds_count"), 1.0);
    assert!(run.log().contains("Rollout failed"), "{}", run.log());
    // Its stopped tasks were read once, by the calls `secretwire policy` grants for it.
    let reads = |op: &str| proxy.calls().iter().filter(|c| c.service == "ecs" && c.operation == op).count();
    assert_eq!((reads("ListTasks"), reads("DescribeTasks")), (1, 1));
    let dir = repo.path().display().to_string();
    let policy = moto.secretwire(&["policy", "-m", &dir], &[]);
    for action in ["ecs:ListTasks", "ecs:DescribeTasks"] {
        assert!(policy.stdout.contains(action), "{action} in {}", policy.stdout);
    }
    // No storm: the message is gone, passes come and go, no second deployment.
    eventually!("the message to be deleted", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    run.wait_passes(2);
    assert_eq!(proxy.deployments_started("web"), 1, "a failed rollout is not retried in a loop:\n{}", run.log());
    assert_eq!(condition(&run.status(), "web", "Degraded").0, "True");
    // A manual deployment clears it.
    proxy.unscript("web");
    force_deployment(&sdk, "web").await;
    run.wait_for("Degraded to clear", Duration::from_secs(30), |r| {
        condition(&r.status(), "web", "Degraded").1 == "ManualDeployment"
    });
    assert_eq!(condition(&run.status(), "web", "Degraded").0, "False");
    // Nothing in the status, the log or the metrics carries a value.
    assert_no_value(&format!("{}{}{}", run.get("/status").1, run.get("/metrics").1, run.log()), &sdk).await;
}

#[tokio::test]
async fn a_circuit_breaker_rollback_is_reported_as_rolled_back_at_the_failed_event() {
    let (_moto, _repo, sdk, _proxy, run) = rotate_web(Script::RollBack(DENIED.into()), &[]).await;
    let id = last_rollout(&run, "web")["deploymentId"].as_str().unwrap().to_string();
    deployment_event(
        &sdk,
        "web",
        &id,
        "SERVICE_DEPLOYMENT_FAILED",
        "ECS deployment circuit breaker: task failed to start.",
    )
    .await;
    eventually!("the rollback", 30, run, last_rollout(&run, "web")["outcome"] == "RolledBack");
    assert_eq!(condition(&run.status(), "web", "Degraded").1, "RolledBack");
    assert_eq!(run.metric("secretwire_rollouts_total{outcome=\"rolled_back\"}"), 1.0);
}

#[tokio::test]
async fn a_rollout_that_never_ends_times_out() {
    let (_moto, _repo, _sdk, _proxy, run) = rotate_web(Script::Hang, &["--rollout-timeout", "3s"]).await;
    eventually!("the timeout", 30, run, last_rollout(&run, "web")["outcome"] == "TimedOut");
    let (degraded, reason, message) = condition(&run.status(), "web", "Degraded");
    assert_eq!((degraded.as_str(), reason.as_str()), ("True", "RolloutTimedOut"));
    assert!(message.contains("not ended within 3 s"), "{message}");
    assert_eq!(run.metric("secretwire_rollouts_total{outcome=\"timed_out\"}"), 1.0);
}

#[tokio::test]
async fn a_shared_value_rolls_out_in_waves_and_a_failed_first_rollout_holds_the_rest() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s", "--max-parallel-rollouts", "1"]);
    // web and worker both read /web/database-password; web goes first (in order), and fails.
    proxy.script("web", Script::Fail(DENIED.into()));
    publish_parameter_update(&sdk, "/web/database-password").await;
    eventually!("web's redeploy", 30, run, run.redeploys("web") == 1);
    let (progressing, reason, _) = condition(&run.status(), "worker", "Progressing");
    assert_eq!((progressing.as_str(), reason.as_str()), ("True", "RolloutPending"), "worker waits for the slot");
    eventually!("web's failure", 60, run, last_rollout(&run, "web")["outcome"] == "Failed");
    eventually!("worker to be held", 10, run, condition(&run.status(), "worker", "Degraded").1 == "WaveHeld");
    assert_eq!(proxy.deployments_started("worker"), 0, "the rest of the wave is not broken too");
    // Held across a restart: worker is stale (the value changed after its
    // deployment), yet the new controller's backstop leaves it alone.
    assert_eq!(run.stop().0, 0);
    let run = run_through(
        &moto,
        &proxy,
        &repo,
        &["--debounce", "0s", "--max-parallel-rollouts", "1", "--resync-interval", "1s"],
    );
    run.wait_passes(2);
    assert_eq!(proxy.deployments_started("worker"), 0, "held after a restart too:\n{}", run.log());
    let (degraded, reason, message) = condition(&run.status(), "worker", "Degraded");
    assert_eq!((degraded.as_str(), reason.as_str()), ("True", "WaveHeld"), "{message}");
    assert!(message.contains("the rollout of web"), "{message}");
    // A new change of the value releases it; worker's rollout is moto's and
    // completes. (Made without an event, found by the backstop: the stopped
    // controller's last long poll may still hold the next message in the
    // emulator, as SQS may after a consumer dies, until its visibility timeout.)
    proxy.unscript("web");
    tick_past_a_second();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let put = ssm.put_parameter().name("/web/database-password").value("rotated-by-the-test-0123456789");
    put.r#type(aws_sdk_ssm::types::ParameterType::SecureString).overwrite(true).send().await.unwrap();
    eventually!("both redeployed for the new change", 60, run, proxy.deployments_started("worker") == 1);
    eventually!("worker's rollout to complete", 30, run, condition(&run.status(), "worker", "Degraded").0 == "False");
}

#[tokio::test]
async fn apply_wait_exits_1_with_the_failed_service_its_reason_and_the_diagnosis() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let proxy = scripting_proxy(&moto);
    let dir = repo.path().display().to_string();
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    for (k, v) in demo_env() {
        cmd.env(k, v);
    }
    proxy.script("worker", Script::Fail(DENIED.replace("web/api", "registry/dockerhub")));
    let out = Run::from(cmd.args(["apply", "-m", &dir, "--wait", "--timeout", "60s"]).output().unwrap());
    assert_eq!(
        out.code, 1,
        "{}
{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("✓ web: rollout completed"), "{}", out.stdout);
    assert!(out.stdout.contains("✗ worker: rollout failed"), "{}", out.stdout);
    assert!(out.stdout.contains("    ECS: ResourceInitializationError"), "{}", out.stdout);
    assert!(
        out.stdout.contains("    - containerDefinitions[worker].repositoryCredentials reads secret registry/dockerhub"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Rollouts: 2 followed, 1 failed."), "{}", out.stdout);
    // Plain lines, not a live line, when stderr is not a terminal.
    assert!(!out.stderr.contains('\r'), "{}", out.stderr);
    // Nothing to deploy: nothing to wait for, exit 0.
    proxy.unscript("worker");
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let again = Run::from(cmd.args(["apply", "-m", &dir, "--wait"]).output().unwrap());
    assert_eq!(
        again.code, 0,
        "{}
{}",
        again.stdout, again.stderr
    );
    assert!(!again.stdout.contains("Rollouts:"), "{}", again.stdout);
}

/// A webhook receiver on loopback: answers 500 to its first `failures`
/// requests, then 200; keeps every body it accepted.
struct Receiver {
    url: String,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    fn start(failures: usize) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/secretwire", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (acc, refs) = (accepted.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let fail = refs.load(std::sync::atomic::Ordering::SeqCst) < failures;
                let status = if fail {
                    refs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    "500 Internal Server Error"
                } else {
                    acc.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                    "200 OK"
                };
                let mut s = reader.into_inner();
                let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Self { url, accepted, refused }
    }

    fn events(&self) -> Vec<String> {
        self.accepted.lock().unwrap().iter().map(|v| v["event"].as_str().unwrap_or_default().to_string()).collect()
    }
}

#[tokio::test]
async fn notifications_reach_a_webhook_that_fails_twice_and_the_default_bus() {
    let (moto, repo, sdk) = rolled_out_example().await;
    // The team's own rule routes secretwire's events to a queue of theirs.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name("team-notes").send().await.unwrap().queue_url.unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events.put_rule().name("team-notes").event_pattern(r#"{"source":["secretwire"]}"#).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("q")
        .arn("arn:aws:sqs:us-east-1:123456789012:team-notes")
        .build()
        .unwrap();
    events.put_targets().rule("team-notes").targets(target).send().await.unwrap();

    let hook = Receiver::start(2);
    let proxy = scripting_proxy(&moto);
    let run =
        run_through(&moto, &proxy, &repo, &["--debounce", "0s", "--notify-webhook", &hook.url, "--notify-eventbridge"]);
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("the rollout to complete", 60, run, last_rollout(&run, "web")["outcome"] == "Completed");
    eventually!("both notifications", 30, run, hook.events() == ["redeploy_started", "rollout_completed"]);
    assert_eq!(hook.refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    let done = hook.accepted.lock().unwrap()[1].clone();
    assert_eq!(done["service"], "web");
    assert_eq!(done["trigger"], "rotation");
    assert_eq!(done["outcome"], "Completed");
    assert_eq!(done["deploymentId"], last_rollout(&run, "web")["deploymentId"]);
    assert!(done["text"].as_str().unwrap().starts_with("secretwire: rollout of web (prod) completed"), "{done}");
    assert_eq!(run.metric("secretwire_notifications_total{sink=\"webhook\",result=\"attempt_failed\"}"), 2.0);
    assert_eq!(run.metric("secretwire_notifications_total{sink=\"webhook\",result=\"delivered\"}"), 2.0);
    assert_eq!(run.metric("secretwire_notifications_total{sink=\"eventbridge\",result=\"delivered\"}"), 2.0);

    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 && Instant::now() < end {
        let out = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages() {
            got.push(serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap());
        }
    }
    assert_eq!(got.len(), 2, "both notifications on the bus");
    assert!(got.iter().all(|e| e["source"] == "secretwire" && e["detail-type"] == "secretwire rollout"));
    assert!(got.iter().any(|e| e["detail"]["event"] == "rollout_completed"), "{got:?}");
    let everything = format!("{:?}{got:?}", hook.accepted.lock().unwrap());
    assert_no_value(&everything, &sdk).await;
}

#[tokio::test]
async fn a_restarted_controller_reports_a_rollout_that_failed_while_it_was_down() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s"]);
    let from = epoch_now();
    proxy.script("web", Script::Hang);
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    eventually!("web's redeploy", 30, run, run.redeploys("web") == 1);
    let id = last_rollout(&run, "web")["deploymentId"].as_str().unwrap().to_string();
    eventually!("the message to be deleted", 30, run, queue_depth(&sdk, QUEUE).await == 0);
    let (code, _) = run.stop();
    assert_eq!(code, 0);

    // While it was down the rollout failed; the new controller finds it from the service's tag.
    proxy.script_since("web", Script::Fail(denied(&secret_arn(&sdk, "web/api").await)), from);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s"]);
    eventually!("the resumed rollout to end", 60, run, last_rollout(&run, "web")["outcome"] == "Failed");
    let r = last_rollout(&run, "web");
    assert_eq!(r["deploymentId"], id.as_str());
    assert_eq!(r["trigger"], "rotation");
    assert_eq!(condition(&run.status(), "web", "Degraded").1, "RolloutFailed");
    assert_eq!(proxy.deployments_started("web"), 1, "followed, not deployed again");
    let facts = r["diagnosis"]["facts"].to_string();
    assert!(facts.contains("web-execution grants secretsmanager:GetSecretValue on it"), "{facts}");
    assert_eq!(
        run.metric("secretwire_notifications_total{sink=\"webhook\",result=\"delivered\"}"),
        0.0,
        "no sink configured: nothing sent"
    );
}

#[tokio::test]
async fn a_restarted_controller_follows_a_rollout_still_in_progress() {
    let (moto, repo, _sdk, proxy, run) = rotate_web(Script::Hang, &[]).await;
    let id = last_rollout(&run, "web")["deploymentId"].as_str().unwrap().to_string();
    assert_eq!(run.stop().0, 0);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s"]);
    assert!(run.log().contains("Following a rollout started before a restart"), "{}", run.log());
    assert_eq!(condition(&run.status(), "web", "Progressing").1, "NewDeployment");
    assert_eq!(last_rollout(&run, "web")["deploymentId"], id.as_str());
    // It completes (moto's answer again); the tracker's read finds it. (Not an
    // event: the stopped controller's last long poll may still hold the next
    // message in the emulator, as SQS may after a consumer dies, until its
    // visibility timeout.)
    proxy.unscript("web");
    eventually!("the resumed rollout to complete", 30, run, last_rollout(&run, "web")["outcome"] == "Completed");
    assert_eq!(proxy.deployments_started("web"), 1);
}

/// Takes out of web-execution's secretwire policy the statements that grant `action`, as someone
/// editing the role by hand would (a pass would put them back; none runs in the test).
async fn revoke(sdk: &aws_config::SdkConfig, action: &str) {
    let iam = aws_sdk_iam::Client::new(sdk);
    let doc = iam.get_role_policy().role_name("web-execution").policy_name("secretwire").send().await.unwrap();
    let text = percent_decode(doc.policy_document());
    let mut policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    let grants = |s: &serde_json::Value| {
        s["Action"] == action || s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == action))
    };
    policy["Statement"].as_array_mut().unwrap().retain(|s| !grants(s));
    iam.put_role_policy()
        .role_name("web-execution")
        .policy_name("secretwire")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
}

/// IAM's policy documents, URL-encoded on AWS (moto answers them plain).
fn percent_decode(s: &str) -> String {
    if s.trim_start().starts_with('{') {
        return s.to_string();
    }
    let mut out = Vec::new();
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail.get(..2).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                rest = &tail[2..];
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn each_cause_of_the_troubleshooting_list_is_diagnosed_through_the_harness() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = scripting_proxy(&moto);
    let run = run_through(&moto, &proxy, &repo, &["--debounce", "0s"]);
    let api = secret_arn(&sdk, "web/api").await;
    let splunk = secret_arn(&sdk, "web/splunk-token").await;
    let prefix = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval \
                  failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret";
    let denied_to = |arn: &str, region: &str| {
        let arn = arn.replace("us-east-1", region);
        format!(
            "{prefix} {arn} from secrets manager: AccessDeniedException: User: \
             arn:aws:sts::123456789012:assumed-role/web-execution/77aa is not authorized to perform: \
             secretsmanager:GetSecretValue on resource: {arn}"
        )
    };
    let cases = [
        // Wrong region: the reference's ARN points at another region.
        (api.clone(), denied_to(&api, "eu-west-1"), None, "wrong region"),
        // The role's policy lacks the read (edited by hand since the last apply).
        (
            api.clone(),
            denied_to(&api, "us-east-1"),
            Some("secretsmanager:GetSecretValue"),
            "web-execution's policy does not grant secretsmanager:GetSecretValue",
        ),
        // Missing kms:Decrypt on the customer managed key behind web/splunk-token.
        (
            splunk.clone(),
            format!("{prefix} {splunk} from secrets manager: AccessDeniedException: Access to KMS is not allowed"),
            Some("kms:Decrypt"),
            "missing kms:Decrypt: web-execution does not grant it on arn:aws:kms:",
        ),
    ];
    for (i, (secret, reason, revoked, cause)) in cases.into_iter().enumerate() {
        if let Some(action) = revoked {
            revoke(&sdk, action).await;
        }
        proxy.script("web", Script::Fail(reason));
        tick_past_a_second();
        publish_rotation(&sdk, &secret).await;
        eventually!(format!("rollout {}", i + 1), 60, run, {
            let r = last_rollout(&run, "web");
            run.redeploys("web") == i as u64 + 1 && r["outcome"] == "Failed"
        });
        let r = last_rollout(&run, "web");
        let got = r["diagnosis"]["cause"].as_str().unwrap_or_default().to_string();
        assert!(got.starts_with(cause), "case {}: {got}\n{r}", i + 1);
        assert!(condition(&run.status(), "web", "Degraded").2.contains(cause), "the status says it too");
    }
}
